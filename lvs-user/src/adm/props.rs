//! Property tests of lvsadm's two parsers, on inputs built from the option
//! table: arbitrary argument vectors never panic and either parse or fail
//! with one of ipvsadm's exit statuses; arbitrary `-R` input never panics,
//! fails naming a line that exists and changes nothing, and what it
//! accepts saves and restores to the same table. (That the messages are
//! ipvsadm's own word for word is `tests/it/adm_hostile.rs`, against the
//! real ipvsadm.)

use proptest::prelude::*;

use super::args::{self, option_spellings};
use super::{apply, format, restore, support, NoResolve, EXIT_ERROR, EXIT_USAGE};
use crate::model::Snapshot;

/// Values an option might be given: valid ones of every kind, near
/// misses, and junk.
const VALUES: &[&str] = &[
    "10.0.0.1:80",
    "10.0.0.1",
    "10.0.0.2:53",
    "192.168.47.128:80",
    "10.1.0.1:8080",
    "10.1.0.2",
    "[fd00::1]:80",
    "fd00::1",
    "[fd00::2]:0",
    "[fd00::1",
    "1.2.3.4:99999",
    "1.2.3.4:0",
    "1.2.3",
    "0x0a000001:80",
    "010.0.0.1:80",
    "1.2.3.4:-1",
    "300",
    "0",
    "-1",
    "65535",
    "65536",
    "4294967296",
    "2678401",
    "rr",
    "wrr",
    "wlc",
    "sh",
    "mh",
    "lblcr",
    "twos",
    "xyz",
    "sh-port,flag-1",
    "flag-1,flag-2,flag-3",
    "mh-port",
    "sh-fallback,",
    "255.255.255.0",
    "255.0.255.0",
    "64",
    "129",
    "ipip",
    "gue",
    "gre",
    "master",
    "backup",
    "eth0",
    "sip",
    "x",
    "",
    "-",
    "--",
    "-5",
    "é",
    "a b",
    "1.2.3.4:80:80",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(String::from),
        1 => proptest::collection::vec(any::<char>(), 0..6).prop_map(|v| v.into_iter().collect()),
    ]
}

/// One word (or two) of a command line.
fn item() -> impl Strategy<Value = Vec<String>> {
    let opts: Vec<(&'static str, &'static [char], bool)> = option_spellings().collect();
    let opts2 = opts.clone();
    prop_oneof![
        // --long [value] / --long=value
        4 => (proptest::sample::select(opts), value(), 0..3u8).prop_map(|((long, _, takes), v, how)| {
            match (takes, how) {
                (true, 0) => vec![format!("--{long}"), v],
                (true, 1) => vec![format!("--{long}={v}")],
                _ => vec![format!("--{long}")],
            }
        }),
        // -c [value] / -cVALUE / -cd (combined shorts)
        4 => (proptest::sample::select(opts2), value(), 0..3u8, any::<bool>()).prop_filter_map(
            "has a short name",
            |((_, short, takes), v, how, combine)| {
                let c = *short.first()?;
                Some(match (takes, how) {
                    (true, 0) => vec![format!("-{c}"), v],
                    (true, 1) => vec![format!("-{c}{v}")],
                    (false, _) if combine => vec![format!("-{c}n")],
                    _ => vec![format!("-{c}")],
                })
            }
        ),
        1 => value().prop_map(|v| vec![v]),
    ]
}

/// A command line: mostly random words from the option table, some
/// shaped like the changes an operator makes (so that many apply).
fn argv() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![3 => random_argv(), 1 => change_argv()]
}

/// `-A|-E|-D|-a|-e|-d` on the table's services, with some of the options
/// those take.
fn change_argv() -> impl Strategy<Value = Vec<String>> {
    const CMDS: &[&str] = &["-A", "-E", "-D", "-a", "-e", "-d"];
    const SVCS: &[&str] = &[
        "-t 10.0.0.1:80",
        "-u 10.0.0.2:53",
        "-t [fd00::1]:80",
        "-t 10.0.0.3:80",
    ];
    const EXTRA: &[&str] = &[
        "-s rr",
        "-s sh",
        "-s wlc",
        "-p",
        "-p 60",
        "-r 10.1.0.1:80",
        "-r 10.1.0.2",
        "-r [fd00::5]:80",
        "-m",
        "-g",
        "-i",
        "-w 0",
        "-w 3",
        "-x 10",
        "-y 5",
        "-b flag-1",
        "-M 255.255.255.0",
    ];
    (
        proptest::sample::select(CMDS),
        proptest::sample::select(SVCS),
        proptest::collection::vec(proptest::sample::select(EXTRA), 0..4),
    )
        .prop_map(|(c, s, extra)| {
            let mut line = format!("lvsadm {c} {s}");
            for e in extra {
                line += " ";
                line += e;
            }
            line.split(' ').map(String::from).collect()
        })
}

