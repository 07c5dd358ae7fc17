//! The BPF_PROG_TEST_RUN fixture of sections 1 and 2: the shared
//! namespace fixture (`lvs_lab::xdpns::XdpNs`) built from the benchmark's
//! plan, carrying the director (`lvs::testbed::Director`) with the
//! benchmark wrappers loaded and the baseline object. Programs run inside
//! the namespace (the FIB lookups are the namespace's).

use std::path::Path;

use anyhow::{bail, Context, Result};
use aya::{
    maps::{Array, HashMap, Map, MapData},
    programs::Xdp,
    Ebpf,
};
use lvs::{
    loader::Sizes,
    model::{Method, Proto, RealServer, Scheduler, ServiceAddr, VirtualService},
    tables::{self, names},
    testbed::{self, Director},
};
pub use lvs::{
    progtest::{test_run, test_run_live, xdp_md, RunOut},
    stats::read_counters,
    testbed::{load_prog, prog},
};
use lvs_common::{Conn, FlowKey, Real, Service, ServiceEntry, ServiceKey, GEN_CURRENT};
use lvs_lab::xdpns::{Plan, XdpNs};

use crate::{frames::*, sysinfo};

pub const XDP_ABORTED: u32 = lvs_common::xdp::ABORTED;
pub const XDP_DROP: u32 = lvs_common::xdp::DROP;
pub const XDP_PASS: u32 = lvs_common::xdp::PASS;
pub const XDP_TX: u32 = lvs_common::xdp::TX;
pub const XDP_REDIRECT: u32 = lvs_common::xdp::REDIRECT;

pub fn action_name(a: u32) -> &'static str {
    match a {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "?",
    }
}

/// The benchmark wrappers around the director: `director_bench` saves the
/// frame's first [`FRAME_LEN`] bytes, runs the director and restores them
/// (so every repeat sees the same input); `bench_overhead` does the same
/// around nothing, the wrapper's own cost.
pub const WRAPPERS: [&str; 2] = ["director_bench", "bench_overhead"];

/// The unit-cost programs of the benchmark object: (program, what it does
/// once on top of XDP_DROP).
pub const UNITS: [(&str, &str); 9] = [
    ("unit_ktime", "bpf_ktime_get_ns"),
    ("unit_ktime_coarse", "bpf_ktime_get_coarse_ns"),
    ("unit_jiffies", "bpf_jiffies64 (inlined)"),
    ("unit_hash_miss", "hash lookup, 40-byte key, miss"),
    ("unit_lru_hit", "LRU hash lookup, 40-byte key, hit"),
    (
        "unit_lru_insert",
        "LRU hash insert of a new 40-byte key (evicting once full)",
    ),
    (
        "unit_lru_insert_room",
        "LRU hash insert + delete, table with room",
    ),
    (
        "unit_lru_pcpu_insert_room",
        "LRU hash (per-CPU lists) insert + delete, table with room",
    ),
    (
        "unit_hash_insert_room",
        "plain hash insert + delete, table with room",
    ),
];

/// Dependent loads per run of the benchmark object's `unit_walk` (its
/// `WALK_STEPS`), through a cycle of 2^20 cache lines.
pub const WALK_STEPS: u32 = 16;
pub const WALK_LINES: u32 = 1 << 20;

/// ns per dependent load that misses every cache: `unit_walk` (after
/// `unit_walk_fill` linked its lines) minus XDP_DROP, per step.
pub fn miss_latency(fx: &Fixture, base: &Baseline, repeat: u32, runs: usize) -> Result<f64> {
    let frame = crate::frames::ack_to((crate::frames::CLIENT, 1), 80);
    let ifindex = fx.link_index("ext0");
    fx.enter(|| test_run(fx.prog("unit_walk_fill")?, &frame, ifindex, 1, false))??;
    let cases = [RepeatCase {
        prog: fx.prog("unit_walk")?,
        frame,
        ifindex,
        counter: None,
    }];
    let r = fx.enter(|| measure_repeats(&fx.pin, &cases, repeat, runs, &|_, _| {}))??;
    Ok((r[0].kernel() - base.drop_ns) / WALK_STEPS as f64)
}

/// The benchmark object (lvs-ebpf's `bin/bench.rs`: the director's own
/// library code inside the restoring wrappers, and the baselines), its
/// pinned maps opened from the director's pin directory `pin`, so the
/// wrappers run on the tables the fixture fills.
pub fn load_bench_object(pin: &Path) -> Result<Ebpf> {
    let mut base = aya::EbpfLoader::new()
        .default_map_pin_directory(pin)
        .load(crate::BENCH_OBJ)
        .context("loading the benchmark object")?;
    for name in WRAPPERS
        .iter()
        .chain(&[
            "bench_drop",
            "bench_swap",
            "bench_tx",
            "unit_walk_fill",
            "unit_walk",
        ])
        .chain(UNITS.iter().map(|(p, _)| p))
    {
        load_prog(&mut base, name)?;
    }
    Ok(base)
}

