//! Applies a [`Command`] to a [`Snapshot`] in memory, with the checks the
//! kernel makes on the ipvsadm operations and the messages ipvsadm prints
//! for them (libipvs's `ipvs_strerror`). Pure: on error the snapshot is
//! left exactly as it was.
//!
//! Errors here are what ipvsadm reports after the kernel refused a change,
//! so they exit with 255 like ipvsadm's `return -1`.

use std::net::{IpAddr, Ipv4Addr};

use super::command::{Command, Netmask, ServerKey, ServerSpec, ServiceSpec};
use super::Error;
use crate::model::{
    Method, Persistence, RealServer, Scheduler, ServiceAddr, Snapshot, VirtualService,
};

const SERVICE_EXISTS: &str = "Service already exists";
const NO_SCHEDULER: &str = "Scheduler or persistence engine not found";
const NO_SUCH_SERVICE: &str = "No such service";
const SERVICE_NOT_DEFINED: &str = "Service not defined";
const DEST_EXISTS: &str = "Destination already exists";
const NO_SUCH_DEST: &str = "No such destination";
/// EINVAL.
const INVALID: &str = "Invalid operation.  Possibly wrong module version, address not unicast, ...";
/// ERANGE, from `strerror`.
const OUT_OF_RANGE: &str = "Numerical result out of range";

/// Applies one changing command. Listing, saving, restoring, help and
/// version are not changes and are refused here; `-Z` only checks that its
/// service exists (counters are zeroed by the table store).
pub fn apply(snap: &mut Snapshot, cmd: &Command) -> Result<(), Error> {
    match cmd {
        Command::AddService(spec) => add_service(snap, spec),
        Command::EditService(spec) => edit_service(snap, spec),
        Command::DeleteService(key) => {
            let i = snap
                .services
                .iter()
                .position(|s| s.key == *key)
                .ok_or_else(|| Error::op(NO_SUCH_SERVICE))?;
            snap.services.remove(i);
            Ok(())
        }
        Command::Clear => {
            snap.services.clear();
            Ok(())
        }
        Command::AddServer(spec) => add_server(snap, spec),
        Command::EditServer(spec) => edit_server(snap, spec),
        Command::DeleteServer(key) => delete_server(snap, key),
        Command::Zero(svc) => check_zero(snap, svc.as_ref()),
        Command::SetTimeouts(t) => {
            // The kernel leaves a timeout given as 0 as it is.
            if t.tcp != 0 {
                snap.timeouts.tcp = t.tcp;
            }
            if t.tcp_fin != 0 {
                snap.timeouts.tcp_fin = t.tcp_fin;
            }
            if t.udp != 0 {
                snap.timeouts.udp = t.udp;
            }
            Ok(())
        }
        Command::List(_)
        | Command::Save { .. }
        | Command::Restore
        | Command::Help
        | Command::Version
        | Command::StartDaemon(_)
        | Command::StopDaemon(_) => Err(Error::usage(format!(
            "lvsadm: {} does not change the table",
            command_name(cmd)
        ))),
    }
}

/// `-Z [service]`: the service, if given, must exist.
pub fn check_zero(snap: &Snapshot, svc: Option<&ServiceAddr>) -> Result<(), Error> {
    match svc {
        Some(key) if snap.service(key).is_none() => Err(Error::op(NO_SUCH_SERVICE)),
        _ => Ok(()),
    }
}

/// The option that names a command, for messages.
pub fn command_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::AddService(_) => "-A",
        Command::EditService(_) => "-E",
        Command::DeleteService(_) => "-D",
        Command::Clear => "-C",
        Command::AddServer(_) => "-a",
        Command::EditServer(_) => "-e",
        Command::DeleteServer(_) => "-d",
        Command::List(_) => "-L",
        Command::Zero(_) => "-Z",
        Command::Save { .. } => "-S",
        Command::Restore => "-R",
        Command::SetTimeouts(_) => "--set",
        Command::StartDaemon(_) => "--start-daemon",
        Command::StopDaemon(_) => "--stop-daemon",
        Command::Help => "-h",
        Command::Version => "-v",
    }
}

/// The service settings of `-A`/`-E`: scheduler, flags, persistence.
fn settings(spec: &ServiceSpec) -> Result<(Scheduler, Option<Persistence>), Error> {
    let sched = Scheduler::from_name(&spec.sched).ok_or_else(|| Error::op(NO_SCHEDULER))?;
    if spec.pe.is_some() {
        // The model has no place for a persistence engine.
        return Err(Error::usage(
            "lvsadm: --pe (persistence engines) is not implemented yet",
        ));
    }
    let persistence = spec.persistent.map(|timeout| {
        let (netmask, v6_prefix) = match spec.netmask {
            Some(Netmask::V4(m)) => (m, 128),
            Some(Netmask::V6(p)) => (Ipv4Addr::BROADCAST, p),
            None => (Ipv4Addr::BROADCAST, 128),
        };
        Persistence {
            timeout,
            netmask,
            v6_prefix,
        }
    });
    Ok((sched, persistence))
}

