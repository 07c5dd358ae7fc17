//! The command line as ipvsadm parses it: values, defaults, every kind of
//! error and its message.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::adm::NoResolve;
use crate::model::{Method, Proto, ServiceAddr};

fn argv(s: &str) -> Vec<String> {
    std::iter::once("lvsadm")
        .chain(s.split_whitespace())
        .map(String::from)
        .collect()
}

fn p(s: &str) -> Result<Command, Error> {
    parse(&argv(s), &NoResolve)
}

fn err(s: &str) -> (i32, String) {
    let e = p(s).expect_err(s);
    (e.code, e.msg)
}

fn svc(proto: Proto, a: &str, port: u16) -> ServiceAddr {
    ServiceAddr {
        proto,
        addr: a.parse().unwrap(),
        port,
    }
}

fn tcp(a: &str, port: u16) -> ServiceAddr {
    svc(Proto::Tcp, a, port)
}

#[test]
fn add_service_defaults() {
    assert_eq!(
        p("-A -t 192.168.47.128:80").unwrap(),
        Command::AddService(ServiceSpec {
            key: tcp("192.168.47.128", 80),
            sched: "wlc".into(),
            persistent: None,
            netmask: None,
            ops: false,
            sched_flags: None,
            pe: None,
        })
    );
}

#[test]
fn long_forms_equal_short_forms() {
    let short = p("-A -t 10.0.0.1:80 -s rr -p 600 -M 255.255.255.0").unwrap();
    let long = p(
        "--add-service --tcp-service 10.0.0.1:80 --scheduler=rr --persistent 600 --netmask 255.255.255.0",
    )
    .unwrap();
    assert_eq!(short, long);
    match short {
        Command::AddService(s) => {
            assert_eq!(s.sched, "rr");
            assert_eq!(s.persistent, Some(600));
            assert_eq!(
                s.netmask,
                Some(Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)))
            );
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(
        p("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 5").unwrap(),
        p("--add-server --tcp-service 10.0.0.1:80 --real-server 10.1.0.1:8080 --masquerading --weight 5")
            .unwrap()
    );
    assert_eq!(
        p("-E -u 10.0.0.1:53 -s wrr").unwrap(),
        p("--edit-service --udp-service=10.0.0.1:53 --scheduler wrr").unwrap()
    );
    assert_eq!(p("-C").unwrap(), p("--clear").unwrap());
    assert_eq!(p("-S -n").unwrap(), p("--save --numeric").unwrap());
    assert_eq!(p("-R").unwrap(), p("--restore").unwrap());
    assert_eq!(p("-Z").unwrap(), p("--zero").unwrap());
    assert_eq!(p("-l").unwrap(), p("--list").unwrap());
    assert_eq!(
        p("-L -n -c").unwrap(),
        p("--list --numeric --connection").unwrap()
    );
    assert_eq!(
        p("-a -t 1.2.3.4:80 -r 5.6.7.8 -i -x 10 -y 5").unwrap(),
        p("-a -t 1.2.3.4:80 -r 5.6.7.8 --ipip --u-threshold 10 --l-threshold=5").unwrap()
    );
    assert_eq!(
        p("-a -t 1.2.3.4:80 -r 5.6.7.8 -g").unwrap(),
        p("-a -t 1.2.3.4:80 -r 5.6.7.8 --gatewaying").unwrap()
    );
    assert_eq!(
        p("-A -t 1.2.3.4:80 -b flag-1").unwrap(),
        p("-A -t 1.2.3.4:80 --sched-flags flag-1").unwrap()
    );
    assert_eq!(p("-L --timeout").unwrap(), p("-L --timeout").unwrap());
}

