//! Network constants and slot arithmetic.
//!
//! Cardano's slot clock has two eras that matter for wall-clock arithmetic: Byron (20 s slots,
//! epochs of `10·k` slots) and everything from Shelley on (1 s slots, fixed-length epochs).
//! Knowing where a network switched lets the exporter say which slot the chain *should* be at
//! now, without asking a node. Values come from the networks' genesis files (see
//! `dbsync.md` §10 in the shared reference).

use std::fmt;

/// Byron slots last 20 seconds on every public network.
const BYRON_SLOT_SECONDS: i64 = 20;
/// Shelley-era slots last 1 second on every public network.
const SHELLEY_SLOT_SECONDS: i64 = 1;

/// The genesis facts needed to turn wall-clock time into slots and epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkParams {
    /// Network name as db-sync records it in `meta.network_name`.
    pub name: String,
    /// Unix time of slot 0 (Byron genesis `startTime`).
    pub byron_start_unix: i64,
    /// Slots per Byron epoch (`10·k`).
    pub byron_epoch_slots: i64,
    /// First epoch with 1 s slots (0 when the network started in Shelley).
    pub shelley_start_epoch: i64,
    /// Slots per epoch from Shelley on.
    pub epoch_slots: i64,
}

impl NetworkParams {
    /// Constants for the public networks db-sync knows by name.
    pub fn known(name: &str) -> Option<NetworkParams> {
        let (byron_start_unix, byron_epoch_slots, shelley_start_epoch, epoch_slots) = match name {
            "mainnet" => (1_506_203_091, 21_600, 208, 432_000),
            "preprod" => (1_654_041_600, 21_600, 4, 432_000),
            "preview" => (1_666_656_000, 4_320, 0, 86_400),
            _ => return None,
        };
        Some(NetworkParams {
            name: name.to_owned(),
            byron_start_unix,
            byron_epoch_slots,
            shelley_start_epoch,
            epoch_slots,
        })
    }

    /// The first slot with 1 s length.
    pub fn shelley_start_slot(&self) -> i64 {
        self.shelley_start_epoch * self.byron_epoch_slots
    }

    /// Unix time at which the first Shelley slot starts.
    pub fn shelley_start_unix(&self) -> i64 {
        self.byron_start_unix + BYRON_SLOT_SECONDS * self.shelley_start_slot()
    }

    /// The slot whose start is at or just before `unix` (0 before genesis).
    pub fn slot_at(&self, unix: i64) -> i64 {
        let shelley_unix = self.shelley_start_unix();
        if unix < self.byron_start_unix {
            0
        } else if unix < shelley_unix {
            (unix - self.byron_start_unix) / BYRON_SLOT_SECONDS
        } else {
            self.shelley_start_slot() + (unix - shelley_unix) / SHELLEY_SLOT_SECONDS
        }
    }

    /// Unix start time of `slot`.
    pub fn slot_time(&self, slot: i64) -> i64 {
        let shelley_slot = self.shelley_start_slot();
        if slot < shelley_slot {
            self.byron_start_unix + slot * BYRON_SLOT_SECONDS
        } else {
            self.shelley_start_unix() + (slot - shelley_slot) * SHELLEY_SLOT_SECONDS
        }
    }

    /// The epoch that contains `slot`.
    pub fn epoch_of_slot(&self, slot: i64) -> i64 {
        let shelley_slot = self.shelley_start_slot();
        if slot < shelley_slot {
            slot / self.byron_epoch_slots
        } else {
            self.shelley_start_epoch + (slot - shelley_slot) / self.epoch_slots
        }
    }

    /// First slot of `epoch`.
    pub fn epoch_first_slot(&self, epoch: i64) -> i64 {
        if epoch < self.shelley_start_epoch {
            epoch * self.byron_epoch_slots
        } else {
            self.shelley_start_slot() + (epoch - self.shelley_start_epoch) * self.epoch_slots
        }
    }

    /// Number of slots in `epoch`.
    pub fn epoch_length(&self, epoch: i64) -> i64 {
        if epoch < self.shelley_start_epoch {
            self.byron_epoch_slots
        } else {
            self.epoch_slots
        }
    }

