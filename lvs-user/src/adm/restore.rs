//! `-R`: rules from stdin, in the format `-S` writes, applied all or
//! nothing.
//!
//! As ipvsadm's `config_stream_read` does, each line is split at blanks
//! (space, tab, CR) into words, the word `ipvsadm` is dropped wherever it
//! appears (so lines of a shell script `ipvsadm -A ...` work; lvsadm also
//! drops `lvsadm`), a line without words is skipped, and the words go
//! through the same parser as a command line.
//!
//! Two deliberate differences from ipvsadm 1.31:
//! - Everything from a `#` to the end of the line is a comment. ipvsadm
//!   documents that, but its code never detects the `#` and fails on such
//!   lines.
//! - ipvsadm applies each line as it reads it and carries on after errors
//!   (stopping only at command-line errors), leaving a half-restored table.
//!   Here every line is applied to a copy of the snapshot, and the first
//!   failing line aborts the restore with its line number: nothing is
//!   committed.
//!
//! Only commands that change the table may appear; a nested `-R` is refused
//! with "Try `lvsadm -h' ..." as ipvsadm refuses it.

use super::args;
use super::command::Command;
use super::{apply, support, Error, Resolve};
use crate::model::Snapshot;

/// The words of one input line.
pub fn words(line: &str) -> Vec<String> {
    let line = match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    };
    line.split([' ', '\t', '\r'])
        .filter(|w| !w.is_empty() && *w != "ipvsadm" && *w != "lvsadm")
        .map(String::from)
        .collect()
}

/// Applies every line of `input` to a copy of `snap`; the copy if all
/// succeed, else the first error, naming its line.
pub fn restore(
    snap: &Snapshot,
    input: &str,
    prog: &str,
    resolve: &dyn Resolve,
) -> Result<Snapshot, Error> {
    restore_numbered(snap, input, prog, resolve).map_err(|(n, e)| at_line(n, e))
}

/// [`restore`] with the failing line's number (from 1) beside its error,
/// for callers that name the file themselves (`lvs apply`, `--rules`).
pub fn restore_numbered(
    snap: &Snapshot,
    input: &str,
    prog: &str,
    resolve: &dyn Resolve,
) -> Result<Snapshot, (usize, Error)> {
    let mut work = snap.clone();
    for (i, line) in input.split('\n').enumerate() {
        let words = words(line);
        if words.is_empty() {
            continue;
        }
        let mut argv = Vec::with_capacity(words.len() + 1);
        argv.push(prog.to_string());
        argv.extend(words);
        restore_line(&mut work, &argv, prog, resolve).map_err(|e| (i + 1, e))?;
    }
    Ok(work)
}

fn restore_line(
    work: &mut Snapshot,
    argv: &[String],
    prog: &str,
    resolve: &dyn Resolve,
) -> Result<(), Error> {
    let cmd = args::parse(argv, resolve)?;
    match cmd {
        Command::Restore => return Err(args::try_help(prog)),
        Command::List(_)
        | Command::Save { .. }
        | Command::Zero(_)
        | Command::Help
        | Command::Version => {
            return Err(Error::usage(format!(
                "lvsadm: {} is not allowed in -R input, only commands that change the table",
                apply::command_name(&cmd)
            )))
        }
        _ => {}
    }
    support::check_supported(&cmd)?;
    apply::apply(work, &cmd)
}

