-- Which near-duplicate clusters are the largest? (every document dedup grouped, kept or not)
SELECT lang, dup_cluster_id, MAX(dup_cluster_size) AS size, SUM(CAST(exact_copy AS INT)) AS exact_copies
FROM dup_clusters
GROUP BY lang, dup_cluster_id
ORDER BY size DESC, lang, dup_cluster_id
LIMIT 50;
