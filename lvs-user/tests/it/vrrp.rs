//! Active/backup with keepalived's VRRP (Debian's keepalived 2.2.7,
//! `vrrp_instance`s only) and IPVS-style connection sync: the VIP's and
//! the real servers' gateway's instances in one `vrrp_sync_group`, whose
//! `notify_master`/`notify_backup` hooks switch the sync role with
//! `lvsadm --start-daemon`/`--stop-daemon` (the README's pairing). 100
//! long-lived NAT connections go through the master; the backup lists them
//! before the takeover; the master fails as machines fail (its links go
//! down); the backup takes both addresses and forwards every connection to
//! the same real server: no reset, data continues. Then the old master
//! comes back, learns as backup what was opened meanwhile, takes over again
//! after its preempt delay, and every connection carries on through it.

use std::{path::Path, time::Duration};

use crate::{
    common::{wait_until, LVSADM},
    sync::{adm_raw, conn_rows, counts, echo_servers, pair, SYNC_ID},
};
use lvs_lab::{
    clients::TcpConn,
    ha::{HaDirector, HaLab, GATEWAY, INSIDE_IF, OUTSIDE_IF, VIP},
    require_root, Proc,
};

/// The notify hook: the sync role follows the VRRP state.
fn notify_script(d: &HaDirector) -> String {
    let adm = format!("{LVSADM} --pin-path {}", d.pin_dir.display());
    format!(
        "#!/bin/sh
# keepalived notify hook: $1 is the new VRRP state of the sync group.
case \"$1\" in
master)
    {adm} --stop-daemon backup >/dev/null 2>&1
    {adm} --start-daemon master --mcast-interface {INSIDE_IF} --syncid {SYNC_ID}
    ;;
backup|fault)
    {adm} --stop-daemon master >/dev/null 2>&1
    {adm} --start-daemon backup --mcast-interface {INSIDE_IF} --syncid {SYNC_ID}
    ;;
esac
exit 0
"
    )
}

/// keepalived.conf of one director of the pair.
/// Both instances start BACKUP (the higher priority becomes master);
/// `preempt_delay` gives a returning master's backup daemon time to learn
/// the connections opened while it was away before it takes over again.
fn keepalived_conf(script: &Path, name: &str, priority: u8) -> String {
    let s = script.display();
    format!(
        "global_defs {{
    router_id {name}
    enable_script_security
    script_user root
}}

vrrp_sync_group LVS {{
    group {{
        VIP
        GATEWAY
    }}
    notify_master \"{s} master\"
    notify_backup \"{s} backup\"
    notify_fault \"{s} fault\"
}}

vrrp_instance VIP {{
    state BACKUP
    preempt_delay {PREEMPT_DELAY}
    interface {OUTSIDE_IF}
    virtual_router_id 47
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {VIP}/32 dev {OUTSIDE_IF}
    }}
}}

vrrp_instance GATEWAY {{
    state BACKUP
    preempt_delay {PREEMPT_DELAY}
    interface {INSIDE_IF}
    virtual_router_id 211
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {GATEWAY}/32 dev {INSIDE_IF}
    }}
}}
"
    )
}

/// Longer than the master's refresh period (10 s) of active connections.
const PREEMPT_DELAY: u32 = 15;

