//! Hitless restarts and a hitless upgrade under traffic, NAT and DR at
//! once: one director (LAN lab with an inside network) serving a DR service
//! and a NAT service, 200 long-lived connections through each, while its
//! daemon is stopped and started again, killed and started again, and
//! finally replaced by a "new build": the same object loaded with another
//! `BUILD_ID` global (`LVS_BUILD_ID`), which the pinned links are switched
//! to in place.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use lvs::life::build_id;
use lvs_lab::{
    clients::TcpConn,
    lan::{self, LanConfig, DIR_INSIDE_IF, LAN_IF},
    require_root, servers, Netns,
};

use crate::common::{active_total, lan_director, wait_until, Lan, T};
use crate::life::{exchange, open_to, pinned_link, sample_rules, xdp_progs};

/// Long-lived connections per service.
const LONG: usize = 200;
const DR_PORT: u16 = 80;
const NAT_PORT: u16 = 8080;
const IFACES: [&str; 2] = [LAN_IF, DIR_INSIDE_IF];

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "upgrade: {line}");
}

/// How a round ends the running daemon and what the next one is.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// SIGTERM, then the same build again.
    Restart,
    /// SIGKILL, then the same build again.
    Kill,
    /// SIGTERM, then the object with this build id.
    Upgrade(u64),
}

/// What the prober saw: new connections made while the daemon is stopped,
/// restarted and replaced.
#[derive(Default)]
struct Probes {
    made: u64,
    errors: Vec<String>,
    /// By service address, the servers that answered, with their counts.
    by: BTreeMap<SocketAddr, BTreeMap<String, u64>>,
}

