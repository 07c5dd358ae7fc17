//! Section 2: how the per-packet cost grows with the tables — tracked
//! connections, services, real servers per service.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};
use lvs_common::{counters, FlowKey, Service, ServiceEntry, ServiceKey, AF_INET, PROTO_TCP};

use crate::{
    fixture::*,
    frames::*,
    report::{Align, Section, Table},
    stats::{fmt_bytes, fmt_ns, fmt_ratio_of, group},
    svg::{Panel, Series},
    Opts, Progress, Rng,
};
use lvs::{
    loader::Sizes,
    model::{Method, Proto, RealServer, Scheduler, ServiceAddr, VirtualService},
    tables::{addr_words, names, port_raw},
};

fn nat_addr() -> ServiceAddr {
    ServiceAddr {
        proto: Proto::Tcp,
        addr: VIP.into(),
        port: NAT_PORT,
    }
}

/// The client-side key of a flow to VIP:80.
pub fn flow_key(client: (std::net::Ipv4Addr, u16)) -> FlowKey {
    FlowKey {
        src: addr_words(IpAddr::V4(client.0)),
        dst: addr_words(IpAddr::V4(VIP)),
        sport: port_raw(client.1),
        dport: port_raw(NAT_PORT),
        proto: PROTO_TCP,
        family: AF_INET,
        ..Default::default()
    }
}

/// Sizes of one run.
struct Plan {
    repeat: u32,
    runs: usize,
    samples: usize,
    conns: Vec<u32>,
    services: Vec<u32>,
    reals: Vec<u32>,
}

pub fn run(
    opts: &Opts,
    progress: &Progress,
    sec: &mut Section,
    panels: &mut Vec<Panel>,
) -> Result<()> {
    let plan = Plan {
        repeat: opts.pick(100_000, 1_000_000),
        runs: opts.pick(3, 5),
        samples: opts.pick(20_000, 100_000),
        conns: opts.pick(
            vec![1, 1_000, 100_000, 1_000_000],
            vec![1, 1_000, 100_000, 1_000_000],
        ),
        services: vec![1, 100, 10_000],
        reals: vec![2, 100, 1_000],
    };
    sec.intro = format!(
        "Each curve changes one table and measures the director with `BPF_PROG_TEST_RUN` as in \
         section 1 (figures are raw − wrapper + XDP_DROP). \"Same flow\" repeats one packet \
         {runs} × {rep} times: its table entries stay in the CPU cache, so it shows what the \
         size of a hash table costs by itself. \"Random flows\" sends one packet each to \
         {samples} flows picked at random among all tracked ones (single runs, each minus a \
         wrapper single run), so lookups miss the cache as they do under real traffic. Growth \
         is the ratio to the smallest table. Memory is the kernel's own accounting of each map \
         (fdinfo `memlock`), which for these preallocated hash maps is fixed by their capacity; \
         \"entries\" is what the live entries hold (key + value).",
        runs = plan.runs,
        rep = group(plan.repeat as i64),
        samples = group(plan.samples as i64)
    );
    let r1 = conns(opts, progress, sec, panels, &plan);
    let r2 = services(progress, sec, panels, &plan);
    let r3 = reals(progress, sec, panels, &plan);
    r1.and(r2).and(r3)
}

