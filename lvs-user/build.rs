//! Builds the eBPF objects `lvs` embeds (the director, the pass-through
//! program, the decapsulator and the flood generator; see lvs-ebpf-build) and tells the crate
//! where they are. Run `cargo xtask setup` first on a fresh machine.

fn main() {
    let vars = [
        "LVS_EBPF_DIRECTOR",
        "LVS_EBPF_PASS",
        "LVS_EBPF_DECAP",
        "LVS_EBPF_FLOOD",
    ];
    let objs = lvs_ebpf_build::build(&["lvs-ebpf", "lvs-pass", "lvs-decap", "lvs-flood"]);
    for (var, path) in vars.iter().zip(objs) {
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
