-- How many pairs did `xinst diversify` select from each k-means cluster of instruction embeddings, per language?
SELECT lang, cluster_id, COUNT(*) FILTER (WHERE selected) AS selected, MAX(cluster_size) AS cluster_size
FROM diversity
GROUP BY lang, cluster_id
ORDER BY lang, cluster_id;
