//! Crafted frames through BPF_PROG_TEST_RUN: the director's exact output
//! bytes for the forward and reply NAT paths, and the documented rule that
//! malformed frames are passed untouched.
//!
//! The program runs inside a namespace of the test's own with fixed MACs and
//! permanent neighbour entries, so `bpf_fib_lookup` gives known answers.

use std::net::IpAddr;

use lvs::{
    model::{Method, Proto, RealServer, Scheduler, Snapshot},
    tables::Tables,
};
use lvs_common::counters;
use lvs_lab::{
    packet::*,
    require_root,
    xdpns::{mac, Plan},
};

use crate::common::xdp::{
    dnat, fixture_with, service, sh, snat, Fixture, Run, XDP_DROP, XDP_PASS, XDP_REDIRECT,
};

const CLIENT_MAC: Mac = mac::CLIENT;
const DIR_EXT_MAC: Mac = mac::DIR_EXT;
const DIR_INT_MAC: Mac = mac::DIR_INT;
const RS_MAC: Mac = mac::RS;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The seed plan's namespace (the director's two links, fixed MACs and
/// permanent neighbours for the client and the real server) with the
/// director loaded and three NAT services: TCP VIP:80 and UDP VIP:53 to
/// 192.168.211.129 (:8080, :5353) and TCP [2001:db8:47::128]:80 to
/// [2001:db8:211::129]:8080.
fn fixture() -> Fixture {
    let f = fixture_with("pr", &Plan::seed(), Default::default());
    let vip = ip("192.168.47.128");
    let rs = ip("192.168.211.129");
    f.services(vec![
        service(Proto::Tcp, vip, 80, &[(rs, 8080, Method::Masq)]),
        service(Proto::Udp, vip, 53, &[(rs, 5353, Method::Masq)]),
        service(
            Proto::Tcp,
            ip("2001:db8:47::128"),
            80,
            &[(ip("2001:db8:211::129"), 8080, Method::Masq)],
        ),
    ]);
    f
}

/// The fixture, if the test runs as root (the others skip).
fn setup() -> Option<Fixture> {
    require_root("prog_run").then(fixture)
}

/// [`setup`] for the flow cache's tests: this thread pinned to CPU 0
/// first.
fn cache_setup() -> Option<Fixture> {
    require_root("prog_run").then(|| {
        pin_to_cpu0();
        fixture()
    })
}

/// What the seed's addresses mean here.
const VIP_MACS: (Mac, Mac) = (DIR_EXT_MAC, CLIENT_MAC);
const RS_MACS: (Mac, Mac) = (DIR_INT_MAC, RS_MAC);

fn vip(port: u16) -> (IpAddr, u16) {
    (ip("192.168.47.128"), port)
}

fn rs(port: u16) -> (IpAddr, u16) {
    (ip("192.168.211.129"), port)
}

/// A TCP segment of the real server's port 8080 to client port `sport`.
fn rs_tcp(sport: u16, flags: u8) -> Frame {
    Frame::tcp(rs(8080), (ip("192.168.47.1"), sport), flags).macs(RS_MAC, DIR_INT_MAC)
}

/// A TCP segment of client port `sport` to VIP:80, without payload.
fn client_tcp(sport: u16, flags: u8) -> Frame {
    Frame::tcp((ip("192.168.47.1"), sport), vip(80), flags).macs(CLIENT_MAC, DIR_EXT_MAC)
}

/// Edits the director's tables: `g` changes a snapshot, which is committed.
fn edit(f: &Fixture, g: impl FnOnce(&mut Snapshot)) {
    let mut t = Tables::open(&f.pin).unwrap();
    let mut snap = t.snapshot().unwrap();
    g(&mut snap);
    t.commit(&snap).unwrap();
}

/// The IPIP header the director puts before `inner` (a frame) towards the
/// real server: source the egress link's address, TOS the inner one's.
fn tun_outer(inner: &[u8]) -> [u8; 20] {
    let mut outer = ipv4_header(
        "192.168.211.128".parse().unwrap(),
        "192.168.211.129".parse().unwrap(),
        4,
        inner.len() - 14,
        64,
        0,
        true,
    );
    outer[1] = inner[15];
    outer
}

fn client_syn() -> Frame {
    Frame::tcp((ip("192.168.47.1"), 40000), (ip("192.168.47.128"), 80), SYN)
        .macs(CLIENT_MAC, DIR_EXT_MAC)
        .payload(b"GET / HTTP/1.0\r\n\r\n")
}

