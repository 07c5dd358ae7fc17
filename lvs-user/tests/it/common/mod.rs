//! Shared set-up of the namespace tests: the seed's NAT topology with the
//! director running, and helpers to drive `lvsadm` in it; [`xdp`] is the
//! BPF_PROG_TEST_RUN fixture.
#![allow(dead_code)]

pub mod held;
pub mod xdp;

use std::{path::Path, time::Duration};

use anyhow::Result;
use lvs_lab::{
    seed::{SeedConfig, SeedLab},
    Proc,
};

pub const LVS: &str = env!("CARGO_BIN_EXE_lvs");
pub const LVSADM: &str = env!("CARGO_BIN_EXE_lvsadm");
pub const T: Duration = Duration::from_secs(3);

pub struct Director {
    // Processes first: they stop before the lab removes the namespaces.
    _procs: Vec<Proc>,
    pub seed: SeedLab,
}

/// The seed's lab with `lvs pass` on the peers and `lvs load` on the
/// director. Forwarding is on, as `lvs_nat.sh` sets it (the XDP FIB lookup
/// needs it); no netfilter rule is installed.
pub fn director(tag: &str, real_servers: usize) -> Result<Director> {
    director_with(tag, real_servers, &[])
}

/// A UDP NAT service VIP:53 (rr) over port 53 of the seed's first `n` real
/// servers (weight 1), each answering "answer"; returns the servers once
/// the director has resolved every real server.
pub fn udp_answer_service(seed: &SeedLab, n: usize) -> Vec<servers::Server> {
    use lvs_lab::seed::{rs_ip, VIP};
    let adm = |args: &[&str]| {
        seed.lvsadm(Path::new(LVSADM), args)
            .unwrap_or_else(|e| panic!("lvsadm {args:?}: {e:#}"))
    };
    let udp: Vec<_> = (0..n)
        .map(|i| servers::udp(&seed.rs[i], "0.0.0.0:53".parse().unwrap(), "answer").unwrap())
        .collect();
    let svc = format!("{VIP}:53");
    adm(&["-A", "-u", &svc, "-s", "rr"]);
    for i in 0..n {
        let rs = format!("{}:53", rs_ip(i));
        adm(&["-a", "-u", &svc, "-r", &rs, "-m", "-w", "1"]);
    }
    for i in 0..n {
        seed.director
            .wait_neigh(rs_ip(i).into(), Duration::from_secs(5))
            .unwrap();
    }
    udp
}

impl Director {
    /// `lvsadm args…`, which must succeed.
    pub fn adm(&self, args: &[&str]) -> String {
        self.seed
            .lvsadm(Path::new(LVSADM), args)
            .unwrap_or_else(|e| panic!("lvsadm {args:?}: {e:#}"))
    }

