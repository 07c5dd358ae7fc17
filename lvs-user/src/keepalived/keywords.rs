//! The statement tree mapped to [`KaConfig`]: which keywords exist where,
//! the words each takes, and keepalived's defaults and inheritance
//! (virtual server → real server → checker), per keepalived.conf(5) and
//! keepalived 2.2's `check_parser.c`/`check_data.c` (facts, not code).
//!
//! Every keyword is either mapped, skipped with its whole block (the
//! top-level blocks of keepalived's other parts: `global_defs`, `vrrp_*`,
//! `static_*`), or refused by name — never ignored. The checker blocks are
//! in [`super::checkers`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::block::Stmt;
use super::checkers::{self, RawChecker};
use super::model::{KaConfig, RealServer, SorryServer, VirtualServer};
use super::values;
use super::{ConfigError, Origin};
use crate::model::{Method, Persistence, Proto, Scheduler, ServiceAddr};

/// keepalived's defaults (keepalived.conf(5); `alloc_vs` in check_data.c).
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `persistence_timeout` without a value: "default 6 minutes".
pub const DEFAULT_PERSISTENCE: u32 = 360;
/// ipvsadm's largest timeout (31 days), which keepalived also enforces.
pub const MAX_TIMEOUT: u64 = 86_400 * 31;
/// ipvsadm's weight range; keepalived 2.2 allows up to 2^31-1, IPVS's
/// own limit, but the tables and `lvsadm` follow ipvsadm.
pub const MAX_WEIGHT: u64 = 65_535;

/// Top-level blocks of keepalived's other parts, skipped whole.
fn skipped(key: &str) -> bool {
    key == "global_defs" || key.starts_with("vrrp_") || key.starts_with("static_")
}

/// Keywords keepalived has that lvs-xdp refuses, with the reason.
fn refused(key: &str) -> Option<&'static str> {
    Some(match key {
        "virtual_server_group" => {
            "virtual_server_group is not supported by lvs-xdp: write one virtual_server per address"
        }
        "SSL" => "the SSL block (client certificates for SSL_GET) is not supported by lvs-xdp",
        "ops" => "ops (one-packet scheduling, lvsadm -o) is not implemented yet",
        "hashed" => "hashed is not supported by lvs-xdp (it is IPVS's internal flag)",
        "persistence_engine" => "persistence_engine is not supported by lvs-xdp (lvsadm --pe)",
        "ha_suspend" => "ha_suspend is not supported by lvs-xdp",
        "smtp_alert" => "smtp_alert is not supported by lvs-xdp (it sends no mail)",
        "snmp_name" => "snmp_name is not supported by lvs-xdp (it has no SNMP agent)",
        "ip_family" => "ip_family is only for fwmark services, which lvs-xdp refuses",
        "track_file" | "track_process" | "bfd_instance" | "linkbeat_interfaces" => {
            "this block is not supported by lvs-xdp"
        }
        _ => return None,
    })
}

/// Mapping context: the warnings keepalived would also give.
#[derive(Default)]
pub struct Cx {
    pub warnings: Vec<String>,
}

impl Cx {
    fn warn(&mut self, s: &Stmt, msg: String) {
        self.warnings
            .push(format!("{}:{}: {msg}", s.pos.file.display(), s.pos.line));
    }
}

pub fn config(top: &[Stmt]) -> Result<KaConfig, ConfigError> {
    let mut cx = Cx::default();
    let mut out = KaConfig {
        virtual_servers: Vec::new(),
        warnings: Vec::new(),
        skipped: Vec::new(),
    };
    for s in top {
        match s.key.as_str() {
            "virtual_server" => {
                let vs = virtual_server(s, &mut cx)?;
                if let Some(prev) = out.virtual_servers.iter().find(|v| v.key == vs.key) {
                    return Err(bad(
                        s,
                        format!(
                            "{} is defined twice (first at {}:{})",
                            show_key(&vs.key),
                            prev.origin.file.display(),
                            prev.origin.line
                        ),
                    ));
                }
                out.virtual_servers.push(vs);
            }
            k if skipped(k) => {
                if s.block.is_none() {
                    return Err(bad(s, "needs a block { … }".into()));
                }
                if !out.skipped.iter().any(|x| x == k) {
                    out.skipped.push(k.to_string());
                }
            }
            k => return Err(unknown(s, k, None)),
        }
    }
    out.warnings = cx.warnings;
    Ok(out)
}

