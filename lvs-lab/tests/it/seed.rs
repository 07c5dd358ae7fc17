//! The seed NAT topology, checked end to end with the kernel doing the
//! director's job (iptables DNAT), plus the contract with the lvs binaries
//! checked against stand-ins.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    time::Duration,
};

use lvs_lab::{
    clients,
    seed::{self, SeedConfig, SeedLab},
    servers,
};

const T: Duration = Duration::from_secs(3);

macro_rules! need_root {
    () => {
        if !lvs_lab::require_root("namespace tests") {
            return;
        }
    };
}

#[test]
fn topology_matches_the_seed() {
    need_root!();
    let lab = SeedLab::with_config(
        "topo",
        SeedConfig {
            real_servers: 3,
            ipv6: true,
        },
    )
    .unwrap();
    let addrs = |ns: &lvs_lab::Netns, dev| ns.ip(&["-o", "addr", "show", "dev", dev]).unwrap();
    assert!(addrs(&lab.client, "eth0").contains("192.168.47.1/24"));
    assert!(addrs(&lab.director, "ens37").contains("192.168.47.128/24"));
    assert!(addrs(&lab.director, "ens33").contains("192.168.211.128/24"));
    for (i, rs) in lab.rs.iter().enumerate() {
        assert_eq!(rs.role(), format!("rs{}", i + 1));
        assert!(addrs(rs, "eth0").contains(&format!("192.168.211.{}/24", 129 + i)));
        assert!(rs
            .ip(&["route"])
            .unwrap()
            .contains("default via 192.168.211.128 dev eth0"));
        assert!(rs
            .ip(&["-6", "route"])
            .unwrap()
            .contains("default via 2001:db8:211::128"));
    }
    let bridged = lab
        .switch
        .ip(&["-o", "link", "show", "master", "br0"])
        .unwrap();
    for port in ["p-dir", "p-rs1", "p-rs2", "p-rs3"] {
        assert!(bridged.contains(&format!("{port}@")), "{bridged}");
    }
    for dev in ["ens33", "ens37"] {
        let features = lab.director.run(&["ethtool", "-k", dev]).unwrap();
        assert!(features.contains("tx-checksumming: off"));
    }
    assert!(lab.pin_dir().starts_with("/sys/fs/bpf") && lab.pin_dir().is_dir());

    let ping = |ns, to: &str| clients::ping(ns, to.parse().unwrap(), T);
    ping(&lab.client, "192.168.47.128").unwrap();
    ping(&lab.client, "2001:db8:47::128").unwrap();
    for i in 0..3 {
        ping(&lab.director, &seed::rs_ip(i).to_string()).unwrap();
        ping(&lab.director, &seed::rs_ip6(i).to_string()).unwrap();
    }
    ping(&lab.rs[0], "192.168.211.130").unwrap();
    // Only the director's own outside address is on-link for the client.
    assert!(ping(&lab.client, "192.168.211.129").is_err());
}

