//! `withdrawals` (`dbsync_withdrawal_excess_accounts`): every trap and fault in its own
//! epoch on each schema shape, applicability, incremental runs, rollbacks and query plans.
//! A child module of `integrity`, so it shares its fixtures and its `Direct` runner.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use dbsync_exporter::checks::{
    Findings, IntegritySettings, PlanLog, Verdict, WithdrawalFindings, WithdrawalsCheck,
};
use dbsync_fixture::{near_tip_ddl, Cluster, Fixture, IndexSet, SchemaVersion};

use super::{big_fixture, ledger_fixture, open_epoch, Direct, DAY};
use crate::common::{config, must, wait_for_value, Exporter};

per_version! {
    withdrawal_rules => super::withdrawal_rules;
    withdrawals_incremental_and_rollback => super::withdrawals_incremental_and_rollback;
    withdrawals_not_applicable_without_ledger_or_indexes => super::withdrawals_not_applicable_without_ledger_or_indexes;
    withdrawals_without_sequential_scans => super::withdrawals_without_sequential_scans;
}

const ADA: i64 = 1_000_000;

impl Direct {
    async fn withdrawals(&self, check: &mut WithdrawalsCheck) -> WithdrawalFindings {
        match self.run(check).await {
            Verdict::Found(Findings::Withdrawals(found)) => found,
            other => panic!("withdrawals: {other:?}"),
        }
    }
}

/// One trap or fault per epoch, 300 to 317 (the tip, the running epoch); built in pieces so
/// incremental runs can be tested. Addresses by name, for the expected results.
#[derive(Default)]
struct Scenario {
    acct: BTreeMap<String, i64>,
    pool: i64,
}

impl Scenario {
    /// A new stake address named `name`.
    async fn address(&mut self, fixture: &mut Fixture, name: &str) -> i64 {
        let id = fixture.stake_address().await;
        self.acct.insert(name.to_owned(), id);
        id
    }

    /// A leader/member/refund `reward` row.
    async fn reward(&self, fixture: &Fixture, kind: &str, name: &str, amount: i64, epoch: i64) {
        fixture
            .reward(kind, self.acct[name], amount, epoch, self.pool)
            .await;
    }

    /// A transaction of its own in `epoch` withdrawing `amount` from `name`.
    async fn withdraw(&self, fixture: &mut Fixture, name: &str, epoch: i64, amount: i64) {
        let tx = fixture.tx_in_epoch(epoch).await;
        fixture.withdrawal(self.acct[name], tx, amount).await;
    }

