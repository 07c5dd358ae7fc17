//! The lvs-xdp data path, as a library: the production object (`main.rs`)
//! and the benchmark object (`bin/bench.rs`) both link it, so the bench
//! measures exactly the code that forwards.
//!
//! Read in order: `parse` (bounded views of the frame) → `svc` (is it a
//! service's?) → `flow` (a tracked connection: established path) →
//! `sched` (a new connection's real server) → `conntrack` (the tables,
//! states, counts) → `fwd` (NAT, DR, TUN rewrites) → `xmit` (next hop and
//! send) → `icmp` (errors of tracked flows, too-big) → `stats`.
//!
//! Each packet is a service's (forward direction), a reply from a NAT real
//! server (reverse direction), an ICMP error about a tracked connection,
//! or not ours (XDP_PASS, untouched).
// Built for bpfel-unknown-none by lvs-user's build script; on the host (a
// workspace-wide `cargo build`/`clippy`) it is empty.
#![cfg_attr(target_arch = "bpf", no_std, feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
// Map keys are passed by reference on purpose: by value they would be
// copied onto the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(target_arch = "bpf")]
mod atomic;
#[cfg(target_arch = "bpf")]
pub mod bounds;
#[cfg(target_arch = "bpf")]
mod clock;
#[cfg(target_arch = "bpf")]
mod conntrack;
#[cfg(target_arch = "bpf")]
mod director;
#[cfg(target_arch = "bpf")]
mod flow;
#[cfg(target_arch = "bpf")]
mod fwd;
#[cfg(target_arch = "bpf")]
pub mod gc;
#[cfg(target_arch = "bpf")]
mod icmp;
#[cfg(target_arch = "bpf")]
pub mod maps;
#[cfg(target_arch = "bpf")]
pub mod parse;
#[cfg(target_arch = "bpf")]
mod sched;
#[cfg(target_arch = "bpf")]
mod stats;
#[cfg(target_arch = "bpf")]
mod svc;
#[cfg(target_arch = "bpf")]
pub mod sweep;
#[cfg(target_arch = "bpf")]
pub mod sync;
#[cfg(target_arch = "bpf")]
mod verdict;
#[cfg(target_arch = "bpf")]
mod xmit;

#[cfg(target_arch = "bpf")]
pub use director::director;