    /// `lvsadm args…` with stdin; (exit code, stdout, stderr).
    pub fn adm_raw(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        use std::io::Write;
        let mut cmd = self.seed.lvsadm_command(Path::new(LVSADM));
        cmd.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn lvsadm");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("lvsadm output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `lvs stats` counter by name.
    pub fn counter(&self, name: &str) -> u64 {
        let out = lvs_lab::check_output(
            self.seed
                .director
                .command(LVS)
                .args(["stats", "--pin-path"])
                .arg(self.seed.pin_dir()),
            T,
        )
        .expect("lvs stats");
        out.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no counter {name} in {out}"))
    }
}

// ------------------------------------------------------------------------
// DR/TUN LAN and routed labs (lvs_lab::lan), for dr.rs, tunnel.rs, ipv6.rs,
// icmp.rs and mixed.rs.

use std::net::SocketAddr;

use lvs_lab::{
    lan::{Captured, LanConfig, LanLab, RoutedConfig, RoutedLab},
    packet, servers, Netns,
};

/// `lvs stats` counter `name` of the director in `ns` pinned at `pin`.
pub fn counter_in(ns: &Netns, pin: &Path, name: &str) -> u64 {
    let stats = lvs_lab::lan::lvs_stats(ns, Path::new(LVS), pin).expect("lvs stats");
    *stats
        .get(name)
        .unwrap_or_else(|| panic!("no counter {name} in {stats:?}"))
}

/// Runs `lvsadm args…` in `ns` with the pins at `pin`; must succeed.
pub fn adm_in(ns: &Netns, pin: &Path, args: &[&str]) -> String {
    let mut cmd = lvs_lab::lan::lvsadm_command(ns, Path::new(LVSADM), pin);
    cmd.args(args);
    lvs_lab::check_output(&mut cmd, T).unwrap_or_else(|e| panic!("lvsadm {args:?}: {e:#}"))
}

/// A [`LanLab`] with forwarding on (or off, [`lan_director_with`]), `lvs pass` on the switch ports facing
/// the director, `lvs load` on the director (with `extra` options) and,
/// with `decap`, `lvs decap` on every LAN real server.
pub struct Lan {
    // Processes first: they stop before the lab removes the namespaces.
    pub procs: Vec<Proc>,
    /// The latest `lvs load` (also in `procs`).
    pub load: Option<Proc>,
    pub lan: LanLab,
}

pub fn lan_director(tag: &str, config: LanConfig, decap: bool, extra: &[&str]) -> Result<Lan> {
    lan_director_with(tag, config, decap, extra, true)
}

/// [`lan_director`] with forwarding on or, as an IPVS director doing only
/// DR and TUN may run, off (`net.ipv4.ip_forward=0` and, with IPv6,
/// `net.ipv6.conf.all.forwarding=0`).
pub fn lan_director_with(
    tag: &str,
    config: LanConfig,
    decap: bool,
    extra: &[&str],
    forwarding: bool,
) -> Result<Lan> {
    let lan = LanLab::with_config(tag, config)?;
    if forwarding {
        lan.enable_forwarding()?;
    } else {
        lan.director.sysctl("net.ipv4.ip_forward", "0")?;
        if lan.config.ipv6 {
            lan.director.sysctl("net.ipv6.conf.all.forwarding", "0")?;
        }
    }
    let mut procs = lan.start_pass(Path::new(LVS))?;
    let load = lan.start_director(Path::new(LVS), extra)?;
    procs.push(load.clone());
    if decap {
        procs.extend(lan.start_decap_all(Path::new(LVS))?);
    }
    Ok(Lan {
        procs,
        load: Some(load),
        lan,
    })
}

impl Lan {
    pub fn adm(&self, args: &[&str]) -> String {
        adm_in(&self.lan.director, self.lan.pin_dir(), args)
    }

    pub fn counter(&self, name: &str) -> u64 {
        counter_in(&self.lan.director, self.lan.pin_dir(), name)
    }

    /// `lvs decap`'s counter `idx` (lvs_common::decap_counters) on LAN
    /// real server `i`.
    pub fn decap_counter(&self, i: usize, idx: u32) -> u64 {
        use aya::maps::{Map, MapData, PerCpuArray};
        let role = self.lan.rs[i].role().to_owned();
        let dir = self
            .lan
            .lab
            .pin_subdir(&format!("decap-{role}"))
            .expect("decap pin dir");
        let m = MapData::from_pin(dir.join("DECAP_COUNTERS"))
            .unwrap_or_else(|e| panic!("DECAP_COUNTERS of {role}: {e}"));
        let c: PerCpuArray<MapData, u64> = PerCpuArray::try_from(Map::PerCpuArray(m)).unwrap();
        c.get(&idx, 0).unwrap().iter().sum()
    }

    /// HTTP servers answering `rs1\n`, `rs2\n`, … on `[::]:port` (v4 and
    /// v6) of each LAN real server, then `nat1\n`, … on the inside ones.
    pub fn web(&self, port: u16) -> Vec<servers::Server> {
        let any: SocketAddr = SocketAddr::new("::".parse().unwrap(), port);
        self.lan
            .rs
            .iter()
            .chain(&self.lan.inside)
            .map(|ns| servers::http(ns, any, &format!("{}\n", ns.role())).unwrap())
            .collect()
    }

