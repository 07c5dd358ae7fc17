//! The health checker end to end: the seed's lab described as a
//! keepalived.conf, `lvs load --config` (or `lvs check --config` beside a
//! director) checking real servers that the tests make fail and recover,
//! the tables read back with `lvsadm -L -n`, traffic through the VIP.
//!
//! Timings are short (delay_loop 1 s, connect_timeout 1 s, retry 1,
//! delay_before_retry 1 s), so the bound the issue gives — delay_loop +
//! (retry + 1) × connect_timeout + retry × delay_before_retry + 1 s — is
//! 5 s.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::common::{counter_in, lan_director, LVS, LVSADM, T};

/// Where the health tests' directors serve `/metrics` (in their own
/// namespace: every test's director has a loopback of its own).
const METRICS: &str = "127.0.0.1:9914";
use lvs_lab::{
    clients::{self, HttpConn},
    lan::{self, LanConfig},
    require_root,
    seed::{rs_ip, SeedConfig, SeedLab},
    servers, Proc,
};

/// The issue's bound for the timings above.
const BOUND: Duration = Duration::from_secs(5);
/// How long a request to a removed server is waited for, to see that it
/// is not answered.
const NO_ANSWER: Duration = Duration::from_secs(2);
/// Enough for TCP's retransmissions (backing off from 200 ms: 0.2, 0.4, …
/// 6.4 s apart) to reach a server that was out for up to BOUND + NO_ANSWER.
const RETRANSMITTED: Duration = Duration::from_secs(20);
const VS: &str = "192.168.47.128:80";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Polls `f` every 100 ms for up to `limit`; how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP_GET checker block on `/health` with the short timings.
fn http_get() -> &'static str {
    "HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }"
}

/// `real_server IP PORT { weight W; extra; checker }`.
fn real(ip: impl std::fmt::Display, port: u16, extra: &str, checker: &str) -> String {
    format!(
        "    real_server {ip} {port} {{
        weight 1
        {extra}
        {checker}
    }}
"
    )
}

/// The seed's lab as a keepalived.conf: `virtual_server 192.168.47.128 80`,
/// rr, NAT, with `vs_extra` and the real servers given.
fn seed_conf(vs_extra: &str, reals: &[String]) -> String {
    format!(
        "virtual_server 192.168.47.128 80 {{
    delay_loop 1
    lvs_sched rr
    lvs_method NAT
    protocol TCP
    {vs_extra}
{}}}
",
        reals.concat()
    )
}

/// The seed's lab with `lvs load --config FILE`.
struct Checked {
    procs: Vec<Proc>,
    seed: SeedLab,
    conf: PathBuf,
}

/// The seed's lab with `real_servers` real servers, no director yet.
fn lab(tag: &str, real_servers: usize) -> SeedLab {
    SeedLab::with_config(
        tag,
        SeedConfig {
            real_servers,
            ..Default::default()
        },
    )
    .unwrap()
}

impl Checked {
    fn start(seed: SeedLab, conf: &str) -> Checked {
        Checked::start_with(seed, conf, &[])
    }

