-- dbsync_supply_drift_lovelace: genesis supply - (UTxO + fees + deposits + donations
-- - withdrawals), over every transaction (db-tool's TotalSupply with one cut point and
-- donations; NULL deposits left out as the balance rule does).
WITH genesis AS (SELECT coalesce(sum(o.value), 0) AS v FROM tx_out o
                 JOIN tx ON tx.id = o.tx_id JOIN block b ON b.id = tx.block_id
                 WHERE b.previous_id IS NULL),
     utxo AS (SELECT coalesce(sum(o.value), 0) AS v FROM tx_out o
              WHERE NOT EXISTS (SELECT 1 FROM tx_in i
                                WHERE i.tx_out_id = o.tx_id AND i.tx_out_index = o.index)),
     flows AS (SELECT coalesce(sum(t.fee), 0) AS fees, coalesce(sum(t.deposit), 0) AS deposits,
                      coalesce(sum(CASE WHEN t.valid_contract THEN t.treasury_donation ELSE 0 END), 0) AS donations
               FROM tx t),
     wdr AS (SELECT coalesce(sum(amount), 0) AS v FROM withdrawal)
SELECT genesis.v - (utxo.v + flows.fees + flows.deposits + flows.donations - wdr.v)
FROM genesis, utxo, flows, wdr;
