//! Table changes are transactions for the data path: packets scheduled
//! during a large change each meet the old table or the new one, never a
//! mix; an `lvsadm -R` killed at any point leaves the old table or the new
//! one, and nothing leaked; a deleted service without connections frees
//! its slot at once.

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr},
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use lvs::{
    adm::{format, restore, NoResolve},
    loader::Sizes,
    model::Snapshot,
};
use lvs_lab::{
    packet::{parse, Frame, SYN},
    require_root,
    xdpns::{mac, Plan},
};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::common::{
    xdp::{fixture_sized, Fixture, XDP_REDIRECT},
    LVS, LVSADM,
};

const VIP: &str = "192.168.47.128";

/// Straight to the stderr fd: figures are worth seeing in passing runs.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "txn: {line}");
}

fn fixture(tag: &str, sizes: Sizes) -> Fixture {
    fixture_sized(tag, &Plan::seed(), sizes, Default::default())
}

/// Runs `prog args…` against the pins of `f` with `stdin`: (exit code,
/// stdout, stderr).
fn run(prog: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn adm(pin: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut a = vec!["--pin-path", pin.to_str().unwrap()];
    a.extend_from_slice(args);
    run(LVSADM, &a, stdin)
}

/// `lvsadm -S -n`, which must succeed.
fn saved(pin: &Path) -> String {
    let (code, out, err) = adm(pin, &["-S", "-n"], "");
    assert_eq!(code, 0, "lvsadm -S -n: {err}");
    out
}

/// The `-S -n` form of a rules text, as lvsadm's own restore reads it.
fn canonical(rules: &str) -> String {
    let snap = restore::restore(&Snapshot::default(), rules, "lvsadm", &NoResolve)
        .unwrap_or_else(|e| panic!("{}", e.msg));
    format::save(&snap, true)
}

const SERVICES: u16 = 100;
const REALS_PER_SET: u8 = 4;

/// Table A or B of the consistency test: every service `VIP:2000+i` has
/// four NAT real servers 192.168.211.10-13 on port 10000+i; in A they
/// have weight 1 and rr schedules over them; in B they are quiesced
/// (weight 0) and wrr schedules over four more, 192.168.211.20-23 on port
/// 20000+i (weights 1-4). A packet scheduled with a mix of the two finds
/// no server at all: A's service with B's weights, or B's member list with
/// A's view of its new servers (not yet members).
fn table(b: bool) -> String {
    let mut s = String::new();
    for i in 0..SERVICES {
        let sched = if b { "wrr" } else { "rr" };
        s += &format!("-A -t {VIP}:{} -s {sched}\n", 2000 + i);
        for r in 0..REALS_PER_SET {
            s += &format!(
                "-a -t {VIP}:{} -r 192.168.211.{}:{} -m -w {}\n",
                2000 + i,
                10 + r,
                10000 + i,
                if b { 0 } else { 1 }
            );
        }
        if b {
            for r in 0..REALS_PER_SET {
                s += &format!(
                    "-a -t {VIP}:{} -r 192.168.211.{}:{} -m -w {}\n",
                    2000 + i,
                    20 + r,
                    20000 + i,
                    r + 1
                );
            }
        }
    }
    s
}

/// What one scheduled packet met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Met {
    A,
    B,
    /// Neither table alone gives this outcome.
    Mix,
}

