//! Rules files: the `ipvsadm -S` format (`-R`'s input, read by
//! [`crate::adm::restore`]) as the whole table.
//!
//! - `lvs apply FILE` makes the table equal to the file as one change:
//!   services and servers in both keep their connections, counts, counters
//!   and scheduler position; the others are deleted as `-D`/`-d` delete
//!   them (tombstones while connections remain); timeouts stay unless the
//!   file sets them (`--set`).
//! - `lvs load --rules FILE` checks the file before it loads anything and
//!   applies it the same way before the director reports ready; SIGHUP
//!   re-reads the file and applies it again ([`spawn_reload`]).
//!
//! A bad file is reported as `FILE:LINE: message` and changes nothing.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use crate::{
    adm::{restore, SystemResolve},
    model::{RealServer, ServiceAddr, Snapshot, VirtualService},
    tables::Tables,
};

/// A rules file, read and checked.
#[derive(Clone, Debug)]
pub struct Rules {
    path: PathBuf,
    text: String,
}

impl Rules {
    /// Reads `path` and checks every line against an empty table.
    pub fn read(path: &Path) -> Result<Rules> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the rules file {}", path.display()))?;
        let rules = Rules {
            path: path.to_path_buf(),
            text,
        };
        rules.table(&Snapshot::default())?;
        Ok(rules)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table the file describes, over `current`'s sizes and timeouts.
    pub fn table(&self, current: &Snapshot) -> Result<Snapshot> {
        let base = Snapshot {
            services: Vec::new(),
            ..current.clone()
        };
        restore::restore_numbered(&base, &self.text, "lvsadm", &SystemResolve).map_err(|(n, e)| {
            let msg = e.msg.strip_prefix("lvsadm: ").unwrap_or(&e.msg);
            anyhow!("{}:{n}: {msg}", self.path.display())
        })
    }
}

/// Makes the tables pinned under `dir` equal to `rules` as one change and
/// returns what changed, in one line.
pub fn apply(dir: &Path, rules: &Rules) -> Result<String> {
    let mut tables = Tables::open(dir)?;
    let old = tables.snapshot()?;
    let new = rules.table(&old)?;
    let line = summary(&old, &new);
    if !same_rules(&old, &new) {
        tables
            .commit(&new)
            .with_context(|| format!("applying {}", rules.path.display()))?;
    }
    Ok(line)
}

/// `lvs load --rules`: applies the file to the director being started (its
/// staging directory), logging what it did.
pub fn apply_at_boot(dir: &Path, rules: &Rules) -> Result<()> {
    let line = apply(dir, rules)?;
    log::info!("rules from {}: {line}", rules.path.display());
    Ok(())
}

/// SIGHUP to `lvs load --rules FILE`: re-reads FILE and applies it as
/// `lvs apply` does; a bad file is logged and changes nothing. Without
/// `--rules` a SIGHUP is logged and ignored (rather than ending the daemon,
/// the signal's default). The work runs off the runtime's thread (it takes
/// the tables' lock and may wait for a grace period).
pub fn spawn_reload(dir: PathBuf, path: Option<PathBuf>) -> Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(path) = path.clone() else {
                log::warn!("SIGHUP: no --rules file to reload; nothing changed");
                continue;
            };
            let dir = dir.clone();
            let done = tokio::task::spawn_blocking(move || {
                Rules::read(&path).and_then(|r| apply(&dir, &r))
            })
            .await;
            match done {
                Ok(Ok(line)) => log::info!("SIGHUP: rules reloaded: {line}"),
                Ok(Err(e)) => log::error!("SIGHUP: rules not reloaded, nothing changed: {e:#}"),
                Err(e) => log::error!("SIGHUP: rules not reloaded: {e}"),
            }
        }
    });
    Ok(())
}

/// Whether two tables have the same rules (counters aside).
fn same_rules(a: &Snapshot, b: &Snapshot) -> bool {
    a.timeouts == b.timeouts
        && a.services.len() == b.services.len()
        && a.services.iter().zip(&b.services).all(|(x, y)| {
            same_service(x, y) && x.reals.len() == y.reals.len() && {
                x.reals.iter().zip(&y.reals).all(|(r, s)| same_real(r, s))
            }
        })
}

fn same_service(a: &VirtualService, b: &VirtualService) -> bool {
    (a.key, a.sched, a.sched_flags, a.persistence, a.ops)
        == (b.key, b.sched, b.sched_flags, b.persistence, b.ops)
}

fn same_real(a: &RealServer, b: &RealServer) -> bool {
    (
        a.addr,
        a.port,
        a.method,
        a.weight,
        a.u_threshold,
        a.l_threshold,
    ) == (
        b.addr,
        b.port,
        b.method,
        b.weight,
        b.u_threshold,
        b.l_threshold,
    )
}

