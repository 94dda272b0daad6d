//! What the driver knows about each SA table entry without holding its keys: direction,
//! ESN, and the sequence-number bookkeeping that lets a caller move an SA off a card that
//! can no longer be read (DESIGN.md, "Sequence numbers, IVs, and moving an SA").

use espo_fpga::SaEntry;
use espo_fpga::SaState;

/// Direction of a programmed SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaDirection {
    /// Encapsulates (TX).
    Outbound,
    /// Decapsulates (RX).
    Inbound,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The direction while the entry is programmed.
    direction: Option<SaDirection>,
    /// The direction it was last programmed with: completions of packets the card
    /// processed just before an invalidation may still arrive after it.
    last_direction: Option<SaDirection>,
    esn: bool,
    /// Outbound: the last sequence number used when the SA was written.
    seq_base: u64,
    /// Outbound: the highest sequence number a completion reported (at least `seq_base`).
    seq_high: u64,
    /// Descriptors naming this SA that are submitted and not yet completed.
    in_flight: u64,
    /// Descriptors naming this SA whose completion failed validation or never came and
    /// which may therefore have used a sequence number the driver never saw.
    uncertain: u64,
    /// Inbound: the highest sequence number of a packet delivered as decapsulated.
    rx_seq_high: u64,
}

/// Per-SA bookkeeping, one slot per SA table entry.
pub(crate) struct SaTrack {
    slots: Vec<Slot>,
}

impl SaTrack {
    pub(crate) fn new(table_size: u32) -> Self {
        Self {
            slots: vec![Slot::default(); table_size as usize],
        }
    }

    pub(crate) fn table_size(&self) -> u32 {
        self.slots.len() as u32
    }

