//! `lvs apply FILE` and `lvs load --rules FILE` on the seed's NAT lab with
//! real TCP: what the file keeps keeps its connections, counts and rr
//! position; a bad file changes nothing (and at boot refuses the start,
//! leaving no pins and no link); a good one serves the moment `lvsadm`
//! answers; SIGHUP re-applies the file.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use lvs::adm::{format, restore, NoResolve};
use lvs_lab::{
    clients::TcpConn,
    require_root, run_timeout,
    seed::{self, SeedConfig, SeedLab, DIR_EXT_IF, DIR_INT_IF, READY_TIMEOUT},
    servers, Netns, Proc,
};

use crate::common::{director, load_command, wait_until, LVS, LVSADM, T};

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "apply: {line}");
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = run_timeout(cmd, Duration::from_secs(60)).expect("command ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `lvs apply FILE` in the director: (exit code, stdout, stderr).
fn lvs_apply(seed: &SeedLab, file: &Path) -> (i32, String, String) {
    let mut cmd = seed.director.command(LVS);
    cmd.arg("apply")
        .arg(file)
        .arg("--pin-path")
        .arg(seed.pin_dir());
    run(&mut cmd)
}

fn lvsadm(seed: &SeedLab, args: &[&str]) -> (i32, String, String) {
    let mut cmd = seed.lvsadm_command(Path::new(LVSADM));
    cmd.args(args);
    run(&mut cmd)
}

fn saved(seed: &SeedLab) -> String {
    let (code, out, err) = lvsadm(seed, &["-S", "-n"]);
    assert_eq!(code, 0, "-S -n: {err}");
    out
}

fn canonical(rules: &str) -> String {
    let snap = restore::restore(&Default::default(), rules, "lvsadm", &NoResolve)
        .unwrap_or_else(|e| panic!("{}", e.msg));
    format::save(&snap, true)
}

fn write(seed: &SeedLab, name: &str, text: &str) -> PathBuf {
    let p = seed.lab.workdir().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A service line and its NAT members (`-m -w 1`) on the seed's servers.
fn service(port: u16, sched: &str, members: &[usize], rs_port: u16) -> String {
    let mut s = format!("-A -t {}:{port} -s {sched}\n", seed::VIP);
    for &i in members {
        s += &format!(
            "-a -t {}:{port} -r {}:{rs_port} -m -w 1\n",
            seed::VIP,
            seed::rs_ip(i)
        );
    }
    s
}

/// A connection to the VIP's `port` that got its first answer, with it.
fn open(seed: &SeedLab, port: u16, tag: &str) -> (TcpConn, String) {
    let mut c = TcpConn::connect(&seed.client, seed.vip(port), T)
        .unwrap_or_else(|e| panic!("connecting {tag}: {e:#}"));
    let a = c.ask(tag).unwrap_or_else(|e| panic!("asking {tag}: {e:#}"));
    (c, a)
}

/// Echo servers ("rsN LINE") on `port` of every real server.
fn echo_servers(seed: &SeedLab, port: u16) -> Vec<servers::Server> {
    seed.rs
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let any = std::net::SocketAddr::from(([0, 0, 0, 0], port));
            servers::echo_line(ns, any, &format!("rs{}", i + 1)).unwrap()
        })
        .collect()
}

/// ActiveConn of the member `rs_ip(i):rs_port` in `-L -n`.
fn active(seed: &SeedLab, port: u16, i: usize, rs_port: u16) -> u64 {
    let (_, out, _) = lvsadm(seed, &["-L", "-n", "-t", &format!("{}:{port}", seed::VIP)]);
    let want = format!("{}:{rs_port}", seed::rs_ip(i));
    out.lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"->") && w.get(1) == Some(&want.as_str()))
                .then(|| w[4].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {want} in {out}"))
}

/// Writes `rules` to `name` and `lvs apply`s it: it succeeds, says
/// `summary`, and the director's table is then the file's.
fn apply_ok(seed: &SeedLab, name: &str, rules: &str, summary: &str) {
    let file = write(seed, name, rules);
    let (code, out, err) = lvs_apply(seed, &file);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), summary);
    assert_eq!(saved(seed), canonical(rules));
}

