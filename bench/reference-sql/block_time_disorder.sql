-- dbsync_block_time_disorder: main blocks not strictly later than their predecessor.
SELECT count(*) FROM (
  SELECT time <= lag(time) OVER (ORDER BY block_no, id) AS disorder
  FROM block WHERE block_no IS NOT NULL) x
WHERE disorder;
