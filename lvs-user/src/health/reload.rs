//! A reload's new state: what stays keeps its state (so its table entry,
//! and with it its connections, stay untouched), what is new starts as at
//! start, and what went is logged (and its notify_down run) as keepalived
//! logs it on a reload.

use std::time::SystemTime;

use super::state::{fmt_addr, fmt_vs, Effect, RealState, ServiceState};
use crate::keepalived::model::{KaConfig, RealServer, VirtualServer};

/// The state of `new` after a reload from `old` in `old_states`.
pub fn carry(
    old: &KaConfig,
    old_states: &[ServiceState],
    new: &KaConfig,
    now: SystemTime,
) -> (Vec<ServiceState>, Vec<Effect>) {
    let mut fx = Vec::new();
    for (ovs, ost) in old.virtual_servers.iter().zip(old_states) {
        let nvs = new.virtual_servers.iter().find(|v| v.key == ovs.key);
        match nvs {
            None => {
                fx.push(Effect::Log(format!(
                    "Removing Virtual Server {}",
                    fmt_vs(&ovs.key)
                )));
                for (rs, st) in ovs.real_servers.iter().zip(&ost.reals) {
                    gone(ovs, rs, st, &mut fx);
                }
            }
            Some(nvs) => {
                for (rs, st) in ovs.real_servers.iter().zip(&ost.reals) {
                    if !nvs.real_servers.iter().any(|n| n.addr == rs.addr) {
                        fx.push(Effect::Log(format!(
                            "service {} no longer exist",
                            fmt_addr(rs.addr, ovs.key.proto)
                        )));
                        gone(ovs, rs, st, &mut fx);
                    }
                }
            }
        }
    }
    let states = new
        .virtual_servers
        .iter()
        .map(|nvs| {
            let old_vs = old
                .virtual_servers
                .iter()
                .zip(old_states)
                .find(|(o, _)| o.key == nvs.key);
            match old_vs {
                None => {
                    let (st, f) = ServiceState::start(nvs, now);
                    fx.extend(f);
                    st
                }
                Some((ovs, ost)) => kept(ovs, ost, nvs, now, &mut fx),
            }
        })
        .collect();
    (states, fx)
}

/// A real server that is no longer configured: removed from the table
/// (by the difference), logged, its notify_down run if it was alive.
fn gone(vs: &VirtualServer, rs: &RealServer, st: &RealState, fx: &mut Vec<Effect>) {
    fx.push(Effect::Log(format!(
        "Removing service {} from VS {}",
        fmt_addr(rs.addr, vs.key.proto),
        fmt_vs(&vs.key)
    )));
    if st.alive {
        if let Some(s) = &rs.notify_down {
            fx.push(Effect::Run(s.clone()));
        }
    }
}

fn kept(
    ovs: &VirtualServer,
    ost: &ServiceState,
    nvs: &VirtualServer,
    now: SystemTime,
    fx: &mut Vec<Effect>,
) -> ServiceState {
    let reals = nvs
        .real_servers
        .iter()
        .map(|nrs| {
            let old = ovs
                .real_servers
                .iter()
                .zip(&ost.reals)
                .find(|(o, _)| o.addr == nrs.addr);
            let Some((ors, ost)) = old else {
                return RealState::start(nrs, now);
            };
            // A checker that stays (same kind, same target) keeps its
            // state; a new one starts where the server is.
            let checkers: Vec<(bool, bool)> = nrs
                .checkers
                .iter()
                .enumerate()
                .map(
                    |(ci, nc)| match (ors.checkers.get(ci), ost.checkers.get(ci)) {
                        (Some(oc), Some(&s)) if oc.kind == nc.kind && oc.connect == nc.connect => s,
                        _ => (ost.alive, false),
                    },
                )
                .collect();
            let alive = checkers.iter().all(|&(u, _)| u);
            RealState {
                alive,
                checkers,
                // A weight changed in the file applies; else a weight
                // misc_dynamic set stays.
                weight: if nrs.weight != ors.weight {
                    nrs.weight
                } else {
                    ost.weight
                },
                since: if alive == ost.alive { ost.since } else { now },
                last: ost.last.clone(),
            }
        })
        .collect();
    let mut st = ServiceState {
        quorum_up: ost.quorum_up,
        sorry_active: ost.sorry_active
            && nvs.sorry_server.as_ref().map(|s| s.addr)
                == ovs.sorry_server.as_ref().map(|s| s.addr),
        reals,
    };
    st.update_quorum(nvs, true, fx);
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::fixture::*;

    #[test]
    fn what_stays_keeps_its_state() {
        let old = config(vec![lab()]);
        let now = SystemTime::UNIX_EPOCH;
        let (mut st, _) = ServiceState::start(&old.virtual_servers[0], now);
        st.verdict(&old.virtual_servers[0], 0, 0, false, None, now);
        let mut vs = lab();
        vs.real_servers[1] = real("192.168.47.4:80", 2);
        let mut other = lab();
        other.key.port = 8080;
        let new = config(vec![vs, other]);
        let later = now + std::time::Duration::from_secs(5);
        let (states, fx) = carry(&old, &[st], &new, later);
        assert!(!states[0].reals[0].alive, "rs1 stays down");
        assert_eq!(states[0].reals[0].since, now);
        assert!(states[0].reals[1].alive, "a new server starts up");
        assert_eq!(states[0].reals[1].weight, 2);
        assert!(states[1].reals.iter().all(|r| r.alive));
        let logs: Vec<_> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Log(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            logs,
            [
                "service [192.168.47.3]:tcp:80 no longer exist",
                "Removing service [192.168.47.3]:tcp:80 from VS [192.168.47.128]:tcp:80",
            ]
        );
        let (_, fx) = carry(&new, &states, &config(vec![]), later);
        assert!(fx.contains(&Effect::Log(
            "Removing Virtual Server [192.168.47.128]:tcp:8080".into()
        )));
    }
}
