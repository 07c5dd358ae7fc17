//! The pinned maps as one table store, shared by `lvs` and `lvsadm`.
//!
//! A change is a transaction for the data path. The tables hold two
//! generations: every service entry and every real server's view
//! (`REAL_VIEWS`) has a copy per generation, and `GENERATION` says which
//! one is published. A change is computed against the snapshot read under
//! the directory lock (the published generation), written into the other
//! generation's copies and fresh regions, leaving every byte the published
//! generation reads as it was, and then published with one word. Each new
//! connection is scheduled with one generation (see `lvs-ebpf/src/svc.rs`),
//! so it meets the old table or the new one, never a mix, and a change cut
//! short (a killed `lvsadm`) leaves the old one.
//!
//! [`names`] holds the map names, `pins` the pin directory and its lock,
//! `addr` the map encodings of addresses and ports, `plan` the placement
//! of a new configuration (over the `regions` allocator), `txn` the
//! writing and publishing of a plan, and this module the store itself:
//! open, snapshot, commit.

mod addr;
pub mod names;
mod nodest;
mod pins;
mod plan;
mod regions;
mod txn;

use std::{
    collections::HashMap as StdHashMap,
    fs::File,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Result};
use aya::{
    maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues},
    util::nr_cpus,
};
use lvs_common::{
    Config, Conn, FlowKey, Real, RealConns, RealViews, Service, ServiceEntry, ServiceKey, Stats,
    AF_INET6, CONN_F_DEAD, CONN_STATE_MASK, GEN_CURRENT, REAL_F_IN_USE, REAL_F_MEMBER,
    SVC_F_DELETED, SVC_F_ONEPACKET, SVC_F_PERSISTENT,
};

pub use self::{
    addr::{addr_words, port_raw, raw_port, service_key, words_addr},
    pins::{pin_path, try_lock_dir, DEFAULT_PIN_PATH},
    txn::{buriable, published},
};
use self::{
    pins::{lock_dir, open_map},
    plan::Plan,
};
use crate::model::{
    ConnEntry, Method, Persistence, Proto, RealServer, ServiceAddr, Snapshot, Timeouts,
    VirtualService, STATE_NAMES,
};

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

/// No director is pinned at the directory (none runs, or one is still
/// getting ready: its pins appear only once it forwards).
#[derive(Debug)]
pub struct NoDirector(pub PathBuf);

impl std::fmt::Display for NoDirector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no director at {} (is `lvs load --pin-path {}` running?)",
            self.0.display(),
            self.0.display()
        )
    }
}

impl std::error::Error for NoDirector {}

pub struct Tables {
    _lock: File,
    dir: PathBuf,
    services: HashMap<MapData, ServiceKey, ServiceEntry>,
    generation: Array<MapData, u64>,
    reals: Array<MapData, Real>,
    real_views: Array<MapData, RealViews>,
    dests: Array<MapData, u32>,
    sched_table: Array<MapData, u32>,
    sched_state: Array<MapData, u64>,
    real_conns: Array<MapData, RealConns>,
    svc_stats: PerCpuArray<MapData, Stats>,
    real_stats: PerCpuArray<MapData, Stats>,
    config: Array<MapData, Config>,
    addr_filter: Array<MapData, u64>,
    /// From the last snapshot: the published generation.
    gen: u64,
    /// From the last snapshot: every service entry, both copies, as read.
    entries: StdHashMap<ServiceKey, ServiceEntry>,
    /// From the last snapshot: service key -> placement (published copy).
    placed: StdHashMap<ServiceKey, Placed>,
    /// From the last snapshot: entries the published generation has no
    /// service for (deleted services that may still serve connections).
    tombstones: StdHashMap<ServiceKey, Service>,
    /// From the last snapshot: every real slot as the published generation
    /// has it (`REALS`' entry with the published view's weight,
    /// thresholds, method and membership).
    slots: Vec<Real>,
    /// From the last snapshot: `REALS` and `REAL_VIEWS` as read.
    raw_reals: Vec<Real>,
    raw_views: Vec<RealViews>,
    /// Whether the fields above are what the maps hold: set by
    /// `snapshot`, cleared by `commit` (a second commit re-reads first).
    fresh: bool,
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

impl Tables {
    /// Opens the maps pinned under `dir` and takes the directory's lock, so
    /// concurrent `lvsadm` runs, and the sweeper's removal of tombstones,
    /// are serialized.
    pub fn open(dir: &Path) -> Result<Tables> {
        if !dir.join(names::SERVICES).exists() {
            return Err(NoDirector(dir.to_path_buf()).into());
        }
        let lock = lock_dir(dir)?;
        Ok(Tables {
            _lock: lock,
            dir: dir.to_path_buf(),
            services: HashMap::try_from(Map::HashMap(open_map(dir, names::SERVICES)?))?,
            generation: Array::try_from(Map::Array(open_map(dir, names::GENERATION)?))?,
            reals: Array::try_from(Map::Array(open_map(dir, names::REALS)?))?,
            real_views: Array::try_from(Map::Array(open_map(dir, names::REAL_VIEWS)?))?,
            dests: Array::try_from(Map::Array(open_map(dir, names::DESTS)?))?,
            sched_table: Array::try_from(Map::Array(open_map(dir, names::SCHED_TABLE)?))?,
            sched_state: Array::try_from(Map::Array(open_map(dir, names::SCHED_STATE)?))?,
            real_conns: Array::try_from(Map::Array(open_map(dir, names::REAL_CONNS)?))?,
            svc_stats: PerCpuArray::try_from(Map::PerCpuArray(open_map(dir, names::SVC_STATS)?))?,
            real_stats: PerCpuArray::try_from(Map::PerCpuArray(open_map(dir, names::REAL_STATS)?))?,
            config: Array::try_from(Map::Array(open_map(dir, names::CONFIG)?))?,
            addr_filter: Array::try_from(Map::Array(open_map(dir, names::ADDR_FILTER)?))?,
            gen: 0,
            entries: StdHashMap::new(),
            placed: StdHashMap::new(),
            tombstones: StdHashMap::new(),
            slots: Vec::new(),
            raw_reals: Vec::new(),
            raw_views: Vec::new(),
            fresh: false,
        })
    }

