//! The ledger side of the history: stake addresses, pools and MIR certificates drawn as
//! events in time, placed in transactions, then replayed epoch by epoch the way the ledger
//! processes them, which yields everything db-sync derives at epoch boundaries: instant
//! rewards, pool refunds, the stake distribution and the pots.
//!
//! The replay follows the rules the exporter's integrity checks enforce (reference §5, §6,
//! §9): MIR certificates of epoch N are paid at N→N+1, only to credentials registered at that
//! boundary, the last certificate replacing earlier ones before Alonzo and all of them adding
//! up from Alonzo; a retirement takes effect at its epoch unless a later retirement or a
//! re-registration came first, and its deposit goes to the pool's reward account if that is
//! registered, otherwise to the treasury (nothing recorded). Because the data is derived
//! from the same rules, a clean history makes every check report zero.

use std::collections::BTreeMap;

use crate::network::Network;
use crate::rng::Rng;
use crate::scale::Sizes;
use crate::{KEY_DEPOSIT, MAX_LOVELACE_SUPPLY, POOL_DEPOSIT};

use super::layout::EpochBlocks;

/// Positions within an epoch run from 0 to this (exclusive); they order the certificates.
pub const POS_SCALE: u32 = 1_000_000;
/// MIR certificates must come before the stability window; keep them in the first 60 %.
const MIR_POS_LIMIT: u32 = 600_000;
/// Conway governance deposits.
const DREP_DEPOSIT: i64 = 500_000_000;
const PROPOSAL_DEPOSIT: i64 = 100_000_000_000;
/// Reserves at the start of the Shelley era (mainnet's figure at epoch 208).
const INITIAL_RESERVES: i64 = 13_888_022_852_926_644;

/// Which pot a MIR certificate or an instant reward draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pot {
    /// The reserves (`reserve` table, reward type `reserves`).
    Reserves,
    /// The treasury (`treasury` table, reward type `treasury`).
    Treasury,
}

impl Pot {
    /// The `rewardtype` value and the `pot` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Pot::Reserves => "reserves",
            Pot::Treasury => "treasury",
        }
    }

    /// The certificate table.
    pub fn table(self) -> &'static str {
        match self {
            Pot::Reserves => "reserve",
            Pot::Treasury => "treasury",
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Stake address registration.
    Register(i64),
    /// Stake address deregistration.
    Deregister(i64),
    /// Pool registration or update (a registration when the pool is not registered).
    PoolUpdate {
        /// `pool_hash.id`.
        pool: i64,
        /// `stake_address.id` of the reward account.
        reward: i64,
    },
    /// Pool retirement announcement.
    PoolRetire {
        /// `pool_hash.id`.
        pool: i64,
        /// The epoch the pool should retire at.
        retiring_epoch: i64,
    },
    /// A MIR certificate paying stake credentials.
    Mir {
        /// Source pot.
        pot: Pot,
        /// `(stake_address.id, lovelace)` per credential.
        pays: Vec<(i64, i64)>,
    },
    /// A MIR certificate moving ADA between the pots (`treasury` delta; reserves get minus).
    PotTransfer(i64),
}

/// An action at a point in time.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Epoch of the certificate's block.
    pub epoch: i64,
    /// Position in the epoch, `0..POS_SCALE`: orders certificates.
    pub pos: u32,
    /// What.
    pub action: Action,
    /// `tx.id` (set by [`place`]).
    pub tx_id: i64,
    /// Certificate index within the transaction (set by [`place`]).
    pub cert_index: i32,
    /// False when the replay found the certificate invalid (e.g. retiring a pool that no
    /// longer exists); such events are not written.
    pub valid: bool,
}

/// A row of `stake_registration` or `stake_deregistration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertRow {
    /// `stake_address.id`.
    pub addr: i64,
    /// Epoch of the certificate.
    pub epoch: i64,
    /// `tx.id`.
    pub tx_id: i64,
    /// `cert_index`.
    pub cert_index: i32,
}

/// A `pool_update` row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolUpdateRow {
    /// `hash_id`.
    pub pool: i64,
    /// Epoch of the certificate.
    pub epoch: i64,
    /// `registered_tx_id`.
    pub tx_id: i64,
    /// `cert_index`.
    pub cert_index: i32,
    /// `reward_addr_id`.
    pub reward: i64,
    /// `deposit` (13.3+): 500 ADA for a registration, NULL for an update of a live pool.
    pub deposit: Option<i64>,
}

