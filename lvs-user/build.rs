//! Builds the eBPF objects (lvs-ebpf, for bpfel-unknown-none with the nightly
//! toolchain and bpf-linker) and tells the crate where they are, so `lvs`
//! embeds them. Run `cargo xtask setup` first on a fresh machine. The cargo
//! command line is in `bpf_cargo.rs`, shared with `cargo xtask lint`.

mod bpf_cargo;

use std::{env, path::PathBuf};

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
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("bpf_cargo.rs").display()
    );
    let target_dir = bpf_cargo::target_dir(&root);
    let mut cmd = bpf_cargo::command(&root, "build");
    let status = cmd
        .status()
        .expect("running `rustup run nightly cargo` for lvs-ebpf (run `cargo xtask setup`)");
    if !status.success() {
        panic!("building lvs-ebpf failed (is the toolchain set up? run `cargo xtask setup`)");
    }
    let out = target_dir.join(bpf_cargo::TARGET).join("release");
    for (var, bin) in [
        ("LVS_EBPF_DIRECTOR", "lvs-ebpf"),
        ("LVS_EBPF_PASS", "lvs-pass"),
        ("LVS_EBPF_BENCH", "lvs-bench"),
        ("LVS_EBPF_DECAP", "lvs-decap"),
    ] {
        println!("cargo:rustc-env={var}={}", out.join(bin).display());
    }
}
