//! The DR/TUN LAN and the routed lab, checked with the kernel alone (no
//! lvs binaries): who answers ARP/NDP for the VIP, that a real server
//! takes packets for the VIP on `lo` and answers from it, and that the
//! routers' ICMP errors lower the path MTU the way the ICMP tests expect.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use lvs_lab::{
    clients,
    lan::{self, routed, Capture, DfSocket, LanConfig, LanLab, RoutedConfig, RoutedLab, UdpSized},
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

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn lan_topology_and_who_answers_for_the_vip() {
    need_root!();
    let lab = LanLab::with_config(
        "lantopo",
        LanConfig {
            real_servers: 2,
            inside_servers: 1,
            ipv6: true,
            vip: true,
        },
    )
    .unwrap();
    let dir_mac = lab.director.mac("eth0").unwrap();
    // Everyone reaches everyone on the LAN.
    for (i, rs) in lab.rs.iter().enumerate() {
        clients::ping(&lab.client, lan::rs_ip(i).into(), T).unwrap();
        clients::ping(&lab.client, lan::rs_ip6(i).into(), T).unwrap();
        clients::ping(rs, lan::DIP.into(), T).unwrap();
        let lo = rs.ip(&["-o", "addr", "show", "dev", "lo"]).unwrap();
        assert!(lo.contains("192.168.47.200/32"), "{lo}");
        assert!(lo.contains("2001:db8:47::200/128"), "{lo}");
        assert_eq!(rs.read_sysctl("net.ipv4.conf.all.arp_ignore").unwrap(), "1");
        assert_eq!(
            rs.read_sysctl("net.ipv4.conf.eth0.arp_announce").unwrap(),
            "2"
        );
    }
    // Only the director answers ARP and NDP for the VIP.
    clients::ping(&lab.client, lan::VIP.into(), T).unwrap();
    clients::ping(&lab.client, lan::VIP6.into(), T).unwrap();
    assert_eq!(
        lab.client.neigh_mac(lan::VIP.into()).unwrap(),
        Some(dir_mac)
    );
    assert_eq!(
        lab.client.neigh_mac(lan::VIP6.into()).unwrap(),
        Some(dir_mac)
    );
    // The inside network hangs off the director.
    clients::ping(&lab.inside[0], lan::INSIDE_DIP.into(), T).unwrap();
    clients::ping(&lab.inside[0], lan::INSIDE_DIP6.into(), T).unwrap();
    assert!(lab.inside[0]
        .ip(&["route"])
        .unwrap()
        .contains("default via 192.168.211.128"));
}

#[test]
fn real_servers_never_answer_arp_or_ndp_for_the_vip() {
    need_root!();
    let lab = LanLab::with_config(
        "lannoarp",
        LanConfig {
            ipv6: true,
            ..Default::default()
        },
    )
    .unwrap();
    // Take the VIP off the director: nobody may claim it now.
    lab.director
        .ip(&["addr", "del", "192.168.47.200/32", "dev", "eth0"])
        .unwrap();
    lab.director
        .ip(&["addr", "del", "2001:db8:47::200/128", "dev", "eth0"])
        .unwrap();
    let cap = Capture::start(&lab.client, "eth0").unwrap();
    let short = Duration::from_millis(1500);
    assert!(clients::ping(&lab.client, lan::VIP.into(), short).is_err());
    assert!(clients::ping(&lab.client, lan::VIP6.into(), short).is_err());
    let frames = cap.finish();
    let rs_macs: Vec<_> = lab.rs.iter().map(|r| r.mac("eth0").unwrap()).collect();
    // No ARP reply and no neighbour advertisement came from a real server.
    for f in frames.iter().filter(|f| !f.outgoing) {
        let src: [u8; 6] = f.frame[6..12].try_into().unwrap();
        let b = &f.frame;
        let arp_reply = b.len() >= 22 && b[12..14] == [0x08, 0x06] && b[20..22] == [0, 2];
        // IPv6, next header ICMPv6, type 136.
        let na = b.len() >= 55 && b[12..14] == [0x86, 0xdd] && b[20] == 58 && b[54] == 136;
        assert!(
            !(rs_macs.contains(&src) && (arp_reply || na)),
            "a real server answered: {:02x?}",
            &b[..b.len().min(90)]
        );
    }
    // But they still hold it, and answer from it when a frame reaches
    // them directly (what DR does): point the client's neighbour entry for
    // the VIP at rs1 and talk to the VIP.
    let rs1_mac = lvs_lab::packet::mac_str(&rs_macs[0]);
    for vip in ["192.168.47.200", "2001:db8:47::200"] {
        lab.client
            .ip(&[
                "neigh",
                "replace",
                vip,
                "lladdr",
                &rs1_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])
            .unwrap();
    }
    let web = servers::http(&lab.rs[0], sa("[::]:80"), "rs1\n").unwrap();
    assert_eq!(
        clients::http_get(&lab.client, lab.vip(80), T).unwrap(),
        "rs1\n"
    );
    assert_eq!(
        clients::http_get(&lab.client, lab.vip6(80), T).unwrap(),
        "rs1\n"
    );
    assert_eq!(web.requests(), 2);
}

/// The kernel's own PMTU discovery across the routed lab (the director's
/// stack forwarding, no NAT): the routers' errors lower the senders' path
/// MTU. The lvs ICMP tests expect the same through the XDP director.
#[test]
fn routed_lab_routers_send_fragmentation_needed() {
    need_root!();
    for v6 in [false, true] {
        // Inside segment narrow: the client learns it.
        let lab = RoutedLab::with_config(
            "routed",
            RoutedConfig {
                ipv6: v6,
                server_mtu: Some(1400),
                ..Default::default()
            },
        )
        .unwrap();
        lab.enable_forwarding().unwrap();
        let rs: IpAddr = if v6 {
            routed::rs_ip6(0).into()
        } else {
            routed::rs_ip(0).into()
        };
        let client: IpAddr = if v6 {
            routed::CLIENT_IP6.into()
        } else {
            routed::CLIENT_IP.into()
        };
        let any = if v6 { "[::]:7000" } else { "0.0.0.0:7000" };
        let srv = UdpSized::start(&lab.rs[0], sa(any)).unwrap();
        let s = DfSocket::connect(&lab.client, SocketAddr::new(rs, 7000)).unwrap();
        s.send(b"10").unwrap();
        assert_eq!(s.recv(T).unwrap().len(), 10);
        assert_eq!(lab.client.path_mtu(rs).unwrap(), None);
        s.send_packet_of(1500).unwrap();
        lab.client.wait_path_mtu(rs, 1400, T).unwrap();
        assert_eq!(s.path_mtu().unwrap(), 1400);
        drop(srv);

        // Outside link narrow: the real server learns it.
        let lab = RoutedLab::with_config(
            "routed",
            RoutedConfig {
                ipv6: v6,
                client_mtu: Some(1400),
                ..Default::default()
            },
        )
        .unwrap();
        lab.enable_forwarding().unwrap();
        let srv = UdpSized::start(&lab.rs[0], sa(any)).unwrap();
        let s = DfSocket::connect(&lab.client, SocketAddr::new(rs, 7000)).unwrap();
        s.send(b"1000").unwrap();
        assert_eq!(s.recv(T).unwrap().len(), 1000);
        let big = if v6 { 1500 - 48 } else { 1500 - 28 };
        s.send(big.to_string().as_bytes()).unwrap();
        lab.rs[0].wait_path_mtu(client, 1400, T).unwrap();
        assert_eq!(srv.requests(), 2);
    }
}
