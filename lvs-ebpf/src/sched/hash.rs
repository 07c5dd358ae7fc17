//! dh, sh and mh: tables built in userspace (256 buckets; Maglev), indexed
//! by a flow hash.

use lvs_common::{hash, sched, Service, TABLE_EMPTY};

use super::avail::usable;
use crate::maps::SCHED_TABLE;

/// dh/sh/mh: the bucket of the flow hash; with fallback, further buckets
/// (sh: the following ones, as IPVS; mh: rehashed with other seeds).
#[inline(always)]
pub fn hashed(svc: &Service, g: u32, addr: &[u32; 4], port: u16, fallback: bool) -> Option<u32> {
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
        if idx != TABLE_EMPTY && usable(idx, g).is_some() {
            return Some(idx);
        }
    }
    None
}
