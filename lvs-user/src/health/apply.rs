//! Making the tables show the checker's services: the difference between
//! what was applied last and what is wanted now, written into a snapshot
//! taken under the pin directory's lock and committed at once.
//!
//! Only what the checker manages is touched: services and real servers
//! that `lvsadm` added stay, and a configured server whose wanted entry
//! did not change is left as the operator may have edited it. A service
//! the checker manages that is missing from the tables (deleted with
//! `lvsadm -D`) is made again.

use std::{net::IpAddr, path::Path};

use anyhow::Result;

use crate::model::{RealServer, ServiceAddr, Snapshot, VirtualService};
use crate::tables::Tables;

/// The part of a real server the checker sets.
fn same_real(a: &RealServer, b: &RealServer) -> bool {
    a.addr == b.addr
        && a.port == b.port
        && a.method == b.method
        && a.weight == b.weight
        && a.u_threshold == b.u_threshold
        && a.l_threshold == b.l_threshold
}

fn same_params(a: &VirtualService, b: &VirtualService) -> bool {
    a.sched == b.sched
        && a.sched_flags == b.sched_flags
        && a.persistence == b.persistence
        && a.ops == b.ops
}

fn find<'a>(v: &'a [VirtualService], k: &ServiceAddr) -> Option<&'a VirtualService> {
    v.iter().find(|s| s.key == *k)
}

fn real_key(r: &RealServer) -> (std::net::IpAddr, u16) {
    (r.addr, r.port)
}

/// Sets (or, with `None`, removes) one real server of `svc`, keeping its
/// place and counters when it stays.
fn set_real(svc: &mut VirtualService, key: (std::net::IpAddr, u16), want: Option<&RealServer>) {
    let at = svc.reals.iter().position(|r| real_key(r) == key);
    match (at, want) {
        (Some(i), None) => {
            svc.reals.remove(i);
        }
        (Some(i), Some(w)) => {
            let r = &mut svc.reals[i];
            r.method = w.method;
            r.weight = w.weight;
            r.u_threshold = w.u_threshold;
            r.l_threshold = w.l_threshold;
        }
        (None, Some(w)) => svc.reals.push(w.clone()),
        (None, None) => {}
    }
}

/// Edits `snap` from `old` (what was applied, `None` at start: everything
/// is applied) to `new`. Returns whether anything changed.
pub fn edit(snap: &mut Snapshot, old: Option<&[VirtualService]>, new: &[VirtualService]) -> bool {
    let before = snap.clone();
    if let Some(old) = old {
        for o in old {
            if find(new, &o.key).is_none() {
                snap.services.retain(|s| s.key != o.key);
            }
        }
    }
    for n in new {
        let o = old.and_then(|old| find(old, &n.key));
        let Some(s) = snap.service_mut(&n.key) else {
            let mut s = VirtualService::new(n.key, n.sched);
            s.sched_flags = n.sched_flags;
            s.persistence = n.persistence;
            s.ops = n.ops;
            s.reals = n.reals.clone();
            snap.services.push(s);
            continue;
        };
        if o.is_none_or(|o| !same_params(o, n)) {
            s.sched = n.sched;
            s.sched_flags = n.sched_flags;
            s.persistence = n.persistence;
            s.ops = n.ops;
        }
        let mut keys: Vec<_> = n.reals.iter().map(real_key).collect();
        if let Some(o) = o {
            keys.extend(
                o.reals
                    .iter()
                    .map(real_key)
                    .filter(|k| !n.reals.iter().any(|r| real_key(r) == *k)),
            );
        }
        for k in keys {
            let want = n.reals.iter().find(|r| real_key(r) == k);
            let had = o.and_then(|o| o.reals.iter().find(|r| real_key(r) == k));
            let changed = match (had, want) {
                (Some(a), Some(b)) => !same_real(a, b),
                (None, None) => false,
                _ => true,
            };
            // At start (no `old`) every configured entry is written.
            if changed || o.is_none() {
                set_real(s, k, want);
            }
        }
    }
    *snap != before
}

/// A configured real server that is out of its service because its
/// checks failed (not inhibited): IPVS drops its connections' packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub service: ServiceAddr,
    pub addr: IpAddr,
    pub port: u16,
}

