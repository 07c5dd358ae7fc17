//! Where the maps are pinned, opening them there, and the pin directory's
//! lock that serializes table edits.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::maps::MapData;

/// Default pin directory, overridden by `LVS_PIN_PATH` and `--pin-path`.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/lvs";

/// How long [`Tables::open`](super::Tables::open) waits for the lock (held
/// by another `lvsadm`, or for a moment by the sweeper).
const LOCK_WAIT: Duration = Duration::from_secs(30);

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

pub(super) fn open_map(dir: &Path, name: &str) -> Result<MapData> {
    let p = dir.join(name);
    MapData::from_pin(&p).with_context(|| {
        format!(
            "cannot open {} (is `lvs load` running with --pin-path {}?)",
            p.display(),
            dir.display()
        )
    })
}

/// Takes the pin directory's lock if it is free at once (the sweeper
/// skips its table edits while an `lvsadm` runs).
pub fn try_lock_dir(dir: &Path) -> Option<File> {
    let f = File::open(dir).ok()?;
    (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(f)
}

/// Takes the pin directory's lock, waiting up to [`LOCK_WAIT`] for
/// another holder to finish.
pub(super) fn lock_dir(dir: &Path) -> Result<File> {
    let f = File::open(dir).with_context(|| {
        format!(
            "cannot open pin directory {} (is `lvs load` running?)",
            dir.display()
        )
    })?;
    let start = Instant::now();
    loop {
        // flock works on a directory fd, and bpffs cannot hold a lock file.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        if start.elapsed() > LOCK_WAIT {
            bail!("timed out waiting for the lock on {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
