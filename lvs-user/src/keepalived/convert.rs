//! A parsed virtual server as the tables see it: the lvsadm-level
//! [`crate::model::VirtualService`] and [`crate::model::RealServer`] it
//! maps to, as `ipvsadm -A`/`-a` would create them from keepalived's
//! values. What the checker then changes (a failed server removed, or at
//! weight 0; the sorry server added) is the checker's business.

use super::model::{RealServer, SorryServer, VirtualServer};
use crate::model::{self, ServiceAddr};

impl VirtualServer {
    /// `-t|-u VIP:PORT`.
    pub fn service_addr(&self) -> ServiceAddr {
        self.key
    }

    /// The service with no real servers (`ipvsadm -A`): scheduler, its
    /// flags and persistence.
    pub fn service(&self) -> model::VirtualService {
        let mut vs = model::VirtualService::new(self.key, self.sched);
        vs.sched_flags = self.sched_flags;
        vs.persistence = self.persistence;
        vs
    }

    /// The service with every real server at its configured weight, as
    /// keepalived starts it when no server starts as failed (`alpha`).
    pub fn service_all_up(&self) -> model::VirtualService {
        let mut vs = self.service();
        vs.reals = self.real_servers.iter().map(RealServer::real).collect();
        vs
    }

    /// The real server at `addr`, if it is one of this service's.
    pub fn real_server(&self, addr: std::net::SocketAddr) -> Option<&RealServer> {
        self.real_servers.iter().find(|r| r.addr == addr)
    }
}

impl RealServer {
    /// `-a … -r RIP:PORT -g|-m|-i -w WEIGHT -x U -y L` at the configured
    /// weight.
    pub fn real(&self) -> model::RealServer {
        self.real_with_weight(self.weight)
    }

    /// The same at another weight (0 for an inhibited server, or
    /// MISC_CHECK's dynamic weight).
    pub fn real_with_weight(&self, weight: u32) -> model::RealServer {
        let mut r = model::RealServer::new(self.addr.ip(), self.addr.port(), self.method, weight);
        r.u_threshold = self.u_threshold;
        r.l_threshold = self.l_threshold;
        r
    }
}

impl SorryServer {
    /// The sorry server as a real server: weight 1, as keepalived adds it
    /// (0 while inhibited and not needed).
    pub fn real(&self, needed: bool) -> model::RealServer {
        let w = if needed || !self.inhibit { 1 } else { 0 };
        model::RealServer::new(self.addr.ip(), self.addr.port(), self.method, w)
    }
}
