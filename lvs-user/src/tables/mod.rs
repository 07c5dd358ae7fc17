//! The pinned maps as one table store, shared by `lvs` and `lvsadm`.
//!
//! A change is computed against the snapshot read under the directory lock
//! and written in an order that never exposes half a service to the data
//! path: real servers first, then the member list and scheduler table (in
//! fresh regions), then the service entry that points at them; removals the
//! other way round.

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues},
    util::nr_cpus,
};
use lvs_common::{
    Config, Conn, FlowKey, Real, RealConns, Service, ServiceKey, Stats, AF_INET, AF_INET6,
    CONN_F_DEAD, CONN_STATE_MASK, REAL_F_IN_USE, REAL_F_MEMBER, SVC_F_DELETED, SVC_F_ONEPACKET,
    SVC_F_PERSISTENT, TABLE_EMPTY,
};

use crate::{
    model::{
        ConnEntry, Method, Persistence, Proto, RealServer, ServiceAddr, Snapshot, Timeouts,
        VirtualService, STATE_NAMES,
    },
    schedtab,
};

/// Default pin directory, overridden by `LVS_PIN_PATH` and `--pin-path`.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/lvs";

/// How long `lvsadm` waits for another one holding the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Names of the maps as pinned; the loader creates exactly these.
pub mod names {
    pub const SERVICES: &str = "SERVICES";
    pub const REALS: &str = "REALS";
    pub const DESTS: &str = "DESTS";
    pub const SCHED_TABLE: &str = "SCHED_TABLE";
    pub const SCHED_STATE: &str = "SCHED_STATE";
    pub const CONNS: &str = "CONNS";
    pub const REPLIES: &str = "REPLIES";
    pub const REAL_CONNS: &str = "REAL_CONNS";
    pub const SVC_STATS: &str = "SVC_STATS";
    pub const REAL_STATS: &str = "REAL_STATS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const CONFIG: &str = "CONFIG";
    pub const PERSIST: &str = "PERSIST";
    pub const LBLC: &str = "LBLC";
    pub const NEIGH_MISS: &str = "NEIGH_MISS";
    pub const ALL: [&str; 15] = [
        SERVICES,
        REALS,
        DESTS,
        SCHED_TABLE,
        SCHED_STATE,
        CONNS,
        REPLIES,
        REAL_CONNS,
        SVC_STATS,
        REAL_STATS,
        COUNTERS,
        CONFIG,
        PERSIST,
        LBLC,
        NEIGH_MISS,
    ];
}

/// `--pin-path` if given, else `LVS_PIN_PATH`, else the default.
pub fn pin_path(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    match std::env::var_os("LVS_PIN_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PIN_PATH),
    }
}

