//! The Debian package (`cargo xtask package`, cargo-deb) installed into a
//! scratch root: its control fields, conffiles and file list; the packaged
//! binaries run; the systemd units verify (`systemd-analyze verify
//! --root`, which checks that their commands exist in that root); the
//! maintainer scripts call systemctl only under systemd; and the packaged
//! `lvs load` and `lvs decap` run in a lab with exactly the units'
//! capabilities, through a stop (the director stays) and restarts.
//!
//! `cargo xtask test` builds the package first and names it in `$LVS_DEB`
//! (a release build: about 2½ minutes from scratch on a 2-CPU VM, seconds
//! when it is up to date); run alone, these tests say so and are skipped
//! without it (`LVS_DEB=$(cargo xtask package) cargo test …`).

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::{fs::PermissionsExt, net::UnixDatagram},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use lvs_lab::{
    require_root, run_timeout,
    seed::{self, SeedLab, DIRECTOR_READY, DIR_EXT_IF, DIR_INT_IF, READY_TIMEOUT},
    Proc,
};

use crate::common::{managed_neighbours, LVS, LVSADM, T};
use crate::life::open_to;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The sources of the packaged units and defaults.
const PACKAGING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging");
const UNIT: &str = "lib/systemd/system/lvs-xdp.service";
const DECAP_UNIT: &str = "lib/systemd/system/lvs-xdp-decap.service";

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "package: {line}");
}

/// The package `cargo xtask test` built, or `None` (said loudly).
fn deb(what: &str) -> Option<PathBuf> {
    match std::env::var_os("LVS_DEB") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "$LVS_DEB names {}, which is missing",
                p.display()
            );
            Some(p)
        }
        None => {
            report(&format!(
                "SKIPPED {what}: $LVS_DEB is not set (`cargo xtask test` builds the package \
                 and sets it; or LVS_DEB=$(cargo xtask package))"
            ));
            None
        }
    }
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("lvs-pkg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` to its end (30 s at most): (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = run_timeout(cmd, Duration::from_secs(30)).expect("command ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stdout of `argv`, which must succeed.
fn ok(argv: &[&str]) -> String {
    let (code, out, err) = run(Command::new(argv[0]).args(&argv[1..]));
    assert_eq!(code, 0, "{argv:?}: {err}");
    out
}

/// The package unpacked (`dpkg -x`) into a fresh scratch root.
fn installed(deb: &Path, tag: &str) -> Scratch {
    let root = Scratch::new(tag);
    ok(&[
        "dpkg",
        "-x",
        deb.to_str().unwrap(),
        root.path().to_str().unwrap(),
    ]);
    root
}

/// `Key=value` settings of a unit file, by key (repeated keys in order).
fn unit_settings(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            m.entry(k.trim().into()).or_default().push(v.trim().into());
        }
    }
    m
}

