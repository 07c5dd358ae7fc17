//! ipvsadm's command line, parsed as ipvsadm 1.31 (built with popt) parses
//! it, into a [`Command`].
//!
//! Behaviour kept from ipvsadm:
//! - popt's syntax: short flags combine (`-Ln`, `-Lnc`), a short option's
//!   argument may be attached (`-srr`, `-s=rr`) or the next word; long
//!   options take `--opt value` or `--opt=value`; `-p`'s argument is
//!   optional and taken only from a next word not starting with `-`; words
//!   that are not options are collected as arguments (only `--set` wants
//!   any); `--` ends the options.
//! - The first option must be the command; a second command is an "invalid
//!   option".
//! - Each option is checked when it is met, in order, with ipvsadm's
//!   messages; then the legality table of commands × options
//!   ("Illegal 'weight' option with the 'add-service' command", ...), then
//!   the per-command checks ("Zero port specified for non-persistent
//!   service", "Different address family is allowed only for tunneling
//!   servers", ...).
//! - Addresses: `host[:port]` with `host` an IPv4 address in any form
//!   `inet_aton` takes or a host name, an IPv6 address alone (no port), or
//!   `[v6]:port`; a port is a number 0..=65535 or a service name.
//! - Defaults: scheduler wlc, forwarding -g (Route), weight 1, `-p` alone
//!   300 s, a real server without a port gets the service's port, and with
//!   -g or -i always does.
//!
//! Errors carry ipvsadm's exit status: 2 for its `fail()` messages, 255 for
//! popt's errors and for "Try `lvsadm -h' ..." (ipvsadm exits with -1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use super::command::{
    Command, DaemonState, ListOpts, Netmask, ServerKey, ServerSpec, ServiceSpec, TunnelSpec,
    TunnelType,
};
use super::{support, Error, Resolve, EXIT_ERROR};
use crate::model::{Method, Proto, ServiceAddr, Timeouts};

/// ipvsadm's `MAX_TIMEOUT`: 31 days.
pub const MAX_TIMEOUT: u32 = 86_400 * 31;
/// ipvsadm's `DEF_SCHED`.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// `IPVS_SVC_PERSISTENT_TIMEOUT`: `-p` without a value.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 300;
/// ipvsadm keeps at most `IP_VS_SCHEDNAME_MAXLEN - 1` bytes of `-s`.
const SCHED_NAME_MAX: usize = 15;

// ---------------------------------------------------------------------------
// Commands and options, for ipvsadm's legality checks.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// The name ipvsadm's messages use.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }

    /// How an option may go with this command (ipvsadm's
    /// `commands_v_options`).
    fn rule(self, opt: Opt) -> Rule {
        use Opt::*;
        match self {
            Cmd::Add | Cmd::Edit => match opt {
                Service => Rule::Required,
                Scheduler | Persistent | Netmask | Ops | Pe | SchedFlags => Rule::Optional,
                _ => Rule::Illegal,
            },
            Cmd::Del => match opt {
                Service => Rule::Required,
                _ => Rule::Illegal,
            },
            Cmd::List => match opt {
                Connection | Service | Timeout | Daemon => Rule::Exclusive,
                Numeric | Stats | Rate | Thresholds | PersistentConn | NoSort | SyncId | Exact
                | TunInfo => Rule::Optional,
                _ => Rule::Illegal,
            },
            Cmd::AddDest | Cmd::EditDest => match opt {
                Service | Server => Rule::Required,
                Forward | Weight | UThreshold | LThreshold | TunType | TunPort | TunNocsum
                | TunCsum | TunRemcsum => Rule::Optional,
                _ => Rule::Illegal,
            },
            Cmd::DelDest => match opt {
                Service | Server => Rule::Required,
                _ => Rule::Illegal,
            },
            Cmd::StartDaemon => match opt {
                McastInterface | SyncId | McastGroup | McastPort | McastTtl | SyncMaxlen => {
                    Rule::Optional
                }
                _ => Rule::Illegal,
            },
            Cmd::StopDaemon => match opt {
                SyncId => Rule::Optional,
                _ => Rule::Illegal,
            },
            Cmd::Save => match opt {
                Numeric => Rule::Optional,
                _ => Rule::Illegal,
            },
            Cmd::Zero => match opt {
                Service => Rule::Optional,
                _ => Rule::Illegal,
            },
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => Rule::Illegal,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Required,
    Illegal,
    /// At most one of the command's exclusive options.
    Exclusive,
    Optional,
}

/// ipvsadm's option classes, in its order (which decides which error of
/// several is reported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    McastInterface,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

const ALL_OPTS: [Opt; 34] = {
    use Opt::*;
    [
        Numeric,
        Connection,
        Service,
        Scheduler,
        Persistent,
        Netmask,
        Server,
        Forward,
        Weight,
        UThreshold,
        LThreshold,
        McastInterface,
        Timeout,
        Daemon,
        Stats,
        Rate,
        Thresholds,
        PersistentConn,
        NoSort,
        SyncId,
        Exact,
        Ops,
        Pe,
        SchedFlags,
        McastGroup,
        McastPort,
        McastTtl,
        SyncMaxlen,
        TunInfo,
        TunType,
        TunPort,
        TunNocsum,
        TunCsum,
        TunRemcsum,
    ]
};

impl Opt {
    fn name(self) -> &'static str {
        use Opt::*;
        match self {
            Numeric => "numeric",
            Connection => "connection",
            Service => "service-address",
            Scheduler => "scheduler",
            Persistent => "persistent",
            Netmask => "netmask",
            Server => "real-server",
            Forward => "forwarding-method",
            Weight => "weight",
            UThreshold => "u-threshold",
            LThreshold => "l-threshold",
            McastInterface => "mcast-interface",
            Timeout => "timeout",
            Daemon => "daemon",
            Stats => "stats",
            Rate => "rate",
            Thresholds => "thresholds",
            PersistentConn => "persistent-conn",
            NoSort => "nosort",
            SyncId => "syncid",
            Exact => "exact",
            Ops => "ops",
            Pe => "pe",
            SchedFlags => "sched-flags",
            McastGroup => "mcast-group",
            McastPort => "mcast-port",
            McastTtl => "mcast-ttl",
            SyncMaxlen => "sync-maxlen",
            TunInfo => "tun-info",
            TunType => "tun-type",
            TunPort => "tun-port",
            TunNocsum => "tun-nocsum",
            TunCsum => "tun-csum",
            TunRemcsum => "tun-remcsum",
        }
    }
    fn bit(self) -> u64 {
        1 << self as u32
    }
}

// ---------------------------------------------------------------------------
// The popt layer: the option table and a lexer with popt's rules.

/// What an option word means, before ipvsadm looks at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArgKind {
    None,
    Required,
    Optional,
}

struct OptSpec {
    long: &'static str,
    short: Option<char>,
    arg: ArgKind,
    tag: Tag,
}

const fn spec(long: &'static str, short: Option<char>, arg: ArgKind, tag: Tag) -> OptSpec {
    OptSpec {
        long,
        short,
        arg,
        tag,
    }
}

