//! The connection sweeper, run by `lvs load` once a second: walks `CONNS`,
//! has the kernel remove expired connections (`conn_expire`, so the claim
//! and the count are atomic with the data path), keeps the persistence
//! templates of live connections in use, and corrects the active/inactive
//! counts of connections the LRU evicted before they ended (`conn_fix`).
//! It walks the embryonic table (`EMBRYOS`) the same way, and takes the
//! embryonic connections its LRU evicted (a SYN flood's doing) off the
//! counts exactly: each sweep flips the epoch new embryonic connections
//! are counted in (`EmbryoCounts`), so the other epoch's count is fixed
//! while the walk reads it, and what it holds beyond what the walk saw was
//! evicted.
//! Deleted services are kept as tombstones while they have connections;
//! the sweeper removes them once their last connection has gone (see
//! [`crate::tables::buriable`]).

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context, Result};
use aya::{
    maps::{Array, HashMap, MapData},
    programs::Xdp,
    Ebpf,
};
use lvs_common::{
    occupancy, state, xdp, Config, Conn, ConnFix, EmbryoCounts, FlowKey, Persist, PersistKey,
    RealConns, Service, ServiceEntry, ServiceKey, CONN_F_ACTIVE, CONN_F_DEAD, CONN_F_EPOCH,
    FIX_ACTIVE, FIX_EMBRYO, FIX_INACTIVE, SVC_F_DELETED, SVC_F_PERSISTENT,
};

use crate::tables::{
    monotonic_ns,
    names::{self, progs},
};

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub live: u64,
    pub expired: u64,
    /// Connections taken off counts because the LRU evicted them.
    pub evicted: u64,
    /// Live embryonic connections (not in `live`) and those expired.
    pub embryonic: u64,
    pub embryonic_expired: u64,
    /// Embryonic connections taken off counts because the LRU evicted
    /// them.
    pub embryonic_evicted: u64,
}

/// Counts seen per real server: [active, inactive].
type Seen = StdHashMap<u32, [u64; 2]>;

pub struct Sweeper {
    /// The pin directory, whose lock guards table edits.
    dir: PathBuf,
    /// Surplus of counted over seen connections at the last sweep, per
    /// (real, kind): only a surplus seen twice is corrected, since a
    /// connection created during the walk shows up once, an evicted one
    /// for ever.
    surplus: StdHashMap<(u32, usize), u64>,
    /// Whether the table was near full at the last sweep.
    was_full: bool,
    /// `CONNS`'s `max_entries` as the kernel has it (the pinned map taken
    /// over may be of another size than this `lvs load` would make).
    capacity: Option<u64>,
}

impl Sweeper {
    pub fn new(dir: &Path) -> Sweeper {
        Sweeper {
            dir: dir.to_path_buf(),
            surplus: StdHashMap::new(),
            was_full: false,
            capacity: None,
        }
    }
}

/// Whether an LRU map of `capacity` entries (its `max_entries`, not the
/// `--max-conns` it was sized for) holding `entries` may have evicted: the
/// kernel evicts only when a CPU refills its free list and the global one
/// has fewer than `LRU_LOCAL_FREE_TARGET` (128) left, so only once more
/// than `capacity - 128 × cpus` entries are live. The margin of 512 per
/// CPU also covers connections made while the walk ran.
pub fn near_full(entries: u64, capacity: u64, cpus: u64) -> bool {
    entries + cpus * 512 >= capacity
}

/// The data path's expiry rule with the configured per-state timeouts.
pub fn expired(c: &Conn, timeouts: &[u32; state::COUNT], now: u64) -> bool {
    c.expired(lvs_common::conn_timeout_s(c.st, timeouts), now)
}

/// The input of `conn_expire`: the key, then which table.
fn expire_input(k: &FlowKey, embryo: bool) -> [u8; 41] {
    let mut b = [0u8; 41];
    b[..40].copy_from_slice(bytemuck::bytes_of(k));
    b[40] = embryo as u8;
    b
}

/// The correction for one count: (to take off now, surplus to remember).
pub fn correction(counted: u64, seen: u64, last_surplus: u64) -> (u64, u64) {
    let surplus = counted.saturating_sub(seen);
    let fix = surplus.min(last_surplus);
    (fix, surplus - fix)
}

