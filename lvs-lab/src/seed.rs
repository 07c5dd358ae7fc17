//! The seed tutorial's NAT topology (hao1 = director, hao2/hao3 = real
//! servers), with a client standing in for the outside world:
//!
//! ```text
//! client eth0 192.168.47.1/24 ── ens37 192.168.47.128/24 [director]
//!                                ens33 192.168.211.128/24
//!                                  │
//!                        switch: p-dir ── br0 ── p-rs1, p-rs2, …
//!                                                  │
//!                             rs1 eth0 192.168.211.129/24, rs2 .130, …
//! ```
//!
//! The real servers route back through the director; the client needs no
//! route beyond its /24, as the VIP (ens37's own address) is on-link.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Result};

use crate::{
    lab::Lab,
    netns::Netns,
    process::{self, Proc, RUN_TIMEOUT},
};

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 128);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 1);
/// The director's inside address, the real servers' gateway.
pub const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 211, 128);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 0x128);
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 1);
pub const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, 0x128);

pub const CLIENT_IF: &str = "eth0";
/// The director's outside link (faces the client).
pub const DIR_EXT_IF: &str = "ens37";
/// The director's inside link (faces the real servers).
pub const DIR_INT_IF: &str = "ens33";
pub const RS_IF: &str = "eth0";
pub const BRIDGE: &str = "br0";
/// The switch port facing the director.
pub const SWITCH_DIR_PORT: &str = "p-dir";

/// Ready line of `lvs pass`.
pub const PASS_READY: &str = "lvs: pass attached";
/// Ready line of `lvs load`.
pub const DIRECTOR_READY: &str = "lvs: director attached";
/// How long a daemon may take to say it is ready: loading the director runs the
/// verifier over a large program, which on a loaded 2-CPU machine (a
/// parallel test run beside builds) took more than 10 s.
pub const READY_TIMEOUT: Duration = Duration::from_secs(45);

/// Real server `i` (0-based: rs1 is 0): 192.168.211.129, .130, …
pub fn rs_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 211, 129 + i as u8)
}

pub fn rs_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, 0x129 + i as u16)
}

#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// How many real servers (the seed has 2).
    pub real_servers: usize,
    /// Also give every link a 2001:db8:… address (the v4 plan's last
    /// octet as the last group) and v6 default routes.
    pub ipv6: bool,
}

impl Default for SeedConfig {
    fn default() -> Self {
        SeedConfig {
            real_servers: 2,
            ipv6: false,
        }
    }
}

pub struct SeedLab {
    pub client: Netns,
    pub director: Netns,
    pub switch: Netns,
    /// rs1, rs2, … in order.
    pub rs: Vec<Netns>,
    pub config: SeedConfig,
    pin_dir: PathBuf,
    // Last, so the handles above are dropped before the lab tears down.
    pub lab: Lab,
}

impl SeedLab {
    pub fn new(tag: &str) -> Result<SeedLab> {
        Self::with_config(tag, SeedConfig::default())
    }

    pub fn with_config(tag: &str, config: SeedConfig) -> Result<SeedLab> {
        if !(1..=100).contains(&config.real_servers) {
            bail!("real_servers must be 1..=100");
        }
        let lab = Lab::new(tag)?;
        let client = lab.ns("client")?;
        let director = lab.ns("director")?;
        let switch = lab.ns("switch")?;
        let v6 = config.ipv6;

        lab.veth(&client, CLIENT_IF, &director, DIR_EXT_IF)?;
        client.addr(CLIENT_IF, &format!("{CLIENT_IP}/24"))?;
        director.addr(DIR_EXT_IF, &format!("{VIP}/24"))?;
        if v6 {
            client.addr(CLIENT_IF, &format!("{CLIENT_IP6}/64"))?;
            director.addr(DIR_EXT_IF, &format!("{VIP6}/64"))?;
        }

        switch.bridge(BRIDGE)?;
        lab.bridge_port(&switch, BRIDGE, SWITCH_DIR_PORT, &director, DIR_INT_IF)?;
        director.addr(DIR_INT_IF, &format!("{DIP}/24"))?;
        if v6 {
            director.addr(DIR_INT_IF, &format!("{DIP6}/64"))?;
        }

        let mut rs = Vec::new();
        for i in 0..config.real_servers {
            let ns = lab.ns(&format!("rs{}", i + 1))?;
            lab.bridge_port(&switch, BRIDGE, &format!("p-rs{}", i + 1), &ns, RS_IF)?;
            ns.addr(RS_IF, &format!("{}/24", rs_ip(i)))?;
            ns.route_default(&DIP.to_string())?;
            if v6 {
                ns.addr(RS_IF, &format!("{}/64", rs_ip6(i)))?;
                ns.route_default(&DIP6.to_string())?;
            }
            rs.push(ns);
        }
        let pin_dir = lab.pin_dir()?;
        Ok(SeedLab {
            client,
            director,
            switch,
            rs,
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

    /// `lvs pass` on the links facing the director (client eth0, switch
    /// p-dir): a veth only delivers frames the director sends with
    /// XDP_TX/XDP_REDIRECT promptly when its peer runs XDP as well.
    pub fn start_pass(&self, lvs: &Path) -> Result<Vec<Proc>> {
        let procs = vec![
            start_pass(&self.client, lvs, &[CLIENT_IF])?,
            start_pass(&self.switch, lvs, &[SWITCH_DIR_PORT])?,
        ];
        for p in &procs {
            p.wait_for_line(PASS_READY, READY_TIMEOUT)?;
        }
        Ok(procs)
    }

    /// `lvs load --iface ens33 --iface ens37 --pin-path DIR [extra…]` in the
    /// director, waited for until it says it is attached.
    pub fn start_director(&self, lvs: &Path, extra: &[&str]) -> Result<Proc> {
        let mut cmd = self.director.command(lvs);
        cmd.args([
            "load",
            "--iface",
            DIR_INT_IF,
            "--iface",
            DIR_EXT_IF,
            "--pin-path",
        ])
        .arg(&self.pin_dir)
        .args(extra);
        let p = self.director.spawn_cmd("lvs-load", cmd)?;
        p.wait_for_line(DIRECTOR_READY, READY_TIMEOUT)?;
        Ok(p)
    }

    /// `lvsadm` in the director with `LVS_PIN_PATH` set, for running as is.
    pub fn lvsadm_command(&self, lvsadm: &Path) -> Command {
        let mut cmd = self.director.command(lvsadm);
        cmd.env("LVS_PIN_PATH", &self.pin_dir);
        cmd
    }

    /// Runs `lvsadm args…` in the director; stdout, or an error with stderr.
    pub fn lvsadm(&self, lvsadm: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = self.lvsadm_command(lvsadm);
        cmd.args(args);
        process::check_output(&mut cmd, RUN_TIMEOUT)
    }
}

/// `lvs pass --iface …` in `ns`, not yet waited for.
pub fn start_pass(ns: &Netns, lvs: &Path, ifaces: &[&str]) -> Result<Proc> {
    let mut cmd = ns.command(lvs);
    cmd.arg("pass");
    for i in ifaces {
        cmd.args(["--iface", i]);
    }
    ns.spawn_cmd("lvs-pass", cmd)
}