fn conns(
    _opts: &Opts,
    progress: &Progress,
    sec: &mut Section,
    panels: &mut Vec<Panel>,
    plan: &Plan,
) -> Result<()> {
    progress.step("connections: fixture");
    let max = *plan.conns.iter().max().unwrap_or(&1);
    let sizes = Sizes {
        max_conns: (max + max / 16).max(65536),
        ..Sizes::default()
    };
    let fx = fixture("bsc", sizes)?;
    let base = measure_baseline(&fx, plan.repeat, plan.runs)?;
    fx.enter(|| open_flow(&fx, (CLIENT, CLIENT_PORT), NAT_PORT))??;
    let mut conns = fx.conns()?;
    let mut replies = fx.replies()?;
    let key0 = flow_key((CLIENT, CLIENT_PORT));
    // Templates: the entries the director itself made for the flow.
    let conn0 = conns
        .get(&key0, 0)
        .context("the director did not track the opened flow")?;
    let (rkey0, _) = replies
        .iter()
        .filter_map(|kv| kv.ok())
        .find(|(_, v)| *v == key0)
        .ok_or_else(|| anyhow!("no REPLIES entry for the opened flow"))?;
    let director = fx.prog("director_bench")?;
    let wrapper = fx.prog("bench_overhead")?;
    let mut t = Table::new(&[
        "tracked connections",
        "same flow ns/packet",
        "growth",
        "random flows ns/packet",
        "growth",
        "random-flow hits",
        "CONNS + REPLIES memory",
        "entries",
        "insert time",
    ]);
    let mut same_pts = Vec::new();
    let mut rand_pts = Vec::new();
    let (mut same0, mut rand0) = (f64::NAN, f64::NAN);
    let mut filled: u32 = 0;
    let mut rng = Rng::new(0x5eed);
    for &target in &plan.conns {
        if target > sizes.max_conns {
            bail!("{target} connections exceed the table");
        }
        let start = std::time::Instant::now();
        let label = format!("connections: inserting up to {}", group(target as i64));
        progress.step(&label);
        let now = lvs::tables::monotonic_ns();
        while filled + 1 < target {
            if filled.is_multiple_of(4096) {
                lvs_lab::interrupt::check()?;
                progress.tick(&label, filled as usize + 1, target as usize);
            }
            let client = flow_client(filled);
            let k = flow_key(client);
            let mut c = conn0;
            c.last_seen = now;
            conns.insert(k, c, 0)?;
            let mut rk = rkey0;
            rk.dst = k.src;
            rk.dport = k.sport;
            replies.insert(rk, k, 0)?;
            filled += 1;
        }
        let insert_time = start.elapsed();
        progress.step(&format!(
            "connections: {} (same flow)",
            group(target as i64)
        ));
        let frame = ack_to((CLIENT, CLIENT_PORT), NAT_PORT);
        let cases = [RepeatCase {
            prog: director,
            frame: frame.clone(),
            ifindex: fx.link_index("ext0"),
            counter: Some(counters::NAT_FWD),
        }];
        let same =
            fx.enter(|| measure_repeats(&fx.pin, &cases, plan.repeat, plan.runs, &|_, _| {}))??;
        let same_ns = base.unwrap(same[0].kernel());
        // The samples, drawn before timing starts.
        let picks: Vec<Option<u32>> = (0..plan.samples)
            .map(|_| (filled > 0).then(|| rng.below(filled as u64) as u32))
            .collect();
        let before = fx.counters()?;
        let what = format!("connections: {} (random flows)", group(target as i64));
        progress.step(&what);
        let rand = fx.enter(|| {
            measure_singles(
                director,
                wrapper,
                fx.link_index("ext0"),
                plan.samples,
                &|i| match picks[i] {
                    Some(f) => ack_to(flow_client(f), NAT_PORT),
                    None => frame.clone(),
                },
                &|d, n| progress.tick(&what, d, n),
            )
        })??;
        let after = fx.counters()?;
        let hits = after[counters::NAT_FWD as usize] - before[counters::NAT_FWD as usize];
        let rand_ns = base.unwrap_net(rand.net());
        if target == plan.conns[0] {
            same0 = same_ns;
            rand0 = rand_ns;
        }
        let mem =
            fx.map_memlock(names::CONNS).unwrap_or(0) + fx.map_memlock(names::REPLIES).unwrap_or(0);
        let entry = (std::mem::size_of::<FlowKey>() * 2
            + std::mem::size_of::<lvs_common::Conn>()
            + std::mem::size_of::<FlowKey>()) as u64;
        t.row([
            group(target as i64),
            fmt_ns(same_ns),
            fmt_ratio_of(same_ns, same0),
            fmt_ns(rand_ns),
            fmt_ratio_of(rand_ns, rand0),
            format!("{} / {}", group(hits as i64), group(plan.samples as i64)),
            fmt_bytes(mem),
            fmt_bytes(entry * target as u64),
            crate::stats::fmt_duration(insert_time),
        ]);
        same_pts.push((target as f64, same_ns));
        rand_pts.push((target as f64, rand_ns));
        if same[0].counter_ok == Some(false) {
            sec.note(format!(
                "With {} connections the measured flow did not take the NAT path on every repeat.",
                group(target as i64)
            ));
        }
    }
    let miss = miss_latency(&fx, &base, plan.repeat.min(100_000), plan.runs)?;
    sec.note(format!(
        "Memory latency in the same run: a dependent-load walk through {} cache lines (64 MiB, \
         an order no prefetcher follows) costs {} per load. Random flows over the largest table \
         cost {} against {} for the smallest, {:.1} such misses more.",
        group(WALK_LINES as i64),
        fmt_ns(miss),
        fmt_ns(rand_pts.last().map_or(f64::NAN, |p| p.1)),
        fmt_ns(rand0),
        (rand_pts.last().map_or(f64::NAN, |p| p.1) - rand0) / miss
    ));
    t.caption = Some(format!(
        "**Tracked connections** (NAT established, client → VIP; CONNS and REPLIES sized {} each)",
        group(sizes.max_conns as i64)
    ));
    sec.tables.push(t);
    sec.note(
        "Connections are inserted from userspace into the pinned CONNS and REPLIES maps, copies \
         of the entries the director made for the measured flow (ESTABLISHED, same real \
         server), one per client 10.100.x.y:port. \"Random-flow hits\" counts nat_fwd: a miss \
         would mean the flow was evicted from the LRU table.",
    );
    panels.push(Panel {
        title: "Tracked connections".into(),
        x_label: "connections in CONNS/REPLIES".into(),
        y_label: "ns/packet (NAT established)".into(),
        series: vec![
            Series {
                label: "same flow (repeats)".into(),
                points: same_pts,
            },
            Series {
                label: "random flows (single runs)".into(),
                points: rand_pts,
            },
        ],
    });
    Ok(())
}