fn run(bpf: &Ebpf, prog: &str, input: &[u8]) -> Result<u32> {
    let p: &Xdp = bpf
        .program(prog)
        .ok_or_else(|| anyhow!("object has no {prog} program"))?
        .try_into()?;
    let mut frame = [0u8; 64];
    frame[..input.len()].copy_from_slice(input);
    // Ifindex 0: the frame arrives on no device; these programs only read
    // their input and update maps.
    let r = crate::progtest::test_run(p, &frame, 0, 1, false)
        .with_context(|| format!("running {prog}"))?;
    Ok(r.action)
}

impl Sweeper {
    pub fn sweep(&mut self, bpf: &mut Ebpf) -> Result<Swept> {
        let now = monotonic_ns();
        let cfg: Config = {
            let a: Array<&MapData, Config> = Array::try_from(map(bpf, names::CONFIG)?)?;
            a.get(&0, 0)?
        };
        let published = crate::tables::published(map(bpf, names::GENERATION)?)?;
        let (services, tombstones): (StdHashMap<u32, Service>, Vec<(ServiceKey, u32)>) = {
            let m: HashMap<&MapData, ServiceKey, ServiceEntry> =
                HashMap::try_from(map(bpf, names::SERVICES)?)?;
            let all: Vec<(ServiceKey, Service)> = m
                .iter()
                .filter_map(|kv| kv.ok())
                .map(|(k, e)| (k, *e.view(published.0)))
                .collect();
            let tombs = all
                .iter()
                .filter(|(_, v)| v.flags & SVC_F_DELETED != 0)
                .map(|(k, v)| (*k, v.id))
                .collect();
            (all.into_iter().map(|(_, v)| (v.id, v)).collect(), tombs)
        };
        let mut live_services: HashSet<u32> = HashSet::new();
        let mut out = Swept::default();
        let mut seen = Seen::new();
        let mut dead = Vec::new();
        let mut keep = Vec::new();
        {
            let conns: HashMap<&MapData, FlowKey, Conn> =
                HashMap::try_from(map(bpf, names::CONNS)?)?;
            for kv in conns.iter() {
                let Ok((k, c)) = kv else { continue };
                if c.st & CONN_F_DEAD != 0 {
                    continue;
                }
                if expired(&c, &cfg.timeouts, now) {
                    dead.push(k);
                    continue;
                }
                out.live += 1;
                live_services.insert(c.svc_id);
                let kind = if c.st & CONN_F_ACTIVE != 0 {
                    FIX_ACTIVE
                } else {
                    FIX_INACTIVE
                } as usize;
                seen.entry(c.real).or_default()[kind] += 1;
                if let Some(s) = services.get(&c.svc_id) {
                    if s.flags & SVC_F_PERSISTENT != 0 {
                        keep.push(PersistKey::new(s.id, s.family, &s.netmask, &k.src));
                    }
                }
            }
        }
        for k in dead {
            if run(bpf, progs::CONN_EXPIRE, &expire_input(&k, false))? == xdp::PASS {
                out.expired += 1;
            }
        }
        self.sweep_embryos(bpf, &cfg, now, &mut out, &mut live_services)?;
        self.keep_templates(bpf, &keep, now)?;
        let done: Vec<ServiceKey> = tombstones
            .into_iter()
            .filter(|(_, id)| !live_services.contains(id))
            .map(|(k, _)| k)
            .collect();
        self.bury(bpf, &done, published, now)?;
        // Connections created while the walk runs are counted but not seen,
        // and under a steady rate that gap exists at every sweep: only a
        // table that was full can have lost entries, so only then are the
        // counts compared.
        let cpus = aya::util::nr_cpus().map(|n| n as u64).unwrap_or(1);
        let capacity = match self.capacity {
            Some(c) => c,
            None => {
                let c = match map(bpf, names::CONNS)? {
                    aya::maps::Map::LruHashMap(m) | aya::maps::Map::HashMap(m) => {
                        m.info()?.max_entries() as u64
                    }
                    _ => cfg.conn_table_size as u64,
                };
                *self.capacity.insert(c)
            }
        };
        let full = near_full(out.live + out.expired, capacity, cpus);
        if full || self.was_full {
            let embryos = embryo_counts(bpf)?;
            out.evicted = self.reconcile(bpf, &seen, &embryos)?;
        } else {
            self.surplus.clear();
        }
        self.was_full = full;
        Ok(out)
    }

