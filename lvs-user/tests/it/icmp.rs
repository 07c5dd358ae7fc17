//! ICMP errors about NAT connections, made by routers on either side of the
//! director (lvs_lab::lan::RoutedLab) and translated by it:
//!
//! - a router between the director and the real server cannot forward the
//!   client's DF datagram (MTU 1400): its "fragmentation needed" goes to
//!   the client through the director, which must make it about the VIP,
//!   so the client's path MTU *to the VIP* drops;
//! - a router between the client and the director cannot forward the real
//!   server's DF answer: its error goes to the VIP, and the director must
//!   hand it to that real server, translated, so the real server's path
//!   MTU to the client drops.
//!
//! IPv6 the same with "packet too big"; and "time exceeded" from the inside
//! router back to the client. Each ICMP message is also captured and
//! checked: addresses, type, MTU, checksums (outer, ICMP, quoted IP).

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use crate::common::{self, routed_director, Routed, T};
use lvs_lab::{
    clients,
    lan::{routed, Capture, Captured, DfSocket, RoutedConfig, UdpSized},
    packet::{checksum, checksum_l4},
    require_root,
};

const PORT: u16 = 7000;

/// An ICMP(v6) error as seen on a link.
#[derive(Debug, Clone)]
struct IcmpErr {
    outgoing: bool,
    src: IpAddr,
    dst: IpAddr,
    typ: u8,
    code: u8,
    /// The 32-bit field after the checksum (the MTU for frag-needed/PTB).
    info: u32,
    ip_csum_ok: bool,
    icmp_csum_ok: bool,
    inner_src: IpAddr,
    inner_dst: IpAddr,
    inner_proto: u8,
    inner_sport: u16,
    inner_dport: u16,
    inner_ip_csum_ok: bool,
}

fn addr4(b: &[u8]) -> IpAddr {
    IpAddr::from(<[u8; 4]>::try_from(b).unwrap())
}

fn addr6(b: &[u8]) -> IpAddr {
    IpAddr::from(<[u8; 16]>::try_from(b).unwrap())
}

fn icmp_error(c: &Captured) -> Option<IcmpErr> {
    let f = &c.frame;
    let et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    match et {
        0x0800 => {
            let ihl = (f.get(14)? & 0x0f) as usize * 4;
            let tot = u16::from_be_bytes([f[16], f[17]]) as usize;
            if f[23] != 1 || f.len() < 14 + tot {
                return None;
            }
            let icmp = &f[14 + ihl..14 + tot];
            if ![3u8, 11, 12].contains(icmp.first()?) {
                return None;
            }
            let inner = icmp.get(8..)?;
            let iihl = (inner.first()? & 0x0f) as usize * 4;
            let ports = inner.get(iihl..iihl + 4)?;
            Some(IcmpErr {
                outgoing: c.outgoing,
                src: addr4(&f[26..30]),
                dst: addr4(&f[30..34]),
                typ: icmp[0],
                code: icmp[1],
                info: u32::from_be_bytes(icmp[4..8].try_into().unwrap()),
                ip_csum_ok: checksum(&f[14..14 + ihl]) == 0,
                icmp_csum_ok: checksum(icmp) == 0,
                inner_src: addr4(&inner[12..16]),
                inner_dst: addr4(&inner[16..20]),
                inner_proto: inner[9],
                inner_sport: u16::from_be_bytes([ports[0], ports[1]]),
                inner_dport: u16::from_be_bytes([ports[2], ports[3]]),
                inner_ip_csum_ok: checksum(&inner[..iihl]) == 0,
            })
        }
        0x86dd => {
            let plen = u16::from_be_bytes([*f.get(18)?, *f.get(19)?]) as usize;
            if f[20] != 58 || f.len() < 54 + plen {
                return None;
            }
            let icmp = &f[54..54 + plen];
            if !(1u8..=4).contains(icmp.first()?) {
                return None;
            }
            let inner = icmp.get(8..)?;
            let ports = inner.get(40..44)?;
            let (src, dst) = (addr6(&f[22..38]), addr6(&f[38..54]));
            Some(IcmpErr {
                outgoing: c.outgoing,
                src,
                dst,
                typ: icmp[0],
                code: icmp[1],
                info: u32::from_be_bytes(icmp[4..8].try_into().unwrap()),
                ip_csum_ok: true,
                icmp_csum_ok: checksum_l4(src, dst, 58, icmp) == 0,
                inner_src: addr6(&inner[8..24]),
                inner_dst: addr6(&inner[24..40]),
                inner_proto: inner[6],
                inner_sport: u16::from_be_bytes([ports[0], ports[1]]),
                inner_dport: u16::from_be_bytes([ports[2], ports[3]]),
                inner_ip_csum_ok: true,
            })
        }
        _ => None,
    }
}