/// A `pool_retire` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRetireRow {
    /// `hash_id`.
    pub pool: i64,
    /// Epoch of the announcement.
    pub epoch: i64,
    /// `announced_tx_id`.
    pub tx_id: i64,
    /// `cert_index`.
    pub cert_index: i32,
    /// `retiring_epoch`.
    pub retiring_epoch: i64,
}

/// A `reserve` or `treasury` row (one credential of a MIR certificate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirRow {
    /// Source pot (the table).
    pub pot: Pot,
    /// `addr_id`.
    pub addr: i64,
    /// `amount`.
    pub amount: i64,
    /// `tx_id`.
    pub tx_id: i64,
    /// `cert_index`.
    pub cert_index: i32,
    /// Epoch of the certificate.
    pub epoch: i64,
}

/// Kind of instant reward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InstantKind {
    /// MIR payout (or Conway treasury withdrawal when `Pot::Treasury`).
    Pot(Pot),
    /// Returned governance deposit (13.3+).
    ProposalRefund,
}

impl InstantKind {
    /// The `rewardtype` value.
    pub fn as_str(self) -> &'static str {
        match self {
            InstantKind::Pot(p) => p.as_str(),
            InstantKind::ProposalRefund => "proposal_refund",
        }
    }
}

/// A row of `reward_rest` / `instant_reward`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstantReward {
    /// `addr_id`.
    pub addr: i64,
    /// `type`.
    pub kind: InstantKind,
    /// `amount`.
    pub amount: i64,
    /// `spendable_epoch` (earned is one less).
    pub spendable_epoch: i64,
    /// Why it exists: a MIR payout (false) or a Conway treasury withdrawal / proposal refund.
    pub conway: bool,
}

/// A `reward` row of type `refund`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refund {
    /// `addr_id`: the reward account of the pool's newest update.
    pub addr: i64,
    /// `pool_id`.
    pub pool: i64,
    /// `spendable_epoch` = `earned_epoch` = the retiring epoch.
    pub epoch: i64,
    /// `amount`.
    pub amount: i64,
}

/// Epochs in which a stake address is in the stake distribution (`epoch_stake`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// `addr_id`.
    pub addr: i64,
    /// First epoch.
    pub first: i64,
    /// Last epoch (inclusive).
    pub last: i64,
}

/// A pool in an epoch's stake distribution, with its reward account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivePool {
    /// Epoch.
    pub epoch: i64,
    /// Index among the epoch's active pools (delegators pick by it).
    pub idx: i64,
    /// `pool_hash.id`.
    pub pool: i64,
    /// Reward account at that epoch.
    pub reward: i64,
    /// Whether that account is registered (leader rewards are paid only then).
    pub reward_registered: bool,
}

/// One `ada_pots` row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pots {
    /// Epoch.
    pub epoch: i64,
    /// `treasury`.
    pub treasury: i64,
    /// `reserves`.
    pub reserves: i64,
    /// `rewards`.
    pub rewards: i64,
    /// `utxo`.
    pub utxo: i64,
    /// `deposits_stake` (`deposits` up to 13.2 holds all three deposits).
    pub deposits_stake: i64,
    /// `deposits_drep`.
    pub deposits_drep: i64,
    /// `deposits_proposal`.
    pub deposits_proposal: i64,
    /// `fees`.
    pub fees: i64,
}

impl Pots {
    /// The sum the `ada_pots` check compares with 45e15.
    pub fn total(&self) -> i64 {
        self.treasury
            + self.reserves
            + self.rewards
            + self.utxo
            + self.deposits_stake
            + self.deposits_drep
            + self.deposits_proposal
            + self.fees
    }
}

