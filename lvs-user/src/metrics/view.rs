//! A read-only look at the pinned tables for the estimator and `/metrics`:
//! each live service with its slot (`Service::id`), counters and members,
//! each member with its slot in `REALS`, generation, counts and counters.
//!
//! Unlike [`crate::tables::Tables`] it takes no lock: a scrape or an
//! estimator sample must never wait for an `lvsadm -R` (nor make one
//! wait). A look taken while a command commits may see the old or the new
//! member list of a service; the next one (two seconds later, or the next
//! scrape) sees the new one. The maps are opened once, by path, and the
//! descriptors kept, so a look costs map reads only.

use std::{net::IpAddr, path::Path};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues};
use lvs_common::{
    counters, Config, Real, RealConns, Service, ServiceEntry, ServiceKey, Stats, GEN_CURRENT,
    REAL_F_IN_USE, SVC_F_DELETED,
};

use crate::tables::{names, raw_port, words_addr};

/// The maps a look reads, open.
pub struct Maps {
    services: HashMap<MapData, ServiceKey, ServiceEntry>,
    /// Which copy of each service entry is live (`tables::txn`).
    generation: Array<MapData, u64>,
    /// `SERVICES`' `max_entries`: bounds a walk (see [`Maps::services`]).
    services_max: usize,
    dests: Array<MapData, u32>,
    reals: Array<MapData, Real>,
    real_conns: Array<MapData, RealConns>,
    svc_stats: PerCpuArray<MapData, Stats>,
    real_stats: PerCpuArray<MapData, Stats>,
    counters: PerCpuArray<MapData, counters::Counters>,
    config: Array<MapData, Config>,
}

/// One live service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcView {
    pub key: ServiceKey,
    /// Its slot in `SVC_STATS` and `SVC_RATES`.
    pub id: u32,
    pub stats: Stats,
    /// In member order.
    pub reals: Vec<RealView>,
}

/// One member of a live service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealView {
    /// Its slot in `REALS`, `REAL_STATS` and `REAL_RATES`.
    pub idx: u32,
    pub generation: u32,
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
    pub stats: Stats,
}

/// Everything one look read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// In slot order.
    pub services: Vec<SvcView>,
    /// Every slot of `SVC_STATS` summed, deleted services' included (they
    /// keep their counters until their slot is reused), as IPVS's totals
    /// count all traffic.
    pub totals: Stats,
    /// `lvs stats`' counters, summed over CPUs, indexed by `counters`.
    pub counters: Vec<u64>,
    /// Connections counted on real servers (active + inactive, every slot
    /// in use, deleted services' included): the tracked connections.
    pub conns: u64,
    /// `--max-conns` (`lvsadm -L`'s `size=`).
    pub conn_table_size: u32,
    /// The health checker's view of its real servers (its status file),
    /// empty without a running checker.
    pub health: Vec<crate::health::status::Real>,
}

fn open<T: TryFrom<Map, Error = aya::maps::MapError>>(
    dir: &Path,
    name: &str,
    wrap: fn(MapData) -> Map,
) -> Result<T> {
    let p = dir.join(name);
    let m = MapData::from_pin(&p).with_context(|| format!("cannot open {}", p.display()))?;
    Ok(T::try_from(wrap(m))?)
}

/// Sums per-CPU counters.
pub fn sum(v: &PerCpuValues<Stats>) -> Stats {
    v.iter().fold(Stats::default(), |a, s| add(&a, s))
}

fn add(a: &Stats, s: &Stats) -> Stats {
    Stats {
        conns: a.conns.wrapping_add(s.conns),
        inpkts: a.inpkts.wrapping_add(s.inpkts),
        outpkts: a.outpkts.wrapping_add(s.outpkts),
        inbytes: a.inbytes.wrapping_add(s.inbytes),
        outbytes: a.outbytes.wrapping_add(s.outbytes),
    }
}

