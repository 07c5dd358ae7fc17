//! BPF_PROG_TEST_RUN fixture for the LAN plan of `lvs_lab::lan` (modelled
//! on prog_run.rs's): one namespace holding the director's LAN link `lan0`
//! (DIP 192.168.47.128/24 and VIP 192.168.47.200/32, 2001:db8:47::128/64
//! and ::200/128) and an inside link `int0` (192.168.211.128/24,
//! 2001:db8:211::128/64), fixed MACs, permanent neighbours for the client,
//! two LAN real servers and one inside server, forwarding on.
#![allow(dead_code)]

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use aya::{programs::Xdp, Ebpf};
use lvs::{
    loader::{self, Sizes, TunnelOpts},
    model::{Method, Proto, RealServer, Scheduler, ServiceAddr, VirtualService},
    progtest,
    tables::Tables,
};
use lvs_lab::{
    lan::{self, mac_str},
    packet::{checksum, Mac},
    Lab, Netns,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

pub const CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0x47, 0x01];
pub const DIR_MAC: Mac = [0x02, 0, 0, 0, 0x47, 0x80];
pub const RS_MAC: [Mac; 2] = [[0x02, 0, 0, 0, 0x47, 0x81], [0x02, 0, 0, 0, 0x47, 0x82]];
pub const DIR_INT_MAC: Mac = [0x02, 0, 0, 0, 0x21, 0x80];
pub const INSIDE_MAC: Mac = [0x02, 0, 0, 0, 0x21, 0x81];

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub struct Fixture {
    pub ns: Netns,
    pub pin: PathBuf,
    bpf: Option<Ebpf>,
    pub lan_if: u32,
    pub int_if: u32,
    // Dropped last: removes the namespace.
    _lab: Lab,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.bpf.take();
        loader::remove_pins(&self.pin);
    }
}

pub fn sh(ns: &Netns, cmd: &str) {
    ns.sh(cmd).unwrap_or_else(|e| panic!("{cmd}: {e:#}"));
}

fn ifindex(ns: &Netns, dev: &str) -> u32 {
    let name = std::ffi::CString::new(dev).unwrap();
    let i = ns
        .enter(move || unsafe { libc::if_nametoindex(name.as_ptr()) })
        .unwrap();
    assert_ne!(i, 0, "no interface {dev}");
    i
}

/// The namespace and the director loaded with `tunnel` (no services yet).
pub fn fixture(tag: &str, tunnel: TunnelOpts) -> Fixture {
    let lab = Lab::new(tag).expect("lab");
    let ns = lab.ns("d").expect("netns");
    for (a, b, mac) in [("lan0", "lan1", DIR_MAC), ("int0", "int1", DIR_INT_MAC)] {
        sh(
            &ns,
            &format!("ip link add name {a} type veth peer name {b}"),
        );
        sh(
            &ns,
            &format!("ip link set {a} address {} up", mac_str(&mac)),
        );
        sh(&ns, &format!("ip link set {b} up"));
    }
    for (dev, cidr) in [
        ("lan0", format!("{}/24", lan::DIP)),
        ("lan0", format!("{}/32", lan::VIP)),
        ("lan0", format!("{}/64", lan::DIP6)),
        ("lan0", format!("{}/128", lan::VIP6)),
        ("int0", format!("{}/24", lan::INSIDE_DIP)),
        ("int0", format!("{}/64", lan::INSIDE_DIP6)),
    ] {
        ns.addr(dev, &cidr).unwrap();
    }
    let mut neigh: Vec<(IpAddr, Mac, &str)> = vec![
        (lan::CLIENT_IP.into(), CLIENT_MAC, "lan0"),
        (lan::CLIENT_IP6.into(), CLIENT_MAC, "lan0"),
        (lan::inside_ip(0).into(), INSIDE_MAC, "int0"),
        (lan::inside_ip6(0).into(), INSIDE_MAC, "int0"),
    ];
    for (i, mac) in RS_MAC.iter().enumerate() {
        neigh.push((lan::rs_ip(i).into(), *mac, "lan0"));
        neigh.push((lan::rs_ip6(i).into(), *mac, "lan0"));
    }
    for (addr, mac, dev) in neigh {
        sh(
            &ns,
            &format!(
                "ip neigh replace {addr} lladdr {} dev {dev} nud permanent",
                mac_str(&mac)
            ),
        );
    }
    sh(
        &ns,
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
    );
    let lan_if = ifindex(&ns, "lan0");
    let int_if = ifindex(&ns, "int0");
    let pin = lab.pin_dir().expect("pin dir");
    let bpf =
        loader::load_director(&pin, Sizes::default(), false, tunnel, &[]).expect("load director");
    Fixture {
        ns,
        pin,
        bpf: Some(bpf),
        lan_if,
        int_if,
        _lab: lab,
    }
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

impl Fixture {
    /// Replaces all services.
    pub fn services(&self, services: Vec<VirtualService>) {
        let mut t = Tables::open(&self.pin).unwrap();
        let mut snap = t.snapshot().unwrap();
        snap.services = services;
        t.commit(&snap).unwrap();
    }

    /// Runs one frame as if received on `ifindex`, inside the namespace.
    pub fn run(&self, frame: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
        let prog: &Xdp = self
            .bpf
            .as_ref()
            .unwrap()
            .program("director")
            .unwrap()
            .try_into()
            .unwrap();
        let r = self
            .ns
            .enter(|| progtest::test_run(prog, frame, ifindex, 1, true))
            .expect("setns")
            .expect("BPF_PROG_TEST_RUN");
        (r.action, r.out.unwrap_or_default())
    }

    pub fn counter(&self, idx: u32) -> u64 {
        progtest::read_counters(&self.pin).unwrap()[idx as usize]
    }
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

impl Fixture {
    /// The source address the kernel picks for `dst` in the fixture's
    /// namespace (`ip route get`), i.e. "the director's address on the
    /// egress link" that TUN's outer header uses by default.
    pub fn route_src(&self, dst: IpAddr) -> IpAddr {
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
