//! `cargo xtask demo --mode ecmp`: three directors behind a router's ECMP
//! (`lvs_lab::ecmp`), each running BIRD and `lvs load --bgp bird` on one
//! DR service with `mh`. Keep-alive HTTP connections from many client
//! addresses spread over the directors; then one director's link goes
//! down, as a machine fails, and its connections carry on through the
//! others (same real server: Maglev is the same everywhere, and sloppy
//! scheduling takes up mid-stream segments).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{bail, Result};
use lvs_lab::{
    clients::HttpConn,
    ecmp::{self, EcmpConfig, EcmpLab, VIP},
    interrupt, Proc,
};

use super::{step, SERVER_READY, STARTUP};
use crate::build::Bins;

const CONNS: usize = 30;
const PORT: u16 = 80;

/// One keep-alive connection's tally, shared with its thread.
#[derive(Default)]
struct Tally {
    answers: u64,
    server: String,
    error: Option<String>,
}

pub fn run(bins: &Bins) -> Result<()> {
    step("building the ECMP lab (client, router, switch, d1–d3, rs1–rs3)");
    let lab = EcmpLab::new(
        "demo",
        EcmpConfig {
            client_sources: 20,
            ..Default::default()
        },
    )?;
    println!("namespaces: {}", lab.lab.namespaces().join(" "));
    println!("  client 192.168.50.1/24 and .10–.29 ── router (BIRD, ECMP, L4 hash) ── LAN 192.168.51.0/24");
    println!(
        "  d1–d3 192.168.51.11–13 (BIRD AS {}, lvs load --bgp bird), rs1–rs3 .129–.131",
        ecmp::DIRECTOR_AS
    );
    println!(
        "  VIP {VIP}: on every director's and real server's lo; the router learns it over BGP"
    );
    let mut procs: Vec<Proc> = Vec::new();
    for (i, rs) in lab.rs.iter().enumerate() {
        let mut cmd = rs.command(std::env::current_exe()?);
        let body = format!("rs{}", i + 1);
        cmd.args(["serve-http", "--addr", "0.0.0.0:80", "--body", &body]);
        let p = rs.spawn_cmd("web", cmd)?;
        p.wait_for_line(SERVER_READY, STARTUP)?;
        procs.push(p);
    }
    step("BIRD on the router, XDP on the directors' switch ports (lvs pass)");
    procs.push(lab.start_router_bird()?);
    procs.push(lab.start_pass(&bins.lvs)?);
    let vip = format!("{VIP}:{PORT}");
    for i in 0..lab.dirs.len() {
        step(&format!(
            "d{}: BIRD, lvs load --bgp bird, an mh service",
            i + 1
        ));
        procs.push(lab.start_director_bird(i)?);
        procs.push(lab.start_director(i, &bins.lvs, &[])?);
        let adm = |args: &[&str]| lab.lvsadm(i, &bins.lvsadm, args);
        adm(&["-A", "-t", &vip, "-s", "mh", "-b", "mh-port"])?;
        for r in 0..lab.rs.len() {
            adm(&[
                "-a",
                "-t",
                &vip,
                "-r",
                &format!("{}:{PORT}", ecmp::rs_ip(r)),
                "-g",
            ])?;
        }
        interrupt::check()?;
    }
    let all: Vec<_> = (0..lab.dirs.len()).map(ecmp::dir_ip).collect();
    let took = lab.wait_next_hops(&all, Duration::from_secs(40))?;
    step(&format!(
        "the router's route to the VIP (all directors after {took:?})"
    ));
    print!(
        "{}",
        lab.router.ip(&["route", "show", &format!("{VIP}/32")])?
    );

    step(&format!(
        "{CONNS} keep-alive HTTP connections, a GET every 100 ms each"
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let mut tallies = Vec::new();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut locals = Vec::new();
    for c in 0..CONNS {
        let src = ecmp::client_ip(c % lab.config.client_sources).into();
        let mut conn =
            HttpConn::connect_from(&lab.client, src, lab.vip(PORT), Duration::from_secs(30))?;
        locals.push(conn.local_addr()?);
        let tally = Arc::new(Mutex::new(Tally::default()));
        tallies.push(tally.clone());
        let (stop, total) = (stop.clone(), total.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = conn.get("/");
                let mut t = tally.lock().unwrap();
                match r {
                    Ok(body) => {
                        t.answers += 1;
                        t.server = body.trim().to_owned();
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        t.error = Some(format!("{e:#}"));
                        return;
                    }
                }
                drop(t);
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(2));
    let show = |title: &str| -> Result<Vec<u64>> {
        step(title);
        for i in 0..lab.dirs.len() {
            let out = lab
                .lvsadm(i, &bins.lvsadm, &["-L", "-c", "-n"])
                .unwrap_or_default();
            let mine = locals
                .iter()
                .filter(|l| {
                    out.lines()
                        .any(|row| row.split_whitespace().nth(3) == Some(&l.to_string()))
                })
                .count();
            println!("  d{} tracks {mine} of the {CONNS} connections", i + 1);
        }
        let mut per_rs: BTreeMap<String, usize> = BTreeMap::new();
        let mut answers = Vec::new();
        for t in &tallies {
            let t = t.lock().unwrap();
            *per_rs.entry(t.server.clone()).or_default() += 1;
            answers.push(t.answers);
        }
        println!("  connections per real server: {per_rs:?}");
        println!("  GETs answered so far: {}", total.load(Ordering::Relaxed));
        Ok(answers)
    };
    show("flows spread over the directors")?;
    interrupt::check()?;

    step("d1 fails: its link goes down (the router notices when the BGP hold time, 3 s, runs out)");
    lab.set_director_link(0, false)?;
    let took = lab.wait_next_hops(&all[1..], Duration::from_secs(20))?;
    println!("the router dropped d1 after {took:?}:");
    print!(
        "{}",
        lab.router.ip(&["route", "show", &format!("{VIP}/32")])?
    );
    let before = show("right after")?;
    std::thread::sleep(Duration::from_secs(5));
    let after = show("five seconds later: d1's flows continue on d2 and d3")?;
    interrupt::check()?;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let mut failures = 0;
    for (i, t) in tallies.iter().enumerate() {
        let t = t.lock().unwrap();
        if let Some(e) = &t.error {
            failures += 1;
            println!("FAILED: connection {} ({}): {e}", i, locals[i]);
        } else if after[i] <= before[i] {
            failures += 1;
            println!("FAILED: connection {} ({}) made no progress", i, locals[i]);
        }
    }
    if failures == 0 {
        println!("every connection kept going: 0 resets");
    }
    step("tearing down");
    drop(procs);
    drop(lab);
    println!("done");
    if failures > 0 {
        bail!("{failures} connection(s) broke");
    }
    Ok(())
}
