//! MSI-X for the client: the card's interrupt messages written to the eventfds the client
//! set with `SET_IRQS`, under host-side masks and the bus-master gate.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use espo_fpga::regs::irq::VECTORS;

use super::{CardServer, lock};
use crate::vfio_user::proto::{self, SetIrqs, irq_index};

/// Interrupt delivery: the client's eventfd per vector, host-side masks and pending bits,
/// and the bus-master gate (MSI-X messages are memory writes).
#[derive(Default)]
pub(super) struct IrqState {
    pub(super) events: Vec<Option<File>>,
    pub(super) masked: u32,
    pub(super) pending: u32,
    pub(super) bus_master: bool,
    pub(super) delivered: u64,
    pub(super) discarded: u64,
}

#[derive(Default)]
pub(super) struct Irqs(pub(super) Mutex<IrqState>);

/// A client's eventfd, made non-blocking: a descriptor that is not an eventfd (a full pipe,
/// say) must not stall the server, only lose its own interrupts.
fn event_file(fd: OwnedFd) -> Result<File, i32> {
    let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(|_| libc::EINVAL)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(|_| libc::EINVAL)?;
    Ok(File::from(fd))
}

impl Irqs {
    pub(super) fn signal(s: &mut IrqState, vector: u32) {
        let Some(Some(event)) = s.events.get(vector as usize) else {
            s.discarded += 1;
            return;
        };
        // An eventfd adds the 8-byte value written to its counter.
        if (&*event).write(&1u64.to_ne_bytes()).is_ok() {
            s.delivered += 1;
        } else {
            s.discarded += 1;
        }
    }
}

impl espo_model::InterruptSink for Irqs {
    fn fire(&self, vector: u32) {
        let mut s = lock(&self.0);
        if !s.bus_master || vector >= VECTORS {
            s.discarded += 1;
            return;
        }
        if s.masked & (1 << vector) != 0 {
            s.pending |= 1 << vector;
            return;
        }
        Irqs::signal(&mut s, vector);
    }
}

impl CardServer {
    pub(super) fn set_irqs(&mut self, payload: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>, i32> {
        let einval = libc::EINVAL;
        let req = SetIrqs::parse(payload).map_err(|_| einval)?;
        let data = req.flags & 0x7;
        let action = req.flags & 0x38;
        if data.count_ones() != 1 || action.count_ones() != 1 {
            return Err(einval);
        }
        let mut s = lock(&self.irqs.0);
        if req.index != irq_index::MSIX {
            // Other indices have no vectors: only "disable all" is accepted.
            return if req.count == 0 && fds.is_empty() {
                Ok(Vec::new())
            } else {
                Err(einval)
            };
        }
        let end = req.start.checked_add(req.count).ok_or(einval)?;
        if end > VECTORS {
            return Err(einval);
        }
        let selected = |i: u32| -> bool {
            data != proto::IRQ_SET_DATA_BOOL
                || req
                    .bools
                    .get((i - req.start) as usize)
                    .is_some_and(|&b| b != 0)
        };
        match (data, action) {
            (proto::IRQ_SET_DATA_EVENTFD, proto::IRQ_SET_ACTION_TRIGGER) => {
                if !fds.is_empty() && fds.len() != req.count as usize {
                    return Err(einval);
                }
                let events = fds
                    .into_iter()
                    .map(event_file)
                    .collect::<Result<Vec<File>, i32>>()?;
                if s.events.len() < VECTORS as usize {
                    s.events.resize_with(VECTORS as usize, || None);
                }
                let mut events = events.into_iter();
                for v in req.start..end {
                    // A descriptor that is not an eventfd only makes its writes fail
                    // (counted as discarded), or fills something the client owns.
                    if let Some(slot) = s.events.get_mut(v as usize) {
                        *slot = events.next();
                    }
                }
                Ok(Vec::new())
            }
            (proto::IRQ_SET_DATA_NONE, proto::IRQ_SET_ACTION_TRIGGER) if req.count == 0 => {
                if !fds.is_empty() {
                    return Err(einval);
                }
                s.events.clear();
                Ok(Vec::new())
            }
            (proto::IRQ_SET_DATA_NONE | proto::IRQ_SET_DATA_BOOL, _) if fds.is_empty() => {
                for v in (req.start..end).filter(|&v| selected(v)) {
                    match action {
                        proto::IRQ_SET_ACTION_MASK => s.masked |= 1 << v,
                        proto::IRQ_SET_ACTION_UNMASK => {
                            s.masked &= !(1 << v);
                            if s.pending & (1 << v) != 0 {
                                s.pending &= !(1 << v);
                                Irqs::signal(&mut s, v);
                            }
                        }
                        _ => Irqs::signal(&mut s, v),
                    }
                }
                Ok(Vec::new())
            }
            _ => Err(einval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_that_never_drains_loses_interrupts_without_stalling_the_server() {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let mut s = IrqState {
            events: vec![Some(event_file(write_end).unwrap())],
            bus_master: true,
            ..IrqState::default()
        };
        // A pipe holds 4 KiB to 1 MiB: 8-byte interrupts fill it, then fail at once.
        for _ in 0..200_000 {
            Irqs::signal(&mut s, 0);
        }
        assert!(s.delivered >= 512, "{}", s.delivered);
        assert!(s.discarded > 0);
        assert_eq!(s.delivered + s.discarded, 200_000);
        drop(read_end);
    }
}
