//! `withdrawals`: stake addresses that withdrew more than was ever spendable to them
//! (db-tool's Withdrawal, done with instant rewards and timing).
//!
//! The rule is the ledger invariant "a reward balance never goes negative", evaluated at each
//! epoch E in which an address withdrew: it counts if the withdrawals of all transactions in
//! epochs ≤ E exceed the rewards spendable to it by E — `reward` rows (leader, member, pool
//! deposit refunds) plus the instant rewards (`instant_reward` on 13.2, `reward_rest` from
//! 13.3: MIR, Conway treasury withdrawals and proposal refunds), each with
//! `spendable_epoch ≤ E`. "≤", not "<": a reward becomes withdrawable in its spendable epoch
//! (leader/member: earned + 2; MIR: certificate epoch + 1; refunds and treasury withdrawals:
//! the boundary epoch), so an account may spend it in that very epoch. db-tool sums only
//! `reward` over all time, so every MIR-, treasury- or proposal-refund-funded account that
//! withdrew is its false positive, and a reward withdrawn before it was spendable passes.
//! Only `>` is tested: db-sync's reward rows are not exact enough for equality, and overstated
//! rewards can only hide a fault, never make one. Before 13.2 `reward` holds the MIR rows
//! itself, so there it is the only table read.
//!
//! The partial result of epoch E is the sorted set of addresses flagged for their
//! withdrawals in E (evaluated with everything up to E); an address counts once in the total
//! (the union over epochs). Zero withdrawals (the "withdraw zero" script trick, which is
//! normal) are left out of E's address set: an address whose cumulative withdrawals exceed
//! its rewards at E without withdrawing anything in E was already over at the last epoch in
//! which it did withdraw something, and is flagged there, so the union is the same.
//!
//! The running epoch is examined too, and that is sound: the rewards spendable in E are
//! inserted at the E boundary, with the epoch's first block, so any withdrawal of E already
//! has every reward it may spend in the snapshot. Later withdrawals of the running epoch are
//! examined by the next run (an incremental run re-examines the last finished epoch and the
//! running one), which also corrects anything seen halfway. Phase-2-invalid transactions
//! have no withdrawal rows, so they need no special case. A rollback deletes withdrawals with
//! their transactions and re-inserts instant rewards above the surviving epoch: the epochs it
//! touches are re-examined (across a boundary, the whole history is).
//!
//! Cost, per epoch: the epoch's transaction-id range from its first and last block
//! (`idx_block_epoch_no`, then one probe each way of `idx_tx_block_id`: tx ids grow in chain
//! order and a rollback only deletes the newest, so an epoch's transactions are one id range
//! and those up to E are the ids ≤ its last); its withdrawals as one range of
//! `idx_withdrawal_tx_id`; per withdrawing address its withdrawals up to E through
//! `idx_withdrawal_addr_id` and its rewards through `idx_reward_addr_id`. All three are
//! stage-4 indexes, so the check is not applicable until db-sync creates them (a sequential
//! scan of `withdrawal` or `reward` per address would be hopeless). The query returns only
//! the addresses whose withdrawals exceed their `reward` rows alone (the accounts funded by
//! instant rewards, and the faults); the instant-reward table has no `addr_id` index in
//! vanilla db-sync, so their instant rewards are summed in one more statement per epoch, as
//! a single scan of that small table filtered by the (hashed) array of those addresses and
//! grouped by address — never one scan per address, whatever the planner estimates. Rows
//! returned: at most those candidates, never the chain. Not applicable with the ledger
//! disabled (`reward` is empty, every withdrawal would be flagged).
//!
//! On mainnet an epoch has 50–150 k withdrawing addresses with ~300 reward rows each, so one
//! epoch costs minutes (reference estimate 1–5 min), dominated by the per-address `reward`
//! reads; an epoch that is re-examined on every run (the last finished and the running one)
//! pays that each time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::incremental::{Examined, Incremental, IntegrityCheck, Prerequisites};
use super::sql::Reader;
use super::state::{Coverage, Scope};
use crate::checks::{CheckError, CheckName, Findings, Verdict};
use crate::db::InstantRewardTable;

