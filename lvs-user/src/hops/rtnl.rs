//! The little of rtnetlink that next hops need, synchronous (the hops
//! thread owns both sockets): dumps of links and neighbours, `RTM_GETROUTE`
//! for one destination (what `ip route get` asks), and the events of
//! RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE and RTNLGRP_IPV6_ROUTE,
//! each turned into the plain values below.

use std::{
    io,
    net::IpAddr,
    os::fd::{AsRawFd, RawFd},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::{
    link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage},
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteType, RouteVia,
    },
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A link of the director: its MAC (Ethernet links only), MTU and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub up: bool,
}

/// A neighbour entry: `addr` on link `ifindex` is at `mac`; `usable` if
/// its state is one the kernel sends to (NUD_VALID: reachable, stale,
/// delay, probe, permanent, noarp), as `bpf_fib_lookup` requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neigh {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub mac: Option<[u8; 6]>,
    pub usable: bool,
}

/// The route to one destination as the kernel resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub oif: u32,
    /// None: on-link (the destination is its own next hop).
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would use.
    pub prefsrc: Option<IpAddr>,
    /// The route's own MTU (a metric or a learnt path MTU), if any.
    pub mtu: Option<u32>,
}

/// What a table change was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Link(Link),
    LinkGone(u32),
    Neigh(Neigh),
    NeighGone(u32, IpAddr),
    /// A route was added or removed (which destinations it changes is the
    /// kernel's to say: resolve again).
    Route,
    /// Events were lost (the socket's buffer overflowed): read all again.
    Overrun,
}

/// NUD_VALID of `include/net/neighbour.h`.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// Room for one datagram: a dump's parts are at most a few pages.
const RECV_BUF: usize = 128 * 1024;

fn mac6(b: &[u8]) -> Option<[u8; 6]> {
    b.try_into().ok()
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

pub fn link_of(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        mac: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::Address(b) if m.header.link_layer_type == LinkLayerType::Ether => {
                link.mac = mac6(b);
            }
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            _ => {}
        }
    }
    link
}

/// An IPv4/IPv6 neighbour entry (not a proxy entry, not a bridge's FDB).
pub fn neigh_of(m: &NeighbourMessage) -> Option<Neigh> {
    if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6)
        || m.header.flags.contains(NeighbourFlags::Proxy)
    {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                addr = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(b) => mac = mac6(b),
            _ => {}
        }
    }
    Some(Neigh {
        ifindex: m.header.ifindex,
        addr: addr?,
        mac,
        usable: u16::from(m.header.state) & NUD_VALID != 0,
    })
}

/// The answer to `RTM_GETROUTE`: a unicast route, or why there is none.
pub fn route_of(m: &RouteMessage) -> Result<Route, String> {
    match m.header.kind {
        RouteType::Unicast => {}
        RouteType::Local => return Err("it is a local address".into()),
        k => return Err(format!("the route is of type {k:?}")),
    }
    let mut r = Route {
        oif: 0,
        gateway: None,
        prefsrc: None,
        mtu: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Oif(i) => r.oif = *i,
            RouteAttribute::Gateway(g) => r.gateway = route_addr(g),
            RouteAttribute::Via(RouteVia::Inet(g)) => r.gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Via(RouteVia::Inet6(g)) => r.gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::PrefSource(s) => r.prefsrc = route_addr(s),
            RouteAttribute::Metrics(ms) => {
                for x in ms {
                    if let RouteMetric::Mtu(mtu) = x {
                        if *mtu > 0 {
                            r.mtu = Some(*mtu);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if r.oif == 0 {
        return Err("the route names no link".into());
    }
    Ok(r)
}

/// Splits one datagram into its messages; one the crate cannot parse is
/// skipped (and logged).
fn messages(buf: &[u8]) -> Vec<NetlinkMessage<RouteNetlinkMessage>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..off + len]) {
            Ok(m) => out.push(m),
            Err(e) => log::debug!("rtnetlink: skipping a message: {e}"),
        }
        off += (len + 3) & !3;
    }
    out
}

fn set_timeout(fd: RawFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid socket and option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's refusal of a request (an `NLMSG_ERROR` with an errno), as
/// opposed to a failure to ask.
#[derive(Debug)]
pub struct Nack(pub io::Error);

impl std::fmt::Display for Nack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the kernel refused: {}", self.0)
    }
}

impl std::error::Error for Nack {}