/// Every option ipvsadm 1.31 knows, with its argument.
const OPTIONS: &[OptSpec] = {
    use ArgKind::{None as N, Optional as O, Required as R};
    &[
        spec("add-service", Some('A'), N, Tag::AddService),
        spec("edit-service", Some('E'), N, Tag::EditService),
        spec("delete-service", Some('D'), N, Tag::DeleteService),
        spec("clear", Some('C'), N, Tag::Clear),
        spec("list", Some('L'), N, Tag::List),
        spec("list", Some('l'), N, Tag::List),
        spec("zero", Some('Z'), N, Tag::Zero),
        spec("add-server", Some('a'), N, Tag::AddServer),
        spec("edit-server", Some('e'), N, Tag::EditServer),
        spec("delete-server", Some('d'), N, Tag::DeleteServer),
        spec("set", None, N, Tag::Set),
        spec("help", Some('h'), N, Tag::Help),
        spec("version", Some('v'), N, Tag::Version),
        spec("restore", Some('R'), N, Tag::Restore),
        spec("save", Some('S'), N, Tag::Save),
        spec("start-daemon", None, R, Tag::StartDaemon),
        spec("stop-daemon", None, R, Tag::StopDaemon),
        spec("tcp-service", Some('t'), R, Tag::Tcp),
        spec("udp-service", Some('u'), R, Tag::Udp),
        spec("sctp-service", None, R, Tag::Sctp),
        spec("fwmark-service", Some('f'), R, Tag::Fwmark),
        spec("scheduler", Some('s'), R, Tag::Scheduler),
        spec("persistent", Some('p'), O, Tag::Persistent),
        spec("netmask", Some('M'), R, Tag::Netmask),
        spec("real-server", Some('r'), R, Tag::RealServer),
        spec("masquerading", Some('m'), N, Tag::Masquerading),
        spec("ipip", Some('i'), N, Tag::Ipip),
        spec("gatewaying", Some('g'), N, Tag::Gatewaying),
        spec("weight", Some('w'), R, Tag::Weight),
        spec("u-threshold", Some('x'), R, Tag::UThreshold),
        spec("l-threshold", Some('y'), R, Tag::LThreshold),
        spec("numeric", Some('n'), N, Tag::Numeric),
        spec("connection", Some('c'), N, Tag::Connection),
        spec("mcast-interface", None, R, Tag::McastInterface),
        spec("syncid", None, R, Tag::SyncId),
        spec("timeout", None, N, Tag::Timeout),
        spec("daemon", None, N, Tag::Daemon),
        spec("stats", None, N, Tag::Stats),
        spec("rate", None, N, Tag::Rate),
        spec("thresholds", None, N, Tag::Thresholds),
        spec("persistent-conn", None, N, Tag::PersistentConn),
        spec("nosort", None, N, Tag::NoSort),
        spec("sort", None, N, Tag::Sort),
        spec("exact", Some('X'), N, Tag::Exact),
        spec("ipv6", Some('6'), N, Tag::Ipv6),
        spec("ops", Some('o'), N, Tag::Ops),
        spec("pe", None, R, Tag::Pe),
        spec("sched-flags", Some('b'), R, Tag::SchedFlags),
        spec("mcast-group", None, R, Tag::McastGroup),
        spec("mcast-port", None, R, Tag::McastPort),
        spec("mcast-ttl", None, R, Tag::McastTtl),
        spec("sync-maxlen", None, R, Tag::SyncMaxlen),
        spec("tun-info", None, N, Tag::TunInfo),
        spec("tun-type", None, R, Tag::TunType),
        spec("tun-port", None, R, Tag::TunPort),
        spec("tun-nocsum", None, N, Tag::TunNocsum),
        spec("tun-csum", None, N, Tag::TunCsum),
        spec("tun-remcsum", None, N, Tag::TunRemcsum),
    ]
};

/// A popt error: the message is "WORD: WHAT".
struct PoptError(&'static str);

/// Splits an argument vector into options the way popt does.
struct Lexer<'a> {
    argv: &'a [String],
    /// Next word to read.
    next: usize,
    /// Inside a cluster of short options: word index and byte offset of the
    /// next option character.
    cluster: Option<(usize, usize)>,
    /// After `--`.
    only_args: bool,
    /// Words that are not options, in order.
    args: Vec<String>,
    /// The last word consumed, which popt names in its errors.
    last: usize,
}

