//! One run of one checker: the checker kind's probe, bounded by its
//! timeout (`connect_timeout`, or `misc_timeout` for MISC_CHECK), so a
//! hung or trickling server costs one failed check and nothing more.

use std::time::{Duration, Instant};

use crate::keepalived::model::{CheckKind, Checker};

/// What one run of a checker found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub ok: bool,
    /// `misc_dynamic`: the weight the exit code asked for.
    pub weight: Option<u32>,
    /// For logs and `lvsadm --health`: "HTTP_GET: status 500", …
    pub detail: String,
}

impl Probe {
    pub fn up(detail: impl Into<String>) -> Probe {
        Probe {
            ok: true,
            weight: None,
            detail: detail.into(),
        }
    }
    pub fn down(detail: impl Into<String>) -> Probe {
        Probe {
            ok: false,
            weight: None,
            detail: detail.into(),
        }
    }
}

/// keepalived's name of a checker kind, as its logs and configuration say it.
pub fn kind_name(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Tcp => "TCP_CHECK",
        CheckKind::Http(h) if h.tls => "SSL_GET",
        CheckKind::Http(_) => "HTTP_GET",
        CheckKind::Misc(_) => "MISC_CHECK",
        CheckKind::Udp(_) => "UDP_CHECK",
        CheckKind::Dns(_) => "DNS_CHECK",
    }
}

/// The bound of one run: MISC_CHECK has its own timeout, every other
/// checker its connect_timeout (the whole check, not only the connect).
pub fn budget(c: &Checker) -> Duration {
    match &c.kind {
        CheckKind::Misc(m) => m.timeout,
        _ => c.connect_timeout,
    }
}

/// Runs `c` once. Never takes longer than [`budget`] (plus scheduling).
pub async fn run(c: &Checker) -> Probe {
    let name = kind_name(&c.kind);
    let limit = budget(c);
    let start = Instant::now();
    let work = async {
        match &c.kind {
            CheckKind::Tcp => super::tcp::check(c).await,
            CheckKind::Http(h) => super::http::check(c, h).await,
            CheckKind::Misc(m) => super::misc::check(m).await,
            CheckKind::Udp(u) => super::udp::check(c, u, limit).await,
            CheckKind::Dns(d) => super::dns::check(c, d).await,
        }
    };
    let mut p = match tokio::time::timeout(limit, work).await {
        Ok(p) => p,
        Err(_) => Probe::down(format!("timeout after {:.1}s", limit.as_secs_f64())),
    };
    p.detail = format!(
        "{name} {}: {} ({} ms)",
        c.connect,
        p.detail,
        start.elapsed().as_millis()
    );
    p
}