/// The ICMP errors received on a captured link within `timeout` of
/// `cap`'s start, waiting until at least one is there.
fn received_errors(cap: &Capture, timeout: Duration) -> Vec<IcmpErr> {
    let deadline = Instant::now() + timeout;
    loop {
        let errs: Vec<_> = cap
            .frames()
            .iter()
            .filter_map(icmp_error)
            .filter(|e| !e.outgoing)
            .collect();
        if !errs.is_empty() || Instant::now() >= deadline {
            return errs;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Addrs {
    client: IpAddr,
    vip: IpAddr,
    rs: IpAddr,
    /// The outside router's address facing the director.
    rout: IpAddr,
    any: SocketAddr,
    /// IP + UDP header bytes.
    hdrs: usize,
    /// (type, code) of "fragmentation needed" / "packet too big".
    too_big: (u8, u8),
}

fn addrs(v6: bool) -> Addrs {
    if v6 {
        Addrs {
            client: routed::CLIENT_IP6.into(),
            vip: routed::VIP6.into(),
            rs: routed::rs_ip6(0).into(),
            rout: routed::ROUT_DIR_SIDE6.into(),
            any: "[::]:0".parse().unwrap(),
            hdrs: 48,
            too_big: (2, 0),
        }
    } else {
        Addrs {
            client: routed::CLIENT_IP.into(),
            vip: routed::VIP.into(),
            rs: routed::rs_ip(0).into(),
            rout: routed::ROUT_DIR_SIDE.into(),
            any: "0.0.0.0:0".parse().unwrap(),
            hdrs: 28,
            too_big: (3, 4),
        }
    }
}

fn svc(a: &IpAddr) -> String {
    SocketAddr::new(*a, PORT).to_string()
}

/// The routed lab with a UDP NAT service VIP:7000 → rs1:7000 answered by
/// a [`UdpSized`] server, checked to work with a small exchange.
fn udp_service(tag: &str, config: RoutedConfig) -> (Routed, UdpSized, DfSocket, Addrs) {
    let a = addrs(config.ipv6);
    let d = routed_director(tag, config).unwrap();
    let mut any = a.any;
    any.set_port(PORT);
    let srv = UdpSized::start(&d.lab.rs[0], any).unwrap();
    d.adm(&["-A", "-u", &svc(&a.vip), "-s", "rr"]);
    d.adm(&["-a", "-u", &svc(&a.vip), "-r", &svc(&a.rs), "-m"]);
    let s = DfSocket::connect(&d.lab.client, SocketAddr::new(a.vip, PORT)).unwrap();
    // UDP does not retransmit: an answer that met a next hop still being
    // resolved is dropped by design (`nat_reply_drop`), so ask up to three
    // times.
    let mut answer = Err(anyhow::anyhow!("not asked"));
    for _ in 0..3 {
        s.send(b"100").unwrap();
        answer = s.recv(T);
        if answer.is_ok() {
            break;
        }
    }
    let answer =
        answer.unwrap_or_else(|e| panic!("the service does not work: {e:#}\n{}", d.diag()));
    assert_eq!(answer.len(), 100);
    (d, srv, s, a)
}

/// Counters the data path may add for ICMP: when present, they moved.
fn assert_icmp_counted(d: &Routed, name: &str) {
    let stats = lvs_lab::lan::lvs_stats(
        &d.lab.director,
        std::path::Path::new(common::LVS),
        d.lab.pin_dir(),
    )
    .unwrap();
    if let Some(&n) = stats.get(name) {
        assert!(n > 0, "{name} = 0: {stats:?}");
    }
}

/// The one error in `errs` (it must be alone), reaching `whom`.
fn the_error<'a>(errs: &'a [IcmpErr], whom: &str) -> &'a IcmpErr {
    assert_eq!(errs.len(), 1, "one error reaches {whom}: {errs:#?}");
    &errs[0]
}

/// `e`'s checksums (outer, ICMP, quoted IP) are right and it quotes a UDP
/// datagram `src:sport` → `dst:dport`.
fn assert_quotes(e: &IcmpErr, src: (IpAddr, u16), dst: (IpAddr, u16), what: &str) {
    assert!(
        e.ip_csum_ok && e.icmp_csum_ok && e.inner_ip_csum_ok,
        "{e:#?}"
    );
    assert_eq!(
        (
            e.inner_src,
            e.inner_sport,
            e.inner_dst,
            e.inner_dport,
            e.inner_proto
        ),
        (src.0, src.1, dst.0, dst.1, 17),
        "{what}"
    );
}

fn inside_router_error_reaches_the_client(v6: bool) {
    let (d, srv, s, a) = udp_service(
        if v6 { "icmpin6" } else { "icmpin" },
        RoutedConfig {
            ipv6: v6,
            server_mtu: Some(1400),
            ..Default::default()
        },
    );
    let cport = s.local_addr().unwrap().port();
    let cap = Capture::start(&d.lab.client, "eth0").unwrap();
    s.send_packet_of(1500).unwrap();
    let errs = received_errors(&cap, T);
    let learnt = d.lab.client.wait_path_mtu(a.vip, 1400, T);
    assert_eq!(srv.requests(), 1, "the big datagram cannot have arrived");
    let e = the_error(&errs, "the client");
    assert_eq!(
        (e.typ, e.code, e.info),
        (a.too_big.0, a.too_big.1, 1400),
        "{e:#?}"
    );
    assert_eq!(e.src, a.vip, "outer source: the VIP ({e:#?})");
    assert_eq!(e.dst, a.client);
    assert_quotes(
        e,
        (a.client, cport),
        (a.vip, PORT),
        "the quoted packet is the client's, as it sent it",
    );
    learnt.unwrap();
    assert_eq!(s.path_mtu().unwrap(), 1400);
    // Not about the real server's address, which the client never saw.
    assert_eq!(d.lab.client.path_mtu(a.rs).unwrap(), None);
    assert_icmp_counted(&d, "icmp_reply");
}

fn outside_router_error_reaches_the_real_server(v6: bool) {
    let (d, srv, s, a) = udp_service(
        if v6 { "icmpout6" } else { "icmpout" },
        RoutedConfig {
            ipv6: v6,
            client_mtu: Some(1400),
            ..Default::default()
        },
    );
    let cport = s.local_addr().unwrap().port();
    let cap = Capture::start(&d.lab.rs[0], "eth0").unwrap();
    // Ask for an answer that makes a 1500-byte packet.
    s.send((1500 - a.hdrs).to_string().as_bytes()).unwrap();
    let errs = received_errors(&cap, T);
    let learnt = d.lab.rs[0].wait_path_mtu(a.client, 1400, T);
    let e = the_error(&errs, "the real server");
    assert_eq!(
        (e.typ, e.code, e.info),
        (a.too_big.0, a.too_big.1, 1400),
        "{e:#?}"
    );
    assert_eq!(e.src, a.rout, "outer source: the router, unchanged");
    assert_eq!(e.dst, a.rs, "outer destination: the real server");
    assert_quotes(
        e,
        (a.rs, PORT),
        (a.client, cport),
        "the quoted packet is the real server's, as it sent it",
    );
    learnt.unwrap();
    // The server now refuses to send that much to the client at once.
    s.send((1500 - a.hdrs).to_string().as_bytes()).unwrap();
    let deadline = Instant::now() + T;
    while srv.send_errors().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        srv.send_errors().iter().any(|e| e.contains("too long")
            || e.contains("Message too long")
            || e.contains("os error 90")),
        "{:?}",
        srv.send_errors()
    );
    assert_icmp_counted(&d, "icmp_fwd");
}