    /// [`Checked::start`] with more `lvs load` options.
    fn start_with(seed: SeedLab, conf: &str, extra: &[&str]) -> Checked {
        seed.director.sysctl("net.ipv4.ip_forward", "1").unwrap();
        let path = seed.lab.workdir().join("keepalived.conf");
        std::fs::write(&path, conf).unwrap();
        let mut procs = seed.start_pass(Path::new(LVS)).unwrap();
        let mut args = vec!["--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        procs.push(seed.start_director(Path::new(LVS), &args).unwrap());
        Checked {
            procs,
            seed,
            conf: path,
        }
    }

    fn adm(&self, args: &[&str]) -> String {
        self.seed
            .lvsadm(Path::new(LVSADM), args)
            .unwrap_or_else(|e| panic!("lvsadm {args:?}: {e:#}"))
    }

    /// The `/metrics` page of a director started with `--metrics METRICS`.
    fn metrics(&self) -> String {
        let mut cmd = self.seed.director.command("curl");
        cmd.args(["-sS", "--fail", "--max-time", "5"])
            .arg(format!("http://{METRICS}/metrics"));
        lvs_lab::check_output(&mut cmd, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("scraping {METRICS}: {e:#}"))
    }

    /// `lvs_real_health_up` of real server `i` of the seed's service.
    fn health_gauge(&self, i: usize) -> Option<u8> {
        let want = format!(
            "lvs_real_health_up{{local_address=\"192.168.47.128\",local_port=\"80\",proto=\"TCP\",remote_address=\"{}\",remote_port=\"80\"}} ",
            rs_ip(i)
        );
        let page = self.metrics();
        let line = page.lines().find(|l| l.starts_with(&want))?;
        line[want.len()..].trim().parse().ok()
    }

    fn listing(&self) -> String {
        self.adm(&["-L", "-n"])
    }

    fn nodest_drops(&self) -> u64 {
        counter_in(&self.seed.director, self.seed.pin_dir(), "nodest_drop")
    }

    fn director_log(&self) -> String {
        self.procs.last().unwrap().output()
    }

    fn get(&self) -> String {
        clients::http_get(&self.seed.client, self.seed.vip(80), T).unwrap()
    }

    /// Keep-alive connections through the VIP until one reaches `who`.
    fn conn_to(&self, who: &str) -> HttpConn {
        for _ in 0..8 {
            let mut c = HttpConn::connect(&self.seed.client, self.seed.vip(80), T).unwrap();
            if c.get("/").unwrap() == who {
                return c;
            }
        }
        panic!("no connection reached {who}");
    }
}

/// `real_server`'s line in `lvsadm -L -n`: `  -> IP:PORT  Masq  W …`.
fn line_of<'a>(listing: &'a str, rip: &str) -> Option<&'a str> {
    listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {rip} ")))
}

fn weight_of(listing: &str, rip: &str) -> Option<u32> {
    line_of(listing, rip).map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
}

/// HTTP servers answering `rs1\n`, `rs2\n`, … on port 80, each with a
/// `/health` whose status the returned handles set.
fn health_web(seed: &SeedLab) -> (Vec<servers::Server>, Vec<Arc<AtomicU16>>) {
    health_web_on(seed, "0.0.0.0:80")
}

/// [`health_web`] listening on `addr` (e.g. `[::]:80`).
fn health_web_on(seed: &SeedLab, addr: &str) -> (Vec<servers::Server>, Vec<Arc<AtomicU16>>) {
    seed.rs
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let st = Arc::new(AtomicU16::new(200));
            let s = servers::http_health(
                ns,
                sa(addr),
                &format!("rs{}\n", i + 1),
                "/health",
                st.clone(),
            )
            .unwrap();
            (s, st)
        })
        .unzip()
}

/// rs1 and rs2 on port 80, each checked by [`http_get`], rs1 with
/// `first_extra` (e.g. `inhibit_on_failure`).
fn two_reals(first_extra: &str) -> [String; 2] {
    [
        real(rs_ip(0), 80, first_extra, http_get()),
        real(rs_ip(1), 80, "", http_get()),
    ]
}

fn rip(i: usize) -> String {
    format!("{}:80", rs_ip(i))
}

