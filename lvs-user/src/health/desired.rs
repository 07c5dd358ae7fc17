//! The table a virtual server's state stands for, as keepalived would
//! have set IPVS: alive servers with their weight; failed ones absent, or
//! at weight 0 under `inhibit_on_failure`; while the sorry server is in
//! use only it (and inhibited servers at 0); an idle `sorry_server_inhibit`
//! sorry server at weight 0.

use super::{apply::Failed, state::ServiceState};
use crate::keepalived::model::VirtualServer;
use crate::model::{RealServer, Scheduler, VirtualService};

/// keepalived gives a sorry server IPVS's default weight.
const SORRY_WEIGHT: u32 = 1;

/// The service `vs` in `st`, its configured real servers in file order.
pub fn service(vs: &VirtualServer, st: &ServiceState) -> VirtualService {
    let mut out = VirtualService::new(vs.key, Scheduler::Rr);
    out.sched = vs.sched;
    out.sched_flags = vs.sched_flags;
    out.persistence = vs.persistence;
    for (rs, real) in vs.real_servers.iter().zip(&st.reals) {
        let weight = if st.sorry_active {
            // keepalived took the alive ones out for the sorry server; an
            // inhibited server is only ever set to 0.
            rs.inhibit_on_failure.then_some(0)
        } else if real.alive {
            Some(real.weight)
        } else {
            rs.inhibit_on_failure.then_some(0)
        };
        if let Some(w) = weight {
            let mut r = RealServer::new(rs.addr.ip(), rs.addr.port(), rs.method, w);
            r.u_threshold = rs.u_threshold;
            r.l_threshold = rs.l_threshold;
            out.reals.push(r);
        }
    }
    if let Some(s) = &vs.sorry_server {
        let weight = if st.sorry_active {
            Some(SORRY_WEIGHT)
        } else {
            s.inhibit.then_some(0)
        };
        // A sorry server that is also a real server is that real server.
        let dup = out
            .reals
            .iter()
            .any(|r| r.addr == s.addr.ip() && r.port == s.addr.port());
        if let (Some(w), false) = (weight, dup) {
            out.reals
                .push(RealServer::new(s.addr.ip(), s.addr.port(), s.method, w));
        }
    }
    out
}

/// The configured real servers of `vs` that `st` keeps out of the table
/// for failing their checks (not inhibited, which stay at weight 0).
pub fn failed(vs: &VirtualServer, st: &ServiceState) -> Vec<Failed> {
    vs.real_servers
        .iter()
        .zip(&st.reals)
        .filter(|(rs, real)| !real.alive && !rs.inhibit_on_failure)
        .map(|(rs, _)| Failed {
            service: vs.key,
            addr: rs.addr.ip(),
            port: rs.addr.port(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::fixture::*;
    use std::time::SystemTime;

    fn failed_addrs(vs: &VirtualServer, st: &ServiceState) -> Vec<String> {
        failed(vs, st)
            .iter()
            .map(|f| format!("{}:{}", f.addr, f.port))
            .collect()
    }

    #[test]
    fn only_servers_out_for_failed_checks_are_failed() {
        let mut vs = lab();
        vs.real_servers[1].inhibit_on_failure = true;
        vs.sorry_server = Some(sorry("192.168.47.9:80", false));
        let now = SystemTime::UNIX_EPOCH;
        let (mut st, _) = ServiceState::start(&vs, now);
        assert!(failed_addrs(&vs, &st).is_empty());
        st.verdict(&vs, 0, 0, false, None, now);
        assert_eq!(failed_addrs(&vs, &st), ["192.168.47.2:80"]);
        assert!(failed(&vs, &st).iter().all(|f| f.service == vs.key));
        // Inhibited (weight 0, still a member) is not failed, nor is the
        // sorry server that replaces them.
        st.verdict(&vs, 1, 0, false, None, now);
        assert!(st.sorry_active);
        assert_eq!(failed_addrs(&vs, &st), ["192.168.47.2:80"]);
        st.verdict(&vs, 0, 0, true, None, now);
        assert!(failed_addrs(&vs, &st).is_empty());
    }
}
