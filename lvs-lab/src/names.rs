//! Lab names embed the owning process's pid, so that leftovers of a process
//! that died without cleaning up can be told apart from labs still in use,
//! whichever test binary or thread they belong to.

use std::sync::atomic::{AtomicU32, Ordering};

const MARK: &str = "lvs";
const MAX_TAG: usize = 8;

/// A fresh prefix `lvs{tag}-{pid}x{n}`: unique per process (pid) and per lab
/// within it (n). The tag is squeezed to a few lowercase alphanumerics so
/// that parsing stays unambiguous and names stay short.
pub(crate) fn new_prefix(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(MAX_TAG)
        .collect();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{MARK}{tag}-{}x{n}", std::process::id())
}

/// Splits a lab-made name (`{prefix}` or `{prefix}-{role}`) into its prefix
/// and owner pid; `None` for anything the lab did not make.
pub(crate) fn parse(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix(MARK)?;
    let (tag, rest) = rest.split_once('-')?;
    if !tag
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return None;
    }
    let id = rest.split('-').next()?;
    let (pid, n) = id.split_once('x')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(pid) || !all_digits(n) {
        return None;
    }
    let prefix_len = MARK.len() + tag.len() + 1 + id.len();
    Some((&name[..prefix_len], pid.parse().ok()?))
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only probes for existence.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip() {
        let p = new_prefix("Seed-Lab_42!");
        assert!(p.starts_with("lvsseedlab4-"), "{p}");
        let (prefix, pid) = parse(&p).unwrap();
        assert_eq!(prefix, p);
        assert_eq!(pid, std::process::id());
        let ns = format!("{p}-client");
        assert_eq!(parse(&ns), Some((p.as_str(), std::process::id())));
        let role_with_dash = format!("{p}-rs-1");
        assert_eq!(parse(&role_with_dash).unwrap().0, p);
    }

    #[test]
    fn prefixes_are_unique() {
        assert_ne!(new_prefix("a"), new_prefix("a"));
        assert_eq!(new_prefix("").split_once('-').unwrap().0, "lvs");
    }

    #[test]
    fn foreign_names_are_ignored() {
        for name in [
            "lvs", "lvsx", "lvs-", "lvs-12", "lvs-12x", "lvsA-1x2", "foo-1x2", "lvs-ax1", "lvs-1y2",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
        assert_eq!(parse("lvs-7x0"), Some(("lvs-7x0", 7)));
    }

    #[test]
    fn liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }
}
