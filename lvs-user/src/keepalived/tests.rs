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

fn one_vs(s: &str) -> VirtualServer {
    let c = p(s).unwrap();
    assert_eq!(c.virtual_servers.len(), 1);
    c.virtual_servers.into_iter().next().unwrap()
}

#[test]
fn defaults_are_keepalived_s_per_checker() {
    let vs = one_vs(
        "virtual_server 10.0.0.1 80 {
            lvs_sched rr
            lvs_method NAT
            protocol TCP
            real_server 10.0.1.1 80 {
                TCP_CHECK {
                }
                HTTP_GET {
                    url {
                        path /
                    }
                }
                MISC_CHECK {
                    misc_path /bin/true
                }
                DNS_CHECK {
                }
                UDP_CHECK {
                }
            }
        }",
    );
    let s = Duration::from_secs;
    assert_eq!((vs.delay_loop, vs.connect_timeout), (s(60), s(5)));
    assert_eq!(
        (vs.quorum, vs.hysteresis, vs.alpha, vs.omega),
        (1, 0, false, false)
    );
    assert_eq!(vs.persistence, None);
    let rs = &vs.real_servers[0];
    assert_eq!((rs.weight, rs.method), (1, Method::Masq));
    assert_eq!((rs.delay_loop, rs.warmup, rs.alpha), (s(60), s(60), false));
    assert!(!rs.inhibit_on_failure);
    let got: Vec<(u32, Duration, Duration, Duration)> = rs
        .checkers
        .iter()
        .map(|c| (c.retry, c.delay_before_retry, c.connect_timeout, c.warmup))
        .collect();
    assert_eq!(
        got,
        [
            (1, s(1), s(5), s(60)),  // TCP_CHECK
            (1, s(3), s(5), s(60)),  // HTTP_GET: 3 s between retries
            (0, s(1), s(5), s(60)),  // MISC_CHECK: no retry
            (3, s(60), s(5), s(60)), // DNS_CHECK: 3 retries, delay_loop apart
            (1, s(1), s(5), s(60)),  // UDP_CHECK
        ]
    );
    for c in &rs.checkers {
        assert_eq!(c.connect, sa("10.0.1.1:80"));
        assert_eq!((c.bind, c.bind_port, c.alpha), (None, None, false));
    }
    let CheckKind::Http(h) = &rs.checkers[1].kind else {
        panic!()
    };
    assert_eq!(
        (h.http_protocol.as_str(), h.tls, h.enable_sni),
        ("1.0", false, false)
    );
    assert_eq!(h.urls[0].status_codes, [200..=299]);
    assert_eq!(
        (h.urls[0].digest.as_ref(), h.virtualhost.as_ref()),
        (None, None)
    );
    let CheckKind::Misc(m) = &rs.checkers[2].kind else {
        panic!()
    };
    assert_eq!((m.timeout, m.dynamic), (s(60), false));
    let CheckKind::Dns(d) = &rs.checkers[3].kind else {
        panic!()
    };
    assert_eq!((d.qtype.as_str(), d.name.as_str()), ("SOA", "."));
    let CheckKind::Udp(u) = &rs.checkers[4].kind else {
        panic!()
    };
    assert_eq!(
        (
            u.payload.len(),
            &u.require_reply,
            u.min_reply_length,
            u.max_reply_length
        ),
        (0, &None, 0, 255)
    );
}

#[test]
fn values_are_inherited_virtual_real_checker() {
    let vs = one_vs(
        "virtual_server 10.0.0.1 80 {
            lvs_sched rr
            lvs_method DR
            protocol TCP
            connect_timeout 2
            retry 5
            delay_loop 9
            alpha
            inhibit_on_failure
            virtualhost vs.example
            weight 4
            real_server 10.0.1.1 80 {
                retry 6
                warmup 1.5
                virtualhost rs.example
                HTTP_GET {
                    url {
                        path /a
                        virtualhost url.example
                    }
                    url {
                        path /b
                    }
                    delay_before_retry 0.5
                    alpha no
                }
                TCP_CHECK {
                    connect_ip 10.0.2.1
                    connect_port 8080
                    retry 0
                    delay_loop 3
                }
            }
            real_server 10.0.1.2 {
                weight 0
                lvs_method TUN
                inhibit_on_failure off
                TCP_CHECK {
                }
            }
        }",
    );
    let s = Duration::from_secs;
    assert!(vs.alpha && vs.inhibit_on_failure);
    let r1 = &vs.real_servers[0];
    assert_eq!(
        (r1.weight, r1.method, r1.alpha, r1.delay_loop),
        (4, Method::Route, true, s(9))
    );
    assert!(r1.inhibit_on_failure);
    assert_eq!(r1.warmup, Duration::from_millis(1500));
    let http = &r1.checkers[0];
    assert_eq!(
        (http.retry, http.connect_timeout, http.delay_loop),
        (6, s(2), s(9))
    );
    assert_eq!(http.delay_before_retry, Duration::from_millis(500));
    assert!(!http.alpha);
    let CheckKind::Http(h) = &http.kind else {
        panic!()
    };
    assert_eq!(h.virtualhost.as_deref(), Some("rs.example"));
    assert_eq!(h.urls[0].virtualhost.as_deref(), Some("url.example"));
    assert_eq!(h.urls[1].virtualhost.as_deref(), Some("rs.example"));
    let tcp = &r1.checkers[1];
    assert_eq!(tcp.connect, sa("10.0.2.1:8080"));
    assert_eq!(
        (tcp.retry, tcp.delay_loop, tcp.warmup),
        (0, s(3), Duration::from_millis(1500))
    );
    assert!(tcp.alpha);
    // No port: the service's; an IPv4 TUN server in an IPv4 service.
    let r2 = &vs.real_servers[1];
    assert_eq!(
        (r2.addr, r2.weight, r2.method),
        (sa("10.0.1.2:80"), 0, Method::Tunnel)
    );
    assert!(!r2.inhibit_on_failure);
    assert_eq!(r2.checkers[0].retry, 5);
    let real = r2.real();
    assert_eq!(
        (real.port, real.weight, real.method),
        (80, 0, Method::Tunnel)
    );
}

