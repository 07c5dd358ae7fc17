//! Per-CPU counters: path counters and per-service/per-real traffic.

use lvs_common::{counters::Counters, Stats};

use crate::maps::{COUNTERS, REAL_STATS, SVC_STATS};

#[inline(always)]
pub fn count(idx: u32) {
    add(idx, 1);
}

#[inline(always)]
pub fn add(idx: u32, n: u64) {
    if let Some(c) = block() {
        bump(c, idx, n);
    }
}

/// This CPU's counter block, for a path that moves several counters.
#[inline(always)]
pub fn block() -> Option<*mut Counters> {
    COUNTERS.get_ptr_mut(0)
}

/// Adds `n` to counter `idx` of `block()`'s result.
#[inline(always)]
pub fn bump(c: *mut Counters, idx: u32, n: u64) {
    // SAFETY: this CPU's own block; the index is bounds-checked.
    if let Some(v) = unsafe { (*c).0.get_mut(idx as usize) } {
        *v += n;
    }
}

#[inline(always)]
fn add_traffic(s: Option<*mut Stats>, inbound: bool, bytes: u64, new_conn: bool) {
    if let Some(s) = s {
        // SAFETY: this CPU's own slot of a per-CPU array.
        let s = unsafe { &mut *s };
        if inbound {
            s.inpkts += 1;
            s.inbytes += bytes;
        } else {
            s.outpkts += 1;
            s.outbytes += bytes;
        }
        if new_conn {
            s.conns += 1;
        }
    }
}

/// Accounts one packet of a connection to its service and real server;
/// `inbound` is client -> real server.
#[inline(always)]
pub fn account(svc_id: u32, real: u32, inbound: bool, bytes: u64, new_conn: bool) {
    add_traffic(SVC_STATS.get_ptr_mut(svc_id), inbound, bytes, new_conn);
    add_traffic(REAL_STATS.get_ptr_mut(real), inbound, bytes, new_conn);
}