    pub fn mac(&self, ns: &Netns) -> [u8; 6] {
        ns.mac("eth0").unwrap()
    }

    /// Waits until the director has resolved each real server's MAC.
    /// DR/TUN drop a packet for a real server whose MAC is not known yet
    /// (counted as `fwd_no_neigh`; NAT hands it to the kernel instead), and
    /// `lvs load` installs the managed neighbour entries within a second of
    /// `lvsadm -a`: tests that count packets wait for them first.
    pub fn resolved(&self, reals: &[std::net::IpAddr]) {
        for &a in reals {
            self.lan
                .director
                .wait_neigh(a, std::time::Duration::from_secs(5))
                .unwrap();
        }
    }

    /// Six HTTP GETs of the client to VIP:80 over the LAN's two real
    /// servers `srv` (rr, both resolved first), captured on the client's
    /// link: three answers from each, and each server saw the client's own
    /// address (DR and TUN keep it). Returns (answers, the frames seen).
    pub fn rr_gets(&self, srv: &[servers::Server]) -> (Vec<String>, Vec<Seen>) {
        // So that every packet counts (see `resolved`).
        self.resolved(&[lvs_lab::lan::rs_ip(0).into(), lvs_lab::lan::rs_ip(1).into()]);
        let cap = lvs_lab::lan::Capture::start(&self.lan.client, "eth0").unwrap();
        let answers: Vec<String> = (0..6)
            .map(|_| lvs_lab::clients::http_get(&self.lan.client, self.lan.vip(80), T).unwrap())
            .collect();
        // Give the last FIN/ACKs time to be counted before comparing.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let frames = l4_frames(&cap.finish());
        assert_eq!(
            tally(&answers),
            std::collections::BTreeMap::from([("rs1\n".to_owned(), 3), ("rs2\n".to_owned(), 3)]),
            "{answers:?}"
        );
        for s in srv {
            assert!(s
                .peers()
                .iter()
                .all(|p| p.ip().to_canonical() == std::net::IpAddr::V4(lvs_lab::lan::CLIENT_IP)));
        }
        (answers, frames)
    }
}

/// A [`RoutedLab`] with the director running (forwarding on, `lvs pass`
/// on the routers' links facing it).
pub struct Routed {
    pub procs: Vec<Proc>,
    pub lab: RoutedLab,
}

pub fn routed_director(tag: &str, config: RoutedConfig) -> Result<Routed> {
    let lab = RoutedLab::with_config(tag, config)?;
    lab.enable_forwarding()?;
    let mut procs = lab.start_pass(Path::new(LVS))?;
    procs.push(lab.start_director(Path::new(LVS), &[])?);
    Ok(Routed { procs, lab })
}

impl Routed {
    pub fn adm(&self, args: &[&str]) -> String {
        adm_in(&self.lab.director, self.lab.pin_dir(), args)
    }

