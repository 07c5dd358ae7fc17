//! The schedulers beyond rr/wrr on the seed's NAT lab, with real sockets:
//! held connections for the connection-counting schedulers (each one
//! ESTABLISHED at the director before the next is opened, so the counts
//! they are scheduled on are known), many client addresses for sh and mh,
//! several VIPs for dh. Expected choices are worked out from IPVS's rules
//! (and, for the hash schedulers, predicted with `lvs::schedtab` and
//! `lvs_common::hash`, the code the director uses).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use crate::common::{
    self, director, director_with, rs_name, seed_rs as rs, seed_vip as vip, Director, SHORT_CLOSE,
    T,
};
use lvs::{
    model::Scheduler,
    schedtab::{self, Member},
};
use lvs_lab::{
    clients::TcpConn,
    require_root,
    seed::{rs_ip, VIP},
};

/// `-A -t VIP:port -s sched` and `-a … -r rsN:port -m -w W` for each
/// weight, in order (rs1 first).
fn service(d: &Director, port: u16, sched: &str, weights: &[u32]) {
    d.adm(&["-A", "-t", &vip(port), "-s", sched]);
    for (i, w) in weights.iter().enumerate() {
        d.adm(&[
            "-a",
            "-t",
            &vip(port),
            "-r",
            &rs(i, port),
            "-m",
            "-w",
            &w.to_string(),
        ]);
    }
}

/// Opens `n` held connections to `port` one after the other, each one
/// ESTABLISHED at the director (ActiveConn counts it) before the next.
fn hold_n(d: &Director, port: u16, n: usize, held: &mut Vec<(TcpConn, String)>) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..n {
        let before: u64 = d.reals(&vip(port)).iter().map(|r| r.active).sum();
        let (c, who) = d.hold(port, None);
        d.wait_reals(&vip(port), T, "the new connection ESTABLISHED", |rows| {
            rows.iter().map(|r| r.active).sum::<u64>() == before + 1
        });
        names.push(who.clone());
        held.push((c, who));
    }
    names
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// ActiveConn of each real server of `port`, by name.
fn active_by_name(d: &Director, port: u16) -> BTreeMap<String, u64> {
    d.reals(&vip(port))
        .into_iter()
        .map(|r| (rs_name(&r.addr), r.active))
        .collect()
}

#[test]
fn lc_sends_new_connections_to_the_server_with_fewest() {
    if !require_root("sched lc") {
        return;
    }
    let d = director("lc", 2).unwrap();
    let _srv = d.line_servers(9000);
    // lc ignores weights: rs2's weight 5 changes nothing.
    d.adm(&["-A", "-t", &vip(9000), "-s", "lc"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(0, 9000), "-m", "-w", "1"]);
    let mut held = Vec::new();
    let first = hold_n(&d, 9000, 3, &mut held);
    assert_eq!(first, names(&["rs1", "rs1", "rs1"]));
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(1, 9000), "-m", "-w", "5"]);
    let next = hold_n(&d, 9000, 3, &mut held);
    assert_eq!(
        next,
        names(&["rs2", "rs2", "rs2"]),
        "rs1 holds 3 connections, rs2 none: the next three go to rs2"
    );
    // 3 : 3 is a tie, which IPVS gives to the first server of the list.
    let tie = hold_n(&d, 9000, 1, &mut held);
    assert_eq!(tie, names(&["rs1"]));
    let active = active_by_name(&d, 9000);
    assert_eq!(active["rs1"], 4, "{active:?}");
    assert_eq!(active["rs2"], 3, "{active:?}");
    // Every held connection still reaches its server.
    for (c, who) in &mut held {
        assert_eq!(&c.ask("again").unwrap(), who);
    }
}

#[test]
fn wlc_3_to_1_puts_6_of_8_held_connections_on_the_heavier_server() {
    if !require_root("sched wlc") {
        return;
    }
    let d = director("wlc", 2).unwrap();
    let _srv = d.line_servers(9000);
    service(&d, 9000, "wlc", &[3, 1]);
    let mut held = Vec::new();
    let got = hold_n(&d, 9000, 8, &mut held);
    // IPVS's wlc: the lowest ActiveConn*256/weight, ties to the first in
    // the list: (0,0)→rs1 (1,0)→rs2 (1,1)→rs1 (2,1)→rs1 (3,1) tie→rs1
    // (4,1)→rs2 (4,2)→rs1 (5,2)→rs1.
    assert_eq!(
        got,
        names(&["rs1", "rs2", "rs1", "rs1", "rs1", "rs2", "rs1", "rs1"])
    );
    let active = active_by_name(&d, 9000);
    assert_eq!((active["rs1"], active["rs2"]), (6, 2), "{active:?}");
}

