//! NAT director end to end: a client namespace, the director, real servers
//! behind a bridge, real TCP/UDP sockets. Nothing of a service's traffic
//! relies on netfilter: no MASQUERADE, no DNAT rules.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::common::{director, Director, T};
use lvs_lab::{
    clients::{self, TcpConn, UdpClient},
    require_root,
    seed::{rs_ip, CLIENT_IP, VIP},
    servers,
};

fn vip(port: u16) -> String {
    format!("{VIP}:{port}")
}

fn rs(i: usize, port: u16) -> String {
    format!("{}:{port}", rs_ip(i))
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// HTTP servers named hao2, hao3, … on port 80 of each real server.
fn web(d: &Director) -> Vec<servers::Server> {
    d.seed
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| servers::http(ns, sa("0.0.0.0:80"), &format!("hao{}\n", i + 2)).unwrap())
        .collect()
}

#[test]
fn rr_tcp_alternates_strictly_and_replies_come_from_the_vip() {
    if !require_root("nat rr") {
        return;
    }
    let d = director("rr", 2).unwrap();
    let srv = web(&d);
    d.adm(&["-A", "-t", &vip(80), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(0, 80), "-m", "-w", "1"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(1, 80), "-m", "-w", "1"]);
    let mut answers = Vec::new();
    for _ in 0..10 {
        // The connection is to the VIP: the TCP handshake only completes
        // if the replies carry the VIP as their source.
        answers.push(clients::http_get(&d.seed.client, d.seed.vip(80), T).unwrap());
    }
    for w in answers.windows(2) {
        assert_ne!(w[0], w[1], "rr must alternate: {answers:?}");
    }
    assert_eq!(answers.iter().filter(|a| *a == "hao2\n").count(), 5);
    // NAT keeps the client's address: the servers saw the client itself.
    for s in &srv {
        assert!(s.peers().iter().all(|p| p.ip() == IpAddr::V4(CLIENT_IP)));
    }
    assert!(d.counter("nat_reply") > 0 && d.counter("nat_fwd") > 0);
    let listing = d.adm(&["-L", "-n", "--stats", "--exact"]);
    assert!(listing.contains(&format!("TCP  {}", vip(80))), "{listing}");
}

#[test]
fn wrr_shares_and_quiescing() {
    if !require_root("nat wrr") {
        return;
    }
    let d = director("wrr", 2).unwrap();
    let _srv = web(&d);
    let _line = d.line_servers(9000);
    d.adm(&["-A", "-t", &vip(80), "-s", "wrr"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(0, 80), "-m", "-w", "3"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(1, 80), "-m", "-w", "1"]);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let n = 400;
    for _ in 0..n {
        let a = clients::http_get(&d.seed.client, d.seed.vip(80), T).unwrap();
        *counts.entry(a).or_default() += 1;
    }
    let share = counts["hao2\n"] as f64 / n as f64;
    assert!((0.70..=0.80).contains(&share), "wrr 3:1 gave {counts:?}");

    // Weight 0 quiesces: an open connection keeps working, new ones avoid it.
    d.adm(&["-A", "-t", &vip(9000), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(0, 9000), "-m", "-w", "1"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(1, 9000), "-m", "-w", "1"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpConn::connect(&d.seed.client, d.seed.vip(9000), T).unwrap();
        let who = c.ask("hi").unwrap();
        held.push((c, who));
    }
    let (conn_rs2, _) = held
        .iter_mut()
        .find(|(_, w)| w == "rs2")
        .expect("one held connection on rs2");
    d.adm(&["-e", "-t", &vip(9000), "-r", &rs(1, 9000), "-m", "-w", "0"]);
    assert_eq!(conn_rs2.ask("still there?").unwrap(), "rs2");
    for _ in 0..10 {
        let mut c = TcpConn::connect(&d.seed.client, d.seed.vip(9000), T).unwrap();
        assert_eq!(
            c.ask("hi").unwrap(),
            "rs1",
            "a quiesced server got a new connection"
        );
    }
    assert_eq!(
        held.iter_mut()
            .map(|(c, _)| c.ask("x").unwrap())
            .filter(|w| w == "rs2")
            .count(),
        1
    );
}

#[test]
fn udp_rr_and_replies_from_the_vip() {
    if !require_root("nat udp") {
        return;
    }
    let d = director("udp", 2).unwrap();
    let _srv: Vec<_> = d
        .seed
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| servers::udp(ns, sa("0.0.0.0:53"), &format!("rs{}", i + 1)).unwrap())
        .collect();
    d.adm(&["-A", "-u", &vip(53), "-s", "rr"]);
    d.adm(&["-a", "-u", &vip(53), "-r", &rs(0, 53), "-m"]);
    d.adm(&["-a", "-u", &vip(53), "-r", &rs(1, 53), "-m"]);
    let mut answers = Vec::new();
    for _ in 0..8 {
        // A new source port per request is a new UDP connection;
        // `request` only accepts an answer whose source is the VIP.
        answers.push(clients::udp_request(&d.seed.client, d.seed.vip(53), "q", T).unwrap());
    }
    for w in answers.windows(2) {
        assert_ne!(w[0], w[1], "{answers:?}");
    }
    // One source port stays on its server.
    let c = UdpClient::bind(&d.seed.client, sa("0.0.0.0:0")).unwrap();
    let first = c.request(d.seed.vip(53), "a", T).unwrap();
    for _ in 0..4 {
        assert_eq!(c.request(d.seed.vip(53), "b", T).unwrap(), first);
    }
}

