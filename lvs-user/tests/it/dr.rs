//! LVS-DR (`-g`, ipvsadm's default method) end to end on one LAN: client,
//! director and real servers on one bridge, the VIP on the real servers'
//! `lo`. The director only rewrites MACs and sends the frame back out
//! (XDP_TX); the real servers answer the client directly. Plus the exact
//! bytes of that rewrite through BPF_PROG_TEST_RUN.

use std::collections::BTreeMap;

use crate::common::xdp::*;
use crate::common::{from_addr, lan_director, tally, to_addr, T};
use lvs::model::{Method, Proto};
use lvs_common::counters;
use lvs_lab::{
    clients,
    lan::{self, LanConfig},
    packet::{dec_ttl, Frame, SYN},
    require_root, servers,
};

fn vip(port: u16) -> String {
    format!("{}:{port}", lan::VIP)
}

fn rs(i: usize, port: u16) -> String {
    format!("{}:{port}", lan::rs_ip(i))
}

#[test]
fn dr_rr_spreads_and_replies_bypass_the_director() {
    if !require_root("dr rr") {
        return;
    }
    let d = lan_director("dr", LanConfig::default(), false, &[]).unwrap();
    let srv = d.web(80);
    d.adm(&["-A", "-t", &vip(80), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(0, 80), "-g", "-w", "1"]);
    // No method: ipvsadm's default is -g.
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(1, 80)]);
    let listing = d.adm(&["-L", "-n"]);
    assert_eq!(listing.matches("Route").count(), 2, "{listing}");
    // Three answers from each; DR keeps the client's address.
    let (answers, frames) = d.rr_gets(&srv);
    for w in answers.windows(2) {
        assert_ne!(w[0], w[1], "rr must alternate: {answers:?}");
    }

    // The answers came from the VIP, sent by the real servers themselves
    // (their MACs), never through the director.
    let dir_mac = d.mac(&d.lan.director);
    let rs_macs = [d.mac(&d.lan.rs[0]), d.mac(&d.lan.rs[1])];
    let replies: Vec<_> = from_addr(&frames, d.lan.vip(80))
        .into_iter()
        .filter(|s| !s.outgoing)
        .collect();
    assert!(
        replies.len() >= 6 * 3,
        "too few replies seen: {}",
        replies.len()
    );
    for r in &replies {
        assert_ne!(r.p.src_mac, dir_mac, "a reply came through the director");
        assert!(
            rs_macs.contains(&r.p.src_mac),
            "reply from {:02x?}",
            r.p.src_mac
        );
        assert!(r.p.ip_csum_ok && r.p.l4_csum_ok);
    }
    for m in rs_macs {
        assert!(replies.iter().any(|r| r.p.src_mac == m));
    }
    // Everything the client sent to the VIP went to the director's MAC,
    // and the director forwarded exactly those packets, nothing else.
    let requests: Vec<_> = to_addr(&frames, d.lan.vip(80))
        .into_iter()
        .filter(|s| s.outgoing)
        .collect();
    assert!(requests.iter().all(|s| s.p.dst_mac == dir_mac));
    assert_eq!(d.counter("dr_fwd"), requests.len() as u64);
    assert_eq!(d.counter("fwd_no_neigh"), 0);
    assert_eq!(d.counter("nat_reply"), 0);
    assert_eq!(d.counter("nat_fwd"), 0);
    assert_eq!(d.counter("new_conn"), 6);

    // Echo to the VIP is the director's own business, and ARP for the VIP
    // was answered by the director only.
    clients::ping(&d.lan.client, lan::VIP.into(), T).unwrap();
    assert_eq!(
        d.lan.client.neigh_mac(lan::VIP.into()).unwrap(),
        Some(dir_mac)
    );
    let stats = d.adm(&["-L", "-n", "--stats", "--exact"]);
    assert!(stats.contains(&format!("TCP  {}", vip(80))), "{stats}");
}