/// Requests to the kernel, one at a time.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn new() -> Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("opening an rtnetlink socket")?;
        sock.bind_auto().context("binding an rtnetlink socket")?;
        sock.connect(&SocketAddr::new(0, 0))
            .context("connecting an rtnetlink socket")?;
        // A kernel that never answers must not hang the thread.
        set_timeout(sock.as_raw_fd(), Duration::from_secs(5))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends `msg` and collects the answer's messages (all parts of a
    /// dump); an error answer is returned as the errno's `io::Error`.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        hdr.sequence_number = seq;
        let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.buffer_len()];
        req.serialize(&mut out);
        self.sock.send(&out, 0).context("sending to rtnetlink")?;
        let mut answer = Vec::new();
        loop {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .context("reading from rtnetlink")?;
            for m in messages(&self.buf[..n]) {
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(answer),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(anyhow::Error::new(Nack(e.to_io())))
                    }
                    NetlinkPayload::Error(_) => return Ok(answer),
                    NetlinkPayload::InnerMessage(inner) => {
                        answer.push(inner);
                        if !dump {
                            return Ok(answer);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>> {
        let answer = self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)?;
        Ok(answer
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(l)),
                _ => None,
            })
            .collect())
    }

    pub fn neighbours(&mut self) -> Result<Vec<Neigh>> {
        let answer = self.request(
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
            true,
        )?;
        Ok(answer
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => neigh_of(n),
                _ => None,
            })
            .collect())
    }

    /// The route the kernel would send a packet to `dst` by (`ip route
    /// get DST`); `Ok(Err(why))` when there is no usable one.
    pub fn route_get(&mut self, dst: IpAddr) -> Result<Result<Route, String>> {
        let mut m = RouteMessage::default();
        m.header.address_family = match dst {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        m.header.table = RouteHeader::RT_TABLE_UNSPEC;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        match self.request(RouteNetlinkMessage::GetRoute(m), false) {
            Ok(answer) => match answer.first() {
                Some(RouteNetlinkMessage::NewRoute(r)) => Ok(route_of(r)),
                _ => bail!("no answer to RTM_GETROUTE for {dst}"),
            },
            // No route, unreachable, prohibited, ...: the kernel's word.
            Err(e) => match e.downcast_ref::<Nack>() {
                Some(Nack(io)) => Ok(Err(format!("no route: {io}"))),
                None => Err(e),
            },
        }
    }
}

/// The event subscription; non-blocking, read when its fd is readable.
pub struct Events {
    sock: Socket,
    buf: Vec<u8>,
}

impl Events {
    pub fn new() -> Result<Events> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("opening an rtnetlink socket")?;
        sock.bind_auto().context("binding an rtnetlink socket")?;
        for g in [
            RTNLGRP_LINK,
            RTNLGRP_NEIGH,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_ROUTE,
        ] {
            sock.add_membership(g)
                .with_context(|| format!("joining rtnetlink group {g}"))?;
        }
        // Room for bursts (a link going down takes routes and neighbours
        // with it); an overflow is noticed (ENOBUFS) and read again whole.
        let _ = sock.set_rx_buf_sz(4 << 20);
        sock.set_non_blocking(true)?;
        Ok(Events {
            sock,
            buf: vec![0; RECV_BUF],
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Every event queued now.
    pub fn drain(&mut self, out: &mut Vec<Event>) -> Result<()> {
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.push(Event::Overrun);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow!("reading rtnetlink events: {e}")),
            };
            for m in messages(&self.buf[..n]) {
                if let NetlinkPayload::InnerMessage(inner) = m.payload {
                    out.extend(event_of(&inner));
                } else if let NetlinkPayload::Overrun(_) = m.payload {
                    out.push(Event::Overrun);
                }
            }
        }
    }
}

pub fn event_of(m: &RouteNetlinkMessage) -> Option<Event> {
    Some(match m {
        RouteNetlinkMessage::NewLink(l) => Event::Link(link_of(l)),
        RouteNetlinkMessage::DelLink(l) => Event::LinkGone(l.header.index),
        RouteNetlinkMessage::NewNeighbour(n) => Event::Neigh(neigh_of(n)?),
        RouteNetlinkMessage::DelNeighbour(n) => {
            let n = neigh_of(n)?;
            Event::NeighGone(n.ifindex, n.addr)
        }
        RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_) => Event::Route,
        _ => return None,
    })
}
