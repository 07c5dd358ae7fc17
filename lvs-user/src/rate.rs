//! IPVS's rate estimator (net/netfilter/ipvs/ip_vs_est.c), run by
//! `lvs load` for every service, every real server and the totals, and
//! published in the pinned `SVC_RATES` / `REAL_RATES` arrays
//! (`lvs_common::Rate`) for `lvsadm -L --rate` and `/metrics`.
//!
//! Every 2 seconds each estimator reads its counters (the data path's
//! per-CPU `SVC_STATS` / `REAL_STATS`, summed: no per-packet cost) and
//! moves its averages a quarter of the way towards the last interval's
//! rate, `avg += (rate - avg) / 4`, in IPVS's fixed point: connection and
//! packet rates scaled by 2^10, byte rates by 2^5, read back rounded
//! (`(avg + 0x1FF) >> 10`, `(avg + 0xF) >> 5`). IPVS assumes the timer
//! fired exactly 2 s after the last one (its `delta << 9` is
//! `delta / 2 × 2^10`); this divides by the interval actually measured,
//! which is the same for a punctual sample and right for a late one.
//!
//! As in IPVS, an estimator starts from the counters as it first finds them
//! (a director adopted after a restart does not show everything since its
//! start as one interval's traffic), and counters that went down (`-Z`, or
//! a slot given to a new service) restart it at zero
//! (`ip_vs_zero_estimator`).

use std::{
    collections::HashMap as StdHashMap,
    net::IpAddr,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{Array, Map, MapData};
use lvs_common::{Rate, ServiceKey, Stats};

use crate::{
    metrics::view::{Maps, SvcView},
    model::{ServiceAddr, Snapshot},
    tables::{names, service_key},
};

/// IPVS's sampling interval.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// One estimator: the counters at the last sample and the scaled averages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    /// ×2^10.
    cps: u64,
    inpps: u64,
    outpps: u64,
    /// ×2^5.
    inbps: u64,
    outbps: u64,
}

/// `avg += (rate - avg) >> 2` on IPVS's signed arithmetic, where `rate`
/// is `delta` per second scaled by 2^`scale`.
fn smooth(avg: u64, delta: u64, scale: u32, elapsed: Duration) -> u64 {
    let ns = elapsed.as_nanos().max(1);
    let rate = ((delta as u128) << scale) * 1_000_000_000 / ns;
    let rate = rate.min(i64::MAX as u128) as i64;
    let avg = avg as i64;
    (avg + ((rate - avg) >> 2)).max(0) as u64
}

impl Estimator {
    /// An estimator that starts from `now`'s counters, at zero rates.
    pub fn new(now: Stats) -> Estimator {
        Estimator {
            last: now,
            ..Default::default()
        }
    }

    /// One sample: `now` read `elapsed` after the last one.
    pub fn sample(&mut self, now: Stats, elapsed: Duration) {
        let l = self.last;
        if now.conns < l.conns
            || now.inpkts < l.inpkts
            || now.outpkts < l.outpkts
            || now.inbytes < l.inbytes
            || now.outbytes < l.outbytes
        {
            *self = Estimator::new(now);
            return;
        }
        self.cps = smooth(self.cps, now.conns - l.conns, 10, elapsed);
        self.inpps = smooth(self.inpps, now.inpkts - l.inpkts, 10, elapsed);
        self.outpps = smooth(self.outpps, now.outpkts - l.outpkts, 10, elapsed);
        self.inbps = smooth(self.inbps, now.inbytes - l.inbytes, 5, elapsed);
        self.outbps = smooth(self.outbps, now.outbytes - l.outbytes, 5, elapsed);
        self.last = now;
    }

    /// The rates as IPVS reads them (`ip_vs_read_estimator`), for the
    /// entry that names `key` and `generation`.
    pub fn read(&self, key: ServiceKey, generation: u32) -> Rate {
        Rate {
            key,
            generation,
            cps: (self.cps + 0x1FF) >> 10,
            inpps: (self.inpps + 0x1FF) >> 10,
            outpps: (self.outpps + 0x1FF) >> 10,
            inbps: (self.inbps + 0xF) >> 5,
            outbps: (self.outbps + 0xF) >> 5,
        }
    }
}

/// What an estimator is for: a slot and who holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Owner {
    Service(u32, ServiceKey),
    Real(u32, u32),
    Totals,
}

/// Every estimator of one director.
#[derive(Default)]
pub struct Estimators {
    est: StdHashMap<Owner, Estimator>,
}

/// The rates one sample produced, by slot.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sampled {
    pub services: Vec<(u32, Rate)>,
    pub reals: Vec<(u32, Rate)>,
    pub totals: Rate,
}

