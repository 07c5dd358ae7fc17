//! One parsed ipvsadm command line: what [`args::parse`](super::args::parse)
//! produces and what the support check, `apply`, `format` and `restore`
//! consume.
//!
//! A leaf module (it needs only the model), so that the parser and the
//! modules reading its result do not depend on each other.

use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Method, ServiceAddr, Timeouts};

/// A persistence granularity (`-M`): a netmask for IPv4 services, a prefix
/// length for IPv6 ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Netmask {
    V4(Ipv4Addr),
    V6(u8),
}

/// `-A` / `-E`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub key: ServiceAddr,
    /// The scheduler name as given (unchecked: an unknown name is the
    /// kernel's error, reported by `apply`), "wlc" if none.
    pub sched: String,
    /// `-p [timeout]`.
    pub persistent: Option<u32>,
    /// `-M`.
    pub netmask: Option<Netmask>,
    /// `-o`.
    pub ops: bool,
    /// `-b`, as `lvs_common::SVC_F_SCHED*` bits.
    pub sched_flags: Option<u16>,
    /// `--pe`.
    pub pe: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelType {
    Ipip,
    Gue,
}

/// `--tun-type`, `--tun-port`, `--tun-nocsum|--tun-csum|--tun-remcsum`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelSpec {
    pub kind: TunnelType,
    pub port: Option<u16>,
    /// "nocsum", "csum" or "remcsum".
    pub csum: Option<&'static str>,
}

impl TunnelSpec {
    /// `--tun-type ipip` alone: the default, what `-i` means anyway (and
    /// what `-S` writes for a tunnelling server).
    pub fn is_default(&self) -> bool {
        self.kind == TunnelType::Ipip && self.port.is_none() && self.csum.is_none()
    }
}

/// `-a` / `-e`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub service: ServiceAddr,
    pub addr: IpAddr,
    pub port: u16,
    pub method: Method,
    pub weight: u32,
    /// `-x`.
    pub u_threshold: Option<u32>,
    /// `-y`.
    pub l_threshold: Option<u32>,
    /// Some if any tunnel option was given.
    pub tunnel: Option<TunnelSpec>,
}

/// `-d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerKey {
    pub service: ServiceAddr,
    pub addr: IpAddr,
    pub port: u16,
}

/// `-L` and its options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// `-t|-u VIP:PORT`: list this service only.
    pub service: Option<ServiceAddr>,
    pub numeric: bool,
    /// `-c`.
    pub connection: bool,
    /// `--timeout`.
    pub timeout: bool,
    /// `--daemon`.
    pub daemon: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub exact: bool,
    pub tun_info: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonState {
    Master,
    Backup,
}

/// `--start-daemon`'s values (ipvsadm's `ipvs_daemon_t`, zeroed first:
/// 0 and `None` are "the kernel's default").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSpec {
    pub state: DaemonState,
    /// `--mcast-interface`, at most 15 bytes as ipvsadm keeps it.
    pub mcast_ifn: String,
    /// `--syncid`.
    pub syncid: u8,
    /// `--sync-maxlen`.
    pub sync_maxlen: u32,
    /// `--mcast-group`.
    pub mcast_group: Option<std::net::IpAddr>,
    /// `--mcast-port`.
    pub mcast_port: u16,
    /// `--mcast-ttl`.
    pub mcast_ttl: u8,
}

/// One ipvsadm command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DeleteService(ServiceAddr),
    /// `-C`.
    Clear,
    AddServer(ServerSpec),
    EditServer(ServerSpec),
    DeleteServer(ServerKey),
    List(ListOpts),
    /// `-Z [service]`.
    Zero(Option<ServiceAddr>),
    Save {
        numeric: bool,
    },
    Restore,
    /// `--set TCP TCPFIN UDP`; 0 leaves a value unchanged.
    SetTimeouts(Timeouts),
    StartDaemon(DaemonSpec),
    StopDaemon(DaemonState),
    Help,
    Version,
}
