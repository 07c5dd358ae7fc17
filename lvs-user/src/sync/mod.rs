//! Connection sync between directors, compatible with IPVS's sync
//! protocol version 1 (`ip_vs_sync.c`): a master multicasts the
//! connections it forwards, a backup inserts them into its own tables, so
//! that when VRRP (keepalived) moves the addresses to it, it forwards them
//! to the same real servers.
//!
//! The parts: [`codec`] (the wire format), [`config`] (what `lvsadm
//! --start-daemon` gives and the kernel's defaults), [`master`] (which
//! connections are sent when), [`backup`] (mapping entries onto the
//! tables), [`maps`] (the pinned maps and the `conn_sync` program),
//! [`net`] (the multicast sockets), [`control`] (the Unix socket `lvsadm`
//! talks to). This module runs them: a thread of `lvs load` with a runtime
//! of its own, started before the director is attached, serving the
//! control socket, walking the table once a second while a master runs,
//! and receiving while a backup runs. Sync traffic never meets the XDP
//! program's fast path: the master reads the pinned table, the backup
//! writes it through BPF_PROG_TEST_RUN.

pub mod backup;
pub mod codec;
pub mod config;
pub mod control;
pub mod maps;
pub mod master;
pub mod net;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{anyhow, Context, Result};
use aya::{programs::Xdp, Ebpf};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::watch,
};

use self::{
    backup::{Backup, Counters},
    codec::Encoder,
    config::{DaemonConfig, Effective, Role},
    control::{MasterCounters, Request},
    maps::SyncMaps,
    master::Master,
};
use crate::tables::monotonic_ns;

pub use maps::PROG;

/// The sync thread of one `lvs load`; stops (and removes its control
/// socket) when dropped.
pub struct Running {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    socket: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Starts the sync thread for the director whose maps are pinned under
/// `maps_dir` (the staging directory while `lvs load` starts) and whose
/// pin directory is `pin_dir` (which names the control socket), with a
/// handle of its own on the `conn_sync` program of `bpf`. An `lvs load`
/// that `adopts` a running director resumes the daemons the last one ran;
/// a fresh one starts none until `lvsadm --start-daemon` asks.
pub fn start(maps_dir: &Path, pin_dir: &Path, bpf: &mut Ebpf, adopts: bool) -> Result<Running> {
    let maps = SyncMaps::open(maps_dir, own_program(maps_dir, bpf)?)?;
    let state = control::state_path(pin_dir);
    let resume: Vec<DaemonConfig> = if adopts {
        std::fs::read_to_string(&state)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| DaemonConfig::from_words(l).ok())
            .collect()
    } else {
        let _ = std::fs::remove_file(&state);
        Vec::new()
    };
    let socket = control::socket_path(pin_dir);
    if let Some(d) = socket.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    // A socket left by a daemon that died: nobody answers on it (the
    // daemon lock guarantees no other `lvs load` of this directory runs).
    let _ = std::fs::remove_file(&socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket)
        .with_context(|| format!("cannot bind {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let (stop, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("lvs-sync".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return log::warn!("sync daemon: cannot start a runtime: {e}"),
            };
            rt.block_on(async move {
                match UnixListener::from_std(listener) {
                    Ok(l) => {
                        let mut d = Daemon::new(maps, state);
                        for cfg in resume {
                            if let Err(e) = d.start(&cfg) {
                                log::warn!("sync daemon {} not resumed: {e:#}", cfg.role.name());
                            }
                        }
                        d.serve(l, stopped).await
                    }
                    Err(e) => log::warn!("sync daemon: control socket: {e}"),
                }
            });
        })
        .context("cannot start the sync thread")?;
    Ok(Running {
        stop,
        thread: Some(thread),
        socket,
    })
}

/// A handle of its own on the loaded `conn_sync` program, for the sync
/// thread (aya hands out programs only by reference to their `Ebpf`): the
/// program is pinned for a moment and opened from the pin, which is then
/// removed (the open handle keeps it loaded).
fn own_program(maps_dir: &Path, bpf: &mut Ebpf) -> Result<Xdp> {
    // bpffs takes no dot in a name.
    let pin = maps_dir.join(format!("{PROG}_handoff_{}", std::process::id()));
    let prog = bpf
        .program_mut(PROG)
        .ok_or_else(|| anyhow!("object has no {PROG} program"))?;
    prog.pin(&pin)
        .with_context(|| format!("cannot pin {PROG} at {}", pin.display()))?;
    let own = Xdp::from_pin(&pin, aya_obj::programs::XdpAttachType::Interface);
    let _ = std::fs::remove_file(&pin);
    Ok(own?)
}

struct MasterRun {
    given: DaemonConfig,
    cfg: Effective,
    sock: std::net::UdpSocket,
    master: Master,
}

struct BackupRun {
    given: DaemonConfig,
    cfg: Effective,
    sock: Arc<tokio::net::UdpSocket>,
}

struct Daemon {
    maps: SyncMaps,
    /// [`control::state_path`], rewritten on every start and stop.
    state: PathBuf,
    master: Option<MasterRun>,
    backup: Option<BackupRun>,
    received: Backup,
    sent: MasterCounters,
}

/// ipvsadm's messages for the kernel's errors (libipvs' `ipvs_strerror`,
/// else `strerror`).
fn kernel_message(e: &anyhow::Error) -> String {
    e.chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(|io| {
            let s = io.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_string()
        })
        .unwrap_or_else(|| format!("{e:#}"))
}

impl Daemon {
    fn new(maps: SyncMaps, state: PathBuf) -> Daemon {
        Daemon {
            maps,
            state,
            master: None,
            backup: None,
            received: Backup::default(),
            sent: MasterCounters::default(),
        }
    }

