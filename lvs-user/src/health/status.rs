//! The checker's view, published for `lvsadm -L -n --health`: a small
//! text file under /run/lvs named from the pin directory, replaced by
//! rename so a reader sees one whole version.
//!
//! A file rather than a pinned map: nothing of it crosses into the
//! kernel, its rows are text of any length (the last check's result),
//! and a map would have to join the pinned layout that `lvs load` checks
//! before adopting a director. The file carries the checker's pid, so a
//! reader can tell a stale one (the checker is gone) from a live one.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, Context, Result};

use crate::model::{Proto, ServiceAddr};

/// The status file of the director pinned at `pin_dir`, beside its daemon
/// lock: `/sys/fs/bpf/lvs` → `/run/lvs/health-%2Fsys%2Ffs%2Fbpf%2Flvs`.
pub fn path(pin_dir: &Path) -> PathBuf {
    crate::life::lock::run_dir().join(format!("health-{}", crate::life::lock::encode(pin_dir)))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Real {
    pub service: ServiceAddr,
    pub addr: SocketAddr,
    /// up, down, inhibited, sorry (in use) or sorry-idle.
    pub state: String,
    /// The weight the table has for it (0 when absent or inhibited).
    pub weight: u32,
    /// Seconds since the epoch of the last change of state.
    pub since: u64,
    pub last: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    pub config: String,
    /// Seconds since the epoch.
    pub written: u64,
    /// Each service and whether its quorum is up.
    pub services: Vec<(ServiceAddr, bool)>,
    pub reals: Vec<Real>,
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
        .collect()
}

impl Status {
    pub fn encode(&self) -> String {
        let mut out = format!(
            "lvs-health 1\tpid={}\twritten={}\tconfig={}\n",
            self.pid,
            self.written,
            one_line(&self.config)
        );
        for (k, up) in &self.services {
            let _ = writeln!(
                out,
                "VS\t{}\t{}\tquorum={}",
                proto_name(k.proto),
                SocketAddr::new(k.addr, k.port),
                if *up { "up" } else { "down" }
            );
        }
        for r in &self.reals {
            let _ = writeln!(
                out,
                "RS\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                proto_name(r.service.proto),
                SocketAddr::new(r.service.addr, r.service.port),
                r.addr,
                r.state,
                r.since,
                r.weight,
                one_line(&r.last)
            );
        }
        out
    }

    pub fn decode(text: &str) -> Result<Status> {
        let mut lines = text.lines();
        let head = lines.next().ok_or_else(|| anyhow!("empty status file"))?;
        let mut f = head.split('\t');
        if f.next() != Some("lvs-health 1") {
            return Err(anyhow!("not a status file of this lvs"));
        }
        let mut st = Status {
            pid: 0,
            config: String::new(),
            written: 0,
            services: Vec::new(),
            reals: Vec::new(),
        };
        for kv in f {
            match kv.split_once('=') {
                Some(("pid", v)) => st.pid = v.parse()?,
                Some(("written", v)) => st.written = v.parse()?,
                Some(("config", v)) => st.config = v.to_owned(),
                _ => {}
            }
        }
        let service = |p: &str, a: &str| -> Result<ServiceAddr> {
            let a: SocketAddr = a.parse()?;
            Ok(ServiceAddr {
                proto: if p == "udp" { Proto::Udp } else { Proto::Tcp },
                addr: a.ip(),
                port: a.port(),
            })
        };
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["VS", p, a, q] => st.services.push((service(p, a)?, *q == "quorum=up")),
                ["RS", p, a, r, state, since, weight, last] => st.reals.push(Real {
                    service: service(p, a)?,
                    addr: r.parse()?,
                    state: (*state).to_owned(),
                    since: since.parse()?,
                    weight: weight.parse()?,
                    last: (*last).to_owned(),
                }),
                _ => return Err(anyhow!("bad status line {line:?}")),
            }
        }
        Ok(st)
    }
}

/// Writes `st` for `pin_dir`, atomically (a temporary file renamed).
pub fn write(pin_dir: &Path, st: &Status) -> Result<()> {
    let p = path(pin_dir);
    let run = crate::life::lock::run_dir();
    std::fs::create_dir_all(&run).with_context(|| format!("cannot create {}", run.display()))?;
    let mut tmp = p.clone().into_os_string();
    tmp.push(format!(".{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, st.encode()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("cannot rename to {}", p.display()))
}

pub fn remove(pin_dir: &Path) {
    let _ = std::fs::remove_file(path(pin_dir));
}

/// The status of the checker of `pin_dir`, if one wrote one.
pub fn read(pin_dir: &Path) -> Result<Option<Status>> {
    let p = path(pin_dir);
    match std::fs::read_to_string(&p) {
        Ok(t) => Status::decode(&t)
            .map(Some)
            .with_context(|| format!("reading {}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", p.display())),
    }
}

/// Whether process `pid` still runs (a status file of a dead checker is
/// stale).
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid != 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_named_from_the_pin_dir() {
        assert!(path(Path::new("/sys/fs/bpf/lvs")).ends_with("health-%2Fsys%2Ffs%2Fbpf%2Flvs"));
        assert_ne!(path(Path::new("/a_b")), path(Path::new("/a/b")));
    }

    #[test]
    fn round_trip() {
        let k = ServiceAddr {
            proto: Proto::Udp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 53,
        };
        let st = Status {
            pid: 42,
            config: "/etc/keepalived/keepalived.conf".into(),
            written: 1_700_000_000,
            services: vec![(k, false)],
            reals: vec![Real {
                service: k,
                addr: "[2001:db8::2]:53".parse().unwrap(),
                state: "down".into(),
                weight: 0,
                since: 1_699_999_999,
                last: "DNS_CHECK [2001:db8::2]:53: rcode\tServFail\n".into(),
            }],
        };
        let back = Status::decode(&st.encode()).unwrap();
        assert_eq!(
            back.reals[0].last,
            "DNS_CHECK [2001:db8::2]:53: rcode ServFail "
        );
        assert_eq!(back.services, st.services);
        assert_eq!(back.pid, 42);
        assert!(Status::decode("something else\n").is_err());
    }
}
