//! keepalived.conf files, good and broken, through `lvs check --config
//! FILE --test` — with keepalived 2.2's own `keepalived -t` as the referee:
//! both must agree on which files are valid.
//!
//! The fixtures (`tests/it/kaconf/`) are in four directories:
//! - `good/`: both accept. Every value is set explicitly, because
//!   `keepalived -t` exits non-zero on mere warnings (a defaulted
//!   `lvs_method`, a quorum above the weights, …).
//! - `bad/`: both refuse; lvs prints exactly one `lvs: FILE:LINE: …` line
//!   naming the line listed below.
//! - `differ/`: keepalived accepts, lvs refuses on purpose (listed below
//!   with the reason: fwmark, weights above ipvsadm's 65535, what lvs-xdp
//!   does not implement, …).
//! - `warn/`: keepalived's `-t` fails on a warning only (it defaults the
//!   value); lvs defaults it the same way and says so, exit 0.
//!
//! keepalived runs as `keepalived -t -e -f FILE`: `-t` only parses (it
//! needs no IPVS and no running instance; it writes no pid file and
//! signals nothing), `-e` makes a missing include an error, as it always
//! is for lvs; it runs (as root) in a network namespace of its own
//! (`unshare -n`, with an `eth0` (a veth) for the files' vrrp_instance), where
//! its host-name lookup reaches no server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lvs_lab::run_timeout;

use crate::common::LVS;

const KEEPALIVED: &str = "/usr/sbin/keepalived";
const T: Duration = Duration::from_secs(20);

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/kaconf")
}

/// (exit code, stdout, stderr)
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = run_timeout(cmd, T).expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// keepalived runs as root, in a namespace the test makes (see above):
/// without root these tests are skipped, loudly, as the namespace tests.
fn referee() -> bool {
    lvs_lab::require_root("keepalived -t as the referee, in its own network namespace")
}

fn keepalived(file: &Path) -> (i32, String) {
    assert!(
        Path::new(KEEPALIVED).exists(),
        "{KEEPALIVED} is missing: `cargo xtask setup` installs Debian's keepalived, the referee"
    );
    // keepalived looks its host name up, and checks that a vrrp_instance's
    // interface exists: it runs in a network namespace of its own (no
    // lookup leaves the machine) holding just the files' `eth0`, so its
    // verdict does not depend on the host's links.
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-n",
        "--",
        "sh",
        "-c",
        "ip link add eth0 type veth peer name eth0-peer && exec \"$0\" \"$@\"",
        KEEPALIVED,
    ]);
    let (code, out, err) = run(cmd.arg("-t").arg("-e").arg("-f").arg(file));
    (code, out + &err)
}

fn lvs_check(file: &Path) -> (i32, String, String) {
    run(Command::new(LVS)
        .args(["check", "--test", "--config"])
        .arg(file)
        .env("RUST_LOG", "off"))
}

/// The `.conf` files of one fixture directory (not the included pieces
/// under its subdirectories), sorted.
fn fixtures(sub: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir().join(sub))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.ends_with(".conf").then_some(name)
        })
        .collect();
    v.sort();
    v
}

/// Every file of `sub` is listed in `table`, and every entry has a file.
fn same_set(sub: &str, table: &[&str]) {
    let mut listed: Vec<String> = table.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        fixtures(sub),
        listed,
        "the fixtures of {sub}/ and the test's table differ"
    );
}

#[test]
fn good_files_are_valid_for_both() {
    if !referee() {
        return;
    }
    let files = fixtures("good");
    assert!(files.len() >= 6, "{files:?}");
    for name in files {
        let f = dir().join("good").join(&name);
        let (kc, kout) = keepalived(&f);
        assert_eq!(kc, 0, "keepalived -t refuses good/{name}:\n{kout}");
        let (code, out, err) = lvs_check(&f);
        assert_eq!(code, 0, "lvs check refuses good/{name}: {err}");
        assert!(!err.contains("warning"), "good/{name} warns: {err}");
        assert!(out.contains("configuration OK"), "{out}");
    }
}

