//! Explicit Congestion Notification across the tunnel (RFC 6040) and DSCP handling.
//!
//! Encapsulation uses RFC 6040's normal mode: the outer header takes the inner ECN field
//! unchanged (CE included), so congestion marked before the tunnel stays visible. The DSCP
//! is copied from inner to outer (the uniform model of RFC 2983), which is what a gateway
//! that does not re-mark traffic should do.
//!
//! Decapsulation combines inner and outer ECN with the table of RFC 6040 §4.2. One
//! combination is invalid — outer CE over a Not-ECT inner packet — and the packet must be
//! dropped: the sender cannot react to congestion it never asked to be told of.

/// The two-bit ECN codepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecn {
    NotEct = 0b00,
    Ect1 = 0b01,
    Ect0 = 0b10,
    Ce = 0b11,
}

impl Ecn {
    /// The codepoint of the low two bits of a TOS / traffic-class byte.
    pub fn from_bits(bits: u8) -> Ecn {
        match bits & 0b11 {
            0b00 => Ecn::NotEct,
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// The outer TOS / traffic-class byte for an inner one: DSCP and ECN copied (normal mode).
pub fn encap_tos(inner_tos: u8) -> u8 {
    inner_tos
}

/// The inner ECN codepoint after decapsulation (RFC 6040 §4.2), or `None` when the
/// combination means the packet must be dropped.
pub fn decap_ecn(inner: Ecn, outer: Ecn) -> Option<Ecn> {
    match (inner, outer) {
        (Ecn::NotEct, Ecn::Ce) => None,
        (Ecn::NotEct, _) => Some(Ecn::NotEct),
        (_, Ecn::Ce) => Some(Ecn::Ce),
        (Ecn::Ect0, Ecn::Ect1) => Some(Ecn::Ect1),
        (inner, _) => Some(inner),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// RFC 6040 Figure 4, row by row: inner codepoint, then the result for an outer of
    /// Not-ECT, ECT(0), ECT(1), CE. `None` is "drop".
    #[test]
    fn decapsulation_follows_rfc6040_figure_4() {
        use Ecn::*;
        let table = [
            (NotEct, [Some(NotEct), Some(NotEct), Some(NotEct), None]),
            (Ect0, [Some(Ect0), Some(Ect0), Some(Ect1), Some(Ce)]),
            (Ect1, [Some(Ect1), Some(Ect1), Some(Ect1), Some(Ce)]),
            (Ce, [Some(Ce), Some(Ce), Some(Ce), Some(Ce)]),
        ];
        for (inner, row) in table {
            for (outer, want) in [NotEct, Ect0, Ect1, Ce].into_iter().zip(row) {
                assert_eq!(
                    decap_ecn(inner, outer),
                    want,
                    "inner {inner:?} outer {outer:?}"
                );
            }
        }
    }

    #[test]
    fn encapsulation_copies_dscp_and_ecn() {
        for tos in 0..=255u8 {
            assert_eq!(encap_tos(tos), tos);
            assert_eq!(Ecn::from_bits(tos).bits(), tos & 3);
        }
    }
}