fn setting(m: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    match m.get(key).map(Vec::as_slice) {
        Some([v]) => v.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn the_package_holds_the_binaries_units_and_conffiles() {
    let Some(deb) = deb("package contents") else {
        return;
    };
    let d = deb.to_str().unwrap();
    let field = |f: &str| ok(&["dpkg-deb", "-f", d, f]).trim().to_owned();
    assert_eq!(field("Package"), "lvs-xdp");
    assert_eq!(field("Version"), format!("{VERSION}-1"));
    assert_eq!(
        field("Architecture"),
        ok(&["dpkg", "--print-architecture"]).trim()
    );
    assert_eq!(field("Section"), "net");
    let depends = field("Depends");
    for dep in ["iproute2", "libc6"] {
        assert!(depends.contains(dep), "Depends: {depends}");
    }
    assert!(
        !field("Description").contains("generated"),
        "a real description"
    );
    assert_eq!(
        ok(&["dpkg-deb", "-I", d, "conffiles"]),
        "/etc/default/lvs-xdp\n/etc/lvs-xdp/rules\n"
    );
    let info = ok(&["dpkg-deb", "-I", d]);
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script}:\n{info}");
    }

    // Exactly these files, with these modes, owned by root.
    let listing = ok(&["dpkg-deb", "-c", d]);
    let files: BTreeMap<String, String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w[1], "0/0", "owner of {l}");
            (w[5].trim_start_matches('.').to_owned(), w[0].to_owned())
        })
        .collect();
    let (exe, plain) = ("-rwxr-xr-x".to_owned(), "-rw-r--r--".to_owned());
    let want: BTreeMap<String, String> = [
        ("/usr/sbin/lvs", &exe),
        ("/usr/sbin/lvsadm", &exe),
        ("/lib/systemd/system/lvs-xdp.service", &plain),
        ("/lib/systemd/system/lvs-xdp-decap.service", &plain),
        ("/etc/default/lvs-xdp", &plain),
        ("/etc/lvs-xdp/rules", &plain),
        ("/usr/share/doc/lvs-xdp/README.md", &plain),
        ("/usr/share/doc/lvs-xdp/copyright", &plain),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m.clone()))
    .collect();
    assert_eq!(files, want, "{listing}");

    let root = installed(&deb, "contents");
    let r = root.path();
    let version = |bin: &str| ok(&[r.join(bin).to_str().unwrap(), "--version"]);
    assert_eq!(version("usr/sbin/lvs"), format!("lvs {VERSION}\n"));
    assert!(
        version("usr/sbin/lvsadm").starts_with(&format!("lvsadm v{VERSION} (ipvsadm v1.31")),
        "{}",
        version("usr/sbin/lvsadm")
    );
    // The installed files are packaging/'s, byte for byte; the rules start
    // empty.
    for (installed, source) in [
        (UNIT, "lvs-xdp.service"),
        (DECAP_UNIT, "lvs-xdp-decap.service"),
        ("etc/default/lvs-xdp", "lvs-xdp.default"),
        ("etc/lvs-xdp/rules", "rules"),
    ] {
        let a = std::fs::read(r.join(installed)).unwrap();
        let b = std::fs::read(Path::new(PACKAGING).join(source)).unwrap();
        assert!(a == b, "{installed} is not packaging/{source}");
    }
    assert!(std::fs::read(r.join("etc/lvs-xdp/rules"))
        .unwrap()
        .is_empty());
}

/// The director's unit says what the service contract is, and both units
/// pass `systemd-analyze verify` against the installed package (systemd's
/// own units copied into the root, so that verify finds the targets they
/// hang off): verify fails when a command is missing from the root, as
/// checked by removing `lvs`, and any warning it prints fails the test.
#[test]
fn the_units_verify_against_the_installed_package() {
    let Some(deb) = deb("units verify") else {
        return;
    };
    let root = installed(&deb, "verify");
    let r = root.path();
    let unit = unit_settings(&std::fs::read_to_string(r.join(UNIT)).unwrap());
    for (key, want) in [
        ("Type", "notify"),
        ("EnvironmentFile", "-/etc/default/lvs-xdp"),
        (
            "ExecStart",
            "/usr/sbin/lvs load $LVS_OPTS --rules /etc/lvs-xdp/rules",
        ),
        ("ExecReload", "/usr/sbin/lvs apply /etc/lvs-xdp/rules"),
        ("Restart", "on-failure"),
        ("LimitMEMLOCK", "infinity"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(setting(&unit, key), want, "{key}");
    }
    // Stopping must leave the director: no ExecStop, no unload.
    assert!(!unit.contains_key("ExecStop") && !unit.contains_key("ExecStopPost"));
    let decap = unit_settings(&std::fs::read_to_string(r.join(DECAP_UNIT)).unwrap());
    assert_eq!(
        setting(&decap, "ExecStart"),
        "/usr/sbin/lvs decap $LVS_DECAP_OPTS"
    );
    assert_eq!(setting(&decap, "Type"), "notify");

    // systemd's units, for the dependencies verify follows.
    let system = r.join("lib/systemd/system");
    let mut copied = 0;
    for e in std::fs::read_dir("/lib/systemd/system").unwrap() {
        let e = e.unwrap();
        let to = system.join(e.file_name());
        if !to.exists() && e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to).unwrap();
            copied += 1;
        }
    }
    assert!(copied > 10, "systemd's units in /lib/systemd/system");
    let verify = |units: &[&str]| {
        let mut cmd = Command::new("systemd-analyze");
        cmd.arg("verify")
            .arg(format!("--root={}", r.display()))
            .args(units);
        run(&mut cmd)
    };
    let (code, out, err) = verify(&["lvs-xdp.service", "lvs-xdp-decap.service"]);
    assert_eq!((code, err.as_str()), (0, ""), "verify: {out}");
    // What verify checks: the commands must be in the root.
    let lvs = r.join("usr/sbin/lvs");
    std::fs::rename(&lvs, r.join("lvs.away")).unwrap();
    let (code, _, err) = verify(&["lvs-xdp.service"]);
    assert_ne!(code, 0, "verify passed with no /usr/sbin/lvs");
    assert!(err.contains("/usr/sbin/lvs"), "{err}");
    std::fs::rename(r.join("lvs.away"), &lvs).unwrap();
    // And a unit it would warn about is caught by the empty-stderr rule.
    let bad = system.join("lvs-xdp-bad.service");
    std::fs::write(&bad, "[Service]\nExecStart=/usr/sbin/lvs\nNoSuchKey=1\n").unwrap();
    let (_, _, err) = verify(&["lvs-xdp-bad.service"]);
    assert!(err.contains("NoSuchKey"), "{err}");
}

