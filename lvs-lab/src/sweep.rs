//! Leftovers: labs of processes that died without cleaning up (SIGKILL,
//! abort, power loss mid-test), and labs deliberately kept by `--keep`.

use std::{
    collections::HashSet,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{
    bpffs, names, netns,
    process::{self, STOP_GRACE},
    registry::{work_root, Kept},
};

const KEPT_DIR: &str = "/run/lvs-lab/kept";

/// Removes namespaces (and the processes still in them), pin directories
/// and work directories whose owning process is gone, except kept labs.
/// Returns what it removed.
pub fn sweep_stale() -> Result<Vec<String>> {
    let kept: HashSet<String> = kept_records().into_iter().map(|k| k.prefix).collect();
    let stale = |name: &str| {
        names::parse(name)
            .is_some_and(|(prefix, pid)| !names::pid_alive(pid) && !kept.contains(prefix))
    };
    let mut removed = Vec::new();
    for name in netns::list().into_iter().filter(|n| stale(n)) {
        process::terminate_pids(&netns::pids(&name), STOP_GRACE);
        netns::delete(&name)?;
        removed.push(format!("netns {name}"));
    }
    if bpffs::bpffs_mounted() {
        for dir in entries(Path::new(bpffs::BPFFS), &stale) {
            bpffs::remove_pins(&dir)?;
            removed.push(format!("pins {}", dir.display()));
        }
    }
    for dir in entries(&work_root(), &stale) {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if dir.exists() => {
                return Err(e).with_context(|| format!("removing {}", dir.display()))
            }
            _ => removed.push(format!("dir {}", dir.display())),
        }
    }
    Ok(removed)
}

fn entries(dir: &Path, pick: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().into_string().ok()?;
        pick(&name).then(|| e.path())
    })
    .collect()
}

pub(crate) fn record_kept(k: &Kept) -> Result<()> {
    std::fs::create_dir_all(KEPT_DIR).with_context(|| format!("creating {KEPT_DIR}"))?;
    let mut text = String::new();
    for n in &k.namespaces {
        writeln!(text, "ns {n}")?;
    }
    for p in &k.pins {
        writeln!(text, "pin {}", p.display())?;
    }
    writeln!(text, "dir {}", k.workdir.display())?;
    for pid in &k.pids {
        writeln!(text, "pid {pid}")?;
    }
    let path = Path::new(KEPT_DIR).join(&k.prefix);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Labs left behind by [`crate::Lab::keep`].
pub fn kept_records() -> Vec<Kept> {
    entries(Path::new(KEPT_DIR), &|n| names::parse(n).is_some())
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let mut k = Kept {
                prefix: path.file_name()?.to_str()?.to_owned(),
                ..Kept::default()
            };
            for line in text.lines() {
                match line.split_once(' ') {
                    Some(("ns", v)) => k.namespaces.push(v.to_owned()),
                    Some(("pin", v)) => k.pins.push(v.into()),
                    Some(("dir", v)) => k.workdir = v.into(),
                    Some(("pid", v)) => k.pids.extend(v.parse::<u32>().ok()),
                    _ => {}
                }
            }
            Some(k)
        })
        .collect()
}

/// Tears down every kept lab (see [`Kept::clean`]).
pub fn clean_kept() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for k in kept_records() {
        removed.extend(k.clean()?);
    }
    Ok(removed)
}

impl Kept {
    /// Stops the processes inside its namespaces (recorded pids only count
    /// while they still live in one of them, so a recycled pid is never
    /// hit), then deletes namespaces, pins, files and the record.
    pub fn clean(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut pids: Vec<u32> = self
            .namespaces
            .iter()
            .flat_map(|n| netns::pids(n))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        process::terminate_pids(&pids, STOP_GRACE);
        removed.extend(pids.iter().map(|pid| format!("pid {pid}")));
        for n in &self.namespaces {
            // Only names a lab could have made: the record is plain text.
            if names::parse(n).is_some() {
                netns::delete(n)?;
                removed.push(format!("netns {n}"));
            }
        }
        for p in &self.pins {
            bpffs::remove_pins(p)?;
            removed.push(format!("pins {}", p.display()));
        }
        if self.workdir.starts_with(work_root()) && self.workdir.exists() {
            std::fs::remove_dir_all(&self.workdir)?;
            removed.push(format!("dir {}", self.workdir.display()));
        }
        match std::fs::remove_file(Path::new(KEPT_DIR).join(&self.prefix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(removed)
    }
}
