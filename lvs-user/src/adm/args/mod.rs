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
//!
//! The parts, in the order a command line goes through them: `table` lists
//! every option once (the lexer's table and the legality matrix's rows and
//! columns come from it), `lexer` reads the words as popt does, `state`
//! handles each option as it is met, `build` checks the whole command
//! against `legality` (ipvsadm's commands × options matrix) and each
//! command's own rules and builds it; `numbers` reads numbers and addresses
//! as the C library does, `usage` has `-h` and `-v`.

pub use super::command::{
    Command, DaemonSpec, DaemonState, ListOpts, Netmask, ServerKey, ServerSpec, ServiceSpec,
    TunnelSpec, TunnelType,
};
pub use numbers::{inet_aton, parse_service, string_to_number};
pub use usage::{usage, version};

use super::{Error, Resolve, EXIT_ERROR};
use crate::model::Timeouts;
use build::Extra;
use lexer::Lexer;
use numbers::parse_timeout;
use state::State;
use table::{Action, Cmd, Role};

mod build;
mod legality;
mod lexer;
mod numbers;
mod state;
mod table;
mod usage;

#[cfg(test)]
mod tests;

/// ipvsadm's `MAX_TIMEOUT`: 31 days.
pub const MAX_TIMEOUT: u32 = 86_400 * 31;
/// ipvsadm's `DEF_SCHED`.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// `IPVS_SVC_PERSISTENT_TIMEOUT`: `-p` without a value.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 300;

/// ipvsadm's `fail(2, msg)`.
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

/// Every option's spellings, from the one option table: (long name,
/// short letters, whether it takes a value). For generators of command
/// lines (the property tests).
pub fn option_spellings() -> impl Iterator<Item = (&'static str, &'static [char], bool)> {
    table::OPTIONS
        .iter()
        .map(|o| (o.long, o.short, o.arg != table::ArgKind::None))
}

/// Parses a whole command line; `argv[0]` is the program name. An empty
/// command line (just the name) lists the table, as ipvsadm does.
pub fn parse(argv: &[String], resolve: &dyn Resolve) -> Result<Command, Error> {
    let prog = argv.first().map(String::as_str).unwrap_or("lvsadm");
    if argv.len() <= 1 {
        return Ok(Command::List(ListOpts::default()));
    }
    let mut lx = Lexer::new(argv);
    let (cmd, daemon) = match first_option(&mut lx, prog)? {
        First::Command(cmd, daemon) => (cmd, daemon),
        First::Done(command) => return Ok(command),
    };
    let mut st = State::new(resolve);
    while let Some((spec, value)) = lx.next_opt()? {
        st.option(spec, value, lx.bad_word())?;
    }
    let timeouts = arguments(cmd, lx.args)?;
    let extra = Extra {
        prog,
        daemon,
        timeouts,
    };
    build::build(cmd, st, extra)
}

/// What the first option says.
enum First {
    /// A command to read the other options for.
    Command(Cmd, DaemonState),
    /// `-h` or `-v`: the rest of the line is not read.
    Done(Command),
}

/// The first option, which must be the command.
fn first_option(lx: &mut Lexer<'_>, prog: &str) -> Result<First, Error> {
    let Ok(Some((spec, value))) = lx.next_opt() else {
        return Err(try_help(prog));
    };
    let cmd = match spec.role {
        Role::Command(cmd) => cmd,
        Role::Action(Action::Help) => return Ok(First::Done(Command::Help)),
        Role::Action(Action::Version) => return Ok(First::Done(Command::Version)),
        Role::Option(..) | Role::Other(_) => return Err(try_help(prog)),
    };
    let daemon = match (cmd, value.as_deref()) {
        (Cmd::StartDaemon | Cmd::StopDaemon, Some("master")) => DaemonState::Master,
        (Cmd::StartDaemon | Cmd::StopDaemon, Some("backup")) => DaemonState::Backup,
        (Cmd::StartDaemon, _) => return Err(fail("illegal start-daemon parameter specified")),
        (Cmd::StopDaemon, _) => return Err(fail("illegal start_daemon specified")),
        _ => DaemonState::Master,
    };
    Ok(First::Command(cmd, daemon))
}

/// The words that are not options: `--set`'s three timeouts, nothing for
/// any other command.
fn arguments(cmd: Cmd, args: Vec<String>) -> Result<Timeouts, Error> {
    let mut args = args.into_iter();
    let mut timeouts = Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 0,
    };
    if cmd == Cmd::Set {
        match (args.next(), args.next(), args.next()) {
            (Some(tcp), Some(fin), Some(udp)) => {
                timeouts.tcp = parse_timeout(&tcp, 0, MAX_TIMEOUT)?;
                timeouts.tcp_fin = parse_timeout(&fin, 0, MAX_TIMEOUT)?;
                timeouts.udp = parse_timeout(&udp, 0, MAX_TIMEOUT)?;
            }
            _ => return Err(fail("--set option requires 3 timeout values")),
        }
    }
    match args.next() {
        Some(arg) => Err(fail(format!("unexpected argument {arg}"))),
        None => Ok(timeouts),
    }
}
