//! Wire formats: zero-copy packet views and validated header representations.
//!
//! Every header comes in two layers. `Packet<T: AsRef<[u8]>>` is a view over a byte buffer
//! whose accessors read fields in place; `Packet::new_checked` validates the buffer once
//! (lengths, and the version where the header has one), after which no accessor can panic
//! or read out of bounds, whatever the bytes are. Setters exist for `T: AsMut<[u8]>`.
//! `Repr` is the validated, owned meaning of a header, with `parse` (view → repr),
//! `buffer_len` (how many header bytes `emit` writes) and `emit` (repr → view).
//!
//! Accessors read through the private `field` helpers, which never index out of bounds:
//! on a buffer shorter than `check_len` demands (reachable only through `new_unchecked`)
//! reads return zero and writes are dropped. Nothing in this module allocates.
//!
//! Every parser of untrusted bytes in espo lives here — Ethernet, ARP, IPv4 and IPv6 (with
//! [`ip`], one view over both), ICMP, ICMPv6 and neighbour discovery, UDP, ESP and AH —
//! and each has a fuzz target (`fuzz/`); the gateway and the engines decide what to do
//! with what these read.

mod field;

pub mod ah;
pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod flow;
pub mod icmp;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod udp;
pub mod udp_encap;

pub use flow::Flow;
pub use ip::{IpProtocol, Version};

/// Why a packet or header was rejected. Small and `Copy`, so that the packet path can feed
/// per-reason drop counters from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header, or before what a length field promises.
    #[error("packet truncated: buffer shorter than its header or length fields require")]
    Truncated,
    /// A length, offset or option encoding is inconsistent with itself.
    #[error("malformed header: inconsistent length, offset or option encoding")]
    Malformed,
    /// A header or transport checksum does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// The IP version nibble is not the one expected (or neither 4 nor 6).
    #[error("bad IP version")]
    BadVersion,
    /// Well-formed, but a feature espo does not process (fragments where a whole packet is
    /// required, a routing header with segments left, a third VLAN tag, ...).
    #[error("unsupported header feature")]
    Unsupported,
    /// ESP padding whose pad length does not fit or whose bytes are not 1, 2, 3, ...
    #[error("bad ESP padding")]
    BadPadding,
    /// An IPv6 extension-header chain longer than espo walks.
    #[error("too many IPv6 extension headers")]
    TooManyExtensionHeaders,
    /// The output buffer given to `emit` is smaller than `buffer_len`.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Which checksum work software does in one direction pair; the rest the hardware did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// Software verifies on receive and fills on transmit.
    #[default]
    Both,
    /// Software verifies on receive only.
    Rx,
    /// Software fills on transmit only.
    Tx,
    /// Hardware does both.
    None,
}

impl Checksum {
    /// Whether software verifies the checksum of received packets.
    pub fn rx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Rx)
    }

    /// Whether software computes the checksum of transmitted packets.
    pub fn tx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Tx)
    }
}

/// What the hardware already does with checksums, passed into `parse` and `emit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChecksumCaps {
    /// The IPv4 header checksum.
    pub ipv4: Checksum,
    /// The UDP checksum.
    pub udp: Checksum,
    /// The ICMP and ICMPv6 checksums.
    pub icmp: Checksum,
}

impl ChecksumCaps {
    /// Hardware verifies and fills every checksum; software does none.
    pub fn offloaded() -> Self {
        ChecksumCaps {
            ipv4: Checksum::None,
            udp: Checksum::None,
            icmp: Checksum::None,
        }
    }
}
