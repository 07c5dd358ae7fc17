//! The data path's packet rules against hostile frames, through
//! BPF_PROG_TEST_RUN (exact output bytes): ICMP errors whose IP length
//! cuts the quoted headers, ICMP errors quoting IPv4 options, frames not
//! addressed to the link's MAC, TTL / hop limit (decremented on every
//! method, time exceeded at 1), IPv4 header checksums, fragments and IPv6
//! extension headers. Each test is one rule of the README's "Packet rules".

use std::net::{Ipv4Addr, Ipv6Addr};

use lvs::model::{Method, Proto};
use lvs_common::counters;
use lvs_lab::{packet::*, require_root, xdpns::Plan};

use crate::common::xdp::{fixture_with, ip, service, Fixture, Run, XDP_PASS, XDP_REDIRECT, XDP_TX};
use lvs_lab::xdpns::mac;

const CLIENT_MAC: Mac = mac::CLIENT;
const DIR_EXT_MAC: Mac = mac::DIR_EXT;
const DIR_INT_MAC: Mac = mac::DIR_INT;
const RS_MAC: Mac = mac::RS;

const CLIENT: &str = "192.168.47.1";
const VIP: &str = "192.168.47.128";
const RS: &str = "192.168.211.129";
const CLIENT6: &str = "2001:db8:47::1";
const VIP6: &str = "2001:db8:47::128";
const RS6: &str = "2001:db8:211::129";

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The seed plan with NAT TCP VIP:80 -> RS:8080, NAT UDP VIP:53 ->
/// RS:5353, NAT TCP [VIP6]:80 -> [RS6]:8080, DR TCP VIP:81 -> RS:81 and
/// TUN TCP VIP:82 -> RS:82 (the real server behind int0).
/// An ICMP error (`typ`, `code`, the 4 bytes after the checksum) from the
/// VIP to the client, quoting `quoted`: what the director sends or
/// translates towards the client.
fn to_client(typ: u8, code: u8, info: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    icmp4_error(
        DIR_EXT_MAC,
        CLIENT_MAC,
        v4(VIP),
        v4(CLIENT),
        typ,
        code,
        info,
        quoted,
    )
}

/// The fixture, if the test runs as root (the others skip).
fn setup() -> Option<Fixture> {
    require_root("hostile").then(fixture)
}

fn fixture() -> Fixture {
    let f = fixture_with("ho", &Plan::seed(), Default::default());
    f.services(vec![
        service(Proto::Tcp, ip(VIP), 80, &[(ip(RS), 8080, Method::Masq)]),
        service(Proto::Udp, ip(VIP), 53, &[(ip(RS), 5353, Method::Masq)]),
        service(Proto::Tcp, ip(VIP6), 80, &[(ip(RS6), 8080, Method::Masq)]),
        service(Proto::Tcp, ip(VIP), 81, &[(ip(RS), 81, Method::Route)]),
        service(Proto::Tcp, ip(VIP), 82, &[(ip(RS), 82, Method::Tunnel)]),
    ]);
    f
}

fn syn(sport: u16, dport: u16) -> Frame {
    Frame::tcp((ip(CLIENT), sport), (ip(VIP), dport), SYN)
        .macs(CLIENT_MAC, DIR_EXT_MAC)
        .payload(b"GET / HTTP/1.0\r\n\r\n")
}

/// `f` as NAT sends it to the real server (port 8080), before the TTL.
fn dnat(f: &Frame) -> Frame {
    let mut w = f.clone().macs(DIR_INT_MAC, RS_MAC);
    w.dst = if f.dst.is_ipv4() { ip(RS) } else { ip(RS6) };
    if let L4::Tcp { dport, .. } = &mut w.l4 {
        *dport = 8080;
    }
    w
}

/// Counter deltas while `run` runs.
fn deltas(f: &Fixture, run: impl FnOnce()) -> Vec<(&'static str, u64)> {
    let before = f.counters().unwrap();
    run();
    let after = f.counters().unwrap();
    (0..counters::COUNT as usize)
        .filter(|&i| after[i] != before[i])
        .map(|i| (counters::NAMES[i], after[i] - before[i]))
        .collect()
}

