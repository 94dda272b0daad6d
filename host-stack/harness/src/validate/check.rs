//! The comparisons: frames on the wire, outbound reports against the reference, inbound
//! reports against the reference's verdicts, and the final accounting of every packet.

use super::run::{Expected, Harness};
use super::traffic::{Kind, identity};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::{Decapsulated, Encapsulated};
use espo_ipsec::wire::{IpProtocol, ip};
use espo_offload::{Path, Received, RxReport, SentAs, TxReport};

/// Reports looked ahead for the frame they belong to.
const LOOKAHEAD: usize = 4096;

/// FNV-1a, to tell two packets with the same sequence number apart.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Harness {
    pub(super) fn mismatch(&mut self, what: String) {
        self.report.mismatches += 1;
        if self.report.examples.len() < 10 {
            self.report.examples.push(what);
        }
    }

    fn faults_happened(&self) -> bool {
        !self.report.faults_injected.is_empty()
    }

    fn kind_of(&self, spi: u32) -> Option<Kind> {
        self.out
            .iter()
            .chain(self.inb.iter())
            .find(|t| t.spi == spi || (t.kind == Kind::Bundle && t.spi + 1 == spi))
            .map(|t| t.kind)
    }

    /// A frame the engine sent: readable by the peer, the packet that was submitted, and
    /// its (SPI, sequence number) never used for other bytes.
    pub(super) fn on_wire(&mut self, frame: Vec<u8>) {
        let Some(ip) = frame.get(14..) else {
            self.mismatch(format!("a {}-byte runt on the wire", frame.len()));
            return;
        };
        let mut buf = ip.to_vec();
        let id = match self.peer_rx.inbound.decapsulate(&mut buf) {
            Ok(Decapsulated::Inner { range, spi, seq }) => {
                let inner = buf.get(range).unwrap_or(&[]);
                let Some(id) = identity(inner) else {
                    self.mismatch(format!(
                        "sa {spi:#x} seq {seq}: no identity in the inner packet"
                    ));
                    return;
                };
                let same = self
                    .sent
                    .get(&u64::from(id))
                    .is_some_and(|s| trim_ip(s) == inner);
                if !same {
                    self.mismatch(format!(
                        "sa {spi:#x} seq {seq}: the packet decrypts to something never sent as {id}"
                    ));
                }
                if self.kind_of(spi).is_some_and(|k| k != Kind::Ah) {
                    let d = digest(ip);
                    match self.nonces.get(&(spi, seq)) {
                        Some(&other) if other != d => {
                            self.report.nonces_reused += 1;
                            if self.report.examples.len() < 10 {
                                self.report
                                    .examples
                                    .push(format!("sa {spi:#x}: sequence number {seq} sent twice with different bytes"));
                            }
                        }
                        Some(_) => {}
                        None => {
                            self.nonces.insert((spi, seq), d);
                        }
                    }
                }
                id
            }
            Ok(Decapsulated::Bypass) => match identity(ip) {
                Some(id) => id,
                None => {
                    self.mismatch("a bypass frame without identity".into());
                    return;
                }
            },
            other => {
                self.mismatch(format!(
                    "a {}-byte frame on the wire the peer cannot read: {other:?}",
                    ip.len()
                ));
                return;
            }
        };
        self.wire
            .entry(u64::from(id))
            .or_default()
            .push(ip.to_vec());
    }

    /// One outbound report against the reference.
    pub(super) fn on_tx_report(&mut self, r: TxReport) {
        if self.tx_outcome.insert(r.tag, r).is_some() {
            self.report.duplicated += 1;
            self.mismatch(format!("packet {}: reported twice", r.tag));
            return;
        }
        let Some(inner) = self.sent.get(&r.tag).cloned() else {
            self.mismatch(format!("a report for packet {}, never submitted", r.tag));
            return;
        };
        let mut out = vec![0u8; inner.len() + 512];
        match r.outcome {
            Ok(SentAs::Esp { spi, seq, path }) => {
                match path {
                    Path::Card => self.report.tx.card += 1,
                    Path::Software => self.report.tx.software += 1,
                }
                let Some(index) = self.reference.outbound.sa_index(spi) else {
                    self.mismatch(format!("packet {}: sent on unknown sa {spi:#x}", r.tag));
                    return;
                };
                let current = self.reference.outbound.sas()[index].seq();
                if seq <= current {
                    // The reference is past this number (a packet resent after a fault):
                    // its content was checked on the wire.
                    self.report.tx.content_compared += 1;
                    return;
                }
                if seq > current + 1 {
                    self.reference.outbound.sas_mut()[index].advance_seq_to(seq - 1);
                    self.report.tx.resynced += 1;
                }
                self.sync_outer_ah(r.tag);
                match self.reference.outbound.encapsulate(&inner, &mut out) {
                    Ok(Encapsulated::Protected {
                        len,
                        spi: s,
                        seq: q,
                    }) if (s, q) == (spi, seq) => {
                        if self.kind_of(spi) == Some(Kind::Cbc) {
                            self.report.tx.content_compared += 1;
                        } else if let Some(f) = self.wire.get(&r.tag).and_then(|w| w.first()) {
                            if f[..] == out[..len] {
                                self.report.tx.bytes_compared += 1;
                            } else {
                                let at = f.iter().zip(&out[..len]).position(|(a, b)| a != b);
                                self.mismatch(format!(
                                    "packet {} sa {spi:#x} seq {seq}: bytes differ from the reference (lengths {} / {len}, first difference at {at:?})",
                                    r.tag,
                                    f.len()
                                ));
                            }
                        }
                    }
                    other => {
                        if !(self.faults_happened()
                            && matches!(other, Err(DropReason::Expired | DropReason::SeqExhausted)))
                        {
                            self.mismatch(format!(
                                "packet {}: engine sent it on sa {spi:#x} seq {seq}, reference: {other:?}",
                                r.tag
                            ));
                        } else {
                            self.report.explained += 1;
                        }
                    }
                }
            }
            Ok(SentAs::Bypass) => {
                self.report.tx.bypass += 1;
                let reference = self.reference.outbound.encapsulate(&inner, &mut out);
                let on_wire = self.wire.get(&r.tag).and_then(|w| w.first());
                if reference != Ok(Encapsulated::Bypass)
                    || on_wire.is_some_and(|f| f[..] != *trim_ip(&inner))
                {
                    self.mismatch(format!(
                        "packet {}: bypassed; reference: {reference:?}",
                        r.tag
                    ));
                }
            }
            Ok(SentAs::Link) => {
                // validate submits packets only, never frames of its own.
                self.mismatch(format!("packet {}: reported as a link-layer frame", r.tag));
            }
            Err(reason) => {
                self.report.tx.dropped.count(reason);
                if matches!(reason, DropReason::DeviceError | DropReason::SaMoving) {
                    return;
                }
                match self.reference.outbound.encapsulate(&inner, &mut out) {
                    Err(theirs) if theirs == reason => {}
                    _ if self.faults_happened()
                        && matches!(reason, DropReason::Expired | DropReason::SeqExhausted) =>
                    {
                        // The card counted packets whose fate is unknown: the SA ended
                        // a little earlier than the reference's.
                        self.report.explained += 1;
                    }
                    other => self.mismatch(format!(
                        "packet {}: engine dropped it ({reason}), reference: {other:?}",
                        r.tag
                    )),
                }
            }
        }
    }

    /// A bundle's AH sequence number, like the ESP one, may have run ahead of the
    /// reference's: the reference follows what is on the wire.
    fn sync_outer_ah(&mut self, tag: u64) {
        let Some(outer) = self.wire.get(&tag).and_then(|w| w.first()) else {
            return;
        };
        let Ok(packet) = ip::Packet::new_checked(&outer[..]) else {
            return;
        };
        if packet.next_header() != IpProtocol::Ah {
            return;
        }
        let hl = packet.header_len();
        let Some(ah) = outer.get(hl..hl + 12) else {
            return;
        };
        let spi = u32::from_be_bytes([ah[4], ah[5], ah[6], ah[7]]);
        let seq = u64::from(u32::from_be_bytes([ah[8], ah[9], ah[10], ah[11]]));
        if let Some(i) = self.reference.outbound.sa_index(spi) {
            let sa = &mut self.reference.outbound.sas_mut()[i];
            if seq > sa.seq() + 1 {
                sa.advance_seq_to(seq - 1);
            }
        }
    }

    /// One inbound report, matched to its frame (frames come back in arrival order; one
    /// skipped was lost).
    pub(super) fn on_rx_report(&mut self, r: RxReport) {
        if let Err(reason) = &r.outcome {
            self.report.rx.dropped.count(*reason);
        }
        if r.spi_seq.is_none() && r.outcome == Err(DropReason::DeviceError) {
            // A frame the driver refused for its untrusted completion: it has no key.
            self.anonymous_drops += 1;
            return;
        }
        // Frames without an IPsec header have no key: a bypassed one is known by its bytes.
        let bypassed = match &r.outcome {
            Ok(Received::Bypass { packet }) => Some(packet),
            _ => None,
        };
        let Some(pos) = self
            .expected
            .iter()
            .take(LOOKAHEAD)
            .position(|e| e.key == r.spi_seq && bypassed.is_none_or(|p| *p == e.packet))
        else {
            self.report.duplicated += 1;
            self.mismatch(format!(
                "a report for a frame never injected: {:?}",
                r.spi_seq
            ));
            return;
        };
        for _ in 0..pos {
            if let Some(e) = self.expected.pop_front() {
                self.missing(e);
            }
        }
        let Some(e) = self.expected.pop_front() else {
            return;
        };
        self.compare(e, r);
    }

    fn compare(&mut self, e: Expected, r: RxReport) {
        if let Ok(Received::Inner {
            packet,
            path,
            spi,
            seq,
        }) = &r.outcome
        {
            match path {
                Path::Card => self.report.rx.delivered_card += 1,
                Path::Software => self.report.rx.delivered_software += 1,
            }
            let this = format!("sa {spi:#x} seq {seq} via {path:?} in round {}", self.round);
            // A replay the reference delivers too is one the SA accepts by configuration
            // (window 0); anything else delivered a second time is a duplicate.
            let reference_delivers = matches!(e.verdict, Ok(Decapsulated::Inner { .. }));
            if let Some(id) = identity(packet)
                && let Some(first) = self.delivered_ids.insert(id, this.clone())
                && !reference_delivers
            {
                self.report.duplicated += 1;
                self.mismatch(format!(
                    "inbound packet {id} delivered twice: {first}, then {this}"
                ));
            }
        }
        if let Ok(Received::Bypass { .. } | Received::Keepalive | Received::Ike { .. }) = &r.outcome
        {
            self.report.rx.bypassed += 1;
        }
        let agree = match (&e.verdict, &r.outcome) {
            (
                Ok(Decapsulated::Inner { spi, seq, .. }),
                Ok(Received::Inner {
                    packet,
                    spi: s,
                    seq: q,
                    ..
                }),
            ) => (spi, seq) == (s, q) && e.packet == *packet,
            (Ok(Decapsulated::Bypass), Ok(Received::Bypass { packet })) => e.packet == *packet,
            (Ok(Decapsulated::Keepalive), Ok(Received::Keepalive)) => true,
            (Ok(Decapsulated::Ike { src, dst, .. }), Ok(Received::Ike { src: s, dst: d, .. })) => {
                (src, dst) == (s, d)
            }
            (Err(a), Err(b)) => a == b,
            _ => false,
        };
        if agree {
            self.report.rx.agreed += 1;
            return;
        }
        if let Err(DropReason::DeviceError | DropReason::SaMoving) = r.outcome {
            // Dropped with a reason; if the reference took it, a later replay of it is the
            // engine's first copy.
            if let Some(k) = e.key {
                self.lost_keys.insert(k);
                self.lost_spis.insert(k.0);
            }
            return;
        }
        let explained = self.faults_happened()
            && match (&e.verdict, &r.outcome) {
                // The card accepted it, then lost it in the fault.
                (Ok(Decapsulated::Inner { .. }), Err(DropReason::Replayed | DropReason::Stale)) => {
                    e.key.is_some_and(|k| self.lost_keys.contains(&k))
                }
                _ => false,
            };
        let spi_lost = e.key.is_some_and(|(spi, _)| self.lost_spis.contains(&spi));
        let explained = explained
            || match (&e.verdict, &r.outcome) {
                // The first copy never reached the engine's window (lost in a faulted card,
                // or dropped as the SA moved): this is its first delivery.
                (Err(DropReason::Replayed), Ok(Received::Inner { .. })) => {
                    e.key.is_some_and(|k| self.lost_keys.contains(&k))
                }
                // The reference's window moved on with frames the engine never had.
                (Err(DropReason::Stale), Ok(Received::Inner { .. })) => spi_lost,
                // Both refuse it, for reasons that differ because the two windows differ
                // by frames the engine never had (ESN inference included: a window behind
                // infers another high half, so the ICV fails or the frame is fresh and
                // its ECN marking drops it).
                (Err(_), Err(_)) => spi_lost,
                _ => false,
            };
        if explained {
            self.report.explained += 1;
        } else {
            self.mismatch(format!(
                "inbound frame {:?} (round {}): engine {:?}, reference {:?}",
                e.key,
                e.round,
                r.outcome.as_ref().map(short),
                e.verdict
            ));
        }
    }

    /// A frame that produced no report.
    fn missing(&mut self, e: Expected) {
        let faulted = self.fault_rounds.contains(&e.round)
            || self.fault_rounds.contains(&(e.round.saturating_sub(1)))
            || self.fault_rounds.contains(&self.round);
        if faulted {
            self.report.rx.lost_in_faulted_card += 1;
            if let Some(k) = e.key {
                self.lost_keys.insert(k);
                self.lost_spis.insert(k.0);
            }
        } else if self.anonymous_drops > 0 {
            self.anonymous_drops -= 1;
        } else {
            self.report.lost += 1;
            if self.report.examples.len() < 10 {
                self.report.examples.push(format!(
                    "inbound frame {:?} (round {}) lost",
                    e.key, e.round
                ));
            }
        }
    }

    /// Frames of this round still without a report are missing.
    pub(super) fn settle_round(&mut self) {
        while self.expected.front().is_some_and(|e| e.round <= self.round) {
            if let Some(e) = self.expected.pop_front() {
                self.missing(e);
            }
        }
    }

    /// Every submitted packet: reported once, on the wire once if sent.
    pub(super) fn finish(&mut self) {
        self.settle_round();
        for tag in 1..self.next_tx {
            let seen = self.wire.get(&tag).map_or(0, Vec::len) as u64;
            let dup = seen.saturating_sub(1);
            self.report.duplicated += dup;
            match self.tx_outcome.get(&tag).map(|r| r.outcome) {
                None => {
                    self.report.lost += 1;
                    if self.report.examples.len() < 10 {
                        self.report
                            .examples
                            .push(format!("packet {tag}: never reported"));
                    }
                }
                Some(Ok(_)) if seen == 0 => {
                    self.report.lost += 1;
                    if self.report.examples.len() < 10 {
                        self.report
                            .examples
                            .push(format!("packet {tag}: reported sent, never on the wire"));
                    }
                }
                Some(Err(DropReason::DeviceError)) | Some(Ok(_)) => {}
                Some(Err(reason)) if seen > 0 => self.mismatch(format!(
                    "packet {tag}: reported dropped ({reason}) yet on the wire"
                )),
                Some(Err(_)) => {}
            }
        }
        for id in self.wire.keys() {
            if !self.sent.contains_key(id) {
                self.report.mismatches += 1;
            }
        }
        self.report.engine = self.sut.counters().clone();
        self.report.placements = self.sut.placements();
    }
}

/// What the engine delivered, without the packet bytes.
fn short(r: &Received) -> String {
    match r {
        Received::Inner {
            spi,
            seq,
            path,
            packet,
        } => {
            format!(
                "inner sa {spi:#x} seq {seq} via {path:?} ({} bytes)",
                packet.len()
            )
        }
        Received::Bypass { packet } => format!("bypass ({} bytes)", packet.len()),
        Received::Keepalive => "keepalive".into(),
        Received::Ike { message, .. } => format!("IKE message ({} bytes)", message.len()),
        Received::Link { frame } => format!("link-layer frame ({} bytes)", frame.len()),
        Received::Lent(p) => format!(
            "inner sa {:#x} seq {} via Card, in its buffer ({} bytes)",
            p.spi, p.seq, p.len
        ),
    }
}

/// An IP packet without link padding.
fn trim_ip(p: &[u8]) -> &[u8] {
    match ip::Packet::new_checked(p) {
        Ok(packet) => p.get(..packet.total_len()).unwrap_or(p),
        Err(_) => p,
    }
}