    pub fn config(&self) -> Result<Config> {
        Ok(self.config.get(&0, 0)?)
    }

    /// Reads the whole configuration, with counters: the published
    /// generation's table.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        let cfg = self.config()?;
        self.gen = self.generation.get(&GEN_CURRENT, 0)?;
        self.raw_reals = (0..self.reals.len())
            .map(|i| self.reals.get(&i, 0))
            .collect::<Result<_, _>>()?;
        // REAL_VIEWS is read whole only by a commit (`load_views`): a
        // listing needs the published views of members alone.
        self.raw_views.clear();
        self.entries.clear();
        for kv in self.services.iter() {
            let (k, v) = kv?;
            self.entries.insert(k, v);
        }
        let mut entries: Vec<(ServiceKey, Service)> = self
            .entries
            .iter()
            .map(|(k, e)| (*k, *e.view(self.gen)))
            .collect();
        entries.sort_by_key(|(_, v)| v.id);
        self.placed.clear();
        self.tombstones.clear();
        let mut live = Vec::new();
        for (k, v) in entries {
            if v.flags & SVC_F_DELETED != 0 {
                self.tombstones.insert(k, v);
                continue;
            }
            let idxs = (0..v.dests_len)
                .map(|i| self.dests.get(&(v.dests_off + i), 0))
                .collect::<Result<Vec<u32>, _>>()?;
            live.push((k, v, idxs));
        }
        // Each slot as the published generation has it: a member of a
        // published member list with its published view; any other slot is
        // free or held only for connections, whatever a change cut short
        // wrote into it.
        self.slots = self.raw_reals.clone();
        for r in &mut self.slots {
            r.flags &= REAL_F_IN_USE;
        }
        for &idx in live.iter().flat_map(|(_, _, idxs)| idxs) {
            let v = *self.real_views.get(&idx, 0)?.view(self.gen);
            let r = self
                .slots
                .get_mut(idx as usize)
                .ok_or_else(|| anyhow!("member {idx} out of range"))?;
            r.flags = REAL_F_IN_USE | REAL_F_MEMBER;
            r.weight = v.weight;
            r.u_threshold = v.u_threshold;
            r.l_threshold = v.l_threshold;
            r.method = v.method;
        }
        let mut services = Vec::new();
        for (k, v, idxs) in live {
            services.push(self.read_service(&k, &v, &idxs)?);
            self.placed.insert(
                k,
                Placed {
                    value: v,
                    reals: idxs,
                },
            );
        }
        self.fresh = true;
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

