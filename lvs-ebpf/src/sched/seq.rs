//! rr and wrr: userspace precomputes IPVS's sequence (quiesced servers
//! left out); the program walks it with one shared atomic position per
//! service, so consecutive connections alternate whichever CPU they meet.

use core::ffi::c_void;

use lvs_common::Service;

use super::avail::{each, usable, NONE};
use crate::maps::{SCHED_STATE, SCHED_TABLE};

struct SeqWalk {
    off: u32,
    len: u32,
    g: u32,
    start: u64,
    found: u32,
}

extern "C" fn seq_step(i: u32, ctx: *mut c_void) -> i64 {
    let w = unsafe { &mut *(ctx as *mut SeqWalk) };
    // Checked here too: a division the compiler cannot prove safe brings
    // in a panic path, which the verifier refuses.
    if w.len == 0 {
        return 1;
    }
    let slot = ((w.start + i as u64) % w.len as u64) as u32;
    let Some(&idx) = SCHED_TABLE.get(w.off.wrapping_add(slot)) else {
        return 1;
    };
    if usable(idx, w.g).is_some() {
        w.found = idx;
        return 1;
    }
    0
}

/// rr/wrr: the next slot of the sequence whose server is usable.
#[inline(always)]
pub fn sequence(svc: &Service, g: u32) -> Option<u32> {
    if svc.table_len == 0 {
        return None;
    }
    let start = crate::atomic::fetch_add(SCHED_STATE.get_ptr_mut(svc.id)?, 1);
    let mut w = SeqWalk {
        off: svc.table_off,
        len: svc.table_len,
        g,
        start,
        found: NONE,
    };
    each(svc.table_len, seq_step, &raw mut w as *mut c_void);
    (w.found != NONE).then_some(w.found)
}
