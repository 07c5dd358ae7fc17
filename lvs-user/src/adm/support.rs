//! What the XDP data path can do today: the one gate between a parsed
//! command and the tables.
//!
//! ipvsadm accepts much that the data path does not implement yet. Such a
//! command is refused here, naming what is missing, rather than mapped to
//! something that merely looks similar. Enabling a feature is a matter of
//! adding it to one of the lists below once the data path has it.
//!
//! Refusals exit with status 2, like ipvsadm's command-line errors: nothing
//! has been read or written at that point.

use super::command::{Command, ListOpts, ServerSpec, ServiceSpec};
use super::Error;
use crate::model::{Method, Scheduler, ServiceAddr};

/// Schedulers the data path implements: all fourteen of IPVS's.
pub const SCHEDULERS: &[Scheduler] = &Scheduler::ALL;

/// Forwarding methods the data path implements.
pub const METHODS: &[Method] = &[Method::Masq, Method::Route, Method::Tunnel];

/// Optional features the data path implements. Still refused, each for
/// lack of a place in the model or the data path: `--pe`, `-o`, the tunnel
/// options and `--tun-info` (and `-f` and SCTP, refused while parsing).
pub const FEATURES: &[Feature] = &[
    Feature::Ipv6,
    // Persistence, thresholds, scheduler flags, connection states and
    // timeouts.
    Feature::Persistence,
    Feature::Netmask,
    Feature::SchedFlags,
    Feature::UThreshold,
    Feature::LThreshold,
    Feature::ConnectionList,
    Feature::ThresholdList,
    Feature::PersistentConnList,
    Feature::TimeoutList,
    Feature::SetTimeouts,
    // The daemon's rate estimator (`crate::rate`).
    Feature::RateList,
    // IPVS's connection sync, inside `lvs load` (`crate::sync`).
    Feature::SyncDaemon,
];

/// Everything else that can be switched on, one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// IPv6 virtual services and real servers.
    Ipv6,
    /// `-p`.
    Persistence,
    /// `-M`.
    Netmask,
    /// `-o`.
    OnePacket,
    /// `-b`.
    SchedFlags,
    /// `--pe`.
    PersistenceEngine,
    /// `-x`.
    UThreshold,
    /// `-y`.
    LThreshold,
    /// `--tun-type`, `--tun-port`, `--tun-*csum`.
    TunnelOptions,
    /// `-L -c`.
    ConnectionList,
    /// `-L --rate`.
    RateList,
    /// `-L --thresholds`.
    ThresholdList,
    /// `-L --persistent-conn`.
    PersistentConnList,
    /// `-L --tun-info`.
    TunInfoList,
    /// `-L --timeout`.
    TimeoutList,
    /// `--set`.
    SetTimeouts,
    /// `--start-daemon`, `--stop-daemon`, `-L --daemon`.
    SyncDaemon,
}

impl Feature {
    /// What the refusal names.
    pub fn what(self) -> &'static str {
        match self {
            Feature::Ipv6 => "IPv6 (virtual services and real servers)",
            Feature::Persistence => "-p (persistence)",
            Feature::Netmask => "-M (persistence granularity netmask)",
            Feature::OnePacket => "-o (one-packet scheduling)",
            Feature::SchedFlags => "-b (scheduler flags)",
            Feature::PersistenceEngine => "--pe (persistence engines)",
            Feature::UThreshold => "-x (upper connection threshold)",
            Feature::LThreshold => "-y (lower connection threshold)",
            Feature::TunnelOptions => "--tun-type/--tun-port/--tun-*csum (tunnel options)",
            Feature::ConnectionList => "-c (connection listing)",
            Feature::RateList => "--rate (rate listing)",
            Feature::ThresholdList => "--thresholds (threshold listing)",
            Feature::PersistentConnList => "--persistent-conn (persistent connection listing)",
            Feature::TunInfoList => "--tun-info (tunnel listing)",
            Feature::TimeoutList => "--timeout (timeout listing)",
            Feature::SetTimeouts => "--set (connection timeouts)",
            Feature::SyncDaemon => {
                "the connection sync daemon (--start-daemon, --stop-daemon, --daemon)"
            }
        }
    }
}

/// `-f`: refused for good, not "yet".
pub const FWMARK_REFUSAL: &str = "lvsadm: -f (firewall-mark services) is not supported: \
the XDP program runs before netfilter, so packets carry no mark yet when it sees them";

/// `--sctp-service`: needs SCTP in the model (`Proto`) as well as in the
/// data path, so it is refused while parsing.
pub const SCTP_REFUSAL: &str =
    "lvsadm: --sctp-service (SCTP virtual services) is not implemented yet";

/// Something a command needs from the data path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Feature(Feature),
    Scheduler(Scheduler),
    Method(Method),
}

