//! The director's lifecycle on the seed's NAT lab: SIGTERM and kill -9 end
//! the daemon, not the forwarding (pinned links); a restart adopts the
//! pinned director; `lvsadm` answers only once the director forwards;
//! refusals (a second daemon, a foreign XDP program, another layout)
//! change nothing; systemd hears READY=1; `lvs unload` removes it all.

use std::{
    collections::BTreeSet,
    io::Write,
    os::unix::net::UnixDatagram,
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use aya::programs::links::{FdLink, PinnedLink};
use lvs_lab::{
    clients::TcpConn,
    require_root, run_timeout,
    seed::{self, SeedLab, DIR_EXT_IF, DIR_INT_IF, PASS_READY, READY_TIMEOUT},
    servers, Netns, Proc,
};

use crate::common::{director_with, load_command, managed_neighbours, Director, LVS, LVSADM, T};

const IFACES: [&str; 2] = [DIR_INT_IF, DIR_EXT_IF];

fn vip() -> String {
    format!("{}:80", seed::VIP)
}

/// Straight to the stderr fd: figures are worth seeing in passing runs.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "life: {line}");
}

/// (link id, program id) of the link pinned for `iface` under `pin`.
pub(crate) fn pinned_link(pin: &Path, iface: &str) -> Option<(u32, u32)> {
    let p = PinnedLink::from_pin(pin.join(format!("link-{iface}"))).ok()?;
    let info = FdLink::from(p).info().ok()?;
    Some((info.id(), info.program_id()))
}

/// The XDP programs attached to `iface` in `ns`.
pub(crate) fn xdp_progs(ns: &Netns, iface: &str) -> Vec<u32> {
    let iface = iface.to_owned();
    ns.enter(move || lvs::life::links::xdp_prog_ids(lvs::life::links::ifindex(&iface)?))
        .unwrap()
        .unwrap()
}

/// The names under `dir` (empty when it is gone).
fn pins(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `lvs args…` in the director to its end: (exit code, stdout, stderr).
fn lvs(ns: &Netns, args: &[&str]) -> (i32, String, String) {
    let mut cmd = ns.command(LVS);
    cmd.args(args);
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = run_timeout(cmd, Duration::from_secs(30)).expect("command ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lvsadm(seed: &SeedLab, args: &[&str]) -> (i32, String, String) {
    let mut cmd = seed.lvsadm_command(Path::new(LVSADM));
    cmd.args(args);
    run(&mut cmd)
}

/// A NAT service on port 80 over every real server, with echo servers.
fn nat_service(d: &Director) -> Vec<servers::Server> {
    d.adm(&["-A", "-t", &vip(), "-s", "rr"]);
    for i in 0..d.seed.rs.len() {
        let rs = format!("{}:80", seed::rs_ip(i));
        d.adm(&["-a", "-t", &vip(), "-r", &rs, "-m", "-w", "1"]);
    }
    echo_servers(&d.seed)
}

fn echo_servers(seed: &SeedLab) -> Vec<servers::Server> {
    seed.rs
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            servers::echo_line(ns, "0.0.0.0:80".parse().unwrap(), &format!("rs{}", i + 1)).unwrap()
        })
        .collect()
}

/// A connection to the VIP that has exchanged one line, and the real
/// server that echoed it.
fn open(seed: &SeedLab, tag: &str) -> (TcpConn, String) {
    open_to(&seed.client, seed.vip(80), tag)
}

/// A connection from `ns` to `addr` that has exchanged one line (`tag 0`,
/// echoed by a [`servers::echo_line`] server), and the server's name.
pub(crate) fn open_to(ns: &Netns, addr: std::net::SocketAddr, tag: &str) -> (TcpConn, String) {
    let mut c = TcpConn::connect(ns, addr, T).unwrap_or_else(|e| panic!("connecting {tag}: {e:#}"));
    let q = format!("{tag} 0");
    let a = c.ask(&q).unwrap_or_else(|e| panic!("asking {tag}: {e:#}"));
    let (who, rest) = a.split_once(' ').unwrap_or_else(|| panic!("answer {a:?}"));
    assert_eq!(rest, q, "echo of {tag}");
    (c, who.to_owned())
}