    async fn serve(mut self, listener: UnixListener, mut stopped: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 65536];
        loop {
            let sock = self.backup.as_ref().map(|b| b.sock.clone());
            tokio::select! {
                _ = stopped.changed() => break,
                c = listener.accept() => match c {
                    Ok((stream, _)) => self.control(stream).await,
                    Err(e) => log::warn!("sync control: {e}"),
                },
                _ = tick.tick() => self.walk(),
                n = recv(sock.as_deref(), &mut buf) => match n {
                    Ok(n) => {
                        let syncid = self.backup.as_ref().map_or(0, |b| b.cfg.syncid);
                        self.received.receive(&mut self.maps, &buf[..n], syncid, monotonic_ns());
                    }
                    Err(e) => log::warn!("sync backup: {e}"),
                },
            }
        }
    }

    /// One request on the control socket, answered within 2 s.
    async fn control(&mut self, stream: UnixStream) {
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        // One short line: a client cannot make the daemon buffer more.
        let mut r = BufReader::new(r.take(4096));
        let read = r.read_line(&mut line);
        if !matches!(
            tokio::time::timeout(Duration::from_secs(2), read).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let answer = match control::parse_request(&line) {
            Ok(req) => self.handle(req),
            Err(e) => format!("err {e:#}\n"),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), w.write_all(answer.as_bytes())).await;
    }

    fn handle(&mut self, req: Request) -> String {
        let answer = self.answer(req);
        if let Err(e) = self.save() {
            log::warn!("sync daemon: cannot save its state: {e:#}");
        }
        answer
    }

    /// The running daemons as given (resolved again on resumption, for
    /// the link's MTU then).
    fn save(&self) -> Result<()> {
        let mut s = String::new();
        for c in [
            self.master.as_ref().map(|m| &m.given),
            self.backup.as_ref().map(|b| &b.given),
        ]
        .into_iter()
        .flatten()
        {
            s += &c.to_words();
            s.push('\n');
        }
        std::fs::write(&self.state, s).with_context(|| format!("writing {}", self.state.display()))
    }

    fn answer(&mut self, req: Request) -> String {
        match req {
            Request::Start(cfg) => match self.start(&cfg) {
                Ok(()) => "ok\n".into(),
                Err(e) => format!("err {}\n", kernel_message(&e)),
            },
            Request::Stop(role) => {
                let was = match role {
                    Role::Master => self.master.take().map(|m| m.cfg),
                    Role::Backup => {
                        // A master from now on tells its own backup
                        // everything, learnt or not (the role switch of a
                        // takeover).
                        self.received.learned.clear();
                        self.backup.take().map(|b| b.cfg)
                    }
                };
                match was {
                    Some(cfg) => {
                        log::info!("sync daemon stopped: {cfg}");
                        "ok\n".into()
                    }
                    None => "err No daemon is running\n".into(),
                }
            }
            Request::Status => {
                let mut s = String::new();
                for c in [
                    self.master.as_ref().map(|m| &m.cfg),
                    self.backup.as_ref().map(|b| &b.cfg),
                ]
                .into_iter()
                .flatten()
                {
                    s += &c.to_words();
                    s.push('\n');
                }
                s
            }
            Request::Stats => self.received.counters.lines() + &self.sent.lines(),
        }
    }

    fn start(&mut self, cfg: &DaemonConfig) -> Result<()> {
        let running = match cfg.role {
            Role::Master => self.master.is_some(),
            Role::Backup => self.backup.is_some(),
        };
        if running {
            return Err(anyhow!("Daemon has already run"));
        }
        net::ifindex(&cfg.ifname)?;
        let eff = cfg.resolve(net::mtu(&cfg.ifname)?);
        match cfg.role {
            Role::Master => {
                let sock = net::sender(&eff)?;
                self.master = Some(MasterRun {
                    given: cfg.clone(),
                    cfg: eff.clone(),
                    sock,
                    master: Master::default(),
                });
            }
            Role::Backup => {
                let sock = tokio::net::UdpSocket::from_std(net::receiver(&eff)?)?;
                self.backup = Some(BackupRun {
                    given: cfg.clone(),
                    cfg: eff.clone(),
                    sock: Arc::new(sock),
                });
            }
        }
        log::info!("sync daemon started: {eff}");
        Ok(())
    }

    /// The master's walk: everything due, in messages of at most maxlen.
    fn walk(&mut self) {
        let Some(m) = self.master.as_mut() else {
            // Without a master nobody reads `learned`: forget it.
            self.received.learned.clear();
            return;
        };
        let learned = &mut self.received.learned;
        let (entries, walked) = match m.master.walk(&self.maps, monotonic_ns(), learned) {
            Ok(x) => x,
            Err(e) => {
                log::warn!("sync master: {e:#}");
                return;
            }
        };
        let mut enc = Encoder::new(m.cfg.syncid, m.cfg.maxlen as usize);
        let mut msgs: Vec<Vec<u8>> = entries.iter().filter_map(|e| enc.push(e)).collect();
        msgs.extend(enc.finish());
        for msg in &msgs {
            match m.sock.send(msg) {
                Ok(_) => self.sent.messages += 1,
                Err(e) => {
                    self.sent.errors += 1;
                    log::warn!("sync master: sending: {e}");
                }
            }
        }
        self.sent.conns += walked.conns;
        self.sent.templates += walked.templates;
    }
}

/// Receives on the backup's socket, or waits for ever without one.
async fn recv(sock: Option<&tokio::net::UdpSocket>, buf: &mut [u8]) -> std::io::Result<usize> {
    match sock {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// The backup's counters, for tests and `lvs`: see [`control::stats`].
pub fn counters(pin_dir: &Path) -> Result<Counters> {
    Ok(control::stats(pin_dir)?.0)
}
