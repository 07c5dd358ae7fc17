//! The operator's neighbour entries are the operator's: `lvs load` keeps
//! next hops resolved with managed entries of its own only where there is
//! no entry, never turns a permanent (static ARP, common on DR segments)
//! or any other existing entry into a managed one, and on its way out
//! deletes only the entries it made.

use std::{path::Path, time::Duration};

use crate::common::{adm_in, diagnose, LVS, T};
use lvs_lab::{
    clients,
    lan::{self, LanConfig, LanLab},
    require_root, servers, Netns, Proc,
};

/// The director's neighbour entry for `addr` on eth0, as `ip -o neigh
/// show nud all` prints it (empty when there is none).
fn entry(director: &Netns, addr: std::net::Ipv4Addr) -> String {
    let dev = format!(" dev {} ", lan::LAN_IF);
    director
        .ip(&["-o", "neigh", "show", "nud", "all", &addr.to_string()])
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dev))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A permanent entry for `addr` (with `mac`) on `ns`'s eth0.
fn permanent(ns: &Netns, addr: std::net::Ipv4Addr, mac: [u8; 6]) {
    ns.ip(&[
        "neigh",
        "replace",
        &addr.to_string(),
        "lladdr",
        &mac_string(mac),
        "dev",
        lan::LAN_IF,
        "nud",
        "permanent",
    ])
    .unwrap();
}

/// `real_servers` LAN real servers that answer no ARP and ask none (their
/// entry for the client is static), with HTTP servers on port 80, and the
/// director's lab ready for `lvs load` (forwarding on, `lvs pass` on the
/// switch).
fn static_lan(tag: &str, real_servers: usize) -> (LanLab, Vec<Proc>, Vec<servers::Server>) {
    let lab = LanLab::with_config(
        tag,
        LanConfig {
            real_servers,
            ..Default::default()
        },
    )
    .unwrap();
    lab.enable_forwarding().unwrap();
    let procs = lab.start_pass(Path::new(LVS)).unwrap();
    let client_mac = lab.client.mac(lan::LAN_IF).unwrap();
    for rs in &lab.rs {
        // arp_ignore=8: no ARP reply for any local address.
        for dev in ["all", lan::LAN_IF] {
            rs.sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), "8")
                .unwrap();
        }
        permanent(rs, lan::CLIENT_IP, client_mac);
    }
    let web = lab
        .rs
        .iter()
        .map(|ns| servers::http(ns, "0.0.0.0:80".parse().unwrap(), ns.role()).unwrap())
        .collect();
    (lab, procs, web)
}

/// DR to a real server that answers no ARP, with the director's entry for
/// it made permanent by the operator before `lvs load`: the service works
/// and the entry is still the operator's, PERMANENT with its MAC, while
/// `lvs load` runs and after it exits. (`lvs load` used to replace it with
/// a managed entry, which went FAILED, and every DR packet was dropped.)
#[test]
fn dr_keeps_the_operators_permanent_neighbour() {
    if !require_root("static neighbour") {
        return;
    }
    let (lab, mut procs, _web) = static_lan("sneigh", 1);
    let rs_ip = lan::rs_ip(0);
    let rs_mac = mac_string(lab.rs[0].mac(lan::LAN_IF).unwrap());
    permanent(&lab.director, rs_ip, lab.rs[0].mac(lan::LAN_IF).unwrap());
    let want = format!("{rs_ip} dev {} lladdr {rs_mac} PERMANENT", lan::LAN_IF);
    assert_eq!(entry(&lab.director, rs_ip), want);

    let director = lab.start_director(Path::new(LVS), &[]).unwrap();
    let pin = lab.pin_dir();
    let vip = format!("{}:80", lan::VIP);
    adm_in(&lab.director, pin, &["-A", "-t", &vip, "-s", "rr"]);
    adm_in(
        &lab.director,
        pin,
        &["-a", "-t", &vip, "-r", &format!("{rs_ip}:80"), "-g"],
    );
    // Ticks of `lvs load` (one a second) see the real server; a managed
    // entry would have failed its resolution by now (3 probes, 1 s apart).
    std::thread::sleep(Duration::from_secs(4));
    for i in 0..4 {
        let body = clients::http_get(&lab.client, lab.vip(80), T).unwrap_or_else(|e| {
            panic!(
                "request {i} through DR: {e:#}\nentry: {}\n{}",
                entry(&lab.director, rs_ip),
                diagnose(&lab.director, pin)
            )
        });
        assert_eq!(body, "rs1");
    }
    assert_eq!(
        crate::common::counter_in(&lab.director, pin, "fwd_no_neigh"),
        0
    );
    assert_eq!(entry(&lab.director, rs_ip), want, "while lvs load runs");

    let status = director.stop().unwrap();
    assert!(
        status.success(),
        "lvs load: {status}\n{}",
        director.output()
    );
    assert_eq!(entry(&lab.director, rs_ip), want, "after lvs load exited");
    procs.clear();
}