impl Need {
    fn supported(self) -> bool {
        match self {
            Need::Feature(f) => FEATURES.contains(&f),
            Need::Scheduler(s) => SCHEDULERS.contains(&s),
            Need::Method(m) => METHODS.contains(&m),
        }
    }

    fn refusal(self) -> String {
        let what = match self {
            Need::Feature(f) => f.what().to_string(),
            Need::Scheduler(s) => format!("scheduler '{s}'"),
            Need::Method(Method::Route) => "forwarding method -g (gatewaying/direct routing, \
                 the default when none of -g, -i, -m is given)"
                .to_string(),
            Need::Method(Method::Tunnel) => "forwarding method -i (ipip tunnelling)".to_string(),
            Need::Method(Method::Masq) => "forwarding method -m (masquerading)".to_string(),
        };
        format!("lvsadm: {what} is not implemented yet")
    }
}

/// Refuses a command that needs something the data path does not do yet.
pub fn check_supported(cmd: &Command) -> Result<(), Error> {
    match needs(cmd).into_iter().find(|n| !n.supported()) {
        Some(n) => Err(Error::usage(n.refusal())),
        None => Ok(()),
    }
}

/// What a command needs, in the order refusals are reported.
fn needs(cmd: &Command) -> Vec<Need> {
    let mut v = Vec::new();
    match cmd {
        Command::AddService(s) | Command::EditService(s) => service_needs(s, &mut v),
        Command::AddServer(s) | Command::EditServer(s) => server_needs(s, &mut v),
        Command::DeleteService(key) => ipv6_needs(key, None, &mut v),
        Command::DeleteServer(k) => ipv6_needs(&k.service, Some(k.addr), &mut v),
        Command::Zero(Some(key)) => ipv6_needs(key, None, &mut v),
        Command::List(o) => list_needs(o, &mut v),
        Command::SetTimeouts(_) => v.push(Need::Feature(Feature::SetTimeouts)),
        Command::StartDaemon(_) | Command::StopDaemon(_) => {
            v.push(Need::Feature(Feature::SyncDaemon))
        }
        Command::Zero(None)
        | Command::Clear
        | Command::Save { .. }
        | Command::Restore
        | Command::Help
        | Command::Version => {}
    }
    v
}

fn ipv6_needs(key: &ServiceAddr, real: Option<std::net::IpAddr>, v: &mut Vec<Need>) {
    if key.addr.is_ipv6() || real.is_some_and(|a| a.is_ipv6()) {
        v.push(Need::Feature(Feature::Ipv6));
    }
}

fn service_needs(s: &ServiceSpec, v: &mut Vec<Need>) {
    ipv6_needs(&s.key, None, v);
    // An unknown name is not refused here: `apply` reports it as ipvsadm
    // does ("Scheduler or persistence engine not found").
    if let Some(sched) = Scheduler::from_name(&s.sched) {
        v.push(Need::Scheduler(sched));
    }
    if s.persistent.is_some() {
        v.push(Need::Feature(Feature::Persistence));
    }
    if s.netmask.is_some() {
        v.push(Need::Feature(Feature::Netmask));
    }
    if s.ops {
        v.push(Need::Feature(Feature::OnePacket));
    }
    if s.sched_flags.is_some() {
        v.push(Need::Feature(Feature::SchedFlags));
    }
    if s.pe.is_some() {
        v.push(Need::Feature(Feature::PersistenceEngine));
    }
}

fn server_needs(s: &ServerSpec, v: &mut Vec<Need>) {
    ipv6_needs(&s.service, Some(s.addr), v);
    v.push(Need::Method(s.method));
    if s.u_threshold.is_some() {
        v.push(Need::Feature(Feature::UThreshold));
    }
    if s.l_threshold.is_some() {
        v.push(Need::Feature(Feature::LThreshold));
    }
    // `--tun-type ipip` alone is what `-i` does (and what `-S` writes).
    if s.tunnel.as_ref().is_some_and(|t| !t.is_default()) {
        v.push(Need::Feature(Feature::TunnelOptions));
    }
}

