//! `cargo xtask fuzz --frames N [--seed S]`: the data-path fuzzer
//! (`lvs_lab::fuzz`, through the director and `lvs decap` with
//! BPF_PROG_TEST_RUN) for any number of frames. It runs the test that
//! `cargo xtask test` runs bounded (`lvs-user/tests/it/fuzz.rs`), in a
//! release build, with the count and seed it is given. Needs root.

use anyhow::{bail, Result};
use clap::Args;

use crate::{cmd, setup};

#[derive(Args)]
pub struct Opts {
    /// How many frames (each through the director and decap).
    #[arg(long, default_value_t = 1_000_000)]
    frames: u64,
    /// The generator's seed (default: drawn from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(opts: Opts) -> Result<()> {
    if !lvs_lab::is_root() {
        bail!("the fuzzer loads XDP programs in namespaces: run it as root");
    }
    setup::run(setup::Verbosity::Quiet)?;
    let mut cargo = cmd::cargo();
    cargo
        .current_dir(cmd::repo_root())
        .env("LVS_FUZZ_FRAMES", opts.frames.to_string())
        .args([
            "test",
            "--release",
            "-p",
            "lvs-user",
            "--test",
            "it",
            "fuzz::frames_meet_the_invariants",
            "--",
            "--exact",
            "--nocapture",
        ]);
    if let Some(s) = opts.seed {
        cargo.env("LVS_FUZZ_SEED", s.to_string());
    }
    cmd::run(&mut cargo)
}
