//! [`Pacing::RealTime`](super::Pacing::RealTime): a thread that keeps the model's simulated
//! time in step with the wall clock, as a gateway running on the model needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Shared, lock};

/// Longest sleep between two runs: how late a frame arriving on the link can be noticed.
const MAX_SLEEP: Duration = Duration::from_micros(100);

pub(super) fn spawn(shared: &Arc<Shared>) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let shared = Arc::clone(shared);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("espo-model".into())
            .spawn(move || run(&shared, &stop))
    };
    match thread {
        Ok(thread) => (stop, thread),
        // Without a thread the clock cannot run on its own; fall back to a thread that has
        // already finished, and let `relax` (a spin hint) and real-time waits show the stall.
        Err(_) => (stop, std::thread::spawn(|| ())),
    }
}

fn run(shared: &Shared, stop: &AtomicBool) {
    let origin = Instant::now();
    let origin_cycle = shared.with_model(|m| m.now_cycles());
    while !stop.load(Ordering::Acquire) {
        let elapsed = shared.duration_to_cycles(origin.elapsed());
        let target = origin_cycle.saturating_add(elapsed);
        let next = shared.with_model(|m| {
            if target > m.now_cycles() {
                m.run_until(target);
            }
            m.next_event_cycle()
        });
        // After the run every event up to `target` is done; one still due is one the model
        // cannot process (a removed card), and waits like an idle model.
        let sleep = match next {
            Some(cycle) if cycle > target => {
                shared.cycles_to_duration(cycle - target).min(MAX_SLEEP)
            }
            _ => MAX_SLEEP,
        };
        let kicked = lock(&shared.kicked);
        let (mut kicked, _) = shared
            .kick
            .wait_timeout_while(kicked, sleep, |k| !*k && !stop.load(Ordering::Acquire))
            .unwrap_or_else(|p| p.into_inner());
        *kicked = false;
    }
}