/// Per-packet time of a repeat run from its wall time.
pub fn wall_ns_per(r: &RunOut, repeat: u32) -> f64 {
    r.wall.as_nanos() as f64 / repeat.max(1) as f64
}

/// Bytes the kernel charges for a pinned map (fdinfo `memlock`).
pub fn map_memlock(pin: &Path, name: &str) -> Option<u64> {
    use std::os::fd::{AsFd, AsRawFd};
    let m = MapData::from_pin(pin.join(name)).ok()?;
    sysinfo::fd_memlock(m.fd().as_fd().as_raw_fd())
}

/// The benchmark's namespace: the director's two links, `ext0`
/// (192.168.47.128/24, the VIP) and `int0` (192.168.211.128/24 and
/// 10.211.0.128/16 for the large real-server sets), permanent neighbours
/// for the client, the DR real server and the NAT and TUN real servers,
/// and a route for the scale runs' client flows (10.100.0.0/16 via the
/// client's router).
pub fn plan() -> Plan {
    Plan::default()
        .link("ext0", "ext1", DIR_EXT_MAC, &["192.168.47.128/24"])
        .link(
            "int0",
            "int1",
            DIR_INT_MAC,
            &["192.168.211.128/24", "10.211.0.128/16"],
        )
        .neighbour(CLIENT, CLIENT_MAC, "ext0")
        .neighbour(DR_RS, DR_RS_MAC, "ext0")
        .neighbour(NAT_RS, RS_MAC, "int0")
        .neighbour(TUN_RS, RS_MAC, "int0")
        .route("10.100.0.0/16 via 192.168.47.1")
}

/// What the benchmark loads into the namespace: the director (with the
/// wrappers) and the baseline object (`bench_drop`, `bench_swap`).
pub struct Loaded {
    pub dir: Director,
    pub base: Ebpf,
}

impl std::ops::Deref for Loaded {
    type Target = Director;
    fn deref(&self) -> &Director {
        &self.dir
    }
}

/// The fixture: `XdpNs` derefs to [`Loaded`], which derefs to the
/// director (services, counters).
pub type Fixture = XdpNs<Loaded>;

/// The namespace, the director loaded with `sizes`, the benchmark
/// programs, and the services: NAT on VIP:80 (→ 192.168.211.129:8080)
/// and DR on VIP:81 (→ 192.168.47.129, same LAN as the client).
pub fn fixture(tag: &str, sizes: Sizes) -> Result<Fixture> {
    let fx = XdpNs::new(tag, &plan(), |pin| {
        let dir = Director::load(pin, sizes, Default::default())?;
        let base = load_bench_object(pin)?;
        Ok(Loaded { dir, base })
    })?;
    // The links' MACs, as `lvs load` writes them: frames to another MAC
    // are passed.
    fx.enter(|| fx.dir.sync_link_macs())??;
    let mut nat = VirtualService::new(
        ServiceAddr {
            proto: Proto::Tcp,
            addr: VIP.into(),
            port: NAT_PORT,
        },
        Scheduler::Rr,
    );
    nat.reals
        .push(RealServer::new(NAT_RS.into(), NAT_RS_PORT, Method::Masq, 1));
    let mut dr = VirtualService::new(
        ServiceAddr {
            proto: Proto::Tcp,
            addr: VIP.into(),
            port: DR_PORT,
        },
        Scheduler::Rr,
    );
    dr.reals
        .push(RealServer::new(DR_RS.into(), DR_PORT, Method::Route, 1));
    fx.set_services(vec![nat, dr])?;
    Ok(fx)
}

impl Loaded {
    /// A program of the director or the baseline object.
    pub fn prog(&self, name: &str) -> Result<&Xdp> {
        self.dir
            .prog(name)
            .or_else(|_| testbed::prog(&self.base, name))
    }

    pub fn map_memlock(&self, name: &str) -> Option<u64> {
        map_memlock(&self.pin, name)
    }

    pub fn conns(&self) -> Result<HashMap<MapData, FlowKey, Conn>> {
        Ok(HashMap::try_from(Map::LruHashMap(MapData::from_pin(
            self.pin.join(names::CONNS),
        )?))?)
    }

