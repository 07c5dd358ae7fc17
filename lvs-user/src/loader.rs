//! `lvs load` and `lvs pass`: loading the embedded XDP objects, attaching
//! them, pinning the director's maps, and running until a signal (for
//! `lvs load`: sweeping connections, keeping next hops resolved, and
//! keeping the real servers' next hops in `REAL_HOPS`, `hops`).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, Map, MapData},
    programs::{ProgramError, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use aya_log::EbpfLogger;
use lvs_common::{state, Config, Real, REAL_F_MEMBER};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use crate::{
    hops::Hops,
    life::Life,
    neigh::Neighbours,
    sweeper::Sweeper,
    tables::names::{self, progs},
    warn,
};

/// The director and pass-through objects, built by `build.rs`.
pub(crate) static DIRECTOR_OBJ: &[u8] = aya::include_bytes_aligned!(env!("LVS_EBPF_DIRECTOR"));
static PASS_OBJ: &[u8] = aya::include_bytes_aligned!(env!("LVS_EBPF_PASS"));

/// Map sizes; each is an option of `lvs load`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Connections the table holds (what `lvsadm -L` shows as `size=`);
    /// the LRU maps sized from it get room beyond it ([`lru_entries`]).
    pub max_conns: u32,
    pub max_services: u32,
    pub max_reals: u32,
    pub sched_table: u32,
    /// Embryonic connections (handshake not completed) the separate
    /// embryonic table holds before a new one evicts the oldest.
    pub max_embryonic: u32,
    /// What a new connection meeting `max_conns` established ones gets
    /// (`--conn-table-full`; not a size, but fixed with them at load).
    pub table_full: TableFull,
}

/// `--conn-table-full`: see `lvs_common::TABLE_FULL_REFUSE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFull {
    /// Passed to the director's stack (reset), counted `conn_table_full`.
    #[default]
    Refuse,
    /// The LRU evicts the least recently used established connection.
    Evict,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            max_conns: 65536,
            max_services: 1024,
            max_reals: 4096,
            // Room for a dozen Maglev tables of 65 537 entries.
            sched_table: 1 << 20,
            // A quarter of the established table: handshakes last one
            // round trip, established connections minutes.
            max_embryonic: 16384,
            table_full: TableFull::Refuse,
        }
    }
}

#[derive(Clone)]
pub struct LoadOpts {
    pub ifaces: Vec<String>,
    pub mode: XdpMode,
    pub pin_dir: PathBuf,
    pub sizes: Sizes,
    pub debug: bool,
    pub tunnel: TunnelOpts,
    /// `--timeout STATE=SECS` overrides, by state code.
    pub timeouts: Vec<(u8, u32)>,
    /// `--detach-on-exit`: SIGTERM/SIGINT detach the director and remove
    /// its pins (as `lvs unload`), instead of leaving it forwarding.
    pub detach_on_exit: bool,
    /// `--metrics ADDR:PORT`: serve Prometheus text at `/metrics`.
    pub metrics: Option<std::net::SocketAddr>,
    /// `--bgp bird`: announce the VIPs through BIRD (`crate::bgp`).
    pub bgp: Option<crate::bgp::BgpOpts>,
    /// `--config FILE`: keepalived.conf's virtual servers, health-checked
    /// (`crate::health`).
    pub config: Option<PathBuf>,
    /// `--expire-nodest-conn` (with `--config`): a connection of a server
    /// the checker removed ends at its next packet (IPVS's sysctl `=1`).
    pub expire_nodest_conn: bool,
    /// `--rules FILE`: the table at start and on SIGHUP (`crate::rules`).
    pub rules: Option<PathBuf>,
}

/// `--tunnel-source` / `--tunnel-mtu`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TunnelOpts {
    pub source4: Option<std::net::Ipv4Addr>,
    pub source6: Option<std::net::Ipv6Addr>,
    pub mtu: Option<u32>,
}

