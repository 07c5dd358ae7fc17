//! `lvs load --metrics`: the page a real Prometheus scrapes (its query API
//! answers the traffic the test sent, `promtool check metrics` is clean),
//! node_exporter's backend line for the seed's lab, and a metrics port
//! held by slow scrapers while the sweeper and the neighbour upkeep keep
//! their period.

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use lvs_lab::{
    clients::{TcpConn, UdpClient},
    require_root,
    seed::{rs_ip, SeedConfig, SeedLab, VIP},
    servers, Netns, Proc,
};

use crate::common::{udp_answer_service, wait_until, LVS, LVSADM, T};

/// The seed's lab with the director running (as `common::Director`, with
/// a monitoring namespace linked to the director before it starts).
struct Director {
    // Processes first: they stop before the lab removes the namespaces.
    _procs: Vec<Proc>,
    seed: SeedLab,
}

impl Director {
    fn adm(&self, args: &[&str]) -> String {
        self.seed
            .lvsadm(Path::new(LVSADM), args)
            .unwrap_or_else(|e| panic!("lvsadm {args:?}: {e:#}"))
    }
}

/// The monitoring link's addresses: the director's end and the
/// Prometheus namespace's (a link of its own, without XDP, so scrapes are
/// no director traffic).
const MON_DIR: &str = "10.249.0.1";
const MON_PROM: &str = "10.249.0.2";

/// The seed's lab with a `prom` namespace linked to the director and
/// `lvs load --metrics ADDR:PORT extra…` running.
fn lab(tag: &str, metrics: &str, extra: &[&str]) -> (Director, Netns) {
    let seed = SeedLab::with_config(tag, SeedConfig::default()).unwrap();
    seed.director.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let prom = seed.lab.ns("prom").unwrap();
    seed.lab
        .veth(&seed.director, "mon0", &prom, "eth0")
        .unwrap();
    seed.director
        .addr("mon0", &format!("{MON_DIR}/24"))
        .unwrap();
    prom.addr("eth0", &format!("{MON_PROM}/24")).unwrap();
    let mut procs = seed.start_pass(Path::new(LVS)).unwrap();
    let mut args = vec!["--metrics", metrics];
    args.extend_from_slice(extra);
    procs.push(seed.start_director(Path::new(LVS), &args).unwrap());
    (
        Director {
            _procs: procs,
            seed,
        },
        prom,
    )
}

/// `curl` in `ns`: the body, or the error with curl's message.
fn curl(ns: &Netns, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = ns.command("curl");
    cmd.args(["-sS", "--fail", "--max-time", "5"]).args(args);
    lvs_lab::check_output(&mut cmd, Duration::from_secs(10))
}

/// The value of an instant query with exactly one result (`None` while
/// it has none).
fn query(prom: &Netns, api: &str, q: &str) -> Option<f64> {
    let body = curl(
        prom,
        &[
            "-G",
            "--data-urlencode",
            &format!("query={q}"),
            &format!("http://{api}/api/v1/query"),
        ],
    )
    .ok()?;
    assert!(body.contains("\"status\":\"success\""), "{q}: {body}");
    let at = body.find("\"value\":[")?;
    let rest = &body[at..];
    assert_eq!(rest.matches("\"value\":[").count(), 1, "{q}: {body}");
    let v = rest.split('"').nth(3)?;
    v.parse().ok()
}

/// Prometheus in `ns`, scraping `target` every second, its storage in the
/// lab's work directory, its API on `listen`.
fn prometheus(d: &Director, ns: &Netns, target: &str, listen: &str) -> Proc {
    let dir = d.seed.lab.workdir().join("prometheus");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: lvs\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let p = ns
        .spawn(
            "prometheus",
            &[
                "prometheus",
                &format!("--config.file={}", cfg.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address={listen}"),
            ],
        )
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || curl(
            ns,
            &[&format!("http://{listen}/-/ready")]
        )
        .is_ok()),
        "prometheus never got ready:\n{}",
        p.output()
    );
    p
}

