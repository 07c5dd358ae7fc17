//! A thousand real servers checked every second with a 1-second timeout,
//! a third of them never answering: the checker does not fall behind (each
//! answering server sees a check about every second, the silent ones are
//! removed within the bound) and the daemon's CPU use over the run is
//! stated. Bounded in time, not a benchmark (`cargo xtask bench` is).

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::common::{LVS, LVSADM, T};
use lvs_lab::{lan::lvsadm_command, require_root, seed::READY_TIMEOUT, Lab};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const ANSWERING: usize = 667;
const SILENT: usize = 333;
/// The window over which checks are counted.
const WINDOW: Duration = Duration::from_secs(6);

fn answering(i: usize) -> String {
    format!("10.77.{}.{}", i / 200, i % 200 + 1)
}

fn silent(i: usize) -> String {
    format!("10.78.{}.{}", i / 200, i % 200 + 1)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_thousand_servers_every_second_a_third_silent() {
    if !require_root("health 1000 servers") {
        return;
    }
    let lab = Lab::new("hc1000").unwrap();
    let dir = lab.ns("director").unwrap();
    let void = lab.ns("void").unwrap();
    // The answering servers' addresses are the director's own (lo); the
    // silent ones are on a link whose far end answers no ARP.
    lab.veth(&dir, "v0", &void, "v1").unwrap();
    dir.addr("v0", "10.78.255.254/16").unwrap();
    let batch: String = (0..ANSWERING)
        .map(|i| format!("address add {}/32 dev lo\n", answering(i)))
        .collect();
    let batch_file = lab.workdir().join("addrs.batch");
    std::fs::write(&batch_file, batch).unwrap();
    dir.run(&["ip", "-batch", batch_file.to_str().unwrap()])
        .unwrap();

    // One HTTP server per answering address, counting its requests.
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..ANSWERING).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let (c2, s2) = (counts.clone(), stop.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let web = dir
        .spawn_thread("web1000", move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                for i in 0..ANSWERING {
                    let l = TcpListener::bind((answering(i).as_str(), 80))
                        .await
                        .unwrap();
                    let counts = c2.clone();
                    tokio::spawn(async move {
                        while let Ok((mut s, _)) = l.accept().await {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(async move {
                                let mut buf = [0u8; 1024];
                                let _ = s.read(&mut buf).await;
                                let _ = s
                                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                                    .await;
                            });
                        }
                    });
                }
                let _ = ready_tx.send(());
                while !s2.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .unwrap();
    ready_rx.recv_timeout(T).expect("1000 listeners up");

    let reals: String = (0..ANSWERING)
        .map(answering)
        .chain((0..SILENT).map(silent))
        .map(|ip| {
            format!(
                "    real_server {ip} 80 {{
        weight 1
        HTTP_GET {{
            url {{
                path /health
                status_code 200
            }}
            connect_timeout 1
            retry 0
            delay_before_retry 1
        }}
    }}
"
            )
        })
        .collect();
    let conf = format!(
        "virtual_server 10.77.255.1 80 {{
    delay_loop 1
    lvs_sched wrr
    lvs_method NAT
    protocol TCP
{reals}}}
"
    );
    let conf_path = lab.workdir().join("keepalived.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let pin = lab.pin_dir().unwrap();
    let mut cmd = dir.command(LVS);
    cmd.args(["load", "--iface", "v0", "--pin-path"])
        .arg(&pin)
        .arg("--config")
        .arg(&conf_path);
    let lvs = dir.spawn_cmd("lvs-load", cmd).unwrap();
    lvs.wait_for_line("lvs: director attached", READY_TIMEOUT + T)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lvs.output()));
    let members = || {
        let mut cmd = lvsadm_command(&dir, Path::new(LVSADM), &pin);
        cmd.args(["-L", "-n"]);
        let out = lvs_lab::check_output(&mut cmd, T).unwrap();
        (
            out.matches("-> 10.77.").count(),
            out.matches("-> 10.78.").count(),
        )
    };
    // Applied at start, the silent ones perhaps already removed (the
    // director waits up to 3 s for their neighbours before it is ready).
    assert_eq!(
        members().0,
        ANSWERING,
        "all answering servers applied at start"
    );

    // The silent third goes: delay_loop + connect_timeout + 1 s, plus
    // the first checks' spread over the first second.
    let start = Instant::now();
    let bound = Duration::from_secs(4);
    loop {
        let m = members();
        if m == (ANSWERING, 0) {
            break;
        }
        assert!(
            start.elapsed() <= bound,
            "after {:?}: {m:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let removed_after = start.elapsed();
    let log = lvs.output();
    assert_eq!(
        log.matches("Removing service [10.78.").count(),
        SILENT,
        "each silent server removed once, in keepalived's words"
    );

    // Checks keep their pace: over WINDOW, each answering server is
    // checked about once a second (each check takes its own time, and
    // the next starts delay_loop after it).
    let before: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let cpu0 = cpu_ticks(lvs.pid());
    let t0 = Instant::now();
    std::thread::sleep(WINDOW);
    let cpu1 = cpu_ticks(lvs.pid());
    let secs = t0.elapsed().as_secs_f64();
    let done: Vec<u64> = counts
        .iter()
        .zip(&before)
        .map(|(c, b)| c.load(Ordering::Relaxed) - b)
        .collect();
    let min = *done.iter().min().unwrap();
    let total: u64 = done.iter().sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (cpu1 - cpu0) as f64 / hz / secs * 100.0;
    eprintln!(
        "1000 servers, a third silent: silent ones removed after {removed_after:.1?}; \
         {:.0} checks/s answered, fewest per server in {secs:.1} s: {min}; \
         lvs load's CPU: {cpu:.1}% of one core",
        total as f64 / secs
    );
    // At most 1.5 s between checks of any server (delay_loop 1 s plus
    // the check and a loaded machine's scheduling).
    assert!(
        min >= 4,
        "a server was checked only {min} times in {secs:.1} s"
    );
    assert_eq!(members(), (ANSWERING, 0), "nothing answering was removed");
    lvs.stop().unwrap();
    stop.store(true, Ordering::SeqCst);
    web.join().unwrap();
}
