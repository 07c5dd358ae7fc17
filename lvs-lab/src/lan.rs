//! Labs for LVS-DR and LVS-TUN (one LAN, as in the LVS HOWTOs), a routed
//! lab with routers on both sides of a NAT director (for ICMP errors and
//! path MTU), and the tools their tests need: the VIP on a real server's
//! `lo`, `lvs decap`, packet capture, DF datagrams, path MTU look-ups.
//!
//! [`LanLab`]: client, director and real servers on one bridge:
//!
//! ```text
//!                       switch: br0 (p-client, p-dir, p-rs1, p-rs2, …)
//!   client eth0 192.168.47.1/24         2001:db8:47::1/64
//!   director eth0 192.168.47.128/24     2001:db8:47::128/64   (DIP)
//!            eth0 192.168.47.200/32     2001:db8:47::200/128  (VIP)
//!   rs1 eth0 192.168.47.129/24, rs2 .130, …   2001:db8:47::129/64, ::130
//!       lo   192.168.47.200/32          2001:db8:47::200/128  (VIP, not answered for)
//!
//!   with `inside_servers` > 0, NAT servers behind the director too:
//!   director eth1 192.168.211.128/24    2001:db8:211::128/64
//!                       switch: br1 (p-dir-in, p-nat1, …)
//!   nat1 eth0 192.168.211.129/24, …     2001:db8:211::129/64  (default via the director)
//! ```
//!
//! Real servers hold the VIP on `lo` with `arp_ignore=1` / `arp_announce=2`
//! (on `all` and `eth0`), so only the director answers ARP for it. IPv6 has
//! no such knob and needs none: the kernel answers neighbour solicitations
//! only for addresses of the receiving link, and `lo` takes no part in NDP
//! (the lab tests in `lvs-lab/tests/it/lan.rs` check both).
//!
//! [`RoutedLab`]: the seed's NAT director with a router on each side, so
//! that ICMP errors come from a third party:
//!
//! ```text
//!  client eth0 192.168.46.1/24 ── eth0 .46.254 [rout] eth1 192.168.47.254/24
//!        ── ens37 192.168.47.128/24 (VIP) [director] ens33 192.168.211.128/24
//!        ── eth0 192.168.211.254/24 [rin] eth1 192.168.212.254/24
//!        ── switch br0 ── rs1 eth0 192.168.212.129/24, rs2 .130, …
//! ```
//!
//! (IPv6: the same with 2001:db8:46::, :47::, :211::, :212:: and the same
//! last group.) `client_mtu` shrinks the rout–client link, `server_mtu` the
//! rin–servers segment.

use std::{
    collections::BTreeMap,
    io::ErrorKind,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};

use crate::{
    lab::Lab,
    netns::Netns,
    packet::Mac,
    process::{self, Proc, RUN_TIMEOUT},
    seed::{self, DIRECTOR_READY, PASS_READY, READY_TIMEOUT},
};

// ---------------------------------------------------------------- LanLab

/// The virtual service's address (on the director's eth0, and on every
/// real server's `lo`).
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 200);
/// The director's own address on the LAN.
pub const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 128);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 1);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 0x200);
pub const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 0x128);
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 1);
/// The director's address on the inside network (NAT servers' gateway).
pub const INSIDE_DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 211, 128);
pub const INSIDE_DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, 0x128);

/// Every host's link to the LAN (the director's included).
pub const LAN_IF: &str = "eth0";
/// The director's link to the inside network.
pub const DIR_INSIDE_IF: &str = "eth1";
pub const LAN_BRIDGE: &str = "br0";
pub const INSIDE_BRIDGE: &str = "br1";
/// The switch port facing the director's eth0.
pub const SWITCH_DIR_PORT: &str = "p-dir";
/// The switch port facing the director's eth1.
pub const SWITCH_DIR_INSIDE_PORT: &str = "p-dir-in";

/// Ready line of `lvs decap`.
pub const DECAP_READY: &str = "lvs: decap attached";

/// LAN real server `i` (0-based): 192.168.47.129, .130, …
pub fn rs_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 47, 129 + i as u8)
}

/// 2001:db8:47::129, ::130, …: the IPv4 plan's last octet, written as the
/// last group.
pub fn rs_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, decimal_group(129 + i))
}

/// `n` (< 10000) read as hex digits: 129 → 0x129, so that an IPv6 address
/// shows the same digits as its IPv4 counterpart.
pub fn decimal_group(n: usize) -> u16 {
    u16::from_str_radix(&n.to_string(), 16).expect("n < 10000")
}

/// Inside (NAT) server `i`: 192.168.211.129, .130, … (the seed's plan).
pub fn inside_ip(i: usize) -> Ipv4Addr {
    seed::rs_ip(i)
}

/// 2001:db8:211::129, ::130, … (the seed's plan).
pub fn inside_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, decimal_group(129 + i))
}

#[derive(Debug, Clone)]
pub struct LanConfig {
    /// Real servers on the LAN (rs1, rs2, …).
    pub real_servers: usize,
    /// NAT servers behind the director on 192.168.211.0/24 (nat1, …);
    /// 0 leaves the director one-armed.
    pub inside_servers: usize,
    /// IPv6 addresses as well (2001:db8:47::/64, 2001:db8:211::/64).
    pub ipv6: bool,
    /// Put the VIP on the director's eth0 and on the real servers' `lo`
    /// (with the ARP settings). `false` leaves that to a script, as the
    /// demo does.
    pub vip: bool,
}

