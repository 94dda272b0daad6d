//! The inbound path: frames from the card's port (or the fallback wire), one report each.
//!
//! A frame the card decapsulated belongs to one of its SAs: the host does the RFC 4301
//! §5.2 check of the inner packet against the inbound policy and delivers it. A frame the
//! card did not decapsulate is either for software — not ESP (`BYPASS`), ESP of no card SA
//! (`NO_SA`), or too malformed for the card to find an SA — and goes to the software engine,
//! or carries the card's verdict on one of its SAs (`ICV_FAIL`, `REPLAY`, ...), counted
//! under the matching drop reason.
//!
//! For an inbound SA on the card, the host keeps the last word on replays: every number it
//! accepted for the SA is marked in the SA's `shadow` window, and a packet the card
//! delivers is checked there before it is delivered. ESP of such an SA that the card
//! passed on because of outer IPv6 extension headers is decapsulated by software against
//! the same window, so whichever path meets a number second refuses it.

use std::io;
use std::os::fd::BorrowedFd;

use espo_driver::card::{RxLent, RxPacket};
use espo_fpga::Status;
use espo_ipsec::spec::Direction;

use super::frame::HeadWords;
use super::{CardMode, LentPacket, OffloadEngine, Path, Placement, Received, RxReport};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::Decapsulated;
use espo_ipsec::replay::ReplayError;
use espo_ipsec::wire::flow::HEAD_LEN;
use espo_ipsec::wire::{Flow, ethernet};

impl OffloadEngine {
    /// Takes received frames from the card, or from the fallback wire without a card.
    pub(super) fn receive(&mut self) {
        if self.mode == CardMode::Gone {
            self.receive_from_wire();
            return;
        }
        if self.options.lend_rx {
            self.receive_lent();
            return;
        }
        let mut batch = std::mem::take(&mut self.rx_batch);
        // Bounded: at most a few batches per poll, so TX gets its turn.
        for _ in 0..8 {
            let Some(card) = self.card.as_mut() else {
                break;
            };
            let untrusted_before = datapath_untrusted(card);
            let result = card.rx_batch(self.options.queue, &mut batch);
            let untrusted = datapath_untrusted(card).saturating_sub(untrusted_before);
            let n = match result {
                Ok(n) => n,
                Err(e) => {
                    self.untrusted_frames(untrusted);
                    self.card_failed(&e);
                    break;
                }
            };
            for p in batch.iter().take(n) {
                self.on_rx(p);
            }
            self.untrusted_frames(untrusted);
            if n < batch.len() {
                break;
            }
        }
        self.rx_batch = batch;
    }

    /// [`receive`](Self::receive) without copying the inner packets the card delivers.
    fn receive_lent(&mut self) {
        let mut batch = std::mem::take(&mut self.rx_lent);
        for _ in 0..8 {
            let Some(card) = self.card.as_mut() else {
                break;
            };
            let untrusted_before = datapath_untrusted(card);
            batch.clear();
            let result = card.rx_lend(self.options.queue, &mut batch, 32);
            let untrusted = datapath_untrusted(card).saturating_sub(untrusted_before);
            for l in &batch {
                self.on_rx_lent(l);
            }
            self.untrusted_frames(untrusted);
            match result {
                Ok(32) => {}
                Ok(_) => break,
                Err(e) => {
                    self.card_failed(&e);
                    break;
                }
            }
        }
        batch.clear();
        self.rx_lent = batch;
    }

