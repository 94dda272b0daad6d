//! Key management for `espo run`: the daemon for the configuration's `[[connection]]`
//! entries, the addresses it runs on, its log filter.

use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use espo_config::Config;
use espo_config::GatewayConfig;
use espo_ike::connection::{IKE_PORT, NAT_T_PORT};
use espo_ike::manager::{Connection, Daemon};

use super::inbox::IkeInbox;
use super::runtime::{IkeRuntime, IkeSocket, LogFilter};
use crate::GatewayError;

/// The daemon with its surroundings, handed to the gateway's control thread.
pub struct KeyManagement<'a> {
    pub runtime: IkeRuntime<Daemon>,
    /// The datapath's hand-over of IKE messages on port 4500 (the software engine, whose
    /// socket receives them); `None` when the daemon reads port 4500 itself.
    pub inbox: Option<&'a IkeInbox>,
    /// The engines' lifetime crossings.
    pub lifetimes: Option<&'a super::LifetimeFeed>,
}

/// The addresses IKE runs on: each connection's `local_addrs`, or `[gateway] local`.
pub fn local_addresses(config: &Config, gw: &GatewayConfig) -> Result<Vec<IpAddr>, GatewayError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for c in &config.connections {
        let addrs: Vec<IpAddr> = if c.local_addrs.is_empty() {
            gw.local.into_iter().collect()
        } else {
            c.local_addrs.clone()
        };
        if addrs.is_empty() {
            return Err(GatewayError::Connection(format!(
                "{}: connection {}: no local address to run IKE on: set its local_addrs or [gateway] local",
                config.path.display(),
                c.name
            )));
        }
        for a in addrs {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// The daemon for the configuration's connections (their certificates and keys read).
pub fn daemon(config: &Config, locals: &[IpAddr]) -> Result<Daemon, GatewayError> {
    let mut conns = Vec::new();
    for spec in &config.connections {
        conns
            .push(Connection::load(spec.clone()).map_err(|e| {
                GatewayError::Connection(format!("{}: {e}", config.path.display()))
            })?);
    }
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let sockets = locals
        .iter()
        .flat_map(|ip| {
            [
                SocketAddr::new(*ip, IKE_PORT),
                SocketAddr::new(*ip, NAT_T_PORT),
            ]
        })
        .collect();
    Ok(Daemon::new(conns, sockets, Instant::now(), unix))
}

/// The daemon's own sockets: port 500 on each address, and port 4500 unless the datapath
/// owns it (`shared_4500` gives its sending handle).
pub fn sockets(
    locals: &[IpAddr],
    mut shared_4500: impl FnMut(IpAddr) -> Option<std::net::UdpSocket>,
) -> Result<Vec<IkeSocket>, GatewayError> {
    let mut out = Vec::new();
    for ip in locals {
        let at = SocketAddr::new(*ip, IKE_PORT);
        out.push(IkeSocket::bind(at, false).map_err(|e| {
            GatewayError::Connection(format!("binding the IKE socket {at} failed: {e}"))
        })?);
        let at = SocketAddr::new(*ip, NAT_T_PORT);
        match shared_4500(*ip) {
            Some(socket) => out.push(IkeSocket {
                local: at,
                transport: super::runtime::Transport::Udp(socket),
                marker: true,
                receive: false,
            }),
            None => out.push(IkeSocket::bind(at, true).map_err(|e| {
                GatewayError::Connection(format!("binding the IKE socket {at} failed: {e}"))
            })?),
        }
    }
    Ok(out)
}

/// The runtime for `config`, or `None` when it has no connections.
pub fn runtime(
    config: &Config,
    locals: &[IpAddr],
    sockets: Vec<IkeSocket>,
    inbox: Option<super::inbox::IkeReceiver>,
) -> Result<IkeRuntime<Daemon>, GatewayError> {
    let daemon = daemon(config, locals)?;
    let filter = config
        .gateway
        .as_ref()
        .map(|g| log_filter(&g.ike_log))
        .transpose()
        .map_err(GatewayError::Connection)?
        .unwrap_or_default();
    let daemon = match &config.gateway {
        Some(g) => daemon.with_backoff(espo_ike::exchange::Backoff {
            timeout: g.ike_retransmit_timeout,
            tries: g.ike_retransmit_tries,
            ..espo_ike::exchange::Backoff::default()
        }),
        None => daemon,
    };
    Ok(IkeRuntime::new(daemon, sockets, inbox, filter))
}

/// The log filter of `[gateway] ike_log`.
pub fn log_filter(text: &str) -> Result<LogFilter, String> {
    let (default, per) =
        espo_ike::daemon::parse_log_levels(text).map_err(|e| format!("[gateway] ike_log: {e}"))?;
    Ok(LogFilter { default, per })
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_ike::daemon::{Level, Subsystem};

    #[test]
    fn log_filters_read_as_documented() {
        let f = log_filter("warning, ike=debug, net=error").unwrap();
        assert!(f.shows(Subsystem::Ike, Level::Debug));
        assert!(!f.shows(Subsystem::Net, Level::Warning));
        assert!(f.shows(Subsystem::Child, Level::Warning));
        assert!(!f.shows(Subsystem::Child, Level::Info));
        assert!(
            log_filter("loud")
                .unwrap_err()
                .contains("unknown level `loud`")
        );
        assert!(
            log_filter("xyz=info")
                .unwrap_err()
                .contains("unknown subsystem `xyz`")
        );
    }
}
