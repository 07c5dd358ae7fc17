//! The data path's clock.

use aya_ebpf::helpers::bpf_ktime_get_ns;

/// Now, in the unit connection, template and next-hop times are kept in.
#[inline(always)]
pub fn now() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}