/// The ICMP error a router on the inside sends to the client about the
/// DNATed `sent` packet (its IP header and 8 bytes quoted).
fn error_about(sent: &[u8]) -> Vec<u8> {
    let ihl = (sent[14] & 0x0f) as usize * 4;
    icmp4_error(
        RS_MAC,
        DIR_INT_MAC,
        v4("192.168.211.1"),
        v4(CLIENT),
        3,
        4,
        [0, 0, 5, 0],
        &sent[14..14 + ihl + 8],
    )
}

#[test]
fn icmp_errors_whose_ip_length_cuts_the_quote_are_not_translated() {
    let Some(f) = setup() else { return };
    let s = syn(40000, 80);
    assert_eq!(f.run(&s.build(), f.link_index("ext0")).0, XDP_REDIRECT);
    // The error as a router sends it is translated (the rule's control).
    let sent = dnat(&s).build();
    let err = error_about(&sent);
    assert_eq!(f.run(&err, f.link_index("int0")).0, XDP_REDIRECT);
    // The same bytes with an IP total length that ends inside the quoted
    // TCP ports (the frame still holds them, as padding): not translated.
    for tot in [20 + 8 + 20 + 2, 20 + 8 + 10, 20 + 4] {
        let mut cut = err.clone();
        cut[16..18].copy_from_slice(&(tot as u16).to_be_bytes());
        fix_ipv4_checksum(&mut cut);
        let d = deltas(&f, || {
            assert_eq!(
                f.run(&cut, f.link_index("int0")),
                (XDP_PASS, cut.clone()),
                "total length {tot}"
            )
        });
        assert_eq!(d, [("rx", 1), ("pass", 1)], "total length {tot}");
    }

    // ICMPv6: a tracked connection's "packet too big" with a payload
    // length that ends inside the quoted ports.
    let s6 = Frame::tcp((ip(CLIENT6), 40000), (ip(VIP6), 80), SYN).macs(CLIENT_MAC, DIR_EXT_MAC);
    assert_eq!(f.run(&s6.build(), f.link_index("ext0")).0, XDP_REDIRECT);
    let sent6 = dnat(&s6).build();
    let err6 = icmp6_error(
        RS_MAC,
        DIR_INT_MAC,
        v6("2001:db8:211::1"),
        v6(CLIENT6),
        2,
        0,
        [0, 0, 5, 0],
        &sent6[14..14 + 48],
    );
    assert_eq!(f.run(&err6, f.link_index("int0")).0, XDP_REDIRECT);
    for plen in [8 + 40 + 2, 8 + 20] {
        let mut cut = err6.clone();
        cut[18..20].copy_from_slice(&(plen as u16).to_be_bytes());
        let (action, out) = f.run(&cut, f.link_index("int0"));
        assert_eq!(
            (action, out),
            (XDP_PASS, cut.clone()),
            "payload length {plen}"
        );
    }
}

#[test]
fn icmp_errors_quoting_ipv4_options_are_translated() {
    let Some(f) = setup() else { return };
    // A client packet with options (NOP NOP NOP EOL, and a 12-byte run).
    for (sport, opts) in [(40000u16, vec![1, 1, 1, 0]), (40001, vec![1; 12])] {
        let s = syn(sport, 80);
        let sb = with_ip_options(&s.build(), &opts);
        let (action, out) = f.run(&sb, f.link_index("ext0"));
        assert_eq!(action, XDP_REDIRECT, "options in the client's packet");
        let sent = with_ip_options(&dnat(&s).build(), &opts);
        assert_eq!(out, dec_ttl(&sent), "DNAT of a packet with options");
        // The router's error quotes the header with its options.
        let err = error_about(&sent);
        let d = deltas(&f, || {
            let (action, out) = f.run(&err, f.link_index("int0"));
            assert_eq!(action, XDP_REDIRECT, "translated");
            let want = to_client(3, 4, [0, 0, 5, 0], &sb[14..14 + 20 + opts.len() + 8]);
            assert_eq!(out, dec_ttl(&want), "the client sees its own packet quoted");
        });
        assert_eq!(d, [("rx", 1), ("icmp_reply", 1)]);
    }
}

