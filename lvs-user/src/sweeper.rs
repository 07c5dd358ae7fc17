//! The connection sweeper, run by `lvs load` once a second. The walk of
//! the connection tables is in the kernel (`conn_sweep`, lvs-ebpf's
//! `sweep`): run through BPF_PROG_TEST_RUN in bounded slices, it walks
//! `CONNS` with `bpf_for_each_map_elem`, removes expired connections (the
//! claim and the count atomic with the data path, as `conn_expire` did
//! them for the userspace walk before), keeps the persistence templates
//! of live connections in use, marks the services that have one, and
//! counts what it saw per real server; no syscall is made per connection.
//! Userspace corrects the active/inactive counts of connections the LRU
//! evicted before they ended (`conn_fix`, per real server).
//! It walks the embryonic table (`EMBRYOS`) the same way, and takes the
//! embryonic connections its LRU evicted (a SYN flood's doing) off the
//! counts exactly: each sweep flips the epoch new embryonic connections
//! are counted in (`EmbryoCounts`), so the other epoch's count is fixed
//! while the walk reads it, and what it holds beyond what the walk saw was
//! evicted.
//! Deleted services are kept as tombstones while they have connections;
//! the sweeper removes them once their last connection has gone (see
//! [`crate::tables::buriable`]).
//!
//! (The sync master, `crate::sync`, still walks `CONNS` from userspace to
//! announce connections.)

use std::{
    collections::HashMap as StdHashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, HashMap, MapData},
    programs::Xdp,
    Ebpf,
};
use lvs_common::{
    occupancy, state, xdp, Config, Conn, ConnFix, EmbryoCounts, RealConns, ServiceEntry,
    ServiceKey, SweepRun, SweepSeen, SweepSvc, FIX_ACTIVE, FIX_EMBRYO, FIX_INACTIVE, SVC_F_DELETED,
    SWEEP_CONNS, SWEEP_EMBRYOS, SWEEP_F_START,
};

use crate::tables::{
    monotonic_ns,
    names::{self, progs},
};

/// Entries one `conn_sweep` run handles at most: the program runs with
/// preemption off, so a walk is cut into slices that each stay short. (The
/// figure was chosen, not yet measured: the bench has no sweep row yet.)
pub const BUDGET: u64 = 65_536;
/// Entries before a slice's start handled again, uncounted
/// (`SweepRun::overlap`): what the data path may shift the positions by
/// between two slices run back to back.
pub const OVERLAP: u64 = 1024;

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
    /// Persistence templates kept in use.
    pub kept: u64,
    /// `conn_sweep` runs (both tables), their summed kernel time and the
    /// longest one.
    pub slices: u64,
    pub kernel: Duration,
    pub longest: Duration,
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
    /// This sweep's number (from 1), which the walk stamps on services
    /// with a live connection (`SweepSvc::live`): nothing is cleared
    /// between sweeps.
    number: u64,
}

