//! The daemon lock: one `lvs load` per pin directory. bpffs holds no plain
//! files and the directory's own flock is `lvsadm`'s, so the lock is a
//! file under `/run/lvs` named after the pin directory, holding the
//! holder's pid for the refusal's message.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// Where the lock files live (`$LVS_RUN_DIR` overrides it).
pub fn run_dir() -> PathBuf {
    std::env::var_os("LVS_RUN_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/run/lvs"), PathBuf::from)
}

/// The lock file of pin directory `dir`: its path with `%` and `/`
/// percent-encoded, so distinct directories never share one.
pub fn lock_path(dir: &Path) -> PathBuf {
    lock_path_in(&run_dir(), dir)
}

fn lock_path_in(run: &Path, dir: &Path) -> PathBuf {
    run.join(format!("load-{}.lock", encode(dir)))
}

/// A pin directory's path with `%` and `/` percent-encoded: the part of
/// the names of its files under [`run_dir`] (this lock, the health
/// checker's status) that keeps distinct directories apart.
pub fn encode(dir: &Path) -> String {
    let s = dir.to_string_lossy();
    let s = s.trim_end_matches('/');
    s.replace('%', "%25").replace('/', "%2F")
}

/// Held while an `lvs load` (or `lvs unload`) works on a pin directory;
/// the file goes when it is dropped.
pub struct DaemonLock {
    file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock of `dir` at once, or says who holds it and that it
    /// refuses to `what` (e.g. "start a second one").
    pub fn take(dir: &Path, what: &str) -> Result<DaemonLock> {
        Self::take_in(&run_dir(), dir, what)
    }

    fn take_in(run: &Path, dir: &Path, what: &str) -> Result<DaemonLock> {
        let path = lock_path_in(run, dir);
        std::fs::create_dir_all(run).with_context(|| format!("cannot create {}", run.display()))?;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            // SAFETY: flock on our own descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                bail!(
                    "another `lvs load` ({}) serves {}: refusing to {what} (lock {})",
                    if pid.is_empty() {
                        "pid unknown".to_owned()
                    } else {
                        format!("pid {pid}")
                    },
                    dir.display(),
                    path.display()
                );
            }
            // The holder before us may have removed the file after we
            // opened it: then our lock is on a file nobody else will see.
            let same = std::fs::metadata(&path)
                .ok()
                .zip(file.metadata().ok())
                .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
            if !same {
                continue;
            }
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            return Ok(DaemonLock { file, path });
        }
    }
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        // Removed while still held, so a waiting taker sees it gone.
        let _ = std::fs::remove_file(&self.path);
        let _ = &self.file;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_distinct_per_directory() {
        let a = lock_path(Path::new("/sys/fs/bpf/lvs"));
        assert_eq!(a, lock_path(Path::new("/sys/fs/bpf/lvs/")));
        assert_ne!(a, lock_path(Path::new("/sys/fs/bpf/lvs-a")));
        assert_ne!(
            lock_path(Path::new("/sys/fs/bpf/a%2Fb")),
            lock_path(Path::new("/sys/fs/bpf/a/b"))
        );
        assert!(a.ends_with("load-%2Fsys%2Ffs%2Fbpf%2Flvs.lock"));
    }

    #[test]
    fn a_second_taker_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("lvs-lock-test-{}", std::process::id()));
        let pins = Path::new("/sys/fs/bpf/lock-test");
        let first = DaemonLock::take_in(&dir, pins, "x").unwrap();
        let e = DaemonLock::take_in(&dir, pins, "x")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(first);
        assert!(!lock_path_in(&dir, pins).exists());
        drop(DaemonLock::take_in(&dir, pins, "x").unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
