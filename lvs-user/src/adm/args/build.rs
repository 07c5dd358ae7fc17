//! After the options: ipvsadm's checks of the command as a whole (the
//! legality matrix, then each command's own rules), and the [`Command`]
//! built from what the options said.

use super::super::Error;
use super::state::State;
use super::table::{Cmd, Opt, OptSet};
use super::{fail, legality, try_help, DEFAULT_SCHEDULER};
use crate::adm::command::{
    Command, DaemonSpec, DaemonState, ListOpts, ServerKey, ServerSpec, ServiceSpec, TunnelSpec,
};
use crate::model::{Method, Proto, ServiceAddr, Timeouts};

/// What the command line said besides its options.
pub(super) struct Extra<'a> {
    pub prog: &'a str,
    /// `--start-daemon` / `--stop-daemon`'s value.
    pub daemon: DaemonState,
    /// `--set`'s values.
    pub timeouts: Timeouts,
}

/// Checks the command with its options and builds it.
pub(super) fn build(cmd: Cmd, mut st: State<'_>, extra: Extra<'_>) -> Result<Command, Error> {
    let sched_flags = match st.sched_flags_arg.take() {
        Some(arg) if !arg.is_empty() => Some(parse_sched_flags(&st.sched, &arg)?),
        _ => None,
    };
    legality::check_command(cmd, st.given)?;
    let mut tunnel = None;
    match cmd {
        Cmd::Add | Cmd::Edit => check_service(&mut st)?,
        Cmd::AddDest | Cmd::EditDest => tunnel = check_server(&mut st)?,
        Cmd::List => legality::check_list(st.given)?,
        _ => {}
    }

    let service = match (st.given.contains(Opt::Service), st.proto, st.svc_addr) {
        (true, Some(proto), Some(addr)) => Some(ServiceAddr {
            proto,
            addr,
            port: st.svc_port,
        }),
        _ => None,
    };
    // The legality check has made sure the service (and real server) is
    // there when the command needs it.
    let need_service = || service.ok_or_else(|| try_help(extra.prog));
    let need_dest = || st.dest_addr.ok_or_else(|| try_help(extra.prog));

    Ok(match cmd {
        Cmd::Add => Command::AddService(service_spec(&st, need_service()?, sched_flags)),
        Cmd::Edit => Command::EditService(service_spec(&st, need_service()?, sched_flags)),
        Cmd::Del => Command::DeleteService(need_service()?),
        Cmd::Flush => Command::Clear,
        Cmd::AddDest => Command::AddServer(server_spec(&st, need_service()?, need_dest()?, tunnel)),
        Cmd::EditDest => {
            Command::EditServer(server_spec(&st, need_service()?, need_dest()?, tunnel))
        }
        Cmd::DelDest => Command::DeleteServer(ServerKey {
            service: need_service()?,
            addr: need_dest()?,
            port: st.dest_port,
        }),
        Cmd::List => Command::List(list_opts(st.given, service)),
        Cmd::Zero => Command::Zero(service),
        Cmd::Save => Command::Save {
            numeric: st.given.contains(Opt::Numeric),
        },
        Cmd::Restore => Command::Restore,
        Cmd::Set => Command::SetTimeouts(extra.timeouts),
        Cmd::StartDaemon => Command::StartDaemon(DaemonSpec {
            state: extra.daemon,
            mcast_ifn: st.mcast_ifn.clone(),
            syncid: st.syncid,
            sync_maxlen: st.sync_maxlen,
            mcast_group: st.mcast_group,
            mcast_port: st.mcast_port,
            mcast_ttl: st.mcast_ttl,
        }),
        Cmd::StopDaemon => Command::StopDaemon(extra.daemon),
    })
}

/// `-A` / `-E`'s own rules; the scheduler defaults to wlc.
fn check_service(st: &mut State<'_>) -> Result<(), Error> {
    if st.svc_port == 0 && st.persistent.is_none() {
        return Err(fail("Zero port specified for non-persistent service"));
    }
    if st.given.contains(Opt::Ops) && st.proto != Some(Proto::Udp) {
        return Err(fail(
            "One-Packet Scheduling is only for UDP virtual services",
        ));
    }
    if st.sched.is_empty() {
        st.sched = DEFAULT_SCHEDULER.to_string();
    }
    Ok(())
}

/// `-a` / `-e`'s own rules; returns the tunnel options, if any was given.
fn check_server(st: &mut State<'_>) -> Result<Option<TunnelSpec>, Error> {
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
    let tunnel_given = st.given.meets(legality::TUNNEL_OPTIONS);
    if tunnel_given && st.method != Method::Tunnel {
        return Err(fail("Tunnel options conflict with forward method"));
    }
    let csum = legality::check_tunnel(st.tun_type, st.given)?.map(|o| match o {
        Opt::TunNocsum => "nocsum",
        Opt::TunCsum => "csum",
        _ => "remcsum",
    });
    Ok(tunnel_given.then_some(TunnelSpec {
        kind: st.tun_type,
        port: st.tun_port,
        csum,
    }))
}

fn service_spec(st: &State<'_>, key: ServiceAddr, sched_flags: Option<u16>) -> ServiceSpec {
    ServiceSpec {
        key,
        sched: st.sched.clone(),
        persistent: st.persistent,
        netmask: st.netmask,
        ops: st.given.contains(Opt::Ops),
        sched_flags,
        pe: st.pe.clone(),
    }
}

fn server_spec(
    st: &State<'_>,
    service: ServiceAddr,
    addr: std::net::IpAddr,
    tunnel: Option<TunnelSpec>,
) -> ServerSpec {
    ServerSpec {
        service,
        addr,
        port: st.dest_port,
        method: st.method,
        weight: st.weight,
        u_threshold: st.u_threshold,
        l_threshold: st.l_threshold,
        tunnel,
    }
}

/// `-L`'s switches, from the options given.
fn list_opts(given: OptSet, service: Option<ServiceAddr>) -> ListOpts {
    ListOpts {
        service,
        numeric: given.contains(Opt::Numeric),
        connection: given.contains(Opt::Connection),
        timeout: given.contains(Opt::Timeout),
        daemon: given.contains(Opt::Daemon),
        stats: given.contains(Opt::Stats),
        rate: given.contains(Opt::Rate),
        thresholds: given.contains(Opt::Thresholds),
        persistent_conn: given.contains(Opt::PersistentConn),
        nosort: given.contains(Opt::NoSort),
        exact: given.contains(Opt::Exact),
        tun_info: given.contains(Opt::TunInfo),
    }
}

/// ipvsadm's `parse_sched_flags`, against the scheduler given (or wlc).
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
