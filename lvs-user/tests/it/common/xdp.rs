//! The BPF_PROG_TEST_RUN fixture of the tests: `lvs_lab::xdpns::XdpNs`
//! (one namespace built from a plan: links, fixed MACs, permanent
//! neighbours, forwarding) carrying `lvs::testbed::Director` (the director
//! loaded, its maps pinned), plus [`Run`], the tests' panicking shorthand
//! for it. [`fixture`] builds the LAN plan of `lvs_lab::lan`
//! (`Plan::lan`): the director's LAN link `lan0` (DIP 192.168.47.128/24
//! and VIP 192.168.47.200/32, 2001:db8:47::128/64 and ::200/128) and an
//! inside link `int0` (192.168.211.128/24, 2001:db8:211::128/64), with
//! neighbours for the client, two LAN real servers and one inside server;
//! prog_run.rs uses the seed plan (`Plan::seed`).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs::{
    loader::{Sizes, TunnelOpts},
    model::{Method, Proto, RealServer, Scheduler, ServiceAddr, VirtualService},
    testbed::Director,
};
use lvs_lab::{
    packet::{checksum, dec_ttl, Frame, Mac, L4},
    xdpns::{mac, Plan, XdpNs},
};

pub const XDP_DROP: u32 = lvs_common::xdp::DROP;
pub const XDP_PASS: u32 = lvs_common::xdp::PASS;
pub const XDP_TX: u32 = lvs_common::xdp::TX;
pub const XDP_REDIRECT: u32 = lvs_common::xdp::REDIRECT;

pub const CLIENT_MAC: Mac = mac::CLIENT;
pub const DIR_MAC: Mac = mac::DIR_EXT;
pub const RS_MAC: [Mac; 2] = mac::LAN_RS;
pub const DIR_INT_MAC: Mac = mac::DIR_INT;
pub const INSIDE_MAC: Mac = mac::INSIDE;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The namespace fixture carrying the loaded director.
pub type Fixture = XdpNs<Director>;

/// The namespace of `plan` and the director loaded with `tunnel` (no
/// services yet).
pub fn fixture_with(tag: &str, plan: &Plan, tunnel: TunnelOpts) -> Fixture {
    fixture_sized(tag, plan, Sizes::default(), tunnel)
}

/// The namespace of `plan` and the director loaded with `sizes` and
/// `tunnel`, its links' MACs known to the data path (`LINK_MACS`), as
/// `lvs load` makes them known.
pub fn fixture_sized(tag: &str, plan: &Plan, sizes: Sizes, tunnel: TunnelOpts) -> Fixture {
    let f = XdpNs::new(tag, plan, |pin| Director::load(pin, sizes, tunnel))
        .expect("BPF_PROG_TEST_RUN fixture");
    f.enter(|| f.sync_link_macs())
        .expect("setns")
        .expect("the links' MACs");
    f
}

/// The LAN plan's namespace and the director loaded with `tunnel`.
pub fn fixture(tag: &str, tunnel: TunnelOpts) -> Fixture {
    fixture_with(tag, &Plan::lan(), tunnel)
}

pub fn sh(ns: &lvs_lab::Netns, cmd: &str) {
    ns.sh(cmd).unwrap_or_else(|e| panic!("{cmd}: {e:#}"));
}

/// What the tests do with a [`Fixture`], failing the test on any error.
pub trait Run {
    /// Runs one frame through `director` as if received on `ifindex`,
    /// inside the namespace: (action, output frame).
    fn run(&self, frame: &[u8], ifindex: u32) -> (u32, Vec<u8>);
    /// Director counter `idx` (`lvs_common::counters`).
    fn counter(&self, idx: u32) -> u64;
    /// Replaces all services.
    fn services(&self, services: Vec<VirtualService>);
    /// The source address the kernel picks for `dst` in the fixture's
    /// namespace (`ip route get`), i.e. "the director's address on the
    /// egress link" that TUN's outer header uses by default.
    fn route_src(&self, dst: IpAddr) -> IpAddr;
}

impl Run for Fixture {
    fn run(&self, frame: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
        let r = self
            .enter(|| self.run_once(frame, ifindex))
            .expect("setns")
            .expect("BPF_PROG_TEST_RUN");
        (r.action, r.out.unwrap_or_default())
    }

    fn counter(&self, idx: u32) -> u64 {
        self.counters().unwrap()[idx as usize]
    }

