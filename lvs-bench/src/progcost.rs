//! Section 1: what one packet costs in each data-path case, measured with
//! BPF_PROG_TEST_RUN next to the cheapest possible programs.

use anyhow::Result;
use lvs_common::counters;

use crate::{
    fixture::*,
    frames::*,
    report::{short_error, Align, Section, Table},
    stats::{fmt_ns, fmt_ratio_of, group},
    Opts, Progress,
};
use lvs::{
    loader::Sizes,
    model::{Method, Proto, RealServer, Scheduler, ServiceAddr, VirtualService},
};

/// Reference figures (ns) measured when the benchmark was written, on
/// another machine (a 2-CPU EPYC VM, where a call return costs a
/// mitigation thunk): context for the ns columns, not targets.
pub const ANCHOR_DROP: &str = "21–23";
pub const ANCHOR_SWAP: &str = "24–26";
pub const ANCHOR_KATRAN_EST: &str = "Katran ≈145";
pub const ANCHOR_KATRAN_NEW: &str = "Katran ≈300";

/// Tries to add a TUN service (VIP:82 → 192.168.211.131, ipip) and to open
/// a flow through it. `Err` carries why TUN is not usable here.
fn try_tunnel(fx: &Fixture) -> std::result::Result<(), String> {
    let mut services = fx.services().map_err(|e| format!("{e:#}"))?;
    let mut tun = VirtualService::new(
        ServiceAddr {
            proto: Proto::Tcp,
            addr: VIP.into(),
            port: TUN_PORT,
        },
        Scheduler::Rr,
    );
    tun.reals
        .push(RealServer::new(TUN_RS.into(), TUN_PORT, Method::Tunnel, 1));
    services.push(tun);
    fx.set_services(services)
        .map_err(|e| format!("the table store refuses Method::Tunnel: {e:#}"))?;
    let before = fx.counters().map_err(|e| format!("{e:#}"))?;
    let action = fx
        .enter(|| open_flow(fx, (CLIENT, CLIENT_PORT), TUN_PORT))
        .map_err(|e| format!("{e:#}"))?
        .map_err(|e| format!("{e:#}"))?;
    let after = fx.counters().map_err(|e| format!("{e:#}"))?;
    let sent = after[counters::TUN_FWD as usize] - before[counters::TUN_FWD as usize];
    if sent == 2 && matches!(action, XDP_TX | XDP_REDIRECT) {
        Ok(())
    } else {
        Err(format!(
            "a TUN flow gave {} and moved tun_fwd by {sent} (want 2)",
            action_name(action)
        ))
    }
}

struct CaseSpec {
    name: &'static str,
    prog: &'static str,
    frame: Vec<u8>,
    ifindex: u32,
    counter: Option<u32>,
    wrapped: bool,
    anchor: &'static str,
}