#[test]
fn sed_and_nq_differ_from_wlc_as_in_ipvs() {
    if !require_root("sched sed nq") {
        return;
    }
    let d = director("sednq", 2).unwrap();
    let _srv: Vec<_> = [9001, 9002, 9003, 9004]
        .iter()
        .flat_map(|&p| d.line_servers(p))
        .collect();
    // Weights 2:1, five held connections each. With a1, a2 the active
    // counts, rs2 is chosen when
    //   wlc: a1/2 > a2/1          → rs1 rs2 rs1 rs1 rs2
    //   sed: (a1+1)/2 > (a2+1)/1  → rs1 rs1 rs2 rs1 rs1
    //   nq:  rs2 idle, or as sed  → rs1 rs2 rs1 rs1 rs1 (and then rs2)
    service(&d, 9001, "wlc", &[2, 1]);
    service(&d, 9002, "sed", &[2, 1]);
    service(&d, 9003, "nq", &[2, 1]);
    let mut held = Vec::new();
    let wlc = hold_n(&d, 9001, 5, &mut held);
    let sed = hold_n(&d, 9002, 5, &mut held);
    let nq = hold_n(&d, 9003, 6, &mut held);
    assert_eq!(wlc, names(&["rs1", "rs2", "rs1", "rs1", "rs2"]), "wlc");
    assert_eq!(sed, names(&["rs1", "rs1", "rs2", "rs1", "rs1"]), "sed");
    assert_eq!(nq, names(&["rs1", "rs2", "rs1", "rs1", "rs1", "rs2"]), "nq");
    // sed keeps a slow server idle that wlc would use at once: weights
    // 10:1, rs2 gets nothing until rs1 has 10 ((10+1)/10 > 1/1).
    service(&d, 9004, "sed", &[10, 1]);
    let sed10 = hold_n(&d, 9004, 11, &mut held);
    let mut want = vec!["rs1"; 10];
    want.push("rs2");
    assert_eq!(sed10, names(&want), "sed 10:1");
}

/// The server `sched`'s table gives to `key` (a source address for sh/mh,
/// the destination for dh), as the director computes it: flow hash of the
/// address (port 0) modulo the table length.
fn predict(sched: Scheduler, members: &[Member], key: IpAddr) -> String {
    let table = schedtab::table(sched, members).unwrap();
    let IpAddr::V4(a) = key else { unreachable!() };
    let words = [u32::from_ne_bytes(a.octets()), 0, 0, 0];
    let h = lvs_common::hash::flow(&words, 0, 0);
    let pos = table[(h % table.len() as u32) as usize] as usize;
    rs_name(&format!("{}:0", members[pos].addr))
}

fn members(idx: &[usize], port: u16) -> Vec<Member> {
    idx.iter()
        .map(|&i| Member::new(IpAddr::V4(rs_ip(i)), port, 1))
        .collect()
}

/// One connection from `from` to `port`: the answering server.
fn once_from(d: &Director, port: u16, from: IpAddr) -> String {
    d.hold(port, Some(from)).1
}

