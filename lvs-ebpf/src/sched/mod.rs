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
//!
//! Everything here reads one generation `g` (0 or 1, see `svc.rs`): the
//! service's copy passed in, its regions, and the members' views in
//! `REAL_VIEWS`.

mod avail;
mod hash;
mod lblc;
mod persist;
mod scan;
mod seq;

use lvs_common::{
    sched, Real, Service, MH_FALLBACK, MH_PORT, SH_FALLBACK, SH_PORT, SVC_F_PERSISTENT,
};

use crate::{maps::REALS, parse::Packet};

/// A chosen real server: its index and a copy of its entry.
pub struct Pick {
    pub idx: u32,
    pub real: Real,
}

#[inline(always)]
pub fn pick(svc: &Service, g: u32, p: &Packet, now: u64) -> Option<Pick> {
    let persistent = svc.flags & SVC_F_PERSISTENT != 0;
    if persistent {
        if let Some(idx) = persist::lookup(svc, g, p, now) {
            return with_real(idx, g);
        }
    }
    let idx = match svc.sched {
        sched::RR | sched::WRR => seq::sequence(svc, g),
        sched::DH => hash::hashed(svc, g, &p.key.dst, 0, false),
        sched::SH => {
            let port = if svc.flags & SH_PORT != 0 {
                p.key.sport
            } else {
                0
            };
            hash::hashed(svc, g, &p.key.src, port, svc.flags & SH_FALLBACK != 0)
        }
        sched::MH => {
            let port = if svc.flags & MH_PORT != 0 {
                p.key.sport
            } else {
                0
            };
            hash::hashed(svc, g, &p.key.src, port, svc.flags & MH_FALLBACK != 0)
        }
        sched::TWOS => scan::twos(svc, g),
        sched::LBLC | sched::LBLCR => lblc::pick(svc, g, &p.key.dst, now),
        s => scan::scan(svc, g, s),
    }?;
    if persistent {
        persist::save(svc, p, idx, now);
    }
    with_real(idx, g)
}

/// The chosen server's entry, forwarded by the method of generation `g`
/// (an edit of the method lands with the rest of its change).
#[inline(always)]
fn with_real(idx: u32, g: u32) -> Option<Pick> {
    let mut real = *REALS.get(idx)?;
    real.method = avail::view(idx, g)?.method;
    Some(Pick { idx, real })
}
