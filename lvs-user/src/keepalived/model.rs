//! The parsed keepalived.conf: virtual servers, their real servers and
//! checkers, every value with keepalived's default filled in (so the
//! checker never guesses a default).

use std::{net::IpAddr, net::SocketAddr, path::PathBuf, time::Duration};

use crate::model::{Method, Persistence, Scheduler, ServiceAddr};

/// Where a block came from, for messages (`FILE:LINE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: u32,
}

/// A whole configuration: the `virtual_server` blocks in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct KaConfig {
    pub virtual_servers: Vec<VirtualServer>,
    /// `FILE:LINE: …` for each value keepalived would also only warn
    /// about and default (no `lvs_sched`, `lvs_method` or `protocol`):
    /// `keepalived -t` exits non-zero on them, lvs-xdp applies the default
    /// and says so.
    pub warnings: Vec<String>,
    /// The names of the top-level blocks skipped (`global_defs`,
    /// `vrrp_instance`, `static_ipaddress`, …: keepalived's other parts),
    /// in file order, each once.
    pub skipped: Vec<String>,
}

/// One `virtual_server IP PORT { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServer {
    pub origin: Origin,
    /// `IP PORT` and `protocol` (UDP when absent, as keepalived 2.2 does,
    /// with a warning: the kernel's default for protocol 0).
    pub key: ServiceAddr,
    /// `lvs_sched` / `lb_algo` (keepalived's default: wlc).
    pub sched: Scheduler,
    /// `-b` flags from `flag-1`.. / `sh-port` etc. (lvs_common::SVC_F_*).
    pub sched_flags: u16,
    /// `lvs_method` / `lb_kind` (keepalived's default: NAT).
    pub method: Method,
    /// `persistence_timeout` (alone: 360 s, keepalived's six minutes) /
    /// `persistence_granularity`.
    pub persistence: Option<Persistence>,
    /// `delay_loop` (default 60 s): the period of every checker below.
    pub delay_loop: Duration,
    /// Defaults the real servers' checkers inherit when they set none:
    /// `connect_timeout`, `retry`, `delay_before_retry`, `warmup` (when
    /// unset here: 5 s, 1, 1 s and the delay_loop — but every [`Checker`]
    /// holds its own resolved values, with its kind's defaults; read
    /// those).
    pub connect_timeout: Duration,
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub warmup: Duration,
    /// `alpha`: real servers start as failed until a check succeeds.
    pub alpha: bool,
    /// `omega`: run notify_down on every real server when the virtual
    /// server is removed (reload).
    pub omega: bool,
    /// `quorum` (default 1), `hysteresis` (default 0), `quorum_up`,
    /// `quorum_down` (scripts).
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    /// `inhibit_on_failure` at the virtual-server level (the default of
    /// its real servers).
    pub inhibit_on_failure: bool,
    pub sorry_server: Option<SorryServer>,
    pub real_servers: Vec<RealServer>,
}

/// `sorry_server IP PORT`, `sorry_server_lvs_method`, `sorry_server_inhibit`.
#[derive(Clone, Debug, PartialEq)]
pub struct SorryServer {
    pub addr: SocketAddr,
    /// `sorry_server_lvs_method`, else the virtual server's method.
    pub method: Method,
    /// `sorry_server_inhibit`: kept in the table at weight 0 while not
    /// needed, instead of being removed.
    pub inhibit: bool,
}

/// One `real_server IP PORT { … }`.
#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    pub origin: Origin,
    pub addr: SocketAddr,
    /// `weight` (default 1, 0–65535 as ipvsadm).
    pub weight: u32,
    /// The virtual server's method (a real_server-level `lvs_method`, if
    /// supported, overrides it).
    pub method: Method,
    /// `uthreshold` / `lthreshold` (0 = none).
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// `inhibit_on_failure`: a failed server stays at weight 0.
    pub inhibit_on_failure: bool,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    /// `delay_loop` / `alpha` / `retry` … when set here, else the virtual
    /// server's (already resolved).
    pub delay_loop: Duration,
    pub alpha: bool,
    pub warmup: Duration,
    /// Every checker must succeed for the server to be up (keepalived).
    /// Empty: the server is always up.
    pub checkers: Vec<Checker>,
}

/// One checker block, its common options resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Checker {
    pub origin: Origin,
    pub kind: CheckKind,
    /// `connect_ip` / `connect_port` (default: the real server's address
    /// and port — never the VIP, so DR/TUN servers are checked directly).
    pub connect: SocketAddr,
    /// `bindto` / `bind_port`.
    pub bind: Option<IpAddr>,
    pub bind_port: Option<u16>,
    /// `connect_timeout` (default 5 s, or the virtual server's).
    pub connect_timeout: Duration,
    /// `retry` and `delay_before_retry`, defaults per checker as
    /// keepalived.conf(5) gives them.
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// `delay_loop` for this checker (default: the server's).
    pub delay_loop: Duration,
    /// `warmup` (default: up to delay_loop).
    pub warmup: Duration,
    /// `alpha` for this checker (default: the server's): it starts as
    /// failed.
    pub alpha: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// `TCP_CHECK`: a connect within connect_timeout.
    Tcp,
    /// `HTTP_GET` (tls: false) and `SSL_GET` (tls: true).
    Http(HttpCheck),
    /// `MISC_CHECK`.
    Misc(MiscCheck),
    /// `UDP_CHECK`: `payload`, `require_reply`.
    Udp(UdpCheck),
    /// `DNS_CHECK`: `type`, `name`.
    Dns(DnsCheck),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpCheck {
    pub tls: bool,
    /// `virtualhost` (Host header), else the connect address.
    pub virtualhost: Option<String>,
    /// `url { … }` blocks; the check succeeds when every URL does.
    pub urls: Vec<Url>,
    /// `http_protocol` (1.0 default, 1.0C, 1.1).
    pub http_protocol: String,
    /// `enable_sni` (SSL_GET).
    pub enable_sni: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Url {
    pub path: String,
    /// Accepted status codes; keepalived's default when none given:
    /// 200–299.
    pub status_codes: Vec<std::ops::RangeInclusive<u16>>,
    /// `digest`: MD5 of the body, lowercase hex.
    pub digest: Option<String>,
    /// The Host header: the url's `virtualhost`, else the checker's, the
    /// real server's or the virtual server's (resolved); None: the
    /// connect address.
    pub virtualhost: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MiscCheck {
    /// `misc_path`: the command line, run by /bin/sh -c as keepalived.
    pub path: String,
    /// `misc_timeout`, its default resolved as keepalived.conf(5) gives it.
    pub timeout: Duration,
    /// `misc_dynamic`: exit 0 up, 1 down, 2–255 up with weight = code − 2.
    pub dynamic: bool,
    /// `user USERNAME [GROUP]` is refused by the parser if not supported.
    pub user: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UdpCheck {
    /// `payload`; empty when none is given (keepalived then sends random
    /// bytes).
    pub payload: Vec<u8>,
    /// `require_reply [HEX]`: None, no reply needed (an ICMP error fails
    /// the check); Some(empty), any reply; Some(bytes), a reply starting
    /// with them (up to the shorter of the two).
    pub require_reply: Option<Vec<u8>>,
    /// `min_reply_length` (default 0) / `max_reply_length` (default 255).
    pub min_reply_length: u32,
    pub max_reply_length: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DnsCheck {
    /// `type` (default SOA) and `name` (default ".").
    pub qtype: String,
    pub name: String,
}