/// An apply that removes one service, adds another and changes the
/// servers of a third leaves the kept service's open connection working,
/// its server's ActiveConn and its rr position as they were; a bad file
/// changes nothing and names its line; SIGHUP without `--rules` changes
/// nothing either.
#[test]
fn apply_keeps_what_stays_and_a_bad_file_changes_nothing() {
    if !require_root("lvs apply") {
        return;
    }
    let d = director("applyk", 3).unwrap();
    let seed = &d.seed;
    let _srv = echo_servers(seed, 80);
    let _srv81 = echo_servers(seed, 81);
    let first = service(80, "rr", &[0, 1, 2], 80) + &service(81, "rr", &[0], 81);
    apply_ok(
        seed,
        "one.rules",
        &first,
        "lvs apply: services: 2 added, 0 removed, 0 changed; servers: 4 added, 0 removed, \
         0 changed (2 services)",
    );

    // rr: the first connection to rs1 (held), the second to rs2.
    let (mut held, a) = open(seed, 80, "held");
    assert_eq!(a, "rs1 held");
    let (c2, a) = open(seed, 80, "second");
    assert_eq!(a, "rs2 second");
    drop(c2);
    let (mut held81, a) = open(seed, 81, "held81");
    assert_eq!(a, "rs1 held81");
    assert_eq!(active(seed, 80, 0, 80), 1);

    // Port 80 stays as it is; 81 loses rs1 for rs2; 82 is new.
    let second = service(80, "rr", &[0, 1, 2], 80)
        + &service(81, "wrr", &[1], 81)
        + &service(82, "rr", &[2], 80);
    apply_ok(
        seed,
        "two.rules",
        &second,
        "lvs apply: services: 1 added, 0 removed, 1 changed; servers: 2 added, 1 removed, \
         0 changed (3 services)",
    );
    assert_eq!(held.ask("after").unwrap(), "rs1 after");
    assert_eq!(active(seed, 80, 0, 80), 1, "rs1's count of port 80");
    // The position moved on from rs2: a reset one would start at rs1.
    let (_c3, a) = open(seed, 80, "third");
    assert_eq!(a, "rs3 third", "rr continues where it was");
    // The server 81 lost keeps its connection (as `-d` keeps it).
    assert_eq!(held81.ask("after").unwrap(), "rs1 after");
    let (_c81, a) = open(seed, 81, "new81");
    assert_eq!(a, "rs2 new81");
    let (_c82, a) = open(seed, 82, "new82");
    assert_eq!(a, "rs3 new82");

    // Removing a service keeps its open connection (a tombstone) too.
    let third = service(80, "rr", &[0, 1, 2], 80);
    let f3 = write(seed, "three.rules", &third);
    let (code, out, err) = lvs_apply(seed, &f3);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("services: 0 added, 2 removed"), "{out}");
    assert_eq!(held81.ask("gone").unwrap(), "rs1 gone");
    assert_eq!(saved(seed), canonical(&third));

    // A bad file: its line, exit 1, nothing changed.
    let bad = write(
        seed,
        "bad.rules",
        &format!(
            "{}\n-a -t {}:99 -r {}:80 -m\n",
            service(83, "rr", &[0], 80),
            seed::VIP,
            seed::rs_ip(0)
        ),
    );
    let (code, out, err) = lvs_apply(seed, &bad);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        err.trim(),
        format!("lvs: {}:4: Service not defined", bad.display())
    );
    assert_eq!(saved(seed), canonical(&third));
    assert_eq!(held.ask("still").unwrap(), "rs1 still");

    // Without --rules, SIGHUP is logged and ignored, not the daemon's end.
    let load = d.load_proc();
    load.signal(libc::SIGHUP);
    assert!(
        wait_until(T, || load.output().contains("no --rules file to reload")),
        "{}",
        load.output()
    );
    assert!(load.is_running());
    assert_eq!(saved(seed), canonical(&third));
}