impl Default for LanConfig {
    fn default() -> Self {
        LanConfig {
            real_servers: 2,
            inside_servers: 0,
            ipv6: false,
            vip: true,
        }
    }
}

pub struct LanLab {
    pub client: Netns,
    pub director: Netns,
    pub switch: Netns,
    /// rs1, rs2, … on the LAN, in order.
    pub rs: Vec<Netns>,
    /// nat1, nat2, … on the inside network, in order.
    pub inside: Vec<Netns>,
    pub config: LanConfig,
    pin_dir: PathBuf,
    // Last, so the handles above are dropped before the lab tears down.
    pub lab: Lab,
}

impl LanLab {
    pub fn new(tag: &str) -> Result<LanLab> {
        Self::with_config(tag, LanConfig::default())
    }

    pub fn with_config(tag: &str, config: LanConfig) -> Result<LanLab> {
        if config.real_servers > 100 || config.inside_servers > 100 {
            bail!("at most 100 real servers of each kind");
        }
        if config.real_servers + config.inside_servers == 0 {
            bail!("a LAN lab needs at least one real server");
        }
        let lab = Lab::new(tag)?;
        let client = lab.ns("client")?;
        let director = lab.ns("director")?;
        let switch = lab.ns("switch")?;
        let v6 = config.ipv6;

        switch.bridge(LAN_BRIDGE)?;
        lab.bridge_port(&switch, LAN_BRIDGE, "p-client", &client, LAN_IF)?;
        client.addr(LAN_IF, &format!("{CLIENT_IP}/24"))?;
        lab.bridge_port(&switch, LAN_BRIDGE, SWITCH_DIR_PORT, &director, LAN_IF)?;
        director.addr(LAN_IF, &format!("{DIP}/24"))?;
        if v6 {
            client.addr(LAN_IF, &format!("{CLIENT_IP6}/64"))?;
            director.addr(LAN_IF, &format!("{DIP6}/64"))?;
        }
        if config.vip {
            director_vip(&director, LAN_IF, IpAddr::V4(VIP))?;
            if v6 {
                director_vip(&director, LAN_IF, IpAddr::V6(VIP6))?;
            }
        }

        let mut rs = Vec::new();
        for i in 0..config.real_servers {
            let ns = lab.ns(&format!("rs{}", i + 1))?;
            lab.bridge_port(&switch, LAN_BRIDGE, &format!("p-rs{}", i + 1), &ns, LAN_IF)?;
            ns.addr(LAN_IF, &format!("{}/24", rs_ip(i)))?;
            if v6 {
                ns.addr(LAN_IF, &format!("{}/64", rs_ip6(i)))?;
            }
            if config.vip {
                real_server_vip(&ns, IpAddr::V4(VIP))?;
                if v6 {
                    real_server_vip(&ns, IpAddr::V6(VIP6))?;
                }
            }
            rs.push(ns);
        }

        let mut inside = Vec::new();
        if config.inside_servers > 0 {
            switch.bridge(INSIDE_BRIDGE)?;
            lab.bridge_port(
                &switch,
                INSIDE_BRIDGE,
                SWITCH_DIR_INSIDE_PORT,
                &director,
                DIR_INSIDE_IF,
            )?;
            director.addr(DIR_INSIDE_IF, &format!("{INSIDE_DIP}/24"))?;
            if v6 {
                director.addr(DIR_INSIDE_IF, &format!("{INSIDE_DIP6}/64"))?;
            }
            for i in 0..config.inside_servers {
                let ns = lab.ns(&format!("nat{}", i + 1))?;
                lab.bridge_port(
                    &switch,
                    INSIDE_BRIDGE,
                    &format!("p-nat{}", i + 1),
                    &ns,
                    LAN_IF,
                )?;
                ns.addr(LAN_IF, &format!("{}/24", inside_ip(i)))?;
                ns.route_default(&INSIDE_DIP.to_string())?;
                if v6 {
                    ns.addr(LAN_IF, &format!("{}/64", inside_ip6(i)))?;
                    ns.route_default(&INSIDE_DIP6.to_string())?;
                }
                inside.push(ns);
            }
        }
        let pin_dir = lab.pin_dir()?;
        Ok(LanLab {
            client,
            director,
            switch,
            rs,
            inside,
            config,
            pin_dir,
            lab,
        })
    }

