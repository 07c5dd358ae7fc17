//! Jumbo frames: the director and `lvs pass` are loaded with multi-buffer
//! (`frags`) support, so they attach natively to links with a 9000-byte
//! MTU (without it the kernel refuses the attachment above about 3.5 kB),
//! and frames larger than a page, which the kernel hands to XDP as a
//! first buffer plus fragments, are forwarded whole.

use std::path::Path;

use lvs_lab::{
    clients,
    lan::Capture,
    packet, require_root,
    seed::{self, SeedConfig, SeedLab},
    servers,
};

use crate::common::{LVS, LVSADM, T};

#[test]
fn nat_over_9000_byte_links() {
    if !require_root("jumbo") {
        return;
    }
    let seed = SeedLab::with_config(
        "jumbo",
        SeedConfig {
            real_servers: 1,
            ..Default::default()
        },
    )
    .unwrap();
    for (ns, dev) in [
        (&seed.client, seed::CLIENT_IF),
        (&seed.director, seed::DIR_EXT_IF),
        (&seed.director, seed::DIR_INT_IF),
        (&seed.switch, seed::SWITCH_DIR_PORT),
        (&seed.switch, "p-rs1"),
        (&seed.switch, seed::BRIDGE),
        (&seed.rs[0], seed::RS_IF),
    ] {
        ns.sh(&format!("ip link set dev {dev} mtu 9000")).unwrap();
    }
    seed.director.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let _pass = seed.start_pass(Path::new(LVS)).unwrap();
    let _director = seed.start_director(Path::new(LVS), &[]).unwrap();
    let links = seed.director.run(&["ip", "-d", "link", "show"]).unwrap();
    assert_eq!(
        links.matches("mtu 9000").count(),
        2,
        "both director links at 9000: {links}"
    );
    assert_eq!(
        links.matches("prog/xdp ").count(),
        2,
        "attached natively (not xdpgeneric) to both: {links}"
    );

    let vip = seed.vip(80).to_string();
    let rs = format!("{}:80", seed::rs_ip(0));
    let adm = |args: &[&str]| seed.lvsadm(Path::new(LVSADM), args).unwrap();
    adm(&["-A", "-t", &vip, "-s", "rr"]);
    adm(&["-a", "-t", &vip, "-r", &rs, "-m"]);
    let body: String = (0..200_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let _web = servers::http(&seed.rs[0], "0.0.0.0:80".parse().unwrap(), &body).unwrap();

    // The answer came in frames larger than a page (multi-buffer in XDP),
    // reverse-NATed from the VIP with valid checksums. Each GET must bring
    // the whole body; on a loaded machine one (of a fresh-clone CI run)
    // showed no large frame in the capture, so up to three GETs are looked
    // at for one.
    let mut big = Vec::new();
    for _ in 0..3 {
        let cap = Capture::start(&seed.client, seed::CLIENT_IF).unwrap();
        let got = clients::http_get(&seed.client, seed.vip(80), T).unwrap();
        let frames = cap.finish();
        assert!(got.ends_with(&body), "the whole body, unchanged");
        big = frames
            .iter()
            .filter(|c| !c.outgoing && c.frame.len() > 5000)
            .filter_map(|c| packet::parse(&c.frame))
            .collect();
        if !big.is_empty() {
            break;
        }
    }
    assert!(
        !big.is_empty(),
        "no frame over 5000 bytes reached the client"
    );
    assert!(big
        .iter()
        .all(|p| p.src == seed.vip(80).ip() && p.ip_csum_ok && p.l4_csum_ok));
}