/// Runs maintainer script `script` with `args` in a mount namespace whose
/// `/run` is a fresh tmpfs, with `/run/systemd/system` there when
/// `systemd`, and a `systemctl` that records its arguments and exits with
/// `rc`: (script's exit code, the systemctl calls).
fn maintainer(
    ctrl: &Path,
    script: &str,
    args: &[&str],
    systemd: bool,
    rc: i32,
) -> (i32, Vec<String>) {
    let bin = ctrl.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = ctrl.join("systemctl.log");
    let _ = std::fs::remove_file(&log);
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> {}\nexit {rc}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let setup = if systemd {
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system"
    } else {
        "mount -t tmpfs tmpfs /run"
    };
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{setup} && exec sh \"$0\" \"$@\""))
        .arg(ctrl.join(script))
        .args(args)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        );
    let (code, out, err) = run(&mut cmd);
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        out.is_empty() && err.is_empty(),
        "{script} {args:?}: {out}{err}"
    );
    (code, calls)
}

/// The maintainer scripts do nothing without systemd (no
/// `/run/systemd/system`); under systemd a fresh install only reloads the
/// units (it starts nothing: no link is configured yet), an upgrade
/// restarts a running director daemon on the new binary (hitless: it
/// adopts the pinned director), a removal stops the daemons; a failing
/// systemctl never fails the package's installation.
#[test]
fn the_maintainer_scripts_call_systemctl_only_under_systemd() {
    if !require_root("maintainer scripts (mount namespaces)") {
        return;
    }
    let Some(deb) = deb("maintainer scripts") else {
        return;
    };
    let ctrl = Scratch::new("ctrl");
    let c = ctrl.path().join("DEBIAN");
    ok(&["dpkg-deb", "-e", deb.to_str().unwrap(), c.to_str().unwrap()]);
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("postinst", &["configure", ""], &["daemon-reload"]),
        (
            "postinst",
            &["configure", "0.0.9-1"],
            &["daemon-reload", "try-restart lvs-xdp.service"],
        ),
        (
            "prerm",
            &["remove"],
            &["stop lvs-xdp.service lvs-xdp-decap.service"],
        ),
        ("prerm", &["upgrade", "0.2.0-1"], &[]),
        ("postrm", &["remove"], &["daemon-reload"]),
        ("postrm", &["purge"], &["daemon-reload"]),
        ("postrm", &["upgrade", "0.2.0-1"], &[]),
    ];
    for &(script, args, under_systemd) in cases {
        assert_eq!(
            maintainer(&c, script, args, false, 0),
            (0, vec![]),
            "{script} {args:?} without systemd"
        );
        let want: Vec<String> = under_systemd.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            maintainer(&c, script, args, true, 0),
            (0, want.clone()),
            "{script} {args:?} under systemd"
        );
        assert_eq!(
            maintainer(&c, script, args, true, 1),
            (0, want),
            "{script} {args:?} with systemctl failing"
        );
    }
}

/// The capabilities of a unit's `CapabilityBoundingSet=` in setpriv's
/// spelling (`bpf`, `net_admin`, …).
fn unit_caps(unit: &Path) -> Vec<String> {
    let s = unit_settings(&std::fs::read_to_string(unit).unwrap());
    setting(&s, "CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| {
            c.strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("{c}"))
                .to_lowercase()
        })
        .collect()
}

