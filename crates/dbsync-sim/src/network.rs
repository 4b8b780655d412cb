//! The public networks as the simulator needs them: the slot clock of each (the genesis
//! constants and arithmetic of [`crate::slots`]) plus the protocol version of every epoch.

use crate::slots::SlotClock;
use crate::SimError;

/// A protocol version change: from `epoch` on, blocks carry `major.minor` of `era`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolStep {
    /// First epoch of this version.
    pub epoch: i64,
    /// Ledger era name.
    pub era: &'static str,
    /// `protocol_major`.
    pub major: i32,
    /// `protocol_minor`.
    pub minor: i32,
}

const fn step(epoch: i64, era: &'static str, major: i32, minor: i32) -> ProtocolStep {
    ProtocolStep {
        epoch,
        era,
        major,
        minor,
    }
}

/// mainnet: the hard forks and intra-era bumps as enacted (Byron reboot/OBFT at 176, Shelley
/// 208, Allegra 236, Mary 251, Alonzo 290 and 6.0 at 298, Babbage/Vasil 365 and
/// Valentine 8.0 at 394, Conway/Chang 507, Plomin 10.0 at 537, and the intra-Conway
/// van Rossem 11.0 at 644 on 2026-07-18 — cardano-foundation/cardano-org#736, which matches
/// epoch 644's start date).
const MAINNET: &[ProtocolStep] = &[
    step(0, "byron", 0, 0),
    step(176, "byron", 1, 0),
    step(208, "shelley", 2, 0),
    step(236, "allegra", 3, 0),
    step(251, "mary", 4, 0),
    step(290, "alonzo", 5, 0),
    step(298, "alonzo", 6, 0),
    step(365, "babbage", 7, 0),
    step(394, "babbage", 8, 0),
    step(507, "conway", 9, 0),
    step(537, "conway", 10, 0),
    step(644, "conway", 11, 0),
];

/// preprod: APPROXIMATE. Shelley at 4 is exact (genesis); the later epochs are from memory
/// of the testnet's history (it forked through Allegra, Mary and Alonzo one epoch apart, then
/// Babbage at 12, Valentine around 33, Chang around 163 and Plomin around 180) and may be off
/// by a few epochs; van Rossem (11.0) is placed three weeks before mainnet's. Nothing in the
/// exporter depends on them; they only make the shape right.
const PREPROD: &[ProtocolStep] = &[
    step(0, "byron", 1, 0),
    step(4, "shelley", 2, 0),
    step(5, "allegra", 3, 0),
    step(6, "mary", 4, 0),
    step(7, "alonzo", 5, 0),
    step(8, "alonzo", 6, 0),
    step(12, "babbage", 7, 0),
    step(33, "babbage", 8, 0),
    step(163, "conway", 9, 0),
    step(180, "conway", 10, 0),
    step(297, "conway", 11, 0),
];

/// preview: APPROXIMATE. It started in Alonzo (every earlier era forked at epoch 0, so no
/// Byron blocks); Babbage at 3 is from memory, Valentine, Chang and Plomin are placed a few
/// weeks before mainnet's (preview leads mainnet hard forks by at least four weeks).
const PREVIEW: &[ProtocolStep] = &[
    step(0, "alonzo", 6, 0),
    step(3, "babbage", 7, 0),
    step(64, "babbage", 8, 0),
    step(646, "conway", 9, 0),
    step(735, "conway", 10, 0),
    step(1334, "conway", 11, 0),
];

/// A network: name, slot clock and protocol history.
#[derive(Clone, Debug)]
pub struct Network {
    /// The network name as db-sync records it in `meta.network_name`.
    name: &'static str,
    /// Genesis constants and slot/epoch/time arithmetic.
    pub clock: SlotClock,
    /// Protocol versions, oldest first; the first step is at epoch 0.
    pub steps: &'static [ProtocolStep],
}

impl Network {
    /// mainnet, preprod or preview.
    pub fn known(name: &str) -> Result<Network, SimError> {
        let (name, steps) = match name {
            "mainnet" => ("mainnet", MAINNET),
            "preprod" => ("preprod", PREPROD),
            "preview" => ("preview", PREVIEW),
            other => {
                return Err(SimError::Invalid(format!(
                    "unknown network {other:?} (expected mainnet, preprod or preview)"
                )))
            }
        };
        let clock = SlotClock::known(name)
            .ok_or_else(|| SimError::Invalid(format!("no genesis constants for {name}")))?;
        Ok(Network { name, clock, steps })
    }

    /// The network name (`meta.network_name`).
    pub fn name(&self) -> &str {
        self.name
    }

    /// The protocol step in force in `epoch`.
    pub fn step_at(&self, epoch: i64) -> ProtocolStep {
        self.steps
            .iter()
            .rev()
            .find(|s| s.epoch <= epoch)
            .copied()
            .unwrap_or(self.steps[0])
    }

    /// `(major, minor)` in `epoch`.
    pub fn protocol_at(&self, epoch: i64) -> (i32, i32) {
        let s = self.step_at(epoch);
        (s.major, s.minor)
    }

    /// First epoch whose protocol major is at least `major` (e.g. 5 = Alonzo, 9 = Conway).
    pub fn first_epoch_with_major(&self, major: i32) -> Option<i64> {
        self.steps
            .iter()
            .find(|s| s.major >= major)
            .map(|s| s.epoch)
    }

    /// First epoch of the Shelley-based eras (the first with `ada_pots`, rewards, pools).
    pub fn shelley_start_epoch(&self) -> i64 {
        self.clock.shelley_start_epoch
    }

    /// First Conway epoch: no MIR certificates from here on.
    pub fn conway_start_epoch(&self) -> i64 {
        self.first_epoch_with_major(9).unwrap_or(i64::MAX)
    }

    /// Whether several MIR certificates to one credential in `epoch` add up (Alonzo on) or
    /// the last one replaces the earlier ones (before protocol 5).
    pub fn mir_sums_in(&self, epoch: i64) -> bool {
        self.protocol_at(epoch).0 >= 5
    }

    /// Seconds per slot in `epoch` (Byron 20, then 1).
    pub fn slot_seconds(&self, epoch: i64) -> i64 {
        self.clock.slot_seconds(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_eras() {
        let n = Network::known("mainnet").unwrap();
        assert_eq!(n.protocol_at(0), (0, 0));
        assert_eq!(n.protocol_at(207), (1, 0));
        assert_eq!(n.protocol_at(208), (2, 0));
        assert_eq!(n.protocol_at(297), (5, 0));
        assert_eq!(n.protocol_at(298), (6, 0));
        assert_eq!(n.protocol_at(506), (8, 0));
        assert_eq!(n.protocol_at(507), (9, 0));
        assert_eq!(n.protocol_at(643), (10, 0));
        assert_eq!(n.protocol_at(700), (11, 0));
        assert_eq!(n.conway_start_epoch(), 507);
        assert!(!n.mir_sums_in(289));
        assert!(n.mir_sums_in(290));
    }

    #[test]
    fn every_network_starts_at_epoch_zero() {
        for name in ["mainnet", "preprod", "preview"] {
            let n = Network::known(name).unwrap();
            assert_eq!(n.steps[0].epoch, 0);
            assert!(n.steps.windows(2).all(|w| w[0].epoch < w[1].epoch));
            // The protocol history's Shelley start agrees with the slot clock's.
            let first_shelley = n.steps.iter().find(|s| s.major >= 2).unwrap().epoch;
            assert_eq!(first_shelley, n.shelley_start_epoch(), "{name}");
        }
        assert!(Network::known("sanchonet").is_err());
    }
}
