//! What a lab owns, as a record shared by the lab ([`crate::Lab`]), the
//! namespace handles it gives out ([`crate::Netns`], which spawn processes
//! into it) and the sweeper of leftovers (which reads and removes kept
//! records). A leaf module: it depends on none of them, so they need not
//! depend on each other for these types.

use std::{
    path::PathBuf,
    process::Command,
    sync::{Mutex, MutexGuard, PoisonError},
};

use anyhow::Result;

use crate::process::Proc;

/// A lab's registry of what it created, removed when the lab drops.
pub(crate) struct Shared {
    pub(crate) prefix: String,
    pub(crate) workdir: PathBuf,
    pub(crate) namespaces: Mutex<Vec<String>>,
    pub(crate) pins: Mutex<Vec<PathBuf>>,
    pub(crate) procs: Mutex<Vec<Proc>>,
}

impl Shared {
    pub(crate) fn spawn(&self, name: &str, cmd: Command) -> Result<Proc> {
        let mut procs = locked(&self.procs);
        // Names only pick the log file; repeats get a counter.
        let taken = |n: &str| procs.iter().any(|p| p.name() == n);
        let mut unique = name.to_owned();
        let mut i = 1;
        while taken(&unique) {
            i += 1;
            unique = format!("{name}.{i}");
        }
        let log = self
            .workdir
            .join(format!("{}.log", unique.replace('/', "_")));
        let p = Proc::spawn(&unique, cmd, &log)?;
        procs.push(p.clone());
        Ok(p)
    }
}

/// What a kept lab left running, for the user and for [`crate::clean_kept`].
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub prefix: String,
    pub namespaces: Vec<String>,
    pub pins: Vec<PathBuf>,
    pub workdir: PathBuf,
    pub pids: Vec<u32>,
}

/// Poison-tolerant: cleanup runs in Drop, often while a test is already
/// unwinding, and must not turn that into an abort.
pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Parent of all lab work directories.
pub(crate) fn work_root() -> PathBuf {
    std::env::temp_dir().join("lvs-lab")
}
