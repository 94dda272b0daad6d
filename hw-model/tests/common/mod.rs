//! A minimal host for the model: it brings the card up exactly as fpga/README.md §5 says,
//! through BAR0 and DMA memory only, and drives the admin queue, the queue pairs and the
//! event queue. Shared by the integration tests and the benches.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part"
)]

use espo_fpga::desc::phase_of;
use espo_fpga::regs::{BLOCKS, admin, cap, ctrl, event, ident, irq, queue, stats};
use espo_fpga::*;
use espo_model::*;
use std::sync::Arc;

mod frames;
pub use frames::{gcm_sa, ipv4_frame, ipv6_frame, set_outer};

pub const IOVA_BASE: u64 = 0x1_0000_0000;
/// Default packet buffer size: room for a jumbo frame.
pub const BUF_BYTES: u64 = 10 * 1024;
pub const MEM_BYTES: usize = 48 << 20;

#[derive(Debug, Clone, Copy, Default)]
pub struct HostRing {
    pub base: u64,
    pub log2: u32,
    /// Free-running index: producer for rings the host fills, consumer otherwise.
    pub index: u32,
}

impl HostRing {
    pub fn entries(&self) -> u32 {
        1 << self.log2
    }
    pub fn slot_addr(&self, index: u32, entry: u64) -> u64 {
        self.base + u64::from(index & (self.entries() - 1)) * entry
    }
}

#[derive(Debug, Clone, Default)]
pub struct HostQueue {
    pub txq: HostRing,
    pub txcq: HostRing,
    pub rxq: HostRing,
    pub rxcq: HostRing,
    pub tx_bufs: u64,
    pub rx_bufs: u64,
}

pub struct Host {
    pub model: Model,
    pub mem: Arc<VecMemory>,
    pub latch: Arc<InterruptLatch>,
    next: u64,
    pub asq: HostRing,
    pub acq: HostRing,
    pub eq: HostRing,
    pub queues: Vec<HostQueue>,
    cid: u16,
    data: u64,
    /// Bytes per TX and RX packet buffer of queues added from now on.
    pub buf_bytes: u64,
}

impl Host {
    pub fn new(params: ModelParams) -> Host {
        let mut model = Model::new(params);
        let mem = VecMemory::new(MEM_BYTES);
        model
            .map(IOVA_BASE, MEM_BYTES as u64, mem.clone())
            .expect("map host memory");
        let latch = InterruptLatch::new();
        model.set_interrupt_sink(latch.clone());
        Host {
            model,
            mem,
            latch,
            next: IOVA_BASE,
            asq: HostRing::default(),
            acq: HostRing::default(),
            eq: HostRing::default(),
            queues: Vec::new(),
            cid: 0,
            data: 0,
            buf_bytes: BUF_BYTES,
        }
    }

    pub fn alloc(&mut self, bytes: u64) -> u64 {
        let at = self.next.next_multiple_of(4096);
        self.next = at + bytes;
        assert!(
            self.next <= IOVA_BASE + MEM_BYTES as u64,
            "host memory exhausted"
        );
        at
    }

    pub fn read(&self, iova: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.mem.read((iova - IOVA_BASE) as usize, &mut b);
        b
    }

    pub fn write(&self, iova: u64, data: &[u8]) {
        self.mem.write((iova - IOVA_BASE) as usize, data);
    }

    pub fn rd(&self, reg: &Register) -> u32 {
        self.model.bar0_read32(reg.addr())
    }

    pub fn wr(&mut self, reg: &Register, v: u32) {
        self.model.bar0_write32(reg.addr(), v);
    }

    pub fn wr_q(&mut self, reg: &Register, q: u32, v: u32) {
        self.model.bar0_write32(reg.addr_in(q), v);
    }