    fn services(&self, services: Vec<VirtualService>) {
        self.set_services(services).unwrap();
    }

    fn route_src(&self, dst: IpAddr) -> IpAddr {
        let out = self
            .ns
            .ip(&["-o", "route", "get", &dst.to_string()])
            .unwrap();
        let w: Vec<&str> = out.split_whitespace().collect();
        let i = w
            .iter()
            .position(|x| *x == "src")
            .expect("src in route get");
        w[i + 1].parse().unwrap()
    }
}

/// `frame` as NAT forwards it to a real server: the MACs `macs` (source,
/// destination), the destination replaced by `dst`, the TTL one less.
pub fn dnat(frame: &Frame, macs: (Mac, Mac), dst: (IpAddr, u16)) -> Vec<u8> {
    let mut want = frame.clone().macs(macs.0, macs.1);
    want.dst = dst.0;
    match &mut want.l4 {
        L4::Tcp { dport, .. } | L4::Udp { dport, .. } => *dport = dst.1,
    }
    dec_ttl(&want.build())
}

/// `frame`, a real server's reply, as NAT sends it back: the MACs `macs`,
/// the source replaced by `src` (the VIP's), the TTL one less.
pub fn snat(frame: &Frame, macs: (Mac, Mac), src: (IpAddr, u16)) -> Vec<u8> {
    let mut want = frame.clone().macs(macs.0, macs.1);
    want.src = src.0;
    match &mut want.l4 {
        L4::Tcp { sport, .. } | L4::Udp { sport, .. } => *sport = src.1,
    }
    dec_ttl(&want.build())
}

/// A TCP service `vip:port` (rr) with the given real servers.
pub fn tcp_service(vip: IpAddr, port: u16, reals: &[(IpAddr, u16, Method)]) -> VirtualService {
    service(Proto::Tcp, vip, port, reals)
}

/// A `proto` service `vip:port` (rr) with the given real servers.
pub fn service(
    proto: Proto,
    vip: IpAddr,
    port: u16,
    reals: &[(IpAddr, u16, Method)],
) -> VirtualService {
    let mut s = VirtualService::new(
        ServiceAddr {
            proto,
            addr: vip,
            port,
        },
        Scheduler::Rr,
    );
    for &(a, p, m) in reals {
        s.reals.push(RealServer::new(a, p, m, 1));
    }
    s
}

/// An Ethernet frame carrying an ICMPv6 error (`typ`/`code`, the 4-byte
/// field after the checksum, e.g. the MTU of "packet too big") that quotes
/// `quoted`, with a correct checksum; hop limit `hop`.
#[allow(clippy::too_many_arguments)]
pub fn icmp6_error(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
    hop: u8,
) -> Vec<u8> {
    let mut icmp = vec![typ, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(quoted);
    let c = lvs_lab::packet::checksum_l4(src.into(), dst.into(), 58, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&lvs_lab::packet::ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&lvs_lab::packet::ipv6_header(src, dst, 58, icmp.len(), hop));
    f.extend_from_slice(&icmp);
    f
}

/// The IPv4 header's fields a test does not pin down, read back from an
/// output frame: (TOS, identification, DF, TTL).
pub fn ipv4_free_fields(frame: &[u8]) -> (u8, u16, bool, u8) {
    let h = &frame[14..34];
    (
        h[1],
        u16::from_be_bytes([h[4], h[5]]),
        h[6] & 0x40 != 0,
        h[8],
    )
}

/// Whether the IPv4 header at `off` verifies.
pub fn ipv4_csum_ok(frame: &[u8], off: usize) -> bool {
    let ihl = (frame[off] & 0x0f) as usize * 4;
    checksum(&frame[off..off + ihl]) == 0
}

pub fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        _ => panic!("{a} is not IPv4"),
    }
}

pub fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V6(a) => a,
        _ => panic!("{a} is not IPv6"),
    }
}

/// `assert_eq!` for frames that reports the first differing byte and the
/// bytes around it instead of dumping kilobytes.
#[track_caller]
pub fn assert_frame_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(8);
    let show = |f: &[u8]| format!("{:02x?}", &f[from.min(f.len())..(at + 24).min(f.len())]);
    panic!(
        "{what}: frames differ at byte {at} (lengths {} and {}); from byte {from}:\n  got:  {}\n  want: {}",
        got.len(),
        want.len(),
        show(got),
        show(want)
    );
}