/// 100 services move between real set A (rr) and real set B (wrr, A's
/// servers quiesced), six times, each change applied by `lvs apply` while
/// a BPF_PROG_TEST_RUN loop sends SYNs of new connections over all
/// services (in a scattered order, not the order they are written in).
/// Every packet must be scheduled to a server of its own service in A or
/// in B, and, in the order the loop sent them, the outcomes switch between
/// A and B exactly once per change: a packet that met the new table is
/// never followed by one that meets the old (which a change written
/// service by service would show).
#[test]
fn packets_during_a_large_change_meet_the_old_table_or_the_new_one() {
    if !require_root("txn consistency") {
        return;
    }
    // Room for every packet's connection: each must be scheduled anew.
    let f = fixture(
        "txnmix",
        Sizes {
            max_conns: 1 << 18,
            ..Sizes::default()
        },
    );
    let reals: Vec<IpAddr> = (10..10 + REALS_PER_SET)
        .chain(20..20 + REALS_PER_SET)
        .map(|h| IpAddr::V4(Ipv4Addr::new(192, 168, 211, h)))
        .collect();
    f.add_neighbours(reals, &mac::RS, "int0").unwrap();
    let dir = f.lab().workdir().to_path_buf();
    let files = [dir.join("a.rules"), dir.join("b.rules")];
    std::fs::write(&files[0], table(false)).unwrap();
    std::fs::write(&files[1], table(true)).unwrap();
    let pin = f.pin.to_str().unwrap().to_owned();
    let apply = |b: bool| {
        let file = files[b as usize].to_str().unwrap();
        let (code, out, err) = run(LVS, &["apply", file, "--pin-path", &pin], "");
        assert_eq!(code, 0, "lvs apply {file}: {out}{err}");
    };
    apply(false);

    const CHANGES: usize = 6;
    const MAX_PACKETS: u64 = 200_000;
    let sent = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let ext = f.link_index("ext0");
    let (outcomes, windows, took) = std::thread::scope(|s| {
        let looper = s.spawn(|| {
            f.enter(|| {
                let mut out = Vec::new();
                for k in 0..MAX_PACKETS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let svc = ((k * 37) % SERVICES as u64) as u16;
                    // A fresh 5-tuple each time: every packet is scheduled.
                    let client = IpAddr::V4(Ipv4Addr::new(10, 77, (k >> 8) as u8, k as u8));
                    let syn = Frame::tcp((client, 40000), (VIP.parse().unwrap(), 2000 + svc), SYN)
                        .macs(mac::CLIENT, mac::DIR_EXT);
                    let r = f.run_once(&syn.build(), ext).expect("BPF_PROG_TEST_RUN");
                    let met = match (r.action, r.out.as_deref().and_then(parse)) {
                        (XDP_REDIRECT, Some(p)) => match (p.dst, p.dport) {
                            (IpAddr::V4(a), port)
                                if port == 10000 + svc && (10..14).contains(&a.octets()[3]) =>
                            {
                                Met::A
                            }
                            (IpAddr::V4(a), port)
                                if port == 20000 + svc && (20..24).contains(&a.octets()[3]) =>
                            {
                                Met::B
                            }
                            _ => Met::Mix,
                        },
                        _ => Met::Mix,
                    };
                    out.push((svc, met, r.action));
                    sent.store(k + 1, Ordering::Relaxed);
                    // Paced, so that the connections last the changes out.
                    std::thread::sleep(Duration::from_micros(20));
                }
                out
            })
            .expect("enter the namespace")
        });
        let mut windows = Vec::new();
        let mut took = Vec::new();
        let wait_for = |n: u64| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while sent.load(Ordering::Relaxed) < n {
                assert!(
                    Instant::now() < deadline,
                    "the packet loop stalled at {} packets",
                    sent.load(Ordering::Relaxed)
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        for c in 0..CHANGES {
            // Each table is met by a few hundred packets before it changes.
            wait_for(sent.load(Ordering::Relaxed) + 300);
            let before = sent.load(Ordering::Relaxed);
            let t = Instant::now();
            apply(c % 2 == 0);
            took.push(t.elapsed());
            windows.push((before, sent.load(Ordering::Relaxed)));
        }
        wait_for(sent.load(Ordering::Relaxed) + 300);
        stop.store(true, Ordering::Relaxed);
        (looper.join().unwrap(), windows, took)
    });
    assert!(
        (outcomes.len() as u64) < MAX_PACKETS,
        "the loop ran out of packets before the changes ended"
    );
    let mixes: Vec<_> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.1 == Met::Mix)
        .take(5)
        .collect();
    assert!(
        mixes.is_empty(),
        "packets that met neither table: {mixes:?}"
    );
    let mut phases: Vec<(Met, usize)> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        if phases.last().map(|p| p.0) != Some(o.1) {
            phases.push((o.1, i));
        }
    }
    let want: Vec<Met> = (0..=CHANGES)
        .map(|i| if i % 2 == 0 { Met::A } else { Met::B })
        .collect();
    assert_eq!(
        phases.iter().map(|p| p.0).collect::<Vec<_>>(),
        want,
        "outcomes switched at packets {phases:?}; changes ran during packets {windows:?}"
    );
    // Each switch lies within its change's window: the loop really ran
    // while the tables changed.
    let during: u64 = windows.iter().map(|(a, b)| b - a).sum();
    for (p, (a, b)) in phases[1..].iter().zip(&windows) {
        assert!(
            (*a as usize..=*b as usize + 1).contains(&p.1),
            "switch at packet {} outside its change ({a}..{b})",
            p.1
        );
    }
    assert!(
        during >= CHANGES as u64,
        "only {during} packets ran during the changes ({windows:?})"
    );
    report(&format!(
        "{} packets, {during} of them during {CHANGES} changes of {SERVICES} services \
         ({} real servers each way, `lvs apply` taking {took:?}); none met a mix",
        outcomes.len(),
        SERVICES as usize * REALS_PER_SET as usize
    ));
}

/// A table of the kill test, drawn from `rng`: up to 120 services out of
/// a pool of 200 ports, each with a random scheduler and one to four NAT
/// real servers of random weights.
fn random_table(rng: &mut StdRng) -> String {
    let mut s = String::new();
    let n = rng.random_range(60..=120);
    let mut ports: Vec<u16> = (0..200).collect();
    for i in 0..n {
        let j = rng.random_range(i..ports.len());
        ports.swap(i, j);
        let port = 1000 + ports[i];
        let sched = ["rr", "wrr", "wlc", "sh", "lc"][rng.random_range(0..5)];
        s += &format!("-A -t 10.50.0.1:{port} -s {sched}\n");
        for r in 0..rng.random_range(1..=4u8) {
            s += &format!(
                "-a -t 10.50.0.1:{port} -r 10.60.0.{}:{port} -m -w {}\n",
                r + 1,
                rng.random_range(0..=5)
            );
        }
    }
    s
}

