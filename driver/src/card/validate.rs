//! Checks of everything the card writes into host memory, before any of it is used
//! (datasheet §10.4: a broken or hostile card). A completion that fails is not trusted: it
//! is counted under a [`BadCompletion`] reason and its packet reported as unverified (TX)
//! or dropped (RX).

use espo_fpga::Status;
use espo_fpga::desc::{NO_SA_INDEX, rx_cpl, tx_cpl};

use super::ring::WordField;
use super::sa_track::{SaDirection, SaTrack};

/// Why a completion, admin completion or event written by the card was not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadCompletion {
    /// It names a descriptor or buffer other than the one due in its ring position.
    DescIndex,
    /// A status code this driver does not know.
    UnknownStatus,
    /// A known status that cannot happen for this ring or this kind of descriptor.
    WrongStatus,
    /// An SA index other than the one posted, outside the table, or not a programmed SA of
    /// the right direction.
    SaIndex,
    /// A length beyond the buffer, or inconsistent with the frame length or the flags.
    Length,
    /// A sequence number impossible for the status or the SA.
    Sequence,
    /// Flags inconsistent with the status (a decapsulated packet without its SPI, …).
    Flags,
    /// An admin completion for a command that is not outstanding.
    AdminCid,
    /// An admin completion whose result disagrees with the data it returned.
    AdminResult,
    /// An event with a code this driver does not know.
    EventCode,
    /// An event naming an SA or queue that does not exist.
    EventIndex,
}

impl BadCompletion {
    /// Every reason, in counter order.
    pub const ALL: [BadCompletion; 11] = [
        BadCompletion::DescIndex,
        BadCompletion::UnknownStatus,
        BadCompletion::WrongStatus,
        BadCompletion::SaIndex,
        BadCompletion::Length,
        BadCompletion::Sequence,
        BadCompletion::Flags,
        BadCompletion::AdminCid,
        BadCompletion::AdminResult,
        BadCompletion::EventCode,
        BadCompletion::EventIndex,
    ];

    /// A short name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            BadCompletion::DescIndex => "desc-index",
            BadCompletion::UnknownStatus => "unknown-status",
            BadCompletion::WrongStatus => "wrong-status",
            BadCompletion::SaIndex => "sa-index",
            BadCompletion::Length => "length",
            BadCompletion::Sequence => "sequence",
            BadCompletion::Flags => "flags",
            BadCompletion::AdminCid => "admin-cid",
            BadCompletion::AdminResult => "admin-result",
            BadCompletion::EventCode => "event-code",
            BadCompletion::EventIndex => "event-index",
        }
    }
}

/// Count of untrusted completions per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BadCompletionCounts([u64; BadCompletion::ALL.len()]);

impl BadCompletionCounts {
    pub(crate) fn add(&mut self, reason: BadCompletion) {
        if let Some(n) = self.0.get_mut(reason as usize) {
            *n += 1;
        }
    }

    /// How many were refused for `reason`.
    pub fn get(&self, reason: BadCompletion) -> u64 {
        self.0.get(reason as usize).copied().unwrap_or(0)
    }