    /// The director's bpffs pin directory (`--pin-path` / `LVS_PIN_PATH`).
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    pub fn vip(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(VIP), port)
    }

    pub fn vip6(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(VIP6), port)
    }

    /// The director's links: eth0, and eth1 when there are inside servers.
    pub fn director_ifaces(&self) -> Vec<&'static str> {
        let mut v = vec![LAN_IF];
        if !self.inside.is_empty() {
            v.push(DIR_INSIDE_IF);
        }
        v
    }

    /// Forwarding on, as `lvs_nat.sh` sets it (NAT's XDP FIB lookup
    /// refuses without it; DR and TUN need it only without `lvs load`'s
    /// `REAL_HOPS`), and no ICMP redirects from the director (LVS HOWTO
    /// advice for a director on its real servers' LAN, as `lvs_dr.sh`).
    pub fn enable_forwarding(&self) -> Result<()> {
        enable_forwarding(&self.director, self.config.ipv6)?;
        for dev in ["all", LAN_IF] {
            self.director
                .sysctl(&format!("net.ipv4.conf.{dev}.send_redirects"), "0")?;
        }
        Ok(())
    }

    /// `lvs pass` on the switch ports facing the director, waited for: a
    /// veth delivers frames the director sends with XDP_TX/XDP_REDIRECT
    /// promptly only when its peer runs XDP as well.
    pub fn start_pass(&self, lvs: &Path) -> Result<Vec<Proc>> {
        let mut ports = vec![SWITCH_DIR_PORT];
        if !self.inside.is_empty() {
            ports.push(SWITCH_DIR_INSIDE_PORT);
        }
        let p = seed::start_pass(&self.switch, lvs, &ports)?;
        p.wait_for_line(PASS_READY, READY_TIMEOUT)?;
        Ok(vec![p])
    }

    /// `lvs load --iface eth0 [--iface eth1] --pin-path DIR [extra…]`,
    /// waited for until it says it is attached.
    pub fn start_director(&self, lvs: &Path, extra: &[&str]) -> Result<Proc> {
        start_director(
            &self.director,
            lvs,
            &self.director_ifaces(),
            &self.pin_dir,
            extra,
        )
    }

    /// `lvs decap --iface eth0 --pin-path /sys/fs/bpf/{prefix}-decap-rsN`
    /// on LAN real server `i`, waited for.
    pub fn start_decap(&self, lvs: &Path, i: usize) -> Result<Proc> {
        let ns = self
            .rs
            .get(i)
            .ok_or_else(|| anyhow!("no real server {i}"))?;
        let pin = self.lab.pin_subdir(&format!("decap-{}", ns.role()))?;
        start_decap(ns, lvs, &[LAN_IF], &pin)
    }

    /// [`LanLab::start_decap`] on every LAN real server.
    pub fn start_decap_all(&self, lvs: &Path) -> Result<Vec<Proc>> {
        (0..self.rs.len())
            .map(|i| self.start_decap(lvs, i))
            .collect()
    }

    /// `lvsadm` in the director with `LVS_PIN_PATH` set, for running as is.
    pub fn lvsadm_command(&self, lvsadm: &Path) -> Command {
        lvsadm_command(&self.director, lvsadm, &self.pin_dir)
    }

    /// Runs `lvsadm args…` in the director; stdout, or an error with stderr.
    pub fn lvsadm(&self, lvsadm: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = self.lvsadm_command(lvsadm);
        cmd.args(args);
        process::check_output(&mut cmd, RUN_TIMEOUT)
    }

    /// The director's `lvs stats`, by counter name.
    pub fn stats(&self, lvs: &Path) -> Result<BTreeMap<String, u64>> {
        lvs_stats(&self.director, lvs, &self.pin_dir)
    }
}

// ------------------------------------------------------------- RoutedLab

pub mod routed {
    //! Addresses of [`super::RoutedLab`].
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 46, 1);
    pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x46, 0, 0, 0, 0, 1);
    /// The outside router on the client's network.
    pub const ROUT_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 46, 254);
    pub const ROUT_CLIENT_SIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x46, 0, 0, 0, 0, 0x254);
    /// The outside router on the director's network.
    pub const ROUT_DIR_SIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 254);
    pub const ROUT_DIR_SIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 0x254);
    /// The director's outside address, which is the VIP (as in the seed).
    pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 128);
    pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 0x128);
    /// The director's inside address.
    pub const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 211, 128);
    pub const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, 0x128);
    /// The inside router on the director's network.
    pub const RIN_DIR_SIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 211, 254);
    pub const RIN_DIR_SIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, 0x254);
    /// The inside router on the real servers' network.
    pub const RIN_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 212, 254);
    pub const RIN_SERVER_SIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x212, 0, 0, 0, 0, 0x254);

    /// Real server `i`: 192.168.212.129, .130, …
    pub fn rs_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 212, 129 + i as u8)
    }

    pub fn rs_ip6(i: usize) -> Ipv6Addr {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x212,
            0,
            0,
            0,
            0,
            super::decimal_group(129 + i),
        )
    }
}

#[derive(Debug, Clone)]
pub struct RoutedConfig {
    pub real_servers: usize,
    pub ipv6: bool,
    /// MTU of the link between the outside router and the client.
    pub client_mtu: Option<u32>,
    /// MTU of the segment between the inside router and the real servers.
    pub server_mtu: Option<u32>,
}

impl Default for RoutedConfig {
    fn default() -> Self {
        RoutedConfig {
            real_servers: 1,
            ipv6: false,
            client_mtu: None,
            server_mtu: None,
        }
    }
}