fn random_argv() -> impl Strategy<Value = Vec<String>> {
    const CMDS: &[&str] = &[
        "-A", "-E", "-D", "-C", "-R", "-S", "-a", "-e", "-d", "-L", "-Z", "--set", "-h", "-v",
    ];
    (
        proptest::option::weighted(0.85, proptest::sample::select(CMDS)),
        proptest::collection::vec(item(), 0..7),
    )
        .prop_map(|(cmd, items)| {
            let mut v = vec!["lvsadm".to_string()];
            v.extend(cmd.map(String::from));
            v.extend(items.into_iter().flatten());
            v
        })
}

/// A command line as one line of `-R` input.
fn line() -> impl Strategy<Value = String> {
    argv().prop_map(|v| v[1..].join(" ").replace('\n', " "))
}

fn table() -> Snapshot {
    let mut snap = Snapshot {
        conn_table_size: 4096,
        ..Snapshot::default()
    };
    let input = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 2\n\
                 -A -u 10.0.0.2:53 -s wrr -p 60\n-A -t [fd00::1]:80 -s sh -b sh-port\n";
    snap = restore::restore(&snap, input, "lvsadm", &NoResolve).unwrap();
    snap
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 768,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arguments_parse_or_fail_as_ipvsadm_does(argv in argv()) {
        match args::parse(&argv, &NoResolve) {
            Ok(cmd) => {
                // What parses goes through the gate and the model without a
                // panic; a change that fails leaves the table as it was.
                if support::check_supported(&cmd).is_ok() {
                    let before = table();
                    let mut work = before.clone();
                    if let Err(e) = apply::apply(&mut work, &cmd) {
                        prop_assert!(!e.msg.is_empty());
                        prop_assert!([EXIT_USAGE, EXIT_ERROR].contains(&e.code), "{e:?}");
                    }
                }
            }
            Err(e) => {
                prop_assert!([EXIT_USAGE, EXIT_ERROR].contains(&e.code), "{argv:?}: {e:?}");
                prop_assert!(!e.msg.trim().is_empty(), "{argv:?}");
            }
        }
    }

    #[test]
    fn restore_input_applies_whole_or_names_its_line(
        lines in proptest::collection::vec(line(), 0..16),
        bad in proptest::option::of((
            any::<proptest::sample::Index>(),
            prop_oneof![
                3 => line(),
                1 => proptest::collection::vec(any::<u8>(), 1..40)
                    .prop_map(|b| String::from_utf8_lossy(&b).replace('\n', " ")),
            ],
        )),
    ) {
        // The lines that apply one after the other: a valid input...
        let before = table();
        let mut work = before.clone();
        let mut input: Vec<String> = Vec::new();
        for l in lines {
            if let Ok(next) = restore::restore(&work, &l, "lvsadm", &NoResolve) {
                work = next;
                input.push(l);
                input.push("# valid so far".into());
            }
        }
        // ...with perhaps one more line anywhere in it.
        let bad_at = bad.map(|(at, line)| {
            let at = at.index(input.len() + 1);
            input.insert(at, line);
            at + 1
        });
        let text = input.join("\n");
        match restore::restore(&before, &text, "lvsadm", &NoResolve) {
            Ok(after) => {
                if bad_at.is_none() {
                    prop_assert_eq!(&after, &work);
                }
                // Saved and restored on an empty table, it is the same table.
                let saved = format::save(&after, true);
                let empty = Snapshot { services: Vec::new(), ..after.clone() };
                let again = restore::restore(&empty, &saved, "lvsadm", &NoResolve);
                prop_assert!(again.is_ok(), "{saved}: {again:?}");
                prop_assert_eq!(format::save(&again.unwrap(), true), saved);
            }
            Err(e) => {
                // Only the extra line can make it fail: itself, or (a valid
                // extra line such as `-C` changes the table under the lines
                // after it) a line after it; the error names that line.
                let Some(at) = bad_at else {
                    return Err(TestCaseError::fail(format!("valid input refused: {text:?}: {}", e.msg)));
                };
                let named: Option<usize> = e
                    .msg
                    .strip_prefix("lvsadm: -R: line ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok());
                prop_assert!(
                    named.is_some_and(|n| n >= at && n <= input.len()),
                    "{text:?}: want a line from {at} on, got {}",
                    e.msg
                );
                prop_assert!(e.msg.ends_with("nothing restored, the table is unchanged"));
            }
        }
        prop_assert_eq!(before, table());
    }
}

/// The generators are not vacuous: a fair share of what they build parses
/// and applies, so the properties above see both sides.
#[test]
fn generators_reach_valid_and_invalid_inputs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut parsed, mut applied, mut failed) = (0, 0, 0);
    for _ in 0..2000 {
        let argv = argv().new_tree(&mut runner).unwrap().current();
        match args::parse(&argv, &NoResolve) {
            Ok(cmd) => {
                parsed += 1;
                let mut work = table();
                if support::check_supported(&cmd).is_ok() && apply::apply(&mut work, &cmd).is_ok() {
                    applied += 1;
                }
            }
            Err(_) => failed += 1,
        }
    }
    assert!(
        parsed >= 200 && applied >= 50 && failed >= 200,
        "{parsed} {applied} {failed}"
    );
}
