//! Whether a peer's tip can be true: its slot is not in the future of its network's wall
//! clock, and it is not more blocks ahead of our tip than slots (at most one block per slot).

use super::{PeerTip, MAX_FUTURE_SECONDS};
use crate::chain::{can_lead, NetworkParams};
use crate::checks::Tip;

/// Why `peer` cannot be telling the truth, judged against the wall clock at `now_unix` and
/// our own tip; `None` when it can.
pub(super) fn implausible(peer: &PeerTip, own: Option<&Tip>, now_unix: i64) -> Option<String> {
    let Some(slot) = peer.slot_no else {
        return Some("its /tip has no slot_no, so it cannot be checked".into());
    };
    let own = own.filter(|own| own.network == peer.network);
    let params = match own {
        Some(own) => own.params.clone(),
        None => peer.network.as_deref().and_then(NetworkParams::known),
    };
    if let Some(params) = params {
        let ahead = params.slot_time(slot) - now_unix;
        if ahead > MAX_FUTURE_SECONDS {
            return Some(format!(
                "its tip slot {slot} is {ahead} s ahead of the wall clock (at most {MAX_FUTURE_SECONDS} s)"
            ));
        }
    }
    let own = own?;
    let blocks_ahead = peer.block_no.saturating_sub(own.block_no);
    let slots_ahead = slot.saturating_sub(own.slot_no);
    (!can_lead(blocks_ahead, slots_ahead)).then(|| {
        format!(
            "it claims {blocks_ahead} blocks ahead of our tip in {slots_ahead} slots (at most one block per slot)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 00:00:00 UTC.
    const NOW: i64 = 1_796_169_600;

    fn own(block_no: i64, slot_no: i64) -> Tip {
        Tip {
            id: block_no,
            block_no,
            slot_no,
            epoch_no: 0,
            hash: "00".into(),
            time_unix: 0,
            network: Some("mainnet".into()),
            params: NetworkParams::known("mainnet"),
        }
    }

    fn claim(block_no: i64, slot_no: Option<i64>) -> PeerTip {
        PeerTip {
            network: Some("mainnet".into()),
            block_no,
            slot_no,
        }
    }

    #[test]
    fn honest_tips_are_believed() {
        let slot = NetworkParams::known("mainnet").unwrap().slot_at(NOW);
        let us = own(12_000_000, slot - 100);
        assert_eq!(
            implausible(&claim(12_000_004, Some(slot)), Some(&us), NOW),
            None
        );
        assert_eq!(
            implausible(&claim(11_999_000, Some(slot - 9000)), Some(&us), NOW),
            None
        );
        // Exactly one block per slot is possible; slightly ahead of our clock too.
        assert_eq!(
            implausible(&claim(12_000_100, Some(slot)), Some(&us), NOW),
            None
        );
        assert_eq!(
            implausible(&claim(12_000_010, Some(slot + 120)), Some(&us), NOW),
            None
        );
        // Without our own tip only the clock can be checked.
        assert_eq!(
            implausible(&claim(999_999_999, Some(slot)), None, NOW),
            None
        );
    }

    #[test]
    fn impossible_tips_are_refused_with_the_reason() {
        let slot = NetworkParams::known("mainnet").unwrap().slot_at(NOW);
        let us = own(12_000_000, slot - 100);
        assert_eq!(
            implausible(&claim(999_999_999, Some(slot)), Some(&us), NOW).as_deref(),
            Some("it claims 987999999 blocks ahead of our tip in 100 slots (at most one block per slot)")
        );
        assert_eq!(
            implausible(&claim(12_000_101, Some(slot)), Some(&us), NOW).as_deref(),
            Some("it claims 101 blocks ahead of our tip in 100 slots (at most one block per slot)")
        );
        assert_eq!(
            implausible(&claim(12_000_005, Some(slot + 121)), Some(&us), NOW).as_deref(),
            Some(&*format!(
                "its tip slot {} is 121 s ahead of the wall clock (at most 120 s)",
                slot + 121
            ))
        );
        // The clock applies to a known network even before we have a tip of our own.
        assert!(implausible(&claim(1, Some(slot + 3600)), None, NOW).is_some());
        assert_eq!(
            implausible(&claim(12_000_001, None), Some(&us), NOW).as_deref(),
            Some("its /tip has no slot_no, so it cannot be checked")
        );
    }
}
