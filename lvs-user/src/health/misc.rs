//! MISC_CHECK: `/bin/sh -c misc_path`, as keepalived runs it, killed with
//! its process group when misc_timeout passes. Exit 0 is up, anything
//! else down; with `misc_dynamic` exit 1 is down and 2–255 up with weight
//! `code − 2` (keepalived's rule), exit 0 up with the weight unchanged.

use std::process::Stdio;

use tokio::process::Command;

use super::probe::Probe;
use crate::keepalived::model::MiscCheck;

/// Kills the script's process group if the check is dropped (timed out)
/// before it ended: keepalived kills a script that overruns misc_timeout.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: a signal to the process group this check started.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

pub async fn check(m: &MiscCheck) -> Probe {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&m.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Probe::down(format!("cannot run /bin/sh: {e}")),
    };
    let mut group = Group(child.id().map(|p| p as i32));
    let status = child.wait().await;
    group.0 = None;
    match status {
        Ok(s) => verdict(s.code(), m.dynamic),
        Err(e) => Probe::down(format!("wait: {e}")),
    }
}

/// The probe of an exit code (`None`: killed by a signal).
pub fn verdict(code: Option<i32>, dynamic: bool) -> Probe {
    match code {
        None => Probe::down("killed by a signal"),
        Some(0) => Probe::up("exit 0"),
        Some(c) if dynamic && (2..=255).contains(&c) => Probe {
            ok: true,
            weight: Some(c as u32 - 2),
            detail: format!("exit {c}, weight {}", c - 2),
        },
        Some(c) => Probe::down(format!("exit {c}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_as_keepalived_reads_them() {
        assert!(verdict(Some(0), false).ok);
        assert!(!verdict(Some(1), false).ok);
        assert!(!verdict(Some(2), false).ok);
        assert!(!verdict(None, true).ok);
        assert_eq!(verdict(Some(0), true).weight, None);
        assert!(!verdict(Some(1), true).ok);
        let p = verdict(Some(2), true);
        assert!(p.ok && p.weight == Some(0));
        let p = verdict(Some(12), true);
        assert!(p.ok && p.weight == Some(10));
        assert_eq!(verdict(Some(255), true).weight, Some(253));
    }
}
