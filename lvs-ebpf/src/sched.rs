//! Choosing a real server for a new connection, with IPVS's semantics.
//!
//! - rr, wrr: userspace precomputes IPVS's sequence (quiesced servers left
//!   out) and the program walks it with one shared atomic position per
//!   service: O(1), the same on every CPU, exactly IPVS's order.
//! - lc, wlc, sed, nq, fo, ovf, twos: a scan of the members' shared
//!   active/inactive counts (`bpf_loop`, so the verifier checks the body
//!   once whatever the member count).
//! - dh, sh, mh: tables built in userspace (256 buckets; Maglev), indexed by
//!   a flow hash; sh/mh fallback probes further.
//! - lblc, lblcr: a destination-address table in `LBLC` (see `lblc.rs`).
//!
//! Every candidate must be available: a member, weight > 0, and not over
//! its connection thresholds (`-x`/`-y`, with IPVS's hysteresis).

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_loop};
use lvs_common::{
    hash, sched, Real, RealConns, Service, MH_FALLBACK, MH_PORT, REAL_F_MEMBER, SH_FALLBACK,
    SH_PORT, SVC_F_PERSISTENT, TABLE_EMPTY,
};

use crate::{
    lblc,
    maps::{DESTS, REALS, REAL_CONNS, SCHED_STATE, SCHED_TABLE},
    parse::Packet,
    persist,
};

/// A chosen real server: its index and a copy of its entry.
pub struct Pick {
    pub idx: u32,
    pub real: Real,
}

/// Members a scan looks at; bounded for `bpf_loop`.
pub const MAX_SCAN: u32 = 1 << 16;
const NONE: u32 = u32::MAX;

#[inline(always)]
pub fn pick(svc: &Service, p: &Packet, now: u64) -> Option<Pick> {
    let persistent = svc.flags & SVC_F_PERSISTENT != 0;
    if persistent {
        if let Some(idx) = persist::lookup(svc, p, now) {
            return with_real(idx);
        }
    }
    let idx = match svc.sched {
        sched::RR | sched::WRR => sequence(svc),
        sched::DH => hashed(svc, &p.dst, 0, false),
        sched::SH => {
            let port = if svc.flags & SH_PORT != 0 { p.sport } else { 0 };
            hashed(svc, &p.src, port, svc.flags & SH_FALLBACK != 0)
        }
        sched::MH => {
            let port = if svc.flags & MH_PORT != 0 { p.sport } else { 0 };
            hashed(svc, &p.src, port, svc.flags & MH_FALLBACK != 0)
        }
        sched::TWOS => twos(svc),
        sched::LBLC | sched::LBLCR => lblc::pick(svc, &p.dst, now),
        s => scan(svc, s),
    }?;
    if persistent {
        persist::save(svc, p, idx, now);
    }
    with_real(idx)
}

#[inline(always)]
fn with_real(idx: u32) -> Option<Pick> {
    let real = REALS.get(idx)?;
    Some(Pick { idx, real: *real })
}

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

struct SeqWalk {
    off: u32,
    len: u32,
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
    if usable(idx).is_some() {
        w.found = idx;
        return 1;
    }
    0
}

/// rr/wrr: the next slot of the sequence whose server is usable.
#[inline(always)]
fn sequence(svc: &Service) -> Option<u32> {
    if svc.table_len == 0 {
        return None;
    }
    let start = crate::atomic::fetch_add(SCHED_STATE.get_ptr_mut(svc.id)?, 1);
    let mut w = SeqWalk {
        off: svc.table_off,
        len: svc.table_len,
        start,
        found: NONE,
    };
    each(svc.table_len, seq_step, &raw mut w as *mut c_void);
    (w.found != NONE).then_some(w.found)
}

/// Calls `f(i, ctx)` for i in 0..n until it returns non-zero. `bpf_loop`:
/// the verifier checks the body once, whatever the member count.
#[inline(always)]
pub fn each(n: u32, f: extern "C" fn(u32, *mut c_void) -> i64, ctx: *mut c_void) {
    unsafe { bpf_loop(n, f as *mut c_void, ctx, 0) };
}

/// dh/sh/mh: the bucket of the flow hash; with fallback, further buckets
/// (sh: the following ones, as IPVS; mh: rehashed with other seeds).
#[inline(always)]
fn hashed(svc: &Service, addr: &[u32; 4], port: u16, fallback: bool) -> Option<u32> {
    let len = svc.table_len;
    if len == 0 {
        return None;
    }
    let tries = if fallback { 16 } else { 1 };
    let base = hash::flow(addr, port, 0);
    for t in 0..tries {
        let slot = if svc.sched == sched::MH && t > 0 {
            hash::flow(addr, port, t) % len
        } else {
            base.wrapping_add(t) % len
        };
        let &idx = SCHED_TABLE.get(svc.table_off.wrapping_add(slot))?;
        if idx != TABLE_EMPTY && usable(idx).is_some() {
            return Some(idx);
        }
    }
    None
}

