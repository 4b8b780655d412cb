-- dbsync_tx_in_double_spends: outputs referenced by more than one tx_in row.
SELECT count(*) FROM (SELECT 1 FROM tx_in GROUP BY tx_out_id, tx_out_index HAVING count(*) > 1) x;