impl Estimators {
    /// Samples every service and member of `services` and the `totals`;
    /// estimators of slots no longer held are dropped.
    pub fn sample(&mut self, services: &[SvcView], totals: Stats, elapsed: Duration) -> Sampled {
        let mut next = StdHashMap::with_capacity(self.est.len());
        let mut take = |owner: Owner, now: Stats| -> Estimator {
            let e = match self.est.remove(&owner) {
                Some(mut e) => {
                    e.sample(now, elapsed);
                    e
                }
                None => Estimator::new(now),
            };
            next.insert(owner, e);
            e
        };
        let mut out = Sampled::default();
        for s in services {
            let e = take(Owner::Service(s.id, s.key), s.stats);
            out.services.push((s.id, e.read(s.key, 0)));
            for r in &s.reals {
                let e = take(Owner::Real(r.idx, r.generation), r.stats);
                out.reals.push((r.idx, e.read(s.key, r.generation)));
            }
        }
        out.totals = take(Owner::Totals, totals).read(ServiceKey::default(), 0);
        self.est = next;
        out
    }
}

/// The pinned rate arrays.
pub struct RateMaps {
    svc: Array<MapData, Rate>,
    real: Array<MapData, Rate>,
}

impl RateMaps {
    pub fn open(dir: &Path) -> Result<RateMaps> {
        let open = |name: &str| -> Result<Array<MapData, Rate>> {
            let p = dir.join(name);
            let m =
                MapData::from_pin(&p).with_context(|| format!("cannot open {}", p.display()))?;
            Ok(Array::try_from(Map::Array(m))?)
        };
        Ok(RateMaps {
            svc: open(names::SVC_RATES)?,
            real: open(names::REAL_RATES)?,
        })
    }

    fn write(&mut self, s: &Sampled) -> Result<()> {
        for &(id, r) in &s.services {
            self.svc.set(id, r, 0)?;
        }
        for &(idx, r) in &s.reals {
            self.real.set(idx, r, 0)?;
        }
        self.svc.set(self.totals_slot(), s.totals, 0)?;
        Ok(())
    }

    /// The totals' entry: the last of `SVC_RATES`.
    fn totals_slot(&self) -> u32 {
        self.svc.len().saturating_sub(1)
    }

    /// The director's totals.
    pub fn totals(&self) -> Result<Rate> {
        Ok(self.svc.get(&self.totals_slot(), 0)?)
    }

    /// A service's rates, if its slot holds an estimate for it.
    pub fn service(&self, id: u32, key: ServiceKey) -> Option<Rate> {
        self.svc.get(&id, 0).ok().filter(|r| r.key == key)
    }

    /// A real server's, likewise.
    pub fn real(&self, idx: u32, key: ServiceKey, generation: u32) -> Option<Rate> {
        self.real
            .get(&idx, 0)
            .ok()
            .filter(|r| r.key == key && r.generation == generation)
    }
}

/// The estimator thread of `lvs load`; stops when dropped.
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Starts estimating for the director pinned under `dir`, on a thread of
/// its own: its map reads never hold up the daemon's loop, nor the loop's
/// blocking work (sweeps, neighbour upkeep) its samples.
pub fn start(dir: &Path) -> Result<Running> {
    let maps = Maps::open(dir)?;
    let mut rates = RateMaps::open(dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("lvs-rate".into())
        .spawn(move || {
            let mut est = Estimators::default();
            let mut last = Instant::now();
            let mut next = last;
            let mut warned = false;
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::park_timeout(next - now);
                    continue;
                }
                let elapsed = now - last;
                let sampled = maps.services().and_then(|s| {
                    let sampled = est.sample(&s, maps.totals()?, elapsed);
                    rates.write(&sampled)
                });
                last = now;
                // On a fixed grid: a late sample does not move the next.
                next += INTERVAL;
                if next < now {
                    next = now + INTERVAL;
                }
                match sampled {
                    Err(e) if !warned => {
                        log::warn!("rate estimator: {e:#}");
                        warned = true;
                    }
                    Err(_) => {}
                    Ok(()) => warned = false,
                }
            }
        })
        .context("cannot start the rate estimator")?;
    Ok(Running {
        stop,
        thread: Some(thread),
    })
}

/// Rates of the services of a listing, for `lvsadm -L --rate`: by
/// service, the service's and each member's by address and port. Anything
/// the estimator has not sampled yet is absent (it lists as zeros, as a
/// fresh IPVS estimator reads).
pub type Listed = StdHashMap<ServiceAddr, ServiceRates>;

/// One service's rates and its members', by address and port.
pub type ServiceRates = (Rate, Vec<((IpAddr, u16), Rate)>);