#[test]
fn http_get_removes_a_failing_server_and_brings_it_back() {
    if !require_root("health http_get") {
        return;
    }
    let seed = lab("hcget", 2);
    let (down, up) = (
        seed.lab.workdir().join("rs1-down"),
        seed.lab.workdir().join("rs1-up"),
    );
    let notify = format!(
        "notify_down \"/bin/touch {}\"\n        notify_up \"/bin/touch {}\"",
        down.display(),
        up.display()
    );
    let conf = seed_conf(
        "",
        &[
            real(rs_ip(0), 80, &notify, http_get()),
            real(rs_ip(1), 80, "", http_get()),
        ],
    );
    let (_web, health) = health_web(&seed);
    let d = Checked::start_with(seed, &conf, &["--metrics", METRICS]);
    // Applied before the director said it was ready.
    let l = d.listing();
    assert_eq!(d.health_gauge(0), Some(1), "{}", d.metrics());
    assert_eq!(weight_of(&l, &rip(0)), Some(1), "{l}");
    assert_eq!(weight_of(&l, &rip(1)), Some(1), "{l}");
    let mut old = d.conn_to("rs1\n");

    health[0].store(500, Ordering::SeqCst);
    let took = within(BOUND + Duration::from_secs(2), || {
        line_of(&d.listing(), &rip(0)).is_none()
    })
    .unwrap_or_else(|| panic!("rs1 still listed: {}", d.listing()));
    assert!(took <= BOUND, "rs1 removed after {took:?}, bound {BOUND:?}");
    // The default listing is ipvsadm's; the health view has its own flag.
    let l = d.listing();
    assert!(!l.contains("Health"), "{l}");
    assert!(l.contains(&format!("TCP  {VS} rr")), "{l}");
    let h = d.adm(&["-L", "-n", "--health"]);
    assert!(h.starts_with(&l), "--health starts with the listing: {h}");
    let row = h
        .lines()
        .skip(l.lines().count())
        .find(|r| r.contains(&format!("-> {}", rip(0))))
        .unwrap_or_else(|| panic!("{h}"));
    assert!(row.contains(" down "), "{row}");
    assert!(row.contains("status 500"), "{row}");
    assert!(d.director_log().contains(&format!(
        "Removing service [{}]:tcp:80 from VS [192.168.47.128]:tcp:80",
        rs_ip(0)
    )));

    // And in /metrics, beside node_exporter's names.
    assert_eq!(d.health_gauge(0), Some(0), "{}", d.metrics());
    assert_eq!(d.health_gauge(1), Some(1), "{}", d.metrics());
    within(T, || down.exists()).expect("notify_down ran");
    assert!(!up.exists(), "notify_up has not run");
    // No new connection reaches rs1.
    for _ in 0..6 {
        assert_eq!(d.get(), "rs2\n");
    }
    // The one opened before: as IPVS's (expire_nodest_conn=0), its
    // packets are dropped while rs1 is out — the request gets no answer.
    let drops = d.nodest_drops();
    old.send("/").unwrap();
    let quiet = old.answer(NO_ANSWER);
    assert!(quiet.is_err(), "answered while rs1 is out: {quiet:?}");
    assert!(d.nodest_drops() > drops, "counted nodest_drop");

    health[0].store(200, Ordering::SeqCst);
    within(BOUND, || weight_of(&d.listing(), &rip(0)) == Some(1))
        .unwrap_or_else(|| panic!("rs1 not back: {}", d.listing()));
    let answers: Vec<String> = (0..4).map(|_| d.get()).collect();
    assert!(answers.iter().any(|a| a == "rs1\n"), "{answers:?}");
    within(T, || up.exists()).expect("notify_up ran");
    assert_eq!(d.health_gauge(0), Some(1), "{}", d.metrics());
    // Back in its old slot: TCP's retransmission of the request gets
    // through (within its backoff), and the connection goes on.
    assert_eq!(old.answer(RETRANSMITTED).unwrap(), "rs1\n");
    assert_eq!(old.get("/").unwrap(), "rs1\n");
    assert!(d.director_log().contains(&format!(
        "Adding service [{}]:tcp:80 to VS [192.168.47.128]:tcp:80",
        rs_ip(0)
    )));
}