/// The broken files, the file (relative to `bad/`) and line the error
/// names, and a part of its message.
const BAD: &[(&str, &str, u32, &str)] = &[
    (
        "bad_address.conf",
        "bad_address.conf",
        1,
        "'10.0.0.1.5' is not an IPv4 or IPv6 address",
    ),
    (
        "bad_digest.conf",
        "bad_digest.conf",
        10,
        "not an MD5 digest",
    ),
    (
        "bad_dns_type.conf",
        "bad_dns_type.conf",
        8,
        "unknown query type 'FOO'",
    ),
    (
        "bad_include.conf",
        "bad_include.conf",
        2,
        "include inc/missing.conf: no such file",
    ),
    (
        "bad_method.conf",
        "bad_method.conf",
        3,
        "unknown method 'FOO'",
    ),
    (
        "bad_payload.conf",
        "bad_payload.conf",
        8,
        "'zz' is not a hex string",
    ),
    (
        "bad_protocol.conf",
        "bad_protocol.conf",
        4,
        "unknown protocol 'ICMP'",
    ),
    (
        "bad_scheduler.conf",
        "bad_scheduler.conf",
        2,
        "unknown scheduler 'xyz'",
    ),
    (
        "bad_status.conf",
        "bad_status.conf",
        10,
        "'600' is outside 100-599",
    ),
    (
        "bad_timer.conf",
        "bad_timer.conf",
        8,
        "connect_timeout: '0' must be more than 0",
    ),
    (
        "connect_port.conf",
        "connect_port.conf",
        8,
        "'70000' is outside 1-65535",
    ),
    (
        "dr_port.conf",
        "dr_port.conf",
        5,
        "DR and TUN cannot change ports",
    ),
    (
        "duplicate_rs.conf",
        "duplicate_rs.conf",
        11,
        "real_server 10.0.1.1 80 is given twice",
    ),
    ("extra_brace.conf", "extra_brace.conf", 9, "extra '}'"),
    (
        "family.conf",
        "family.conf",
        5,
        "not of the virtual server's address family",
    ),
    (
        "include_error.conf",
        "inc/broken.inc",
        8,
        "unknown keyword 'conect_timeout' in TCP_CHECK",
    ),
    ("missing_brace.conf", "missing_brace.conf", 1, "missing '}'"),
    (
        "no_real_servers.conf",
        "no_real_servers.conf",
        1,
        "has no real servers",
    ),
    (
        "persistence.conf",
        "persistence.conf",
        5,
        "'5000000' is outside 1-2678400",
    ),
    (
        "quorum.conf",
        "quorum.conf",
        1,
        "quorum 5 exceeds the total weight 2",
    ),
    (
        "retry_zero.conf",
        "retry_zero.conf",
        5,
        "retry: '0' is outside 1-",
    ),
    (
        "sorry_inhibit_first.conf",
        "sorry_inhibit_first.conf",
        5,
        "before (or without) sorry_server",
    ),
    (
        "unexpected_brace.conf",
        "unexpected_brace.conf",
        6,
        "weight: takes no block",
    ),
    (
        "unknown_checker.conf",
        "unknown_checker.conf",
        7,
        "unknown keyword 'FOO_CHECK' in real_server",
    ),
    (
        "unknown_keyword.conf",
        "unknown_keyword.conf",
        6,
        "unknown keyword 'wieght' in real_server",
    ),
    (
        "unknown_top.conf",
        "unknown_top.conf",
        1,
        "unknown keyword 'virtual_server_foo'",
    ),
    (
        "weight_negative.conf",
        "weight_negative.conf",
        6,
        "'-1' is outside ipvsadm's range 0-65535",
    ),
    (
        "weight_word.conf",
        "weight_word.conf",
        6,
        "'abc' is not a number",
    ),
    (
        "zero_port.conf",
        "zero_port.conf",
        1,
        "only valid for a persistent service",
    ),
];

/// Where keepalived names another line than lvs: the `}` ending the
/// block it checks, where lvs names the block's first line.
const KEEPALIVED_LINE: &[(&str, u32)] = &[("family.conf", 7)];

