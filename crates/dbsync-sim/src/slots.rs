//! The simulator's own slot clock: each public network's genesis constants and the
//! slot ↔ time ↔ epoch arithmetic every generated block is stamped with.
//!
//! Written independently of the exporter's `chain` module on purpose: the simulator is the
//! ground truth the exporter's tests compare against, so it must not share (and therefore
//! hide) a mistake with it. Where the exporter counts forward from Byron genesis, this
//! module counts from the Shelley hard fork, the one instant both eras touch: later slots
//! are whole seconds after it, earlier ones whole 20 s steps before it. The unit tests pin
//! the result to published anchor points of each network, not to the exporter.

/// Byron slots are 20 s long (Byron genesis `slotDuration` 20000 ms) on every public network.
const BYRON_SLOT_SECONDS: i64 = 20;

/// Shelley genesis `slotLength` 1 s on every public network.
const SHELLEY_SLOT_SECONDS: i64 = 1;

/// A network's slot clock, anchored at its first Shelley-era slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotClock {
    /// Unix time of slot 0 (Byron genesis `startTime`; `meta.start_time` in db-sync).
    pub byron_start_unix: i64,
    /// Slots per Byron epoch: ten times the security parameter `k`.
    pub byron_epoch_slots: i64,
    /// The first epoch with 1 s slots (0 on a network that forked to Shelley at genesis).
    pub shelley_start_epoch: i64,
    /// The first slot of that epoch.
    pub shelley_start_slot: i64,
    /// Unix time at which that slot begins.
    pub shelley_start_unix: i64,
    /// Slots per epoch from Shelley on (Shelley genesis `epochLength`).
    pub epoch_slots: i64,
}

/// The two slot regimes: how long a slot is and how many make an epoch.
#[derive(Clone, Copy)]
struct Era {
    slot_seconds: i64,
    epoch_slots: i64,
}

impl SlotClock {
    /// The clock of mainnet, preprod or preview.
    pub fn known(name: &str) -> Option<SlotClock> {
        // (Byron startTime, k, first Shelley epoch, Shelley start, epochLength), as the
        // genesis files and the hard-fork announcements state them. The Shelley start is
        // written down rather than derived so that the tests can check it against Byron's
        // 20 s slots: two separately recorded facts that must agree.
        let (byron_start_unix, k, shelley_start_epoch, shelley_start_unix, epoch_slots) = match name
        {
            // Byron genesis 2017-09-23 21:44:51 UTC; Shelley 2020-07-29 21:44:51 UTC.
            "mainnet" => (1_506_203_091, 2_160, 208, 1_596_059_091, 432_000),
            // Byron genesis 2022-06-01 00:00:00 UTC; Shelley 2022-06-21 00:00:00 UTC.
            "preprod" => (1_654_041_600, 2_160, 4, 1_655_769_600, 432_000),
            // Every era forked at epoch 0 on 2022-10-25 00:00:00 UTC, so `k` (432) never
            // shaped a slot: there are no Byron slots.
            "preview" => (1_666_656_000, 432, 0, 1_666_656_000, 86_400),
            _ => return None,
        };
        let byron_epoch_slots = 10 * k;
        Some(SlotClock {
            byron_start_unix,
            byron_epoch_slots,
            shelley_start_epoch,
            shelley_start_slot: shelley_start_epoch * byron_epoch_slots,
            shelley_start_unix,
            epoch_slots,
        })
    }

    fn byron(&self) -> Era {
        Era {
            slot_seconds: BYRON_SLOT_SECONDS,
            epoch_slots: self.byron_epoch_slots,
        }
    }

    fn shelley(&self) -> Era {
        Era {
            slot_seconds: SHELLEY_SLOT_SECONDS,
            epoch_slots: self.epoch_slots,
        }
    }

    fn era_of_slot(&self, slot: i64) -> Era {
        if slot >= self.shelley_start_slot {
            self.shelley()
        } else {
            self.byron()
        }
    }

    fn era_of_epoch(&self, epoch: i64) -> Era {
        if epoch >= self.shelley_start_epoch {
            self.shelley()
        } else {
            self.byron()
        }
    }

    /// Unix time at which `slot` begins.
    pub fn slot_time(&self, slot: i64) -> i64 {
        // Negative offsets (Byron) step back from the anchor in 20 s slots.
        self.shelley_start_unix
            + (slot - self.shelley_start_slot) * self.era_of_slot(slot).slot_seconds
    }

