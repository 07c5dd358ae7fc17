//! The health checker: keepalived's checker role for the virtual servers
//! of a keepalived.conf (`crate::keepalived`), keeping the tables as
//! keepalived would keep IPVS's.
//!
//! One concern per file: `probe` runs one check, bounded by its timeout,
//! through `tcp`, `http` (with `tls`), `misc`, `udp` and `dns` (`connect`
//! opens their sockets); `state` is keepalived's state machine of a
//! virtual server (retries live in `engine`'s checker loop), `desired` the
//! table a state stands for, `apply` writes the difference to the pinned
//! tables, `reload` carries state over a SIGHUP, `scripts` runs
//! notify/quorum scripts, `status` publishes the state for
//! `lvsadm -L -n --health` (formatted by `show`), and `engine` runs it all.

pub mod apply;
mod connect;
pub mod desired;
mod dns;
pub mod engine;
#[cfg(test)]
mod fixture;
mod http;
mod misc;
pub mod probe;
pub mod reload;
mod scripts;
pub mod show;
pub mod state;
pub mod status;
mod tcp;
mod tls;
mod udp;

use std::{path::Path, time::SystemTime};

use anyhow::{Context, Result};

use crate::keepalived::model::KaConfig;

pub use engine::Loader;

/// The start state of `cfg`, logged as keepalived logs its start.
pub fn start_states(cfg: &KaConfig) -> Vec<state::ServiceState> {
    let now = SystemTime::now();
    cfg.virtual_servers
        .iter()
        .map(|vs| {
            let (st, fx) = state::ServiceState::start(vs, now);
            engine::carry_out(fx);
            st
        })
        .collect()
}

/// The checker of `lvs load --config`, on its own thread and tokio
/// runtime (the daemon's main loop is never held up by a check). The
/// status file goes with it.
pub struct Running {
    pin_dir: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        status::remove(&self.pin_dir);
    }
}

/// Applies `cfg`'s start state to the tables under `work_dir` (before the
/// director says it is ready), then starts checking on a thread of its
/// own, changing the tables under `pin_dir` from then on. Returns once
/// the SIGHUP handler is in place.
pub fn start(
    config_path: &Path,
    load: Loader,
    cfg: KaConfig,
    work_dir: &Path,
    pin_dir: &Path,
    nodest: apply::Nodest,
) -> Result<Running> {
    let states = start_states(&cfg);
    let tables = engine::tables(&cfg, &states);
    let failed = engine::failed(&cfg, &states);
    apply::apply(work_dir, None, &tables, &failed, nodest)
        .context("applying the configuration's virtual servers")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (path, dir) = (config_path.to_path_buf(), pin_dir.to_path_buf());
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
            };
            rt.block_on(async move {
                let hup = match engine::hangup() {
                    Ok(h) => h,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                let _ = ready_tx.send(Ok(()));
                let engine = engine::Engine::new(&path, load, cfg, states, &dir, tables, nodest);
                engine.run(hup, std::future::pending()).await;
            });
        })
        .context("cannot start the health checker's thread")?;
    ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the health checker's thread ended at start"))?
        .map_err(|e| anyhow::anyhow!("health checker: {e}"))?;
    Ok(Running {
        pin_dir: pin_dir.to_path_buf(),
    })
}

/// `lvs check --config FILE --pin-path DIR`: the checker beside a director
/// started otherwise, until SIGINT/SIGTERM (which leave the tables as
/// they are).
pub async fn run_beside(
    config_path: &Path,
    load: Loader,
    pin_dir: &Path,
    nodest: apply::Nodest,
) -> Result<()> {
    let cfg = load(config_path)?;
    let hup = engine::hangup()?;
    let states = start_states(&cfg);
    let tables = engine::tables(&cfg, &states);
    let failed = engine::failed(&cfg, &states);
    apply::apply(pin_dir, None, &tables, &failed, nodest)
        .context("applying the configuration's virtual servers")?;
    println!(
        "lvs: checking the real servers of {} for the director at {}",
        config_path.display(),
        pin_dir.display()
    );
    let engine = engine::Engine::new(config_path, load, cfg, states, pin_dir, tables, nodest);
    let stop = async {
        let _ = crate::loader::wait_for_signal().await;
    };
    engine.run(hup, stop).await;
    Ok(())
}

/// Reads keepalived.conf (the parser's `FILE:LINE: …` on error), saying
/// what it skipped and warned about.
pub fn load(path: &Path) -> Result<KaConfig> {
    let cfg = crate::keepalived::load(path)?;
    if !cfg.skipped.is_empty() {
        log::info!(
            "{}: skipped {} (VRRP stays keepalived's job: run `keepalived --vrrp` beside lvs)",
            path.display(),
            cfg.skipped.join(", ")
        );
    }
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    Ok(cfg)
}

/// `lvs load --config`'s hook: [`start`] if a configuration was given.
pub fn start_with(
    opts: &crate::loader::LoadOpts,
    cfg: Option<KaConfig>,
    work_dir: &Path,
) -> Result<Option<Running>> {
    match (&opts.config, cfg) {
        (Some(path), Some(cfg)) => {
            let nodest = apply::Nodest {
                expire: opts.expire_nodest_conn,
            };
            start(path, load, cfg, work_dir, &opts.pin_dir, nodest).map(Some)
        }
        _ => Ok(None),
    }
}
