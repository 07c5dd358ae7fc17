//! `lvs load --bgp bird`: announcing the VIPs through BIRD 2, which alone
//! speaks BGP. lvs writes the routes BIRD exports into a file the
//! operator's `bird.conf` includes ([`include`]) and asks BIRD to read its
//! configuration again over the control socket ([`control`]).
//!
//! The rule ([`announced`]): a VIP is announced while the director is
//! attached to every link it was loaded on and at least one service on
//! that VIP has a member with weight > 0 (a removed or inhibited real
//! server is absent or weight 0 in the tables, whoever removed it:
//! `lvsadm`, a health checker). It is looked at twice a second on a
//! thread of its own, with the maps opened by path and read without a
//! lock (as `/metrics` does), so neither the daemon's loop nor BIRD's
//! answers wait for each other. On stop the VIPs stay announced (the
//! director keeps forwarding without its daemon) unless `--withdraw` (or
//! `--detach-on-exit`, which stops forwarding) asks otherwise.

pub mod control;
pub mod include;

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};

use crate::metrics::view::{Maps, SvcView};

/// How often the rule is looked at: a VIP is withdrawn within a period,
/// BIRD's reconfiguration and BGP's update after it (well within 3 s).
pub const PERIOD: Duration = Duration::from_millis(500);
/// Bound on one exchange with BIRD.
pub const BIRD_TIMEOUT: Duration = Duration::from_secs(2);
/// Debian's bird2 control socket.
pub const DEFAULT_SOCKET: &str = "/run/bird/bird.ctl";
/// Where the include goes unless `--bird-include` says.
pub const DEFAULT_INCLUDE: &str = "/etc/bird/lvs-vips.conf";

/// `--bgp bird` and its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpOpts {
    /// `--bird-socket`: BIRD's control socket.
    pub socket: PathBuf,
    /// `--bird-include`: the file `bird.conf` includes.
    pub include: PathBuf,
    /// `--withdraw`: withdraw every VIP when the daemon stops.
    pub withdraw: bool,
}

/// The VIPs to announce given the live services (see the module docs).
pub fn announced(attached: bool, services: &[SvcView]) -> BTreeSet<IpAddr> {
    if !attached {
        return BTreeSet::new();
    }
    services
        .iter()
        .filter(|s| s.reals.iter().any(|r| r.weight > 0))
        .map(|s| crate::tables::words_addr(s.key.addr, s.key.family))
        .collect()
}

/// Whether every link in `ifaces` runs the program of its link pinned
/// under `dir` (a link detached by hand, or a pin removed, is not).
pub fn attached(dir: &Path, ifaces: &[String]) -> bool {
    use crate::life::links;
    !ifaces.is_empty()
        && ifaces.iter().all(|iface| {
            let Some((_, prog)) = links::pinned_link(&links::link_pin(dir, iface)) else {
                return false;
            };
            links::ifindex(iface)
                .and_then(links::xdp_prog_ids)
                .is_ok_and(|ids| ids.contains(&prog))
        })
}

/// Refuses options lvs could not act on, before anything is attached.
pub fn check(opts: &BgpOpts) -> Result<()> {
    include::check(&opts.include)
}

/// What the announcer last got BIRD to take.
struct State {
    opts: BgpOpts,
    /// The include's text as last written.
    written: Option<String>,
    /// BIRD took the written text (a failed `configure` is tried again).
    configured: bool,
    /// The last error logged, so a lasting one is logged once.
    last_error: Option<String>,
    announced: BTreeSet<IpAddr>,
}

impl State {
    fn apply(&mut self, vips: BTreeSet<IpAddr>) {
        let text = include::render(&vips);
        let result = (|| -> Result<()> {
            if self.written.as_deref() != Some(&text) {
                include::write(&self.opts.include, &text)?;
                self.written = Some(text);
                self.configured = false;
            }
            if !self.configured {
                control::configure(&self.opts.socket, BIRD_TIMEOUT)?;
                self.configured = true;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if self.last_error.take().is_some() {
                    log::info!("bgp: BIRD took the VIP routes again");
                }
                for v in vips.difference(&self.announced) {
                    log::info!("bgp: announcing {v}");
                }
                for v in self.announced.difference(&vips) {
                    log::info!("bgp: withdrawing {v}");
                }
                self.announced = vips;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if self.last_error.as_deref() != Some(&msg) {
                    log::warn!("bgp: {msg} (trying again every {PERIOD:?})");
                }
                self.last_error = Some(msg);
            }
        }
    }
}

/// The announcer thread of one `lvs load`.
pub struct Announcer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts announcing the VIPs of the director pinned under `dir`, attached
/// to `ifaces`; `withdraw` withdraws them all when it stops.
pub fn start(dir: &Path, ifaces: &[String], opts: BgpOpts, withdraw: bool) -> Result<Announcer> {
    let maps = Maps::open(dir).context("bgp: opening the tables")?;
    let dir = dir.to_owned();
    let ifaces = ifaces.to_vec();
    let (tx, rx) = mpsc::channel::<()>();
    let withdraw = withdraw || opts.withdraw;
    let mut state = State {
        opts,
        written: None,
        configured: false,
        last_error: None,
        announced: BTreeSet::new(),
    };
    let thread = std::thread::Builder::new()
        .name("lvs-bgp".into())
        .spawn(move || {
            let mut read_failed = false;
            loop {
                // A table that cannot be read changes nothing: withdrawing
                // on a read error would take a working director away.
                match maps.services() {
                    Ok(services) => {
                        read_failed = false;
                        state.apply(announced(attached(&dir, &ifaces), &services));
                    }
                    Err(e) if !read_failed => {
                        read_failed = true;
                        log::warn!("bgp: reading the services: {e:#} (announcements unchanged)");
                    }
                    Err(_) => {}
                }
                match rx.recv_timeout(PERIOD) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            if withdraw {
                state.apply(BTreeSet::new());
            }
        })?;
    Ok(Announcer {
        stop: Some(tx),
        thread: Some(thread),
    })
}

impl Announcer {
    /// Stops the thread (withdrawing, if asked) and waits for it.
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::view::RealView;
    use lvs_common::ServiceKey;

    fn svc(vip: &str, port: u16, weights: &[u32]) -> SvcView {
        let a: IpAddr = vip.parse().unwrap();
        SvcView {
            key: ServiceKey {
                addr: crate::tables::addr_words(a),
                port: port.to_be(),
                proto: lvs_common::PROTO_TCP,
                family: if a.is_ipv4() { 2 } else { 10 },
            },
            id: 0,
            stats: Default::default(),
            reals: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| RealView {
                    idx: i as u32,
                    generation: 1,
                    addr: "192.168.51.129".parse().unwrap(),
                    port: 80,
                    weight,
                    active: 0,
                    inactive: 0,
                    stats: Default::default(),
                })
                .collect(),
        }
    }

    fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_vip_needs_one_service_with_a_weighted_member() {
        let services = [
            svc("192.168.52.1", 80, &[0, 1]),
            svc("192.168.52.2", 80, &[0, 0]),
            svc("192.168.52.3", 80, &[]),
            svc("192.168.52.4", 80, &[0]),
            svc("192.168.52.4", 443, &[3]),
            svc("2001:db8:52::1", 80, &[1]),
        ];
        assert_eq!(
            announced(true, &services),
            set(&["192.168.52.1", "192.168.52.4", "2001:db8:52::1"])
        );
        assert!(announced(false, &services).is_empty());
        assert!(announced(true, &[]).is_empty());
    }
}
