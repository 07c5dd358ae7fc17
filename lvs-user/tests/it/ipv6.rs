//! IPv6 services and real servers: NAT on the seed's topology (2001:db8:47::
//! outside, 2001:db8:211:: inside), DR and TUN on the LAN, each carrying
//! real HTTP requests; lvsadm's bracketed addresses through -L/-S/-R; the
//! exact bytes of IPv6 NAT; extension headers passed untouched.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::common::xdp::*;
use crate::common::{director_v6, from_addr, l4_frames, lan_director, tally, T};
use lvs::model::{Method, Proto};
use lvs_common::counters;
use lvs_lab::{
    clients,
    lan::{self, Capture, LanConfig},
    packet::{parse, Frame, ACK, SYN},
    require_root,
    seed::{self, CLIENT_IP6, VIP6},
    servers,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SVC: &str = "[2001:db8:47::128]:80";

#[test]
fn nat6_http_rr_and_save_restore_with_brackets() {
    if !require_root("ipv6 nat") {
        return;
    }
    let d = director_v6("nat6", 2).unwrap();
    let srv: Vec<_> = d
        .seed
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| servers::http(ns, sa("[::]:80"), &format!("hao{}\n", i + 2)).unwrap())
        .collect();
    // The seed's real servers, [2001:db8:211::129] and the next one (the
    // lab's seed::rs_ip6 says which address that is).
    let rip: Vec<String> = (0..2).map(|i| format!("[{}]", seed::rs_ip6(i))).collect();
    let real = |i: usize, port: u16| format!("{}:{port}", rip[i]);
    d.adm(&["-A", "-t", SVC, "-s", "rr"]);
    for i in 0..2 {
        d.adm(&["-a", "-t", SVC, "-r", &real(i, 80), "-m", "-w", "1"]);
    }
    let vip6 = SocketAddr::new(IpAddr::V6(VIP6), 80);
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(
            clients::http_get(&d.seed.client, vip6, T)
                .unwrap_or_else(|e| panic!("{e:#}\n{}", d.diag())),
        );
    }
    assert_eq!(
        tally(&answers),
        BTreeMap::from([("hao2\n".to_owned(), 3), ("hao3\n".to_owned(), 3)]),
    );
    for w in answers.windows(2) {
        assert_ne!(w[0], w[1], "{answers:?}");
    }
    for s in &srv {
        assert!(s.peers().iter().all(|p| p.ip() == IpAddr::V6(CLIENT_IP6)));
    }
    assert!(d.counter("nat_fwd") > 0 && d.counter("nat_reply") > 0);

    let listing = d.adm(&["-L", "-n"]);
    assert!(
        listing.contains("TCP  [2001:db8:47::128]:80 rr"),
        "{listing}"
    );
    assert!(listing.contains("  -> [2001:db8:211::129]:80"), "{listing}");
    let save = format!(
        "-A -t [2001:db8:47::128]:80 -s rr\n\
         -a -t [2001:db8:47::128]:80 -r {} -m -w 1\n\
         -a -t [2001:db8:47::128]:80 -r {} -m -w 1\n",
        real(0, 80),
        real(1, 80)
    );
    assert_eq!(d.adm(&["-S", "-n"]), save);
    d.adm(&["-C"]);
    assert_eq!(d.adm(&["-S", "-n"]), "");
    let (code, out, err) = d.adm_raw(&["-R"], &save);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(d.adm(&["-S", "-n"]), save);
    // Still serving after the round trip.
    let a = clients::http_get(&d.seed.client, vip6, T).unwrap();
    assert!(a == "hao2\n" || a == "hao3\n", "{a}");

    // UDP over IPv6 too.
    let _udp: Vec<_> = d
        .seed
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| servers::udp(ns, sa("[::]:53"), &format!("rs{}", i + 1)).unwrap())
        .collect();
    let udp_svc = "[2001:db8:47::128]:53";
    d.adm(&["-A", "-u", udp_svc, "-s", "rr"]);
    for i in 0..2 {
        d.adm(&["-a", "-u", udp_svc, "-r", &real(i, 53), "-m"]);
    }
    let vip53 = SocketAddr::new(IpAddr::V6(VIP6), 53);
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(
            clients::udp_request(&d.seed.client, vip53, "q", T)
                .unwrap_or_else(|e| panic!("{e:#}\n{}", d.diag())),
        );
    }
    assert_eq!(
        tally(&answers),
        BTreeMap::from([("rs1".to_owned(), 2), ("rs2".to_owned(), 2)]),
    );
}

