//! Builds the benchmark's own eBPF object (lvs-ebpf's `lvs-ebpf-bench` bin:
//! the director's library code inside the restoring wrappers, the baselines
//! and the unit-cost programs) with lvs-ebpf-build, for `lvs-bench` to
//! embed as `LVS_EBPF_BENCH`.

fn main() {
    let objs = lvs_ebpf_build::build(&["lvs-ebpf-bench"]);
    println!("cargo:rustc-env=LVS_EBPF_BENCH={}", objs[0].display());
}
