//! lc, wlc, sed, nq, fo, ovf and twos: scans of the members' shared
//! active/inactive counts in `bpf_loop`, so the verifier checks the body
//! once whatever the member count.

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_get_prandom_u32;
use lvs_common::{sched, Service};

use super::avail::{each, usable, MAX_SCAN, NONE};
use crate::{atomic, maps::DESTS};

/// State of a member scan.
pub struct Scan {
    pub off: u32,
    /// The generation (0 or 1) whose member views count.
    pub g: u32,
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
    let Some((real, conns)) = usable(idx, s.g) else {
        return 0;
    };
    let (active, inactive) = unsafe {
        (
            atomic::load(&raw const (*conns).active),
            atomic::load(&raw const (*conns).inactive),
        )
    };
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
pub fn scan(svc: &Service, g: u32, sched: u8) -> Option<u32> {
    let mut s = Scan {
        off: svc.dests_off,
        g,
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
    g: u32,
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
    let Some((real, conns)) = usable(idx, t.g) else {
        return 0;
    };
    let w = real.weight as u64;
    if t.pass == 0 {
        t.total += w;
        return 0;
    }
    let oh = unsafe {
        atomic::load(&raw const (*conns).active) * 256 + atomic::load(&raw const (*conns).inactive)
    };
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
pub fn twos(svc: &Service, g: u32) -> Option<u32> {
    let mut t = Twos {
        off: svc.dests_off,
        g,
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