    /// One frame the card lent: an inner packet it decapsulated stays where it is; any
    /// other frame is copied out and its buffer given back.
    fn on_rx_lent(&mut self, l: &RxLent) {
        let i = &l.info;
        if i.decapsulated && i.status == espo_fpga::Status::Ok && !i.truncated {
            // Reported there when delivered; here when refused.
            if let Err(reason) = self.card_delivered_lent(l) {
                if let Some(card) = self.card.as_mut() {
                    let _ = card.rx_return(l.buf);
                }
                self.rx_report(Some((i.spi, i.seq as u32)), Err(reason));
            }
            return;
        }
        let mut p = std::mem::take(&mut self.rx_copy);
        p.data.clear();
        p.data.resize(l.len, 0);
        let read = match self.card.as_mut() {
            Some(card) => {
                let read = card.rx_buf_read(l.buf, 0, &mut p.data);
                let _ = card.rx_return(l.buf);
                read.is_ok()
            }
            None => false,
        };
        if read {
            p.set_info(i);
            self.on_rx(&p);
        } else {
            self.rx_report(None, Err(DropReason::DeviceError));
        }
        self.rx_copy = p;
    }

    /// [`card_delivered`](Self::card_delivered) for a packet left in its buffer: the policy
    /// check reads its first bytes, copied into host memory once. A packet delivered is
    /// reported here, its report made where it is queued; a refused one is the caller's.
    fn card_delivered_lent(&mut self, l: &RxLent) -> Result<(), DropReason> {
        let inner_len = l.len.checked_sub(14).ok_or(DropReason::Malformed)?;
        let mut head = [0u8; HEAD_LEN];
        let head_len = inner_len.min(HEAD_LEN);
        let card = self.card.as_ref().ok_or(DropReason::DeviceError)?;
        card.rx_buf_read(l.buf, 14, &mut head[..head_len])
            .map_err(|_| DropReason::DeviceError)?;
        let h = HeadWords::of_packet(&head);
        let (flow, kept) = match self.rx_kept.flow(&h, inner_len) {
            Some(flow) => (Ok(flow), true),
            None => match Flow::parse_head(&head[..head_len], inner_len) {
                Ok(flow) => (Ok(flow), self.rx_kept.note(&h, inner_len, &flow)),
                parsed => (parsed, false),
            },
        };
        let flow = match flow {
            Err(_) if head_len < inner_len => {
                // The selectors lie past the head (long IPv6 extension headers): this one
                // is copied out whole, and delivered as such.
                let mut whole = vec![0u8; inner_len];
                card.rx_buf_read(l.buf, 14, &mut whole)
                    .map_err(|_| DropReason::DeviceError)?;
                let flow = Flow::parse(&whole);
                let i = &l.info;
                self.card_accept(i.sa_index, i.spi, i.seq, flow, inner_len, false)?;
                let _ = self.card.as_mut().map(|c| c.rx_return(l.buf));
                let received = Received::Inner {
                    packet: whole,
                    spi: i.spi,
                    seq: i.seq,
                    path: Path::Card,
                };
                self.rx_report(Some((i.spi, i.seq as u32)), Ok(received));
                return Ok(());
            }
            parsed => parsed,
        };
        let i = &l.info;
        self.card_accept(i.sa_index, i.spi, i.seq, flow, inner_len, kept)?;
        self.counters.rx_card += 1;
        self.rx_reports.push(RxReport {
            outcome: Ok(Received::Lent(LentPacket {
                head,
                head_len,
                buf: l.buf,
                len: inner_len,
                spi: i.spi,
                seq: i.seq,
            })),
            spi_seq: Some((i.spi, i.seq as u32)),
        });
        Ok(())
    }