    /// Removes deleted services whose last connection has gone, unless an
    /// `lvsadm` holds the tables right now (then next time).
    fn bury(
        &self,
        bpf: &mut Ebpf,
        keys: &[ServiceKey],
        walked: (u64, u64),
        walk_start: u64,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let Some(_lock) = crate::tables::try_lock_dir(&self.dir) else {
            return Ok(());
        };
        // The walk proves nothing if a change was published since, or so
        // shortly before it that a packet of the old generation may still
        // have been opening a connection.
        if !crate::tables::buriable(map(bpf, names::GENERATION)?, walked, walk_start)? {
            return Ok(());
        }
        let mut m: HashMap<&mut MapData, ServiceKey, ServiceEntry> = HashMap::try_from(
            bpf.map_mut(names::SERVICES)
                .ok_or_else(|| anyhow!("no SERVICES map"))?,
        )?;
        for k in keys {
            // Still a tombstone? lvsadm may have re-added it since the walk.
            if m.get(k, 0)
                .is_ok_and(|e| e.view(walked.0).flags & SVC_F_DELETED != 0)
            {
                let _ = m.remove(k);
            }
        }
        Ok(())
    }

    fn keep_templates(&self, bpf: &mut Ebpf, keys: &[PersistKey], now: u64) -> Result<()> {
        let mut m: HashMap<&mut MapData, PersistKey, Persist> = HashMap::try_from(
            bpf.map_mut(names::PERSIST)
                .ok_or_else(|| anyhow!("no PERSIST map"))?,
        )?;
        for k in keys {
            if let Ok(mut t) = m.get(k, 0) {
                t.last_used = now;
                let _ = m.insert(k, t, 0);
            }
        }
        Ok(())
    }

    /// Walks `EMBRYOS`: expires what has expired, and takes what the LRU
    /// evicted of the epoch not current off the counts; then flips the
    /// epoch.
    fn sweep_embryos(
        &mut self,
        bpf: &mut Ebpf,
        cfg: &Config,
        now: u64,
        out: &mut Swept,
        live_services: &mut HashSet<u32>,
    ) -> Result<()> {
        let current = {
            let a: Array<&MapData, u64> = Array::try_from(map(bpf, names::OCCUPANCY)?)?;
            a.get(&occupancy::EPOCH, 0)? & 1
        };
        // Its count no longer grows (the epoch flipped a sweep ago).
        let fixed = (current ^ 1) as usize;
        let mut seen: StdHashMap<u32, u64> = StdHashMap::new();
        let mut dead = Vec::new();
        {
            let m: HashMap<&MapData, FlowKey, Conn> = HashMap::try_from(map(bpf, names::EMBRYOS)?)?;
            for kv in m.iter() {
                let Ok((k, c)) = kv else { continue };
                if c.st & CONN_F_DEAD != 0 {
                    continue;
                }
                if expired(&c, &cfg.timeouts, now) {
                    dead.push(k);
                    continue;
                }
                out.embryonic += 1;
                live_services.insert(c.svc_id);
                if (c.st & CONN_F_EPOCH != 0) as usize == fixed {
                    *seen.entry(c.real).or_default() += 1;
                }
            }
        }
        for k in dead {
            if run(bpf, progs::CONN_EXPIRE, &expire_input(&k, true))? == xdp::PASS {
                out.embryonic_expired += 1;
            }
        }
        // Read after the walk and the expiries: only what the LRU took
        // without telling is left over.
        for (real, e) in embryo_counts(bpf)?.iter().enumerate() {
            let real = real as u32;
            let lost = e.epochs[fixed].saturating_sub(seen.get(&real).copied().unwrap_or(0));
            if lost > 0 {
                let input = ConnFix {
                    real,
                    kind: FIX_EMBRYO + fixed as u32,
                    amount: lost,
                };
                run(bpf, progs::CONN_FIX, bytemuck::bytes_of(&input))?;
                out.embryonic_evicted += lost;
            }
        }
        let mut a: Array<&mut MapData, u64> = Array::try_from(
            bpf.map_mut(names::OCCUPANCY)
                .ok_or_else(|| anyhow!("no OCCUPANCY map"))?,
        )?;
        a.set(occupancy::EPOCH, fixed as u64, 0)?;
        Ok(())
    }