impl<'a> Lexer<'a> {
    fn new(argv: &'a [String]) -> Lexer<'a> {
        Lexer {
            argv,
            next: 1,
            cluster: None,
            only_args: false,
            args: Vec::new(),
            last: 0,
        }
    }

    /// The word popt's `poptBadOption` would name.
    fn bad_word(&self) -> &str {
        &self.argv[self.last]
    }

    /// The next option and its argument; `Ok(None)` at the end.
    fn next_opt(&mut self) -> Result<Option<(Tag, Option<String>)>, PoptError> {
        let argv = self.argv;
        loop {
            if let Some((i, off)) = self.cluster.take() {
                let word = &argv[i];
                let c = word[off..]
                    .chars()
                    .next()
                    .expect("cluster offset inside word");
                let after = off + c.len_utf8();
                let spec = OPTIONS
                    .iter()
                    .find(|s| s.short == Some(c))
                    .ok_or(PoptError("unknown option"))?;
                if spec.arg == ArgKind::None {
                    if after < word.len() {
                        self.cluster = Some((i, after));
                    }
                    return Ok(Some((spec.tag, None)));
                }
                if after < word.len() {
                    let v = &word[after..];
                    let v = v.strip_prefix('=').unwrap_or(v);
                    return Ok(Some((spec.tag, Some(v.to_string()))));
                }
                let v = self.take_value(spec.arg)?;
                return Ok(Some((spec.tag, v)));
            }

            if self.next >= argv.len() {
                return Ok(None);
            }
            let i = self.next;
            self.next += 1;
            self.last = i;
            let word = &argv[i];
            if self.only_args {
                self.args.push(word.clone());
            } else if word == "--" {
                self.only_args = true;
            } else if let Some(long) = word.strip_prefix("--") {
                let (name, value) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let spec = OPTIONS
                    .iter()
                    .find(|s| s.long == name)
                    .ok_or(PoptError("unknown option"))?;
                return match (spec.arg, value) {
                    (ArgKind::None, Some(_)) => Err(PoptError("option does not take an argument")),
                    (ArgKind::None, None) => Ok(Some((spec.tag, None))),
                    (_, Some(v)) => Ok(Some((spec.tag, Some(v.to_string())))),
                    (kind, None) => {
                        let v = self.take_value(kind)?;
                        Ok(Some((spec.tag, v)))
                    }
                };
            } else if word.len() > 1 && word.starts_with('-') {
                self.cluster = Some((i, 1));
            } else {
                self.args.push(word.clone());
            }
        }
    }

    /// An option's argument from the next word.
    fn take_value(&mut self, kind: ArgKind) -> Result<Option<String>, PoptError> {
        match self.argv.get(self.next) {
            None if kind == ArgKind::Optional => Ok(None),
            None => Err(PoptError("missing argument")),
            Some(w) if kind == ArgKind::Optional && w.starts_with('-') => Ok(None),
            Some(w) => {
                self.last = self.next;
                self.next += 1;
                Ok(Some(w.clone()))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ipvsadm's processing of the options.

/// ipvsadm's `struct ipvs_command_entry` plus its option and format bits.
struct State<'r> {
    resolve: &'r dyn Resolve,
    options: u64,
    // The virtual service.
    proto: Option<Proto>,
    svc_addr: Option<IpAddr>,
    svc_port: u16,
    sched: String,
    persistent: Option<u32>,
    netmask: Option<Netmask>,
    ops: bool,
    pe: Option<String>,
    sched_flags_arg: Option<String>,
    // The real server.
    dest_addr: Option<IpAddr>,
    dest_port: u16,
    method: Method,
    weight: u32,
    u_threshold: Option<u32>,
    l_threshold: Option<u32>,
    tun_type: TunnelType,
    tun_port: Option<u16>,
    // Listing.
    list: ListOpts,
}

fn fail(msg: impl Into<String>) -> Error {
    Error::usage(msg)
}

/// "Try `PROG -h' ..." with ipvsadm's exit status -1.
pub fn try_help(prog: &str) -> Error {
    Error {
        code: EXIT_ERROR,
        msg: format!("Try `{prog} -h' or '{prog} --help' for more information."),
    }
}

/// Parses a whole command line; `argv[0]` is the program name. An empty
/// command line (just the name) lists the table, as ipvsadm does.
pub fn parse(argv: &[String], resolve: &dyn Resolve) -> Result<Command, Error> {
    let prog = argv.first().map(String::as_str).unwrap_or("lvsadm");
    if argv.len() <= 1 {
        return Ok(Command::List(ListOpts::default()));
    }
    let mut lx = Lexer::new(argv);

    let mut daemon_state = DaemonState::Master;
    let cmd = match lx.next_opt() {
        Ok(Some((tag, value))) => match tag {
            Tag::AddService => Cmd::Add,
            Tag::EditService => Cmd::Edit,
            Tag::DeleteService => Cmd::Del,
            Tag::AddServer => Cmd::AddDest,
            Tag::EditServer => Cmd::EditDest,
            Tag::DeleteServer => Cmd::DelDest,
            Tag::Clear => Cmd::Flush,
            Tag::List => Cmd::List,
            Tag::Zero => Cmd::Zero,
            Tag::Set => Cmd::Timeout,
            Tag::Restore => Cmd::Restore,
            Tag::Save => Cmd::Save,
            Tag::StartDaemon | Tag::StopDaemon => {
                daemon_state = match value.as_deref() {
                    Some("master") => DaemonState::Master,
                    Some("backup") => DaemonState::Backup,
                    _ if tag == Tag::StartDaemon => {
                        return Err(fail("illegal start-daemon parameter specified"))
                    }
                    _ => return Err(fail("illegal start_daemon specified")),
                };
                if tag == Tag::StartDaemon {
                    Cmd::StartDaemon
                } else {
                    Cmd::StopDaemon
                }
            }
            Tag::Help => return Ok(Command::Help),
            Tag::Version => return Ok(Command::Version),
            _ => return Err(try_help(prog)),
        },
        Ok(None) | Err(_) => return Err(try_help(prog)),
    };

    let mut st = State {
        resolve,
        options: 0,
        proto: None,
        svc_addr: None,
        svc_port: 0,
        sched: String::new(),
        persistent: None,
        netmask: None,
        ops: false,
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
        list: ListOpts::default(),
    };

    loop {
        match lx.next_opt() {
            Ok(None) => break,
            Ok(Some((tag, value))) => st.option(tag, value, lx.bad_word())?,
            Err(PoptError(what)) => {
                return Err(Error {
                    code: EXIT_ERROR,
                    msg: format!("{}: {what}", lx.bad_word()),
                })
            }
        }
    }

    let mut leftovers = lx.args.into_iter();
    let mut timeouts = Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 0,
    };
    if cmd == Cmd::Timeout {
        match (leftovers.next(), leftovers.next(), leftovers.next()) {
            (Some(tcp), Some(fin), Some(udp)) => {
                timeouts.tcp = parse_timeout(&tcp, 0, MAX_TIMEOUT)?;
                timeouts.tcp_fin = parse_timeout(&fin, 0, MAX_TIMEOUT)?;
                timeouts.udp = parse_timeout(&udp, 0, MAX_TIMEOUT)?;
            }
            _ => return Err(fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(arg) = leftovers.next() {
        return Err(fail(format!("unexpected argument {arg}")));
    }

    let sched_flags = match st.sched_flags_arg.take() {
        Some(arg) if !arg.is_empty() => Some(parse_sched_flags(&st.sched, &arg)?),
        _ => None,
    };

    check_options(cmd, st.options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if st.svc_port == 0 && st.persistent.is_none() {
            return Err(fail("Zero port specified for non-persistent service"));
        }
        if st.ops && st.proto != Some(Proto::Udp) {
            return Err(fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if st.sched.is_empty() {
            st.sched = DEFAULT_SCHEDULER.to_string();
        }
    }

    let mut tunnel = None;
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        // Direct routing and tunnelling keep the destination port.
        if matches!(st.method, Method::Tunnel | Method::Route) {
            st.dest_port = st.svc_port;
        }
        let svc_v6 = st.svc_addr.is_some_and(|a| a.is_ipv6());
        let dest_v6 = st.dest_addr.is_some_and(|a| a.is_ipv6());
        if svc_v6 != dest_v6 && st.method != Method::Tunnel {
            return Err(fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_opts = Opt::TunType.bit()
            | Opt::TunPort.bit()
            | Opt::TunNocsum.bit()
            | Opt::TunCsum.bit()
            | Opt::TunRemcsum.bit();
        if st.options & tun_opts != 0 && st.method != Method::Tunnel {
            return Err(fail("Tunnel options conflict with forward method"));
        }
        let csum = check_tunnel_options(st.tun_type, st.options)?;
        if st.options & tun_opts != 0 {
            tunnel = Some(TunnelSpec {
                kind: st.tun_type,
                port: st.tun_port,
                csum,
            });
        }
    }

    if cmd == Cmd::List {
        let o = st.options;
        let any = |opts: &[Opt]| opts.iter().any(|x| o & x.bit() != 0);
        if (any(&[Opt::Connection, Opt::Timeout, Opt::Daemon])
            && any(&[Opt::Stats, Opt::Rate, Opt::Thresholds]))
            || (any(&[Opt::Timeout, Opt::Daemon]) && any(&[Opt::PersistentConn]))
        {
            return Err(fail("options conflicts in the list command"));
        }
    }

    let has_service = st.options & Opt::Service.bit() != 0;
    let service = match (has_service, st.proto, st.svc_addr) {
        (true, Some(proto), Some(addr)) => Some(ServiceAddr {
            proto,
            addr,
            port: st.svc_port,
        }),
        _ => None,
    };
    // The legality check has made sure the service (and real server) is
    // there when the command needs it.
    let need_service = || service.ok_or_else(|| try_help(prog));
    let need_dest = || st.dest_addr.ok_or_else(|| try_help(prog));

    Ok(match cmd {
        Cmd::Add | Cmd::Edit => {
            let spec = ServiceSpec {
                key: need_service()?,
                sched: st.sched.clone(),
                persistent: st.persistent,
                netmask: st.netmask,
                ops: st.ops,
                sched_flags,
                pe: st.pe.clone(),
            };
            if cmd == Cmd::Add {
                Command::AddService(spec)
            } else {
                Command::EditService(spec)
            }
        }
        Cmd::Del => Command::DeleteService(need_service()?),
        Cmd::Flush => Command::Clear,
        Cmd::AddDest | Cmd::EditDest => {
            let spec = ServerSpec {
                service: need_service()?,
                addr: need_dest()?,
                port: st.dest_port,
                method: st.method,
                weight: st.weight,
                u_threshold: st.u_threshold,
                l_threshold: st.l_threshold,
                tunnel,
            };
            if cmd == Cmd::AddDest {
                Command::AddServer(spec)
            } else {
                Command::EditServer(spec)
            }
        }
        Cmd::DelDest => Command::DeleteServer(ServerKey {
            service: need_service()?,
            addr: need_dest()?,
            port: st.dest_port,
        }),
        Cmd::List => {
            let mut list = st.list.clone();
            list.service = service;
            Command::List(list)
        }
        Cmd::Zero => Command::Zero(service),
        Cmd::Save => Command::Save {
            numeric: st.list.numeric,
        },
        Cmd::Restore => Command::Restore,
        Cmd::Timeout => Command::SetTimeouts(timeouts),
        Cmd::StartDaemon => Command::StartDaemon(daemon_state),
        Cmd::StopDaemon => Command::StopDaemon(daemon_state),
    })
}

impl State<'_> {
    fn set(&mut self, opt: Opt) -> Result<(), Error> {
        if self.options & opt.bit() != 0 {
            return Err(fail(format!("multiple '{}' options specified", opt.name())));
        }
        self.options |= opt.bit();
        Ok(())
    }

    /// One option, as ipvsadm's `parse_options` loop handles it.
    fn option(&mut self, tag: Tag, value: Option<String>, word: &str) -> Result<(), Error> {
        let persistent_arg = value.clone();
        let v = value.unwrap_or_default();
        match tag {
            Tag::Tcp | Tag::Udp => {
                self.set(Opt::Service)?;
                let proto = if tag == Tag::Tcp {
                    Proto::Tcp
                } else {
                    Proto::Udp
                };
                self.proto = Some(proto);
                let (addr, port) = parse_service(&v, Some(proto), self.resolve)
                    .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
                self.svc_addr = Some(addr);
                if let Some(p) = port {
                    self.svc_port = p;
                }
                if addr.is_ipv6() {
                    // ipvsadm resets the granularity to /128 here.
                    self.netmask = None;
                }
            }
            Tag::Sctp => {
                self.set(Opt::Service)?;
                return Err(fail(support::SCTP_REFUSAL));
            }
            Tag::Fwmark => {
                self.set(Opt::Service)?;
                return Err(fail(support::FWMARK_REFUSAL));
            }
            Tag::Scheduler => {
                self.set(Opt::Scheduler)?;
                let mut end = v.len().min(SCHED_NAME_MAX);
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                self.sched = v[..end].to_string();
            }
            Tag::Persistent => {
                self.set(Opt::Persistent)?;
                self.persistent = Some(match persistent_arg {
                    None => DEFAULT_PERSISTENT_TIMEOUT,
                    Some(t) => parse_timeout(&t, 1, MAX_TIMEOUT)?,
                });
            }
            Tag::Netmask => {
                self.set(Opt::Netmask)?;
                if self.svc_addr.is_some_and(|a| a.is_ipv6()) {
                    match c_atoi(&v) {
                        n @ 1..=128 => self.netmask = Some(Netmask::V6(n as u8)),
                        _ => return Err(fail("illegal ipv6 netmask specified")),
                    }
                } else {
                    let mask = inet_aton(&v)
                        .or_else(|| self.resolve.host(&v))
                        .ok_or_else(|| fail("illegal virtual server persistent mask specified"))?;
                    self.netmask = Some(Netmask::V4(mask));
                }
            }
            Tag::RealServer => {
                self.set(Opt::Server)?;
                let (addr, port) = parse_service(&v, self.proto, self.resolve)
                    .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
                self.dest_addr = Some(addr);
                self.dest_port = port.unwrap_or(self.svc_port);
            }
            Tag::Masquerading | Tag::Ipip | Tag::Gatewaying => {
                self.set(Opt::Forward)?;
                self.method = match tag {
                    Tag::Masquerading => Method::Masq,
                    Tag::Ipip => Method::Tunnel,
                    _ => Method::Route,
                };
            }
            Tag::Weight => {
                self.set(Opt::Weight)?;
                self.weight = string_to_number(&v, 0, 65535)
                    .ok_or_else(|| fail("illegal weight specified"))?
                    as u32;
            }
            Tag::UThreshold => {
                self.set(Opt::UThreshold)?;
                self.u_threshold = Some(
                    string_to_number(&v, 0, i32::MAX as i64)
                        .ok_or_else(|| fail("illegal u_threshold specified"))?
                        as u32,
                );
            }
            Tag::LThreshold => {
                self.set(Opt::LThreshold)?;
                self.l_threshold = Some(
                    string_to_number(&v, 0, i32::MAX as i64)
                        .ok_or_else(|| fail("illegal l_threshold specified"))?
                        as u32,
                );
            }
            Tag::Connection => {
                self.set(Opt::Connection)?;
                self.list.connection = true;
            }
            Tag::Numeric => {
                self.set(Opt::Numeric)?;
                self.list.numeric = true;
            }
            Tag::McastInterface => self.set(Opt::McastInterface)?,
            Tag::SyncId => {
                self.set(Opt::SyncId)?;
                string_to_number(&v, 0, 255).ok_or_else(|| fail("illegal syncid specified"))?;
            }
            Tag::Timeout => {
                self.set(Opt::Timeout)?;
                self.list.timeout = true;
            }
            Tag::Daemon => {
                self.set(Opt::Daemon)?;
                self.list.daemon = true;
            }
            Tag::Stats => {
                self.set(Opt::Stats)?;
                self.list.stats = true;
            }
            Tag::Rate => {
                self.set(Opt::Rate)?;
                self.list.rate = true;
            }
            Tag::Thresholds => {
                self.set(Opt::Thresholds)?;
                self.list.thresholds = true;
            }
            Tag::PersistentConn => {
                self.set(Opt::PersistentConn)?;
                self.list.persistent_conn = true;
            }
            Tag::NoSort => {
                self.set(Opt::NoSort)?;
                self.list.nosort = true;
            }
            Tag::Sort => {}
            Tag::Exact => {
                self.set(Opt::Exact)?;
                self.list.exact = true;
            }
            // `-6` only qualifies `-f`, which lvsadm refuses when it meets
            // it; ipvsadm's message has the extra newline too.
            Tag::Ipv6 => return Err(fail("-6 used before -f\n")),
            Tag::Ops => {
                self.set(Opt::Ops)?;
                self.ops = true;
            }
            Tag::Pe => {
                self.set(Opt::Pe)?;
                self.pe = Some(v);
            }
            Tag::SchedFlags => {
                self.set(Opt::SchedFlags)?;
                let mut end = v.len().min(127);
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                self.sched_flags_arg = Some(v[..end].to_string());
            }
            Tag::McastGroup => {
                self.set(Opt::McastGroup)?;
                if v.contains(':') {
                    match v.parse::<Ipv6Addr>() {
                        Ok(a) if a.is_multicast() => {}
                        _ => return Err(fail(format!("invalid IPv6 mcast-group `{v}'"))),
                    }
                } else {
                    match v.parse::<Ipv4Addr>() {
                        Ok(a) if a.is_multicast() => {}
                        _ => return Err(fail(format!("invalid IPv4 mcast-group `{v}'"))),
                    }
                }
            }
            Tag::McastPort => {
                self.set(Opt::McastPort)?;
                string_to_number(&v, 1, 65535)
                    .ok_or_else(|| fail("illegal mcast-port specified"))?;
            }
            Tag::McastTtl => {
                self.set(Opt::McastTtl)?;
                string_to_number(&v, 1, 255).ok_or_else(|| fail("illegal mcast-ttl specified"))?;
            }
            Tag::SyncMaxlen => {
                self.set(Opt::SyncMaxlen)?;
                string_to_number(&v, 1, 65535 - 20 - 8)
                    .ok_or_else(|| fail("illegal sync-maxlen specified"))?;
            }
            Tag::TunInfo => {
                self.set(Opt::TunInfo)?;
                self.list.tun_info = true;
            }
            Tag::TunType => {
                self.set(Opt::TunType)?;
                self.tun_type = match v.as_str() {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    _ => return Err(fail("illegal tunnel type specified")),
                };
            }
            Tag::TunPort => {
                self.set(Opt::TunPort)?;
                let p = string_to_number(&v, 1, 65535)
                    .ok_or_else(|| fail("illegal tunnel port specified"))?;
                self.tun_port = Some(p as u16);
            }
            Tag::TunNocsum => self.set(Opt::TunNocsum)?,
            Tag::TunCsum => self.set(Opt::TunCsum)?,
            Tag::TunRemcsum => self.set(Opt::TunRemcsum)?,
            // A second command.
            Tag::AddService
            | Tag::EditService
            | Tag::DeleteService
            | Tag::Clear
            | Tag::List
            | Tag::Zero
            | Tag::AddServer
            | Tag::EditServer
            | Tag::DeleteServer
            | Tag::Set
            | Tag::Help
            | Tag::Version
            | Tag::Restore
            | Tag::Save
            | Tag::StartDaemon
            | Tag::StopDaemon => return Err(fail(format!("invalid option `{word}'"))),
        }
        Ok(())
    }
}

/// ipvsadm's `generic_opt_check`.
fn check_options(cmd: Cmd, options: u64) -> Result<(), Error> {
    let mut exclusive: Option<Opt> = None;
    for opt in ALL_OPTS {
        let given = options & opt.bit() != 0;
        match (cmd.rule(opt), given) {
            (Rule::Required, false) => {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    opt.name(),
                    cmd.name()
                )))
            }
            (Rule::Illegal, true) => {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    opt.name(),
                    cmd.name()
                )))
            }
            (Rule::Exclusive, true) => match exclusive {
                None => exclusive = Some(opt),
                Some(first) => {
                    return Err(fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        opt.name(),
                        first.name(),
                        cmd.name()
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's `tunnel_opt_check`; returns the checksum option given.
fn check_tunnel_options(kind: TunnelType, options: u64) -> Result<Option<&'static str>, Error> {
    let (type_name, port_rule, csum_rule) = match kind {
        TunnelType::Ipip => ("ipip", Rule::Illegal, Rule::Illegal),
        TunnelType::Gue => ("gue", Rule::Required, Rule::Exclusive),
    };
    let mut first: Option<Opt> = None;
    let opts = [
        (Opt::TunPort, port_rule),
        (Opt::TunNocsum, csum_rule),
        (Opt::TunCsum, csum_rule),
        (Opt::TunRemcsum, csum_rule),
    ];
    for (opt, rule) in opts {
        let given = options & opt.bit() != 0;
        match (rule, given) {
            (Rule::Required, false) => {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{type_name}' tunnel type",
                    opt.name()
                )))
            }
            (Rule::Illegal, true) => {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{type_name}' tunnel type",
                    opt.name()
                )))
            }
            (Rule::Exclusive, true) => match first {
                None => first = Some(opt),
                Some(f) => {
                    return Err(fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{type_name}' tunnel type",
                        opt.name(),
                        f.name()
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(first.map(|o| match o {
        Opt::TunNocsum => "nocsum",
        Opt::TunCsum => "csum",
        _ => "remcsum",
    }))
}

/// ipvsadm's `parse_sched_flags`.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<u16, Error> {
    use lvs_common::{SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3};
    let sched = if sched.is_empty() {
        DEFAULT_SCHEDULER
    } else {
        sched
    };
    let mut flags = 0;
    let mut any = false;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        any = true;
        let (bit, only_for) = match flag {
            "flag-1" => (SVC_F_SCHED1, None),
            "flag-2" => (SVC_F_SCHED2, None),
            "flag-3" => (SVC_F_SCHED3, None),
            "sh-fallback" => (SVC_F_SCHED1, Some("sh")),
            "sh-port" => (SVC_F_SCHED2, Some("sh")),
            "mh-fallback" => (SVC_F_SCHED1, Some("mh")),
            "mh-port" => (SVC_F_SCHED2, Some("mh")),
            _ => return Err(fail(format!("invalid scheduler flag `{flag}'"))),
        };
        if only_for.is_some_and(|s| s != sched) {
            return Err(fail(format!("incompatible scheduler flag `{flag}'")));
        }
        flags |= bit;
    }
    if !any {
        // ipvsadm crashes on a list of only commas.
        return Err(fail(format!("invalid scheduler flag `{arg}'")));
    }
    Ok(flags)
}

fn parse_timeout(s: &str, min: u32, max: u32) -> Result<u32, Error> {
    string_to_number(s, min as i64, max as i64)
        .map(|n| n as u32)
        .ok_or_else(|| fail(format!("invalid timeout value `{s}' specified")))
}

// ---------------------------------------------------------------------------
// Numbers and addresses, with the C library's rules ipvsadm relies on.

fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// ipvsadm's `string_to_number`: the whole string is a base-10 `strtol`
/// number (leading blanks and a sign allowed) within `min..=max`.
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches(is_c_space);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        n = n.checked_mul(10)?.checked_add((b - b'0') as i64)?;
    }
    let n = if neg { -n } else { n };
    (min..=max).contains(&n).then_some(n)
}

/// C's `atoi`: leading blanks, a sign, digits; 0 if none.
fn c_atoi(s: &str) -> i64 {
    let t = s.trim_start_matches(is_c_space);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for b in rest.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -n
    } else {
        n
    }
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (leading
/// `0`) or hexadecimal (`0x`), the last filling the remaining bytes;
/// anything after a blank is ignored.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let s = s.split(is_c_space).next().unwrap_or("");
    let mut parts: Vec<u32> = Vec::with_capacity(4);
    let mut rest = s;
    loop {
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let (value, after) = c_strtoul(rest)?;
        rest = after;
        if let Some(r) = rest.strip_prefix('.') {
            if parts.len() >= 3 || value > 0xff {
                return None;
            }
            parts.push(value);
            rest = r;
        } else {
            if !rest.is_empty() {
                return None;
            }
            let max: u32 = match parts.len() {
                0 => u32::MAX,
                1 => 0xff_ffff,
                2 => 0xffff,
                _ => 0xff,
            };
            if value > max {
                return None;
            }
            let mut addr = value;
            for (i, p) in parts.iter().enumerate() {
                addr |= p << (24 - 8 * i);
            }
            return Some(Ipv4Addr::from(addr));
        }
    }
}

/// `strtoul(s, &end, 0)` on a string starting with a digit: the value (if
/// it fits 32 bits) and the rest.
fn c_strtoul(s: &str) -> Option<(u32, &str)> {
    let b = s.as_bytes();
    let (radix, start) =
        if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
            (16, 2)
        } else if b[0] == b'0' {
            (8, 0)
        } else {
            (10, 0)
        };
    let digits = s[start..]
        .bytes()
        .take_while(|c| (*c as char).is_digit(radix))
        .count();
    let mut v: u64 = 0;
    for c in s[start..start + digits].chars() {
        v = v * radix as u64 + c.to_digit(radix)? as u64;
        if v > u32::MAX as u64 {
            return None;
        }
    }
    Some((v as u32, &s[start + digits..]))
}

/// ipvsadm's `parse_service`: an address and maybe a port; `None` when the
/// text is no address (ipvsadm's `SERVICE_NONE`).
pub fn parse_service(
    buf: &str,
    proto: Option<Proto>,
    resolve: &dyn Resolve,
) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, port) = if let Some(inner) = buf.strip_prefix('[') {
        let close = inner.find(']')?;
        let port = inner[close + 1..].strip_prefix(':')?;
        let host = &inner[..close];
        if let Ok(a) = host.parse::<Ipv6Addr>() {
            return Some((IpAddr::V6(a), Some(parse_port(port, proto, resolve)?)));
        }
        // ipvsadm then looks for the port inside the brackets only, so
        // `[1.2.3.4]:80` is the address without a port.
        match host.rfind(':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        }
    } else {
        if let Ok(a) = buf.parse::<Ipv6Addr>() {
            return Some((IpAddr::V6(a), None));
        }
        match buf.rfind(':') {
            Some(i) => (&buf[..i], Some(&buf[i + 1..])),
            None => (buf, None),
        }
    };
    let addr = inet_aton(host).or_else(|| resolve.host(host))?;
    let port = match port {
        Some(p) => Some(parse_port(p, proto, resolve)?),
        None => None,
    };
    Some((IpAddr::V4(addr), port))
}