    /// How many were refused in all.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (BadCompletion, u64)> + '_ {
        BadCompletion::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

pub(crate) const TX_SEQ: WordField = WordField::of(tx_cpl::SEQ);
pub(crate) const TX_SA_INDEX: WordField = WordField::of(tx_cpl::SA_INDEX);
pub(crate) const TX_DESC_INDEX: WordField = WordField::of(tx_cpl::DESC_INDEX);
pub(crate) const TX_STATUS: WordField = WordField::of(tx_cpl::STATUS);

pub(crate) const RX_SEQ: WordField = WordField::of(rx_cpl::SEQ);
pub(crate) const RX_SA_INDEX: WordField = WordField::of(rx_cpl::SA_INDEX);
pub(crate) const RX_SPI: WordField = WordField::of(rx_cpl::SPI);
pub(crate) const RX_LEN: WordField = WordField::of(rx_cpl::LEN);
pub(crate) const RX_DESC_INDEX: WordField = WordField::of(rx_cpl::DESC_INDEX);
pub(crate) const RX_STATUS: WordField = WordField::of(rx_cpl::STATUS);
pub(crate) const RX_DECAPSULATED: WordField = WordField::of(rx_cpl::DECAPSULATED);
pub(crate) const RX_INNER_IPV6: WordField = WordField::of(rx_cpl::INNER_IPV6);
pub(crate) const RX_UDP_ENCAP: WordField = WordField::of(rx_cpl::UDP_ENCAP);
pub(crate) const RX_TRUNCATED: WordField = WordField::of(rx_cpl::TRUNCATED);
pub(crate) const RX_WIRE_LEN: WordField = WordField::of(rx_cpl::WIRE_LEN);

/// What the host posted in a TX slot.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TxPosted {
    pub tag: u64,
    /// The SA to encapsulate with; `None`: bypass.
    pub sa: Option<u32>,
    /// The buffer the frame is in.
    pub buf: u32,
    /// The buffer was lent to the caller (goes back to it on completion).
    pub lent: bool,
}

/// A TX completion that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxChecked {
    pub status: Status,
    /// The sequence number used (OK, ENGINE_ERROR), `None` otherwise.
    pub seq: Option<u64>,
}

/// Checks TX completion `words` found at free-running index `index` against what was posted
/// there (datasheet §7.4: one completion per descriptor, in order).
#[inline]
pub(crate) fn check_tx(
    words: &[u64; 2],
    index: u32,
    posted: &TxPosted,
    sas: &SaTrack,
) -> Result<TxChecked, BadCompletion> {
    if TX_DESC_INDEX.get(words) != u64::from(index as u16) {
        return Err(BadCompletion::DescIndex);
    }
    let status = Status::from_value(TX_STATUS.get(words) as u8);
    let seq = TX_SEQ.get(words);
    let sa_field = TX_SA_INDEX.get(words) as u32;
    if sa_field != posted.sa.unwrap_or(0) {
        return Err(BadCompletion::SaIndex);
    }
    let uses_seq = match (status, posted.sa) {
        (Status::Unknown(_), _) => return Err(BadCompletion::UnknownStatus),
        (Status::Bypass | Status::Malformed, None) => false,
        (Status::Ok | Status::EngineError, Some(_)) => true,
        (
            Status::Malformed
            | Status::SaInvalid
            | Status::SaExpired
            | Status::SeqExhausted
            | Status::TooBig,
            Some(_),
        ) => false,
        _ => return Err(BadCompletion::WrongStatus),
    };
    match posted.sa {
        Some(sa) if uses_seq => {
            if !sas.seq_possible(sa, seq) {
                return Err(BadCompletion::Sequence);
            }
            Ok(TxChecked {
                status,
                seq: Some(seq),
            })
        }
        _ if seq != 0 => Err(BadCompletion::Sequence),
        _ => Ok(TxChecked { status, seq: None }),
    }
}

/// An RX completion that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RxChecked {
    pub status: Status,
    pub len: usize,
    pub sa_index: Option<u32>,
    pub spi: u32,
    pub seq: u64,
    pub decapsulated: bool,
    pub inner_ipv6: bool,
    pub udp_encap: bool,
    pub truncated: bool,
    pub wire_len: u16,
}