/// Puts the line number in front of an error and says that nothing was
/// restored; keeps the error's exit status.
fn at_line(n: usize, e: Error) -> Error {
    let msg = e.msg.strip_prefix("lvsadm: ").unwrap_or(&e.msg);
    Error {
        code: e.code,
        msg: format!(
            "lvsadm: -R: line {n}: {msg}\nlvsadm: -R: nothing restored, the table is unchanged"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adm::command::ListOpts;
    use crate::adm::{format, NoResolve};
    use crate::model::{Method, Proto, RealServer, Scheduler, ServiceAddr, Stats, VirtualService};

    fn r(snap: &Snapshot, input: &str) -> Result<Snapshot, Error> {
        restore(snap, input, "lvsadm", &NoResolve)
    }

    fn table() -> Snapshot {
        let key = |proto, a: &str, port| ServiceAddr {
            proto,
            addr: a.parse().unwrap(),
            port,
        };
        let mut web = VirtualService::new(key(Proto::Tcp, "192.168.47.128", 80), Scheduler::Rr);
        web.reals = vec![
            RealServer::new("192.168.211.130".parse().unwrap(), 8080, Method::Masq, 5),
            RealServer::new("192.168.211.129".parse().unwrap(), 80, Method::Masq, 1),
        ];
        let mut dns = VirtualService::new(key(Proto::Udp, "10.0.0.53", 53), Scheduler::Wrr);
        dns.reals = vec![RealServer::new(
            "10.1.0.1".parse().unwrap(),
            53,
            Method::Masq,
            0,
        )];
        Snapshot {
            conn_table_size: 4096,
            services: vec![web, dns],
            ..Snapshot::default()
        }
    }

    fn listing(snap: &Snapshot) -> String {
        format::list(
            snap,
            &ListOpts {
                numeric: true,
                ..ListOpts::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn words_as_config_stream_splits_them() {
        assert_eq!(
            words("ipvsadm  -A\t-t 1.2.3.4:80 -s rr\r"),
            ["-A", "-t", "1.2.3.4:80", "-s", "rr"]
        );
        assert!(words("").is_empty());
        assert!(words(" \t ").is_empty());
        assert!(words("# a comment").is_empty());
        assert_eq!(words("-C # clear first"), ["-C"]);
    }

    #[test]
    fn save_then_clear_and_restore_round_trip() {
        let mut snap = table();
        // Counters are not part of the rules.
        snap.services[0].reals[0].stats = Stats {
            conns: 3,
            ..Stats::default()
        };
        snap.services[0].reals[0].active = 2;
        let saved = format::save(&snap, true);
        let before = listing(&snap);

        let cleared = Snapshot {
            services: Vec::new(),
            ..snap.clone()
        };
        let restored = r(&cleared, &saved).unwrap();
        let after = listing(&restored);
        let zero_counters = |s: &str| s.replace("Masq    5      2 ", "Masq    5      0 ");
        assert_eq!(after, zero_counters(&before));
        assert_eq!(format::save(&restored, true), saved);

        // And `-C` as the first line of the input does the same.
        let restored = r(&snap, &format!("-C\n{saved}")).unwrap();
        assert_eq!(format::save(&restored, true), saved);
    }

    #[test]
    fn blank_lines_comments_and_ipvsadm_prefix() {
        let input = "\n# rules\nipvsadm -A -t 10.9.0.1:80 -s rr\n\n  \n\
                     ipvsadm -a -t 10.9.0.1:80 -r 10.9.1.1:80 -m -w 2 # web 1\n";
        let out = r(&Snapshot::default(), input).unwrap();
        assert_eq!(
            format::save(&out, true),
            "-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 10.9.1.1:80 -m -w 2\n"
        );
    }

    #[test]
    fn one_bad_line_changes_nothing() {
        let snap = table();
        let cases: &[(&str, i32, &str)] = &[
            (
                "-A -t 10.5.0.1:80 -s rr\n-a -t 10.5.0.1:80 -r 10.5.1.1 -m\n-A -t 192.168.47.128:80 -s rr\n",
                255,
                "lvsadm: -R: line 3: Service already exists",
            ),
            (
                "-A -t 10.5.0.1:80 -s rr\n\n-a -t 10.5.0.1:80 -r 10.5.1.1 -m -w 70000\n",
                2,
                "lvsadm: -R: line 3: illegal weight specified",
            ),
            (
                "-A -t 10.5.0.1:80 -s rr\n-A -u 10.5.0.2:53 -s rr -o\n",
                2,
                "lvsadm: -R: line 2: -o (one-packet scheduling) is not implemented yet",
            ),
            (
                "-C\n-a -t 192.168.47.128:80 -r 10.5.1.1 -m\n",
                255,
                "lvsadm: -R: line 2: Service not defined",
            ),
            (
                "-A -t 10.5.0.1:80 -s rr\n-L -n\n",
                2,
                "lvsadm: -R: line 2: -L is not allowed in -R input, only commands that change the table",
            ),
            (
                "-R\n",
                255,
                "lvsadm: -R: line 1: Try `lvsadm -h' or 'lvsadm --help' for more information.",
            ),
            (
                "-A -t 10.5.0.1:80 -s rr\n-X\n",
                255,
                "lvsadm: -R: line 2: Try `lvsadm -h' or 'lvsadm --help' for more information.",
            ),
        ];
        for (input, code, first_line) in cases {
            let e = r(&snap, input).expect_err(input);
            assert_eq!(e.code, *code, "{input}");
            assert_eq!(e.msg.lines().next().unwrap(), *first_line, "{input}");
            assert!(e.msg.ends_with("nothing restored, the table is unchanged"));
        }
        // The input is all or nothing: the snapshot given is never touched,
        // and what the caller commits is only the Ok value.
        assert_eq!(snap, table());
    }

    #[test]
    fn empty_input_is_no_change() {
        assert_eq!(r(&table(), "").unwrap(), table());
        assert_eq!(r(&table(), "\n\n# nothing\n").unwrap(), table());
    }
}