    /// The slot in progress at `unix`: the last one that began at or before it (slot 0
    /// before genesis, which has no slot).
    pub fn slot_at(&self, unix: i64) -> i64 {
        if unix < self.byron_start_unix {
            return 0;
        }
        let since_anchor = unix - self.shelley_start_unix;
        let seconds = if since_anchor >= 0 {
            SHELLEY_SLOT_SECONDS
        } else {
            BYRON_SLOT_SECONDS
        };
        // Flooring division: 1 s before the anchor is still inside the last Byron slot.
        self.shelley_start_slot + since_anchor.div_euclid(seconds)
    }

    /// The epoch `slot` belongs to.
    pub fn epoch_of_slot(&self, slot: i64) -> i64 {
        let era = self.era_of_slot(slot);
        self.shelley_start_epoch + (slot - self.shelley_start_slot).div_euclid(era.epoch_slots)
    }

    /// The first slot of `epoch`.
    pub fn epoch_first_slot(&self, epoch: i64) -> i64 {
        let era = self.era_of_epoch(epoch);
        self.shelley_start_slot + (epoch - self.shelley_start_epoch) * era.epoch_slots
    }

    /// How many slots `epoch` has.
    pub fn epoch_length(&self, epoch: i64) -> i64 {
        self.era_of_epoch(epoch).epoch_slots
    }

    /// How many seconds each slot of `epoch` lasts (20 in Byron, 1 after).
    pub fn slot_seconds(&self, epoch: i64) -> i64 {
        self.era_of_epoch(epoch).slot_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::rfc3339;

    fn clock(name: &str) -> SlotClock {
        SlotClock::known(name).unwrap()
    }

    /// Both routes to the Shelley start agree: Byron genesis plus the Byron epochs' 20 s
    /// slots lands exactly on the recorded hard-fork instant.
    #[test]
    fn byron_slots_lead_to_the_recorded_shelley_start() {
        for name in ["mainnet", "preprod", "preview"] {
            let c = clock(name);
            assert_eq!(
                c.byron_start_unix + BYRON_SLOT_SECONDS * c.shelley_start_slot,
                c.shelley_start_unix,
                "{name}"
            );
        }
        assert_eq!(SlotClock::known("sanchonet"), None);
    }

    #[test]
    fn genesis_dates_are_the_published_ones() {
        let dates = |name| {
            let c = clock(name);
            (rfc3339(c.byron_start_unix), rfc3339(c.shelley_start_unix))
        };
        let both = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            dates("mainnet"),
            both("2017-09-23T21:44:51Z", "2020-07-29T21:44:51Z")
        );
        assert_eq!(
            dates("preprod"),
            both("2022-06-01T00:00:00Z", "2022-06-21T00:00:00Z")
        );
        assert_eq!(
            dates("preview"),
            both("2022-10-25T00:00:00Z", "2022-10-25T00:00:00Z")
        );
    }

    #[test]
    fn mainnet_shelley_hard_fork() {
        let m = clock("mainnet");
        // Epoch 208, the first Shelley epoch, begins at slot 4 492 800 at 1 596 059 091.
        assert_eq!(m.epoch_first_slot(208), 4_492_800);
        assert_eq!(m.slot_time(4_492_800), 1_596_059_091);
        assert_eq!(m.slot_at(1_596_059_091), 4_492_800);
        assert_eq!(m.epoch_of_slot(4_492_800), 208);
        // The last Byron slot: 20 s long, epoch 207.
        assert_eq!(m.slot_at(1_596_059_090), 4_492_799);
        assert_eq!(m.slot_at(1_596_059_091 - 20), 4_492_799);
        assert_eq!(m.slot_at(1_596_059_091 - 21), 4_492_798);
        assert_eq!(m.slot_time(4_492_799), 1_596_059_091 - 20);
        assert_eq!(m.epoch_of_slot(4_492_799), 207);
        assert_eq!(m.epoch_first_slot(207), 4_492_800 - 21_600);
        assert_eq!(m.epoch_length(207), 21_600);
        // Epoch 209 begins 432 000 slots later.
        assert_eq!(m.epoch_first_slot(209), 4_924_800);
        assert_eq!(m.epoch_of_slot(4_924_799), 208);
        assert_eq!(m.epoch_of_slot(4_924_800), 209);
        assert_eq!(m.epoch_length(208), 432_000);
    }