#[test]
fn expire_nodest_conn_ends_a_removed_servers_connections() {
    if !require_root("health expire_nodest_conn") {
        return;
    }
    let seed = lab("hcexp", 2);
    let conf = seed_conf("", &two_reals(""));
    let (_web, health) = health_web(&seed);
    let d = Checked::start_with(seed, &conf, &["--expire-nodest-conn"]);
    let mut old = d.conn_to("rs1\n");
    let port = old.local_addr().unwrap().port();
    let listed = |d: &Checked| {
        d.adm(&["-L", "-n", "-c"])
            .contains(&format!("192.168.47.1:{port} "))
    };
    assert!(listed(&d));
    health[0].store(500, Ordering::SeqCst);
    within(BOUND + Duration::from_secs(2), || {
        line_of(&d.listing(), &rip(0)).is_none()
    })
    .unwrap_or_else(|| panic!("rs1 still listed: {}", d.listing()));
    assert!(listed(&d), "the connection ends at its next packet");
    // As IPVS's expire_nodest_conn=1: that packet ends the connection and
    // goes on as one without a connection — to the director's stack,
    // which resets it. The client hears at once, not after a timeout.
    let drops = d.nodest_drops();
    old.send("/").unwrap();
    let start = Instant::now();
    let err = old.answer(T).unwrap_err().to_string();
    assert!(err.contains("reset"), "{err}");
    assert!(start.elapsed() < T, "reset after {:?}", start.elapsed());
    assert!(!listed(&d), "{}", d.adm(&["-L", "-n", "-c"]));
    assert_eq!(d.nodest_drops(), drops, "nothing dropped");
    // A new connection goes to the server that is up.
    assert_eq!(d.get(), "rs2\n");
}

#[test]
fn inhibit_on_failure_sets_weight_0_and_keeps_the_connection() {
    if !require_root("health inhibit") {
        return;
    }
    let conf = seed_conf("", &two_reals("inhibit_on_failure"));
    let seed = lab("hcinh", 2);
    let (_web, health) = health_web(&seed);
    let d = Checked::start(seed, &conf);
    // What an operator adds with lvsadm is not the checker's: it stays,
    // in the checked service too.
    d.adm(&["-A", "-t", "192.168.47.128:8080", "-s", "wlc"]);
    d.adm(&[
        "-a",
        "-t",
        "192.168.47.128:8080",
        "-r",
        &format!("{}:8080", rs_ip(1)),
        "-m",
    ]);
    d.adm(&[
        "-a",
        "-t",
        VS,
        "-r",
        &format!("{}:81", rs_ip(1)),
        "-m",
        "-w",
        "0",
    ]);
    let mut old = d.conn_to("rs1\n");
    health[0].store(500, Ordering::SeqCst);
    let took = within(BOUND + Duration::from_secs(2), || {
        weight_of(&d.listing(), &rip(0)) == Some(0)
    })
    .unwrap_or_else(|| panic!("rs1 not at weight 0: {}", d.listing()));
    assert!(took <= BOUND, "{took:?}");
    let l = d.listing();
    assert!(l.contains("TCP  192.168.47.128:8080 wlc"), "{l}");
    assert_eq!(weight_of(&l, &format!("{}:8080", rs_ip(1))), Some(1), "{l}");
    assert_eq!(weight_of(&l, &format!("{}:81", rs_ip(1))), Some(0), "{l}");
    assert!(d.director_log().contains(&format!(
        "Disabling service [{}]:tcp:80 of VS [192.168.47.128]:tcp:80",
        rs_ip(0)
    )));
    let h = d.adm(&["-L", "-n", "--health"]);
    assert!(h.contains(" inhibited "), "{h}");
    for _ in 0..6 {
        assert_eq!(d.get(), "rs2\n");
    }
    assert_eq!(old.get("/").unwrap(), "rs1\n", "established ones continue");
    health[0].store(200, Ordering::SeqCst);
    within(BOUND, || weight_of(&d.listing(), &rip(0)) == Some(1))
        .unwrap_or_else(|| panic!("rs1 not back: {}", d.listing()));
}