fn lab(tag: &str) -> (SeedLab, Vec<Proc>) {
    let seed = SeedLab::with_config(
        tag,
        SeedConfig {
            real_servers: 2,
            ..Default::default()
        },
    )
    .unwrap();
    seed.director.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let pass = seed.start_pass(Path::new(LVS)).unwrap();
    (seed, pass)
}

fn load_cmd(seed: &SeedLab, rules: &Path) -> Command {
    let mut cmd = load_command(seed);
    cmd.arg("--rules").arg(rules);
    cmd
}

/// A start that failed left no pins and no XDP program on either link.
fn assert_nothing_left(seed: &SeedLab) {
    assert!(
        pins_left(seed.pin_dir()).is_empty(),
        "{:?}",
        pins_left(seed.pin_dir())
    );
    for iface in [DIR_INT_IF, DIR_EXT_IF] {
        assert!(xdp_progs(&seed.director, iface).is_empty(), "{iface}");
    }
}

/// The XDP programs attached to `iface` in `ns`.
fn xdp_progs(ns: &Netns, iface: &str) -> Vec<u32> {
    let iface = iface.to_owned();
    ns.enter(move || lvs::life::links::xdp_prog_ids(lvs::life::links::ifindex(&iface)?))
        .unwrap()
        .unwrap()
}

/// Whether anything is pinned at `dir` or its staging directory.
fn pins_left(dir: &Path) -> Vec<String> {
    let mut staging = dir.as_os_str().to_owned();
    staging.push("-staging");
    [dir.to_path_buf(), PathBuf::from(staging)]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .map(|rd| {
                    rd.filter_map(|e| Some(e.ok()?.path().display().to_string()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// `--rules` with a bad file (a bad line, and one that does not fit) stops
/// the start with the file's line, leaving no pins and no link; with a
/// good file the first connection succeeds the moment `lvsadm` answers;
/// SIGHUP applies the changed file, keeping the open connection, and a
/// bad one on SIGHUP is logged and changes nothing.
#[test]
fn rules_at_boot_and_on_sighup() {
    if !require_root("lvs load --rules") {
        return;
    }
    let (seed, _pass) = lab("applyboot");
    let _srv = echo_servers(&seed, 80);
    let bad = write(
        &seed,
        "bad.rules",
        &format!(
            "{}-a -t {}:80 -r {}:80 -m -w 70000\n",
            service(80, "rr", &[0], 80),
            seed::VIP,
            seed::rs_ip(1)
        ),
    );
    let (code, out, err) = run(&mut load_cmd(&seed, &bad));
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("{}:3: illegal weight specified", bad.display())),
        "{err}"
    );
    assert_nothing_left(&seed);
    // Valid lines that do not fit the tables (more services than
    // --max-services) fail when applied, before the director attaches.
    let many: String = (0..5).map(|i| service(1000 + i, "rr", &[0], 80)).collect();
    let too_many = write(&seed, "many.rules", &many);
    let (code, out, err) = run(load_cmd(&seed, &too_many).args(["--max-services", "4"]));
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("service table full"), "{err}");
    assert_nothing_left(&seed);

    // A good file: ready means serving.
    let good = service(80, "rr", &[0, 1], 80);
    let file = write(&seed, "good.rules", &good);
    let start = Instant::now();
    let load = seed
        .director
        .spawn_cmd("lvs-load", load_cmd(&seed, &file))
        .unwrap();
    loop {
        let (code, _, _) = lvsadm(&seed, &["-L", "-n"]);
        if code == 0 {
            break;
        }
        assert!(start.elapsed() < READY_TIMEOUT, "{}", load.output());
        std::thread::sleep(Duration::from_millis(2));
    }
    let (mut held, a) = open(&seed, 80, "first");
    assert_eq!(a, "rs1 first");
    let ready = start.elapsed();
    assert_eq!(saved(&seed), canonical(&good));

    // SIGHUP: the changed file (rs1 out, port 81 in) is applied; the
    // connection to rs1 stays.
    let _srv81 = echo_servers(&seed, 81);
    let changed = service(80, "rr", &[1], 80) + &service(81, "rr", &[0], 81);
    std::fs::write(&file, &changed).unwrap();
    load.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || saved(&seed)
            == canonical(&changed)),
        "SIGHUP did not apply the file:\n{}\n{}",
        saved(&seed),
        load.output()
    );
    assert_eq!(held.ask("after").unwrap(), "rs1 after");
    let (_c, a) = open(&seed, 81, "new81");
    assert_eq!(a, "rs1 new81");

    // A bad file on SIGHUP: logged, nothing changed.
    std::fs::write(&file, format!("{changed}-E -t {}:82 -s rr\n", seed::VIP)).unwrap();
    load.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || load
            .output()
            .contains("rules not reloaded")),
        "{}",
        load.output()
    );
    let log = load.output();
    assert!(log.contains(&format!("{}:5:", file.display())), "{log}");
    assert_eq!(saved(&seed), canonical(&changed));
    assert_eq!(held.ask("still").unwrap(), "rs1 still");
    assert!(load.is_running());
    report(&format!(
        "--rules: first connection served {ready:?} after the start"
    ));

    // A restart with the bad file is refused and leaves the director
    // forwarding; one with a good file adopts it and applies the file: the
    // open connection is kept, the table is the file's.
    load.signal(libc::SIGTERM);
    assert!(wait_until(T, || !load.is_running()));
    let (code, out, err) = run(&mut load_cmd(&seed, &file));
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("{}:5:", file.display())), "{err}");
    assert_eq!(held.ask("refused").unwrap(), "rs1 refused");
    assert_eq!(saved(&seed), canonical(&changed));
    std::fs::write(&file, &changed).unwrap();
    let again = seed
        .director
        .spawn_cmd("lvs-load", load_cmd(&seed, &file))
        .unwrap();
    again
        .wait_for_line(seed::DIRECTOR_READY, READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", again.output()));
    assert!(again.output().contains("adopted"), "{}", again.output());
    assert_eq!(held.ask("restarted").unwrap(), "rs1 restarted");
    assert_eq!(saved(&seed), canonical(&changed));
    drop(held);
    again.signal(libc::SIGTERM);
    assert!(wait_until(T, || !again.is_running()));
    let (code, _, err) = run(seed
        .director
        .command(LVS)
        .args(["unload", "--pin-path"])
        .arg(seed.pin_dir()));
    assert_eq!(code, 0, "{err}");
}