fn add_service(snap: &mut Snapshot, spec: &ServiceSpec) -> Result<(), Error> {
    if snap.service(&spec.key).is_some() {
        return Err(Error::op(SERVICE_EXISTS));
    }
    let (sched, persistence) = settings(spec)?;
    let mut vs = VirtualService::new(spec.key, sched);
    vs.sched_flags = spec.sched_flags.unwrap_or(0);
    vs.persistence = persistence;
    vs.ops = spec.ops;
    snap.services.push(vs);
    Ok(())
}

/// `-E` replaces every setting, as ipvsadm sends them all: what is not
/// given goes back to its default.
fn edit_service(snap: &mut Snapshot, spec: &ServiceSpec) -> Result<(), Error> {
    if snap.service(&spec.key).is_none() {
        return Err(Error::op(NO_SUCH_SERVICE));
    }
    let (sched, persistence) = settings(spec)?;
    let vs = snap.service_mut(&spec.key).expect("checked above");
    vs.sched = sched;
    vs.sched_flags = spec.sched_flags.unwrap_or(0);
    vs.persistence = persistence;
    vs.ops = spec.ops;
    Ok(())
}

/// The checks common to `-a` and `-e`, in the kernel's order.
fn check_server(vs: &VirtualService, spec: &ServerSpec) -> Result<(), Error> {
    if vs.key.addr.is_ipv6() != spec.addr.is_ipv6() && spec.method != Method::Tunnel {
        return Err(Error::op(INVALID));
    }
    if spec.weight > 65535 {
        return Err(Error::op(OUT_OF_RANGE));
    }
    if spec.l_threshold.unwrap_or(0) > spec.u_threshold.unwrap_or(0) {
        return Err(Error::op(OUT_OF_RANGE));
    }
    if spec.tunnel.as_ref().is_some_and(|t| !t.is_default()) {
        // The model has no place for tunnel options.
        return Err(Error::usage(
            "lvsadm: --tun-type/--tun-port/--tun-*csum (tunnel options) is not implemented yet",
        ));
    }
    Ok(())
}

fn find_real(vs: &VirtualService, addr: IpAddr, port: u16) -> Option<usize> {
    vs.reals
        .iter()
        .position(|r| r.addr == addr && r.port == port)
}

fn add_server(snap: &mut Snapshot, spec: &ServerSpec) -> Result<(), Error> {
    let vs = snap
        .service_mut(&spec.service)
        .ok_or_else(|| Error::op(SERVICE_NOT_DEFINED))?;
    check_server(vs, spec)?;
    if find_real(vs, spec.addr, spec.port).is_some() {
        return Err(Error::op(DEST_EXISTS));
    }
    if !unicast(spec.addr) {
        return Err(Error::op(INVALID));
    }
    let mut real = RealServer::new(spec.addr, spec.port, spec.method, spec.weight);
    real.u_threshold = spec.u_threshold.unwrap_or(0);
    real.l_threshold = spec.l_threshold.unwrap_or(0);
    vs.reals.push(real);
    Ok(())
}

/// `-e` replaces the method, the weight and the thresholds, defaults
/// included, as ipvsadm sends them all.
fn edit_server(snap: &mut Snapshot, spec: &ServerSpec) -> Result<(), Error> {
    let vs = snap
        .service_mut(&spec.service)
        .ok_or_else(|| Error::op(SERVICE_NOT_DEFINED))?;
    check_server(vs, spec)?;
    let i = find_real(vs, spec.addr, spec.port).ok_or_else(|| Error::op(NO_SUCH_DEST))?;
    let real = &mut vs.reals[i];
    real.method = spec.method;
    real.weight = spec.weight;
    real.u_threshold = spec.u_threshold.unwrap_or(0);
    real.l_threshold = spec.l_threshold.unwrap_or(0);
    Ok(())
}

fn delete_server(snap: &mut Snapshot, key: &ServerKey) -> Result<(), Error> {
    let vs = snap
        .service_mut(&key.service)
        .ok_or_else(|| Error::op(SERVICE_NOT_DEFINED))?;
    let i = find_real(vs, key.addr, key.port).ok_or_else(|| Error::op(NO_SUCH_DEST))?;
    vs.reals.remove(i);
    Ok(())
}