#[test]
fn alpha_servers_start_failed() {
    if !require_root("health alpha") {
        return;
    }
    let conf = seed_conf("alpha", &two_reals(""));
    // rs1's health URL fails from the start: with alpha it never enters.
    let seed = lab("hcalpha", 2);
    let (_web, health) = health_web(&seed);
    health[0].store(500, Ordering::SeqCst);
    let d = Checked::start(seed, &conf);
    // Before any check: both start failed.
    let l = d.listing();
    assert!(line_of(&l, &rip(0)).is_none(), "{l}");
    assert!(line_of(&l, &rip(1)).is_none(), "{l}");
    within(BOUND, || weight_of(&d.listing(), &rip(1)) == Some(1))
        .unwrap_or_else(|| panic!("rs2 never added: {}", d.listing()));
    std::thread::sleep(Duration::from_secs(2));
    assert!(line_of(&d.listing(), &rip(0)).is_none(), "{}", d.listing());
    for _ in 0..4 {
        assert_eq!(d.get(), "rs2\n");
    }
}

#[test]
fn the_sorry_server_answers_when_every_server_is_down() {
    if !require_root("health sorry") {
        return;
    }
    let conf = seed_conf(&format!("sorry_server {} 80", rs_ip(2)), &two_reals(""));
    let seed = lab("hcsorry", 3);
    let (_web, health) = health_web(&seed);
    let d = Checked::start(seed, &conf);
    assert!(
        line_of(&d.listing(), &rip(2)).is_none(),
        "not while needless"
    );
    health[0].store(500, Ordering::SeqCst);
    health[1].store(500, Ordering::SeqCst);
    within(BOUND + Duration::from_secs(2), || {
        let l = d.listing();
        line_of(&l, &rip(0)).is_none()
            && line_of(&l, &rip(1)).is_none()
            && weight_of(&l, &rip(2)) == Some(1)
    })
    .unwrap_or_else(|| panic!("no sorry server: {}", d.listing()));
    for _ in 0..3 {
        assert_eq!(d.get(), "rs3\n", "the sorry server answers");
    }
    assert!(d.director_log().contains(&format!(
        "Adding sorry server [{}]:tcp:80 to VS [192.168.47.128]:tcp:80",
        rs_ip(2)
    )));
    health[1].store(200, Ordering::SeqCst);
    within(BOUND, || {
        let l = d.listing();
        line_of(&l, &rip(2)).is_none() && weight_of(&l, &rip(1)) == Some(1)
    })
    .unwrap_or_else(|| panic!("sorry server not removed: {}", d.listing()));
    assert_eq!(d.get(), "rs2\n");
}

#[test]
fn losing_the_quorum_runs_its_script_and_brings_the_sorry_server() {
    if !require_root("health quorum") {
        return;
    }
    let lab_dir = std::env::temp_dir().join(format!("lvs-hcq-{}", std::process::id()));
    std::fs::create_dir_all(&lab_dir).unwrap();
    let (down, up) = (lab_dir.join("down"), lab_dir.join("up"));
    let conf = seed_conf(
        &format!(
            "quorum 2\n    sorry_server {} 80\n    quorum_down \"/bin/touch {}\"\n    quorum_up \"/bin/touch {}\"",
            rs_ip(2),
            down.display(),
            up.display()
        ),
        &two_reals(""),
    );
    let seed = lab("hcquorum", 3);
    let (_web, health) = health_web(&seed);
    let d = Checked::start(seed, &conf);
    health[0].store(500, Ordering::SeqCst);
    // One server of weight 1 left: below quorum 2, the sorry server serves.
    within(BOUND + Duration::from_secs(2), || {
        let l = d.listing();
        weight_of(&l, &rip(2)) == Some(1) && line_of(&l, &rip(1)).is_none()
    })
    .unwrap_or_else(|| panic!("quorum kept: {}", d.listing()));
    within(T, || down.exists()).expect("quorum_down ran");
    assert_eq!(d.get(), "rs3\n");
    assert!(d
        .director_log()
        .contains("Lost quorum 2-0=2 > 1 for VS [192.168.47.128]:tcp:80"));
    health[0].store(200, Ordering::SeqCst);
    within(BOUND, || {
        let l = d.listing();
        line_of(&l, &rip(2)).is_none() && line_of(&l, &rip(0)).is_some()
    })
    .unwrap_or_else(|| panic!("quorum not back: {}", d.listing()));
    within(T, || up.exists()).expect("quorum_up ran");
    let _ = std::fs::remove_dir_all(&lab_dir);
}