    /// An SA_WRITE succeeded.
    pub(crate) fn written(&mut self, index: u32, entry: &SaEntry, state: Option<&SaState>) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            let seq = state.map_or(entry.seq, |st| st.seq);
            let direction = if entry.outbound {
                SaDirection::Outbound
            } else {
                SaDirection::Inbound
            };
            *s = Slot {
                direction: Some(direction),
                last_direction: Some(direction),
                esn: entry.esn,
                seq_base: seq,
                seq_high: seq,
                in_flight: s.in_flight,
                uncertain: 0,
                rx_seq_high: if entry.outbound { 0 } else { seq },
            };
        }
    }

    /// The entry was invalidated. What is known about its sequence numbers is kept: packets
    /// it processed before may still complete.
    pub(crate) fn invalidated(&mut self, index: u32) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            s.direction = None;
        }
    }

    /// The card was reset: its table is empty and nothing is in flight.
    pub(crate) fn card_reset(&mut self) {
        self.slots.fill(Slot::default());
    }

    /// The direction of the entry while it is programmed.
    pub(crate) fn direction(&self, index: u32) -> Option<SaDirection> {
        self.slots.get(index as usize).and_then(|s| s.direction)
    }

    /// The direction the entry was last programmed with (kept after an invalidation until
    /// the entry is written again or the card resets).
    pub(crate) fn last_direction(&self, index: u32) -> Option<SaDirection> {
        self.slots
            .get(index as usize)
            .and_then(|s| s.last_direction)
    }

    /// Whether a sequence number is possible for the outbound SA (non-zero, above the base
    /// it was written with, within 32 bits without ESN).
    #[inline]
    pub(crate) fn seq_possible(&self, index: u32, seq: u64) -> bool {
        self.slots.get(index as usize).is_some_and(|s| {
            s.last_direction == Some(SaDirection::Outbound)
                && seq != 0
                && seq > s.seq_base
                && (s.esn || seq <= u64::from(u32::MAX))
        })
    }

    /// Whether an inbound sequence number is possible (non-zero, 32 bits without ESN).
    #[inline]
    pub(crate) fn rx_seq_possible(&self, index: u32, seq: u64) -> bool {
        self.slots
            .get(index as usize)
            .is_some_and(|s| seq != 0 && (s.esn || seq <= u64::from(u32::MAX)))
    }

    #[inline]
    pub(crate) fn submitted(&mut self, index: u32) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            s.in_flight += 1;
        }
    }

    /// A descriptor naming the SA completed; `seq` is the number it used, if any.
    #[inline]
    pub(crate) fn completed(&mut self, index: u32, seq: Option<u64>) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            s.in_flight = s.in_flight.saturating_sub(1);
            if let Some(seq) = seq {
                s.seq_high = s.seq_high.max(seq);
            }
        }
    }

    /// A descriptor naming the SA completed without a trustworthy completion, or was
    /// abandoned by recovery: it may have used a sequence number.
    pub(crate) fn unaccounted(&mut self, index: u32) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.uncertain = s.uncertain.saturating_add(1);
        }
    }

    #[inline]
    pub(crate) fn delivered(&mut self, index: u32, seq: u64) {
        if let Some(s) = self.slots.get_mut(index as usize) {
            s.rx_seq_high = s.rx_seq_high.max(seq);
        }
    }

    /// Outbound: no sequence number above this has been used by the card for this SA,
    /// counting every descriptor still in flight or unaccounted for as one number each.
    pub(crate) fn seq_upper_bound(&self, index: u32) -> Option<u64> {
        let s = self.slots.get(index as usize)?;
        (s.last_direction == Some(SaDirection::Outbound)).then(|| {
            s.seq_high
                .saturating_add(s.in_flight)
                .saturating_add(s.uncertain)
        })
    }

    /// Inbound: the highest sequence number delivered as decapsulated (or imported).
    pub(crate) fn rx_seq_high(&self, index: u32) -> Option<u64> {
        let s = self.slots.get(index as usize)?;
        (s.last_direction == Some(SaDirection::Inbound)).then_some(s.rx_seq_high)
    }

    /// Indices of every programmed SA.
    pub(crate) fn programmed(&self) -> impl Iterator<Item = (u32, SaDirection)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.direction.map(|d| (i as u32, d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(seq: u64, esn: bool) -> SaEntry {
        SaEntry {
            outbound: true,
            seq,
            esn,
            ..SaEntry::default()
        }
    }

    #[test]
    fn bound_counts_every_number_that_may_have_been_used() {
        let mut t = SaTrack::new(8);
        t.written(3, &outbound(100, false), None);
        assert_eq!(t.seq_upper_bound(3), Some(100));
        for _ in 0..5 {
            t.submitted(3);
        }
        assert_eq!(t.seq_upper_bound(3), Some(105));
        t.completed(3, Some(101));
        t.completed(3, None); // refused: used no number
        assert_eq!(t.seq_upper_bound(3), Some(104));
        t.unaccounted(3);
        assert_eq!(t.seq_upper_bound(3), Some(104), "still counted");
        t.completed(3, Some(103));
        assert_eq!(t.seq_upper_bound(3), Some(103 + 1 + 1));
        assert_eq!(t.seq_upper_bound(4), None, "not programmed");
        t.invalidated(3);
        assert_eq!(t.direction(3), None);
        assert_eq!(t.seq_upper_bound(3), Some(105), "kept after invalidation");
    }

    #[test]
    fn possible_sequence_numbers() {
        let mut t = SaTrack::new(4);
        t.written(0, &outbound(10, false), None);
        t.written(1, &outbound(10, true), None);
        assert!(!t.seq_possible(0, 10));
        assert!(t.seq_possible(0, 11));
        assert!(!t.seq_possible(0, 1 << 32));
        assert!(t.seq_possible(1, 1 << 32));
        assert!(!t.seq_possible(2, 11), "not programmed");
        assert!(!t.seq_possible(9, 11), "outside the table");
        let state = SaState {
            seq: 500,
            ..SaState::default()
        };
        t.written(0, &outbound(10, false), Some(&state));
        assert!(!t.seq_possible(0, 500) && t.seq_possible(0, 501));
    }
}