/// A datagram whose TTL runs out at the inside router (TTL 2: the outside
/// router takes one, the director none, the inside router the last):
/// its "time exceeded" reaches the client about the VIP.
fn time_exceeded_reaches_the_client(v6: bool) {
    let (d, srv, s, a) = udp_service(
        if v6 { "icmpttl6" } else { "icmpttl" },
        RoutedConfig {
            ipv6: v6,
            ..Default::default()
        },
    );
    let cport = s.local_addr().unwrap().port();
    let cap = Capture::start(&d.lab.client, "eth0").unwrap();
    s.set_ttl(2).unwrap();
    s.send(b"10").unwrap();
    let errs = received_errors(&cap, T);
    assert_eq!(srv.requests(), 1, "the datagram cannot have arrived");
    let e = the_error(&errs, "the client");
    let want = if v6 { (3, 0) } else { (11, 0) };
    assert_eq!((e.typ, e.code), want, "{e:#?}");
    assert_eq!(e.src, a.vip, "outer source: the VIP ({e:#?})");
    assert_eq!(e.dst, a.client);
    assert_quotes(e, (a.client, cport), (a.vip, PORT), "the quoted packet");
}

#[test]
fn time_exceeded_from_inside_reaches_the_client_translated() {
    if !require_root("icmp ttl") {
        return;
    }
    time_exceeded_reaches_the_client(false);
}

