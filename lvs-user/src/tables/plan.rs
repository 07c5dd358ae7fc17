//! Planning a commit: where every service, member list, scheduler table
//! and real server of the new configuration goes, computed from the last
//! snapshot before anything is written, so that a commit that does not
//! fit fails without touching the maps.

use std::collections::{HashMap as StdHashMap, HashSet};

use anyhow::{anyhow, bail, Result};
use lvs_common::{
    Real, Service, ServiceKey, AF_INET6, REAL_F_IN_USE, REAL_F_MEMBER, SVC_F_ONEPACKET,
    SVC_F_PERSISTENT, TABLE_EMPTY,
};

use super::{
    addr::{addr_words, family_of, port_raw, raw_port, service_key, words_addr},
    regions::Regions,
    Tables,
};
use crate::{
    model::{RealServer, Snapshot, Timeouts, VirtualService},
    schedtab,
};

/// One service as it will be written.
pub(super) struct PlannedService {
    pub(super) key: ServiceKey,
    pub(super) value: Service,
    /// (index, entry, freshly allocated) per member.
    pub(super) reals: Vec<(u32, Real, bool)>,
    pub(super) dests_changed: bool,
    pub(super) table: Option<Vec<u32>>,
    pub(super) new_id: bool,
}

pub(super) struct Plan {
    pub(super) services: Vec<PlannedService>,
    pub(super) removed_services: Vec<ServiceKey>,
    /// Real slots that stop being members (kept in use for their
    /// connections until the slot is reused).
    pub(super) dropped_reals: Vec<u32>,
    /// Real slots whose whole service went away: freed.
    pub(super) freed_reals: Vec<u32>,
    pub(super) timeouts: Timeouts,
}

impl Tables {
    pub(super) fn plan(&self, new: &Snapshot) -> Result<Plan> {
        let new_keys: Vec<ServiceKey> = new.services.iter().map(|s| service_key(&s.key)).collect();
        let kept: HashSet<ServiceKey> = new_keys.iter().copied().collect();
        let removed_services: Vec<ServiceKey> = self
            .placed
            .keys()
            .filter(|k| !kept.contains(k))
            .copied()
            .collect();
        let mut planner = Planner::new(self, &removed_services);
        let mut services = Vec::new();
        for (vs, key) in new.services.iter().zip(&new_keys) {
            services.push(planner.service(vs, *key)?);
        }
        Ok(Plan {
            services,
            removed_services,
            dropped_reals: planner.dropped_reals.into_iter().collect(),
            freed_reals: planner.freed_reals,
            timeouts: new.timeouts,
        })
    }
}

/// Allocation state of one plan, carried from service to service.
struct Planner<'a> {
    tables: &'a Tables,
    /// Every real slot as it will be after the commit.
    slots: Vec<Real>,
    /// Service ids of services that stay, and of every deleted one, which
    /// keeps its id while it may still have connections.
    used_ids: HashSet<u32>,
    next_id: u32,
    max_services: u32,
    dests: Regions,
    dests_cap: u32,
    sched_tables: Regions,
    table_cap: u32,
    /// Slots of real servers deleted from a service but still serving
    /// its connections, by (service, address, port): re-adding the same
    /// server revives its slot.
    revivable: StdHashMap<(u32, [u32; 4], u16), u32>,
    /// Allocation cursors: a commit of thousands of servers must not
    /// rescan the table for each one.
    next_free: usize,
    next_reclaim: usize,
    dropped_reals: HashSet<u32>,
    freed_reals: Vec<u32>,
    /// Members of the published generation: never given to another server
    /// by this change, whose packets may still schedule to them until it is
    /// published.
    busy: HashSet<u32>,
}