    /// Every slot's views as they are now, for a commit's writes.
    pub(super) fn load_views(&mut self) -> Result<()> {
        self.raw_views = (0..self.real_views.len())
            .map(|i| self.real_views.get(&i, 0))
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// One live service as `lvsadm` sees it, from its members' real
    /// indices in member order.
    fn read_service(&self, k: &ServiceKey, v: &Service, idxs: &[u32]) -> Result<VirtualService> {
        let reals = idxs
            .iter()
            .map(|&idx| self.read_real(idx))
            .collect::<Result<Vec<_>>>()?;
        let persistence = (v.flags & SVC_F_PERSISTENT != 0).then(|| Persistence {
            timeout: v.persist_timeout,
            netmask: Ipv4Addr::from(v.netmask[0].to_ne_bytes()),
            v6_prefix: if k.family == AF_INET6 {
                v.netmask[0] as u8
            } else {
                128
            },
        });
        let vs = VirtualService {
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
        };
        Ok(vs)
    }

    /// The member in real slot `idx`, with its counts and counters.
    fn read_real(&self, idx: u32) -> Result<RealServer> {
        let r = self
            .slots
            .get(idx as usize)
            .ok_or_else(|| anyhow!("member {idx} out of range"))?;
        let conns = self.real_conns.get(&idx, 0)?;
        Ok(RealServer {
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
        })
    }

    /// Makes the table `new`, as one change published at once, given that
    /// the tables still hold what the last `snapshot()` returned (the lock
    /// guarantees that; a commit after a commit reads them again first,
    /// its caller's `new` still being the whole table). Everything that can fail for lack of room is
    /// checked before the first write. Deleted services without
    /// connections left by earlier changes are removed first, so their
    /// slots are free for this one.
    pub fn commit(&mut self, new: &Snapshot) -> Result<()> {
        if !self.fresh {
            self.snapshot()?;
        }
        self.fresh = false;
        self.settle()?;
        let plan = self.plan(new)?;
        self.write_and_publish(plan)
    }

    /// The tracked connections, as `lvsadm -L -c` lists them.
    pub fn connections(&mut self) -> Result<Vec<ConnEntry>> {
        if self.slots.is_empty() {
            self.snapshot()?;
        }
        let cfg = self.config()?;
        let now = monotonic_ns();
        let mut out = Vec::new();
        // Established connections, then the embryonic ones (SYN_RECV, new
        // UDP flows), which IPVS lists too.
        for table in [names::CONNS, names::EMBRYOS] {
            let conns: HashMap<MapData, FlowKey, Conn> =
                HashMap::try_from(Map::LruHashMap(open_map(&self.dir, table)?))?;
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
                let timeout =
                    lvs_common::conn_timeout_s(c.st, &cfg.timeouts) as u64 * 1_000_000_000;
                let left = timeout.saturating_sub(now.saturating_sub(c.last_seen));
                let sock =
                    |a: [u32; 4], p: u16| SocketAddr::new(words_addr(a, k.family), raw_port(p));
                out.push(ConnEntry {
                    proto,
                    state: STATE_NAMES.get(state).copied().unwrap_or("?"),
                    expires: left.div_ceil(1_000_000_000) as u32,
                    client: sock(k.src, k.sport),
                    virtual_addr: sock(k.dst, k.dport),
                    real: sock(r.addr, r.port),
                });
            }
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

    /// Writes a plan, in the order the module documentation gives.
    /// Sets the address-filter bits of every VIP and NAT real server of
    /// the plan, before anything is published that the data path could
    /// meet. Bits are only ever added here: a stale bit costs a table
    /// lookup for some unrelated address, a missing one would pass a
    /// service's packets.
    fn mark_addresses(&mut self, plan: &Plan) -> Result<()> {
        let bits: Vec<u32> = plan
            .services
            .iter()
            .flat_map(|s| {
                std::iter::once(lvs_common::hash::addr_bit(&s.key.addr, s.key.port)).chain(
                    s.reals
                        .iter()
                        .filter(|(_, r, _)| r.method == lvs_common::METHOD_MASQ)
                        .map(|(_, r, _)| lvs_common::hash::addr_bit(&r.addr, r.port)),
                )
            })
            .collect();
        self.set_filter_bits(&bits)
    }

    /// Sets the address-filter bits of everything the tables already hold
    /// (services, tombstones, NAT real servers still in use): `lvs load`
    /// runs it before attaching, for tables a director without the filter
    /// left behind.
    pub fn mark_existing(&mut self) -> Result<()> {
        let snap = self.snapshot()?;
        let plan = self.plan(&snap)?;
        self.mark_addresses(&plan)?;
        let mut bits: Vec<u32> = self
            .tombstones
            .keys()
            .map(|k| lvs_common::hash::addr_bit(&k.addr, k.port))
            .collect();
        for r in self.reals.iter().flatten() {
            if r.flags & lvs_common::REAL_F_IN_USE != 0 && r.method == lvs_common::METHOD_MASQ {
                bits.push(lvs_common::hash::addr_bit(&r.addr, r.port));
            }
        }
        self.set_filter_bits(&bits)
    }

    /// Sets `bits` in `ADDR_FILTER`, writing each word once and only if it
    /// changes (bits are only ever added: see `mark_addresses`).
    fn set_filter_bits(&mut self, bits: &[u32]) -> Result<()> {
        let mut words: StdHashMap<u32, u64> = StdHashMap::new();
        for bit in bits {
            *words.entry(bit / 64).or_default() |= 1u64 << (bit % 64);
        }
        for (w, add) in words {
            let old = self.addr_filter.get(&w, 0)?;
            if old | add != old {
                self.addr_filter.set(w, old | add, 0)?;
            }
        }
        Ok(())
    }
}
