//! Section 3: live packets. A generator in the kernel (BPF_PROG_TEST_RUN
//! with BPF_F_TEST_XDP_LIVE_FRAMES, one thread per core) transmits frames
//! from one end of a veth pair; the director (or a plain XDP_TX/XDP_DROP
//! program) runs natively on the other end and forwards them, by XDP_TX
//! back to the generator's link or by redirect to a sink's link.
//!
//! ```text
//!  gen ns                 dir ns                          sink ns
//!  g0 (bench_drop) ◄──► d0 [target] 192.168.47.128   d1 ──► s0 (bench_drop)
//!   generator: live frames      │ NAT: redirect d0 → d1 ───┘
//!                               └ DR / MAC swap: XDP_TX back to g0
//! ```

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    programs::{Xdp, XdpMode},
    Ebpf,
};
use lvs_common::counters;
use lvs_lab::{
    packet::{mac_str, Mac},
    Lab, Netns,
};

use crate::{
    fixture::{action_name, prog, read_counters, test_run, test_run_live, XDP_REDIRECT, XDP_TX},
    frames::*,
    report::{Align, Section, Table},
    stats::{fmt_mpps, fmt_ns, fmt_ratio_of, median},
    sysinfo::{self, parse_ethtool_stats, sum_queues},
    Opts, Progress,
};
use lvs::{
    loader::Sizes,
    model::{Method, Proto, RealServer, Scheduler, ServiceAddr, VirtualService},
    tables::Tables,
    testbed::Director,
};

