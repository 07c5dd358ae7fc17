//! The active/active lab: directors behind a router's ECMP, each
//! announcing the VIP over BGP with BIRD 2, all on one LAN with the real
//! servers (LVS-DR).
//!
//! ```text
//!  client eth0 192.168.50.1/24 (+ .10, .11, … as extra client sources)
//!    ── eth0 192.168.50.254 [router: BIRD, ECMP] eth1 192.168.51.254/24
//!    ── switch br0 (p-router, p-d1…p-d3, p-rs1…p-rs3)
//!  d1 eth0 192.168.51.11/24, d2 .12, d3 .13   BIRD (AS 65001) + lvs load
//!  rs1 eth0 192.168.51.129/24, rs2 .130, …    default via 192.168.51.254
//!  VIP 192.168.52.1 on every director's and real server's lo (ARP quiet):
//!  the router reaches it only through the routes the directors announce.
//! ```
//!
//! The router's BIRD peers with every director (eBGP, AS 65000 ↔ 65001,
//! hold time 3 s) and installs the VIP with one next hop per director
//! (`merge paths`) and hashes the 5-tuple (`fib_multipath_hash_policy=3`
//! with the 5-tuple's fields; see [`EcmpLab::new`] for why not 1 here), so
//! each connection sticks to one director while the route is unchanged.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};

use crate::{
    lab::Lab,
    lan,
    netns::Netns,
    process::Proc,
    seed::{self, PASS_READY, READY_TIMEOUT},
};

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 52, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 1);
pub const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 254);
pub const ROUTER_LAN_SIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 51, 254);
pub const ROUTER_AS: u32 = 65000;
pub const DIRECTOR_AS: u32 = 65001;
/// BGP hold time on every session (keepalives every second).
pub const HOLD_TIME: u32 = 3;
pub const LAN_IF: &str = "eth0";
pub const ROUTER_LAN_IF: &str = "eth1";
/// Ready line of a director's `lvs load` with `--bgp`.
pub const BGP_ANNOUNCING: &str = "bgp: announcing";

/// Director `i` (0-based): 192.168.51.11, .12, …
pub fn dir_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 51, 11 + i as u8)
}

/// Real server `i`: 192.168.51.129, .130, …
pub fn rs_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 51, 129 + i as u8)
}

/// Extra client source `i`: 192.168.50.10, .11, …
pub fn client_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 50, 10 + i as u8)
}

#[derive(Debug, Clone)]
pub struct EcmpConfig {
    pub directors: usize,
    pub real_servers: usize,
    /// Extra client source addresses (besides 192.168.50.1).
    pub client_sources: usize,
}

impl Default for EcmpConfig {
    fn default() -> Self {
        EcmpConfig {
            directors: 3,
            real_servers: 3,
            client_sources: 50,
        }
    }
}

pub struct EcmpLab {
    pub client: Netns,
    pub router: Netns,
    pub switch: Netns,
    /// d1, d2, … in order.
    pub dirs: Vec<Netns>,
    /// rs1, rs2, … in order.
    pub rs: Vec<Netns>,
    pub config: EcmpConfig,
    pins: Vec<PathBuf>,
    // Last, so the handles above are dropped before the lab tears down.
    pub lab: Lab,
}

