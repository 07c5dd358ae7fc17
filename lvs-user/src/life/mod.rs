//! The director's lifecycle on its pin directory: the daemon lock, the
//! layout check before adopting pinned maps, the pinned links, the staging
//! directory that makes "`lvsadm` answers" mean "the director forwards",
//! the end of a daemon (which leaves the director forwarding) and
//! `lvs unload` (which detaches it and removes everything).
//!
//! A fresh director is loaded into `DIR-staging`: maps, layout record and
//! links are pinned there, next hops resolved, and only then is the
//! directory renamed to DIR (over an empty DIR, as labs make). A director
//! already pinned at DIR is adopted in place: same maps, links switched to
//! the new program.

pub mod build_id;
pub mod layout;
pub mod links;
pub mod lock;
pub mod notify;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aya::programs::Xdp;

use self::{
    layout::Layout,
    links::{mode_name, Plan},
    lock::DaemonLock,
};
use crate::{
    loader::{self, LoadOpts},
    tables::names,
};

/// Where a fresh director is put together before it is published at `dir`.
pub fn staging_dir(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push("-staging");
    PathBuf::from(s)
}

/// Whether `dir` holds (part of) a director: a map of it, its layout
/// record or a pinned link.
pub fn holds_director(dir: &Path) -> bool {
    names::ALL
        .iter()
        .chain([&names::LAYOUT])
        .any(|n| dir.join(n).exists())
        || !links::pinned_ifaces(dir).is_empty()
}

/// A load between its checks and the end of the daemon.
pub struct Life {
    _lock: DaemonLock,
    /// The pin directory.
    dir: PathBuf,
    /// Where the maps are loaded and the links pinned: `dir` when adopting,
    /// else the staging directory until [`Life::publish`].
    work: PathBuf,
    adopting: bool,
    published: bool,
    plan: Vec<(String, Plan)>,
    layout: Layout,
}

