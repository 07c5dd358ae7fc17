//! IPVS's connection sync between two directors (`lvs_lab::ha`): the
//! master multicasts its connections on the inside LAN, the backup lists
//! them (`lvsadm -L -c`) and counts them in ActiveConn, `lvsadm`'s daemon
//! commands and `-L --daemon` line behave as ipvsadm 1.31's, a SYN that
//! never completes is not synced, and datagrams that are truncated, of
//! another sync ID, of a bad version or size, or malformed are counted
//! and never applied.
//!
//! The injected datagrams are written by hand from `ip_vs_sync.c`'s layout
//! (the codec's unit tests hold the annotated fixtures); this kernel has
//! no IPVS, so no real IPVS master can be captured or run against.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
    path::Path,
    time::Duration,
};

use crate::common::{wait_until, LVS, LVSADM};
use lvs::sync::control;
use lvs_lab::{
    clients::TcpConn,
    ha::{rs_ip, HaDirector, HaLab, GATEWAY, INSIDE_IF, OUTSIDE_IF, VIP},
    require_root, servers, Proc,
};

pub const SYNC_ID: &str = "7";

/// One row of `lvsadm -L -n -c`: (state, client, virtual, destination).
pub type Row = (String, String, String, String);

pub fn conn_rows(d: &HaDirector) -> Vec<Row> {
    let out = d.lvsadm(Path::new(LVSADM), &["-L", "-n", "-c"]).unwrap();
    out.lines()
        .skip(2)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 6).then(|| {
                (
                    w[2].to_string(),
                    w[3].to_string(),
                    w[4].to_string(),
                    w[5].to_string(),
                )
            })
        })
        .collect()
}

/// (ActiveConn, InActConn) per real server of the VIP's port 80 service.
pub fn counts(d: &HaDirector) -> Vec<(String, u64, u64)> {
    let out = d
        .lvsadm(Path::new(LVSADM), &["-L", "-n", "-t", &format!("{VIP}:80")])
        .unwrap();
    out.lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[1].to_string(),
                w[4].parse().unwrap(),
                w[5].parse().unwrap(),
            )
        })
        .collect()
}

/// The same NAT services on a director: VIP:80 and VIP:81 over every real
/// server's 8080 / 8081, rr.
pub fn services(d: &HaDirector, real_servers: usize) {
    let adm = |args: &[&str]| d.lvsadm(Path::new(LVSADM), args).unwrap();
    for port in [80, 81] {
        let vip = format!("{VIP}:{port}");
        adm(&["-A", "-t", &vip, "-s", "rr"]);
        for i in 0..real_servers {
            let rs = format!("{}:{}", rs_ip(i), port + 8000);
            adm(&["-a", "-t", &vip, "-r", &rs, "-m"]);
        }
    }
}

/// Echo servers answering `rsN <line>` on port 8080 of each real server.
pub fn echo_servers(lab: &HaLab) -> Vec<servers::Server> {
    rs_servers(
        lab,
        SocketAddr::from(([0, 0, 0, 0], 8080)),
        servers::echo_line,
    )
}