const GEN_MAC: Mac = [0x02, 0, 0, 0, 0x99, 0x01];
const SINK_MAC: Mac = [0x02, 0, 0, 0, 0x99, 0x02];
/// Frames per BPF_PROG_TEST_RUN call of the generator.
const CALL_FRAMES: u32 = 1 << 18;
/// Frames per live batch (the kernel's default, NAPI's weight).
const BATCH: u32 = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Target {
    Drop,
    Swap,
    DirectorDr,
    DirectorNat,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Drop => "XDP_DROP (`bench_drop`)",
            Target::Swap => "MAC swap + XDP_TX (`bench_swap`)",
            Target::DirectorDr => "director, DR established",
            Target::DirectorNat => "director, NAT established",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Target::Drop => "dropped on d0",
            Target::Swap => "XDP_TX back to g0",
            Target::DirectorDr => "XDP_TX back to g0 (real server's MAC)",
            Target::DirectorNat => "redirect d0 → d1 → s0",
        }
    }
    /// Where forwarded frames arrive: (namespace role, device).
    fn sink(self) -> Option<(&'static str, &'static str)> {
        match self {
            Target::Drop => None,
            Target::Swap | Target::DirectorDr => Some(("gen", "g0")),
            Target::DirectorNat => Some(("sink", "s0")),
        }
    }
    fn port(self) -> u16 {
        match self {
            Target::DirectorDr => DR_PORT,
            _ => NAT_PORT,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Sample {
    pub(crate) offered_pps: f64,
    pub(crate) processed_pps: f64,
    pub(crate) delivered_pps: Option<f64>,
    pub(crate) forwarded_counter: Option<u64>,
    pub(crate) processed: u64,
}

pub(crate) struct Live {
    gen: Netns,
    pub(crate) dir: Netns,
    pub(crate) sink: Netns,
    pub(crate) director: Director,
    base: Ebpf,
    g0: u32,
    pub(crate) pin: std::path::PathBuf,
    // Last: removes the namespaces.
    pub(crate) lab: Lab,
}

pub(crate) fn veth(
    lab: &Lab,
    a: &Netns,
    a_dev: &str,
    b: &Netns,
    b_dev: &str,
    queues: usize,
) -> Result<()> {
    let q = queues.to_string();
    lvs_lab::check_output(
        std::process::Command::new("ip").args([
            "link",
            "add",
            "name",
            a_dev,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            b_dev,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            b.name(),
        ]),
        lvs_lab::RUN_TIMEOUT,
    )
    .with_context(|| format!("veth {a_dev}/{b_dev} in lab {}", lab.prefix()))?;
    Ok(())
}

impl Live {
    /// The lab with the director's maps sized `sizes`.
    pub(crate) fn new(queues: usize, sizes: Sizes) -> Result<Live> {
        let lab = Lab::new("bl")?;
        let gen = lab.ns("gen")?;
        let dir = lab.ns("dir")?;
        let sink = lab.ns("sink")?;
        veth(&lab, &gen, "g0", &dir, "d0", queues)?;
        veth(&lab, &dir, "d1", &sink, "s0", queues)?;
        gen.sh(&format!("ip link set g0 address {} up", mac_str(&GEN_MAC)))?;
        sink.sh(&format!("ip link set s0 address {} up", mac_str(&SINK_MAC)))?;
        dir.sh(&format!(
            "ip link set d0 address {ext} up\n\
             ip link set d1 address {int} up\n\
             ip addr add 192.168.47.128/24 dev d0\n\
             ip addr add 192.168.211.128/24 dev d1\n\
             ip neigh replace {CLIENT} lladdr {gen} dev d0 nud permanent\n\
             ip neigh replace {DR_RS} lladdr {gen} dev d0 nud permanent\n\
             ip neigh replace {NAT_RS} lladdr {sink} dev d1 nud permanent\n\
             sysctl -qw net.ipv4.ip_forward=1\n",
            ext = mac_str(&DIR_EXT_MAC),
            int = mac_str(&DIR_INT_MAC),
            gen = mac_str(&GEN_MAC),
            sink = mac_str(&SINK_MAC),
        ))?;
        let g0 = gen.ifindex("g0")?;
        let pin = lab.pin_dir()?;
        let director = Director::load(&pin, sizes, Default::default())?;
        dir.enter(|| director.sync_link_macs())??;
        let base = crate::fixture::load_bench_object(&pin)?;
        let mut t = Tables::open(&pin)?;
        let mut snap = t.snapshot()?;
        let svc = |port, rs: std::net::Ipv4Addr, rport, m| {
            let mut v = VirtualService::new(
                ServiceAddr {
                    proto: Proto::Tcp,
                    addr: VIP.into(),
                    port,
                },
                Scheduler::Rr,
            );
            v.reals.push(RealServer::new(rs.into(), rport, m, 1));
            v
        };
        snap.services = vec![
            svc(NAT_PORT, NAT_RS, NAT_RS_PORT, Method::Masq),
            svc(DR_PORT, DR_RS, DR_PORT, Method::Route),
        ];
        t.commit(&snap)?;
        drop(t);
        let mut live = Live {
            gen,
            dir,
            sink,
            director,
            base,
            g0,
            pin,
            lab,
        };
        // The receivers of forwarded frames: veth only takes XDP frames
        // when the receiving end runs XDP.
        live.attach_base("bench_drop", "gen", "g0")?;
        live.attach_base("bench_drop", "sink", "s0")?;
        Ok(live)
    }

    fn ns(&self, role: &str) -> &Netns {
        match role {
            "gen" => &self.gen,
            "sink" => &self.sink,
            _ => &self.dir,
        }
    }

    fn attach_base(&mut self, prog: &str, role: &str, dev: &str) -> Result<()> {
        let ns = self.ns(role).clone();
        let p: &mut Xdp = self
            .base
            .program_mut(prog)
            .ok_or_else(|| anyhow!("no {prog}"))?
            .try_into()?;
        ns.enter(|| p.attach(dev, XdpMode::Driver).map(drop))?
            .with_context(|| format!("attaching {prog} to {dev}"))
    }

    /// Opens one NAT and one DR flow per generator thread (client ports
    /// 40000, 40001, …) with the director's own SYN and ACK: like flows
    /// spread over a NIC's queues, each CPU has its own.
    pub(crate) fn open_flows(&self, threads: usize) -> Result<()> {
        let p = self.director.prog("director")?;
        let d0 = self.dir.ifindex("d0")?;
        for (port, t) in [NAT_PORT, DR_PORT]
            .into_iter()
            .flat_map(|p| (0..threads as u16).map(move |t| (p, t)))
        {
            for frame in [
                syn_to((CLIENT, CLIENT_PORT + t), port),
                ack_to((CLIENT, CLIENT_PORT + t), port),
            ] {
                let a = self
                    .dir
                    .enter(|| test_run(p, &frame, d0, 1, false))??
                    .action;
                if !matches!(a, XDP_TX | XDP_REDIRECT) {
                    bail!("opening the flow to port {port}: {}", action_name(a));
                }
            }
        }
        Ok(())
    }

    fn rx_packets(&self, role: &str, dev: &str) -> Result<u64> {
        let out = self.ns(role).run(&["ethtool", "-S", dev])?;
        Ok(sum_queues(&parse_ethtool_stats(&out), "rx", "xdp_packets"))
    }

    fn target_prog(&mut self, target: Target) -> Result<&mut Xdp> {
        let (obj, name) = match target {
            Target::Drop => (&mut self.base, "bench_drop"),
            Target::Swap => (&mut self.base, "bench_swap"),
            // Both need the restoring wrapper: NAT rewrites addresses, and
            // DR, as every method, decrements the TTL, so a recycled frame
            // would come back one hop older each round (and at TTL 1 be
            // answered with time exceeded instead of forwarded).
            Target::DirectorDr => (&mut self.base, "director_bench"),
            Target::DirectorNat => (&mut self.base, "director_bench"),
        };
        Ok(obj
            .program_mut(name)
            .ok_or_else(|| anyhow!("no {name}"))?
            .try_into()?)
    }

    /// Attaches the target on d0, runs the generator for `secs` with
    /// `threads` threads, detaches.
    pub(crate) fn measure(&mut self, target: Target, threads: usize, secs: f64) -> Result<Sample> {
        let dir = self.dir.clone();
        let p = self.target_prog(target)?;
        let id = dir
            .enter(|| p.attach("d0", XdpMode::Driver))?
            .with_context(|| format!("attaching {} to d0", target.name()))?;
        let result = self.generate(target, threads, secs);
        self.target_prog(target)?.detach(id)?;
        result
    }

    fn generate(&self, target: Target, threads: usize, secs: f64) -> Result<Sample> {
        let gen_prog = prog(&self.base, "bench_tx")?;
        // One flow per thread.
        let frames: Vec<Vec<u8>> = (0..threads as u16)
            .map(|t| ack_to((CLIENT, CLIENT_PORT + t), target.port()))
            .collect();
        let sink_before = match target.sink() {
            Some((role, dev)) => Some(self.rx_packets(role, dev)?),
            None => None,
        };
        let d0_before = self.rx_packets("dir", "d0")?;
        let c_before = read_counters(&self.pin)?;
        let sent = AtomicU64::new(0);
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let cpus = sysinfo::cpu_count();
        let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (gen, sent, frame) = (&self.gen, &sent, &frames[t]);
                    s.spawn(move || -> Result<()> {
                        gen.enter(|| -> Result<()> {
                            sysinfo::pin_to_cpu(t % cpus);
                            while Instant::now() < deadline && !lvs_lab::interrupt::requested() {
                                test_run_live(gen_prog, frame, self.g0, CALL_FRAMES, BATCH)
                                    .context("live BPF_PROG_TEST_RUN")?;
                                sent.fetch_add(CALL_FRAMES as u64, Ordering::Relaxed);
                            }
                            Ok(())
                        })?
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| match h.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some(anyhow!("generator thread panicked")),
                })
                .collect()
        });
        let wall = start.elapsed().as_secs_f64();
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        lvs_lab::interrupt::check()?;
        // Let the last NAPI polls finish before reading counters.
        std::thread::sleep(Duration::from_millis(50));
        let processed = self.rx_packets("dir", "d0")? - d0_before;
        let delivered = match (target.sink(), sink_before) {
            (Some((role, dev)), Some(b)) => Some(self.rx_packets(role, dev)? - b),
            _ => None,
        };
        let c_after = read_counters(&self.pin)?;
        let fwd = |i: u32| c_after[i as usize] - c_before[i as usize];
        let forwarded_counter = match target {
            Target::DirectorDr => Some(fwd(counters::DR_FWD)),
            Target::DirectorNat => Some(fwd(counters::NAT_FWD)),
            _ => None,
        };
        Ok(Sample {
            offered_pps: sent.load(Ordering::Relaxed) as f64 / wall,
            processed_pps: processed as f64 / wall,
            delivered_pps: delivered.map(|d| d as f64 / wall),
            forwarded_counter,
            processed,
        })
    }
}

