//! `--start-daemon`, `--stop-daemon` and `-L --daemon`: the sync daemon
//! runs inside `lvs load` (`crate::sync`), reached through its control
//! socket; the kernel's answers come back as ipvsadm prints them
//! ("Daemon has already run", "No daemon is running", "No such device"),
//! with ipvsadm's exit status for a refused change (255).

use std::path::Path;

use super::{
    command::{DaemonSpec, DaemonState},
    Error,
};
use crate::sync::{
    config::{DaemonConfig, Role},
    control,
};

fn role(s: DaemonState) -> Role {
    match s {
        DaemonState::Master => Role::Master,
        DaemonState::Backup => Role::Backup,
    }
}

fn refused(e: anyhow::Error) -> Error {
    match e.downcast::<control::Refused>() {
        Ok(r) => Error::op(r.0),
        Err(e) => Error::op(format!("lvsadm: {e:#}")),
    }
}

pub fn start(pin: &Path, s: &DaemonSpec) -> Result<(), Error> {
    let cfg = DaemonConfig {
        role: role(s.state),
        ifname: s.mcast_ifn.clone(),
        syncid: s.syncid,
        maxlen: (s.sync_maxlen != 0).then_some(s.sync_maxlen),
        group: s.mcast_group,
        port: (s.mcast_port != 0).then_some(s.mcast_port),
        ttl: (s.mcast_ttl != 0).then_some(s.mcast_ttl),
    };
    control::start(pin, &cfg).map_err(refused)
}

pub fn stop(pin: &Path, s: DaemonState) -> Result<(), Error> {
    control::stop(pin, role(s)).map_err(refused)
}

/// ipvsadm's lines, master first; nothing when no daemon runs.
pub fn list(pin: &Path) -> Result<String, Error> {
    let running = control::status(pin)
        .map_err(|e| Error::list(format!("lvsadm: can't read the sync daemon: {e:#}")))?;
    Ok(running.iter().map(|d| format!("{d}\n")).collect())
}