/// The `withdrawals` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalFindings {
    /// Stake addresses whose withdrawals up to some epoch exceed the rewards spendable to
    /// them by that epoch (each address once).
    pub excess_accounts: u64,
    /// What the run covered.
    pub coverage: Coverage,
}

/// The addresses that withdrew a non-zero amount in epoch `$1` (in its blocks after block `$2`;
/// -1: in any) and whose withdrawals up to the end of `$1` exceed their `reward` rows spendable by `$1`, with that excess, in
/// address order.
///
/// `min/max(b.id + 0)`: `+ 0` keeps the planner from walking `block_pkey` in id order and
/// filtering on the epoch (the min/max rewrite), which for a recent epoch would read the
/// whole table; `idx_block_epoch_no` finds the epoch's blocks instead. The first and last
/// transaction of the epoch are the first entry of `idx_tx_block_id` at or after its first
/// block and the last at or before its last block (an epoch without transactions gives
/// lo > hi: an empty range); `span` is materialized so that they are looked up once, not once
/// per withdrawal. `OFFSET 0` keeps the planner from flattening the subquery, which would
/// evaluate both per-address sums twice (once for the filter, once for the output). Sums are
/// numeric; every real one fits a bigint, and the cast fails loudly rather than rounding if
/// one did not.
const CANDIDATES_SQL: &str = "\
    WITH blocks AS ( \
      SELECT min(b.id + 0) AS first_id, max(b.id + 0) AS last_id \
      FROM block b WHERE b.epoch_no = $1::bigint AND b.id > $2::bigint), \
    span AS MATERIALIZED ( \
      SELECT (SELECT t.id FROM tx t WHERE t.block_id >= blocks.first_id \
              ORDER BY t.block_id, t.id LIMIT 1) AS lo, \
             (SELECT t.id FROM tx t WHERE t.block_id <= blocks.last_id \
              ORDER BY t.block_id DESC, t.id DESC LIMIT 1) AS hi \
      FROM blocks), \
    addrs AS ( \
      SELECT DISTINCT w.addr_id, span.hi FROM span \
      JOIN withdrawal w ON w.tx_id >= span.lo AND w.tx_id <= span.hi \
      WHERE w.amount > 0) \
    SELECT addr_id, excess FROM ( \
      SELECT a.addr_id, ( \
          (SELECT sum(w.amount) FROM withdrawal w \
           WHERE w.addr_id = a.addr_id AND w.tx_id <= a.hi) \
        - coalesce((SELECT sum(r.amount) FROM reward r \
                    WHERE r.addr_id = a.addr_id AND r.spendable_epoch <= $1::bigint), 0) \
        )::bigint AS excess \
      FROM addrs a OFFSET 0) c \
    WHERE excess > 0 \
    ORDER BY addr_id";

/// The instant rewards spendable by `$2` of the addresses in `$1`, per address: one scan of
/// the (small, unindexed) table, the array hashed by the executor.
fn instant_sql(table: InstantRewardTable) -> String {
    format!(
        "SELECT r.addr_id, sum(r.amount)::bigint FROM {} r \
         WHERE r.addr_id = ANY($1::bigint[]) AND r.spendable_epoch <= $2::bigint \
         GROUP BY r.addr_id",
        table.table()
    )
}

const TABLES: [&str; 4] = ["block", "tx", "withdrawal", "reward"];
const INDEXES: [&str; 5] = [
    "idx_block_epoch_no",
    "idx_tx_block_id",
    "idx_withdrawal_tx_id",
    "idx_withdrawal_addr_id",
    "idx_reward_addr_id",
];

/// Looks for accounts that withdrew more than was spendable to them, epoch by epoch.
pub type WithdrawalsCheck = IntegrityCheck<WithdrawalsRule>;

/// The `withdrawals` rule; its partial result for an epoch is the sorted ids of the stake
/// addresses flagged for their withdrawals in that epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct WithdrawalsRule;

impl Incremental for WithdrawalsRule {
    const NAME: CheckName = CheckName::Withdrawals;
    type Epoch = Vec<i64>;
    type Ready = ();
    type Seen = ();
    // An address flagged in an epoch stays flagged as the epoch goes on (its withdrawals only
    // grow; the rewards spendable in it were all written at its first block), and one that
    // withdraws again after the last run is examined again with everything up to now.
    const BLOCKWISE: bool = true;