fn services(
    progress: &Progress,
    sec: &mut Section,
    panels: &mut Vec<Panel>,
    plan: &Plan,
) -> Result<()> {
    progress.step("services: fixture");
    let max = *plan.services.iter().max().unwrap_or(&1);
    let sizes = Sizes {
        max_services: max.max(1024).next_power_of_two(),
        ..Sizes::default()
    };
    let fx = fixture("bss", sizes)?;
    let mut nat = VirtualService::new(nat_addr(), Scheduler::Rr);
    nat.reals
        .push(RealServer::new(NAT_RS.into(), NAT_RS_PORT, Method::Masq, 1));
    fx.set_services(vec![nat])?;
    let base = measure_baseline(&fx, plan.repeat, plan.runs)?;
    fx.enter(|| open_flow(&fx, (CLIENT, CLIENT_PORT), NAT_PORT))??;
    let (skey, svc, _, _) = fx.service_entry(&nat_addr())?;
    let mut map = fx.services_map()?;
    let director = fx.prog("director_bench")?;
    let mut t = Table::new(&[
        "services",
        "ns/packet",
        "growth",
        "SERVICES memory",
        "entries",
    ]);
    let mut pts = Vec::new();
    let mut first = f64::NAN;
    let mut filled = 0u32;
    for &target in &plan.services {
        progress.step(&format!("services: {}", group(target as i64)));
        while filled + 1 < target {
            let k = ServiceKey {
                addr: addr_words(IpAddr::V4(filler_vip(filled))),
                ..skey
            };
            // Its own id (per-service state and counters), the same
            // member list and table as the measured service.
            let v = Service {
                id: svc.id + 1 + filled,
                ..svc
            };
            map.insert(k, ServiceEntry { views: [v; 2] }, 0)?;
            filled += 1;
        }
        let cases = [RepeatCase {
            prog: director,
            frame: ack_to((CLIENT, CLIENT_PORT), NAT_PORT),
            ifindex: fx.link_index("ext0"),
            counter: Some(counters::NAT_FWD),
        }];
        let r =
            fx.enter(|| measure_repeats(&fx.pin, &cases, plan.repeat, plan.runs, &|_, _| {}))??;
        let ns = base.unwrap(r[0].kernel());
        if target == plan.services[0] {
            first = ns;
        }
        let entry =
            (std::mem::size_of::<ServiceKey>() + std::mem::size_of::<ServiceEntry>()) as u64;
        t.row([
            group(target as i64),
            fmt_ns(ns),
            fmt_ratio_of(ns, first),
            fmt_bytes(fx.map_memlock(names::SERVICES).unwrap_or(0)),
            fmt_bytes(entry * target as u64),
        ]);
        pts.push((target as f64, ns));
    }
    t.caption = Some(format!(
        "**Services** (NAT established, same flow; SERVICES sized {})",
        group(sizes.max_services as i64)
    ));
    sec.tables.push(t);
    sec.note(
        "Extra services (10.200.x.y:80) are written straight into SERVICES, sharing the \
         measured service's member list and table: the data path only looks services up, and \
         the table store's own planner is what section 5 times.",
    );
    panels.push(Panel {
        title: "Services".into(),
        x_label: "services".into(),
        y_label: "ns/packet (NAT established)".into(),
        series: vec![Series {
            label: "same flow (repeats)".into(),
            points: pts,
        }],
    });
    Ok(())
}

