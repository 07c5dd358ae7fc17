//! LVS-TUN (`-i`): the director wraps the client's packet in IPIP (IPv6:
//! IPv6-in-IPv6) towards the real server, whose `lvs decap` unwraps it in
//! XDP; the real server holds the VIP on `lo` and answers the client
//! directly. Exact bytes of the encapsulation and of the "fragmentation
//! needed" / "packet too big" answers through BPF_PROG_TEST_RUN, then the
//! LAN lab on the wire.

use std::{net::IpAddr, time::Duration};

use crate::common::xdp::*;
use crate::common::{from_addr, lan_director, to_addr};
use lvs::{loader::TunnelOpts, model::Method};
use lvs_common::{counters, decap_counters};
use lvs_lab::{
    lan::{self, LanConfig},
    packet::{icmp4_error, ipv4_header, ipv6_header, Frame, ACK, SYN},
    require_root,
};

fn vip(port: u16) -> String {
    format!("{}:{port}", lan::VIP)
}

fn rs(i: usize, port: u16) -> String {
    format!("{}:{port}", lan::rs_ip(i))
}

fn a(x: impl ToString) -> IpAddr {
    ip(&x.to_string())
}

/// TUN services on port 80 to LAN real server rs1 (v4 and v6).
fn tun_fixture(tag: &str, tunnel: TunnelOpts) -> Fixture {
    let f = fixture(tag, tunnel);
    f.services(vec![
        tcp_service(a(lan::VIP), 80, &[(a(lan::rs_ip(0)), 80, Method::Tunnel)]),
        tcp_service(a(lan::VIP6), 80, &[(a(lan::rs_ip6(0)), 80, Method::Tunnel)]),
    ]);
    f
}

fn client_packet(v6: bool, sport: u16, flags: u8, payload: usize) -> Frame {
    let (c, v) = if v6 {
        (a(lan::CLIENT_IP6), a(lan::VIP6))
    } else {
        (a(lan::CLIENT_IP), a(lan::VIP))
    };
    Frame::tcp((c, sport), (v, 80), flags)
        .macs(CLIENT_MAC, DIR_MAC)
        .payload(&vec![0x61; payload])
}

/// The frame the director must send to rs1 for `inner` (a client frame):
/// Ethernet to rs1's MAC, an outer header from `src` with TTL/hop limit 64,
/// identification 0, DF and TOS copied from the inner header (IPv6:
/// traffic class and flow label 0), then the inner IP packet unchanged.
fn encapsulated(inner: &[u8], src: IpAddr) -> Vec<u8> {
    encapsulated_to(inner, src, 0)
}

/// [`encapsulated`] towards LAN real server `rs`.
fn encapsulated_to(inner: &[u8], src: IpAddr, rs: usize) -> Vec<u8> {
    // The inner packet is the one forwarded: its TTL is one less (IPVS
    // decrements it before encapsulating).
    let forwarded = lvs_lab::packet::dec_ttl(inner);
    let ip_pkt = &forwarded[14..];
    let mut f = Vec::new();
    f.extend_from_slice(&RS_MAC[rs]);
    f.extend_from_slice(&DIR_MAC);
    match src {
        IpAddr::V4(s) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let df = ip_pkt[6] & 0x40 != 0;
            let mut h = ipv4_header(s, lan::rs_ip(rs), 4, ip_pkt.len(), 64, 0, df);
            // TOS copied: recompute the checksum with it.
            h[1] = ip_pkt[1];
            h[10] = 0;
            h[11] = 0;
            let c = lvs_lab::packet::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        IpAddr::V6(s) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&ipv6_header(s, lan::rs_ip6(rs), 41, ip_pkt.len(), 64));
        }
    }
    f.extend_from_slice(ip_pkt);
    f
}

#[test]
fn tun_ipip_and_ip6ip6_exact_bytes() {
    if !require_root("tun prog_run") {
        return;
    }
    let f = tun_fixture("tunpr", Default::default());
    for v6 in [false, true] {
        // The kernel's source address towards rs1: the DIP for IPv4; for
        // IPv6 the VIP (a /128 on the same link) wins the longest-prefix
        // rule of source address selection over the DIP's /64.
        let src = f.route_src(if v6 {
            a(lan::rs_ip6(0))
        } else {
            a(lan::rs_ip(0))
        });
        // DF set (the builder's default) and, for IPv4, DF clear.
        let mut frames = vec![client_packet(v6, 40000, SYN, 0)];
        if !v6 {
            let mut nodf = client_packet(v6, 40001, SYN, 100);
            nodf.df = false;
            frames.push(nodf);
        }
        for frame in frames {
            let inner = frame.build();
            let (action, out) = f.run(&inner, f.link_index("lan0"));
            assert_eq!(action, XDP_TX, "v6={v6}: rs1 is on the ingress link");
            assert_eq!(out.len(), inner.len() + if v6 { 40 } else { 20 });
            let want = encapsulated(&inner, src);
            if !v6 {
                assert!(ipv4_csum_ok(&out, 14), "outer IPv4 checksum");
                assert_eq!(&out[14..34], &want[14..34], "outer IPv4 header");
            } else {
                assert_eq!(&out[14..54], &want[14..54], "outer IPv6 header");
            }
            assert_frame_eq(&out, &want, &format!("v6={v6} df={}", frame.df));
        }
        // The connection's later packets are tunnelled too.
        let ack = client_packet(v6, 40000, ACK, 10).build();
        let (action, out) = f.run(&ack, f.link_index("lan0"));
        assert_eq!(action, XDP_TX);
        assert_frame_eq(&out, &encapsulated(&ack, src), "later packet");
    }
    assert_eq!(f.counter(counters::TUN_FWD), 5);
    assert_eq!(
        f.counter(counters::NAT_FWD) + f.counter(counters::DR_FWD),
        0
    );
}