    #[test]
    fn mainnet_slot_is_unix_time_minus_a_constant_after_shelley() {
        let m = clock("mainnet");
        for unix in [1_596_059_091, 1_600_000_000, 1_700_000_000, 1_764_000_000] {
            assert_eq!(m.slot_at(unix), unix - 1_591_566_291, "{unix}");
            assert_eq!(m.slot_time(unix - 1_591_566_291), unix, "{unix}");
        }
    }

    /// Later hard forks, each announced for the start of an epoch at 21:44:51 UTC.
    #[test]
    fn mainnet_hard_fork_epochs_start_on_their_announced_days() {
        let m = clock("mainnet");
        let start = |epoch| rfc3339(m.slot_time(m.epoch_first_slot(epoch)));
        assert_eq!(start(290), "2021-09-12T21:44:51Z"); // Alonzo
        assert_eq!(start(507), "2024-09-01T21:44:51Z"); // Conway (Chang)
        assert_eq!(start(537), "2025-01-29T21:44:51Z"); // Plomin
    }

    #[test]
    fn byron_slots_are_twenty_seconds() {
        let m = clock("mainnet");
        assert_eq!(m.slot_time(0), 1_506_203_091);
        assert_eq!(m.slot_time(2), 1_506_203_091 + 40);
        assert_eq!(m.slot_at(1_506_203_091 + 40), 2);
        assert_eq!(m.slot_at(1_506_203_091 + 59), 2);
        assert_eq!(m.slot_at(1_506_203_091 + 60), 3);
        // Byron epochs are 21 600 slots, five days.
        assert_eq!(m.epoch_first_slot(1), 21_600);
        assert_eq!(m.slot_time(21_600), 1_506_203_091 + 5 * 86_400);
        assert_eq!(m.epoch_of_slot(21_599), 0);
        assert_eq!(m.epoch_of_slot(21_600), 1);
        assert_eq!(m.slot_seconds(207), 20);
        assert_eq!(m.slot_seconds(208), 1);
        // Before genesis there is no slot yet.
        assert_eq!(m.slot_at(1_506_203_090), 0);
        assert_eq!(m.slot_at(0), 0);
    }

    #[test]
    fn preprod_offsets() {
        let p = clock("preprod");
        assert_eq!(p.epoch_first_slot(4), 86_400);
        assert_eq!(p.slot_time(86_400), 1_655_769_600);
        assert_eq!(p.epoch_of_slot(86_399), 3);
        assert_eq!(p.epoch_of_slot(86_400), 4);
        assert_eq!(p.epoch_first_slot(5), 86_400 + 432_000);
        for unix in [1_655_769_600, 1_700_000_000, 1_764_000_000] {
            assert_eq!(p.slot_at(unix), unix - 1_655_683_200, "{unix}");
        }
        assert_eq!(p.slot_time(1), 1_654_041_600 + 20);
    }

    #[test]
    fn preview_has_no_byron_slots() {
        let p = clock("preview");
        for n in [0, 1, 3, 500, 1_334] {
            assert_eq!(p.epoch_first_slot(n), 86_400 * n, "{n}");
            assert_eq!(p.epoch_of_slot(86_400 * n), n, "{n}");
            assert_eq!(p.slot_seconds(n), 1);
        }
        assert_eq!(p.epoch_of_slot(86_400 * 3 + 5), 3);
        for unix in [1_666_656_000, 1_700_000_000, 1_764_000_000] {
            assert_eq!(p.slot_at(unix), unix - 1_666_656_000, "{unix}");
            assert_eq!(p.slot_time(unix - 1_666_656_000), unix, "{unix}");
        }
    }

    /// The functions are consistent with each other across both eras and the boundary:
    /// a slot's time maps back to it, and every slot lies inside its epoch.
    #[test]
    fn round_trips_around_the_boundary() {
        for name in ["mainnet", "preprod", "preview"] {
            let c = clock(name);
            let around = c.shelley_start_slot;
            let slots = ((around - 50_000).max(0)..around + 50_000).step_by(7);
            for slot in slots {
                let t = c.slot_time(slot);
                assert_eq!(c.slot_at(t), slot, "{name} {slot}");
                assert_eq!(c.slot_at(c.slot_time(slot + 1) - 1), slot, "{name} {slot}");
                let epoch = c.epoch_of_slot(slot);
                let first = c.epoch_first_slot(epoch);
                assert!(
                    (first..first + c.epoch_length(epoch)).contains(&slot),
                    "{name} {slot}"
                );
            }
        }
    }
}
