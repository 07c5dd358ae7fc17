//! The lab itself, without the lvs binaries: namespaces, links, processes,
//! servers and clients, and that nothing outlives a lab.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use lvs_lab::{clients, servers, Lab};

const T: Duration = Duration::from_secs(3);

macro_rules! need_root {
    () => {
        if !lvs_lab::require_root("namespace tests") {
            return;
        }
    };
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Gone, or a zombie nobody reaps (possible when pid 1 is not an init).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Names a lab made, for checking they are gone afterwards.
struct Footprint {
    namespaces: Vec<String>,
    workdir: PathBuf,
    pins: Vec<PathBuf>,
}

impl Footprint {
    fn of(lab: &Lab) -> Footprint {
        Footprint {
            namespaces: lab.namespaces(),
            workdir: lab.workdir().to_owned(),
            pins: Vec::new(),
        }
    }

    fn assert_gone(&self) {
        for n in &self.namespaces {
            assert!(!netns_exists(n), "namespace {n} left behind");
        }
        assert!(
            !self.workdir.exists(),
            "{} left behind",
            self.workdir.display()
        );
        for p in &self.pins {
            assert!(!p.exists(), "{} left behind", p.display());
        }
    }
}

#[test]
fn two_namespaces_talk_and_vanish() {
    need_root!();
    let lab = Lab::new("pair").unwrap();
    let a = lab.ns("a").unwrap();
    let b = lab.ns("b").unwrap();
    assert!(a.name().starts_with(lab.prefix()) && a.name().ends_with("-a"));
    lab.veth(&a, "a0", &b, "b0").unwrap();
    a.addr("a0", "10.77.0.1/24").unwrap();
    b.addr("b0", "10.77.0.2/24").unwrap();
    a.addr("a0", "fd77::1/64").unwrap();
    b.addr("b0", "fd77::2/64").unwrap();

    // Offload really is off on both ends.
    for (ns, dev) in [(&a, "a0"), (&b, "b0")] {
        let features = ns.run(&["ethtool", "-k", dev]).unwrap();
        assert!(
            features.contains("tx-checksumming: off"),
            "{dev}: {features}"
        );
    }
    // The links live only inside their namespaces.
    assert!(a.ip(&["-o", "link"]).unwrap().contains("a0@"));
    assert!(!b.ip(&["-o", "link"]).unwrap().contains("a0@"));

    clients::ping(&a, ip("10.77.0.2"), T).unwrap();
    clients::ping(&b, ip("fd77::1"), T).unwrap();

    let udp = servers::udp(&b, sa("0.0.0.0:5353"), "bee").unwrap();
    assert_eq!(
        clients::udp_request(&a, sa("10.77.0.2:5353"), "hi", T).unwrap(),
        "bee"
    );
    let udp6 = servers::udp(&b, sa("[::]:5354"), "bee6").unwrap();
    assert_eq!(
        clients::udp_request(&a, sa("[fd77::2]:5354"), "hi", T).unwrap(),
        "bee6"
    );
    assert_eq!(udp.requests(), 1);
    assert_eq!(udp.peers()[0].ip(), ip("10.77.0.1"));
    drop(udp6);

    let web = servers::http(&b, sa("0.0.0.0:8080"), "hao2\n").unwrap();
    assert_eq!(
        clients::http_get(&a, sa("10.77.0.2:8080"), T).unwrap(),
        "hao2\n"
    );
    let mut conn = clients::HttpConn::connect(&a, sa("10.77.0.2:8080"), T).unwrap();
    assert_eq!(conn.get("/").unwrap(), "hao2\n");
    assert_eq!(conn.get("/again").unwrap(), "hao2\n");
    assert_eq!(web.requests(), 3);
    let peers = web.peers();
    assert_eq!(peers[1], peers[2], "keep-alive reuses the connection");
    assert_eq!(peers[1], conn.local_addr().unwrap());

    let held = servers::line(&b, sa("0.0.0.0:7000"), "rs-b").unwrap();
    let mut t = clients::TcpConn::connect(&a, sa("10.77.0.2:7000"), T).unwrap();
    assert_eq!(t.ask("one").unwrap(), "rs-b");
    assert_eq!(t.ask("two").unwrap(), "rs-b");
    assert_eq!(held.active(), 1);
    drop(t);
    let deadline = Instant::now() + T;
    while held.active() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(held.active(), 0);

    // A server stops promptly when dropped, even with a client attached.
    let t2 = clients::TcpConn::connect(&a, sa("10.77.0.2:7000"), T).unwrap();
    let start = Instant::now();
    drop(held);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    drop(t2);
    assert!(clients::TcpConn::connect(&a, sa("10.77.0.2:7000"), T).is_err());

    // sysctls are per namespace.
    a.sysctl("net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(a.read_sysctl("net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(b.read_sysctl("net.ipv4.ip_forward").unwrap(), "0");
    b.write_file("/proc/sys/net/ipv4/conf/b0/send_redirects", "0")
        .unwrap();
    assert_eq!(
        b.read_sysctl("net.ipv4.conf.b0.send_redirects").unwrap(),
        "0"
    );
    assert_eq!(
        a.read_sysctl("net.ipv4.conf.a0.send_redirects").unwrap(),
        "1"
    );

    // In-process threads and nsenter'ed commands see the same namespace.
    let inode = std::fs::metadata(a.path()).unwrap().ino();
    let seen = a
        .enter(|| std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino())
        .unwrap();
    assert_eq!(seen, inode);
    let link = a.run(&["readlink", "/proc/self/ns/net"]).unwrap();
    assert_eq!(link.trim(), format!("net:[{inode}]"));
    // …while the caller's own thread stays where it was.
    assert_ne!(
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
        inode
    );

    let err = a
        .run(&["ip", "link", "set", "nosuchdev", "up"])
        .unwrap_err();
    assert!(format!("{err:#}").contains("nosuchdev"), "{err:#}");

    drop(web);
    let fp = Footprint::of(&lab);
    assert_eq!(fp.namespaces.len(), 2);
    drop(lab);
    fp.assert_gone();
}

#[test]
fn processes_are_waited_for_and_stopped() {
    need_root!();
    let lab = Lab::new("proc").unwrap();
    let ns = lab.ns("p").unwrap();

    let ready = ns
        .spawn(
            "ready",
            &[
                "sh",
                "-c",
                "echo starting; sleep 0.2; echo 'lvs: pass attached on eth0'; exec sleep 1000",
            ],
        )
        .unwrap();
    let line = ready.wait_for_line("lvs: pass attached", T).unwrap();
    assert_eq!(line, "lvs: pass attached on eth0");
    // Lines printed before the call count too.
    assert_eq!(ready.wait_for_line("starting", T).unwrap(), "starting");
    assert!(ready.output().contains("starting\n"));

    let quitter = ns
        .spawn("quitter", &["sh", "-c", "echo oops >&2; exit 3"])
        .unwrap();
    let err = quitter.wait_for_line("lvs:", T).unwrap_err().to_string();
    assert!(err.contains("exited") && err.contains("oops"), "{err}");
    assert_eq!(quitter.status().unwrap().code(), Some(3));

    let silent = ns.spawn("silent", &["sleep", "1000"]).unwrap();
    let start = Instant::now();
    let err = silent
        .wait_for_line("never", Duration::from_millis(300))
        .unwrap_err();
    assert!(err.to_string().contains("did not print"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
    silent.stop().unwrap();
    assert!(!silent.is_running());

    let stubborn = ns
        .spawn(
            "stubborn",
            &[
                "sh",
                "-c",
                "trap '' TERM; echo armed; while :; do sleep 0.1; done",
            ],
        )
        .unwrap();
    stubborn.wait_for_line("armed", T).unwrap();
    let orphaner = ns
        .spawn(
            "orphaner",
            &["sh", "-c", "sleep 1000 & echo child $!; wait"],
        )
        .unwrap();
    let child: u32 = orphaner.wait_for_line("child ", T).unwrap()[6..]
        .parse()
        .unwrap();

    let pids = [ready.pid(), stubborn.pid(), orphaner.pid(), child];
    assert!(ns.pids().contains(&child));
    let fp = Footprint::of(&lab);
    let start = Instant::now();
    drop(lab);
    // SIGTERM grace (3 s) for the stubborn one, then SIGKILL.
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    for pid in pids {
        assert!(process_gone(pid), "pid {pid} survived the lab");
    }
    fp.assert_gone();
}

#[test]
fn drop_cleans_up_after_a_panic() {
    need_root!();
    let fp = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::new("panic").unwrap();
        let x = lab.ns("x").unwrap();
        let y = lab.ns("y").unwrap();
        lab.veth(&x, "x0", &y, "y0").unwrap();
        x.spawn("sleeper", &["sleep", "1000"]).unwrap();
        let mut f = Footprint::of(&lab);
        f.pins.push(lab.pin_dir().unwrap());
        *fp.lock().unwrap() = Some(f);
        panic!("test panics on purpose");
    });
    assert!(result.is_err());
    fp.lock().unwrap().take().unwrap().assert_gone();
}

#[test]
fn pin_dirs_are_removed_recursively() {
    need_root!();
    let lab = Lab::new("pins").unwrap();
    let dir = lab.pin_dir().unwrap();
    assert!(lvs_lab::bpffs_mounted());
    assert!(dir.starts_with("/sys/fs/bpf") && dir.ends_with(lab.prefix()));
    assert_eq!(lab.pin_dir().unwrap(), dir, "idempotent");
    let other = lab.pin_subdir("b").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    if lvs_lab::on_path("bpftool") {
        let map = dir.join("sub/lvslabmap");
        let out = Command::new("bpftool")
            .args(["map", "create"])
            .arg(&map)
            .args([
                "type",
                "array",
                "key",
                "4",
                "value",
                "4",
                "entries",
                "1",
                "name",
                "lvslabmap",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(map.exists());
    }
    drop(lab);
    assert!(!dir.exists() && !other.exists());
}

#[test]
fn stale_leftovers_are_swept() {
    need_root!();
    // Above PID_MAX_LIMIT (2^22), so this owner can never be alive.
    let prefix = format!("lvssweep-{}x{}", 4_194_305 + std::process::id() % 1000, 0);
    let ns = format!("{prefix}-a");
    let pins = Path::new("/sys/fs/bpf").join(&prefix);
    let work = std::env::temp_dir().join("lvs-lab").join(&prefix);
    lvs_lab::ensure_bpffs().unwrap();
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(&pins).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut squatter = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["--", "sleep", "1000"])
        .spawn()
        .unwrap();
    // Wait until it has entered the namespace.
    let deadline = Instant::now() + T;
    let ino = std::fs::metadata(format!("/run/netns/{ns}")).unwrap().ino();
    while std::fs::metadata(format!("/proc/{}/ns/net", squatter.id()))
        .map(|m| m.ino())
        .ok()
        != Some(ino)
    {
        assert!(Instant::now() < deadline, "squatter never entered {ns}");
        std::thread::sleep(Duration::from_millis(10));
    }

    // A live lab's names are left alone.
    let live = Lab::new("live").unwrap();
    let live_ns = live.ns("a").unwrap();

    lvs_lab::sweep_stale().unwrap();
    assert!(!netns_exists(&ns));
    assert!(!pins.exists());
    assert!(!work.exists());
    let status = squatter.wait().unwrap();
    assert!(!status.success(), "squatter was killed");
    assert!(netns_exists(live_ns.name()));
    assert!(live.workdir().exists());
}

#[test]
fn kept_labs_survive_sweeps_until_cleaned() {
    need_root!();
    let lab = Lab::new("keep").unwrap();
    let ns = lab.ns("k").unwrap();
    // Kept at once: keep() itself must wait for nsenter to switch.
    let p = ns.spawn("sleeper", &["sleep", "1000"]).unwrap();
    let pin = lab.pin_dir().unwrap();
    let kept = lab.keep().unwrap();
    assert!(ns.pids().contains(&p.pid()));
    assert!(netns_exists(ns.name()) && pin.exists() && p.is_running());
    assert!(lvs_lab::kept_records()
        .iter()
        .any(|k| k.prefix == kept.prefix));
    assert_eq!(kept.pids, vec![p.pid()]);

    lvs_lab::sweep_stale().unwrap();
    assert!(netns_exists(ns.name()));

    let removed = kept.clean().unwrap();
    assert!(
        removed.iter().any(|r| r == &format!("pid {}", p.pid())),
        "{removed:?}"
    );
    assert!(!netns_exists(ns.name()) && !pin.exists() && !kept.workdir.exists());
    assert!(!p.is_running());
    assert!(!lvs_lab::kept_records()
        .iter()
        .any(|k| k.prefix == kept.prefix));
}

#[test]
fn bad_names_are_refused() {
    need_root!();
    let lab = Lab::new("names").unwrap();
    assert!(lab.ns("").is_err());
    assert!(lab.ns("a/b").is_err());
    let a = lab.ns("a").unwrap();
    assert!(lab.ns("a").is_err());
    let b = lab.ns("b").unwrap();
    assert!(lab.veth(&a, "this-name-is-too-long", &b, "b0").is_err());
    lab.veth(&a, "exactly15chars0", &b, "b0").unwrap();
}