/// What going from `old` to `new` changes, in one line.
pub fn summary(old: &Snapshot, new: &Snapshot) -> String {
    let find = |s: &Snapshot, k: &ServiceAddr| s.services.iter().find(|v| v.key == *k).cloned();
    let (mut sa, mut sr, mut sc, mut ra, mut rr, mut re) = (0, 0, 0, 0, 0, 0);
    for n in &new.services {
        match find(old, &n.key) {
            None => {
                sa += 1;
                ra += n.reals.len();
            }
            Some(o) => {
                if !same_service(&o, n) {
                    sc += 1;
                }
                for r in &n.reals {
                    match o
                        .reals
                        .iter()
                        .find(|x| (x.addr, x.port) == (r.addr, r.port))
                    {
                        None => ra += 1,
                        Some(x) if !same_real(x, r) => re += 1,
                        Some(_) => {}
                    }
                }
                rr += o
                    .reals
                    .iter()
                    .filter(|x| !n.reals.iter().any(|r| (x.addr, x.port) == (r.addr, r.port)))
                    .count();
            }
        }
    }
    for o in &old.services {
        if find(new, &o.key).is_none() {
            sr += 1;
            rr += o.reals.len();
        }
    }
    let timeouts = if old.timeouts != new.timeouts {
        ", timeouts changed"
    } else {
        ""
    };
    if (sa, sr, sc, ra, rr, re) == (0, 0, 0, 0, 0, 0) && timeouts.is_empty() {
        return format!("no change ({} services)", new.services.len());
    }
    format!(
        "services: {sa} added, {sr} removed, {sc} changed; servers: {ra} added, {rr} removed, \
         {re} changed{timeouts} ({} services)",
        new.services.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Method, Proto, Scheduler};

    fn svc(addr: &str, port: u16, reals: &[(&str, u32)]) -> VirtualService {
        let mut v = VirtualService::new(
            ServiceAddr {
                proto: Proto::Tcp,
                addr: addr.parse().unwrap(),
                port,
            },
            Scheduler::Rr,
        );
        for (a, w) in reals {
            v.reals
                .push(RealServer::new(a.parse().unwrap(), port, Method::Masq, *w));
        }
        v
    }

    fn file(text: &str) -> (tempfile_path::Tmp, Rules) {
        let t = tempfile_path::Tmp::new(text);
        let r = Rules::read(&t.0);
        (t, r.unwrap())
    }

    /// A file under the temporary directory, removed on drop.
    mod tempfile_path {
        pub struct Tmp(pub std::path::PathBuf);
        impl Tmp {
            pub fn new(text: &str) -> Tmp {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "lvs-rules-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&p, text).unwrap();
                Tmp(p)
            }
        }
        impl Drop for Tmp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn a_bad_line_is_named_with_the_file() {
        let t = tempfile_path::Tmp::new(
            "-A -t 10.0.0.1:80 -s rr\n\n-a -t 10.0.0.9:80 -r 10.1.0.1 -m\n",
        );
        let e = Rules::read(&t.0).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}:3: Service not defined", t.0.display()),
            "{e}"
        );
    }

    #[test]
    fn the_file_is_the_whole_table_over_the_current_timeouts() {
        let (_t, r) = file("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 2\n");
        let mut cur = Snapshot::default();
        cur.timeouts.tcp = 77;
        cur.services.push(svc("10.0.0.2", 80, &[("10.1.0.2", 1)]));
        let t = r.table(&cur).unwrap();
        assert_eq!(t.timeouts.tcp, 77);
        assert_eq!(t.services, vec![svc("10.0.0.1", 80, &[("10.1.0.1", 2)])]);
    }

    #[test]
    fn summaries_count_what_changes() {
        let mut old = Snapshot::default();
        old.services
            .push(svc("10.0.0.1", 80, &[("10.1.0.1", 1), ("10.1.0.2", 1)]));
        old.services.push(svc("10.0.0.2", 80, &[("10.1.0.3", 1)]));
        let mut new = Snapshot::default();
        new.services
            .push(svc("10.0.0.1", 80, &[("10.1.0.1", 5), ("10.1.0.4", 1)]));
        new.services.push(svc("10.0.0.3", 80, &[("10.1.0.5", 1)]));
        assert_eq!(
            summary(&old, &new),
            "services: 1 added, 1 removed, 0 changed; servers: 2 added, 2 removed, 1 changed \
             (2 services)"
        );
        assert_eq!(summary(&old, &old), "no change (2 services)");
        assert!(same_rules(&old, &old));
        assert!(!same_rules(&old, &new));
    }
}