/// Runs `lvsadm -S -n` in the namespace at `ns` every 100 ms until
/// `stop`: (samples, the outputs that were not `rules`).
pub(crate) fn sample_rules(
    ns: &Path,
    pin: &Path,
    rules: &str,
    stop: &AtomicBool,
) -> (u32, Vec<String>) {
    let (mut samples, mut differing) = (0, Vec::new());
    while !stop.load(Ordering::SeqCst) {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", ns.display()))
            .args(["--", LVSADM, "-S", "-n"])
            .env("LVS_PIN_PATH", pin);
        let (code, out, err) = run(&mut cmd);
        samples += 1;
        if code != 0 || out != rules {
            differing.push(format!("exit {code}: {out}{err}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
    (samples, differing)
}

/// What the exchanging thread saw.
pub(crate) struct Exchanged {
    pub lines: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub slowest: Duration,
    pub conns: Vec<(TcpConn, String)>,
}

/// Every 50 ms, one line on each connection, checked against its echo,
/// until `stop`.
pub(crate) fn exchange(mut conns: Vec<(TcpConn, String)>, stop: Arc<AtomicBool>) -> Exchanged {
    let mut x = Exchanged {
        lines: 0,
        errors: 0,
        first_errors: Vec::new(),
        slowest: Duration::ZERO,
        conns: Vec::new(),
    };
    let mut seq = 1u64;
    let mut broken = vec![false; conns.len()];
    while !stop.load(Ordering::SeqCst) {
        let round = Instant::now();
        for (i, (c, who)) in conns.iter_mut().enumerate() {
            if broken[i] {
                continue;
            }
            let q = format!("c{i} {seq}");
            let t = Instant::now();
            let err = match c.ask(&q) {
                Ok(a) if a == format!("{who} {q}") => None,
                Ok(a) => Some(format!("conn {i}: sent {q:?}, got {a:?}")),
                Err(e) => {
                    broken[i] = true;
                    Some(format!("conn {i}: {e:#}"))
                }
            };
            x.slowest = x.slowest.max(t.elapsed());
            match err {
                None => x.lines += 1,
                Some(e) => {
                    x.errors += 1;
                    if x.first_errors.len() < 10 {
                        x.first_errors.push(e);
                    }
                }
            }
        }
        seq += 1;
        thread::sleep(Duration::from_millis(50).saturating_sub(round.elapsed()));
    }
    x.conns = conns;
    x
}

/// 100 long-lived NAT connections, each exchanging a line every 50 ms,
/// while `lvs load` is SIGTERM-stopped and restarted three times and
/// killed (-9) and restarted once: no connection is reset, no line lost
/// or changed; the tables (`lvsadm -S -n`) are the same throughout, with
/// the daemon and without; after each restart ActiveConn counts the open
/// connections; the pinned links survive (the same link ids, switched to
/// each new program); new connections are scheduled afterwards.
#[test]
fn restarts_and_kill_keep_long_lived_connections() {
    if !require_root("lifecycle restarts") {
        return;
    }
    let mut d = director_with("liferst", 2, &[]).unwrap();
    let _srv = nat_service(&d);
    let rules = d.adm(&["-S", "-n"]);
    let pin = d.seed.pin_dir().to_owned();
    let conns: Vec<(TcpConn, String)> = (0..100).map(|i| open(&d.seed, &format!("c{i}"))).collect();
    d.wait_totals(&vip(), 100, 0, Duration::from_secs(5));
    let links: Vec<(u32, u32)> = IFACES
        .iter()
        .map(|i| pinned_link(&pin, i).unwrap_or_else(|| panic!("no link pinned for {i}")))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let worker = thread::spawn(move || exchange(conns, stop2));
    let sampler = {
        let (ns, pin, rules, stop) = (
            d.seed.director.path(),
            pin.clone(),
            rules.clone(),
            stop.clone(),
        );
        thread::spawn(move || sample_rules(&ns, &pin, &rules, &stop))
    };
    let mut prog = links[0].1;
    let mut restarts = Vec::new();
    for round in 0..4 {
        thread::sleep(Duration::from_millis(700));
        let p = d.load_proc();
        let killed = round == 3;
        if killed {
            p.signal(libc::SIGKILL);
            assert!(crate::common::wait_until(Duration::from_secs(5), || !p.is_running()));
        } else {
            let status = p.stop().unwrap();
            assert!(status.success(), "lvs load: {status}\n{}", p.output());
            assert!(
                p.output().contains("keeps forwarding"),
                "no word that the director goes on:\n{}",
                p.output()
            );
        }
        // No daemon: the director forwards on its pinned links, with its
        // tables.
        for (i, iface) in IFACES.iter().enumerate() {
            assert_eq!(pinned_link(&pin, iface).map(|l| l.0), Some(links[i].0));
            assert_eq!(xdp_progs(&d.seed.director, iface), [prog], "{iface}");
        }
        assert_eq!(d.adm(&["-S", "-n"]), rules, "without a daemon");
        thread::sleep(Duration::from_millis(700));
        let t = Instant::now();
        let p = d.start_load(&[]).unwrap();
        restarts.push(t.elapsed());
        assert!(
            p.output().contains("(adopted"),
            "the restart did not adopt:\n{}",
            p.output()
        );
        for (i, iface) in IFACES.iter().enumerate() {
            let (link, now) = pinned_link(&pin, iface).unwrap();
            assert_eq!(link, links[i].0, "the link on {iface} survived");
            assert_ne!(now, prog, "the link on {iface} runs the new program");
            assert_eq!(xdp_progs(&d.seed.director, iface), [now]);
        }
        prog = pinned_link(&pin, IFACES[0]).unwrap().1;
        assert_eq!(d.adm(&["-S", "-n"]), rules, "after restart {round}");
        d.wait_totals(&vip(), 100, 0, Duration::from_secs(5));
    }
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    let x = worker.join().unwrap();
    let (samples, differing) = sampler.join().unwrap();
    assert!(
        differing.is_empty(),
        "`lvsadm -S -n` differed in {} of {samples} samples: {:?}",
        differing.len(),
        differing.first()
    );
    report(&format!(
        "100 connections, 3 SIGTERM + 1 kill -9 restarts: {} lines echoed, {} errors, \
         slowest line {:?}, restarts to ready {:?}, `lvsadm -S -n` the same in {samples} samples",
        x.lines, x.errors, x.slowest, restarts
    ));
    assert_eq!(x.errors, 0, "{:#?}\n{}", x.first_errors, d.diag());
    // 100 connections × 20 lines a second for well over 5 s.
    assert!(x.lines > 100 * 20 * 5, "only {} lines", x.lines);
    for (i, (mut c, who)) in x.conns.into_iter().enumerate() {
        let q = format!("c{i} last");
        assert_eq!(c.ask(&q).unwrap(), format!("{who} {q}"));
    }
    // New connections are still scheduled, round robin.
    let fresh: Vec<String> = (0..10).map(|i| open(&d.seed, &format!("n{i}")).1).collect();
    assert_eq!(
        fresh.iter().filter(|w| *w == "rs1").count(),
        5,
        "rr after the restarts: {fresh:?}"
    );
    assert_eq!(d.adm(&["-S", "-n"]), rules);
}

/// The seed lab with `lvs pass` running and no director.
fn lab(tag: &str) -> SeedLab {
    let seed = SeedLab::new(tag).unwrap();
    seed.director.sysctl("net.ipv4.ip_forward", "1").unwrap();
    seed.start_pass(Path::new(LVS)).unwrap();
    seed
}

fn spawn_load(seed: &SeedLab, extra: &[&str], env: &[(&str, &Path)]) -> Proc {
    let mut cmd = load_command(seed);
    cmd.args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    seed.director.spawn_cmd("lvs-load", cmd).unwrap()
}

/// Twenty times: `lvs load` is started and a client connects the moment
/// `lvsadm -L -n` answers (until then it says in one line that there is no
/// director, and fails): every connection goes through at once, as the
/// tables appear only once the director is attached and its next hops
/// resolved. Each round ends with SIGTERM and `lvs unload`. Before them,
/// loads killed (-9) at points of their start leave no director behind.
#[test]
fn lvsadm_answers_only_once_the_director_forwards() {
    if !require_root("lifecycle readiness") {
        return;
    }
    let seed = lab("liferdy");
    let _srv = echo_servers(&seed);
    let mut rules = format!("-A -t {} -s rr\n", vip());
    for i in 0..2 {
        rules += &format!("-a -t {} -r {}:80 -m -w 1\n", vip(), seed::rs_ip(i));
    }
    let no_director = |what: &str| {
        let (code, _, err) = lvsadm(&seed, &["-L", "-n"]);
        assert_ne!(code, 0, "{what}");
        assert!(err.starts_with("lvsadm: no director at "), "{what}: {err}");
    };
    // A load killed while it gets ready leaves nothing that answers, and
    // nothing in the way of the next one.
    for ms in [100, 200, 300, 400, 500] {
        let p = spawn_load(&seed, &[], &[]);
        thread::sleep(Duration::from_millis(ms));
        p.signal(libc::SIGKILL);
        assert!(crate::common::wait_until(T, || !p.is_running()));
        if p.output().contains(seed::DIRECTOR_READY) {
            let pin = seed.pin_dir().to_str().unwrap();
            assert_eq!(lvs(&seed.director, &["unload", "--pin-path", pin]).0, 0);
        }
        no_director(&format!("killed after {ms} ms"));
    }
    // One killed after it attached but before it was renamed into place:
    // a director killed and moved to DIR-staging stands for it. Its links
    // must not make the next load see a foreign program.
    let p = spawn_load(&seed, &[], &[]);
    p.wait_for_line(seed::DIRECTOR_READY, READY_TIMEOUT)
        .unwrap();
    p.signal(libc::SIGKILL);
    assert!(crate::common::wait_until(T, || !p.is_running()));
    let mut staging = seed.pin_dir().as_os_str().to_owned();
    staging.push("-staging");
    std::fs::rename(seed.pin_dir(), &staging).unwrap();
    assert_eq!(xdp_progs(&seed.director, DIR_INT_IF).len(), 1);
    no_director("a director left in DIR-staging");
    let mut waits = Vec::new();
    for round in 0..20 {
        let t = Instant::now();
        let p = spawn_load(&seed, &[], &[]);
        let deadline = t + READY_TIMEOUT;
        loop {
            let (code, _, err) = lvsadm(&seed, &["-L", "-n"]);
            if code == 0 {
                break;
            }
            assert_eq!(err.lines().count(), 1, "round {round}: {err}");
            assert!(err.starts_with("lvsadm: no director at "), "{err}");
            assert!(Instant::now() < deadline, "round {round}:\n{}", p.output());
            thread::sleep(Duration::from_millis(2));
        }
        waits.push(t.elapsed());
        let mut cmd = seed.lvsadm_command(Path::new(LVSADM));
        cmd.arg("-R").stdin(std::process::Stdio::piped());
        let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        let (mut c, who) = open(&seed, &format!("r{round}"));
        assert_eq!(c.ask("again").unwrap(), format!("{who} again"));
        drop(c);
        assert!(p.stop().unwrap().success(), "{}", p.output());
        let (code, out, err) = lvs(
            &seed.director,
            &["unload", "--pin-path", seed.pin_dir().to_str().unwrap()],
        );
        assert_eq!(code, 0, "unload: {out}{err}");
    }
    report(&format!(
        "readiness: 20 of 20 connections at the first answer of lvsadm; start to answer {:?}",
        waits
    ));
}

/// Each refusal is one line on stderr and a failed exit, and leaves the
/// running director as it was: a second `lvs load` on the same pins, one
/// on the same links with other pins, one on a link that carries a
/// foreign XDP program (`lvs pass`'s), and (with the daemon stopped) one
/// whose `--max-conns` differs from the pinned director's.
#[test]
fn refusals_change_nothing() {
    if !require_root("lifecycle refusals") {
        return;
    }
    let mut d = director_with("liferef", 2, &[]).unwrap();
    let _srv = nat_service(&d);
    let pin = d.seed.pin_dir().to_owned();
    let (mut held, who) = open(&d.seed, "held");
    let before = pins(&pin);
    let links: Vec<Option<(u32, u32)>> = IFACES.iter().map(|i| pinned_link(&pin, i)).collect();
    let other = d.seed.lab.pin_subdir("other").unwrap();
    let unchanged = |d: &Director, held: &mut TcpConn, what: &str| {
        assert_eq!(pins(&pin), before, "{what}: pins");
        let now: Vec<_> = IFACES.iter().map(|i| pinned_link(&pin, i)).collect();
        assert_eq!(now, links, "{what}: links");
        for (iface, l) in IFACES.iter().zip(&links) {
            assert_eq!(xdp_progs(&d.seed.director, iface), [l.unwrap().1]);
        }
        assert_eq!(held.ask(what).unwrap(), format!("{who} {what}"));
        open(&d.seed, "new");
        assert!(pins(&other).is_empty(), "{what}: {other:?} stays empty");
    };
    let refused = |args: &[&str], want: &str| {
        let (code, out, err) = lvs(&d.seed.director, args);
        assert_ne!(code, 0, "{args:?} succeeded: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got:\n{err}");
        assert!(err.starts_with("lvs: "), "{err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        report(&format!("refused: {}", err.trim_end()));
    };
    let pin_s = pin.to_str().unwrap().to_owned();
    let load = ["load", "--iface", DIR_INT_IF, "--iface", DIR_EXT_IF];

    refused(
        &[&load[..], &["--pin-path", &pin_s]].concat(),
        "another `lvs load` (pid",
    );
    unchanged(&d, &mut held, "second");

    refused(
        &[&load[..], &["--pin-path", other.to_str().unwrap()]].concat(),
        &format!("{DIR_INT_IF} already carries XDP program `director`"),
    );
    unchanged(&d, &mut held, "samelink");

    d.seed
        .director
        .ip(&[
            "link", "add", "xtra", "type", "veth", "peer", "name", "xtrb",
        ])
        .unwrap();
    for l in ["xtra", "xtrb"] {
        d.seed.director.ip(&["link", "set", l, "up"]).unwrap();
    }
    let pass = seed::start_pass(&d.seed.director, Path::new(LVS), &["xtra"]).unwrap();
    pass.wait_for_line(PASS_READY, READY_TIMEOUT).unwrap();
    let foreign = xdp_progs(&d.seed.director, "xtra");
    refused(
        &[
            "load",
            "--iface",
            "xtra",
            "--pin-path",
            other.to_str().unwrap(),
        ],
        "xtra already carries XDP program `pass`",
    );
    assert_eq!(xdp_progs(&d.seed.director, "xtra"), foreign);
    unchanged(&d, &mut held, "foreign");

    // Another layout: only with no daemon running (else the lock refuses).
    let p = d.load_proc();
    assert!(p.stop().unwrap().success());
    refused(
        &[&load[..], &["--pin-path", &pin_s, "--max-conns", "1000"]].concat(),
        "--max-conns is 65536 in the pinned director, 1000 in this load",
    );
    unchanged(&d, &mut held, "layout");
    assert!(!Path::new(&format!("{pin_s}-staging")).exists());
    // The same options adopt it again.
    let p = d.start_load(&[]).unwrap();
    assert!(p.output().contains("(adopted"), "{}", p.output());
    assert_eq!(held.ask("adopted").unwrap(), format!("{who} adopted"));
}

/// With `$NOTIFY_SOCKET` set, `lvs load` tells systemd READY=1 when it is
/// attached; SIGTERM leaves the director (links, pins, neighbour entries);
/// `lvs unload` detaches it and removes pins and its neighbour entries,
/// after which `lvsadm` says there is no director.
#[test]
fn sd_notify_ready_and_unload() {
    if !require_root("lifecycle sd_notify and unload") {
        return;
    }
    let seed = lab("lifeunl");
    let _srv = echo_servers(&seed);
    let sock_path = seed.lab.workdir().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(READY_TIMEOUT)).unwrap();
    let p = spawn_load(&seed, &[], &[("NOTIFY_SOCKET", &sock_path)]);
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification: {e}\n{}", p.output()));
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // Ready means ready: the tables are there and the line printed.
    assert_eq!(lvsadm(&seed, &["-L", "-n"]).0, 0);
    p.wait_for_line(seed::DIRECTOR_READY, T).unwrap();
    let d_adm = |args: &[&str]| {
        let (code, out, err) = lvsadm(&seed, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    d_adm(&["-A", "-t", &vip(), "-s", "rr"]);
    d_adm(&[
        "-a",
        "-t",
        &vip(),
        "-r",
        &format!("{}:80", seed::rs_ip(0)),
        "-m",
    ]);
    let managed = || managed_neighbours(&seed.director);
    assert!(
        crate::common::wait_until(Duration::from_secs(5), || managed() > 0),
        "no managed neighbour entry:\n{}",
        p.output()
    );
    let (mut c, _) = open(&seed, "u");
    assert!(p.stop().unwrap().success());
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.contains("STOPPING=1"), "{msg:?}");
    assert!(managed() > 0, "SIGTERM keeps the neighbour entries");
    assert_eq!(c.ask("still").unwrap(), "rs1 still");
    let pin = seed.pin_dir();
    assert!(pins(pin).contains("link-ens33"), "{:?}", pins(pin));

    let (code, out, err) = lvs(
        &seed.director,
        &["unload", "--pin-path", pin.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("detached from ens33, ens37"), "{out}");
    assert!(!pin.exists(), "pins left: {:?}", pins(pin));
    for iface in IFACES {
        assert!(xdp_progs(&seed.director, iface).is_empty(), "{iface}");
    }
    assert_eq!(managed(), 0, "unload removes lvs load's neighbour entries");
    let (code, _, err) = lvsadm(&seed, &["-L", "-n"]);
    assert_ne!(code, 0);
    assert_eq!(
        err,
        format!(
            "lvsadm: no director at {} (is `lvs load --pin-path {}` running?)\n",
            pin.display(),
            pin.display()
        )
    );
    // Unloading nothing is no error.
    let (code, out, _) = lvs(
        &seed.director,
        &["unload", "--pin-path", pin.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert!(out.contains("nothing to unload"), "{out}");
}