/// `program args…` in `ns` with only `caps` (bounding set; as root the
/// process then holds exactly them), with `env`.
fn capped(
    ns: &lvs_lab::Netns,
    caps: &[String],
    program: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Command {
    let set: String = std::iter::once("-all".to_owned())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = ns.command("setpriv");
    cmd.args(["--bounding-set", &set, "--inh-caps", "-all", "--"])
        .arg(program)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Capability numbers (linux/capability.h) of setpriv names.
fn cap_mask(caps: &[String]) -> u64 {
    caps.iter()
        .map(|c| match c.as_str() {
            "net_admin" => 12,
            "sys_admin" => 21,
            "perfmon" => 38,
            "bpf" => 39,
            other => panic!("no number for {other}"),
        })
        .fold(0, |m, n| m | 1u64 << n)
}

/// The effective capabilities of process `pid`.
fn cap_eff(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// The packaged `lvs load`, started as the unit starts it (its ExecStart,
/// with `$LVS_OPTS` naming the seed lab's links and `LVS_PIN_PATH` set as
/// `/etc/default/lvs-xdp` would) with exactly the unit's capabilities and a
/// `$NOTIFY_SOCKET`: READY=1 comes once the rules file's service forwards;
/// the process holds those capabilities and no others; it keeps the real
/// servers' neighbour entries; SIGTERM (`systemctl stop`) leaves the
/// director forwarding; a restart and a restart after kill -9
/// (`Restart=on-failure`) adopt it with the connection still open. Without
/// any one of the capabilities it does not start. The packaged `lvs decap`
/// starts with its unit's capabilities, says READY=1, and does not start
/// without any one of them either.
#[test]
fn the_packaged_daemons_run_with_their_units_capabilities() {
    if !require_root("packaged daemons with the units' capabilities") {
        return;
    }
    let Some(deb) = deb("packaged daemons") else {
        return;
    };
    let root = installed(&deb, "caps");
    let r = root.path();
    let lvs = r.join("usr/sbin/lvs");
    let caps = unit_caps(&r.join(UNIT));
    assert_eq!(unit_caps(&r.join(DECAP_UNIT)), caps);

    let seed = SeedLab::new("pkgcaps").unwrap();
    seed.director.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let _pass = seed.start_pass(Path::new(LVS)).unwrap();
    let vip = format!("{}:80", seed::VIP);
    let mut rules = format!("-A -t {vip} -s rr\n");
    for i in 0..2 {
        rules += &format!("-a -t {vip} -r {}:80 -m -w 1\n", seed::rs_ip(i));
    }
    let _srv: Vec<_> = seed
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            lvs_lab::servers::echo_line(ns, "0.0.0.0:80".parse().unwrap(), &format!("rs{}", i + 1))
                .unwrap()
        })
        .collect();
    let rules_file = r.join("etc/lvs-xdp/rules");
    std::fs::write(&rules_file, &rules).unwrap();

    // The unit's ExecStart, for this root and lab.
    let unit = unit_settings(&std::fs::read_to_string(r.join(UNIT)).unwrap());
    let opts = format!("--iface {DIR_INT_IF} --iface {DIR_EXT_IF}");
    let exec = setting(&unit, "ExecStart").replace("$LVS_OPTS", &opts);
    let mut argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    assert_eq!(argv[0], "/usr/sbin/lvs");
    argv.remove(0);
    for a in &mut argv {
        if a == "/etc/lvs-xdp/rules" {
            *a = rules_file.to_str().unwrap().to_owned();
        }
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let pin = seed.pin_dir().to_owned();
    let sock_path = seed.lab.workdir().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(READY_TIMEOUT)).unwrap();
    let env = [
        ("LVS_PIN_PATH", pin.as_path()),
        ("NOTIFY_SOCKET", sock_path.as_path()),
    ];
    let start = |what: &str| -> Proc {
        let cmd = capped(&seed.director, &caps, &lvs, &argv, &env);
        let p = seed.director.spawn_cmd("lvs-load", cmd).unwrap();
        // Past the last daemon's STOPPING=1.
        let mut buf = [0u8; 512];
        loop {
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("{what}: no READY=1: {e}\n{}", p.output()));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == "READY=1") {
                break;
            }
            assert_eq!(msg, "STOPPING=1", "{what}");
        }
        p.wait_for_line(DIRECTOR_READY, T).unwrap();
        assert_eq!(cap_eff(p.pid()), cap_mask(&caps), "{what}: CapEff");
        p
    };
    let adm = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = seed.lvsadm_command(Path::new(LVSADM));
        cmd.args(args);
        match stdin {
            None => run(&mut cmd),
            Some(s) => {
                // (run_timeout gives commands no stdin.)
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
                let out = child.wait_with_output().unwrap();
                (
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            }
        }
    };
    // The unit's `--rules` file is the table once it is ready.
    let p = start("first start");
    assert_eq!(adm(&["-S", "-n"], None).1, rules);
    // Its neighbour upkeep works (before any traffic: no entry is the
    // kernel's) with these capabilities (`ip neigh`).
    let managed = || managed_neighbours(&seed.director);
    assert!(
        crate::common::wait_until(Duration::from_secs(5), || managed() >= 2),
        "managed neighbour entries:\n{}",
        p.output()
    );
    let (mut c, who) = open_to(&seed.client, seed.vip(80), "held");
    // systemctl reload: the unit's ExecReload.
    let rules = {
        let changed = rules.replace("-w 1\n", "-w 2\n");
        std::fs::write(&rules_file, &changed).unwrap();
        let exec = setting(&unit, "ExecReload");
        let reload: Vec<&str> = exec.split_whitespace().skip(1).collect();
        let reload: Vec<&str> = reload
            .into_iter()
            .map(|a| {
                if a == "/etc/lvs-xdp/rules" {
                    rules_file.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        let (code, out, err) = run(&mut capped(&seed.director, &caps, &lvs, &reload, &env[..1]));
        assert_eq!(code, 0, "reload: {out}{err}");
        assert_eq!(adm(&["-S", "-n"], None).1, changed);
        assert_eq!(c.ask("reloaded").unwrap(), format!("{who} reloaded"));
        changed
    };
    // systemctl stop: SIGTERM; the director stays.
    assert!(p.stop().unwrap().success(), "{}", p.output());
    assert!(p.output().contains("keeps forwarding"), "{}", p.output());
    assert!(!p.output().contains("WARN"), "warnings:\n{}", p.output());
    assert_eq!(c.ask("stopped").unwrap(), format!("{who} stopped"));
    let p = start("restart");
    assert!(p.output().contains("(adopted"), "{}", p.output());
    assert_eq!(c.ask("restarted").unwrap(), format!("{who} restarted"));
    p.signal(libc::SIGKILL);
    assert!(crate::common::wait_until(T, || !p.is_running()));
    assert_eq!(c.ask("killed").unwrap(), format!("{who} killed"));
    let p = start("restart after kill -9");
    assert!(p.output().contains("(adopted"), "{}", p.output());
    assert_eq!(c.ask("again").unwrap(), format!("{who} again"));
    assert_eq!(adm(&["-S", "-n"], None).1, rules);
    assert!(p.stop().unwrap().success());
    drop(c);
    let (code, out, err) = run(seed
        .director
        .command(&lvs)
        .arg("unload")
        .arg("--pin-path")
        .arg(&pin));
    assert_eq!(code, 0, "{out}{err}");

    // Each capability is needed: without it the load fails, and leaves
    // nothing behind.
    for drop_cap in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != drop_cap).cloned().collect();
        let mut cmd = capped(
            &seed.director,
            &fewer,
            &lvs,
            &argv,
            &[("LVS_PIN_PATH", &pin)],
        );
        let (code, out, err) = run(&mut cmd);
        assert_ne!(code, 0, "started without {drop_cap}: {out}{err}");
        report(&format!(
            "without {drop_cap}: {}",
            err.lines().next().unwrap_or("")
        ));
        assert!(!pin.exists(), "without {drop_cap}: pins left");
    }

    // lvs decap on a real server, as its unit runs it.
    let rs = &seed.rs[0];
    let dpin = seed.lab.pin_subdir("decap").unwrap();
    let dsock_path = seed.lab.workdir().join("decap-notify.sock");
    let dsock = UnixDatagram::bind(&dsock_path).unwrap();
    dsock.set_read_timeout(Some(READY_TIMEOUT)).unwrap();
    let decap = unit_settings(&std::fs::read_to_string(r.join(DECAP_UNIT)).unwrap());
    let exec = setting(&decap, "ExecStart").replace(
        "$LVS_DECAP_OPTS",
        &format!("--iface {} --pin-path {}", seed::RS_IF, dpin.display()),
    );
    let argv: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let cmd = capped(rs, &caps, &lvs, &argv, &[("NOTIFY_SOCKET", &dsock_path)]);
    let p = rs.spawn_cmd("lvs-decap", cmd).unwrap();
    let mut buf = [0u8; 64];
    let n = dsock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("decap: no READY=1: {e}\n{}", p.output()));
    assert_eq!(&buf[..n], b"READY=1");
    assert_eq!(cap_eff(p.pid()), cap_mask(&caps), "decap CapEff");
    assert!(p.stop().unwrap().success(), "{}", p.output());
    for drop_cap in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != drop_cap).cloned().collect();
        let (code, out, err) = run(&mut capped(rs, &fewer, &lvs, &argv, &[]));
        assert_ne!(code, 0, "decap started without {drop_cap}: {out}{err}");
    }
}