fn reals(
    progress: &Progress,
    sec: &mut Section,
    panels: &mut Vec<Panel>,
    plan: &Plan,
) -> Result<()> {
    progress.step("real servers: fixture");
    let max = *plan.reals.iter().max().unwrap_or(&2);
    let sizes = Sizes {
        max_conns: 1 << 20,
        max_reals: (max * 2).max(4096),
        ..Sizes::default()
    };
    let fx = fixture("bsr", sizes)?;
    progress.step("real servers: neighbour entries");
    fx.add_neighbours((0..max).map(real_addr), &RS_MAC, "int0")?;
    let base = measure_baseline(&fx, plan.repeat, plan.runs)?;
    let director = fx.prog("director_bench")?;
    let wrapper = fx.prog("bench_overhead")?;
    let mut t = Table::new(&[
        "real servers",
        "scheduler",
        "new flow ns/packet",
        "growth",
        "table entries",
        "scheduled",
    ])
    .align(1, Align::Left);
    let mut series = Vec::new();
    let mut next_flow = 0u32;
    for sched in [Scheduler::Wrr, Scheduler::Mh] {
        let mut pts = Vec::new();
        let mut first = f64::NAN;
        for &n in &plan.reals {
            let label = format!("real servers: {} × {}", sched.name(), n);
            progress.step(&label);
            let mut svc = VirtualService::new(nat_addr(), sched);
            for i in 0..n {
                svc.reals.push(RealServer::new(
                    real_addr(i).into(),
                    NAT_RS_PORT,
                    Method::Masq,
                    1 + i % 4,
                ));
            }
            if let Err(e) = fx.set_services(vec![svc]) {
                if sched == Scheduler::Wrr {
                    return Err(e);
                }
                t.row([
                    "–".to_owned(),
                    sched.name().to_owned(),
                    "not landed".to_owned(),
                    "–".to_owned(),
                    String::new(),
                    format!(
                        "the table store refuses it: {}",
                        crate::report::short_error(&format!("{e:#}"))
                    ),
                ]);
                break;
            }
            let (_, entry, _, _) = fx.service_entry(&nat_addr())?;
            // One probe: a scheduler the data path does not run yet passes
            // the SYN (no_real).
            let probe = syn_to(flow_client(next_flow), NAT_PORT);
            next_flow += 1;
            let probe_action = fx
                .enter(|| test_run(director, &probe, fx.link_index("ext0"), 1, false))??
                .action;
            if probe_action != XDP_REDIRECT {
                t.row([
                    "–".to_owned(),
                    sched.name().to_owned(),
                    "not landed".to_owned(),
                    "–".to_owned(),
                    group(entry.table_len as i64),
                    format!(
                        "with {n} real servers a new flow gave {} (no_real)",
                        action_name(probe_action)
                    ),
                ]);
                break;
            }
            let before = fx.counters()?;
            let start_flow = next_flow;
            let r = fx.enter(|| {
                measure_singles(
                    director,
                    wrapper,
                    fx.link_index("ext0"),
                    plan.samples,
                    &|i| syn_to(flow_client(start_flow + i as u32), NAT_PORT),
                    &|d, m| progress.tick(&label, d, m),
                )
            })??;
            next_flow += plan.samples as u32;
            let after = fx.counters()?;
            let new = after[counters::NEW_CONN as usize] - before[counters::NEW_CONN as usize];
            let ns = base.unwrap_net(r.net());
            if pts.is_empty() {
                first = ns;
            }
            t.row([
                group(n as i64),
                sched.name().to_owned(),
                fmt_ns(ns),
                fmt_ratio_of(ns, first),
                group(entry.table_len as i64),
                format!(
                    "new_conn {} / {}",
                    group(new as i64),
                    group(plan.samples as i64)
                ),
            ]);
            pts.push((n as f64, ns));
        }
        if !pts.is_empty() {
            series.push(Series {
                label: format!("{} new flow", sched.name()),
                points: pts,
            });
        }
    }
    t.caption = Some(
        "**Real servers per service** (NAT new flow: SYN with a fresh 5-tuple, scheduled and \
         inserted; weights 1–4)"
            .to_owned(),
    );
    sec.tables.push(t);
    sec.note(
        "Scheduling only happens for new connections, so this curve uses new flows (single \
         runs, as in section 1); an established flow's cost does not depend on the number of \
         real servers. Every real server has a permanent neighbour entry, so each new flow is \
         forwarded (no FIB miss).",
    );
    panels.push(Panel {
        title: "Real servers per service".into(),
        x_label: "real servers".into(),
        y_label: "ns/packet (NAT new flow)".into(),
        series,
    });
    Ok(())
}
