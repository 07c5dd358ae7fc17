//! The lvs-xdp director: one XDP program attached to every link of the
//! director. Each packet is either a service's (forward direction), a reply
//! from a NAT real server (reverse direction), or not ours (XDP_PASS,
//! untouched).
// Built for bpfel-unknown-none by lvs-user's build script; on the host (a
// workspace-wide `cargo build`/`clippy`) it is an empty program.
#![cfg_attr(target_arch = "bpf", no_std, no_main, feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
// Map keys are passed by reference on purpose: by value they would be
// copied onto the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

// One module per concern: parsing, maps, conntrack, scheduling, NAT
// rewrite, transmit, counters; `director` holds the entry point and paths.
#[cfg(target_arch = "bpf")]
mod atomic;
#[cfg(target_arch = "bpf")]
mod bench;
#[cfg(target_arch = "bpf")]
mod conntrack;
#[cfg(target_arch = "bpf")]
mod director;
#[cfg(target_arch = "bpf")]
mod gc;
#[cfg(target_arch = "bpf")]
mod icmp;
#[cfg(target_arch = "bpf")]
mod icmp_fwd;
#[cfg(target_arch = "bpf")]
mod lblc;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod nat;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod persist;
#[cfg(target_arch = "bpf")]
mod sched;
#[cfg(target_arch = "bpf")]
mod stats;
#[cfg(target_arch = "bpf")]
mod tunnel;
#[cfg(target_arch = "bpf")]
mod verdict;
#[cfg(target_arch = "bpf")]
mod xmit;