/// Three real servers: rs1's entry is the operator's before `lvs load`;
/// rs2's and rs3's are made by `lvs load` (managed), and the operator
/// makes rs3's permanent while it runs. On its way out `lvs load` deletes
/// rs2's entry only: rs1's and rs3's stay PERMANENT.
#[test]
fn lvs_load_deletes_only_the_neighbours_it_made() {
    if !require_root("own neighbours") {
        return;
    }
    let (lab, mut procs, _web) = static_lan("oneigh", 3);
    let macs: Vec<[u8; 6]> = lab
        .rs
        .iter()
        .map(|ns| ns.mac(lan::LAN_IF).unwrap())
        .collect();
    // rs2 and rs3 answer ARP (the managed entries must resolve).
    for rs in &lab.rs[1..] {
        for dev in ["all", lan::LAN_IF] {
            rs.sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), "1")
                .unwrap();
        }
    }
    permanent(&lab.director, lan::rs_ip(0), macs[0]);
    // Deleting its entries is what a daemon that detaches on its way out
    // does (a plain SIGTERM leaves the director forwarding, entries kept).
    let director = lab
        .start_director(Path::new(LVS), &["--detach-on-exit"])
        .unwrap();
    let pin = lab.pin_dir();
    let vip = format!("{}:80", lan::VIP);
    adm_in(&lab.director, pin, &["-A", "-t", &vip, "-s", "rr"]);
    for i in 0..3 {
        let rs = format!("{}:80", lan::rs_ip(i));
        adm_in(&lab.director, pin, &["-a", "-t", &vip, "-r", &rs, "-g"]);
    }
    let managed = |i: usize| {
        let e = entry(&lab.director, lan::rs_ip(i));
        e.contains(" managed ") && e.contains(&mac_string(macs[i]))
    };
    assert!(
        crate::common::wait_until(Duration::from_secs(5), || managed(1) && managed(2)),
        "lvs load made no managed entries for rs2 and rs3:\n{}",
        diagnose(&lab.director, pin)
    );
    let perm = |i: usize| {
        format!(
            "{} dev {} lladdr {} PERMANENT",
            lan::rs_ip(i),
            lan::LAN_IF,
            mac_string(macs[i])
        )
    };
    assert_eq!(entry(&lab.director, lan::rs_ip(0)), perm(0));
    // The operator takes rs3's entry over; the kernel keeps the protocol
    // of the entry it replaced (ours), which no longer makes it ours: it
    // is not managed any more.
    permanent(&lab.director, lan::rs_ip(2), macs[2]);
    let perm3 = format!("{} proto {}", perm(2), lvs::neigh::PROTO);
    let mut answers: Vec<String> = (0..6)
        .map(|_| clients::http_get(&lab.client, lab.vip(80), T).unwrap())
        .collect();
    answers.sort();
    assert_eq!(answers, ["rs1", "rs1", "rs2", "rs2", "rs3", "rs3"]);
    // A tick later both are still the operator's.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(entry(&lab.director, lan::rs_ip(0)), perm(0));
    assert_eq!(entry(&lab.director, lan::rs_ip(2)), perm3);

    let status = director.stop().unwrap();
    assert!(
        status.success(),
        "lvs load: {status}\n{}",
        director.output()
    );
    assert_eq!(entry(&lab.director, lan::rs_ip(0)), perm(0));
    assert_eq!(
        entry(&lab.director, lan::rs_ip(1)),
        "",
        "lvs load's own entry"
    );
    assert_eq!(entry(&lab.director, lan::rs_ip(2)), perm3);
    procs.clear();
}
