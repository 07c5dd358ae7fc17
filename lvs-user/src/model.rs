//! The director's configuration as an operator sees it: virtual services and
//! their real servers, in plain Rust types.
//!
//! `lvsadm` reads a [`Snapshot`] from the pinned maps, applies a whole command
//! (or a whole restore file) to it in memory, and only if every step is valid
//! hands the result to [`crate::tables::Tables::commit`], which writes the
//! difference in an order that never exposes half a service. Parsing,
//! formatting and validation therefore never touch a map and are unit-tested
//! on the host.

use std::fmt;
use std::net::IpAddr;

pub use lvs_common::Stats;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn code(self) -> u8 {
        match self {
            Proto::Tcp => lvs_common::PROTO_TCP,
            Proto::Udp => lvs_common::PROTO_UDP,
        }
    }
    pub fn from_code(c: u8) -> Option<Proto> {
        match c {
            lvs_common::PROTO_TCP => Some(Proto::Tcp),
            lvs_common::PROTO_UDP => Some(Proto::Udp),
            _ => None,
        }
    }
    /// "TCP"/"UDP" as `ipvsadm -L` prints the protocol column.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
    /// "-t"/"-u" as `ipvsadm -S` prints it.
    pub fn flag(self) -> &'static str {
        match self {
            Proto::Tcp => "-t",
            Proto::Udp => "-u",
        }
    }
}

/// Forwarding method of one real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Direct routing, `-g` ("Route").
    Route,
    /// IP-in-IP tunnelling, `-i` ("Tunnel").
    Tunnel,
    /// NAT, `-m` ("Masq").
    Masq,
}

impl Method {
    pub fn code(self) -> u8 {
        match self {
            Method::Route => lvs_common::METHOD_ROUTE,
            Method::Tunnel => lvs_common::METHOD_TUNNEL,
            Method::Masq => lvs_common::METHOD_MASQ,
        }
    }
    pub fn from_code(c: u8) -> Option<Method> {
        match c {
            lvs_common::METHOD_ROUTE => Some(Method::Route),
            lvs_common::METHOD_TUNNEL => Some(Method::Tunnel),
            lvs_common::METHOD_MASQ => Some(Method::Masq),
            _ => None,
        }
    }
    /// The `Forward` column of `ipvsadm -L`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Route => "Route",
            Method::Tunnel => "Tunnel",
            Method::Masq => "Masq",
        }
    }
    /// The flag of `ipvsadm -S`.
    pub fn flag(self) -> &'static str {
        match self {
            Method::Route => "-g",
            Method::Tunnel => "-i",
            Method::Masq => "-m",
        }
    }
}

/// The fourteen IPVS schedulers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh,
    Twos,
}

impl Scheduler {
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::Twos,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Twos => "twos",
        }
    }

    pub fn from_name(s: &str) -> Option<Scheduler> {
        Scheduler::ALL.into_iter().find(|x| x.name() == s)
    }

    pub fn code(self) -> u8 {
        use lvs_common::sched::*;
        match self {
            Scheduler::Rr => RR,
            Scheduler::Wrr => WRR,
            Scheduler::Lc => LC,
            Scheduler::Wlc => WLC,
            Scheduler::Lblc => LBLC,
            Scheduler::Lblcr => LBLCR,
            Scheduler::Dh => DH,
            Scheduler::Sh => SH,
            Scheduler::Sed => SED,
            Scheduler::Nq => NQ,
            Scheduler::Fo => FO,
            Scheduler::Ovf => OVF,
            Scheduler::Mh => MH,
            Scheduler::Twos => TWOS,
        }
    }

    pub fn from_code(c: u8) -> Option<Scheduler> {
        Scheduler::ALL.into_iter().find(|x| x.code() == c)
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identity of a virtual service: protocol, VIP and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAddr {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
}

/// Persistence settings of a service (`-p TIMEOUT`, `-M NETMASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    pub timeout: u32,
    /// IPv4: the netmask; IPv6: the prefix length in `v6_prefix`.
    pub netmask: std::net::Ipv4Addr,
    pub v6_prefix: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    pub method: Method,
    pub weight: u32,
    /// Upper / lower connection thresholds (`-x` / `-y`), 0 = none.
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// Read-only, from the data path: connection counts and counters.
    pub active: u64,
    pub inactive: u64,
    pub stats: Stats,
}

impl RealServer {
    pub fn new(addr: IpAddr, port: u16, method: Method, weight: u32) -> RealServer {
        RealServer {
            addr,
            port,
            method,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            active: 0,
            inactive: 0,
            stats: Stats::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualService {
    pub key: ServiceAddr,
    pub sched: Scheduler,
    /// ipvsadm's scheduler flags (`-b flag-1,flag-2,flag-3` and the named
    /// aliases), as `lvs_common::SVC_F_SCHED*` bits.
    pub sched_flags: u16,
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`).
    pub ops: bool,
    /// In the order they were added.
    pub reals: Vec<RealServer>,
    /// Read-only, from the data path.
    pub stats: Stats,
}

impl VirtualService {
    pub fn new(key: ServiceAddr, sched: Scheduler) -> VirtualService {
        VirtualService {
            key,
            sched,
            sched_flags: 0,
            persistence: None,
            ops: false,
            reals: Vec::new(),
            stats: Stats::default(),
        }
    }
}

/// ipvsadm's three timeouts (`--set TCP TCPFIN UDP`), in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// Everything `lvsadm` reads and writes, in the order the tables hold it
/// (services in creation order; `-L` and `-S` sort as ipvsadm does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connection table size, shown as "size=N" like IPVS's hash table size.
    pub conn_table_size: u32,
    pub timeouts: Timeouts,
    pub services: Vec<VirtualService>,
}

impl Snapshot {
    pub fn service(&self, key: &ServiceAddr) -> Option<&VirtualService> {
        self.services.iter().find(|s| s.key == *key)
    }
    pub fn service_mut(&mut self, key: &ServiceAddr) -> Option<&mut VirtualService> {
        self.services.iter_mut().find(|s| s.key == *key)
    }
}

/// One tracked connection, as `lvsadm -L -c` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnEntry {
    pub proto: Proto,
    /// IPVS's state name ("ESTABLISHED", "SYN_RECV", …, "UDP").
    pub state: &'static str,
    /// Seconds until the connection expires without further packets.
    pub expires: u32,
    pub client: std::net::SocketAddr,
    pub virtual_addr: std::net::SocketAddr,
    pub real: std::net::SocketAddr,
}

/// IPVS's state names, indexed by `lvs_common::state` codes.
pub const STATE_NAMES: [&str; lvs_common::state::COUNT] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
    "UDP",
];