    async fn build(&mut self, fixture: &mut Fixture, epochs: RangeInclusive<i64>) {
        let v13_2 = fixture.version == SchemaVersion::V13_2;
        for epoch in epochs {
            match epoch {
                300 => {
                    open_epoch(fixture, 300, 6).await;
                    self.pool = fixture.pool().await;
                }
                // Trap: funded only by a MIR payment (an instant reward: db-tool flags it).
                301 => {
                    let a = self.address(fixture, "mir").await;
                    fixture.instant_reward("reserves", a, 7 * ADA, 301).await;
                    self.withdraw(fixture, "mir", 301, 7 * ADA).await;
                }
                // Trap: ten accounts funded by treasury MIR payments.
                302 => {
                    for n in 0..10 {
                        let name = format!("treasury{n}");
                        let a = self.address(fixture, &name).await;
                        fixture
                            .instant_reward("treasury", a, 3 * ADA + n, 302)
                            .await;
                        self.withdraw(fixture, &name, 302, 3 * ADA + n).await;
                    }
                }
                // Trap: pool deposit refunds (reward rows of type refund), withdrawn in the
                // epoch they are paid.
                303 => {
                    for n in 0..3 {
                        let name = format!("refund{n}");
                        self.address(fixture, &name).await;
                        self.reward(fixture, "refund", &name, 500 * ADA, 303).await;
                        self.withdraw(fixture, &name, 303, 500 * ADA).await;
                    }
                }
                // Trap: a Conway treasury withdrawal (an instant reward without certificate)
                // spent in the very epoch it becomes spendable: strict "< E" would flag it.
                304 => {
                    let a = self.address(fixture, "conway_treasury").await;
                    fixture
                        .instant_reward("treasury", a, 1_000 * ADA, 304)
                        .await;
                    self.withdraw(fixture, "conway_treasury", 304, 1_000 * ADA)
                        .await;
                }
                // Trap: a returned proposal deposit (13.3+; 13.2 had neither refunds nor
                // the withdrawal of one).
                305 => {
                    let a = self.address(fixture, "proposal").await;
                    fixture
                        .instant_reward("proposal_refund", a, 100_000 * ADA, 305)
                        .await;
                    if v13_2 {
                        fixture.tx_in_epoch(305).await;
                    } else {
                        self.withdraw(fixture, "proposal", 305, 100_000 * ADA).await;
                    }
                }
                // Trap: withdrawals that equal the rewards spendable by then exactly (the
                // reward spendable in 307 is not withdrawn).
                306 => {
                    for n in 0..3 {
                        let name = format!("exact{n}");
                        self.address(fixture, &name).await;
                        self.reward(fixture, "member", &name, 2 * ADA + n, 304)
                            .await;
                        self.reward(fixture, "leader", &name, 5 * ADA, 306).await;
                        self.reward(fixture, "member", &name, 9 * ADA, 307).await;
                        self.withdraw(fixture, &name, 306, 7 * ADA + n).await;
                    }
                }
                // Trap: the "withdraw zero" trick of a script address without rewards.
                307 => {
                    let a = fixture.script_stake_address().await;
                    self.acct.insert("script".into(), a);
                    self.withdraw(fixture, "script", 307, 0).await;
                }
                // Trap: one transaction with 20 withdrawals.
                308 => {
                    let tx = fixture.tx_in_epoch(308).await;
                    for n in 0..20 {
                        let name = format!("batch{n}");
                        let a = self.address(fixture, &name).await;
                        self.reward(fixture, "member", &name, ADA + n, 307).await;
                        fixture.withdrawal(a, tx, ADA + n).await;
                    }
                }
                // Trap: an invalid Plutus transaction trying to withdraw again: db-sync
                // writes no withdrawal row for it.
                309 => {
                    self.address(fixture, "plutus").await;
                    self.reward(fixture, "member", "plutus", 4 * ADA, 309).await;
                    self.withdraw(fixture, "plutus", 309, 4 * ADA).await;
                    fixture.invalid_tx_in_epoch(309).await;
                }
                // Trap: withdrawals across three epochs that sum exactly, one of them funded
                // by an instant reward spendable in its epoch.
                310 => {
                    let a = self.address(fixture, "spread").await;
                    self.reward(fixture, "member", "spread", ADA, 310).await;
                    fixture.instant_reward("reserves", a, 2 * ADA, 311).await;
                    self.reward(fixture, "leader", "spread", 3 * ADA, 312).await;
                    self.withdraw(fixture, "spread", 310, ADA).await;
                }
                311 => self.withdraw(fixture, "spread", 311, 2 * ADA).await,
                312 => self.withdraw(fixture, "spread", 312, 3 * ADA).await,
                // Fault: one lovelace more than earned.
                313 => {
                    self.address(fixture, "plus_one").await;
                    self.reward(fixture, "member", "plus_one", 10 * ADA, 313)
                        .await;
                    self.withdraw(fixture, "plus_one", 313, 10 * ADA + 1).await;
                }
                // Fault: rewards withdrawn the epoch before they become spendable (a member
                // reward and a MIR payment, each of which alone would cover it).
                314 => {
                    let a = self.address(fixture, "early").await;
                    self.reward(fixture, "member", "early", 5 * ADA, 315).await;
                    fixture.instant_reward("reserves", a, 3 * ADA, 315).await;
                    self.withdraw(fixture, "early", 314, 3 * ADA).await;
                }
                // Fault: the same address over in two epochs (one account).
                315 => {
                    self.address(fixture, "twice").await;
                    self.reward(fixture, "member", "twice", 10 * ADA, 315).await;
                    self.withdraw(fixture, "twice", 315, 11 * ADA).await;
                }
                316 => {
                    self.reward(fixture, "member", "twice", 5 * ADA, 316).await;
                    self.withdraw(fixture, "twice", 316, 5 * ADA).await;
                }
                // Fault in the running epoch: three accounts, each in its own block.
                317 => {
                    for n in 0..3 {
                        let name = format!("three{n}");
                        self.address(fixture, &name).await;
                        self.reward(fixture, "member", &name, ADA, 317).await;
                        self.withdraw(fixture, &name, 317, 2 * ADA).await;
                    }
                }
                _ => unreachable!("epoch {epoch}"),
            }
        }
    }