/// One run of established NAT traffic, with or without a SYN flood beside it.
#[derive(Clone, Debug, Default)]
struct FloodSample {
    /// Established frames the director forwarded (`nat_fwd` less the
    /// flood's, each of which is a `new_conn` forwarded too), per second.
    established_pps: f64,
    /// Flood SYNs that reached the director (`new_conn`), per second.
    flood_pps: f64,
    /// Flood frames the generator sent, per second.
    flood_offered_pps: f64,
}

impl Live {
    /// The director (`director_bench`) on d0; one thread sends the NAT flow
    /// of thread 0 (`bench_tx`), and with `flood` a second one SYNs from
    /// random sources and ports (`lvs::floodgen`) to the same service, both
    /// out of g0, each pinned to its own core.
    fn measure_flood(&mut self, flood: bool, secs: f64) -> Result<FloodSample> {
        let dir = self.dir.clone();
        let p = self.target_prog(Target::DirectorNat)?;
        let id = dir
            .enter(|| p.attach("d0", XdpMode::Driver))?
            .context("attaching the director to d0")?;
        let result = self.generate_flood(flood, secs);
        self.target_prog(Target::DirectorNat)?.detach(id)?;
        result
    }

    fn generate_flood(&self, flood: bool, secs: f64) -> Result<FloodSample> {
        let est_prog = prog(&self.base, "bench_tx")?;
        let est = ack_to((CLIENT, CLIENT_PORT), NAT_PORT);
        let gen = lvs::floodgen::Generator::load(
            &syn_to((CLIENT, CLIENT_PORT), NAT_PORT),
            lvs::floodgen::Sources {
                addr: std::net::Ipv4Addr::new(10, 0, 0, 0),
                addr_bits: 24,
                port: 1024,
                port_bits: 15,
            },
        )?;
        let flood_sent = AtomicU64::new(0);
        let c_before = read_counters(&self.pin)?;
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let cpus = sysinfo::cpu_count();
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let mut handles = vec![s.spawn(|| -> Result<()> {
                self.gen.enter(|| -> Result<()> {
                    sysinfo::pin_to_cpu(0);
                    while Instant::now() < deadline && !lvs_lab::interrupt::requested() {
                        test_run_live(est_prog, &est, self.g0, CALL_FRAMES, BATCH)
                            .context("live BPF_PROG_TEST_RUN")?;
                    }
                    Ok(())
                })?
            })];
            if flood {
                handles.push(s.spawn(|| -> Result<()> {
                    self.gen.enter(|| -> Result<()> {
                        sysinfo::pin_to_cpu(1 % cpus);
                        while Instant::now() < deadline && !lvs_lab::interrupt::requested() {
                            gen.send(self.g0, CALL_FRAMES)?;
                            flood_sent.fetch_add(CALL_FRAMES as u64, Ordering::Relaxed);
                        }
                        Ok(())
                    })?
                }));
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("generator panicked")))
                })
                .collect()
        });
        let wall = start.elapsed().as_secs_f64();
        for r in results {
            r?;
        }
        lvs_lab::interrupt::check()?;
        std::thread::sleep(Duration::from_millis(50));
        let c_after = read_counters(&self.pin)?;
        let d = |i: u32| c_after[i as usize] - c_before[i as usize];
        let new = d(counters::NEW_CONN);
        Ok(FloodSample {
            established_pps: d(counters::NAT_FWD).saturating_sub(new) as f64 / wall,
            flood_pps: new as f64 / wall,
            flood_offered_pps: flood_sent.load(Ordering::Relaxed) as f64 / wall,
        })
    }
}