    pub fn replies(&self) -> Result<HashMap<MapData, FlowKey, FlowKey>> {
        Ok(HashMap::try_from(Map::LruHashMap(MapData::from_pin(
            self.pin.join(names::REPLIES),
        )?))?)
    }

    pub fn services_map(&self) -> Result<HashMap<MapData, ServiceKey, ServiceEntry>> {
        Ok(HashMap::try_from(Map::HashMap(MapData::from_pin(
            self.pin.join(names::SERVICES),
        )?))?)
    }

    pub fn reals_map(&self) -> Result<Array<MapData, Real>> {
        Ok(Array::try_from(Map::Array(MapData::from_pin(
            self.pin.join(names::REALS),
        )?))?)
    }

    /// The published generation.
    pub fn generation(&self) -> Result<u64> {
        let a: Array<MapData, u64> = Array::try_from(Map::Array(MapData::from_pin(
            self.pin.join(names::GENERATION),
        )?))?;
        Ok(a.get(&GEN_CURRENT, 0)?)
    }

    /// The service entry (its published copy) and its first real server's
    /// slot, as the data path sees them.
    pub fn service_entry(&self, key: &ServiceAddr) -> Result<(ServiceKey, Service, u32, Real)> {
        let k = tables::service_key(key);
        let svc = *self
            .services_map()?
            .get(&k, 0)
            .with_context(|| format!("service {key:?} not in SERVICES"))?
            .view(self.generation()?);
        let dests: Array<MapData, u32> =
            Array::try_from(Map::Array(MapData::from_pin(self.pin.join(names::DESTS))?))?;
        let idx = dests.get(&svc.dests_off, 0)?;
        let real = self.reals_map()?.get(&idx, 0)?;
        Ok((k, svc, idx, real))
    }
}

/// Opens a flow through the director: its SYN, then an ACK on `ext0` (the
/// connection becomes ESTABLISHED). Must run inside the namespace.
pub fn open_flow(fx: &Fixture, client: (std::net::Ipv4Addr, u16), port: u16) -> Result<u32> {
    let p = fx.prog("director")?;
    let ext = fx.link_index("ext0");
    let a = test_run(p, &syn_to(client, port), ext, 1, false)?.action;
    let b = test_run(p, &ack_to(client, port), ext, 1, false)?.action;
    if a != b {
        bail!(
            "flow to port {port}: SYN gave {}, ACK gave {}",
            action_name(a),
            action_name(b)
        );
    }
    Ok(b)
}

/// One case of a repeat measurement.
pub struct RepeatCase<'a> {
    pub prog: &'a Xdp,
    pub frame: Vec<u8>,
    pub ifindex: u32,
    /// A director counter every repeat must bump (checks the path taken).
    pub counter: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct RepeatResult {
    /// Per-packet wall time of each run (ns).
    pub wall_ns: Vec<f64>,
    /// The kernel's per-repeat figure of each run (integer ns).
    pub kernel_ns: Vec<u32>,
    pub action: u32,
    /// Whether every run returned the same action.
    pub stable: bool,
    /// The counter moved by exactly the number of repeats (None: no counter).
    pub counter_ok: Option<bool>,
}

impl RepeatResult {
    pub fn wall(&self) -> f64 {
        crate::stats::median(&self.wall_ns).unwrap_or(f64::NAN)
    }
    pub fn kernel(&self) -> f64 {
        crate::stats::median_u32(&self.kernel_ns).unwrap_or(f64::NAN)
    }
}

