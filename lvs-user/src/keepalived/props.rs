//! Property test of the keepalived.conf parser: the good fixture files,
//! mutated (characters and words deleted, inserted, replaced; lines
//! doubled, swapped, cut), never make it panic; what it refuses names a
//! line of the file; what it accepts holds the invariants the checker
//! relies on.

use std::path::PathBuf;

use proptest::prelude::*;

use super::parse_str;

const FILES: &[&str] = &[
    include_str!("../../tests/it/kaconf/good/lab.conf"),
    include_str!("../../tests/it/kaconf/good/virtual_server.conf"),
    include_str!("../../tests/it/kaconf/good/checkers.conf"),
    include_str!("../../tests/it/kaconf/good/ipv6_tun.conf"),
    include_str!("../../tests/it/kaconf/good/skipped.conf"),
];

/// Words worth dropping in: the syntax's own characters and keywords, and
/// values at and beyond their limits.
const WORDS: &[&str] = &[
    "{",
    "}",
    "{ }",
    "\"",
    "'",
    "\\",
    "#",
    "!",
    "\n",
    " ",
    "include",
    "include *",
    "virtual_server",
    "real_server",
    "TCP_CHECK {",
    "url {",
    "weight",
    "-1",
    "0",
    "65535",
    "65536",
    "99999999999999999999",
    "1.5",
    ".",
    "10.0.0.1",
    "fd00::1",
    "NAT",
    "DR",
    "TUN",
    "rr",
    "yes",
    "\u{0}",
    "é",
    "\"\\x",
    "\"\\777\"",
    "@x",
    "$X=1",
    "persistence_timeout",
    "sorry_server",
    "quorum 9",
    "inhibit_on_failure",
    "alpha",
    "misc_dynamic",
];

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Replace(usize, usize, &'static str),
    DoubleLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let word = proptest::sample::select(WORDS);
    prop_oneof![
        (any::<usize>(), 1..12usize).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), word.clone()).prop_map(|(a, w)| Mutation::Insert(a, w)),
        (any::<usize>(), 1..8usize, word).prop_map(|(a, n, w)| Mutation::Replace(a, n, w)),
        any::<usize>().prop_map(Mutation::DoubleLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// The char index nearest `i` (mod the length) that starts a char.
fn at(s: &str, i: usize) -> usize {
    if s.is_empty() {
        return 0;
    }
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut s = text.to_string();
    match *m {
        Mutation::Delete(a, n) => {
            let a = at(&s, a);
            let b = at(&s, (a + n).min(s.len()));
            if b > a {
                s.replace_range(a..b, "");
            }
        }
        Mutation::Insert(a, w) => {
            let a = at(&s, a);
            s.insert_str(a, w);
        }
        Mutation::Replace(a, n, w) => {
            let a = at(&s, a);
            let b = at(&s, (a + n).min(s.len())).max(a);
            s.replace_range(a..b, w);
        }
        Mutation::DoubleLine(i) | Mutation::SwapLines(i, _) | Mutation::Truncate(i)
            if s.lines().count() == 0 =>
        {
            let _ = i;
        }
        Mutation::DoubleLine(i) => {
            let mut lines: Vec<&str> = s.lines().collect();
            let i = i % lines.len();
            lines.insert(i, lines[i]);
            s = lines.join("\n");
        }
        Mutation::SwapLines(i, j) => {
            let mut lines: Vec<&str> = s.lines().collect();
            let n = lines.len();
            lines.swap(i % n, j % n);
            s = lines.join("\n");
        }
        Mutation::Truncate(i) => {
            let a = at(&s, i);
            s.truncate(a);
        }
    }
    s
}

/// An empty directory to parse in, so that a mutated `include` finds
/// nothing (and reads nothing of the machine's); one name for every run,
/// so that none is left per run.
fn empty_dir() -> PathBuf {
    let d = std::env::temp_dir().join("lvs-kaprops-empty");
    std::fs::create_dir_all(&d).unwrap();
    d
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_files_never_panic_and_errors_name_a_line(
        file in proptest::sample::select(FILES),
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut text = file.to_string();
        for m in &muts {
            text = apply(&text, m);
        }
        let name = empty_dir().join("k.conf");
        match parse_str(&text, &name) {
            Ok(cfg) => {
                for vs in &cfg.virtual_servers {
                    prop_assert!(!vs.real_servers.is_empty());
                    prop_assert!(vs.key.port != 0 || vs.persistence.is_some());
                    let total: u64 = vs.real_servers.iter().map(|r| u64::from(r.weight)).sum();
                    prop_assert!(u64::from(vs.quorum) <= total && vs.hysteresis < vs.quorum);
                    for rs in &vs.real_servers {
                        prop_assert!(rs.weight <= 65_535);
                        prop_assert!(rs.origin.line >= 1);
                        for c in &rs.checkers {
                            prop_assert!(!c.connect_timeout.is_zero() && !c.delay_loop.is_zero());
                        }
                    }
                }
            }
            // A mutation can turn a quoted absolute path (`script "/bin/true"`)
            // into an `include` of it: then the error may be that file's,
            // and names it and its line instead.
            Err(e) if e.file != name => {
                prop_assert!(e.file.is_absolute() && e.line >= 1, "{e}");
                let want = format!("{}:{}: ", e.file.display(), e.line);
                prop_assert!(e.to_string().starts_with(&want), "{}", e);
                prop_assert!(!e.msg.is_empty());
            }
            Err(e) => {
                let lines = text.split('\n').count() as u32;
                prop_assert!(e.line >= 1 && e.line <= lines, "{e} in {lines} lines:\n{text}");
                let want = format!("{}:{}: ", name.display(), e.line);
                prop_assert!(e.to_string().starts_with(&want), "{}", e);
                prop_assert!(!e.msg.is_empty());
            }
        }
    }
}