    /// The flagged addresses by epoch, for the epochs built up to `tip`.
    fn expected(&self, tip: i64) -> BTreeMap<i64, Vec<i64>> {
        let flagged: [(i64, &[&str]); 5] = [
            (313, &["plus_one"]),
            (314, &["early"]),
            (315, &["twice"]),
            (316, &["twice"]),
            (317, &["three0", "three1", "three2"]),
        ];
        flagged
            .into_iter()
            .filter(|(epoch, _)| *epoch <= tip)
            .map(|(epoch, names)| {
                let mut ids: Vec<i64> = names.iter().map(|n| self.acct[*n]).collect();
                ids.sort_unstable();
                (epoch, ids)
            })
            .collect()
    }
}

pub(crate) async fn withdrawal_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("withdrawals").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    let mut scenario = Scenario::default();
    scenario.build(&mut fixture, 300..=317).await;
    let direct = Direct::new(&db);
    let mut check = WithdrawalsCheck::new(IntegritySettings::new(DAY));
    let found = direct.withdrawals(&mut check).await;
    assert!(found.coverage.full_run);
    assert_eq!(found.coverage.tip_epoch, 317);
    // Every trap epoch (301 to 312) is absent; the running epoch 317 is examined.
    assert_eq!(check.epochs(), &scenario.expected(317));
    assert_eq!(
        found.excess_accounts, 6,
        "the twice-over address counts once"
    );
    assert_eq!(Findings::Withdrawals(found).integrity_faults(), Some(6));
}

pub(crate) async fn withdrawals_incremental_and_rollback(version: SchemaVersion) {
    let db = Cluster::shared()
        .create_database("withdrawals_incremental")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    let mut scenario = Scenario::default();
    scenario.build(&mut fixture, 300..=313).await;
    let direct = Direct::new(&db);
    let mut check = WithdrawalsCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.withdrawals(&mut check).await.excess_accounts, 1);

    // New epochs, one run per epoch: each run re-examines the last run's tip epoch and the
    // running one.
    for epoch in 314..=317 {
        scenario.build(&mut fixture, epoch..=epoch).await;
        let found = direct.withdrawals(&mut check).await;
        assert!(!found.coverage.full_run, "epoch {epoch}");
        assert_eq!(found.coverage.from_epoch, epoch - 1, "epoch {epoch}");
        assert_eq!(check.epochs(), &scenario.expected(epoch), "epoch {epoch}");
    }
    // A further withdrawal in the running epoch, seen by the next run.
    scenario.address(&mut fixture, "late").await;
    scenario.withdraw(&mut fixture, "late", 317, 1).await;
    let found = direct.withdrawals(&mut check).await;
    assert_eq!(found.excess_accounts, 7);
    let mut fresh = WithdrawalsCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.withdrawals(&mut fresh).await.excess_accounts, 7);
    assert_eq!(check.epochs(), fresh.epochs(), "incremental == full");

    // A rollback replaces the tip block and its withdrawal (epoch 317 keeps its first
    // block): re-examined incrementally, "late" is gone.
    fixture.roll_back_withdrawals(1).await;
    fixture.rollback_and_replace(1).await;
    let after = direct.withdrawals(&mut check).await;
    assert!(!after.coverage.full_run);
    assert_eq!(after.excess_accounts, 6);
    assert_eq!(check.epochs(), &scenario.expected(317));
    // The replacement block withdraws from "three2" again: still one account.
    let tip = fixture.tip().await.unwrap().0;
    let tx = fixture.insert_tx(tip, 170_000).await;
    fixture.withdrawal(scenario.acct["three2"], tx, ADA).await;
    assert_eq!(direct.withdrawals(&mut check).await.excess_accounts, 6);

    // Rolling back the whole running epoch (the tip epoch goes down): a full run, and the
    // three accounts of 317 are gone with their withdrawals.
    let blocks_in_317: i64 = fixture
        .client
        .query_one("SELECT count(*) FROM block WHERE epoch_no = 317", &[])
        .await
        .unwrap()
        .get(0);
    let depth = u32::try_from(blocks_in_317).unwrap();
    fixture.roll_back_withdrawals(depth).await;
    fixture.truncate(depth).await;
    let after = direct.withdrawals(&mut check).await;
    assert!(after.coverage.full_run);
    assert_eq!(after.coverage.tip_epoch, 316);
    assert_eq!(check.epochs(), &scenario.expected(316));
    assert_eq!(after.excess_accounts, 3);
}