#[test]
fn sorry_server_persistence_and_flags() {
    let vs = one_vs(
        "virtual_server 10.0.0.1 0 {
            lvs_sched sh
            sh-port
            lvs_method NAT
            protocol UDP
            persistence_granularity 255.255.0.0
            sorry_server 10.0.9.9
            sorry_server_lvs_method DR
            real_server 10.0.1.1 53 {
            }
        }",
    );
    assert_eq!(vs.key.proto, Proto::Udp);
    assert_eq!(vs.key.port, 0);
    let pers = vs.persistence.unwrap();
    assert_eq!(
        (pers.timeout, pers.netmask),
        (360, "255.255.0.0".parse().unwrap())
    );
    assert_eq!(vs.sched_flags, lvs_common::SH_PORT);
    let sorry = vs.sorry_server.as_ref().unwrap();
    assert_eq!(
        (sorry.addr, sorry.method, sorry.inhibit),
        (sa("10.0.9.9:0"), Method::Route, false)
    );
    assert_eq!(sorry.real(false).weight, 1);
    let svc = vs.service();
    assert_eq!(
        (svc.sched, svc.persistence, svc.reals.len()),
        (Scheduler::Sh, vs.persistence, 0)
    );
    // Only sh takes sh-port.
    let e = p("virtual_server 10.0.0.1 80 {
            lvs_sched rr
            sh-port
            lvs_method NAT
            protocol TCP
            real_server 10.0.1.1 80 {
            }
        }")
    .unwrap_err();
    assert_eq!(
        e,
        "k.conf:3: sh-port: applies only to the sh scheduler, not rr"
    );
}