/// `lvsadm -R` (with `-C` first, so the input is the whole table), killed
/// with SIGKILL after a random delay, forty times: each time `lvsadm -S -n`
/// shows the old table or the new one. The director is small (256
/// services, 1024 real servers): afterwards a `-C` and a `-R` that fills
/// both tables completely must fit, which they would not if a killed
/// change had leaked ids, slots or regions.
#[test]
fn lvsadm_restore_killed_at_random_points_leaves_the_old_table_or_the_new_one() {
    if !require_root("txn kill") {
        return;
    }
    let sizes = Sizes {
        max_services: 256,
        max_reals: 1024,
        ..Sizes::default()
    };
    let f = fixture("txnkill", sizes);
    let seed: u64 = std::env::var("LVS_TXN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1f0c_a5e7);
    report(&format!("kill test seed {seed} (LVS_TXN_SEED to repeat)"));
    let mut rng = StdRng::seed_from_u64(seed);
    let pin = f.pin.clone();

    // How long an uninterrupted change takes: the kills are spread over it.
    let first = random_table(&mut rng);
    let t = Instant::now();
    let (code, _, err) = adm(&pin, &["-R"], &format!("-C\n{first}"));
    let full = t.elapsed();
    assert_eq!(code, 0, "-R: {err}");
    assert_eq!(saved(&pin), canonical(&first));

    let (mut old_seen, mut new_seen) = (0, 0);
    for round in 0..40 {
        let old = saved(&pin);
        let rules = random_table(&mut rng);
        let new = canonical(&rules);
        // Spread over the change, and both extremes once: at once, and
        // long after it should have ended.
        let delay = match round {
            0 => Duration::ZERO,
            39 => full * 10,
            _ => Duration::from_micros(rng.random_range(0..full.as_micros() as u64 * 3 / 2 + 1)),
        };
        let mut child = Command::new(LVSADM)
            .args(["--pin-path", pin.to_str().unwrap(), "-R"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("-C\n{rules}").as_bytes()).unwrap();
        drop(stdin);
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let now = saved(&pin);
        if now == old {
            old_seen += 1;
        } else if now == new {
            new_seen += 1;
        } else {
            panic!(
                "round {round} (seed {seed}, killed after {delay:?}, {status}): the table is \
                 neither the old nor the new one:\n{now}\n--- old:\n{old}\n--- new:\n{new}"
            );
        }
    }
    assert!(
        old_seen > 0 && new_seen > 0,
        "the kills never landed on both sides of the change (old {old_seen}, new {new_seen})"
    );

    // Nothing leaked: every id, real slot and region is free again.
    let (code, _, err) = adm(&pin, &["-C"], "");
    assert_eq!(code, 0, "-C: {err}");
    let mut all = String::new();
    for i in 0..256u16 {
        all += &format!("-A -t 10.51.0.1:{} -s rr\n", 1000 + i);
        for r in 1..=4 {
            all += &format!("-a -t 10.51.0.1:{} -r 10.61.0.{r}:80 -m -w 1\n", 1000 + i);
        }
    }
    let (code, _, err) = adm(&pin, &["-R"], &all);
    assert_eq!(code, 0, "a full -R after the killed ones: {err}");
    assert_eq!(saved(&pin), canonical(&all));
    report(&format!(
        "40 kills of -R (a full one takes {full:?}): {old_seen} left the old table, \
         {new_seen} the new one; a full table fits afterwards"
    ));
}

/// A deleted service without connections frees its slot at once: on a
/// full service table, `-C` and at once a `-R` of other services works
/// (it used to fail with "service table full" until the sweeper's next
/// pass removed the deleted ones).
#[test]
fn a_deleted_service_without_connections_frees_its_slot_at_once() {
    if !require_root("txn tombstones") {
        return;
    }
    let sizes = Sizes {
        max_services: 16,
        max_reals: 64,
        ..Sizes::default()
    };
    let f = fixture("txntomb", sizes);
    let rules = |net: u8| -> String {
        (0..16)
            .map(|i| {
                format!(
                    "-A -t 10.{net}.0.1:{} -s rr\n-a -t 10.{net}.0.1:{} -r 10.{net}.1.1:80 -m\n",
                    80 + i,
                    80 + i
                )
            })
            .collect()
    };
    let (code, _, err) = adm(&f.pin, &["-R"], &rules(20));
    assert_eq!(code, 0, "{err}");
    for round in 0..3 {
        let (code, _, err) = adm(&f.pin, &["-C"], "");
        assert_eq!(code, 0, "{err}");
        let other = rules(21 + round);
        let (code, _, err) = adm(&f.pin, &["-R"], &other);
        assert_eq!(
            code, 0,
            "round {round}: -R of other services after -C: {err}"
        );
        assert_eq!(saved(&f.pin), canonical(&other));
    }
    // With one more than fits, the refusal still says why.
    let mut extra = rules(30);
    extra += "-A -t 10.30.0.2:80 -s rr\n";
    let (code, _, err) = adm(&f.pin, &["-R"], &format!("-C\n{extra}"));
    assert_ne!(code, 0);
    assert!(err.contains("service table full"), "{err}");
}