/// Until `stop`: every 100 ms a new connection to each of `targets`, one
/// line echoed, closed. While `pause` is set it makes none (and says so in
/// `idle`), so that ActiveConn can be compared with the long-lived
/// connections alone. `made` counts the good ones as they come.
fn probe(
    client: Netns,
    targets: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
    made: Arc<AtomicU64>,
) -> Probes {
    let mut p = Probes::default();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if pause.load(Ordering::SeqCst) {
            idle.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        idle.store(false, Ordering::SeqCst);
        for &to in &targets {
            n += 1;
            let q = format!("p{n} 0");
            let got = TcpConn::connect(&client, to, T).and_then(|mut c| c.ask(&q));
            match got {
                Ok(a) => match a.split_once(' ') {
                    Some((who, rest)) if rest == q => {
                        p.made += 1;
                        made.fetch_add(1, Ordering::SeqCst);
                        *p.by.entry(to).or_default().entry(who.into()).or_default() += 1;
                    }
                    _ => p.errors.push(format!("{to}: sent {q:?}, got {a:?}")),
                },
                Err(e) => p.errors.push(format!("{to}: {e:#}")),
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    idle.store(true, Ordering::SeqCst);
    p
}

/// The kernel's tag of program `id`: a hash of its instructions, which a
/// build id (in `.rodata`) does not change.
fn prog_tag(id: u32) -> u64 {
    aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == id)
        .map(|p| p.tag())
        .unwrap_or_else(|| panic!("no program {id}"))
}

/// The build id of the program each director link runs; all the same.
fn running_build(d: &Lan) -> (u32, u64) {
    let pin = d.lan.pin_dir();
    let progs: Vec<u32> = IFACES
        .iter()
        .map(|i| {
            pinned_link(pin, i)
                .unwrap_or_else(|| panic!("no link pinned for {i}"))
                .1
        })
        .collect();
    assert!(progs.windows(2).all(|w| w[0] == w[1]), "{progs:?}");
    let id = build_id::of_program(progs[0])
        .unwrap_or_else(|e| panic!("build id of program {}: {e:#}", progs[0]));
    (progs[0], id)
}

/// 200 long-lived TCP connections through a NAT service and 200 through a
/// DR service of one director, each exchanging a line every 50 ms and
/// checking its echo, while `lvs load` is SIGTERM-stopped and restarted
/// three times, killed (-9) and restarted once, and upgraded once to a new
/// program (same object, another `BUILD_ID`): no connection is reset, no
/// line lost or changed; `lvsadm -S -n` is the same throughout, daemon or
/// not; after each restart ActiveConn counts the open connections of each
/// service; the links keep their ids and each runs the new program (after
/// the upgrade, the one with the new build id, and always the same
/// instructions: the kernel's tag does not change); new connections are
/// scheduled throughout, round robin afterwards.
#[test]
fn restarts_kill_and_upgrade_keep_nat_and_dr_connections() {
    if !require_root("upgrade under traffic") {
        return;
    }
    let mut d = lan_director(
        "upgrade",
        LanConfig {
            real_servers: 2,
            inside_servers: 2,
            ..Default::default()
        },
        false,
        &[],
    )
    .unwrap();
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    let mut srv = Vec::new();
    for (i, ns) in d.lan.rs.iter().enumerate() {
        srv.push(servers::echo_line(ns, any(DR_PORT), &format!("rs{}", i + 1)).unwrap());
    }
    for (i, ns) in d.lan.inside.iter().enumerate() {
        srv.push(servers::echo_line(ns, any(NAT_PORT), &format!("nat{}", i + 1)).unwrap());
    }
    let (dr_vip, nat_vip) = (d.lan.vip(DR_PORT), d.lan.vip(NAT_PORT));
    let (dr, nat) = (dr_vip.to_string(), nat_vip.to_string());
    d.adm(&["-A", "-t", &dr, "-s", "rr"]);
    d.adm(&["-A", "-t", &nat, "-s", "rr"]);
    for i in 0..2 {
        let rs = format!("{}:{DR_PORT}", lan::rs_ip(i));
        d.adm(&["-a", "-t", &dr, "-r", &rs, "-g", "-w", "1"]);
        let rs = format!("{}:{NAT_PORT}", lan::inside_ip(i));
        d.adm(&["-a", "-t", &nat, "-r", &rs, "-m", "-w", "1"]);
    }
    // DR drops a packet for a server whose MAC is not known yet.
    d.resolved(&[lan::rs_ip(0).into(), lan::rs_ip(1).into()]);
    let rules = d.adm(&["-S", "-n"]);
    let pin = d.lan.pin_dir().to_owned();
    let client = d.lan.client.clone();
    let nat_conns: Vec<_> = (0..LONG)
        .map(|i| open_to(&client, nat_vip, &format!("c{i}")))
        .collect();
    let dr_conns: Vec<_> = (0..LONG)
        .map(|i| open_to(&client, dr_vip, &format!("c{i}")))
        .collect();
    for conns in [&nat_conns, &dr_conns] {
        let mut who: Vec<&str> = conns.iter().map(|(_, w)| w.as_str()).collect();
        who.sort();
        who.dedup();
        assert_eq!(who.len(), 2, "both servers of a service are used: {who:?}");
    }
    let wait = Duration::from_secs(10);
    d.wait_active(&nat, LONG as u64, wait);
    d.wait_active(&dr, LONG as u64, wait);
    let links: Vec<u32> = IFACES
        .iter()
        .map(|i| pinned_link(&pin, i).unwrap().0)
        .collect();
    let (mut prog, first_build) = running_build(&d);
    assert_eq!(
        first_build,
        build_id::default_id(),
        "a load without LVS_BUILD_ID carries the object's own id"
    );
    let new_build = first_build ^ 0x5eed_5eed;
    let tag = prog_tag(prog);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = [nat_conns, dr_conns]
        .into_iter()
        .map(|conns| {
            let stop = stop.clone();
            thread::spawn(move || exchange(conns, stop))
        })
        .collect();
    let sampler = {
        let (ns, pin, rules, stop) = (
            d.lan.director.path(),
            pin.clone(),
            rules.clone(),
            stop.clone(),
        );
        thread::spawn(move || sample_rules(&ns, &pin, &rules, &stop))
    };
    let (pause, idle) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let made = Arc::new(AtomicU64::new(0));
    let prober = {
        let (client, stop, pause, idle, made) = (
            client.clone(),
            stop.clone(),
            pause.clone(),
            idle.clone(),
            made.clone(),
        );
        thread::spawn(move || probe(client, vec![nat_vip, dr_vip], stop, pause, idle, made))
    };

    let steps = [
        Step::Restart,
        Step::Restart,
        Step::Restart,
        Step::Kill,
        Step::Upgrade(new_build),
    ];
    let mut build = first_build;
    let mut restarts = Vec::new();
    for (round, step) in steps.into_iter().enumerate() {
        thread::sleep(Duration::from_millis(700));
        let p = d.load_proc();
        if let Step::Kill = step {
            p.signal(libc::SIGKILL);
            assert!(wait_until(Duration::from_secs(5), || !p.is_running()));
        } else {
            let status = p.stop().unwrap();
            assert!(status.success(), "lvs load: {status}\n{}", p.output());
            assert!(p.output().contains("keeps forwarding"), "{}", p.output());
        }
        // No daemon: the director forwards on its pinned links, with its
        // tables (the prober keeps making connections meanwhile).
        for (i, iface) in IFACES.iter().enumerate() {
            assert_eq!(pinned_link(&pin, iface).map(|l| l.0), Some(links[i]));
            assert_eq!(xdp_progs(&d.lan.director, iface), [prog], "{iface}");
        }
        assert_eq!(d.adm(&["-S", "-n"]), rules, "without a daemon ({step:?})");
        // New connections are scheduled with no daemon running: both
        // services answer the prober meanwhile.
        let before = made.load(Ordering::SeqCst);
        thread::sleep(Duration::from_millis(700));
        assert!(
            wait_until(T, || made.load(Ordering::SeqCst) >= before + 2),
            "no new connection while the daemon was down ({step:?})"
        );
        let id = match step {
            Step::Upgrade(id) => id,
            _ => build,
        };
        let env = [(build_id::ENV, id.to_string())];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let t = Instant::now();
        let p = d.start_load(&[], &env).unwrap();
        restarts.push(t.elapsed());
        assert!(p.output().contains("(adopted"), "{step:?}:\n{}", p.output());
        let (now, running) = running_build(&d);
        for (i, iface) in IFACES.iter().enumerate() {
            assert_eq!(pinned_link(&pin, iface).unwrap().0, links[i], "{iface}");
            assert_eq!(xdp_progs(&d.lan.director, iface), [now], "{iface}");
        }
        assert_ne!(
            now, prog,
            "round {round} ({step:?}): the links run the new program"
        );
        assert_eq!(running, id, "round {round} ({step:?}): the running build");
        assert_eq!(prog_tag(now), tag, "the same object, whatever its build id");
        (prog, build) = (now, id);
        assert_eq!(d.adm(&["-S", "-n"]), rules, "after {step:?}");
        // ActiveConn: exactly the long-lived connections, once the
        // prober's last one has closed.
        pause.store(true, Ordering::SeqCst);
        assert!(wait_until(T, || idle.load(Ordering::SeqCst)));
        for svc in [&nat, &dr] {
            let rows = d.wait_active(svc, LONG as u64, wait);
            assert_eq!(active_total(&rows), LONG as u64);
        }
        pause.store(false, Ordering::SeqCst);
    }
    assert_eq!(build, new_build);
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    let xs: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let (samples, differing) = sampler.join().unwrap();
    let probes = prober.join().unwrap();
    report(&format!(
        "{LONG} NAT + {LONG} DR connections, 3 SIGTERM + 1 kill -9 restarts + 1 upgrade: \
         {} + {} lines echoed, {} + {} errors, slowest line {:?} / {:?}, restarts to ready \
         {restarts:?}, `lvsadm -S -n` the same in {samples} samples, {} new connections \
         during ({} failed): {:?}",
        xs[0].lines,
        xs[1].lines,
        xs[0].errors,
        xs[1].errors,
        xs[0].slowest,
        xs[1].slowest,
        probes.made,
        probes.errors.len(),
        probes.by
    ));
    assert!(
        differing.is_empty(),
        "`lvsadm -S -n` differed in {} of {samples} samples: {:?}",
        differing.len(),
        differing.first()
    );
    for (x, what) in xs.iter().zip(["NAT", "DR"]) {
        assert_eq!(x.errors, 0, "{what}: {:#?}\n{}", x.first_errors, d.diag());
        // Loose: a loaded machine stretches the 50 ms rounds.
        assert!(
            x.lines >= LONG as u64 * 20,
            "{what}: only {} lines",
            x.lines
        );
    }
    assert!(
        probes.errors.is_empty(),
        "new connections: {:#?}",
        probes.errors
    );
    for (vip, servers) in [(nat_vip, ["nat1", "nat2"]), (dr_vip, ["rs1", "rs2"])] {
        let by = probes.by.get(&vip).cloned().unwrap_or_default();
        for s in servers {
            assert!(
                by.get(s).is_some_and(|&n| n > 0),
                "{vip}: {s} got none: {by:?}"
            );
        }
    }
    for (x, vip) in xs.into_iter().zip([nat_vip, dr_vip]) {
        for (i, (mut c, who)) in x.conns.into_iter().enumerate() {
            let q = format!("c{i} last");
            assert_eq!(c.ask(&q).unwrap(), format!("{who} {q}"), "{vip}");
        }
    }
    // New connections after: still round robin on each service.
    for (vip, first) in [(nat_vip, "nat1"), (dr_vip, "rs1")] {
        let fresh: Vec<String> = (0..10)
            .map(|i| open_to(&client, vip, &format!("f{i}")).1)
            .collect();
        assert_eq!(
            fresh.iter().filter(|w| *w == first).count(),
            5,
            "rr on {vip} after the upgrade: {fresh:?}"
        );
    }
    assert_eq!(d.adm(&["-S", "-n"]), rules);
    drop(srv);
}
