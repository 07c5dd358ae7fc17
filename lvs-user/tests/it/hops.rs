//! Real servers' next hops kept by `lvs load` (`REAL_HOPS`): DR and TUN
//! work with forwarding off on the director, as with IPVS (the kernel's
//! FIB lookup for XDP refuses to find a next hop without forwarding); a
//! DR real server's new MAC is followed within a second; and, through
//! BPF_PROG_TEST_RUN, the data path takes a real server's entry over what
//! the FIB says, and falls back to the FIB without one.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use crate::common::xdp::*;
use crate::common::{lan_director_with, real_slots, routed_director, wait_until, Lan, T};
use lvs::{hops::HopTable, model::Method, tables::addr_words};
use lvs_common::{counters, decap_counters, NextHop};
use lvs_lab::{
    clients::{self, TcpConn, UdpClient},
    lan::{self, routed, LanConfig, RoutedConfig},
    packet::{dec_ttl, icmp4_error, Frame, ACK, SYN},
    require_root, servers,
};

fn sock(a: impl Into<IpAddr>, port: u16) -> String {
    match a.into() {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Both LAN real servers' addresses, IPv4 then IPv6.
fn lan_reals(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::from(lan::rs_ip(i)))
        .chain((0..n).map(|i| IpAddr::from(lan::rs_ip6(i))))
        .collect()
}

/// The LAN lab with IPv6 and `real_servers`, forwarding off on the
/// director (checked).
fn lan_without_forwarding(tag: &str, real_servers: usize, decap: bool) -> Lan {
    let d = lan_director_with(
        tag,
        LanConfig {
            ipv6: true,
            real_servers,
            ..Default::default()
        },
        decap,
        &[],
        false,
    )
    .unwrap();
    let dir = &d.lan.director;
    assert_eq!(dir.read_sysctl("net.ipv4.ip_forward").unwrap().trim(), "0");
    assert_eq!(
        dir.read_sysctl("net.ipv6.conf.all.forwarding")
            .unwrap()
            .trim(),
        "0"
    );
    d
}

/// `-t VIP:port` and `-t [VIP6]:port` (rr) to every LAN real server by
/// `method` (`-g`, `-i`); waits for the servers' next hops.
fn tcp_services(d: &Lan, port: u16, method: &str) {
    let n = d.lan.rs.len();
    for (vip, family) in [(IpAddr::from(lan::VIP), 0), (lan::VIP6.into(), 1)] {
        let svc = sock(vip, port);
        d.adm(&["-A", "-t", &svc, "-s", "rr"]);
        for r in &lan_reals(n)[family * n..(family + 1) * n] {
            d.adm(&["-a", "-t", &svc, "-r", &sock(*r, port), method]);
        }
    }
    d.resolved(&lan_reals(n));
    d.wait_hops(&lan_reals(n));
}

/// Six HTTP requests to each VIP: answered by both real servers in turn.
fn requests_are_answered(d: &Lan) {
    for vip in [d.lan.vip(80), d.lan.vip6(80)] {
        let mut answers = Vec::new();
        for _ in 0..6 {
            answers.push(
                clients::http_get(&d.lan.client, vip, T)
                    .unwrap_or_else(|e| panic!("GET {vip}: {e:#}\n{}", d.diag())),
            );
        }
        for who in ["rs1\n", "rs2\n"] {
            assert_eq!(
                answers.iter().filter(|a| *a == who).count(),
                3,
                "{vip}: {answers:?}"
            );
        }
    }
}

/// LVS-DR as the HOWTO sets it up, but with `net.ipv4.ip_forward=0` and
/// `net.ipv6.conf.all.forwarding=0`: every packet finds its next hop in
/// `REAL_HOPS`, none is dropped for the lack of one. (Before `REAL_HOPS`
/// the first SYN was dropped as `fwd_no_neigh` and no connection opened.)
#[test]
fn dr_works_with_forwarding_off() {
    if !require_root("hops dr without forwarding") {
        return;
    }
    let d = lan_without_forwarding("hopsdr", 2, false);
    let _srv = d.web(80);
    tcp_services(&d, 80, "-g");
    requests_are_answered(&d);
    assert!(d.counter("dr_fwd") >= 2 * 6 * 3, "{}", d.diag());
    assert_eq!(d.counter("fwd_no_neigh"), 0, "{}", d.diag());
}

/// LVS-TUN with forwarding off: the outer header's source is the route's
/// preferred source from `REAL_HOPS`, the real servers' `lvs decap`
/// unwraps, and nothing is dropped.
#[test]
fn tun_works_with_forwarding_off() {
    if !require_root("hops tun without forwarding") {
        return;
    }
    let d = lan_without_forwarding("hopstun", 2, true);
    let _srv = d.web(80);
    tcp_services(&d, 80, "-i");
    for (a, h) in lan_reals(2).iter().zip(d.wait_hops(&lan_reals(2))) {
        assert_ne!(h.src, [0; 4], "{a}: no source address for the tunnel");
    }
    requests_are_answered(&d);
    assert!(d.counter("tun_fwd") >= 2 * 6 * 3, "{}", d.diag());
    assert_eq!(d.counter("fwd_no_neigh"), 0, "{}", d.diag());
    for i in 0..2 {
        assert!(
            d.decap_counter(i, decap_counters::DECAP) > 0,
            "rs{} unwrapped nothing",
            i + 1
        );
    }
}

/// A DR real server's MAC changes (`ip link set dev eth0 address …`; it
/// announces the new one with a gratuitous ARP and an unsolicited NA, as
/// `arp_notify`/`ndisc_notify` make Linux do): the director's kernel
/// takes it into its neighbour entries, `lvs load` into `REAL_HOPS`, and
/// the data path follows within a second, the flow cache's slots
/// included; open connections carry on and new ones open. Forwarding is
/// off, so no FIB lookup can hide a stale entry.
#[test]
fn dr_follows_a_real_servers_new_mac_within_a_second() {
    if !require_root("hops new mac") {
        return;
    }
    let d = lan_without_forwarding("hopsmac", 1, false);
    let rs = &d.lan.rs[0];
    rs.sysctl("net.ipv4.conf.eth0.arp_notify", "1").unwrap();
    rs.sysctl("net.ipv6.conf.eth0.ndisc_notify", "1").unwrap();
    let any: SocketAddr = "[::]:7000".parse().unwrap();
    let _line = servers::line(rs, any, "rs1").unwrap();
    let _udp4 = servers::udp(rs, d.lan.vip(53), "rs1").unwrap();
    let _udp6 = servers::udp(rs, d.lan.vip6(53), "rs1").unwrap();
    tcp_services(&d, 7000, "-g");
    for vip in [IpAddr::from(lan::VIP), lan::VIP6.into()] {
        let rip = if vip.is_ipv4() {
            IpAddr::from(lan::rs_ip(0))
        } else {
            lan::rs_ip6(0).into()
        };
        let svc = sock(vip, 53);
        d.adm(&["-A", "-u", &svc, "-s", "rr"]);
        d.adm(&["-a", "-u", &svc, "-r", &sock(rip, 53), "-g"]);
    }
    // The UDP services' slots too: a dropped datagram is not sent again.
    let old = d.mac(rs);
    for h in d.wait_hops(&lan_reals(1)) {
        assert_eq!(h.dmac, old);
    }

    let vips = [d.lan.vip(7000), d.lan.vip6(7000)];
    let mut open: Vec<TcpConn> = vips
        .iter()
        .map(|&v| {
            let mut c = TcpConn::connect(&d.lan.client, v, T).unwrap();
            assert_eq!(c.ask("hi").unwrap(), "rs1");
            c
        })
        .collect();
    // UDP probes from one source port each: after the first datagram the
    // IPv4 flow is served from the flow cache.
    let probes: Vec<(UdpClient, SocketAddr)> = [d.lan.vip(53), d.lan.vip6(53)]
        .into_iter()
        .map(|v| {
            let local: SocketAddr = if v.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let c = UdpClient::bind(&d.lan.client, local).unwrap();
            for _ in 0..3 {
                assert_eq!(c.request(v, "q", T).unwrap(), "rs1", "{v} before");
            }
            (c, v)
        })
        .collect();
    assert_eq!(d.counter("fwd_no_neigh"), 0, "{}", d.diag());

    let new: [u8; 6] = [0x02, 0, 0, 0, 0x47, 0x99];
    assert_ne!(old, new);
    let changed = Instant::now();
    rs.ip(&["link", "set", "dev", "eth0", "address", "02:00:00:00:47:99"])
        .unwrap();
    // Every 20 ms or so, one datagram each way until both are answered.
    let mut followed: [Option<Duration>; 2] = [None, None];
    while followed.iter().any(Option::is_none) && changed.elapsed() < Duration::from_secs(5) {
        for (i, (c, v)) in probes.iter().enumerate() {
            if followed[i].is_none() && c.request(*v, "q", Duration::from_millis(20)).is_ok() {
                followed[i] = Some(changed.elapsed());
            }
        }
    }
    eprintln!("new MAC followed after {followed:?} (IPv4, IPv6)");
    for (f, v) in followed.iter().zip(&probes) {
        let f = f.unwrap_or_else(|| panic!("{}: never answered\n{}", v.1, d.diag()));
        assert!(
            f <= Duration::from_millis(1500),
            "{}: the new MAC was followed only after {f:?}",
            v.1
        );
    }
    for h in d.wait_hops(&lan_reals(1)) {
        assert_eq!(h.dmac, new, "REAL_HOPS");
    }
    // The open connections carry on (a segment lost to the old MAC is
    // retransmitted), and new ones open.
    for (c, v) in open.iter_mut().zip(vips) {
        assert_eq!(
            c.ask("again").unwrap_or_else(|e| panic!("{v}: {e:#}")),
            "rs1"
        );
        let mut fresh = TcpConn::connect(&d.lan.client, v, T)
            .unwrap_or_else(|e| panic!("{v}: {e:#}\n{}", d.diag()));
        assert_eq!(fresh.ask("hi").unwrap(), "rs1");
    }
}

/// A DR real server reachable only through a gateway (the routed lab's,
/// behind the inside router) gets no entry and one warning in the log; a
/// TUN service to the same server gets its entry, towards the gateway.
#[test]
fn a_dr_server_behind_a_gateway_gets_no_entry_and_one_warning() {
    if !require_root("hops dr behind a gateway") {
        return;
    }
    let d = routed_director("hopsgw", RoutedConfig::default()).unwrap();
    let rip = IpAddr::from(routed::rs_ip(0));
    let dr = sock(routed::VIP, 80);
    let tun = sock(routed::VIP, 81);
    d.adm(&["-A", "-t", &dr, "-s", "rr"]);
    d.adm(&["-a", "-t", &dr, "-r", &sock(rip, 80), "-g"]);
    d.adm(&["-A", "-t", &tun, "-s", "rr"]);
    d.adm(&["-a", "-t", &tun, "-r", &sock(rip, 81), "-i"]);
    let pin = d.lab.pin_dir();
    let slots = real_slots(pin, rip);
    assert_eq!(slots.len(), 2, "{slots:?}");
    let method_of = |i: u32| {
        use aya::maps::{Array, Map, MapData};
        let m = MapData::from_pin(pin.join(lvs::tables::names::REALS)).unwrap();
        let reals: Array<MapData, lvs_common::Real> = Array::try_from(Map::Array(m)).unwrap();
        reals.get(&i, 0).unwrap().method
    };
    let by = |m: u8| *slots.iter().find(|&&i| method_of(i) == m).unwrap();
    let (dr_slot, tun_slot) = (by(lvs_common::METHOD_ROUTE), by(lvs_common::METHOD_TUNNEL));
    let gw_mac = d.lab.rin.mac("eth0").unwrap();
    let mut tun_hop = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            tun_hop = HopTable::open(pin).unwrap().current(tun_slot);
            tun_hop.is_some()
        }),
        "no entry for the TUN server\n{}",
        d.diag()
    );
    assert_eq!(tun_hop.unwrap().dmac, gw_mac, "TUN goes to the gateway");
    // Two more reads of REALS: still nothing for DR, and one warning.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(HopTable::open(pin).unwrap().current(dr_slot), None);
    let log = d.procs.last().unwrap().output();
    let warned = log
        .lines()
        .filter(|l| l.contains(&format!("DR real server {rip}")) && l.contains("gateway"))
        .count();
    assert_eq!(warned, 1, "{log}");
}

