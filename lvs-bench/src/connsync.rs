//! Section 6: what the connection-sync master costs forwarding. Section
//! 3's veth lab forwards live NAT frames while CONNS holds 100 000 tracked
//! connections, first with no sync daemon, then with the master running:
//! the daemon of `lvs load` itself (`lvs::sync::start` on the lab's pinned
//! maps, started through its control socket as `lvsadm --start-daemon`
//! does), in this process instead of a separate `lvs load`, so that its
//! thread's CPU time and the process's memory can be read from /proc.
//!
//! ```text
//!  gen ns                 dir ns                          sink ns
//!  g0 ◄──► d0 [director_bench] ── redirect ──► d1 ──► s0
//!                 y0 ── sync multicast 224.0.0.81:8848 ──► y1
//! ```

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context, Result};
use aya::maps::{HashMap, Map, MapData};
use lvs::{
    loader::Sizes,
    sync::{
        config::{DaemonConfig, Role},
        control::{self, MasterCounters},
    },
    tables::names,
};
use lvs_common::{Conn, FlowKey};

use crate::{
    fixture::map_memlock,
    frames::{flow_client, CLIENT, CLIENT_PORT},
    live::{veth, Live, Sample, Target},
    report::{Align, Section, Table},
    scale::flow_key,
    stats::{fmt_bytes, fmt_mpps, fmt_ratio_of, group, median},
    sysinfo, Opts, Progress,
};

/// Tracked connections while the master walks.
const CONNS: u32 = 100_000;
/// The sync link (director side) and its peer.
const SYNC_DEV: &str = "y0";
const SYNC_PEER: &str = "y1";
const SYNCID: u8 = 1;

/// What one window with the master running cost it and sent.
#[derive(Clone, Debug, Default)]
struct MasterUse {
    cpu: Duration,
    wall: Duration,
    tx_bytes: u64,
    sent: MasterCounters,
    rss_growth: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Off,
    /// Started at the window's start: its first walk sends every
    /// established connection.
    First,
    /// Already running: every walk reads the whole table, sends only what
    /// changed or is due again.
    Steady,
}

impl Phase {
    fn name(self) -> String {
        match self {
            Phase::Off => "not running".into(),
            Phase::First => format!(
                "started with the window (its first walk sends all {})",
                group(CONNS as i64)
            ),
            Phase::Steady => "running (walks every second, sends what changed)".into(),
        }
    }
}

