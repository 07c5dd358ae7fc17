//! One service, real servers with different forwarding methods (`-m`,
//! `-g`, `-i` per `-a`, as ipvsadm allows): each connection is forwarded
//! by its own server's method. The director has two arms: the LAN (client,
//! DR and TUN real servers) and an inside network behind it (NAT servers,
//! whose default route is the director).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

use crate::common::{self, from_addr, l4_frames, lan_director, tally, Lan, LVS, T};
use lvs_lab::{
    clients::HttpConn,
    lan::{self, Capture, LanConfig},
    require_root, servers,
};

/// Connects `n` times to `vip`, one request each; returns (answer, client
/// port) per connection.
fn requests(d: &Lan, vip: SocketAddr, n: usize) -> Vec<(String, u16)> {
    (0..n)
        .map(|_| {
            let mut c = HttpConn::connect(&d.lan.client, vip, T)
                .unwrap_or_else(|e| panic!("{e:#}\n{}", d.diag()));
            let port = c.local_addr().unwrap().port();
            (c.get("/").unwrap(), port)
        })
        .collect()
}

/// For each connection (by client port), which MAC its answers came from.
fn reply_macs(frames: &[common::Seen], vip: SocketAddr) -> BTreeMap<u16, Vec<[u8; 6]>> {
    let mut m: BTreeMap<u16, Vec<[u8; 6]>> = BTreeMap::new();
    for s in from_addr(frames, vip).into_iter().filter(|s| !s.outgoing) {
        let macs = m.entry(s.p.dport).or_default();
        if !macs.contains(&s.p.src_mac) {
            macs.push(s.p.src_mac);
        }
    }
    m
}

fn mixed(v6: bool) {
    let d = lan_director(
        if v6 { "mixed6" } else { "mixed" },
        LanConfig {
            real_servers: 1,
            inside_servers: 1,
            ipv6: v6,
            vip: true,
        },
        false,
        &[],
    )
    .unwrap();
    let any = |port| SocketAddr::new("::".parse().unwrap(), port);
    let _dr = servers::http(&d.lan.rs[0], any(80), "rs1\n").unwrap();
    // NAT may change the port; DR may not.
    let nat = servers::http(&d.lan.inside[0], any(8080), "nat1\n").unwrap();
    let (vip, dr_ip, nat_ip, client): (IpAddr, IpAddr, IpAddr, IpAddr) = if v6 {
        (
            lan::VIP6.into(),
            lan::rs_ip6(0).into(),
            lan::inside_ip6(0).into(),
            lan::CLIENT_IP6.into(),
        )
    } else {
        (
            lan::VIP.into(),
            lan::rs_ip(0).into(),
            lan::inside_ip(0).into(),
            lan::CLIENT_IP.into(),
        )
    };
    let vip80 = SocketAddr::new(vip, 80);
    let svc = vip80.to_string();
    d.adm(&["-A", "-t", &svc, "-s", "rr"]);
    d.adm(&[
        "-a",
        "-t",
        &svc,
        "-r",
        &SocketAddr::new(dr_ip, 80).to_string(),
        "-g",
    ]);
    d.adm(&[
        "-a",
        "-t",
        &svc,
        "-r",
        &SocketAddr::new(nat_ip, 8080).to_string(),
        "-m",
    ]);
    let listing = d.adm(&["-L", "-n"]);
    assert!(
        listing.contains("Route") && listing.contains("Masq"),
        "{listing}"
    );

    let cap = Capture::start(&d.lan.client, "eth0").unwrap();
    let got = requests(&d, vip80, 6);
    std::thread::sleep(Duration::from_millis(200));
    let frames = l4_frames(&cap.finish());
    let answers: Vec<String> = got.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(
        tally(&answers),
        BTreeMap::from([("nat1\n".to_owned(), 3), ("rs1\n".to_owned(), 3)]),
        "{answers:?}"
    );
    // Both kinds of server see the client's own address.
    assert!(nat.peers().iter().all(|p| p.ip().to_canonical() == client));
    assert!(_dr.peers().iter().all(|p| p.ip().to_canonical() == client));

    // NAT connections are answered by the director (its MAC, source
    // rewritten to the VIP), DR connections by the real server itself.
    let dir_mac = d.mac(&d.lan.director);
    let rs_mac = d.mac(&d.lan.rs[0]);
    let by_conn = reply_macs(&frames, vip80);
    for (answer, port) in &got {
        let want = if answer == "nat1\n" { dir_mac } else { rs_mac };
        assert_eq!(
            by_conn.get(port).map(Vec::as_slice),
            Some(&[want][..]),
            "{answer:?} on client port {port}: answers came from the wrong MAC"
        );
    }
    assert!(d.counter("nat_fwd") > 0);
    assert!(d.counter("nat_reply") > 0);
    assert!(d.counter("dr_fwd") > 0);
    assert_eq!(d.counter("new_conn"), 6);
}

#[test]
fn nat_and_dr_real_servers_in_one_service() {
    if !require_root("mixed") {
        return;
    }
    mixed(false);
}

#[test]
fn nat_and_dr_real_servers_in_one_ipv6_service() {
    if !require_root("mixed v6") {
        return;
    }
    mixed(true);
}

#[test]
fn all_three_methods_in_one_service() {
    if !require_root("mixed all") {
        return;
    }
    let mut d = lan_director(
        "mixed3",
        LanConfig {
            real_servers: 2,
            inside_servers: 1,
            ..Default::default()
        },
        false,
        &[],
    )
    .unwrap();
    // Only the TUN server unwraps.
    let decap = d.lan.start_decap(Path::new(LVS), 1).unwrap();
    d.procs.push(decap);
    let _web = d.web(80);
    let svc = format!("{}:80", lan::VIP);
    d.adm(&["-A", "-t", &svc, "-s", "rr"]);
    d.adm(&[
        "-a",
        "-t",
        &svc,
        "-r",
        &format!("{}:80", lan::rs_ip(0)),
        "-g",
    ]);
    d.adm(&[
        "-a",
        "-t",
        &svc,
        "-r",
        &format!("{}:80", lan::rs_ip(1)),
        "-i",
    ]);
    d.adm(&[
        "-a",
        "-t",
        &svc,
        "-r",
        &format!("{}:80", lan::inside_ip(0)),
        "-m",
    ]);
    let got = requests(&d, d.lan.vip(80), 6);
    let answers: Vec<String> = got.into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        tally(&answers),
        BTreeMap::from([
            ("nat1\n".to_owned(), 2),
            ("rs1\n".to_owned(), 2),
            ("rs2\n".to_owned(), 2)
        ]),
        "{answers:?}"
    );
    assert!(d.counter("dr_fwd") > 0);
    assert!(d.counter("tun_fwd") > 0);
    assert!(d.counter("nat_fwd") > 0 && d.counter("nat_reply") > 0);
}
