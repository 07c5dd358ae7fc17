//! The data path fuzzed: `lvs_lab::fuzz`'s generator through the director
//! and `lvs decap` with BPF_PROG_TEST_RUN, every output checked against
//! `lvs_lab::fuzz::check`'s invariants, and the counters with them.
//!
//! `frames_meet_the_invariants` runs `LVS_FUZZ_FRAMES` frames (default
//! 200 000) from seed `LVS_FUZZ_SEED` (default: drawn from the clock and
//! printed, so a failure can be replayed with it); `cargo xtask fuzz
//! --frames N [--seed S]` runs it in a release build. First every
//! truncation of one valid frame of each kind, then mutated frames.

use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, PerCpuArray};
use lvs::{
    decap,
    model::{Method, Proto},
    progtest,
    tables::names,
};
use lvs_common::counters::{self, Counters};
use lvs_lab::{
    fuzz::{
        check::{self, Moved, Outcome, XDP_REDIRECT, XDP_TX},
        gen::{Case, Gen},
        Link, Method as FMethod, Service, World,
    },
    packet::{Frame, SYN, TCP, UDP},
    require_root,
    xdpns::{mac, Plan},
};

use crate::common::xdp::{fixture_with, ip, service, Fixture, Run};

const CLIENT: &str = "192.168.47.1";
const CLIENT6: &str = "2001:db8:47::1";
const VIP: &str = "192.168.47.128";
const VIP6: &str = "2001:db8:47::128";
const RS: &str = "192.168.211.129";
const RS6: &str = "2001:db8:211::129";
/// Client ports with a connection opened before the fuzzing.
const TRACKED: std::ops::Range<u16> = 50000..50008;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The services: NAT TCP and UDP over both families, DR and TUN over both.
fn world(f: &Fixture) -> World {
    let svc = |proto, vip: &str, port, method, rs: &str, rport| Service {
        proto,
        vip: ip(vip),
        port,
        method,
        reals: vec![(ip(rs), rport)],
    };
    World {
        services: vec![
            svc(TCP, VIP, 80, FMethod::Nat, RS, 8080),
            svc(UDP, VIP, 53, FMethod::Nat, RS, 5353),
            svc(TCP, VIP6, 80, FMethod::Nat, RS6, 8080),
            svc(UDP, VIP6, 53, FMethod::Nat, RS6, 5353),
            svc(TCP, VIP, 81, FMethod::Dr, RS, 81),
            svc(TCP, VIP6, 81, FMethod::Dr, RS6, 81),
            svc(TCP, VIP, 82, FMethod::Tun, RS, 82),
            svc(UDP, VIP6, 82, FMethod::Tun, RS6, 82),
        ],
        ext: Link {
            ifindex: f.link_index("ext0"),
            mac: mac::DIR_EXT,
            peer: mac::CLIENT,
        },
        int: Link {
            ifindex: f.link_index("int0"),
            mac: mac::DIR_INT,
            peer: mac::RS,
        },
        clients: vec![ip(CLIENT), ip(CLIENT6)],
        routers: vec![ip("192.168.47.2"), ip("2001:db8:47::2")],
        tracked_ports: TRACKED.collect(),
        decap_addrs: vec![ip(RS), ip(RS6)],
    }
}

fn install(f: &Fixture, w: &World) {
    let services = w
        .services
        .iter()
        .map(|s| {
            let proto = if s.proto == TCP {
                Proto::Tcp
            } else {
                Proto::Udp
            };
            let method = match s.method {
                FMethod::Nat => Method::Masq,
                FMethod::Dr => Method::Route,
                FMethod::Tun => Method::Tunnel,
            };
            let reals: Vec<_> = s.reals.iter().map(|r| (r.0, r.1, method)).collect();
            service(proto, s.vip, s.port, &reals)
        })
        .collect();
    f.services(services);
    // Connections to track: each service from each tracked port.
    for s in &w.services {
        let client = if s.vip.is_ipv4() {
            ip(CLIENT)
        } else {
            ip(CLIENT6)
        };
        for port in TRACKED {
            let fr = if s.proto == TCP {
                Frame::tcp((client, port), (s.vip, s.port), SYN)
            } else {
                Frame::udp((client, port), (s.vip, s.port))
            };
            let b = fr.macs(mac::CLIENT, mac::DIR_EXT).build();
            let (action, _) = f.run(&b, w.ext.ifindex);
            assert!(
                action == XDP_REDIRECT || action == XDP_TX,
                "opening {}:{port} -> {}:{}: {action}",
                client,
                s.vip,
                s.port
            );
        }
    }
}

/// What a run found.
#[derive(Default, Debug)]
struct Report {
    frames: u64,
    outcomes: std::collections::BTreeMap<String, u64>,
    failures: Vec<String>,
    elapsed: Duration,
}

const MAX_FAILURES: usize = 20;

fn sum(c: &PerCpuArray<MapData, Counters>) -> [u64; counters::COUNT as usize] {
    let mut out = [0u64; counters::COUNT as usize];
    for cpu in c.get(&0, 0).expect("COUNTERS").iter() {
        for (o, v) in out.iter_mut().zip(cpu.0) {
            *o += v;
        }
    }
    out
}