pub struct RoutedLab {
    pub client: Netns,
    /// The router between the client and the director.
    pub rout: Netns,
    pub director: Netns,
    /// The router between the director and the real servers.
    pub rin: Netns,
    pub switch: Netns,
    pub rs: Vec<Netns>,
    pub config: RoutedConfig,
    pin_dir: PathBuf,
    pub lab: Lab,
}

impl RoutedLab {
    pub fn with_config(tag: &str, config: RoutedConfig) -> Result<RoutedLab> {
        use routed::*;
        if !(1..=100).contains(&config.real_servers) {
            bail!("real_servers must be 1..=100");
        }
        let lab = Lab::new(tag)?;
        let client = lab.ns("client")?;
        let rout = lab.ns("rout")?;
        let director = lab.ns("director")?;
        let rin = lab.ns("rin")?;
        let switch = lab.ns("switch")?;
        let v6 = config.ipv6;
        let (ext, int) = (seed::DIR_EXT_IF, seed::DIR_INT_IF);

        lab.veth(&client, "eth0", &rout, "eth0")?;
        lab.veth(&rout, "eth1", &director, ext)?;
        lab.veth(&director, int, &rin, "eth0")?;
        switch.bridge("br0")?;
        lab.bridge_port(&switch, "br0", "p-rin", &rin, "eth1")?;

        let addrs: &[(&Netns, &str, String, String)] = &[
            (
                &client,
                "eth0",
                format!("{CLIENT_IP}/24"),
                format!("{CLIENT_IP6}/64"),
            ),
            (
                &rout,
                "eth0",
                format!("{ROUT_CLIENT_SIDE}/24"),
                format!("{ROUT_CLIENT_SIDE6}/64"),
            ),
            (
                &rout,
                "eth1",
                format!("{ROUT_DIR_SIDE}/24"),
                format!("{ROUT_DIR_SIDE6}/64"),
            ),
            (&director, ext, format!("{VIP}/24"), format!("{VIP6}/64")),
            (&director, int, format!("{DIP}/24"), format!("{DIP6}/64")),
            (
                &rin,
                "eth0",
                format!("{RIN_DIR_SIDE}/24"),
                format!("{RIN_DIR_SIDE6}/64"),
            ),
            (
                &rin,
                "eth1",
                format!("{RIN_SERVER_SIDE}/24"),
                format!("{RIN_SERVER_SIDE6}/64"),
            ),
        ];
        for (ns, dev, a4, a6) in addrs {
            ns.addr(dev, a4)?;
            if v6 {
                ns.addr(dev, a6)?;
            }
        }
        for router in [&rout, &rin] {
            enable_forwarding(router, v6)?;
        }
        let routes: &[(&Netns, &str, IpAddr, &str, IpAddr)] = &[
            (
                &client,
                "default",
                ROUT_CLIENT_SIDE.into(),
                "default",
                ROUT_CLIENT_SIDE6.into(),
            ),
            // Only the VIP's network matters to clients; the rest is for
            // checking the lab with the kernel alone.
            (&rout, "default", VIP.into(), "default", VIP6.into()),
            (
                &director,
                "192.168.46.0/24",
                ROUT_DIR_SIDE.into(),
                "2001:db8:46::/64",
                ROUT_DIR_SIDE6.into(),
            ),
            (
                &director,
                "192.168.212.0/24",
                RIN_DIR_SIDE.into(),
                "2001:db8:212::/64",
                RIN_DIR_SIDE6.into(),
            ),
            // Replies go back through the director (NAT); so does
            // everything else the inside router sends, ICMP errors included.
            (&rin, "default", DIP.into(), "default", DIP6.into()),
        ];
        for (ns, dst4, via4, dst6, via6) in routes {
            ns.route(dst4, &via4.to_string())?;
            if v6 {
                ns.route(dst6, &via6.to_string())?;
            }
        }

        let mut rs = Vec::new();
        for i in 0..config.real_servers {
            let ns = lab.ns(&format!("rs{}", i + 1))?;
            lab.bridge_port(&switch, "br0", &format!("p-rs{}", i + 1), &ns, "eth0")?;
            ns.addr("eth0", &format!("{}/24", rs_ip(i)))?;
            ns.route_default(&RIN_SERVER_SIDE.to_string())?;
            if v6 {
                ns.addr("eth0", &format!("{}/64", rs_ip6(i)))?;
                ns.route_default(&RIN_SERVER_SIDE6.to_string())?;
            }
            rs.push(ns);
        }

        if let Some(mtu) = config.client_mtu {
            set_mtu(&client, "eth0", mtu)?;
            set_mtu(&rout, "eth0", mtu)?;
        }
        if let Some(mtu) = config.server_mtu {
            set_mtu(&rin, "eth1", mtu)?;
            set_mtu(&switch, "p-rin", mtu)?;
            for (i, ns) in rs.iter().enumerate() {
                set_mtu(&switch, &format!("p-rs{}", i + 1), mtu)?;
                set_mtu(ns, "eth0", mtu)?;
            }
            set_mtu(&switch, "br0", mtu)?;
        }
        let pin_dir = lab.pin_dir()?;
        Ok(RoutedLab {
            client,
            rout,
            director,
            rin,
            switch,
            rs,
            config,
            pin_dir,
            lab,
        })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    pub fn vip(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(routed::VIP), port)
    }