#[test]
fn broken_files_are_refused_by_both_with_file_and_line() {
    if !referee() {
        return;
    }
    same_set("bad", &BAD.iter().map(|b| b.0).collect::<Vec<_>>());
    for (name, at, line, what) in BAD {
        let f = dir().join("bad").join(name);
        let (kc, kout) = keepalived(&f);
        assert_ne!(kc, 0, "keepalived -t accepts bad/{name}");
        let (code, out, err) = lvs_check(&f);
        assert_eq!(code, 1, "lvs check on bad/{name}: {out}{err}");
        assert!(out.is_empty(), "bad/{name}: {out}");
        let want = format!("lvs: {}:{line}: ", dir().join("bad").join(at).display());
        assert_eq!(
            err.lines().count(),
            1,
            "bad/{name}: one message, not: {err}"
        );
        assert!(
            err.starts_with(&want),
            "bad/{name}: want {want}…, got {err}"
        );
        assert!(err.contains(what), "bad/{name}: want …{what}…, got {err}");
        // Where keepalived names a line, it is the same one (but where it
        // checks at the end of a block, it names the block's `}`).
        let kat = KEEPALIVED_LINE
            .iter()
            .find(|k| k.0 == *name)
            .map_or(*line, |k| k.1);
        let kline = format!("Line {kat})");
        if kout.contains("Line ") {
            assert!(
                kout.contains(&kline),
                "bad/{name}: keepalived says {kout}, lvs {err}"
            );
        }
    }
}

/// Files keepalived accepts and lvs refuses, and why.
const DIFFER: &[(&str, u32, &str)] = &[
    // ipvsadm's range; keepalived 2.2 allows up to 2^31-1 (IPVS's own).
    (
        "weight_70000.conf",
        6,
        "'70000' is outside ipvsadm's range 0-65535",
    ),
    // XDP runs before netfilter could mark a packet; lvsadm refuses -f.
    ("fwmark.conf", 1, "fwmark services are not supported"),
    // keepalived keeps both (IPVS would refuse the second): refused.
    ("duplicate_vs.conf", 9, "is defined twice"),
    ("vs_group.conf", 1, "virtual_server_group is not supported"),
    (
        "smtp_check.conf",
        7,
        "SMTP_CHECK: this checker is not implemented",
    ),
    ("ops.conf", 5, "one-packet scheduling, lvsadm -o"),
    // keepalived ignores words it does not read; lvs refuses them.
    ("extra_value.conf", 5, "delay_loop: takes one value, not 2"),
];

#[test]
fn deliberate_differences_are_refused_by_lvs_only() {
    if !referee() {
        return;
    }
    same_set("differ", &DIFFER.iter().map(|d| d.0).collect::<Vec<_>>());
    for (name, line, what) in DIFFER {
        let f = dir().join("differ").join(name);
        let (kc, kout) = keepalived(&f);
        assert_eq!(
            kc, 0,
            "keepalived -t now refuses differ/{name} (move it to bad/): {kout}"
        );
        let (code, _, err) = lvs_check(&f);
        assert_eq!(code, 1, "differ/{name}: {err}");
        let want = format!("lvs: {}:{line}: ", f.display());
        assert!(
            err.starts_with(&want) && err.contains(what),
            "differ/{name}: {err}"
        );
    }
}

/// keepalived's warning (its `-t` fails) and lvs's, for the same default.
const WARN: &[(&str, &str, &str)] = &[
    (
        "no_method.conf",
        "no forwarding method set, setting default NAT",
        "no lvs_method set: NAT",
    ),
    (
        "no_protocol.conf",
        "no protocol set - defaulting to UDP",
        "no protocol set: UDP",
    ),
    (
        "no_scheduler.conf",
        "no scheduler set, setting default 'wlc'",
        "no lvs_sched set: wlc",
    ),
];