    /// Writes a lent packet to `fd` with one `writev(2)`: `prefix` (a virtio-net header,
    /// at most 64 bytes), its checked first bytes, then the rest straight from the card's
    /// buffer. Returns the bytes written.
    pub fn write_lent(
        &self,
        p: &LentPacket,
        fd: BorrowedFd<'_>,
        prefix: &[u8],
    ) -> io::Result<usize> {
        let mut head = [0u8; 64 + HEAD_LEN];
        let n = prefix.len() + p.head_len;
        let at = head.get_mut(..n).ok_or(io::ErrorKind::InvalidInput)?;
        at[..prefix.len()].copy_from_slice(prefix);
        at[prefix.len()..].copy_from_slice(p.head());
        let rest = p.len - p.head_len;
        match (&self.card, self.rescued_rx.get(&p.buf)) {
            (Some(card), _) => card.rx_buf_write_to(p.buf, fd, &head[..n], 14 + p.head_len, rest),
            // The card went while the packet was lent: its bytes were copied out then.
            (None, Some(whole)) => {
                let from = 14 + p.head_len;
                let tail = whole
                    .get(from..from + rest)
                    .ok_or(io::ErrorKind::InvalidData)?;
                let mut file = std::fs::File::from(fd.try_clone_to_owned()?);
                io::Write::write_vectored(
                    &mut file,
                    &[io::IoSlice::new(&head[..n]), io::IoSlice::new(tail)],
                )
            }
            (None, None) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Copies a lent packet into `out` (replacing its contents).
    pub fn lent_bytes(&self, p: &LentPacket, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        out.resize(p.len, 0);
        self.lent_into(p, out)
    }

    /// Copies a lent packet into `out`, which must be exactly [`LentPacket::len`] bytes:
    /// the checked first bytes from host memory, the rest from the card's buffer. One copy,
    /// into the caller's own buffer.
    pub fn lent_into(&self, p: &LentPacket, out: &mut [u8]) -> io::Result<()> {
        if out.len() != p.len {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let (head, rest) = out.split_at_mut(p.head_len);
        head.copy_from_slice(p.head());
        let at = 14 + p.head_len;
        match (&self.card, self.rescued_rx.get(&p.buf)) {
            (Some(card), _) => card
                .rx_buf_read(p.buf, at, rest)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            // The card went while the packet was lent: its bytes were copied out then.
            (None, Some(whole)) => {
                let from = whole
                    .get(at..at + rest.len())
                    .ok_or(io::ErrorKind::InvalidData)?;
                rest.copy_from_slice(from);
                Ok(())
            }
            (None, None) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Gives a lent packet's buffer back to the card.
    pub fn release_lent(&mut self, p: &LentPacket) {
        match self.card.as_mut() {
            Some(card) => {
                let _ = card.rx_return(p.buf);
            }
            None => {
                self.rescued_rx.remove(&p.buf);
            }
        }
    }

    /// Frames the driver dropped because their completion was not trustworthy: one report
    /// each, with no frame to show.
    pub(super) fn untrusted_frames(&mut self, n: u64) {
        for _ in 0..n {
            self.rx_report(None, Err(DropReason::DeviceError));
        }
    }

    fn receive_from_wire(&mut self) {
        let mut buf = std::mem::take(&mut self.wire_buf);
        for _ in 0..256 {
            let got = match self.options.fallback.as_mut() {
                Some(w) => w.recv(&mut buf),
                None => false,
            };
            if !got {
                break;
            }
            let (esp, outcome) = self.software_rx(&buf);
            self.rx_report(esp, outcome);
        }
        self.wire_buf = buf;
    }

    /// One frame from the card (or taken by recovery).
    pub(super) fn on_rx(&mut self, p: &RxPacket) {
        if p.decapsulated {
            let esp = Some((p.spi, p.seq as u32));
            let outcome = match p.status {
                Status::Ok if !p.truncated => self.card_delivered(p),
                Status::Ok | Status::TooBig => Err(DropReason::TooBig),
                _ => Err(DropReason::DeviceError),
            };
            self.rx_report(esp, outcome);
            return;
        }
        let for_software = matches!(p.status, Status::Bypass | Status::NoSa)
            || (p.status == Status::Malformed && p.sa_index.is_none());
        if for_software && !p.truncated {
            let (esp, outcome) = self.software_rx(&p.data);
            self.rx_report(esp, outcome);
            return;
        }
        let esp = self.esp_key(&p.data);
        if p.status == Status::EcnDrop {
            // Authentic (its ICV verified): the card's window moved, and so does the
            // host's record of that window.
            self.card_window_moved(p);
        }
        let reason = match p.status {
            _ if p.truncated => DropReason::TooBig,
            Status::IcvFail => DropReason::BadIcv,
            Status::Replay => DropReason::Replayed,
            Status::Stale => DropReason::Stale,
            Status::EcnDrop => DropReason::EcnDrop,
            Status::SaExpired => DropReason::Expired,
            Status::Malformed => DropReason::Malformed,
            Status::TooBig => DropReason::TooBig,
            _ => DropReason::DeviceError,
        };
        self.rx_report(esp, Err(reason));
    }

    /// A packet the card decapsulated: the SA it names, the host's replay record, the
    /// inbound policy check, delivery.
    fn card_delivered(&mut self, p: &RxPacket) -> Result<Received, DropReason> {
        let inner = p.data.get(14..).ok_or(DropReason::Malformed)?;
        self.card_accept(
            p.sa_index,
            p.spi,
            p.seq,
            Flow::parse(inner),
            inner.len(),
            false,
        )?;
        Ok(Received::Inner {
            packet: inner.to_vec(),
            spi: p.spi,
            seq: p.seq,
            path: Path::Card,
        })
    }

    /// The checks of a packet the card decapsulated, whatever memory it is in: the SA its
    /// completion names, the host's replay record, the inbound policy check on its
    /// selectors (`flow`); counted for the SA when it passes. `kept`: `flow` is the
    /// inbound [`KeptHead`](super::frame::KeptHead)'s, whose verdict is kept with it.
    fn card_accept(
        &mut self,
        sa_index: Option<u32>,
        spi: u32,
        seq: u64,
        flow: Result<Flow, espo_ipsec::wire::Error>,
        inner_len: usize,
        kept: bool,
    ) -> Result<(), DropReason> {
        // The SA by entry and SPI: an entry freed and reused since keeps its old SA's
        // completions apart from its new one's. None: the SA that took it was removed
        // (or holds another entry now) — no verdict from it.
        let sa_index = sa_index.ok_or(DropReason::DeviceError)?;
        let is_it = |r: &super::SaRecord| {
            r.dir == Direction::In && r.spi == spi && r.last_sa_index == Some(sa_index)
        };
        let rec_id = match self.entry_owner.get(sa_index as usize).copied().flatten() {
            Some(owner) if is_it(&self.records[owner]) => owner,
            _ => self
                .records
                .entries()
                .find(|(_, r)| is_it(r))
                .map(|(i, _)| i)
                .ok_or(DropReason::UnknownSpi)?,
        };
        let r = &mut self.records[rec_id];
        // The host's final word: a number it already accepted for the SA — delivered from
        // the card, or accepted by software — is not delivered again.
        if let Some(w) = r.shadow.as_mut() {
            w.accept(seq).map_err(replay_reason)?;
        }
        let index = r.index;
        let flow = flow.map_err(|_| DropReason::Malformed)?;
        let admitted = if kept {
            let key = self.sw.inbound.policy_key(index);
            let version = self.sw.inbound.spd().version();
            match self.rx_kept.kept() {
                Some((v, k, verdict)) if v == version && k == key => verdict,
                _ => {
                    let verdict = self.admits(flow, index);
                    self.rx_kept.keep((version, key, verdict));
                    verdict
                }
            }
        } else {
            self.admits(flow, index)
        };
        if !admitted {
            return Err(DropReason::PolicyMismatch);
        }
        let r = &mut self.records[rec_id];
        r.host.packets += 1;
        r.host.bytes += inner_len as u64;
        Ok(())
    }

    /// The inbound policy check (RFC 4301 §5.2) of a packet of inbound SA `index`, as
    /// [`Inbound::admits`](espo_ipsec::engine::Inbound::admits). The last verdict is kept
    /// with the database's version: the packets of a burst are of one flow and one SA, and
    /// the next one is checked by one comparison — until any policy changes.
    fn admits(&mut self, flow: Flow, index: usize) -> bool {
        let key = self.sw.inbound.policy_key(index);
        let version = self.sw.inbound.spd().version();
        match self.last_admission {
            Some((v, f, k, verdict)) if v == version && f == flow && k == key => verdict,
            _ => {
                let verdict = self.sw.inbound.admits(&flow, &[index]);
                self.last_admission = Some((version, flow, key, verdict));
                verdict
            }
        }
    }

    /// A packet of an SA on the card was accepted into its window without being delivered.
    fn card_window_moved(&mut self, p: &RxPacket) {
        let (Some(sa_index), true) = (p.sa_index, p.seq != 0) else {
            return;
        };
        let is_it = |r: &super::SaRecord| {
            r.dir == Direction::In && r.spi == p.spi && r.last_sa_index == Some(sa_index)
        };
        if let Some(r) = self.records.iter_mut().find(|r| is_it(r))
            && let Some(w) = r.shadow.as_mut()
        {
            let _ = w.accept(p.seq);
        }
    }

    /// A frame for the software engine. Never one of an SA on the card: its window is the
    /// card's, and the software copy must not accept what the card would refuse.
    fn software_rx(&mut self, frame: &[u8]) -> (Option<(u32, u32)>, Result<Received, DropReason>) {
        if self
            .options
            .own_port
            .as_ref()
            .is_some_and(|o| o.takes(frame))
        {
            return (
                None,
                Ok(Received::Link {
                    frame: frame.to_vec(),
                }),
            );
        }
        let ip_at = match ethernet::Frame::new_checked(frame)
            .ok()
            .and_then(|f| f.inner_ethertype().ok())
        {
            Some((ethernet::EtherType::Ipv4 | ethernet::EtherType::Ipv6, at)) => at,
            Some(_) => return (None, Err(DropReason::NotIp)),
            None => return (None, Err(DropReason::Malformed)),
        };
        let Some(ip) = frame.get(ip_at..) else {
            return (None, Err(DropReason::Malformed));
        };
        let owner = self.sw.inbound.esp_sa_of(ip);
        let esp = self.sw.inbound.spi_seq_of(ip);
        if let Some((Some(index), _, _)) = owner
            && let Some(rec) = self.in_rec.get(index).copied().flatten()
            && matches!(self.records[rec].placement, Placement::Card { .. })
        {
            if outer_extension_headers(ip) {
                return (esp, self.card_sa_in_software(rec, index, ip));
            }
            return (esp, Err(DropReason::SaMoving));
        }
        let mut buf = ip.to_vec();
        let outcome = match self.sw.inbound.decapsulate(&mut buf) {
            Ok(Decapsulated::Inner { range, spi, seq }) => {
                let packet = buf.get(range).map(<[u8]>::to_vec).unwrap_or_default();
                self.software_received(spi);
                Ok(Received::Inner {
                    packet,
                    spi,
                    seq,
                    path: Path::Software,
                })
            }
            Ok(Decapsulated::Bypass) => {
                let len = ip_len(&buf).min(buf.len());
                buf.truncate(len);
                Ok(Received::Bypass { packet: buf })
            }
            Ok(Decapsulated::Keepalive) => Ok(Received::Keepalive),
            Ok(Decapsulated::Ike { range, src, dst }) => Ok(Received::Ike {
                message: buf.get(range).map(<[u8]>::to_vec).unwrap_or_default(),
                src,
                dst,
            }),
            Err(reason) => Err(reason),
        };
        (esp, outcome)
    }

    /// ESP of an SA on the card that the card passed on because of the outer IPv6
    /// extension headers it does not parse (datasheet §7.6). Software verifies and decrypts
    /// it with the SA's dormant copy, against the host's record of every number accepted
    /// for the SA (`shadow`) rather than the copy's own window, and marks it there: the
    /// card's deliveries are checked against the same record, so whichever of the two the
    /// host meets second is a replay.
    fn card_sa_in_software(
        &mut self,
        rec: usize,
        index: usize,
        ip: &[u8],
    ) -> Result<Received, DropReason> {
        let Some(mut window) = self.records[rec].shadow.take() else {
            return Err(DropReason::SaMoving);
        };
        let mut buf = ip.to_vec();
        let sa = &mut self.sw.inbound.sas_mut()[index];
        std::mem::swap(&mut sa.replay, &mut window);
        let outcome = self.sw.inbound.decapsulate(&mut buf);
        let sa = &mut self.sw.inbound.sas_mut()[index];
        std::mem::swap(&mut sa.replay, &mut window);
        self.records[rec].shadow = Some(window);
        match outcome {
            Ok(Decapsulated::Inner { range, spi, seq }) => {
                let packet = buf.get(range).map(<[u8]>::to_vec).unwrap_or_default();
                let r = &mut self.records[rec];
                for c in [&mut r.host, &mut r.host_only] {
                    c.packets += 1;
                    c.bytes += packet.len() as u64;
                }
                self.card_sa_received_in_software(rec);
                Ok(Received::Inner {
                    packet,
                    spi,
                    seq,
                    path: Path::Software,
                })
            }
            // ESP of an SA is neither bypass nor a keepalive.
            Ok(_) => Err(DropReason::Malformed),
            Err(reason) => Err(reason),
        }
    }

    /// SPI and low sequence number of an AH or ESP frame as it arrived.
    fn esp_key(&self, frame: &[u8]) -> Option<(u32, u32)> {
        let (_, at) = ethernet::Frame::new_checked(frame)
            .ok()?
            .inner_ethertype()
            .ok()?;
        self.sw.inbound.spi_seq_of(frame.get(at..)?)
    }

    fn rx_report(&mut self, esp: Option<(u32, u32)>, outcome: Result<Received, DropReason>) {
        match &outcome {
            Ok(
                Received::Inner {
                    path: Path::Card, ..
                }
                | Received::Lent(_),
            ) => self.counters.rx_card += 1,
            Ok(Received::Inner {
                path: Path::Software,
                ..
            }) => self.counters.rx_software += 1,
            Ok(Received::Bypass { .. } | Received::Keepalive | Received::Ike { .. }) => {
                self.counters.rx_bypass += 1
            }
            Ok(Received::Link { .. }) => self.counters.rx_link += 1,
            Err(reason) => self.counters.rx_dropped.count(*reason),
        }
        self.rx_reports.push(RxReport {
            outcome,
            spi_seq: esp,
        });
    }
}

/// Untrusted TX and RX completions the driver counted (admin and event ones excluded).
pub(super) fn datapath_untrusted(card: &espo_driver::card::Card) -> u64 {
    use espo_driver::card::BadCompletion as B;
    let bad = &card.stats().bad;
    [
        B::DescIndex,
        B::UnknownStatus,
        B::WrongStatus,
        B::SaIndex,
        B::Length,
        B::Sequence,
        B::Flags,
    ]
    .iter()
    .map(|r| bad.get(*r))
    .sum()
}

/// Whether an IPv6 packet carries extension headers before its upper-layer header: the
/// card classifies only ESP (50) or UDP (17) right after the fixed header (§7.6) and passes
/// anything else on as bypass.
fn outer_extension_headers(ip: &[u8]) -> bool {
    ip.first().is_some_and(|b| b >> 4 == 6) && !matches!(ip.get(6), Some(50 | 17))
}

fn replay_reason(e: ReplayError) -> DropReason {
    match e {
        ReplayError::Stale { .. } => DropReason::Stale,
        _ => DropReason::Replayed,
    }
}

/// The IP datagram's own length (link padding after it excluded).
fn ip_len(ip: &[u8]) -> usize {
    match ip.first().map(|b| b >> 4) {
        Some(4) => ip
            .get(2..4)
            .map_or(ip.len(), |b| usize::from(u16::from_be_bytes([b[0], b[1]]))),
        Some(6) => ip.get(4..6).map_or(ip.len(), |b| {
            40 + usize::from(u16::from_be_bytes([b[0], b[1]]))
        }),
        _ => ip.len(),
    }
}