// ------------------------------------------------------- BPF_PROG_TEST_RUN

/// MACs no neighbour entry of the fixture has.
const HOP_DMAC: [u8; 6] = [0x02, 0, 0, 0, 0x47, 0x99];
const HOP_SMAC: [u8; 6] = [0x02, 0, 0, 0, 0x47, 0x98];

fn hop_to(f: &Fixture, addr: IpAddr, mtu: u32) -> NextHop {
    NextHop {
        addr: addr_words(addr),
        src: addr_words(if addr.is_ipv4() {
            ip("192.0.2.7")
        } else {
            ip("2001:db8:ffff::7")
        }),
        ifindex: f.link_index("lan0"),
        mtu,
        dmac: HOP_DMAC,
        smac: HOP_SMAC,
    }
}

/// The one `REALS` slot of `addr`.
fn slot(f: &Fixture, addr: IpAddr) -> u32 {
    let s = real_slots(&f.pin, addr);
    assert_eq!(s.len(), 1, "{addr}: slots {s:?}");
    s[0]
}

fn forwarding(f: &Fixture, on: bool) {
    let v = if on { "1" } else { "0" };
    f.ns.sysctl("net.ipv4.ip_forward", v).unwrap();
    f.ns.sysctl("net.ipv6.conf.all.forwarding", v).unwrap();
}

