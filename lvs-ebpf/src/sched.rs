//! Choosing a real server for a new connection.
//!
//! rr and wrr are table driven: userspace precomputes IPVS's sequence (for
//! wrr, the gcd-stepped weighted round robin; quiesced servers left out) and
//! the program walks it with one shared atomic counter per service. That
//! keeps the choice O(1), identical on every CPU, and exactly IPVS's order.

use lvs_common::{sched, Real, Service, REAL_F_MEMBER};

use crate::maps::{REALS, SCHED_STATE, SCHED_TABLE};

/// A chosen real server: its index and a copy of its entry.
pub struct Pick {
    pub idx: u32,
    pub real: Real,
}

/// How many table slots to try when a slot names a server that was just
/// removed or quiesced (userspace rewrites the table right after).
const MAX_TRIES: u32 = 4;

#[inline(always)]
pub fn pick(svc: &Service) -> Option<Pick> {
    match svc.sched {
        sched::RR | sched::WRR => pick_sequence(svc),
        _ => None,
    }
}

#[inline(always)]
fn pick_sequence(svc: &Service) -> Option<Pick> {
    if svc.table_len == 0 {
        return None;
    }
    let start = crate::atomic::fetch_add(SCHED_STATE.get_ptr_mut(svc.id)?, 1);
    for i in 0..MAX_TRIES {
        let slot = ((start + i as u64) % svc.table_len as u64) as u32;
        let Some(&idx) = SCHED_TABLE.get(svc.table_off.wrapping_add(slot)) else {
            return None;
        };
        if let Some(real) = REALS.get(idx) {
            if real.flags & REAL_F_MEMBER != 0 && real.weight > 0 {
                return Some(Pick { idx, real: *real });
            }
        }
    }
    None
}
