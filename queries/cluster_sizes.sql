-- How many pairs were selected from each diversity cluster (k-means over instruction embeddings), per language?
SELECT lang, cluster_id, COUNT(*) AS selected, MAX(cluster_size) AS cluster_size
FROM pairs
WHERE cluster_id IS NOT NULL
GROUP BY lang, cluster_id
ORDER BY lang, cluster_id;