/// What an LVS-NAT director does, done by netfilter: if this works, the
/// addressing and routing are right for the XDP director too.
#[test]
fn kernel_nat_through_the_seed_lab() {
    need_root!();
    if !lvs_lab::on_path("iptables") {
        eprintln!("SKIPPED (iptables not installed): kernel NAT check");
        return;
    }
    let lab = SeedLab::new("knat").unwrap();
    let d = &lab.director;
    d.sysctl("net.ipv4.ip_forward", "1").unwrap();
    for (proto, port) in [("tcp", "80"), ("udp", "53")] {
        for (i, every) in [(0, "2"), (1, "1")] {
            let to = format!("{}:{port}", seed::rs_ip(i));
            d.run(&[
                "iptables",
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-d",
                "192.168.47.128",
                "-p",
                proto,
                "--dport",
                port,
                "-m",
                "statistic",
                "--mode",
                "nth",
                "--every",
                every,
                "--packet",
                "0",
                "-j",
                "DNAT",
                "--to-destination",
                &to,
            ])
            .unwrap();
        }
    }
    let names = ["hao2\n", "hao3\n"];
    let web: Vec<_> = (0..2)
        .map(|i| servers::http(&lab.rs[i], "0.0.0.0:80".parse().unwrap(), names[i]).unwrap())
        .collect();
    let dns: Vec<_> = (0..2)
        .map(|i| servers::udp(&lab.rs[i], "0.0.0.0:53".parse().unwrap(), names[i].trim()).unwrap())
        .collect();

    let mut seen = BTreeMap::new();
    for _ in 0..6 {
        let body = clients::http_get(&lab.client, lab.vip(80), T).unwrap();
        *seen.entry(body).or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("hao2\n".into(), 3), ("hao3\n".into(), 3)])
    );
    let client_ip: IpAddr = seed::CLIENT_IP.into();
    for w in &web {
        assert!(
            w.peers().iter().all(|p| p.ip() == client_ip),
            "NAT keeps the client's address"
        );
    }
    let a = clients::udp_request(&lab.client, lab.vip(53), "q", T).unwrap();
    let b = clients::udp_request(&lab.client, lab.vip(53), "q", T).unwrap();
    assert_ne!(a, b);
    assert_eq!(dns.iter().map(|s| s.requests()).sum::<u64>(), 2);
}

const FAKE_LVS: &str = r#"#!/bin/sh
echo "$(readlink /proc/self/ns/net) $*" >> "$(dirname "$0")/calls"
case "$1" in
  pass) echo "lvs: pass attached ($*)" ;;
  load) echo "some log line"; echo "lvs: director attached" ;;
  *) exit 2 ;;
esac
exec sleep 1000
"#;

const FAKE_LVSADM: &str = r#"#!/bin/sh
echo "pin=$LVS_PIN_PATH args=$*"
"#;

fn install(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The lab's side of the contract with `lvs pass`, `lvs load` and
/// `lvsadm`: arguments, namespaces, readiness lines, environment.
#[test]
fn lvs_binaries_are_driven_as_agreed() {
    need_root!();
    let lab = SeedLab::new("fake").unwrap();
    let bin = lab.lab.workdir().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let lvs = install(&bin, "lvs", FAKE_LVS);
    let lvsadm = install(&bin, "lvsadm", FAKE_LVSADM);

    let passes = lab.start_pass(&lvs).unwrap();
    let director = lab.start_director(&lvs, &["--verbose"]).unwrap();
    let out = lab.lvsadm(&lvsadm, &["-L", "-n"]).unwrap();
    assert_eq!(
        out.trim(),
        format!("pin={} args=-L -n", lab.pin_dir().display())
    );

    let ino = |ns: &lvs_lab::Netns| std::fs::metadata(ns.path()).unwrap().ino();
    let calls = std::fs::read_to_string(bin.join("calls")).unwrap();
    let expect = [
        format!("net:[{}] pass --iface eth0", ino(&lab.client)),
        format!("net:[{}] pass --iface p-dir", ino(&lab.switch)),
        format!(
            "net:[{}] load --iface ens33 --iface ens37 --pin-path {} --verbose",
            ino(&lab.director),
            lab.pin_dir().display()
        ),
    ];
    for e in &expect {
        assert!(calls.lines().any(|l| l == e), "missing {e:?} in\n{calls}");
    }
    assert!(passes.iter().chain([&director]).all(|p| p.is_running()));
    let pids: Vec<u32> = passes.iter().chain([&director]).map(|p| p.pid()).collect();
    drop(lab);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} survived"
        );
    }
}

#[test]
fn readiness_failures_are_reported() {
    need_root!();
    let lab = SeedLab::with_config(
        "nolvs",
        SeedConfig {
            real_servers: 1,
            ipv6: false,
        },
    )
    .unwrap();
    let bin = lab.lab.workdir().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let broken = install(
        &bin,
        "lvs",
        "#!/bin/sh\necho 'lvs: cannot attach' >&2\nexit 1\n",
    );
    let err = format!("{:#}", lab.start_pass(&broken).unwrap_err());
    assert!(
        err.contains("cannot attach") && err.contains("exited"),
        "{err}"
    );
}
