//! The cargo invocation for lvs-ebpf on the BPF target, in one place for
//! lvs-user's build script (`build`) and `cargo xtask lint` (`clippy`).
//! Both include this file by path: a build script cannot depend on a crate
//! of the workspace it builds.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// The target the eBPF objects are built for.
pub const TARGET: &str = "bpfel-unknown-none";

/// The BPF build's target directory, of its own: inside a build script the
/// outer cargo holds the lock on the workspace's.
pub fn target_dir(root: &Path) -> PathBuf {
    root.join("target").join("bpf")
}

/// `cargo SUBCOMMAND --release -p lvs-ebpf` with the nightly toolchain for
/// [`TARGET`], run in the workspace root `root`; append e.g.
/// `-- -D warnings` for clippy.
pub fn command(root: &Path, subcommand: &str) -> Command {
    // `rustup run` rather than `cargo +nightly`: inside a build script
    // `cargo` may resolve to the active toolchain's binary, not the proxy.
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root)
        .args([
            "run",
            "nightly",
            "cargo",
            subcommand,
            "--release",
            "-p",
            "lvs-ebpf",
        ])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir(root));
    // The outer cargo's settings are for the host; clear them so the inner
    // cargo picks the nightly toolchain and BPF codegen. v3 gives atomic
    // fetch-add (shared scheduler positions) and 32-bit jumps.
    for (k, _) in env::vars() {
        let outer = (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || matches!(k.as_str(), "RUSTUP_TOOLCHAIN" | "RUSTFLAGS" | "RUSTDOC");
        if outer {
            cmd.env_remove(k);
        }
    }
    // BTF (`--btf`, from debug info) lets the kernel accept callbacks
    // (bpf_loop); every function needs its func_info, including those of
    // the rebuilt `core`, hence debug info for all crates.
    cmd.env(
        "CARGO_ENCODED_RUSTFLAGS",
        ["-Ctarget-cpu=v3", "-Clink-arg=--btf"].join("\x1f"),
    )
    .env("CARGO_PROFILE_RELEASE_DEBUG", "2");
    cmd
}
