//! The table a virtual server's state stands for, as keepalived would
//! have set IPVS: alive servers with their weight; failed ones absent, or
//! at weight 0 under `inhibit_on_failure`; while the sorry server is in
//! use only it (and inhibited servers at 0); an idle `sorry_server_inhibit`
//! sorry server at weight 0.

use super::state::ServiceState;
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