    /// Slots between the first slot of `slot`'s epoch and `slot` (db-sync's `epoch_slot_no`).
    pub fn slot_in_epoch(&self, slot: i64) -> i64 {
        slot - self.epoch_first_slot(self.epoch_of_slot(slot))
    }

    /// How far `slot` is into its epoch, from 0 (first slot) towards 1.
    pub fn epoch_progress(&self, slot: i64) -> f64 {
        let epoch = self.epoch_of_slot(slot);
        let into = slot - self.epoch_first_slot(epoch);
        into as f64 / self.epoch_length(epoch) as f64
    }

    /// Share of the chain's wall-clock history that a tip at `tip_unix` covers at `now_unix`.
    ///
    /// Time-based on purpose: early epochs are nearly empty, so a block-count ratio would
    /// claim "almost synced" for a database that is years behind.
    pub fn sync_progress(&self, tip_unix: i64, now_unix: i64) -> f64 {
        let span = now_unix - self.byron_start_unix;
        if span <= 0 {
            return 1.0;
        }
        ((tip_unix - self.byron_start_unix) as f64 / span as f64).clamp(0.0, 1.0)
    }
}

impl fmt::Display for NetworkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (byron start {}, {} slots/byron epoch, shelley from epoch {}, {} slots/epoch)",
            self.name,
            self.byron_start_unix,
            self.byron_epoch_slots,
            self.shelley_start_epoch,
            self.epoch_slots
        )
    }
}

/// Whether one chain can be `blocks_ahead` blocks longer than another whose tip is
/// `slots_ahead` slots older: there is at most one block per slot, so a claim of more blocks
/// than slots cannot be true.
pub fn can_lead(blocks_ahead: i64, slots_ahead: i64) -> bool {
    blocks_ahead <= 0 || blocks_ahead <= slots_ahead
}

/// Formats unix seconds as an RFC 3339 UTC timestamp (`2024-01-02T03:04:05Z`).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_shelley_boundary_matches_genesis() {
        let mainnet = NetworkParams::known("mainnet").unwrap();
        assert_eq!(mainnet.shelley_start_slot(), 4_492_800);
        assert_eq!(mainnet.shelley_start_unix(), 1_596_059_091);
        // Reference: slot now = now - 1_591_566_291 after the Shelley start.
        let now = 1_764_000_000;
        assert_eq!(mainnet.slot_at(now), now - 1_591_566_291);
        assert_eq!(mainnet.epoch_of_slot(4_492_800), 208);
        assert_eq!(mainnet.epoch_of_slot(4_492_799), 207);
        assert_eq!(mainnet.epoch_first_slot(209), 4_924_800);
    }

    #[test]
    fn preprod_and_preview_offsets() {
        let preprod = NetworkParams::known("preprod").unwrap();
        assert_eq!(preprod.shelley_start_unix(), 1_655_769_600);
        assert_eq!(
            preprod.slot_at(1_700_000_000),
            1_700_000_000 - 1_655_683_200
        );
        let preview = NetworkParams::known("preview").unwrap();
        assert_eq!(
            preview.slot_at(1_700_000_000),
            1_700_000_000 - 1_666_656_000
        );
        assert_eq!(preview.epoch_of_slot(86_400 * 3 + 5), 3);
    }

    #[test]
    fn byron_slots_are_twenty_seconds() {
        let mainnet = NetworkParams::known("mainnet").unwrap();
        assert_eq!(mainnet.slot_at(1_506_203_091 + 45), 2);
        assert_eq!(mainnet.slot_time(2), 1_506_203_091 + 40);
        assert_eq!(
            mainnet.slot_time(mainnet.slot_at(1_700_000_000)),
            1_700_000_000
        );
    }

    #[test]
    fn progress_ratios() {
        let preview = NetworkParams::known("preview").unwrap();
        assert_eq!(preview.epoch_progress(86_400 + 21_600), 0.25);
        assert_eq!(
            preview.sync_progress(1_666_656_000 + 50, 1_666_656_000 + 100),
            0.5
        );
        assert_eq!(preview.sync_progress(2_000_000_000, 1_700_000_000), 1.0);
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_596_059_091), "2020-07-29T21:44:51Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