    pub fn counter(&self, name: &str) -> u64 {
        counter_in(&self.lab.director, self.lab.pin_dir(), name)
    }
}

/// A captured TCP/UDP frame, parsed (checksums verified by
/// [`packet::parse`]).
#[derive(Debug, Clone)]
pub struct Seen {
    pub outgoing: bool,
    pub p: packet::Parsed,
}

/// The TCP/UDP frames among `frames`.
pub fn l4_frames(frames: &[Captured]) -> Vec<Seen> {
    frames
        .iter()
        .filter_map(|c| {
            packet::parse(&c.frame).map(|p| Seen {
                outgoing: c.outgoing,
                p,
            })
        })
        .collect()
}

/// Frames from `addr` (source address and port).
pub fn from_addr(seen: &[Seen], addr: SocketAddr) -> Vec<Seen> {
    seen.iter()
        .filter(|s| s.p.src == addr.ip() && s.p.sport == addr.port())
        .cloned()
        .collect()
}

/// Frames to `addr` (destination address and port).
pub fn to_addr(seen: &[Seen], addr: SocketAddr) -> Vec<Seen> {
    seen.iter()
        .filter(|s| s.p.dst == addr.ip() && s.p.dport == addr.port())
        .cloned()
        .collect()
}

/// Counts of each distinct answer.
pub fn tally(answers: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in answers {
        *m.entry(a.clone()).or_default() += 1;
    }
    m
}

/// [`director`] with IPv6 addresses on every link as well (SeedConfig
/// `ipv6`) and IPv6 forwarding on.
pub fn director_v6(tag: &str, real_servers: usize) -> Result<Director> {
    let seed = SeedLab::with_config(
        tag,
        SeedConfig {
            real_servers,
            ipv6: true,
        },
    )?;
    lvs_lab::lan::enable_forwarding(&seed.director, true)?;
    let mut procs = seed.start_pass(Path::new(LVS))?;
    procs.push(seed.start_director(Path::new(LVS), &[])?);
    Ok(Director {
        _procs: procs,
        seed,
    })
}

/// What a failing namespace test should show: the director's counters,
/// neighbours and the last lines of its `lvs load` log.
pub fn diagnose(ns: &Netns, pin: &Path) -> String {
    let stats = lvs_lab::lan::lvs_stats(ns, Path::new(LVS), pin)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|e| format!("(lvs stats: {e:#})"));
    let neigh = ns.ip(&["-4", "neigh", "show"]).unwrap_or_default()
        + &ns.ip(&["-6", "neigh", "show"]).unwrap_or_default();
    format!("director counters: {stats}\ndirector neighbours:\n{neigh}")
}

impl Director {
    pub fn diag(&self) -> String {
        diagnose(&self.seed.director, self.seed.pin_dir())
    }
}

impl Lan {
    pub fn diag(&self) -> String {
        diagnose(&self.lan.director, self.lan.pin_dir())
    }
}

impl Routed {
    pub fn diag(&self) -> String {
        diagnose(&self.lab.director, self.lab.pin_dir())
    }
}

// ------------------------------------------------------------------------
// Schedulers, connection counts and persistence on the seed lab (sched.rs,
// conns.rs, persist.rs).

use std::net::{IpAddr, Ipv4Addr};

use lvs_lab::clients::TcpConn;

/// [`director`] with `extra` options for `lvs load` (e.g. `--timeout
/// time_wait=2`).
pub fn director_with(tag: &str, real_servers: usize, extra: &[&str]) -> Result<Director> {
    let seed = SeedLab::with_config(
        tag,
        SeedConfig {
            real_servers,
            ..Default::default()
        },
    )?;
    seed.director.sysctl("net.ipv4.ip_forward", "1")?;
    let mut procs = seed.start_pass(Path::new(LVS))?;
    procs.push(seed.start_director(Path::new(LVS), extra)?);
    Ok(Director {
        _procs: procs,
        seed,
    })
}

/// `lvs load` on the seed's director, on both its links, pinning at the
/// seed's pin directory; the caller adds the rest.
pub fn load_command(seed: &SeedLab) -> std::process::Command {
    let mut cmd = seed.director.command(LVS);
    cmd.args([
        "load",
        "--iface",
        lvs_lab::seed::DIR_INT_IF,
        "--iface",
        lvs_lab::seed::DIR_EXT_IF,
        "--pin-path",
    ])
    .arg(seed.pin_dir());
    cmd
}

/// How many neighbour entries of `ns` are the director's own (`lvs load`
/// manages them with its protocol number).
pub fn managed_neighbours(ns: &Netns) -> usize {
    ns.ip(&["-o", "neigh", "show", "nud", "all"])
        .unwrap()
        .lines()
        .filter(|l| l.contains(&format!("proto {}", lvs::neigh::PROTO)))
        .count()
}

/// The seed's `VIP:port`, as lvsadm takes it.
pub fn seed_vip(port: u16) -> String {
    format!("{}:{port}", lvs_lab::seed::VIP)
}