    /// §5.1: walk the block chain; returns (name, type, version) of every block.
    pub fn walk_blocks(&self) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        let mut at = 0u32;
        for _ in 0..32 {
            let ty = self.model.bar0_read32(at);
            let ver = self.model.bar0_read32(at + 4);
            out.push((at, ty, ver));
            at = self.model.bar0_read32(at + 8);
            if at == 0 {
                break;
            }
        }
        out
    }

    /// Brings the card up per datasheet §5.1–§5.9 (no SAs: §5.8 is the caller's) with `queues` queue pairs of 2^log2 entries.
    pub fn bring_up(&mut self, queues: u32, log2: u32) {
        // §5.1 identify
        assert_eq!(self.rd(&ident::DEVICE_ID), ident::DEVICE_ID_VALUE);
        for (at, ty, ver) in self.walk_blocks() {
            let known = BLOCKS
                .iter()
                .find(|b| b.base == at)
                .expect("block at a known offset");
            assert_eq!(
                (ty, ver >> 16),
                (known.block_type, 1),
                "block {}",
                known.name
            );
        }
        // §5.2 reset, then wait for READY
        self.wr(&ctrl::CONTROL, ctrl::control::RESET.mask() as u32);
        let mut polls = 0;
        while !ctrl::status::READY.is_set(self.rd(&ctrl::STATUS).into()) {
            self.model.advance(1000);
            polls += 1;
            assert!(polls < 100, "card did not leave reset");
        }
        // §5.3 capabilities, §5.4 negotiation
        let features = self.rd(&cap::CAP_FEATURES);
        assert_eq!(self.rd(&cap::SA_TABLE_SIZE), 4096);
        assert!(queues <= self.rd(&cap::QUEUE_COUNT));
        self.wr(
            &ctrl::DRIVER_FEATURES,
            features & cap::features::ESPO1 as u32,
        );
        // §5.5 admin and event rings
        self.asq = HostRing {
            base: self.alloc(64 << 6),
            log2: 6,
            index: 0,
        };
        self.acq = HostRing {
            base: self.alloc(16 << 6),
            log2: 6,
            index: 0,
        };
        self.eq = HostRing {
            base: self.alloc(16 << 8),
            log2: 8,
            index: 0,
        };
        self.data = self.alloc(4096);
        let (asq, acq, eq) = (self.asq, self.acq, self.eq);
        self.model.bar0_write64(admin::ASQ_BASE.addr(), asq.base);
        self.wr(&admin::ASQ_LOG2, asq.log2);
        self.model.bar0_write64(admin::ACQ_BASE.addr(), acq.base);
        self.wr(&admin::ACQ_LOG2, acq.log2);
        self.model.bar0_write64(event::EQ_BASE.addr(), eq.base);
        self.wr(&event::EQ_LOG2, eq.log2);
        // §5.6 interrupts: coalescing off, all vectors unmasked
        self.wr(&irq::COAL_PACKETS, 1);
        self.wr(&irq::INT_MASK, 0);
        // §5.7 enable
        self.wr(&ctrl::CONTROL, ctrl::control::ENABLE.mask() as u32);
        assert!(
            ctrl::status::ENABLED.is_set(self.rd(&ctrl::STATUS).into()),
            "ENABLE refused"
        );
        // §5.9 queue pairs
        for q in 0..queues {
            self.add_queue(q, log2);
        }
    }

    pub fn add_queue(&mut self, q: u32, log2: u32) {
        let n = 1u64 << log2;
        let hq = HostQueue {
            txq: HostRing {
                base: self.alloc(16 * n),
                log2,
                index: 0,
            },
            txcq: HostRing {
                base: self.alloc(16 * n),
                log2,
                index: 0,
            },
            rxq: HostRing {
                base: self.alloc(16 * n),
                log2,
                index: 0,
            },
            rxcq: HostRing {
                base: self.alloc(32 * n),
                log2,
                index: 0,
            },
            tx_bufs: self.alloc(self.buf_bytes * n),
            rx_bufs: self.alloc(self.buf_bytes * n),
        };
        for (reg_base, reg_log2, ring) in [
            (&queue::TXQ_BASE, &queue::TXQ_LOG2, hq.txq),
            (&queue::TXCQ_BASE, &queue::TXCQ_LOG2, hq.txcq),
            (&queue::RXQ_BASE, &queue::RXQ_LOG2, hq.rxq),
            (&queue::RXCQ_BASE, &queue::RXCQ_LOG2, hq.rxcq),
        ] {
            self.model.bar0_write64(reg_base.addr_in(q), ring.base);
            self.wr_q(reg_log2, q, ring.log2);
        }
        self.wr_q(&queue::Q_CTRL, q, 1);
        let st = self.model.bar0_read32(queue::Q_STATUS.addr_in(q));
        assert!(
            queue::q_status::ENABLED.is_set(st.into()),
            "queue {q} refused"
        );
        if self.queues.len() <= q as usize {
            self.queues.resize(q as usize + 1, HostQueue::default());
        }
        self.queues[q as usize] = hq;
        self.post_rx(q, 1 << log2);
    }

    /// Posts `n` RX buffers (one doorbell).
    pub fn post_rx(&mut self, q: u32, n: u32) {
        let mut hq = self.queues[q as usize].clone();
        for _ in 0..n {
            let slot = hq.rxq.index & (hq.rxq.entries() - 1);
            let d = RxDescriptor {
                addr: hq.rx_bufs + u64::from(slot) * self.buf_bytes,
                len: self.buf_bytes as u32,
            };
            self.write(hq.rxq.slot_addr(hq.rxq.index, 16), &d.encode());
            hq.rxq.index = hq.rxq.index.wrapping_add(1);
        }
        self.wr_q(&queue::RXQ_TAIL, q, hq.rxq.index);
        self.queues[q as usize] = hq;
    }

    /// Posts frames on queue `q` (one doorbell): (frame, sa_index or None for bypass).
    pub fn post_tx(&mut self, q: u32, frames: &[(&[u8], Option<u32>)]) {
        let mut hq = self.queues[q as usize].clone();
        for (frame, sa) in frames {
            let slot = hq.txq.index & (hq.txq.entries() - 1);
            let addr = hq.tx_bufs + u64::from(slot) * self.buf_bytes;
            self.write(addr, frame);
            let d = TxDescriptor {
                addr,
                len: frame.len() as u16,
                bypass: sa.is_none(),
                sa_index: sa.unwrap_or(0),
            };
            self.write(hq.txq.slot_addr(hq.txq.index, 16), &d.encode());
            hq.txq.index = hq.txq.index.wrapping_add(1);
        }
        self.wr_q(&queue::TXQ_TAIL, q, hq.txq.index);
        self.queues[q as usize] = hq;
    }

    /// Takes every TX completion whose phase says it is new; one TXCQ_HEAD doorbell.
    pub fn tx_completions(&mut self, q: u32) -> Vec<TxCompletion> {
        let mut hq = self.queues[q as usize].clone();
        let mut out = Vec::new();
        loop {
            let raw: [u8; 16] = self
                .read(hq.txcq.slot_addr(hq.txcq.index, 16), 16)
                .try_into()
                .expect("16");
            if phase_of(&raw) != desc::phase_for(hq.txcq.index, hq.txcq.log2) {
                break;
            }
            out.push(TxCompletion::decode(&raw));
            hq.txcq.index = hq.txcq.index.wrapping_add(1);
        }
        if !out.is_empty() {
            self.wr_q(&queue::TXCQ_HEAD, q, hq.txcq.index);
        }
        self.queues[q as usize] = hq;
        out
    }

    /// Takes every new RX completion with its buffer contents and re-posts the buffers.
    pub fn rx_completions(&mut self, q: u32) -> Vec<(RxCompletion, Vec<u8>)> {
        let mut hq = self.queues[q as usize].clone();
        let mut out = Vec::new();
        loop {
            let raw: [u8; 32] = self
                .read(hq.rxcq.slot_addr(hq.rxcq.index, 32), 32)
                .try_into()
                .expect("32");
            if phase_of(&raw) != desc::phase_for(hq.rxcq.index, hq.rxcq.log2) {
                break;
            }
            let c = RxCompletion::decode(&raw);
            let slot = u64::from(u32::from(c.desc_index) & (hq.rxq.entries() - 1));
            let data = self.read(hq.rx_bufs + slot * self.buf_bytes, c.len as usize);
            out.push((c, data));
            hq.rxcq.index = hq.rxcq.index.wrapping_add(1);
        }
        self.queues[q as usize] = hq;
        if !out.is_empty() {
            let head = self.queues[q as usize].rxcq.index;
            self.wr_q(&queue::RXCQ_HEAD, q, head);
            self.post_rx(q, out.len() as u32);
        }
        out
    }

    /// Takes every new event entry; one EQ_HEAD doorbell.
    pub fn events(&mut self) -> Vec<EventEntry> {
        let mut out = Vec::new();
        loop {
            let raw: [u8; 16] = self
                .read(self.eq.slot_addr(self.eq.index, 16), 16)
                .try_into()
                .expect("16");
            if phase_of(&raw) != desc::phase_for(self.eq.index, self.eq.log2) {
                break;
            }
            out.push(EventEntry::decode(&raw));
            self.eq.index = self.eq.index.wrapping_add(1);
        }
        if !out.is_empty() {
            let i = self.eq.index;
            self.wr(&event::EQ_HEAD, i);
        }
        out
    }

    /// Submits one admin command and waits (in simulated time) for its completion.
    pub fn admin(&mut self, mut cmd: AdminCommand) -> AdminCompletion {
        self.cid = self.cid.wrapping_add(1);
        cmd.cid = self.cid;
        self.write(self.asq.slot_addr(self.asq.index, 64), &cmd.encode());
        self.asq.index = self.asq.index.wrapping_add(1);
        let tail = self.asq.index;
        self.wr(&admin::ASQ_TAIL, tail);
        self.model.run_until_idle();
        let raw: [u8; 16] = self
            .read(self.acq.slot_addr(self.acq.index, 16), 16)
            .try_into()
            .expect("16");
        assert_eq!(
            phase_of(&raw),
            desc::phase_for(self.acq.index, self.acq.log2),
            "no admin completion"
        );
        let c = AdminCompletion::decode(&raw);
        assert_eq!(c.cid, cmd.cid);
        self.acq.index = self.acq.index.wrapping_add(1);
        let head = self.acq.index;
        self.wr(&admin::ACQ_HEAD, head);
        c
    }

    pub fn sa_write(&mut self, index: u32, entry: &SaEntry, state: Option<&SaState>) -> Status {
        let mut data = entry.encode().to_vec();
        if let Some(s) = state {
            data.extend_from_slice(&s.encode());
        }
        let at = self.data;
        self.write(at, &data);
        let cmd = AdminCommand {
            opcode: AdminOpcode::SaWrite,
            state: state.is_some(),
            cid: 0,
            sa_index: index,
            data_addr: at,
            data_len: data.len() as u32,
        };
        let s = self.admin(cmd).status;
        self.write(at, &vec![0; data.len()]);
        s
    }

    pub fn sa_read(&mut self, index: u32) -> (Status, SaState) {
        let at = self.data;
        let cmd = AdminCommand {
            opcode: AdminOpcode::SaRead,
            state: false,
            cid: 0,
            sa_index: index,
            data_addr: at,
            data_len: 576,
        };
        let c = self.admin(cmd);
        let raw: [u8; 576] = self.read(at, 576).try_into().expect("576");
        (c.status, SaState::decode(&raw))
    }

    pub fn sa_invalidate(&mut self, index: u32) -> (Status, SaState) {
        let at = self.data;
        self.write(at, &[0; 576]);
        let cmd = AdminCommand {
            opcode: AdminOpcode::SaInvalidate,
            state: true,
            cid: 0,
            sa_index: index,
            data_addr: at,
            data_len: 576,
        };
        let c = self.admin(cmd);
        let raw: [u8; 576] = self.read(at, 576).try_into().expect("576");
        (c.status, SaState::decode(&raw))
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.model.bar0_read64(stats::counter_addr(c))
    }
}
