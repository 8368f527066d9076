-- Which operators rejected how many records, and for what reason?
SELECT operator, reason, COUNT(*) AS records
FROM rejects
GROUP BY operator, reason
ORDER BY records DESC, operator, reason;
