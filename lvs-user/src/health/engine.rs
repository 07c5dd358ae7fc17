//! The running checker: one tokio task per checker (its retry loop), one
//! loop that folds their verdicts into the virtual servers' states, and an
//! applier thread that writes the resulting table changes — many
//! transitions that arrive together become one commit, and a table lock
//! held by an `lvsadm` never stalls a check.

use std::{
    path::{Path, PathBuf},
    sync::mpsc as std_mpsc,
    time::{Duration, SystemTime},
};

use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    sync::mpsc,
    task::JoinSet,
};

use super::{
    apply::{self, Failed, Nodest},
    desired, probe,
    state::{Effect, ServiceState},
    status,
};
use crate::keepalived::model::{Checker, KaConfig};
use crate::model::VirtualService;

/// How often, at most, the status file is rewritten.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// How soon a commit that failed is tried again.
const RETRY_COMMIT: Duration = Duration::from_secs(1);

/// One run of one checker, as its task reports it.
struct Report {
    generation: u64,
    vs: usize,
    rs: usize,
    ck: usize,
    /// The verdict after the retries; `None` for a failed try that will be
    /// retried.
    verdict: Option<bool>,
    probe: probe::Probe,
}

/// Reads the configuration file again (on SIGHUP).
pub type Loader = fn(&Path) -> anyhow::Result<KaConfig>;

pub struct Engine {
    config_path: PathBuf,
    load: Loader,
    cfg: KaConfig,
    states: Vec<ServiceState>,
    pin_dir: PathBuf,
    generation: u64,
    tasks: JoinSet<()>,
    tx: mpsc::UnboundedSender<Report>,
    rx: mpsc::UnboundedReceiver<Report>,
    /// What was last handed to the applier.
    sent: Vec<VirtualService>,
    sent_failed: Vec<Failed>,
    to_applier: Option<std_mpsc::Sender<Change>>,
    status_dirty: bool,
    /// A verdict changed a state since the tables were last computed.
    changed: bool,
}

/// What the applier is handed: the tables, and the servers out of them
/// for failing their checks.
type Change = (Vec<VirtualService>, Vec<Failed>);

/// The servers of `cfg` that `states` keep out for failed checks.
pub fn failed(cfg: &KaConfig, states: &[ServiceState]) -> Vec<Failed> {
    cfg.virtual_servers
        .iter()
        .zip(states)
        .flat_map(|(vs, st)| desired::failed(vs, st))
        .collect()
}

/// The tables `cfg` in `states` stand for.
pub fn tables(cfg: &KaConfig, states: &[ServiceState]) -> Vec<VirtualService> {
    cfg.virtual_servers
        .iter()
        .zip(states)
        .map(|(vs, st)| desired::service(vs, st))
        .collect()
}

pub fn carry_out(fx: Vec<Effect>) {
    for e in fx {
        match e {
            Effect::Log(l) => log::info!("{l}"),
            Effect::Run(s) => super::scripts::run(&s),
        }
    }
}

