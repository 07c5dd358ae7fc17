//! Connection tracking seen from `lvsadm` on the seed's NAT lab: ActiveConn
//! / InActConn following the TCP states, closing connections leaving after
//! their (shortened) timeouts, `-L -n -c` rows, many short connections
//! leaving nothing behind, and the options that `-S`/`-R` and `--set` carry.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use crate::common::{self, director_with, rs_name, signed, Director, SHORT_CLOSE, T};
use lvs_lab::{
    clients::{TcpConn, UdpClient},
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

fn rr_service(d: &Director, port: u16) {
    d.adm(&["-A", "-t", &vip(port), "-s", "rr"]);
    for i in 0..2 {
        d.adm(&["-a", "-t", &vip(port), "-r", &rs(i, port), "-m"]);
    }
}

/// One row of `lvsadm -L -n -c`.
#[derive(Debug, Clone)]
struct ConnRow {
    line: String,
    proto: String,
    /// Seconds left, from `MM:SS`.
    expire: u64,
    state: String,
    source: String,
    virt: String,
    dest: String,
}

fn conn_rows(listing: &str) -> Vec<ConnRow> {
    let mut lines = listing.lines();
    assert_eq!(lines.next(), Some("IPVS connection entries"), "{listing}");
    assert_eq!(
        lines.next(),
        Some("pro expire state       source             virtual            destination"),
        "{listing}"
    );
    lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 6, "row {l:?}");
            let (m, s) = w[1].split_once(':').expect("MM:SS");
            ConnRow {
                line: l.to_owned(),
                proto: w[0].into(),
                expire: m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap(),
                state: w[2].into(),
                source: w[3].into(),
                virt: w[4].into(),
                dest: w[5].into(),
            }
        })
        .collect()
}

#[test]
fn counts_follow_the_tcp_states_and_l_c_lists_connections() {
    if !require_root("conns states") {
        return;
    }
    // Closing states a little longer than SHORT_CLOSE, so that the moment
    // all ten are InActConn can be seen before they expire.
    let d = director_with(
        "cstate",
        2,
        &[
            "--timeout",
            "fin_wait=4",
            "--timeout",
            "time_wait=4",
            "--timeout",
            "close_wait=4",
            "--timeout",
            "last_ack=4",
            "--timeout",
            "close=4",
        ],
    )
    .unwrap();
    let _srv = d.line_servers(9000);
    rr_service(&d, 9000);
    let mut held: Vec<(TcpConn, String)> = (0..10).map(|_| d.hold(9000, None)).collect();
    d.wait_totals(&vip(9000), 10, 0, T);
    let rows = d.reals(&vip(9000));
    assert!(rows.iter().all(|r| r.active == 5), "rr: {rows:?}");

    let listing = d.adm(&["-L", "-n", "-c"]);
    let conns = conn_rows(&listing);
    assert_eq!(conns.len(), 10, "{listing}");
    for (c, who) in &held {
        let local = c.local_addr().unwrap();
        let row = conns
            .iter()
            .find(|r| r.source == local.to_string())
            .unwrap_or_else(|| panic!("{local} not listed:\n{listing}"));
        assert_eq!(row.proto, "TCP");
        assert_eq!(row.state, "ESTABLISHED");
        // IPVS's 900 s ESTABLISHED timeout, counting down.
        assert!((880..=900).contains(&row.expire), "{}", row.line);
        assert_eq!(row.virt, vip(9000));
        assert_eq!(rs_name(&row.dest), *who, "{}", row.line);
        assert_eq!(local.ip().to_string(), CLIENT_IP.to_string());
        // ipvsadm's "%-3s %-6s %-11s %-18s %-18s %s".
        let want = format!(
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            "TCP",
            row.line.split_whitespace().nth(1).unwrap(),
            "ESTABLISHED",
            local,
            vip(9000),
            row.dest
        );
        assert_eq!(row.line, want);
    }

    // Closing moves them to InActConn at once ...
    held.clear();
    d.wait_totals(&vip(9000), 0, 10, Duration::from_secs(3));
    let conns = conn_rows(&d.adm(&["-L", "-n", "-c"]));
    assert!(
        conns
            .iter()
            .all(|r| r.state != "ESTABLISHED" && r.expire <= 4),
        "{conns:#?}"
    );
    // ... and they are gone after the closing timeouts.
    d.wait_totals(&vip(9000), 0, 0, Duration::from_secs(10));
    assert!(conn_rows(&d.adm(&["-L", "-n", "-c"])).is_empty());
    assert_eq!(d.counter("evicted"), 0);
    assert!(!d.load_log().contains("evicted"), "{}", d.load_log());
}