/// The seed's real server `i` (0: rs1) `addr:port`, as lvsadm takes it.
pub fn seed_rs(i: usize, port: u16) -> String {
    format!("{}:{port}", lvs_lab::seed::rs_ip(i))
}

/// `lvs load` options that shorten every closing state's timeout to a few
/// seconds, so that closed connections leave the counts quickly.
pub const SHORT_CLOSE: &[&str] = &[
    "--timeout",
    "syn_recv=3",
    "--timeout",
    "fin_wait=2",
    "--timeout",
    "time_wait=2",
    "--timeout",
    "close=1",
    "--timeout",
    "close_wait=2",
    "--timeout",
    "last_ack=2",
];

/// One real server's row of `lvsadm -L -n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealRow {
    /// `ADDR:PORT` as listed.
    pub addr: String,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
}

/// The real-server rows of an `lvsadm -L -n` listing.
pub fn real_rows(listing: &str) -> Vec<RealRow> {
    listing
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next() != Some("->") {
                return None;
            }
            let addr = w.next()?.to_owned();
            let _method = w.next()?;
            Some(RealRow {
                addr,
                weight: w.next()?.parse().ok()?,
                active: w.next()?.parse().ok()?,
                inactive: w.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// Polls `f` every 50 ms until it holds; `false` if it still does not
/// after `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Director {
    /// The real-server rows of TCP service `vip_port` (`-L -n -t`).
    pub fn reals(&self, vip_port: &str) -> Vec<RealRow> {
        real_rows(&self.adm(&["-L", "-n", "-t", vip_port]))
    }

    /// (ActiveConn, InActConn) of real server `rs` (`ADDR:PORT`) in TCP
    /// service `vip_port`.
    pub fn conns_of(&self, vip_port: &str, rs: &str) -> (u64, u64) {
        let rows = self.reals(vip_port);
        let r = rows
            .iter()
            .find(|r| r.addr == rs)
            .unwrap_or_else(|| panic!("no real server {rs} in {rows:?}"));
        (r.active, r.inactive)
    }

    /// Waits (at most `timeout`) until the rows of TCP service `vip_port`
    /// satisfy `f`; panics with `what`, the last rows and the director's
    /// counters if they never do.
    pub fn wait_reals(
        &self,
        vip_port: &str,
        timeout: Duration,
        what: &str,
        f: impl Fn(&[RealRow]) -> bool,
    ) -> Vec<RealRow> {
        wait_rows(timeout, what, || self.reals(vip_port), || self.diag(), f)
    }

    /// Waits until the ActiveConn/InActConn totals of `vip_port` are
    /// `(active, inactive)`.
    pub fn wait_totals(&self, vip_port: &str, active: u64, inactive: u64, timeout: Duration) {
        self.wait_reals(
            vip_port,
            timeout,
            &format!("ActiveConn {active} / InActConn {inactive} in total"),
            |rows| {
                // Wrapping: a count that went below zero shows as a huge
                // number, which must fail the comparison, not the sum.
                rows.iter().fold(0u64, |a, r| a.wrapping_add(r.active)) == active
                    && rows.iter().fold(0u64, |a, r| a.wrapping_add(r.inactive)) == inactive
            },
        );
    }

    /// Line servers answering `rs1`, `rs2`, … on `0.0.0.0:port` of each
    /// real server.
    pub fn line_servers(&self, port: u16) -> Vec<servers::Server> {
        self.seed
            .rs
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let any = SocketAddr::from(([0, 0, 0, 0], port));
                servers::line(ns, any, &format!("rs{}", i + 1)).unwrap()
            })
            .collect()
    }

    /// A held TCP connection to the VIP's `port` (from the client's own
    /// address, or from `from`), with the name of the line server that
    /// answered it. After the answer the director has seen the client's
    /// ACK, so the connection is ESTABLISHED there.
    pub fn hold(&self, port: u16, from: Option<IpAddr>) -> (TcpConn, String) {
        let vip = self.seed.vip(port);
        let mut c = match from {
            Some(a) => TcpConn::connect_from(&self.seed.client, a, vip, T),
            None => TcpConn::connect(&self.seed.client, vip, T),
        }
        .unwrap_or_else(|e| panic!("connecting to {vip}: {e:#}\n{}", self.diag()));
        let who = c
            .ask("hi")
            .unwrap_or_else(|e| panic!("asking {vip}: {e:#}\n{}", self.diag()));
        (c, who)
    }

    /// Adds `n` client addresses 192.168.47.10, .11, … (/24) to the
    /// client's eth0 and pings the VIP from each, so that the director
    /// knows their MACs before the first reply it forwards.
    pub fn client_addrs(&self, n: usize) -> Vec<IpAddr> {
        assert!(n <= 100);
        let addrs: Vec<IpAddr> = (0..n)
            .map(|i| IpAddr::V4(Ipv4Addr::new(192, 168, 47, 10 + i as u8)))
            .collect();
        let batch: String = addrs
            .iter()
            .map(|a| format!("addr add {a}/24 dev eth0\n"))
            .collect();
        let file = self.seed.lab.workdir().join("client-addrs.batch");
        std::fs::write(&file, batch).unwrap();
        self.seed
            .client
            .ip(&["-batch", file.to_str().unwrap()])
            .unwrap();
        for &a in &addrs {
            lvs_lab::clients::ping_from(&self.seed.client, a, IpAddr::V4(lvs_lab::seed::VIP), T)
                .unwrap_or_else(|e| panic!("ping from {a}: {e:#}"));
        }
        addrs
    }
}