/// A deleted service keeps its slot while its connections last (they keep
/// working), and frees it once they have ended: on a table of two
/// services, a third is refused while the deleted one's connection is open
/// and fits once it has closed and expired.
#[test]
fn a_deleted_service_keeps_its_slot_while_connections_last() {
    if !require_root("tombstones with connections") {
        return;
    }
    let mut extra = crate::common::SHORT_CLOSE.to_vec();
    extra.extend(["--max-services", "2"]);
    let d = crate::common::director_with("applytomb", 1, &extra).unwrap();
    let seed = &d.seed;
    let _srv = echo_servers(seed, 80);
    let vip = |p: u16| format!("{}:{p}", seed::VIP);
    let rs = |p: u16| format!("{}:{p}", seed::rs_ip(0));
    for p in [80, 81] {
        d.adm(&["-A", "-t", &vip(p), "-s", "rr"]);
        d.adm(&["-a", "-t", &vip(p), "-r", &rs(80), "-m"]);
    }
    let (mut c, a) = open(seed, 80, "held");
    assert_eq!(a, "rs1 held");
    d.adm(&["-D", "-t", &vip(80)]);
    assert_eq!(c.ask("deleted").unwrap(), "rs1 deleted");
    let (code, _, err) = d.adm_raw(&["-A", "-t", &vip(82), "-s", "rr"], "");
    assert_ne!(code, 0);
    assert!(err.contains("service table full"), "{err}");
    drop(c);
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let (code, _, err) = d.adm_raw(&["-A", "-t", &vip(82), "-s", "rr"], "");
            last = err;
            code == 0
        }),
        "the deleted service's slot was not freed after its connection ended: {last}"
    );
    let listing = d.adm(&["-L", "-n"]);
    assert!(
        !listing.contains(&vip(80)) && listing.contains(&vip(82)),
        "{listing}"
    );
}
