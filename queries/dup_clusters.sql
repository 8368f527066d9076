-- Which near-duplicate clusters are the largest?
SELECT lang, dup_cluster_id, MAX(dup_cluster_size) AS size
FROM pairs
WHERE dup_cluster_size > 1
GROUP BY lang, dup_cluster_id
ORDER BY size DESC, lang, dup_cluster_id
LIMIT 50;
