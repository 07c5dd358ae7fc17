//! Section 4: HTTP end to end. `wrk` in a client namespace against a VIP
//! balanced over two nginx real servers, through lvs-xdp (NAT and DR) and
//! through the kernel's own balancers (iptables, nftables) and HAProxy,
//! with the client talking straight to one real server as the reference.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use lvs_common::counters;
use lvs_lab::{
    clients,
    seed::{self, SeedConfig, SeedLab},
    Lab, Netns,
};

use crate::{
    fixture::read_counters,
    report::{short_error, Align, Section, Table},
    stats::{fmt_rate, fmt_ratio_of, fmt_us, group, median},
    sysinfo::{clk_tck, read_proc_stat},
    wrk::{self, WrkResult},
    Opts, Progress,
};
use lvs::{
    model::{Method, Proto, RealServer, Scheduler, ServiceAddr, VirtualService},
    tables::Tables,
};

const STARTUP: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Direct,
    LvsNat,
    LvsDr,
    Iptables,
    Nftables,
    Haproxy,
}

impl Peer {
    pub const ALL: [Peer; 6] = [
        Peer::Direct,
        Peer::LvsNat,
        Peer::LvsDr,
        Peer::Iptables,
        Peer::Nftables,
        Peer::Haproxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Direct => "client → one real server (no balancer)",
            Peer::LvsNat => "lvs-xdp NAT",
            Peer::LvsDr => "lvs-xdp DR (shared LAN)",
            Peer::Iptables => "iptables DNAT (statistic nth)",
            Peer::Nftables => "nftables DNAT (numgen inc)",
            Peer::Haproxy => "HAProxy (mode tcp, roundrobin)",
        }
    }

    /// Programs the peer needs besides wrk and nginx.
    fn tool(self) -> Option<&'static str> {
        match self {
            Peer::Iptables => Some("iptables"),
            Peer::Nftables => Some("nft"),
            Peer::Haproxy => Some("haproxy"),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    KeepAlive,
    Close,
}

/// The `wrk` command line (without the program name).
pub fn wrk_args(url: &str, mode: Mode, secs: u32, conns: u32, threads: u32) -> Vec<String> {
    let mut a = vec![
        format!("-t{threads}"),
        format!("-c{conns}"),
        format!("-d{secs}s"),
        "--timeout".to_owned(),
        "2s".to_owned(),
        "--latency".to_owned(),
    ];
    if mode == Mode::Close {
        a.push("-H".to_owned());
        a.push("Connection: close".to_owned());
    }
    a.push(url.to_owned());
    a
}

