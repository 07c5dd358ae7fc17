//! The options after the command, each handled when it is met, in order,
//! as ipvsadm's `parse_options` loop does: its class is recorded (a second
//! option of a class is an error), its value read and checked, with
//! ipvsadm's messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::{support, Error, Resolve};
use super::numbers::{c_atoi, inet_aton, parse_service, parse_timeout, string_to_number};
use super::table::{OptSet, OptSpec, Other, Role, Tag};
use super::{fail, DEFAULT_PERSISTENT_TIMEOUT, MAX_TIMEOUT};
use crate::adm::command::{Netmask, TunnelType};
use crate::model::{Method, Proto};

/// ipvsadm keeps at most `IP_VS_SCHEDNAME_MAXLEN - 1` bytes of `-s`.
const SCHED_NAME_MAX: usize = 15;
/// ... and at most 127 bytes of `-b`'s value.
const SCHED_FLAGS_MAX: usize = 127;
/// ... and at most `IP_VS_IFNAME_MAXLEN - 1` of `--mcast-interface`.
const IFNAME_MAX: usize = 15;

/// What the options said so far (ipvsadm's `struct ipvs_command_entry` and
/// its `options` bits). Flags that are only listing switches (`-n`, `-c`,
/// `--stats`, ...) are read from `given` at the end.
pub(super) struct State<'r> {
    resolve: &'r dyn Resolve,
    /// The option classes given.
    pub given: OptSet,
    // The virtual service.
    pub proto: Option<Proto>,
    pub svc_addr: Option<IpAddr>,
    pub svc_port: u16,
    /// `-s` as given, empty if none.
    pub sched: String,
    pub persistent: Option<u32>,
    pub netmask: Option<Netmask>,
    pub pe: Option<String>,
    /// `-b` as given; read once the scheduler is known.
    pub sched_flags_arg: Option<String>,
    // The real server.
    pub dest_addr: Option<IpAddr>,
    pub dest_port: u16,
    pub method: Method,
    pub weight: u32,
    pub u_threshold: Option<u32>,
    pub l_threshold: Option<u32>,
    pub tun_type: TunnelType,
    pub tun_port: Option<u16>,
    // The sync daemon (`--start-daemon`'s options).
    pub mcast_ifn: String,
    pub syncid: u8,
    pub sync_maxlen: u32,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: u16,
    pub mcast_ttl: u8,
}

