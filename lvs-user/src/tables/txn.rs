//! Writing a plan as one transaction: everything goes into the copies of
//! the generation after the published one (service entries, real-server
//! views) and into regions the published generation does not use, then
//! one word publishes it.
//!
//! The rules that make it safe:
//! - A write never changes a byte the published generation reads: service
//!   entries are rewritten whole with the published copy as it was read,
//!   `REAL_VIEWS` likewise; member lists and scheduler tables go into
//!   fresh regions; a real slot the published generation schedules to is
//!   never given to another server (`plan`'s busy set).
//! - The copies and regions only the previous generation used are
//!   overwritten by the *next* change, and only after an RCU grace period
//!   since the publication ([`Tables::settle`]): XDP programs run inside
//!   RCU read-side sections, so by then no packet still schedules with
//!   them.
//! - A change cut short before its publication leaves the published
//!   generation whole; what it wrote is unreachable from it and is
//!   rewritten or reclaimed by the next change (snapshot derives every
//!   slot's state from the published generation alone).

use std::time::Duration;

use anyhow::{Context, Result};
use lvs_common::{
    RealConns, RealView, Service, ServiceEntry, GEN_CURRENT, GEN_PUBLISHED_AT, REAL_F_IN_USE,
    REAL_F_MEMBER, SVC_F_DELETED,
};

use super::{monotonic_ns, plan::Plan, zeros, Tables};

/// A publication older than this is surely past its grace period (an XDP
/// program runs for microseconds): the next change need not wait.
const SETTLED_AFTER_NS: u64 = 1_000_000_000;

/// `MEMBARRIER_CMD_GLOBAL`: returns once every CPU went through an RCU
/// grace period (the kernel's `synchronize_rcu()`).
const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;

