//! `lvsadm`: ipvsadm 1.31's command line over the pinned tables.
//!
//! The pipeline of one invocation:
//!
//! 1. [`args::parse`] turns the argument vector into a [`Command`], with
//!    ipvsadm's option checks and messages (popt parsing, the legality table
//!    of commands × options, `fail(2, ...)` messages);
//! 2. [`support::check_supported`] refuses what the XDP data path cannot do
//!    yet (the single gate, a list to extend);
//! 3. the tables are opened and snapshotted; listing commands format the
//!    snapshot ([`format`]), changing commands are applied to a copy
//!    ([`apply`]) with the kernel's checks and messages, and only a fully
//!    valid result is committed; `-R` applies a whole input ([`restore`])
//!    the same way, all or nothing.
//!
//! Exit statuses are ipvsadm's: 0 on success, 2 for command-line errors
//! (ipvsadm's `fail(2, ...)`; lvsadm's "not implemented yet" refusals use it
//! too), 255 for what ipvsadm reports through `return -1` — popt errors,
//! "Try `ipvsadm -h'", and every error the kernel returns to a change
//! ("Service already exists", "No such destination", ...) — and 1 when a
//! listing fails ("No such service" from `-L -t`) or the tables cannot be
//! read.

use std::fmt;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::model::{ConnEntry, Proto, ServiceAddr, Snapshot};
use crate::tables::{self, Tables};

pub mod apply;
pub mod args;
pub mod command;
pub mod daemon;
pub mod format;
pub mod restore;
pub mod support;

#[cfg(test)]
mod props;

pub use command::Command;

/// ipvsadm's `fail(2, ...)`: a bad command line.
pub const EXIT_USAGE: i32 = 2;
/// ipvsadm's `return -1` from `main`: popt errors and kernel errors.
pub const EXIT_ERROR: i32 = 255;
/// ipvsadm's `exit(1)` when a listing cannot be produced.
pub const EXIT_LIST: i32 = 1;

/// A message for stderr and the exit status that goes with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: i32,
    /// Printed as is, followed by a newline. May span several lines.
    pub msg: String,
}