/// The SYN-flood table: established NAT forwarding alone and beside a
/// flood of new connections, side by side.
fn flood_table(live: &mut Live, rounds: usize, secs: f64, progress: &Progress) -> Result<Table> {
    let mut alone = Vec::new();
    let mut during = Vec::new();
    for round in 0..rounds {
        progress.step(&format!(
            "round {}/{rounds}: SYN flood beside NAT",
            round + 1
        ));
        alone.push(live.measure_flood(false, secs)?);
        during.push(live.measure_flood(true, secs)?);
    }
    let med = |v: &[FloodSample], f: &dyn Fn(&FloodSample) -> f64| -> f64 {
        median(&v.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let base = med(&alone, &|s| s.established_pps);
    let mut t = Table::new(&[
        "established NAT flow",
        "established forwarded Mpps",
        "× without flood",
        "flood offered Mpps",
        "flood at the director Mpps",
    ])
    .align(0, Align::Left);
    for (name, v) in [("alone", &alone), ("beside a SYN flood", &during)] {
        let flood = !std::ptr::eq(v, &alone);
        t.row([
            name.to_owned(),
            fmt_mpps(med(v, &|s| s.established_pps)),
            fmt_ratio_of(med(v, &|s| s.established_pps), base),
            if flood {
                fmt_mpps(med(v, &|s| s.flood_offered_pps))
            } else {
                "–".to_owned()
            },
            if flood {
                fmt_mpps(med(v, &|s| s.flood_pps))
            } else {
                "–".to_owned()
            },
        ]);
    }
    Ok(t)
}

pub fn run(opts: &Opts, progress: &Progress, sec: &mut Section) -> Result<()> {
    let cpus = sysinfo::cpu_count();
    let thread_counts: Vec<usize> = if opts.quick || cpus == 1 {
        vec![cpus]
    } else {
        vec![1, cpus]
    };
    let secs = opts.pick(1.0, 3.0);
    let rounds = opts.pick(1, 3);
    sec.intro = format!(
        "A generator in the kernel — `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`, \
         batches of {BATCH}, one thread pinned per core — transmits 64-byte frames (ACKs of \
         an established flow, one flow per thread, as a NIC's RSS would spread them) from g0 \
         into a veth pair; the program under test runs in \
         native mode on the other end, d0, in the director's namespace. Forwarded frames go \
         back to g0 (XDP_TX) or are redirected to d1 and arrive on s0; g0 and s0 run \
         `bench_drop` so veth accepts them. \"Processed\" counts frames d0's program ran on \
         (`ethtool -S` xdp_packets of d0), \"delivered\" frames that reached g0 or s0. \
         {rounds} round(s) of {secs} s per row; medians."
    );
    progress.step("building the veth lab");
    let mut live = Live::new(cpus.max(1), Sizes::default())?;
    live.open_flows(*thread_counts.iter().max().unwrap_or(&1))?;
    let targets = [
        Target::Drop,
        Target::Swap,
        Target::DirectorDr,
        Target::DirectorNat,
    ];
    let mut samples: BTreeMap<(usize, usize), Vec<Sample>> = BTreeMap::new();
    for round in 0..rounds {
        for &threads in &thread_counts {
            for (i, &target) in targets.iter().enumerate() {
                progress.step(&format!(
                    "round {}/{rounds}: {} with {threads} thread(s)",
                    round + 1,
                    target.name()
                ));
                let s = live.measure(target, threads, secs)?;
                samples.entry((threads, i)).or_default().push(s);
            }
        }
    }
    let med = |v: &[Sample], f: &dyn Fn(&Sample) -> f64| -> f64 {
        median(&v.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let mut t = Table::new(&[
        "program on d0",
        "path",
        "threads",
        "offered Mpps",
        "processed Mpps",
        "delivered Mpps",
        "× XDP_TX",
        "ns/packet per core",
        "forward counter",
    ])
    .align(1, Align::Left)
    .align(8, Align::Left);
    for &threads in &thread_counts {
        let base = med(&samples[&(threads, 1)], &|s| s.processed_pps);
        for (i, &target) in targets.iter().enumerate() {
            let v = &samples[&(threads, i)];
            let processed = med(v, &|s| s.processed_pps);
            let delivered = target
                .sink()
                .map(|_| med(v, &|s| s.delivered_pps.unwrap_or(f64::NAN)));
            let counter = match target {
                Target::DirectorDr | Target::DirectorNat => {
                    let last = v.last().unwrap();
                    format!(
                        "{}: {} of {} processed",
                        if target == Target::DirectorDr {
                            "dr_fwd"
                        } else {
                            "nat_fwd"
                        },
                        crate::stats::group(last.forwarded_counter.unwrap_or(0) as i64),
                        crate::stats::group(last.processed as i64)
                    )
                }
                _ => String::new(),
            };
            t.row([
                target.name().to_owned(),
                target.path().to_owned(),
                threads.to_string(),
                fmt_mpps(med(v, &|s| s.offered_pps)),
                fmt_mpps(processed),
                delivered.map_or("–".to_owned(), fmt_mpps),
                fmt_ratio_of(processed, base),
                fmt_ns(threads as f64 * 1e9 / processed),
                counter,
            ]);
        }
    }
    sec.tables.push(t);
    sec.tables
        .push(flood_table(&mut live, rounds, secs, progress)?);
    sec.note(
        "What this measures: on veth the receiving end's NAPI poll runs in the softirq that the \
         generator's own flush raises, on the same CPU. So each thread's rate is 1 / (generator \
         + program on d0 + receiver) per packet, and \"ns/packet per core\" is that sum; the \
         director's own share is its difference to the XDP_TX row. There is no NIC here: no DMA, \
         no descriptor rings, no wire — the absolute Mpps are not line rates, only the ratios \
         carry over.",
    );
    sec.note(
        "The DR and NAT rows run `director_bench` (the same code, then the frame's first 64 \
         bytes restored) because live-frame pages are recycled within a call without being \
         re-initialised: a NAT-rewritten page would come back addressed to the real server, \
         and a DR one (the director decrements the TTL on every method, as IPVS) one hop older \
         each round. The restore adds the wrapper's cost (section 1's wrapper row minus \
         XDP_DROP) to both rows. The generator is `bench_tx` (XDP_TX, frame unchanged), so \
         every frame reaches d0 addressed to its MAC, as the director requires.",
    );
    sec.note(
        "\"Offered\" counts frames the generator's calls completed. Frames veth cannot queue \
         (its ring is full) are dropped before d0's program and show up as offered − processed.",
    );
    sec.note(
        "The SYN-flood table: one thread sends the established NAT flow (as the NAT row), \
         pinned to core 0; beside it a second, pinned to core 1, runs `lvs::floodgen`'s \
         generator (live frames, each a SYN from a random 10.0.0.0/8 source and port, checksums \
         updated) to the same service out of g0. \"Flood at the director\" is `new_conn`'s \
         rate, \"established forwarded\" `nat_fwd` less it (every flood SYN is forwarded \
         too, into the embryonic table, which evicts only embryonic entries).",
    );
    drop(live);
    Ok(())
}