/// Everything the ledger part of the plan produces.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Stake addresses (ids `1..=stake_addresses`).
    pub stake_addresses: i64,
    /// Pools (ids `1..=pools`).
    pub pools: i64,
    /// Registration epoch of each randomly drawn pool (index = pool id − 1), ascending; the
    /// trap pools after them are not listed.
    pub pool_first_epoch: Vec<i64>,
    /// The certificates, in chain order.
    pub events: Vec<Event>,
    /// Derived from valid events.
    pub registrations: Vec<CertRow>,
    /// Derived from valid events.
    pub deregistrations: Vec<CertRow>,
    /// Derived from valid events.
    pub pool_updates: Vec<PoolUpdateRow>,
    /// Derived from valid events.
    pub pool_retires: Vec<PoolRetireRow>,
    /// Derived from valid events.
    pub mir_rows: Vec<MirRow>,
    /// `(tx_id, cert_index, treasury delta)`.
    pub pot_transfers: Vec<(i64, i32, i64)>,
    /// Instant rewards (MIR payouts, treasury withdrawals, proposal refunds).
    pub instant_rewards: Vec<InstantReward>,
    /// Pool deposit refunds.
    pub refunds: Vec<Refund>,
    /// Effective retirements whose reward account was unregistered (deposit to treasury).
    pub unclaimed_refunds: i64,
    /// Stake distribution membership.
    pub spans: Vec<Span>,
    /// Active pools per epoch.
    pub active_pools: Vec<ActivePool>,
    /// One row per Shelley-era epoch.
    pub pots: Vec<Pots>,
}

/// What the ledger plan depends on.
pub struct LedgerInput<'a> {
    /// The network.
    pub network: &'a Network,
    /// Row-count knobs.
    pub sizes: &'a Sizes,
    /// Epoch of the tip.
    pub tip_epoch: i64,
    /// Whether `proposal_refund` exists (13.3+).
    pub proposal_refunds: bool,
}