/// The kernel's test of a new real server's address, as far as it does not
/// depend on the routing tables: no "this network", limited broadcast or
/// multicast IPv4 address; only unicast, non-link-local, non-mapped IPv6.
fn unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.octets()[0] == 0 || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adm::{args, NoResolve};
    use crate::model::{Proto, Stats, Timeouts};

    fn cmd(s: &str) -> Command {
        let argv: Vec<String> = std::iter::once("lvsadm")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect();
        args::parse(&argv, &NoResolve).expect(s)
    }

    fn run(snap: &mut Snapshot, s: &str) -> Result<(), Error> {
        apply(snap, &cmd(s))
    }

    fn base() -> Snapshot {
        let mut snap = Snapshot {
            conn_table_size: 4096,
            ..Snapshot::default()
        };
        for c in [
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 2",
            "-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m",
            "-A -u 10.0.0.1:53 -s wrr",
        ] {
            run(&mut snap, c).unwrap();
        }
        snap.services[0].reals[0].active = 5;
        snap.services[0].reals[0].stats = Stats {
            conns: 9,
            inpkts: 1,
            outpkts: 2,
            inbytes: 3,
            outbytes: 4,
        };
        snap
    }

    fn key(proto: Proto, a: &str, port: u16) -> ServiceAddr {
        ServiceAddr {
            proto,
            addr: a.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn builds_services_and_servers() {
        let snap = base();
        assert_eq!(snap.services.len(), 2);
        let vs = &snap.services[0];
        assert_eq!(vs.key, key(Proto::Tcp, "10.0.0.1", 80));
        assert_eq!(vs.sched, Scheduler::Rr);
        assert_eq!(vs.reals.len(), 2);
        assert_eq!(vs.reals[0].port, 8080);
        assert_eq!(vs.reals[0].weight, 2);
        assert_eq!(vs.reals[1].weight, 1);
        assert_eq!(vs.reals[1].method, Method::Masq);
        assert_eq!(snap.services[1].sched, Scheduler::Wrr);
    }

    /// Every error case, and that each leaves the snapshot as it was.
    #[test]
    fn errors_leave_the_snapshot_unchanged() {
        let cases = [
            ("-A -t 10.0.0.1:80 -s wrr", 255, SERVICE_EXISTS),
            ("-A -t 10.0.0.2:80 -s nosuch", 255, NO_SCHEDULER),
            ("-A -t 10.0.0.1:80 -s nosuch", 255, SERVICE_EXISTS),
            ("-E -t 10.0.0.2:80 -s rr", 255, NO_SUCH_SERVICE),
            ("-E -t 10.0.0.1:80 -s nosuch", 255, NO_SCHEDULER),
            ("-D -t 10.0.0.1:81", 255, NO_SUCH_SERVICE),
            ("-D -u 10.0.0.1:80", 255, NO_SUCH_SERVICE),
            ("-a -t 10.0.0.9:80 -r 10.1.0.3 -m", 255, SERVICE_NOT_DEFINED),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 7",
                255,
                DEST_EXISTS,
            ),
            ("-a -t 10.0.0.1:80 -r 224.0.0.1 -m", 255, INVALID),
            ("-a -t 10.0.0.1:80 -r 255.255.255.255 -m", 255, INVALID),
            ("-a -t 10.0.0.1:80 -r 0.1.2.3 -m", 255, INVALID),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3 -m -x 5 -y 6",
                255,
                OUT_OF_RANGE,
            ),
            ("-a -t 10.0.0.1:80 -r 10.1.0.3 -m -y 1", 255, OUT_OF_RANGE),
            (
                "-e -t 10.0.0.9:80 -r 10.1.0.1:8080 -m",
                255,
                SERVICE_NOT_DEFINED,
            ),
            ("-e -t 10.0.0.1:80 -r 10.1.0.1:8081 -m", 255, NO_SUCH_DEST),
            ("-e -t 10.0.0.1:80 -r 10.1.0.1 -m", 255, NO_SUCH_DEST),
            (
                "-d -t 10.0.0.9:80 -r 10.1.0.1:8080",
                255,
                SERVICE_NOT_DEFINED,
            ),
            ("-d -t 10.0.0.1:80 -r 10.1.0.1", 255, NO_SUCH_DEST),
            ("-d -u 10.0.0.1:53 -r 10.1.0.1:8080", 255, NO_SUCH_DEST),
            ("-Z -t 10.0.0.1:81", 255, NO_SUCH_SERVICE),
            (
                "-A -t 10.0.0.2:80 -s rr --pe sip",
                2,
                "lvsadm: --pe (persistence engines) is not implemented yet",
            ),
            ("-L", 2, "lvsadm: -L does not change the table"),
        ];
        for (c, code, msg) in cases {
            let mut snap = base();
            let before = snap.clone();
            let e = run(&mut snap, c).expect_err(c);
            assert_eq!((e.code, e.msg.as_str()), (code, msg), "{c}");
            assert_eq!(snap, before, "{c}");
        }
    }

    #[test]
    fn edit_service_resets_what_is_not_given() {
        let mut snap = base();
        run(&mut snap, "-E -t 10.0.0.1:80 -s wrr -p 60 -b flag-2").unwrap();
        let vs = &snap.services[0];
        assert_eq!(vs.sched, Scheduler::Wrr);
        assert_eq!(vs.sched_flags, lvs_common::SVC_F_SCHED2);
        assert_eq!(vs.persistence.unwrap().timeout, 60);
        assert_eq!(vs.persistence.unwrap().netmask, Ipv4Addr::BROADCAST);
        assert_eq!(vs.reals.len(), 2, "reals are kept");
        run(&mut snap, "-E -t 10.0.0.1:80 -s rr").unwrap();
        let vs = &snap.services[0];
        assert_eq!(
            (vs.sched, vs.sched_flags, vs.persistence),
            (Scheduler::Rr, 0, None)
        );
    }

    #[test]
    fn edit_server_keeps_counters() {
        let mut snap = base();
        run(&mut snap, "-e -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 9").unwrap();
        let r = &snap.services[0].reals[0];
        assert_eq!((r.weight, r.active, r.stats.conns), (9, 5, 9));
        // Without -w the weight goes back to 1, as with ipvsadm.
        run(&mut snap, "-e -t 10.0.0.1:80 -r 10.1.0.1:8080 -m").unwrap();
        assert_eq!(snap.services[0].reals[0].weight, 1);
    }

    #[test]
    fn deletes() {
        let mut snap = base();
        run(&mut snap, "-d -t 10.0.0.1:80 -r 10.1.0.1:8080").unwrap();
        assert_eq!(snap.services[0].reals.len(), 1);
        assert_eq!(snap.services[0].reals[0].addr.to_string(), "10.1.0.2");
        run(&mut snap, "-D -t 10.0.0.1:80").unwrap();
        assert_eq!(snap.services.len(), 1);
        assert_eq!(snap.services[0].key.proto, Proto::Udp);
        run(&mut snap, "-C").unwrap();
        assert!(snap.services.is_empty());
        assert_eq!(snap.conn_table_size, 4096);
    }

    #[test]
    fn same_address_other_port_is_another_server() {
        let mut snap = base();
        run(&mut snap, "-a -t 10.0.0.1:80 -r 10.1.0.1:8081 -m").unwrap();
        assert_eq!(snap.services[0].reals.len(), 3);
    }

    #[test]
    fn persistence_settings() {
        let mut snap = Snapshot::default();
        run(&mut snap, "-A -t 10.0.0.1:0 -s rr -p -M 255.255.0.0").unwrap();
        let p = snap.services[0].persistence.unwrap();
        assert_eq!(p.timeout, 300);
        assert_eq!(p.netmask, Ipv4Addr::new(255, 255, 0, 0));
        run(&mut snap, "-A -t [fd00::1]:443 -s rr -p 60 -M 64").unwrap();
        let p = snap.services[1].persistence.unwrap();
        assert_eq!((p.timeout, p.v6_prefix), (60, 64));
    }

    #[test]
    fn ipv6_checks() {
        let mut snap = Snapshot::default();
        run(&mut snap, "-A -t [fd00::1]:80 -s rr").unwrap();
        run(&mut snap, "-a -t [fd00::1]:80 -r [fd00::2]:80 -m").unwrap();
        for (c, msg) in [
            ("-a -t [fd00::1]:80 -r [fe80::2]:80 -m", INVALID),
            ("-a -t [fd00::1]:80 -r [ff02::2]:80 -m", INVALID),
            ("-a -t [fd00::1]:80 -r [::ffff:1.2.3.4]:80 -m", INVALID),
            ("-a -t [fd00::1]:80 -r [fd00::2]:80 -m", DEST_EXISTS),
        ] {
            let before = snap.clone();
            assert_eq!(run(&mut snap, c).unwrap_err().msg, msg, "{c}");
            assert_eq!(snap, before);
        }
    }

    #[test]
    fn set_timeouts_zero_keeps() {
        let mut snap = Snapshot::default();
        run(&mut snap, "--set 0 60 0").unwrap();
        assert_eq!(
            snap.timeouts,
            Timeouts {
                tcp: 900,
                tcp_fin: 60,
                udp: 300
            }
        );
    }

    #[test]
    fn zero_checks_only() {
        let mut snap = base();
        let before = snap.clone();
        run(&mut snap, "-Z").unwrap();
        run(&mut snap, "-Z -t 10.0.0.1:80").unwrap();
        assert_eq!(snap, before);
    }
}