#[test]
fn frames_not_addressed_to_the_link_pass_and_are_counted() {
    let Some(f) = setup() else { return };
    let ext = f.link_index("ext0");
    for dst in [
        [0xff; 6],
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
        [0x33, 0x33, 0, 0, 0, 1],
        [0x02, 0, 0, 0, 0x47, 0x99],
    ] {
        let b = syn(40100, 80).macs(CLIENT_MAC, dst).build();
        let d = deltas(&f, || {
            assert_eq!(f.run(&b, ext), (XDP_PASS, b.clone()), "{dst:x?}")
        });
        assert_eq!(d, [("rx", 1), ("foreign_mac", 1)], "{dst:x?}");
    }
    // An established flow the per-CPU cache serves: the same rule.
    super::prog_run::pin_to_cpu0();
    assert_eq!(f.run(&syn(40200, 81).build(), ext).0, XDP_REDIRECT);
    let ack = Frame::tcp((ip(CLIENT), 40200), (ip(VIP), 81), ACK).macs(CLIENT_MAC, DIR_EXT_MAC);
    assert_eq!(f.run(&ack.build(), ext).0, XDP_REDIRECT);
    assert_eq!(f.run(&ack.build(), ext).0, XDP_REDIRECT);
    let b = ack.clone().macs(CLIENT_MAC, [0xff; 6]).build();
    let d = deltas(&f, || assert_eq!(f.run(&b, ext), (XDP_PASS, b.clone())));
    assert_eq!(d, [("rx", 1), ("foreign_mac", 1)]);
}

#[test]
fn ttl_is_decremented_on_every_method() {
    let Some(f) = setup() else { return };
    let (ext, int) = (f.link_index("ext0"), f.link_index("int0"));
    // NAT, both ways (IPv4 and IPv6).
    let s = syn(40300, 80);
    let (action, out) = f.run(&s.build(), ext);
    assert_eq!((action, out), (XDP_REDIRECT, dec_ttl(&dnat(&s).build())));
    let reply =
        Frame::tcp((ip(RS), 8080), (ip(CLIENT), 40300), SYN | ACK).macs(RS_MAC, DIR_INT_MAC);
    let mut want = reply.clone().macs(DIR_EXT_MAC, CLIENT_MAC);
    want.src = ip(VIP);
    if let L4::Tcp { sport, .. } = &mut want.l4 {
        *sport = 80;
    }
    assert_eq!(
        f.run(&reply.build(), int),
        (XDP_REDIRECT, dec_ttl(&want.build()))
    );
    let s6 = Frame::tcp((ip(CLIENT6), 40300), (ip(VIP6), 80), SYN).macs(CLIENT_MAC, DIR_EXT_MAC);
    assert_eq!(
        f.run(&s6.build(), ext),
        (XDP_REDIRECT, dec_ttl(&dnat(&s6).build()))
    );
    // DR: the frame, MACs and TTL.
    let d = syn(40300, 81).build();
    let mut want = dec_ttl(&d);
    want[..6].copy_from_slice(&RS_MAC);
    want[6..12].copy_from_slice(&DIR_INT_MAC);
    assert_eq!(f.run(&d, ext), (XDP_REDIRECT, want));
    // TUN: the inner header's TTL; the outer one is 64.
    let t = syn(40300, 82).build();
    let (action, out) = f.run(&t, ext);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out[14 + 8], 64, "outer TTL");
    assert_eq!(&out[34..], &dec_ttl(&t)[14..], "inner packet, TTL one less");
    let inner: Vec<u8> = out[..12]
        .iter()
        .chain(&[8, 0])
        .chain(&out[34..])
        .copied()
        .collect();
    let p = parse(&inner);
    assert!(p.is_some_and(|p| p.ip_csum_ok && p.l4_csum_ok && p.ttl == 63));
}