/// Draws the events (epochs and positions only; transactions come with [`place`]).
pub fn draw(input: &LedgerInput<'_>, rng: &Rng) -> Ledger {
    let net = input.network;
    let e0 = net.shelley_start_epoch();
    let tip = input.tip_epoch;
    let mut events = Vec::new();
    let ev = |epoch: i64, pos: u32, action: Action| Event {
        epoch,
        pos,
        action,
        tx_id: 0,
        cert_index: 0,
        valid: true,
    };

    // Stake addresses: most register once at a uniformly drawn epoch (so the registered set
    // grows linearly, as mainnet's roughly did); some deregister later, some of those come
    // back; a few never register (they still get stake_address rows: MIR may name them).
    let a_count = input.sizes.stake_addresses as i64;
    let mut r = rng.fork(1);
    let mut first_reg = vec![i64::MAX; a_count as usize + 1];
    for addr in 1..=a_count {
        if r.chance(30) {
            continue;
        }
        let reg = r.range(e0, tip);
        first_reg[addr as usize] = reg;
        events.push(ev(
            reg,
            r.below(POS_SCALE.into()) as u32,
            Action::Register(addr),
        ));
        if r.chance(120) {
            let dereg = reg + 1 + r.range(0, 59);
            if dereg <= tip {
                events.push(ev(
                    dereg,
                    r.below(POS_SCALE.into()) as u32,
                    Action::Deregister(addr),
                ));
                if r.chance(400) {
                    let again = dereg + 1 + r.range(0, 29);
                    if again <= tip {
                        events.push(ev(
                            again,
                            r.below(POS_SCALE.into()) as u32,
                            Action::Register(addr),
                        ));
                    }
                }
            }
        }
    }
    // Addresses sorted by first registration, to pick reward accounts registered by then.
    let mut by_reg: Vec<(i64, i64)> = (1..=a_count)
        .filter(|a| first_reg[*a as usize] != i64::MAX)
        .map(|a| (first_reg[a as usize], a))
        .collect();
    by_reg.sort_unstable();
    let registered_by = |epoch: i64, r: &mut Rng| -> i64 {
        let n = by_reg.partition_point(|(e, _)| *e < epoch);
        if n == 0 {
            by_reg.first().map_or(1, |x| x.1)
        } else {
            by_reg[r.below(n as u64) as usize].1
        }
    };

    // Pools: a few register in the first Shelley epoch, the rest over time; ids follow
    // registration order. Each has a timeline of updates, maybe a retirement (sometimes
    // superseded or cancelled), maybe a later re-registration.
    let p_count = input.sizes.pools as i64;
    let mut r = rng.fork(2);
    let mut pool_first_epoch: Vec<i64> = (0..p_count)
        .map(|i| {
            if i < (p_count / 20).max(1) {
                e0
            } else {
                r.range(e0, tip)
            }
        })
        .collect();
    pool_first_epoch.sort_unstable();
    let mut previous_reward = None;
    for (i, &reg) in pool_first_epoch.iter().enumerate() {
        let pool = i as i64 + 1;
        // Two pools sharing one reward account happen (operators with several pools).
        let reward = match previous_reward {
            Some(prev) if r.chance(20) => prev,
            _ => registered_by(reg + 1, &mut r),
        };
        previous_reward = Some(reward);
        let reg_pos = r.below(900_000) as u32;
        events.push(ev(reg, reg_pos, Action::PoolUpdate { pool, reward }));
        let mut current_reward = reward;
        for _ in 0..r.below(4) {
            if reg >= tip {
                break;
            }
            let at = r.range(reg + 1, tip);
            if r.chance(300) {
                current_reward = registered_by(at, &mut r);
            }
            events.push(ev(
                at,
                r.below(POS_SCALE.into()) as u32,
                Action::PoolUpdate {
                    pool,
                    reward: current_reward,
                },
            ));
        }
        if reg < tip && r.chance(350) {
            let announce = r.range(reg + 1, tip);
            let pos = r.below(800_000) as u32;
            let retiring = announce + 1 + r.range(0, 17);
            events.push(ev(
                announce,
                pos,
                Action::PoolRetire {
                    pool,
                    retiring_epoch: retiring,
                },
            ));
            if r.chance(80) {
                // Superseded by a later announcement before the first one takes effect.
                let again = r.range(announce, (retiring - 1).min(tip));
                let pos2 = if again == announce {
                    r.range(i64::from(pos) + 1, i64::from(POS_SCALE) - 1) as u32
                } else {
                    r.below(POS_SCALE.into()) as u32
                };
                events.push(ev(
                    again,
                    pos2,
                    Action::PoolRetire {
                        pool,
                        retiring_epoch: again + 1 + r.range(0, 17),
                    },
                ));
            } else if r.chance(70) {
                // Cancelled by a re-registration before the reap.
                let at = r.range(announce, (retiring - 1).min(tip));
                let pos2 = if at == announce {
                    r.range(i64::from(pos) + 1, i64::from(POS_SCALE) - 1) as u32
                } else {
                    r.below(POS_SCALE.into()) as u32
                };
                events.push(ev(
                    at,
                    pos2,
                    Action::PoolUpdate {
                        pool,
                        reward: current_reward,
                    },
                ));
            } else if r.chance(150) && retiring < tip {
                // Reaped, then registered again later: a new registration.
                let at = r.range(retiring, tip);
                events.push(ev(
                    at,
                    r.below(POS_SCALE.into()) as u32,
                    Action::PoolUpdate {
                        pool,
                        reward: registered_by(at, &mut r),
                    },
                ));
            }
        }
    }

    // MIR certificates, only in finished pre-Conway epochs: about one epoch in five, and
    // always the newest eligible one (where faults are planted).
    let mut r = rng.fork(3);
    let last_mir_epoch = (net.conway_start_epoch() - 1).min(tip - 1);
    let credentials = input.sizes.mir_credentials as i64;
    for epoch in e0..=last_mir_epoch {
        if epoch != last_mir_epoch && !r.chance(200) {
            continue;
        }
        let mut previous: Vec<i64> = Vec::new();
        for _ in 0..r.range(1, 3) {
            let pot = if r.chance(600) {
                Pot::Reserves
            } else {
                Pot::Treasury
            };
            let mut pays: Vec<(i64, i64)> = Vec::new();
            for _ in 0..credentials.max(1) {
                // Some credentials repeat from the previous certificate of the epoch: that is
                // where replace (pre-Alonzo) and sum (Alonzo on) differ.
                let addr = if !previous.is_empty() && r.chance(200) {
                    previous[r.below(previous.len() as u64) as usize]
                } else {
                    r.range(1, a_count)
                };
                if pays.iter().any(|(a, _)| *a == addr) {
                    continue;
                }
                pays.push((addr, 1_000_000 * r.range(1, 20_000)));
            }
            previous = pays.iter().map(|(a, _)| *a).collect();
            events.push(ev(
                epoch,
                r.below(MIR_POS_LIMIT.into()) as u32,
                Action::Mir { pot, pays },
            ));
        }
        if r.chance(250) {
            let delta = 1_000_000 * r.range(-50_000_000, 50_000_000);
            events.push(ev(
                epoch,
                r.below(MIR_POS_LIMIT.into()) as u32,
                Action::PotTransfer(delta),
            ));
        }
    }

    let (a_count, p_count) = traps(&mut events, net, tip, a_count, p_count);

    // Chain order; ties keep drawing order (stable sort).
    events.sort_by_key(|e| (e.epoch, e.pos));
    Ledger {
        stake_addresses: a_count,
        pools: p_count,
        pool_first_epoch,
        events,
        ..Ledger::default()
    }
}

