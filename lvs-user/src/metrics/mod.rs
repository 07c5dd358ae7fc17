//! What `lvs load` tells monitoring: the rate estimator (`crate::rate`,
//! always: `lvsadm -L --rate` reads it) and, with `--metrics ADDR:PORT`,
//! Prometheus text at `/metrics` ([`http`], rendered by [`expo`] from a
//! lock-free look at the pinned tables, [`view`]).
//!
//! Both run on threads of their own, with the maps opened by path at the
//! start: the daemon's loop (sweeps, neighbour upkeep) and they never wait
//! for each other, and a scraper cannot reach the loop at all.

pub mod expo;
pub mod http;
pub mod view;

use std::{net::SocketAddr, path::Path};

use anyhow::Result;

/// The estimator and the server of one `lvs load`; both stop when dropped.
pub struct Monitoring {
    pub server: Option<http::Server>,
    _rate: crate::rate::Running,
}

/// Starts the estimator for the director pinned under `dir`, and the
/// `/metrics` server on `metrics` if given (binding it now, so that a bad
/// address stops the start before the director is published).
pub fn start(dir: &Path, pin_dir: &Path, metrics: Option<SocketAddr>) -> Result<Monitoring> {
    let rate = crate::rate::start(dir)?;
    let server = metrics.map(|a| http::start(dir, pin_dir, a)).transpose()?;
    if let Some(s) = &server {
        log::info!("metrics at http://{}/metrics", s.addr);
    }
    Ok(Monitoring {
        server,
        _rate: rate,
    })
}