/// State of a member scan.
pub struct Scan {
    pub off: u32,
    pub sched: u8,
    pub best: u32,
    /// The best one's overhead and weight.
    pub best_oh: u64,
    pub best_w: u64,
}

/// One member of a least-connection family scan. Overheads as IPVS:
/// lc/wlc/lblc `active * 256 + inactive`; sed/nq `active + 1`.
extern "C" fn scan_step(i: u32, ctx: *mut c_void) -> i64 {
    let s = unsafe { &mut *(ctx as *mut Scan) };
    let Some(&idx) = DESTS.get(s.off.wrapping_add(i)) else {
        return 1;
    };
    let Some((real, conns)) = usable(idx) else {
        return 0;
    };
    let (active, inactive) = unsafe { ((*conns).active, (*conns).inactive) };
    let w = real.weight as u64;
    let first = s.best == NONE;
    let (oh, better) = match s.sched {
        sched::LC => {
            let oh = active * 256 + inactive;
            (oh, first || oh < s.best_oh)
        }
        sched::SED | sched::NQ => {
            if s.sched == sched::NQ && active == 0 {
                // nq: an idle server is taken at once.
                s.best = idx;
                return 1;
            }
            let oh = active + 1;
            (oh, first || s.best_oh * w > oh * s.best_w)
        }
        sched::FO => (0, first || w > s.best_w),
        sched::OVF => {
            if active > w {
                return 0;
            }
            (0, first || w > s.best_w)
        }
        // wlc, and the least-loaded pick of lblc/lblcr.
        _ => {
            let oh = active * 256 + inactive;
            (oh, first || s.best_oh * w > oh * s.best_w)
        }
    };
    if better {
        s.best = idx;
        s.best_oh = oh;
        s.best_w = w;
    }
    0
}

/// The best member of `svc` by `sched`'s rule.
#[inline(always)]
pub fn scan(svc: &Service, sched: u8) -> Option<u32> {
    let mut s = Scan {
        off: svc.dests_off,
        sched,
        best: NONE,
        best_oh: 0,
        best_w: 0,
    };
    each(
        svc.dests_len.min(MAX_SCAN),
        scan_step,
        &raw mut s as *mut c_void,
    );
    (s.best != NONE).then_some(s.best)
}

/// twos: two servers drawn at random in proportion to their weights; the
/// less loaded (overhead / weight) wins.
struct Twos {
    off: u32,
    pass: u32,
    total: u64,
    r1: i64,
    r2: i64,
    c1: u32,
    c2: u32,
    oh1: u64,
    oh2: u64,
    w1: u64,
    w2: u64,
}

/// One member of a twos pass.
extern "C" fn twos_step(i: u32, ctx: *mut c_void) -> i64 {
    let t = unsafe { &mut *(ctx as *mut Twos) };
    let Some(&idx) = DESTS.get(t.off.wrapping_add(i)) else {
        return 1;
    };
    let Some((real, conns)) = usable(idx) else {
        return 0;
    };
    let w = real.weight as u64;
    if t.pass == 0 {
        t.total += w;
        return 0;
    }
    let oh = unsafe { (*conns).active * 256 + (*conns).inactive };
    t.r1 -= w as i64;
    t.r2 -= w as i64;
    if t.r1 < 0 && t.c1 == NONE {
        (t.c1, t.oh1, t.w1) = (idx, oh, w);
    }
    if t.r2 < 0 && t.c2 == NONE {
        (t.c2, t.oh2, t.w2) = (idx, oh, w);
    }
    (t.c1 != NONE && t.c2 != NONE) as i64
}

#[inline(always)]
fn twos(svc: &Service) -> Option<u32> {
    let mut t = Twos {
        off: svc.dests_off,
        pass: 0,
        total: 0,
        r1: 0,
        r2: 0,
        c1: NONE,
        c2: NONE,
        oh1: 0,
        oh2: 0,
        w1: 0,
        w2: 0,
    };
    each(
        svc.dests_len.min(MAX_SCAN),
        twos_step,
        &raw mut t as *mut c_void,
    );
    // A local copy: `t` escapes to the helper calls, so the compiler could
    // not prove the divisor non-zero, and a panic path fails verification.
    let total = t.total;
    if total == 0 {
        return None;
    }
    t.pass = 1;
    t.r1 = (unsafe { bpf_get_prandom_u32() } as u64 % total) as i64;
    t.r2 = (unsafe { bpf_get_prandom_u32() } as u64 % total) as i64;
    each(
        svc.dests_len.min(MAX_SCAN),
        twos_step,
        &raw mut t as *mut c_void,
    );
    if t.c1 == NONE {
        return None;
    }
    if t.c2 != NONE && t.oh1 * t.w2 > t.oh2 * t.w1 {
        return Some(t.c2);
    }
    Some(t.c1)
}
