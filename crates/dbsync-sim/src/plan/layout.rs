//! Where the blocks and transactions go: one or two segments per epoch, each a run of blocks
//! spread evenly over a slot range, with explicit ids so that other rows can point at them
//! by arithmetic instead of by lookups.
//!
//! Density is the network's own at `--scale mainnet` (Byron: a block every 20 s slot;
//! Shelley on: one per 20 slots, `activeSlotsCoeff` 0.05), thinned uniformly per epoch at
//! smaller scales with a floor per epoch, so every epoch exists. The last hour before the
//! tip always has the natural density, so the tip is as fresh as on a synced node.

use crate::network::Network;

/// Slots before the tip generated at natural density whatever the scale (1 hour).
pub const TAIL_SLOTS: i64 = 3_600;
/// Shelley-era average: one block per 20 slots.
pub const SHELLEY_SLOTS_PER_BLOCK: i64 = 20;
/// Fewest regular blocks in a Shelley-era epoch, so certificates have transactions to sit in.
const MIN_SHELLEY_BLOCKS: i64 = 8;
/// Fewest regular blocks in a Byron epoch.
const MIN_BYRON_BLOCKS: i64 = 1;
/// Byron genesis delegates (the seven keys that made Byron blocks).
pub const BYRON_DELEGATES: i64 = 7;

/// A run of blocks in one epoch, evenly spread over `len` slots from `first_slot`.
///
/// Block `j` (0-based among the regular blocks) sits at slot
/// `first_slot + j·len/regular + jitter`, with a jitter below that block's share of the range,
/// so slots strictly increase. An epoch-boundary block (Byron EBB), when present, comes first
/// and has no slot and no block number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Epoch of every block in the segment.
    pub epoch: i64,
    /// First slot of that epoch (for `epoch_slot_no`).
    pub epoch_first_slot: i64,
    /// First slot of the range.
    pub first_slot: i64,
    /// Slots in the range (≥ `regular`).
    pub len: i64,
    /// Regular blocks (with slot and block number).
    pub regular: i64,
    /// Whether an EBB precedes the regular blocks.
    pub ebb: bool,
    /// `block.id` of the first row (the EBB if any).
    pub first_id: i64,
    /// `block_no` of the first regular block.
    pub first_block_no: i64,
    /// Transactions per regular block.
    pub txs_per_block: i64,
    /// `tx.id` of the first transaction.
    pub first_tx_id: i64,
    /// Protocol version of the epoch.
    pub major: i32,
    /// Protocol minor version.
    pub minor: i32,
    /// Unix time of `first_slot`.
    pub first_slot_unix: i64,
    /// Seconds per slot (20 in Byron, 1 after).
    pub slot_seconds: i64,
    /// `slot_leader.id` of the first eligible leader.
    pub leader_base: i64,
    /// Number of eligible leaders (consecutive ids from `leader_base`).
    pub leader_count: i64,
}

impl Segment {
    /// Block rows, the EBB included.
    pub fn rows(&self) -> i64 {
        self.regular + i64::from(self.ebb)
    }

    /// Transactions in the segment.
    pub fn txs(&self) -> i64 {
        self.regular * self.txs_per_block
    }

    /// `block.id` of regular block `j`.
    pub fn block_id(&self, j: i64) -> i64 {
        self.first_id + i64::from(self.ebb) + j
    }
}

/// Blocks and transactions of one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochBlocks {
    /// The epoch.
    pub epoch: i64,
    /// `block.id` of its first regular block (where `ada_pots` and `epoch_param` point).
    pub first_block_id: i64,
    /// Regular blocks.
    pub blocks: i64,
    /// `tx.id` of its first transaction.
    pub first_tx_id: i64,
    /// Transactions (contiguous ids).
    pub txs: i64,
}

/// The block layout of a whole history.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Segments in id order.
    pub segments: Vec<Segment>,
    /// One entry per epoch `0..=tip_epoch`.
    pub epochs: Vec<EpochBlocks>,
    /// Epoch of the newest block.
    pub tip_epoch: i64,
    /// The newest slot that may hold a block (`slot_at(until)`).
    pub until_slot: i64,
}

impl Layout {
    /// Total block rows.
    pub fn blocks(&self) -> i64 {
        self.segments.iter().map(Segment::rows).sum()
    }

    /// Total transactions.
    pub fn txs(&self) -> i64 {
        self.segments.iter().map(Segment::txs).sum()
    }