#[test]
fn defaulted_values_warn_in_both() {
    if !referee() {
        return;
    }
    same_set("warn", &WARN.iter().map(|w| w.0).collect::<Vec<_>>());
    for (name, kwarn, lwarn) in WARN {
        let f = dir().join("warn").join(name);
        let (kc, kout) = keepalived(&f);
        assert_ne!(kc, 0, "warn/{name}");
        assert!(kout.contains(kwarn), "warn/{name}: keepalived says {kout}");
        let (code, _, err) = lvs_check(&f);
        assert_eq!(code, 0, "warn/{name}: {err}");
        let want = format!("lvs: warning: {}:1: {lwarn}", f.display());
        assert!(err.contains(&want), "warn/{name}: want {want}, got {err}");
    }
}

#[test]
fn the_lab_file_parses_to_the_seed_lab() {
    let cfg = lvs::keepalived::load(&dir().join("good/lab.conf")).unwrap();
    let [vs] = cfg.virtual_servers.as_slice() else {
        panic!("{cfg:?}")
    };
    let svc = vs.service_all_up();
    assert_eq!(svc.key.addr.to_string(), "192.168.47.128");
    assert_eq!(svc.key.port, 80);
    assert_eq!(svc.sched, lvs::model::Scheduler::Rr);
    let reals: Vec<String> = svc
        .reals
        .iter()
        .map(|r| format!("{}:{} {} {}", r.addr, r.port, r.method.name(), r.weight))
        .collect();
    assert_eq!(
        reals,
        ["192.168.211.129:80 Masq 1", "192.168.211.130:80 Masq 1"]
    );
}

#[test]
fn skipped_blocks_are_named_once() {
    let f = dir().join("good/skipped.conf");
    let (code, _, err) = lvs_check(&f);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "lvs: {}: skipped global_defs, vrrp_script, vrrp_instance, static_ipaddress \
             (keepalived's other parts: run keepalived beside lvs for VRRP)",
            f.display()
        )
    );
}

/// keepalived's own sample files (Debian ships them with the package): the
/// LVS ones are accepted as keepalived accepts them, or refused by name
/// for what lvs-xdp does not do. Samples that are VRRP only are skipped
/// whole (their errors are keepalived's business).
#[test]
fn keepalived_s_samples() {
    if !referee() {
        return;
    }
    let dir = Path::new("/usr/share/doc/keepalived/samples");
    if !dir.exists() {
        eprintln!(
            "SKIPPED: {} is not installed (docs excluded from the image?)",
            dir.display()
        );
        return;
    }
    let accepted = [
        "keepalived.conf.HTTP_GET.port",
        "keepalived.conf.UDP_CHECK",
        "keepalived.conf.inhibit",
        "keepalived.conf.misc_check",
        "keepalived.conf.misc_check_arg",
        "keepalived.conf.quorum",
        "keepalived.conf.sample",
        "keepalived.conf.status_code",
        "keepalived.conf.virtualhost",
    ];
    let refused = [
        (
            "keepalived.conf.IPv6",
            "virtual_server_group is not supported",
        ),
        (
            "keepalived.conf.PING_CHECK",
            "PING_CHECK: this checker is not implemented",
        ),
        (
            "keepalived.conf.SMTP_CHECK",
            "SMTP_CHECK: this checker is not implemented",
        ),
        (
            "keepalived.conf.fwmark",
            "fwmark services are not supported",
        ),
        (
            "keepalived.conf.virtual_server_group",
            "virtual_server_group is not supported",
        ),
        (
            "keepalived.conf.conditional_conf",
            "conditional configuration ('@high')",
        ),
    ];
    for name in accepted {
        let f = dir.join(name);
        let (kc, kout) = keepalived(&f);
        assert_eq!(kc, 0, "{name}: {kout}");
        let (code, out, err) = lvs_check(&f);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            out.contains("configuration OK: 1 virtual servers"),
            "{name}: {out}"
        );
    }
    for (name, why) in refused {
        let (code, _, err) = lvs_check(&dir.join(name));
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
    }
}

/// What lvs refuses on purpose where keepalived accepts (the README's
/// list): words after a keyword's value, weights above 65535, a virtual
/// server twice, scripts as another user, what lvs-xdp does not do.
const LVS_ONLY: &[&str] = &[
    "takes one value, not",
    "takes no value",
    "takes at most one value",
    "no more",
    "is outside ipvsadm's range 0-65535",
    "is defined twice",
    "running a script as another user",
    "not supported",
    "not implemented",
];