/// `lvsadm args…` on a director: (exit status, stdout, stderr).
pub fn adm_raw(d: &HaDirector, args: &[&str]) -> (i32, String, String) {
    let out = d
        .lvsadm_command(Path::new(LVSADM))
        .args(args)
        .output()
        .expect("lvsadm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lab with both directors loaded and the same services on both.
pub fn pair(tag: &str, real_servers: usize) -> (HaLab, Vec<Proc>) {
    let lab = HaLab::new(tag, real_servers).unwrap();
    let procs = vec![
        lab.start_pass(Path::new(LVS)).unwrap(),
        lab.a.start(Path::new(LVS), &[]).unwrap(),
        lab.b.start(Path::new(LVS), &[]).unwrap(),
    ];
    services(&lab.a, real_servers);
    services(&lab.b, real_servers);
    (lab, procs)
}

/// One more service on both directors: `-A <kind> <vip> <opts…>`, and each
/// real server `real(i)` under it, NAT.
pub fn service_on_both(
    lab: &HaLab,
    kind: &str,
    vip: &str,
    opts: &[&str],
    real: impl Fn(usize) -> String,
) {
    for d in [&lab.a, &lab.b] {
        let adm = |args: &[&str]| d.lvsadm(Path::new(LVSADM), args).unwrap();
        let add: Vec<&str> = ["-A", kind, vip].iter().chain(opts).copied().collect();
        adm(&add);
        for i in 0..lab.rs.len() {
            adm(&["-a", kind, vip, "-r", &real(i), "-m"]);
        }
    }
}

/// A server `rsN` on `any` of each real server, started by `start`
/// (`servers::echo_line`, `servers::udp`).
pub fn rs_servers(
    lab: &HaLab,
    any: SocketAddr,
    start: fn(&lvs_lab::Netns, SocketAddr, &str) -> anyhow::Result<servers::Server>,
) -> Vec<servers::Server> {
    lab.rs
        .iter()
        .enumerate()
        .map(|(i, ns)| start(ns, any, &format!("rs{}", i + 1)).unwrap())
        .collect()
}

/// The director takes the VIP and the real servers' gateway (no VRRP
/// here: `vrrp.rs` has keepalived move them).
pub fn hold(d: &HaDirector) {
    d.ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", OUTSIDE_IF])
        .unwrap();
    d.ns.ip(&["addr", "add", &format!("{GATEWAY}/32"), "dev", INSIDE_IF])
        .unwrap();
}

/// `lvsadm --start-daemon <role>` on the inside LAN with [`SYNC_ID`].
pub fn start_daemon(d: &HaDirector, role: &str) -> (i32, String, String) {
    adm_raw(
        d,
        &[
            "--start-daemon",
            role,
            "--mcast-interface",
            INSIDE_IF,
            "--syncid",
            SYNC_ID,
        ],
    )
}

/// The master's daemon on A, the backup's on B; both must start.
pub fn start_master_backup(lab: &HaLab) {
    for (d, role) in [(&lab.a, "master"), (&lab.b, "backup")] {
        assert_eq!(start_daemon(d, role).0, 0);
    }
}

/// `n` connections from the client to `to`, each asked `<tag> <i>` once:
/// (connection, the real server that answered).
pub fn connect_n(lab: &HaLab, to: SocketAddr, n: usize, tag: &str) -> Vec<(TcpConn, String)> {
    (0..n)
        .map(|i| {
            let mut c = TcpConn::connect(&lab.client, to, Duration::from_secs(3)).unwrap();
            let answer = c.ask(&format!("{tag} {i}")).unwrap();
            let rs = answer.split(' ').next().unwrap().to_string();
            (c, rs)
        })
        .collect()
}

/// The client addresses of `conns`, as `lvsadm -L -c` lists them.
pub fn client_addrs(conns: &[(TcpConn, String)]) -> BTreeSet<String> {
    conns
        .iter()
        .map(|(c, _)| c.local_addr().unwrap().to_string())
        .collect()
}

/// How many ESTABLISHED rows of `d` come from one of `ours`.
pub fn established_of(d: &HaDirector, ours: &BTreeSet<String>) -> usize {
    conn_rows(d)
        .iter()
        .filter(|r| ours.contains(&r.1) && r.0 == "ESTABLISHED")
        .count()
}

const LINE: &str =
    "master sync daemon (mcast=eth1, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n";

#[test]
fn backup_learns_the_masters_connections_and_refuses_bad_datagrams() {
    if !require_root("namespace tests") {
        return;
    }
    let (lab, _procs) = pair("sync", 2);
    let _servers = echo_servers(&lab);
    // The master holds the VIP and the real servers' gateway.
    hold(&lab.a);
    // SYNs to port 81 never reach a listener: dropped on the real
    // servers, the connections stay in SYN_RECV on the master.
    for ns in &lab.rs {
        ns.sh("nft add table inet t && nft add chain inet t in '{ type filter hook input priority 0; }' && nft add rule inet t in tcp dport 8081 drop")
            .unwrap();
    }

    // ipvsadm's commands and messages.
    let start = start_daemon;
    assert_eq!(
        adm_raw(&lab.a, &["-L", "--daemon"]),
        (0, String::new(), String::new())
    );
    assert_eq!(start(&lab.a, "master"), (0, String::new(), String::new()));
    assert_eq!(start(&lab.b, "backup"), (0, String::new(), String::new()));
    assert_eq!(
        start(&lab.a, "master"),
        (255, String::new(), "Daemon has already run\n".into())
    );
    assert_eq!(
        adm_raw(&lab.a, &["--stop-daemon", "backup"]),
        (255, String::new(), "No daemon is running\n".into())
    );
    assert_eq!(
        adm_raw(
            &lab.b,
            &["--start-daemon", "master", "--mcast-interface", "nosuch0"]
        ),
        (255, String::new(), "No such device\n".into())
    );
    assert_eq!(adm_raw(&lab.a, &["-L", "--daemon"]).1, LINE);
    assert_eq!(
        adm_raw(&lab.b, &["-L", "--daemon"]).1,
        LINE.replace("master", "backup")
    );

    // 20 established connections through the master, and one that never
    // gets past its SYN.
    let mut conns = connect_n(&lab, lab.vip(80), 20, "hello");
    let _syn = lab
        .client
        .spawn(
            "syn-only",
            &[
                "timeout",
                "30",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{VIP}/81"),
            ],
        )
        .unwrap();
    let ours = client_addrs(&conns);
    assert!(wait_until(Duration::from_secs(5), || conn_rows(&lab.a)
        .iter()
        .any(|r| r.0 == "SYN_RECV" && r.2.ends_with(":81"))));
    let established = |d: &HaDirector| -> BTreeSet<Row> {
        conn_rows(d)
            .into_iter()
            .filter(|r| ours.contains(&r.1) && r.0 == "ESTABLISHED")
            .collect()
    };
    let on_master = established(&lab.a);
    assert_eq!(on_master.len(), 20, "{on_master:#?}");
    assert!(
        wait_until(Duration::from_secs(10), || established(&lab.b) == on_master),
        "backup lists {:#?}, master {on_master:#?}",
        conn_rows(&lab.b)
    );
    // Counted as ActiveConn on the backup, each on the same real server.
    assert_eq!(counts(&lab.b), counts(&lab.a));
    assert_eq!(counts(&lab.b).iter().map(|c| c.1).sum::<u64>(), 20);
    // The SYN flood's entry stays on the master.
    assert!(!conn_rows(&lab.b).iter().any(|r| r.2.ends_with(":81")));
    for (c, rs) in &mut conns {
        assert!(c.ask("still there").unwrap().starts_with(rs.as_str()));
    }

    // Datagrams injected on the inside LAN, from a real server.
    let inject = |bytes: &[u8]| {
        let b = bytes.to_vec();
        lab.rs[0]
            .enter(move || {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.set_multicast_ttl_v4(1)?;
                s.send_to(&b, "224.0.0.81:8848")?;
                anyhow::Ok(())
            })
            .unwrap()
            .unwrap();
    };
    let stats = || control::stats(&lab.b.pin_dir).unwrap().0;
    let before = stats();
    // A good message, by hand: client 10.9.9.8:12345, ESTABLISHED, NAT to
    // rs1:8080, timeout 900 s.
    let good = hex(&format!(
        "00 07 00 2c 01 01 00 00  00 06 00 24 00 00 00 00  00 01 30 39 00 50 1f 90
         00 00 00 00 00 00 03 84  0a 09 09 08 {}  {}",
        octets(VIP),
        octets(rs_ip(0))
    ));
    inject(&good);
    assert!(wait_until(Duration::from_secs(5), || conn_rows(&lab.b)
        .iter()
        .any(
            |r| r.1 == "10.9.9.8:12345" && r.3 == format!("{}:8080", rs_ip(0))
        )));
    // The same entry for client 10.9.9.9, broken five ways.
    let mut bad = good.clone();
    bad[35] = 9;
    let mut other_id = bad.clone();
    other_id[1] = 8;
    let truncated = {
        let mut t = bad[..40].to_vec();
        t[3] = 40;
        t
    };
    let mut bad_size = bad.clone();
    bad_size[3] = 0x2b;
    let mut bad_version = bad.clone();
    bad_version[5] = 0;
    let mut malformed = bad.clone();
    malformed[8] = 2;
    // An entry for a real server this director does not have.
    let mut unknown = bad.clone();
    unknown[43] = 200;
    for b in [
        &other_id,
        &truncated,
        &bad_size,
        &bad_version,
        &malformed,
        &unknown,
    ] {
        inject(b);
    }
    let want = |c: &lvs::sync::backup::Counters| {
        use lvs::sync::codec::Reject::*;
        [OtherSyncId, Truncated, BadSize, BadVersion, Malformed]
            .iter()
            .all(|r| c.rejected_of(*r) == before.rejected_of(*r) + 1)
            && c.unknown == before.unknown + 1
    };
    assert!(
        wait_until(Duration::from_secs(5), || want(&stats())),
        "before {before:?}, now {:?}",
        stats()
    );
    // `lvs sync-stats` shows the same counters.
    let text = lvs_lab::check_output(
        lab.b
            .ns
            .command(LVS)
            .args(["sync-stats", "--pin-path"])
            .arg(&lab.b.pin_dir),
        Duration::from_secs(10),
    )
    .unwrap();
    let now = stats();
    for (name, v) in [
        (
            "rejected_truncated",
            now.rejected_of(lvs::sync::codec::Reject::Truncated),
        ),
        ("unknown", now.unknown),
    ] {
        assert!(text.contains(&format!("{name} {v}\n")), "{text}");
    }
    assert!(
        !conn_rows(&lab.b)
            .iter()
            .any(|r| r.1.starts_with("10.9.9.9:")),
        "{:#?}",
        conn_rows(&lab.b)
    );

    // The control socket answers a request it does not know with an
    // error, and changes nothing.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut s =
            std::os::unix::net::UnixStream::connect(control::socket_path(&lab.a.pin_dir)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"start role=master if=eth1 syncid=999\n")
            .unwrap();
        let mut answer = String::new();
        BufReader::new(&s).read_line(&mut answer).unwrap();
        assert!(answer.starts_with("err "), "{answer:?}");
    }
    assert_eq!(adm_raw(&lab.a, &["-L", "--daemon"]).1, LINE);

    // Stopping: nothing listed any more.
    assert_eq!(adm_raw(&lab.a, &["--stop-daemon", "master"]).0, 0);
    assert_eq!(adm_raw(&lab.a, &["-L", "--daemon"]).1, "");
}

fn octets(a: std::net::Ipv4Addr) -> String {
    a.octets().iter().map(|b| format!("{b:02x} ")).collect()
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn persistence_templates_follow_the_connections_to_the_backup() {
    if !require_root("namespace tests") {
        return;
    }
    let (lab, _procs) = pair("syncp", 2);
    let vip = format!("{VIP}:82");
    service_on_both(&lab, "-t", &vip, &["-s", "rr", "-p", "300"], |i| {
        format!("{}:8082", rs_ip(i))
    });
    let _servers = rs_servers(
        &lab,
        SocketAddr::from(([0, 0, 0, 0], 8082)),
        servers::echo_line,
    );
    hold(&lab.a);
    start_master_backup(&lab);
    // Eight clients, one connection each: rr alternates their templates
    // between the two servers.
    let clients: Vec<std::net::IpAddr> = (11..19u8)
        .map(|i| std::net::Ipv4Addr::new(192, 168, 47, i).into())
        .collect();
    for c in &clients {
        lab.client
            .ip(&["addr", "add", &format!("{c}/24"), "dev", OUTSIDE_IF])
            .unwrap();
    }
    let to = SocketAddr::new(VIP.into(), 82);
    let open = |from: std::net::IpAddr, tag: &str| -> (TcpConn, String) {
        let mut c = TcpConn::connect_from(&lab.client, from, to, Duration::from_secs(3)).unwrap();
        c.stream()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let a = c.ask(tag).unwrap();
        (c, a.split(' ').next().unwrap().to_string())
    };
    let mut before: Vec<(TcpConn, String)> = clients.iter().map(|c| open(*c, "x")).collect();
    let servers_of: Vec<String> = before.iter().map(|b| b.1.clone()).collect();
    assert!(servers_of.contains(&"rs1".to_string()) && servers_of.contains(&"rs2".to_string()));
    assert!(
        wait_until(Duration::from_secs(10), || conn_rows(&lab.b)
            .iter()
            .filter(|r| r.2 == vip && r.0 == "ESTABLISHED")
            .count()
            == clients.len()),
        "{:#?}",
        conn_rows(&lab.b)
    );
    // The takeover, by hand: the master's links down, the addresses on
    // the backup, the neighbours asked again.
    lab.a.fail().unwrap();
    hold(&lab.b);
    lab.client
        .ip(&["neigh", "flush", "dev", OUTSIDE_IF])
        .unwrap();
    for ns in &lab.rs {
        ns.ip(&["neigh", "flush", "dev", OUTSIDE_IF]).unwrap();
    }
    // The old connections carry on; a new connection of each client, in
    // the reverse order (so that rr alone would give each the other
    // server), goes where the synced template says.
    for (c, rs) in before.iter_mut() {
        assert_eq!(c.ask("y").unwrap(), format!("{rs} y"));
    }
    let after: Vec<String> = clients
        .iter()
        .rev()
        .map(|c| open(*c, "z").1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(after, servers_of, "the templates did not follow");
}

#[test]
fn an_ipv6_group_and_another_port_carry_the_sync() {
    if !require_root("namespace tests") {
        return;
    }
    let (lab, _procs) = pair("sync6", 2);
    let _servers = echo_servers(&lab);
    hold(&lab.a);
    let opts = [
        "--mcast-interface",
        INSIDE_IF,
        "--syncid",
        SYNC_ID,
        "--mcast-group",
        "ff02::81",
        "--mcast-port",
        "9848",
        "--mcast-ttl",
        "2",
    ];
    for (d, role) in [(&lab.a, "master"), (&lab.b, "backup")] {
        let args: Vec<&str> = ["--start-daemon", role]
            .iter()
            .chain(&opts)
            .copied()
            .collect();
        assert_eq!(adm_raw(d, &args), (0, String::new(), String::new()));
    }
    // The IPv6 headers leave 1500 - 48 bytes.
    assert_eq!(
        adm_raw(&lab.a, &["-L", "--daemon"]).1,
        "master sync daemon (mcast=eth1, syncid=7, maxlen=1452, group=ff02::81, port=9848, ttl=2)\n"
    );
    let conns = connect_n(&lab, lab.vip(80), 5, "v6");
    let ours = client_addrs(&conns);
    assert!(
        wait_until(Duration::from_secs(10), || established_of(&lab.b, &ours)
            == 5),
        "{:#?}\n{:?}",
        conn_rows(&lab.b),
        control::stats(&lab.b.pin_dir)
    );
}

#[test]
fn ipv6_connections_are_synced() {
    if !require_root("namespace tests") {
        return;
    }
    use lvs_lab::ha::{rs_ip6, GATEWAY6, VIP6};
    let (lab, _procs) = pair("sync6c", 2);
    let vip = format!("[{VIP6}]:80");
    service_on_both(&lab, "-t", &vip, &["-s", "rr"], |i| {
        format!("[{}]:8086", rs_ip6(i))
    });
    let _servers = rs_servers(&lab, "[::]:8086".parse().unwrap(), servers::echo_line);
    lab.a.ns.addr(OUTSIDE_IF, &format!("{VIP6}/128")).unwrap();
    lab.a
        .ns
        .addr(INSIDE_IF, &format!("{GATEWAY6}/128"))
        .unwrap();
    start_master_backup(&lab);
    let to = SocketAddr::new(VIP6.into(), 80);
    let mut conns = connect_n(&lab, to, 6, "six");
    let rows = |d: &HaDirector| -> BTreeSet<Row> {
        conn_rows(d)
            .into_iter()
            .filter(|r| r.2 == vip && r.0 == "ESTABLISHED")
            .collect()
    };
    let on_master = rows(&lab.a);
    assert_eq!(on_master.len(), 6, "{on_master:#?}");
    assert!(
        wait_until(Duration::from_secs(10), || rows(&lab.b) == on_master),
        "backup {:#?}, master {on_master:#?}",
        conn_rows(&lab.b)
    );
    // The backup's counts of the IPv6 service are the master's.
    let v6_counts = |d: &HaDirector| {
        d.lvsadm(Path::new(LVSADM), &["-L", "-n", "-t", &vip])
            .unwrap()
    };
    assert_eq!(v6_counts(&lab.b), v6_counts(&lab.a));
    for (c, rs) in &mut conns {
        assert!(c.ask("more").unwrap().starts_with(rs.as_str()));
    }
}

#[test]
fn both_roles_at_once_send_nothing_back() {
    if !require_root("namespace tests") {
        return;
    }
    let (lab, _procs) = pair("syncdual", 2);
    let _servers = echo_servers(&lab);
    hold(&lab.a);
    // Master and backup on both directors, as IPVS allows.
    for d in [&lab.a, &lab.b] {
        for role in ["master", "backup"] {
            assert_eq!(start_daemon(d, role).0, 0);
        }
        assert_eq!(adm_raw(d, &["-L", "--daemon"]).1.lines().count(), 2);
    }
    let _conns = connect_n(&lab, lab.vip(80), 10, "dual");
    let synced = |d: &HaDirector| control::stats(&d.pin_dir).unwrap().0.conns;
    assert!(wait_until(Duration::from_secs(10), || synced(&lab.b) >= 10));
    // B learnt them and saw no packet of them: it sends none back to A,
    // whatever walks go by.
    std::thread::sleep(Duration::from_secs(3));
    let (_, sent_b) = control::stats(&lab.b.pin_dir).unwrap();
    assert_eq!((synced(&lab.a), sent_b.conns), (0, 0));
}

#[test]
fn a_restarted_lvs_load_resumes_its_daemons() {
    if !require_root("namespace tests") {
        return;
    }
    let (lab, procs) = pair("syncre", 2);
    let _servers = echo_servers(&lab);
    hold(&lab.a);
    start_master_backup(&lab);
    // The master's `lvs load` restarts (the director keeps forwarding);
    // the new one adopts it and resumes the sync daemon.
    procs[1].stop().unwrap();
    let _again = lab.a.start(Path::new(LVS), &[]).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || adm_raw(
            &lab.a,
            &["-L", "--daemon"]
        )
        .1 == LINE),
        "{:?}",
        adm_raw(&lab.a, &["-L", "--daemon"])
    );
    let conns = connect_n(&lab, lab.vip(80), 5, "re");
    let ours = client_addrs(&conns);
    assert!(wait_until(Duration::from_secs(10), || established_of(
        &lab.b, &ours
    ) == 5));
}

#[test]
fn udp_flows_are_synced_only_past_one_packet() {
    if !require_root("namespace tests") {
        return;
    }
    use lvs_lab::clients::UdpClient;
    let (lab, _procs) = pair("syncudp", 2);
    let vip = format!("{VIP}:53");
    service_on_both(&lab, "-u", &vip, &["-s", "rr"], |i| {
        format!("{}:5353", rs_ip(i))
    });
    let _servers = rs_servers(&lab, SocketAddr::from(([0, 0, 0, 0], 5353)), servers::udp);
    hold(&lab.a);
    start_master_backup(&lab);
    let to = SocketAddr::new(VIP.into(), 53);
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    // One flow of one datagram (a flood's), one that keeps talking.
    let once = UdpClient::bind(&lab.client, any).unwrap();
    once.request(to, "q", Duration::from_secs(3)).unwrap();
    // Bound to 0.0.0.0: the director sees the client's address.
    let seen = |c: &UdpClient| {
        format!(
            "{}:{}",
            lvs_lab::ha::CLIENT_IP,
            c.local_addr().unwrap().port()
        )
    };
    let once = seen(&once);
    let talker = UdpClient::bind(&lab.client, any).unwrap();
    let talker_at = seen(&talker);
    let rows_with = |d: &HaDirector, client: &str| {
        conn_rows(d)
            .iter()
            .filter(|r| r.1 == client && r.0 == "UDP")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            talker.request(to, "t", Duration::from_secs(3)).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            rows_with(&lab.b, &talker_at) == 1
        }),
        "the talking flow was not synced: {:#?}",
        conn_rows(&lab.b)
    );
    // Several walks later, the one-datagram flow is still the master's
    // alone.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rows_with(&lab.a, &once), 1);
    assert_eq!(rows_with(&lab.b, &once), 0, "{:#?}", conn_rows(&lab.b));
}
