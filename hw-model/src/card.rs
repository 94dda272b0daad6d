//! The card: its state, the event scheduler and the public interface a driver uses —
//! BAR0 accesses, IOMMU mappings, interrupts, the port, and running simulated time.

use crate::datapath::Datapath;
use crate::fault::{FaultKind, FaultTrigger};
use crate::irq::{InterruptSink, IrqState};
use crate::link::{Link, NullLink};
use crate::memory::{HostMemory, Iommu, MapError};
use crate::params::{ModelParams, TICKS_PER_CYCLE};
use crate::perf::{DirectionStats, PerfReport, Resources, Stage, ticks_to_cycles};
use crate::regfile::RegFile;
use crate::sa_table::SaTable;
use espo_fpga::Counter;
use espo_fpga::regs::{cap, irq, queue};
use std::collections::{BinaryHeap, VecDeque};

pub(crate) use crate::state::{Action, PendingRx, PendingTx, QueuePair, Ring, Scheduled};
use std::sync::Arc;

/// The ESPO-1 card model. See the crate documentation for how to drive it.
pub struct Model {
    pub(crate) p: ModelParams,
    pub(crate) now: u64,
    pub(crate) iommu: Iommu,
    pub(crate) regs: RegFile,
    pub(crate) sa: SaTable,
    pub(crate) q: Vec<QueuePair>,
    pub(crate) asq: Ring,
    pub(crate) acq: Ring,
    pub(crate) eq: Ring,
    pub(crate) admin_enabled: bool,
    pub(crate) admin_scheduled: bool,
    pub(crate) last_admin_cpl: u64,
    pub(crate) eq_enabled: bool,
    pub(crate) enabled: bool,
    pub(crate) features: u64,
    pub(crate) ready_at: u64,
    pub(crate) halted: bool,
    pub(crate) hung: bool,
    pub(crate) removed: bool,
    pub(crate) err_cause: u32,
    pub(crate) fault_code: u32,
    pub(crate) fault_addr: u64,
    pub(crate) reset_count: u32,
    pub(crate) eq_dropped: u32,
    pub(crate) irq: IrqState,
    pub(crate) sink: Option<Arc<dyn InterruptSink>>,
    pub(crate) link: Box<dyn Link>,
    pub(crate) sched: BinaryHeap<Scheduled>,
    pub(crate) order: u64,
    pub(crate) res: Resources,
    pub(crate) counters: Vec<u64>,
    pub(crate) rx_fifo: VecDeque<(u64, Vec<u8>)>,
    pub(crate) rx_scheduled: bool,
    pub(crate) rx_blocked_since: Option<u64>,
    pub(crate) timed_faults: Vec<(u64, FaultKind)>,
    pub(crate) packet_faults: Vec<(u64, FaultKind)>,
    pub(crate) dma_error_next: bool,
    pub(crate) icv_error_next: bool,
    pub(crate) drop_irq_next: bool,
    pub(crate) corrupt_cpl_next: bool,
    /// SA state exports report an outbound SA's sequence number as written (a defect,
    /// [`FaultKind::StaleSeqExport`]; survives resets).
    pub(crate) stale_seq_export: bool,
    pub(crate) tx_stats: DirectionStats,
    pub(crate) rx_stats: DirectionStats,
    pub(crate) first_tick: Option<u64>,
    pub(crate) last_tick: u64,
    /// Start of the measurement period (ticks).
    pub(crate) perf_epoch: u64,
    pub(crate) scratch: Vec<u8>,
    pub(crate) link_out: VecDeque<(u64, Vec<u8>)>,
    pub(crate) admin_pending: VecDeque<(u64, u32, [u8; 16])>,
    /// A replacement for the model's own transform (see [`crate::datapath`]).
    pub(crate) datapath: Option<Box<dyn Datapath>>,
}