    pub fn vip6(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(routed::VIP6), port)
    }

    pub fn enable_forwarding(&self) -> Result<()> {
        enable_forwarding(&self.director, self.config.ipv6)
    }

    /// `lvs pass` on the routers' links facing the director, waited for.
    pub fn start_pass(&self, lvs: &Path) -> Result<Vec<Proc>> {
        let procs = vec![
            seed::start_pass(&self.rout, lvs, &["eth1"])?,
            seed::start_pass(&self.rin, lvs, &["eth0"])?,
        ];
        for p in &procs {
            p.wait_for_line(PASS_READY, READY_TIMEOUT)?;
        }
        Ok(procs)
    }

    /// `lvs load --iface ens33 --iface ens37 --pin-path DIR [extra…]`.
    pub fn start_director(&self, lvs: &Path, extra: &[&str]) -> Result<Proc> {
        start_director(
            &self.director,
            lvs,
            &[seed::DIR_INT_IF, seed::DIR_EXT_IF],
            &self.pin_dir,
            extra,
        )
    }

    pub fn lvsadm_command(&self, lvsadm: &Path) -> Command {
        lvsadm_command(&self.director, lvsadm, &self.pin_dir)
    }

    pub fn lvsadm(&self, lvsadm: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = self.lvsadm_command(lvsadm);
        cmd.args(args);
        process::check_output(&mut cmd, RUN_TIMEOUT)
    }

    pub fn stats(&self, lvs: &Path) -> Result<BTreeMap<String, u64>> {
        lvs_stats(&self.director, lvs, &self.pin_dir)
    }
}

// ------------------------------------------------- host set-up and daemons

/// Forwarding on for IPv4 (`ip_forward`) and, with `ipv6`, IPv6
/// (`conf.all.forwarding`).
pub fn enable_forwarding(ns: &Netns, ipv6: bool) -> Result<()> {
    ns.sysctl("net.ipv4.ip_forward", "1")?;
    if ipv6 {
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    }
    Ok(())
}

pub fn set_mtu(ns: &Netns, dev: &str, mtu: u32) -> Result<()> {
    ns.ip(&["link", "set", dev, "mtu", &mtu.to_string()])
        .map(drop)
}

/// The VIP on the director's `dev` (/32 or /128), as the HOWTOs'
/// `ifconfig eth0:0 VIP netmask 255.255.255.255`.
pub fn director_vip(ns: &Netns, dev: &str, vip: IpAddr) -> Result<()> {
    ns.addr(dev, &host_cidr(vip))
}

/// A DR/TUN real server's side of the VIP: the address on `lo`, and for
/// IPv4 `arp_ignore=1` / `arp_announce=2` on `all` and `eth0` so that
/// only the director answers ARP for it. IPv6 needs no setting (see the
/// module docs); the address is added without DAD.
pub fn real_server_vip(ns: &Netns, vip: IpAddr) -> Result<()> {
    if vip.is_ipv4() {
        for dev in ["all", LAN_IF] {
            ns.sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), "1")?;
            ns.sysctl(&format!("net.ipv4.conf.{dev}.arp_announce"), "2")?;
        }
    }
    ns.addr("lo", &host_cidr(vip))
}