/// nginx's configuration for one real server: private paths under `dir`,
/// one worker, a fixed body, keep-alive without a request limit.
pub fn nginx_conf(dir: &Path, body: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         user root;\n\
         worker_processes 1;\n\
         worker_rlimit_nofile 65536;\n\
         pid {d}/nginx.pid;\n\
         error_log stderr warn;\n\
         events {{ worker_connections 16384; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   default_type text/plain;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   client_body_temp_path {d}/body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   server {{\n\
         \x20       listen 0.0.0.0:80 backlog=4096;\n\
         \x20       location / {{ return 200 \"{body}\\n\"; }}\n\
         \x20   }}\n\
         }}\n"
    )
}

pub fn haproxy_conf(vip: Ipv4Addr, reals: &[Ipv4Addr]) -> String {
    let mut s = format!(
        "global\n\
         \x20   maxconn 8000\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n\
         frontend fe\n\
         \x20   bind {vip}:80\n\
         \x20   default_backend be\n\
         backend be\n\
         \x20   balance roundrobin\n"
    );
    for (i, r) in reals.iter().enumerate() {
        s += &format!("    server rs{} {r}:80\n", i + 1);
    }
    s
}

pub fn nft_ruleset(vip: Ipv4Addr, reals: &[Ipv4Addr]) -> String {
    let map: Vec<String> = reals
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i} : {r}"))
        .collect();
    format!(
        "table ip lvsbench {{\n\
         \x20   chain prerouting {{\n\
         \x20       type nat hook prerouting priority dstnat; policy accept;\n\
         \x20       ip daddr {vip} tcp dport 80 dnat to numgen inc mod {} map {{ {} }}\n\
         \x20   }}\n\
         }}\n",
        reals.len(),
        map.join(", ")
    )
}

/// `iptables` argument lists: the first n−1 real servers take every
/// (n−i)-th remaining new connection, the last one the rest.
pub fn iptables_rules(vip: Ipv4Addr, reals: &[Ipv4Addr]) -> Vec<Vec<String>> {
    let n = reals.len();
    reals
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut a: Vec<String> = [
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-d",
                &format!("{vip}/32"),
                "-p",
                "tcp",
                "--dport",
                "80",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if i + 1 < n {
                a.extend(
                    [
                        "-m",
                        "statistic",
                        "--mode",
                        "nth",
                        "--every",
                        &(n - i).to_string(),
                        "--packet",
                        "0",
                    ]
                    .iter()
                    .map(|s| s.to_string()),
                );
            }
            a.extend(
                ["-j", "DNAT", "--to-destination", &format!("{r}:80")]
                    .iter()
                    .map(|s| s.to_string()),
            );
            a
        })
        .collect()
}

fn start_nginx(lab: &Lab, ns: &Netns, addr: Ipv4Addr, body: &str) -> Result<()> {
    let dir = lab.workdir().join(format!("nginx-{}", ns.role()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir, body))?;
    let mut cmd = ns.command("nginx");
    cmd.args(["-e", "stderr", "-p"])
        .arg(&dir)
        .arg("-c")
        .arg(&conf);
    ns.spawn_cmd("nginx", cmd)?;
    clients::wait_tcp(ns, SocketAddr::new(addr.into(), 80), STARTUP)
}

/// Client-side settings every peer shares: a wide port range, so that
/// `Connection: close` runs do not run out of ports.
fn tune_client(ns: &Netns) -> Result<()> {
    ns.sysctl("net.ipv4.ip_local_port_range", "1024 65000")?;
    ns.sysctl("net.ipv4.tcp_tw_reuse", "1")
}

/// One way of reaching the service.
struct Target {
    peer: Peer,
    client: Netns,
    url: String,
    /// Where the director's maps are (lvs-xdp peers).
    pin: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Runs {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    kernel_us: Vec<f64>,
    busy_us: Vec<f64>,
    failures: u64,
    requests: u64,
}

fn seed_lab(tag: &str) -> Result<SeedLab> {
    let s = SeedLab::with_config(tag, SeedConfig::default())?;
    for (i, rs) in s.rs.iter().enumerate() {
        start_nginx(&s.lab, rs, seed::rs_ip(i), &format!("hao{}", i + 2))?;
    }
    s.director.sysctl("net.ipv4.ip_forward", "1")?;
    tune_client(&s.client)?;
    Ok(s)
}

fn seed_reals() -> Vec<Ipv4Addr> {
    vec![seed::rs_ip(0), seed::rs_ip(1)]
}

fn vip_url() -> String {
    format!("http://{}/", seed::VIP)
}

/// The shared-LAN DR lab: client, director and both real servers on one
/// bridge; the real servers hold the VIP on lo and do not answer ARP for it.
/// The director starts only when the DR peer is set up, so the direct
/// reference (client → rs1 on the same bridge) does not depend on it.
struct DrLab {
    client: Netns,
    director: Netns,
    switch: Netns,
    pin: std::path::PathBuf,
    // Last: removes the namespaces.
    lab: Lab,
}

const DR_DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 47, 2);
const DR_REALS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(192, 168, 47, 129),
    Ipv4Addr::new(192, 168, 47, 130),
];

fn dr_lab() -> Result<DrLab> {
    let lab = Lab::new("bdr")?;
    let client = lab.ns("client")?;
    let director = lab.ns("director")?;
    let switch = lab.ns("switch")?;
    switch.bridge("br0")?;
    lab.bridge_port(&switch, "br0", "p-cl", &client, "eth0")?;
    lab.bridge_port(&switch, "br0", "p-dir", &director, "eth0")?;
    client.addr("eth0", &format!("{}/24", seed::CLIENT_IP))?;
    director.addr("eth0", &format!("{DR_DIP}/24"))?;
    director.addr("eth0", &format!("{}/24", seed::VIP))?;
    director.sysctl("net.ipv4.ip_forward", "1")?;
    tune_client(&client)?;
    for (i, ip) in DR_REALS.iter().enumerate() {
        let rs = lab.ns(&format!("rs{}", i + 1))?;
        lab.bridge_port(&switch, "br0", &format!("p-rs{}", i + 1), &rs, "eth0")?;
        rs.addr("eth0", &format!("{ip}/24"))?;
        rs.addr("lo", &format!("{}/32", seed::VIP))?;
        for k in ["all", "eth0"] {
            rs.sysctl(&format!("net.ipv4.conf.{k}.arp_ignore"), "1")?;
            rs.sysctl(&format!("net.ipv4.conf.{k}.arp_announce"), "2")?;
        }
        start_nginx(&lab, &rs, *ip, &format!("hao{}", i + 2))?;
    }
    let pin = lab.pin_dir()?;
    Ok(DrLab {
        client,
        director,
        switch,
        pin,
        lab,
    })
}

/// `lvs pass` on the director's switch port, `lvs load` on the director,
/// and the DR service.
fn start_dr_director(d: &DrLab, opts: &Opts, sec: &mut Section) -> Result<()> {
    let _ = &d.lab;
    let lvs = opts.lvs();
    seed::start_pass(&d.switch, &lvs, &["p-dir"])?.wait_for_line(seed::PASS_READY, STARTUP)?;
    let mut cmd = d.director.command(&lvs);
    cmd.args(["load", "--iface", "eth0", "--pin-path"])
        .arg(&d.pin);
    d.director
        .spawn_cmd("lvs-load", cmd)?
        .wait_for_line(seed::DIRECTOR_READY, STARTUP)?;
    // DR through lvsadm when it takes -g, else through the table store.
    let vip = format!("{}:80", seed::VIP);
    let adm = |args: &[&str]| -> Result<String> {
        let mut cmd = d.director.command(opts.lvsadm());
        cmd.env("LVS_PIN_PATH", &d.pin).args(args);
        lvs_lab::check_output(&mut cmd, lvs_lab::RUN_TIMEOUT)
    };
    adm(&["-A", "-t", &vip, "-s", "rr"])?;
    let mut refused = None;
    for ip in DR_REALS {
        if let Err(e) = adm(&["-a", "-t", &vip, "-r", &format!("{ip}:80"), "-g", "-w", "1"]) {
            refused = Some(e);
            break;
        }
    }
    if let Some(e) = refused {
        let mut t = Tables::open(&d.pin)?;
        let mut snap = t.snapshot()?;
        let mut svc = VirtualService::new(
            ServiceAddr {
                proto: Proto::Tcp,
                addr: seed::VIP.into(),
                port: 80,
            },
            Scheduler::Rr,
        );
        for ip in DR_REALS {
            svc.reals
                .push(RealServer::new(ip.into(), 80, Method::Route, 1));
        }
        snap.services = vec![svc];
        t.commit(&snap)?;
        sec.note(format!(
            "DR was configured through `lvs::tables::Tables` because `lvsadm -a … -g` refused: \
             {}",
            short_error(&format!("{e:#}"))
        ));
    }
    Ok(())
}

fn run_wrk(t: &Target, mode: Mode, secs: u32) -> Result<(WrkResult, f64, f64)> {
    let args = wrk_args(&t.url, mode, secs, 32, 2);
    let mut cmd = t.client.command("wrk");
    cmd.args(&args);
    let before = read_proc_stat().ok_or_else(|| anyhow!("cannot read /proc/stat"))?;
    let out = lvs_lab::check_output(&mut cmd, Duration::from_secs(secs as u64 + 20))
        .with_context(|| format!("wrk against {}", t.peer.name()))?;
    let after = read_proc_stat().ok_or_else(|| anyhow!("cannot read /proc/stat"))?;
    let r = wrk::parse(&out)?;
    let d = after.since(&before);
    let per_req = |ticks: u64| {
        if r.requests == 0 {
            f64::NAN
        } else {
            ticks as f64 / clk_tck() as f64 * 1e6 / r.requests as f64
        }
    };
    Ok((r.clone(), per_req(d.kernel()), per_req(d.busy())))
}

/// A few plain requests: the path answers, and both real servers do.
fn check_target(t: &Target) -> Result<()> {
    let addr: SocketAddr = t
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 80))?;
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let b = clients::http_get(&t.client, addr, Duration::from_secs(3))
            .with_context(|| format!("GET {} through {}", t.url, t.peer.name()))?;
        bodies.push(b.trim().to_owned());
    }
    bodies.sort();
    bodies.dedup();
    if t.peer != Peer::Direct && bodies.len() < 2 {
        bail!(
            "{}: every answer came from {:?}; not balanced",
            t.peer.name(),
            bodies
        );
    }
    Ok(())
}

