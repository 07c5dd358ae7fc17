//! The release binaries. lvs-user's build script compiles the eBPF object
//! (with nightly and bpf-linker) and embeds it, so one cargo call does all.

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

pub fn run() -> Result<Bins> {
    setup::run(setup::Verbosity::Quiet)?;
    cmd::run(cmd::cargo().current_dir(cmd::repo_root()).args([
        "build",
        "--release",
        "-p",
        "lvs-user",
    ]))?;
    Bins::in_dir(cmd::target_dir().join("release"))
}
