//! rtnetlink: bring the TUN device up with its MTU, assign its addresses, install a route
//! for every outbound policy's destination, read the outside interface's MTU — and undo
//! the addresses and routes again on exit ([`InsideSetup`]'s `Drop`).
//!
//! Messages are built with `netlink-packet-route` and sent on a synchronous
//! `netlink-sys` socket; every request asks for an acknowledgement and a refusal comes
//! back as the kernel's errno in a typed error.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use espo_config::InterfaceAddress;
use espo_ipsec::selector::Cidr;

/// The TUN device's queue towards espo, packets: room for the traffic of a while during
/// which the outbound thread waits for a core. The kernel's default, 500, overflows in
/// 0.4 s at 1200 packets/s — on a busy two-core machine the TUN device dropped hundreds of
/// packets a minute that espo never saw.
pub const TUN_TX_QUEUE_LEN: u32 = 4096;

/// Why an rtnetlink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening an rtnetlink socket failed")]
    Open(#[source] io::Error),
    #[error("interface `{name}` does not exist")]
    NoSuchInterface {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{operation} failed")]
    Request {
        operation: String,
        #[source]
        source: io::Error,
    },
    #[error("{operation}: the kernel's answer could not be read")]
    Answer { operation: String },
}

/// An rtnetlink socket.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl core::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Netlink").field("seq", &self.seq).finish()
    }
}

/// The interface index of `name`.
pub fn interface_index(name: &str) -> Result<u32, NetlinkError> {
    nix::net::if_::if_nametoindex(name).map_err(|e| NetlinkError::NoSuchInterface {
        name: name.into(),
        source: e.into(),
    })
}

