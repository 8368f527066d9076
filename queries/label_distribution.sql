-- How do the evaluator's labels (good / flawed / bad) split per language?
SELECT lang, COALESCE(label, 'unlabelled') AS label, COUNT(*) AS pairs
FROM pairs
GROUP BY lang, COALESCE(label, 'unlabelled')
ORDER BY lang, label;