#[test]
fn hop_limit_exceeded_from_inside_reaches_the_client_translated() {
    if !require_root("icmpv6 hop limit") {
        return;
    }
    time_exceeded_reaches_the_client(true);
}

#[test]
fn frag_needed_from_inside_reaches_the_client_translated() {
    if !require_root("icmp inside") {
        return;
    }
    inside_router_error_reaches_the_client(false);
}

#[test]
fn frag_needed_from_outside_reaches_the_real_server_translated() {
    if !require_root("icmp outside") {
        return;
    }
    outside_router_error_reaches_the_real_server(false);
}

#[test]
fn packet_too_big_from_inside_reaches_the_client_translated() {
    if !require_root("icmpv6 inside") {
        return;
    }
    inside_router_error_reaches_the_client(true);
}

#[test]
fn packet_too_big_from_outside_reaches_the_real_server_translated() {
    if !require_root("icmpv6 outside") {
        return;
    }
    outside_router_error_reaches_the_real_server(true);
}

#[test]
fn echo_to_the_vip_is_answered_by_the_director() {
    if !require_root("icmp echo") {
        return;
    }
    let d = routed_director(
        "icmpecho",
        RoutedConfig {
            ipv6: true,
            ..Default::default()
        },
    )
    .unwrap();
    d.adm(&["-A", "-t", "192.168.47.128:80", "-s", "rr"]);
    d.adm(&[
        "-a",
        "-t",
        "192.168.47.128:80",
        "-r",
        "192.168.212.129:80",
        "-m",
    ]);
    d.adm(&["-A", "-t", "[2001:db8:47::128]:80", "-s", "rr"]);
    d.adm(&[
        "-a",
        "-t",
        "[2001:db8:47::128]:80",
        "-r",
        "[2001:db8:212::129]:80",
        "-m",
    ]);
    clients::ping(&d.lab.client, routed::VIP.into(), T).unwrap();
    clients::ping(&d.lab.client, routed::VIP6.into(), T).unwrap();
}