pub fn run(opts: &Opts, progress: &Progress, sec: &mut Section) -> Result<()> {
    let cpus = sysinfo::cpu_count().max(1);
    let secs = opts.pick(2.0, 5.0);
    let rounds = opts.pick(3, 5);
    sec.intro = format!(
        "What the connection-sync master costs forwarding. Section 3's lab (live frames from \
         g0, the director on d0, NAT established, {cpus} generator thread(s) pinned one per \
         core) forwards while CONNS holds {n} ESTABLISHED connections, with the sync master \
         not running, then started at the start of a window (its first walk sends every \
         connection), then running on (each walk, once a second, reads the whole table and \
         sends only connections that changed or are due again). The master is `lvs load`'s own \
         sync daemon (`lvs::sync::start` on the lab's pinned maps, started by its control \
         socket as `lvsadm --start-daemon master --mcast-interface {SYNC_DEV} --syncid \
         {SYNCID}` does), run in the benchmark's process so that its thread's CPU time \
         (`/proc/self/task/TID/schedstat`) and the process's memory (VmRSS) can be read; it \
         multicasts on a veth link of its own, {SYNC_DEV}, whose transmitted bytes are the \
         sync bytes. {rounds} rounds of {secs} s per row, the order rotated every other \
         round (without the master first, then last) so that drift spreads over all rows; \
         medians.",
        n = group(CONNS as i64)
    );
    progress.step("building the veth lab");
    let sizes = Sizes {
        // Room to spare: the LRU table evicts before it is full.
        max_conns: 1 << 18,
        ..Sizes::default()
    };
    let mut live = Live::new(cpus, sizes)?;
    live.open_flows(cpus)?;
    veth(&live.lab, &live.dir, SYNC_DEV, &live.sink, SYNC_PEER, 1)?;
    live.dir.sh(&format!(
        "ip link set {SYNC_DEV} up\nip addr add 192.168.212.128/24 dev {SYNC_DEV}"
    ))?;
    live.sink.sh(&format!("ip link set {SYNC_PEER} up"))?;
    fill(&live.pin, CONNS, progress)?;
    let pin = live.pin.clone();
    // The sync thread is made inside the director's namespace, so its
    // sockets are the namespace's (a thread keeps its creator's).
    let director = &mut live.director.bpf;
    let running = live
        .dir
        .enter(|| lvs::sync::start(&pin, &pin, director, false))??;
    let tid = sync_tid()?;
    let cfg = DaemonConfig {
        role: Role::Master,
        ifname: SYNC_DEV.into(),
        syncid: SYNCID,
        maxlen: None,
        group: None,
        port: None,
        ttl: None,
    };
    let phases = [Phase::Off, Phase::First, Phase::Steady];
    let mut fwd: Vec<Vec<Sample>> = vec![Vec::new(); phases.len()];
    let mut used: Vec<Vec<MasterUse>> = vec![Vec::new(); phases.len()];
    for round in 0..rounds {
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [1, 2, 0] };
        for i in order {
            let phase = phases[i];
            progress.step(&format!(
                "round {}/{rounds}: master {}",
                round + 1,
                phase.name()
            ));
            let before = observe(&live, &pin, tid)?;
            if phase == Phase::First {
                control::start(&pin, &cfg).context("starting the sync master")?;
            }
            let start = Instant::now();
            let s = live.measure(Target::DirectorNat, cpus, secs)?;
            let wall = start.elapsed();
            let after = observe(&live, &pin, tid)?;
            if phase == Phase::Steady {
                control::stop(&pin, Role::Master).context("stopping the sync master")?;
            }
            fwd[i].push(s);
            used[i].push(MasterUse {
                cpu: after.cpu.saturating_sub(before.cpu),
                wall,
                tx_bytes: after.tx_bytes.saturating_sub(before.tx_bytes),
                sent: MasterCounters {
                    messages: after.sent.messages - before.sent.messages,
                    conns: after.sent.conns - before.sent.conns,
                    templates: after.sent.templates - before.sent.templates,
                    errors: after.sent.errors - before.sent.errors,
                },
                rss_growth: after.rss as i64 - before.rss as i64,
            });
        }
    }
    drop(running);
    let med = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    let off_pps = med(&fwd[0].iter().map(|s| s.processed_pps).collect::<Vec<_>>());
    let mut t = Table::new(&[
        "sync master",
        "processed Mpps",
        "delivered Mpps",
        "× without master",
        "master CPU (% of one core)",
        "sent conns / messages",
        "sync bytes (per s)",
        "RSS growth (max)",
    ])
    .align(5, Align::Left);
    let mut shares = Vec::new();
    for (i, &phase) in phases.iter().enumerate() {
        let pps = med(&fwd[i].iter().map(|s| s.processed_pps).collect::<Vec<_>>());
        let delivered = med(&fwd[i]
            .iter()
            .map(|s| s.delivered_pps.unwrap_or(f64::NAN))
            .collect::<Vec<_>>());
        let u = &used[i];
        let cpu = med(&u
            .iter()
            .map(|u| 100.0 * u.cpu.as_secs_f64() / u.wall.as_secs_f64())
            .collect::<Vec<_>>());
        let bps = med(&u
            .iter()
            .map(|u| u.tx_bytes as f64 / u.wall.as_secs_f64())
            .collect::<Vec<_>>());
        let last = u.last().cloned().unwrap_or_default();
        if phase != Phase::Off {
            shares.push((phase, 1.0 - pps / off_pps, cpu));
        }
        t.row([
            phase.name(),
            fmt_mpps(pps),
            fmt_mpps(delivered),
            fmt_ratio_of(pps, off_pps),
            if phase == Phase::Off {
                "–".to_owned()
            } else {
                format!("{cpu:.1} %")
            },
            format!(
                "{} / {}",
                group(last.sent.conns as i64),
                group(last.sent.messages as i64)
            ),
            if phase == Phase::Off {
                "–".to_owned()
            } else {
                format!(
                    "{} ({}/s)",
                    fmt_bytes(med(&u.iter().map(|u| u.tx_bytes as f64).collect::<Vec<_>>()) as u64),
                    fmt_bytes(bps as u64)
                )
            },
            // Also without the master: what the window itself adds.
            signed_bytes(u.iter().map(|u| u.rss_growth).max().unwrap_or(0)),
        ]);
    }
    t.caption = Some(format!(
        "**Sync master beside forwarding** (NAT established, {cpus} thread(s); {} tracked \
         connections; CONNS sized {}, {} of kernel memory)",
        group(CONNS as i64),
        group(sizes.max_conns as i64),
        fmt_bytes(map_memlock(&pin, names::CONNS).unwrap_or(0)),
    ));
    sec.tables.push(t);
    for (phase, share, cpu) in shares {
        let what = match phase {
            Phase::First => "in its first window (the full send)",
            _ => "running on",
        };
        sec.note(format!(
            "Master {what}: forwarding {} by {:.1} % of the rate without it; the master's \
             thread used {cpu:.1} % of one core, {:.1} % of the machine's {cpus} cores, about \
             {:.0} ns per tracked connection per walk (one walk a second), so its share grows \
             with the table.",
            if share >= 0.0 { "slower" } else { "faster" },
            share.abs() * 100.0,
            cpu / cpus as f64,
            cpu / 100.0 * 1e9 / CONNS as f64,
        ));
    }
    sec.note(
        "The sync traffic never passes the XDP program: the master reads CONNS from userspace \
         (one bpf() lookup per entry per walk) and sends with a UDP socket on a link the \
         director is not attached to. What it takes from forwarding is CPU: on a machine with \
         as many generator threads as cores, every cycle of the master's thread is a cycle a \
         generator and the director do not get, so the rate's drop is the master's share of \
         the cores, not a per-packet cost. Differences of a few per cent are within this \
         lab's run-to-run noise (other load on the machine included).",
    );
    sec.note(
        "\"Sent conns / messages\" are the master's own counters (`stats` on the control \
         socket) over the last round's window; sync bytes are what y0 transmitted in a window \
         (its /proc/net/dev tx bytes: IPVS sync v1 messages of at most the link's MTU, with \
         their UDP/IP headers), per second of the window in brackets. RSS growth is the \
         benchmark process's VmRSS over a window, the largest of the rounds (the row without the \
         master shows what a window adds by itself): the master's \
         per-connection state (what it sent when, for every connection it walked), the \
         walk's copy of the table and its encoded messages, as the allocator keeps them.",
    );
    drop(live);
    Ok(())
}