impl EcmpLab {
    pub fn new(tag: &str, config: EcmpConfig) -> Result<EcmpLab> {
        if !(1..=9).contains(&config.directors)
            || !(1..=100).contains(&config.real_servers)
            || config.client_sources > 200
        {
            bail!("1–9 directors, 1–100 real servers, at most 200 client sources");
        }
        if !crate::on_path("bird") {
            bail!("bird (Debian's bird2) is not installed: run `cargo xtask setup`");
        }
        let lab = Lab::new(tag)?;
        let client = lab.ns("client")?;
        let router = lab.ns("router")?;
        let switch = lab.ns("switch")?;
        lab.veth(&client, LAN_IF, &router, LAN_IF)?;
        client.addr(LAN_IF, &format!("{CLIENT_IP}/24"))?;
        if config.client_sources > 0 {
            let adds: String = (0..config.client_sources)
                .map(|i| format!("addr add {}/24 dev {LAN_IF}\n", client_ip(i)))
                .collect();
            let batch = lab.workdir().join("client-addrs.batch");
            std::fs::write(&batch, adds)?;
            client.ip(&["-batch", &batch.to_string_lossy()])?;
        }
        client.route_default(&ROUTER_CLIENT_SIDE.to_string())?;
        router.addr(LAN_IF, &format!("{ROUTER_CLIENT_SIDE}/24"))?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        // L4 hashing, so that the connections of one client spread too.
        // Policy 1 would take the hash the client's socket left on the
        // skb (sk_txhash, which veth carries across namespaces and TCP
        // draws again at every retransmission timeout), not the 5-tuple a
        // router hashes when packets come from another machine; policy 3
        // with the 5-tuple's fields (addresses, protocol, ports) is that.
        router.sysctl("net.ipv4.fib_multipath_hash_policy", "3")?;
        router.sysctl("net.ipv4.fib_multipath_hash_fields", "0x0037")?;

        switch.bridge(lan::LAN_BRIDGE)?;
        lab.bridge_port(&switch, lan::LAN_BRIDGE, "p-router", &router, ROUTER_LAN_IF)?;
        router.addr(ROUTER_LAN_IF, &format!("{ROUTER_LAN_SIDE}/24"))?;

        let mut dirs = Vec::new();
        let mut pins = Vec::new();
        for i in 0..config.directors {
            let role = format!("d{}", i + 1);
            let ns = lab.ns(&role)?;
            lab.bridge_port(&switch, lan::LAN_BRIDGE, &format!("p-{role}"), &ns, LAN_IF)?;
            ns.addr(LAN_IF, &format!("{}/24", dir_ip(i)))?;
            // Its own traffic (a reset of its stack, say) goes out as a
            // real director's would.
            ns.route_default(&ROUTER_LAN_SIDE.to_string())?;
            // On lo, as on the real servers: the director's stack owns the
            // VIP (and resets a segment of a connection it does not know,
            // which is what sloppy scheduling must prevent).
            lan::real_server_vip(&ns, IpAddr::V4(VIP))?;
            for dev in ["all", LAN_IF] {
                ns.sysctl(&format!("net.ipv4.conf.{dev}.send_redirects"), "0")?;
            }
            pins.push(lab.pin_subdir(&role)?);
            dirs.push(ns);
        }
        let mut rs = Vec::new();
        for i in 0..config.real_servers {
            let ns = lab.ns(&format!("rs{}", i + 1))?;
            lab.bridge_port(
                &switch,
                lan::LAN_BRIDGE,
                &format!("p-rs{}", i + 1),
                &ns,
                LAN_IF,
            )?;
            ns.addr(LAN_IF, &format!("{}/24", rs_ip(i)))?;
            ns.route_default(&ROUTER_LAN_SIDE.to_string())?;
            lan::real_server_vip(&ns, IpAddr::V4(VIP))?;
            rs.push(ns);
        }
        let me = EcmpLab {
            client,
            router,
            switch,
            dirs,
            rs,
            config,
            pins,
            lab,
        };
        me.write_bird_configs()?;
        Ok(me)
    }