#[test]
fn long_lived_connection_survives_table_changes() {
    if !require_root("nat long-lived") {
        return;
    }
    let d = director("ll", 3).unwrap();
    let _line = d.line_servers(9000);
    d.adm(&["-A", "-t", &vip(9000), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(0, 9000), "-m"]);
    let mut c = TcpConn::connect(&d.seed.client, d.seed.vip(9000), T).unwrap();
    assert_eq!(c.ask("1").unwrap(), "rs1");
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(1, 9000), "-m"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(2, 9000), "-m", "-w", "2"]);
    d.adm(&["-A", "-t", &vip(8080), "-s", "wrr"]);
    d.adm(&["-a", "-t", &vip(8080), "-r", &rs(2, 8080), "-m"]);
    d.adm(&["-A", "-u", &vip(53), "-s", "rr"]);
    assert_eq!(c.ask("2").unwrap(), "rs1");
    d.adm(&["-d", "-t", &vip(9000), "-r", &rs(1, 9000)]);
    d.adm(&["-D", "-t", &vip(8080)]);
    d.adm(&["-e", "-t", &vip(9000), "-r", &rs(2, 9000), "-m", "-w", "5"]);
    assert_eq!(c.ask("3").unwrap(), "rs1");
    // New connections see the changed table.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut n = TcpConn::connect(&d.seed.client, d.seed.vip(9000), T).unwrap();
        seen.push(n.ask("n").unwrap());
    }
    assert!(seen.iter().all(|w| w == "rs1" || w == "rs3"), "{seen:?}");
    assert_eq!(c.ask("4").unwrap(), "rs1");
}

#[test]
fn non_service_traffic_reaches_the_director() {
    if !require_root("nat pass-through") {
        return;
    }
    let d = director("pass", 2).unwrap();
    let _web = web(&d);
    d.adm(&["-A", "-t", &vip(80), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(0, 80), "-m"]);
    // A port of the director itself on the VIP address, and ICMP echo (ARP
    // is needed for both).
    let _own = servers::http(&d.seed.director, sa(&vip(2222)), "director\n").unwrap();
    assert_eq!(
        clients::http_get(&d.seed.client, d.seed.vip(2222), T).unwrap(),
        "director\n"
    );
    clients::ping(&d.seed.client, IpAddr::V4(VIP), T)
        .expect("echo to the VIP is answered by the director");
    let udp_own = servers::udp(&d.seed.director, sa(&vip(5353)), "dir-udp").unwrap();
    assert_eq!(
        clients::udp_request(&d.seed.client, d.seed.vip(5353), "x", T).unwrap(),
        "dir-udp"
    );
    assert_eq!(udp_own.requests(), 1);
    assert!(d.counter("pass") > 0);
    // The service still works alongside.
    assert_eq!(
        clients::http_get(&d.seed.client, d.seed.vip(80), T).unwrap(),
        "hao2\n"
    );
}