/// A spread of first checks over the first second (or delay_loop), so a
/// thousand servers are not all checked in the same instant, plus
/// keepalived's random `warmup`.
fn first_delay(c: &Checker, key: usize) -> Duration {
    let h = (key as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    let spread = c.delay_loop.min(Duration::from_secs(1));
    let frac = (h % 1000) as f64 / 1000.0;
    spread.mul_f64(frac) + c.warmup.mul_f64(((h >> 10) % 1000) as f64 / 1000.0)
}

/// keepalived's retry loop of one checker: a failure of a checker that is
/// up (or has not run) is retried `retry` times `delay_before_retry`
/// apart before it counts; a down checker is only looked at every
/// `delay_loop`.
async fn checker_loop<F: std::future::Future<Output = probe::Probe>>(
    c: &Checker,
    mut up: bool,
    first: Duration,
    mut run: impl FnMut() -> F,
    mut send: impl FnMut(Option<bool>, probe::Probe) -> bool,
) {
    tokio::time::sleep(first).await;
    let mut has_run = false;
    let mut tries = 0u32;
    loop {
        let p = run().await;
        let (verdict, next) = if p.ok {
            tries = 0;
            (Some(true), c.delay_loop)
        } else if (up || !has_run) && tries < c.retry {
            tries += 1;
            (None, c.delay_before_retry)
        } else {
            tries = 0;
            (Some(false), c.delay_loop)
        };
        if let Some(v) = verdict {
            up = v;
            has_run = true;
        }
        if !send(verdict, p) {
            return;
        }
        tokio::time::sleep(next).await;
    }
}

impl Engine {
    /// An engine for `cfg` whose initial tables were applied already.
    pub fn new(
        config_path: &Path,
        load: Loader,
        cfg: KaConfig,
        states: Vec<ServiceState>,
        pin_dir: &Path,
        applied: Vec<VirtualService>,
        nodest: Nodest,
    ) -> Engine {
        let sent_failed = failed(&cfg, &states);
        let (tx, rx) = mpsc::unbounded_channel();
        let (atx, arx) = std_mpsc::channel();
        let dir = pin_dir.to_path_buf();
        let start = applied.clone();
        let spawned = std::thread::Builder::new()
            .name("health-apply".into())
            .spawn(move || applier(&dir, start, arx, nodest));
        if let Err(e) = &spawned {
            log::error!("health checker: cannot start the applier thread: {e}");
        }
        Engine {
            config_path: config_path.to_path_buf(),
            load,
            cfg,
            states,
            pin_dir: pin_dir.to_path_buf(),
            generation: 0,
            tasks: JoinSet::new(),
            tx,
            rx,
            sent: applied,
            sent_failed,
            to_applier: spawned.is_ok().then_some(atx),
            status_dirty: true,
            changed: false,
        }
    }

    fn spawn_checkers(&mut self) {
        self.tasks.abort_all();
        self.tasks = JoinSet::new();
        self.generation += 1;
        let mut key = 0usize;
        for (vi, vs) in self.cfg.virtual_servers.iter().enumerate() {
            for (ri, rs) in vs.real_servers.iter().enumerate() {
                for (ci, c) in rs.checkers.iter().enumerate() {
                    key += 1;
                    let up = self.states[vi].reals[ri].checkers[ci].0;
                    let tx = self.tx.clone();
                    let generation = self.generation;
                    let first = first_delay(c, key);
                    let send = move |verdict, probe| {
                        tx.send(Report {
                            generation,
                            vs: vi,
                            rs: ri,
                            ck: ci,
                            verdict,
                            probe,
                        })
                        .is_ok()
                    };
                    let c = std::sync::Arc::new(c.clone());
                    self.tasks.spawn(async move {
                        let run = || {
                            let c = c.clone();
                            async move { probe::run(&c).await }
                        };
                        checker_loop(&c, up, first, run, send).await
                    });
                }
            }
        }
    }

    fn handle(&mut self, r: Report) {
        if r.generation != self.generation {
            return;
        }
        let Some(vs) = self.cfg.virtual_servers.get(r.vs) else {
            return;
        };
        let st = &mut self.states[r.vs];
        st.reals[r.rs].last = match r.verdict {
            None => format!("{} (will retry)", r.probe.detail),
            Some(_) => r.probe.detail.clone(),
        };
        self.status_dirty = true;
        if let Some(up) = r.verdict {
            // A verdict changes at most its own server and the service's
            // quorum and sorry server: only then are the tables recomputed.
            let key = |st: &ServiceState| {
                let real = &st.reals[r.rs];
                (real.alive, real.weight, st.quorum_up, st.sorry_active)
            };
            let before = key(st);
            let fx = st.verdict(vs, r.rs, r.ck, up, r.probe.weight, SystemTime::now());
            self.changed |= key(st) != before;
            carry_out(fx);
        }
    }

    /// Hands the tables to the applier if they changed, after the status
    /// file says why: `lvsadm --health` never lags behind the tables.
    fn publish(&mut self) {
        if !std::mem::take(&mut self.changed) {
            return;
        }
        let want = tables(&self.cfg, &self.states);
        let out = failed(&self.cfg, &self.states);
        if want != self.sent || out != self.sent_failed {
            self.sent = want.clone();
            self.sent_failed = out.clone();
            self.status_dirty = true;
            self.write_status();
            if let Some(tx) = &self.to_applier {
                let _ = tx.send((want, out));
            }
        }
    }

    fn reload(&mut self) {
        log::info!("Reloading the configuration {}", self.config_path.display());
        let new = match (self.load)(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                log::error!("reload refused, nothing changed: {e:#}");
                return;
            }
        };
        let (states, fx) = super::reload::carry(&self.cfg, &self.states, &new, SystemTime::now());
        carry_out(fx);
        self.cfg = new;
        self.states = states;
        self.spawn_checkers();
        self.status_dirty = true;
        self.changed = true;
        self.publish();
    }

    fn write_status(&mut self) {
        if !self.status_dirty {
            return;
        }
        self.status_dirty = false;
        let st = snapshot_status(&self.config_path, &self.cfg, &self.states, &self.sent);
        if let Err(e) = status::write(&self.pin_dir, &st) {
            log::warn!("health status: {e:#}");
        }
    }

    /// Runs the checkers until `stop` completes; SIGHUP reloads
    /// (`hangup`: the handler, installed by the caller before it said it
    /// was ready).
    pub async fn run(mut self, mut hangup: Signal, stop: impl std::future::Future<Output = ()>) {
        self.spawn_checkers();
        self.write_status();
        let mut tick = tokio::time::interval(STATUS_EVERY);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                Some(r) = self.rx.recv() => {
                    self.handle(r);
                    // Everything that arrived meanwhile joins this change.
                    while let Ok(r) = self.rx.try_recv() {
                        self.handle(r);
                    }
                    self.publish();
                }
                _ = hangup.recv() => self.reload(),
                _ = tick.tick() => self.write_status(),
            }
        }
        self.tasks.abort_all();
        status::remove(&self.pin_dir);
    }
}