/// Deterministic scenarios appended to the random history, so that even the smallest scale
/// holds every case the integrity checks must get right (issue 3's traps), each with its
/// own stake addresses and pools after the random ones. Returns the new address and pool
/// counts.
fn traps(events: &mut Vec<Event>, net: &Network, tip: i64, addrs: i64, pools: i64) -> (i64, i64) {
    let e0 = net.shelley_start_epoch();
    let mut a = addrs;
    let mut p = pools;
    let mut new_addr = || {
        a += 1;
        a
    };
    let ev = |epoch: i64, pos: u32, action: Action| Event {
        epoch,
        pos,
        action,
        tx_id: 0,
        cert_index: 0,
        valid: true,
    };
    let ada = 1_000_000;

    // MIR: one epoch before Alonzo (replace) and one after (sum), both before Conway.
    let alonzo = net.first_epoch_with_major(5).unwrap_or(e0);
    let last_mir = (net.conway_start_epoch() - 1).min(tip - 1);
    let mut mir_epochs = vec![last_mir - 2];
    if alonzo - 2 > e0 {
        mir_epochs.push(alonzo - 2);
    }
    for n in mir_epochs.into_iter().filter(|n| *n > e0) {
        let (gone, late, twice) = (new_addr(), new_addr(), new_addr());
        // Deregistered after the certificate, before the boundary: owed nothing.
        events.push(ev(n - 1, 10, Action::Register(gone)));
        events.push(ev(n, 700_000, Action::Deregister(gone)));
        // Registered after the certificate, before the boundary: paid.
        events.push(ev(n, 800_000, Action::Register(late)));
        // Two certificates to one credential: 7 ADA (replace) or 12 ADA (sum).
        events.push(ev(n - 1, 20, Action::Register(twice)));
        events.push(ev(
            n,
            100_000,
            Action::Mir {
                pot: Pot::Reserves,
                pays: vec![(gone, 3 * ada), (late, 4 * ada), (twice, 5 * ada)],
            },
        ));
        events.push(ev(
            n,
            300_000,
            Action::Mir {
                pot: Pot::Reserves,
                pays: vec![(twice, 7 * ada)],
            },
        ));
    }

    // Pools, all retiring around the middle of the history.
    let t = e0 + (tip - e0) / 2;
    if t + 8 > tip {
        return (a, p);
    }
    let mut new_pool = || {
        p += 1;
        p
    };
    // Unclaimed: the reward account is deregistered before the retirement takes effect.
    let (unclaimed, x) = (new_pool(), new_addr());
    events.push(ev(t - 1, 30, Action::Register(x)));
    events.push(ev(
        t,
        10,
        Action::PoolUpdate {
            pool: unclaimed,
            reward: x,
        },
    ));
    events.push(ev(t + 2, 10, Action::Deregister(x)));
    events.push(ev(
        t + 3,
        10,
        Action::PoolRetire {
            pool: unclaimed,
            retiring_epoch: t + 5,
        },
    ));
    // Two pools sharing one reward account, retiring together: two refunds.
    let (s1, s2, y) = (new_pool(), new_pool(), new_addr());
    events.push(ev(t - 1, 40, Action::Register(y)));
    events.push(ev(
        t,
        20,
        Action::PoolUpdate {
            pool: s1,
            reward: y,
        },
    ));
    events.push(ev(
        t,
        30,
        Action::PoolUpdate {
            pool: s2,
            reward: y,
        },
    ));
    events.push(ev(
        t + 1,
        20,
        Action::PoolRetire {
            pool: s1,
            retiring_epoch: t + 4,
        },
    ));
    events.push(ev(
        t + 1,
        30,
        Action::PoolRetire {
            pool: s2,
            retiring_epoch: t + 4,
        },
    ));
    // Reward account changed before the retirement; the old one is deregistered.
    let (changed, z1, z2) = (new_pool(), new_addr(), new_addr());
    events.push(ev(t - 1, 50, Action::Register(z1)));
    events.push(ev(t - 1, 60, Action::Register(z2)));
    events.push(ev(
        t,
        40,
        Action::PoolUpdate {
            pool: changed,
            reward: z1,
        },
    ));
    events.push(ev(
        t + 1,
        40,
        Action::PoolUpdate {
            pool: changed,
            reward: z2,
        },
    ));
    events.push(ev(
        t + 2,
        20,
        Action::PoolRetire {
            pool: changed,
            retiring_epoch: t + 4,
        },
    ));
    events.push(ev(t + 3, 20, Action::Deregister(z1)));
    // Cancelled by a re-registration in the same epoch, after the announcement.
    let (cancelled, w) = (new_pool(), new_addr());
    events.push(ev(t - 1, 70, Action::Register(w)));
    events.push(ev(
        t,
        50,
        Action::PoolUpdate {
            pool: cancelled,
            reward: w,
        },
    ));
    events.push(ev(
        t + 1,
        50,
        Action::PoolRetire {
            pool: cancelled,
            retiring_epoch: t + 3,
        },
    ));
    events.push(ev(
        t + 1,
        60,
        Action::PoolUpdate {
            pool: cancelled,
            reward: w,
        },
    ));
    // Superseded by a later announcement; reaped at the later epoch, then registered again.
    let (superseded, v) = (new_pool(), new_addr());
    events.push(ev(t - 1, 80, Action::Register(v)));
    events.push(ev(
        t,
        60,
        Action::PoolUpdate {
            pool: superseded,
            reward: v,
        },
    ));
    events.push(ev(
        t + 1,
        70,
        Action::PoolRetire {
            pool: superseded,
            retiring_epoch: t + 3,
        },
    ));
    events.push(ev(
        t + 2,
        30,
        Action::PoolRetire {
            pool: superseded,
            retiring_epoch: t + 6,
        },
    ));
    events.push(ev(
        t + 7,
        30,
        Action::PoolUpdate {
            pool: superseded,
            reward: v,
        },
    ));
    // Retiring in the future (after the tip): nothing expected yet.
    let (future, u) = (new_pool(), new_addr());
    events.push(ev(tip - 1, 90, Action::Register(u)));
    events.push(ev(
        tip - 1,
        100,
        Action::PoolUpdate {
            pool: future,
            reward: u,
        },
    ));
    events.push(ev(
        tip,
        10,
        Action::PoolRetire {
            pool: future,
            retiring_epoch: tip + 10,
        },
    ));
    (a, p)
}