/// Waits until every packet that may have read the generation before the
/// published one has finished.
fn grace_period() {
    // SAFETY: membarrier takes no pointers.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if r != 0 {
        // nohz_full kernels refuse it: a time well beyond any program run.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The published generation and when it was published, from a
/// `GENERATION` map (the sweeper's, opened through the object).
pub fn published(m: &aya::maps::Map) -> Result<(u64, u64)> {
    let a: aya::maps::Array<&aya::maps::MapData, u64> = aya::maps::Array::try_from(m)?;
    Ok((a.get(&GEN_CURRENT, 0)?, a.get(&GEN_PUBLISHED_AT, 0)?))
}

/// Whether a walk of the connections that started at `walk_start`, with
/// generation `walked` published, can tell which deleted services have
/// no connection left: nothing was published since, and the publication
/// was settled (no packet of the generation before could still be opening
/// a connection) before the walk began.
pub fn buriable(m: &aya::maps::Map, walked: (u64, u64), walk_start: u64) -> Result<bool> {
    let now = published(m)?;
    Ok(now == walked && walk_start.saturating_sub(walked.1) >= SETTLED_AFTER_NS)
}

/// A service copy for a generation that has no such service: no members,
/// kept for the id (connections of a deleted service, or one the other
/// generation adds).
pub(super) fn tombstone(of: &Service) -> Service {
    let mut t = *of;
    t.flags |= SVC_F_DELETED;
    t.dests_len = 0;
    t.table_len = 0;
    t
}

/// What generation's schedulers read of a real server entry.
fn view_of(r: &lvs_common::Real) -> RealView {
    if r.flags & REAL_F_MEMBER == 0 {
        return RealView::default();
    }
    RealView {
        weight: r.weight,
        u_threshold: r.u_threshold,
        l_threshold: r.l_threshold,
        method: r.method,
        flags: REAL_F_MEMBER,
        _pad: [0; 2],
    }
}

impl Tables {
    /// Before a change: waits out the grace period of the last publication
    /// if it is recent, then removes the deleted services that have no
    /// connection left (their real servers count none), which frees their
    /// ids and slots for this change.
    pub(super) fn settle(&mut self) -> Result<()> {
        let at = self.generation.get(&GEN_PUBLISHED_AT, 0)?;
        if monotonic_ns().saturating_sub(at) < SETTLED_AFTER_NS {
            grace_period();
        }
        let mut counted: std::collections::HashMap<u32, u64> = Default::default();
        for (i, r) in self.slots.iter().enumerate() {
            if r.flags & REAL_F_IN_USE != 0 {
                let c = self.real_conns.get(&(i as u32), 0)?;
                *counted.entry(r.svc_id).or_default() += c.active + c.inactive;
            }
        }
        let idle: Vec<_> = self
            .tombstones
            .iter()
            .filter(|(_, t)| counted.get(&t.id).copied().unwrap_or(0) == 0)
            .map(|(k, t)| (*k, t.id))
            .collect();
        for (k, id) in idle {
            self.services
                .remove(&k)
                .context("removing a deleted service")?;
            self.tombstones.remove(&k);
            self.entries.remove(&k);
            // Its servers' slots are free again (no connection holds them).
            for (i, r) in self.slots.iter_mut().enumerate() {
                if r.svc_id == id && r.flags == REAL_F_IN_USE {
                    r.flags = 0;
                    let mut raw = self.raw_reals[i];
                    raw.flags = 0;
                    self.reals.set(i as u32, raw, 0)?;
                    self.raw_reals[i] = raw;
                }
            }
        }
        Ok(())
    }

    /// Writes `plan` into the next generation and publishes it.
    pub(super) fn write_and_publish(&mut self, plan: Plan) -> Result<()> {
        let next = self.gen.wrapping_add(1);
        self.load_views()?;
        self.mark_addresses(&plan)?;

        // Real servers: the newest values in REALS (the established path
        // and the flow cache read them), the next generation's view in
        // REAL_VIEWS. A fresh slot is one no published member uses.
        let mut wanted: Vec<RealView> = vec![RealView::default(); self.raw_views.len()];
        for s in &plan.services {
            for (idx, r, fresh) in &s.reals {
                let i = *idx as usize;
                if *fresh {
                    self.real_conns.set(*idx, RealConns::default(), 0)?;
                    self.real_stats.set(*idx, zeros()?, 0)?;
                }
                if self.raw_reals[i] != *r {
                    self.reals.set(*idx, *r, 0)?;
                    self.raw_reals[i] = *r;
                }
                wanted[i] = view_of(r);
            }
        }
        for (i, want) in wanted.iter().enumerate() {
            let mut v = self.raw_views[i];
            if v.view(next) != want {
                *v.view_mut(next) = *want;
                self.real_views.set(i as u32, v, 0)?;
                self.raw_views[i] = v;
            }
        }

        // Member lists and scheduler tables, in regions of their own.
        for s in &plan.services {
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
        }

        // Service entries: the next generation's copy; the published one
        // as read (a new service is a tombstone there).
        let mut want: Vec<(lvs_common::ServiceKey, Service)> = plan
            .services
            .iter()
            .map(|s| {
                let mut v = s.value;
                v.flags &= !SVC_F_DELETED;
                (s.key, v)
            })
            .collect();
        for k in &plan.removed_services {
            want.push((*k, tombstone(&self.placed[k].value)));
        }
        let planned: std::collections::HashSet<_> = want.iter().map(|(k, _)| *k).collect();
        for (k, t) in &self.tombstones {
            if !planned.contains(k) {
                want.push((*k, tombstone(t)));
            }
        }
        for (k, v) in want {
            let old = self.entries.get(&k).copied();
            let mut e = old.unwrap_or_else(|| {
                let t = tombstone(&v);
                ServiceEntry { views: [t, t] }
            });
            *e.view_mut(next) = v;
            if old != Some(e) {
                self.services.insert(k, e, 0)?;
                self.entries.insert(k, e);
            }
        }

        // One word: from here on new connections meet the new table.
        let now = monotonic_ns();
        self.generation.set(GEN_PUBLISHED_AT, now, 0)?;
        self.generation.set(GEN_CURRENT, next, 0)?;
        self.generation.set(GEN_PUBLISHED_AT, monotonic_ns(), 0)?;
        self.gen = next;

        // Servers no longer members: held for their connections only. The
        // flow cache sees the change of flags and sends their packets
        // through the shared path once.
        for &i in plan.dropped_reals.iter().chain(&plan.freed_reals) {
            let mut r = self.raw_reals[i as usize];
            if r.flags != REAL_F_IN_USE {
                r.flags = REAL_F_IN_USE;
                self.reals.set(i, r, 0)?;
                self.raw_reals[i as usize] = r;
            }
        }
        self.write_timeouts(&plan)
    }

    /// The timeouts (`--set`): not part of the generations, written as is.
    fn write_timeouts(&mut self, plan: &Plan) -> Result<()> {
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
    fn tombstones_have_no_members_and_keep_the_id() {
        let s = Service {
            id: 7,
            dests_len: 3,
            table_len: 5,
            ..Service::default()
        };
        let t = tombstone(&s);
        assert_eq!((t.id, t.dests_len, t.table_len), (7, 0, 0));
        assert_ne!(t.flags & SVC_F_DELETED, 0);
    }

    #[test]
    fn a_non_member_has_an_empty_view() {
        let mut r = lvs_common::Real {
            weight: 5,
            method: 2,
            flags: REAL_F_IN_USE,
            ..Default::default()
        };
        assert_eq!(view_of(&r), RealView::default());
        r.flags |= REAL_F_MEMBER;
        let v = view_of(&r);
        assert_eq!((v.weight, v.method, v.flags), (5, 2, REAL_F_MEMBER));
    }
}