pub(crate) async fn withdrawals_not_applicable_without_ledger_or_indexes(version: SchemaVersion) {
    // Ledger disabled: no ada_pots, no rewards; every withdrawal would look unfunded.
    let db = Cluster::shared()
        .create_database("withdrawals_no_ledger")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    let addr = fixture.stake_address().await;
    let tx = fixture.tx_in_epoch(300).await;
    fixture.withdrawal(addr, tx, 5 * ADA).await;
    let direct = Direct::new(&db);
    let mut check = WithdrawalsCheck::new(IntegritySettings::new(DAY));
    match direct.run(&mut check).await {
        Verdict::NotApplicable(reason) => assert!(reason.contains("ada_pots"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // Initial sync: the withdrawal and reward indexes are stage 4.
    let db = Cluster::shared()
        .create_database("withdrawals_initial_sync")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::InitialSync).await;
    let mut scenario = Scenario::default();
    scenario.build(&mut fixture, 300..=317).await;
    let direct = Direct::new(&db);
    let mut check = WithdrawalsCheck::new(IntegritySettings::new(DAY));
    match direct.run(&mut check).await {
        Verdict::NotApplicable(reason) => assert!(
            reason.contains("idx_withdrawal_tx_id") && reason.contains("near the tip"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // db-sync reaches the tip and creates them: the same check object applies now.
    fixture.execute(&near_tip_ddl(version)).await;
    assert_eq!(direct.withdrawals(&mut check).await.excess_accounts, 6);
    for index in ["idx_withdrawal_addr_id", "idx_reward_addr_id"] {
        fixture.execute(&format!("DROP INDEX {index}")).await;
        match direct.run(&mut check).await {
            Verdict::NotApplicable(reason) => assert!(reason.contains(index), "{reason}"),
            other => panic!("{other:?}"),
        }
        fixture.execute(&near_tip_ddl(version)).await;
    }

    // The exporter publishes the gauge and its check's series.
    let mut settings = config(&db.reader_url());
    settings.checks.integrity_interval = std::time::Duration::from_millis(300);
    let exporter = Exporter::start(settings).await;
    let body = wait_for_value(
        &exporter,
        "dbsync_check_applicable{check=\"withdrawals\"}",
        1.0,
    )
    .await;
    assert!(
        body.lines()
            .any(|line| line == "dbsync_withdrawal_excess_accounts 6"),
        "{body}"
    );
    assert_eq!(
        must(&body, "dbsync_check_success{check=\"withdrawals\"}"),
        1.0
    );
    exporter.shutdown().await;
}

pub(crate) async fn withdrawals_without_sequential_scans(version: SchemaVersion) {
    let db = Cluster::shared().create_database("withdrawals_plans").await;
    let fixture = big_fixture(&db, version).await;
    // 120 000 transactions in epochs 400 to 439 (3 000 per epoch); every address has twenty
    // 1 000-lovelace member rewards spendable in 404..=423. From epoch 404 on every fifth
    // transaction withdraws 1 lovelace; in epoch 439 the MIR-paid addresses 5001..=5280
    // withdraw a little less than their member rewards plus their MIR payment (candidates,
    // covered by instant rewards), and addresses 10001..=10007 withdraw one lovelace more
    // than their member rewards (faults).
    fixture
        .execute(
            "INSERT INTO withdrawal (addr_id, amount, tx_id) \
               SELECT 1 + (g / 5) % 20000, 1, g FROM generate_series(12001, 120000) g \
               WHERE g % 5 = 0;
             INSERT INTO withdrawal (addr_id, amount, tx_id) \
               SELECT 5000 + g, 1000000 + 20000 - 5, 119000 + g FROM generate_series(1, 280) g;
             INSERT INTO withdrawal (addr_id, amount, tx_id) \
               SELECT 10000 + g, 20001, 118000 + g FROM generate_series(1, 7) g;
             ANALYZE withdrawal;",
        )
        .await;
    let direct = Direct::new(&db);
    let plans = PlanLog::default();
    let mut check = WithdrawalsCheck::new(IntegritySettings::new(DAY).explain_into(plans.clone()));
    // A full run, then an incremental one.
    for _ in 0..2 {
        assert_eq!(direct.withdrawals(&mut check).await.excess_accounts, 7);
    }
    assert_eq!(check.epochs().len(), 1);
    let recorded = plans.plans();
    // The newest plan of each statement (epoch 439 for the candidates: the one with rows).
    let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
    for plan in &recorded {
        for table in ["reward", "withdrawal", "tx", "block"] {
            assert!(
                !plan.plan.contains(&format!("Seq Scan on {table} ")),
                "{version}: sequential scan on {table}:\n{}\n{}",
                plan.sql,
                plan.plan
            );
        }
        newest.insert(&plan.sql, &plan.plan);
    }
    let report: String = newest
        .iter()
        .map(|(sql, plan)| format!("--- {sql}\n{plan}\n"))
        .collect();
    let all: String = recorded.iter().map(|p| p.plan.as_str()).collect();
    for index in [
        "idx_block_epoch_no",
        "idx_tx_block_id",
        "idx_withdrawal_tx_id",
        "idx_withdrawal_addr_id",
    ] {
        assert!(
            all.contains(index),
            "{version}: no plan uses {index}:\n{report}"
        );
    }
    assert!(
        all.contains("idx_reward_addr_id") || all.contains("unique_reward"),
        "{version}: rewards not looked up by address:\n{report}"
    );
    // The instant rewards are read once per epoch with candidates, never per address.
    let instant: Vec<_> = recorded
        .iter()
        .filter(|p| p.sql.contains("ANY($1::bigint[])"))
        .collect();
    assert!(!instant.is_empty());
    for plan in instant {
        assert!(!plan.plan.contains("Nested Loop"), "{}", plan.plan);
    }
    eprintln!("=== withdrawals query plans on {version} ===\n{report}");

    // Timings without plan recording (reported, not asserted: the machine is shared).
    let mut timed = WithdrawalsCheck::new(IntegritySettings::new(DAY));
    let started = std::time::Instant::now();
    assert_eq!(direct.withdrawals(&mut timed).await.excess_accounts, 7);
    let full = started.elapsed();
    let started = std::time::Instant::now();
    assert_eq!(direct.withdrawals(&mut timed).await.excess_accounts, 7);
    eprintln!(
        "withdrawals on {version}: full run {full:?}, incremental run {:?}",
        started.elapsed()
    );
}
