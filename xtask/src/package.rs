//! `cargo xtask package`: the Debian package of lvs-xdp, built by
//! cargo-deb (installed by the set-up) from `[package.metadata.deb]` in
//! lvs-user/Cargo.toml: the release `lvs` and `lvsadm` in /usr/sbin, the
//! systemd units, `/etc/default/lvs-xdp` and the empty `/etc/lvs-xdp/rules`
//! (conffiles) and the maintainer scripts, all from `packaging/`.

use std::{path::PathBuf, process::Stdio};

use anyhow::{bail, Context, Result};

use crate::{build, cmd};

/// The environment variable through which `cargo xtask test` hands the
/// package to its test (`lvs-user/tests/it/package.rs`).
pub const DEB_ENV: &str = "LVS_DEB";

/// Builds the release binaries and the package; returns the `.deb`'s path.
pub fn run() -> Result<PathBuf> {
    build::run()?;
    let out = cmd::target_dir().join("debian");
    let mut deb = cmd::cargo();
    deb.current_dir(cmd::repo_root())
        .args(["deb", "--package", "lvs-user", "--no-build", "--output"])
        .arg(&out)
        .stdout(Stdio::piped());
    eprintln!("+ {}", cmd::show(&deb));
    let o = deb
        .spawn()
        .and_then(|c| c.wait_with_output())
        .context("running cargo deb (is cargo-deb installed? `cargo xtask setup`)")?;
    if !o.status.success() {
        bail!("cargo deb failed ({})", o.status);
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let path =
        deb_path(&stdout).with_context(|| format!("cargo deb printed no .deb path: {stdout:?}"))?;
    if !path.is_file() {
        bail!("cargo deb named {}, which does not exist", path.display());
    }
    Ok(path)
}

/// The package's path in cargo-deb's output: its last line ending in
/// `.deb`.
fn deb_path(stdout: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_path_is_cargo_debs_last_deb_line() {
        assert_eq!(
            deb_path("/w/target/debian/lvs-xdp_0.1.0-1_amd64.deb\n"),
            Some(PathBuf::from("/w/target/debian/lvs-xdp_0.1.0-1_amd64.deb"))
        );
        assert_eq!(
            deb_path("note: a.deb\n  /t/b.deb  \n(done)\n"),
            Some(PathBuf::from("/t/b.deb"))
        );
        assert_eq!(deb_path("warning: nothing\n"), None);
        assert_eq!(deb_path(""), None);
    }
}
