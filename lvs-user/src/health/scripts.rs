//! notify_up / notify_down / quorum_up / quorum_down: run by
//! `/bin/sh -c`, as keepalived runs them, without waiting for them; one
//! that runs longer than [`SCRIPT_TIMEOUT`] is killed.

use std::{process::Stdio, time::Duration};

use tokio::process::Command;

pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(script: &str) {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match cmd.spawn() {
        Ok(mut child) => {
            let script = script.to_owned();
            tokio::spawn(async move {
                match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
                    Ok(Ok(s)) if !s.success() => log::warn!("script `{script}` exited with {s}"),
                    Ok(_) => {}
                    Err(_) => log::warn!("script `{script}` killed after {SCRIPT_TIMEOUT:?}"),
                }
            });
        }
        Err(e) => log::warn!("cannot run script `{script}`: {e}"),
    }
}
