//! Configurations made in code for the unit tests: the seed's lab as a
//! keepalived.conf would give it (every default filled as the parser
//! fills it).

use std::{path::PathBuf, time::Duration};

use crate::keepalived::model::{
    CheckKind, Checker, HttpCheck, KaConfig, Origin, RealServer, SorryServer, Url, VirtualServer,
};
use crate::model::{Method, Proto, Scheduler, ServiceAddr};

pub fn origin() -> Origin {
    Origin {
        file: PathBuf::from("keepalived.conf"),
        line: 1,
    }
}

pub fn http_checker(addr: &str) -> Checker {
    Checker {
        origin: origin(),
        kind: CheckKind::Http(HttpCheck {
            tls: false,
            virtualhost: None,
            urls: vec![Url {
                path: "/health".into(),
                status_codes: vec![],
                digest: None,
                virtualhost: None,
            }],
            http_protocol: "1.0".into(),
            enable_sni: false,
        }),
        connect: addr.parse().unwrap(),
        bind: None,
        bind_port: None,
        connect_timeout: Duration::from_secs(1),
        retry: 1,
        delay_before_retry: Duration::from_secs(1),
        delay_loop: Duration::from_secs(1),
        warmup: Duration::ZERO,
        alpha: false,
    }
}

pub fn real(addr: &str, weight: u32) -> RealServer {
    RealServer {
        origin: origin(),
        addr: addr.parse().unwrap(),
        weight,
        method: Method::Masq,
        u_threshold: 0,
        l_threshold: 0,
        inhibit_on_failure: false,
        notify_up: None,
        notify_down: None,
        delay_loop: Duration::from_secs(1),
        alpha: false,
        warmup: Duration::ZERO,
        checkers: vec![http_checker(addr)],
    }
}

pub fn vs(reals: Vec<RealServer>) -> VirtualServer {
    VirtualServer {
        origin: origin(),
        key: ServiceAddr {
            proto: Proto::Tcp,
            addr: "192.168.47.128".parse().unwrap(),
            port: 80,
        },
        sched: Scheduler::Rr,
        sched_flags: 0,
        method: Method::Masq,
        persistence: None,
        delay_loop: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        retry: 1,
        delay_before_retry: Duration::from_secs(1),
        warmup: Duration::ZERO,
        alpha: false,
        omega: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        inhibit_on_failure: false,
        sorry_server: None,
        real_servers: reals,
    }
}

pub fn lab() -> VirtualServer {
    vs(vec![real("192.168.47.2:80", 1), real("192.168.47.3:80", 1)])
}

pub fn sorry(addr: &str, inhibit: bool) -> SorryServer {
    SorryServer {
        addr: addr.parse().unwrap(),
        method: Method::Masq,
        inhibit,
    }
}

pub fn config(v: Vec<VirtualServer>) -> KaConfig {
    KaConfig {
        virtual_servers: v,
        warnings: Vec::new(),
        skipped: Vec::new(),
    }
}
