//! The release binaries. The build scripts of lvs-user and lvs-bench
//! compile the eBPF objects they embed (with nightly and bpf-linker), so
//! one cargo call does all.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::{cmd, setup};

pub struct Bins {
    pub lvs: PathBuf,
    pub lvsadm: PathBuf,
}

impl Bins {
    pub fn in_dir(dir: PathBuf) -> Result<Bins> {
        let bins = Bins {
            lvs: dir.join("lvs"),
            lvsadm: dir.join("lvsadm"),
        };
        for b in [&bins.lvs, &bins.lvsadm] {
            if !b.is_file() {
                bail!("{} does not exist", b.display());
            }
        }
        Ok(bins)
    }

    pub fn dir(&self) -> PathBuf {
        self.lvs.parent().map(PathBuf::from).unwrap_or_default()
    }
}

/// `lvs` and `lvsadm`.
pub fn run() -> Result<Bins> {
    run_packages(&["lvs-user"])
}

/// The release binaries of `packages` (which include lvs-user).
pub fn run_packages(packages: &[&str]) -> Result<Bins> {
    setup::run(setup::Verbosity::Quiet)?;
    let mut cargo = cmd::cargo();
    cargo
        .current_dir(cmd::repo_root())
        .args(["build", "--release"]);
    for p in packages {
        cargo.args(["-p", p]);
    }
    cmd::run(&mut cargo)?;
    Bins::in_dir(cmd::target_dir().join("release"))
}