    /// `(block.id, block_index)` of generated transaction `t`.
    pub fn tx_position(&self, t: i64) -> (i64, i64) {
        let s = self
            .segments
            .iter()
            .rev()
            .find(|s| s.txs() > 0 && s.first_tx_id <= t)
            .expect("a generated transaction");
        let n = t - s.first_tx_id;
        (s.block_id(n / s.txs_per_block), n % s.txs_per_block)
    }
}

/// What the caller fixes before the layout is computed.
pub struct LayoutInput<'a> {
    /// The network.
    pub network: &'a Network,
    /// Target block count (`None` = natural density).
    pub target_blocks: Option<u64>,
    /// Unix time the history ends at.
    pub until_unix: i64,
    /// `block.id` of the first generated block.
    pub first_block_id: i64,
    /// `tx.id` of the first generated transaction.
    pub first_tx_id: i64,
    /// `block_no` of the first generated regular block.
    pub first_block_no: i64,
    /// `slot_leader.id` of the first Byron delegate; pool leaders follow the delegates.
    pub leader_base: i64,
    /// Pools registered before each epoch, for choosing slot leaders (index = epoch).
    pub pools_before_epoch: &'a [i64],
}

/// One slot range of an epoch before thinning.
struct Range {
    epoch: i64,
    first_slot: i64,
    len: i64,
    natural: i64,
    minimum: i64,
    /// The recent tail keeps its natural density.
    fixed: bool,
}

/// Computes the layout.
pub fn layout(input: &LayoutInput<'_>) -> Layout {
    let net = input.network;
    let p = &net.clock;
    let until_slot = p.slot_at(input.until_unix);
    let tip_epoch = p.epoch_of_slot(until_slot);

    let mut ranges = Vec::new();
    for epoch in 0..=tip_epoch {
        let first = p.epoch_first_slot(epoch);
        let last = (first + p.epoch_length(epoch) - 1).min(until_slot);
        let byron = epoch < p.shelley_start_epoch;
        let natural = |len: i64| {
            if byron {
                len
            } else {
                (len / SHELLEY_SLOTS_PER_BLOCK).max(1)
            }
        };
        let minimum = if byron {
            MIN_BYRON_BLOCKS
        } else {
            MIN_SHELLEY_BLOCKS
        };
        if epoch == tip_epoch && !byron {
            let tail_first = (last - TAIL_SLOTS + 1).max(first);
            if tail_first > first {
                let len = tail_first - first;
                ranges.push(Range {
                    epoch,
                    first_slot: first,
                    len,
                    natural: natural(len),
                    minimum: minimum.min(len),
                    fixed: false,
                });
            }
            let len = last - tail_first + 1;
            ranges.push(Range {
                epoch,
                first_slot: tail_first,
                len,
                natural: natural(len),
                minimum: 1,
                fixed: true,
            });
        } else {
            let len = last - first + 1;
            ranges.push(Range {
                epoch,
                first_slot: first,
                len,
                natural: natural(len),
                minimum: minimum.min(len),
                fixed: false,
            });
        }
    }

    let counts = thin(&ranges, input.target_blocks);

    let mut segments = Vec::with_capacity(ranges.len());
    let mut epochs = vec![EpochBlocks::default(); (tip_epoch + 1) as usize];
    let mut next_id = input.first_block_id;
    let mut next_tx = input.first_tx_id;
    let mut next_no = input.first_block_no;
    for (range, regular) in ranges.iter().zip(counts) {
        let epoch = range.epoch;
        let byron = epoch < p.shelley_start_epoch;
        let (major, minor) = net.protocol_at(epoch);
        let pools = input
            .pools_before_epoch
            .get(epoch as usize)
            .copied()
            .unwrap_or(0);
        // Byron blocks were made by the genesis delegates; so were Shelley's first blocks
        // until pools registered (the decentralisation parameter started at 1).
        let (leader_base, leader_count) = if byron || pools == 0 {
            (input.leader_base, BYRON_DELEGATES)
        } else {
            (input.leader_base + BYRON_DELEGATES, pools)
        };
        let segment = Segment {
            epoch,
            epoch_first_slot: p.epoch_first_slot(epoch),
            first_slot: range.first_slot,
            len: range.len,
            regular,
            ebb: byron && range.first_slot == p.epoch_first_slot(epoch),
            first_id: next_id,
            first_block_no: next_no,
            txs_per_block: txs_per_block(major, byron),
            first_tx_id: next_tx,
            major,
            minor,
            first_slot_unix: p.slot_time(range.first_slot),
            slot_seconds: net.slot_seconds(epoch),
            leader_base,
            leader_count,
        };
        let e = &mut epochs[epoch as usize];
        if e.blocks == 0 {
            *e = EpochBlocks {
                epoch,
                first_block_id: segment.block_id(0),
                blocks: 0,
                first_tx_id: segment.first_tx_id,
                txs: 0,
            };
        }
        e.blocks += segment.regular;
        e.txs += segment.txs();
        next_id += segment.rows();
        next_tx += segment.txs();
        next_no += segment.regular;
        segments.push(segment);
    }
    Layout {
        segments,
        epochs,
        tip_epoch,
        until_slot,
    }
}