pub fn run(opts: &Opts, progress: &Progress, sec: &mut Section) -> Result<()> {
    for tool in ["wrk", "nginx"] {
        if !lvs_lab::on_path(tool) {
            bail!("{tool} is not installed (apt-get install {tool})");
        }
    }
    let secs: u32 = opts.pick(2, 5);
    let rounds: usize = opts.pick(1, 3);
    sec.intro = format!(
        "`wrk -t2 -c32 -d{secs}s --latency` from a client namespace to the VIP, balanced \
         round-robin over two nginx real servers (one worker each, 200 with a 5-byte body); \
         keep-alive requests per second, then connections per second with `Connection: close` \
         (one request per connection). Each balancer has its own lab (the seed's NAT topology: \
         client ─ director ─ switch ─ real servers), so none runs with another's XDP programs \
         or netfilter rules; DR uses a shared LAN (client, director and real servers on one \
         bridge, the VIP on the real servers' lo with arp_ignore=1/arp_announce=2). Peers are \
         interleaved over {rounds} round(s); medians. CPU per request is the machine-wide \
         /proc/stat delta during the run (client, balancer and servers together) divided by \
         the requests: \"kernel\" is system + irq + softirq time, \"all\" adds user time; \
         anything else running on the machine at the time is counted too."
    );
    // Labs first; a peer that cannot be set up is reported, not fatal.
    let mut seeds: Vec<SeedLab> = Vec::new();
    let mut dr: Option<DrLab> = None;
    let mut targets: Vec<Target> = Vec::new();
    let mut unavailable: Vec<(Peer, String)> = Vec::new();
    for peer in Peer::ALL {
        lvs_lab::interrupt::check()?;
        progress.step(&format!("setting up: {}", peer.name()));
        if let Some(tool) = peer.tool() {
            if !lvs_lab::on_path(tool) {
                unavailable.push((peer, format!("{tool} not installed")));
                continue;
            }
        }
        let made = setup_peer(peer, opts, sec, &mut seeds, &mut dr);
        match made.and_then(|t| check_target(&t).map(|_| t)) {
            Ok(t) => targets.push(t),
            Err(e) => unavailable.push((peer, short_error(&format!("{e:#}")))),
        }
    }
    if targets.is_empty() {
        bail!("no peer could be set up");
    }
    let counters_before: Vec<Option<[u64; counters::COUNT as usize]>> = targets
        .iter()
        .map(|t| t.pin.as_ref().and_then(|p| read_counters(p).ok()))
        .collect();
    let mut results: Vec<[Runs; 2]> = targets.iter().map(|_| Default::default()).collect();
    let total = rounds * 2 * targets.len();
    let mut done = 0;
    // An interrupt stops the rounds; what was measured is still reported.
    let mut stopped: Option<anyhow::Error> = None;
    'rounds: for round in 0..rounds {
        for (m, mode) in [Mode::KeepAlive, Mode::Close].into_iter().enumerate() {
            // Rotate the order each round, so no peer always runs first.
            for k in 0..targets.len() {
                let i = (k + round) % targets.len();
                let t = &targets[i];
                if let Err(e) = lvs_lab::interrupt::check() {
                    stopped = Some(e);
                    break 'rounds;
                }
                done += 1;
                progress.step(&format!(
                    "wrk {done}/{total}: {} ({})",
                    t.peer.name(),
                    if mode == Mode::Close {
                        "Connection: close"
                    } else {
                        "keep-alive"
                    }
                ));
                let r = &mut results[i][m];
                match run_wrk(t, mode, secs) {
                    Ok((w, k_us, b_us)) => {
                        r.rps.push(w.requests_per_sec);
                        r.p50.extend(w.p50_us);
                        r.p99.extend(w.p99_us);
                        r.kernel_us.push(k_us);
                        r.busy_us.push(b_us);
                        r.failures += w.failures();
                        r.requests += w.requests;
                    }
                    Err(e) if lvs_lab::interrupt::requested() => {
                        stopped = Some(e);
                        break 'rounds;
                    }
                    Err(e) => {
                        sec.note(format!(
                            "{} ({mode:?}): {}",
                            t.peer.name(),
                            short_error(&format!("{e:#}"))
                        ));
                    }
                }
            }
        }
    }
    let med = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    for (m, (mode, unit)) in [
        (Mode::KeepAlive, "requests/s"),
        (Mode::Close, "connections/s"),
    ]
    .into_iter()
    .enumerate()
    {
        let base = targets
            .iter()
            .position(|t| t.peer == Peer::Direct)
            .map(|i| med(&results[i][m].rps))
            .unwrap_or(f64::NAN);
        let mut t = Table::new(&[
            "path",
            unit,
            "× direct",
            "p50 latency",
            "p99 latency",
            "kernel CPU / request",
            "all CPU / request",
            "errors / requests",
        ])
        .caption(match mode {
            Mode::KeepAlive => "**Keep-alive** (requests per second)",
            Mode::Close => "**`Connection: close`** (a new connection per request)",
        });
        for (i, tg) in targets.iter().enumerate() {
            let r = &results[i][m];
            let rps = med(&r.rps);
            t.row([
                tg.peer.name().to_owned(),
                fmt_rate(rps),
                fmt_ratio_of(rps, base),
                fmt_us(med(&r.p50)),
                fmt_us(med(&r.p99)),
                fmt_us(med(&r.kernel_us)),
                fmt_us(med(&r.busy_us)),
                format!(
                    "{} / {}",
                    group(r.failures as i64),
                    group(r.requests as i64)
                ),
            ]);
        }
        for (peer, why) in &unavailable {
            t.row([
                peer.name().to_owned(),
                "not run".to_owned(),
                "–".to_owned(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                why.clone(),
            ]);
        }
        sec.tables.push(t.align(7, Align::Left));
    }
    for (t, before) in targets.iter().zip(&counters_before) {
        if let (Some(pin), Some(b)) = (&t.pin, before) {
            if let Ok(a) = read_counters(pin) {
                let d = |i: u32| a[i as usize] - b[i as usize];
                sec.note(format!(
                    "{}: the data path counted {} new connections, {} NAT forwards, {} NAT \
                     replies, {} DR forwards and {} packets passed to the kernel during the runs.",
                    t.peer.name(),
                    group(d(counters::NEW_CONN) as i64),
                    group(d(counters::NAT_FWD) as i64),
                    group(d(counters::NAT_REPLY) as i64),
                    group(d(counters::DR_FWD) as i64),
                    group(d(counters::PASS) as i64),
                ));
            }
        }
    }
    sec.note(
        "The lvs-xdp paths run as documented for veth links: `lvs pass` (an XDP_PASS program) on \
         the director's veth peers, without which frames sent by XDP_TX or redirect are not \
         delivered promptly. So every frame the director sends, forwarded by XDP or by its \
         kernel, also goes through veth's XDP path on the receiving end, a cost the kernel \
         balancers' labs do not pay.",
    );
    sec.note(
        "Everything shares this machine's cores: wrk, the balancer and both nginx workers. The \
         figures compare CPU cost per request more than capacity; the direct reference has one \
         nginx worker where the balanced paths have two.",
    );
    drop(targets);
    drop(dr);
    drop(seeds);
    match stopped {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn setup_peer(
    peer: Peer,
    opts: &Opts,
    sec: &mut Section,
    seeds: &mut Vec<SeedLab>,
    dr: &mut Option<DrLab>,
) -> Result<Target> {
    let reals = seed_reals();
    let vip = seed::VIP;
    match peer {
        Peer::Direct | Peer::LvsDr => {
            if dr.is_none() {
                *dr = Some(dr_lab()?);
            }
            let d = dr.as_ref().unwrap();
            if peer == Peer::LvsDr {
                start_dr_director(d, opts, sec)?;
            }
            Ok(if peer == Peer::Direct {
                Target {
                    peer,
                    client: d.client.clone(),
                    url: format!("http://{}/", DR_REALS[0]),
                    pin: None,
                }
            } else {
                Target {
                    peer,
                    client: d.client.clone(),
                    url: vip_url(),
                    pin: Some(d.pin.clone()),
                }
            })
        }
        Peer::LvsNat => {
            let s = seed_lab("bnat")?;
            s.start_pass(&opts.lvs())?;
            s.start_director(&opts.lvs(), &[])?;
            let adm = |args: &[&str]| s.lvsadm(&opts.lvsadm(), args);
            let v = format!("{vip}:80");
            adm(&["-A", "-t", &v, "-s", "rr"])?;
            for r in &reals {
                adm(&["-a", "-t", &v, "-r", &format!("{r}:80"), "-m", "-w", "1"])?;
            }
            let t = Target {
                peer,
                client: s.client.clone(),
                url: vip_url(),
                pin: Some(s.pin_dir().to_owned()),
            };
            seeds.push(s);
            Ok(t)
        }
        Peer::Iptables => {
            let s = seed_lab("bipt")?;
            for rule in iptables_rules(vip, &reals) {
                let mut argv = vec!["iptables"];
                argv.extend(rule.iter().map(String::as_str));
                s.director.run(&argv)?;
            }
            let t = Target {
                peer,
                client: s.client.clone(),
                url: vip_url(),
                pin: None,
            };
            seeds.push(s);
            Ok(t)
        }
        Peer::Nftables => {
            let s = seed_lab("bnft")?;
            let f = s.lab.workdir().join("lb.nft");
            std::fs::write(&f, nft_ruleset(vip, &reals))?;
            s.director.run(&["nft", "-f", &f.to_string_lossy()])?;
            let t = Target {
                peer,
                client: s.client.clone(),
                url: vip_url(),
                pin: None,
            };
            seeds.push(s);
            Ok(t)
        }
        Peer::Haproxy => {
            let s = seed_lab("bhap")?;
            let f = s.lab.workdir().join("haproxy.cfg");
            std::fs::write(&f, haproxy_conf(vip, &reals))?;
            let mut cmd = s.director.command("haproxy");
            cmd.args(["-db", "-f"]).arg(&f);
            s.director.spawn_cmd("haproxy", cmd)?;
            clients::wait_tcp(&s.client, SocketAddr::new(vip.into(), 80), STARTUP)?;
            let t = Target {
                peer,
                client: s.client.clone(),
                url: vip_url(),
                pin: None,
            };
            seeds.push(s);
            Ok(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_command_lines() {
        assert_eq!(
            wrk_args("http://1.2.3.4/", Mode::KeepAlive, 5, 32, 2).join(" "),
            "-t2 -c32 -d5s --timeout 2s --latency http://1.2.3.4/"
        );
        let close = wrk_args("http://1.2.3.4/", Mode::Close, 2, 8, 1);
        assert_eq!(&close[6..], ["-H", "Connection: close", "http://1.2.3.4/"]);
    }

    #[test]
    fn configs() {
        let reals = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let vip = Ipv4Addr::new(192, 168, 47, 128);
        let n = nginx_conf(Path::new("/tmp/x"), "hao2");
        assert!(n.contains("pid /tmp/x/nginx.pid;"));
        assert!(n.contains("return 200 \"hao2\\n\";"));
        assert_eq!(n.matches('{').count(), n.matches('}').count());
        let h = haproxy_conf(vip, &reals);
        assert!(h.contains("bind 192.168.47.128:80"));
        assert!(h.contains("server rs2 10.0.0.2:80"));
        let f = nft_ruleset(vip, &reals);
        assert!(f.contains("numgen inc mod 2 map { 0 : 10.0.0.1, 1 : 10.0.0.2 }"));
        assert_eq!(f.matches('{').count(), f.matches('}').count());
        let r = iptables_rules(vip, &reals);
        assert_eq!(
            r[0].join(" "),
            "-t nat -A PREROUTING -d 192.168.47.128/32 -p tcp --dport 80 -m statistic \
             --mode nth --every 2 --packet 0 -j DNAT --to-destination 10.0.0.1:80"
        );
        assert_eq!(
            r[1].join(" "),
            "-t nat -A PREROUTING -d 192.168.47.128/32 -p tcp --dport 80 -j DNAT \
             --to-destination 10.0.0.2:80"
        );
    }
}
