//! The control channel between `lvsadm` and the sync daemon inside
//! `lvs load`: a Unix stream socket in the run directory (`/run/lvs`, or
//! `$LVS_RUN_DIR`) named after the pin directory as the daemon lock is
//! (`sync-<pin dir, `/` and `%` percent-encoded>.sock`), mode 0600. One
//! request line per connection, answered, then the daemon closes:
//!
//! - `start role=master|backup if=IF syncid=N [maxlen=N] [group=A]
//!   [port=P] [ttl=T]` → `ok`, or `err MESSAGE` (ipvsadm's message for the
//!   kernel's error: "Daemon has already run", "No such device", ...);
//! - `stop master|backup` → `ok` or `err No daemon is running`;
//! - `status` → one line per running daemon, master first, every value
//!   resolved (`role=… if=… syncid=… maxlen=… group=… port=… ttl=…`);
//! - `stats` → `name value` lines: the backup's counters
//!   (`backup::Counters`) and the master's (`sent_messages`,
//!   `sent_conns`, `sent_templates`, `send_errors`).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};

use super::{
    backup::Counters,
    config::{DaemonConfig, Effective, Role},
};

/// The control socket of the director pinned at `pin_dir`.
pub fn socket_path(pin_dir: &Path) -> PathBuf {
    let lock = crate::life::lock::lock_path(pin_dir);
    let name = lock
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("load-"))
        .and_then(|n| n.strip_suffix(".lock"))
        .unwrap_or("default")
        .to_string();
    lock.with_file_name(format!("sync-{name}.sock"))
}

/// Where `lvs load` keeps the running daemons' configurations (the
/// `status` lines), so that an `lvs load` adopting the director resumes
/// them: the sync daemons belong to the director, as IPVS's belong to the
/// kernel, not to one run of the daemon.
pub fn state_path(pin_dir: &Path) -> PathBuf {
    socket_path(pin_dir).with_extension("state")
}

/// No `lvs load` answers on the control socket.
#[derive(Debug)]
pub struct NoDaemon(pub PathBuf);

impl std::fmt::Display for NoDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no `lvs load` answers at {} (the sync daemon runs inside it)",
            self.0.display()
        )
    }
}

impl std::error::Error for NoDaemon {}

/// An error the daemon answered with (`err MESSAGE`): the message is
/// ipvsadm's.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Sends one request, returns the answer's lines.
fn ask(pin_dir: &Path, req: &str) -> Result<Vec<String>> {
    let path = socket_path(pin_dir);
    let mut s = UnixStream::connect(&path).map_err(|_| NoDaemon(path.clone()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    writeln!(s, "{req}").context("writing to the sync control socket")?;
    let mut lines = Vec::new();
    for l in BufReader::new(s).lines() {
        lines.push(l.context("reading the sync control socket")?);
    }
    Ok(lines)
}

fn ok(lines: Vec<String>) -> Result<()> {
    match lines.first().map(String::as_str) {
        Some("ok") => Ok(()),
        Some(l) if l.starts_with("err ") => Err(Refused(l[4..].to_string()).into()),
        _ => bail!("unexpected answer from the sync daemon: {lines:?}"),
    }
}

pub fn start(pin_dir: &Path, cfg: &DaemonConfig) -> Result<()> {
    ok(ask(pin_dir, &format!("start {}", cfg.to_words()))?)
}

pub fn stop(pin_dir: &Path, role: Role) -> Result<()> {
    ok(ask(pin_dir, &format!("stop {}", role.name()))?)
}

/// The running daemons; none if no `lvs load` answers.
pub fn status(pin_dir: &Path) -> Result<Vec<Effective>> {
    match ask(pin_dir, "status") {
        Ok(lines) => lines.iter().map(|l| Effective::from_words(l)).collect(),
        Err(e) if e.downcast_ref::<NoDaemon>().is_some() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The daemons' counters: the backup's, and the master's by name.
pub fn stats(pin_dir: &Path) -> Result<(Counters, MasterCounters)> {
    let lines = ask(pin_dir, "stats")?;
    let text = lines.join("\n");
    Ok((
        Counters::from_lines(&text),
        MasterCounters::from_lines(&text),
    ))
}

/// The `stats` answer as the daemon gives it, `name value` lines (for
/// `lvs sync-stats`).
pub fn stats_text(pin_dir: &Path) -> Result<String> {
    Ok(ask(pin_dir, "stats")?
        .iter()
        .map(|l| format!("{l}\n"))
        .collect())
}

/// What the master sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterCounters {
    pub messages: u64,
    pub conns: u64,
    pub templates: u64,
    pub errors: u64,
}

impl MasterCounters {
    pub fn lines(&self) -> String {
        format!(
            "sent_messages {}\nsent_conns {}\nsent_templates {}\nsend_errors {}\n",
            self.messages, self.conns, self.templates, self.errors
        )
    }

    pub fn from_lines(s: &str) -> MasterCounters {
        let mut c = MasterCounters::default();
        for l in s.lines() {
            let Some((k, v)) = l.split_once(' ') else {
                continue;
            };
            let v = v.trim().parse().unwrap_or(0);
            match k {
                "sent_messages" => c.messages = v,
                "sent_conns" => c.conns = v,
                "sent_templates" => c.templates = v,
                "send_errors" => c.errors = v,
                _ => {}
            }
        }
        c
    }
}

/// A parsed request (the daemon's side).
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Start(DaemonConfig),
    Stop(Role),
    Status,
    Stats,
}

pub fn parse_request(line: &str) -> Result<Request> {
    let line = line.trim();
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "start" => Ok(Request::Start(DaemonConfig::from_words(rest)?)),
        "stop" => Ok(Request::Stop(rest.trim().parse()?)),
        "status" => Ok(Request::Status),
        "stats" => Ok(Request::Stats),
        _ => Err(anyhow!("unknown request {verb:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request("status\n").unwrap(), Request::Status);
        assert_eq!(
            parse_request("stop backup").unwrap(),
            Request::Stop(Role::Backup)
        );
        let Request::Start(c) = parse_request("start role=master if=eth0 syncid=3").unwrap() else {
            panic!("not a start");
        };
        assert_eq!(
            (c.role, c.ifname.as_str(), c.syncid),
            (Role::Master, "eth0", 3)
        );
        assert!(parse_request("stop slave").is_err());
        assert!(parse_request("reboot").is_err());
    }

    #[test]
    fn the_socket_is_named_after_the_pin_directory() {
        let a = socket_path(Path::new("/sys/fs/bpf/lvs"));
        assert_eq!(a.file_name().unwrap(), "sync-%2Fsys%2Ffs%2Fbpf%2Flvs.sock");
        assert_ne!(a, socket_path(Path::new("/sys/fs/bpf/lvs2")));
    }
}