#[test]
fn nat_forward_and_reply_rewrite_exact_bytes() {
    let Some(f) = setup() else { return };
    let syn = client_syn();
    let (action, out) = f.run(&syn.build(), f.link_index("ext0"));
    assert_eq!(
        action, XDP_REDIRECT,
        "forward SYN must be redirected to the internal link"
    );
    // Forwarded as a router forwards: TTL one less (IPVS decrements it on
    // every method).
    assert_eq!(
        out,
        dnat(&syn, RS_MACS, rs(8080)),
        "DNAT output differs from a freshly built frame"
    );
    let p = parse(&out).unwrap();
    assert!(p.ip_csum_ok && p.l4_csum_ok);

    let reply = rs_tcp(40000, SYN | ACK).payload(b"HTTP/1.0 200 OK\r\n\r\nhao2\n");
    let (action, out) = f.run(&reply.build(), f.link_index("int0"));
    assert_eq!(
        action, XDP_REDIRECT,
        "reply must be redirected to the external link"
    );
    assert_eq!(
        out,
        snat(&reply, VIP_MACS, vip(80)),
        "reverse NAT output differs"
    );
    assert_eq!(f.counter(counters::NAT_FWD), 1);
    assert_eq!(f.counter(counters::NAT_REPLY), 1);

    // The established flow keeps its real server; a non-SYN without a
    // connection goes to the director's stack untouched.
    let ack = client_tcp(40000, ACK);
    assert_eq!(f.run(&ack.build(), f.link_index("ext0")).0, XDP_REDIRECT);
    let stray = client_tcp(40001, ACK);
    let (action, out) = f.run(&stray.build(), f.link_index("ext0"));
    assert_eq!((action, out), (XDP_PASS, stray.build()));
}

#[test]
fn udp_checksums_including_zero() {
    let Some(f) = setup() else { return };
    for no_csum in [false, true] {
        let mut q = Frame::udp(
            (ip("192.168.47.1"), 33000 + no_csum as u16),
            (ip("192.168.47.128"), 53),
        )
        .macs(CLIENT_MAC, DIR_EXT_MAC)
        .payload(b"query");
        q.udp_no_csum = no_csum;
        let (action, out) = f.run(&q.build(), f.link_index("ext0"));
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(out, dnat(&q, RS_MACS, rs(5353)), "udp_no_csum={no_csum}");
        if no_csum {
            let p = parse(&out).unwrap();
            assert_eq!(
                &out[p.l4_off + 6..p.l4_off + 8],
                &[0, 0],
                "a zero UDP checksum stays zero"
            );
        }
    }
}

#[test]
fn non_service_traffic_passes_untouched() {
    let Some(f) = setup() else { return };
    for frame in [
        Frame::tcp((ip("192.168.47.1"), 40000), (ip("192.168.47.128"), 22), SYN),
        Frame::udp((ip("192.168.47.1"), 40000), (ip("192.168.47.128"), 54)),
        Frame::tcp((ip("192.168.47.1"), 40000), (ip("192.168.47.129"), 80), SYN),
    ] {
        let b = frame.macs(CLIENT_MAC, DIR_EXT_MAC).build();
        assert_eq!(f.run(&b, f.link_index("ext0")), (XDP_PASS, b));
    }
    // ARP and ICMP echo.
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(f.run(&arp, f.link_index("ext0")), (XDP_PASS, arp.clone()));
    let mut icmp = client_syn().build();
    icmp[23] = 1;
    assert_eq!(f.run(&icmp, f.link_index("ext0")), (XDP_PASS, icmp.clone()));
}

#[test]
fn malformed_frames_pass_untouched() {
    let Some(f) = setup() else { return };
    let good = client_syn().build();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("ethernet header only", good[..14].to_vec()));
    cases.push(("truncated IPv4 header", good[..14 + 12].to_vec()));
    cases.push(("truncated TCP header", good[..14 + 20 + 10].to_vec()));
    let mut ihl4 = good.clone();
    ihl4[14] = 0x44;
    cases.push(("IHL < 5", ihl4));
    let mut long = good.clone();
    long[16..18].copy_from_slice(&2000u16.to_be_bytes());
    cases.push(("total length beyond frame", long));
    let mut mf = good.clone();
    mf[20] = 0x20; // MF
    cases.push(("first fragment", mf));
    let mut off = good.clone();
    off[20..22].copy_from_slice(&0x0010u16.to_be_bytes());
    cases.push(("later fragment", off));
    let mut doff = good.clone();
    doff[14 + 20 + 12] = 0x40;
    cases.push(("TCP data offset < 5", doff));
    let mut ver = good.clone();
    ver[14] = 0x65;
    cases.push(("IP version 6 in an IPv4 frame", ver));
    let before = f.counter(counters::MALFORMED) + f.counter(counters::FRAGMENT);
    for (name, frame) in &cases {
        let (action, out) = f.run(frame, f.link_index("ext0"));
        assert_eq!(action, XDP_PASS, "{name}");
        assert_eq!(&out, frame, "{name}: must not be modified");
    }
    let after = f.counter(counters::MALFORMED) + f.counter(counters::FRAGMENT);
    assert_eq!(
        after - before,
        cases.len() as u64,
        "each case is counted as malformed or fragment"
    );
    // Nothing was forwarded or scheduled.
    assert_eq!(f.counter(counters::NEW_CONN), 0);
}