#[test]
fn dr6_http_end_to_end() {
    if !require_root("ipv6 dr") {
        return;
    }
    let d = lan_director(
        "dr6",
        LanConfig {
            ipv6: true,
            ..Default::default()
        },
        false,
        &[],
    )
    .unwrap();
    let _srv = d.web(80);
    let svc = "[2001:db8:47::200]:80";
    d.adm(&["-A", "-t", svc, "-s", "rr"]);
    d.adm(&["-a", "-t", svc, "-r", "[2001:db8:47::129]:80", "-g"]);
    d.adm(&["-a", "-t", svc, "-r", "[2001:db8:47::130]:80", "-g"]);
    d.resolved(&[lan::rs_ip6(0).into(), lan::rs_ip6(1).into()]);
    let cap = Capture::start(&d.lan.client, "eth0").unwrap();
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(
            clients::http_get(&d.lan.client, d.lan.vip6(80), T)
                .unwrap_or_else(|e| panic!("{e:#}\n{}", d.diag())),
        );
    }
    let frames = l4_frames(&cap.finish());
    assert_eq!(
        tally(&answers),
        BTreeMap::from([("rs1\n".to_owned(), 2), ("rs2\n".to_owned(), 2)]),
    );
    let rs_macs = [d.mac(&d.lan.rs[0]), d.mac(&d.lan.rs[1])];
    let replies = from_addr(&frames, d.lan.vip6(80));
    assert!(!replies.is_empty());
    for r in replies {
        assert!(
            rs_macs.contains(&r.p.src_mac),
            "reply via {:02x?}",
            r.p.src_mac
        );
    }
    assert!(d.counter("dr_fwd") > 0);
    assert_eq!(d.counter("nat_reply"), 0);
    // NDP for the VIP was answered by the director alone.
    assert_eq!(
        d.lan.client.neigh_mac(lan::VIP6.into()).unwrap(),
        Some(d.mac(&d.lan.director))
    );
}

#[test]
fn tun6_http_end_to_end_and_packet_too_big() {
    if !require_root("ipv6 tun") {
        return;
    }
    let d = lan_director(
        "tun6",
        LanConfig {
            ipv6: true,
            ..Default::default()
        },
        true,
        &[],
    )
    .unwrap();
    let srv = d.web(80);
    let svc = "[2001:db8:47::200]:80";
    d.adm(&["-A", "-t", svc, "-s", "rr"]);
    d.adm(&["-a", "-t", svc, "-r", "[2001:db8:47::129]:80", "-i"]);
    d.adm(&["-a", "-t", svc, "-r", "[2001:db8:47::130]:80", "-i"]);
    d.resolved(&[lan::rs_ip6(0).into(), lan::rs_ip6(1).into()]);
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(
            clients::http_get(&d.lan.client, d.lan.vip6(80), T)
                .unwrap_or_else(|e| panic!("{e:#}\n{}", d.diag())),
        );
    }
    assert_eq!(
        tally(&answers),
        BTreeMap::from([("rs1\n".to_owned(), 2), ("rs2\n".to_owned(), 2)]),
    );
    for s in &srv {
        assert!(s
            .peers()
            .iter()
            .all(|p| p.ip().to_canonical() == IpAddr::V6(lan::CLIENT_IP6)));
    }
    assert!(d.counter("tun_fwd") > 0);
    assert_eq!(d.counter("nat_reply"), 0);
    // Full-sized segments need 40 bytes more than the link has: "packet
    // too big" with 1460, and the request still makes it.
    let body = lan::http_post(
        &d.lan.client,
        d.lan.vip6(80),
        20_000,
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(body == "rs1\n" || body == "rs2\n");
    assert_eq!(
        d.lan.client.path_mtu(lan::VIP6.into()).unwrap(),
        Some(1460),
        "{}",
        d.lan
            .client
            .ip(&["route", "get", &lan::VIP6.to_string()])
            .unwrap()
    );
}

// ----------------------------------------------------- exact bytes (v6)

fn nat6_fixture() -> Fixture {
    let f = fixture("nat6pr", Default::default());
    f.services(vec![
        tcp_service(
            ip(&lan::VIP6.to_string()),
            80,
            &[(ip(&lan::inside_ip6(0).to_string()), 8080, Method::Masq)],
        ),
        service(
            Proto::Udp,
            ip(&lan::VIP6.to_string()),
            53,
            &[(ip(&lan::inside_ip6(0).to_string()), 5353, Method::Masq)],
        ),
    ]);
    f
}

