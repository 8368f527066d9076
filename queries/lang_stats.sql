-- How many pairs per language, and how long are instructions and outputs (the paper's statistics table)?
SELECT
    lang,
    lang_name(lang) AS language,
    COUNT(*) AS samples,
    ROUND(AVG(character_length(instruction)), 1) AS instruction_len_mean,
    ROUND(STDDEV(character_length(instruction)), 1) AS instruction_len_std,
    ROUND(AVG(character_length(text)), 1) AS output_len_mean,
    ROUND(STDDEV(character_length(text)), 1) AS output_len_std
FROM pairs
GROUP BY lang
ORDER BY lang;