    pub fn vip(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(VIP), port)
    }

    /// Director `i`'s pin directory.
    pub fn pin_dir(&self, i: usize) -> &Path {
        &self.pins[i]
    }

    fn bird_dir(&self, name: &str) -> PathBuf {
        self.lab.workdir().join(format!("bird-{name}"))
    }

    /// BIRD's control socket in the router (`"router"`) or director `d1`…
    pub fn bird_socket(&self, name: &str) -> PathBuf {
        self.bird_dir(name).join("bird.ctl")
    }

    /// The file director `i`'s bird.conf includes (`--bird-include`).
    pub fn include_path(&self, i: usize) -> PathBuf {
        self.bird_dir(&format!("d{}", i + 1)).join("lvs-vips.conf")
    }

    fn write_bird_configs(&self) -> Result<()> {
        let timers = format!(
            "hold time {HOLD_TIME}; keepalive time 1; connect retry time 1; \
             error wait time 1, 2; connect delay time 1;"
        );
        let dir = self.bird_dir("router");
        std::fs::create_dir_all(&dir)?;
        let mut conf = format!(
            "router id {ROUTER_LAN_SIDE};\nlog \"{}\" all;\n\
             protocol device {{ scan time 1; }}\n\
             # ECMP: one route with a next hop per director.\n\
             protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
             template bgp director {{\n\tlocal {ROUTER_LAN_SIDE} as {ROUTER_AS};\n\t{timers}\n\
             \tipv4 {{ import all; export none; }};\n}}\n",
            dir.join("bird.log").display()
        );
        for i in 0..self.dirs.len() {
            conf.push_str(&format!(
                "protocol bgp d{} from director {{ neighbor {} as {DIRECTOR_AS}; }}\n",
                i + 1,
                dir_ip(i)
            ));
        }
        std::fs::write(dir.join("bird.conf"), conf)?;
        for i in 0..self.dirs.len() {
            let dir = self.bird_dir(&format!("d{}", i + 1));
            std::fs::create_dir_all(&dir)?;
            // The operator's part, as the README shows it.
            let conf = format!(
                "router id {ip};\nlog \"{log}\" all;\nprotocol device {{ scan time 1; }}\n\
                 include \"{include}\";\n\
                 protocol bgp uplink {{\n\tlocal {ip} as {DIRECTOR_AS};\n\
                 \tneighbor {ROUTER_LAN_SIDE} as {ROUTER_AS};\n\t{timers}\n\
                 \tipv4 {{ import none; export where proto = \"lvs_vips4\"; }};\n}}\n",
                ip = dir_ip(i),
                log = dir.join("bird.log").display(),
                include = self.include_path(i).display(),
            );
            std::fs::write(dir.join("bird.conf"), conf)?;
            // BIRD must find the include when it starts; lvs rewrites it.
            if !self.include_path(i).exists() {
                std::fs::write(self.include_path(i), "")?;
            }
        }
        Ok(())
    }

    fn start_bird(&self, ns: &Netns, name: &str) -> Result<Proc> {
        let dir = self.bird_dir(name);
        let sock = self.bird_socket(name);
        let _ = std::fs::remove_file(&sock);
        let conf = dir.join("bird.conf");
        let p = ns.spawn(
            "bird",
            &[
                "bird",
                "-f",
                "-c",
                &conf.to_string_lossy(),
                "-s",
                &sock.to_string_lossy(),
                "-P",
                &dir.join("bird.pid").to_string_lossy(),
            ],
        )?;
        // Ready when it answers on its socket (it makes the socket before
        // it reads its configuration).
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let mut birdc = std::process::Command::new("birdc");
            birdc.arg("-s").arg(&sock).args(["show", "status"]);
            let answered = sock.exists()
                && crate::run_timeout(&mut birdc, Duration::from_secs(5))
                    .is_ok_and(|o| o.status.success());
            if answered && p.is_running() {
                return Ok(p);
            }
            if !p.is_running() || Instant::now() >= deadline {
                bail!("BIRD in {} did not start: {}", ns.name(), p.output());
            }
        }
    }

    /// The router's BIRD.
    pub fn start_router_bird(&self) -> Result<Proc> {
        self.start_bird(&self.router, "router")
    }

    /// Director `i`'s BIRD.
    pub fn start_director_bird(&self, i: usize) -> Result<Proc> {
        self.start_bird(&self.dirs[i], &format!("d{}", i + 1))
    }

    /// `lvs pass` on the switch ports facing the directors (their XDP_TX
    /// frames leave through these veths), waited for.
    pub fn start_pass(&self, lvs: &Path) -> Result<Proc> {
        let ports: Vec<String> = (1..=self.dirs.len()).map(|i| format!("p-d{i}")).collect();
        let refs: Vec<&str> = ports.iter().map(String::as_str).collect();
        let p = seed::start_pass(&self.switch, lvs, &refs)?;
        p.wait_for_line(PASS_READY, READY_TIMEOUT)?;
        Ok(p)
    }

    /// `lvs load --iface eth0 --bgp bird …` on director `i` (with `extra`),
    /// waited for until it is attached.
    pub fn start_director(&self, i: usize, lvs: &Path, extra: &[&str]) -> Result<Proc> {
        let sock = self.bird_socket(&format!("d{}", i + 1));
        let inc = self.include_path(i);
        let mut args = vec![
            "--bgp",
            "bird",
            "--bird-socket",
            sock.to_str().context("socket path")?,
            "--bird-include",
            inc.to_str().context("include path")?,
        ];
        args.extend_from_slice(extra);
        lan::start_director(&self.dirs[i], lvs, &[LAN_IF], &self.pins[i], &args)
    }

    /// `lvsadm args…` on director `i`; stdout, or an error with stderr.
    pub fn lvsadm(&self, i: usize, lvsadm: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = lan::lvsadm_command(&self.dirs[i], lvsadm, &self.pins[i]);
        cmd.args(args);
        crate::check_output(&mut cmd, crate::RUN_TIMEOUT)
    }

    /// The next hops of the router's route to `dst` (empty without one).
    pub fn router_next_hops(&self, dst: Ipv4Addr) -> Result<Vec<Ipv4Addr>> {
        let out = self
            .router
            .ip(&["-4", "route", "show", "exact", &format!("{dst}/32")])?;
        parse_next_hops(&out)
    }

    /// Waits until the router's route to the VIP has exactly `want` as its
    /// next hops; the time it took.
    pub fn wait_next_hops(&self, want: &[Ipv4Addr], timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let mut want = want.to_vec();
        want.sort();
        loop {
            let got = self.router_next_hops(VIP)?;
            if got == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= timeout {
                return Err(anyhow!(
                    "the router's route to {VIP} goes via {got:?}, not {want:?}, after \
                     {timeout:?}\n{}",
                    self.diag()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// BIRD's logs and the directors' includes, for failure messages.
    pub fn diag(&self) -> String {
        let mut out = String::new();
        let mut names = vec!["router".to_owned()];
        names.extend((1..=self.dirs.len()).map(|i| format!("d{i}")));
        for name in names {
            let log =
                std::fs::read_to_string(self.bird_dir(&name).join("bird.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- BIRD {name} (last lines, newest first)\n"));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        for i in 0..self.dirs.len() {
            let inc = std::fs::read_to_string(self.include_path(i)).unwrap_or_default();
            out.push_str(&format!("--- d{} include\n{inc}", i + 1));
        }
        out
    }

    /// Director `i`'s link to the LAN down (`false`) or up again (`true`).
    pub fn set_director_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.dirs[i].ip(&["link", "set", LAN_IF, state]).map(drop)
    }
}

/// The gateways in `ip route show` output, sorted: `via A` of a single
/// route or of each `nexthop` line.
pub fn parse_next_hops(out: &str) -> Result<Vec<Ipv4Addr>> {
    let mut hops = Vec::new();
    let words: Vec<&str> = out.split_whitespace().collect();
    for w in words.windows(2) {
        if w[0] == "via" {
            hops.push(
                w[1].parse()
                    .with_context(|| format!("bad gateway {:?} in {out:?}", w[1]))?,
            );
        }
    }
    hops.sort();
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_of_single_and_multipath_routes() {
        assert_eq!(
            parse_next_hops("192.168.52.1 via 192.168.51.12 dev eth1 proto bird metric 32 \n")
                .unwrap(),
            [dir_ip(1)]
        );
        let multi = "192.168.52.1 proto bird metric 32 \n\
                     \tnexthop via 192.168.51.13 dev eth1 weight 1 \n\
                     \tnexthop via 192.168.51.11 dev eth1 weight 1 \n";
        assert_eq!(parse_next_hops(multi).unwrap(), [dir_ip(0), dir_ip(2)]);
        assert!(parse_next_hops("").unwrap().is_empty());
    }
}