#[test]
fn refusals_name_the_keyword_and_line() {
    let vs = |body: &str| {
        format!(
            "virtual_server 10.0.0.1 80 {{\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n{body}\n}}\n"
        )
    };
    let rs = |body: &str| vs(&format!(" real_server 10.0.1.1 80 {{\n{body}\n }}"));
    let cases: &[(String, &str)] = &[
        (rs("  weight 65536"), "k.conf:6: weight: '65536' is outside ipvsadm's range 0-65535"),
        (rs("  lvs_method TUN type gue port 6080"), "k.conf:6: lvs_method: tunnel options other than 'type ipip'"),
        (rs("  notify_up /bin/true nobody"), "k.conf:6: notify_up: running a script as another user"),
        (rs("  notify_up /bin/a\n  notify_up /bin/b"), "k.conf:7: notify_up: is given twice"),
        (rs("  PING_CHECK {\n  }"), "k.conf:6: PING_CHECK: this checker is not implemented"),
        (rs("  HTTP_GET {\n   connect_timeout 1\n  }"), "k.conf:6: HTTP_GET: needs at least one url"),
        (rs("  HTTP_GET {\n   url {\n    status_code 200\n   }\n  }"), "k.conf:7: url: needs a path"),
        (rs("  HTTP_GET {\n   url {\n    path /\n    regex ok\n   }\n  }"), "k.conf:9: regex: is not supported"),
        (rs("  MISC_CHECK {\n   misc_path /x\n   user nobody\n  }"), "k.conf:8: user: running MISC_CHECK as another user"),
        (rs("  MISC_CHECK {\n   misc_timeout 1\n  }"), "k.conf:6: MISC_CHECK: needs a misc_path"),
        (rs("  MISC_CHECK {\n   misc_path /x\n   connect_ip 10.0.0.1\n  }"), "k.conf:8: unknown keyword 'connect_ip' in MISC_CHECK"),
        (rs("  TCP_CHECK {\n   bind_if eth0\n  }"), "k.conf:7: bind_if: is not supported"),
        (rs("  TCP_CHECK {\n   bindto fd00::1\n  }"), "k.conf:6: TCP_CHECK: bindto is not of the address family"),
        (rs("  UDP_CHECK {\n   require_reply 12xx\n  }"), "k.conf:7: require_reply: ignored nibbles"),
        (rs("  UDP_CHECK {\n   min_reply_length 9\n   max_reply_length 8\n  }"), "k.conf:6: UDP_CHECK: min_reply_length is above"),
        (rs("  TCP_CHECK 1 {\n  }"), "k.conf:6: TCP_CHECK: takes no value before its block"),
        (rs("  DNS_CHECK {\n   name a..b\n  }"), "k.conf:7: name: 'a..b' has an empty label"),
        (rs("  DNS_CHECK {\n   name ab.com\n   name cd.com\n  }"), "k.conf:8: name: is given twice"),
        (rs(&format!("  DNS_CHECK {{\n   name {}.com\n  }}", "a".repeat(64))), "k.conf:7: name: 'aaaa"),
        (rs("  HTTP_GET {\n   url {\n    path /\n    digest 9b3a0c85a887a256d6939da88aabd8cd\n    \
             digest 9b3a0c85a887a256d6939da88aabd8ce\n   }\n  }"), "k.conf:10: digest: is given twice in one url"),
        (rs("  TCP_CHECK"), "k.conf:6: TCP_CHECK: needs a block"),
        (vs(" hashed\n real_server 10.0.1.1 80 {\n }"), "k.conf:5: 'hashed': hashed is not supported"),
        (vs(" protocol SCTP"), "k.conf:5: protocol: SCTP is not implemented yet"),
        (vs(" quorum 1\n hysteresis 1\n real_server 10.0.1.1 80 {\n }"), "k.conf:1: virtual_server: hysteresis 1 must be below the quorum 1"),
        (vs(" sorry_server 10.0.2.1 8080\n sorry_server_lvs_method DR\n real_server 10.0.1.1 80 {\n }"), "k.conf:1: virtual_server: the sorry server's port 8080 differs"),
        ("virtual_server group web {\n}\n".into(), "k.conf:1: virtual_server: virtual_server group is not supported"),
        ("global_defs\n".into(), "k.conf:1: global_defs: needs a block"),
        ("virtual_server 10.0.0.1 80\n".into(), "k.conf:1: virtual_server: needs a block"),
        ("virtual_server 10.0.0.1 80 90 {\n}\n".into(), "k.conf:1: virtual_server: takes the virtual server's IP [PORT], no more"),
        ("virtual_server 10.0.0.1 http {\n}\n".into(), "k.conf:1: virtual_server: 'http' is not a port number"),
    ];
    for (text, want) in cases {
        let e = p(text).expect_err(text);
        assert!(e.starts_with(want), "{text}\nwant {want}\ngot  {e}");
    }
}

#[test]
fn skipped_blocks_and_warnings() {
    let c = p(
        "global_defs {\n router_id x\n}\nvrrp_instance A {\n}\nvrrp_instance B {\n}\n\
               virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n }\n}\n",
    )
    .unwrap();
    assert_eq!(c.skipped, ["global_defs", "vrrp_instance"]);
    assert_eq!(
        c.warnings,
        [
            "k.conf:8: no protocol set: UDP, as keepalived defaults it",
            "k.conf:8: no lvs_sched set: wlc, as keepalived defaults it",
            "k.conf:8: no lvs_method set: NAT, as keepalived defaults it",
        ]
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(
        (vs.key.proto, vs.sched, vs.method),
        (Proto::Udp, Scheduler::Wlc, Method::Masq)
    );
}

#[test]
fn dns_names_and_a_bare_status_code() {
    let vs = one_vs(
        "virtual_server 10.0.0.1 53 {
            lvs_sched rr
            lvs_method NAT
            protocol UDP
            real_server 10.0.1.1 53 {
                DNS_CHECK {
                    name a.com
                }
                DNS_CHECK {
                    name .
                }
                HTTP_GET {
                    url {
                        path /
                        status_code
                    }
                }
            }
        }",
    );
    // keepalived 2.2.7 calls a one-letter label "empty": lvs does not.
    let CheckKind::Dns(d) = &vs.real_servers[0].checkers[0].kind else {
        panic!()
    };
    assert_eq!(d.name, "a.com");
    let CheckKind::Http(h) = &vs.real_servers[0].checkers[2].kind else {
        panic!()
    };
    assert_eq!(h.urls[0].status_codes, [200..=299]);
}
