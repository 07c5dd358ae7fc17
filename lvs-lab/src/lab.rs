//! A lab owns everything it creates (namespaces, processes, pin and work
//! directories) and removes all of it on drop, panics included.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, Once},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::{
    bpffs, names,
    netns::{self, Netns},
    process::{self, Proc},
    registry::{locked, work_root, Kept, Shared},
    sweep,
};

pub struct Lab {
    shared: Arc<Shared>,
    kept: bool,
}

impl Lab {
    /// A new, empty lab. The first lab of a process also sweeps leftovers
    /// of dead processes, so crashed runs do not accumulate.
    pub fn new(tag: &str) -> Result<Lab> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| {
            if let Err(e) = sweep::sweep_stale() {
                eprintln!("lvs-lab: sweeping stale labs: {e:#}");
            }
        });
        let prefix = names::new_prefix(tag);
        let workdir = work_root().join(&prefix);
        std::fs::create_dir_all(&workdir)
            .with_context(|| format!("creating {}", workdir.display()))?;
        Ok(Lab {
            shared: Arc::new(Shared {
                prefix,
                workdir,
                namespaces: Mutex::default(),
                pins: Mutex::default(),
                procs: Mutex::default(),
            }),
            kept: false,
        })
    }

    /// The unique `lvs{tag}-{pid}x{n}` every name of this lab starts with.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// A private scratch directory (configs, logs), removed on drop.
    pub fn workdir(&self) -> &Path {
        &self.shared.workdir
    }

    /// Creates namespace `{prefix}-{role}` with loopback up.
    pub fn ns(&self, role: &str) -> Result<Netns> {
        if role.is_empty() || !role.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("namespace role {role:?}: use letters, digits and '-'");
        }
        let name = format!("{}-{role}", self.shared.prefix);
        {
            let mut all = locked(&self.shared.namespaces);
            if all.contains(&name) {
                bail!("namespace {role:?} already exists in this lab");
            }
            netns::create(&name)?;
            all.push(name.clone());
        }
        let ns = Netns::new(name, role.to_owned(), self.shared.clone());
        ns.setup_fresh()?;
        Ok(ns)
    }

    /// `/sys/fs/bpf/{prefix}` (created, bpffs mounted if needed); removed
    /// recursively on drop.
    pub fn pin_dir(&self) -> Result<PathBuf> {
        self.pin_subdir("")
    }

    /// `/sys/fs/bpf/{prefix}-{name}`, for labs running several directors.
    pub fn pin_subdir(&self, name: &str) -> Result<PathBuf> {
        bpffs::ensure_bpffs()?;
        let leaf = if name.is_empty() {
            self.shared.prefix.clone()
        } else {
            format!("{}-{name}", self.shared.prefix)
        };
        let dir = Path::new(bpffs::BPFFS).join(leaf);
        let mut pins = locked(&self.shared.pins);
        if !pins.contains(&dir) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            pins.push(dir.clone());
        }
        Ok(dir)
    }

    /// Spawns a long-running command (usually from [`Netns::command`]),
    /// logging to `{workdir}/{name}.log`; stopped when the lab drops.
    pub fn spawn(&self, name: &str, cmd: Command) -> Result<Proc> {
        self.shared.spawn(name, cmd)
    }

    pub fn namespaces(&self) -> Vec<String> {
        locked(&self.shared.namespaces).clone()
    }

    pub fn procs(&self) -> Vec<Proc> {
        locked(&self.shared.procs).clone()
    }

    /// Leaves everything in place and records it under /run/lvs-lab/kept so
    /// that [`sweep::clean_kept`] can remove it later and
    /// [`sweep::sweep_stale`] leaves it alone.
    pub fn keep(mut self) -> Result<Kept> {
        // A process spawned a moment ago may still be nsenter, not yet in
        // its namespace; cleaning finds processes by namespace.
        let namespaces = self.namespaces();
        for p in self.procs() {
            process::wait_until(Duration::from_secs(2), || {
                !p.is_running() || netns::pid_in(p.pid(), &namespaces)
            });
        }
        let kept = Kept {
            prefix: self.shared.prefix.clone(),
            namespaces: self.namespaces(),
            pins: locked(&self.shared.pins).clone(),
            workdir: self.shared.workdir.clone(),
            pids: self
                .procs()
                .iter()
                .filter(|p| p.is_running())
                .map(Proc::pid)
                .collect(),
        };
        sweep::record_kept(&kept)?;
        self.kept = true;
        Ok(kept)
    }

    fn cleanup(&self) {
        let procs = std::mem::take(&mut *locked(&self.shared.procs));
        process::terminate(&procs, process::STOP_GRACE);
        let namespaces = std::mem::take(&mut *locked(&self.shared.namespaces));
        // Grandchildren (a shell's children, nginx workers) are not ours to
        // wait for, but they would keep a deleted namespace alive.
        let strays: Vec<u32> = namespaces.iter().flat_map(|n| netns::pids(n)).collect();
        if !strays.is_empty() {
            process::terminate_pids(&strays, process::STOP_GRACE);
        }
        for name in namespaces.iter().rev() {
            if let Err(e) = netns::delete(name) {
                eprintln!("lvs-lab: {e:#}");
            }
        }
        for dir in std::mem::take(&mut *locked(&self.shared.pins)) {
            // `DIR-staging` is where `lvs load` prepares a director before
            // it is ready (left behind if it was killed meanwhile).
            let mut staging = dir.clone().into_os_string();
            staging.push("-staging");
            for d in [dir, PathBuf::from(staging)] {
                if let Err(e) = bpffs::remove_pins(&d) {
                    eprintln!("lvs-lab: {e:#}");
                }
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.shared.workdir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("lvs-lab: removing {}: {e}", self.shared.workdir.display());
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.kept {
            self.cleanup();
        }
    }
}
