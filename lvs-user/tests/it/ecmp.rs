//! Active/active directors behind a router's ECMP (`lvs_lab::ecmp`): each
//! director runs BIRD and `lvs load --bgp bird` on the same DR service
//! with `mh`; the router learns the VIP from all three over BGP (hold
//! time 3 s) and spreads connections over them by their 5-tuple.
//!
//! One long test drives 100 long-lived connections (50 client addresses,
//! a line every 50 ms each) through every way a director goes away and
//! comes back, and checks at the end that none was reset, none lost or
//! reordered a byte, and each kept its real server throughout.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::common::{LVS, LVSADM};
use lvs_lab::{
    clients,
    ecmp::{self, EcmpConfig, EcmpLab, VIP},
    require_root, servers, Proc,
};

const PORT: u16 = 8080;
const CONNS: usize = 100;
/// BGP comes up within a few seconds; a loaded machine gets room.
const CONVERGE: Duration = Duration::from_secs(40);

struct Lab {
    dirs: Vec<Option<Proc>>,
    birds: Vec<Option<Proc>>,
    _router_bird: Proc,
    _pass: Proc,
    _servers: Vec<servers::Server>,
    lab: EcmpLab,
}

impl Lab {
    fn adm(&self, i: usize, args: &[&str]) -> String {
        self.lab
            .lvsadm(i, Path::new(LVSADM), args)
            .unwrap_or_else(|e| panic!("lvsadm {args:?} on d{}: {e:#}", i + 1))
    }

    fn all_dirs(&self) -> Vec<Ipv4Addr> {
        (0..self.lab.dirs.len()).map(ecmp::dir_ip).collect()
    }

    /// The client addresses:ports of the VIP connections director `i`
    /// tracks (`lvsadm -L -c -n`).
    fn tracked(&self, i: usize) -> BTreeSet<SocketAddr> {
        let out = self.adm(i, &["-L", "-c", "-n"]);
        out.lines()
            .filter(|l| l.contains(&format!("{VIP}:{PORT}")))
            .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
            .collect()
    }
}

/// The lab with BIRD everywhere, `lvs load --bgp bird` on every director
/// (`extra[i]` added to director i's options), the service configured,
/// and the router's route over every director.
fn lab(tag: &str, extra: &[&[&str]]) -> Lab {
    let lab = EcmpLab::new(tag, EcmpConfig::default()).unwrap();
    let lvs = Path::new(LVS);
    let pass = lab.start_pass(lvs).unwrap();
    let router_bird = lab.start_router_bird().unwrap();
    let servers = (0..lab.rs.len())
        .map(|i| {
            servers::echo_line(
                &lab.rs[i],
                SocketAddr::from(([0, 0, 0, 0], PORT)),
                &format!("rs{}", i + 1),
            )
            .unwrap()
        })
        .collect();
    let mut l = Lab {
        dirs: Vec::new(),
        birds: Vec::new(),
        _router_bird: router_bird,
        _pass: pass,
        _servers: servers,
        lab,
    };
    let vip = format!("{VIP}:{PORT}");
    for i in 0..l.lab.dirs.len() {
        l.birds.push(Some(l.lab.start_director_bird(i).unwrap()));
        let p = l
            .lab
            .start_director(i, lvs, extra.get(i).copied().unwrap_or_default())
            .unwrap();
        l.dirs.push(Some(p));
        // The same configuration in the same order: the same Maglev table.
        l.adm(i, &["-A", "-t", &vip, "-s", "mh", "-b", "mh-port"]);
        for r in 0..l.lab.rs.len() {
            let rs = format!("{}:{PORT}", ecmp::rs_ip(r));
            l.adm(i, &["-a", "-t", &vip, "-r", &rs, "-g", "-w", "1"]);
        }
    }
    let took = l.lab.wait_next_hops(&l.all_dirs(), CONVERGE).unwrap();
    eprintln!("ecmp: the router's route goes over all directors after {took:?}");
    l
}

/// One long-lived connection's record.
#[derive(Default)]
struct Record {
    /// The real server that answered (`rsN`), the first time.
    server: Option<String>,
    sent: u64,
    echoed: u64,
    error: Option<String>,
}