/// `[IP]:proto:PORT`, keepalived's way of naming a service.
pub fn show_key(k: &ServiceAddr) -> String {
    let p = match k.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    format!("virtual_server [{}]:{p}:{}", k.addr, k.port)
}

pub fn origin(s: &Stmt) -> Origin {
    Origin {
        file: (*s.pos.file).clone(),
        line: s.pos.line,
    }
}

/// An error on statement `s`, naming its keyword.
pub fn bad(s: &Stmt, msg: String) -> ConfigError {
    s.pos.err(format!("{}: {msg}", s.key))
}

/// An unknown or refused keyword inside `within` (None: at the top).
pub fn unknown(s: &Stmt, key: &str, within: Option<&str>) -> ConfigError {
    if let Some(why) = refused(key) {
        return s.pos.err(format!("'{key}': {why}"));
    }
    match within {
        Some(w) => s.pos.err(format!("unknown keyword '{key}' in {w}")),
        None => s
            .pos
            .err(format!("unknown keyword '{key}' at the top level")),
    }
}

pub fn no_block(s: &Stmt) -> Result<(), ConfigError> {
    match s.block {
        Some(_) => Err(bad(s, "takes no block: unexpected '{'".into())),
        None => Ok(()),
    }
}

/// The single word of `KEY WORD`.
pub fn one(s: &Stmt) -> Result<&str, ConfigError> {
    no_block(s)?;
    match s.args.as_slice() {
        [a] => Ok(a),
        [] => Err(bad(s, "needs a value".into())),
        _ => Err(bad(s, format!("takes one value, not {}", s.args.len()))),
    }
}

/// A keyword that takes nothing (`misc_dynamic`, `sh-port`, …).
pub fn flag(s: &Stmt) -> Result<bool, ConfigError> {
    no_block(s)?;
    match s.args.as_slice() {
        [] => Ok(true),
        _ => Err(bad(s, "takes no value".into())),
    }
}

/// `KEY [<BOOL>]`: alone it means yes.
pub fn opt_bool(s: &Stmt) -> Result<bool, ConfigError> {
    no_block(s)?;
    match s.args.as_slice() {
        [] => Ok(true),
        [a] => values::boolean(a).map_err(|m| bad(s, m)),
        _ => Err(bad(s, "takes at most one value".into())),
    }
}

pub fn uint(s: &Stmt, min: u64, max: u64) -> Result<u64, ConfigError> {
    values::uint(one(s)?, min, max).map_err(|m| bad(s, m))
}

pub fn timer(s: &Stmt, min_us: u64) -> Result<Duration, ConfigError> {
    values::timer(one(s)?, min_us).map_err(|m| bad(s, m))
}

pub fn ip(s: &Stmt) -> Result<IpAddr, ConfigError> {
    values::ip(one(s)?).map_err(|m| bad(s, m))
}

/// A script: `notify_up`, `quorum_up`, … (`<STRING>|<QUOTED-STRING>`);
/// keepalived's optional `username [groupname]` after it is refused: the
/// checker runs scripts as itself.
pub fn script(s: &Stmt, prev: &Option<String>) -> Result<String, ConfigError> {
    no_block(s)?;
    if prev.is_some() {
        return Err(bad(s, "is given twice".into()));
    }
    match s.args.as_slice() {
        [a] if !a.trim().is_empty() => Ok(a.clone()),
        [] | [_] => Err(bad(s, "needs a script".into())),
        _ => Err(bad(
            s,
            "running a script as another user (username [groupname]) is not supported by lvs-xdp; \
             quote a script that has arguments"
                .into(),
        )),
    }
}

/// `lvs_method NAT|DR|TUN [type ipip]`.
fn method(s: &Stmt) -> Result<Method, ConfigError> {
    no_block(s)?;
    let (m, rest) = match s.args.split_first() {
        Some((m, rest)) => (m.as_str(), rest),
        None => return Err(bad(s, "needs NAT, DR or TUN".into())),
    };
    let m = match m {
        "NAT" => Method::Masq,
        "DR" => Method::Route,
        "TUN" => Method::Tunnel,
        _ => return Err(bad(s, format!("unknown method '{m}' (NAT, DR or TUN)"))),
    };
    match rest {
        [] => Ok(m),
        [t, ipip] if m == Method::Tunnel && t == "type" && ipip == "ipip" => Ok(m),
        _ if m == Method::Tunnel => Err(bad(
            s,
            "tunnel options other than 'type ipip' (gue, gre, checksums) are not implemented yet"
                .into(),
        )),
        _ => Err(bad(s, "takes one value".into())),
    }
}