/// Checks RX completion `words` found at free-running index `index` (datasheet §7.5: one
/// completion per frame, in order, naming the buffer taken at the same index).
#[inline]
pub(crate) fn check_rx(
    words: &[u64; 4],
    index: u32,
    buf_bytes: usize,
    max_frame: u32,
    sas: &SaTrack,
) -> Result<RxChecked, BadCompletion> {
    if RX_DESC_INDEX.get(words) != u64::from(index as u16) {
        return Err(BadCompletion::DescIndex);
    }
    let c = RxChecked {
        status: Status::from_value(RX_STATUS.get(words) as u8),
        len: RX_LEN.get(words) as usize,
        sa_index: match RX_SA_INDEX.get(words) as u32 {
            NO_SA_INDEX => None,
            i => Some(i),
        },
        spi: RX_SPI.get(words) as u32,
        seq: RX_SEQ.get(words),
        decapsulated: RX_DECAPSULATED.is_set(words),
        inner_ipv6: RX_INNER_IPV6.is_set(words),
        udp_encap: RX_UDP_ENCAP.is_set(words),
        truncated: RX_TRUNCATED.is_set(words),
        wire_len: RX_WIRE_LEN.get(words) as u16,
    };
    match c.status {
        Status::Unknown(_) => return Err(BadCompletion::UnknownStatus),
        Status::Ok if c.decapsulated && !c.truncated => {}
        Status::TooBig if c.decapsulated && c.truncated => {}
        Status::Bypass
        | Status::NoSa
        | Status::IcvFail
        | Status::Replay
        | Status::Malformed
        | Status::SaExpired
        | Status::EngineError
        | Status::EcnDrop
        | Status::Stale
            if !c.decapsulated => {}
        Status::Ok
        | Status::Bypass
        | Status::NoSa
        | Status::IcvFail
        | Status::Replay
        | Status::Malformed
        | Status::SaExpired
        | Status::EngineError
        | Status::EcnDrop
        | Status::Stale
        | Status::TooBig => return Err(BadCompletion::Flags),
        _ => return Err(BadCompletion::WrongStatus),
    }
    let wire_len = usize::from(c.wire_len);
    if c.len > buf_bytes
        || c.len > wire_len
        || wire_len > max_frame as usize
        || (c.truncated && c.len != buf_bytes)
        || (!c.truncated && !c.decapsulated && c.len != wire_len)
    {
        return Err(BadCompletion::Length);
    }
    if c.decapsulated {
        let inbound = c
            .sa_index
            .is_some_and(|i| sas.last_direction(i) == Some(SaDirection::Inbound));
        if !inbound {
            return Err(BadCompletion::SaIndex);
        }
        if c.spi == 0 {
            return Err(BadCompletion::Flags);
        }
        if !c.sa_index.is_some_and(|i| sas.rx_seq_possible(i, c.seq)) {
            return Err(BadCompletion::Sequence);
        }
    } else if c.sa_index.is_some_and(|i| i >= sas.table_size()) {
        return Err(BadCompletion::SaIndex);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_fpga::{RxCompletion, SaEntry, TxCompletion};
    use proptest::prelude::*;

    fn words<const W: usize>(bytes: &[u8]) -> [u64; W] {
        let mut w = [0u64; W];
        for (i, word) in w.iter_mut().enumerate() {
            let mut le = [0u8; 8];
            le.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            *word = u64::from_le_bytes(le);
        }
        w
    }

    fn sas() -> SaTrack {
        let mut t = SaTrack::new(16);
        let out = SaEntry {
            outbound: true,
            seq: 0,
            ..SaEntry::default()
        };
        t.written(2, &out, None);
        t.written(5, &SaEntry::default(), None);
        t
    }

    fn tx(c: TxCompletion) -> [u64; 2] {
        words(&c.encode())
    }

    #[test]
    fn tx_completions_must_match_what_was_posted() {
        let t = sas();
        let ok = TxCompletion {
            seq: 1,
            sa_index: 2,
            desc_index: 7,
            status: Status::Ok,
            phase: true,
        };
        let posted = TxPosted {
            tag: 1,
            sa: Some(2),
            ..TxPosted::default()
        };
        assert_eq!(
            check_tx(&tx(ok), 7, &posted, &t),
            Ok(TxChecked {
                status: Status::Ok,
                seq: Some(1)
            })
        );
        // The 16-bit index wraps with the free-running one.
        let wrapped = TxCompletion {
            desc_index: 3,
            ..ok
        };
        assert!(check_tx(&tx(wrapped), 0x1_0003, &posted, &t).is_ok());
        let cases = [
            (
                TxCompletion {
                    desc_index: 8,
                    ..ok
                },
                BadCompletion::DescIndex,
            ),
            (TxCompletion { sa_index: 3, ..ok }, BadCompletion::SaIndex),
            (
                TxCompletion {
                    status: Status::Unknown(99),
                    ..ok
                },
                BadCompletion::UnknownStatus,
            ),
            (
                TxCompletion {
                    status: Status::Bypass,
                    ..ok
                },
                BadCompletion::WrongStatus,
            ),
            (
                TxCompletion {
                    status: Status::Replay,
                    ..ok
                },
                BadCompletion::WrongStatus,
            ),
            (TxCompletion { seq: 0, ..ok }, BadCompletion::Sequence),
            (TxCompletion { seq: 1 << 32, ..ok }, BadCompletion::Sequence),
            (
                TxCompletion {
                    status: Status::SaExpired,
                    ..ok
                },
                BadCompletion::Sequence,
            ),
        ];
        for (c, reason) in cases {
            assert_eq!(check_tx(&tx(c), 7, &posted, &t), Err(reason), "{c:?}");
        }
        let bypass = TxPosted {
            tag: 1,
            sa: None,
            ..TxPosted::default()
        };
        let sent = TxCompletion {
            seq: 0,
            sa_index: 0,
            status: Status::Bypass,
            ..ok
        };
        assert!(check_tx(&tx(sent), 7, &bypass, &t).is_ok());
        let claims_encap = TxCompletion {
            status: Status::Ok,
            ..sent
        };
        assert_eq!(
            check_tx(&tx(claims_encap), 7, &bypass, &t),
            Err(BadCompletion::WrongStatus)
        );
    }

    fn rx_ok() -> RxCompletion {
        RxCompletion {
            seq: 9,
            sa_index: 5,
            spi: 0x100,
            len: 100,
            desc_index: 4,
            status: Status::Ok,
            decapsulated: true,
            inner_ipv6: false,
            udp_encap: false,
            truncated: false,
            wire_len: 160,
            phase: true,
        }
    }

    #[test]
    fn rx_completions_are_checked_field_by_field() {
        let t = sas();
        let check = |c: RxCompletion| check_rx(&words(&c.encode()), 4, 2048, 9216, &t);
        let ok = rx_ok();
        let got = check(ok).unwrap();
        assert_eq!((got.len, got.sa_index, got.seq), (100, Some(5), 9));
        let bypass = RxCompletion {
            seq: 0,
            sa_index: NO_SA_INDEX,
            spi: 0,
            len: 160,
            status: Status::Bypass,
            decapsulated: false,
            ..ok
        };
        assert_eq!(check(bypass).unwrap().sa_index, None);
        // Every verdict a frame delivered as received can carry (§7.5), STALE included.
        for status in [
            Status::NoSa,
            Status::IcvFail,
            Status::Replay,
            Status::Stale,
            Status::Malformed,
            Status::SaExpired,
            Status::EngineError,
            Status::EcnDrop,
        ] {
            let verdict = RxCompletion {
                status,
                sa_index: 5,
                spi: 0x100,
                seq: 3,
                ..bypass
            };
            assert!(check(verdict).is_ok(), "{status:?}");
            let decapsulated = RxCompletion {
                decapsulated: true,
                ..verdict
            };
            assert_eq!(
                check(decapsulated).err(),
                Some(BadCompletion::Flags),
                "{status:?}"
            );
        }
        let truncated = RxCompletion {
            len: 2048,
            wire_len: 3000,
            truncated: true,
            ..bypass
        };
        assert!(check(truncated).is_ok());
        let cases = [
            (
                RxCompletion {
                    desc_index: 5,
                    ..ok
                },
                BadCompletion::DescIndex,
            ),
            (
                RxCompletion {
                    status: Status::Unknown(77),
                    ..ok
                },
                BadCompletion::UnknownStatus,
            ),
            (
                RxCompletion {
                    status: Status::InvalidOpcode,
                    ..ok
                },
                BadCompletion::WrongStatus,
            ),
            (
                RxCompletion {
                    decapsulated: false,
                    ..ok
                },
                BadCompletion::Flags,
            ),
            (
                RxCompletion {
                    decapsulated: true,
                    ..bypass
                },
                BadCompletion::Flags,
            ),
            (RxCompletion { len: 161, ..ok }, BadCompletion::Length),
            (
                RxCompletion {
                    len: 3000,
                    wire_len: 3000,
                    ..bypass
                },
                BadCompletion::Length,
            ),
            (RxCompletion { len: 150, ..bypass }, BadCompletion::Length),
            (
                RxCompletion {
                    wire_len: 60_000,
                    ..ok
                },
                BadCompletion::Length,
            ),
            (RxCompletion { sa_index: 2, ..ok }, BadCompletion::SaIndex),
            (RxCompletion { sa_index: 6, ..ok }, BadCompletion::SaIndex),
            (
                RxCompletion {
                    sa_index: 99,
                    ..bypass
                },
                BadCompletion::SaIndex,
            ),
            (RxCompletion { spi: 0, ..ok }, BadCompletion::Flags),
            (
                RxCompletion {
                    status: Status::TooBig,
                    ..ok
                },
                BadCompletion::Flags,
            ),
            (
                RxCompletion {
                    status: Status::TooBig,
                    truncated: true,
                    len: 2048,
                    wire_len: 3000,
                    ..bypass
                },
                BadCompletion::Flags,
            ),
            (RxCompletion { seq: 0, ..ok }, BadCompletion::Sequence),
            (RxCompletion { seq: 1 << 40, ..ok }, BadCompletion::Sequence),
        ];
        for (c, reason) in cases {
            assert_eq!(check(c), Err(reason), "{c:?}");
        }
    }

    #[test]
    fn counts_add_up_per_reason() {
        let mut n = BadCompletionCounts::default();
        n.add(BadCompletion::Length);
        n.add(BadCompletion::Length);
        n.add(BadCompletion::EventIndex);
        assert_eq!(n.get(BadCompletion::Length), 2);
        assert_eq!(n.total(), 3);
        assert_eq!(
            n.nonzero().collect::<Vec<_>>(),
            vec![(BadCompletion::Length, 2), (BadCompletion::EventIndex, 1)]
        );
    }

    proptest! {
        /// Whatever a card writes, checking it never panics, and what passes is within
        /// the bounds the driver relies on.
        #[test]
        fn arbitrary_completions_never_escape_their_bounds(
            tx_words in any::<[u64; 2]>(),
            rx_words in any::<[u64; 4]>(),
            index in any::<u32>(),
            buf_bytes in 64usize..4096,
            sa in proptest::option::of(0u32..16),
        ) {
            let t = sas();
            let posted = TxPosted {
                tag: 0,
                sa,
                ..TxPosted::default()
            };
            if let Ok(c) = check_tx(&tx_words, index, &posted, &t) {
                prop_assert_eq!(TX_DESC_INDEX.get(&tx_words), u64::from(index as u16));
                prop_assert_eq!(c.seq.is_some(), matches!(c.status, Status::Ok | Status::EngineError));
            }
            if let Ok(c) = check_rx(&rx_words, index, buf_bytes, 9216, &t) {
                prop_assert!(c.len <= buf_bytes);
                prop_assert!(c.len <= usize::from(c.wire_len));
                if c.decapsulated {
                    prop_assert_eq!(c.sa_index, Some(5));
                }
            }
        }
    }
}