struct Traffic {
    stop: Arc<AtomicBool>,
    /// Lines answered, all connections together.
    answered: Arc<AtomicU64>,
    records: Vec<Arc<Mutex<Record>>>,
    locals: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

/// Each connection sends `cN SEQ` every 50 ms and expects `rsX cN SEQ`
/// back, in order; any difference, error or a 30 s silence is recorded
/// and ends it.
/// The ECMP lab at its smallest: one director, one real server, no extra
/// client sources.
fn single(tag: &str) -> EcmpLab {
    EcmpLab::new(
        tag,
        EcmpConfig {
            directors: 1,
            real_servers: 1,
            client_sources: 0,
        },
    )
    .unwrap()
}

/// `birdc show route protocol <proto>` of the first director's BIRD.
fn bird_routes(lab: &EcmpLab, proto: &str) -> anyhow::Result<String> {
    let sock = lab.bird_socket("d1");
    lab.dirs[0].run(&[
        "birdc",
        "-s",
        sock.to_str().unwrap(),
        "show",
        "route",
        "protocol",
        proto,
    ])
}

fn start_traffic(l: &Lab) -> Traffic {
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut records = Vec::new();
    let mut locals = Vec::new();
    let mut threads = Vec::new();
    let sources = l.lab.config.client_sources;
    for c in 0..CONNS {
        let src = ecmp::client_ip(c % sources).into();
        let stream =
            clients::connect_from(&l.lab.client, src, l.lab.vip(PORT), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("connection {c}: {e:#}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        locals.push(stream.local_addr().unwrap());
        let rec = Arc::new(Mutex::new(Record::default()));
        records.push(rec.clone());
        let (stop, answered) = (stop.clone(), answered.clone());
        threads.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut w = stream;
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let line = format!("c{c} {seq}\n");
                let result = w.write_all(line.as_bytes()).and_then(|_| {
                    let mut answer = String::new();
                    reader.read_line(&mut answer).map(|_| answer)
                });
                let mut r = rec.lock().unwrap();
                match result {
                    Ok(answer) => {
                        r.sent += line.len() as u64;
                        let Some((server, echoed)) = answer.split_once(' ') else {
                            r.error = Some(format!("answer {answer:?} to {line:?}"));
                            return;
                        };
                        if echoed != line {
                            r.error = Some(format!("answer {answer:?} to {line:?}"));
                            return;
                        }
                        match &r.server {
                            None => r.server = Some(server.to_owned()),
                            Some(s) if s != server => {
                                r.error = Some(format!("moved from {s} to {server}"));
                                return;
                            }
                            _ => {}
                        }
                        r.echoed += echoed.len() as u64;
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        r.error = Some(format!("{:?}: {e}", e.kind()));
                        return;
                    }
                }
                drop(r);
                seq += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }
    Traffic {
        stop,
        answered,
        records,
        locals,
        threads,
    }
}

impl Traffic {
    /// Every connection still healthy: the failures, described.
    fn failures(&self) -> Vec<String> {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let r = r.lock().unwrap();
                r.error
                    .as_ref()
                    .map(|e| format!("conn {i} ({}): {e}", self.locals[i]))
            })
            .collect()
    }

    fn echoed(&self) -> Vec<u64> {
        self.records
            .iter()
            .map(|r| r.lock().unwrap().echoed)
            .collect()
    }

    /// Waits until every connection had at least one more line answered
    /// than at the call: they all flow (again).
    fn all_progress(&self, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let before = self.echoed();
        loop {
            let failed = self.failures();
            if !failed.is_empty() {
                return Err(failed.join("\n"));
            }
            let now = self.echoed();
            let stuck: Vec<usize> = (0..now.len()).filter(|&i| now[i] <= before[i]).collect();
            if stuck.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "connections {stuck:?} made no progress in {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn finish(mut self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        self.records
            .drain(..)
            .map(|r| std::mem::take(&mut *r.lock().unwrap()))
            .collect()
    }
}

#[test]
fn ecmp_failover_keeps_every_connection() {
    if !require_root("ecmp failover") {
        return;
    }
    // d3 withdraws on stop; d1 and d2 keep announcing when their daemon ends.
    let mut l = lab("ecmp", &[&[], &[], &["--withdraw"]]);
    let t = start_traffic(&l);
    t.all_progress(Duration::from_secs(10)).unwrap();

    // Spread: every director carries some of the connections.
    let locals: BTreeSet<SocketAddr> = t.locals.iter().copied().collect();
    let per_dir: Vec<BTreeSet<SocketAddr>> = (0..3).map(|i| l.tracked(i)).collect();
    let counts: Vec<usize> = per_dir
        .iter()
        .map(|s| s.intersection(&locals).count())
        .collect();
    eprintln!("ecmp: connections per director at the start: {counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "not spread: {counts:?}");
    // Each is tracked somewhere (by two directors if the route changed
    // while they opened: BGP sessions can flap as they settle).
    let union: BTreeSet<SocketAddr> = per_dir.iter().flatten().copied().collect();
    assert!(locals.is_subset(&union), "{counts:?}");

    // 1. d1 fails as a machine does: its link goes down. The router hears
    //    nothing more and drops its next hop when the hold time runs out.
    let failed = Instant::now();
    l.lab.set_director_link(0, false).unwrap();
    let took = l
        .lab
        .wait_next_hops(&[ecmp::dir_ip(1), ecmp::dir_ip(2)], Duration::from_secs(15))
        .unwrap();
    eprintln!("ecmp: d1 down: the router dropped it after {took:?} (hold time 3 s)");
    t.all_progress(Duration::from_secs(30)).unwrap();
    eprintln!(
        "ecmp: every connection flowed again {:?} after the failure",
        failed.elapsed()
    );
    // d2 and d3 now know every connection: d1's came to them mid-stream.
    let after: BTreeSet<SocketAddr> = l.tracked(1).union(&l.tracked(2)).copied().collect();
    assert!(
        locals.is_subset(&after),
        "not tracked by d2/d3: {:?}",
        locals.difference(&after).collect::<Vec<_>>()
    );

    // 2. d1 comes back: its BIRD reconnects, the flows spread again and
    //    d1 forwards some of them once more.
    let dr_fwd = |i: usize| {
        lvs_lab::lan::lvs_stats(&l.lab.dirs[i], Path::new(LVS), l.lab.pin_dir(i)).unwrap()["dr_fwd"]
    };
    let d1_before = dr_fwd(0);
    l.lab.set_director_link(0, true).unwrap();
    let took = l.lab.wait_next_hops(&l.all_dirs(), CONVERGE).unwrap();
    eprintln!("ecmp: d1 back in the route after {took:?}");
    t.all_progress(Duration::from_secs(15)).unwrap();
    // Two seconds of traffic: a third of the connections, a line every
    // 50 ms each, would be some 1 300 segments.
    std::thread::sleep(Duration::from_secs(2));
    t.all_progress(Duration::from_secs(15)).unwrap();
    let d1_after = dr_fwd(0);
    eprintln!(
        "ecmp: d1 forwarded {} segments since it came back",
        d1_after - d1_before
    );
    assert!(
        d1_after > d1_before + 500,
        "flows moved back to d1: {d1_before} → {d1_after}"
    );

    // 3. Every real server of the VIP fails on d3 (weight 0): d3 withdraws
    //    it, and the router stops sending to d3 within 3 s.
    let vip = format!("{VIP}:{PORT}");
    for r in 0..3 {
        let rs = format!("{}:{PORT}", ecmp::rs_ip(r));
        l.adm(2, &["-e", "-t", &vip, "-r", &rs, "-g", "-w", "0"]);
    }
    let took = l
        .lab
        .wait_next_hops(&[ecmp::dir_ip(0), ecmp::dir_ip(1)], Duration::from_secs(10))
        .unwrap();
    eprintln!("ecmp: d3 withdrew the VIP {took:?} after its last weight went to 0");
    assert!(took <= Duration::from_secs(3), "withdrawn after {took:?}");
    t.all_progress(Duration::from_secs(15)).unwrap();
    let rs = format!("{}:{PORT}", ecmp::rs_ip(1));
    l.adm(2, &["-e", "-t", &vip, "-r", &rs, "-g", "-w", "1"]);
    let took = l.lab.wait_next_hops(&l.all_dirs(), CONVERGE).unwrap();
    eprintln!("ecmp: d3 announced again {took:?} after a weight > 0");
    // The others back too, in the same order (the same Maglev table).
    for r in [0, 2] {
        let rs = format!("{}:{PORT}", ecmp::rs_ip(r));
        l.adm(2, &["-e", "-t", &vip, "-r", &rs, "-g", "-w", "1"]);
    }
    t.all_progress(Duration::from_secs(15)).unwrap();

    // 4. d2's BIRD is killed (SIGKILL: no Cease): the router's hold timer
    //    drops d2; BIRD started again announces from the include at once.
    l.birds[1].take().unwrap().signal(libc::SIGKILL);
    let took = l
        .lab
        .wait_next_hops(&[ecmp::dir_ip(0), ecmp::dir_ip(2)], Duration::from_secs(15))
        .unwrap();
    eprintln!("ecmp: d2's BIRD killed: the router dropped it after {took:?}");
    t.all_progress(Duration::from_secs(30)).unwrap();
    l.birds[1] = Some(l.lab.start_director_bird(1).unwrap());
    let took = l.lab.wait_next_hops(&l.all_dirs(), CONVERGE).unwrap();
    eprintln!("ecmp: d2 back after {took:?}");
    t.all_progress(Duration::from_secs(15)).unwrap();

    // 5. Stopping lvs: d1 (no --withdraw) keeps announcing, as its director
    //    keeps forwarding; d3 (--withdraw) withdraws.
    let include = std::fs::read_to_string(l.lab.include_path(0)).unwrap();
    assert!(
        include.contains(&format!("route {VIP}/32 blackhole;")),
        "{include}"
    );
    l.dirs[0].take().unwrap().stop().unwrap();
    assert_eq!(
        std::fs::read_to_string(l.lab.include_path(0)).unwrap(),
        include
    );
    l.dirs[2].take().unwrap().stop().unwrap();
    let took = l
        .lab
        .wait_next_hops(&[ecmp::dir_ip(0), ecmp::dir_ip(1)], Duration::from_secs(10))
        .unwrap();
    eprintln!("ecmp: d3's lvs stopped with --withdraw: withdrawn after {took:?}");
    t.all_progress(Duration::from_secs(15)).unwrap();
    assert_eq!(
        l.lab.router_next_hops(VIP).unwrap(),
        [ecmp::dir_ip(0), ecmp::dir_ip(1)]
    );

    let answered = t.answered.load(Ordering::Relaxed);
    let records = t.finish();
    let mut bad = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(e) = &r.error {
            bad.push(format!("conn {i}: {e}"));
        } else if r.sent != r.echoed {
            bad.push(format!(
                "conn {i}: sent {} bytes, {} echoed",
                r.sent, r.echoed
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let servers: BTreeSet<&str> = records.iter().filter_map(|r| r.server.as_deref()).collect();
    assert_eq!(
        servers.len(),
        3,
        "mh spread them over every real server: {servers:?}"
    );
    eprintln!("ecmp: {CONNS} connections, {answered} lines answered, 0 resets, 0 bytes lost");
}

#[test]
fn bgp_options_are_checked_before_anything_is_attached() {
    if !require_root("ecmp options") {
        return;
    }
    let lab = single("ecmpopt");
    let mut cmd = lab.dirs[0].command(LVS);
    cmd.args(["load", "--iface", ecmp::LAN_IF, "--pin-path"])
        .arg(lab.pin_dir(0))
        .args([
            "--bgp",
            "bird",
            "--bird-include",
            "/nonexistent-lvs-dir/vips.conf",
        ]);
    let out = lvs_lab::run_timeout(&mut cmd, Duration::from_secs(30)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("/nonexistent-lvs-dir does not exist"), "{err}");
    let carried = lab.dirs[0].ip(&["link", "show", ecmp::LAN_IF]).unwrap();
    assert!(!carried.contains("xdp"), "{carried}");
    // --bird-socket means nothing without --bgp.
    let mut cmd = lab.dirs[0].command(LVS);
    cmd.args(["load", "--iface", ecmp::LAN_IF, "--bird-socket", "/x"]);
    let out = lvs_lab::run_timeout(&mut cmd, Duration::from_secs(30)).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bgp"));
}

/// Sloppy scheduling in exact bytes: a mid-connection segment (ACK, no
/// SYN) that meets no entry is scheduled for mh and sh services (the MACs
/// and TTL change, as for a SYN) and tracked as an embryonic connection
/// (SYN_RECV, inactive) that the next segment establishes; for other
/// schedulers, and for a RST, it still goes to the stack.
#[test]
fn sloppy_mid_connection_segments_exact_bytes() {
    use crate::common::xdp::*;
    use lvs::model::{Method, Scheduler};
    use lvs_common::counters;
    use lvs_lab::{
        lan,
        packet::{Frame, ACK, PSH, RST},
    };
    if !require_root("sloppy prog_run") {
        return;
    }
    let f = fixture("sloppy", Default::default());
    let vip = ip(&lan::VIP.to_string());
    let rs = ip(&lan::rs_ip(1).to_string());
    let mut services = Vec::new();
    for (port, sched) in [
        (80, Scheduler::Mh),
        (81, Scheduler::Sh),
        (82, Scheduler::Rr),
    ] {
        let mut s = tcp_service(vip, port, &[(rs, port, Method::Route)]);
        s.sched = sched;
        services.push(s);
    }
    f.services(services);
    let client = ip(&lan::CLIENT_IP.to_string());
    let seg = |sport: u16, port: u16, flags: u8| {
        Frame::tcp((client, sport), (vip, port), flags)
            .macs(CLIENT_MAC, DIR_MAC)
            .payload(b"c7 42\n")
            .build()
    };
    for port in [80, 81] {
        let mid = seg(41000, port, ACK | PSH);
        let (action, out) = f.run(&mid, f.link_index("lan0"));
        assert_eq!(action, XDP_TX, ":{port}: a moved connection is forwarded");
        // As a SYN would be: the MACs and the TTL change.
        let mut want = lvs_lab::packet::dec_ttl(&mid);
        want[..6].copy_from_slice(&RS_MAC[1]);
        want[6..12].copy_from_slice(&DIR_MAC);
        assert_frame_eq(
            &out,
            &want,
            &format!(":{port}: only the MACs and TTL change"),
        );
    }
    assert_eq!(f.counter(counters::NEW_CONN), 2);
    assert_eq!(f.counter(counters::NO_CONN), 0);
    let listing = |f: &Fixture| {
        let mut cmd = f.ns.command(LVSADM);
        cmd.env("LVS_PIN_PATH", &f.pin).args(["-L", "-c", "-n"]);
        lvs_lab::check_output(&mut cmd, Duration::from_secs(10)).unwrap()
    };
    let rows = listing(&f);
    assert_eq!(
        rows.matches("SYN_RECV").count(),
        2,
        "embryonic until proven:\n{rows}"
    );
    // The next segment follows the entry and establishes it.
    let (action, out) = f.run(&seg(41000, 80, ACK), f.link_index("lan0"));
    assert_eq!(action, XDP_TX);
    assert_eq!(&out[..6], &RS_MAC[1]);
    assert_eq!(f.counter(counters::NEW_CONN), 2);
    let rows = listing(&f);
    assert_eq!(rows.matches("ESTABLISHED").count(), 1, "{rows}");

    // rr keeps IPVS's rule (only a SYN opens), and a RST opens nothing.
    for (port, flags) in [(82, ACK | PSH), (80, RST | ACK), (81, RST)] {
        let (action, _) = f.run(&seg(41001, port, flags), f.link_index("lan0"));
        assert_eq!(action, XDP_PASS, ":{port} flags {flags:#x}");
    }
    assert_eq!(f.counter(counters::NO_CONN), 3);
    assert_eq!(f.counter(counters::NEW_CONN), 2);
}

/// One director's BIRD alone: IPv4 and IPv6 VIPs reach BIRD's tables
/// (`lvs_vips4`, `lvs_vips6`) and leave them when their last weighted
/// server goes or the service is deleted; a `bird.conf` BIRD refuses is
/// reported and changes nothing, and once mended the next change is taken.
#[test]
fn bird_takes_ipv4_and_ipv6_vips_and_survives_a_refusal() {
    if !require_root("ecmp bird tables") {
        return;
    }
    let lab = single("ecmpbird");
    let _bird = lab.start_director_bird(0).unwrap();
    let load = lab.start_director(0, Path::new(LVS), &[]).unwrap();
    let adm = |args: &[&str]| {
        lab.lvsadm(0, Path::new(LVSADM), args)
            .unwrap_or_else(|e| panic!("lvsadm {args:?}: {e:#}"))
    };
    let routes = |proto: &str| bird_routes(&lab, proto).unwrap();
    let within = |what: &str, f: &dyn Fn() -> bool| {
        assert!(
            crate::common::wait_until(Duration::from_secs(3), f),
            "{what} within 3 s\n{}\n{}",
            load.output(),
            lab.diag()
        );
    };
    let vip4 = format!("{VIP}:80");
    let vip6 = "[2001:db8:52::1]:80";
    // The IPv4 service (mh, DR to rs1), added again further on.
    let add_vip4 = || {
        adm(&["-A", "-t", &vip4, "-s", "mh"]);
        let rs = format!("{}:80", ecmp::rs_ip(0));
        adm(&["-a", "-t", &vip4, "-r", &rs, "-g"]);
    };
    add_vip4();
    adm(&["-A", "-t", vip6, "-s", "sh"]);
    adm(&[
        "-a",
        "-t",
        vip6,
        "-r",
        "[2001:db8:51::129]:80",
        "-g",
        "-w",
        "2",
    ]);
    within("both VIPs in BIRD", &|| {
        routes("lvs_vips4").contains(&format!("{VIP}/32"))
            && routes("lvs_vips6").contains("2001:db8:52::1/128")
    });
    assert!(
        load.output().contains("bgp: announcing 2001:db8:52::1"),
        "{}",
        load.output()
    );

    adm(&[
        "-e",
        "-t",
        vip6,
        "-r",
        "[2001:db8:51::129]:80",
        "-g",
        "-w",
        "0",
    ]);
    within("the IPv6 VIP withdrawn at weight 0", &|| {
        !routes("lvs_vips6").contains("2001:db8:52::1/128")
    });
    assert!(routes("lvs_vips4").contains(&format!("{VIP}/32")));

    // The operator breaks bird.conf: BIRD refuses, lvs says so and keeps
    // its file; BIRD keeps running with what it had.
    let conf = lab.lab.workdir().join("bird-d1/bird.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{good}\nthis is not bird syntax;\n")).unwrap();
    adm(&["-D", "-t", &vip4]);
    within("the refusal reported", &|| {
        load.output().contains("BIRD refused `configure`")
    });
    assert!(
        routes("lvs_vips4").contains(&format!("{VIP}/32")),
        "BIRD kept its routes"
    );
    assert!(!std::fs::read_to_string(lab.include_path(0))
        .unwrap()
        .contains("route "));
    std::fs::write(&conf, good).unwrap();
    within("the withdrawal taken once bird.conf is mended", &|| {
        !routes("lvs_vips4").contains(&format!("{VIP}/32"))
    });
    assert!(load.is_running());

    // A director no longer attached announces nothing: its link detached
    // behind the daemon's back (bpftool, through the pin; netlink cannot
    // remove a bpf_link's program).
    add_vip4();
    within("announced again", &|| {
        routes("lvs_vips4").contains(&format!("{VIP}/32"))
    });
    let pin = lab.pin_dir(0).join(format!("link-{}", ecmp::LAN_IF));
    lab.dirs[0]
        .run(&["bpftool", "link", "detach", "pinned", pin.to_str().unwrap()])
        .unwrap();
    within("withdrawn once detached", &|| {
        !routes("lvs_vips4").contains(&format!("{VIP}/32"))
    });
    assert!(load.output().contains(&format!("bgp: withdrawing {VIP}")));
}

/// The rule with the health checker deciding: `lvs load --config` with a
/// TCP_CHECK and `--bgp bird`. The only real server's listener stops: the
/// checker removes it, and BIRD loses the VIP; it listens again: the VIP
/// is back.
#[test]
fn a_vip_whose_checked_servers_fail_is_withdrawn() {
    if !require_root("ecmp health") {
        return;
    }
    let lab = single("ecmphc");
    let web = || servers::http(&lab.rs[0], SocketAddr::from(([0, 0, 0, 0], 80)), "rs1\n").unwrap();
    let server = web();
    let conf = format!(
        "virtual_server {VIP} 80 {{
    delay_loop 1
    lvs_sched mh
    lvs_method DR
    protocol TCP
    real_server {} 80 {{
        weight 1
        TCP_CHECK {{
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
    }}
}}
",
        ecmp::rs_ip(0)
    );
    let path = lab.lab.workdir().join("keepalived.conf");
    std::fs::write(&path, conf).unwrap();
    let _bird = lab.start_director_bird(0).unwrap();
    let load = lab
        .start_director(0, Path::new(LVS), &["--config", path.to_str().unwrap()])
        .unwrap();
    let announced = || {
        bird_routes(&lab, "lvs_vips4")
            // Until lvs has written its include and BIRD has read it,
            // BIRD knows no such protocol (a syntax error): not announced.
            .is_ok_and(|routes| routes.contains(&format!("{VIP}/32")))
    };
    let within = |what: &str, secs: u64, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        assert!(
            crate::common::wait_until(Duration::from_secs(secs), f),
            "{what} within {secs} s\n{}\n{}",
            load.output(),
            lab.diag()
        );
        start.elapsed()
    };
    within("announced", 10, &announced);
    drop(server);
    // The checker's own bound (a failed connect and one retry a second
    // apart) and then ours (3 s).
    let took = within("withdrawn once the checker removed the server", 10, &|| {
        !announced()
    });
    eprintln!("ecmp: the VIP left BIRD {took:?} after its server stopped listening");
    let _server = web();
    within("announced again", 10, &announced);
}
