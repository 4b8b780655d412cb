-- dbsync_block_number_gaps: consecutive main blocks whose numbers differ by anything but 1.
SELECT count(*) FROM (
  SELECT block_no - lag(block_no) OVER (ORDER BY block_no, id) AS step
  FROM block WHERE block_no IS NOT NULL) x
WHERE step <> 1;
