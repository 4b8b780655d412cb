-- dbsync_epoch_table_mismatches: finished epochs whose stored epoch row is missing or differs
-- (validate-epoch-table.sql with all six fields, the running epoch left out).
WITH c AS (
  SELECT b.epoch_no, coalesce(sum(tx.out_sum), 0) AS out_sum, coalesce(sum(tx.fee), 0) AS fees,
         count(tx.id) AS tx_count, count(DISTINCT b.id) AS blk_count,
         min(b.time) AS start_time, max(b.time) AS end_time
  FROM block b LEFT JOIN tx ON tx.block_id = b.id
  WHERE b.epoch_no IS NOT NULL
    AND b.epoch_no < (SELECT epoch_no FROM block WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1)
  GROUP BY b.epoch_no)
SELECT count(*) FROM c LEFT JOIN epoch e ON e.no = c.epoch_no
WHERE e.no IS NULL
   OR (c.out_sum, c.fees, c.tx_count, c.blk_count, c.start_time, c.end_time)
      IS DISTINCT FROM (e.out_sum, e.fees, e.tx_count, e.blk_count, e.start_time, e.end_time);