#[test]
fn combined_short_flags() {
    let expect = Command::List(ListOpts {
        numeric: true,
        ..ListOpts::default()
    });
    assert_eq!(p("-Ln").unwrap(), expect);
    assert_eq!(p("-L -n").unwrap(), expect);
    assert_eq!(
        p("-Lnc").unwrap(),
        Command::List(ListOpts {
            numeric: true,
            connection: true,
            ..ListOpts::default()
        })
    );
    // A short option's argument: rest of the cluster or the next word.
    assert_eq!(
        p("-At 10.0.0.1:80 -srr").unwrap(),
        p("-A -t 10.0.0.1:80 -s rr").unwrap()
    );
    assert_eq!(
        p("-At10.0.0.1:80 -s=rr").unwrap(),
        p("-A -t 10.0.0.1:80 -s rr").unwrap()
    );
    assert_eq!(
        p("-at 10.0.0.1:80 -mr 10.1.0.1 -w3").unwrap(),
        p("-a -t 10.0.0.1:80 -m -r 10.1.0.1 -w 3").unwrap()
    );
    assert_eq!(p("-Sn").unwrap(), Command::Save { numeric: true });
    assert_eq!(
        p("-Ln --stats --exact").unwrap(),
        Command::List(ListOpts {
            numeric: true,
            stats: true,
            exact: true,
            ..ListOpts::default()
        })
    );
    assert_eq!(
        p("-L -X").unwrap(),
        Command::List(ListOpts {
            exact: true,
            ..ListOpts::default()
        })
    );
}

#[test]
fn list_one_service() {
    assert_eq!(
        p("-L -n -t 10.0.0.1:80 --nosort").unwrap(),
        Command::List(ListOpts {
            service: Some(tcp("10.0.0.1", 80)),
            numeric: true,
            nosort: true,
            ..ListOpts::default()
        })
    );
    assert_eq!(p("--list --sort").unwrap(), p("-L").unwrap());
}

#[test]
fn no_arguments_is_list() {
    assert_eq!(
        parse(&["lvsadm".to_string()], &NoResolve).unwrap(),
        Command::List(ListOpts::default())
    );
}

#[test]
fn persistent_optional_value() {
    let timeout = |s: &str| match p(s).unwrap() {
        Command::AddService(s) => s.persistent,
        c => panic!("{c:?}"),
    };
    assert_eq!(timeout("-A -t 1.2.3.4:80 -p"), Some(300));
    assert_eq!(timeout("-A -t 1.2.3.4:80 -p -s rr"), Some(300));
    assert_eq!(timeout("-A -t 1.2.3.4:80 -p 60"), Some(60));
    assert_eq!(timeout("-A -t 1.2.3.4:80 -p60"), Some(60));
    assert_eq!(timeout("-A -t 1.2.3.4:80 --persistent=60"), Some(60));
    assert_eq!(timeout("-A -t 1.2.3.4:80 --persistent"), Some(300));
    assert_eq!(timeout("-A -t 1.2.3.4:0 -p"), Some(300));
    assert_eq!(
        err("-A -t 1.2.3.4:80 -p 0"),
        (2, "invalid timeout value `0' specified".into())
    );
    assert_eq!(
        err("-A -t 1.2.3.4:80 -p rr"),
        (2, "invalid timeout value `rr' specified".into())
    );
    assert_eq!(
        err("-A -t 1.2.3.4:80 -p 2678401"),
        (2, "invalid timeout value `2678401' specified".into())
    );
}

#[test]
fn real_server_port_defaults() {
    let server = |s: &str| match p(s).unwrap() {
        Command::AddServer(s) | Command::EditServer(s) => s,
        c => panic!("{c:?}"),
    };
    let s = server("-a -t 10.0.0.1:80 -r 10.1.0.1");
    assert_eq!((s.port, s.method, s.weight), (80, Method::Route, 1));
    let s = server("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m");
    assert_eq!((s.port, s.method), (8080, Method::Masq));
    // -g and -i always use the service's port.
    assert_eq!(server("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -g").port, 80);
    assert_eq!(server("-e -t 10.0.0.1:80 -r 10.1.0.1:8080 -i").port, 80);
    assert_eq!(server("-a -t 10.0.0.1:80 -r 10.1.0.1 -w 0 -m").weight, 0);
    assert_eq!(
        server("-a -t 10.0.0.1:80 -r 10.1.0.1 -w 65535 -m").weight,
        65535
    );
    // -d keeps the port given.
    assert_eq!(
        p("-d -t 10.0.0.1:80 -r 10.1.0.1:8080").unwrap(),
        Command::DeleteServer(ServerKey {
            service: tcp("10.0.0.1", 80),
            addr: "10.1.0.1".parse().unwrap(),
            port: 8080,
        })
    );
    assert_eq!(
        p("-d -t 10.0.0.1:80 -r 10.1.0.1").unwrap(),
        Command::DeleteServer(ServerKey {
            service: tcp("10.0.0.1", 80),
            addr: "10.1.0.1".parse().unwrap(),
            port: 80,
        })
    );
}

