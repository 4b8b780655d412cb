-- dbsync_withdrawal_excess_accounts: stake addresses whose withdrawals up to an epoch E exceed
-- the rewards (reward and reward_rest) spendable to them by E, for some E they withdrew in.
WITH events AS (
  SELECT addr_id, epoch, bool_or(withdrew) AS withdrew,
         sum(withdrawn) AS withdrawn, sum(earned) AS earned
  FROM (SELECT w.addr_id, b.epoch_no AS epoch, true AS withdrew, w.amount AS withdrawn, 0 AS earned
        FROM withdrawal w JOIN tx ON tx.id = w.tx_id JOIN block b ON b.id = tx.block_id
        UNION ALL
        SELECT addr_id, spendable_epoch, false, 0, amount FROM reward
        UNION ALL
        SELECT addr_id, spendable_epoch, false, 0, amount FROM reward_rest) x
  GROUP BY 1, 2),
running AS (
  SELECT addr_id, withdrew,
         sum(withdrawn) OVER (PARTITION BY addr_id ORDER BY epoch) AS withdrawn,
         sum(earned) OVER (PARTITION BY addr_id ORDER BY epoch) AS earned
  FROM events)
SELECT count(DISTINCT addr_id) FROM running WHERE withdrew AND withdrawn > earned;
