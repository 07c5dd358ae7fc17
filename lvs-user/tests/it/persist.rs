//! Persistence (`-p`, `-M`) on the seed's NAT lab with real sockets: a
//! client (network) keeps its server across connections under rr, the
//! template outlives its connections by the timeout and no longer.

use std::{net::IpAddr, time::Duration};

use crate::common::{
    director, director_with, seed_rs as rs, seed_vip as vip, Director, SHORT_CLOSE,
};
use lvs_lab::require_root;

/// rr service on `port` over rs1 and rs2 with `opts` (e.g. `-p 60`).
fn rr_service(d: &Director, port: u16, opts: &[&str]) {
    let v = vip(port);
    let mut a = vec!["-A", "-t", v.as_str(), "-s", "rr"];
    a.extend(opts);
    d.adm(&a);
    for i in 0..2 {
        d.adm(&["-a", "-t", &v, "-r", &rs(i, port), "-m"]);
    }
}

/// `n` connections one after the other (each closed before the next) from
/// `from`: the servers that answered.
fn sequential(d: &Director, port: u16, from: Option<IpAddr>, n: usize) -> Vec<String> {
    (0..n).map(|_| d.hold(port, from).1).collect()
}

#[test]
fn persistent_rr_keeps_each_client_on_one_server() {
    if !require_root("persist rr") {
        return;
    }
    let d = director("prr", 2).unwrap();
    let _srv = d.line_servers(9000);
    rr_service(&d, 9000, &["-p", "60"]);
    let listing = d.adm(&["-L", "-n"]);
    assert!(
        listing.contains(&format!("TCP  {} rr persistent 60\n", vip(9000))),
        "{listing}"
    );
    let others = d.client_addrs(1);
    let first = sequential(&d, 9000, None, 10);
    assert!(first.iter().all(|w| *w == first[0]), "{first:?}");
    // Another client gets rr's next server, and keeps it.
    let second = sequential(&d, 9000, Some(others[0]), 10);
    assert!(second.iter().all(|w| *w == second[0]), "{second:?}");
    assert_ne!(
        first[0], second[0],
        "rr should have moved on for a new client"
    );
    // Quiescing the first client's server keeps that client on it (IPVS
    // keeps persistent clients of a weight-0 server), while the second
    // client stays where it is.
    let i = if first[0] == "rs1" { 0 } else { 1 };
    d.adm(&["-e", "-t", &vip(9000), "-r", &rs(i, 9000), "-m", "-w", "0"]);
    assert_eq!(sequential(&d, 9000, None, 3), vec![first[0].clone(); 3]);
    assert_eq!(
        sequential(&d, 9000, Some(others[0]), 3),
        vec![second[0].clone(); 3]
    );
}

#[test]
fn netmask_makes_a_24_share_one_server() {
    if !require_root("persist netmask") {
        return;
    }
    let d = director("pmask", 2).unwrap();
    let _srv: Vec<_> = [9000, 9001]
        .iter()
        .flat_map(|&p| d.line_servers(p))
        .collect();
    rr_service(&d, 9000, &["-p", "60", "-M", "255.255.255.0"]);
    rr_service(&d, 9001, &["-p", "60"]);
    let listing = d.adm(&["-L", "-n"]);
    assert!(
        listing.contains(&format!(
            "TCP  {} rr persistent 60 mask 255.255.255.0\n",
            vip(9000)
        )),
        "{listing}"
    );
    let others = d.client_addrs(3);
    let clients: Vec<Option<IpAddr>> = std::iter::once(None)
        .chain(others.iter().copied().map(Some))
        .collect();
    // The /24 mask: all four clients share the first one's server.
    let mut masked = Vec::new();
    for &c in &clients {
        masked.extend(sequential(&d, 9000, c, 3));
    }
    assert!(masked.iter().all(|w| *w == masked[0]), "{masked:?}");
    // Without it each client has its own template: rr alternates between
    // clients, each sticking to its own.
    let mut per_client = Vec::new();
    for &c in &clients {
        let got = sequential(&d, 9001, c, 3);
        assert!(got.iter().all(|w| *w == got[0]), "{c:?}: {got:?}");
        per_client.push(got[0].clone());
    }
    for w in per_client.windows(2) {
        assert_ne!(w[0], w[1], "{per_client:?}");
    }
}

#[test]
fn template_lives_while_its_connections_do_then_times_out() {
    if !require_root("persist timeout") {
        return;
    }
    let d = director_with("ptmo", 2, SHORT_CLOSE).unwrap();
    let _srv = d.line_servers(9000);
    rr_service(&d, 9000, &["-p", "2"]);
    // A held connection keeps the 2 s template alive (the sweeper marks it
    // used while a connection of it lives).
    let (mut held, first) = d.hold(9000, None);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(held.ask("x").unwrap(), first);
    let (c, again) = d.hold(9000, None);
    assert_eq!(again, first, "the template expired under a live connection");
    drop(c);
    drop(held);
    // Both end and expire; 2 s later the template is gone too, and rr
    // gives the client its next server.
    d.wait_totals(&vip(9000), 0, 0, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(3500));
    let (_c, after) = d.hold(9000, None);
    assert_ne!(after, first, "the template outlived its timeout");
}