impl Error {
    /// A command-line error (exit 2).
    pub fn usage(msg: impl Into<String>) -> Error {
        Error {
            code: EXIT_USAGE,
            msg: msg.into(),
        }
    }
    /// An error of the operation itself, as the kernel would report it
    /// (exit 255).
    pub fn op(msg: impl Into<String>) -> Error {
        Error {
            code: EXIT_ERROR,
            msg: msg.into(),
        }
    }
    /// A listing error (exit 1).
    pub fn list(msg: impl Into<String>) -> Error {
        Error {
            code: EXIT_LIST,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Name and service lookups, as ipvsadm does them with `gethostbyname` and
/// `getservbyname`. Parsing takes it as a parameter so that tests never
/// touch the resolver.
pub trait Resolve {
    /// An IPv4 address for a host name (`gethostbyname`: IPv4 only).
    fn host(&self, name: &str) -> Option<Ipv4Addr>;
    /// A port for a service name of the given protocol.
    fn service(&self, name: &str, proto: Proto) -> Option<u16>;
}

/// Resolves nothing: only numeric addresses and ports are accepted.
pub struct NoResolve;

impl Resolve for NoResolve {
    fn host(&self, _name: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service(&self, _name: &str, _proto: Proto) -> Option<u16> {
        None
    }
}

/// The system resolver: `getaddrinfo` for hosts, `getservbyname` for ports.
pub struct SystemResolve;

impl Resolve for SystemResolve {
    fn host(&self, name: &str) -> Option<Ipv4Addr> {
        use std::net::{SocketAddr, ToSocketAddrs};
        (name, 0u16).to_socket_addrs().ok()?.find_map(|a| match a {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(_) => None,
        })
    }
    fn service(&self, name: &str, proto: Proto) -> Option<u16> {
        let name = std::ffi::CString::new(name).ok()?;
        let proto: &std::ffi::CStr = match proto {
            Proto::Tcp => c"tcp",
            Proto::Udp => c"udp",
        };
        // SAFETY: both arguments are NUL-terminated strings that outlive the
        // call; the result points into libc's static storage and is read
        // at once, before any other lookup can overwrite it.
        unsafe {
            let s = libc::getservbyname(name.as_ptr(), proto.as_ptr());
            if s.is_null() {
                None
            } else {
                Some(u16::from_be((*s).s_port as u16))
            }
        }
    }
}

/// What `lvsadm` needs of the table store; implemented by [`Tables`], and
/// by an in-memory store in tests.
pub trait Store {
    fn snapshot(&mut self) -> anyhow::Result<Snapshot>;
    fn commit(&mut self, new: &Snapshot) -> anyhow::Result<()>;
    fn zero(&mut self, svc: Option<&ServiceAddr>) -> anyhow::Result<()>;
    /// The tracked connections, for `-L -c`. A store that cannot list them
    /// says so (`-L -c` then fails with exit status 1, as ipvsadm does when
    /// it cannot read the connection table).
    fn connections(&mut self) -> anyhow::Result<Vec<ConnEntry>> {
        anyhow::bail!("this table store has no connection listing")
    }
    /// The rates of `snap`'s services, for `-L --rate`: the daemon's
    /// estimates pinned under `pin` (`crate::rate`).
    fn rates(&mut self, pin: &Path, snap: &Snapshot) -> anyhow::Result<format::Rates> {
        crate::rate::read(pin, snap)
    }
}

impl Store for Tables {
    fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        Tables::snapshot(self)
    }
    fn commit(&mut self, new: &Snapshot) -> anyhow::Result<()> {
        Tables::commit(self, new)
    }
    fn zero(&mut self, svc: Option<&ServiceAddr>) -> anyhow::Result<()> {
        Tables::zero(self, svc)
    }
    fn connections(&mut self) -> anyhow::Result<Vec<ConnEntry>> {
        Tables::connections(self)
    }
}

/// The `lvsadm` binary: parses `args` (with `args[0]` the program name),
/// runs the command against the tables pinned under `--pin-path DIR`,
/// `$LVS_PIN_PATH` or [`tables::DEFAULT_PIN_PATH`], prints to stdout and
/// stderr, and returns the exit status.
pub fn run(args: Vec<String>) -> i32 {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(
        args,
        &SystemResolve,
        Tables::open,
        &mut stdin.lock(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

/// [`run`] with its environment passed in.
pub fn run_with<S: Store>(
    args: Vec<String>,
    resolve: &dyn Resolve,
    open: impl FnOnce(&Path) -> anyhow::Result<S>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let result = split_pin_path(args).and_then(|(args, pin)| {
        let (args, health) = split_health(args);
        let prog = args.first().map(String::as_str).unwrap_or("lvsadm");
        let cmd = args::parse(&args, resolve)?;
        support::check_supported(&cmd)?;
        if health {
            check_health(&cmd)?;
        }
        execute(&cmd, prog, &pin, resolve, open, stdin, stdout)?;
        if health {
            let st = crate::health::status::read(&pin)
                .map_err(|e| Error::list(format!("lvsadm: {e:#}")))?;
            let now = crate::health::status::unix(std::time::SystemTime::now());
            let only = match &cmd {
                Command::List(o) => o.service.as_ref(),
                _ => None,
            };
            let text = crate::health::show::health(st.as_ref(), now, only);
            let _ = stdout.write_all(text.as_bytes());
        }
        Ok(())
    });
    // Output errors (a closed pipe under `| head`) are not worth a panic.
    match result {
        Ok(()) => {
            let _ = stdout.flush();
            0
        }
        Err(e) => {
            let _ = stdout.flush();
            let _ = writeln!(stderr, "{}", e.msg);
            e.code
        }
    }
}

/// Takes lvsadm's own `--pin-path DIR` / `--pin-path=DIR` (not an ipvsadm
/// option) out of the arguments, before `--` only.
fn split_pin_path(args: Vec<String>) -> Result<(Vec<String>, PathBuf), Error> {
    let mut rest = Vec::with_capacity(args.len());
    let mut pin: Option<PathBuf> = None;
    let mut it = args.into_iter().enumerate();
    let mut after_dashdash = false;
    while let Some((i, a)) = it.next() {
        if i == 0 || after_dashdash {
            rest.push(a);
            continue;
        }
        if a == "--" {
            after_dashdash = true;
            rest.push(a);
        } else if a == "--pin-path" {
            match it.next() {
                Some((_, dir)) => pin = Some(PathBuf::from(dir)),
                None => return Err(Error::usage("lvsadm: --pin-path requires a directory")),
            }
        } else if let Some(dir) = a.strip_prefix("--pin-path=") {
            pin = Some(PathBuf::from(dir));
        } else {
            rest.push(a);
        }
    }
    Ok((rest, tables::pin_path(pin.as_deref())))
}

/// Takes lvs-xdp's own `--health` (not an ipvsadm option) out of the
/// arguments, before `--` only.
fn split_health(args: Vec<String>) -> (Vec<String>, bool) {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let health = args[..end].iter().skip(1).any(|a| a == "--health");
    let rest = args
        .into_iter()
        .enumerate()
        .filter(|(i, a)| *i == 0 || *i >= end || a != "--health")
        .map(|(_, a)| a)
        .collect();
    (rest, health)
}

/// `--health` goes with the listing of services only.
fn check_health(cmd: &Command) -> Result<(), Error> {
    match cmd {
        Command::List(o) if !o.connection && !o.timeout && !o.daemon => Ok(()),
        _ => Err(Error::usage(
            "lvsadm: --health goes with -L/-l (the services), not with this command",
        )),
    }
}

fn execute<S: Store>(
    cmd: &Command,
    prog: &str,
    pin: &Path,
    resolve: &dyn Resolve,
    open: impl FnOnce(&Path) -> anyhow::Result<S>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<(), Error> {
    match cmd {
        Command::Help => {
            let _ = stdout.write_all(args::usage(prog).as_bytes());
            return Ok(());
        }
        Command::Version => {
            let _ = stdout.write_all(args::version().as_bytes());
            return Ok(());
        }
        _ => {}
    }

    let mut store = open(pin).map_err(|e| {
        if let Some(none) = e.downcast_ref::<crate::tables::NoDirector>() {
            return Error::list(format!("lvsadm: {none}"));
        }
        Error::usage(format!(
            "lvsadm: can't open the tables pinned under {}: {e:#}",
            pin.display()
        ))
    })?;
    let snap = store
        .snapshot()
        .map_err(|e| Error::list(format!("lvsadm: can't read the tables: {e:#}")))?;

    match cmd {
        Command::Help | Command::Version => unreachable!("handled above"),
        Command::StartDaemon(spec) => daemon::start(pin, spec),
        Command::StopDaemon(state) => daemon::stop(pin, *state),
        Command::List(opts) if opts.daemon => {
            let _ = stdout.write_all(daemon::list(pin)?.as_bytes());
            Ok(())
        }
        Command::List(opts) if opts.connection => {
            let conns = store
                .connections()
                .map_err(|e| Error::list(format!("lvsadm: can't read the connections: {e:#}")))?;
            let _ = stdout.write_all(format::connections(&conns, opts).as_bytes());
            Ok(())
        }
        Command::List(opts) => {
            let rates = if opts.rate && !opts.stats {
                Some(
                    store
                        .rates(pin, &snap)
                        .map_err(|e| Error::list(format!("lvsadm: can't read the rates: {e:#}")))?,
                )
            } else {
                None
            };
            let text = format::list_with_rates(&snap, opts, rates.as_ref())?;
            let _ = stdout.write_all(text.as_bytes());
            Ok(())
        }
        Command::Save { numeric } => {
            let _ = stdout.write_all(format::save(&snap, *numeric).as_bytes());
            Ok(())
        }
        Command::Zero(svc) => {
            apply::check_zero(&snap, svc.as_ref())?;
            store
                .zero(svc.as_ref())
                .map_err(|e| Error::op(format!("lvsadm: can't zero the counters: {e:#}")))
        }
        Command::Restore => {
            let input = restore::read_input(stdin)?;
            let new = restore::restore(&snap, &input, prog, resolve)?;
            commit(&mut store, &snap, &new)
        }
        _ => {
            let mut new = snap.clone();
            apply::apply(&mut new, cmd)?;
            commit(&mut store, &snap, &new)
        }
    }
}

fn commit<S: Store>(store: &mut S, old: &Snapshot, new: &Snapshot) -> Result<(), Error> {
    if new == old {
        return Ok(());
    }
    store
        .commit(new)
        .map_err(|e| Error::op(format!("lvsadm: can't write the tables: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Method, RealServer, Scheduler, VirtualService};
    use std::cell::RefCell;
    use std::net::IpAddr;
    use std::rc::Rc;

    /// An in-memory store that records what was done to it.
    #[derive(Default)]
    struct Mem {
        snap: Snapshot,
        commits: usize,
        zeroed: Vec<Option<ServiceAddr>>,
        /// What `connections()` returns; None: the trait's default.
        conns: Option<Vec<ConnEntry>>,
        /// What `rates()` returns; None: an error.
        rates: Option<format::Rates>,
    }

    struct MemStore(Rc<RefCell<Mem>>);

    impl Store for MemStore {
        fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
            Ok(self.0.borrow().snap.clone())
        }
        fn commit(&mut self, new: &Snapshot) -> anyhow::Result<()> {
            let mut m = self.0.borrow_mut();
            m.snap = new.clone();
            m.commits += 1;
            Ok(())
        }
        fn zero(&mut self, svc: Option<&ServiceAddr>) -> anyhow::Result<()> {
            self.0.borrow_mut().zeroed.push(svc.copied());
            Ok(())
        }
        fn connections(&mut self) -> anyhow::Result<Vec<ConnEntry>> {
            let conns = self.0.borrow().conns.clone();
            match conns {
                Some(c) => Ok(c),
                None => Err(anyhow::anyhow!("no connection table")),
            }
        }
        fn rates(&mut self, _pin: &Path, _snap: &Snapshot) -> anyhow::Result<format::Rates> {
            let rates = self.0.borrow().rates.clone();
            rates.ok_or_else(|| anyhow::anyhow!("no rate arrays"))
        }
    }

    struct Out {
        code: i32,
        stdout: String,
        stderr: String,
    }

    fn run_mem(mem: &Rc<RefCell<Mem>>, args: &[&str], stdin: &str) -> Out {
        let mut argv = vec!["lvsadm".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut out = Vec::new();
        let mut err = Vec::new();
        let m = Rc::clone(mem);
        let code = run_with(
            argv,
            &NoResolve,
            move |_| Ok(MemStore(m)),
            &mut stdin.as_bytes(),
            &mut out,
            &mut err,
        );
        Out {
            code,
            stdout: String::from_utf8(out).unwrap(),
            stderr: String::from_utf8(err).unwrap(),
        }
    }

    fn table() -> Rc<RefCell<Mem>> {
        let mut snap = Snapshot {
            conn_table_size: 4096,
            ..Snapshot::default()
        };
        let key = ServiceAddr {
            proto: Proto::Tcp,
            addr: "192.168.47.128".parse().unwrap(),
            port: 80,
        };
        let mut vs = VirtualService::new(key, Scheduler::Rr);
        let rip: IpAddr = "192.168.211.129".parse().unwrap();
        vs.reals.push(RealServer::new(rip, 80, Method::Masq, 1));
        snap.services.push(vs);
        Rc::new(RefCell::new(Mem {
            snap,
            ..Mem::default()
        }))
    }

    #[test]
    fn list_rates_come_from_the_store() {
        let mem = table();
        let o = run_mem(&mem, &["-L", "-n", "--rate"], "");
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (1, "", "lvsadm: can't read the rates: no rate arrays\n")
        );
        let key = mem.borrow().snap.services[0].key;
        let rate = lvs_common::Rate {
            cps: 2,
            inpps: 30,
            outpps: 20,
            inbps: 4000,
            outbps: 50_000,
            ..Default::default()
        };
        let rip: IpAddr = "192.168.211.129".parse().unwrap();
        mem.borrow_mut().rates = Some([(key, (rate, vec![((rip, 80), rate)]))].into());
        let o = run_mem(&mem, &["-L", "-n", "--rate"], "");
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(
            o.stdout,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n\
             \x20 -> RemoteAddress:Port\n\
             TCP  192.168.47.128:80                   2       30       20     4000    50000\n\
             \x20 -> 192.168.211.129:80                  2       30       20     4000    50000\n"
        );
        // --stats wins and needs no rates.
        mem.borrow_mut().rates = None;
        assert_eq!(
            run_mem(&mem, &["-L", "-n", "--stats", "--rate"], "").code,
            0
        );
    }

    #[test]
    fn list_numeric() {
        let mem = table();
        let o = run_mem(&mem, &["-Ln"], "");
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(
            o.stdout,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  192.168.47.128:80 rr\n  \
             -> 192.168.211.129:80           Masq    1      0          0         \n"
        );
        assert_eq!(mem.borrow().commits, 0);
    }

    #[test]
    fn health_adds_a_section_after_the_listing() {
        let mem = table();
        let plain = run_mem(&mem, &["-Ln"], "");
        let dir = "--pin-path=/nonexistent/lvs-health-unit-test";
        let o = run_mem(&mem, &["-L", "-n", "--health", dir], "");
        assert_eq!(o.code, 0, "{}", o.stderr);
        let rest = o
            .stdout
            .strip_prefix(&plain.stdout)
            .expect("the listing first");
        assert!(rest.starts_with("Health: no checker runs"), "{rest}");
        for bad in [
            &["-L", "-c", "--health"][..],
            &["-A", "-t", "1.2.3.4:80", "--health"],
        ] {
            let o = run_mem(&mem, bad, "");
            assert_eq!(o.code, 2, "{bad:?}: {}", o.stdout);
            assert!(o.stderr.contains("--health goes with -L"), "{}", o.stderr);
        }
        assert_eq!(mem.borrow().commits, 0);
    }

    #[test]
    fn no_arguments_lists() {
        let mem = table();
        let a = run_mem(&mem, &[], "");
        let b = run_mem(&mem, &["-L", "-n"], "");
        assert_eq!(a.code, 0);
        assert_eq!(a.stdout, b.stdout);
    }

    #[test]
    fn add_commits_and_errors_do_not() {
        let mem = table();
        let o = run_mem(
            &mem,
            &[
                "-a",
                "-t",
                "192.168.47.128:80",
                "-r",
                "192.168.211.130",
                "-m",
                "-w",
                "3",
            ],
            "",
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(mem.borrow().commits, 1);
        assert_eq!(mem.borrow().snap.services[0].reals[1].weight, 3);

        let before = mem.borrow().snap.clone();
        let o = run_mem(
            &mem,
            &[
                "-a",
                "-t",
                "192.168.47.128:80",
                "-r",
                "192.168.211.130",
                "-m",
            ],
            "",
        );
        assert_eq!(o.code, 255);
        assert_eq!(o.stderr, "Destination already exists\n");
        assert_eq!(mem.borrow().commits, 1);
        assert_eq!(mem.borrow().snap, before);
    }

    #[test]
    fn gate_refuses_with_exit_2() {
        let mem = table();
        let o = run_mem(&mem, &["-A", "-u", "10.0.0.1:53", "-s", "rr", "-o"], "");
        assert_eq!(o.code, 2);
        assert_eq!(
            o.stderr,
            "lvsadm: -o (one-packet scheduling) is not implemented yet\n"
        );
        assert_eq!(mem.borrow().commits, 0);
    }

    #[test]
    fn default_scheduler_is_wlc() {
        let mem = table();
        let o = run_mem(&mem, &["-A", "-t", "10.0.0.1:80"], "");
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(mem.borrow().snap.services[1].sched, Scheduler::Wlc);
    }

    fn conn(
        proto: Proto,
        state: &'static str,
        expires: u32,
        c: &str,
        v: &str,
        r: &str,
    ) -> ConnEntry {
        ConnEntry {
            proto,
            state,
            expires,
            client: c.parse().unwrap(),
            virtual_addr: v.parse().unwrap(),
            real: r.parse().unwrap(),
        }
    }

    #[test]
    fn list_connections() {
        let mem = table();
        mem.borrow_mut().conns = Some(vec![
            conn(
                Proto::Tcp,
                "ESTABLISHED",
                899,
                "192.168.47.1:51234",
                "192.168.47.128:80",
                "192.168.211.129:80",
            ),
            conn(
                Proto::Tcp,
                "FIN_WAIT",
                5,
                "192.168.47.1:51236",
                "192.168.47.128:80",
                "192.168.211.129:80",
            ),
            conn(
                Proto::Udp,
                "UDP",
                6000,
                "[fd00::10]:5353",
                "[fd00::1]:53",
                "[fd00:1::2]:53",
            ),
        ]);
        let want = "IPVS connection entries\n\
                    pro expire state       source             virtual            destination\n\
                    TCP 14:59  ESTABLISHED 192.168.47.1:51234 192.168.47.128:80  192.168.211.129:80\n\
                    TCP 00:05  FIN_WAIT    192.168.47.1:51236 192.168.47.128:80  192.168.211.129:80\n\
                    UDP 100:00 UDP         [fd00::10]:5353    [fd00::1]:53       [fd00:1::2]:53\n";
        for args in [&["-L", "-c", "-n"][..], &["-Lnc"], &["-l", "--connection"]] {
            let o = run_mem(&mem, args, "");
            assert_eq!(o.code, 0, "{}", o.stderr);
            assert_eq!(o.stdout, want, "{args:?}");
        }
        // With --persistent-conn: ipvsadm's wider title, the same rows
        // (no persistence engine data).
        let o = run_mem(&mem, &["-L", "-c", "--persistent-conn", "-n"], "");
        assert_eq!(o.code, 0, "{}", o.stderr);
        let mut lines = o.stdout.lines();
        lines.next();
        assert_eq!(
            lines.next().unwrap(),
            "pro expire state       source             virtual            \
             destination        pe name          pe_data"
        );
        assert_eq!(lines.count(), 3);

        // No connections: the title only.
        mem.borrow_mut().conns = Some(Vec::new());
        let o = run_mem(&mem, &["-L", "-c"], "");
        assert_eq!(
            o.stdout,
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n"
        );
        // A store that cannot list them: exit 1, nothing printed.
        mem.borrow_mut().conns = None;
        let o = run_mem(&mem, &["-L", "-c"], "");
        assert_eq!(o.code, 1);
        assert_eq!(o.stdout, "");
        assert!(
            o.stderr.starts_with("lvsadm: can't read the connections: "),
            "{}",
            o.stderr
        );
        assert_eq!(mem.borrow().commits, 0);
    }

    #[test]
    fn timeouts_set_and_list() {
        let mem = table();
        let o = run_mem(&mem, &["-L", "--timeout"], "");
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(o.stdout, "Timeout (tcp tcpfin udp): 900 120 300\n");
        let o = run_mem(&mem, &["--set", "0", "60", "30"], "");
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(mem.borrow().commits, 1);
        let o = run_mem(&mem, &["-L", "--timeout"], "");
        assert_eq!(o.stdout, "Timeout (tcp tcpfin udp): 900 60 30\n");
        // All zero changes nothing and commits nothing.
        assert_eq!(run_mem(&mem, &["--set", "0", "0", "0"], "").code, 0);
        assert_eq!(mem.borrow().commits, 1);
    }

    #[test]
    fn thresholds_and_persistent_conn_listings() {
        let mem = table();
        let o = run_mem(
            &mem,
            &[
                "-e",
                "-t",
                "192.168.47.128:80",
                "-r",
                "192.168.211.129:80",
                "-m",
                "-w",
                "2",
                "-x",
                "100",
                "-y",
                "50",
            ],
            "",
        );
        assert_eq!(o.code, 0, "{}", o.stderr);
        let o = run_mem(&mem, &["-L", "-n", "--thresholds"], "");
        assert_eq!(
            o.stdout,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  \
             -> RemoteAddress:Port\n\
             TCP  192.168.47.128:80 rr\n  \
             -> 192.168.211.129:80           100        50         0          0         \n"
        );
        let o = run_mem(&mem, &["-L", "-n", "--persistent-conn"], "");
        assert_eq!(
            o.stdout,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  \
             -> RemoteAddress:Port\n\
             TCP  192.168.47.128:80 rr\n  \
             -> 192.168.211.129:80           2         0           0          0         \n"
        );
    }

    #[test]
    fn scheduler_options_save_and_restore() {
        let mem = table();
        let add = |line: &str| {
            let args: Vec<&str> = line.split_whitespace().collect();
            let o = run_mem(&mem, &args, "");
            assert_eq!(o.code, 0, "{line}: {}", o.stderr);
        };
        add("-A -t 10.0.0.1:443 -s sh -p 600 -M 255.255.255.0 -b sh-port,sh-fallback");
        add("-a -t 10.0.0.1:443 -r 10.1.0.1:443 -g -w 3 -x 100 -y 50");
        add("-a -t 10.0.0.1:443 -r 10.1.0.2:443 -m -x 20");
        add("-A -t 10.0.0.1:0 -s mh -p -b mh-port");
        add("-A -u 10.0.0.2:53 -s lblcr -p 60");
        add("-A -t [fd00::1]:80 -s twos -p 30 -M 64");
        add("-A -t 10.0.0.3:80 -s dh -b flag-3");
        add("-A -t 10.0.0.4:80");
        add("-a -t 10.0.0.4:80 -r 10.1.0.4:80 -i -w 2 -x 7");
        let saved = run_mem(&mem, &["-S", "-n"], "").stdout;
        // 192.168.47.128 first: ipvsadm's wrapping address comparison.
        assert_eq!(
            saved,
            "-A -t 192.168.47.128:80 -s rr\n\
             -a -t 192.168.47.128:80 -r 192.168.211.129:80 -m -w 1\n\
             -A -t 10.0.0.1:0 -s mh -p 300 -b mh-port\n\
             -A -t 10.0.0.1:443 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port\n\
             -a -t 10.0.0.1:443 -r 10.1.0.1:443 -g -w 3 -x 100 -y 50\n\
             -a -t 10.0.0.1:443 -r 10.1.0.2:443 -m -w 1 -x 20\n\
             -A -t 10.0.0.3:80 -s dh -b flag-3\n\
             -A -t 10.0.0.4:80 -s wlc\n\
             -a -t 10.0.0.4:80 -r 10.1.0.4:80 -i -w 2 --tun-type ipip -x 7\n\
             -A -u 10.0.0.2:53 -s lblcr -p 60\n\
             -A -t [fd00::1]:80 -s twos -p 30 -M 64\n"
        );
        let listed = run_mem(&mem, &["-L", "-n"], "").stdout;
        let thresholds = run_mem(&mem, &["-L", "-n", "--thresholds"], "").stdout;
        let before = mem.borrow().snap.clone();
        assert_eq!(run_mem(&mem, &["-C"], "").code, 0);
        let o = run_mem(&mem, &["-R"], &saved);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(run_mem(&mem, &["-S", "-n"], "").stdout, saved);
        assert_eq!(run_mem(&mem, &["-L", "-n"], "").stdout, listed);
        assert_eq!(
            run_mem(&mem, &["-L", "-n", "--thresholds"], "").stdout,
            thresholds
        );
        // The restored configuration is the one saved, service by service
        // (the order of services in the table follows the file).
        let after = mem.borrow().snap.clone();
        assert_eq!(after.services.len(), before.services.len());
        for vs in &before.services {
            assert_eq!(after.service(&vs.key), Some(vs), "{:?}", vs.key);
        }
    }

    #[test]
    fn zero_goes_to_the_store() {
        let mem = table();
        assert_eq!(run_mem(&mem, &["-Z"], "").code, 0);
        let o = run_mem(&mem, &["-Z", "-t", "192.168.47.128:80"], "");
        assert_eq!(o.code, 0);
        let o = run_mem(&mem, &["-Z", "-t", "192.168.47.128:81"], "");
        assert_eq!((o.code, o.stderr.as_str()), (255, "No such service\n"));
        let m = mem.borrow();
        assert_eq!(m.zeroed.len(), 2);
        assert_eq!(m.zeroed[0], None);
        assert_eq!(m.zeroed[1].unwrap().port, 80);
        assert_eq!(m.commits, 0);
    }

    #[test]
    fn clear_then_restore_of_save_is_identical() {
        let mem = table();
        let add = |args: &[&str]| {
            let o = run_mem(&mem, args, "");
            assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        };
        add(&["-A", "-u", "10.0.0.1:53", "-s", "wrr"]);
        add(&[
            "-a",
            "-u",
            "10.0.0.1:53",
            "-r",
            "10.1.0.2:5353",
            "-m",
            "-w",
            "0",
        ]);
        add(&["-a", "-u", "10.0.0.1:53", "-r", "10.1.0.1", "-m", "-w", "7"]);
        let listed = run_mem(&mem, &["-L", "-n"], "").stdout;
        let saved = run_mem(&mem, &["-S", "-n"], "").stdout;
        assert_eq!(run_mem(&mem, &["-C"], "").code, 0);
        assert!(mem.borrow().snap.services.is_empty());
        let o = run_mem(&mem, &["-R"], &saved);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(run_mem(&mem, &["-L", "-n"], "").stdout, listed);
    }

    #[test]
    fn restore_failure_changes_nothing() {
        let mem = table();
        let before = mem.borrow().snap.clone();
        let input = "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n";
        let o = run_mem(&mem, &["-R"], input);
        assert_eq!(o.code, 255);
        assert!(o.stderr.contains("line 2"), "{}", o.stderr);
        assert!(o.stderr.contains("Service already exists"), "{}", o.stderr);
        assert_eq!(mem.borrow().commits, 0);
        assert_eq!(mem.borrow().snap, before);
    }

    #[test]
    fn help_and_version_need_no_tables() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_with::<MemStore>(
            vec!["lvsadm".into(), "-h".into()],
            &NoResolve,
            |_| anyhow::bail!("no tables"),
            &mut "".as_bytes(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, 0);
        assert!(String::from_utf8(out).unwrap().contains("Usage:"));
        let mut out = Vec::new();
        let code = run_with::<MemStore>(
            vec!["lvsadm".into(), "--version".into()],
            &NoResolve,
            |_| anyhow::bail!("no tables"),
            &mut "".as_bytes(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, 0);
        assert!(String::from_utf8(out).unwrap().starts_with("lvsadm "));
    }

    #[test]
    fn open_failure_is_reported() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_with::<MemStore>(
            vec!["lvsadm".into(), "-L".into(), "-n".into()],
            &NoResolve,
            |_| anyhow::bail!("no such file"),
            &mut "".as_bytes(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, 2);
        assert!(String::from_utf8(err).unwrap().contains("no such file"));
    }

    #[test]
    fn pin_path_is_taken_out() {
        let (rest, pin) = split_pin_path(
            ["lvsadm", "--pin-path", "/x/y", "-L", "--pin-path=/z", "-n"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
        .unwrap();
        assert_eq!(rest, ["lvsadm", "-L", "-n"]);
        assert_eq!(pin, PathBuf::from("/z"));
        assert!(split_pin_path(vec!["lvsadm".into(), "--pin-path".into()]).is_err());
    }
}