/// What becomes of the connections of [`Failed`] servers: dropped, and
/// with `expire` (IPVS's `expire_nodest_conn=1`) ended at their next packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nodest {
    pub expire: bool,
}

/// One change of the tables under `dir`: snapshot, [`edit`], commit (under
/// the directory's lock, which `Tables::open` takes and holds); then the
/// slots the `failed` servers left are marked (`Tables::mark_nodest`),
/// whether or not this change removed them, so that a retry after a
/// failed marking marks them too. Servers removed otherwise (a reload
/// that drops them, a sorry server going, quorum) are not marked: their
/// connections continue as after `lvsadm -d`.
pub fn apply(
    dir: &Path,
    old: Option<&[VirtualService]>,
    new: &[VirtualService],
    failed: &[Failed],
    nodest: Nodest,
) -> Result<bool> {
    let mut t = Tables::open(dir)?;
    let mut snap = t.snapshot()?;
    let changed = edit(&mut snap, old, new);
    if changed {
        t.commit(&snap)?;
    }
    for f in failed {
        t.mark_nodest(&f.service, f.addr, f.port, nodest.expire)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Method, Proto, Scheduler};

    fn key(port: u16) -> ServiceAddr {
        ServiceAddr {
            proto: Proto::Tcp,
            addr: "192.168.47.128".parse().unwrap(),
            port,
        }
    }

    fn svc(port: u16, reals: &[(u8, u32)]) -> VirtualService {
        let mut s = VirtualService::new(key(port), Scheduler::Rr);
        for &(i, w) in reals {
            s.reals.push(RealServer::new(
                format!("192.168.47.{i}").parse().unwrap(),
                80,
                Method::Masq,
                w,
            ));
        }
        s
    }

    #[test]
    fn first_apply_writes_everything_and_keeps_others() {
        let mut snap = Snapshot::default();
        snap.services.push(svc(8080, &[(9, 1)]));
        let new = [svc(80, &[(2, 1), (3, 1)])];
        assert!(edit(&mut snap, None, &new));
        assert_eq!(snap.services.len(), 2);
        assert_eq!(snap.service(&key(80)).unwrap().reals.len(), 2);
        assert!(!edit(&mut snap, Some(&new), &new), "nothing to do twice");
    }

    #[test]
    fn only_changed_servers_are_touched() {
        let old = [svc(80, &[(2, 1), (3, 1)])];
        let mut snap = Snapshot::default();
        edit(&mut snap, None, &old);
        // The operator raised rs3's weight and added rs9 by hand.
        let s = snap.service_mut(&key(80)).unwrap();
        s.reals[1].weight = 7;
        s.reals.push(RealServer::new(
            "192.168.47.9".parse().unwrap(),
            80,
            Method::Masq,
            1,
        ));
        // rs2 fails: removed; rs3 and rs9 stay as they are.
        let new = [svc(80, &[(3, 1)])];
        assert!(edit(&mut snap, Some(&old), &new));
        let s = snap.service(&key(80)).unwrap();
        let got: Vec<_> = s
            .reals
            .iter()
            .map(|r| (r.addr.to_string(), r.weight))
            .collect();
        assert_eq!(
            got,
            [
                ("192.168.47.3".to_string(), 7),
                ("192.168.47.9".to_string(), 1)
            ]
        );
        // Back with weight 0 (inhibited) then 1.
        let inh = [svc(80, &[(2, 0), (3, 1)])];
        assert!(edit(&mut snap, Some(&new), &inh));
        assert_eq!(snap.service(&key(80)).unwrap().reals[2].weight, 0);
        assert!(edit(&mut snap, Some(&inh), &old));
        assert_eq!(snap.service(&key(80)).unwrap().reals[2].weight, 1);
    }

    #[test]
    fn removed_services_go_and_deleted_ones_come_back() {
        let old = [svc(80, &[(2, 1)]), svc(81, &[(2, 1)])];
        let mut snap = Snapshot::default();
        edit(&mut snap, None, &old);
        snap.services.retain(|s| s.key != key(80));
        let new = [svc(80, &[(2, 1), (3, 1)])];
        assert!(edit(&mut snap, Some(&old), &new));
        assert!(snap.service(&key(81)).is_none());
        assert_eq!(snap.service(&key(80)).unwrap().reals.len(), 2);
    }
}
