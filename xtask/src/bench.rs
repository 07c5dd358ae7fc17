//! `cargo xtask bench [--quick]`: builds the release binaries (lvs, lvsadm
//! and the lvs-bench crate's `lvs-bench`, the eBPF objects with them) and
//! runs `lvs-bench`, which writes the report and the
//! plot to `bench-results/` (see the lvs-bench crate).

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::{build, cmd};

#[derive(clap::Args)]
pub struct Opts {
    /// The smaller version: fewer repeats and sizes, shorter runs (under
    /// two minutes).
    #[arg(long)]
    quick: bool,
    /// Sections to run, e.g. `--sections 1,3` (1 program cost, 2 scale,
    /// 3 live veth, 4 end-to-end wrk, 5 control plane, 6 connection sync
    /// beside forwarding) [default: all].
    #[arg(long, value_delimiter = ',')]
    sections: Option<Vec<u8>>,
    /// Where the report goes [default: bench-results/ at the repo root].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Take lvs, lvsadm and lvs-bench from DIR instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

pub fn run(opts: Opts) -> Result<()> {
    if !lvs_lab::is_root() {
        bail!("the benchmarks need root (network namespaces, XDP, bpffs)");
    }
    let dir = match &opts.bin_dir {
        Some(d) => std::fs::canonicalize(d).with_context(|| d.display().to_string())?,
        None => build::run_packages(&["lvs-user", "lvs-bench"])?.dir(),
    };
    let bench = dir.join("lvs-bench");
    if !bench.is_file() {
        bail!("{} does not exist", bench.display());
    }
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| cmd::repo_root().join("bench-results"));
    let mut c = Command::new(&bench);
    c.arg("--out").arg(&out).arg("--bin-dir").arg(&dir);
    if opts.quick {
        c.arg("--quick");
    }
    if let Some(s) = &opts.sections {
        let list: Vec<String> = s.iter().map(u8::to_string).collect();
        c.arg("--sections").arg(list.join(","));
    }
    // Ctrl-C reaches lvs-bench too, which stops and removes its labs; we
    // only wait for it rather than die first.
    lvs_lab::interrupt::install();
    cmd::run(&mut c)
}
