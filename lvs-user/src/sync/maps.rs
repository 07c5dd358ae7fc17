//! The pinned maps as the sync daemon sees them, opened by path once when
//! `lvs load` starts it: the master reads connections and templates from
//! `CONNS` and `PERSIST`; the backup finds services and real servers in
//! `SERVICES`/`DESTS`/`REALS` and inserts connections through the
//! `conn_sync` program (atomic with the data path's counting) and
//! templates straight into `PERSIST` (no counts involved). Nothing here
//! takes the pin directory's lock: the daemon only reads the configuration
//! and adds connections, as the data path does.

use std::path::Path;

use anyhow::{Context, Result};
use aya::{
    maps::{Array, HashMap, Map, MapData},
    programs::Xdp,
};
use lvs_common::{
    xdp, Config, Conn, ConnSync, FlowKey, Persist, PersistKey, Real, Service, ServiceEntry,
    ServiceKey, GEN_CURRENT, REAL_F_IN_USE, REAL_F_MEMBER, SVC_F_DELETED,
};

use crate::tables::names;

/// The program that inserts a synced connection.
pub const PROG: &str = "conn_sync";

pub struct SyncMaps {
    conns: HashMap<MapData, FlowKey, Conn>,
    persist: HashMap<MapData, PersistKey, Persist>,
    services: HashMap<MapData, ServiceKey, ServiceEntry>,
    /// Which copy of each service entry is live (`tables::txn`).
    generation: Array<MapData, u64>,
    reals: Array<MapData, Real>,
    dests: Array<MapData, u32>,
    config: Array<MapData, Config>,
    prog: Xdp,
}

fn open(dir: &Path, name: &str) -> Result<MapData> {
    let p = dir.join(name);
    MapData::from_pin(&p).with_context(|| format!("cannot open {}", p.display()))
}

impl SyncMaps {
    /// Opens the maps pinned under `dir`; `prog` is the loaded
    /// `conn_sync` program of the director object.
    pub fn open(dir: &Path, prog: Xdp) -> Result<SyncMaps> {
        Ok(SyncMaps {
            conns: HashMap::try_from(Map::LruHashMap(open(dir, names::CONNS)?))?,
            persist: HashMap::try_from(Map::LruHashMap(open(dir, names::PERSIST)?))?,
            services: HashMap::try_from(Map::HashMap(open(dir, names::SERVICES)?))?,
            generation: Array::try_from(Map::Array(open(dir, names::GENERATION)?))?,
            reals: Array::try_from(Map::Array(open(dir, names::REALS)?))?,
            dests: Array::try_from(Map::Array(open(dir, names::DESTS)?))?,
            config: Array::try_from(Map::Array(open(dir, names::CONFIG)?))?,
            prog,
        })
    }

    pub fn config(&self) -> Result<Config> {
        Ok(self.config.get(&0, 0)?)
    }

    /// Live connections (not being removed).
    pub fn connections(&self) -> Vec<(FlowKey, Conn)> {
        self.conns
            .iter()
            .filter_map(|kv| kv.ok())
            .filter(|(_, c)| c.st & lvs_common::CONN_F_DEAD == 0)
            .collect()
    }

    pub fn templates(&self) -> Vec<(PersistKey, Persist)> {
        self.persist.iter().filter_map(|kv| kv.ok()).collect()
    }

    /// Every live service (tombstones left out).
    pub fn services(&self) -> Vec<(ServiceKey, Service)> {
        let gen = self.generation();
        self.services
            .iter()
            .filter_map(|kv| kv.ok())
            .map(|(k, e)| (k, *e.view(gen)))
            .filter(|(_, s)| s.flags & SVC_F_DELETED == 0)
            .collect()
    }

    pub fn service(&self, k: &ServiceKey) -> Option<Service> {
        self.services
            .get(k, 0)
            .ok()
            .map(|e| *e.view(self.generation()))
            .filter(|s| s.flags & SVC_F_DELETED == 0)
    }

    /// The published table generation: the copy of each service entry
    /// (and its member list) that new connections are scheduled with.
    fn generation(&self) -> u64 {
        self.generation.get(&GEN_CURRENT, 0).unwrap_or(0)
    }

    pub fn real(&self, idx: u32) -> Option<Real> {
        self.reals.get(&idx, 0).ok()
    }

    /// The member of `svc` at `addr`:`port` (map encodings), with its slot.
    pub fn member(&self, svc: &Service, addr: &[u32; 4], port: u16) -> Option<(u32, Real)> {
        (0..svc.dests_len).find_map(|i| {
            let idx = self.dests.get(&(svc.dests_off + i), 0).ok()?;
            let r = self.real(idx)?;
            let member = REAL_F_IN_USE | REAL_F_MEMBER;
            (r.flags & member == member && r.addr == *addr && r.port == port).then_some((idx, r))
        })
    }

    /// Inserts or updates one connection; false if the kernel refused (its
    /// real server's slot changed under it, or a race with the data path).
    pub fn insert_connection(&self, s: &ConnSync) -> Result<bool> {
        let r = crate::progtest::test_run(&self.prog, bytemuck::bytes_of(s), 0, 1, false)
            .context("running conn_sync")?;
        Ok(r.action == xdp::PASS)
    }

    pub fn insert_template(&mut self, k: &PersistKey, t: &Persist) -> Result<()> {
        self.persist.insert(k, t, 0)?;
        Ok(())
    }
}