#[test]
fn rr_alternates_and_wrr_follows_its_sequence() {
    let Some(f) = setup() else { return };
    edit(&f, |snap| {
        snap.services[0].reals.push(RealServer::new(
            ip("192.168.211.130"),
            8080,
            Method::Masq,
            1,
        ))
    });
    f.ns.sh(&format!(
        "ip neigh replace 192.168.211.130 lladdr {} dev int0 nud permanent",
        mac_str(&RS_MAC)
    ))
    .unwrap();
    let mut dsts = Vec::new();
    for port in 0..6u16 {
        let syn = client_tcp(41000 + port, SYN);
        let (action, out) = f.run(&syn.build(), f.link_index("ext0"));
        assert_eq!(action, XDP_REDIRECT);
        dsts.push(parse(&out).unwrap().dst.to_string());
    }
    for w in dsts.windows(2) {
        assert_ne!(w[0], w[1], "{dsts:?}");
    }

    // wrr 3:1 walks IPVS's cycle A A A B, continuing from the shared
    // position (six connections scheduled so far).
    edit(&f, |snap| {
        let tcp = &mut snap.services[0];
        tcp.sched = Scheduler::Wrr;
        tcp.reals[0].weight = 3;
    });
    let cycle = [
        "192.168.211.129",
        "192.168.211.129",
        "192.168.211.129",
        "192.168.211.130",
    ];
    for i in 0..8u16 {
        let syn = client_tcp(42000 + i, SYN);
        let (_, out) = f.run(&syn.build(), f.link_index("ext0"));
        assert_eq!(
            parse(&out).unwrap().dst.to_string(),
            cycle[(6 + i as usize) % 4],
            "connection {i}"
        );
    }
}

/// Replaces the TCP service's real server by one with `method`.
fn set_method(f: &Fixture, method: Method) {
    edit(f, |snap| snap.services[0].reals[0].method = method);
}