#[test]
fn nat6_forward_and_reply_exact_bytes() {
    if !require_root("ipv6 prog_run") {
        return;
    }
    let f = nat6_fixture();
    let client = ip(&lan::CLIENT_IP6.to_string());
    let vip = ip(&lan::VIP6.to_string());
    let rip = ip(&lan::inside_ip6(0).to_string());
    let syn = Frame::tcp((client, 40000), (vip, 80), SYN)
        .macs(CLIENT_MAC, DIR_MAC)
        .payload(b"GET / HTTP/1.0\r\n\r\n");
    let (action, out) = f.run(&syn.build(), f.link_index("lan0"));
    assert_eq!(action, XDP_REDIRECT, "to the inside link");
    // Forwarded: hop limit one less.
    let want = dnat(&syn, (DIR_INT_MAC, INSIDE_MAC), (rip, 8080));
    assert_frame_eq(&out, &want, "DNAT over IPv6");
    assert!(parse(&out).unwrap().l4_csum_ok);

    let reply = Frame::tcp((rip, 8080), (client, 40000), SYN | ACK)
        .macs(INSIDE_MAC, DIR_INT_MAC)
        .payload(b"HTTP/1.0 200 OK\r\n\r\nhao2\n");
    let (action, out) = f.run(&reply.build(), f.link_index("int0"));
    assert_eq!(action, XDP_REDIRECT, "to the LAN link");
    let want = snat(&reply, (DIR_MAC, CLIENT_MAC), (vip, 80));
    assert_frame_eq(&out, &want, "reverse NAT over IPv6");

    // UDP (IPv6 has no "no checksum").
    let q = Frame::udp((client, 33000), (vip, 53))
        .macs(CLIENT_MAC, DIR_MAC)
        .payload(b"query");
    let (action, out) = f.run(&q.build(), f.link_index("lan0"));
    assert_eq!(action, XDP_REDIRECT);
    let want = dnat(&q, (DIR_INT_MAC, INSIDE_MAC), (rip, 5353));
    assert_frame_eq(&out, &want, "UDP DNAT over IPv6");
    assert_eq!(f.counter(counters::NAT_FWD), 2);
    assert_eq!(f.counter(counters::NAT_REPLY), 1);
}

/// Inserts an 8-byte extension header (`kind`: 0 hop-by-hop, 60
/// destination options, 43 routing) between the IPv6 header and TCP/UDP.
fn with_ext_header(frame: &[u8], kind: u8) -> Vec<u8> {
    let mut f = frame[..54].to_vec();
    let upper = f[20];
    f[20] = kind;
    let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    let ext = match kind {
        // Routing header type 0 is deprecated; type 4 (SRH) would need a
        // segment list: use an unknown type with segments left 0, which
        // a router ignores.
        43 => [upper, 0, 253, 0, 0, 0, 0, 0],
        // PadN covering the 6 option bytes.
        _ => [upper, 0, 1, 4, 0, 0, 0, 0],
    };
    f.extend_from_slice(&ext);
    f.extend_from_slice(&frame[54..]);
    f
}

#[test]
fn ipv6_extension_headers_are_passed_untouched() {
    if !require_root("ipv6 prog_run") {
        return;
    }
    let f = nat6_fixture();
    let client = ip(&lan::CLIENT_IP6.to_string());
    let vip = ip(&lan::VIP6.to_string());
    let syn = Frame::tcp((client, 40000), (vip, 80), SYN)
        .macs(CLIENT_MAC, DIR_MAC)
        .build();
    let udp = Frame::udp((client, 33000), (vip, 53))
        .macs(CLIENT_MAC, DIR_MAC)
        .payload(b"q")
        .build();
    let before = f.counter(counters::NEW_CONN);
    for base in [&syn, &udp] {
        for kind in [0u8, 60, 43] {
            let frame = with_ext_header(base, kind);
            let (action, out) = f.run(&frame, f.link_index("lan0"));
            assert_eq!(action, XDP_PASS, "extension header {kind}");
            assert_frame_eq(&out, &frame, &format!("extension header {kind}: untouched"));
        }
    }
    assert_eq!(f.counter(counters::NEW_CONN), before, "nothing scheduled");
    // The same packets without extension headers are forwarded.
    assert_eq!(f.run(&syn, f.link_index("lan0")).0, XDP_REDIRECT);
}
