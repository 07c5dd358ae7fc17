//! `cargo xtask lint`: rustfmt and clippy over the workspace, lvs-ebpf
//! included with the nightly BPF invocation its build uses.

use anyhow::{bail, Result};

use crate::{cmd, setup};

pub fn run() -> Result<()> {
    setup::run(setup::Verbosity::Quiet)?;
    check()
}

/// The lints alone, for callers that ran the setup already.
pub fn check() -> Result<()> {
    let root = cmd::repo_root();
    let mut fmt = cmd::cargo();
    fmt.current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]);
    let mut host = cmd::cargo();
    host.current_dir(&root).args([
        "clippy",
        "--workspace",
        "--exclude",
        "lvs-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    let mut bpf = lvs_ebpf_build::command("clippy");
    bpf.args(["--", "-D", "warnings"]);
    // All three, so one run reports every kind of finding.
    let failed: Vec<&str> = [
        ("rustfmt", fmt),
        ("clippy", host),
        ("clippy (lvs-ebpf)", bpf),
    ]
    .into_iter()
    .filter_map(|(what, mut c)| match cmd::run(&mut c) {
        Ok(()) => None,
        Err(e) => {
            eprintln!("xtask lint: {e:#}");
            Some(what)
        }
    })
    .collect();
    if !failed.is_empty() {
        bail!("lint failed: {}", failed.join(", "));
    }
    eprintln!("xtask lint: ok");
    Ok(())
}
