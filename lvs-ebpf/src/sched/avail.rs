//! What every scheduler shares: whether a real server may take a new
//! connection, and the bounded member loop. A leaf: the scheduler families
//! import it, it imports none of them.

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_loop;
use lvs_common::{threshold_rule, RealConns, RealView, REAL_F_MEMBER};

use crate::{
    atomic,
    maps::{REAL_CONNS, REAL_VIEWS},
};

/// Members a scan looks at; bounded for `bpf_loop`.
pub const MAX_SCAN: u32 = 1 << 16;
/// "No server found" in scan states.
pub const NONE: u32 = u32::MAX;

/// IPVS's availability of a server for new connections: a member with
/// weight > 0, within its connection thresholds (`lvs_common::
/// threshold_rule`, whose overload flag is kept in the shared counts), as
/// one generation's view of it has it.
#[inline(always)]
pub fn available(real: &RealView, conns: *mut RealConns) -> bool {
    if real.flags & REAL_F_MEMBER == 0 || real.weight == 0 {
        return false;
    }
    if real.u_threshold == 0 {
        return true;
    }
    // The counts are shared: read and the flag written field by field; a
    // lost race only delays the flag by one connection, as IPVS's unlocked
    // check does.
    let (active, inactive, flag) = unsafe {
        (
            atomic::load(&raw const (*conns).active),
            atomic::load(&raw const (*conns).inactive),
            atomic::load(&raw const (*conns).overloaded),
        )
    };
    let (ok, overloaded) = threshold_rule(
        active + inactive,
        flag != 0,
        real.u_threshold,
        real.l_threshold,
    );
    if overloaded != (flag != 0) {
        atomic::store(unsafe { &raw mut (*conns).overloaded }, overloaded as u64);
    }
    ok
}

/// Availability of the real server at `idx` in generation `g` (0 or 1),
/// with its view and counts.
#[inline(always)]
pub fn usable(idx: u32, g: u32) -> Option<(&'static RealView, *mut RealConns)> {
    let real = view(idx, g)?;
    let conns = REAL_CONNS.get_ptr_mut(idx)?;
    available(real, conns).then_some((real, conns))
}

/// Generation `g`'s view of the real server at `idx`.
#[inline(always)]
pub fn view(idx: u32, g: u32) -> Option<&'static RealView> {
    Some(REAL_VIEWS.get(idx)?.view(g as u64))
}

/// Calls `f(i, ctx)` for i in 0..n until it returns non-zero. `bpf_loop`:
/// the verifier checks the body once, whatever the member count.
#[inline(always)]
pub fn each(n: u32, f: extern "C" fn(u32, *mut c_void) -> i64, ctx: *mut c_void) {
    unsafe { bpf_loop(n, f as *mut c_void, ctx, 0) };
}
