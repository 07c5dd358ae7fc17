//! keepalived's state machine of one virtual server, without any I/O:
//! its real servers' alive flags (every checker must be up), effective
//! weights (`misc_dynamic`), the quorum with its hysteresis and the sorry
//! server. Each change returns what keepalived would log and run; the
//! table a state stands for is [`super::desired`]'s business.
//!
//! The rules, as keepalived's check/ipwrapper.c has them: a server is
//! alive while none of its checkers is failed; `alpha` starts every
//! checker failed. The quorum is up while the alive servers' weights sum
//! to at least `quorum` (less `hysteresis` to stay up, plus it to come
//! up); while it is down a configured sorry server replaces the alive
//! servers in the table, and real servers' changes wait for its return.

use std::{net::SocketAddr, time::SystemTime};

use crate::keepalived::model::{RealServer, VirtualServer};
use crate::model::{Proto, ServiceAddr};

/// What a change asks the engine to do besides editing the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A line for the log, in keepalived's words.
    Log(String),
    /// A `notify_up`/`notify_down`/`quorum_up`/`quorum_down` command line.
    Run(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RealState {
    /// keepalived's `alive`: no checker is failed.
    pub alive: bool,
    /// Each checker: up? and has it run yet?
    pub checkers: Vec<(bool, bool)>,
    /// The weight the server has while alive (its configured weight, or
    /// what `misc_dynamic` set).
    pub weight: u32,
    /// When `alive` last changed (or the checker started).
    pub since: SystemTime,
    /// The latest check's result, for `lvsadm --health`.
    pub last: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceState {
    pub quorum_up: bool,
    /// The sorry server is in the table in place of the real servers.
    pub sorry_active: bool,
    pub reals: Vec<RealState>,
}

/// `[192.168.47.2]:tcp:80`, keepalived's FMT_RS / FMT_VS.
pub fn fmt_addr(addr: SocketAddr, proto: Proto) -> String {
    let p = match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    format!("[{}]:{p}:{}", addr.ip(), addr.port())
}

pub fn fmt_vs(key: &ServiceAddr) -> String {
    fmt_addr(SocketAddr::new(key.addr, key.port), key.proto)
}

fn fmt_rs(vs: &VirtualServer, rs: &SocketAddr) -> String {
    fmt_addr(*rs, vs.key.proto)
}

impl RealState {
    /// A server as a fresh start sees it: up, unless a checker has
    /// `alpha`, which starts failed. A server without checkers is always
    /// up.
    pub fn start(rs: &RealServer, now: SystemTime) -> RealState {
        let checkers: Vec<(bool, bool)> = rs.checkers.iter().map(|c| (!c.alpha, false)).collect();
        RealState {
            alive: checkers.iter().all(|&(u, _)| u),
            checkers,
            weight: rs.weight,
            since: now,
            last: if rs.checkers.is_empty() {
                "no checker: always up".into()
            } else {
                "not checked yet".into()
            },
        }
    }
}

impl ServiceState {
    /// The state of a virtual server at start (keepalived's
    /// init_service_vs): servers as [`RealState::start`], the quorum from
    /// their weights, the sorry server in if the quorum is down.
    pub fn start(vs: &VirtualServer, now: SystemTime) -> (ServiceState, Vec<Effect>) {
        let reals = vs
            .real_servers
            .iter()
            .map(|rs| RealState::start(rs, now))
            .collect();
        let mut st = ServiceState {
            quorum_up: false,
            sorry_active: false,
            reals,
        };
        st.quorum_up = st.weight_sum() >= vs.quorum as u64 + vs.hysteresis as u64;
        let mut fx = Vec::new();
        st.update_quorum(vs, true, &mut fx);
        (st, fx)
    }

    /// The summed weights of the alive servers.
    pub fn weight_sum(&self) -> u64 {
        self.reals
            .iter()
            .filter(|r| r.alive)
            .map(|r| r.weight as u64)
            .sum()
    }

    /// One checker's verdict after its retries (`up`), with the weight a
    /// `misc_dynamic` exit code asked for.
    pub fn verdict(
        &mut self,
        vs: &VirtualServer,
        ri: usize,
        ci: usize,
        up: bool,
        weight: Option<u32>,
        now: SystemTime,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        let rs = &vs.real_servers[ri];
        if let Some(w) = weight.filter(|_| up) {
            self.set_weight(vs, ri, w, &mut fx);
        }
        let real = &mut self.reals[ri];
        let Some(&(was_up, has_run)) = real.checkers.get(ci) else {
            return fx;
        };
        real.checkers[ci] = (up, true);
        if was_up == up {
            // keepalived runs the notify of the state a first check
            // confirms when that state is down (or alpha).
            if !has_run && (rs.checkers[ci].alpha || !up) {
                self.notify(ri, rs, &mut fx);
            }
            return fx;
        }
        let alive = real.checkers.iter().all(|&(u, _)| u);
        if alive != real.alive {
            self.set_alive(vs, ri, alive, now, &mut fx);
        }
        fx
    }

    /// The real server's notify script of its current state.
    fn notify(&self, ri: usize, rs: &RealServer, fx: &mut Vec<Effect>) {
        let script = if self.reals[ri].alive {
            &rs.notify_up
        } else {
            &rs.notify_down
        };
        if let Some(s) = script {
            fx.push(Effect::Run(s.clone()));
        }
    }

    fn set_alive(
        &mut self,
        vs: &VirtualServer,
        ri: usize,
        alive: bool,
        now: SystemTime,
        fx: &mut Vec<Effect>,
    ) {
        let rs = &vs.real_servers[ri];
        let inhibit = rs.inhibit_on_failure;
        let (verb, prep) = match (alive, inhibit) {
            (true, true) => ("Enabling", "of"),
            (true, false) => ("Adding", "to"),
            (false, true) => ("Disabling", "of"),
            (false, false) => ("Removing", "from"),
        };
        fx.push(Effect::Log(format!(
            "{verb} service {} {prep} VS {}",
            fmt_rs(vs, &rs.addr),
            fmt_vs(&vs.key)
        )));
        let real = &mut self.reals[ri];
        real.alive = alive;
        real.since = now;
        let script = if alive {
            &rs.notify_up
        } else {
            &rs.notify_down
        };
        if let Some(s) = script {
            fx.push(Effect::Run(s.clone()));
        }
        self.update_quorum(vs, false, fx);
    }

    /// keepalived's update_svr_wgt: a new effective weight, logged.
    fn set_weight(&mut self, vs: &VirtualServer, ri: usize, w: u32, fx: &mut Vec<Effect>) {
        let real = &mut self.reals[ri];
        if real.weight == w {
            return;
        }
        fx.push(Effect::Log(format!(
            "Changing weight from {} to {w} for {}active service {} of VS {}",
            real.weight,
            if real.alive { "" } else { "in" },
            fmt_rs(vs, &vs.real_servers[ri].addr),
            fmt_vs(&vs.key)
        )));
        real.weight = w;
        self.update_quorum(vs, false, fx);
    }

    /// keepalived's update_quorum_state.
    pub fn update_quorum(&mut self, vs: &VirtualServer, init: bool, fx: &mut Vec<Effect>) {
        let sum = self.weight_sum();
        let (q, h) = (vs.quorum as i64, vs.hysteresis as i64);
        let threshold = q + if self.quorum_up { -h } else { h };
        let sum_i = sum as i64;
        if !self.quorum_up && sum_i >= threshold {
            self.quorum_up = true;
            fx.push(Effect::Log(format!(
                "Gained quorum {q}+{h}={threshold} <= {sum} for VS {}",
                fmt_vs(&vs.key)
            )));
            if let (Some(s), true) = (&vs.sorry_server, self.sorry_active) {
                fx.push(Effect::Log(format!(
                    "{} sorry server {} from VS {}",
                    if s.inhibit { "Disabling" } else { "Removing" },
                    fmt_rs(vs, &s.addr),
                    fmt_vs(&vs.key)
                )));
                self.sorry_active = false;
                fx.push(Effect::Log(format!(
                    "Adding alive servers to the pool for VS {}",
                    fmt_vs(&vs.key)
                )));
            }
            if let Some(s) = &vs.quorum_up {
                fx.push(Effect::Run(s.clone()));
            }
        } else if (self.quorum_up && (sum == 0 || sum_i < threshold))
            || (init && !self.quorum_up && vs.sorry_server.is_some() && !self.sorry_active)
        {
            self.quorum_up = false;
            fx.push(Effect::Log(format!(
                "{} {q}-{h}={threshold} > {sum} for VS {}",
                if init {
                    "Starting with quorum down"
                } else {
                    "Lost quorum"
                },
                fmt_vs(&vs.key)
            )));
            if let (Some(s), false) = (&vs.sorry_server, self.sorry_active) {
                fx.push(Effect::Log(format!(
                    "{} sorry server {} to VS {}",
                    if s.inhibit { "Enabling" } else { "Adding" },
                    fmt_rs(vs, &s.addr),
                    fmt_vs(&vs.key)
                )));
                fx.push(Effect::Log(format!(
                    "Removing alive servers from the pool for VS {}",
                    fmt_vs(&vs.key)
                )));
                self.sorry_active = true;
            }
            if let Some(s) = &vs.quorum_down {
                fx.push(Effect::Run(s.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{desired, fixture::*};

    fn logs(fx: &[Effect]) -> Vec<&str> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Log(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    fn runs(fx: &[Effect]) -> Vec<&str> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Run(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    /// (address, weight) of the table the state stands for.
    fn table(vs: &VirtualServer, st: &ServiceState) -> Vec<(String, u32)> {
        desired::service(vs, st)
            .reals
            .iter()
            .map(|r| (format!("{}:{}", r.addr, r.port), r.weight))
            .collect()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    #[test]
    fn a_failed_server_is_removed_and_comes_back() {
        let mut vs = lab();
        vs.real_servers[0].notify_down = Some("echo down".into());
        vs.real_servers[0].notify_up = Some("echo up".into());
        let (mut st, fx) = ServiceState::start(&vs, now());
        assert!(fx.is_empty(), "{fx:?}");
        assert!(st.quorum_up);
        assert_eq!(table(&vs, &st).len(), 2);
        // A first success of a server that starts up changes nothing.
        assert!(st.verdict(&vs, 0, 0, true, None, now()).is_empty());
        let fx = st.verdict(&vs, 0, 0, false, None, now());
        assert_eq!(
            logs(&fx),
            ["Removing service [192.168.47.2]:tcp:80 from VS [192.168.47.128]:tcp:80"]
        );
        assert_eq!(runs(&fx), ["echo down"]);
        assert_eq!(table(&vs, &st), [("192.168.47.3:80".to_string(), 1)]);
        let fx = st.verdict(&vs, 0, 0, true, None, now());
        assert_eq!(
            logs(&fx),
            ["Adding service [192.168.47.2]:tcp:80 to VS [192.168.47.128]:tcp:80"]
        );
        assert_eq!(runs(&fx), ["echo up"]);
        assert_eq!(table(&vs, &st).len(), 2);
    }

    #[test]
    fn inhibit_on_failure_keeps_the_server_at_weight_0() {
        let mut vs = lab();
        vs.real_servers[0].inhibit_on_failure = true;
        vs.real_servers[0].weight = 3;
        let (mut st, _) = ServiceState::start(&vs, now());
        let fx = st.verdict(&vs, 0, 0, false, None, now());
        assert_eq!(
            logs(&fx),
            ["Disabling service [192.168.47.2]:tcp:80 of VS [192.168.47.128]:tcp:80"]
        );
        assert_eq!(table(&vs, &st)[0], ("192.168.47.2:80".to_string(), 0));
        let fx = st.verdict(&vs, 0, 0, true, None, now());
        assert_eq!(
            logs(&fx),
            ["Enabling service [192.168.47.2]:tcp:80 of VS [192.168.47.128]:tcp:80"]
        );
        assert_eq!(table(&vs, &st)[0], ("192.168.47.2:80".to_string(), 3));
    }

    #[test]
    fn alpha_starts_failed_until_a_success() {
        let mut vs = lab();
        for r in &mut vs.real_servers {
            r.checkers[0].alpha = true;
            r.notify_down = Some("down".into());
        }
        let (mut st, _) = ServiceState::start(&vs, now());
        assert!(table(&vs, &st).is_empty());
        assert!(!st.quorum_up);
        // A first failure confirms the start state: its notify runs.
        let fx = st.verdict(&vs, 1, 0, false, None, now());
        assert_eq!(runs(&fx), ["down"]);
        assert!(logs(&fx).is_empty());
        let fx = st.verdict(&vs, 0, 0, true, None, now());
        assert_eq!(
            logs(&fx)[0],
            "Adding service [192.168.47.2]:tcp:80 to VS [192.168.47.128]:tcp:80"
        );
        assert_eq!(
            logs(&fx)[1],
            "Gained quorum 1+0=1 <= 1 for VS [192.168.47.128]:tcp:80"
        );
        assert_eq!(table(&vs, &st), [("192.168.47.2:80".to_string(), 1)]);
    }

    #[test]
    fn every_checker_must_be_up() {
        let mut vs = lab();
        let extra = vs.real_servers[0].checkers[0].clone();
        vs.real_servers[0].checkers.push(extra);
        let (mut st, _) = ServiceState::start(&vs, now());
        st.verdict(&vs, 0, 1, false, None, now());
        assert!(!st.reals[0].alive);
        // The other checker's success is not enough.
        assert!(st.verdict(&vs, 0, 0, true, None, now()).is_empty());
        assert!(!st.reals[0].alive);
        st.verdict(&vs, 0, 1, true, None, now());
        assert!(st.reals[0].alive);
    }

    #[test]
    fn the_sorry_server_replaces_a_service_without_servers() {
        let mut vs = lab();
        vs.sorry_server = Some(sorry("192.168.47.9:80", false));
        vs.quorum_down = Some("qdown".into());
        vs.quorum_up = Some("qup".into());
        let (mut st, _) = ServiceState::start(&vs, now());
        st.verdict(&vs, 0, 0, false, None, now());
        let fx = st.verdict(&vs, 1, 0, false, None, now());
        assert_eq!(
            logs(&fx),
            [
                "Removing service [192.168.47.3]:tcp:80 from VS [192.168.47.128]:tcp:80",
                "Lost quorum 1-0=1 > 0 for VS [192.168.47.128]:tcp:80",
                "Adding sorry server [192.168.47.9]:tcp:80 to VS [192.168.47.128]:tcp:80",
                "Removing alive servers from the pool for VS [192.168.47.128]:tcp:80",
            ]
        );
        assert_eq!(runs(&fx), ["qdown"]);
        assert_eq!(table(&vs, &st), [("192.168.47.9:80".to_string(), 1)]);
        let fx = st.verdict(&vs, 1, 0, true, None, now());
        assert_eq!(
            logs(&fx)[1..],
            [
                "Gained quorum 1+0=1 <= 1 for VS [192.168.47.128]:tcp:80",
                "Removing sorry server [192.168.47.9]:tcp:80 from VS [192.168.47.128]:tcp:80",
                "Adding alive servers to the pool for VS [192.168.47.128]:tcp:80",
            ]
        );
        assert_eq!(runs(&fx), ["qup"]);
        assert_eq!(table(&vs, &st), [("192.168.47.3:80".to_string(), 1)]);
    }

    #[test]
    fn an_inhibited_sorry_server_waits_at_weight_0_and_alpha_starts_with_it() {
        let mut vs = lab();
        vs.sorry_server = Some(sorry("192.168.47.9:80", true));
        let (st, _) = ServiceState::start(&vs, now());
        assert_eq!(
            table(&vs, &st).last().unwrap(),
            &("192.168.47.9:80".into(), 0)
        );
        for r in &mut vs.real_servers {
            r.checkers[0].alpha = true;
        }
        let (st, fx) = ServiceState::start(&vs, now());
        assert_eq!(
            logs(&fx),
            [
                "Starting with quorum down 1-0=1 > 0 for VS [192.168.47.128]:tcp:80",
                "Enabling sorry server [192.168.47.9]:tcp:80 to VS [192.168.47.128]:tcp:80",
                "Removing alive servers from the pool for VS [192.168.47.128]:tcp:80",
            ]
        );
        assert_eq!(table(&vs, &st), [("192.168.47.9:80".to_string(), 1)]);
    }

    #[test]
    fn quorum_with_hysteresis() {
        let mut vs = vs(vec![
            real("192.168.47.2:80", 1),
            real("192.168.47.3:80", 1),
            real("192.168.47.4:80", 1),
        ]);
        vs.quorum = 2;
        vs.hysteresis = 1;
        vs.sorry_server = Some(sorry("192.168.47.9:80", false));
        let (mut st, _) = ServiceState::start(&vs, now());
        assert!(st.quorum_up, "3 >= 2+1");
        st.verdict(&vs, 0, 0, false, None, now());
        assert!(st.quorum_up, "2 >= 2-1: hysteresis keeps it up");
        st.verdict(&vs, 1, 0, false, None, now());
        assert!(st.quorum_up, "1 >= 2-1");
        let fx = st.verdict(&vs, 2, 0, false, None, now());
        assert!(!st.quorum_up);
        assert!(logs(&fx).contains(&"Lost quorum 2-1=1 > 0 for VS [192.168.47.128]:tcp:80"));
        st.verdict(&vs, 0, 0, true, None, now());
        st.verdict(&vs, 1, 0, true, None, now());
        assert!(!st.quorum_up, "2 < 2+1: still down");
        assert_eq!(table(&vs, &st), [("192.168.47.9:80".to_string(), 1)]);
        let fx = st.verdict(&vs, 2, 0, true, None, now());
        assert!(st.quorum_up);
        assert!(logs(&fx).contains(&"Gained quorum 2+1=3 <= 3 for VS [192.168.47.128]:tcp:80"));
        assert_eq!(table(&vs, &st).len(), 3);
    }

    #[test]
    fn misc_dynamic_sets_the_weight() {
        let vs = lab();
        let (mut st, _) = ServiceState::start(&vs, now());
        let fx = st.verdict(&vs, 0, 0, true, Some(5), now());
        assert_eq!(
            logs(&fx),
            ["Changing weight from 1 to 5 for active service [192.168.47.2]:tcp:80 of VS [192.168.47.128]:tcp:80"]
        );
        assert_eq!(table(&vs, &st)[0], ("192.168.47.2:80".to_string(), 5));
        st.verdict(&vs, 0, 0, false, None, now());
        // Back up with the weight its exit code says.
        st.verdict(&vs, 0, 0, true, Some(7), now());
        assert_eq!(table(&vs, &st)[0], ("192.168.47.2:80".to_string(), 7));
        // Weight 0: up, but no new connections; and it counts nothing
        // towards the quorum.
        st.verdict(&vs, 0, 0, true, Some(0), now());
        st.verdict(&vs, 1, 0, false, None, now());
        assert!(!st.quorum_up);
    }
}
