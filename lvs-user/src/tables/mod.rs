//! The pinned maps as one table store, shared by `lvs` and `lvsadm`.
//!
//! A change is computed against the snapshot read under the directory lock
//! and written in an order that never exposes half a service to the data
//! path: real servers first, then the member list and scheduler table (in
//! fresh regions), then the service entry that points at them; removals the
//! other way round.
//!
//! [`names`] holds the map names, `pins` the pin directory and its lock,
//! `addr` the map encodings of addresses and ports, `plan` the placement
//! of a new configuration (over the `regions` allocator), and this module
//! the store itself: open, snapshot, commit.

mod addr;
pub mod names;
mod pins;
mod plan;
mod regions;

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
    Config, Conn, FlowKey, Real, RealConns, Service, ServiceKey, Stats, AF_INET6, CONN_F_DEAD,
    CONN_STATE_MASK, REAL_F_IN_USE, SVC_F_DELETED, SVC_F_ONEPACKET, SVC_F_PERSISTENT,
};

pub use self::{
    addr::{addr_words, port_raw, raw_port, service_key, words_addr},
    pins::{pin_path, try_lock_dir, DEFAULT_PIN_PATH},
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
    services: HashMap<MapData, ServiceKey, Service>,
    reals: Array<MapData, Real>,
    dests: Array<MapData, u32>,
    sched_table: Array<MapData, u32>,
    sched_state: Array<MapData, u64>,
    real_conns: Array<MapData, RealConns>,
    svc_stats: PerCpuArray<MapData, Stats>,
    real_stats: PerCpuArray<MapData, Stats>,
    config: Array<MapData, Config>,
    addr_filter: Array<MapData, u64>,
    /// From the last snapshot: service key -> placement.
    placed: StdHashMap<ServiceKey, Placed>,
    /// From the last snapshot: deleted services still serving connections.
    tombstones: StdHashMap<ServiceKey, Service>,
    /// From the last snapshot: every real slot.
    slots: Vec<Real>,
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
            reals: Array::try_from(Map::Array(open_map(dir, names::REALS)?))?,
            dests: Array::try_from(Map::Array(open_map(dir, names::DESTS)?))?,
            sched_table: Array::try_from(Map::Array(open_map(dir, names::SCHED_TABLE)?))?,
            sched_state: Array::try_from(Map::Array(open_map(dir, names::SCHED_STATE)?))?,
            real_conns: Array::try_from(Map::Array(open_map(dir, names::REAL_CONNS)?))?,
            svc_stats: PerCpuArray::try_from(Map::PerCpuArray(open_map(dir, names::SVC_STATS)?))?,
            real_stats: PerCpuArray::try_from(Map::PerCpuArray(open_map(dir, names::REAL_STATS)?))?,
            config: Array::try_from(Map::Array(open_map(dir, names::CONFIG)?))?,
            addr_filter: Array::try_from(Map::Array(open_map(dir, names::ADDR_FILTER)?))?,
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
            let (vs, idxs) = self.read_service(&k, &v)?;
            services.push(vs);
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

    /// One live service as `lvsadm` sees it, and its members' real indices
    /// in member order.
    fn read_service(&self, k: &ServiceKey, v: &Service) -> Result<(VirtualService, Vec<u32>)> {
        let mut idxs = Vec::with_capacity(v.dests_len as usize);
        for i in 0..v.dests_len {
            idxs.push(self.dests.get(&(v.dests_off + i), 0)?);
        }
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
        Ok((vs, idxs))
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

    fn apply(&mut self, plan: Plan) -> Result<()> {
        self.mark_addresses(&plan)?;
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