/// Waits (at most `timeout`) until the rows `rows()` gives satisfy `f`;
/// panics with `what`, the last rows and `diag()` if they never do.
pub fn wait_rows(
    timeout: Duration,
    what: &str,
    mut rows: impl FnMut() -> Vec<RealRow>,
    diag: impl Fn() -> String,
    f: impl Fn(&[RealRow]) -> bool,
) -> Vec<RealRow> {
    let mut last = Vec::new();
    if wait_until(timeout, || {
        last = rows();
        f(&last)
    }) {
        return last;
    }
    panic!(
        "{what}: not within {timeout:?}; last rows {last:#?}\n{}",
        diag()
    );
}

/// The sum of the rows' ActiveConn (wrapping: a count below zero shows as
/// a huge number, which must fail a comparison, not the sum).
pub fn active_total(rows: &[RealRow]) -> u64 {
    rows.iter().fold(0u64, |a, r| a.wrapping_add(r.active))
}

impl Lan {
    /// The real-server rows of TCP service `vip_port` (`-L -n -t`).
    pub fn reals(&self, vip_port: &str) -> Vec<RealRow> {
        real_rows(&self.adm(&["-L", "-n", "-t", vip_port]))
    }

    /// Waits until the ActiveConn total of TCP service `vip_port` is
    /// `active`.
    pub fn wait_active(&self, vip_port: &str, active: u64, timeout: Duration) -> Vec<RealRow> {
        wait_rows(
            timeout,
            &format!("ActiveConn {active} in total on {vip_port}"),
            || self.reals(vip_port),
            || self.diag(),
            |rows| active_total(rows) == active,
        )
    }

    /// The latest `lvs load`.
    pub fn load_proc(&self) -> Proc {
        self.load.clone().expect("an lvs load")
    }

    /// Starts `lvs load` again (after the last one stopped) with `extra`
    /// options and `env` added to its environment; waits until it is
    /// attached.
    pub fn start_load(&mut self, extra: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
        let p = lvs_lab::lan::start_director_env(
            &self.lan.director,
            Path::new(LVS),
            &self.lan.director_ifaces(),
            self.lan.pin_dir(),
            extra,
            env,
        )?;
        self.procs.push(p.clone());
        self.load = Some(p.clone());
        Ok(p)
    }
}