#[test]
fn prometheus_scrapes_the_traffic_the_test_sent() {
    if !require_root("metrics prometheus") {
        return;
    }
    for tool in ["prometheus", "promtool", "curl"] {
        assert!(
            lvs_lab::on_path(tool),
            "{tool} is missing: run `cargo xtask setup`"
        );
    }
    let target = format!("{MON_DIR}:9100");
    let (d, prom) = lab("prom", &target, &[]);
    let _udp = udp_answer_service(&d.seed, 2);
    let svc = format!("{VIP}:53");
    let api = format!("{MON_PROM}:9090");
    let _p = prometheus(&d, &prom, &target, &api);

    // 6 flows (client sockets) × 25 requests of 100 bytes, each answered
    // with "answer": every count of every packet is known.
    let (flows, per_flow, payload) = (6u64, 25u64, "x".repeat(100));
    for _ in 0..flows {
        let c = UdpClient::bind(&d.seed.client, "0.0.0.0:0".parse().unwrap()).unwrap();
        for _ in 0..per_flow {
            let a = c.request(d.seed.vip(53), &payload, T).unwrap();
            assert_eq!(a, "answer");
        }
    }
    let pkts = flows * per_flow;
    let want = [
        ("node_ipvs_connections_total", flows),
        ("node_ipvs_incoming_packets_total", pkts),
        ("node_ipvs_outgoing_packets_total", pkts),
        // IP length: 20 + 8 + payload.
        ("node_ipvs_incoming_bytes_total", pkts * 128),
        ("node_ipvs_outgoing_bytes_total", pkts * 34),
        (
            "sum(lvs_service_incoming_packets_total{proto=\"UDP\",local_port=\"53\"})",
            pkts,
        ),
        ("sum(lvs_real_connections_total)", flows),
        ("sum(lvs_real_outgoing_bytes_total)", pkts * 34),
        ("sum(node_ipvs_backend_connections_inactive)", flows),
        ("sum(node_ipvs_backend_weight)", 2),
        ("lvs_conntrack_connections", flows),
        ("lvs_conntrack_size", 65536),
        ("lvs_stats_total{counter=\"new_conn\"}", flows),
    ];
    for (q, v) in want {
        let mut last = None;
        let ok = wait_until(Duration::from_secs(20), || {
            last = query(&prom, &api, q);
            last == Some(v as f64)
        });
        assert!(ok, "{q}: Prometheus has {last:?}, the test sent {v}");
    }
    // The director agrees (lvsadm's own counters of the service).
    let listing = d.adm(&["-L", "-n", "--stats", "--exact", "-u", &svc]);
    let row: Vec<u64> = listing
        .lines()
        .find(|l| l.starts_with("UDP"))
        .unwrap()
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(row, [flows, pkts, pkts, pkts * 128, pkts * 34], "{listing}");

    // promtool lints a scrape clean.
    let page = curl(&prom, &[&format!("http://{target}/metrics")]).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(page.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn one_open_connection_is_node_exporters_backend_line() {
    if !require_root("metrics backend line") {
        return;
    }
    let (d, _prom) = lab("line", "127.0.0.1:9100", &[]);
    let _srv: Vec<_> = (0..2)
        .map(|i| servers::line(&d.seed.rs[i], "0.0.0.0:80".parse().unwrap(), "hao").unwrap())
        .collect();
    let svc = format!("{VIP}:80");
    d.adm(&["-A", "-t", &svc, "-s", "rr"]);
    for i in 0..2 {
        d.adm(&[
            "-a",
            "-t",
            &svc,
            "-r",
            &format!("{}:80", rs_ip(i)),
            "-m",
            "-w",
            "1",
        ]);
    }
    let scrape = || curl(&d.seed.director, &["http://127.0.0.1:9100/metrics"]).unwrap();
    let line = |rs: &str, n: u64| {
        format!(
            "node_ipvs_backend_connections_active{{local_address=\"192.168.47.128\",local_mark=\"\",\
             local_port=\"80\",proto=\"TCP\",remote_address=\"{rs}\",remote_port=\"80\"}} {n}"
        )
    };
    let has = |page: &str, l: &str| page.lines().any(|x| x == l);
    let idle = scrape();
    assert!(has(&idle, &line("192.168.211.129", 0)), "{idle}");

    let mut c = TcpConn::connect(&d.seed.client, d.seed.vip(80), T).unwrap();
    assert_eq!(c.ask("hello").unwrap(), "hao");
    let mut page = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            page = scrape();
            has(&page, &line("192.168.211.129", 1))
        }),
        "no line `{}` in\n{page}",
        line("192.168.211.129", 1)
    );
    assert!(has(&page, &line("192.168.211.130", 0)), "{page}");
    assert!(page.contains("\nnode_ipvs_connections_total 1\n"), "{page}");
    drop(c);
    // Only GET (and HEAD) of /metrics.
    let status = |args: &[&str]| {
        let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        a.extend_from_slice(args);
        let mut cmd = d.seed.director.command("curl");
        cmd.args(["-sS", "--max-time", "5"]).args(&a);
        lvs_lab::check_output(&mut cmd, Duration::from_secs(10)).unwrap()
    };
    assert_eq!(status(&["http://127.0.0.1:9100/"]), "404");
    assert_eq!(
        status(&["-X", "POST", "http://127.0.0.1:9100/metrics"]),
        "405"
    );
    assert_eq!(status(&["-I", "http://127.0.0.1:9100/metrics"]), "200");

    // SIGTERM ends the daemon, metrics thread and estimator included,
    // promptly and cleanly (SIGKILL after 5 s would show as a signal).
    let load = d._procs.last().unwrap();
    let t0 = Instant::now();
    let st = load.stop_within(Duration::from_secs(5)).unwrap();
    assert!(st.success(), "lvs load: {st}\n{}", load.output());
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
}