fn syn(client: IpAddr, vip: IpAddr, sport: u16, payload: usize) -> Vec<u8> {
    Frame::tcp((client, sport), (vip, 80), SYN)
        .macs(CLIENT_MAC, DIR_MAC)
        .payload(&vec![0x61; payload])
        .build()
}

/// With a current `REAL_HOPS` entry, DR sends to the entry's MACs and
/// link whatever the FIB says (with forwarding off it says nothing; with
/// it on, another MAC), checks the entry's MTU, and an ICMP error of the
/// connection goes to the real server by the entry too; an entry for
/// another address, or none, leaves the packet to the FIB.
#[test]
fn dr_takes_the_real_servers_entry_over_the_fib() {
    if !require_root("hops prog_run") {
        return;
    }
    let f = fixture("hopspr", Default::default());
    let vip4 = ip(&lan::VIP.to_string());
    let vip6 = ip(&lan::VIP6.to_string());
    let rs4 = ip(&lan::rs_ip(1).to_string());
    let rs6 = ip(&lan::rs_ip6(1).to_string());
    let c4 = ip(&lan::CLIENT_IP.to_string());
    let c6 = ip(&lan::CLIENT_IP6.to_string());
    // A NAT service first: the DR servers are not in slot 0, which is
    // what an index taken from a default must not find.
    f.services(vec![
        tcp_service(vip4, 8080, &[(ip("192.168.211.129"), 80, Method::Masq)]),
        tcp_service(vip4, 80, &[(rs4, 80, Method::Route)]),
        tcp_service(vip6, 80, &[(rs6, 80, Method::Route)]),
    ]);
    let lan0 = f.link_index("lan0");
    forwarding(&f, false);

    // No entry, no forwarding: dropped, counted and reported.
    for (c, v) in [(c4, vip4), (c6, vip6)] {
        assert_eq!(f.run(&syn(c, v, 40000, 0), lan0).0, XDP_DROP, "{v}");
    }
    assert_eq!(f.counter(counters::FWD_NO_NEIGH), 2);
    let misses = neigh_misses(&f);
    for r in [rs4, rs6] {
        assert!(misses.contains(&r), "{r} not in NEIGH_MISS: {misses:?}");
    }

    let mut table = HopTable::open(&f.pin).unwrap();
    for r in [rs4, rs6] {
        assert!(table.publish(slot(&f, r), &hop_to(&f, r, 1500)).unwrap());
    }
    for on in [false, true] {
        forwarding(&f, on);
        for (c, v) in [(c4, vip4), (c6, vip6)] {
            let frame = syn(c, v, 40001 + on as u16, 0);
            let (action, out) = f.run(&frame, lan0);
            assert_eq!(action, XDP_TX, "{v}, forwarding {on}");
            // The MACs from the entry; the TTL one less, as always.
            let mut want = dec_ttl(&frame);
            want[..6].copy_from_slice(&HOP_DMAC);
            want[6..12].copy_from_slice(&HOP_SMAC);
            assert_frame_eq(&out, &want, &format!("{v}, forwarding {on}"));
        }
    }
    assert_eq!(f.counter(counters::FWD_NO_NEIGH), 2);
    forwarding(&f, false);

    // The entry's MTU: a 1001-byte packet with DF does not fit 1000.
    let s4 = slot(&f, rs4);
    table.publish(s4, &hop_to(&f, rs4, 1000)).unwrap();
    let big = syn(c4, vip4, 40010, 1001 - 40);
    let (action, out) = f.run(&big, lan0);
    assert_eq!(action, XDP_TX, "too big: answered");
    assert_eq!(&out[..6], &CLIENT_MAC, "the answer goes back to the client");
    assert_eq!((out[23], out[34], out[35]), (1, 3, 4), "ICMP frag needed");
    assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1000, "its MTU");
    assert_eq!(f.counter(counters::ICMP_TOO_BIG), 1);
    let fits = syn(c4, vip4, 40011, 1000 - 40);
    assert_eq!(f.run(&fits, lan0).0, XDP_TX);

    // An ICMP error about a reply of a DR connection (from a router on
    // the client's side) reaches its real server by the entry.
    let reply = Frame::tcp((vip4, 80), (c4, 40011), SYN | ACK);
    let quoted = reply.build()[14..14 + 28].to_vec();
    let err = icmp4_error(
        CLIENT_MAC,
        DIR_MAC,
        "192.168.47.2".parse().unwrap(),
        lan::VIP,
        3,
        4,
        [0, 0, 0x05, 0x00],
        &quoted,
    );
    let (action, out) = f.run(&err, lan0);
    assert_eq!(action, XDP_TX, "ICMP error to the DR real server");
    assert_eq!(&out[..6], &HOP_DMAC);
    assert_eq!(&out[6..12], &HOP_SMAC);
    // Forwarded like any packet: its TTL is one less.
    assert_eq!(&out[12..], &dec_ttl(&err)[12..]);
    assert_eq!(f.counter(counters::ICMP_FWD), 1);

    // An entry for another address (a slot since given to another
    // server) is not used: the FIB decides, here with forwarding on.
    table
        .publish(s4, &hop_to(&f, ip("192.168.47.177"), 1500))
        .unwrap();
    forwarding(&f, true);
    let (action, out) = f.run(&syn(c4, vip4, 40020, 0), lan0);
    assert_eq!(action, XDP_TX);
    assert_eq!(&out[..6], &RS_MAC[1], "the FIB's neighbour");
    // Cleared: the FIB again.
    table.publish(s4, &hop_to(&f, rs4, 1500)).unwrap();
    assert!(table.clear(s4).unwrap());
    let (action, out) = f.run(&syn(c4, vip4, 40021, 0), lan0);
    assert_eq!((action, &out[..6]), (XDP_TX, &RS_MAC[1][..]));
}