/// "rs1", "rs2", … for real server address `ADDR:PORT` of the seed lab.
pub fn rs_name(addr: &str) -> String {
    let ip: Ipv4Addr = addr
        .rsplit_once(':')
        .map_or(addr, |(a, _)| a)
        .parse()
        .unwrap();
    format!("rs{}", ip.octets()[3] - 128)
}

impl Director {
    /// `max_entries` of the director's `CONNS` map: `--max-conns` plus the
    /// room `lvs load` adds for the kernel's per-CPU LRU free lists.
    pub fn conn_map_entries(&self) -> u64 {
        let pin = self.seed.pin_dir().join("CONNS");
        let m =
            aya::maps::MapData::from_pin(&pin).unwrap_or_else(|e| panic!("{}: {e}", pin.display()));
        m.info().expect("CONNS map info").max_entries() as u64
    }

    /// What `lvs load` has printed so far.
    pub fn load_log(&self) -> String {
        self._procs.last().map(|p| p.output()).unwrap_or_default()
    }

    /// Whether `lvs load` is still running.
    pub fn load_running(&self) -> bool {
        self._procs.last().is_some_and(|p| p.is_running())
    }

    /// The latest `lvs load`.
    pub fn load_proc(&self) -> Proc {
        self._procs.last().cloned().expect("an lvs load")
    }

    /// Starts `lvs load` again with `extra` options (after the last one
    /// stopped) and waits until it says it is attached.
    pub fn start_load(&mut self, extra: &[&str]) -> Result<Proc> {
        let p = self.seed.start_director(Path::new(LVS), extra)?;
        self._procs.push(p.clone());
        Ok(p)
    }
}

/// A count as `lvsadm` prints it, read as signed: a count decremented
/// below zero wraps to a huge u64, which this shows as negative.
pub fn signed(n: u64) -> i64 {
    n as i64
}

// ------------------------------------------------------------------------
// Real servers' next hops (hops.rs).

/// The `REALS` slots in use that hold `addr`.
pub fn real_slots(pin: &Path, addr: IpAddr) -> Vec<u32> {
    use aya::maps::{Array, Map, MapData};
    let m = MapData::from_pin(pin.join(lvs::tables::names::REALS)).expect("REALS pin");
    let reals: Array<MapData, lvs_common::Real> = Array::try_from(Map::Array(m)).unwrap();
    let want = lvs::tables::addr_words(addr);
    (0..reals.len())
        .filter(|&i| {
            let r = reals.get(&i, 0).unwrap();
            r.flags & lvs_common::REAL_F_IN_USE != 0 && r.addr == want
        })
        .collect()
}

/// The current `REAL_HOPS` entries of every real server slot of `addr`
/// (`None` if some slot has none, or there is no slot).
pub fn real_hops(pin: &Path, addr: IpAddr) -> Option<Vec<lvs_common::NextHop>> {
    let slots = real_slots(pin, addr);
    let t = lvs::hops::HopTable::open(pin).expect("REAL_HOPS");
    let hops: Option<Vec<_>> = slots.iter().map(|&i| t.current(i)).collect();
    hops.filter(|h| !h.is_empty())
}

impl Lan {
    /// Waits until `lvs load` has written the next hop of every real
    /// server slot of each of `reals` (`REAL_HOPS`), and returns one of
    /// each (panics if the slots of one address disagree).
    pub fn wait_hops(&self, reals: &[IpAddr]) -> Vec<lvs_common::NextHop> {
        let pin = self.lan.pin_dir();
        reals
            .iter()
            .map(|&a| {
                let mut hops = None;
                let ok = wait_until(Duration::from_secs(5), || {
                    hops = real_hops(pin, a);
                    hops.is_some()
                });
                assert!(
                    ok,
                    "no REAL_HOPS entry for every slot of {a} after 5 s\n{}",
                    self.diag()
                );
                let hops = hops.unwrap();
                assert!(hops.windows(2).all(|w| w[0] == w[1]), "{a}: {hops:?}");
                hops[0]
            })
            .collect()
    }
}