/// Runs every case `runs` times with `repeat` repeats, cases interleaved so
/// that drift (frequency, other load) spreads over all of them. Call inside
/// the namespace. `tick` is called after each run with (done, total).
pub fn measure_repeats(
    pin: &Path,
    cases: &[RepeatCase],
    repeat: u32,
    runs: usize,
    tick: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<RepeatResult>> {
    let mut res: Vec<RepeatResult> = cases
        .iter()
        .map(|_| RepeatResult {
            stable: true,
            ..Default::default()
        })
        .collect();
    let total = runs * cases.len();
    for r in 0..runs {
        for (i, c) in cases.iter().enumerate() {
            lvs_lab::interrupt::check()?;
            let before = match c.counter {
                Some(_) => Some(read_counters(pin)?),
                None => None,
            };
            let out = test_run(c.prog, &c.frame, c.ifindex, repeat, false)?;
            let rr = &mut res[i];
            if r == 0 {
                rr.action = out.action;
            } else if rr.action != out.action {
                rr.stable = false;
            }
            rr.wall_ns.push(wall_ns_per(&out, repeat));
            rr.kernel_ns.push(out.kernel_ns);
            if let (Some(idx), Some(before)) = (c.counter, before) {
                let after = read_counters(pin)?;
                let moved = after[idx as usize] - before[idx as usize] == repeat as u64;
                rr.counter_ok = Some(rr.counter_ok.unwrap_or(true) && moved);
            }
            tick(r * cases.len() + i + 1, total);
        }
    }
    Ok(res)
}

/// What [`measure_singles`] saw.
pub struct SingleResult {
    pub prog_ns: Vec<u32>,
    pub wrapper_ns: Vec<u32>,
    /// Runs per returned action.
    pub actions: std::collections::BTreeMap<u32, usize>,
}

impl SingleResult {
    /// Median of (prog − wrapper) medians: the program's own cost.
    pub fn net(&self) -> f64 {
        crate::stats::median_u32(&self.prog_ns).unwrap_or(f64::NAN)
            - crate::stats::median_u32(&self.wrapper_ns).unwrap_or(f64::NAN)
    }

    /// The runs in `range` alone (the actions are the whole run's).
    pub fn part(&self, range: std::ops::Range<usize>) -> SingleResult {
        let end = range.end.min(self.prog_ns.len());
        let start = range.start.min(end);
        SingleResult {
            prog_ns: self.prog_ns[start..end].to_vec(),
            wrapper_ns: self.wrapper_ns[start..end].to_vec(),
            actions: self.actions.clone(),
        }
    }

    pub fn main_action(&self) -> u32 {
        self.actions
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or(XDP_ABORTED, |(a, _)| *a)
    }

    /// "XDP_REDIRECT" or "XDP_REDIRECT (19 998), XDP_PASS (2)".
    pub fn actions_text(&self) -> String {
        if self.actions.len() == 1 {
            return action_name(self.main_action()).to_owned();
        }
        self.actions
            .iter()
            .map(|(a, n)| format!("{} ({})", action_name(*a), crate::stats::group(*n as i64)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Single runs (repeat = 1) of `prog` on `n` frames, each followed by a
/// single run of `wrapper` on the same frame: the kernel times one run
/// with the same timer overhead in both, so the difference is the
/// program's own work. Call inside the namespace.
pub fn measure_singles(
    prog: &Xdp,
    wrapper: &Xdp,
    ifindex: u32,
    n: usize,
    frame: &(dyn Fn(usize) -> Vec<u8> + Sync),
    tick: &(dyn Fn(usize, usize) + Sync),
) -> Result<SingleResult> {
    let mut r = SingleResult {
        prog_ns: Vec::with_capacity(n),
        wrapper_ns: Vec::with_capacity(n),
        actions: Default::default(),
    };
    for i in 0..n {
        if i.is_multiple_of(1024) {
            lvs_lab::interrupt::check()?;
            tick(i, n);
        }
        let f = frame(i);
        let out = test_run(prog, &f, ifindex, 1, false)?;
        *r.actions.entry(out.action).or_default() += 1;
        r.prog_ns.push(out.kernel_ns);
        r.wrapper_ns
            .push(test_run(wrapper, &f, ifindex, 1, false)?.kernel_ns);
    }
    tick(n, n);
    Ok(r)
}

/// The baselines every director figure is related to (repeat medians),
/// measured in the same fixture and run.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    pub drop_ns: f64,
    pub swap_ns: f64,
    pub wrapper_ns: f64,
}

impl Baseline {
    /// A wrapped director figure as the director alone would cost in the
    /// same loop: raw − wrapper + the empty program's cost (DROP).
    pub fn unwrap(&self, raw: f64) -> f64 {
        raw - self.wrapper_ns + self.drop_ns
    }

    /// Same for a single-run difference (director − wrapper).
    pub fn unwrap_net(&self, net: f64) -> f64 {
        net + self.drop_ns
    }
}

/// Measures [`Baseline`] inside the namespace.
pub fn measure_baseline(fx: &Fixture, repeat: u32, runs: usize) -> Result<Baseline> {
    let frame = ack_to((CLIENT, CLIENT_PORT), NAT_PORT);
    let cases: Vec<RepeatCase> = ["bench_drop", "bench_swap", "bench_overhead"]
        .iter()
        .map(|n| {
            Ok(RepeatCase {
                prog: fx.prog(n)?,
                frame: frame.clone(),
                ifindex: fx.link_index("ext0"),
                counter: None,
            })
        })
        .collect::<Result<_>>()?;
    let r = fx.enter(|| measure_repeats(&fx.pin, &cases, repeat, runs, &|_, _| {}))??;
    Ok(Baseline {
        drop_ns: r[0].kernel(),
        swap_ns: r[1].kernel(),
        wrapper_ns: r[2].kernel(),
    })
}