impl Life {
    /// Takes the daemon lock and checks that `opts` may run on the pin
    /// directory: a director pinned there must have this binary's layout
    /// and run on links that `opts` names; no link may carry a foreign XDP
    /// program. Nothing is changed if it refuses.
    pub fn prepare(opts: &LoadOpts) -> Result<Life> {
        let dir = opts.pin_dir.clone();
        loader::ensure_bpffs_mounted(&dir)?;
        let lock = DaemonLock::take(&dir, "start a second one")?;
        let want = Layout::wanted(opts.sizes, mode_name(opts.mode), &opts.ifaces)?;
        let adopting = holds_director(&dir);
        if adopting {
            let record = layout::read(&dir)
                .with_context(|| format!("the layout record under {}", dir.display()))?;
            let maps = layout::pinned_maps(&dir, &want);
            let diffs = layout::differences(record.as_ref(), &maps, &want);
            if !diffs.is_empty() {
                bail!(
                    "refusing to adopt the director pinned at {}: {}; nothing was changed \
                     (load with its options, or `lvs unload --pin-path {}` first, which drops \
                     its tables and connections)",
                    dir.display(),
                    diffs.join("; "),
                    dir.display()
                );
            }
            let unnamed: Vec<String> = links::pinned_ifaces(&dir)
                .into_iter()
                .filter(|i| !opts.ifaces.contains(i))
                .collect();
            if !unnamed.is_empty() {
                bail!(
                    "the director pinned at {} is also attached to {}: name every link it \
                     runs on (--iface), or `lvs unload --pin-path {}` first; nothing was changed",
                    dir.display(),
                    unnamed.join(", "),
                    dir.display()
                );
            }
        } else if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            bail!(
                "{} holds pins that are not a director's: refusing to use it",
                dir.display()
            );
        }
        let staging = staging_dir(&dir);
        if !adopting {
            // What a load killed before it was ready left behind (under
            // the lock it is nobody's): its links, too, which would make
            // the director it attached look foreign.
            loader::remove_pins(&staging);
        }
        let plan = links::plan(&dir, &opts.ifaces)?;
        let work = if adopting {
            dir.clone()
        } else {
            std::fs::create_dir_all(&staging)
                .with_context(|| format!("cannot create {}", staging.display()))?;
            staging
        };
        Ok(Life {
            _lock: lock,
            dir,
            work,
            adopting,
            published: false,
            plan,
            layout: want,
        })
    }

    /// Where the maps are to be loaded now.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    pub fn adopting(&self) -> bool {
        self.adopting
    }

    /// Attaches `prog` to every link of the plan (switching adopted links
    /// in place) and writes the layout record; returns the link ids.
    pub fn attach(&mut self, prog: &mut Xdp, opts: &LoadOpts) -> Result<Vec<u32>> {
        let ids = links::attach(prog, &self.work, &self.plan, opts.mode)?;
        layout::write(&self.work, &self.layout)?;
        Ok(ids)
    }

    /// Makes the director visible at the pin directory (a fresh one is
    /// renamed into place) and says it is ready: the ready line, and
    /// `READY=1` to systemd.
    pub fn publish(&mut self, opts: &LoadOpts) -> Result<()> {
        if !self.adopting {
            // Over an empty directory (as labs make one) or none.
            let _ = std::fs::remove_dir(&self.dir);
            std::fs::rename(&self.work, &self.dir).with_context(|| {
                format!(
                    "cannot move {} into place at {}",
                    self.work.display(),
                    self.dir.display()
                )
            })?;
            self.work = self.dir.clone();
        }
        self.published = true;
        let how = if self.adopting {
            " (adopted: tables and connections kept, links switched to this program)"
        } else {
            ""
        };
        println!(
            "lvs: director attached to {}; maps pinned at {}{how}",
            opts.ifaces.join(", "),
            self.dir.display()
        );
        let status = format!(
            "READY=1\nMAINPID={}\nSTATUS=director attached to {}",
            std::process::id(),
            opts.ifaces.join(", ")
        );
        if let Err(e) = notify::notify(&status) {
            log::warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
        }
        Ok(())
    }

    /// The end of the daemon: by default the director keeps forwarding;
    /// with `--detach-on-exit` it is detached and its pins removed.
    pub fn finish(&mut self, opts: &LoadOpts, neighbours: &mut crate::neigh::Neighbours) {
        let _ = notify::notify("STOPPING=1");
        if opts.detach_on_exit {
            neighbours.remove_all();
            loader::remove_pins(&self.dir);
            println!("lvs: detaching");
        } else {
            neighbours.keep_all();
            println!(
                "lvs: daemon stopping; the director stays attached to {} and keeps forwarding \
                 with its tables and connections (pinned at {}); sweeping and neighbour upkeep \
                 stop until the next `lvs load`; `lvs unload --pin-path {}` detaches it",
                opts.ifaces.join(", "),
                self.dir.display(),
                self.dir.display()
            );
        }
    }
}

impl Drop for Life {
    /// A fresh director that never got ready leaves nothing behind.
    fn drop(&mut self) {
        if !self.adopting && !self.published {
            loader::remove_pins(&self.work);
        }
    }
}

/// `lvs unload`: detaches the director pinned at `dir` and removes its
/// pins, its staging leftovers and the neighbour entries `lvs load` made
/// on its links. Refused while an `lvs load` serves `dir`.
pub fn unload(dir: &Path) -> Result<String> {
    let _lock = DaemonLock::take(dir, "unload it (stop that daemon first)")?;
    loader::remove_pins(&staging_dir(dir));
    if !holds_director(dir) {
        return Ok(format!(
            "lvs: no director at {}; nothing to unload",
            dir.display()
        ));
    }
    let mut ifaces = links::pinned_ifaces(dir);
    if let Ok(Some(l)) = layout::read(dir) {
        ifaces.extend(l.ifaces);
    }
    ifaces.sort();
    ifaces.dedup();
    crate::neigh::remove_tagged(&ifaces);
    loader::remove_pins(dir);
    Ok(format!(
        "lvs: director at {} detached from {}; its pins are removed",
        dir.display(),
        if ifaces.is_empty() {
            "no link".to_owned()
        } else {
            ifaces.join(", ")
        }
    ))
}