/// The kernel's `LOCAL_FREE_TARGET` (kernel/bpf/bpf_lru_list.c): how many
/// free entries a CPU takes from an LRU map's global free list at a time.
/// Since 6.16 the kernel takes fewer for small maps (`target_free`, at most
/// this), so this is an upper bound.
pub const LRU_LOCAL_FREE_TARGET: u32 = 128;

/// `max_entries` for an LRU hash map that must hold `live` entries without
/// evicting any, on a machine of `cpus` possible CPUs.
///
/// A common LRU map (without `BPF_F_NO_COMMON_LRU`) hands out entries from
/// per-CPU free lists, each refilled from the global free list with up to
/// [`LRU_LOCAL_FREE_TARGET`] entries; a refill that finds fewer there
/// evicts to make up the difference. So up to that many entries per CPU sit
/// unused in the other CPUs' lists while a CPU evicts, and a table of
/// `live` entries holds only about `live - 128 × CPUs`. One list more
/// covers the refilling CPU itself and the extra entry an update of an
/// existing key takes before it frees the old one.
pub fn lru_entries(live: u32, cpus: u32) -> u32 {
    live.saturating_add(cpus.saturating_add(1).saturating_mul(LRU_LOCAL_FREE_TARGET))
}

/// Possible CPUs (`/sys/devices/system/cpu/possible`): the kernel keeps an
/// LRU free list for each, online or not.
pub fn possible_cpus() -> Result<u32> {
    aya::util::nr_cpus()
        .map(|n| n as u32)
        .map_err(|(what, e)| anyhow!("cannot count the possible CPUs ({what}): {e}"))
}

/// IPVS's default timeouts (seconds) per conntrack state.
pub fn default_timeouts() -> [u32; state::COUNT] {
    let mut t = [60u32; state::COUNT];
    t[state::NONE as usize] = 2;
    t[state::ESTABLISHED as usize] = 900;
    t[state::SYN_SENT as usize] = 120;
    t[state::SYN_RECV as usize] = 60;
    t[state::FIN_WAIT as usize] = 120;
    t[state::TIME_WAIT as usize] = 120;
    t[state::CLOSE as usize] = 10;
    t[state::CLOSE_WAIT as usize] = 60;
    t[state::LAST_ACK as usize] = 30;
    t[state::LISTEN as usize] = 120;
    t[state::SYNACK as usize] = 120;
    t[state::UDP as usize] = 300;
    t
}

pub fn ensure_bpffs(dir: &Path) -> Result<()> {
    ensure_bpffs_mounted(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Fails unless bpffs is mounted (pins under `dir` would land elsewhere).
pub fn ensure_bpffs_mounted(dir: &Path) -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
    {
        bail!(
            "bpffs is not mounted; run `mount -t bpf bpf /sys/fs/bpf` (needed to pin maps at {})",
            dir.display()
        );
    }
    Ok(())
}

/// Turns aya's load error into one message that carries the verifier log.
pub fn explain(e: ProgramError, what: &str) -> anyhow::Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => anyhow!(
            "the kernel rejected the {what} program: {io_error}\nverifier log:\n{verifier_log}"
        ),
        other => anyhow!("cannot load the {what} program: {other}"),
    }
}

/// How often [`load_xdp`] tries a program the verifier gave up on because
/// a signal arrived.
const LOAD_ATTEMPTS: u32 = 5;

/// Loads an XDP program into the kernel. The verifier stops with EAGAIN
/// when a signal is pending for the loading thread (a child's SIGCHLD in a
/// process that handles it, say), and the director takes long enough to
/// verify for that to happen: such a load is tried again, as libbpf does.
pub fn load_xdp(prog: &mut Xdp, what: &str) -> Result<()> {
    let mut attempt = 1;
    loop {
        match prog.load() {
            Ok(()) => return Ok(()),
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < LOAD_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(explain(e, what)),
        }
    }
}

pub fn attach(prog: &mut Xdp, ifaces: &[String], mode: XdpMode) -> Result<()> {
    for ifname in ifaces {
        prog.attach(ifname, mode).map_err(|e| match e {
            ProgramError::UnknownInterface { name } => anyhow!("no such interface: {name}"),
            e => anyhow!("cannot attach XDP to {ifname} ({mode:?} mode): {e}"),
        })?;
    }
    Ok(())
}