impl<'r> State<'r> {
    /// ipvsadm's defaults: forwarding -g, weight 1, tunnel type ipip.
    pub fn new(resolve: &'r dyn Resolve) -> State<'r> {
        State {
            resolve,
            given: OptSet::default(),
            proto: None,
            svc_addr: None,
            svc_port: 0,
            sched: String::new(),
            persistent: None,
            netmask: None,
            pe: None,
            sched_flags_arg: None,
            dest_addr: None,
            dest_port: 0,
            method: Method::Route,
            weight: 1,
            u_threshold: None,
            l_threshold: None,
            tun_type: TunnelType::Ipip,
            tun_port: None,
            mcast_ifn: String::new(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        }
    }

    /// One option after the command; `word` is the word it was read from.
    pub fn option(
        &mut self,
        spec: &OptSpec,
        value: Option<String>,
        word: &str,
    ) -> Result<(), Error> {
        match spec.role {
            Role::Command(_) | Role::Action(_) => Err(fail(format!("invalid option `{word}'"))),
            Role::Other(Other::Sort) => Ok(()),
            // `-6` only qualifies `-f`, which lvsadm refuses when it meets
            // it; ipvsadm's message has the extra newline too.
            Role::Other(Other::Ipv6) => Err(fail("-6 used before -f\n")),
            Role::Option(opt, tag) => {
                if self.given.contains(opt) {
                    return Err(fail(format!("multiple '{}' options specified", opt.name())));
                }
                self.given.insert(opt);
                self.value(tag, value)
            }
        }
    }

    /// What an option of a class says, beyond its being given.
    fn value(&mut self, tag: Tag, value: Option<String>) -> Result<(), Error> {
        let v = value.as_deref().unwrap_or_default();
        match tag {
            // The only optional value: `-p` alone means the default.
            Tag::Persistent => {
                self.persistent = Some(match value.as_deref() {
                    None => DEFAULT_PERSISTENT_TIMEOUT,
                    Some(t) => parse_timeout(t, 1, MAX_TIMEOUT)?,
                })
            }
            Tag::Tcp => self.service_address(Proto::Tcp, v)?,
            Tag::Udp => self.service_address(Proto::Udp, v)?,
            Tag::Sctp => return Err(fail(support::SCTP_REFUSAL)),
            Tag::Fwmark => return Err(fail(support::FWMARK_REFUSAL)),
            Tag::Scheduler => self.sched = truncated(v, SCHED_NAME_MAX),
            Tag::Netmask => self.netmask = Some(self.netmask_value(v)?),
            Tag::Pe => self.pe = Some(v.to_string()),
            Tag::SchedFlags => self.sched_flags_arg = Some(truncated(v, SCHED_FLAGS_MAX)),
            Tag::RealServer => self.real_server(v)?,
            Tag::Masquerading => self.method = Method::Masq,
            Tag::Ipip => self.method = Method::Tunnel,
            Tag::Gatewaying => self.method = Method::Route,
            Tag::Weight => self.weight = number(v, 0, 65535, "illegal weight specified")?,
            Tag::UThreshold => {
                self.u_threshold = Some(number(v, 0, i32::MAX, "illegal u_threshold specified")?)
            }
            Tag::LThreshold => {
                self.l_threshold = Some(number(v, 0, i32::MAX, "illegal l_threshold specified")?)
            }
            Tag::TunType => {
                self.tun_type = match v {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    _ => return Err(fail("illegal tunnel type specified")),
                }
            }
            Tag::TunPort => {
                self.tun_port = Some(number(v, 1, 65535, "illegal tunnel port specified")? as u16)
            }
            // The sync daemon's values (`crate::sync`).
            Tag::McastInterface => self.mcast_ifn = truncated(v, IFNAME_MAX),
            Tag::SyncId => self.syncid = number(v, 0, 255, "illegal syncid specified")? as u8,
            Tag::McastGroup => self.mcast_group = Some(mcast_group(v)?),
            Tag::McastPort => {
                self.mcast_port = number(v, 1, 65535, "illegal mcast-port specified")? as u16
            }
            Tag::McastTtl => {
                self.mcast_ttl = number(v, 1, 255, "illegal mcast-ttl specified")? as u8
            }
            Tag::SyncMaxlen => {
                self.sync_maxlen = number(v, 1, 65535 - 20 - 8, "illegal sync-maxlen specified")?
            }
            // These say nothing but that they were given.
            Tag::Numeric
            | Tag::Connection
            | Tag::Timeout
            | Tag::Daemon
            | Tag::Stats
            | Tag::Rate
            | Tag::Thresholds
            | Tag::PersistentConn
            | Tag::NoSort
            | Tag::Exact
            | Tag::Ops
            | Tag::TunInfo
            | Tag::TunNocsum
            | Tag::TunCsum
            | Tag::TunRemcsum => {}
        }
        Ok(())
    }

    /// `-t` / `-u`.
    fn service_address(&mut self, proto: Proto, v: &str) -> Result<(), Error> {
        self.proto = Some(proto);
        let (addr, port) = parse_service(v, Some(proto), self.resolve)
            .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
        self.svc_addr = Some(addr);
        if let Some(p) = port {
            self.svc_port = p;
        }
        if addr.is_ipv6() {
            // ipvsadm resets the granularity to /128 here.
            self.netmask = None;
        }
        Ok(())
    }

    /// `-M`: a prefix length for an IPv6 service (given before it), else an
    /// IPv4 mask.
    fn netmask_value(&self, v: &str) -> Result<Netmask, Error> {
        if self.svc_addr.is_some_and(|a| a.is_ipv6()) {
            match c_atoi(v) {
                n @ 1..=128 => Ok(Netmask::V6(n as u8)),
                _ => Err(fail("illegal ipv6 netmask specified")),
            }
        } else {
            let mask = inet_aton(v)
                .or_else(|| self.resolve.host(v))
                .ok_or_else(|| fail("illegal virtual server persistent mask specified"))?;
            Ok(Netmask::V4(mask))
        }
    }

    /// `-r`: without a port, the service's (as far as it is known).
    fn real_server(&mut self, v: &str) -> Result<(), Error> {
        let (addr, port) = parse_service(v, self.proto, self.resolve)
            .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
        self.dest_addr = Some(addr);
        self.dest_port = port.unwrap_or(self.svc_port);
        Ok(())
    }
}

/// ipvsadm's `string_to_number` check with its message on failure.
fn number(v: &str, min: i32, max: i32, msg: &str) -> Result<u32, Error> {
    string_to_number(v, min.into(), max.into())
        .map(|n| n as u32)
        .ok_or_else(|| fail(msg))
}

/// `--mcast-group`: a multicast address of either family.
fn mcast_group(v: &str) -> Result<IpAddr, Error> {
    if v.contains(':') {
        match v.parse::<Ipv6Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(fail(format!("invalid IPv6 mcast-group `{v}'"))),
        }
    } else {
        match v.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(fail(format!("invalid IPv4 mcast-group `{v}'"))),
        }
    }
}

/// The first `max` bytes of `v` (fewer to end on a character), as
/// ipvsadm's fixed-size buffers keep them.
fn truncated(v: &str, max: usize) -> String {
    let mut end = v.len().min(max);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].to_string()
}