/// Places every event in a transaction of its epoch: the position picks the transaction,
/// so `(tx_id, cert_index)` order equals chain order.
pub fn place(ledger: &mut Ledger, epochs: &[EpochBlocks]) {
    let mut last: Option<(i64, i32)> = None;
    for e in &mut ledger.events {
        let blocks = &epochs[e.epoch as usize];
        assert!(
            blocks.txs > 0,
            "epoch {} has no transactions for certificates",
            e.epoch
        );
        let offset = i64::from(e.pos) * blocks.txs / i64::from(POS_SCALE);
        let tx_id = blocks.first_tx_id + offset;
        let cert_index = match last {
            Some((tx, ci)) if tx == tx_id => ci + 1,
            _ => 0,
        };
        e.tx_id = tx_id;
        e.cert_index = cert_index;
        last = Some((tx_id, cert_index));
    }
}

/// Whether a registered address delegates (and so appears in `epoch_stake`): 85 % do.
pub fn delegates(addr: i64) -> bool {
    addr % 20 < 17
}

/// Per-pool ledger state during the replay.
#[derive(Clone, Copy, Debug, Default)]
struct PoolState {
    registered: bool,
    reward: i64,
    retiring: Option<i64>,
}

/// Replays the placed events epoch by epoch and fills in every derived table.
pub fn replay(ledger: &mut Ledger, input: &LedgerInput<'_>, epochs: &[EpochBlocks], rng: &Rng) {
    let net = input.network;
    let e0 = net.shelley_start_epoch();
    let tip = input.tip_epoch;
    let mut r = rng.fork(4);
    let mut registered = vec![false; ledger.stake_addresses as usize + 1];
    let mut registered_count: i64 = 0;
    let mut pools = vec![PoolState::default(); ledger.pools as usize + 1];
    // (pot, addr) → (last amount, sum) of this epoch's MIR certificates.
    let mut pending: BTreeMap<(Pot, i64), (i64, i64)> = BTreeMap::new();
    // addr → epoch its current registration started (for spans).
    let mut span_start: BTreeMap<i64, i64> = BTreeMap::new();
    let mut pots = Pots {
        reserves: INITIAL_RESERVES,
        ..Pots::default()
    };
    let mut next_event = 0;
    let conway = net.conway_start_epoch();

    for epoch in e0..=tip {
        // ---- the boundary into `epoch` ----
        let mut paid_reserves = 0;
        let mut paid_treasury = 0;
        let mut unclaimed = 0;
        if epoch > e0 {
            let sums = net.mir_sums_in(epoch - 1);
            for ((pot, addr), (last, sum)) in std::mem::take(&mut pending) {
                if !registered[addr as usize] {
                    continue; // stays in the pot
                }
                let amount = if sums { sum } else { last };
                match pot {
                    Pot::Reserves => paid_reserves += amount,
                    Pot::Treasury => paid_treasury += amount,
                }
                ledger.instant_rewards.push(InstantReward {
                    addr,
                    kind: InstantKind::Pot(pot),
                    amount,
                    spendable_epoch: epoch,
                    conway: false,
                });
            }
            for pool in 1..=ledger.pools {
                let st = &mut pools[pool as usize];
                if st.registered && st.retiring == Some(epoch) {
                    if registered[st.reward as usize] {
                        ledger.refunds.push(Refund {
                            addr: st.reward,
                            pool,
                            epoch,
                            amount: POOL_DEPOSIT,
                        });
                    } else {
                        ledger.unclaimed_refunds += 1;
                        unclaimed += POOL_DEPOSIT;
                    }
                    *st = PoolState::default();
                }
            }
            // Conway: enacted treasury withdrawals and returned proposal deposits, earned in
            // the previous epoch; no certificate behind them.
            if epoch > conway {
                if epoch % 4 == 0 {
                    let mut seen = Vec::new();
                    for _ in 0..input.sizes.withdrawal_credentials {
                        let addr = r.range(1, ledger.stake_addresses);
                        if !registered[addr as usize] || seen.contains(&addr) {
                            continue;
                        }
                        seen.push(addr);
                        let amount = 1_000_000 * r.range(1_000, 200_000);
                        paid_treasury += amount;
                        ledger.instant_rewards.push(InstantReward {
                            addr,
                            kind: InstantKind::Pot(Pot::Treasury),
                            amount,
                            spendable_epoch: epoch,
                            conway: true,
                        });
                    }
                }
                if input.proposal_refunds && epoch % 3 == 1 {
                    for _ in 0..r.range(1, 3) {
                        let addr = r.range(1, ledger.stake_addresses);
                        if registered[addr as usize] {
                            ledger.instant_rewards.push(InstantReward {
                                addr,
                                kind: InstantKind::ProposalRefund,
                                amount: PROPOSAL_DEPOSIT,
                                spendable_epoch: epoch,
                                conway: true,
                            });
                        }
                    }
                }
            }
        }

        // ---- the epoch's snapshot ----
        let mut idx = 0;
        let mut pool_count = 0;
        for pool in 1..=ledger.pools {
            let st = pools[pool as usize];
            if st.registered {
                pool_count += 1;
                ledger.active_pools.push(ActivePool {
                    epoch,
                    idx,
                    pool,
                    reward: st.reward,
                    reward_registered: registered[st.reward as usize],
                });
                idx += 1;
            }
        }
        let blocks = &epochs[epoch as usize];
        let previous_fees = epochs
            .get((epoch - 1).max(0) as usize)
            .map_or(0, |b| b.txs * 180_000);
        // Monetary expansion: ~0.17 % of the reserves per epoch, 20 % of it to the treasury.
        let expansion = pots.reserves / 10_000 * 17;
        pots.reserves -= expansion + paid_reserves;
        pots.treasury += expansion / 5 + unclaimed - paid_treasury;
        pots.treasury = pots.treasury.max(0);
        pots.epoch = epoch;
        pots.fees = previous_fees;
        pots.rewards = (MAX_LOVELACE_SUPPLY - pots.reserves - pots.treasury) / 50;
        pots.deposits_stake = KEY_DEPOSIT * registered_count + POOL_DEPOSIT * pool_count;
        if epoch >= conway {
            let dreps = (input.sizes.dreps as i64 * (epoch - conway + 1) / 30)
                .min(input.sizes.dreps as i64);
            pots.deposits_drep = DREP_DEPOSIT * dreps;
            pots.deposits_proposal = PROPOSAL_DEPOSIT * (epoch % 5);
        }
        pots.utxo = MAX_LOVELACE_SUPPLY
            - (pots.treasury
                + pots.reserves
                + pots.rewards
                + pots.deposits_stake
                + pots.deposits_drep
                + pots.deposits_proposal
                + pots.fees);
        debug_assert!(pots.utxo > 0 && blocks.blocks > 0);
        ledger.pots.push(pots);

        // ---- the epoch's certificates ----
        while next_event < ledger.events.len() && ledger.events[next_event].epoch == epoch {
            let e = &mut ledger.events[next_event];
            next_event += 1;
            match &e.action {
                Action::Register(addr) => {
                    if registered[*addr as usize] {
                        e.valid = false;
                        continue;
                    }
                    registered[*addr as usize] = true;
                    registered_count += 1;
                    span_start.insert(*addr, epoch + 1);
                    ledger.registrations.push(CertRow {
                        addr: *addr,
                        epoch,
                        tx_id: e.tx_id,
                        cert_index: e.cert_index,
                    });
                }
                Action::Deregister(addr) => {
                    if !registered[*addr as usize] {
                        e.valid = false;
                        continue;
                    }
                    registered[*addr as usize] = false;
                    registered_count -= 1;
                    if let Some(first) = span_start.remove(addr) {
                        // In the distribution up to this epoch (registered at its start).
                        if first <= epoch && delegates(*addr) {
                            ledger.spans.push(Span {
                                addr: *addr,
                                first,
                                last: epoch,
                            });
                        }
                    }
                    ledger.deregistrations.push(CertRow {
                        addr: *addr,
                        epoch,
                        tx_id: e.tx_id,
                        cert_index: e.cert_index,
                    });
                }
                Action::PoolUpdate { pool, reward } => {
                    let st = &mut pools[*pool as usize];
                    let fresh = !st.registered;
                    st.registered = true;
                    st.reward = *reward;
                    st.retiring = None; // a re-registration cancels a pending retirement
                    ledger.pool_updates.push(PoolUpdateRow {
                        pool: *pool,
                        epoch,
                        tx_id: e.tx_id,
                        cert_index: e.cert_index,
                        reward: *reward,
                        deposit: fresh.then_some(POOL_DEPOSIT),
                    });
                }
                Action::PoolRetire {
                    pool,
                    retiring_epoch,
                } => {
                    let st = &mut pools[*pool as usize];
                    if !st.registered {
                        e.valid = false; // the ledger rejects retiring an unknown pool
                        continue;
                    }
                    st.retiring = Some(*retiring_epoch);
                    ledger.pool_retires.push(PoolRetireRow {
                        pool: *pool,
                        epoch,
                        tx_id: e.tx_id,
                        cert_index: e.cert_index,
                        retiring_epoch: *retiring_epoch,
                    });
                }
                Action::Mir { pot, pays } => {
                    for &(addr, amount) in pays {
                        let entry = pending.entry((*pot, addr)).or_insert((0, 0));
                        entry.0 = amount;
                        entry.1 += amount;
                        ledger.mir_rows.push(MirRow {
                            pot: *pot,
                            addr,
                            amount,
                            tx_id: e.tx_id,
                            cert_index: e.cert_index,
                            epoch,
                        });
                    }
                }
                Action::PotTransfer(delta) => {
                    ledger.pot_transfers.push((e.tx_id, e.cert_index, *delta));
                }
            }
        }
    }
    // Registrations still open at the tip.
    for (addr, first) in span_start {
        if first <= tip && delegates(addr) {
            ledger.spans.push(Span {
                addr,
                first,
                last: tip,
            });
        }
    }
    ledger.spans.sort_by_key(|s| (s.addr, s.first));
}