/// Runs the logger's reader until the process ends; keeping it alive is
/// also what keeps the log map valid.
fn spawn_logger(bpf: &mut Ebpf) {
    match EbpfLogger::init(bpf) {
        Ok(logger) => {
            tokio::spawn(async move {
                // SAFETY: the logger owns its ring buffer's fd for as long
                // as the AsyncFd holds it.
                let registered = unsafe {
                    AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
                };
                let Ok(mut fd) = registered else {
                    return;
                };
                loop {
                    let Ok(mut guard) = fd.readable_mut().await else {
                        return;
                    };
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            });
        }
        Err(e) => log::warn!("eBPF logs unavailable: {e}"),
    }
}

pub async fn wait_for_signal() -> Result<()> {
    stop_signals()?.await
}

/// SIGTERM/SIGINT, caught from now on (the future only waits for one): a
/// daemon installs them before it says it is ready, or a stop right after
/// READY=1 would kill it by the default action instead of ending it.
pub fn stop_signals() -> Result<impl std::future::Future<Output = Result<()>>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok(())
    })
}

fn write_config(
    bpf: &mut Ebpf,
    sizes: Sizes,
    debug: bool,
    tunnel: TunnelOpts,
    timeouts: &[(u8, u32)],
) -> Result<()> {
    let map = bpf
        .map_mut(names::CONFIG)
        .ok_or_else(|| anyhow!("object has no CONFIG map"))?;
    let mut config: Array<&mut MapData, Config> = Array::try_from(map)?;
    let mut cfg = config.get(&0, 0)?;
    cfg.conn_table_size = sizes.max_conns;
    cfg.max_embryonic = sizes.max_embryonic;
    cfg.conn_table_full = match sizes.table_full {
        TableFull::Refuse => lvs_common::TABLE_FULL_REFUSE,
        TableFull::Evict => lvs_common::TABLE_FULL_EVICT,
    };
    cfg.debug = debug as u32;
    cfg.tunnel_src4 = tunnel.source4.map_or(0, |a| u32::from_ne_bytes(a.octets()));
    cfg.tunnel_src6 = tunnel
        .source6
        .map_or([0; 4], |a| crate::tables::addr_words(a.into()));
    cfg.tunnel_mtu = tunnel.mtu.unwrap_or(0);
    // Taking over pinned maps keeps the timeouts an operator set.
    if cfg.timeouts.iter().all(|&t| t == 0) {
        cfg.timeouts = default_timeouts();
    }
    for &(state, secs) in timeouts {
        cfg.timeouts[state as usize] = secs;
    }
    config.set(0, cfg, 0)?;
    Ok(())
}

/// Keeps the next hops of real servers and of routes out of our links
/// resolved. Routers are next hops for whole networks of clients: they
/// are resolved before any reply needs them.
fn refresh_neighbours(
    bpf: &mut Ebpf,
    opts: &LoadOpts,
    dir: &Path,
    neighbours: &mut Neighbours,
    hops: Option<&Hops>,
) {
    // Warnings of the daemon's tick go through `warn`: the same condition
    // comes back every second.
    let reals = reals_needing_neighbours(dir).unwrap_or_else(|e| {
        warn::warn(&format!("cannot read real servers: {e:#}"));
        Vec::new()
    });
    let misses = neighbour_misses(bpf);
    let addrs: Vec<IpAddr> = crate::neigh::gateways(&opts.ifaces)
        .into_iter()
        .chain(reals)
        .chain(misses.iter().copied())
        .collect();
    for e in neighbours.ensure(&addrs) {
        warn::warn(&format!("{e:#}"));
    }
    if let Some(h) = hops {
        h.missed(&misses);
    }
}