/// Whether the peer has closed `s`, looked at without reading from it.
fn closed_by_peer(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// A scraper in `ns` that holds a connection to `addr` open until `until`:
/// with `whole`, a whole request whose answer it never reads; otherwise
/// half a request line and nothing more. When the server lets it go it
/// comes straight back. Returns how many connections it made.
fn slow_scraper(
    ns: &Netns,
    addr: SocketAddr,
    whole: bool,
    until: Instant,
) -> std::thread::JoinHandle<u32> {
    ns.spawn_thread("slow-scraper", move || {
        let mut connects = 0;
        while Instant::now() < until {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            connects += 1;
            let req: &[u8] = if whole {
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            } else {
                b"GET /metr"
            };
            let _ = s.write_all(req);
            while Instant::now() < until && !closed_by_peer(&s) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        connects
    })
    .unwrap()
}

#[test]
fn slow_scrapers_do_not_stall_the_sweeper_or_the_neighbours() {
    if !require_root("metrics slow scrapers") {
        return;
    }
    let (d, prom) = lab("slow", &format!("{MON_DIR}:9100"), &["--timeout", "udp=2"]);
    let target: SocketAddr = format!("{MON_DIR}:9100").parse().unwrap();
    let _udp = servers::udp(&d.seed.rs[0], "0.0.0.0:53".parse().unwrap(), "answer").unwrap();
    let svc = format!("{VIP}:53");
    d.adm(&["-A", "-u", &svc, "-s", "rr"]);
    d.adm(&[
        "-a",
        "-u",
        &svc,
        "-r",
        &format!("{}:53", rs_ip(0)),
        "-m",
        "-w",
        "1",
    ]);
    // Some services and members, so that a page takes some writing.
    for port in 1000..1040 {
        let s = format!("{VIP}:{port}");
        d.adm(&["-A", "-t", &s, "-s", "wlc"]);
        d.adm(&[
            "-a",
            "-t",
            &s,
            "-r",
            &format!("{}:{port}", rs_ip(0)),
            "-m",
            "-w",
            "1",
        ]);
    }

    let scraping = Instant::now();
    let until = scraping + Duration::from_secs(14);
    let scrapers: Vec<_> = (0..10)
        .map(|i| slow_scraper(&prom, target, i % 2 == 1, until))
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // A normal scrape still answers, promptly.
    let t0 = Instant::now();
    let page = curl(&prom, &[&format!("http://{target}/metrics")]).unwrap();
    assert!(page.contains("node_ipvs_connections_total"), "{page}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "scrape took {:?}",
        t0.elapsed()
    );

    // The sweeper: a UDP connection with --timeout udp=2 leaves the table
    // on time (2 s, the 1 s of last-seen slack, the 1 s sweep period).
    let c = UdpClient::bind(&d.seed.client, "0.0.0.0:0".parse().unwrap()).unwrap();
    let client = c.local_addr().unwrap().port();
    assert_eq!(c.request(d.seed.vip(53), "hi", T).unwrap(), "answer");
    let sent = Instant::now();
    let listed = |d: &Director| {
        d.adm(&["-L", "-n", "-c"])
            .lines()
            .any(|l| l.starts_with("UDP") && l.contains(&format!(":{client} ")))
    };
    assert!(listed(&d), "{}", d.adm(&["-L", "-n", "-c"]));
    assert!(
        wait_until(Duration::from_secs(6), || !listed(&d)),
        "the UDP connection was not swept within 6 s: {}",
        d.adm(&["-L", "-n", "-c"])
    );
    let swept = sent.elapsed();
    assert!(swept >= Duration::from_secs(2), "swept after {swept:?}");

    // The neighbour upkeep: a real server added now gets its managed
    // neighbour entry within the 1 s tick (plus resolution).
    let added = Instant::now();
    d.adm(&[
        "-a",
        "-u",
        &svc,
        "-r",
        &format!("{}:53", rs_ip(1)),
        "-m",
        "-w",
        "1",
    ]);
    d.seed
        .director
        .wait_neigh(rs_ip(1).into(), Duration::from_secs(4))
        .unwrap_or_else(|e| panic!("neighbour upkeep stalled: {e:#}"));
    let resolved = added.elapsed();

    // Still answering a normal scrape with the ten held.
    let page = curl(&prom, &[&format!("http://{target}/metrics")]).unwrap();
    assert!(page.contains("lvs_conntrack_size 65536"), "{page}");

    // The server let go of the scrapers that never read (after its 10 s
    // per connection; their pages stay unsent in the kernel, so they see
    // no close) and of the half requests (after 5 s without headers, so
    // those come back): at most the five half requests are established.
    std::thread::sleep(
        (scraping + Duration::from_millis(12_500)).saturating_duration_since(Instant::now()),
    );
    let established = d
        .seed
        .director
        .run(&["ss", "-Htn", "state", "established", "sport", "=", ":9100"])
        .unwrap();
    let held = established.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        held <= 5,
        "{held} connections still established:\n{established}"
    );
    let connects: Vec<u32> = scrapers.into_iter().map(|h| h.join().unwrap()).collect();
    // Every scraper got in; the half requests were let go and came back.
    assert!(connects.iter().all(|&n| n >= 1), "connects: {connects:?}");
    assert!(
        connects.iter().step_by(2).all(|&n| n >= 2),
        "connects per scraper: {connects:?}"
    );
    eprintln!(
        "slow scrapers: swept after {swept:?}, neighbour after {resolved:?}, \
         {held} held at 12.5 s, connects {connects:?}"
    );
}

/// The XDP programs attached to `iface` in `ns`.
fn xdp_progs(ns: &Netns, iface: &str) -> Vec<u32> {
    let iface = iface.to_owned();
    ns.enter(move || lvs::life::links::xdp_prog_ids(lvs::life::links::ifindex(&iface)?))
        .unwrap()
        .unwrap()
}

/// `lvs load … --metrics 192.0.2.7:9100` (an address the director does
/// not have): must fail; its stderr.
fn load_with_bad_metrics(seed: &SeedLab) -> String {
    let out = lvs_lab::run_timeout(
        seed.director
            .command(LVS)
            .args(["load", "--iface", "ens33", "--iface", "ens37"])
            .args(["--metrics", "192.0.2.7:9100", "--pin-path"])
            .arg(seed.pin_dir()),
        Duration::from_secs(20),
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--metrics: cannot listen on 192.0.2.7:9100"),
        "{err}"
    );
    err
}

#[test]
fn a_bad_metrics_address_stops_the_start_and_changes_nothing() {
    if !require_root("metrics bad address") {
        return;
    }
    let seed = SeedLab::with_config("badm", SeedConfig::default()).unwrap();
    // A fresh director: nothing published, nothing left attached.
    load_with_bad_metrics(&seed);
    assert!(!seed.pin_dir().join("SERVICES").exists());
    for i in ["ens33", "ens37"] {
        assert_eq!(xdp_progs(&seed.director, i), [], "{i}");
    }
    // Adopting a stopped daemon's director: it keeps its program and its
    // table.
    let p = seed.start_director(Path::new(LVS), &[]).unwrap();
    let svc = format!("{VIP}:80");
    seed.lvsadm(Path::new(LVSADM), &["-A", "-t", &svc, "-s", "rr"])
        .unwrap();
    p.stop().unwrap();
    let before = xdp_progs(&seed.director, "ens37");
    assert_eq!(before.len(), 1, "{before:?}");
    load_with_bad_metrics(&seed);
    assert_eq!(xdp_progs(&seed.director, "ens37"), before);
    let listing = seed.lvsadm(Path::new(LVSADM), &["-L", "-n"]).unwrap();
    assert!(listing.contains("TCP  192.168.47.128:80 rr"), "{listing}");
    lvs_lab::run_timeout(
        seed.director
            .command(LVS)
            .args(["unload", "--pin-path"])
            .arg(seed.pin_dir()),
        Duration::from_secs(20),
    )
    .unwrap();
}
