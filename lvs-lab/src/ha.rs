//! The active/backup lab: two NAT directors on the same two LANs, the
//! addresses VRRP moves between them (the VIP outside, the real servers'
//! gateway inside) held by whichever is master, and IPVS-style connection
//! sync between them on the inside LAN:
//!
//! ```text
//!                 switch: br0 (p-client, p-a0, p-b0)
//!   client eth0 192.168.47.1/24
//!   dira   eth0 192.168.47.2/24      dirb eth0 192.168.47.3/24
//!          (VIP 192.168.47.128 on the VRRP master's eth0)
//!                 switch: br1 (p-a1, p-b1, p-rs1, p-rs2, …)
//!   dira   eth1 192.168.211.2/24     dirb eth1 192.168.211.3/24
//!          (gateway 192.168.211.128 on the VRRP master's eth1)
//!   rs1 eth0 192.168.211.129/24, rs2 .130, …   default via 192.168.211.128
//! ```
//!
//! IPv6 alongside: 2001:db8:47::/64 outside (client ::1, dira ::2, dirb
//! ::3, VIP6 ::128), 2001:db8:211::/64 inside (dira ::2, dirb ::3,
//! gateway ::128, rs1 ::129, …). Each director has its own pin directory;
//! `keepalived` (VRRP only) is run by the tests with [`HaLab::keepalived`].

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Result};

use crate::{
    lab::Lab,
    lan::{enable_forwarding, lvsadm_command, start_director},
    netns::Netns,
    process::{self, Proc, RUN_TIMEOUT},
    seed,
};

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 128);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 1);
/// The real servers' gateway, moved by VRRP with the VIP.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 211, 128);
/// The directors' own addresses: outside, inside.
pub const DIR_A: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(192, 168, 47, 2),
    Ipv4Addr::new(192, 168, 211, 2),
);
pub const DIR_B: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(192, 168, 47, 3),
    Ipv4Addr::new(192, 168, 211, 3),
);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x47, 0, 0, 0, 0, 0x128);
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, 0x128);
pub const OUTSIDE_IF: &str = "eth0";
pub const INSIDE_IF: &str = "eth1";
const OUTSIDE_BRIDGE: &str = "br0";
const INSIDE_BRIDGE: &str = "br1";

/// Real server `i` (0-based): 192.168.211.129 + i.
pub fn rs_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 211, 129 + i as u8)
}

/// Real server `i`'s IPv6 address: 2001:db8:211::129, ::12a, …
pub fn rs_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x211, 0, 0, 0, 0, 0x129 + i as u16)
}

/// One director of the pair.
pub struct HaDirector {
    pub ns: Netns,
    pub pin_dir: PathBuf,
    /// (outside, inside) own addresses.
    pub addrs: (Ipv4Addr, Ipv4Addr),
}

impl HaDirector {
    /// `lvs load --iface eth0 --iface eth1 --pin-path DIR [extra…]`,
    /// waited for.
    pub fn start(&self, lvs: &Path, extra: &[&str]) -> Result<Proc> {
        start_director(
            &self.ns,
            lvs,
            &[OUTSIDE_IF, INSIDE_IF],
            &self.pin_dir,
            extra,
        )
    }

    pub fn lvsadm_command(&self, lvsadm: &Path) -> Command {
        lvsadm_command(&self.ns, lvsadm, &self.pin_dir)
    }

    /// `lvsadm args…`; stdout, or an error with stderr.
    pub fn lvsadm(&self, lvsadm: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = self.lvsadm_command(lvsadm);
        cmd.args(args);
        process::check_output(&mut cmd, RUN_TIMEOUT)
    }

    /// Whether `addr` is on one of the director's links.
    pub fn holds(&self, addr: Ipv4Addr) -> Result<bool> {
        let out = self.ns.ip(&["-4", "-o", "addr", "show"])?;
        Ok(out
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(&addr.to_string())))
    }

    /// Fails the director as a machine fails: both links down.
    pub fn fail(&self) -> Result<()> {
        for dev in [OUTSIDE_IF, INSIDE_IF] {
            self.ns.ip(&["link", "set", dev, "down"])?;
        }
        Ok(())
    }
}

pub struct HaLab {
    pub client: Netns,
    pub a: HaDirector,
    pub b: HaDirector,
    pub switch: Netns,
    pub rs: Vec<Netns>,
    // Last, so the handles above are dropped before the lab tears down.
    pub lab: Lab,
}

/// `lvs load` keeps a sync state file per pin directory in its run
/// directory (`/run/lvs`, or `$LVS_RUN_DIR`), for a later `lvs load` to
/// resume; a lab's directors are gone with it, so are their files.
impl Drop for HaLab {
    fn drop(&mut self) {
        let run = std::env::var_os("LVS_RUN_DIR")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("/run/lvs"), PathBuf::from);
        for d in [&self.a, &self.b] {
            let s = d.pin_dir.to_string_lossy();
            let enc = s
                .trim_end_matches('/')
                .replace('%', "%25")
                .replace('/', "%2F");
            let _ = std::fs::remove_file(run.join(format!("sync-{enc}.state")));
        }
    }
}

