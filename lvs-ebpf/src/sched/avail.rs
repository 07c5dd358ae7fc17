//! What every scheduler shares: whether a real server may take a new
//! connection, and the bounded member loop. A leaf: the scheduler families
//! import it, it imports none of them.

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_loop;
use lvs_common::{Real, RealConns, REAL_F_MEMBER};

use crate::maps::{REALS, REAL_CONNS};

/// Members a scan looks at; bounded for `bpf_loop`.
pub const MAX_SCAN: u32 = 1 << 16;
/// "No server found" in scan states.
pub const NONE: u32 = u32::MAX;

/// IPVS's availability of a server for new connections, including the
/// threshold overload flag (set at the upper threshold, cleared below the
/// lower one, or below 3/4 of the upper one when no lower is set).
#[inline(always)]
pub fn available(real: &Real, conns: *mut RealConns) -> bool {
    if real.flags & REAL_F_MEMBER == 0 || real.weight == 0 {
        return false;
    }
    let upper = real.u_threshold as u64;
    if upper == 0 {
        return true;
    }
    let c = unsafe { &mut *conns };
    let total = c.active + c.inactive;
    if c.overloaded == 0 {
        if total >= upper {
            c.overloaded = 1;
            return false;
        }
        return true;
    }
    let lower = if real.l_threshold > 0 {
        real.l_threshold as u64
    } else {
        upper * 3 / 4
    };
    if total >= lower {
        return false;
    }
    c.overloaded = 0;
    true
}

/// Availability of the real server at `idx`, with its counts.
#[inline(always)]
pub fn usable(idx: u32) -> Option<(&'static Real, *mut RealConns)> {
    let real = REALS.get(idx)?;
    let conns = REAL_CONNS.get_ptr_mut(idx)?;
    available(real, conns).then_some((real, conns))
}

/// Calls `f(i, ctx)` for i in 0..n until it returns non-zero. `bpf_loop`:
/// the verifier checks the body once, whatever the member count.
#[inline(always)]
pub fn each(n: u32, f: extern "C" fn(u32, *mut c_void) -> i64, ctx: *mut c_void) {
    unsafe { bpf_loop(n, f as *mut c_void, ctx, 0) };
}