fn host_cidr(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// `lvs load --iface … --pin-path DIR [extra…]` in `ns`, waited for until
/// it prints that it is attached.
pub fn start_director(
    ns: &Netns,
    lvs: &Path,
    ifaces: &[&str],
    pin_dir: &Path,
    extra: &[&str],
) -> Result<Proc> {
    start_director_env(ns, lvs, ifaces, pin_dir, extra, &[])
}

/// [`start_director`] with variables `env` added to its environment (e.g.
/// `LVS_BUILD_ID` for an upgrade to a "new build" of the same object).
pub fn start_director_env(
    ns: &Netns,
    lvs: &Path,
    ifaces: &[&str],
    pin_dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Proc> {
    let mut cmd = ns.command(lvs);
    cmd.envs(env.iter().copied());
    cmd.arg("load");
    for i in ifaces {
        cmd.args(["--iface", i]);
    }
    cmd.arg("--pin-path").arg(pin_dir).args(extra);
    let p = ns.spawn_cmd("lvs-load", cmd)?;
    p.wait_for_line(DIRECTOR_READY, READY_TIMEOUT)?;
    Ok(p)
}

/// `lvs decap --iface … --pin-path DIR` in `ns`, waited for until it prints
/// [`DECAP_READY`].
pub fn start_decap(ns: &Netns, lvs: &Path, ifaces: &[&str], pin_dir: &Path) -> Result<Proc> {
    let mut cmd = ns.command(lvs);
    cmd.arg("decap");
    for i in ifaces {
        cmd.args(["--iface", i]);
    }
    cmd.arg("--pin-path").arg(pin_dir);
    let p = ns.spawn_cmd("lvs-decap", cmd)?;
    p.wait_for_line(DECAP_READY, READY_TIMEOUT)?;
    Ok(p)
}

/// `lvsadm` in `ns` with `LVS_PIN_PATH=pin_dir`.
pub fn lvsadm_command(ns: &Netns, lvsadm: &Path, pin_dir: &Path) -> Command {
    let mut cmd = ns.command(lvsadm);
    cmd.env("LVS_PIN_PATH", pin_dir);
    cmd
}

/// `lvs stats --pin-path DIR` in `ns`, parsed into name → value.
pub fn lvs_stats(ns: &Netns, lvs: &Path, pin_dir: &Path) -> Result<BTreeMap<String, u64>> {
    let mut cmd = ns.command(lvs);
    cmd.args(["stats", "--pin-path"]).arg(pin_dir);
    let out = process::check_output(&mut cmd, RUN_TIMEOUT)?;
    parse_stats(&out)
}

/// `name value` lines (as `lvs stats` prints them).
pub fn parse_stats(out: &str) -> Result<BTreeMap<String, u64>> {
    let mut m = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut w = line.split_whitespace();
        let (Some(name), Some(v), None) = (w.next(), w.next(), w.next()) else {
            bail!("unexpected `lvs stats` line {line:?}");
        };
        let v = v
            .parse()
            .with_context(|| format!("counter {name}: {v:?} is not a number"))?;
        m.insert(name.to_owned(), v);
    }
    Ok(m)
}

// ------------------------------------------------------ looking at links

impl Netns {
    /// The MAC address of `dev`, as `ip link` shows it inside.
    pub fn mac(&self, dev: &str) -> Result<Mac> {
        let out = self.ip(&["-o", "link", "show", dev])?;
        let s = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| anyhow!("no MAC in {out:?}"))?;
        parse_mac(s)
    }

    /// The MTU `ip route get dst` reports: a learnt path MTU (a cached
    /// exception) when there is one, else `None`.
    pub fn path_mtu(&self, dst: IpAddr) -> Result<Option<u32>> {
        let out = self.ip(&["route", "get", &dst.to_string()])?;
        Ok(parse_route_mtu(&out))
    }

    /// Waits until [`Netns::path_mtu`] to `dst` is `Some(mtu)`; the last
    /// `ip route get` output in the error otherwise.
    pub fn wait_path_mtu(&self, dst: IpAddr, mtu: u32, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.path_mtu(dst)? == Some(mtu) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let out = self.ip(&["route", "get", &dst.to_string()])?;
                bail!(
                    "path MTU from {} to {dst} is not {mtu} after {timeout:?}: {}",
                    self.name(),
                    out.trim()
                );
            }
            crate::interrupt::check()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the neighbour entry for `addr` has a MAC (e.g. the
    /// director's managed entries for its real servers, which `lvs load`
    /// installs within a second of `lvsadm -a` and the kernel resolves).
    pub fn wait_neigh(&self, addr: IpAddr, timeout: Duration) -> Result<Mac> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(mac) = self.neigh_mac(addr)? {
                return Ok(mac);
            }
            if Instant::now() >= deadline {
                let all = self.ip(&["neigh", "show"])?;
                bail!(
                    "no neighbour entry with a MAC for {addr} in {} after {timeout:?}:\n{all}",
                    self.name()
                );
            }
            crate::interrupt::check()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The neighbour entry's MAC for `addr` (`ip neigh show`), if any.
    pub fn neigh_mac(&self, addr: IpAddr) -> Result<Option<Mac>> {
        let out = self.ip(&["neigh", "show", &addr.to_string()])?;
        let mac = out
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .map(parse_mac)
            .transpose()?;
        Ok(mac)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<Mac> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s:?}"))?;
    v.try_into().map_err(|_| anyhow!("bad MAC {s:?}"))
}

fn parse_route_mtu(out: &str) -> Option<u32> {
    let w: Vec<&str> = out.split_whitespace().collect();
    w.windows(2)
        .find(|p| p[0] == "mtu")
        .and_then(|p| p[1].parse().ok())
}

// ------------------------------------------------------------- HTTP POST

/// `POST /` with a `body` of `len` bytes and `Connection: close` from
/// inside `ns`; returns the answer's body (of a 200). Big bodies make full
/// sized segments, for path MTU tests.
pub fn http_post(ns: &Netns, addr: SocketAddr, len: usize, timeout: Duration) -> Result<String> {
    use std::io::{Read, Write};
    let mut stream = ns
        .enter(|| std::net::TcpStream::connect_timeout(&addr, timeout))?
        .with_context(|| format!("connecting to {addr} from {}", ns.name()))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    req.resize(req.len() + len, b'p');
    stream
        .write_all(&req)
        .with_context(|| format!("sending {len} bytes to {addr}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = head.split("\r\n").skip(1).find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            if let Some(n) = length {
                if buf.len() >= end + 4 + n {
                    let status = head.split(' ').nth(1).unwrap_or("");
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + n]).into_owned();
                    if status != "200" {
                        bail!("{addr} answered {status}: {body}");
                    }
                    return Ok(body);
                }
            }
        }
        if Instant::now() >= deadline {
            bail!("no complete answer from {addr} within {timeout:?}");
        }
        match stream.read(&mut chunk) {
            Ok(0) => bail!("{addr} closed the connection before answering"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(anyhow!("reading the answer from {addr}: {e}")),
        }
    }
}

// ---------------------------------------------------------------- capture

