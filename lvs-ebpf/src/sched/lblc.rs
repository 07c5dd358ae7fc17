//! lblc and lblcr: locality-based least connection (with replication), as
//! IPVS: each destination address keeps its server (lblc) or a small server
//! set (lblcr) while that server is not overloaded; otherwise the least
//! loaded member (wlc's rule) is chosen and remembered.

use core::ffi::c_void;

use lvs_common::{sched as codes, Lblc, LblcKey, Service, LBLCR_SET};

use super::{
    avail::{self, usable},
    scan,
};
use crate::{
    atomic,
    maps::{DESTS, LBLC},
};

/// Entries unused for this long are forgotten (IPVS: one day).
const EXPIRE_NS: u64 = 24 * 3600 * 1_000_000_000;

/// IPVS's overload rule of lblc/lblcr: a server with more active
/// connections than its weight is overloaded if some other member is at
/// less than half its weight.
#[inline(always)]
fn overloaded(svc: &Service, g: u32, idx: u32) -> bool {
    let Some((real, conns)) = usable(idx, g) else {
        return true;
    };
    if unsafe { atomic::load(&raw const (*conns).active) } <= real.weight as u64 {
        return false;
    }
    let mut probe = Probe {
        off: svc.dests_off,
        g,
        found: 0,
    };
    avail::each(
        svc.dests_len.min(avail::MAX_SCAN),
        half_loaded,
        &raw mut probe as *mut c_void,
    );
    probe.found != 0
}

struct Probe {
    off: u32,
    g: u32,
    found: u32,
}

/// Stops at a usable member below half its weight in active connections.
extern "C" fn half_loaded(i: u32, ctx: *mut c_void) -> i64 {
    let p = unsafe { &mut *(ctx as *mut Probe) };
    let Some(&other) = DESTS.get(p.off.wrapping_add(i)) else {
        return 1;
    };
    if let Some((r, c)) = usable(other, p.g) {
        if unsafe { atomic::load(&raw const (*c).active) } * 2 < r.weight as u64 {
            p.found = 1;
            return 1;
        }
    }
    0
}

#[inline(always)]
pub fn pick(svc: &Service, g: u32, dst: &[u32; 4], now: u64) -> Option<u32> {
    let key = LblcKey {
        dst: *dst,
        svc_id: svc.id,
    };
    let replicate = svc.sched == codes::LBLCR;
    if let Some(e) = LBLC.get_ptr_mut(&key) {
        // Shared: read as a copy, changed field by field. Two CPUs
        // changing one destination's set at once may lose one change, which
        // costs locality, never correctness (every member is checked).
        let en = atomic::load(e as *const Lblc);
        if now.wrapping_sub(en.last_used) <= EXPIRE_NS {
            atomic::store(unsafe { &raw mut (*e).last_used }, now);
            if !replicate {
                let idx = en.reals[0];
                if !overloaded(svc, g, idx) {
                    return Some(idx);
                }
                let idx = scan::scan(svc, g, codes::WLC)?;
                atomic::store(unsafe { &raw mut (*e).reals[0] }, idx);
                return Some(idx);
            }
            // lblcr: the least loaded usable member of the set; if none, or
            // it is overloaded, add the least loaded server of the service.
            let mut best = u32::MAX;
            let mut best_oh = 0u64;
            let mut best_w = 1u64;
            for i in 0..LBLCR_SET {
                if i as u32 >= en.len {
                    break;
                }
                let idx = en.reals[i];
                if let Some((r, c)) = usable(idx, g) {
                    let oh = unsafe {
                        atomic::load(&raw const (*c).active) * 256
                            + atomic::load(&raw const (*c).inactive)
                    };
                    let w = r.weight as u64;
                    if best == u32::MAX || best_oh * w > oh * best_w {
                        (best, best_oh, best_w) = (idx, oh, w);
                    }
                }
            }
            if best != u32::MAX && !overloaded(svc, g, best) {
                return Some(best);
            }
            let idx = scan::scan(svc, g, codes::WLC)?;
            let n = en.len as usize;
            if n < LBLCR_SET {
                let mut reals = en.reals;
                reals[n] = idx;
                atomic::store(unsafe { &raw mut (*e).reals }, reals);
                atomic::store(unsafe { &raw mut (*e).len }, en.len + 1);
            } else {
                // A full set replaces its first (oldest) member.
                let mut reals = en.reals;
                reals.rotate_left(1);
                reals[LBLCR_SET - 1] = idx;
                atomic::store(unsafe { &raw mut (*e).reals }, reals);
            }
            atomic::store(unsafe { &raw mut (*e).last_modified }, now);
            return Some(idx);
        }
    }
    let idx = scan::scan(svc, g, codes::WLC)?;
    let mut en = Lblc {
        reals: [u32::MAX; LBLCR_SET],
        len: 1,
        _pad: 0,
        last_used: now,
        last_modified: now,
    };
    en.reals[0] = idx;
    let _ = LBLC.insert(&key, &en, 0);
    Some(idx)
}
