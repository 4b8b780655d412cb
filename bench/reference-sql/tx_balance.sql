-- dbsync_tx_balance_mismatches: non-genesis txs with a deposit whose inputs + withdrawals differ
-- from outputs + fee + deposit (+ donation if valid), or whose out_sum differs from outputs.
WITH ins AS (SELECT i.tx_in_id AS id, sum(o.value) AS v FROM tx_in i
             JOIN tx_out o ON o.tx_id = i.tx_out_id AND o.index = i.tx_out_index GROUP BY 1),
     outs AS (SELECT tx_id AS id, sum(value) AS v FROM tx_out GROUP BY 1),
     wdr AS (SELECT tx_id AS id, sum(amount) AS v FROM withdrawal GROUP BY 1)
SELECT count(*) FROM tx t JOIN block b ON b.id = t.block_id
LEFT JOIN ins ON ins.id = t.id LEFT JOIN outs ON outs.id = t.id LEFT JOIN wdr ON wdr.id = t.id
WHERE b.previous_id IS NOT NULL AND t.deposit IS NOT NULL
  AND (coalesce(ins.v, 0) + coalesce(wdr.v, 0)
         <> coalesce(outs.v, 0) + t.fee + t.deposit
            + CASE WHEN t.valid_contract THEN t.treasury_donation ELSE 0 END
       OR coalesce(outs.v, 0) <> t.out_sum);