#[test]
fn tun_outer_source_from_tunnel_source() {
    if !require_root("tun prog_run") {
        return;
    }
    let s4: std::net::Ipv4Addr = "192.168.47.250".parse().unwrap();
    let s6: std::net::Ipv6Addr = "2001:db8:47::250".parse().unwrap();
    let f = tun_fixture(
        "tunsrc",
        TunnelOpts {
            source4: Some(s4),
            source6: Some(s6),
            mtu: None,
        },
    );
    for (v6, src) in [(false, IpAddr::V4(s4)), (true, IpAddr::V6(s6))] {
        let inner = client_packet(v6, 40000, SYN, 0).build();
        let (action, out) = f.run(&inner, f.link_index("lan0"));
        assert_eq!(action, XDP_TX);
        assert_frame_eq(&out, &encapsulated(&inner, src), &format!("v6={v6}"));
    }
}

/// Checks an ICMP(v6) error the director sent back to the client for
/// `sent` (the client's frame): Ethernet back to the client, from the VIP
/// to the client, the right type/code/MTU, checksums right, and a quote
/// that is the start of the client's IP packet (at least its header + 8
/// bytes, at most what fits in 576 / 1280 bytes). Returns the quote length.
fn assert_too_big(out: &[u8], sent: &[u8], v6: bool, mtu: u32) -> usize {
    assert_eq!(&out[..6], &CLIENT_MAC, "to the client's MAC");
    assert_eq!(&out[6..12], &DIR_MAC, "from the director's MAC");
    if !v6 {
        let quote = out.len() - 14 - 20 - 8;
        assert!(quote >= 28, "quotes at least IP header + 8: {quote}");
        assert!(20 + 8 + quote <= 576, "ICMPv4 errors fit in 576 bytes");
        let (tos, id, df, ttl) = ipv4_free_fields(out);
        assert!(ttl > 0);
        let mut want = icmp4_error(
            DIR_MAC,
            CLIENT_MAC,
            lan::VIP,
            lan::CLIENT_IP,
            3,
            4,
            [0, 0, (mtu >> 8) as u8, mtu as u8],
            &sent[14..14 + quote],
        );
        // Header fields left to the implementation, copied from the
        // output: TOS, identification, DF, TTL (checksum recomputed).
        let h = &mut want[14..34];
        h[1] = tos;
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6] = if df { 0x40 } else { 0 };
        h[8] = ttl;
        h[10] = 0;
        h[11] = 0;
        let c = lvs_lab::packet::checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            &out[14..34],
            &want[14..34],
            "IPv4 header: from the VIP to the client, proto 1"
        );
        assert_eq!(&out[34..42], &want[34..42], "ICMP 3/4, checksum, MTU {mtu}");
        assert_frame_eq(out, &want, "ICMP error");
        quote
    } else {
        let quote = out.len() - 14 - 40 - 8;
        assert!(quote >= 48, "quotes at least IPv6 header + 8: {quote}");
        assert!(40 + 8 + quote <= 1280, "ICMPv6 errors fit in 1280 bytes");
        let hop = out[21];
        assert!(hop > 0);
        let want = icmp6_error(
            DIR_MAC,
            CLIENT_MAC,
            lan::VIP6,
            lan::CLIENT_IP6,
            2,
            0,
            mtu.to_be_bytes(),
            &sent[14..14 + quote],
            hop,
        );
        assert_eq!(
            &out[14..54],
            &want[14..54],
            "IPv6 header: from the VIP to the client, ICMPv6"
        );
        assert_eq!(
            &out[54..62],
            &want[54..62],
            "ICMPv6 2/0, checksum, MTU {mtu}"
        );
        assert_frame_eq(out, &want, "ICMPv6 error");
        quote
    }
}