/// The destinations the data path reported since the last look: their
/// neighbours are made sure of, then their real servers' next hops
/// (`REAL_HOPS`) looked at again.
fn handle_misses(bpf: &mut Ebpf, neighbours: &mut Neighbours, hops: Option<&Hops>) {
    let misses = neighbour_misses(bpf);
    for e in neighbours.ensure(&misses) {
        warn::warn(&format!("{e:#}"));
    }
    if let Some(h) = hops {
        h.missed(&misses);
    }
}

/// Destinations the data path could not reach for lack of a neighbour
/// entry since the last tick (taken out of `NEIGH_MISS`).
fn neighbour_misses(bpf: &mut Ebpf) -> Vec<IpAddr> {
    let Some(map) = bpf.map_mut(names::NEIGH_MISS) else {
        return Vec::new();
    };
    let Ok(mut misses) = aya::maps::HashMap::<_, lvs_common::AddrKey, u64>::try_from(map) else {
        return Vec::new();
    };
    let keys: Vec<lvs_common::AddrKey> = misses.keys().filter_map(|k| k.ok()).collect();
    for k in &keys {
        let _ = misses.remove(k);
    }
    keys.iter()
        .map(|k| crate::tables::words_addr(k.addr, k.family))
        .collect()
}

/// Addresses of the real servers that need a resolved neighbour.
fn reals_needing_neighbours(dir: &Path) -> Result<Vec<IpAddr>> {
    let reals: Array<MapData, Real> =
        Array::try_from(Map::Array(MapData::from_pin(dir.join(names::REALS))?))?;
    let mut out = Vec::new();
    for i in 0..reals.len() {
        let r = reals.get(&i, 0)?;
        // TUN too: the outer packet goes to the real server's MAC.
        if r.flags & REAL_F_MEMBER != 0 {
            out.push(crate::tables::words_addr(r.addr, r.family));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `max_entries` of the maps `lvs load` sizes from `s` on a machine of
/// `cpus` possible CPUs (the others keep the object's).
pub fn map_sizes(s: Sizes, cpus: u32) -> [(&'static str, u32); 19] {
    // The connection-sized LRU maps get room for the kernel's per-CPU free
    // lists, so that `max_conns` connections fit; CONFIG keeps `max_conns`.
    // With `--conn-table-full refuse` the data path stops at `max_conns`,
    // so CONNS never evicts.
    let lru = lru_entries(s.max_conns, cpus);
    let embryos = lru_entries(s.max_embryonic, cpus);
    [
        (names::CONNS, lru),
        (names::REPLIES, lru),
        (names::EMBRYOS, embryos),
        (names::EMBRYO_REPLIES, embryos),
        (names::EMBRYO_COUNTS, s.max_reals),
        (names::SERVICES, s.max_services),
        (names::SCHED_STATE, s.max_services),
        (names::SVC_STATS, s.max_services),
        (names::REALS, s.max_reals),
        (names::REAL_CONNS, s.max_reals),
        (names::REAL_STATS, s.max_reals),
        (names::REAL_HOPS, s.max_reals),
        (names::REAL_VIEWS, s.max_reals),
        // Twice the reals: a member list is rewritten into a fresh region
        // before the old one is released.
        (names::DESTS, s.max_reals.saturating_mul(2)),
        (names::SCHED_TABLE, s.sched_table),
        (names::PERSIST, lru),
        (names::LBLC, lru),
        // One entry per service and the totals (`lvs_common::Rate`).
        (names::SVC_RATES, s.max_services.saturating_add(1)),
        (names::REAL_RATES, s.max_reals),
    ]
}

/// Loads the director with its maps pinned under `pin_dir` (taking over
/// maps already pinned there) and writes its configuration; the program is
/// loaded into the kernel but not attached.
pub fn load_director(
    pin_dir: &Path,
    sizes: Sizes,
    debug: bool,
    tunnel: TunnelOpts,
    timeouts: &[(u8, u32)],
) -> Result<Ebpf> {
    ensure_bpffs(pin_dir)?;
    let s = sizes;
    let mut loader = EbpfLoader::new();
    loader.default_map_pin_directory(pin_dir);
    for (name, n) in map_sizes(s, possible_cpus()?) {
        loader.map_max_entries(name, n);
    }
    // The sweeper's own maps, unpinned (not in the layout).
    loader.map_max_entries(names::SWEEP_SEEN, s.max_reals);
    loader.map_max_entries(names::SWEEP_SVCS, s.max_services);
    let build = crate::life::build_id::wanted()?;
    loader.override_global(crate::life::build_id::GLOBAL, &build, true);
    let mut bpf = loader
        .load(DIRECTOR_OBJ)
        .context("cannot load the director object (are you root?)")?;
    write_config(&mut bpf, sizes, debug, tunnel, timeouts)?;
    let prog: &mut Xdp = bpf
        .program_mut(progs::DIRECTOR)
        .ok_or_else(|| anyhow!("object has no {} program", progs::DIRECTOR))?
        .try_into()?;
    load_xdp(prog, progs::DIRECTOR)?;
    for name in [
        progs::CONN_EXPIRE,
        progs::CONN_FIX,
        progs::CONN_SWEEP,
        crate::sync::PROG,
    ] {
        let p: &mut Xdp = bpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("object has no {name} program"))?
            .try_into()?;
        load_xdp(p, name)?;
    }
    Ok(bpf)
}

/// Removes the pins `lvs load` made under `dir`: the links first (each
/// detached at once), the layout record, the maps.
pub fn remove_pins(dir: &Path) {
    for iface in crate::life::links::pinned_ifaces(dir) {
        let pin = crate::life::links::link_pin(dir, &iface);
        if let Err(e) = crate::life::links::detach_pinned(&pin) {
            log::warn!("{e:#}");
            let _ = std::fs::remove_file(pin);
        }
    }
    let _ = std::fs::remove_file(dir.join(names::LAYOUT));
    for name in names::ALL {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_dir(dir);
}

/// `lvs load`: attach the director (or adopt the one pinned at the pin
/// directory) and serve until SIGINT/SIGTERM (see [`crate::life`]).
pub async fn run_load(opts: LoadOpts) -> Result<()> {
    opts.bgp.as_ref().map(crate::bgp::check).transpose()?;
    // A bad rules file or configuration stops the start before anything
    // is loaded.
    let rules = opts
        .rules
        .as_deref()
        .map(crate::rules::Rules::read)
        .transpose()?;
    let ka = opts
        .config
        .as_deref()
        .map(crate::health::load)
        .transpose()?;
    let life = Life::prepare(&opts)?;
    let mut bpf = load_director(
        life.work_dir(),
        opts.sizes,
        opts.debug,
        opts.tunnel,
        &opts.timeouts,
    )?;
    serve(&mut bpf, &opts, life, rules, ka).await
}

async fn serve(
    bpf: &mut Ebpf,
    opts: &LoadOpts,
    mut life: Life,
    rules: Option<crate::rules::Rules>,
    ka: Option<crate::keepalived::KaConfig>,
) -> Result<()> {
    spawn_logger(bpf);
    crate::tables::Tables::open(life.work_dir())
        .and_then(|mut t| t.mark_existing())
        .context("marking the tables' addresses in the address filter")?;
    if let Some(r) = &rules {
        crate::rules::apply_at_boot(life.work_dir(), r)?;
    }
    crate::vlan::sync(bpf).context("reading the VLAN sub-interfaces")?;
    let _monitoring = crate::metrics::start(life.work_dir(), &opts.pin_dir, opts.metrics)?;
    // Before attaching: frames to a MAC the director does not know as the
    // link's are passed, so an empty table would forward nothing.
    let mut link_macs = crate::linkmacs::LinkMacs::default();
    link_macs
        .sync(life.work_dir())
        .context("writing the links' MACs (LINK_MACS)")?;
    let _sync = crate::sync::start(life.work_dir(), &opts.pin_dir, bpf, life.adopting())
        .map_err(|e| log::warn!("connection sync unavailable: {e:#}"))
        .ok();
    let prog: &mut Xdp = bpf
        .program_mut(progs::DIRECTOR)
        .ok_or_else(|| anyhow!("object has no {} program", progs::DIRECTOR))?
        .try_into()?;
    life.attach(prog, opts)?;
    // The configuration's services are in the tables before ready; the
    // checker then runs on a thread of its own.
    let health = crate::health::start_with(opts, ka, life.work_dir())?;
    let mut neighbours = Neighbours::default();
    let mut sweeper = Sweeper::new(&opts.pin_dir);
    // Without it DR and TUN still work through the FIB, if forwarding is
    // on: worth a warning, not a refusal to start. (It holds the maps
    // open: the staging directory's name does not matter after publish.)
    let mut hops = Hops::start(life.work_dir())
        .map_err(|e| {
            log::warn!(
                "real servers' next hops are not kept ({e:#}): DR and TUN need forwarding on"
            )
        })
        .ok();
    // Resolve what is known now before saying we are ready: the first
    // replies must not meet an unresolved next hop.
    refresh_neighbours(bpf, opts, life.work_dir(), &mut neighbours, hops.as_ref());
    // Up to 3 s: a loaded machine can take over a second to answer ND.
    neighbours.wait_resolved(Duration::from_secs(3));
    if let Some(h) = &hops {
        h.sync(Duration::from_secs(1));
    }
    // Every signal's handler is in place before readiness is announced: a
    // SIGHUP or SIGTERM right after READY=1 must not meet the default action.
    let sig = stop_signals()?;
    // With --config, SIGHUP is the health checker's (it re-reads that).
    if opts.config.is_none() {
        crate::rules::spawn_reload(opts.pin_dir.clone(), opts.rules.clone())?;
    }
    life.publish(opts)?;
    let mut bgp = (opts.bgp.clone())
        .map(|b| crate::bgp::start(&opts.pin_dir, &opts.ifaces, b, opts.detach_on_exit))
        .transpose()?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Next hops the data path found missing are resolved sooner.
    let mut misses = tokio::time::interval(Duration::from_millis(200));
    tokio::pin!(sig);
    loop {
        tokio::select! {
            r = &mut sig => { r?; break; }
            _ = misses.tick() => handle_misses(bpf, &mut neighbours, hops.as_ref()),
            _ = tick.tick() => {
                match sweeper.sweep(bpf) {
                    // `lvs stats` counts them all (`evicted`).
                    Ok(s) if s.evicted > 0 => warn::warn_as(
                        "evicted",
                        &format!(
                            "{} connections were evicted from a full connection table \
                             (raise --max-conns; `lvs stats` counts them all)",
                            s.evicted
                        ),
                    ),
                    Ok(_) => {}
                    Err(e) => warn::warn(&format!("sweeper: {e:#}")),
                }
                refresh_neighbours(bpf, opts, &opts.pin_dir, &mut neighbours, hops.as_ref());
                if let Err(e) = crate::vlan::sync(bpf) {
                    warn::warn(&format!("VLAN sub-interfaces: {e:#}"));
                }
                if let Err(e) = link_macs.sync(&opts.pin_dir) {
                    warn::warn(&format!("links' MACs: {e:#}"));
                }
                warn::flush();
            }
        }
    }
    // The checker's status goes first: what follows may take a while.
    drop(health);
    if let Some(h) = &mut hops {
        h.stop();
    }
    // Withdrawn (if asked) before a --detach-on-exit stops forwarding.
    bgp.as_mut().map(crate::bgp::Announcer::stop);
    life.finish(opts, &mut neighbours);
    Ok(())
}

/// `lvs pass`: an XDP_PASS program on the given links until a signal.
pub async fn run_pass(ifaces: Vec<String>, mode: XdpMode) -> Result<()> {
    let mut bpf = Ebpf::load(PASS_OBJ).context("cannot load the pass object (are you root?)")?;
    let prog: &mut Xdp = bpf
        .program_mut("pass")
        .ok_or_else(|| anyhow!("object has no pass program"))?
        .try_into()?;
    load_xdp(prog, "pass")?;
    attach(prog, &ifaces, mode)?;
    let sig = stop_signals()?;
    println!("lvs: pass attached to {}", ifaces.join(", "));
    sig.await
}