pub fn run(opts: &Opts, progress: &Progress, sec: &mut Section) -> Result<()> {
    let repeat: u32 = opts.pick(100_000, 1_000_000);
    let runs: usize = opts.pick(3, 7);
    let singles: usize = opts.pick(20_000, 200_000);
    sec.intro = format!(
        "Every case runs through `BPF_PROG_TEST_RUN` inside a namespace whose links have fixed \
         MACs and permanent neighbours, so `bpf_fib_lookup` succeeds as on a real director. \
         Repeat cases: {runs} runs of {} repeats each, cases interleaved, median reported. \
         Times are the kernel's own per-repeat figure (`duration`, whole ns), which times only \
         the loop around the program. Frames are {FRAME_LEN} bytes. \
         In this mode XDP_TX and XDP_REDIRECT are only verdicts: nothing is transmitted, for \
         the baselines as for the director.",
        group(repeat as i64)
    );
    progress.step("building the fixture namespace");
    let sizes = Sizes {
        max_conns: 1 << 20,
        ..Sizes::default()
    };
    let fx = fixture("bp", sizes)?;
    progress.step("opening the NAT and DR flows");
    let nat_action = fx.enter(|| open_flow(&fx, (CLIENT, CLIENT_PORT), NAT_PORT))??;
    let dr_action = fx.enter(|| open_flow(&fx, (CLIENT, CLIENT_PORT), DR_PORT))??;
    progress.step("trying TUN");
    let tunnel = try_tunnel(&fx);

    let mut specs = vec![
        CaseSpec {
            name: "XDP_DROP (baseline)",
            prog: "bench_drop",
            frame: ack_to((CLIENT, CLIENT_PORT), NAT_PORT),
            ifindex: fx.link_index("ext0"),
            counter: None,
            wrapped: false,
            anchor: ANCHOR_DROP,
        },
        CaseSpec {
            name: "MAC swap + XDP_TX (baseline)",
            prog: "bench_swap",
            frame: ack_to((CLIENT, CLIENT_PORT), NAT_PORT),
            ifindex: fx.link_index("ext0"),
            counter: None,
            wrapped: false,
            anchor: ANCHOR_SWAP,
        },
        CaseSpec {
            name: "benchmark wrapper alone (subtracted)",
            prog: "bench_overhead",
            frame: ack_to((CLIENT, CLIENT_PORT), NAT_PORT),
            ifindex: fx.link_index("ext0"),
            counter: None,
            wrapped: false,
            anchor: "",
        },
        CaseSpec {
            name: "NAT established (client → VIP)",
            prog: "director_bench",
            frame: ack_to((CLIENT, CLIENT_PORT), NAT_PORT),
            ifindex: fx.link_index("ext0"),
            counter: Some(counters::NAT_FWD),
            wrapped: true,
            anchor: ANCHOR_KATRAN_EST,
        },
        CaseSpec {
            name: "NAT reply (real server → client)",
            prog: "director_bench",
            frame: nat_reply((CLIENT, CLIENT_PORT)),
            ifindex: fx.link_index("int0"),
            counter: Some(counters::NAT_REPLY),
            wrapped: true,
            anchor: "",
        },
        CaseSpec {
            name: "DR established",
            prog: "director_bench",
            frame: ack_to((CLIENT, CLIENT_PORT), DR_PORT),
            ifindex: fx.link_index("ext0"),
            counter: Some(counters::DR_FWD),
            wrapped: true,
            anchor: ANCHOR_KATRAN_EST,
        },
        CaseSpec {
            name: "not a service (XDP_PASS)",
            prog: "director_bench",
            frame: syn_to((CLIENT, CLIENT_PORT), PASS_PORT),
            ifindex: fx.link_index("ext0"),
            counter: Some(counters::PASS),
            wrapped: true,
            anchor: "",
        },
    ];
    for (prog, what) in crate::fixture::UNITS {
        specs.push(CaseSpec {
            name: what,
            prog,
            frame: ack_to((CLIENT, CLIENT_PORT), NAT_PORT),
            ifindex: fx.link_index("ext0"),
            counter: None,
            wrapped: false,
            anchor: "unit (+ XDP_DROP)",
        });
    }
    if tunnel.is_ok() {
        specs.push(CaseSpec {
            name: "TUN established (ipip)",
            prog: "director_bench",
            frame: ack_to((CLIENT, CLIENT_PORT), TUN_PORT),
            ifindex: fx.link_index("ext0"),
            counter: Some(counters::TUN_FWD),
            wrapped: true,
            anchor: ANCHOR_KATRAN_EST,
        });
    }
    let cases: Vec<RepeatCase> = specs
        .iter()
        .map(|s| {
            Ok(RepeatCase {
                prog: fx.prog(s.prog)?,
                frame: s.frame.clone(),
                ifindex: s.ifindex,
                counter: s.counter,
            })
        })
        .collect::<Result<_>>()?;
    progress.step("repeat cases");
    let results = fx.enter(|| {
        measure_repeats(&fx.pin, &cases, repeat, runs, &|d, t| {
            progress.tick("repeat runs", d, t)
        })
    })??;
    let base = Baseline {
        drop_ns: results[0].kernel(),
        swap_ns: results[1].kernel(),
        wrapper_ns: results[2].kernel(),
    };

    // New flows: each SYN a fresh 5-tuple, so each one is scheduled and
    // inserted; one run each (a repeat would find the flow it just made).
    progress.step("new flows (single runs)");
    let director = fx.prog("director_bench")?;
    let wrapper = fx.prog("bench_overhead")?;
    let before = fx.counters()?;
    let new_flows = fx.enter(|| {
        measure_singles(
            director,
            wrapper,
            fx.link_index("ext0"),
            singles,
            &|i| syn_to(flow_client(i as u32), NAT_PORT),
            &|d, t| progress.tick("new flows", d, t),
        )
    })??;
    let after = fx.counters()?;
    let created = after[counters::NEW_CONN as usize] - before[counters::NEW_CONN as usize];
    progress.step("established flow (single runs, method check)");
    let est_frame = ack_to((CLIENT, CLIENT_PORT), NAT_PORT);
    let est_single = fx.enter(|| {
        measure_singles(
            director,
            wrapper,
            fx.link_index("ext0"),
            singles,
            &|_| est_frame.clone(),
            &|d, t| progress.tick("established singles", d, t),
        )
    })??;

    let mut t = Table::new(&[
        "case",
        "XDP action",
        "measured as",
        "ns/packet",
        "runs: min – max",
        "× MAC swap",
        "raw: case / wrapper ns",
        "reference ns (other machine)",
        "path check",
    ])
    .align(1, Align::Left)
    .align(2, Align::Left)
    .align(7, Align::Left)
    .align(8, Align::Left);
    for (s, r) in specs.iter().zip(&results) {
        // The spread of the runs (each the kernel's per-repeat figure of
        // one call), corrected like the median.
        let spread = {
            let fix = |v: u32| {
                if s.wrapped {
                    base.unwrap(v as f64)
                } else {
                    v as f64
                }
            };
            match (r.kernel_ns.iter().min(), r.kernel_ns.iter().max()) {
                (Some(&lo), Some(&hi)) => format!("{} – {}", fmt_ns(fix(lo)), fmt_ns(fix(hi))),
                _ => "–".to_owned(),
            }
        };
        let ns = if s.wrapped {
            base.unwrap(r.kernel())
        } else {
            r.kernel()
        };
        let measured = if s.wrapped {
            "repeats, `director_bench`"
        } else {
            "repeats"
        };
        let raw = if s.wrapped {
            format!("{} / {}", fmt_ns(r.kernel()), fmt_ns(base.wrapper_ns))
        } else {
            fmt_ns(r.kernel())
        };
        let check = match (r.counter_ok, r.stable) {
            (_, false) => "verdict changed between runs".to_owned(),
            (Some(true), _) => format!("{} moved by every repeat", counter_name(s.counter)),
            (Some(false), _) => format!("{} did NOT move by every repeat", counter_name(s.counter)),
            (None, _) => String::new(),
        };
        let ratio = if s.prog == "bench_overhead" {
            "–".to_owned()
        } else {
            fmt_ratio_of(ns, base.swap_ns)
        };
        t.row([
            s.name.to_owned(),
            action_name(r.action).to_owned(),
            measured.to_owned(),
            fmt_ns(ns),
            spread,
            ratio,
            raw,
            s.anchor.to_owned(),
            check,
        ]);
    }
    if let Err(why) = &tunnel {
        let why = short_error(why);
        t.row([
            "TUN established (ipip)".to_owned(),
            "–".to_owned(),
            "not landed".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
            String::new(),
            ANCHOR_KATRAN_EST.to_owned(),
            why,
        ]);
    }
    // The embryonic table fills during the single runs (nothing completes
    // the handshakes): below half full a new flow is the ordinary insert,
    // from half full on it is marked short-lived (pressure), and once
    // full each insert evicts the oldest embryonic entry (a SYN flood's
    // regime). Each regime gets its own row.
    let max_emb = sizes.max_embryonic as usize;
    let room = new_flows.part(0..max_emb / 2);
    let full = new_flows.part(max_emb + max_emb / 8..singles);
    let mut new_rows = vec![(
        "NAT new flow (SYN, scheduled + inserted), all runs".to_owned(),
        &new_flows,
        ANCHOR_KATRAN_NEW,
        format!(
            "new_conn moved by {} of {}",
            group(created as i64),
            group(singles as i64)
        ),
    )];
    new_rows.push((
        format!(
            "… of which the first {} (embryonic table under half full)",
            group(room.prog_ns.len() as i64)
        ),
        &room,
        ANCHOR_KATRAN_NEW,
        "the ordinary insert".to_owned(),
    ));
    if !full.prog_ns.is_empty() {
        new_rows.push((
            format!(
                "… of which the last {} (table full: each insert evicts)",
                group(full.prog_ns.len() as i64)
            ),
            &full,
            ANCHOR_KATRAN_NEW,
            "a SYN flood's regime".to_owned(),
        ));
    }
    for (name, r, anchor, check) in new_rows.into_iter().chain([(
        "NAT established, single runs (method check)".to_owned(),
        &est_single,
        ANCHOR_KATRAN_EST,
        "compare with the repeat row".to_owned(),
    )]) {
        let ns = base.unwrap_net(r.net());
        t.row([
            name,
            r.actions_text(),
            format!(
                "{} single runs, each minus a wrapper single run",
                group(r.prog_ns.len() as i64)
            ),
            fmt_ns(ns),
            "–".to_owned(),
            fmt_ratio_of(ns, base.swap_ns),
            format!(
                "{} / {}",
                fmt_ns(crate::stats::median_u32(&r.prog_ns).unwrap_or(f64::NAN)),
                fmt_ns(crate::stats::median_u32(&r.wrapper_ns).unwrap_or(f64::NAN))
            ),
            anchor.to_owned(),
            check,
        ]);
    }
    sec.tables.push(t);
    sec.note(format!(
        "`director_bench` saves the first 64 bytes of the frame, runs the whole director, undoes \
         any head adjustment and restores the bytes, so every repeat sees the same input; \
         `bench_overhead` is that wrapper around nothing ({} ns here). The ns/packet of a \
         director row is raw − wrapper + XDP_DROP ({} ns): the director as if it ran \
         unwrapped in the same loop, which is how the reference figures were measured. Ratios are \
         to the MAC-swap baseline ({} ns).",
        fmt_ns(base.wrapper_ns),
        fmt_ns(base.drop_ns),
        fmt_ns(base.swap_ns)
    ));
    sec.note(xlated_note(&fx)?);
    let drop_runs = &results[0];
    let fixed_ms: Vec<f64> = drop_runs
        .wall_ns
        .iter()
        .zip(&drop_runs.kernel_ns)
        .map(|(w, k)| (w - *k as f64) * repeat as f64 / 1e6)
        .collect();
    sec.note(format!(
        "Each `BPF_PROG_TEST_RUN` call also costs about {} ms outside the timed loop here (the \
         call's wall time minus repeats × the kernel's figure, XDP_DROP case: buffer set-up and, \
         for repeated XDP runs, switching the kernel's XDP dispatcher to the program and back). \
         It is not part of any figure above; it is why wall-clock time divided by the repeats \
         would overstate every case.",
        crate::stats::median(&fixed_ms).map_or("?".to_owned(), |m| format!("{m:.1}"))
    ));
    sec.note(
        "New flows cannot be repeated: the first run creates the connection and every later \
         repeat would find it (the conntrack cannot be restored from inside the program). So \
         each new-flow sample is one `BPF_PROG_TEST_RUN` call with a fresh 5-tuple (client \
         10.100.x.y:port → VIP:80, SYN), timed by the kernel, immediately followed by a single \
         run of the wrapper on the same frame; the row shows median(director) − \
         median(wrapper) + XDP_DROP. Single-run times include the kernel timer's own cost in \
         both terms, which cancels; the second single-run row measures the established flow \
         the same way, so it can be compared with the repeat row above.",
    );
    sec.note(format!(
        "Verdicts: the NAT and DR flows were opened with the director's own SYN and ACK \
         ({} and {}); NAT forwards redirect to the internal link, the one-armed DR real server \
         sits on the client's LAN (XDP_TX).",
        action_name(nat_action),
        action_name(dr_action)
    ));
    if let Err(why) = tunnel {
        sec.note(format!("TUN: not landed here ({}).", short_error(&why)));
    }
    drop(fx);
    Ok(())
}

pub fn counter_name(c: Option<u32>) -> &'static str {
    c.and_then(|i| counters::NAMES.get(i as usize).copied())
        .unwrap_or("")
}

/// The verifier's translated size of the production `director` and of the
/// benchmark object's `director_bench` (the same library code inside the
/// wrapper) and `bench_overhead` (the wrapper alone): the difference of
/// the last two should be the first, so any drift between the measured
/// code and the shipped code shows.
fn xlated_note(fx: &crate::fixture::Fixture) -> Result<String> {
    let insns = |name: &str| -> Result<u32> {
        let info = fx.prog(name)?.info()?;
        Ok(info.size_translated().unwrap_or(0) / 8)
    };
    let (prod, bench, wrapper) = (
        insns("director")?,
        insns("director_bench")?,
        insns("bench_overhead")?,
    );
    Ok(format!(
        "Verifier-translated instructions (`xlated`): production `director` {prod}; \
         `director_bench` {bench}, `bench_overhead` {wrapper} (the wrapper alone), so the \
         benchmarked director is {} instructions against the production one's {prod}.",
        bench.saturating_sub(wrapper)
    ))
}