fn list_needs(o: &ListOpts, v: &mut Vec<Need>) {
    if let Some(key) = &o.service {
        ipv6_needs(key, None, v);
    }
    let flags = [
        (o.connection, Feature::ConnectionList),
        (o.timeout, Feature::TimeoutList),
        (o.daemon, Feature::SyncDaemon),
        (o.rate, Feature::RateList),
        (o.thresholds, Feature::ThresholdList),
        (o.persistent_conn, Feature::PersistentConnList),
        (o.tun_info, Feature::TunInfoList),
    ];
    v.extend(
        flags
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| Need::Feature(f)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adm::{args, NoResolve};

    fn check(s: &str) -> Result<(), String> {
        let argv: Vec<String> = std::iter::once("lvsadm")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect();
        let cmd = args::parse(&argv, &NoResolve).expect(s);
        check_supported(&cmd).map_err(|e| {
            assert_eq!(e.code, 2);
            e.msg
        })
    }

    #[test]
    fn supported_today() {
        for ok in [
            "-A -t 10.0.0.1:80 -s rr",
            "-A -u 10.0.0.1:53 -s wrr",
            "-E -t 10.0.0.1:80 -s wrr",
            "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 2",
            "-e -t 10.0.0.1:80 -r 10.1.0.1 -m -w 0",
            "-d -t 10.0.0.1:80 -r 10.1.0.1",
            "-D -t 10.0.0.1:80",
            "-C",
            "-Z",
            "-Z -t 10.0.0.1:80",
            "-L",
            "-L -n --stats --exact --nosort",
            "-L -t 10.0.0.1:80",
            "-S -n",
            "-R",
            "-h",
            "-v",
            // Unknown schedulers pass: apply reports them as ipvsadm does.
            "-A -t 10.0.0.1:80 -s nosuch",
            // The default scheduler (wlc), persistence, flags, thresholds,
            // listings and timeouts.
            "-A -t 10.0.0.1:80",
            "-E -t 10.0.0.1:80",
            "-A -t 10.0.0.1:80 -s rr -p",
            "-A -t 10.0.0.1:0 -s rr -p 60",
            "-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.255.0",
            "-A -t 10.0.0.1:80 -s rr -M 255.255.255.0",
            "-A -t [fd00::1]:80 -s wlc -p 60 -M 64",
            "-A -t 10.0.0.1:80 -s sh -b sh-port,sh-fallback",
            "-A -t 10.0.0.1:80 -s mh -b mh-port",
            "-A -t 10.0.0.1:80 -s rr -b flag-1,flag-2,flag-3",
            "-a -t 10.0.0.1:80 -r 10.1.0.1 -m -x 100 -y 50",
            "-e -t 10.0.0.1:80 -r 10.1.0.1 -m -x 10",
            // What -S writes for a tunnelling server.
            "-a -t 10.0.0.1:80 -r 10.1.0.1 -i -w 1 --tun-type ipip",
            "-a -t 10.0.0.1:80 -r 10.1.0.1 -m -y 0",
            "-L -c",
            "-L -c -n",
            "-L -c --persistent-conn",
            "-L --thresholds",
            "-L -n --persistent-conn",
            "-L --timeout",
            "-L -n --rate",
            "-L -n --rate --exact",
            "-L --rate -t 10.0.0.1:80",
            "--set 900 120 300",
            "--set 0 60 0",
            // The sync daemon (`crate::sync`), once refused.
            "--start-daemon master --mcast-interface eth0 --syncid 1",
            "--start-daemon backup --mcast-interface eth0 --syncid 1 --sync-maxlen 1400 --mcast-group 239.1.1.1 --mcast-port 9000 --mcast-ttl 2",
            "--stop-daemon backup",
            "-L --daemon",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn every_scheduler_is_accepted() {
        for s in Scheduler::ALL {
            let cmd = format!("-A -t 10.0.0.1:80 -s {s}");
            assert_eq!(check(&cmd), Ok(()), "{cmd}");
            let cmd = format!("-E -u 10.0.0.1:53 -s {s} -p 30");
            assert_eq!(check(&cmd), Ok(()), "{cmd}");
        }
    }

    #[test]
    fn refused_today() {
        let cases = [
            (
                "-A -u 10.0.0.1:53 -s rr -o",
                "lvsadm: -o (one-packet scheduling) is not implemented yet",
            ),
            (
                "-A -t 10.0.0.1:80 -s rr --pe sip",
                "lvsadm: --pe (persistence engines) is not implemented yet",
            ),
            (
                "-A -t 10.0.0.1:80 -s rr -p 60 --pe sip",
                "lvsadm: --pe (persistence engines) is not implemented yet",
            ),
            (
                "-L --tun-info",
                "lvsadm: --tun-info (tunnel listing) is not implemented yet",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type gue --tun-port 6080",
                "lvsadm: --tun-type/--tun-port/--tun-*csum (tunnel options) is not implemented yet",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.1 -i -x 10 --tun-type gue --tun-port 6080 --tun-csum",
                "lvsadm: --tun-type/--tun-port/--tun-*csum (tunnel options) is not implemented yet",
            ),
        ];
        for (cmd, msg) in cases {
            assert_eq!(check(cmd), Err(msg.to_string()), "{cmd}");
        }
    }

    #[test]
    fn fwmark_is_refused_for_good() {
        let argv: Vec<String> = ["lvsadm", "-A", "-f", "1", "-s", "rr"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = args::parse(&argv, &NoResolve).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (2, FWMARK_REFUSAL));
    }
}
