//! Builds the benchmark's own eBPF object (lvs-ebpf's `lvs-bench` bin: the
//! XDP_DROP and MAC-swap baselines) with lvs-ebpf-build, for `lvs-bench`
//! to embed as `LVS_EBPF_BENCH`.

fn main() {
    let objs = lvs_ebpf_build::build(&["lvs-bench"]);
    println!("cargo:rustc-env=LVS_EBPF_BENCH={}", objs[0].display());
}