/// One frame seen by a [`Capture`].
#[derive(Clone, Debug)]
pub struct Captured {
    /// Sent by this host (`PACKET_OUTGOING`), rather than received.
    pub outgoing: bool,
    pub frame: Vec<u8>,
}

/// Every frame sent or received on one link of a namespace (an
/// `AF_PACKET` socket, like tcpdump's), from [`Capture::start`] until it is
/// dropped. Keeps at most 100 000 frames of up to 2 KiB.
pub struct Capture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Captured>>>,
    thread: Option<JoinHandle<()>>,
}

const CAPTURE_MAX: usize = 100_000;

impl Capture {
    /// Starts capturing on `dev`; returns once the socket is bound.
    pub fn start(ns: &Netns, dev: &str) -> Result<Capture> {
        let ifname = std::ffi::CString::new(dev)?;
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<Result<()>>();
        let thread = {
            let (stop, frames) = (stop.clone(), frames.clone());
            ns.spawn_thread("capture", move || {
                let fd = match packet_socket(&ifname) {
                    Ok(fd) => fd,
                    Err(e) => return drop(tx.send(Err(e))),
                };
                let _ = tx.send(Ok(()));
                capture_loop(fd, &stop, &frames);
                // SAFETY: our own fd.
                unsafe { libc::close(fd) };
            })?
        };
        let cap = Capture {
            stop,
            frames,
            thread: Some(thread),
        };
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(cap),
            Ok(Err(e)) => Err(e.context(format!("capturing on {dev} in {}", ns.name()))),
            Err(_) => {
                cap.stop.store(true, Ordering::SeqCst);
                bail!("capture on {dev} in {} did not start", ns.name())
            }
        }
    }

    /// Frames so far, in order.
    pub fn frames(&self) -> Vec<Captured> {
        self.frames.lock().unwrap().clone()
    }

    /// Stops and returns everything captured.
    pub fn finish(mut self) -> Vec<Captured> {
        self.halt();
        self.frames()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.halt();
    }
}

fn packet_socket(ifname: &std::ffi::CStr) -> Result<libc::c_int> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2)/bind(2)/setsockopt(2) calls on our own fd
    // with properly sized arguments.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto as libc::c_int,
        );
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        let index = libc::if_nametoindex(ifname.as_ptr());
        if index == 0 {
            libc::close(fd);
            bail!("no interface {ifname:?}");
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        if libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            bail!("binding to {ifname:?}: {e}");
        }
        // Room for a burst of jumbo frames while this thread waits for a
        // CPU: the default buffer holds about a dozen 9000-byte frames, and
        // a packet socket drops what does not fit (root may force it).
        let rcvbuf: libc::c_int = 16 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &rcvbuf as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        Ok(fd)
    }
}

fn capture_loop(fd: libc::c_int, stop: &AtomicBool, frames: &Mutex<Vec<Captured>>) {
    // Room for any frame, jumbo ones included.
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: recvfrom(2) into our buffer and a sockaddr_ll.
        let (n, sll) = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            let n = libc::recvfrom(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
                &mut sll as *mut _ as *mut libc::sockaddr,
                &mut len,
            );
            (n, sll)
        };
        if n <= 0 {
            continue;
        }
        let mut f = frames.lock().unwrap();
        if f.len() < CAPTURE_MAX {
            f.push(Captured {
                outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING,
                frame: buf[..n as usize].to_vec(),
            });
        }
    }
}

// ------------------------------------------------- DF datagrams and PMTU

fn set_pmtudisc_do(sock: &UdpSocket, v6: bool) -> std::io::Result<()> {
    let (level, opt, val) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    };
    // SAFETY: setsockopt(2) with an int option on our own socket.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            &val as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A connected UDP socket made inside a namespace that never fragments
/// (`IP_PMTUDISC_DO`): every datagram leaves with DF, and one larger than
/// the path MTU the kernel knows fails with `EMSGSIZE`. Keep it open while
/// waiting for an ICMP error: the kernel applies "fragmentation needed" /
/// "packet too big" to the route only through a socket it can match.
pub struct DfSocket {
    sock: UdpSocket,
    peer: SocketAddr,
}

impl DfSocket {
    pub fn connect(ns: &Netns, to: SocketAddr) -> Result<DfSocket> {
        let sock = ns
            .enter(move || -> std::io::Result<UdpSocket> {
                let any: SocketAddr = if to.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(any)?;
                set_pmtudisc_do(&s, to.is_ipv6())?;
                s.connect(to)?;
                Ok(s)
            })?
            .with_context(|| format!("UDP socket to {to} in {}", ns.name()))?;
        Ok(DfSocket { sock, peer: to })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }

    /// Sends `payload`; an `EMSGSIZE` is an error like any other.
    pub fn send(&self, payload: &[u8]) -> std::io::Result<usize> {
        self.sock.send(payload)
    }

    /// Sends a datagram whose IP packet is exactly `ip_len` bytes long.
    pub fn send_packet_of(&self, ip_len: usize) -> std::io::Result<usize> {
        let hdr = if self.peer.is_ipv4() { 28 } else { 48 };
        let payload = vec![b'x'; ip_len.saturating_sub(hdr)];
        self.sock.send(&payload)
    }

