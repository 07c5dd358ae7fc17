//! The parser on whole files: the seed's lab, defaults and inheritance,
//! and one test per kind of refusal.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::model::*;
use super::parse_str;
use crate::model::{Method, Proto, Scheduler};

pub const LAB: &str = "\
virtual_server 192.168.47.128 80 {
    delay_loop 2
    lvs_sched rr
    lvs_method NAT
    protocol TCP
    real_server 192.168.211.129 80 {
        weight 1
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
    real_server 192.168.211.130 80 {
        weight 1
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
}
";

fn p(s: &str) -> Result<KaConfig, String> {
    parse_str(s, Path::new("k.conf")).map_err(|e| e.to_string())
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn the_seed_lab() {
    let c = p(LAB).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.virtual_servers.len(), 1);
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.key.proto, Proto::Tcp);
    assert_eq!(
        vs.key.addr,
        "192.168.47.128".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(vs.key.port, 80);
    assert_eq!(vs.sched, Scheduler::Rr);
    assert_eq!(vs.method, Method::Masq);
    assert_eq!(vs.delay_loop, Duration::from_secs(2));
    assert_eq!(vs.origin.line, 1);
    let addrs: Vec<SocketAddr> = vs.real_servers.iter().map(|r| r.addr).collect();
    assert_eq!(addrs, [sa("192.168.211.129:80"), sa("192.168.211.130:80")]);
    let rs = &vs.real_servers[0];
    assert_eq!((rs.weight, rs.method, rs.origin.line), (1, Method::Masq, 6));
    let ck = &rs.checkers[0];
    assert_eq!(ck.connect, sa("192.168.211.129:80"));
    assert_eq!(ck.connect_timeout, Duration::from_secs(1));
    assert_eq!(
        (ck.retry, ck.delay_before_retry),
        (1, Duration::from_secs(1))
    );
    assert_eq!(ck.delay_loop, Duration::from_secs(2));
    let CheckKind::Http(h) = &ck.kind else {
        panic!("not HTTP: {:?}", ck.kind)
    };
    assert!(!h.tls);
    assert_eq!(h.urls.len(), 1);
    assert_eq!(h.urls[0].path, "/health");
    assert_eq!(h.urls[0].status_codes, [200..=200]);
    let svc = vs.service_all_up();
    assert_eq!(svc.key, vs.service_addr());
    assert_eq!(svc.reals.len(), 2);
    assert_eq!(svc.reals[1].port, 80);
}
