//! The pinned maps as one transactional table store, shared by `lvs` and
//! `lvsadm`. (Stub: signatures fixed, bodies being written.)

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::model::{ServiceAddr, Snapshot};

/// Default pin directory, overridden by `LVS_PIN_PATH` and `--pin-path`.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/lvs";

/// `--pin-path` if given, else `LVS_PIN_PATH`, else the default.
pub fn pin_path(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    match std::env::var_os("LVS_PIN_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PIN_PATH),
    }
}

pub struct Tables {}

impl Tables {
    /// Opens the maps pinned under `dir` and takes the directory's lock, so
    /// concurrent `lvsadm` runs are serialized.
    pub fn open(_dir: &Path) -> Result<Tables> {
        todo!()
    }
    /// Reads the whole configuration, with counters.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        todo!()
    }
    /// Writes `new`, given that the tables still hold what the last
    /// `snapshot()` returned (the lock guarantees that).
    pub fn commit(&mut self, _new: &Snapshot) -> Result<()> {
        todo!()
    }
    /// Zeroes the counters of one service (and its real servers) or of all.
    pub fn zero(&mut self, _svc: Option<&ServiceAddr>) -> Result<()> {
        todo!()
    }
}