/// The SIGHUP handler: once installed, a SIGHUP no longer ends the
/// process, so it is made before the daemon says it is ready.
pub fn hangup() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// The state as `lvsadm --health` shows it.
pub fn snapshot_status(
    config_path: &Path,
    cfg: &KaConfig,
    states: &[ServiceState],
    tables: &[VirtualService],
) -> status::Status {
    let mut out = status::Status {
        pid: std::process::id(),
        config: config_path.display().to_string(),
        written: status::unix(SystemTime::now()),
        services: Vec::new(),
        reals: Vec::new(),
    };
    for ((vs, st), t) in cfg.virtual_servers.iter().zip(states).zip(tables) {
        out.services.push((vs.key, st.quorum_up));
        let weight_of = |a: std::net::SocketAddr| {
            t.reals
                .iter()
                .find(|r| r.addr == a.ip() && r.port == a.port())
                .map_or(0, |r| r.weight)
        };
        for (rs, real) in vs.real_servers.iter().zip(&st.reals) {
            let state = match (real.alive, rs.inhibit_on_failure) {
                (true, _) if st.sorry_active => "standby",
                (true, _) => "up",
                (false, true) => "inhibited",
                (false, false) => "down",
            };
            out.reals.push(status::Real {
                service: vs.key,
                addr: rs.addr,
                state: state.into(),
                weight: weight_of(rs.addr),
                since: status::unix(real.since),
                last: real.last.clone(),
            });
        }
        if let Some(s) = &vs.sorry_server {
            out.reals.push(status::Real {
                service: vs.key,
                addr: s.addr,
                state: if st.sorry_active {
                    "sorry"
                } else {
                    "sorry-idle"
                }
                .into(),
                weight: weight_of(s.addr),
                since: 0,
                last: "sorry server: not checked".into(),
            });
        }
    }
    out
}

/// The applier thread: applies the latest tables it was given, retrying
/// a failed commit, until the engine goes.
fn applier(
    dir: &Path,
    mut applied: Vec<VirtualService>,
    rx: std_mpsc::Receiver<Change>,
    nodest: Nodest,
) {
    let mut pending: Option<Change> = None;
    // A failure is logged once until it changes or ends (a director that
    // is gone would otherwise log every second).
    let mut failing: Option<String> = None;
    loop {
        let next = match &pending {
            None => match rx.recv() {
                Ok(n) => Some(n),
                Err(_) => return,
            },
            Some(_) => match rx.recv_timeout(RETRY_COMMIT) {
                Ok(n) => Some(n),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        if let Some(n) = next {
            pending = Some(n);
        }
        // Only the latest matters: older ones are steps on its way.
        while let Ok(n) = rx.try_recv() {
            pending = Some(n);
        }
        let Some((want, out)) = pending.take() else {
            continue;
        };
        match apply::apply(dir, Some(&applied), &want, &out, nodest) {
            Ok(_) => {
                applied = want;
                if failing.take().is_some() {
                    log::info!("health checker: the tables follow the checks again");
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if failing.as_ref() != Some(&msg) {
                    log::warn!("health checker: cannot change the tables (retrying): {msg}");
                }
                failing = Some(msg);
                pending = Some((want, out));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::fixture::http_checker;
    use std::{cell::RefCell, collections::VecDeque};

    /// The verdicts a checker loop sends for scripted results (true: the
    /// run succeeded), starting up or down.
    fn verdicts(retry: u32, up: bool, script: &[bool]) -> Vec<Option<bool>> {
        let mut c = http_checker("192.0.2.1:80");
        c.retry = retry;
        c.delay_loop = Duration::from_millis(1);
        c.delay_before_retry = Duration::from_millis(1);
        let script = RefCell::new(script.iter().copied().collect::<VecDeque<bool>>());
        let sent = RefCell::new(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(checker_loop(
            &c,
            up,
            Duration::ZERO,
            || {
                let ok = script.borrow_mut().pop_front().unwrap_or(true);
                async move {
                    if ok {
                        probe::Probe::up("ok")
                    } else {
                        probe::Probe::down("fail")
                    }
                }
            },
            |v, _| {
                sent.borrow_mut().push(v);
                !script.borrow().is_empty()
            },
        ));
        sent.into_inner()
    }

    #[test]
    fn a_failure_counts_after_its_retries() {
        // Up, retry 2: two failures are tries, the third the verdict.
        assert_eq!(
            verdicts(2, true, &[false, false, false, true]),
            [None, None, Some(false), Some(true)]
        );
        // A success between tries starts the count again.
        assert_eq!(
            verdicts(1, true, &[false, true, false, false]),
            [None, Some(true), None, Some(false)]
        );
        // retry 0: the first failure counts.
        assert_eq!(verdicts(0, true, &[false, true]), [Some(false), Some(true)]);
    }

    #[test]
    fn a_down_checker_is_not_retried_once_it_has_run() {
        // Alpha (starts down): its first failure is still retried, as
        // keepalived retries a checker that has not run.
        assert_eq!(
            verdicts(1, false, &[false, false, false, false]),
            [None, Some(false), Some(false), Some(false)]
        );
        assert_eq!(verdicts(3, false, &[true]), [Some(true)]);
    }
}