/// Reads the rates of the director pinned under `dir` for the services of
/// `snap`.
pub fn read(dir: &Path, snap: &Snapshot) -> Result<Listed> {
    let maps = Maps::open(dir)?;
    let rates = RateMaps::open(dir)?;
    let by_key: StdHashMap<ServiceKey, SvcView> =
        maps.services()?.into_iter().map(|s| (s.key, s)).collect();
    let mut out = Listed::new();
    for vs in &snap.services {
        let key = service_key(&vs.key);
        let Some(view) = by_key.get(&key) else {
            continue;
        };
        let Some(svc) = rates.service(view.id, key) else {
            continue;
        };
        let reals = view
            .reals
            .iter()
            .filter_map(|m| {
                let r = rates.real(m.idx, key, m.generation)?;
                Some(((m.addr, m.port), r))
            })
            .collect();
        out.insert(vs.key, (svc, reals));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: u64) -> Stats {
        Stats {
            conns: n,
            inpkts: 10 * n,
            outpkts: 20 * n,
            inbytes: 1000 * n,
            outbytes: 3000 * n,
        }
    }

    /// IPVS's own integer steps, for a 2-second interval.
    fn ipvs_step(avg: i64, delta: u64, shift: u32) -> i64 {
        let rate = (delta << shift) as i64;
        avg + ((rate - avg) >> 2)
    }

    #[test]
    fn a_punctual_sample_is_ipvs_arithmetic() {
        let mut e = Estimator::new(stats(0));
        let (mut cps, mut inbps) = (0i64, 0i64);
        for i in 1..=60u64 {
            e.sample(stats(8 * i), INTERVAL);
            cps = ipvs_step(cps, 8, 9);
            inbps = ipvs_step(inbps, 8000, 4);
            assert_eq!(e.cps as i64, cps, "sample {i}");
            assert_eq!(e.inbps as i64, inbps, "sample {i}");
        }
        // Converged on 4 conns/s, 40 / 80 pps, 4 000 / 12 000 B/s.
        let r = e.read(ServiceKey::default(), 0);
        assert_eq!(
            (r.cps, r.inpps, r.outpps, r.inbps, r.outbps),
            (4, 40, 80, 4000, 12000)
        );
    }

    #[test]
    fn rates_converge_by_a_quarter_per_sample() {
        let mut e = Estimator::new(stats(0));
        // 1 000 packets/s in: 2 000 per 2 s.
        let mut n = 0;
        let mut seen = Vec::new();
        for _ in 0..8 {
            n += 200;
            e.sample(stats(n), INTERVAL);
            seen.push(e.read(ServiceKey::default(), 0).inpps);
        }
        // 1 - (3/4)^k of the rate after k samples, rounded as IPVS reads.
        assert_eq!(seen, [250, 437, 578, 684, 763, 822, 867, 900]);
    }

    #[test]
    fn a_late_sample_is_divided_by_its_interval() {
        let mut a = Estimator::new(stats(0));
        let mut b = Estimator::new(stats(0));
        a.sample(stats(100), INTERVAL);
        b.sample(stats(150), Duration::from_secs(3));
        assert_eq!(
            a,
            Estimator {
                last: stats(100),
                ..b
            }
        );
    }

    #[test]
    fn counters_that_go_down_restart_at_zero() {
        let mut e = Estimator::new(stats(0));
        e.sample(stats(100), INTERVAL);
        assert_ne!(e.read(ServiceKey::default(), 0).cps, 0);
        e.sample(stats(3), INTERVAL);
        assert_eq!(e, Estimator::new(stats(3)));
        assert_eq!(e.read(ServiceKey::default(), 0).outbps, 0);
    }

    #[test]
    fn rates_decay_to_zero_when_traffic_stops() {
        let mut e = Estimator::new(stats(0));
        e.sample(stats(1000), INTERVAL);
        for _ in 0..60 {
            e.sample(stats(1000), INTERVAL);
        }
        let r = e.read(ServiceKey::default(), 0);
        assert_eq!((r.cps, r.inpps, r.outbps), (0, 0, 0));
    }

    fn svc(id: u32, port: u16, n: u64, reals: &[(u32, u32, u64)]) -> SvcView {
        SvcView {
            key: ServiceKey {
                port,
                ..Default::default()
            },
            id,
            stats: stats(n),
            reals: reals
                .iter()
                .map(|&(idx, generation, n)| crate::metrics::view::RealView {
                    idx,
                    generation,
                    addr: std::net::Ipv4Addr::LOCALHOST.into(),
                    port: 80,
                    weight: 1,
                    active: 0,
                    inactive: 0,
                    stats: stats(n),
                })
                .collect(),
        }
    }

    #[test]
    fn each_slot_keeps_its_estimator_until_it_changes_hands() {
        let mut all = Estimators::default();
        let first = all.sample(&[svc(0, 80, 0, &[(3, 1, 0)])], stats(0), INTERVAL);
        assert_eq!(first.services[0].1.cps, 0);
        let s = all.sample(&[svc(0, 80, 100, &[(3, 1, 40)])], stats(100), INTERVAL);
        assert_eq!(s.services[0].1.cps, 12); // 50/s × 1/4 = 12.5, read as IPVS rounds
        assert_eq!(s.reals[0].1.cps, 5);
        assert_eq!(s.reals[0].1.generation, 1);
        assert_eq!(s.totals.cps, 12);
        // Slot 3 given to another real server (generation 2) and slot 0
        // to another service: both start over from their counters.
        let s = all.sample(&[svc(0, 81, 500, &[(3, 2, 900)])], stats(600), INTERVAL);
        assert_eq!((s.services[0].1.cps, s.services[0].1.key.port), (0, 81));
        assert_eq!(s.reals[0].1.cps, 0);
        assert_eq!(all.est.len(), 3);
    }
}
