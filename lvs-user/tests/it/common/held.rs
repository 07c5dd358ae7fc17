//! Established NAT connections held open through a test (floods, a full
//! table, capacity): the seed lab's HTTP service on one real server, the
//! connections through it, and rounds of lines on each.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
};

use aya::maps::{HashMap, MapData};
use lvs::tables::names;
use lvs_common::{Conn, FlowKey, CONN_F_DEAD};
use lvs_lab::{clients::TcpConn, packet::Mac, seed, Netns};

use super::{Director, T};

/// What [`held_nat_connections`] made.
pub struct Held {
    /// The service, `VIP:80`.
    pub vip: String,
    /// The real server's listener (kept so that it stays open).
    pub listener: TcpListener,
    /// Each connection: the client's end and the real server's.
    pub pairs: Vec<(TcpConn, TcpStream)>,
}

/// Adds the seed lab's NAT service `VIP:80` (rr, the first real server)
/// to `d` and opens `n` connections to it, each accepted by the real
/// server, both ends with a read timeout of [`T`]. A connection that
/// cannot be made fails the test with the director's state.
pub fn held_nat_connections(d: &Director, n: usize) -> Held {
    let vip = format!("{}:80", seed::VIP);
    d.adm(&["-A", "-t", &vip, "-s", "rr"]);
    d.adm(&[
        "-a",
        "-t",
        &vip,
        "-r",
        &format!("{}:80", seed::rs_ip(0)),
        "-m",
    ]);
    let listener = d.seed.rs[0]
        .enter(|| TcpListener::bind("0.0.0.0:80"))
        .unwrap()
        .unwrap();
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let c = TcpConn::connect(&d.seed.client, d.seed.vip(80), T)
            .unwrap_or_else(|e| panic!("connection {i}: {e:#}\n{}", d.diag()));
        let (s, _) = listener
            .accept()
            .unwrap_or_else(|e| panic!("accepting connection {i}: {e}"));
        s.set_read_timeout(Some(T)).unwrap();
        c.stream().set_read_timeout(Some(T)).unwrap();
        pairs.push((c, s));
    }
    Held {
        vip,
        listener,
        pairs,
    }
}

/// One round: a line from each client to its server, then an answer from
/// each server to its client. The indices of the connections broken.
pub fn exchange_lines(round: usize, pairs: &[(TcpConn, TcpStream)]) -> Vec<usize> {
    let mut broken = Vec::new();
    // All the lines first, so that broken connections are found without
    // waiting out a timeout each before the others are tried.
    for (i, (c, _)) in pairs.iter().enumerate() {
        if c.stream()
            .write_all(format!("r{round:05} {i:04}\n").as_bytes())
            .is_err()
        {
            broken.push(i);
        }
    }
    for (i, (c, s)) in pairs.iter().enumerate() {
        let want = format!("r{round:05} {i:04}\n");
        let mut got = vec![0u8; want.len()];
        let (mut srv, mut cli) = (s, c.stream());
        let mut a = [0u8; 3];
        let ok = srv.read_exact(&mut got).is_ok()
            && got == want.as_bytes()
            && srv.write_all(b"ok\n").is_ok()
            && cli.read_exact(&mut a).is_ok()
            && &a == b"ok\n";
        if !ok && !broken.contains(&i) {
            broken.push(i);
        }
    }
    broken
}

/// The MAC of link `dev` in `ns`.
pub fn link_mac(ns: &Netns, dev: &str) -> Mac {
    let out = ns.ip(&["-o", "link", "show", dev]).unwrap();
    let w: Vec<&str> = out.split_whitespace().collect();
    let m = w[w.iter().position(|x| *x == "link/ether").unwrap() + 1];
    let b: Vec<u8> = m
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    b.try_into().unwrap()
}

/// Live (not being removed) entries of the embryonic table of `bpf`.
pub fn live_embryos(bpf: &aya::Ebpf) -> usize {
    let m: HashMap<&MapData, FlowKey, Conn> =
        HashMap::try_from(bpf.map(names::EMBRYOS).unwrap()).unwrap();
    m.iter()
        .filter_map(|kv| kv.ok())
        .filter(|(_, c)| c.st & CONN_F_DEAD == 0)
        .count()
}