#[test]
fn misc_dynamic_sets_the_weight_from_the_exit_code() {
    if !require_root("health misc") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("lvs-hcmisc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let code = dir.join("code");
    std::fs::write(&code, "12").unwrap();
    let script = dir.join("check.sh");
    std::fs::write(&script, format!("exit $(cat {})\n", code.display())).unwrap();
    let misc = format!(
        "MISC_CHECK {{
            misc_path \"/bin/sh {}\"
            misc_timeout 1
            misc_dynamic
        }}",
        script.display()
    );
    let conf = seed_conf(
        "",
        &[
            real(rs_ip(0), 80, "", &misc),
            real(rs_ip(1), 80, "", http_get()),
        ],
    );
    let seed = lab("hcmisc", 2);
    let (_web, _health) = health_web(&seed);
    let d = Checked::start(seed, &conf);
    // Exit 12: up with weight 10.
    within(BOUND, || weight_of(&d.listing(), &rip(0)) == Some(10))
        .unwrap_or_else(|| panic!("weight not 10: {}", d.listing()));
    std::fs::write(&code, "1").unwrap();
    within(BOUND, || line_of(&d.listing(), &rip(0)).is_none())
        .unwrap_or_else(|| panic!("exit 1 did not remove it: {}", d.listing()));
    std::fs::write(&code, "5").unwrap();
    within(BOUND, || weight_of(&d.listing(), &rip(0)) == Some(3))
        .unwrap_or_else(|| panic!("not back with weight 3: {}", d.listing()));
    assert!(d.director_log().contains("Changing weight from"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_applies_the_changed_file_and_keeps_connections_that_stay() {
    if !require_root("health reload") {
        return;
    }
    let conf = seed_conf("", &two_reals(""));
    let seed = lab("hchup", 3);
    let (_web, _health) = health_web(&seed);
    let d = Checked::start(seed, &conf);
    let mut kept = d.conn_to("rs2\n");
    // rs1 goes, rs2 stays, rs3 comes.
    let changed = conf.replace(
        &format!("real_server {} 80", rs_ip(0)),
        &format!("real_server {} 80", rs_ip(2)),
    );
    std::fs::write(&d.conf, &changed).unwrap();
    d.procs.last().unwrap().signal(libc::SIGHUP);
    within(T, || {
        let l = d.listing();
        line_of(&l, &rip(0)).is_none() && line_of(&l, &rip(2)).is_some()
    })
    .unwrap_or_else(|| panic!("not reloaded: {}", d.listing()));
    assert!(
        d.procs.last().unwrap().is_running(),
        "SIGHUP reloads, never ends it"
    );
    assert_eq!(
        kept.get("/").unwrap(),
        "rs2\n",
        "a kept server keeps its connection"
    );
    let answers: Vec<String> = (0..4).map(|_| d.get()).collect();
    assert!(
        answers.iter().all(|a| a == "rs2\n" || a == "rs3\n"),
        "{answers:?}"
    );
    assert!(d
        .director_log()
        .contains(&format!("service [{}]:tcp:80 no longer exist", rs_ip(0))));
    // A broken file is refused whole: nothing changes.
    std::fs::write(&d.conf, "virtual_server 192.168.47.128 80 {\n  lvs_sched\n").unwrap();
    let before = d.listing();
    d.procs.last().unwrap().signal(libc::SIGHUP);
    within(T, || d.director_log().contains("reload refused")).expect("the refusal logged");
    assert_eq!(d.listing(), before);
    assert_eq!(kept.get("/").unwrap(), "rs2\n");
}

/// `TCP_CHECK` on a DR service, run by `lvs check` beside a director that
/// `lvs load` started without a configuration: the real servers are
/// checked at their own addresses (the VIP is on their `lo`, never used).
#[test]
fn tcp_check_on_dr_beside_a_director() {
    if !require_root("health dr tcp_check") {
        return;
    }
    let d = lan_director("hcdr", LanConfig::default(), false, &[]).unwrap();
    let mut web = d.web(80);
    let tcp = "TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }";
    let conf = format!(
        "virtual_server {} 80 {{
    delay_loop 1
    lvs_sched rr
    lvs_method DR
    protocol TCP
{}{}}}
",
        lan::VIP,
        real(lan::rs_ip(0), 80, "", tcp),
        real(lan::rs_ip(1), 80, "", tcp)
    );
    let path = d.lan.lab.workdir().join("keepalived.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = d.lan.director.command(LVS);
    cmd.args(["check", "--config"])
        .arg(&path)
        .arg("--pin-path")
        .arg(d.lan.pin_dir());
    let check = d.lan.director.spawn_cmd("lvs-check", cmd).unwrap();
    check.wait_for_line("lvs: checking", T).unwrap();
    let r1 = format!("{}:80", lan::rs_ip(0));
    let listing = d.adm(&["-L", "-n"]);
    assert_eq!(listing.matches("Route").count(), 2, "{listing}");
    let get = || clients::http_get(&d.lan.client, d.lan.vip(80), T).unwrap();

    // rs1's server process stops: the port refuses.
    web.remove(0);
    let took = within(BOUND + Duration::from_secs(2), || {
        line_of(&d.adm(&["-L", "-n"]), &r1).is_none()
    })
    .unwrap_or_else(|| panic!("rs1 still listed: {}", d.adm(&["-L", "-n"])));
    assert!(took <= BOUND, "{took:?}");
    for _ in 0..4 {
        assert_eq!(get(), "rs2\n");
    }
    let h = d.adm(&["-L", "-n", "--health"]);
    assert!(h.contains(&format!("TCP_CHECK {r1}: connect")), "{h}");
    let _back = servers::http(&d.lan.rs[0], sa("[::]:80"), "rs1\n").unwrap();
    within(BOUND, || line_of(&d.adm(&["-L", "-n"]), &r1).is_some())
        .unwrap_or_else(|| panic!("rs1 not back: {}", d.adm(&["-L", "-n"])));
    check.stop().unwrap();
    assert!(
        !d.adm(&["-L", "-n", "--health"]).contains("checker pid"),
        "the status file goes with the checker"
    );
}

/// The same over IPv6: a v6 virtual server with v6 real servers, their
/// addresses in keepalived's words and in the listing.
#[test]
fn ipv6_real_servers_are_checked_and_removed() {
    if !require_root("health ipv6") {
        return;
    }
    use lvs_lab::seed::{rs_ip6, VIP6};
    let conf = format!(
        "virtual_server {VIP6} 80 {{
    delay_loop 1
    lvs_sched rr
    lvs_method NAT
    protocol TCP
{}{}}}
",
        real(rs_ip6(0), 80, "", http_get()),
        real(rs_ip6(1), 80, "", http_get())
    );
    let seed = SeedLab::with_config(
        "hcv6",
        SeedConfig {
            real_servers: 2,
            ipv6: true,
        },
    )
    .unwrap();
    seed.director
        .sysctl("net.ipv6.conf.all.forwarding", "1")
        .unwrap();
    let (_web, health) = health_web_on(&seed, "[::]:80");
    let d = Checked::start(seed, &conf);
    let r1 = format!("[{}]:80", rs_ip6(0));
    assert!(line_of(&d.listing(), &r1).is_some(), "{}", d.listing());
    let vip = SocketAddr::new(VIP6.into(), 80);
    health[0].store(500, Ordering::SeqCst);
    within(BOUND + Duration::from_secs(2), || {
        line_of(&d.listing(), &r1).is_none()
    })
    .unwrap_or_else(|| panic!("rs1 still listed: {}", d.listing()));
    for _ in 0..4 {
        assert_eq!(clients::http_get(&d.seed.client, vip, T).unwrap(), "rs2\n");
    }
    assert!(d.director_log().contains(&format!(
        "Removing service [{}]:tcp:80 from VS [{VIP6}]:tcp:80",
        rs_ip6(0)
    )));
    let h = d.adm(&["-L", "-n", "--health"]);
    assert!(h.contains(&format!("-> {r1}")), "{h}");
}