/// Values a real server (and its checkers) inherit when it sets none.
#[derive(Clone, Default)]
pub struct Common {
    pub delay_loop: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub alpha: Option<bool>,
    pub inhibit: Option<bool>,
    pub virtualhost: Option<String>,
}

impl Common {
    /// `self` where set, else `parent`.
    pub fn or(&self, parent: &Common) -> Common {
        Common {
            delay_loop: self.delay_loop.or(parent.delay_loop),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            warmup: self.warmup.or(parent.warmup),
            alpha: self.alpha.or(parent.alpha),
            inhibit: self.inhibit.or(parent.inhibit),
            virtualhost: self
                .virtualhost
                .clone()
                .or_else(|| parent.virtualhost.clone()),
        }
    }

    /// The keywords the three levels share; Ok(false) if `s` is not one.
    /// `alpha` and `inhibit_on_failure` differ per level and are not here.
    pub fn take(&mut self, s: &Stmt) -> Result<bool, ConfigError> {
        match s.key.as_str() {
            // keepalived: delay_loop and connect_timeout above 0,
            // delay_before_retry and warmup from 0, retry from 1.
            "delay_loop" => self.delay_loop = Some(timer(s, 1)?),
            "connect_timeout" => self.connect_timeout = Some(timer(s, 1)?),
            "delay_before_retry" => self.delay_before_retry = Some(timer(s, 0)?),
            "warmup" => self.warmup = Some(timer(s, 0)?),
            "retry" => self.retry = Some(uint(s, 1, u64::from(u32::MAX))? as u32),
            "virtualhost" => self.virtualhost = Some(one(s)?.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

struct RawRs {
    stmt_pos: Stmt,
    ip: IpAddr,
    port: Option<u16>,
    weight: Option<u32>,
    method: Option<Method>,
    u_threshold: u32,
    l_threshold: u32,
    notify_up: Option<String>,
    notify_down: Option<String>,
    common: Common,
    checkers: Vec<RawChecker>,
}

/// `IP [PORT]` of a virtual, real or sorry server; a port of 0 or none
/// is None (keepalived: "no port").
fn addr_port(s: &Stmt, what: &str) -> Result<(IpAddr, Option<u16>), ConfigError> {
    let (ip, port) = match s.args.as_slice() {
        [ip] => (ip, None),
        [ip, port] => (ip, Some(port)),
        [] => return Err(bad(s, format!("needs the {what}'s IP [PORT]"))),
        _ => return Err(bad(s, format!("takes the {what}'s IP [PORT], no more"))),
    };
    let ip = values::ip(ip).map_err(|m| bad(s, m))?;
    let port = match port {
        Some(p) => Some(values::port(p).map_err(|m| bad(s, m))?).filter(|&p| p != 0),
        None => None,
    };
    Ok((ip, port))
}

fn virtual_server(s: &Stmt, cx: &mut Cx) -> Result<VirtualServer, ConfigError> {
    match s.args.first().map(String::as_str) {
        Some("fwmark") => {
            return Err(bad(
                s,
                "fwmark services are not supported: the XDP program runs before netfilter marks \
                 packets (lvsadm refuses -f likewise)"
                    .into(),
            ))
        }
        Some("group") => {
            return Err(bad(
                s,
                "virtual_server group is not supported by lvs-xdp: write one virtual_server per address"
                    .into(),
            ))
        }
        _ => {}
    }
    let (vip, vport) = addr_port(s, "virtual server")?;
    let block = s
        .block
        .as_deref()
        .ok_or_else(|| bad(s, "needs a block { … }".into()))?;

    let mut sched: Option<Scheduler> = None;
    let mut flags: Vec<&Stmt> = Vec::new();
    let mut vmethod: Option<Method> = None;
    let mut proto: Option<Proto> = None;
    let mut pto: Option<u32> = None;
    let mut pgr: Option<(&Stmt, &str)> = None;
    let mut common = Common::default();
    let mut omega = false;
    let mut quorum: u32 = 1;
    let mut hysteresis: u32 = 0;
    let mut quorum_up: Option<String> = None;
    let mut quorum_down: Option<String> = None;
    let mut vweight: u32 = 1;
    let mut sorry: Option<(IpAddr, Option<u16>)> = None;
    let mut sorry_inhibit = false;
    let mut sorry_method: Option<Method> = None;
    let mut reals: Vec<RawRs> = Vec::new();

    for k in block {
        if common.take(k)? {
            continue;
        }
        match k.key.as_str() {
            "lvs_sched" | "lb_algo" => {
                let name = one(k)?;
                sched = Some(
                    Scheduler::from_name(name)
                        .ok_or_else(|| bad(k, format!("unknown scheduler '{name}'")))?,
                );
            }
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => {
                flag(k)?;
                flags.push(k);
            }
            "lvs_method" | "lb_kind" => vmethod = Some(method(k)?),
            "protocol" => {
                proto = Some(match one(k)?.to_ascii_uppercase().as_str() {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    "SCTP" => {
                        return Err(bad(
                            k,
                            "SCTP is not implemented yet (lvsadm refuses it too)".into(),
                        ))
                    }
                    other => {
                        return Err(bad(k, format!("unknown protocol '{other}' (TCP or UDP)")))
                    }
                })
            }
            "persistence_timeout" => {
                no_block(k)?;
                pto = Some(match k.args.as_slice() {
                    [] => DEFAULT_PERSISTENCE,
                    [_] => uint(k, 1, MAX_TIMEOUT)? as u32,
                    _ => return Err(bad(k, "takes at most one value".into())),
                });
            }
            "persistence_granularity" => pgr = Some((k, one(k)?)),
            // No value at this level (keepalived ignores one: `alpha no`
            // would switch alpha on there; here it is refused).
            "alpha" => common.alpha = Some(flag(k)?),
            "omega" => omega = flag(k)?,
            "inhibit_on_failure" => common.inhibit = Some(flag(k)?),
            "quorum" => quorum = uint(k, 1, u64::from(u32::MAX))? as u32,
            "hysteresis" => hysteresis = uint(k, 0, u64::from(u32::MAX))? as u32,
            "quorum_up" => quorum_up = Some(script(k, &quorum_up)?),
            "quorum_down" => quorum_down = Some(script(k, &quorum_down)?),
            "weight" => vweight = uint(k, 1, MAX_WEIGHT)? as u32,
            "sorry_server" => {
                no_block(k)?;
                sorry = Some(addr_port(k, "sorry server")?);
            }
            "sorry_server_inhibit" => {
                flag(k)?;
                if sorry.is_none() {
                    return Err(bad(k, "comes before (or without) sorry_server".into()));
                }
                sorry_inhibit = true;
            }
            "sorry_server_lvs_method" => {
                let m = method(k)?;
                if sorry.is_none() {
                    return Err(bad(k, "comes before (or without) sorry_server".into()));
                }
                sorry_method = Some(m);
            }
            "real_server" => reals.push(real_server(k)?),
            other => return Err(unknown(k, other, Some("virtual_server"))),
        }
    }

    // What keepalived 2.2 defaults with a config error (so `-t` fails):
    // lvs-xdp defaults the same way and warns.
    let proto = proto.unwrap_or_else(|| {
        cx.warn(s, "no protocol set: UDP, as keepalived defaults it".into());
        Proto::Udp
    });
    let key = ServiceAddr {
        proto,
        addr: vip,
        port: vport.unwrap_or(0),
    };
    let sched = sched.unwrap_or_else(|| {
        cx.warn(s, "no lvs_sched set: wlc, as keepalived defaults it".into());
        Scheduler::Wlc
    });
    let vmethod = match vmethod {
        Some(m) => m,
        None => {
            // keepalived warns only when a server takes the default.
            if reals.iter().any(|r| r.method.is_none())
                || (sorry.is_some() && sorry_method.is_none())
            {
                cx.warn(
                    s,
                    "no lvs_method set: NAT, as keepalived defaults it".into(),
                );
            }
            Method::Masq
        }
    };

    let mut sched_flags = 0u16;
    for f in flags {
        let (bit, only) = match f.key.as_str() {
            "flag-1" => (lvs_common::SVC_F_SCHED1, None),
            "flag-2" => (lvs_common::SVC_F_SCHED2, None),
            "flag-3" => (lvs_common::SVC_F_SCHED3, None),
            "sh-port" => (lvs_common::SH_PORT, Some(Scheduler::Sh)),
            "sh-fallback" => (lvs_common::SH_FALLBACK, Some(Scheduler::Sh)),
            "mh-port" => (lvs_common::MH_PORT, Some(Scheduler::Mh)),
            _ => (lvs_common::MH_FALLBACK, Some(Scheduler::Mh)),
        };
        if let Some(want) = only {
            if sched != want {
                return Err(bad(
                    f,
                    format!("applies only to the {want} scheduler, not {sched}"),
                ));
            }
        }
        sched_flags |= bit;
    }

    let persistence = persistence(pto, pgr, vip)?;
    if key.port == 0 && persistence.is_none() {
        return Err(bad(
            s,
            "a port of 0 (or none) is only valid for a persistent service (persistence_timeout)"
                .into(),
        ));
    }

    if reals.is_empty() {
        return Err(bad(s, format!("{} has no real servers", show_key(&key))));
    }

    let vs_common = Common {
        delay_loop: Some(common.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP)),
        connect_timeout: Some(common.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
        alpha: Some(common.alpha.unwrap_or(false)),
        inhibit: Some(common.inhibit.unwrap_or(false)),
        ..common.clone()
    };
    let delay_loop = vs_common.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);

    let mut real_servers: Vec<RealServer> = Vec::new();
    let mut weight_sum: u64 = 0;
    for r in reals {
        let rs = resolve_real(r, &key, vmethod, vweight, &vs_common)?;
        if let Some(prev) = real_servers.iter().find(|p| p.addr == rs.addr) {
            return Err(ConfigError {
                file: rs.origin.file.clone(),
                line: rs.origin.line,
                msg: format!(
                    "real_server {} {} is given twice in {} (first at {}:{})",
                    rs.addr.ip(),
                    rs.addr.port(),
                    show_key(&key),
                    prev.origin.file.display(),
                    prev.origin.line
                ),
            });
        }
        weight_sum += u64::from(rs.weight);
        real_servers.push(rs);
    }

    // keepalived lowers such a quorum (and hysteresis) with a config
    // error; a service that can never reach its quorum is refused here.
    if u64::from(quorum) > weight_sum {
        return Err(bad(
            s,
            format!(
                "quorum {quorum} exceeds the total weight {weight_sum} of the real servers: \
                 the service could never be up"
            ),
        ));
    }
    if hysteresis >= quorum {
        return Err(bad(
            s,
            format!("hysteresis {hysteresis} must be below the quorum {quorum}"),
        ));
    }

    let sorry_server = match sorry {
        None => None,
        Some((ip, port)) => {
            let m = sorry_method.unwrap_or(vmethod);
            let port = server_port(s, "sorry server", &key, m, port)?;
            same_family(s, "sorry server", &key, ip, m)?;
            Some(SorryServer {
                addr: SocketAddr::new(ip, port),
                method: m,
                inhibit: sorry_inhibit,
            })
        }
    };

    Ok(VirtualServer {
        origin: origin(s),
        key,
        sched,
        sched_flags,
        method: vmethod,
        persistence,
        delay_loop,
        connect_timeout: vs_common.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        // The generic checker defaults when unset; each checker has its
        // own resolved value.
        retry: common.retry.unwrap_or(1),
        delay_before_retry: common.delay_before_retry.unwrap_or(Duration::from_secs(1)),
        warmup: common.warmup.unwrap_or(delay_loop),
        alpha: vs_common.alpha.unwrap_or(false),
        omega,
        quorum,
        hysteresis,
        quorum_up,
        quorum_down,
        inhibit_on_failure: vs_common.inhibit.unwrap_or(false),
        sorry_server,
        real_servers,
    })
}

/// `persistence_timeout` and `persistence_granularity` (which implies
/// persistence, as in keepalived).
fn persistence(
    pto: Option<u32>,
    pgr: Option<(&Stmt, &str)>,
    vip: IpAddr,
) -> Result<Option<Persistence>, ConfigError> {
    let (mut netmask, mut v6_prefix) = (Ipv4Addr::BROADCAST, 128u8);
    if let Some((k, g)) = pgr {
        match vip {
            IpAddr::V4(_) => {
                netmask = g
                    .parse()
                    .map_err(|_| bad(k, format!("'{g}' is not an IPv4 netmask")))?;
            }
            IpAddr::V6(_) => {
                v6_prefix = values::uint(g, 1, 128).map_err(|m| bad(k, m))? as u8;
            }
        }
    }
    let timeout = match (pto, pgr) {
        (Some(t), _) => t,
        (None, Some(_)) => DEFAULT_PERSISTENCE,
        (None, None) => return Ok(None),
    };
    Ok(Some(Persistence {
        timeout,
        netmask,
        v6_prefix,
    }))
}

fn real_server(s: &Stmt) -> Result<RawRs, ConfigError> {
    let (ip, port) = addr_port(s, "real server")?;
    let block = s
        .block
        .as_deref()
        .ok_or_else(|| bad(s, "needs a block { … }".into()))?;
    let mut r = RawRs {
        stmt_pos: Stmt {
            pos: s.pos.clone(),
            key: s.key.clone(),
            args: s.args.clone(),
            block: None,
        },
        ip,
        port,
        weight: None,
        method: None,
        u_threshold: 0,
        l_threshold: 0,
        notify_up: None,
        notify_down: None,
        common: Common::default(),
        checkers: Vec::new(),
    };
    for k in block {
        if r.common.take(k)? {
            continue;
        }
        match k.key.as_str() {
            "weight" => r.weight = Some(real_weight(k)?),
            "lvs_method" => r.method = Some(method(k)?),
            "uthreshold" => r.u_threshold = uint(k, 0, u64::from(u32::MAX))? as u32,
            "lthreshold" => r.l_threshold = uint(k, 0, u64::from(u32::MAX))? as u32,
            "inhibit_on_failure" => r.common.inhibit = Some(opt_bool(k)?),
            "alpha" => r.common.alpha = Some(opt_bool(k)?),
            "notify_up" => r.notify_up = Some(script(k, &r.notify_up)?),
            "notify_down" => r.notify_down = Some(script(k, &r.notify_down)?),
            other => match checkers::parse(k)? {
                Some(c) => r.checkers.push(c),
                None => return Err(unknown(k, other, Some("real_server"))),
            },
        }
    }
    Ok(r)
}

/// `weight`: ipvsadm's 0–65535.
fn real_weight(k: &Stmt) -> Result<u32, ConfigError> {
    let w = one(k)?;
    match values::uint(w, 0, u64::MAX) {
        Ok(v) if v <= MAX_WEIGHT => Ok(v as u32),
        Ok(_) => Err(bad(k, format!("'{w}' is outside ipvsadm's range 0-65535"))),
        Err(m) if m.contains("negative") => {
            Err(bad(k, format!("'{w}' is outside ipvsadm's range 0-65535")))
        }
        Err(m) => Err(bad(k, m)),
    }
}

/// The port a real or sorry server gets: its own, or the service's when
/// it has none; DR and TUN cannot change the port, so a different one is
/// refused (keepalived "resets" it with a config error).
fn server_port(
    s: &Stmt,
    what: &str,
    key: &ServiceAddr,
    m: Method,
    port: Option<u16>,
) -> Result<u16, ConfigError> {
    match (m, port) {
        (_, None) => Ok(key.port),
        (Method::Masq, Some(p)) => Ok(p),
        (_, Some(p)) if p == key.port => Ok(p),
        (_, Some(p)) => Err(bad(
            s,
            format!(
                "the {what}'s port {p} differs from the virtual server's {}: DR and TUN cannot \
                 change ports",
                key.port
            ),
        )),
    }
}

/// Only tunnelled servers may be of another address family.
fn same_family(
    s: &Stmt,
    what: &str,
    key: &ServiceAddr,
    ip: IpAddr,
    m: Method,
) -> Result<(), ConfigError> {
    if ip.is_ipv4() != key.addr.is_ipv4() && m != Method::Tunnel {
        return Err(bad(
            s,
            format!("the {what} {ip} is not of the virtual server's address family (only TUN may differ)"),
        ));
    }
    Ok(())
}

fn resolve_real(
    r: RawRs,
    key: &ServiceAddr,
    vmethod: Method,
    vweight: u32,
    vs: &Common,
) -> Result<RealServer, ConfigError> {
    let s = &r.stmt_pos;
    let method = r.method.unwrap_or(vmethod);
    let port = server_port(s, "real server", key, method, r.port)?;
    same_family(s, "real server", key, r.ip, method)?;
    let addr = SocketAddr::new(r.ip, port);
    let rc = r.common.or(vs);
    let delay_loop = rc.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
    let alpha = rc.alpha.unwrap_or(false);
    let checkers = r
        .checkers
        .into_iter()
        .map(|c| c.resolve(addr, &rc))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RealServer {
        origin: origin(s),
        addr,
        weight: r.weight.unwrap_or(vweight),
        method,
        u_threshold: r.u_threshold,
        l_threshold: r.l_threshold,
        inhibit_on_failure: rc.inhibit.unwrap_or(false),
        notify_up: r.notify_up,
        notify_down: r.notify_down,
        delay_loop,
        alpha,
        warmup: rc.warmup.unwrap_or(delay_loop),
        checkers,
    })
}
