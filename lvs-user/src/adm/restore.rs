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
//!
//! Bounds against hostile input (lvsadm's own): at most [`MAX_INPUT`]
//! bytes are read, a line of more than [`MAX_WORDS`] words is refused
//! without reading it into words, and bytes that are not UTF-8 fail on
//! their line.

use std::io::Read;

use super::args;
use super::command::Command;
use super::{apply, support, Error, Resolve};
use crate::model::Snapshot;

/// The most `-R` reads: far more than any table holds (a rule is ~50
/// bytes; this is over a million), and a bound on what a runaway or
/// hostile stdin can make lvsadm hold in memory.
pub const MAX_INPUT: u64 = 64 << 20;

/// Reads the whole of stdin for `-R`, at most [`MAX_INPUT`] bytes. Bytes
/// that are not UTF-8 become U+FFFD, so such a line fails with its number
/// (as ipvsadm, which reads bytes, would fail on it) instead of the whole
/// input failing without one; a comment in Latin-1 stays a comment.
pub fn read_input(r: &mut dyn Read) -> Result<String, Error> {
    let mut buf = Vec::new();
    r.take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::op(format!("lvsadm: can't read the rules from stdin: {e}")))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(Error::usage(format!(
            "lvsadm: -R: the input is larger than {} MiB\n\
             lvsadm: -R: nothing restored, the table is unchanged",
            MAX_INPUT >> 20
        )));
    }
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The most words a line may have: no ipvsadm command has half as many,
/// and the bound keeps a hostile line (megabytes of words) from costing
/// memory in proportion to it.
pub const MAX_WORDS: usize = 64;

/// The words of one input line.
pub fn words(line: &str) -> Vec<String> {
    split(line).map(String::from).collect()
}

fn split(line: &str) -> impl Iterator<Item = &str> {
    let line = match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    };
    line.split([' ', '\t', '\r'])
        .filter(|w| !w.is_empty() && *w != "ipvsadm" && *w != "lvsadm")
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
        let words: Vec<&str> = split(line).take(MAX_WORDS + 1).collect();
        if words.is_empty() {
            continue;
        }
        if words.len() > MAX_WORDS {
            return Err((
                i + 1,
                Error::usage(format!(
                    "more than {MAX_WORDS} words: no ipvsadm command is that long"
                )),
            ));
        }
        let mut argv = Vec::with_capacity(words.len() + 1);
        argv.push(prog.to_string());
        argv.extend(words.into_iter().map(String::from));
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
    fn input_is_bounded_and_bytes_name_their_line() {
        let big = vec![b'#'; MAX_INPUT as usize + 1];
        let e = read_input(&mut big.as_slice()).unwrap_err();
        assert_eq!(
            e.msg,
            "lvsadm: -R: the input is larger than 64 MiB\n\
             lvsadm: -R: nothing restored, the table is unchanged"
        );
        let input = b"-A -t 10.5.0.1:80 -s rr # caf\xe9\n-A -t 10.5.0.2:80 -s r\xffr\n";
        let text = read_input(&mut &input[..]).unwrap();
        // Line 1's Latin-1 comment is a comment; line 2's byte fails there.
        assert!(text.contains("caf\u{fffd}"));
        let e = r(&table(), &text).unwrap_err();
        assert!(e.msg.starts_with("lvsadm: -R: line 2: "), "{}", e.msg);
    }

    #[test]
    fn a_line_of_too_many_words_is_refused_at_once() {
        let line = format!("-A -t 10.5.0.1:80 -s rr{}", " -w 1".repeat(200_000));
        let e = r(&table(), &format!("-C\n{line}\n")).unwrap_err();
        assert_eq!(
            e.msg,
            "lvsadm: -R: line 2: more than 64 words: no ipvsadm command is that long\n\
             lvsadm: -R: nothing restored, the table is unchanged"
        );
        // 64 words are still a command line, as ipvsadm reads it.
        let line = format!("-A -t 10.5.0.1:80 -s rr -p{}", " -w 1".repeat(29));
        assert_eq!(words(&line).len(), 64);
        let e = r(&table(), &line).unwrap_err();
        assert!(
            e.msg
                .contains("line 1: multiple 'weight' options specified"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn empty_input_is_no_change() {
        assert_eq!(r(&table(), "").unwrap(), table());
        assert_eq!(r(&table(), "\n\n# nothing\n").unwrap(), table());
    }
}