impl Maps {
    /// Opens the maps of the director pinned under `dir`.
    pub fn open(dir: &Path) -> Result<Maps> {
        let p = dir.join(names::SERVICES);
        let services =
            MapData::from_pin(&p).with_context(|| format!("cannot open {}", p.display()))?;
        let services_max = services.info()?.max_entries() as usize;
        Ok(Maps {
            services: HashMap::try_from(Map::HashMap(services))?,
            services_max,
            generation: open(dir, names::GENERATION, Map::Array)?,
            dests: open(dir, names::DESTS, Map::Array)?,
            reals: open(dir, names::REALS, Map::Array)?,
            real_conns: open(dir, names::REAL_CONNS, Map::Array)?,
            svc_stats: open(dir, names::SVC_STATS, Map::PerCpuArray)?,
            real_stats: open(dir, names::REAL_STATS, Map::PerCpuArray)?,
            counters: open(dir, names::COUNTERS, Map::PerCpuArray)?,
            config: open(dir, names::CONFIG, Map::Array)?,
        })
    }

    /// The live services and their members (no totals, counters or fill:
    /// what the estimator and `lvsadm --rate` need).
    ///
    /// The walk takes no lock, so a service removed under it can make the
    /// kernel's next-key step start over from the first key: entries are
    /// taken once each, and the walk is bounded by twice the map's size.
    pub fn services(&self) -> Result<Vec<SvcView>> {
        let gen = self.generation.get(&GEN_CURRENT, 0)?;
        let mut seen = std::collections::HashMap::new();
        for kv in self.services.iter().take(2 * self.services_max.max(1)) {
            // An entry removed between the key walk and its lookup.
            let Ok((k, e)) = kv else { continue };
            let v = *e.view(gen);
            if v.flags & SVC_F_DELETED == 0 {
                seen.insert(k, v);
            }
        }
        let mut entries: Vec<(ServiceKey, Service)> = seen.into_iter().collect();
        entries.sort_by_key(|(_, v)| v.id);
        let mut out = Vec::with_capacity(entries.len());
        for (key, v) in entries {
            let mut reals = Vec::with_capacity(v.dests_len as usize);
            for i in 0..v.dests_len {
                let idx = self.dests.get(&(v.dests_off + i), 0)?;
                let r = self.reals.get(&idx, 0)?;
                let c = self.real_conns.get(&idx, 0)?;
                reals.push(RealView {
                    idx,
                    generation: r.generation,
                    addr: words_addr(r.addr, r.family),
                    port: raw_port(r.port),
                    weight: r.weight,
                    active: c.active,
                    inactive: c.inactive,
                    stats: sum(&self.real_stats.get(&idx, 0)?),
                });
            }
            out.push(SvcView {
                key,
                id: v.id,
                stats: sum(&self.svc_stats.get(&v.id, 0)?),
                reals,
            });
        }
        Ok(out)
    }

    /// Every slot of `SVC_STATS`, summed.
    pub fn totals(&self) -> Result<Stats> {
        let mut t = Stats::default();
        for i in 0..self.svc_stats.len() {
            t = add(&t, &sum(&self.svc_stats.get(&i, 0)?));
        }
        Ok(t)
    }

    /// A whole look.
    pub fn view(&self) -> Result<View> {
        let mut c = vec![0u64; counters::COUNT as usize];
        for cpu in self.counters.get(&0, 0)?.iter() {
            for (o, v) in c.iter_mut().zip(cpu.0) {
                *o = o.wrapping_add(v);
            }
        }
        let mut conns = 0u64;
        for i in 0..self.reals.len() {
            if self.reals.get(&i, 0)?.flags & REAL_F_IN_USE != 0 {
                let rc = self.real_conns.get(&i, 0)?;
                conns = conns.saturating_add(rc.active).saturating_add(rc.inactive);
            }
        }
        Ok(View {
            services: self.services()?,
            totals: self.totals()?,
            counters: c,
            conns,
            conn_table_size: self.config.get(&0, 0)?.conn_table_size,
            health: Vec::new(),
        })
    }
}
