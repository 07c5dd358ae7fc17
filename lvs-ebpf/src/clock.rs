//! The data path's clock for connection, template and next-hop times:
//! CLOCK_MONOTONIC in nanoseconds, as userspace reads it (the sweeper,
//! `lvsadm -L -c`), at the coarse resolution of one tick. Timeouts are
//! whole seconds and last-seen times are refreshed once a second, so a
//! tick's resolution costs nothing, and the coarse read is about half the
//! price of `bpf_ktime_get_ns`. (The flow cache's own ageing uses
//! `bpf_jiffies64`, which the verifier inlines.)

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;

/// Now, in the unit connection, template and next-hop times are kept in.
#[inline(always)]
pub fn now() -> u64 {
    unsafe { bpf_ktime_get_coarse_ns() }
}