    fn reconcile(&mut self, bpf: &Ebpf, seen: &Seen, embryos: &[EmbryoCounts]) -> Result<u64> {
        let counts: Array<&MapData, RealConns> = Array::try_from(map(bpf, names::REAL_CONNS)?)?;
        let mut fixes = Vec::new();
        for i in 0..counts.len() {
            let c = counts.get(&i, 0)?;
            let s = seen.get(&i).copied().unwrap_or_default();
            // The embryonic connections counted inactive are not in CONNS.
            let e = embryos
                .get(i as usize)
                .map_or(0, |e| e.epochs[0] + e.epochs[1]);
            let inactive = c.inactive.saturating_sub(e);
            for (kind, counted) in [(FIX_ACTIVE, c.active), (FIX_INACTIVE, inactive)] {
                let kind = kind as usize;
                let last = self.surplus.get(&(i, kind)).copied().unwrap_or(0);
                let (fix, rest) = correction(counted, s[kind], last);
                if rest == 0 {
                    self.surplus.remove(&(i, kind));
                } else {
                    self.surplus.insert((i, kind), rest);
                }
                // Never below zero, whatever raced with the walk.
                let fix = fix.min(counted);
                if fix > 0 {
                    fixes.push((i, kind as u32, fix));
                }
            }
        }
        let mut total = 0u64;
        for (real, kind, amount) in fixes {
            let input = ConnFix { real, kind, amount };
            run(bpf, progs::CONN_FIX, bytemuck::bytes_of(&input))?;
            total = total.saturating_add(amount);
        }
        Ok(total)
    }
}

/// Every real server's embryonic counts, indexed like `REALS`.
fn embryo_counts(bpf: &Ebpf) -> Result<Vec<EmbryoCounts>> {
    let a: Array<&MapData, EmbryoCounts> = Array::try_from(map(bpf, names::EMBRYO_COUNTS)?)?;
    a.iter().collect::<Result<Vec<_>, _>>().map_err(Into::into)
}

fn map<'a>(bpf: &'a Ebpf, name: &str) -> Result<&'a aya::maps::Map> {
    bpf.map(name)
        .ok_or_else(|| anyhow!("object has no {name} map"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_the_state_timeout() {
        let mut t = [60u32; lvs_common::state::COUNT];
        t[lvs_common::state::CLOSE as usize] = 10;
        let c = Conn {
            st: lvs_common::state::CLOSE as u32,
            last_seen: 100_000_000_000,
            ..Default::default()
        };
        assert!(!expired(&c, &t, 109_000_000_000));
        assert!(!expired(&c, &t, 111_000_000_000));
        assert!(expired(&c, &t, 112_000_000_000));
        // A timestamp from another CPU slightly ahead of ours is not expiry.
        assert!(!expired(&c, &t, 99_000_000_000));
    }

    #[test]
    fn only_a_full_table_is_reconciled() {
        assert!(!near_full(10_000, 65_536, 2));
        assert!(near_full(64_600, 65_536, 2));
        assert!(near_full(65_536, 65_536, 2));
        // A map sized for 1024 connections: full once they are all there,
        // and before the kernel can evict (above 1 408 - 128 × 2 live).
        let cap = crate::loader::lru_entries(1024, 2) as u64;
        assert_eq!(cap, 1024 + 3 * 128);
        assert!(!near_full(100, cap, 2));
        assert!(near_full(1024, cap, 2));
        assert!(near_full(cap - 2 * 128, cap, 2));
    }

    #[test]
    fn only_a_persistent_surplus_is_corrected() {
        // First sight of a surplus: remembered, not fixed.
        assert_eq!(correction(5, 3, 0), (0, 2));
        // Seen again: fixed by what persisted.
        assert_eq!(correction(5, 3, 2), (2, 0));
        // A transient surplus that shrank is fixed only as far as it lasted.
        assert_eq!(correction(4, 3, 2), (1, 0));
        assert_eq!(correction(3, 3, 2), (0, 0));
        assert_eq!(correction(2, 3, 0), (0, 0));
    }
}
