//! `lvsadm` against a running director's pinned maps: save/clear/restore
//! round trip, all-or-nothing restore, bad input leaving the tables as they
//! were, and ipvsadm's exact output.

use crate::common::{director, Director};
use lvs_lab::require_root;

const TABLE: &[&[&str]] = &[
    &["-A", "-t", "192.168.47.128:80", "-s", "rr"],
    &[
        "-a",
        "-t",
        "192.168.47.128:80",
        "-r",
        "192.168.211.129:80",
        "-m",
        "-w",
        "1",
    ],
    &[
        "-a",
        "-t",
        "192.168.47.128:80",
        "-r",
        "192.168.211.130:80",
        "-m",
        "-w",
        "1",
    ],
    &["-A", "-u", "192.168.47.128:53", "-s", "wrr"],
    &[
        "-a",
        "-u",
        "192.168.47.128:53",
        "-r",
        "192.168.211.130:5353",
        "-m",
        "-w",
        "3",
    ],
    &[
        "-a",
        "-u",
        "192.168.47.128:53",
        "-r",
        "192.168.211.129:5353",
        "-m",
        "-w",
        "0",
    ],
];

fn fill(d: &Director) {
    for cmd in TABLE {
        d.adm(cmd);
    }
}

/// A director with [`TABLE`] loaded and its `-L -n` listing; `None` (the
/// test skips) without root.
fn filled(why: &str, tag: &str) -> Option<(Director, String)> {
    if !require_root(why) {
        return None;
    }
    let d = director(tag, 2).unwrap();
    fill(&d);
    let listing = d.adm(&["-L", "-n"]);
    Some((d, listing))
}

#[test]
fn listing_and_save_match_ipvsadm_byte_for_byte() {
    if !require_root("lvsadm output") {
        return;
    }
    let d = director("admfmt", 2).unwrap();
    fill(&d);
    let want = "IP Virtual Server version 1.2.1 (size=65536)\n\
Prot LocalAddress:Port Scheduler Flags\n  \
-> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
TCP  192.168.47.128:80 rr\n  \
-> 192.168.211.129:80           Masq    1      0          0         \n  \
-> 192.168.211.130:80           Masq    1      0          0         \n\
UDP  192.168.47.128:53 wrr\n  \
-> 192.168.211.129:5353         Masq    0      0          0         \n  \
-> 192.168.211.130:5353         Masq    3      0          0         \n";
    assert_eq!(d.adm(&["-L", "-n"]), want);
    assert_eq!(d.adm(&["-Ln"]), want);
    let save = "-A -t 192.168.47.128:80 -s rr\n\
-a -t 192.168.47.128:80 -r 192.168.211.129:80 -m -w 1\n\
-a -t 192.168.47.128:80 -r 192.168.211.130:80 -m -w 1\n\
-A -u 192.168.47.128:53 -s wrr\n\
-a -u 192.168.47.128:53 -r 192.168.211.129:5353 -m -w 0\n\
-a -u 192.168.47.128:53 -r 192.168.211.130:5353 -m -w 3\n";
    assert_eq!(d.adm(&["-S", "-n"]), save);
}

#[test]
fn save_clear_restore_round_trip() {
    let Some((d, before)) = filled("lvsadm round trip", "admrt") else {
        return;
    };
    let saved = d.adm(&["-S", "-n"]);
    d.adm(&["-C"]);
    assert!(
        !d.adm(&["-L", "-n"]).contains("TCP"),
        "-C must clear every service"
    );
    let (code, _, err) = d.adm_raw(&["-R"], &saved);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.adm(&["-L", "-n"]), before);
}

#[test]
fn bad_restore_and_bad_commands_change_nothing() {
    let Some((d, before)) = filled("lvsadm validation", "admbad") else {
        return;
    };
    let bad_restore = "-A -t 10.0.0.1:80 -s rr\n\
-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n\
-a -t 10.0.0.1:80 -r 10.0.0.300:80 -m -w 1\n";
    let (code, _, err) = d.adm_raw(&["-R"], bad_restore);
    assert_ne!(code, 0, "a restore with a bad line must fail");
    assert!(!err.is_empty());
    assert_eq!(
        d.adm(&["-L", "-n"]),
        before,
        "a failed restore must change nothing"
    );

    let cases: &[&[&str]] = &[
        &["-A", "-t", "192.168.47.128:80", "-s", "rr"], // duplicate service
        &["-A", "-t", "192.168.47.129:80", "-s", "nosuch"], // unknown scheduler
        &["-A", "-t", "192.168.47.300:80", "-s", "rr"], // bad address
        &["-A", "-t", "192.168.47.129:99999", "-s", "rr"], // bad port
        &["-A", "-u", "192.168.47.129:53", "-o"],       // one-packet scheduling: not yet
        &["-A", "-f", "1", "-s", "rr"],                 // firewall marks: refused for good
        &["-D", "-t", "192.168.47.129:80"],             // no such service
        &[
            "-a",
            "-t",
            "192.168.47.128:80",
            "-r",
            "192.168.211.129:80",
            "-m",
        ], // duplicate server
        &[
            "-a",
            "-t",
            "192.168.47.129:80",
            "-r",
            "192.168.211.129:80",
            "-m",
        ], // missing service
        &[
            "-a",
            "-t",
            "192.168.47.128:80",
            "-r",
            "192.168.211.131:80",
            "-m",
            "-w",
            "70000",
        ],
        &["-a", "-t", "192.168.47.128:80", "-r", "[fd00::1]:80", "-m"], // mixed families
        &["-d", "-t", "192.168.47.128:80", "-r", "192.168.211.131:80"], // no such server
        &["-A", "-t", "192.168.47.129:80", "-s", "rr", "--pe", "sip"], // persistence engines: not yet
        &["--bogus"],
    ];
    for args in cases {
        let (code, _, err) = d.adm_raw(args, "");
        assert_ne!(code, 0, "lvsadm {args:?} must fail");
        assert!(!err.trim().is_empty(), "lvsadm {args:?} must say why");
        assert_eq!(
            d.adm(&["-L", "-n"]),
            before,
            "lvsadm {args:?} changed the tables"
        );
    }
    let (_, _, err) = d.adm_raw(&["-A", "-f", "1", "-s", "rr"], "");
    assert!(err.contains("netfilter"), "the -f refusal says why: {err}");
    let (_, _, err) = d.adm_raw(&["-A", "-u", "192.168.47.129:53", "-o"], "");
    assert!(err.contains("-o"), "{err}");
}
