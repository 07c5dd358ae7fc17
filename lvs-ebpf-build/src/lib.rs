//! The one implementation of "build lvs-ebpf's programs" for the build
//! scripts that embed them (lvs-user: director, pass, decap; lvs-bench:
//! the benchmark object) and of the cargo command line for lvs-ebpf that
//! `cargo xtask lint` also runs (clippy). Each calls [`build`] with the bins it embeds and turns
//! the paths into `cargo:rustc-env` lines.
//!
//! The objects are built for bpfel-unknown-none with the nightly toolchain
//! and bpf-linker (`cargo xtask setup` installs them) by a cargo of their
//! own, in `target/bpf`. Two build scripts running at once share that
//! directory; cargo's lock on it makes the second wait and then find its
//! bins already built.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// The workspace root: this crate sits directly below it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lvs-ebpf-build sits in the workspace")
        .to_path_buf()
}

/// The target the eBPF objects are built for.
pub const TARGET: &str = "bpfel-unknown-none";

/// The BPF build's target directory, of its own: inside a build script the
/// outer cargo holds the lock on the workspace's.
pub fn target_dir() -> PathBuf {
    root().join("target").join("bpf")
}

/// `cargo SUBCOMMAND --release -p lvs-ebpf` with the nightly toolchain for
/// [`TARGET`], run in the workspace root: `build` for the build scripts,
/// `clippy` for `cargo xtask lint` (append `-- -D warnings`).
pub fn command(subcommand: &str) -> Command {
    let root = root();
    // `rustup run` rather than `cargo +nightly`: inside a build script
    // `cargo` may resolve to the active toolchain's binary, not the proxy.
    let mut cmd = Command::new("rustup");
    cmd.current_dir(&root)
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
        .arg(target_dir());
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

/// Builds `bins` of lvs-ebpf (release) and returns the path of each object,
/// in order. Prints the `cargo:rerun-if-changed` lines for the eBPF sources,
/// so the calling build script reruns when they change. Panics (failing the
/// build) when the inner build fails.
pub fn build(bins: &[&str]) -> Vec<PathBuf> {
    let root = root();
    for dir in ["lvs-ebpf/src", "lvs-common/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for file in ["lvs-ebpf/Cargo.toml", "lvs-ebpf-build/src/lib.rs"] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let mut cmd = command("build");
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    let status = cmd
        .status()
        .expect("running `rustup run nightly cargo` for lvs-ebpf (run `cargo xtask setup`)");
    if !status.success() {
        panic!("building lvs-ebpf failed (is the toolchain set up? run `cargo xtask setup`)");
    }
    let out = target_dir().join(TARGET).join("release");
    bins.iter().map(|b| out.join(b)).collect()
}