#[test]
fn dr_udp_answers_come_from_the_vip() {
    if !require_root("dr udp") {
        return;
    }
    let d = lan_director("drudp", LanConfig::default(), false, &[]).unwrap();
    // Bound to the VIP: an unbound UDP server would answer from its own
    // address, as with IPVS.
    let _srv: Vec<_> = d
        .lan
        .rs
        .iter()
        .map(|ns| servers::udp(ns, d.lan.vip(53), ns.role()).unwrap())
        .collect();
    d.adm(&["-A", "-u", &vip(53), "-s", "rr"]);
    d.adm(&["-a", "-u", &vip(53), "-r", &rs(0, 53), "-g"]);
    d.adm(&["-a", "-u", &vip(53), "-r", &rs(1, 53), "-g"]);
    // A datagram for a real server whose MAC the director does not know
    // yet is dropped (fwd_no_neigh): unlike NAT, DR cannot hand it to the
    // kernel, which would take it for its own VIP.
    d.resolved(&[lan::rs_ip(0).into(), lan::rs_ip(1).into()]);
    let mut answers = Vec::new();
    for _ in 0..4 {
        // `udp_request` only takes an answer whose source is the VIP.
        answers.push(clients::udp_request(&d.lan.client, d.lan.vip(53), "q", T).unwrap());
    }
    assert_eq!(
        tally(&answers),
        BTreeMap::from([("rs1".to_owned(), 2), ("rs2".to_owned(), 2)]),
    );
    assert_eq!(d.counter("dr_fwd"), 4);
    assert_eq!(d.counter("nat_reply"), 0);
}

/// DR on the director's own link: XDP_TX with the destination MAC the real
/// server's and the source MAC the director's; not one other byte changes,
/// for IPv4 and IPv6, TCP and UDP.
#[test]
fn dr_rewrites_only_the_macs_exact_bytes() {
    if !require_root("dr prog_run") {
        return;
    }
    let f = fixture("drpr", Default::default());
    let vip4 = ip(&lan::VIP.to_string());
    let vip6 = ip(&lan::VIP6.to_string());
    let rs4 = ip(&lan::rs_ip(1).to_string());
    let rs6 = ip(&lan::rs_ip6(1).to_string());
    f.services(vec![
        tcp_service(vip4, 80, &[(rs4, 80, Method::Route)]),
        tcp_service(vip6, 80, &[(rs6, 80, Method::Route)]),
        service(Proto::Udp, vip4, 53, &[(rs4, 53, Method::Route)]),
        service(Proto::Udp, vip6, 53, &[(rs6, 53, Method::Route)]),
    ]);
    let c4 = ip(&lan::CLIENT_IP.to_string());
    let c6 = ip(&lan::CLIENT_IP6.to_string());
    for (client, vip) in [(c4, vip4), (c6, vip6)] {
        let syn = Frame::tcp((client, 40000), (vip, 80), SYN)
            .macs(CLIENT_MAC, DIR_MAC)
            .payload(b"GET / HTTP/1.0\r\n\r\n")
            .build();
        let (action, out) = f.run(&syn, f.link_index("lan0"));
        assert_eq!(action, XDP_TX, "{vip}: DR on the same link is XDP_TX");
        // The MACs change, and the TTL / hop limit as on every method.
        let mut want = dec_ttl(&syn);
        want[..6].copy_from_slice(&RS_MAC[1]);
        want[6..12].copy_from_slice(&DIR_MAC);
        assert_frame_eq(&out, &want, &format!("{vip}: only the MACs and TTL change"));
    }
    for (client, vip) in [(c4, vip4), (c6, vip6)] {
        let q = Frame::udp((client, 33000), (vip, 53))
            .macs(CLIENT_MAC, DIR_MAC)
            .payload(b"query")
            .build();
        let (action, out) = f.run(&q, f.link_index("lan0"));
        assert_eq!(action, XDP_TX, "{vip}: UDP");
        assert_eq!(&out[..6], &RS_MAC[1]);
        assert_eq!(&out[6..12], &DIR_MAC);
        assert_eq!(
            &out[12..],
            &dec_ttl(&q)[12..],
            "{vip}: UDP, only the MACs and TTL change"
        );
    }
    assert_eq!(f.counter(counters::DR_FWD), 4);
    assert_eq!(f.counter(counters::NAT_FWD), 0);

    // Later packets of the connection follow it.
    let ack = Frame::tcp((c4, 40000), (vip4, 80), lvs_lab::packet::ACK)
        .macs(CLIENT_MAC, DIR_MAC)
        .build();
    let (action, out) = f.run(&ack, f.link_index("lan0"));
    assert_eq!(action, XDP_TX);
    assert_eq!(&out[..6], &RS_MAC[1]);
    assert_eq!(&out[12..], &dec_ttl(&ack)[12..]);
}
