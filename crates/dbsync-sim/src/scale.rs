//! What a scale means in rows. `mainnet` is the network's natural block density (about
//! 14.5 M blocks for mainnet in late 2026) with mainnet-sized ledger tables; `small` and `N`
//! thin blocks out per epoch (every epoch still exists) and shrink the ledger tables in
//! proportion, with floors so that every kind of row still occurs.

use std::fmt;
use std::str::FromStr;

/// How big a history to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// About 50 000 blocks: seconds to generate (CI, the demo).
    Small,
    /// The network's natural density and mainnet-sized ledger tables.
    Mainnet,
    /// About this many blocks (at least one per epoch plus a recent natural-density hour).
    Blocks(u64),
}

/// Blocks of `--scale small`.
pub const SMALL_BLOCKS: u64 = 50_000;

/// Mainnet's block count in late 2026, the reference the ledger sizes scale against.
const MAINNET_BLOCKS: f64 = 14_500_000.0;

/// Row-count knobs derived from a [`Scale`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizes {
    /// Target block count; `None` = the network's natural density.
    pub blocks: Option<u64>,
    /// Stake addresses (≈ 160 epoch_stake rows each over mainnet's history).
    pub stake_addresses: u64,
    /// Pools ever registered.
    pub pools: u64,
    /// Credentials paid by one MIR certificate.
    pub mir_credentials: u64,
    /// Credentials paid by one enacted Conway treasury withdrawal epoch.
    pub withdrawal_credentials: u64,
    /// DReps registered by the tip in Conway (their deposits appear in
    /// `ada_pots.deposits_drep`).
    pub dreps: u64,
}

impl Scale {
    /// The row-count knobs of this scale.
    pub fn sizes(self) -> Sizes {
        // Mainnet figures: 160 k stake addresses give ≈ 30 M epoch_stake rows over ~460
        // Shelley epochs (the registered set grows linearly, 85 % delegate); 3 500 pools;
        // MIR certificates of 300 credentials in ~60 epochs give tens of thousands of
        // reserve/treasury rows.
        let ratio = match self {
            Scale::Mainnet => 1.0,
            Scale::Small => SMALL_BLOCKS as f64 / MAINNET_BLOCKS,
            Scale::Blocks(n) => (n as f64 / MAINNET_BLOCKS).min(1.0),
        };
        let scaled = |full: f64, floor: u64| ((full * ratio).round() as u64).max(floor);
        Sizes {
            blocks: match self {
                Scale::Mainnet => None,
                Scale::Small => Some(SMALL_BLOCKS),
                Scale::Blocks(n) => Some(n),
            },
            stake_addresses: scaled(160_000.0, 600),
            pools: scaled(3_500.0, 40),
            mir_credentials: scaled(300.0, 4),
            withdrawal_credentials: scaled(40.0, 2),
            dreps: scaled(1_000.0, 10),
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scale::Small => f.write_str("small"),
            Scale::Mainnet => f.write_str("mainnet"),
            Scale::Blocks(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Scale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "small" => Ok(Scale::Small),
            "mainnet" => Ok(Scale::Mainnet),
            n => n
                .replace('_', "")
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Scale::Blocks)
                .ok_or_else(|| format!("`{s}` is not a scale (small, mainnet or a block count)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("small".parse(), Ok(Scale::Small));
        assert_eq!("mainnet".parse(), Ok(Scale::Mainnet));
        assert_eq!("20_000".parse(), Ok(Scale::Blocks(20_000)));
        assert!("0".parse::<Scale>().is_err());
        assert!("huge".parse::<Scale>().is_err());
    }

    #[test]
    fn floors_keep_every_kind_of_row() {
        let s = Scale::Blocks(1_000).sizes();
        assert_eq!(s.pools, 40);
        assert_eq!(s.stake_addresses, 600);
        assert_eq!(Scale::Mainnet.sizes().blocks, None);
    }
}