#[test]
fn tun_encapsulates_exactly_and_answers_too_big() {
    let Some(f) = setup() else { return };
    set_method(&f, Method::Tunnel);
    let syn = client_syn();
    let inner = syn.build();
    let (action, out) = f.run(&inner, f.link_index("ext0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out.len(), inner.len() + 20);
    // Ethernet towards the real server, then the outer header, then the
    // client's IP packet unchanged.
    assert_eq!(&out[..6], &RS_MAC);
    assert_eq!(&out[6..12], &DIR_INT_MAC);
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    assert_eq!(
        &out[14..34],
        &tun_outer(&inner),
        "outer IPv4 header (source: the egress link's address)"
    );
    // The inner packet is the one forwarded: its TTL is one less.
    assert_eq!(
        &out[34..],
        &dec_ttl(&inner)[14..],
        "inner packet unchanged but for its TTL"
    );

    // A path MTU below packet + 20 with DF: ICMP "fragmentation needed"
    // back to the client, quoting its header, with the MTU minus 20.
    sh(&f.ns, "ip link set int0 mtu 1000");
    let big = client_syn().payload(&[0x55; 1000]).build();
    let (action, out) = f.run(&big, f.link_index("ext0"));
    assert_eq!(action, 3, "XDP_TX back to the client");
    assert_eq!(&out[..6], &CLIENT_MAC);
    assert_eq!(&out[6..12], &DIR_EXT_MAC);
    let ip = &out[14..34];
    assert_eq!(checksum(ip), 0);
    assert_eq!(ip[9], 1);
    assert_eq!(&ip[12..16], &[192, 168, 47, 128]);
    assert_eq!(&ip[16..20], &[192, 168, 47, 1]);
    let icmp = &out[34..];
    assert_eq!(icmp.len(), 8 + 28);
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 980);
    assert_eq!(checksum(icmp), 0);
    assert_eq!(&icmp[8..], &big[14..14 + 28]);
}

#[test]
fn dr_rewrites_only_macs() {
    let Some(f) = setup() else { return };
    set_method(&f, Method::Route);
    let syn = client_syn().build();
    let (action, out) = f.run(&syn, f.link_index("ext0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(&out[..6], &RS_MAC);
    assert_eq!(&out[6..12], &DIR_INT_MAC);
    // The MACs, and the TTL as every forwarded packet's (IPVS's DR too).
    assert_eq!(&out[12..], &dec_ttl(&syn)[12..]);
}

/// The first 28 bytes (IP header + 8) of a frame's IP packet, as routers
/// quote it in an ICMP error.
fn quote(frame: &Frame) -> Vec<u8> {
    frame.build()[14..14 + 28].to_vec()
}

#[test]
fn icmp_errors_of_nat_connections_are_translated() {
    let Some(f) = setup() else { return };
    let syn = client_syn();
    assert_eq!(f.run(&syn.build(), f.link_index("ext0")).0, XDP_REDIRECT);
    let ip4 = |s: &str| -> std::net::Ipv4Addr { s.parse().unwrap() };
    let mtu = [0, 0, 0x05, 0x00];

    // A router between the director and the real server cannot forward
    // the DNATed packet: its error, sent to the client, goes back to the
    // client with the VIP as outer source and embedded destination.
    let mut sent = syn.clone();
    sent.dst = ip("192.168.211.129");
    sent.l4 = L4::Tcp {
        sport: 40000,
        dport: 8080,
        flags: SYN,
        seq: 0x1000_0000,
        ack: 0,
    };
    let err = icmp4_error(
        RS_MAC,
        DIR_INT_MAC,
        ip4("192.168.211.1"),
        ip4("192.168.47.1"),
        3,
        4,
        mtu,
        &quote(&sent),
    );
    let (action, out) = f.run(&err, f.link_index("int0"));
    assert_eq!(action, XDP_REDIRECT);
    let want = icmp4_error(
        DIR_EXT_MAC,
        CLIENT_MAC,
        ip4("192.168.47.128"),
        ip4("192.168.47.1"),
        3,
        4,
        mtu,
        &quote(&syn),
    );
    // The error is forwarded: its TTL is one less.
    assert_eq!(
        out,
        dec_ttl(&want),
        "reply-direction ICMP error, translated"
    );

    // A router between the client and the director cannot forward a reply
    // (VIP:80 -> client): its error, sent to the VIP, reaches the real
    // server with the real server's address as outer destination and
    // embedded source.
    let reply = Frame::tcp(
        (ip("192.168.47.128"), 80),
        (ip("192.168.47.1"), 40000),
        SYN | ACK,
    );
    let err = icmp4_error(
        CLIENT_MAC,
        DIR_EXT_MAC,
        ip4("192.168.47.2"),
        ip4("192.168.47.128"),
        3,
        4,
        mtu,
        &quote(&reply),
    );
    let (action, out) = f.run(&err, f.link_index("ext0"));
    assert_eq!(action, XDP_REDIRECT);
    let mut from_rs = reply.clone();
    from_rs.src = ip("192.168.211.129");
    from_rs.l4 = L4::Tcp {
        sport: 8080,
        dport: 40000,
        flags: SYN | ACK,
        seq: 0x1000_0000,
        ack: 0,
    };
    let want = icmp4_error(
        DIR_INT_MAC,
        RS_MAC,
        ip4("192.168.47.2"),
        ip4("192.168.211.129"),
        3,
        4,
        mtu,
        &quote(&from_rs),
    );
    assert_eq!(
        out,
        dec_ttl(&want),
        "forward-direction ICMP error, translated"
    );

    // Errors about unknown flows, and echo, are the director's own.
    let other = Frame::tcp((ip("192.168.47.128"), 80), (ip("192.168.47.1"), 40999), ACK);
    let err = icmp4_error(
        CLIENT_MAC,
        DIR_EXT_MAC,
        ip4("192.168.47.2"),
        ip4("192.168.47.128"),
        3,
        4,
        mtu,
        &quote(&other),
    );
    assert_eq!(f.run(&err, f.link_index("ext0")), (XDP_PASS, err.clone()));
    let echo = icmp4_error(
        CLIENT_MAC,
        DIR_EXT_MAC,
        ip4("192.168.47.1"),
        ip4("192.168.47.128"),
        8,
        0,
        [0, 1, 0, 1],
        b"ping",
    );
    assert_eq!(f.run(&echo, f.link_index("ext0")), (XDP_PASS, echo.clone()));
}

#[test]
fn ipv6_nat_forward_and_reply_exact_bytes() {
    let Some(f) = setup() else { return };
    let (c, vip, rs) = (
        ip("2001:db8:47::1"),
        ip("2001:db8:47::128"),
        ip("2001:db8:211::129"),
    );
    let syn = Frame::tcp((c, 40000), (vip, 80), SYN)
        .macs(CLIENT_MAC, DIR_EXT_MAC)
        .payload(b"GET /");
    let (action, out) = f.run(&syn.build(), f.link_index("ext0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out, dnat(&syn, RS_MACS, (rs, 8080)), "hop limit one less");
    let reply = Frame::tcp((rs, 8080), (c, 40000), SYN | ACK).macs(RS_MAC, DIR_INT_MAC);
    let (action, out) = f.run(&reply.build(), f.link_index("int0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out, snat(&reply, VIP_MACS, (vip, 80)));
    // An extension header before TCP: passed untouched (documented rule).
    let mut ext = syn.build();
    ext[14 + 6] = 0; // next header: hop-by-hop options
    assert_eq!(f.run(&ext, f.link_index("ext0")), (XDP_PASS, ext.clone()));
}

// The per-CPU flow cache (`lvs-ebpf/src/flow.rs`). BPF_PROG_TEST_RUN runs
// every frame on the calling thread's CPU, so one test's frames meet one
// CPU's cache; the test pins itself to CPU 0 to be sure.

pub(crate) fn pin_to_cpu0() {
    // SAFETY: a plain sched_setaffinity on this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

fn client_ack(sport: u16, flags: u8) -> Frame {
    client_tcp(sport, flags).payload(b"some data")
}

/// Opens a connection from client port `sport` (SYN; for NAT the real
/// server's SYN-ACK; the client's ACK, which makes it ESTABLISHED).
fn open(f: &Fixture, sport: u16, nat: bool) {
    assert_eq!(
        f.run(&client_ack(sport, SYN).build(), f.link_index("ext0"))
            .0,
        XDP_REDIRECT
    );
    if nat {
        let synack = rs_tcp(sport, SYN | ACK);
        assert_eq!(f.run(&synack.build(), f.link_index("int0")).0, XDP_REDIRECT);
    }
    assert_eq!(
        f.run(&client_ack(sport, ACK).build(), f.link_index("ext0"))
            .0,
        XDP_REDIRECT
    );
}

/// Runs `frame`; the flow cache must have served it `served` times (0
/// or 1), else the failure says `what`.
fn run_served(f: &Fixture, frame: &[u8], ifindex: u32, served: u64, what: &str) -> (u32, Vec<u8>) {
    let hits = f.counter(counters::FLOW_HIT);
    let out = f.run(frame, ifindex);
    assert_eq!(f.counter(counters::FLOW_HIT), hits + served, "{what}");
    out
}

/// Runs `frame` twice: the first time through the shared path (which fills
/// the cache), the second from the cache. Both must give the same action
/// and bytes; returns them.
fn twice(f: &Fixture, frame: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
    let first = run_served(f, frame, ifindex, 0, "first run: shared path");
    let second = cached(f, frame, ifindex);
    assert_eq!(
        first, second,
        "the cache forwards exactly as the shared path"
    );
    first
}

/// [`open`]s a NAT connection from `sport` and has the cache serve its
/// next ACK; returns that ACK.
fn open_cached(f: &Fixture, sport: u16) -> Vec<u8> {
    open(f, sport, true);
    let ack = client_ack(sport, ACK).build();
    cached(f, &ack, f.link_index("ext0"));
    ack
}

/// Runs `frame`, which the cache must serve.
fn cached(f: &Fixture, frame: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
    run_served(f, frame, ifindex, 1, "served from the cache")
}

#[test]
fn flow_cache_forwards_established_nat_exactly_both_ways() {
    let Some(f) = cache_setup() else { return };
    open(&f, 41000, true);
    // The handshake's last ACK (the shared path) filled the slot.
    let ack = client_ack(41000, ACK | PSH);
    let (action, out) = cached(&f, &ack.build(), f.link_index("ext0"));
    assert_eq!(action, XDP_REDIRECT);
    // The cache decrements the TTL too (its checksum delta includes it).
    assert_eq!(out, want_nat(&ack));
    let p = parse(&out).unwrap();
    assert!(p.ip_csum_ok && p.l4_csum_ok);

    let reply = rs_tcp(41000, ACK).payload(b"an answer");
    let (action, out) = twice(&f, &reply.build(), f.link_index("int0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out, snat(&reply, VIP_MACS, vip(80)));

    // An incremental update keeps a bad checksum bad, as IPVS's does.
    let mut bad = ack.build();
    bad[14 + 20 + 16] ^= 0x5a;
    let hits = f.counter(counters::FLOW_HIT);
    let (action, out) = f.run(&bad, f.link_index("ext0"));
    assert_eq!(
        (action, f.counter(counters::FLOW_HIT)),
        (XDP_REDIRECT, hits + 1)
    );
    let p = parse(&out).unwrap();
    assert!(p.ip_csum_ok && !p.l4_csum_ok);
    let want = want_nat(&ack);
    assert_eq!(out[..50], want[..50]);
    assert_eq!(out[52..], want[52..]);
}

/// A client's frame as DNAT makes it.
fn want_nat(ack: &Frame) -> Vec<u8> {
    dnat(ack, RS_MACS, rs(8080))
}

#[test]
fn flow_cache_serves_udp_and_dr_and_tun() {
    let Some(f) = cache_setup() else { return };
    // UDP through NAT: the forward direction always meets the shared path
    // (after an eviction it must recreate the reply entry); the replies
    // are served from the cache from the first one on.
    let q = Frame::udp((ip("192.168.47.1"), 34000), (ip("192.168.47.128"), 53))
        .macs(CLIENT_MAC, DIR_EXT_MAC)
        .payload(b"query");
    let hits = f.counter(counters::FLOW_HIT);
    for _ in 0..2 {
        let (action, out) = f.run(&q.build(), f.link_index("ext0"));
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(out, dnat(&q, RS_MACS, rs(5353)));
    }
    assert_eq!(f.counter(counters::FLOW_HIT), hits);
    let a = Frame::udp((ip("192.168.211.129"), 5353), (ip("192.168.47.1"), 34000))
        .macs(RS_MAC, DIR_INT_MAC)
        .payload(b"answer");
    let (action, out) = twice(&f, &a.build(), f.link_index("int0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out, snat(&a, VIP_MACS, vip(53)));

    // DR: only the MACs change.
    set_method(&f, Method::Route);
    open(&f, 42000, false);
    let ack = client_ack(42000, ACK).build();
    let (action, out) = cached(&f, &ack, f.link_index("ext0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(&out[..6], &RS_MAC);
    assert_eq!(&out[6..12], &DIR_INT_MAC);
    assert_eq!(&out[12..], &dec_ttl(&ack)[12..]);

    // TUN: the outer header is the shared path's, byte for byte.
    set_method(&f, Method::Tunnel);
    open(&f, 43000, false);
    let ack = client_ack(43000, ACK).build();
    let (action, out) = cached(&f, &ack, f.link_index("ext0"));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(&out[..6], &RS_MAC);
    assert_eq!(&out[14..34], &tun_outer(&ack));
    assert_eq!(&out[34..], &dec_ttl(&ack)[14..]);
}

#[test]
fn flow_cache_leaves_state_changes_and_edits_to_the_shared_path() {
    let Some(f) = cache_setup() else { return };
    let ack = open_cached(&f, 44000);
    let hits = f.counter(counters::FLOW_HIT);

    // Weight 0 (quiescing): the next packet goes through the shared path,
    // which keeps the established flow on its server, as IPVS does; then
    // the cache serves it again.
    edit(&f, |snap| snap.services[0].reals[0].weight = 0);
    let (action, out) = f.run(&ack, f.link_index("ext0"));
    assert_eq!(f.counter(counters::FLOW_HIT), hits, "an edit is rechecked");
    assert_eq!(
        (action, out),
        (XDP_REDIRECT, want_nat(&client_ack(44000, ACK)))
    );
    assert_eq!(f.run(&ack, f.link_index("ext0")).0, XDP_REDIRECT);
    assert_eq!(f.counter(counters::FLOW_HIT), hits + 1);
    edit(&f, |snap| snap.services[0].reals[0].weight = 1);

    // FIN and RST always take the shared path, and the ACKs after a FIN
    // too: the connection is no longer established.
    let fin = client_ack(44000, FIN | ACK).build();
    assert_eq!(f.run(&fin, f.link_index("ext0")).0, XDP_REDIRECT);
    assert_eq!(f.run(&ack, f.link_index("ext0")).0, XDP_REDIRECT);
    assert_eq!(f.run(&ack, f.link_index("ext0")).0, XDP_REDIRECT);
    assert_eq!(
        f.counter(counters::FLOW_HIT),
        hits + 1,
        "after FIN: shared path"
    );
    let states: Vec<String> = Tables::open(&f.pin)
        .unwrap()
        .connections()
        .unwrap()
        .iter()
        .filter(|c| c.client.port() == 44000)
        .map(|c| c.state.to_string())
        .collect();
    assert_eq!(states, ["CLOSE_WAIT"], "the FIN moved the state");

    let ack = open_cached(&f, 45000);
    let hits = f.counter(counters::FLOW_HIT);
    let rst = client_ack(45000, RST).build();
    assert_eq!(f.run(&rst, f.link_index("ext0")).0, XDP_REDIRECT);
    f.run(&ack, f.link_index("ext0"));
    assert_eq!(
        f.counter(counters::FLOW_HIT),
        hits,
        "after RST: shared path"
    );

    // A removed real server: its connections' next packets meet the
    // shared path's rule, not a stale slot.
    let ack = open_cached(&f, 46000);
    let hits = f.counter(counters::FLOW_HIT);
    edit(&f, |snap| snap.services[0].reals.clear());
    f.run(&ack, f.link_index("ext0"));
    assert_eq!(
        f.counter(counters::FLOW_HIT),
        hits,
        "a removal is rechecked"
    );
}

// VLAN trunks. This kernel has no 802.1Q devices to build a live trunk
// with, so the test writes the VLAN maps `lvs load` keeps from the host's
// VLAN sub-interfaces itself: VLAN 100 arriving on ext0 is ext0's, VLAN
// 200 arriving on int0 is int0's, and int0 stands for a sub-interface of
// VLAN 200 on int0 (what the FIB sends out of it leaves tagged 200).

/// `frame` with an 802.1Q tag (`tci`: priority bits and VLAN id) inserted.
fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

fn set_vlans(f: &Fixture) {
    use aya::maps::{Array, HashMap, Map, MapData};
    use lvs_common::{Config, VlanDev, VlanKey};
    let open = |name: &str| MapData::from_pin(f.pin.join(name)).unwrap();
    let (ext, int) = (f.link_index("ext0"), f.link_index("int0"));
    let mut vin: HashMap<MapData, VlanKey, u32> =
        HashMap::try_from(Map::HashMap(open("VLAN_IN"))).unwrap();
    for (ifindex, vid) in [(ext, 100), (int, 200)] {
        let k = VlanKey {
            ifindex,
            vid,
            _pad: 0,
        };
        vin.insert(k, ifindex, 0).unwrap();
    }
    let mut vout: HashMap<MapData, u32, VlanDev> =
        HashMap::try_from(Map::HashMap(open("VLAN_OUT"))).unwrap();
    let dev = VlanDev {
        parent: int,
        vid: 200,
        _pad: 0,
    };
    vout.insert(int, dev, 0).unwrap();
    let mut config: Array<MapData, Config> = Array::try_from(Map::Array(open("CONFIG"))).unwrap();
    let mut c = config.get(&0, 0).unwrap();
    c.vlans = 1;
    config.set(0, c, 0).unwrap();
}

#[test]
fn vlan_tags_are_parsed_rewritten_pushed_and_popped() {
    let Some(f) = setup() else { return };
    set_vlans(&f);
    let (ext, int) = (f.link_index("ext0"), f.link_index("int0"));
    // Priority 5 on VLAN 100 in; out of int0 on VLAN 200 with priority 5.
    let syn = client_syn();
    let (action, out) = f.run(&tagged(&syn.build(), 0xa000 | 100), ext);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        out,
        tagged(&want_nat(&syn), 0xa000 | 200),
        "VLAN id rewritten"
    );
    let p = parse(
        &out[..12]
            .iter()
            .chain(&out[16..])
            .copied()
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(p.ip_csum_ok && p.l4_csum_ok);

    // The reply arrives tagged 200 on int0 and leaves ext0 untagged (ext0
    // is no sub-interface): the tag is popped.
    let reply = rs_tcp(40000, SYN | ACK);
    let (action, out) = f.run(&tagged(&reply.build(), 200), int);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        out,
        snat(&reply, VIP_MACS, vip(80)),
        "tag popped towards an untagged link"
    );

    // An untagged client frame whose way out is VLAN 200: a tag is pushed.
    let syn2 = client_tcp(40002, SYN);
    let (action, out) = f.run(&syn2.build(), ext);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out, tagged(&want_nat(&syn2), 200), "tag pushed");

    // TUN keeps the frame's tag in front of the new outer header, then
    // rewrites it for the way out.
    set_method(&f, Method::Tunnel);
    let syn3 = client_tcp(40003, SYN).build();
    let (action, out) = f.run(&tagged(&syn3, 100), ext);
    assert_eq!(action, XDP_REDIRECT);
    let outer = tun_outer(&syn3);
    let mut want = RS_MAC.to_vec();
    want.extend_from_slice(&DIR_INT_MAC);
    want.extend_from_slice(&[0x81, 0x00, 0x00, 200, 0x08, 0x00]);
    want.extend_from_slice(&outer);
    want.extend_from_slice(&dec_ttl(&syn3)[14..]);
    assert_eq!(out, want, "IPIP under the egress VLAN's tag");

    // A VLAN the director has no sub-interface for, and two tags: passed
    // untouched.
    for frame in [
        tagged(&client_syn().build(), 300),
        tagged(&tagged(&client_syn().build(), 100), 100),
    ] {
        assert_eq!(f.run(&frame, ext), (XDP_PASS, frame.clone()));
    }
}

// A real server the health checker removed (`Tables::mark_nodest`, which
// `lvs load --config` and `lvs check` call after the commit that removes a
// server for failed checks): as IPVS with a destination no longer
// available. `lvsadm -d` marks nothing (the test above: its connections
// continue).

/// The TCP service's servers set to `ports` of 192.168.211.129, in order.
fn set_tcp_reals(f: &Fixture, ports: &[u16]) {
    edit(f, |snap| {
        let s = &mut snap.services[0];
        assert_eq!(s.key.port, 80);
        s.reals = ports
            .iter()
            .map(|&p| RealServer::new(ip("192.168.211.129"), p, Method::Masq, 1))
            .collect();
    });
}

/// Marks the TCP service's removed server 192.168.211.129:8080; returns
/// how many slots changed.
fn mark_8080(f: &Fixture, expire: bool) -> usize {
    let mut t = Tables::open(&f.pin).unwrap();
    let key = t.snapshot().unwrap().services[0].key;
    t.mark_nodest(&key, ip("192.168.211.129"), 8080, expire)
        .unwrap()
}

/// The tracked connection of client port `sport`: (state, real server).
fn conn_of(f: &Fixture, sport: u16) -> Option<(String, String)> {
    Tables::open(&f.pin)
        .unwrap()
        .connections()
        .unwrap()
        .iter()
        .find(|c| c.client.port() == sport)
        .map(|c| (c.state.to_string(), c.real.to_string()))
}

#[test]
fn a_checker_removed_servers_connections_are_dropped_until_it_returns() {
    let Some(f) = cache_setup() else { return };
    let ack = open_cached(&f, 47000);

    // Removed (8081 takes its place), then marked.
    set_tcp_reals(&f, &[8081]);
    assert_eq!(mark_8080(&f, false), 1);
    assert_eq!(mark_8080(&f, false), 0, "marking twice changes nothing");
    let (hits, drops) = (
        f.counter(counters::FLOW_HIT),
        f.counter(counters::NODEST_DROP),
    );
    for n in 1..=2 {
        let (action, out) = f.run(&ack, f.link_index("ext0"));
        assert_eq!((action, out), (XDP_DROP, ack.clone()), "packet {n}");
        assert_eq!(f.counter(counters::NODEST_DROP), drops + n);
    }
    assert_eq!(
        f.counter(counters::FLOW_HIT),
        hits,
        "the marked server's slot no longer serves the flow"
    );
    // The connection stays (it times out as IPVS's does), and so does the
    // reply direction: IPVS's out path translates whatever the server
    // still sends.
    assert_eq!(
        conn_of(&f, 47000),
        Some(("ESTABLISHED".into(), "192.168.211.129:8080".into()))
    );
    let reply = rs_tcp(47000, ACK).payload(b"late");
    let (action, out) = f.run(&reply.build(), f.link_index("int0"));
    assert_eq!(
        (action, out),
        (XDP_REDIRECT, snat(&reply, VIP_MACS, vip(80)))
    );

    // Back (the checker adds it again): the same slot, unmarked, and the
    // connection is forwarded again, exactly as before.
    set_tcp_reals(&f, &[8081, 8080]);
    let (action, out) = f.run(&ack, f.link_index("ext0"));
    assert_eq!(
        (action, out),
        (XDP_REDIRECT, want_nat(&client_ack(47000, ACK)))
    );
    assert_eq!(f.counter(counters::NODEST_DROP), drops + 2);
    cached(&f, &ack, f.link_index("ext0"));
}

#[test]
fn with_expire_nodest_conn_the_connection_ends_at_its_next_packet() {
    let Some(f) = cache_setup() else { return };
    let ack = open_cached(&f, 48000);
    set_tcp_reals(&f, &[8081]);
    assert_eq!(mark_8080(&f, true), 1);
    assert!(
        conn_of(&f, 48000).is_some(),
        "ended at a packet, not before"
    );

    // As IPVS since Linux 5.9: the entry is expired and the packet goes on
    // as one without a connection — a non-SYN segment to the director's
    // stack (which resets it), untouched.
    let (drops, no_conn) = (
        f.counter(counters::NODEST_DROP),
        f.counter(counters::NO_CONN),
    );
    let (action, out) = f.run(&ack, f.link_index("ext0"));
    assert_eq!((action, out), (XDP_PASS, ack.clone()));
    assert_eq!(f.counter(counters::NO_CONN), no_conn + 1);
    assert_eq!(f.counter(counters::NODEST_DROP), drops);
    assert_eq!(conn_of(&f, 48000), None, "the connection is gone");

    // The client's next SYN from that port is scheduled anew, to a member.
    let syn = client_ack(48000, SYN);
    let (action, out) = f.run(&syn.build(), f.link_index("ext0"));
    assert_eq!((action, out), (XDP_REDIRECT, dnat(&syn, RS_MACS, rs(8081))));
    assert_eq!(
        conn_of(&f, 48000),
        Some(("SYN_RECV".into(), "192.168.211.129:8081".into()))
    );
}

#[test]
fn a_removed_servers_udp_flow_is_dropped_or_with_expire_scheduled_anew() {
    let Some(f) = cache_setup() else { return };
    let q = |sport: u16| {
        Frame::udp((ip("192.168.47.1"), sport), (ip("192.168.47.128"), 53))
            .macs(CLIENT_MAC, DIR_EXT_MAC)
            .payload(b"query")
    };
    let to = |frame: &Frame, port: u16| dnat(frame, RS_MACS, rs(port));
    for sport in [35000, 35001] {
        let (action, out) = f.run(&q(sport).build(), f.link_index("ext0"));
        assert_eq!((action, out), (XDP_REDIRECT, to(&q(sport), 5353)));
    }
    // 5353 is out of the UDP service (5354 in), its slot marked: without
    // expire, the flow's datagrams are dropped.
    let mut t = Tables::open(&f.pin).unwrap();
    let mut snap = t.snapshot().unwrap();
    let s = &mut snap.services[1];
    assert_eq!((s.key.proto, s.key.port), (Proto::Udp, 53));
    let key = s.key;
    s.reals = vec![RealServer::new(
        ip("192.168.211.129"),
        5354,
        Method::Masq,
        1,
    )];
    t.commit(&snap).unwrap();
    assert_eq!(
        t.mark_nodest(&key, ip("192.168.211.129"), 5353, false)
            .unwrap(),
        1
    );
    drop(t);
    let drops = f.counter(counters::NODEST_DROP);
    let (action, out) = f.run(&q(35000).build(), f.link_index("ext0"));
    assert_eq!((action, out), (XDP_DROP, q(35000).build()));
    assert_eq!(f.counter(counters::NODEST_DROP), drops + 1);

    // With expire: the entry ends and the datagram is scheduled anew, to
    // the member; the flow then stays there.
    let mut t = Tables::open(&f.pin).unwrap();
    assert_eq!(
        t.mark_nodest(&key, ip("192.168.211.129"), 5353, true)
            .unwrap(),
        1,
        "adding expire changes the mark"
    );
    drop(t);
    for _ in 0..2 {
        let (action, out) = f.run(&q(35001).build(), f.link_index("ext0"));
        assert_eq!((action, out), (XDP_REDIRECT, to(&q(35001), 5354)));
    }
    assert_eq!(f.counter(counters::NODEST_DROP), drops + 1);
    assert_eq!(
        conn_of(&f, 35001),
        Some(("UDP".into(), "192.168.211.129:5354".into()))
    );
}
