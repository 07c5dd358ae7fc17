//! Builds the eBPF objects (lvs-ebpf, for bpfel-unknown-none with the nightly
//! toolchain and bpf-linker) and tells the crate where they are, so `lvs`
//! embeds them. Run `cargo xtask setup` first on a fresh machine.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let ebpf = root.join("lvs-ebpf");
    for dir in ["lvs-ebpf/src", "lvs-common/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        ebpf.join("Cargo.toml").display()
    );
    // A target dir of its own: the outer cargo holds the lock on ours.
    let target_dir = root.join("target").join("bpf");
    // `rustup run` rather than `cargo +nightly`: inside a build script
    // `cargo` may resolve to the active toolchain's binary, not the proxy.
    let mut cmd = Command::new("rustup");
    cmd.current_dir(&root)
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--release",
            "-p",
            "lvs-ebpf",
        ])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings are for the host; clear them so the inner
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
    let status = cmd
        .status()
        .expect("running `rustup run nightly cargo` for lvs-ebpf (run `cargo xtask setup`)");
    if !status.success() {
        panic!("building lvs-ebpf failed (is the toolchain set up? run `cargo xtask setup`)");
    }
    let out = target_dir.join("bpfel-unknown-none").join("release");
    for (var, bin) in [
        ("LVS_EBPF_DIRECTOR", "lvs-ebpf"),
        ("LVS_EBPF_PASS", "lvs-pass"),
        ("LVS_EBPF_BENCH", "lvs-bench"),
        ("LVS_EBPF_DECAP", "lvs-decap"),
    ] {
        println!("cargo:rustc-env={var}={}", out.join(bin).display());
    }
}
