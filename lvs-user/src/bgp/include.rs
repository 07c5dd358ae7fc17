//! The file of VIP routes the operator's `bird.conf` includes: two static
//! protocols (`lvs_vips4`, `lvs_vips6`; a static protocol has one channel)
//! with a blackhole route per announced VIP. Their BGP protocols export
//! `where proto = "lvs_vips4"` (and 6); the routes never need to reach the
//! director's own kernel table. Both protocols are always written, empty
//! when nothing is announced, so the operator's filters name protocols
//! that exist.

use std::{
    collections::BTreeSet,
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// The static protocol of IPv4 VIP routes.
pub const PROTO4: &str = "lvs_vips4";
/// The static protocol of IPv6 VIP routes.
pub const PROTO6: &str = "lvs_vips6";

/// The include's text for `vips` (sorted, so equal sets write equal files).
pub fn render(vips: &BTreeSet<IpAddr>) -> String {
    let mut out = String::from(
        "# Written by `lvs load --bgp bird`: the VIPs this director announces.\n\
         # Rewritten whenever they change; do not edit.\n",
    );
    for (proto, channel, v6) in [(PROTO4, "ipv4", false), (PROTO6, "ipv6", true)] {
        out.push_str(&format!("protocol static {proto} {{\n\t{channel};\n"));
        for vip in vips.iter().filter(|a| a.is_ipv6() == v6) {
            let len = if v6 { 128 } else { 32 };
            out.push_str(&format!("\troute {vip}/{len} blackhole;\n"));
        }
        out.push_str("}\n");
    }
    out
}

/// Refuses an include path lvs could not write: its directory must exist
/// and the path must not be a directory.
pub fn check(path: &Path) -> Result<()> {
    let dir = parent(path);
    if !dir.is_dir() {
        bail!(
            "--bird-include {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("--bird-include {} is a directory", path.display());
    }
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Replaces `path` with `text` atomically (a temporary file in the same
/// directory, synced, renamed over it): BIRD reading it at any moment,
/// at a reconfigure or a restart, sees the old file or the new one.
pub fn write(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = parent(path).join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_families_sorted() {
        let vips: BTreeSet<IpAddr> = ["192.168.52.2", "2001:db8:52::1", "192.168.52.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let text = render(&vips);
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "protocol static lvs_vips4 {",
                "\tipv4;",
                "\troute 192.168.52.1/32 blackhole;",
                "\troute 192.168.52.2/32 blackhole;",
                "}",
                "protocol static lvs_vips6 {",
                "\tipv6;",
                "\troute 2001:db8:52::1/128 blackhole;",
                "}",
            ]
        );
    }

    #[test]
    fn nothing_announced_keeps_both_protocols() {
        let text = render(&BTreeSet::new());
        assert!(text.contains("protocol static lvs_vips4 {\n\tipv4;\n}\n"));
        assert!(text.contains("protocol static lvs_vips6 {\n\tipv6;\n}\n"));
        assert!(!text.contains("route"));
    }

    #[test]
    fn writes_replace_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("lvs-bgp-include-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("vips.conf");
        check(&f).unwrap();
        write(&f, "one\n").unwrap();
        write(&f, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("vips.conf")]);
        assert!(check(&dir)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
        assert!(check(&dir.join("no/such/vips.conf"))
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