#[test]
fn ipv6_brackets() {
    assert_eq!(
        p("-A -t [fd00::1]:80 -s rr").unwrap(),
        Command::AddService(ServiceSpec {
            key: tcp("fd00::1", 80),
            sched: "rr".into(),
            persistent: None,
            netmask: None,
            ops: false,
            sched_flags: None,
            pe: None,
        })
    );
    match p("-a -u [fd00::1]:53 -r [fd00::2]:5353 -m").unwrap() {
        Command::AddServer(s) => {
            assert_eq!(s.service, svc(Proto::Udp, "fd00::1", 53));
            assert_eq!(s.addr, "fd00::2".parse::<IpAddr>().unwrap());
            assert_eq!(s.port, 5353);
        }
        c => panic!("{c:?}"),
    }
    match p("-a -u [fd00::1]:53 -r fd00::2 -m").unwrap() {
        Command::AddServer(s) => assert_eq!(s.port, 53),
        c => panic!("{c:?}"),
    }
    // A bare IPv6 address has no port.
    assert_eq!(
        err("-A -t fd00::1 -s rr"),
        (2, "Zero port specified for non-persistent service".into())
    );
    // Brackets need a port.
    assert_eq!(
        err("-A -t [fd00::1] -s rr"),
        (2, "illegal virtual server address[:port] specified".into())
    );
    assert_eq!(
        err("-A -t [fd00::1]:x -s rr"),
        (2, "illegal virtual server address[:port] specified".into())
    );
    match p("-A -t [fd00::1]:80 -p -M 64").unwrap() {
        Command::AddService(s) => assert_eq!(s.netmask, Some(Netmask::V6(64))),
        c => panic!("{c:?}"),
    }
    assert_eq!(
        err("-A -t [fd00::1]:80 -p -M 129"),
        (2, "illegal ipv6 netmask specified".into())
    );
}