#[test]
fn sh_keeps_each_source_on_one_server_and_covers_all() {
    if !require_root("sched sh") {
        return;
    }
    let d = director("sh", 3).unwrap();
    let _srv = d.line_servers(9000);
    service(&d, 9000, "sh", &[1, 1, 1]);
    let sources = d.client_addrs(20);
    let m = members(&[0, 1, 2], 9000);
    let mut seen = BTreeMap::new();
    for &src in &sources {
        let tries: Vec<String> = (0..3).map(|_| once_from(&d, 9000, src)).collect();
        assert!(
            tries.iter().all(|t| *t == tries[0]),
            "{src} reached {tries:?}"
        );
        assert_eq!(
            tries[0],
            predict(Scheduler::Sh, &m, src),
            "{src}: not the server the sh table gives"
        );
        seen.insert(src, tries[0].clone());
    }
    let servers: BTreeSet<_> = seen.values().collect();
    assert_eq!(
        servers.len(),
        3,
        "20 sources should cover 3 servers: {seen:?}"
    );

    // rs2 quiesced: without sh-fallback its sources find no server (the
    // SYN goes to the director's own stack, which refuses it) ...
    d.adm(&["-e", "-t", &vip(9000), "-r", &rs(1, 9000), "-m", "-w", "0"]);
    for (&src, _) in seen.iter().filter(|(_, w)| *w == "rs2") {
        let r = TcpConn::connect_from(&d.seed.client, src, d.seed.vip(9000), T);
        assert!(r.is_err(), "{src} got a server with its own quiesced");
    }
    // ... with it, they walk on to the next bucket's server (rs3: the
    // buckets go rs1 rs2 rs3 …); everyone else stays.
    d.adm(&["-E", "-t", &vip(9000), "-s", "sh", "-b", "sh-fallback"]);
    for (&src, was) in &seen {
        let want = if was == "rs2" { "rs3" } else { was.as_str() };
        assert_eq!(once_from(&d, 9000, src), want, "{src}");
    }
}

#[test]
fn dh_keeps_each_vip_on_one_server_and_vips_cover_several() {
    if !require_root("sched dh") {
        return;
    }
    let d = director("dh", 3).unwrap();
    let _srv = d.line_servers(9000);
    // Extra VIPs are addresses of the director's outside link, so that it
    // answers ARP for them; each is a dh service over the same servers.
    let vips: Vec<Ipv4Addr> = std::iter::once(VIP)
        .chain((130..138).map(|o| Ipv4Addr::new(192, 168, 47, o)))
        .collect();
    for v in &vips[1..] {
        d.seed.director.addr("ens37", &format!("{v}/24")).unwrap();
    }
    let m = members(&[0, 1, 2], 9000);
    for v in &vips {
        let svc = format!("{v}:9000");
        d.adm(&["-A", "-t", &svc, "-s", "dh"]);
        for i in 0..3 {
            d.adm(&["-a", "-t", &svc, "-r", &rs(i, 9000), "-m"]);
        }
    }
    let mut seen = BTreeMap::new();
    for v in &vips {
        let addr = std::net::SocketAddr::new(IpAddr::V4(*v), 9000);
        let tries: Vec<String> = (0..3)
            .map(|_| {
                let mut c = TcpConn::connect(&d.seed.client, addr, T)
                    .unwrap_or_else(|e| panic!("{addr}: {e:#}\n{}", d.diag()));
                c.ask("hi").unwrap()
            })
            .collect();
        assert!(
            tries.iter().all(|t| *t == tries[0]),
            "{v} reached {tries:?}"
        );
        assert_eq!(tries[0], predict(Scheduler::Dh, &m, IpAddr::V4(*v)), "{v}");
        seen.insert(*v, tries[0].clone());
    }
    let servers: BTreeSet<_> = seen.values().collect();
    assert!(servers.len() >= 2, "9 VIPs all on one server: {seen:?}");
}

/// Each source's server on an mh service of `d` at `port`.
fn mh_choices(d: &Director, port: u16, sources: &[IpAddr]) -> BTreeMap<IpAddr, String> {
    sources
        .iter()
        .map(|&s| (s, once_from(d, port, s)))
        .collect()
}