/// Frames written on the client's link with a packet socket.
fn send_raw(d: &Director, frames: &[Vec<u8>]) {
    let frames = frames.to_vec();
    d.seed
        .client
        .enter(move || unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0);
            let name = std::ffi::CString::new("eth0").unwrap();
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            sll.sll_halen = 6;
            for f in &frames {
                let n = libc::sendto(
                    fd,
                    f.as_ptr() as *const _,
                    f.len(),
                    0,
                    &sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(
                    n,
                    f.len() as isize,
                    "sendto: {}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        })
        .unwrap();
}

fn mac_of(ns: &lvs_lab::Netns, dev: &str) -> [u8; 6] {
    // /sys shows the caller's namespace; ask `ip` inside the right one.
    let out = ns.ip(&["-o", "link", "show", dev]).unwrap();
    let s = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {out}"))
        .to_string();
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[test]
fn malformed_packets_are_not_forwarded() {
    if !require_root("nat malformed") {
        return;
    }
    use lvs_lab::packet::{Frame, SYN};
    let d = director("mal", 2).unwrap();
    let srv = d
        .seed
        .rs
        .iter()
        .map(|ns| servers::udp(ns, sa("0.0.0.0:53"), "rs").unwrap())
        .collect::<Vec<_>>();
    d.adm(&["-A", "-u", &vip(53), "-s", "rr"]);
    d.adm(&["-a", "-u", &vip(53), "-r", &rs(0, 53), "-m"]);
    d.adm(&["-a", "-u", &vip(53), "-r", &rs(1, 53), "-m"]);
    d.adm(&["-A", "-t", &vip(80), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(80), "-r", &rs(0, 80), "-m"]);
    // Resolve the VIP's MAC the ordinary way first.
    clients::ping(&d.seed.client, IpAddr::V4(VIP), T).unwrap();
    let dmac = mac_of(&d.seed.director, "ens37");
    let smac = mac_of(&d.seed.client, "eth0");
    let c = IpAddr::V4(CLIENT_IP);
    let v = IpAddr::V4(VIP);
    let udp = Frame::udp((c, 40000), (v, 53))
        .macs(smac, dmac)
        .payload(b"mangled?")
        .build();
    let syn = Frame::tcp((c, 40001), (v, 80), SYN)
        .macs(smac, dmac)
        .build();
    let mut frames = Vec::new();
    frames.push(udp[..14 + 10].to_vec()); // truncated IPv4 header
    frames.push(syn[..14 + 20 + 8].to_vec()); // truncated TCP header
    let mut f = udp.clone();
    f[14] = 0x44; // IHL < 5
    frames.push(f);
    let mut f = udp.clone();
    f[16..18].copy_from_slice(&1400u16.to_be_bytes()); // longer than the frame
    frames.push(f);
    let mut f = udp.clone();
    f[20] = 0x20; // MF: first fragment
    frames.push(f);
    let mut f = udp.clone();
    f[20..22].copy_from_slice(&0x0004u16.to_be_bytes()); // a later fragment
    frames.push(f);
    let before = d.counter("malformed") + d.counter("fragment");
    send_raw(&d, &frames);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        d.counter("malformed") + d.counter("fragment") - before,
        frames.len() as u64
    );
    assert_eq!(
        srv.iter().map(|s| s.requests()).sum::<u64>(),
        0,
        "a malformed datagram reached a real server"
    );
    assert_eq!(d.counter("nat_fwd"), 0);
    // The director is still healthy.
    assert_eq!(
        clients::udp_request(&d.seed.client, d.seed.vip(53), "q", T).unwrap(),
        "rs"
    );
}

/// `ipvsadm -C; ipvsadm -R < rules`, the usual reload, and `-D` of a
/// service: established connections keep their real servers (as IPVS's
/// do), while new connections follow the tables.
#[test]
fn connections_survive_clear_restore_and_delete() {
    if !require_root("nat reload") {
        return;
    }
    let d = director("reload", 2).unwrap();
    let _line = d.line_servers(9000);
    d.adm(&["-A", "-t", &vip(9000), "-s", "rr"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(0, 9000), "-m"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(1, 9000), "-m"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpConn::connect(&d.seed.client, d.seed.vip(9000), T).unwrap();
        let who = c.ask("hi").unwrap();
        held.push((c, who));
    }
    let saved = d.adm(&["-S", "-n"]);
    d.adm(&["-C"]);
    assert!(
        !d.adm(&["-L", "-n"]).contains("TCP"),
        "-C hides the service"
    );
    for (c, who) in held.iter_mut() {
        assert_eq!(&c.ask("after -C").unwrap(), who, "a connection survives -C");
    }
    let (code, _, err) = d.adm_raw(&["-R"], &saved);
    assert_eq!(code, 0, "{err}");
    for (c, who) in held.iter_mut() {
        assert_eq!(&c.ask("after -R").unwrap(), who, "and the restore");
    }
    let mut fresh = TcpConn::connect(&d.seed.client, d.seed.vip(9000), T).unwrap();
    assert!(fresh.ask("new").unwrap().starts_with("rs"));
    d.adm(&["-D", "-t", &vip(9000)]);
    for (c, who) in held.iter_mut() {
        assert_eq!(&c.ask("after -D").unwrap(), who, "and -D of its service");
    }
    // No new connection is scheduled for a deleted service.
    assert!(
        TcpConn::connect(&d.seed.client, d.seed.vip(9000), Duration::from_secs(1))
            .and_then(|mut c| c.ask("x"))
            .is_err()
    );
    assert_eq!(d.adm(&["-S", "-n"]), "");
}