    /// The next datagram within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.sock.set_read_timeout(Some(timeout))?;
        let mut buf = vec![0u8; 65536];
        let n = self
            .sock
            .recv(&mut buf)
            .with_context(|| format!("no datagram from {} within {timeout:?}", self.peer))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The TTL / hop limit of the datagrams sent from now on.
    pub fn set_ttl(&self, ttl: u8) -> Result<()> {
        let (level, opt) = if self.peer.is_ipv4() {
            (libc::IPPROTO_IP, libc::IP_TTL)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS)
        };
        let v = ttl as libc::c_int;
        // SAFETY: setsockopt(2) with an int option on our own socket.
        let rc = unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                level,
                opt,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if rc != 0 {
            bail!("setting the TTL: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The socket's path MTU (`IP_MTU` / `IPV6_MTU`).
    pub fn path_mtu(&self) -> Result<u32> {
        let (level, opt) = if self.peer.is_ipv4() {
            (libc::IPPROTO_IP, libc::IP_MTU)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU)
        };
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as u32;
        // SAFETY: getsockopt(2) with an int option on our own socket.
        let rc = unsafe {
            libc::getsockopt(
                self.sock.as_raw_fd(),
                level,
                opt,
                &mut v as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if rc != 0 {
            bail!("getsockopt(IP_MTU): {}", std::io::Error::last_os_error());
        }
        Ok(v as u32)
    }
}

/// A UDP server whose answer to a datagram holding a decimal number N is
/// N bytes of `x` (any other datagram is echoed), sent with DF like
/// [`DfSocket`]: for making a real server send big packets on request.
pub struct UdpSized {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    send_errors: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl UdpSized {
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<UdpSized> {
        let sock = ns
            .enter(move || -> std::io::Result<UdpSocket> {
                let s = UdpSocket::bind(addr)?;
                set_pmtudisc_do(&s, addr.is_ipv6())?;
                s.set_read_timeout(Some(Duration::from_millis(50)))?;
                Ok(s)
            })?
            .with_context(|| format!("binding udp {addr} in {}", ns.name()))?;
        let bound = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let send_errors = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, requests, send_errors) =
                (stop.clone(), requests.clone(), send_errors.clone());
            std::thread::Builder::new()
                .name("udp-sized".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::SeqCst) {
                        let (n, peer) = match sock.recv_from(&mut buf) {
                            Ok(r) => r,
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    ErrorKind::WouldBlock | ErrorKind::TimedOut
                                ) =>
                            {
                                continue
                            }
                            Err(_) => continue,
                        };
                        requests.fetch_add(1, Ordering::SeqCst);
                        let asked = std::str::from_utf8(&buf[..n])
                            .ok()
                            .and_then(|s| s.trim().parse::<usize>().ok());
                        let answer = match asked {
                            Some(len) => vec![b'x'; len.min(65000)],
                            None => buf[..n].to_vec(),
                        };
                        if let Err(e) = sock.send_to(&answer, peer) {
                            send_errors
                                .lock()
                                .unwrap()
                                .push(format!("{} bytes to {peer}: {e}", answer.len()));
                        }
                    }
                })?
        };
        Ok(UdpSized {
            addr: bound,
            stop,
            requests,
            send_errors,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Answers that could not be sent (`EMSGSIZE` once the server knows a
    /// smaller path MTU), as text.
    pub fn send_errors(&self) -> Vec<String> {
        self.send_errors.lock().unwrap().clone()
    }
}

impl Drop for UdpSized {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::mac_str;

    #[test]
    fn route_get_mtu() {
        let cached =
            "192.168.47.128 dev eth0 src 192.168.46.1 uid 0 \n    cache expires 599sec mtu 1400 \n";
        assert_eq!(parse_route_mtu(cached), Some(1400));
        let plain = "192.168.47.128 dev eth0 src 192.168.46.1 uid 0 \n    cache \n";
        assert_eq!(parse_route_mtu(plain), None);
        let v6 = "2001:db8:47::128 from :: via 2001:db8:46::254 dev eth0 src 2001:db8:46::1 metric 1024 expires 598sec mtu 1400 pref medium\n";
        assert_eq!(parse_route_mtu(v6), Some(1400));
    }

    #[test]
    fn stats_lines() {
        let m = parse_stats("rx                 12\npass               3\n").unwrap();
        assert_eq!(m["rx"], 12);
        assert_eq!(m["pass"], 3);
        assert!(parse_stats("rx x\n").is_err());
    }

    #[test]
    fn ipv6_plan_mirrors_ipv4() {
        assert_eq!(rs_ip6(0).to_string(), "2001:db8:47::129");
        assert_eq!(rs_ip6(1).to_string(), "2001:db8:47::130");
        assert_eq!(inside_ip6(1).to_string(), "2001:db8:211::130");
        assert_eq!(routed::rs_ip6(2).to_string(), "2001:db8:212::131");
    }

    #[test]
    fn macs() {
        let m = parse_mac("02:00:0a:ff:10:01").unwrap();
        assert_eq!(m, [2, 0, 0x0a, 0xff, 0x10, 1]);
        assert_eq!(mac_str(&m), "02:00:0a:ff:10:01");
        assert!(parse_mac("02:00").is_err());
    }
}