/// A UDP service with UDP_CHECK: a real server whose process stopped (the
/// port answers ICMP unreachable) is removed; the other answers alone.
#[test]
fn udp_check_on_a_udp_service() {
    if !require_root("health udp") {
        return;
    }
    // payload "ping", and the answer must start with "rs".
    let udp = "UDP_CHECK {
            payload 70696e67
            require_reply 7273
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }";
    let conf = format!(
        "virtual_server 192.168.47.128 53 {{
    delay_loop 1
    lvs_sched rr
    lvs_method NAT
    protocol UDP
{}{}}}
",
        real(rs_ip(0), 53, "", udp),
        real(rs_ip(1), 53, "", udp)
    );
    let seed = lab("hcudp", 2);
    let mut srv: Vec<_> = seed
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| servers::udp(ns, sa("0.0.0.0:53"), &format!("rs{}", i + 1)).unwrap())
        .collect();
    let d = Checked::start(seed, &conf);
    let r1 = format!("{}:53", rs_ip(0));
    assert!(line_of(&d.listing(), &r1).is_some(), "{}", d.listing());
    srv.remove(0);
    within(BOUND + Duration::from_secs(2), || {
        line_of(&d.listing(), &r1).is_none()
    })
    .unwrap_or_else(|| panic!("rs1 still listed: {}", d.listing()));
    for _ in 0..4 {
        let a = clients::udp_request(&d.seed.client, d.seed.vip(53), "q", T).unwrap();
        assert_eq!(a, "rs2");
    }
    assert!(d.director_log().contains(&format!(
        "Removing service [{}]:udp:53 from VS [192.168.47.128]:udp:53",
        rs_ip(0)
    )));
}