impl HaLab {
    /// The lab with `real_servers` real servers, forwarding on in both
    /// directors; no address moved by VRRP is assigned yet.
    pub fn new(tag: &str, real_servers: usize) -> Result<HaLab> {
        if real_servers == 0 || real_servers > 100 {
            bail!("1 to 100 real servers");
        }
        let lab = Lab::new(tag)?;
        let client = lab.ns("client")?;
        let switch = lab.ns("switch")?;
        switch.bridge(OUTSIDE_BRIDGE)?;
        switch.bridge(INSIDE_BRIDGE)?;
        lab.bridge_port(&switch, OUTSIDE_BRIDGE, "p-client", &client, OUTSIDE_IF)?;
        client.addr(OUTSIDE_IF, &format!("{CLIENT_IP}/24"))?;
        client.addr(OUTSIDE_IF, "2001:db8:47::1/64")?;
        let mut dirs = Vec::new();
        for (role, addrs) in [("dira", DIR_A), ("dirb", DIR_B)] {
            let ns = lab.ns(role)?;
            let side = &role[3..];
            lab.bridge_port(
                &switch,
                OUTSIDE_BRIDGE,
                &format!("p-{side}0"),
                &ns,
                OUTSIDE_IF,
            )?;
            lab.bridge_port(
                &switch,
                INSIDE_BRIDGE,
                &format!("p-{side}1"),
                &ns,
                INSIDE_IF,
            )?;
            ns.addr(OUTSIDE_IF, &format!("{}/24", addrs.0))?;
            ns.addr(INSIDE_IF, &format!("{}/24", addrs.1))?;
            let last = addrs.0.octets()[3];
            ns.addr(OUTSIDE_IF, &format!("2001:db8:47::{last}/64"))?;
            ns.addr(INSIDE_IF, &format!("2001:db8:211::{last}/64"))?;
            enable_forwarding(&ns, true)?;
            for dev in ["all", OUTSIDE_IF, INSIDE_IF] {
                ns.sysctl(&format!("net.ipv4.conf.{dev}.send_redirects"), "0")?;
            }
            let pin_dir = lab.pin_subdir(role)?;
            dirs.push(HaDirector { ns, pin_dir, addrs });
        }
        let mut rs = Vec::new();
        for i in 0..real_servers {
            let ns = lab.ns(&format!("rs{}", i + 1))?;
            lab.bridge_port(
                &switch,
                INSIDE_BRIDGE,
                &format!("p-rs{}", i + 1),
                &ns,
                OUTSIDE_IF,
            )?;
            ns.addr(OUTSIDE_IF, &format!("{}/24", rs_ip(i)))?;
            ns.route_default(&GATEWAY.to_string())?;
            ns.addr(OUTSIDE_IF, &format!("{}/64", rs_ip6(i)))?;
            ns.route_default(&GATEWAY6.to_string())?;
            rs.push(ns);
        }
        let b = dirs.pop().expect("two directors");
        let a = dirs.pop().expect("two directors");
        Ok(HaLab {
            client,
            a,
            b,
            switch,
            rs,
            lab,
        })
    }

    pub fn vip(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(VIP), port)
    }

    /// `lvs pass` on the four switch ports facing the directors, waited
    /// for (veth delivers XDP_TX/REDIRECT frames promptly only to a peer
    /// running XDP).
    pub fn start_pass(&self, lvs: &Path) -> Result<Proc> {
        let p = seed::start_pass(&self.switch, lvs, &["p-a0", "p-a1", "p-b0", "p-b1"])?;
        p.wait_for_line(seed::PASS_READY, seed::READY_TIMEOUT)?;
        Ok(p)
    }

    /// `keepalived --vrrp -n -l -f CONF` in `dir`, with its pid files in
    /// the lab's scratch directory (so it runs beside any other
    /// keepalived), stopped with the lab.
    pub fn keepalived(&self, dir: &HaDirector, conf: &str) -> Result<Proc> {
        let work = self.lab.workdir().join(dir.ns.role());
        std::fs::create_dir_all(&work)?;
        let path = work.join("keepalived.conf");
        std::fs::write(&path, conf)?;
        let mut cmd = dir.ns.command("keepalived");
        cmd.args(["--vrrp", "-n", "-l", "-D", "-f"])
            .arg(&path)
            .arg(format!("--pid={}", work.join("keepalived.pid").display()))
            .arg(format!("--vrrp_pid={}", work.join("vrrp.pid").display()));
        dir.ns.spawn_cmd("keepalived", cmd)
    }
}