#[test]
fn udp_flows_count_inactive_until_their_timeout() {
    if !require_root("conns udp") {
        return;
    }
    let d = director_with("cudp", 2, &["--timeout", "udp=3"]).unwrap();
    let any = SocketAddr::from(([0, 0, 0, 0], 53));
    let _srv: Vec<_> = d
        .seed
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| servers::udp(ns, any, &format!("rs{}", i + 1)).unwrap())
        .collect();
    d.adm(&["-A", "-u", &vip(53), "-s", "rr"]);
    for i in 0..2 {
        d.adm(&["-a", "-u", &vip(53), "-r", &rs(i, 53), "-m"]);
    }
    let rows = || common::real_rows(&d.adm(&["-L", "-n", "-u", &vip(53)]));
    // Ten flows (a new source port each): as in IPVS, a UDP connection is
    // never "active".
    let clients: Vec<UdpClient> = (0..10)
        .map(|_| UdpClient::bind(&d.seed.client, "0.0.0.0:0".parse().unwrap()).unwrap())
        .collect();
    for c in &clients {
        c.request(d.seed.vip(53), "q", T).unwrap();
    }
    assert!(
        common::wait_until(T, || {
            let r = rows();
            r.iter().all(|r| r.active == 0 && r.inactive == 5)
        }),
        "{:?}",
        rows()
    );
    let conns = conn_rows(&d.adm(&["-L", "-n", "-c"]));
    assert_eq!(conns.len(), 10, "{conns:#?}");
    for c in &clients {
        let local = c.local_addr().unwrap().port();
        let row = conns
            .iter()
            .find(|r| r.source == format!("{CLIENT_IP}:{local}"))
            .unwrap_or_else(|| panic!("port {local} not listed: {conns:#?}"));
        assert_eq!((row.proto.as_str(), row.state.as_str()), ("UDP", "UDP"));
        assert!(row.expire <= 3, "{}", row.line);
        assert_eq!(row.virt, vip(53));
    }
    // They expire after the UDP timeout (3 s) with no traffic.
    assert!(
        common::wait_until(Duration::from_secs(8), || {
            rows().iter().all(|r| r.active == 0 && r.inactive == 0)
        }),
        "{:?}",
        rows()
    );
    assert!(conn_rows(&d.adm(&["-L", "-n", "-c"])).is_empty());
}

/// `n` HTTP requests with `Connection: close`, each on a new connection,
/// from `threads` client threads: (failures, first failure).
fn short_connections(d: &Director, port: u16, n: usize, threads: usize) -> (usize, String) {
    let to = d.seed.vip(port);
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let first = std::sync::Mutex::new(String::new());
    let one = |to: SocketAddr| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, T)?;
        s.set_read_timeout(Some(T))?;
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    };
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                d.seed
                    .client
                    .enter(|| {
                        while next.fetch_add(1, Ordering::Relaxed) < n {
                            match one(to) {
                                Ok(b) if b.starts_with("HTTP/1.1 200") && b.ends_with("ok\n") => {}
                                other => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    let mut f = first.lock().unwrap();
                                    if f.is_empty() {
                                        *f = format!("{other:?}");
                                    }
                                }
                            }
                        }
                    })
                    .unwrap();
            });
        }
    });
    (failed.into_inner(), first.into_inner().unwrap())
}