fn moved(before: &[u64], after: &[u64]) -> Moved {
    let mut m = Moved {
        rx: after[counters::RX as usize] - before[counters::RX as usize],
        terminal: Vec::new(),
    };
    for i in 0..counters::COUNT {
        let d = after[i as usize] - before[i as usize];
        if d != 0 && !counters::NOT_TERMINAL.contains(&i) {
            m.terminal.push((counters::NAMES[i as usize], d));
        }
    }
    m
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `case` through the director and decap, checking both; director
/// outputs that are tunnelled go through decap too.
fn one(ctx: &Ctx, w: &World, case: &Case, report: &mut Report) {
    // The kernel hands XDP no frame shorter than an Ethernet header, and
    // BPF_PROG_TEST_RUN refuses one.
    if case.frame.len() < 14 {
        return;
    }
    report.frames += 1;
    let before = sum(&ctx.counters);
    let r = progtest::test_run(ctx.director, &case.frame, case.ifindex, 1, true)
        .expect("BPF_PROG_TEST_RUN (director)");
    let after = sum(&ctx.counters);
    let out = r.out.unwrap_or_default();
    match check::director(w, case, r.action, &out, &moved(&before, &after)) {
        Ok(o) => {
            *report
                .outcomes
                .entry(format!("director {o:?}"))
                .or_default() += 1
        }
        Err(e) => fail(report, "director", case, &out, &e),
    }
    let decap_case = |c: &Case, report: &mut Report| {
        let before = ctx.decap.counters().expect("DECAP_COUNTERS");
        let r = progtest::test_run(ctx.decap_prog, &c.frame, c.ifindex, 1, true)
            .expect("BPF_PROG_TEST_RUN (decap)");
        let after = ctx.decap.counters().expect("DECAP_COUNTERS");
        let d = [
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2],
        ];
        let out = r.out.unwrap_or_default();
        match check::decap(w, c, r.action, &out, d) {
            Ok(Outcome::Forwarded) => {
                *report.outcomes.entry("decap stripped".into()).or_default() += 1
            }
            Ok(_) => *report.outcomes.entry("decap passed".into()).or_default() += 1,
            Err(e) => fail(report, "decap", c, &out, &e),
        }
    };
    decap_case(case, report);
    let tunnelled = out.len() > 23
        && ((out[12..14] == [8, 0] && out[23] == 4)
            || (out[12..14] == [0x86, 0xdd] && out[20] == 41));
    if (r.action == XDP_REDIRECT || r.action == XDP_TX) && tunnelled {
        let c = Case {
            frame: out.clone(),
            ifindex: w.int.ifindex,
            what: format!("the director's tunnelled output of: {}", case.what),
        };
        decap_case(&c, report);
    }
}

fn fail(report: &mut Report, prog: &str, case: &Case, out: &[u8], e: &str) {
    if report.failures.len() < MAX_FAILURES {
        report.failures.push(format!(
            "{prog}: {e}\n  frame {} ({}) on ifindex {}\n  in  {}\n  out {}",
            report.frames,
            case.what,
            case.ifindex,
            hex(&case.frame),
            hex(out)
        ));
    } else {
        report.failures.push(String::new());
    }
}

struct Ctx<'a> {
    director: &'a aya::programs::Xdp,
    decap_prog: &'a aya::programs::Xdp,
    decap: &'a decap::Loaded,
    counters: PerCpuArray<MapData, Counters>,
}

/// Runs `frames` frames from `seed`.
fn fuzz(frames: u64, seed: u64) -> Report {
    let f = fixture_with("fz", &Plan::seed(), Default::default());
    let w = world(&f);
    install(&f, &w);
    let decap =
        decap::Loaded::load(&f.pin.join("decap"), &w.decap_addrs).expect("the decap program");
    let counters = PerCpuArray::try_from(Map::PerCpuArray(
        MapData::from_pin(f.pin.join(names::COUNTERS)).unwrap(),
    ))
    .unwrap();
    let ctx = Ctx {
        director: f.prog("director").unwrap(),
        decap_prog: decap.prog().unwrap(),
        decap: &decap,
        counters,
    };
    let start = Instant::now();
    let mut report = f
        .enter(|| {
            let mut report = Report::default();
            let mut g = Gen::new(seed, w.clone());
            // Every truncation of a valid frame of each kind.
            for base in g.bases() {
                for n in 0..=base.frame.len() {
                    let c = Case {
                        frame: base.frame[..n].to_vec(),
                        ifindex: base.ifindex,
                        what: format!("{}, truncated to {n}", base.what),
                    };
                    one(&ctx, &w, &c, &mut report);
                }
            }
            while report.frames < frames {
                let c = g.next_case();
                one(&ctx, &w, &c, &mut report);
            }
            report
        })
        .unwrap();
    report.elapsed = start.elapsed();
    drop(ctx);
    drop(decap);
    report
}

#[test]
fn frames_meet_the_invariants() {
    if !require_root("fuzz") {
        return;
    }
    let frames = env_u64("LVS_FUZZ_FRAMES").unwrap_or(200_000);
    let seed = env_u64("LVS_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("fuzz: {frames} frames from seed {seed} (LVS_FUZZ_SEED={seed} replays them)");
    let r = fuzz(frames, seed);
    eprintln!(
        "fuzz: {} frames through director and decap in {:.1} s: {:?}",
        r.frames,
        r.elapsed.as_secs_f64(),
        r.outcomes
    );
    assert!(
        r.failures.is_empty(),
        "seed {seed}: {} of {} frames broke an invariant (LVS_FUZZ_SEED={seed} replays them):\n{}",
        r.failures.len(),
        r.frames,
        r.failures
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every kind of outcome was reached: the generator exercises the paths.
    for kind in [
        "director Passed",
        "director Forwarded",
        "director Answered",
        "decap stripped",
    ] {
        assert!(
            r.outcomes.contains_key(kind),
            "no frame ended as {kind}: {:?}",
            r.outcomes
        );
    }
}