/// Copies of the first NAT flow's entry, one per client 10.100.x.y:port,
/// into CONNS (what the master walks; the data path's REPLIES are not
/// read by it).
fn fill(pin: &Path, n: u32, progress: &Progress) -> Result<()> {
    let mut conns: HashMap<MapData, FlowKey, Conn> =
        HashMap::try_from(Map::LruHashMap(MapData::from_pin(pin.join(names::CONNS))?))?;
    let template = conns
        .get(&flow_key((CLIENT, CLIENT_PORT)), 0)
        .context("the director did not track the opened flow")?;
    let label = format!("filling CONNS with {}", group(n as i64));
    progress.step(&label);
    let now = lvs::tables::monotonic_ns();
    for i in 0..n {
        if i.is_multiple_of(4096) {
            lvs_lab::interrupt::check()?;
            progress.tick(&label, i as usize, n as usize);
        }
        let c = Conn {
            last_seen: now,
            ..template
        };
        conns.insert(flow_key(flow_client(i)), c, 0)?;
    }
    Ok(())
}

/// A reading of everything the table shows per window.
struct Observed {
    cpu: Duration,
    tx_bytes: u64,
    sent: MasterCounters,
    rss: u64,
}

fn observe(live: &Live, pin: &Path, tid: u32) -> Result<Observed> {
    Ok(Observed {
        cpu: thread_cpu(tid)?,
        tx_bytes: live.dir.enter(|| tx_bytes(SYNC_DEV))??,
        sent: control::stats(pin)?.1,
        rss: rss_bytes()?,
    })
}

/// The sync daemon's thread (named by `lvs::sync::start`). The thread
/// names itself once it runs, which may be a moment after `start`
/// returned: looked for during up to 2 s.
fn sync_tid() -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(tid) = find_task("lvs-sync")? {
            return Ok(tid);
        }
        if Instant::now() >= deadline {
            return Err(anyhow!("no lvs-sync thread in this process after 2 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The id of this process's thread named `name`, if any.
fn find_task(name: &str) -> Result<Option<u32>> {
    for e in std::fs::read_dir("/proc/self/task")? {
        let e = e?;
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return Ok(e.file_name().to_string_lossy().parse().ok());
        }
    }
    Ok(None)
}

/// Time thread `tid` of this process ran on a CPU (schedstat's first
/// field, in ns).
fn thread_cpu(tid: u32) -> Result<Duration> {
    let p = format!("/proc/self/task/{tid}/schedstat");
    let s = std::fs::read_to_string(&p).with_context(|| format!("reading {p}"))?;
    parse_schedstat(&s).with_context(|| format!("parsing {p}: {s:?}"))
}

fn parse_schedstat(s: &str) -> Option<Duration> {
    s.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// Bytes `dev` transmitted, from the calling thread's namespace.
fn tx_bytes(dev: &str) -> Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    parse_net_dev_tx(&s, dev).ok_or_else(|| anyhow!("{dev} not in /proc/net/dev"))
}

/// The transmitted bytes of `dev` in /proc/net/dev's text (the ninth
/// number after `dev:`, after eight receive fields).
fn parse_net_dev_tx(s: &str, dev: &str) -> Option<u64> {
    s.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        (name.trim() == dev)
            .then(|| rest.split_whitespace().nth(8)?.parse().ok())
            .flatten()
    })
}

fn rss_bytes() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    parse_vm_rss(&s).ok_or_else(|| anyhow!("no VmRSS in /proc/self/status"))
}

fn parse_vm_rss(s: &str) -> Option<u64> {
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `+1.2 MiB` / `−300 KiB`.
fn signed_bytes(b: i64) -> String {
    if b < 0 {
        format!("−{}", fmt_bytes(b.unsigned_abs()))
    } else {
        format!("+{}", fmt_bytes(b as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let dev = "Inter-|   Receive                            |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n    \
                   y0:     100       2    0    0    0     0          0         0  3620000    2500    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev_tx(dev, "y0"), Some(3_620_000));
        assert_eq!(parse_net_dev_tx(dev, "lo"), Some(0));
        assert_eq!(parse_net_dev_tx(dev, "y1"), None);
        assert_eq!(
            parse_schedstat("123456789 42 7\n"),
            Some(Duration::from_nanos(123_456_789))
        );
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(signed_bytes(-2048), "−2.0 KiB");
        assert_eq!(signed_bytes(512), "+512 B");
    }
}