#[test]
fn ttl_one_is_answered_with_time_exceeded_never_forwarded() {
    let Some(f) = setup() else { return };
    let (ext, int) = (f.link_index("ext0"), f.link_index("int0"));
    for (ttl, dport) in [(1u8, 80u16), (0, 80), (1, 81), (1, 82)] {
        let mut s = syn(40400 + ttl as u16, dport);
        s.ttl = ttl;
        let b = s.build();
        let mut out = Vec::new();
        let d = deltas(&f, || {
            let (action, o) = f.run(&b, ext);
            assert_eq!(action, XDP_TX, "TTL {ttl} to port {dport}: answered");
            out = o;
        });
        assert!(d.contains(&("ttl_exceeded", 1)), "{d:?}");
        assert!(!d.iter().any(|(n, _)| n.ends_with("_fwd")), "{d:?}");
        let want = to_client(11, 0, [0; 4], &b[14..14 + 28]);
        assert_eq!(out, want, "time exceeded from the VIP, quoting the packet");
    }
    // With IP options: the quote is the header with them, and 8 bytes.
    let mut s = syn(40450, 80);
    s.ttl = 1;
    let b = with_ip_options(&s.build(), &[1, 1, 1, 0, 1, 1, 1, 1]);
    let d = deltas(&f, || {
        let (action, out) = f.run(&b, ext);
        assert_eq!(action, XDP_TX, "TTL 1 with options: answered");
        let want = to_client(11, 0, [0; 4], &b[14..14 + 28 + 8]);
        assert_eq!(out, want, "time exceeded quoting the options");
    });
    assert!(d.contains(&("ttl_exceeded", 1)), "{d:?}");
    // IPv6: hop limit 1.
    let mut s6 =
        Frame::tcp((ip(CLIENT6), 40400), (ip(VIP6), 80), SYN).macs(CLIENT_MAC, DIR_EXT_MAC);
    s6.ttl = 1;
    let b = s6.build();
    let (action, out) = f.run(&b, ext);
    assert_eq!(action, XDP_TX);
    let want = icmp6_error(
        DIR_EXT_MAC,
        CLIENT_MAC,
        v6(VIP6),
        v6(CLIENT6),
        3,
        0,
        [0; 4],
        &b[14..14 + 48],
    );
    assert_eq!(out, want, "ICMPv6 time exceeded from the VIP");

    // A NAT reply with TTL 1 goes untranslated to the kernel, which
    // answers the real server as a router does.
    assert_eq!(f.run(&syn(40500, 80).build(), ext).0, XDP_REDIRECT);
    let mut reply =
        Frame::tcp((ip(RS), 8080), (ip(CLIENT), 40500), SYN | ACK).macs(RS_MAC, DIR_INT_MAC);
    reply.ttl = 1;
    let b = reply.build();
    let d = deltas(&f, || assert_eq!(f.run(&b, int), (XDP_PASS, b.clone())));
    assert_eq!(d, [("rx", 1), ("ttl_exceeded", 1)]);

    // A cached established flow: TTL 1 is not forwarded from the cache.
    super::prog_run::pin_to_cpu0();
    assert_eq!(f.run(&syn(40600, 81).build(), ext).0, XDP_REDIRECT);
    let mut ack = Frame::tcp((ip(CLIENT), 40600), (ip(VIP), 81), ACK).macs(CLIENT_MAC, DIR_EXT_MAC);
    assert_eq!(f.run(&ack.build(), ext).0, XDP_REDIRECT);
    let d = deltas(&f, || assert_eq!(f.run(&ack.build(), ext).0, XDP_REDIRECT));
    assert!(d.contains(&("flow_hit", 1)), "cached: {d:?}");
    ack.ttl = 1;
    let d = deltas(&f, || assert_eq!(f.run(&ack.build(), ext).0, XDP_TX));
    assert_eq!(d, [("rx", 1), ("ttl_exceeded", 1)]);
}

#[test]
fn bad_ipv4_header_checksums_pass_as_malformed() {
    let Some(f) = setup() else { return };
    let ext = f.link_index("ext0");
    let mut b = syn(40700, 80).build();
    b[24] ^= 0x01;
    let d = deltas(&f, || assert_eq!(f.run(&b, ext), (XDP_PASS, b.clone())));
    assert_eq!(d, [("rx", 1), ("malformed", 1)]);
    // With options, the options are summed too.
    let mut o = with_ip_options(&syn(40701, 80).build(), &[1, 1, 1, 1]);
    o[35] ^= 0x10;
    let d = deltas(&f, || assert_eq!(f.run(&o, ext), (XDP_PASS, o.clone())));
    assert_eq!(d, [("rx", 1), ("malformed", 1)]);
    // A cached flow's packet with a bad header checksum: the same rule.
    super::prog_run::pin_to_cpu0();
    assert_eq!(f.run(&syn(40702, 81).build(), ext).0, XDP_REDIRECT);
    let ack = Frame::tcp((ip(CLIENT), 40702), (ip(VIP), 81), ACK).macs(CLIENT_MAC, DIR_EXT_MAC);
    assert_eq!(f.run(&ack.build(), ext).0, XDP_REDIRECT);
    let mut bad = ack.build();
    bad[24] ^= 0x80;
    let d = deltas(&f, || assert_eq!(f.run(&bad, ext), (XDP_PASS, bad.clone())));
    assert_eq!(d, [("rx", 1), ("malformed", 1)]);
}

