-- Per language: how many pairs, how long are instructions (mean ± std) and responses, how many were refined or ask only to translate, and how many tokens did a pair cost?
SELECT
    lang,
    COUNT(*) AS pairs,
    ROUND(AVG(character_length(instruction)), 1) AS instruction_chars,
    ROUND(STDDEV(character_length(instruction)), 1) AS instruction_chars_std,
    ROUND(AVG(character_length(text)), 0) AS response_chars,
    SUM(CASE WHEN iteration > 0 THEN 1 ELSE 0 END) AS refined,
    SUM(CASE WHEN translate THEN 1 ELSE 0 END) AS translate,
    ROUND(AVG(tokens_in + tokens_out), 0) AS tokens_per_pair
FROM pairs
WHERE instruction IS NOT NULL
GROUP BY lang
ORDER BY lang;
