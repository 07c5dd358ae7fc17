//! Per-CPU counters: path counters and per-service/per-real traffic.

use lvs_common::Stats;

use crate::maps::{COUNTERS, REAL_STATS, SVC_STATS};

#[inline(always)]
pub fn count(idx: u32) {
    add(idx, 1);
}

#[inline(always)]
pub fn add(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        unsafe { *p += n };
    }
}

#[inline(always)]
fn add_traffic(s: Option<*mut Stats>, inbound: bool, bytes: u64, new_conn: bool) {
    if let Some(s) = s {
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