/// keepalived as the referee on mutated good files: a word of a line
/// replaced, a word added, a line deleted or doubled (in the virtual
/// servers only: global_defs is keepalived's, and skipped by lvs). Whatever
/// keepalived refuses, lvs refuses too or warns about the same default;
/// whatever lvs alone refuses is one of its listed differences.
#[test]
fn keepalived_agrees_on_mutated_files() {
    if !referee() {
        return;
    }
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    const WORDS: &[&str] = &[
        "{",
        "}",
        "0",
        "1",
        "-1",
        "3",
        "65536",
        "2.5",
        "0.0",
        "yes",
        "no",
        "abc",
        "10.0.0.1",
        "fd00::9",
        "NAT",
        "DR",
        "TUN",
        "rr",
        "wrr",
        "sh",
        "80",
        "0",
        "200-299",
        "1.1",
        "TXT",
        "weight",
        "alpha",
        "retry",
        "quorum",
        "hysteresis",
        "inhibit_on_failure",
        "lvs_method",
        "delay_loop",
        "connect_port",
        "connect_ip",
        "persistence_timeout",
        "misc_dynamic",
        "virtualhost",
        "sorry_server",
        "real_server",
        "TCP_CHECK",
        "url",
        "path",
        "#",
    ];
    let files: Vec<String> = [
        "lab.conf",
        "virtual_server.conf",
        "checkers.conf",
        "ipv6_tun.conf",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(dir().join("good").join(f)).unwrap())
    .collect();
    let work = std::env::temp_dir().join(format!("lvs-kadiff-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("m.conf");

    let op = (
        0..4u8,
        any::<proptest::sample::Index>(),
        any::<proptest::sample::Index>(),
        proptest::sample::select(WORDS),
    );
    let case = (0..files.len(), proptest::collection::vec(op, 1..3));
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let agreed = std::cell::Cell::new((0, 0));
    let result = runner.run(&case, |(f, ops)| {
        let text = &files[f];
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        // Mutate only from the first virtual_server on.
        let from = lines
            .iter()
            .position(|l| l.starts_with("virtual_server"))
            .unwrap();
        for (kind, a, b, w) in ops {
            let n = lines.len() - from;
            if n == 0 {
                break;
            }
            let i = from + a.index(n);
            let mut words: Vec<String> = lines[i].split_whitespace().map(String::from).collect();
            match kind {
                0 if !words.is_empty() => {
                    let j = b.index(words.len());
                    words[j] = w.to_string();
                    lines[i] = words.join(" ");
                }
                1 => {
                    words.push(w.to_string());
                    lines[i] = words.join(" ");
                }
                2 => {
                    lines.remove(i);
                }
                _ => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
            }
        }
        let text = lines.join("\n") + "\n";
        std::fs::write(&file, &text).unwrap();
        let (kc, kout) = keepalived(&file);
        let (lc, _, lerr) = lvs_check(&file);
        let warned = lerr.contains("lvs: warning: ");
        let (mut both_ok, mut both_refuse) = agreed.get();
        match (kc == 0, lc == 0) {
            (true, true) if !warned => both_ok += 1,
            (false, false) => both_refuse += 1,
            (false, true) if warned => both_refuse += 1,
            (true, false) | (true, true) => {
                let ours = LVS_ONLY.iter().any(|p| lerr.contains(p));
                if !ours {
                    return Err(TestCaseError::fail(format!(
                        "keepalived accepts, lvs says {lerr}\n{text}"
                    )));
                }
            }
            (false, true) => {
                return Err(TestCaseError::fail(format!(
                    "keepalived refuses ({kout}), lvs accepts\n{text}"
                )))
            }
        }
        agreed.set((both_ok, both_refuse));
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = result {
        panic!("{e}");
    }
    let (ok, refuse) = agreed.get();
    eprintln!("{ok} mutated files valid for both, {refuse} refused by both");
    assert!(ok >= 30 && refuse >= 30, "{ok} {refuse}");
}