/// Raw network-order words of an address, as the maps hold it.
pub fn addr_words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v4) => [u32::from_ne_bytes(v4.octets()), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

pub fn words_addr(w: [u32; 4], family: u8) -> IpAddr {
    if family == AF_INET6 {
        let mut o = [0u8; 16];
        for i in 0..4 {
            o[i * 4..i * 4 + 4].copy_from_slice(&w[i].to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::from(w[0].to_ne_bytes()))
    }
}

/// Network-order port as the maps hold it.
pub fn port_raw(p: u16) -> u16 {
    u16::from_ne_bytes(p.to_be_bytes())
}

pub fn raw_port(p: u16) -> u16 {
    u16::from_be_bytes(p.to_ne_bytes())
}

fn family_of(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

pub fn service_key(s: &ServiceAddr) -> ServiceKey {
    ServiceKey {
        addr: addr_words(s.addr),
        port: port_raw(s.port),
        proto: s.proto.code(),
        family: family_of(s.addr),
    }
}

fn open_map(dir: &Path, name: &str) -> Result<MapData> {
    let p = dir.join(name);
    MapData::from_pin(&p).with_context(|| {
        format!(
            "cannot open {} (is `lvs load` running with --pin-path {}?)",
            p.display(),
            dir.display()
        )
    })
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where one service's data sits in the maps, as last read.
#[derive(Clone, Debug)]
struct Placed {
    value: Service,
    /// Real indices in member order.
    reals: Vec<u32>,
}

pub struct Tables {
    _lock: File,
    dir: PathBuf,
    services: HashMap<MapData, ServiceKey, Service>,
    reals: Array<MapData, Real>,
    dests: Array<MapData, u32>,
    sched_table: Array<MapData, u32>,
    sched_state: Array<MapData, u64>,
    real_conns: Array<MapData, RealConns>,
    svc_stats: PerCpuArray<MapData, Stats>,
    real_stats: PerCpuArray<MapData, Stats>,
    config: Array<MapData, Config>,
    /// From the last snapshot: service key -> placement.
    placed: StdHashMap<ServiceKey, Placed>,
    /// From the last snapshot: deleted services still serving connections.
    tombstones: StdHashMap<ServiceKey, Service>,
    /// From the last snapshot: every real slot.
    slots: Vec<Real>,
}

/// Takes the pin directory's lock if it is free at once (the sweeper
/// skips its table edits while an `lvsadm` runs).
pub fn try_lock_dir(dir: &Path) -> Option<File> {
    let f = File::open(dir).ok()?;
    (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(f)
}

fn lock_dir(dir: &Path) -> Result<File> {
    let f = File::open(dir).with_context(|| {
        format!(
            "cannot open pin directory {} (is `lvs load` running?)",
            dir.display()
        )
    })?;
    let start = Instant::now();
    loop {
        // flock works on a directory fd, and bpffs cannot hold a lock file.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        if start.elapsed() > LOCK_WAIT {
            bail!("timed out waiting for the lock on {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn zeros<T: aya::Pod + Default>() -> Result<PerCpuValues<T>> {
    let n = nr_cpus().map_err(|(_, e)| anyhow!("cannot count CPUs: {e}"))?;
    Ok(PerCpuValues::try_from(vec![T::default(); n])?)
}

fn sum_stats(v: &PerCpuValues<Stats>) -> Stats {
    v.iter().fold(Stats::default(), |a, s| Stats {
        conns: a.conns + s.conns,
        inpkts: a.inpkts + s.inpkts,
        outpkts: a.outpkts + s.outpkts,
        inbytes: a.inbytes + s.inbytes,
        outbytes: a.outbytes + s.outbytes,
    })
}

/// Regions of a shared array (member lists, scheduler tables) taken during
/// one commit: new ones go after the last used region while there is room
/// (amortised O(1) for a bulk restore), else into the first gap.
struct Regions {
    used: Vec<(u32, u32)>,
    end: u32,
    cap: u32,
}

impl Regions {
    fn new(used: Vec<(u32, u32)>, cap: u32) -> Regions {
        let end = used.iter().map(|&(o, l)| o + l).max().unwrap_or(0);
        Regions { used, end, cap }
    }

    fn alloc(&mut self, len: u32) -> Option<u32> {
        let off = if self.cap.checked_sub(self.end)? >= len {
            self.end
        } else {
            find_gap(&mut self.used, len, self.cap)?
        };
        self.used.push((off, len));
        self.end = self.end.max(off + len);
        Some(off)
    }
}

/// First gap of `len` slots in `[0, cap)` not overlapping `used`.
fn find_gap(used: &mut [(u32, u32)], len: u32, cap: u32) -> Option<u32> {
    used.sort_unstable();
    let mut at = 0u32;
    for &(off, l) in used.iter() {
        if off >= at && off - at >= len {
            return Some(at);
        }
        at = at.max(off + l);
    }
    (cap.checked_sub(at)? >= len).then_some(at)
}

impl Tables {
    /// Opens the maps pinned under `dir` and takes the directory's lock, so
    /// concurrent `lvsadm` runs are serialized.
    pub fn open(dir: &Path) -> Result<Tables> {
        let lock = lock_dir(dir)?;
        Ok(Tables {
            _lock: lock,
            dir: dir.to_path_buf(),
            services: HashMap::try_from(Map::HashMap(open_map(dir, names::SERVICES)?))?,
            reals: Array::try_from(Map::Array(open_map(dir, names::REALS)?))?,
            dests: Array::try_from(Map::Array(open_map(dir, names::DESTS)?))?,
            sched_table: Array::try_from(Map::Array(open_map(dir, names::SCHED_TABLE)?))?,
            sched_state: Array::try_from(Map::Array(open_map(dir, names::SCHED_STATE)?))?,
            real_conns: Array::try_from(Map::Array(open_map(dir, names::REAL_CONNS)?))?,
            svc_stats: PerCpuArray::try_from(Map::PerCpuArray(open_map(dir, names::SVC_STATS)?))?,
            real_stats: PerCpuArray::try_from(Map::PerCpuArray(open_map(dir, names::REAL_STATS)?))?,
            config: Array::try_from(Map::Array(open_map(dir, names::CONFIG)?))?,
            placed: StdHashMap::new(),
            tombstones: StdHashMap::new(),
            slots: Vec::new(),
        })
    }

    pub fn config(&self) -> Result<Config> {
        Ok(self.config.get(&0, 0)?)
    }

    /// Reads the whole configuration, with counters.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        let cfg = self.config()?;
        self.slots = (0..self.reals.len())
            .map(|i| self.reals.get(&i, 0))
            .collect::<Result<_, _>>()?;
        let mut entries = Vec::new();
        for kv in self.services.iter() {
            let (k, v) = kv?;
            entries.push((k, v));
        }
        entries.sort_by_key(|(_, v)| v.id);
        self.placed.clear();
        self.tombstones.clear();
        let mut services = Vec::new();
        for (k, v) in entries {
            if v.flags & SVC_F_DELETED != 0 {
                self.tombstones.insert(k, v);
                continue;
            }
            let mut idxs = Vec::with_capacity(v.dests_len as usize);
            for i in 0..v.dests_len {
                idxs.push(self.dests.get(&(v.dests_off + i), 0)?);
            }
            let mut reals = Vec::new();
            for &idx in &idxs {
                let r = self
                    .slots
                    .get(idx as usize)
                    .ok_or_else(|| anyhow!("member {idx} out of range"))?;
                let conns = self.real_conns.get(&idx, 0)?;
                reals.push(RealServer {
                    addr: words_addr(r.addr, r.family),
                    port: raw_port(r.port),
                    method: Method::from_code(r.method)
                        .ok_or_else(|| anyhow!("bad method {}", r.method))?,
                    weight: r.weight,
                    u_threshold: r.u_threshold,
                    l_threshold: r.l_threshold,
                    active: conns.active,
                    inactive: conns.inactive,
                    stats: sum_stats(&self.real_stats.get(&idx, 0)?),
                });
            }
            let persistence = (v.flags & SVC_F_PERSISTENT != 0).then(|| Persistence {
                timeout: v.persist_timeout,
                netmask: Ipv4Addr::from(v.netmask[0].to_ne_bytes()),
                v6_prefix: if k.family == AF_INET6 {
                    v.netmask[0] as u8
                } else {
                    128
                },
            });
            services.push(VirtualService {
                key: ServiceAddr {
                    proto: Proto::from_code(k.proto)
                        .ok_or_else(|| anyhow!("bad protocol {}", k.proto))?,
                    addr: words_addr(k.addr, k.family),
                    port: raw_port(k.port),
                },
                sched: crate::model::Scheduler::from_code(v.sched)
                    .ok_or_else(|| anyhow!("bad scheduler code {}", v.sched))?,
                sched_flags: v.flags & !(SVC_F_PERSISTENT | SVC_F_ONEPACKET),
                persistence,
                ops: v.flags & SVC_F_ONEPACKET != 0,
                reals,
                stats: sum_stats(&self.svc_stats.get(&v.id, 0)?),
            });
            self.placed.insert(
                k,
                Placed {
                    value: v,
                    reals: idxs,
                },
            );
        }
        let t = &cfg.timeouts;
        Ok(Snapshot {
            conn_table_size: cfg.conn_table_size,
            timeouts: Timeouts {
                tcp: t[lvs_common::state::ESTABLISHED as usize],
                tcp_fin: t[lvs_common::state::FIN_WAIT as usize],
                udp: t[lvs_common::state::UDP as usize],
            },
            services,
        })
    }

    /// Writes `new`, given that the tables still hold what the last
    /// `snapshot()` returned (the lock guarantees that). Everything that can
    /// fail for lack of room is checked before the first write.
    pub fn commit(&mut self, new: &Snapshot) -> Result<()> {
        let plan = self.plan(new)?;
        self.apply(plan)
    }

    /// The tracked connections, as `lvsadm -L -c` lists them.
    pub fn connections(&mut self) -> Result<Vec<ConnEntry>> {
        if self.slots.is_empty() {
            self.snapshot()?;
        }
        let cfg = self.config()?;
        let conns: HashMap<MapData, FlowKey, Conn> =
            HashMap::try_from(Map::LruHashMap(open_map(&self.dir, names::CONNS)?))?;
        let now = monotonic_ns();
        let mut out = Vec::new();
        for kv in conns.iter() {
            let Ok((k, c)) = kv else { continue };
            if c.st & CONN_F_DEAD != 0 {
                continue;
            }
            let (Some(proto), Some(r)) =
                (Proto::from_code(k.proto), self.slots.get(c.real as usize))
            else {
                continue;
            };
            if r.generation != c.real_generation {
                continue;
            }
            let state = (c.st & CONN_STATE_MASK) as usize;
            let timeout = cfg.timeouts.get(state).copied().unwrap_or(0) as u64 * 1_000_000_000;
            let left = timeout.saturating_sub(now.saturating_sub(c.last_seen));
            let sock = |a: [u32; 4], p: u16| SocketAddr::new(words_addr(a, k.family), raw_port(p));
            out.push(ConnEntry {
                proto,
                state: STATE_NAMES.get(state).copied().unwrap_or("?"),
                expires: left.div_ceil(1_000_000_000) as u32,
                client: sock(k.src, k.sport),
                virtual_addr: sock(k.dst, k.dport),
                real: sock(r.addr, r.port),
            });
        }
        Ok(out)
    }

    /// Zeroes the counters of one service (and its real servers) or of all.
    pub fn zero(&mut self, svc: Option<&ServiceAddr>) -> Result<()> {
        if self.placed.is_empty() {
            self.snapshot()?;
        }
        let keys: Vec<ServiceKey> = match svc {
            Some(s) => {
                let k = service_key(s);
                if !self.placed.contains_key(&k) {
                    bail!("No such service");
                }
                vec![k]
            }
            None => self.placed.keys().copied().collect(),
        };
        for k in keys {
            let p = self.placed[&k].clone();
            self.svc_stats.set(p.value.id, zeros()?, 0)?;
            for idx in p.reals {
                self.real_stats.set(idx, zeros()?, 0)?;
            }
        }
        Ok(())
    }
}

/// One service as it will be written.
struct PlannedService {
    key: ServiceKey,
    value: Service,
    /// (index, entry, freshly allocated) per member.
    reals: Vec<(u32, Real, bool)>,
    dests_changed: bool,
    table: Option<Vec<u32>>,
    new_id: bool,
}

struct Plan {
    services: Vec<PlannedService>,
    removed_services: Vec<ServiceKey>,
    /// Real slots that stop being members (kept in use for their
    /// connections until the slot is reused).
    dropped_reals: Vec<u32>,
    /// Real slots whose whole service went away: freed.
    freed_reals: Vec<u32>,
    timeouts: Timeouts,
}

impl Tables {
    fn plan(&self, new: &Snapshot) -> Result<Plan> {
        let max_services = self.sched_state.len();
        let dests_cap = self.dests.len();
        let table_cap = self.sched_table.len();
        let mut slots = self.slots.clone();
        let new_keys: Vec<ServiceKey> = new.services.iter().map(|s| service_key(&s.key)).collect();
        let kept: HashSet<ServiceKey> = new_keys.iter().copied().collect();
        let removed_services: Vec<ServiceKey> = self
            .placed
            .keys()
            .filter(|k| !kept.contains(k))
            .copied()
            .collect();
        // A deleted service's servers stay in use for its connections (and
        // can be revived by re-adding it); their slots are reclaimed last.
        let mut freed_reals = Vec::new();
        for k in &removed_services {
            for &idx in &self.placed[k].reals {
                freed_reals.push(idx);
                slots[idx as usize].flags = REAL_F_IN_USE;
            }
        }
        // Service ids of services that stay, and of every deleted one, which
        // keeps its id while it may still have connections.
        let mut used_ids: HashSet<u32> = self
            .placed
            .values()
            .map(|p| p.value.id)
            .chain(self.tombstones.values().map(|t| t.id))
            .collect();
        let mut next_id = 0u32;
        let mut dests = Regions::new(
            self.placed
                .values()
                .map(|p| (p.value.dests_off, p.value.dests_len))
                .collect(),
            dests_cap,
        );
        let mut tables = Regions::new(
            self.placed
                .values()
                .map(|p| (p.value.table_off, p.value.table_len))
                .collect(),
            table_cap,
        );
        // Slots of real servers deleted from a service but still serving
        // its connections, by (service, address, port): re-adding the same
        // server revives its slot.
        let mut revivable: StdHashMap<(u32, [u32; 4], u16), u32> = slots
            .iter()
            .enumerate()
            .filter(|(_, r)| r.flags == REAL_F_IN_USE)
            .map(|(i, r)| ((r.svc_id, r.addr, r.port), i as u32))
            .collect();
        // Allocation cursors: a commit of thousands of servers must not
        // rescan the table for each one.
        let mut next_free = 0usize;
        let mut next_reclaim = 0usize;
        let mut dropped_reals: HashSet<u32> = HashSet::new();
        let mut services = Vec::new();
        for (vs, key) in new.services.iter().zip(&new_keys) {
            let old = self.placed.get(key);
            let tomb = self.tombstones.get(key);
            let mut value = old.map(|p| p.value).or(tomb.copied()).unwrap_or_default();
            let new_id = old.is_none();
            // A re-added service takes its old id back, so its servers'
            // slots (and their connections) are revived.
            let revive = old.is_some() || tomb.is_some();
            if new_id && tomb.is_none() {
                while used_ids.contains(&next_id) {
                    next_id += 1;
                }
                if next_id >= max_services {
                    bail!("service table full ({max_services} services; raise `lvs load --max-services`)");
                }
                value.id = next_id;
                used_ids.insert(next_id);
            }
            value.sched = vs.sched.code();
            value.family = key.family;
            value.flags = vs.sched_flags;
            if vs.ops {
                value.flags |= SVC_F_ONEPACKET;
            }
            value.persist_timeout = 0;
            value.netmask = [0; 4];
            if let Some(p) = vs.persistence {
                value.flags |= SVC_F_PERSISTENT;
                value.persist_timeout = p.timeout;
                value.netmask = if key.family == AF_INET6 {
                    [p.v6_prefix as u32, 0, 0, 0]
                } else {
                    [u32::from_ne_bytes(p.netmask.octets()), 0, 0, 0]
                };
            }
            // Members: keep the slots of servers that stay, take free slots
            // (or revive this server's own dropped slot) for new ones.
            let old_reals: Vec<u32> = old.map(|p| p.reals.clone()).unwrap_or_default();
            let mut reals = Vec::new();
            for rs in &vs.reals {
                let want_addr = addr_words(rs.addr);
                let want_port = port_raw(rs.port);
                let same =
                    |r: &Real| r.addr == want_addr && r.port == want_port && r.svc_id == value.id;
                let existing = old_reals
                    .iter()
                    .copied()
                    .find(|&i| same(&slots[i as usize]))
                    .or_else(|| {
                        if !revive {
                            return None;
                        }
                        let i = revivable.remove(&(value.id, want_addr, want_port))?;
                        (slots[i as usize].flags == REAL_F_IN_USE).then_some(i)
                    });
                let (idx, fresh) = match existing {
                    Some(i) => (i, false),
                    None => {
                        // Prefer never-used or freed slots; reclaim dropped
                        // ones (their connections become stale) last.
                        while next_free < slots.len() && slots[next_free].flags != 0 {
                            next_free += 1;
                        }
                        let i = if next_free < slots.len() {
                            next_free
                        } else {
                            while next_reclaim < slots.len()
                                && (slots[next_reclaim].flags != REAL_F_IN_USE
                                    || dropped_reals.contains(&(next_reclaim as u32)))
                            {
                                next_reclaim += 1;
                            }
                            if next_reclaim >= slots.len() {
                                bail!(
                                    "real server table full ({} slots; raise `lvs load --max-reals`)",
                                    slots.len()
                                );
                            }
                            next_reclaim
                        };
                        (i as u32, true)
                    }
                };
                let mut r = slots[idx as usize];
                if fresh {
                    r.generation = r.generation.wrapping_add(1);
                }
                r.addr = want_addr;
                r.port = want_port;
                r.family = family_of(rs.addr);
                r.method = rs.method.code();
                r.flags = REAL_F_IN_USE | REAL_F_MEMBER;
                r.weight = rs.weight;
                r.svc_id = value.id;
                r.u_threshold = rs.u_threshold;
                r.l_threshold = rs.l_threshold;
                slots[idx as usize] = r;
                reals.push((idx, r, fresh));
            }
            for &i in &old_reals {
                if !reals.iter().any(|(j, _, _)| *j == i) {
                    slots[i as usize].flags = REAL_F_IN_USE;
                    dropped_reals.insert(i);
                }
            }
            let idxs: Vec<u32> = reals.iter().map(|(i, _, _)| *i).collect();
            let dests_changed = new_id || idxs != old_reals;
            if dests_changed {
                let len = idxs.len() as u32;
                value.dests_off = dests
                    .alloc(len)
                    .ok_or_else(|| anyhow!("member table full ({dests_cap} slots)"))?;
                value.dests_len = len;
            }
            let members: Vec<schedtab::Member> = reals
                .iter()
                .map(|(_, r, _)| {
                    schedtab::Member::new(words_addr(r.addr, r.family), raw_port(r.port), r.weight)
                })
                .collect();
            let positions = schedtab::table(vs.sched, &members)?;
            let table: Vec<u32> = positions
                .iter()
                .map(|&p| {
                    if p == schedtab::EMPTY {
                        TABLE_EMPTY
                    } else {
                        idxs[p as usize]
                    }
                })
                .collect();
            // The table is a function of the scheduler and the members with
            // their weights: if none changed, neither did it (comparing a
            // Maglev table entry by entry would cost 65 537 lookups).
            let table_same = old.is_some_and(|p| {
                !dests_changed
                    && p.value.sched == value.sched
                    && p.value.table_len as usize == table.len()
                    && reals
                        .iter()
                        .all(|(i, r, _)| self.slots[*i as usize].weight == r.weight)
            });
            let table = if table_same {
                None
            } else {
                let len = table.len() as u32;
                value.table_off = tables.alloc(len).ok_or_else(|| {
                    anyhow!("scheduler table full ({table_cap} entries; raise `lvs load --sched-table-size`)")
                })?;
                value.table_len = len;
                Some(table)
            };
            services.push(PlannedService {
                key: *key,
                value,
                reals,
                dests_changed,
                table,
                new_id,
            });
        }
        Ok(Plan {
            services,
            removed_services,
            dropped_reals: dropped_reals.into_iter().collect(),
            freed_reals,
            timeouts: new.timeouts,
        })
    }

    fn apply(&mut self, plan: Plan) -> Result<()> {
        // Removals first: a deleted service stops scheduling before its
        // slots can be handed to another one. It stays as a member-less
        // tombstone, so its connections keep their real servers.
        for k in &plan.removed_services {
            let mut tomb = self.placed[k].value;
            tomb.flags |= SVC_F_DELETED;
            tomb.dests_len = 0;
            tomb.table_len = 0;
            self.services.insert(k, tomb, 0)?;
        }
        for &i in &plan.freed_reals {
            let mut r = self.reals.get(&i, 0)?;
            r.flags = REAL_F_IN_USE;
            self.reals.set(i, r, 0)?;
        }
        for s in &plan.services {
            for (idx, r, fresh) in &s.reals {
                if *fresh {
                    self.real_conns.set(*idx, RealConns::default(), 0)?;
                    self.real_stats.set(*idx, zeros()?, 0)?;
                }
                self.reals.set(*idx, *r, 0)?;
            }
            if s.dests_changed {
                for (i, (idx, _, _)) in s.reals.iter().enumerate() {
                    self.dests.set(s.value.dests_off + i as u32, *idx, 0)?;
                }
            }
            if let Some(t) = &s.table {
                for (i, idx) in t.iter().enumerate() {
                    self.sched_table
                        .set(s.value.table_off + i as u32, *idx, 0)?;
                }
            }
            if s.new_id {
                self.sched_state.set(s.value.id, 0, 0)?;
                self.svc_stats.set(s.value.id, zeros()?, 0)?;
            }
            self.services.insert(s.key, s.value, 0)?;
        }
        for &i in &plan.dropped_reals {
            let mut r = self.reals.get(&i, 0)?;
            r.flags = REAL_F_IN_USE;
            self.reals.set(i, r, 0)?;
        }
        let mut cfg = self.config()?;
        let t = &mut cfg.timeouts;
        let old = (
            t[lvs_common::state::ESTABLISHED as usize],
            t[lvs_common::state::FIN_WAIT as usize],
            t[lvs_common::state::UDP as usize],
        );
        let new = (plan.timeouts.tcp, plan.timeouts.tcp_fin, plan.timeouts.udp);
        if old != new {
            t[lvs_common::state::ESTABLISHED as usize] = new.0;
            t[lvs_common::state::FIN_WAIT as usize] = new.1;
            t[lvs_common::state::UDP as usize] = new.2;
            self.config.set(0, cfg, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_first_fit_and_bounded() {
        assert_eq!(find_gap(&mut [], 4, 10), Some(0));
        assert_eq!(find_gap(&mut [(0, 3)], 4, 10), Some(3));
        assert_eq!(find_gap(&mut [(5, 2), (0, 3)], 2, 10), Some(3));
        assert_eq!(find_gap(&mut [(5, 2), (0, 3)], 3, 10), Some(7));
        assert_eq!(find_gap(&mut [(5, 2), (0, 3)], 4, 10), None);
        assert_eq!(find_gap(&mut [(0, 0)], 0, 0), Some(0));
    }

    #[test]
    fn regions_append_then_fill_gaps() {
        let mut r = Regions::new(vec![(0, 4), (10, 2)], 16);
        assert_eq!(r.alloc(3), Some(12));
        // No room at the end: the first gap.
        assert_eq!(r.alloc(3), Some(4));
        assert_eq!(r.alloc(1), Some(15));
        assert_eq!(r.alloc(3), Some(7));
        assert_eq!(r.alloc(1), None);
    }

    #[test]
    fn addresses_round_trip_in_network_order() {
        let a: IpAddr = "192.168.47.128".parse().unwrap();
        let w = addr_words(a);
        assert_eq!(w[0].to_ne_bytes(), [192, 168, 47, 128]);
        assert_eq!(words_addr(w, AF_INET), a);
        let b: IpAddr = "fd00::1:2".parse().unwrap();
        assert_eq!(words_addr(addr_words(b), AF_INET6), b);
        assert_eq!(port_raw(80).to_ne_bytes(), [0, 80]);
        assert_eq!(raw_port(port_raw(8080)), 8080);
    }
}