/// A file that does not parse stops `lvs load --config` before anything
/// is loaded, and `lvs check` without a director says so.
#[test]
fn a_broken_file_stops_the_load_and_nothing_is_pinned() {
    if !require_root("health bad config") {
        return;
    }
    let seed = lab("hcbad", 1);
    let path = seed.lab.workdir().join("keepalived.conf");
    std::fs::write(
        &path,
        "virtual_server 192.168.47.128 80 {\n    lvs_sched rr\n    no_such_keyword 1\n}\n",
    )
    .unwrap();
    let mut cmd = seed.director.command(LVS);
    cmd.args(["load", "--iface", "ens33", "--pin-path"])
        .arg(seed.pin_dir())
        .arg("--config")
        .arg(&path);
    let out = lvs_lab::run_timeout(&mut cmd, T).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
    assert_eq!(
        std::fs::read_dir(seed.pin_dir()).map_or(0, |d| d.count()),
        0,
        "nothing pinned"
    );
    std::fs::write(&path, seed_conf("", &[real(rs_ip(0), 80, "", http_get())])).unwrap();
    let mut cmd = seed.director.command(LVS);
    cmd.args(["check", "--config"])
        .arg(&path)
        .arg("--pin-path")
        .arg(seed.pin_dir());
    let out = lvs_lab::run_timeout(&mut cmd, T).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no director at"), "{err}");
}

mod probes;
mod scale;