impl<'a> Planner<'a> {
    fn new(tables: &'a Tables, removed_services: &[ServiceKey]) -> Planner<'a> {
        let mut slots = tables.slots.clone();
        // A deleted service's servers stay in use for its connections (and
        // can be revived by re-adding it); their slots are reclaimed last.
        let mut freed_reals = Vec::new();
        for k in removed_services {
            for &idx in &tables.placed[k].reals {
                freed_reals.push(idx);
                slots[idx as usize].flags = REAL_F_IN_USE;
            }
        }
        let used_ids = tables
            .placed
            .values()
            .map(|p| p.value.id)
            .chain(tables.tombstones.values().map(|t| t.id))
            .collect();
        let dests_cap = tables.dests.len();
        let dests = Regions::new(
            tables
                .placed
                .values()
                .map(|p| (p.value.dests_off, p.value.dests_len))
                .collect(),
            dests_cap,
        );
        let table_cap = tables.sched_table.len();
        let sched_tables = Regions::new(
            tables
                .placed
                .values()
                .map(|p| (p.value.table_off, p.value.table_len))
                .collect(),
            table_cap,
        );
        let busy = tables
            .placed
            .values()
            .flat_map(|p| p.reals.iter().copied())
            .collect();
        let revivable = slots
            .iter()
            .enumerate()
            .filter(|(_, r)| r.flags == REAL_F_IN_USE)
            .map(|(i, r)| ((r.svc_id, r.addr, r.port), i as u32))
            .collect();
        Planner {
            tables,
            slots,
            used_ids,
            next_id: 0,
            max_services: tables.sched_state.len(),
            dests,
            dests_cap,
            sched_tables,
            table_cap,
            revivable,
            next_free: 0,
            next_reclaim: 0,
            dropped_reals: HashSet::new(),
            freed_reals,
            busy,
        }
    }

    /// Places one service of the new configuration.
    fn service(&mut self, vs: &VirtualService, key: ServiceKey) -> Result<PlannedService> {
        let old = self.tables.placed.get(&key);
        let tomb = self.tables.tombstones.get(&key);
        let mut value = old.map(|p| p.value).or(tomb.copied()).unwrap_or_default();
        let new_id = old.is_none();
        // A re-added service takes its old id back, so its servers'
        // slots (and their connections) are revived.
        let revive = old.is_some() || tomb.is_some();
        if new_id && tomb.is_none() {
            value.id = self.take_id()?;
        }
        set_settings(&mut value, vs, key.family);
        let old_reals: Vec<u32> = old.map(|p| p.reals.clone()).unwrap_or_default();
        let reals = self.members(vs, value.id, &old_reals, revive)?;
        self.drop_left(&old_reals, &reals);
        let idxs: Vec<u32> = reals.iter().map(|(i, _, _)| *i).collect();
        let dests_changed = new_id || idxs != old_reals;
        if dests_changed {
            let len = idxs.len() as u32;
            let cap = self.dests_cap;
            value.dests_off = self
                .dests
                .alloc(len)
                .ok_or_else(|| anyhow!("member table full ({cap} slots)"))?;
            value.dests_len = len;
        }
        let table = sched_table(vs, &reals)?;
        // The table is a function of the scheduler and the members with
        // their weights: if none changed, neither did it (comparing a
        // Maglev table entry by entry would cost 65 537 lookups).
        let table_same = old.is_some_and(|p| {
            !dests_changed
                && p.value.sched == value.sched
                && p.value.table_len as usize == table.len()
                && reals
                    .iter()
                    .all(|(i, r, _)| self.tables.slots[*i as usize].weight == r.weight)
        });
        let table = if table_same {
            None
        } else {
            let len = table.len() as u32;
            let cap = self.table_cap;
            value.table_off = self.sched_tables.alloc(len).ok_or_else(|| {
                anyhow!("scheduler table full ({cap} entries; raise `lvs load --sched-table-size`)")
            })?;
            value.table_len = len;
            Some(table)
        };
        Ok(PlannedService {
            key,
            value,
            reals,
            dests_changed,
            table,
            new_id,
        })
    }

    /// The lowest service id not in use.
    fn take_id(&mut self) -> Result<u32> {
        while self.used_ids.contains(&self.next_id) {
            self.next_id += 1;
        }
        let max_services = self.max_services;
        if self.next_id >= max_services {
            bail!("service table full ({max_services} services; raise `lvs load --max-services`)");
        }
        self.used_ids.insert(self.next_id);
        Ok(self.next_id)
    }

    /// Members: keep the slots of servers that stay, take free slots (or
    /// revive this server's own dropped slot) for new ones.
    fn members(
        &mut self,
        vs: &VirtualService,
        svc_id: u32,
        old_reals: &[u32],
        revive: bool,
    ) -> Result<Vec<(u32, Real, bool)>> {
        let mut reals = Vec::new();
        for rs in &vs.reals {
            let (idx, fresh) = self.slot_for(rs, svc_id, old_reals, revive)?;
            let mut r = self.slots[idx as usize];
            if fresh {
                r.generation = r.generation.wrapping_add(1);
            }
            r.addr = addr_words(rs.addr);
            r.port = port_raw(rs.port);
            r.family = family_of(rs.addr);
            r.method = rs.method.code();
            r.flags = REAL_F_IN_USE | REAL_F_MEMBER;
            r.weight = rs.weight;
            r.svc_id = svc_id;
            r.u_threshold = rs.u_threshold;
            r.l_threshold = rs.l_threshold;
            self.slots[idx as usize] = r;
            reals.push((idx, r, fresh));
        }
        Ok(reals)
    }

    /// The slot of one member: (index, freshly allocated).
    fn slot_for(
        &mut self,
        rs: &RealServer,
        svc_id: u32,
        old_reals: &[u32],
        revive: bool,
    ) -> Result<(u32, bool)> {
        let want_addr = addr_words(rs.addr);
        let want_port = port_raw(rs.port);
        let same = |r: &Real| r.addr == want_addr && r.port == want_port && r.svc_id == svc_id;
        let existing = old_reals
            .iter()
            .copied()
            .find(|&i| same(&self.slots[i as usize]))
            .or_else(|| {
                if !revive {
                    return None;
                }
                let i = self.revivable.remove(&(svc_id, want_addr, want_port))?;
                (self.slots[i as usize].flags == REAL_F_IN_USE).then_some(i)
            });
        match existing {
            Some(i) => Ok((i, false)),
            None => Ok((self.free_slot()?, true)),
        }
    }

    /// A slot for a new member: never-used or freed slots first; dropped
    /// ones (whose connections then become stale) are reclaimed last, and
    /// none the published generation still schedules to.
    fn free_slot(&mut self) -> Result<u32> {
        let slots = &self.slots;
        while self.next_free < slots.len() && slots[self.next_free].flags != 0 {
            self.next_free += 1;
        }
        if self.next_free < slots.len() {
            return Ok(self.next_free as u32);
        }
        while self.next_reclaim < slots.len()
            && (slots[self.next_reclaim].flags != REAL_F_IN_USE
                || self.busy.contains(&(self.next_reclaim as u32)))
        {
            self.next_reclaim += 1;
        }
        if self.next_reclaim >= slots.len() {
            bail!(
                "real server table full ({} slots; raise `lvs load --max-reals`)",
                slots.len()
            );
        }
        Ok(self.next_reclaim as u32)
    }

    /// Old members the new list no longer holds stay in use (for their
    /// connections) but stop being members.
    fn drop_left(&mut self, old_reals: &[u32], reals: &[(u32, Real, bool)]) {
        for &i in old_reals {
            if !reals.iter().any(|(j, _, _)| *j == i) {
                self.slots[i as usize].flags = REAL_F_IN_USE;
                self.dropped_reals.insert(i);
            }
        }
    }
}

/// The service entry's scheduler, flags and persistence from `vs`.
fn set_settings(value: &mut Service, vs: &VirtualService, family: u8) {
    value.sched = vs.sched.code();
    value.family = family;
    value.flags = vs.sched_flags;
    if vs.ops {
        value.flags |= SVC_F_ONEPACKET;
    }
    value.persist_timeout = 0;
    value.netmask = [0; 4];
    if let Some(p) = vs.persistence {
        value.flags |= SVC_F_PERSISTENT;
        value.persist_timeout = p.timeout;
        value.netmask = if family == AF_INET6 {
            [p.v6_prefix as u32, 0, 0, 0]
        } else {
            [u32::from_ne_bytes(p.netmask.octets()), 0, 0, 0]
        };
    }
}

/// The scheduler table of `vs` over its placed members, as real-server
/// indices.
fn sched_table(vs: &VirtualService, reals: &[(u32, Real, bool)]) -> Result<Vec<u32>> {
    let members: Vec<schedtab::Member> = reals
        .iter()
        .map(|(_, r, _)| {
            schedtab::Member::new(words_addr(r.addr, r.family), raw_port(r.port), r.weight)
        })
        .collect();
    let positions = schedtab::table(vs.sched, &members)?;
    Ok(positions
        .iter()
        .map(|&p| {
            if p == schedtab::EMPTY {
                TABLE_EMPTY
            } else {
                reals[p as usize].0
            }
        })
        .collect())
}