fn keepalived(lab: &HaLab, d: &HaDirector, priority: u8) -> Proc {
    let dir = lab.lab.workdir().join(format!("{}-hook", d.ns.role()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("notify.sh");
    std::fs::write(&script, notify_script(d)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    lab.keepalived(d, &keepalived_conf(&script, d.ns.role(), priority))
        .unwrap()
}

fn role_line(d: &HaDirector) -> String {
    adm_raw(d, &["-L", "--daemon"]).1
}

#[test]
fn backup_takes_over_every_connection_when_the_master_fails() {
    if !require_root("namespace tests") {
        return;
    }
    const N: usize = 100;
    let (lab, _procs) = pair("vrrp", 2);
    let _servers = echo_servers(&lab);
    let ka = keepalived(&lab, &lab.a, 150);
    let kb = keepalived(&lab, &lab.b, 100);
    let diag = || {
        format!(
            "keepalived a:\n{}\nkeepalived b:\n{}",
            ka.output(),
            kb.output()
        )
    };
    assert!(
        wait_until(Duration::from_secs(15), || {
            lab.a.holds(VIP).unwrap()
                && lab.a.holds(GATEWAY).unwrap()
                && role_line(&lab.a).starts_with("master sync daemon (mcast=eth1, syncid=7")
                && role_line(&lab.b).starts_with("backup sync daemon (mcast=eth1, syncid=7")
        }),
        "the pair did not settle: a {:?}, b {:?}\n{}",
        role_line(&lab.a),
        role_line(&lab.b),
        diag()
    );
    assert!(!lab.b.holds(VIP).unwrap() && !lab.b.holds(GATEWAY).unwrap());

    // 100 long-lived connections through the master, each on its server.
    let mut conns: Vec<(TcpConn, String)> = (0..N)
        .map(|i| {
            let mut c = TcpConn::connect(&lab.client, lab.vip(80), Duration::from_secs(3)).unwrap();
            c.stream()
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let answer = c.ask(&format!("before {i}")).unwrap();
            assert_eq!(
                answer.split_once(' ').map(|x| x.1),
                Some(&*format!("before {i}"))
            );
            (c, answer.split(' ').next().unwrap().to_string())
        })
        .collect();
    let clients: Vec<String> = conns
        .iter()
        .map(|(c, _)| c.local_addr().unwrap().to_string())
        .collect();
    // The backup lists every one of them before the takeover, on the same
    // real server as the master, and counts them.
    let listed = |d: &HaDirector| {
        let rows = conn_rows(d);
        clients
            .iter()
            .zip(&conns)
            .filter(|(client, _)| {
                rows.iter()
                    .any(|r| &r.1 == *client && r.0 == "ESTABLISHED" && r.2 == format!("{VIP}:80"))
            })
            .count()
    };
    assert_eq!(listed(&lab.a), N);
    assert!(
        wait_until(Duration::from_secs(10), || listed(&lab.b) == N),
        "the backup lists {} of {N}",
        listed(&lab.b)
    );
    let rows_b = conn_rows(&lab.b);
    for ((_, rs), client) in conns.iter().zip(&clients) {
        let row = rows_b.iter().find(|r| &r.1 == client).unwrap();
        let rs_ip = lvs_lab::ha::rs_ip(rs[2..].parse::<usize>().unwrap() - 1);
        assert_eq!(row.3, format!("{rs_ip}:8080"), "{client}");
    }
    assert_eq!(counts(&lab.b), counts(&lab.a));

    // The master fails: both links down.
    lab.a.fail().unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || lab.b.holds(VIP).unwrap()
            && lab.b.holds(GATEWAY).unwrap()),
        "the backup did not take the addresses\n{}",
        diag()
    );
    // Every connection carries on, answered by the same real server: a
    // reset or another server would fail the ask.
    let mut resets = 0;
    for (i, (c, rs)) in conns.iter_mut().enumerate() {
        match c.ask(&format!("after {i}")) {
            Ok(answer) => assert_eq!(answer, format!("{rs} after {i}")),
            Err(e) => {
                eprintln!("connection {i}: {e:#}");
                resets += 1;
            }
        }
    }
    assert_eq!(resets, 0, "{}", diag());
    // And keeps going.
    for (i, (c, rs)) in conns.iter_mut().enumerate() {
        assert_eq!(
            c.ask(&format!("again {i}")).unwrap(),
            format!("{rs} again {i}")
        );
    }
    // The hook made the new master the sync master.
    assert!(
        wait_until(Duration::from_secs(5), || role_line(&lab.b)
            .starts_with("master sync daemon (mcast=eth1, syncid=7")),
        "{:?}\n{}",
        role_line(&lab.b),
        diag()
    );

    // Ten more connections through the new master, while the old one is
    // away.
    let mut more: Vec<(TcpConn, String)> = (0..10)
        .map(|i| {
            let mut c = TcpConn::connect(&lab.client, lab.vip(80), Duration::from_secs(3)).unwrap();
            c.stream()
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let answer = c.ask(&format!("during {i}")).unwrap();
            (c, answer.split(' ').next().unwrap().to_string())
        })
        .collect();
    let more_clients: Vec<String> = more
        .iter()
        .map(|(c, _)| c.local_addr().unwrap().to_string())
        .collect();
    // The old master comes back: its hook makes it a backup, it learns
    // the new connections (traffic keeps them being re-sent), then takes
    // the addresses back after its preempt delay; every connection, old
    // and new, carries on with its real server.
    for dev in [OUTSIDE_IF, INSIDE_IF] {
        lab.a.ns.ip(&["link", "set", dev, "up"]).unwrap();
    }
    let mut round = 0;
    let mut pump = |conns: &mut [(TcpConn, String)], more: &mut [(TcpConn, String)]| {
        round += 1;
        for (i, (c, rs)) in conns.iter_mut().chain(more.iter_mut()).enumerate() {
            let line = format!("r{round} {i}");
            assert_eq!(c.ask(&line).unwrap(), format!("{rs} {line}"));
        }
    };
    let learnt = |d: &HaDirector| {
        let rows = conn_rows(d);
        more_clients
            .iter()
            .filter(|c| rows.iter().any(|r| &r.1 == *c && r.0 == "ESTABLISHED"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(25), || {
            pump(&mut conns, &mut more);
            learnt(&lab.a) == more.len()
        }),
        "the returning director learnt {} of {}; a {:?}\n{}",
        learnt(&lab.a),
        more.len(),
        role_line(&lab.a),
        diag()
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            pump(&mut conns, &mut more);
            lab.a.holds(VIP).unwrap() && lab.a.holds(GATEWAY).unwrap()
        }),
        "the returning director did not take the addresses back\n{}",
        diag()
    );
    assert!(!lab.b.holds(VIP).unwrap());
    // Through it, every connection once more, and the roles switched back.
    pump(&mut conns, &mut more);
    assert!(
        wait_until(Duration::from_secs(5), || role_line(&lab.a)
            .starts_with("master sync daemon")
            && role_line(&lab.b).starts_with("backup sync daemon")),
        "a {:?}, b {:?}",
        role_line(&lab.a),
        role_line(&lab.b)
    );
}
