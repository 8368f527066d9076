-- Which leading verbs, and which objects after them, do the English instructions use (the paper's topic chart)?
SELECT
    first_verb(instruction) AS verb,
    regexp_replace(
        split_part(
            regexp_replace(lower(instruction), '^\W*((please|kindly)\s+|(could|can|would) you\s+(please\s+)?)*[a-z-]+\s+((a|an|the|this|these|that|those|some|my|your|our|its|their)\s+)?', ''),
            ' ', 1),
        '\W+$', '') AS object,
    COUNT(*) AS pairs
FROM pairs
WHERE instruction IS NOT NULL
GROUP BY 1, 2
ORDER BY pairs DESC, verb, object
LIMIT 40;