#[test]
fn tun_too_big_with_df_answers_fragmentation_needed() {
    if !require_root("tun prog_run") {
        return;
    }
    let f = tun_fixture("tunbig", Default::default());
    // A full-sized packet on a 1500 link does not fit once wrapped.
    for v6 in [false, true] {
        let overhead: usize = if v6 { 40 } else { 20 };
        let hdrs = if v6 { 40 + 20 } else { 20 + 20 };
        let big = client_packet(v6, 41000, ACK, 1500 - hdrs).build();
        assert_eq!(big.len(), 14 + 1500);
        // Needs a connection: the SYN first (small, tunnelled).
        let syn = client_packet(v6, 41000, SYN, 0).build();
        assert_eq!(f.run(&syn, f.link_index("lan0")).0, XDP_TX);
        let (action, out) = f.run(&big, f.link_index("lan0"));
        assert_eq!(
            action, XDP_TX,
            "v6={v6}: the error goes back out the same link"
        );
        assert_too_big(&out, &big, v6, 1500 - overhead as u32);
        // One byte less than the limit is tunnelled.
        let fits = client_packet(v6, 41000, ACK, 1500 - hdrs - overhead).build();
        let (action, out) = f.run(&fits, f.link_index("lan0"));
        assert_eq!(action, XDP_TX);
        let src = f.route_src(if v6 {
            a(lan::rs_ip6(0))
        } else {
            a(lan::rs_ip(0))
        });
        assert_frame_eq(&out, &encapsulated(&fits, src), "tunnelled");
        assert_eq!(out.len(), 14 + 1500);
    }
}

#[test]
fn tun_too_big_honours_tunnel_mtu() {
    if !require_root("tun prog_run") {
        return;
    }
    let f = tun_fixture(
        "tunmtu",
        TunnelOpts {
            mtu: Some(1400),
            ..Default::default()
        },
    );
    for v6 in [false, true] {
        let overhead: usize = if v6 { 40 } else { 20 };
        let hdrs = if v6 { 40 + 20 } else { 20 + 20 };
        let syn = client_packet(v6, 42000, SYN, 0).build();
        assert_eq!(f.run(&syn, f.link_index("lan0")).0, XDP_TX);
        // 1400 bytes fit the link but not the tunnel's 1400 once wrapped.
        let big = client_packet(v6, 42000, ACK, 1400 - hdrs).build();
        let (action, out) = f.run(&big, f.link_index("lan0"));
        assert_eq!(action, XDP_TX);
        assert_too_big(&out, &big, v6, 1400 - overhead as u32);
    }
}

// ------------------------------------------------------------ on the wire

#[test]
fn tun_rr_spreads_and_real_servers_answer_directly() {
    if !require_root("tun lan") {
        return;
    }
    let d = lan_director("tun", LanConfig::default(), true, &[]).unwrap();
    let srv = d.web(80);
    d.adm(&["-A", "-t", &vip(80), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(0, 80), "-i", "-w", "1"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(1, 80), "-i", "-w", "1"]);
    let listing = d.adm(&["-L", "-n"]);
    assert_eq!(listing.matches("Tunnel").count(), 2, "{listing}");
    // Three answers from each; TUN keeps the client's address.
    let (_answers, frames) = d.rr_gets(&srv);
    let dir_mac = d.mac(&d.lan.director);
    let rs_macs = [d.mac(&d.lan.rs[0]), d.mac(&d.lan.rs[1])];
    let replies: Vec<_> = from_addr(&frames, d.lan.vip(80))
        .into_iter()
        .filter(|s| !s.outgoing)
        .collect();
    assert!(!replies.is_empty());
    for r in &replies {
        assert!(
            rs_macs.contains(&r.p.src_mac),
            "reply via {:02x?}",
            r.p.src_mac
        );
    }
    let requests = to_addr(&frames, d.lan.vip(80))
        .into_iter()
        .filter(|s| s.outgoing && s.p.dst_mac == dir_mac)
        .count() as u64;
    assert_eq!(d.counter("tun_fwd"), requests);
    assert_eq!(d.counter("fwd_no_neigh"), 0);
    assert_eq!(d.counter("nat_reply"), 0);
    // Each real server unwrapped its share.
    for i in 0..2 {
        assert!(d.decap_counter(i, decap_counters::DECAP) > 0, "rs{}", i + 1);
    }
    assert_eq!(
        d.decap_counter(0, decap_counters::DECAP) + d.decap_counter(1, decap_counters::DECAP),
        requests
    );
}

/// A full-sized segment does not fit in the tunnel: the director answers
/// "fragmentation needed" with MTU 1480, the client's TCP lowers its path
/// MTU to the VIP, and the big request still gets through.
#[test]
fn tun_path_mtu_discovery_on_the_wire() {
    if !require_root("tun pmtu") {
        return;
    }
    let d = lan_director(
        "tunpmtu",
        LanConfig {
            real_servers: 1,
            ..Default::default()
        },
        true,
        &[],
    )
    .unwrap();
    let _srv = d.web(80);
    d.adm(&["-A", "-t", &vip(80), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(0, 80), "-i"]);
    assert_eq!(d.lan.client.path_mtu(lan::VIP.into()).unwrap(), None);
    let body = lan::http_post(
        &d.lan.client,
        d.lan.vip(80),
        20_000,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(body, "rs1\n");
    assert_eq!(
        d.lan.client.path_mtu(lan::VIP.into()).unwrap(),
        Some(1480),
        "{}",
        d.lan
            .client
            .ip(&["route", "get", &lan::VIP.to_string()])
            .unwrap()
    );
}