#[test]
fn fragments_and_extension_headers_to_a_vip_pass_untouched() {
    let Some(f) = setup() else { return };
    let ext = f.link_index("ext0");
    let good = syn(40800, 80).build();
    for (name, flags) in [
        ("first fragment", 0x2000u16),
        ("later fragment", 0x00b9),
        ("last fragment", 0x0010),
    ] {
        let mut b = good.clone();
        b[20..22].copy_from_slice(&flags.to_be_bytes());
        fix_ipv4_checksum(&mut b);
        let d = deltas(&f, || {
            assert_eq!(f.run(&b, ext), (XDP_PASS, b.clone()), "{name}")
        });
        assert_eq!(d, [("rx", 1), ("fragment", 1)], "{name}");
    }
    // IPv6: hop-by-hop options, routing, fragment and destination options
    // headers in front of TCP (8 bytes each, next header TCP).
    let s6 = Frame::tcp((ip(CLIENT6), 40800), (ip(VIP6), 80), SYN)
        .macs(CLIENT_MAC, DIR_EXT_MAC)
        .build();
    for ext_hdr in [0u8, 43, 44, 60] {
        let mut b = s6[..54].to_vec();
        b[20] = ext_hdr;
        let plen = u16::from_be_bytes([b[18], b[19]]) + 8;
        b[18..20].copy_from_slice(&plen.to_be_bytes());
        b.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&s6[54..]);
        let d = deltas(&f, || {
            assert_eq!(
                f.run(&b, ext),
                (XDP_PASS, b.clone()),
                "next header {ext_hdr}"
            )
        });
        assert_eq!(d, [("rx", 1), ("pass", 1)], "next header {ext_hdr}");
    }
    assert_eq!(f.counter(counters::NEW_CONN), 0);
}

/// `LINK_MACS[ifindex]` of the director pinned at `pin`.
fn link_mac(pin: &std::path::Path, ifindex: u32) -> lvs_common::LinkMac {
    use aya::maps::{Array, Map, MapData};
    let m = MapData::from_pin(pin.join(lvs::tables::names::LINK_MACS)).expect("LINK_MACS");
    let a: Array<MapData, lvs_common::LinkMac> = Array::try_from(Map::Array(m)).unwrap();
    a.get(&ifindex, 0).unwrap()
}

#[test]
fn lvs_load_keeps_every_links_mac() {
    if !require_root("hostile") {
        return;
    }
    use crate::common::{lan_director, wait_until};
    let d = lan_director("hmac", lvs_lab::lan::LanConfig::default(), false, &[]).unwrap();
    let ns = &d.lan.director;
    let eth0 = ns.ifindex("eth0").unwrap();
    let pin = d.lan.pin_dir();
    // Written before the director was attached (the lab's DR traffic
    // works: `tests/it/dr.rs`); here the entry itself.
    assert_eq!(
        link_mac(pin, eth0),
        lvs_common::LinkMac::new(d.mac(ns)),
        "eth0's MAC at start"
    );
    // A changed MAC reaches the data path within the daemon's second.
    let new = [0x02, 0, 0, 0, 0x47, 0xaa];
    ns.sh(&format!("ip link set eth0 address {}", mac_str(&new)))
        .unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(3), || link_mac(pin, eth0)
            == lvs_common::LinkMac::new(new)),
        "LINK_MACS follows a link's new MAC"
    );
    // A new link gets its entry too.
    ns.sh("ip link add hm0 type veth peer name hm1 && ip link set hm0 address 02:00:00:00:99:01")
        .unwrap();
    let hm0 = ns.ifindex("hm0").unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(3), || link_mac(pin, hm0)
            == lvs_common::LinkMac::new([0x02, 0, 0, 0, 0x99, 0x01])),
        "a new link's MAC is written"
    );
    // And a removed one's is cleared.
    ns.sh("ip link del hm0").unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(3), || link_mac(pin, hm0).set
            == 0),
        "a removed link's entry is cleared"
    );
}
