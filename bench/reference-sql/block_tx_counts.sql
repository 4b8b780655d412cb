-- dbsync_block_tx_count_mismatches: blocks whose tx_count differs from their tx rows.
SELECT count(*) FROM block b
LEFT JOIN (SELECT block_id, count(*) AS n FROM tx GROUP BY block_id) t ON t.block_id = b.id
WHERE b.tx_count <> coalesce(t.n, 0);
