//! External commands: short ones run to completion under a deadline, long
//! ones are spawned with their output going to a log file. A file rather
//! than a pipe, so a child that outlives us (a kept demo) never dies of
//! SIGPIPE, and its output can still be read afterwards.

use std::{
    fs::{File, OpenOptions},
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};

use crate::{interrupt, names::pid_alive};

const POLL: Duration = Duration::from_millis(20);
/// How long SIGTERM gets before SIGKILL follows.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// Default deadline for short commands (`ip`, `ethtool`, …).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A long-running child. Clones share it; dropping handles does not stop
/// it: the owning lab does, or [`Proc::stop`].
#[derive(Clone)]
pub struct Proc {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    pid: u32,
    log: PathBuf,
    child: Mutex<Child>,
}

impl Proc {
    pub(crate) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let what = describe(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning {what}"))?;
        Ok(Proc {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                pid: child.id(),
                log: log.to_owned(),
                child: Mutex::new(child),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Where stdout and stderr (interleaved) go.
    pub fn log_path(&self) -> &Path {
        &self.inner.log
    }

    /// Everything the process has printed so far.
    pub fn output(&self) -> String {
        std::fs::read(&self.inner.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status once it has exited (reaping it), else `None`.
    pub fn status(&self) -> Option<ExitStatus> {
        self.inner.child.lock().unwrap().try_wait().ok().flatten()
    }

    pub fn is_running(&self) -> bool {
        self.status().is_none()
    }

    pub fn signal(&self, sig: libc::c_int) {
        if self.is_running() {
            // SAFETY: plain kill(2) on our own unreaped child.
            unsafe { libc::kill(self.inner.pid as libc::pid_t, sig) };
        }
    }

    /// Waits for a line of output starting with `prefix` (also one printed
    /// before the call) and returns it. Fails early if the process exits or
    /// an interrupt arrives.
    pub fn wait_for_line(&self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut file = File::open(&self.inner.log)?;
        let mut pending = Vec::new();
        loop {
            let exited = self.status();
            // Read after polling the status so that output written just
            // before exiting is still seen.
            file.read_to_end(&mut pending)?;
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.starts_with(prefix) {
                    return Ok(line.to_owned());
                }
            }
            if let Some(status) = exited {
                let last = String::from_utf8_lossy(&pending);
                if last.starts_with(prefix) {
                    return Ok(last.trim_end().to_owned());
                }
                bail!(
                    "{} exited ({status}) before printing {prefix:?}; output:\n{}",
                    self.name(),
                    tail(&self.output(), 30)
                );
            }
            interrupt::check()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not print {prefix:?} within {timeout:?}; output:\n{}",
                    self.name(),
                    tail(&self.output(), 30)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
    pub fn stop_within(&self, grace: Duration) -> Result<ExitStatus> {
        terminate(std::slice::from_ref(self), grace);
        self.status()
            .ok_or_else(|| anyhow!("{} (pid {}) survived SIGKILL", self.name(), self.pid()))
    }

    pub fn stop(&self) -> Result<ExitStatus> {
        self.stop_within(STOP_GRACE)
    }
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proc({} pid {})", self.name(), self.pid())
    }
}

/// Stops children together, so the grace periods overlap instead of adding
/// up. Every wait is bounded; a child stuck in the kernel is left behind.
pub(crate) fn terminate(procs: &[Proc], grace: Duration) {
    for p in procs {
        p.signal(libc::SIGTERM);
    }
    let all_gone = || procs.iter().all(|p| !p.is_running());
    if wait_until(grace, all_gone) {
        return;
    }
    for p in procs {
        p.signal(libc::SIGKILL);
    }
    if !wait_until(Duration::from_secs(2), all_gone) {
        for p in procs.iter().filter(|p| p.is_running()) {
            eprintln!("lvs-lab: {} (pid {}) ignores SIGKILL", p.name(), p.pid());
        }
    }
}

/// Same for processes that are not our children (found in a namespace):
/// their parent or init reaps them, so liveness is all we can watch.
pub(crate) fn terminate_pids(pids: &[u32], grace: Duration) {
    let me = std::process::id();
    let pids: Vec<u32> = pids.iter().copied().filter(|&p| p != me).collect();
    let send = |sig| {
        for &p in &pids {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(p as libc::pid_t, sig) };
        }
    };
    send(libc::SIGTERM);
    let all_gone = || pids.iter().all(|&p| gone(p));
    if !wait_until(grace, all_gone) {
        send(libc::SIGKILL);
        wait_until(Duration::from_secs(2), all_gone);
    }
}

/// Dead, or a zombie: a zombie child of ours (a [`Proc`] not yet reaped)
/// or of a parent that does not reap will never exit any further.
fn gone(pid: u32) -> bool {
    if !pid_alive(pid) {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        // The state follows the parenthesised command name.
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Runs `cmd` to completion, killing it after `timeout`. Output is captured.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what}: timed out after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(2));
    };
    // A grandchild that inherited the pipes could keep them open forever;
    // output is not worth hanging for.
    let take =
        |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    Ok(Output {
        status,
        stdout: take(stdout),
        stderr: take(stderr),
    })
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

/// Runs `cmd` under `timeout` and returns its stdout; a failure carries the
/// command line and its stderr.
pub fn check_output(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let out = run_timeout(cmd, timeout)?;
    if !out.status.success() {
        // Some tools explain themselves on stdout.
        let said = if out.stderr.trim_ascii().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(said).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