/// TUN without `--tunnel-source` takes its outer source from the entry
/// (the route's preferred source), and its MTU less the outer header.
#[test]
fn tun_takes_source_and_mtu_from_the_entry() {
    if !require_root("hops prog_run tun") {
        return;
    }
    let f = fixture("hopsprtun", Default::default());
    let vip4 = ip(&lan::VIP.to_string());
    let rs4 = ip(&lan::rs_ip(0).to_string());
    let c4 = ip(&lan::CLIENT_IP.to_string());
    f.services(vec![tcp_service(vip4, 80, &[(rs4, 80, Method::Tunnel)])]);
    let lan0 = f.link_index("lan0");
    forwarding(&f, false);
    let mut table = HopTable::open(&f.pin).unwrap();
    table
        .publish(slot(&f, rs4), &hop_to(&f, rs4, 1500))
        .unwrap();
    let frame = syn(c4, vip4, 40000, 0);
    let (action, out) = f.run(&frame, lan0);
    assert_eq!(action, XDP_TX);
    assert_eq!(out.len(), frame.len() + 20);
    assert_eq!(&out[..6], &HOP_DMAC);
    assert_eq!(&out[6..12], &HOP_SMAC);
    assert_eq!(out[23], 4, "IP-in-IP");
    assert_eq!(&out[26..30], &[192, 0, 2, 7], "outer source: the entry's");
    assert_eq!(&out[30..34], &lan::rs_ip(0).octets());
    assert!(ipv4_csum_ok(&out, 14));
    assert_eq!(&out[34..], &dec_ttl(&frame)[14..], "inner: TTL one less");
    // 1481 bytes plus 20 of outer header do not fit 1500: too big, with
    // the tunnel's MTU.
    let big = Frame::tcp((c4, 40000), (vip4, 80), ACK)
        .macs(CLIENT_MAC, DIR_MAC)
        .payload(&[0x61; 1481 - 40])
        .build();
    let (action, out) = f.run(&big, lan0);
    assert_eq!(action, XDP_TX);
    assert_eq!((out[23], out[34], out[35]), (1, 3, 4));
    assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1480);
    assert_eq!(f.counter(counters::FWD_NO_NEIGH), 0);
}

/// The destinations in the fixture's `NEIGH_MISS`.
fn neigh_misses(f: &Fixture) -> Vec<IpAddr> {
    use aya::maps::{HashMap, Map, MapData};
    let m = MapData::from_pin(f.pin.join(lvs::tables::names::NEIGH_MISS)).unwrap();
    let h: HashMap<MapData, lvs_common::AddrKey, u64> =
        HashMap::try_from(Map::LruHashMap(m)).unwrap();
    h.keys()
        .map(|k| {
            let k = k.unwrap();
            lvs::tables::words_addr(k.addr, k.family)
        })
        .collect()
}