#[test]
fn mh_removal_moves_few_flows_and_two_directors_agree() {
    if !require_root("sched mh") {
        return;
    }
    // Two independent directors with the same servers in the same order.
    let labs: Vec<Director> = ["mha", "mhb"]
        .iter()
        .map(|t| director(t, 5).unwrap())
        .collect();
    let _srv: Vec<_> = labs.iter().flat_map(|d| d.line_servers(9000)).collect();
    let mut sources = Vec::new();
    for d in &labs {
        service(d, 9000, "mh", &[1, 1, 1, 1, 1]);
        sources = d.client_addrs(30);
    }
    let all = members(&[0, 1, 2, 3, 4], 9000);
    let before: Vec<_> = labs.iter().map(|d| mh_choices(d, 9000, &sources)).collect();
    assert_eq!(before[0], before[1], "the two directors disagree");
    for (s, who) in &before[0] {
        assert_eq!(*who, predict(Scheduler::Mh, &all, *s), "{s}");
    }
    let on_rs3 = before[0].values().filter(|w| *w == "rs3").count();
    assert!(on_rs3 > 0, "no source on rs3: {:?}", before[0]);

    for d in &labs {
        d.adm(&["-d", "-t", &vip(9000), "-r", &rs(2, 9000)]);
    }
    let rest = members(&[0, 1, 3, 4], 9000);
    let after: Vec<_> = labs.iter().map(|d| mh_choices(d, 9000, &sources)).collect();
    assert_eq!(after[0], after[1], "the two directors disagree after -d");
    for (s, who) in &after[0] {
        assert_eq!(*who, predict(Scheduler::Mh, &rest, *s), "{s}");
    }
    let mut moved_others = Vec::new();
    for s in &sources {
        let (b, a) = (&before[0][s], &after[0][s]);
        if b == "rs3" {
            assert_ne!(a, "rs3", "{s} still on the removed server");
        } else if a != b {
            moved_others.push((*s, b.clone(), a.clone()));
        }
    }
    // At most 2 % of the others may move: of ~24 flows, at most one.
    assert!(
        moved_others.len() <= 1,
        "flows not on rs3 moved: {moved_others:?}"
    );

    // The same bound over many more flows, with the director's own table
    // and hash (what the two labs just showed the data path follows).
    let (t5, t4) = (
        schedtab::table(Scheduler::Mh, &all).unwrap(),
        schedtab::table(Scheduler::Mh, &rest).unwrap(),
    );
    let name = |m: &[Member], p: u32| m[p as usize].addr;
    let (mut others, mut moved) = (0, 0);
    for i in 0..20_000u32 {
        let a = [
            u32::from_ne_bytes([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
            0,
            0,
            0,
        ];
        let h = lvs_common::hash::flow(&a, 0, 0);
        let b = name(&all, t5[(h % t5.len() as u32) as usize]);
        let n = name(&rest, t4[(h % t4.len() as u32) as usize]);
        if b != IpAddr::V4(rs_ip(2)) {
            others += 1;
            moved += (b != n) as u32;
        }
    }
    assert!(
        moved * 50 <= others,
        "{moved} of {others} flows not on the removed server moved (> 2 %)"
    );
}

#[test]
fn fo_takes_the_heaviest_available_server() {
    if !require_root("sched fo") {
        return;
    }
    let d = director("fo", 3).unwrap();
    let _srv = d.line_servers(9000);
    d.adm(&["-A", "-t", &vip(9000), "-s", "fo"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(0, 9000), "-m", "-w", "1"]);
    d.adm(&["-a", "-t", &vip(9000), "-r", &rs(1, 9000), "-m", "-w", "3"]);
    d.adm(&[
        "-a",
        "-t",
        &vip(9000),
        "-r",
        &rs(2, 9000),
        "-m",
        "-w",
        "2",
        "-x",
        "2",
    ]);
    let mut held = Vec::new();
    assert_eq!(hold_n(&d, 9000, 4, &mut held), names(&["rs2"; 4]));
    // Quiesced: the next heaviest, rs3, until its threshold (2), then rs1.
    d.adm(&["-e", "-t", &vip(9000), "-r", &rs(1, 9000), "-m", "-w", "0"]);
    assert_eq!(
        hold_n(&d, 9000, 3, &mut held),
        names(&["rs3", "rs3", "rs1"])
    );
    // The quiesced server's connections go on.
    for (c, who) in &mut held {
        assert_eq!(&c.ask("still?").unwrap(), who);
    }
    // Back to weight 3: new connections return to it at once.
    d.adm(&["-e", "-t", &vip(9000), "-r", &rs(1, 9000), "-m", "-w", "3"]);
    assert_eq!(hold_n(&d, 9000, 1, &mut held), names(&["rs2"]));
}

#[test]
fn ovf_fills_the_heaviest_server_past_its_weight_then_overflows() {
    if !require_root("sched ovf") {
        return;
    }
    let d = director_with("ovf", 2, SHORT_CLOSE).unwrap();
    let _srv = d.line_servers(9000);
    service(&d, 9000, "ovf", &[1, 2]);
    let mut held = Vec::new();
    // IPVS's ovf skips a server whose ActiveConn exceeds its weight: rs2
    // (weight 2) takes connections at 0, 1 and 2 active, then rs1 at 0
    // and 1.
    assert_eq!(
        hold_n(&d, 9000, 5, &mut held),
        names(&["rs2", "rs2", "rs2", "rs1", "rs1"])
    );
    // All full: no server, the SYN goes to the director's own stack,
    // which nothing listens on.
    let full = TcpConn::connect(&d.seed.client, d.seed.vip(9000), T);
    assert!(full.is_err(), "a sixth connection was accepted");
    // One of rs2's ends: rs2 has room again.
    let i = held.iter().position(|(_, w)| w == "rs2").unwrap();
    drop(held.remove(i));
    d.wait_reals(&vip(9000), T, "rs2 down to 2 active", |rows| {
        rows.iter()
            .any(|r| rs_name(&r.addr) == "rs2" && r.active == 2)
    });
    assert_eq!(hold_n(&d, 9000, 1, &mut held), names(&["rs2"]));
}

#[test]
fn twos_balances_with_two_random_choices() {
    if !require_root("sched twos") {
        return;
    }
    let d = director("twos", 4).unwrap();
    let _srv: Vec<_> = [9000, 9001]
        .iter()
        .flat_map(|&p| d.line_servers(p))
        .collect();
    // rs4 has weight 0: never chosen.
    service(&d, 9000, "twos", &[1, 1, 1, 0]);
    let mut held = Vec::new();
    let got = hold_n(&d, 9000, 24, &mut held);
    let t = common::tally(&got);
    assert!(!t.contains_key("rs4"), "weight 0 chosen: {t:?}");
    // Two choices keep loads close: in 20 000 simulated runs of 24
    // connections over three equal servers every server got 3 to 12
    // (the lowest twice below 3; random single choice is far worse).
    for s in ["rs1", "rs2", "rs3"] {
        let n = t.get(s).copied().unwrap_or(0);
        assert!((3..=12).contains(&n), "{t:?}");
    }
    // Weights 3:1: the lighter one gets about a quarter (2 to 9 of 24 in
    // the simulation, but for one run in 20 000).
    service(&d, 9001, "twos", &[3, 1]);
    let got = hold_n(&d, 9001, 24, &mut held);
    let t = common::tally(&got);
    let light = t.get("rs2").copied().unwrap_or(0);
    assert!((2..=9).contains(&light), "twos 3:1 gave {t:?}");
}

#[test]
fn thresholds_stop_and_resume_a_server_with_hysteresis() {
    if !require_root("sched thresholds") {
        return;
    }
    let d = director_with("thr", 2, SHORT_CLOSE).unwrap();
    let _srv: Vec<_> = [9000, 9001]
        .iter()
        .flat_map(|&p| d.line_servers(p))
        .collect();
    for (port, limits) in [
        (9000u16, &["-x", "3", "-y", "2"][..]),
        (9001, &["-x", "4"][..]),
    ] {
        d.adm(&["-A", "-t", &vip(port), "-s", "rr"]);
        let mut a = vec!["-a", "-t"];
        let (v, r) = (vip(port), rs(0, port));
        a.extend([v.as_str(), "-r", r.as_str(), "-m"]);
        a.extend(limits);
        d.adm(&a);
        d.adm(&["-a", "-t", &vip(port), "-r", &rs(1, port), "-m"]);
    }
    let listing = d.adm(&["-L", "-n", "--thresholds", "-t", &vip(9000)]);
    assert!(
        listing.contains(&format!("  -> {:<28} 3          2", rs(0, 9000))),
        "{listing}"
    );

    let mut held = Vec::new();
    // rr alternates until rs1 holds 3 (= -x): then only rs2.
    let got = hold_n(&d, 9000, 8, &mut held);
    assert_eq!(
        got,
        names(&["rs1", "rs2", "rs1", "rs2", "rs1", "rs2", "rs2", "rs2"])
    );
    let close_one_on = |held: &mut Vec<(TcpConn, String)>, who: &str| {
        let i = held.iter().position(|(_, w)| w == who).unwrap();
        drop(held.remove(i));
    };
    let rs1 = rs(0, 9000);
    // One of rs1's ends and expires: 2 left, not below -y 2: still
    // overloaded.
    close_one_on(&mut held, "rs1");
    d.wait_reals(&vip(9000), Duration::from_secs(10), "rs1 at 2", |rows| {
        rows.iter()
            .any(|r| r.addr == rs1 && r.active + r.inactive == 2)
    });
    assert_eq!(hold_n(&d, 9000, 2, &mut held), names(&["rs2", "rs2"]));
    // Another: 1 < 2, available again, rr resumes including rs1.
    close_one_on(&mut held, "rs1");
    d.wait_reals(&vip(9000), Duration::from_secs(10), "rs1 at 1", |rows| {
        rows.iter()
            .any(|r| r.addr == rs1 && r.active + r.inactive == 1)
    });
    let got = hold_n(&d, 9000, 2, &mut held);
    assert!(got.contains(&"rs1".to_string()), "rs1 not resumed: {got:?}");

    // Without -y the lower threshold is 3/4 of -x: with -x 4, rs1 comes
    // back below 3.
    let got = hold_n(&d, 9001, 10, &mut held);
    assert_eq!(got.iter().filter(|w| *w == "rs1").count(), 4, "{got:?}");
    let rs1 = rs(0, 9001);
    let close_on_9001 = |held: &mut Vec<(TcpConn, String)>| {
        let i = held
            .iter()
            .position(|(c, w)| w == "rs1" && c.stream().peer_addr().unwrap().port() == 9001)
            .unwrap();
        drop(held.remove(i));
    };
    close_on_9001(&mut held);
    d.wait_reals(&vip(9001), Duration::from_secs(10), "rs1 at 3", |rows| {
        rows.iter()
            .any(|r| r.addr == rs1 && r.active + r.inactive == 3)
    });
    assert_eq!(hold_n(&d, 9001, 2, &mut held), names(&["rs2", "rs2"]));
    close_on_9001(&mut held);
    d.wait_reals(&vip(9001), Duration::from_secs(10), "rs1 at 2", |rows| {
        rows.iter()
            .any(|r| r.addr == rs1 && r.active + r.inactive == 2)
    });
    let got = hold_n(&d, 9001, 2, &mut held);
    assert!(got.contains(&"rs1".to_string()), "rs1 not resumed: {got:?}");
}

#[test]
fn lblc_and_lblcr_keep_a_destination_on_its_servers_until_overload() {
    if !require_root("sched lblc") {
        return;
    }
    let d = director_with("lblc", 3, SHORT_CLOSE).unwrap();
    let _srv: Vec<_> = [9001, 9002]
        .iter()
        .flat_map(|&p| d.line_servers(p))
        .collect();
    // Three servers of weight 2. A server is overloaded when its
    // ActiveConn exceeds its weight (3 > 2) while another is below half its
    // weight (0 active); then wlc's choice takes over the destination
    // (lblc) or joins its set (lblcr, which uses the set's least loaded).
    service(&d, 9001, "lblc", &[2, 2, 2]);
    service(&d, 9002, "lblcr", &[2, 2, 2]);
    let mut held = Vec::new();
    let lblc = hold_n(&d, 9001, 11, &mut held);
    assert_eq!(
        lblc,
        names(&["rs1", "rs1", "rs1", "rs2", "rs2", "rs2", "rs3", "rs3", "rs3", "rs3", "rs3"]),
        "lblc"
    );
    let lblcr = hold_n(&d, 9002, 11, &mut held);
    // The set grows {rs1} → {rs1,rs2} → {rs1,rs2,rs3}; at 3:3:3 nobody is
    // below half its weight, so the set's least loaded (the first) serves.
    assert_eq!(
        lblcr,
        names(&["rs1", "rs1", "rs1", "rs2", "rs2", "rs2", "rs3", "rs3", "rs3", "rs1", "rs2"]),
        "lblcr"
    );
    // lblc: rs1's connections end; rs3 (5 active) is now overloaded since
    // rs1 is idle, and the destination moves to rs1 and stays there.
    held.retain(|(c, w)| !(w == "rs1" && c.stream().peer_addr().unwrap().port() == 9001));
    let rs1 = rs(0, 9001);
    d.wait_reals(&vip(9001), Duration::from_secs(5), "rs1 idle", |rows| {
        rows.iter().any(|r| r.addr == rs1 && r.active == 0)
    });
    assert_eq!(
        hold_n(&d, 9001, 3, &mut held),
        names(&["rs1", "rs1", "rs1"])
    );
}