const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Model>();
};

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("cycle", &self.now_cycles())
            .field("enabled", &self.enabled)
            .field("removed", &self.removed)
            .field("scheduled", &self.sched.len())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// A powered-on card with an unconnected port and no interrupt sink.
    pub fn new(params: ModelParams) -> Self {
        let res = Resources::new(params.engine_count);
        Model {
            p: params,
            now: 0,
            iommu: Iommu::default(),
            regs: RegFile::new(),
            sa: SaTable::new(cap::SA_TABLE_ENTRIES as usize),
            q: vec![QueuePair::default(); queue::COUNT as usize],
            asq: Ring::default(),
            acq: Ring::default(),
            eq: Ring::default(),
            admin_enabled: false,
            admin_scheduled: false,
            last_admin_cpl: 0,
            eq_enabled: false,
            enabled: false,
            features: 0,
            ready_at: 0,
            halted: false,
            hung: false,
            removed: false,
            err_cause: 0,
            fault_code: 0,
            fault_addr: 0,
            reset_count: 0,
            eq_dropped: 0,
            irq: IrqState::new(irq::VECTORS as usize, irq::INT_MASK.reset as u32),
            sink: None,
            link: Box::new(NullLink),
            sched: BinaryHeap::new(),
            order: 0,
            res,
            counters: vec![0; Counter::TABLE.len()],
            rx_fifo: VecDeque::new(),
            rx_scheduled: false,
            rx_blocked_since: None,
            timed_faults: Vec::new(),
            packet_faults: Vec::new(),
            dma_error_next: false,
            icv_error_next: false,
            drop_irq_next: false,
            corrupt_cpl_next: false,
            stale_seq_export: false,
            tx_stats: DirectionStats::default(),
            rx_stats: DirectionStats::default(),
            first_tick: None,
            last_tick: 0,
            perf_epoch: 0,
            scratch: Vec::new(),
            link_out: VecDeque::new(),
            admin_pending: VecDeque::new(),
            datapath: None,
        }
    }

    pub fn params(&self) -> &ModelParams {
        &self.p
    }

    /// Attaches the port to `link` (replacing the previous one).
    pub fn attach_link(&mut self, link: Box<dyn Link>) {
        self.link = link;
    }

    /// Where interrupt messages go.
    pub fn set_interrupt_sink(&mut self, sink: Arc<dyn InterruptSink>) {
        self.sink = Some(sink);
    }

    /// IOMMU: maps `len` bytes of `mem` (from its start) at `iova`.
    pub fn map(&mut self, iova: u64, len: u64, mem: Arc<dyn HostMemory>) -> Result<(), MapError> {
        self.iommu.map(iova, len, mem, 0)
    }

    /// IOMMU: maps `len` bytes of `mem` from `mem_offset` at `iova`.
    pub fn map_at(
        &mut self,
        iova: u64,
        len: u64,
        mem: Arc<dyn HostMemory>,
        mem_offset: usize,
    ) -> Result<(), MapError> {
        self.iommu.map(iova, len, mem, mem_offset)
    }

    /// IOMMU: removes the window starting at `iova`.
    pub fn unmap(&mut self, iova: u64) -> Result<(), MapError> {
        self.iommu.unmap(iova)
    }

    /// Current simulated cycle.
    pub fn now_cycles(&self) -> u64 {
        ticks_to_cycles(self.now)
    }

    /// Cycle of the next scheduled piece of work (or injected fault), if any: a thread
    /// driving the model in real time can sleep until then.
    pub fn next_event_cycle(&self) -> Option<u64> {
        let action = self.sched.peek().map(|s| s.tick);
        let fault = self.timed_faults.iter().map(|f| f.0).min();
        let next = match (action, fault) {
            (Some(a), Some(f)) => Some(a.min(f)),
            (a, f) => a.or(f),
        };
        next.map(|t| t.div_ceil(TICKS_PER_CYCLE))
    }

    /// True when no work is scheduled and no frame is waiting.
    pub fn is_idle(&self) -> bool {
        self.sched.is_empty() && self.rx_fifo.is_empty()
    }

    /// A STATS counter (the same value BAR0 shows).
    pub fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c.value() as usize).copied().unwrap_or(0)
    }

    /// Schedules a fault (datasheet §10.4 describes what each one does).
    pub fn inject(&mut self, kind: FaultKind, trigger: FaultTrigger) {
        match trigger {
            FaultTrigger::AtCycle(c) => self
                .timed_faults
                .push((c.saturating_mul(TICKS_PER_CYCLE), kind)),
            FaultTrigger::AtPacket(n) => self.packet_faults.push((n.max(1), kind)),
        }
    }

    /// Runs until nothing is left to do (idle time is skipped); returns the cycle reached.
    pub fn run_until_idle(&mut self) -> u64 {
        self.run(None);
        self.now_cycles()
    }

    /// Runs everything due up to `cycle`, then sets the clock to `cycle`.
    pub fn run_until(&mut self, cycle: u64) {
        let target = cycle.saturating_mul(TICKS_PER_CYCLE);
        self.run(Some(target));
        self.now = self.now.max(target);
    }

    /// Runs for `cycles` more cycles.
    pub fn advance(&mut self, cycles: u64) {
        self.run_until(self.now_cycles().saturating_add(cycles));
    }

    fn run(&mut self, limit: Option<u64>) {
        loop {
            if self.removed {
                return;
            }
            self.poll_link();
            let next_action = self.sched.peek().map(|s| s.tick);
            let next_fault = self.timed_faults.iter().map(|f| f.0).min();
            let next = match (next_action, next_fault) {
                (Some(a), Some(f)) => a.min(f),
                (Some(a), None) => a,
                (None, Some(f)) => f,
                (None, None) => return,
            };
            if limit.is_some_and(|l| next > l) {
                return;
            }
            self.now = self.now.max(next);
            self.res.retire(self.now);
            if next_fault == Some(next) {
                if let Some(i) = self.timed_faults.iter().position(|f| f.0 == next) {
                    let (_, kind) = self.timed_faults.swap_remove(i);
                    self.apply_fault(kind);
                }
                continue;
            }
            if let Some(s) = self.sched.pop() {
                self.dispatch(s.action);
            }
        }
    }

    pub(crate) fn schedule(&mut self, tick: u64, action: Action) {
        self.order += 1;
        self.sched.push(Scheduled {
            tick: tick.max(self.now),
            order: self.order,
            action,
        });
    }

    fn dispatch(&mut self, action: Action) {
        match action {
            Action::TxFetch(q) => self.tx_fetch(q),
            Action::TxComplete(q) => {
                if let Some(p) = self
                    .q
                    .get_mut(q as usize)
                    .and_then(|qp| qp.tx_pending.pop_front())
                {
                    self.tx_complete(q, p);
                }
            }
            Action::LinkOut => {
                if let Some((_, data)) = self.link_out.pop_front() {
                    let cycle = self.now_cycles();
                    self.link.send(crate::link::Frame { data, cycle });
                }
            }
            Action::RxProcess => self.rx_process(),
            Action::RxComplete(q) => {
                if let Some(p) = self
                    .q
                    .get_mut(q as usize)
                    .and_then(|qp| qp.rx_pending.pop_front())
                {
                    self.rx_complete(q, p);
                }
            }
            Action::AdminProcess => self.admin_process(),
            Action::AdminComplete => {
                if let Some((_, index, cpl)) = self.admin_pending.pop_front() {
                    self.admin_complete(index, cpl);
                }
            }
            Action::CoalesceTimer(v) => self.coalesce_timer(v),
            Action::ResetDone => {}
            Action::Watchdog => self.watchdog(),
        }
    }

    /// Pulls frames from the link into the receive FIFO while it has room.
    fn poll_link(&mut self) {
        if self.now < self.ready_at {
            return;
        }
        let mut pulled = false;
        while self.rx_fifo.len() < self.p.rx_fifo_frames {
            let Some(frame) = self.link.recv() else { break };
            let arrival = self.now.max(frame.cycle.saturating_mul(TICKS_PER_CYCLE));
            self.rx_fifo.push_back((arrival, frame.data));
            pulled = true;
        }
        if pulled && !self.rx_scheduled {
            let at = self.rx_fifo.front().map_or(self.now, |f| f.0);
            self.rx_scheduled = true;
            self.schedule(at, Action::RxProcess);
        }
    }

    pub(crate) fn count(&mut self, c: Counter, n: u64) {
        if let Some(v) = self.counters.get_mut(c.value() as usize) {
            *v += n;
        }
    }

    pub(crate) fn mark_traffic(&mut self, start: u64, end: u64) {
        let start = start.max(self.perf_epoch);
        self.first_tick = Some(self.first_tick.map_or(start, |f| f.min(start)));
        self.last_tick = self.last_tick.max(end);
    }

    /// Replaces the model's per-frame transform with `datapath` (see [`crate::datapath`]);
    /// attach it before the driver writes any SA.
    pub fn attach_datapath(&mut self, datapath: Box<dyn Datapath>) {
        self.datapath = Some(datapath);
    }

    /// Performance since the last [`reset_perf`](Self::reset_perf).
    pub fn perf(&self) -> PerfReport {
        PerfReport {
            clock_hz: self.p.clock_hz,
            first_cycle: ticks_to_cycles(self.first_tick.unwrap_or(0)),
            last_cycle: ticks_to_cycles(self.last_tick),
            tx: self.tx_stats,
            rx: self.rx_stats,
            busy_cycles: Stage::ALL
                .iter()
                .map(|&s| (s, self.res.busy[s as usize] as f64 / TICKS_PER_CYCLE as f64))
                .collect(),
        }
    }

    /// Starts a new measurement period.
    pub fn reset_perf(&mut self) {
        self.tx_stats = DirectionStats::default();
        self.rx_stats = DirectionStats::default();
        self.first_tick = None;
        self.last_tick = 0;
        self.perf_epoch = self.now;
        self.res.busy = [0; 7];
    }

    /// Full reset (CONTROL.RESET or a surprise reset): datasheet §5.2.
    pub(crate) fn reset(&mut self) {
        self.sched.clear();
        self.link_out.clear();
        self.admin_pending.clear();
        self.sa.clear();
        if let Some(dp) = self.datapath.as_mut() {
            dp.reset();
        }
        self.q.iter_mut().for_each(|q| *q = QueuePair::default());
        self.asq = Ring::default();
        self.acq = Ring::default();
        self.eq = Ring::default();
        self.admin_enabled = false;
        self.admin_scheduled = false;
        self.eq_enabled = false;
        self.enabled = false;
        self.features = 0;
        self.halted = false;
        self.hung = false;
        self.err_cause = 0;
        self.fault_code = 0;
        self.fault_addr = 0;
        self.eq_dropped = 0;
        self.irq = IrqState::new(irq::VECTORS as usize, irq::INT_MASK.reset as u32);
        self.regs = RegFile::new();
        self.counters.iter_mut().for_each(|c| *c = 0);
        self.rx_fifo.clear();
        self.rx_scheduled = false;
        self.rx_blocked_since = None;
        self.dma_error_next = false;
        self.icv_error_next = false;
        self.reset_count = self.reset_count.wrapping_add(1);
        self.ready_at = self.now + self.p.reset_cycles * TICKS_PER_CYCLE;
        let at = self.ready_at;
        self.schedule(at, Action::ResetDone);
        let engines = self.p.engine_count;
        let busy = self.res.busy;
        self.res = Resources::new(engines);
        self.res.busy = busy;
        self.res.free = [self.now; 7];
        self.res.block_engines_until(self.ready_at);
    }
}
