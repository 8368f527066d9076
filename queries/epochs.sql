-- What did each ingestion epoch add, and how many of its documents are in the dataset now?
SELECT e.epoch, e.committed_at, e.shards_added, e.shards_replaced, e.docs_read, COALESCE(p.rows_now, 0) AS rows_now
FROM epochs e
LEFT JOIN (SELECT epoch, COUNT(*) AS rows_now FROM pairs GROUP BY epoch) p ON p.epoch = e.epoch
ORDER BY e.epoch;