impl Sweeper {
    pub fn new(dir: &Path) -> Sweeper {
        Sweeper {
            dir: dir.to_path_buf(),
            surplus: StdHashMap::new(),
            was_full: false,
            capacity: None,
            number: 0,
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
        self.number += 1;
        let cfg: Config = {
            let a: Array<&MapData, Config> = Array::try_from(map(bpf, names::CONFIG)?)?;
            a.get(&0, 0)?
        };
        let published = crate::tables::published(map(bpf, names::GENERATION)?)?;
        // Per service, not per connection: the tombstones to bury.
        let tombstones: Vec<(ServiceKey, u32)> = {
            let m: HashMap<&MapData, ServiceKey, ServiceEntry> =
                HashMap::try_from(map(bpf, names::SERVICES)?)?;
            m.iter()
                .filter_map(|kv| kv.ok())
                .map(|(k, e)| (k, *e.view(published.0)))
                .filter(|(_, v)| v.flags & SVC_F_DELETED != 0)
                .map(|(k, v)| (k, v.id))
                .collect()
        };
        let mut out = Swept::default();
        let capacity = self.capacity(bpf, &cfg)?;
        let conns = walk(bpf, SWEEP_CONNS, self.number, 0, capacity, &mut out)?;
        out.live = conns.live;
        out.expired = conns.expired;
        out.kept = conns.kept;
        let mut complete = conns.done;
        complete &= self.sweep_embryos(bpf, &mut out)?;
        let done: Vec<ServiceKey> = if complete {
            let svcs: Array<&MapData, SweepSvc> = Array::try_from(map(bpf, names::SWEEP_SVCS)?)?;
            tombstones
                .into_iter()
                .filter(|(_, id)| svcs.get(id, 0).map_or(true, |s| s.live != self.number))
                .map(|(k, _)| k)
                .collect()
        } else {
            Vec::new()
        };
        self.bury(bpf, &done, published, now)?;
        // Connections created while the walk runs are counted but not seen,
        // and under a steady rate that gap exists at every sweep: only a
        // table that was full can have lost entries, so only then are the
        // counts compared.
        let cpus = aya::util::nr_cpus().map(|n| n as u64).unwrap_or(1);
        let full = near_full(out.live + out.expired, capacity, cpus);
        if complete && (full || self.was_full) {
            let embryos = embryo_counts(bpf)?;
            let seen = seen_counts(bpf)?;
            out.evicted = self.reconcile(bpf, &seen, &embryos)?;
        } else {
            self.surplus.clear();
        }
        self.was_full = full;
        Ok(out)
    }

    /// `CONNS`'s `max_entries` as the kernel has it.
    fn capacity(&mut self, bpf: &Ebpf, cfg: &Config) -> Result<u64> {
        if let Some(c) = self.capacity {
            return Ok(c);
        }
        let c = match map(bpf, names::CONNS)? {
            aya::maps::Map::LruHashMap(m) | aya::maps::Map::HashMap(m) => {
                m.info()?.max_entries() as u64
            }
            _ => cfg.conn_table_size as u64,
        };
        Ok(*self.capacity.insert(c))
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

    /// Walks `EMBRYOS`: expires what has expired, and takes what the LRU
    /// evicted of the epoch not current off the counts; then flips the
    /// epoch. False if the walk did not finish (nothing is taken off then,
    /// nor is the epoch flipped).
    fn sweep_embryos(&mut self, bpf: &mut Ebpf, out: &mut Swept) -> Result<bool> {
        let current = {
            let a: Array<&MapData, u64> = Array::try_from(map(bpf, names::OCCUPANCY)?)?;
            a.get(&occupancy::EPOCH, 0)? & 1
        };
        // Its count no longer grows (the epoch flipped a sweep ago).
        let fixed = (current ^ 1) as usize;
        let capacity = match map(bpf, names::EMBRYOS)? {
            aya::maps::Map::LruHashMap(m) | aya::maps::Map::HashMap(m) => {
                m.info()?.max_entries() as u64
            }
            _ => u32::MAX as u64,
        };
        let w = walk(bpf, SWEEP_EMBRYOS, self.number, fixed as u32, capacity, out)?;
        out.embryonic = w.live;
        out.embryonic_expired = w.expired;
        if !w.done {
            return Ok(false);
        }
        // Read after the walk and its expiries: only what the LRU took
        // without telling is left over. Only reals with a count are looked
        // at in what the walk saw.
        let seen: Array<&MapData, SweepSeen> = Array::try_from(map(bpf, names::SWEEP_SEEN)?)?;
        let mut fixes = Vec::new();
        for (real, e) in embryo_counts(bpf)?.iter().enumerate() {
            let real = real as u32;
            if e.epochs[fixed] == 0 {
                continue;
            }
            let saw = seen.get(&real, 0).map_or(0, |s| s.embryo);
            let lost = e.epochs[fixed].saturating_sub(saw);
            if lost > 0 {
                fixes.push(ConnFix {
                    real,
                    kind: FIX_EMBRYO + fixed as u32,
                    amount: lost,
                });
            }
        }
        for input in fixes {
            run(bpf, progs::CONN_FIX, bytemuck::bytes_of(&input))?;
            out.embryonic_evicted += input.amount;
        }
        let mut a: Array<&mut MapData, u64> = Array::try_from(
            bpf.map_mut(names::OCCUPANCY)
                .ok_or_else(|| anyhow!("no OCCUPANCY map"))?,
        )?;
        a.set(occupancy::EPOCH, fixed as u64, 0)?;
        Ok(true)
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

/// One table's walk, all slices: what it found.
#[derive(Debug, Default)]
pub struct Walked {
    pub live: u64,
    pub expired: u64,
    pub kept: u64,
    /// The table's end was reached.
    pub done: bool,
}

/// Runs `conn_sweep` once: one slice.
pub fn sweep_slice(bpf: &Ebpf, input: &SweepRun) -> Result<(SweepRun, Duration)> {
    let p: &Xdp = bpf
        .program(progs::CONN_SWEEP)
        .ok_or_else(|| anyhow!("object has no {} program", progs::CONN_SWEEP))?
        .try_into()?;
    let r = crate::progtest::test_run(p, bytemuck::bytes_of(input), 0, 1, true)
        .context("running conn_sweep")?;
    let size = std::mem::size_of::<SweepRun>();
    let o = r.out.unwrap_or_default();
    if r.action != xdp::PASS || o.len() < size {
        bail!("conn_sweep failed (action {}, {} bytes)", r.action, o.len());
    }
    Ok((
        bytemuck::pod_read_unaligned(&o[..size]),
        Duration::from_nanos(r.kernel_ns as u64),
    ))
}

/// Walks `table` (`SWEEP_CONNS`, whose first slice starts the sweep, or
/// `SWEEP_EMBRYOS`) in slices of [`BUDGET`] entries. A table of
/// `capacity` entries takes at most `2 × capacity / BUDGET` slices and a
/// few (a slice that removes all it handles stays in place, but only as
/// often as the table has entries); beyond that the walk is left
/// unfinished (`done` false) rather than chase a table that refills.
pub fn walk(
    bpf: &Ebpf,
    table: u32,
    sweep: u64,
    fixed_epoch: u32,
    capacity: u64,
    out: &mut Swept,
) -> Result<Walked> {
    let mut w = Walked::default();
    let mut input = SweepRun {
        sweep,
        overlap: OVERLAP,
        budget: BUDGET,
        table,
        flags: if table == SWEEP_CONNS {
            SWEEP_F_START
        } else {
            0
        },
        fixed_epoch,
        ..Default::default()
    };
    let limit = 2 * capacity / BUDGET + 4;
    for _ in 0..limit {
        let (r, took) = sweep_slice(bpf, &input)?;
        out.slices += 1;
        out.kernel += took;
        out.longest = out.longest.max(took);
        w.live += r.live;
        w.expired += r.expired;
        w.kept += r.kept;
        if r.done != 0 {
            w.done = true;
            break;
        }
        input.skip = r.next;
        input.flags = 0;
    }
    Ok(w)
}

/// What the walk saw per real server (`SWEEP_SEEN`), active and inactive.
fn seen_counts(bpf: &Ebpf) -> Result<Seen> {
    let a: Array<&MapData, SweepSeen> = Array::try_from(map(bpf, names::SWEEP_SEEN)?)?;
    let mut out = Seen::new();
    for (i, s) in a.iter().enumerate() {
        let s = s?;
        if s.active != 0 || s.inactive != 0 {
            out.insert(i as u32, [s.active, s.inactive]);
        }
    }
    Ok(out)
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