/// Transactions per block by era: none in Byron (keeps it cheap), then more as usage grew.
fn txs_per_block(major: i32, byron: bool) -> i64 {
    match major {
        _ if byron => 0,
        ..=4 => 1,
        5..=6 => 2,
        _ => 3,
    }
}

/// Blocks per range: natural, or scaled by one factor (found by bisection) so the total is
/// close to `target`, each range at least its minimum and at most one block per slot.
fn thin(ranges: &[Range], target: Option<u64>) -> Vec<i64> {
    let count = |f: f64| -> Vec<i64> {
        ranges
            .iter()
            .map(|r| {
                if r.fixed {
                    r.natural
                } else {
                    ((r.natural as f64 * f).round() as i64)
                        .max(r.minimum)
                        .min(r.len)
                }
            })
            .collect()
    };
    let Some(target) = target else {
        return count(1.0);
    };
    let target = target as i64;
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    if count(hi).iter().sum::<i64>() <= target {
        return count(hi);
    }
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if count(mid).iter().sum::<i64>() > target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    count(lo)
}

/// The slot of regular block `j` of `s`, exactly as the SQL in `load` computes it; `id` is
/// the block id (the jitter's seed). Used by tests and the fault planner.
pub fn slot_of(s: &Segment, j: i64) -> i64 {
    let id = s.block_id(j);
    let lo = j * s.len / s.regular;
    let hi = (j + 1) * s.len / s.regular;
    s.first_slot + lo + jitter(id) % (hi - lo).max(1)
}

/// Deterministic per-id spread (Knuth's multiplicative hash modulo a prime); mirrored in SQL.
pub fn jitter(id: i64) -> i64 {
    (id.wrapping_mul(2_654_435_761)).rem_euclid(4_294_967_291)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mainnet_layout(target: Option<u64>, until: i64) -> Layout {
        let net = Network::known("mainnet").unwrap();
        let pools: Vec<i64> = (0..800).map(|e| if e > 210 { 50 } else { 0 }).collect();
        layout(&LayoutInput {
            network: &net,
            target_blocks: target,
            until_unix: until,
            first_block_id: 2,
            first_tx_id: 1,
            first_block_no: 1,
            leader_base: 2,
            pools_before_epoch: &pools,
        })
    }

    #[test]
    fn natural_mainnet_is_about_fourteen_and_a_half_million_blocks() {
        // 2026-11-26
        let l = mainnet_layout(None, 1_795_668_222);
        assert_eq!(l.tip_epoch, 670);
        let blocks = l.blocks();
        assert!((14_300_000..14_700_000).contains(&blocks), "{blocks}");
        assert!((18_000_000..26_000_000).contains(&l.txs()), "{}", l.txs());
    }

    #[test]
    fn small_keeps_every_epoch_and_a_fresh_tip() {
        let until = 1_795_668_222;
        let l = mainnet_layout(Some(50_000), until);
        let blocks = l.blocks();
        assert!((45_000..55_000).contains(&blocks), "{blocks}");
        assert!(l.epochs.iter().all(|e| e.blocks >= 1));
        assert!(l.epochs[208..].iter().all(|e| e.blocks >= 8 && e.txs >= 8));
        let last = l.segments.last().unwrap();
        let tip_slot = slot_of(last, last.regular - 1);
        assert!(tip_slot <= l.until_slot);
        assert!(l.until_slot - tip_slot < 2 * SHELLEY_SLOTS_PER_BLOCK);
        // Slots strictly increase across the whole chain.
        let mut prev = -1;
        for s in &l.segments {
            for j in 0..s.regular {
                let slot = slot_of(s, j);
                assert!(slot > prev);
                assert!(slot >= s.first_slot && slot < s.first_slot + s.len);
                prev = slot;
            }
        }
    }
}