fn parse_port(p: &str, proto: Option<Proto>, resolve: &dyn Resolve) -> Option<u16> {
    if let Some(n) = string_to_number(p, 0, 65535) {
        return Some(n as u16);
    }
    resolve.service(p, proto?)
}

// ---------------------------------------------------------------------------
// Help and version.

/// `-v`.
pub fn version() -> String {
    format!(
        "lvsadm v{} (ipvsadm v1.31 command line, IPVS v1.2.1 tables in XDP)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`.
pub fn usage(prog: &str) -> String {
    let mut s = version();
    s.push_str("Usage:\n");
    for line in [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--start-daemon {master|backup} [daemon-options]",
        "--stop-daemon {master|backup}",
        "-h",
    ] {
        s.push_str(&format!("  {prog} {line}\n"));
    }
    s.push_str(
        "\n\
Commands:\n\
Either long or short options are allowed.\n\
  --add-service     -A        add virtual service with options\n\
  --edit-service    -E        edit virtual service with options\n\
  --delete-service  -D        delete virtual service\n\
  --clear           -C        clear the whole table\n\
  --restore         -R        restore rules from stdin (all or nothing)\n\
  --save            -S        save rules to stdout\n\
  --add-server      -a        add real server with options\n\
  --edit-server     -e        edit real server with options\n\
  --delete-server   -d        delete real server\n\
  --list            -L|-l     list the table\n\
  --zero            -Z        zero counters in a service or all services\n\
  --set tcp tcpfin udp        set connection timeout values\n\
  --start-daemon              start connection sync daemon\n\
  --stop-daemon               stop connection sync daemon\n\
  --help            -h        display this help message\n\
\n\
virtual-service:\n\
  --tcp-service|-t  service-address   service-address is host[:port]\n\
  --udp-service|-u  service-address   service-address is host[:port]\n\
  --sctp-service    service-address   service-address is host[:port]\n\
  --fwmark-service|-f fwmark          not supported: XDP runs before netfilter marks packets\n\
\n\
Options:\n\
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos,\n\
                                      the default scheduler is wlc.\n\
  --pe            engine              alternate persistence engine, not set by default.\n\
  --persistent   -p [timeout]         persistent service\n\
  --netmask      -M netmask           persistent granularity mask\n\
  --real-server  -r server-address    server-address is host (and port)\n\
  --gatewaying   -g                   gatewaying (direct routing) (default)\n\
  --ipip         -i                   ipip encapsulation (tunneling)\n\
  --masquerading -m                   masquerading (NAT)\n\
  --tun-type      type                one of ipip|gue, the default tunnel type is ipip.\n\
  --tun-port      port                tunnel destination port\n\
  --tun-nocsum                        tunnel encapsulation without checksum\n\
  --tun-csum                          tunnel encapsulation with checksum\n\
  --tun-remcsum                       tunnel encapsulation with remote checksum\n\
  --weight       -w weight            capacity of real server\n\
  --u-threshold  -x uthreshold        upper threshold of connections\n\
  --l-threshold  -y lthreshold        lower threshold of connections\n\
  --connection   -c                   output of current IPVS connections\n\
  --timeout                           output of timeout (tcp tcpfin udp)\n\
  --daemon                            output of daemon information\n\
  --stats                             output of statistics information\n\
  --rate                              output of rate information\n\
  --exact                             expand numbers (display exact values)\n\
  --thresholds                        output of thresholds information\n\
  --persistent-conn                   output of persistent connection info\n\
  --tun-info                          output of tunnel information\n\
  --nosort                            disable sorting output of service/server entries\n\
  --sort                              does nothing, for backwards compatibility\n\
  --ops          -o                   one-packet scheduling\n\
  --numeric      -n                   numeric output of addresses and ports\n\
  --sched-flags  -b flags             scheduler flags (comma-separated)\n\
Daemon Options:\n\
  --syncid sid                        syncid for connection sync (default=255)\n\
  --sync-maxlen length                Max sync message length (default=1472)\n\
  --mcast-interface interface         multicast interface for connection sync\n\
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n\
  --mcast-port port                   UDP port (default=8848)\n\
  --mcast-ttl ttl                     Multicast TTL (default=1)\n\
lvsadm only:\n\
  --pin-path DIR                      the pinned tables (default $LVS_PIN_PATH or /sys/fs/bpf/lvs)\n\
Not every option is implemented by the XDP data path yet; lvsadm says so\n\
instead of doing something else.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adm::NoResolve;

    fn argv(s: &str) -> Vec<String> {
        std::iter::once("lvsadm")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect()
    }

    fn p(s: &str) -> Result<Command, Error> {
        parse(&argv(s), &NoResolve)
    }

    fn err(s: &str) -> (i32, String) {
        let e = p(s).expect_err(s);
        (e.code, e.msg)
    }

    fn svc(proto: Proto, a: &str, port: u16) -> ServiceAddr {
        ServiceAddr {
            proto,
            addr: a.parse().unwrap(),
            port,
        }
    }

    fn tcp(a: &str, port: u16) -> ServiceAddr {
        svc(Proto::Tcp, a, port)
    }

    #[test]
    fn add_service_defaults() {
        assert_eq!(
            p("-A -t 192.168.47.128:80").unwrap(),
            Command::AddService(ServiceSpec {
                key: tcp("192.168.47.128", 80),
                sched: "wlc".into(),
                persistent: None,
                netmask: None,
                ops: false,
                sched_flags: None,
                pe: None,
            })
        );
    }

    #[test]
    fn long_forms_equal_short_forms() {
        let short = p("-A -t 10.0.0.1:80 -s rr -p 600 -M 255.255.255.0").unwrap();
        let long = p(
            "--add-service --tcp-service 10.0.0.1:80 --scheduler=rr --persistent 600 --netmask 255.255.255.0",
        )
        .unwrap();
        assert_eq!(short, long);
        match short {
            Command::AddService(s) => {
                assert_eq!(s.sched, "rr");
                assert_eq!(s.persistent, Some(600));
                assert_eq!(
                    s.netmask,
                    Some(Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)))
                );
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            p("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 5").unwrap(),
            p("--add-server --tcp-service 10.0.0.1:80 --real-server 10.1.0.1:8080 --masquerading --weight 5")
                .unwrap()
        );
        assert_eq!(
            p("-E -u 10.0.0.1:53 -s wrr").unwrap(),
            p("--edit-service --udp-service=10.0.0.1:53 --scheduler wrr").unwrap()
        );
        assert_eq!(p("-C").unwrap(), p("--clear").unwrap());
        assert_eq!(p("-S -n").unwrap(), p("--save --numeric").unwrap());
        assert_eq!(p("-R").unwrap(), p("--restore").unwrap());
        assert_eq!(p("-Z").unwrap(), p("--zero").unwrap());
        assert_eq!(p("-l").unwrap(), p("--list").unwrap());
        assert_eq!(
            p("-L -n -c").unwrap(),
            p("--list --numeric --connection").unwrap()
        );
        assert_eq!(
            p("-a -t 1.2.3.4:80 -r 5.6.7.8 -i -x 10 -y 5").unwrap(),
            p("-a -t 1.2.3.4:80 -r 5.6.7.8 --ipip --u-threshold 10 --l-threshold=5").unwrap()
        );
        assert_eq!(
            p("-a -t 1.2.3.4:80 -r 5.6.7.8 -g").unwrap(),
            p("-a -t 1.2.3.4:80 -r 5.6.7.8 --gatewaying").unwrap()
        );
        assert_eq!(
            p("-A -t 1.2.3.4:80 -b flag-1").unwrap(),
            p("-A -t 1.2.3.4:80 --sched-flags flag-1").unwrap()
        );
        assert_eq!(p("-L --timeout").unwrap(), p("-L --timeout").unwrap());
    }

    #[test]
    fn combined_short_flags() {
        let expect = Command::List(ListOpts {
            numeric: true,
            ..ListOpts::default()
        });
        assert_eq!(p("-Ln").unwrap(), expect);
        assert_eq!(p("-L -n").unwrap(), expect);
        assert_eq!(
            p("-Lnc").unwrap(),
            Command::List(ListOpts {
                numeric: true,
                connection: true,
                ..ListOpts::default()
            })
        );
        // A short option's argument: rest of the cluster or the next word.
        assert_eq!(
            p("-At 10.0.0.1:80 -srr").unwrap(),
            p("-A -t 10.0.0.1:80 -s rr").unwrap()
        );
        assert_eq!(
            p("-At10.0.0.1:80 -s=rr").unwrap(),
            p("-A -t 10.0.0.1:80 -s rr").unwrap()
        );
        assert_eq!(
            p("-at 10.0.0.1:80 -mr 10.1.0.1 -w3").unwrap(),
            p("-a -t 10.0.0.1:80 -m -r 10.1.0.1 -w 3").unwrap()
        );
        assert_eq!(p("-Sn").unwrap(), Command::Save { numeric: true });
        assert_eq!(
            p("-Ln --stats --exact").unwrap(),
            Command::List(ListOpts {
                numeric: true,
                stats: true,
                exact: true,
                ..ListOpts::default()
            })
        );
        assert_eq!(
            p("-L -X").unwrap(),
            Command::List(ListOpts {
                exact: true,
                ..ListOpts::default()
            })
        );
    }

    #[test]
    fn list_one_service() {
        assert_eq!(
            p("-L -n -t 10.0.0.1:80 --nosort").unwrap(),
            Command::List(ListOpts {
                service: Some(tcp("10.0.0.1", 80)),
                numeric: true,
                nosort: true,
                ..ListOpts::default()
            })
        );
        assert_eq!(p("--list --sort").unwrap(), p("-L").unwrap());
    }

    #[test]
    fn no_arguments_is_list() {
        assert_eq!(
            parse(&["lvsadm".to_string()], &NoResolve).unwrap(),
            Command::List(ListOpts::default())
        );
    }

    #[test]
    fn persistent_optional_value() {
        let timeout = |s: &str| match p(s).unwrap() {
            Command::AddService(s) => s.persistent,
            c => panic!("{c:?}"),
        };
        assert_eq!(timeout("-A -t 1.2.3.4:80 -p"), Some(300));
        assert_eq!(timeout("-A -t 1.2.3.4:80 -p -s rr"), Some(300));
        assert_eq!(timeout("-A -t 1.2.3.4:80 -p 60"), Some(60));
        assert_eq!(timeout("-A -t 1.2.3.4:80 -p60"), Some(60));
        assert_eq!(timeout("-A -t 1.2.3.4:80 --persistent=60"), Some(60));
        assert_eq!(timeout("-A -t 1.2.3.4:80 --persistent"), Some(300));
        assert_eq!(timeout("-A -t 1.2.3.4:0 -p"), Some(300));
        assert_eq!(
            err("-A -t 1.2.3.4:80 -p 0"),
            (2, "invalid timeout value `0' specified".into())
        );
        assert_eq!(
            err("-A -t 1.2.3.4:80 -p rr"),
            (2, "invalid timeout value `rr' specified".into())
        );
        assert_eq!(
            err("-A -t 1.2.3.4:80 -p 2678401"),
            (2, "invalid timeout value `2678401' specified".into())
        );
    }

    #[test]
    fn real_server_port_defaults() {
        let server = |s: &str| match p(s).unwrap() {
            Command::AddServer(s) | Command::EditServer(s) => s,
            c => panic!("{c:?}"),
        };
        let s = server("-a -t 10.0.0.1:80 -r 10.1.0.1");
        assert_eq!((s.port, s.method, s.weight), (80, Method::Route, 1));
        let s = server("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m");
        assert_eq!((s.port, s.method), (8080, Method::Masq));
        // -g and -i always use the service's port.
        assert_eq!(server("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -g").port, 80);
        assert_eq!(server("-e -t 10.0.0.1:80 -r 10.1.0.1:8080 -i").port, 80);
        assert_eq!(server("-a -t 10.0.0.1:80 -r 10.1.0.1 -w 0 -m").weight, 0);
        assert_eq!(
            server("-a -t 10.0.0.1:80 -r 10.1.0.1 -w 65535 -m").weight,
            65535
        );
        // -d keeps the port given.
        assert_eq!(
            p("-d -t 10.0.0.1:80 -r 10.1.0.1:8080").unwrap(),
            Command::DeleteServer(ServerKey {
                service: tcp("10.0.0.1", 80),
                addr: "10.1.0.1".parse().unwrap(),
                port: 8080,
            })
        );
        assert_eq!(
            p("-d -t 10.0.0.1:80 -r 10.1.0.1").unwrap(),
            Command::DeleteServer(ServerKey {
                service: tcp("10.0.0.1", 80),
                addr: "10.1.0.1".parse().unwrap(),
                port: 80,
            })
        );
    }

    #[test]
    fn ipv6_brackets() {
        assert_eq!(
            p("-A -t [fd00::1]:80 -s rr").unwrap(),
            Command::AddService(ServiceSpec {
                key: tcp("fd00::1", 80),
                sched: "rr".into(),
                persistent: None,
                netmask: None,
                ops: false,
                sched_flags: None,
                pe: None,
            })
        );
        match p("-a -u [fd00::1]:53 -r [fd00::2]:5353 -m").unwrap() {
            Command::AddServer(s) => {
                assert_eq!(s.service, svc(Proto::Udp, "fd00::1", 53));
                assert_eq!(s.addr, "fd00::2".parse::<IpAddr>().unwrap());
                assert_eq!(s.port, 5353);
            }
            c => panic!("{c:?}"),
        }
        match p("-a -u [fd00::1]:53 -r fd00::2 -m").unwrap() {
            Command::AddServer(s) => assert_eq!(s.port, 53),
            c => panic!("{c:?}"),
        }
        // A bare IPv6 address has no port.
        assert_eq!(
            err("-A -t fd00::1 -s rr"),
            (2, "Zero port specified for non-persistent service".into())
        );
        // Brackets need a port.
        assert_eq!(
            err("-A -t [fd00::1] -s rr"),
            (2, "illegal virtual server address[:port] specified".into())
        );
        assert_eq!(
            err("-A -t [fd00::1]:x -s rr"),
            (2, "illegal virtual server address[:port] specified".into())
        );
        match p("-A -t [fd00::1]:80 -p -M 64").unwrap() {
            Command::AddService(s) => assert_eq!(s.netmask, Some(Netmask::V6(64))),
            c => panic!("{c:?}"),
        }
        assert_eq!(
            err("-A -t [fd00::1]:80 -p -M 129"),
            (2, "illegal ipv6 netmask specified".into())
        );
    }

    #[test]
    fn addresses_as_inet_aton_reads_them() {
        assert_eq!(
            inet_aton("192.168.1.2"),
            Some(Ipv4Addr::new(192, 168, 1, 2))
        );
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(inet_aton("16909060"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("08.1.1.1"), None);
        assert_eq!(inet_aton("1.2.3."), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(inet_aton("a.b.c.d"), None);
        // ipvsadm accepts `host:port` with any of these.
        match p("-A -t 10.1:0x50 -s rr") {
            Err(e) => assert_eq!(e.msg, "illegal virtual server address[:port] specified"),
            Ok(c) => panic!("{c:?}"),
        }
        match p("-A -t 10.1:+80 -s rr").unwrap() {
            Command::AddService(s) => assert_eq!(s.key, tcp("10.0.0.1", 80)),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn bad_addresses_and_ports() {
        let bad_vs = (
            2,
            "illegal virtual server address[:port] specified".to_string(),
        );
        let bad_rs = (
            2,
            "illegal real server address[:port] specified".to_string(),
        );
        assert_eq!(err("-A -t 1.2.3.400:80"), bad_vs);
        assert_eq!(err("-A -t 1.2.3.4:65536"), bad_vs);
        assert_eq!(err("-A -t 1.2.3.4:-1"), bad_vs);
        assert_eq!(err("-A -t 1.2.3.4:"), bad_vs);
        assert_eq!(err("-A -t 80"), bad_vs);
        assert_eq!(err("-A -t nosuchhost:80"), bad_vs);
        assert_eq!(err("-A -t 1.2.3.4:http"), bad_vs); // NoResolve
        assert_eq!(err("-a -t 1.2.3.4:80 -r 1.2.3:99999"), bad_rs);
        assert_eq!(err("-a -t 1.2.3.4:80 -r bogus"), bad_rs);
    }

    #[test]
    fn service_names_resolve() {
        struct R;
        impl Resolve for R {
            fn host(&self, name: &str) -> Option<Ipv4Addr> {
                (name == "www").then(|| Ipv4Addr::new(10, 9, 9, 9))
            }
            fn service(&self, name: &str, proto: Proto) -> Option<u16> {
                (name == "http" && proto == Proto::Tcp).then_some(80)
            }
        }
        let c = parse(&argv("-A -t www:http -s rr"), &R).unwrap();
        match c {
            Command::AddService(s) => assert_eq!(s.key, tcp("10.9.9.9", 80)),
            c => panic!("{c:?}"),
        }
        assert!(parse(&argv("-A -u www:http -s rr"), &R).is_err());
    }

    #[test]
    fn weights_and_thresholds() {
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 65536"),
            (2, "illegal weight specified".into())
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w -1"),
            (2, "illegal weight specified".into())
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w x"),
            (2, "illegal weight specified".into())
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -x -3"),
            (2, "illegal u_threshold specified".into())
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -y 2147483648"),
            (2, "illegal l_threshold specified".into())
        );
        match p("-e -t 1.2.3.4:80 -r 5.6.7.8 -m -x 100 -y 50").unwrap() {
            Command::EditServer(s) => {
                assert_eq!((s.u_threshold, s.l_threshold), (Some(100), Some(50)))
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn option_legality() {
        assert_eq!(
            err("-A -t 1.2.3.4:80 -w 3"),
            (
                2,
                "Illegal 'weight' option with the 'add-service' command".into()
            )
        );
        assert_eq!(
            err("-A -s rr"),
            (
                2,
                "You need to supply the 'service-address' option for the 'add-service' command"
                    .into()
            )
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80"),
            (
                2,
                "You need to supply the 'real-server' option for the 'add-server' command".into()
            )
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -s rr"),
            (
                2,
                "Illegal 'scheduler' option with the 'add-server' command".into()
            )
        );
        assert_eq!(
            err("-d -t 1.2.3.4:80 -r 5.6.7.8 -w 1"),
            (
                2,
                "Illegal 'weight' option with the 'delete-server' command".into()
            )
        );
        assert_eq!(
            err("-D -t 1.2.3.4:80 -s rr"),
            (
                2,
                "Illegal 'scheduler' option with the 'delete-service' command".into()
            )
        );
        assert_eq!(
            err("-C -t 1.2.3.4:80"),
            (
                2,
                "Illegal 'service-address' option with the 'flush' command".into()
            )
        );
        assert_eq!(
            err("-S --stats"),
            (2, "Illegal 'stats' option with the 'save' command".into())
        );
        assert_eq!(
            err("-R -n"),
            (
                2,
                "Illegal 'numeric' option with the 'restore' command".into()
            )
        );
        assert_eq!(
            err("-L -c -t 1.2.3.4:80"),
            (2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command".into())
        );
        assert_eq!(
            err("-L -c --stats"),
            (2, "options conflicts in the list command".into())
        );
        assert_eq!(
            err("-L --timeout --persistent-conn"),
            (2, "options conflicts in the list command".into())
        );
        assert_eq!(
            err("-A -t 1.2.3.4:80 -s rr -s wrr"),
            (2, "multiple 'scheduler' options specified".into())
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -g -m"),
            (2, "multiple 'forwarding-method' options specified".into())
        );
        assert_eq!(
            err("-A -t 1.2.3.4:80 -u 1.2.3.4:80"),
            (2, "multiple 'service-address' options specified".into())
        );
        assert_eq!(err("-L -Z"), (2, "invalid option `-Z'".into()));
        assert_eq!(err("-LZ"), (2, "invalid option `-LZ'".into()));
    }

    #[test]
    fn mixing_tcp_udp_with_wrong_arguments() {
        // -t/-u want an address, not a number.
        assert_eq!(
            err("-A -u 53"),
            (2, "illegal virtual server address[:port] specified".into())
        );
        assert_eq!(err("-A -t"), (255, "-t: missing argument".into()));
        assert_eq!(
            err("-A -t 1.2.3.4:0 -s rr"),
            (2, "Zero port specified for non-persistent service".into())
        );
        assert_eq!(
            err("-A -t 1.2.3.4:53 -s rr -o"),
            (
                2,
                "One-Packet Scheduling is only for UDP virtual services".into()
            )
        );
        assert!(p("-A -u 1.2.3.4:53 -s rr -o").is_ok());
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r [fd00::1]:80 -m"),
            (
                2,
                "Different address family is allowed only for tunneling servers".into()
            )
        );
        assert_eq!(
            err("-a -t [fd00::1]:80 -r 10.0.0.1 -m"),
            (
                2,
                "Different address family is allowed only for tunneling servers".into()
            )
        );
        assert!(p("-a -t [fd00::1]:80 -r 10.0.0.1 -i").is_ok());
    }

    #[test]
    fn popt_errors() {
        assert_eq!(err("-L --bogus"), (255, "--bogus: unknown option".into()));
        assert_eq!(err("-LQ"), (255, "-LQ: unknown option".into()));
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -w"),
            (255, "-w: missing argument".into())
        );
        assert_eq!(
            err("-L --numeric=yes"),
            (
                255,
                "--numeric=yes: option does not take an argument".into()
            )
        );
        let try_help = (
            255,
            "Try `lvsadm -h' or 'lvsadm --help' for more information.".to_string(),
        );
        // The command must come first.
        assert_eq!(err("-n -L"), try_help);
        assert_eq!(err("-t 1.2.3.4:80 -A"), try_help);
        assert_eq!(err("foo"), try_help);
        assert_eq!(err("--bogus"), try_help);
        assert_eq!(err("-L foo"), (2, "unexpected argument foo".into()));
    }

    #[test]
    fn set_timeouts() {
        assert_eq!(
            p("--set 900 120 300").unwrap(),
            Command::SetTimeouts(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            })
        );
        assert_eq!(
            err("--set 900 120"),
            (2, "--set option requires 3 timeout values".into())
        );
        assert_eq!(
            err("--set 900 x 300"),
            (2, "invalid timeout value `x' specified".into())
        );
        assert_eq!(err("--set 1 2 3 4"), (2, "unexpected argument 4".into()));
    }

    #[test]
    fn sched_flags() {
        use lvs_common::{SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3};
        let flags = |s: &str| match p(s).unwrap() {
            Command::AddService(s) => s.sched_flags,
            c => panic!("{c:?}"),
        };
        assert_eq!(
            flags("-A -t 1.2.3.4:80 -b flag-1,flag-3"),
            Some(SVC_F_SCHED1 | SVC_F_SCHED3)
        );
        assert_eq!(
            flags("-A -t 1.2.3.4:80 -s sh -b sh-port"),
            Some(SVC_F_SCHED2)
        );
        assert_eq!(
            err("-A -t 1.2.3.4:80 -s rr -b sh-port"),
            (2, "incompatible scheduler flag `sh-port'".into())
        );
        assert_eq!(
            err("-A -t 1.2.3.4:80 -b flag-9"),
            (2, "invalid scheduler flag `flag-9'".into())
        );
    }

    #[test]
    fn fwmark_and_sctp_are_refused() {
        let (code, msg) = err("-A -f 1 -s rr");
        assert_eq!(code, 2);
        assert!(msg.contains("netfilter"), "{msg}");
        let (code, msg) = err("-A --sctp-service 1.2.3.4:80 -s rr");
        assert_eq!(code, 2);
        assert!(msg.contains("SCTP"), "{msg}");
    }

    #[test]
    fn help_version_daemon() {
        assert_eq!(p("-h").unwrap(), Command::Help);
        assert_eq!(p("--help -Q").unwrap(), Command::Help);
        assert_eq!(p("-v").unwrap(), Command::Version);
        assert_eq!(p("--version").unwrap(), Command::Version);
        assert_eq!(
            p("--start-daemon backup --syncid 3").unwrap(),
            Command::StartDaemon(DaemonState::Backup)
        );
        assert_eq!(
            err("--start-daemon slave"),
            (2, "illegal start-daemon parameter specified".into())
        );
        assert!(usage("lvsadm").contains("  lvsadm -A|E virtual-service"));
    }

    #[test]
    fn tunnel_options() {
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -m --tun-type gue"),
            (2, "Tunnel options conflict with forward method".into())
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue"),
            (
                2,
                "You need to supply the 'tun-port' option for the 'gue' tunnel type".into()
            )
        );
        assert_eq!(
            err("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-port 6080"),
            (
                2,
                "Illegal 'tun-port' option with the 'ipip' tunnel type".into()
            )
        );
        match p("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue --tun-port 6080 --tun-csum").unwrap()
        {
            Command::AddServer(s) => assert_eq!(
                s.tunnel,
                Some(TunnelSpec {
                    kind: TunnelType::Gue,
                    port: Some(6080),
                    csum: Some("csum")
                })
            ),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn dashdash_ends_options() {
        assert_eq!(err("-L -- -n"), (2, "unexpected argument -n".into()));
    }
}