#[test]
fn addresses_as_inet_aton_reads_them() {
    assert_eq!(
        inet_aton("192.168.1.2"),
        Some(Ipv4Addr::new(192, 168, 1, 2))
    );
    assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(inet_aton("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
    assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
    assert_eq!(inet_aton("16909060"), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(inet_aton("1.2.3.256"), None);
    assert_eq!(inet_aton("1.2.3.4.5"), None);
    assert_eq!(inet_aton("08.1.1.1"), None);
    assert_eq!(inet_aton("1.2.3."), None);
    assert_eq!(inet_aton(""), None);
    assert_eq!(inet_aton("a.b.c.d"), None);
    // ipvsadm accepts `host:port` with any of these.
    match p("-A -t 10.1:0x50 -s rr") {
        Err(e) => assert_eq!(e.msg, "illegal virtual server address[:port] specified"),
        Ok(c) => panic!("{c:?}"),
    }
    match p("-A -t 10.1:+80 -s rr").unwrap() {
        Command::AddService(s) => assert_eq!(s.key, tcp("10.0.0.1", 80)),
        c => panic!("{c:?}"),
    }
}

#[test]
fn bad_addresses_and_ports() {
    let bad_vs = (
        2,
        "illegal virtual server address[:port] specified".to_string(),
    );
    let bad_rs = (
        2,
        "illegal real server address[:port] specified".to_string(),
    );
    assert_eq!(err("-A -t 1.2.3.400:80"), bad_vs);
    assert_eq!(err("-A -t 1.2.3.4:65536"), bad_vs);
    assert_eq!(err("-A -t 1.2.3.4:-1"), bad_vs);
    assert_eq!(err("-A -t 1.2.3.4:"), bad_vs);
    assert_eq!(err("-A -t 80"), bad_vs);
    assert_eq!(err("-A -t nosuchhost:80"), bad_vs);
    assert_eq!(err("-A -t 1.2.3.4:http"), bad_vs); // NoResolve
    assert_eq!(err("-a -t 1.2.3.4:80 -r 1.2.3:99999"), bad_rs);
    assert_eq!(err("-a -t 1.2.3.4:80 -r bogus"), bad_rs);
}

#[test]
fn service_names_resolve() {
    struct R;
    impl Resolve for R {
        fn host(&self, name: &str) -> Option<Ipv4Addr> {
            (name == "www").then(|| Ipv4Addr::new(10, 9, 9, 9))
        }
        fn service(&self, name: &str, proto: Proto) -> Option<u16> {
            (name == "http" && proto == Proto::Tcp).then_some(80)
        }
    }
    let c = parse(&argv("-A -t www:http -s rr"), &R).unwrap();
    match c {
        Command::AddService(s) => assert_eq!(s.key, tcp("10.9.9.9", 80)),
        c => panic!("{c:?}"),
    }
    assert!(parse(&argv("-A -u www:http -s rr"), &R).is_err());
}

#[test]
fn weights_and_thresholds() {
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 65536"),
        (2, "illegal weight specified".into())
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w -1"),
        (2, "illegal weight specified".into())
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w x"),
        (2, "illegal weight specified".into())
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -x -3"),
        (2, "illegal u_threshold specified".into())
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -y 2147483648"),
        (2, "illegal l_threshold specified".into())
    );
    match p("-e -t 1.2.3.4:80 -r 5.6.7.8 -m -x 100 -y 50").unwrap() {
        Command::EditServer(s) => {
            assert_eq!((s.u_threshold, s.l_threshold), (Some(100), Some(50)))
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn option_legality() {
    assert_eq!(
        err("-A -t 1.2.3.4:80 -w 3"),
        (
            2,
            "Illegal 'weight' option with the 'add-service' command".into()
        )
    );
    assert_eq!(
        err("-A -s rr"),
        (
            2,
            "You need to supply the 'service-address' option for the 'add-service' command".into()
        )
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80"),
        (
            2,
            "You need to supply the 'real-server' option for the 'add-server' command".into()
        )
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -s rr"),
        (
            2,
            "Illegal 'scheduler' option with the 'add-server' command".into()
        )
    );
    assert_eq!(
        err("-d -t 1.2.3.4:80 -r 5.6.7.8 -w 1"),
        (
            2,
            "Illegal 'weight' option with the 'delete-server' command".into()
        )
    );
    assert_eq!(
        err("-D -t 1.2.3.4:80 -s rr"),
        (
            2,
            "Illegal 'scheduler' option with the 'delete-service' command".into()
        )
    );
    assert_eq!(
        err("-C -t 1.2.3.4:80"),
        (
            2,
            "Illegal 'service-address' option with the 'flush' command".into()
        )
    );
    assert_eq!(
        err("-S --stats"),
        (2, "Illegal 'stats' option with the 'save' command".into())
    );
    assert_eq!(
        err("-R -n"),
        (
            2,
            "Illegal 'numeric' option with the 'restore' command".into()
        )
    );
    assert_eq!(
        err("-L -c -t 1.2.3.4:80"),
        (2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command".into())
    );
    assert_eq!(
        err("-L -c --stats"),
        (2, "options conflicts in the list command".into())
    );
    assert_eq!(
        err("-L --timeout --persistent-conn"),
        (2, "options conflicts in the list command".into())
    );
    assert_eq!(
        err("-A -t 1.2.3.4:80 -s rr -s wrr"),
        (2, "multiple 'scheduler' options specified".into())
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -g -m"),
        (2, "multiple 'forwarding-method' options specified".into())
    );
    assert_eq!(
        err("-A -t 1.2.3.4:80 -u 1.2.3.4:80"),
        (2, "multiple 'service-address' options specified".into())
    );
    assert_eq!(err("-L -Z"), (2, "invalid option `-Z'".into()));
    assert_eq!(err("-LZ"), (2, "invalid option `-LZ'".into()));
}

#[test]
fn mixing_tcp_udp_with_wrong_arguments() {
    // -t/-u want an address, not a number.
    assert_eq!(
        err("-A -u 53"),
        (2, "illegal virtual server address[:port] specified".into())
    );
    assert_eq!(err("-A -t"), (255, "-t: missing argument".into()));
    assert_eq!(
        err("-A -t 1.2.3.4:0 -s rr"),
        (2, "Zero port specified for non-persistent service".into())
    );
    assert_eq!(
        err("-A -t 1.2.3.4:53 -s rr -o"),
        (
            2,
            "One-Packet Scheduling is only for UDP virtual services".into()
        )
    );
    assert!(p("-A -u 1.2.3.4:53 -s rr -o").is_ok());
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r [fd00::1]:80 -m"),
        (
            2,
            "Different address family is allowed only for tunneling servers".into()
        )
    );
    assert_eq!(
        err("-a -t [fd00::1]:80 -r 10.0.0.1 -m"),
        (
            2,
            "Different address family is allowed only for tunneling servers".into()
        )
    );
    assert!(p("-a -t [fd00::1]:80 -r 10.0.0.1 -i").is_ok());
}

#[test]
fn popt_errors() {
    assert_eq!(err("-L --bogus"), (255, "--bogus: unknown option".into()));
    assert_eq!(err("-LQ"), (255, "-LQ: unknown option".into()));
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w"),
        (255, "-w: missing argument".into())
    );
    assert_eq!(
        err("-L --numeric=yes"),
        (
            255,
            "--numeric=yes: option does not take an argument".into()
        )
    );
    let try_help = (
        255,
        "Try `lvsadm -h' or 'lvsadm --help' for more information.".to_string(),
    );
    // The command must come first.
    assert_eq!(err("-n -L"), try_help);
    assert_eq!(err("-t 1.2.3.4:80 -A"), try_help);
    assert_eq!(err("foo"), try_help);
    assert_eq!(err("--bogus"), try_help);
    assert_eq!(err("-L foo"), (2, "unexpected argument foo".into()));
}

#[test]
fn set_timeouts() {
    assert_eq!(
        p("--set 900 120 300").unwrap(),
        Command::SetTimeouts(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        })
    );
    assert_eq!(
        err("--set 900 120"),
        (2, "--set option requires 3 timeout values".into())
    );
    assert_eq!(
        err("--set 900 x 300"),
        (2, "invalid timeout value `x' specified".into())
    );
    assert_eq!(err("--set 1 2 3 4"), (2, "unexpected argument 4".into()));
}

#[test]
fn sched_flags() {
    use lvs_common::{SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3};
    let flags = |s: &str| match p(s).unwrap() {
        Command::AddService(s) => s.sched_flags,
        c => panic!("{c:?}"),
    };
    assert_eq!(
        flags("-A -t 1.2.3.4:80 -b flag-1,flag-3"),
        Some(SVC_F_SCHED1 | SVC_F_SCHED3)
    );
    assert_eq!(
        flags("-A -t 1.2.3.4:80 -s sh -b sh-port"),
        Some(SVC_F_SCHED2)
    );
    assert_eq!(
        err("-A -t 1.2.3.4:80 -s rr -b sh-port"),
        (2, "incompatible scheduler flag `sh-port'".into())
    );
    assert_eq!(
        err("-A -t 1.2.3.4:80 -b flag-9"),
        (2, "invalid scheduler flag `flag-9'".into())
    );
}

#[test]
fn fwmark_and_sctp_are_refused() {
    let (code, msg) = err("-A -f 1 -s rr");
    assert_eq!(code, 2);
    assert!(msg.contains("netfilter"), "{msg}");
    let (code, msg) = err("-A --sctp-service 1.2.3.4:80 -s rr");
    assert_eq!(code, 2);
    assert!(msg.contains("SCTP"), "{msg}");
}

#[test]
fn help_version_daemon() {
    assert_eq!(p("-h").unwrap(), Command::Help);
    assert_eq!(p("--help -Q").unwrap(), Command::Help);
    assert_eq!(p("-v").unwrap(), Command::Version);
    assert_eq!(p("--version").unwrap(), Command::Version);
    assert_eq!(
        p("--start-daemon backup --syncid 3").unwrap(),
        Command::StartDaemon(DaemonSpec {
            state: DaemonState::Backup,
            mcast_ifn: String::new(),
            syncid: 3,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        })
    );
    assert_eq!(
        err("--start-daemon slave"),
        (2, "illegal start-daemon parameter specified".into())
    );
    assert!(usage("lvsadm").contains("  lvsadm -A|E virtual-service"));
}

#[test]
fn tunnel_options() {
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -m --tun-type gue"),
        (2, "Tunnel options conflict with forward method".into())
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue"),
        (
            2,
            "You need to supply the 'tun-port' option for the 'gue' tunnel type".into()
        )
    );
    assert_eq!(
        err("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-port 6080"),
        (
            2,
            "Illegal 'tun-port' option with the 'ipip' tunnel type".into()
        )
    );
    match p("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue --tun-port 6080 --tun-csum").unwrap() {
        Command::AddServer(s) => assert_eq!(
            s.tunnel,
            Some(TunnelSpec {
                kind: TunnelType::Gue,
                port: Some(6080),
                csum: Some("csum")
            })
        ),
        c => panic!("{c:?}"),
    }
}

#[test]
fn dashdash_ends_options() {
    assert_eq!(err("-L -- -n"), (2, "unexpected argument -n".into()));
}