#[test]
fn ten_thousand_short_connections_leave_every_count_at_zero() {
    if !require_root("conns 10000") {
        return;
    }
    let d = director_with("cshort", 2, SHORT_CLOSE).unwrap();
    let any = SocketAddr::from(([0, 0, 0, 0], 80));
    let _web: Vec<_> = d
        .seed
        .rs
        .iter()
        .map(|ns| servers::http(ns, any, "ok\n").unwrap())
        .collect();
    rr_service(&d, 80);
    let n = 10_000;
    // While they run, and until the counts settle, no count may ever go
    // below zero (the sweeper must only take off connections that are
    // really gone).
    let done = std::sync::atomic::AtomicBool::new(false);
    let (took, failed, first, lowest) = std::thread::scope(|sc| {
        let sampler = sc.spawn(|| {
            let mut lowest = (0i64, String::new());
            while !done.load(Ordering::Relaxed) {
                for r in d.reals(&vip(80)) {
                    for v in [r.active, r.inactive] {
                        if signed(v) < lowest.0 {
                            lowest = (signed(v), format!("{r:?}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            lowest
        });
        let start = Instant::now();
        let (failed, first) = short_connections(&d, 80, n, 4);
        let took = start.elapsed();
        // Every connection closes, times out and leaves the counts.
        let settled = common::wait_until(Duration::from_secs(20), || {
            d.reals(&vip(80))
                .iter()
                .all(|r| r.active == 0 && r.inactive == 0)
        });
        done.store(true, Ordering::Relaxed);
        let lowest = sampler.join().unwrap();
        assert!(settled, "counts not back to 0: {:?}", d.reals(&vip(80)));
        (took, failed, first, lowest)
    });
    eprintln!("{n} short connections in {took:?}");
    assert_eq!(
        failed,
        0,
        "{failed} of {n} failed, first: {first}\n{}",
        d.diag()
    );
    assert!(d.load_running(), "lvs load died:\n{}", d.load_log());
    assert!(
        lowest.0 >= 0,
        "a count went below zero ({}: {}); lvs load said:\n{}",
        lowest.0,
        lowest.1,
        d.load_log()
    );
    assert!(
        !d.load_log().contains("evicted"),
        "lvs load reported evictions with the table far from full:\n{}",
        d.load_log()
    );
    let stats = d.adm(&["-L", "-n", "--stats", "--exact", "-t", &vip(80)]);
    let svc_conns: u64 = stats
        .lines()
        .find(|l| l.starts_with("TCP "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(svc_conns, n as u64, "{stats}");
    assert!(conn_rows(&d.adm(&["-L", "-n", "-c"])).is_empty());
    assert_eq!(d.counter("evicted"), 0);
    assert!(
        took < Duration::from_secs(60),
        "{n} connections took {took:?}"
    );
}

/// An `-L -n` listing without the ActiveConn/InActConn columns.
fn without_counts(listing: &str) -> String {
    listing
        .lines()
        .map(|l| {
            if l.starts_with("  ->") {
                let w: Vec<&str> = l.split_whitespace().collect();
                w[..w.len().saturating_sub(2)].join(" ")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn options_round_trip_through_save_and_restore() {
    if !require_root("conns save/restore") {
        return;
    }
    let d = director_with(
        "csave",
        2,
        &[
            "--timeout",
            "established=100",
            "--timeout",
            "fin_wait=7",
            "--timeout",
            "udp=33",
        ],
    )
    .unwrap();
    let _srv = d.line_servers(9000);
    assert_eq!(
        d.adm(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 100 7 33\n"
    );
    let v80 = vip(80);
    let v9000 = vip(9000);
    let v53 = vip(53);
    d.adm(&[
        "-A",
        "-t",
        &v80,
        "-s",
        "sh",
        "-p",
        "600",
        "-M",
        "255.255.255.0",
        "-b",
        "sh-port",
    ]);
    d.adm(&[
        "-a",
        "-t",
        &v80,
        "-r",
        &rs(0, 80),
        "-m",
        "-w",
        "2",
        "-x",
        "100",
        "-y",
        "50",
    ]);
    d.adm(&[
        "-a",
        "-t",
        &v80,
        "-r",
        &rs(1, 80),
        "-m",
        "-w",
        "1",
        "-x",
        "7",
    ]);
    d.adm(&["-A", "-t", &v9000, "-s", "wlc", "-p"]);
    d.adm(&["-a", "-t", &v9000, "-r", &rs(0, 9000), "-m"]);
    d.adm(&[
        "-A",
        "-u",
        &v53,
        "-s",
        "rr",
        "-p",
        "60",
        "-M",
        "255.255.0.0",
    ]);
    d.adm(&["-a", "-u", &v53, "-r", &rs(1, 53), "-m", "-w", "3"]);

    // --set: 0 leaves a value; the data path uses the new ones.
    d.adm(&["--set", "1000", "60", "200"]);
    d.adm(&["--set", "0", "0", "0"]);
    let timeouts = "Timeout (tcp tcpfin udp): 1000 60 200\n";
    assert_eq!(d.adm(&["-L", "--timeout"]), timeouts);
    let (held, _) = d.hold(9000, None);
    let conns = conn_rows(&d.adm(&["-L", "-n", "-c"]));
    let row = conns
        .iter()
        .find(|r| r.source == held.local_addr().unwrap().to_string())
        .unwrap_or_else(|| panic!("{conns:#?}"));
    assert_eq!(row.state, "ESTABLISHED");
    assert!((980..=1000).contains(&row.expire), "{}", row.line);
    drop(held);

    let saved = d.adm(&["-S", "-n"]);
    for line in [
        format!("-A -t {v80} -s sh -p 600 -M 255.255.255.0 -b sh-port"),
        format!("-a -t {v80} -r {} -m -w 2 -x 100 -y 50", rs(0, 80)),
        format!("-a -t {v80} -r {} -m -w 1 -x 7", rs(1, 80)),
        format!("-A -t {v9000} -s wlc -p 300"),
        format!("-a -t {v9000} -r {} -m -w 1", rs(0, 9000)),
        format!("-A -u {v53} -s rr -p 60 -M 255.255.0.0"),
        format!("-a -u {v53} -r {} -m -w 3", rs(1, 53)),
    ] {
        assert!(
            saved.lines().any(|l| l == line),
            "{line:?} not in:\n{saved}"
        );
    }
    assert_eq!(saved.lines().count(), 7, "{saved}");
    let listed = d.adm(&["-L", "-n"]);

    d.adm(&["-C"]);
    assert_eq!(d.adm(&["-S", "-n"]), "");
    let (rc, out, err) = d.adm_raw(&["-R"], &saved);
    assert_eq!(rc, 0, "-R: {out}{err}");
    assert_eq!(d.adm(&["-S", "-n"]), saved);
    // The same listing, but for the counts (-C ended the connection).
    assert_eq!(
        without_counts(&d.adm(&["-L", "-n"])),
        without_counts(&listed)
    );
    assert_eq!(d.adm(&["-L", "--timeout"]), timeouts);
    let thr = d.adm(&["-L", "-n", "--thresholds", "-t", &v80]);
    assert!(
        thr.contains(&format!("  -> {:<28} 100        50 ", rs(0, 80))),
        "{thr}"
    );
    assert!(
        thr.contains(&format!("  -> {:<28} 7          0 ", rs(1, 80))),
        "{thr}"
    );
    // The restored service works, with the restored timeouts.
    let (held, who) = d.hold(9000, None);
    assert_eq!(who, "rs1");
    let conns = conn_rows(&d.adm(&["-L", "-n", "-c"]));
    let row = conns
        .iter()
        .find(|r| r.source == held.local_addr().unwrap().to_string())
        .unwrap_or_else(|| panic!("{conns:#?}"));
    assert_eq!(
        (row.state.as_str(), row.virt.as_str()),
        ("ESTABLISHED", v9000.as_str())
    );
    assert!((980..=1000).contains(&row.expire), "{}", row.line);
}

/// A connection table too small for the traffic: the LRU evicts entries
/// the data path never saw end, and the sweeper takes them off the counts
/// (and counts them as `evicted`) instead of leaving InActConn inflated.
/// The map holds `--max-conns` plus room for the kernel's per-CPU free
/// lists: `cap`, its real size, is what the traffic must overflow.
#[test]
fn evicted_connections_are_taken_off_the_counts() {
    if !require_root("conns evictions") {
        return;
    }
    // Eviction is what this test is about: by default a full table
    // refuses new connections instead (`flood::`).
    let d = director_with(
        "evict",
        1,
        &["--max-conns", "512", "--conn-table-full", "evict"],
    )
    .unwrap();
    let cap = d.conn_map_entries();
    let _udp = servers::udp(&d.seed.rs[0], "0.0.0.0:53".parse().unwrap(), "rs1").unwrap();
    let vip = format!("{}:53", lvs_lab::seed::VIP);
    let rs = format!("{}:53", lvs_lab::seed::rs_ip(0));
    d.adm(&["-A", "-u", &vip, "-s", "rr"]);
    d.adm(&["-a", "-u", &vip, "-r", &rs, "-m"]);
    // Each request from a fresh source port is a new UDP connection.
    let flows = (cap * 3 / 2).max(1500);
    // UDP may lose a datagram (a veth ring under load): a request without
    // an answer is asked again, from a fresh port (one more flow), at most
    // three times; what the test counts is the flows the table saw.
    let mut sent = 0u64;
    for _ in 0..flows {
        let answered = (0..3).any(|_| {
            sent += 1;
            lvs_lab::clients::udp_request(&d.seed.client, d.seed.vip(53), "q", T).is_ok()
        });
        assert!(answered, "three requests in a row got no answer");
    }
    let inact =
        |d: &common::Director| common::real_rows(&d.adm(&["-L", "-n", "-u", &vip]))[0].inactive;
    assert!(
        inact(&d) > cap,
        "before a sweep the counts include evicted flows"
    );
    let fixed = common::wait_until(Duration::from_secs(10), || {
        d.counter("evicted") > 0 && inact(&d) <= cap
    });
    assert!(
        fixed,
        "evicted {} InActConn {}",
        d.counter("evicted"),
        inact(&d)
    );
    // Every connection created is either still counted or was evicted
    // (some requests reused an ephemeral port, so at most one per request
    // sent).
    let created = d.counter("new_conn");
    assert!(created > cap && created <= sent, "{created} of {sent} sent");
    assert_eq!(inact(&d) + d.counter("evicted"), created);
}
