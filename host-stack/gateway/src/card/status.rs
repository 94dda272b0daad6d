//! What `espo status` adds for the card: the offload engine's counters (what ran on the
//! card, what in software, what was dropped and why, faults), the card's own STATS
//! counters, why SAs run in software, and the port (frames, ARP/ND, neighbours).

use std::fmt::Write as _;
use std::sync::Mutex;

use espo_fpga::Counter;

use super::engine::CardShared;
use super::port::PortView;
use super::resolve::Mac;
use espo_ipsec::counters::DropCounters;
use espo_offload::{CardMode, EngineEvent, Placement};

fn mac_text(mac: Mac) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

fn drops_text(d: &DropCounters) -> String {
    let parts: Vec<String> = d.nonzero().map(|(r, n)| format!("{r} {n}")).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// The card and port section of the status text.
pub fn render(shared: &CardShared, port: &str, mac: Mac, view: &Mutex<PortView>) -> String {
    let mut out = String::new();
    {
        let engine = shared.engine();
        let c = engine.counters();
        let mode = match engine.mode() {
            CardMode::Offload => "offload",
            CardMode::FramesOnly => "frames only (SAs in software after repeated faults)",
            CardMode::Gone => "gone (every SA in software)",
        };
        let placements = engine.placements();
        let on_card = placements
            .iter()
            .filter(|p| matches!(p.placement, Placement::Card { .. }))
            .count();
        let _ = writeln!(
            out,
            "card: {}, mode {mode}, {on_card} of {} SAs on the card",
            shared.backend().describe(),
            placements.len()
        );
        let _ = writeln!(
            out,
            "  card tx: {} on the card, {} in software, {} bypass, {} dropped{}; resent {}, fate unknown {}",
            c.tx_card,
            c.tx_software,
            c.tx_bypass,
            c.tx_dropped.total(),
            drops_text(&c.tx_dropped),
            c.tx_resent,
            c.tx_fate_unknown
        );
        let _ = writeln!(
            out,
            "  card rx: {} on the card, {} in software, {} bypass, {} dropped{}",
            c.rx_card,
            c.rx_software,
            c.rx_bypass,
            c.rx_dropped.total(),
            drops_text(&c.rx_dropped)
        );
        if shared.interrupts()
            && let Some(card) = engine.card()
        {
            let st = card.stats();
            let _ = writeln!(
                out,
                "  card interrupts: {} wakeups, {} waits without one",
                st.irq_wakeups, st.irq_timeouts
            );
        }
        let _ = writeln!(
            out,
            "  faults {}, recoveries {}, moves to card {}, to software {} ({} forced by faults)",
            c.faults, c.recoveries, c.moves_to_card, c.moves_to_software, c.fallbacks
        );
        for p in placements.iter().filter(|p| p.why_software.is_some()) {
            if let Some(why) = p.why_software {
                let _ = writeln!(
                    out,
                    "  {} {:#010x} runs in software: {why}",
                    p.dir.name(),
                    p.spi
                );
            }
        }
    }
    for e in shared.events() {
        let _ = writeln!(out, "  event: {}", event_text(&e));
    }
    let backend = shared.backend();
    if backend.counter(Counter::RxFrames).is_some() {
        let stat = |c: Counter| backend.counter(c).unwrap_or(0);
        let _ = writeln!(
            out,
            "  card stats: port rx {} frames, tx {} frames; decapsulated {}, encapsulated {}, bypass {}, no SA {}, ICV failures {}, replays {}",
            stat(Counter::RxFrames),
            stat(Counter::TxFrames),
            stat(Counter::RxDecapOk),
            stat(Counter::TxEncapOk),
            stat(Counter::RxBypass),
            stat(Counter::RxNoSa),
            stat(Counter::RxIcvFail),
            stat(Counter::RxReplay)
        );
    }
    let v = view.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let p = &v.counters;
    let _ = writeln!(
        out,
        "port {port} ({}): {} frames in ({} to the card), {} out; arp answered {}, requests {}; nd answered {}, solicitations {}",
        mac_text(mac),
        p.frames_in,
        p.to_card,
        p.frames_out,
        p.arp_answered,
        p.arp_requests_sent,
        p.nd_answered,
        p.nd_solicits_sent
    );
    let _ = writeln!(
        out,
        "  malformed arp {}, nd {}; ignored {}; card frames dropped: unresolved {}, not ip {}, card queue full {}; send errors {}",
        p.malformed_arp,
        p.malformed_nd,
        p.ignored,
        p.unresolved,
        p.not_ip,
        p.card_full,
        p.send_errors
    );
    if p.oversize > 0 {
        let _ = writeln!(
            out,
            "  oversize: {} frames longer than the port's MTU allows, not handed to the card \
             (super-frames: a sender on this host passing GSO packets whole over a veth link)",
            p.oversize
        );
    }
    if p.ike_in + p.ike_backlog > 0 {
        let _ = writeln!(
            out,
            "  ike: {} messages to key management, {} dropped (its inbox full)",
            p.ike_in, p.ike_backlog
        );
    }
    for n in &v.neighbours {
        let at = match (n.mac, n.age_secs) {
            (Some(mac), Some(age)) => format!("at {} ({age} s)", mac_text(mac)),
            (Some(mac), None) => format!("at {}", mac_text(mac)),
            (None, _) => "unresolved".into(),
        };
        let _ = writeln!(out, "  neighbour {} {at}, {} waiting", n.ip, n.waiting);
    }
    out
}

fn event_text(e: &EngineEvent) -> String {
    match e {
        EngineEvent::Lifetime {
            spi,
            dir,
            hard,
            cause,
        } => format!(
            "{} {spi:#010x} reached its {} lifetime ({cause:?})",
            dir.name(),
            if *hard { "hard" } else { "soft" }
        ),
        EngineEvent::Moved {
            spi,
            dir,
            to,
            reason,
        } => format!(
            "{} {spi:#010x} moved to {} ({reason:?})",
            dir.name(),
            match to {
                Placement::Card { .. } => "the card",
                Placement::Software => "software",
            }
        ),
        EngineEvent::Fault { fault, recovery } => match fault {
            Some(f) => format!("card fault {f:?}: {recovery:?}"),
            None => format!("card fault: {recovery:?}"),
        },
    }
}