    fn add(&self, epoch: &mut Vec<i64>, later: Vec<i64>) {
        epoch.extend(later);
        epoch.sort_unstable();
        epoch.dedup();
    }

    async fn prerequisites(&self, db: &Reader<'_>) -> Result<Prerequisites<()>, CheckError> {
        let mut why_not = db.missing_prerequisite(&TABLES, &INDEXES);
        let instant = db.schema.instant_rewards;
        if why_not.is_none() && instant != InstantRewardTable::Reward {
            why_not = db.missing_prerequisite(&[instant.table()], &[]);
        }
        Ok(db.or_ledger_missing(why_not).await?.into())
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        (): &(),
        scope: &Scope,
    ) -> Result<Examined<Vec<i64>>, CheckError> {
        let instant = db.schema.instant_rewards;
        let mut fresh = BTreeMap::new();
        // One epoch at a time: the instant rewards that count depend on the epoch, and the
        // candidates held in memory are those of one epoch.
        let after = scope.after_block_id();
        for epoch in scope.from..=scope.to {
            let mut candidates: Vec<(i64, i64)> = Vec::new();
            db.query_each(CANDIDATES_SQL, &[&epoch, &after], |row| {
                candidates.push((row.try_get(0)?, row.try_get(1)?));
                Ok(())
            })
            .await?;
            if candidates.is_empty() {
                continue;
            }
            let mut covered: HashMap<i64, i64> = HashMap::new();
            if instant != InstantRewardTable::Reward {
                let addrs: Vec<i64> = candidates.iter().map(|(addr, _)| *addr).collect();
                db.query_each(&instant_sql(instant), &[&addrs, &epoch], |row| {
                    covered.insert(row.try_get(0)?, row.try_get(1)?);
                    Ok(())
                })
                .await?;
            }
            let flagged = over(&candidates, &covered);
            if !flagged.is_empty() {
                fresh.insert(epoch, flagged);
            }
        }
        Ok(fresh.into())
    }

    fn finish(&self, epochs: &BTreeMap<i64, Vec<i64>>, (): (), coverage: Coverage) -> Verdict {
        Verdict::Found(Findings::Withdrawals(WithdrawalFindings {
            excess_accounts: distinct(epochs),
            coverage,
        }))
    }
}

/// The candidates (address, withdrawals minus `reward` rows, in address order) whose excess
/// their instant rewards do not cover, in address order.
fn over(candidates: &[(i64, i64)], instant: &HashMap<i64, i64>) -> Vec<i64> {
    candidates
        .iter()
        .filter(|(addr, excess)| *excess > instant.get(addr).copied().unwrap_or(0))
        .map(|(addr, _)| *addr)
        .collect()
}

/// How many distinct addresses the epochs flagged: an address over in several epochs is one
/// account.
fn distinct(epochs: &BTreeMap<i64, Vec<i64>>) -> u64 {
    let all: BTreeSet<i64> = epochs.values().flatten().copied().collect();
    u64::try_from(all.len()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_rewards_cover_the_excess_only_in_full() {
        let candidates = [(3, 10), (5, 10), (8, 1)];
        let instant = HashMap::from([(3, 10), (5, 9)]);
        assert_eq!(over(&candidates, &instant), vec![5, 8]);
        assert_eq!(over(&candidates, &HashMap::new()), vec![3, 5, 8]);
    }

    #[test]
    fn an_address_over_in_several_epochs_counts_once() {
        let epochs = BTreeMap::from([(10, vec![1, 4]), (11, vec![4]), (12, vec![2, 4, 9])]);
        assert_eq!(distinct(&epochs), 4);
        assert_eq!(distinct(&BTreeMap::new()), 0);
    }

    #[test]
    fn rewards_count_from_their_spendable_epoch_on() {
        for sql in [CANDIDATES_SQL, &instant_sql(InstantRewardTable::RewardRest)] {
            assert!(sql.contains("spendable_epoch <= $"), "{sql}");
            assert!(!sql.contains("spendable_epoch < $"), "{sql}");
        }
        assert!(instant_sql(InstantRewardTable::InstantReward).contains("FROM instant_reward"));
    }
}