fn family(addr: IpAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Open)?;
        socket.bind_auto().map_err(NetlinkError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Open)?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends one request and collects the answers until the acknowledgement.
    fn request(
        &mut self,
        operation: impl Fn() -> String,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|source| NetlinkError::Request {
                operation: operation(),
                source,
            })?;
        let mut answers = Vec::new();
        let mut rx = vec![0u8; 65536];
        loop {
            let n =
                self.socket
                    .recv(&mut &mut rx[..], 0)
                    .map_err(|source| NetlinkError::Request {
                        operation: operation(),
                        source,
                    })?;
            let mut at = 0;
            while at < n {
                let bytes = rx.get(at..n).ok_or_else(|| NetlinkError::Answer {
                    operation: operation(),
                })?;
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|_| {
                        NetlinkError::Answer {
                            operation: operation(),
                        }
                    })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(NetlinkError::Answer {
                        operation: operation(),
                    });
                }
                at += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(answers),
                    NetlinkPayload::Error(e) => {
                        return Err(NetlinkError::Request {
                            operation: operation(),
                            source: e.to_io(),
                        });
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The MTU of interface `index`.
    pub fn mtu(&mut self, index: u32) -> Result<u32, NetlinkError> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        let op = || format!("reading the MTU of interface {index}");
        let answers = self.request(op, RouteNetlinkMessage::GetLink(link), 0)?;
        answers
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Mtu(mtu) => Some(*mtu),
                    _ => None,
                }),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::Answer { operation: op() })
    }

    /// Whether interface `index` receives every multicast frame (IFF_ALLMULTI).
    pub fn allmulti(&mut self, index: u32) -> Result<bool, NetlinkError> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        let op = || format!("reading the flags of interface {index}");
        let answers = self.request(op, RouteNetlinkMessage::GetLink(link), 0)?;
        answers
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => {
                    Some(l.header.flags.contains(LinkFlags::Allmulti))
                }
                _ => None,
            })
            .ok_or_else(|| NetlinkError::Answer { operation: op() })
    }

    /// Makes interface `index` receive every multicast frame, or only those of the groups
    /// joined on it.
    pub fn set_allmulti(&mut self, index: u32, on: bool) -> Result<(), NetlinkError> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.change_mask = LinkFlags::Allmulti;
        if on {
            link.header.flags = LinkFlags::Allmulti;
        }
        let op = || {
            format!(
                "setting interface {index} allmulti {}",
                if on { "on" } else { "off" }
            )
        };
        self.request(op, RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
    }

    /// Sets interface `index` up (or down) and, if given, its MTU.
    pub fn set_link(&mut self, index: u32, up: bool, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.change_mask = LinkFlags::Up;
        if up {
            link.header.flags = LinkFlags::Up;
        }
        if let Some(mtu) = mtu {
            link.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let op = || {
            format!(
                "setting interface {index} {} (mtu {mtu:?})",
                if up { "up" } else { "down" }
            )
        };
        self.request(op, RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
    }

    /// Sets interface `index`'s transmit queue length (packets).
    pub fn set_tx_queue_len(&mut self, index: u32, len: u32) -> Result<(), NetlinkError> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes.push(LinkAttribute::TxQueueLen(len));
        let op = || format!("setting interface {index}'s transmit queue to {len} packets");
        self.request(op, RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
    }

    fn address_message(index: u32, a: InterfaceAddress) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = family(a.addr);
        msg.header.prefix_len = a.prefix_len;
        msg.header.scope = AddressScope::Universe;
        msg.header.index = index;
        if a.addr.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(a.addr));
        }
        msg.attributes.push(AddressAttribute::Address(a.addr));
        msg
    }

    pub fn add_address(&mut self, index: u32, a: InterfaceAddress) -> Result<(), NetlinkError> {
        let op = || format!("adding address {a} to interface {index}");
        let msg = Self::address_message(index, a);
        self.request(
            op,
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    pub fn del_address(&mut self, index: u32, a: InterfaceAddress) -> Result<(), NetlinkError> {
        let op = || format!("removing address {a} from interface {index}");
        let msg = Self::address_message(index, a);
        self.request(op, RouteNetlinkMessage::DelAddress(msg), 0)
            .map(drop)
    }

    fn route_message(index: u32, dst: Cidr) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst.addr());
        msg.header.destination_prefix_length = dst.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.scope = RouteScope::Link;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
        msg.attributes.push(RouteAttribute::Oif(index));
        msg
    }

    /// Routes `dst` into interface `index` (the kernel refuses a route that exists).
    pub fn add_route(&mut self, index: u32, dst: Cidr) -> Result<(), NetlinkError> {
        let op = || {
            format!(
                "adding a route to {}/{} via interface {index}",
                dst.addr(),
                dst.prefix_len()
            )
        };
        let msg = Self::route_message(index, dst);
        self.request(
            op,
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    pub fn del_route(&mut self, index: u32, dst: Cidr) -> Result<(), NetlinkError> {
        let op = || format!("removing the route to {}/{}", dst.addr(), dst.prefix_len());
        let msg = Self::route_message(index, dst);
        self.request(op, RouteNetlinkMessage::DelRoute(msg), 0)
            .map(drop)
    }
}

/// What espo set up on the inside, undone on drop: routes first, then addresses, then the
/// link goes down.
#[derive(Debug)]
pub struct InsideSetup {
    netlink: Netlink,
    index: u32,
    addresses: Vec<InterfaceAddress>,
    routes: Vec<Cidr>,
}

impl InsideSetup {
    /// Brings interface `index` up with `mtu`, assigns `addresses` and routes every prefix
    /// in `routes` into it. On failure, whatever was already done is undone.
    pub fn apply(
        index: u32,
        mtu: u32,
        addresses: &[InterfaceAddress],
        routes: &[Cidr],
    ) -> Result<InsideSetup, NetlinkError> {
        let mut setup = InsideSetup {
            netlink: Netlink::open()?,
            index,
            addresses: Vec::new(),
            routes: Vec::new(),
        };
        setup.netlink.set_link(index, true, Some(mtu))?;
        setup.netlink.set_tx_queue_len(index, TUN_TX_QUEUE_LEN)?;
        for a in addresses {
            setup.netlink.add_address(index, *a)?;
            setup.addresses.push(*a);
        }
        for r in routes {
            if setup.routes.contains(r) {
                continue;
            }
            setup.netlink.add_route(index, *r)?;
            setup.routes.push(*r);
        }
        Ok(setup)
    }

    pub fn routes(&self) -> &[Cidr] {
        &self.routes
    }
}

impl crate::live::Routes for InsideSetup {
    fn add(&mut self, dst: Cidr) -> Result<(), String> {
        if self.routes.contains(&dst) {
            return Ok(());
        }
        self.netlink
            .add_route(self.index, dst)
            .map_err(|e| e.to_string())?;
        self.routes.push(dst);
        Ok(())
    }

    fn remove(&mut self, dst: Cidr) {
        if let Some(i) = self.routes.iter().position(|r| *r == dst) {
            let _ = self.netlink.del_route(self.index, dst);
            self.routes.remove(i);
        }
    }
}

impl Drop for InsideSetup {
    fn drop(&mut self) {
        for r in std::mem::take(&mut self.routes) {
            let _ = self.netlink.del_route(self.index, r);
        }
        for a in std::mem::take(&mut self.addresses) {
            let _ = self.netlink.del_address(self.index, a);
        }
        let _ = self.netlink.set_link(self.index, false, None);
    }
}
