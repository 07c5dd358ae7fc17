//! Persistence (`-p TIMEOUT`, `-M NETMASK`): a client network sticks to
//! one real server across connections. Templates live in `PERSIST`, keyed
//! by the masked client address; a template is good for the service's
//! timeout after its last use, and `lvs`'s sweeper keeps it in use while
//! any of its connections lives (IPVS's controlled connections).

use lvs_common::{Persist, PersistKey, Service, REAL_F_IN_USE, REAL_F_MEMBER};

use super::avail;
use crate::{
    atomic,
    maps::{PERSIST, REALS, REAL_CONNS},
    parse::Packet,
};

#[inline(always)]
fn svc_key(svc: &Service, p: &Packet) -> PersistKey {
    PersistKey::new(svc.id, svc.family, &svc.netmask, &p.key.src)
}

/// The template's real server, if the template is fresh and its server is
/// still a member (in generation `g`) and not overloaded (a quiesced one
/// keeps its clients, as in IPVS).
#[inline(always)]
pub fn lookup(svc: &Service, g: u32, p: &Packet, now: u64) -> Option<u32> {
    let t = PERSIST.get_ptr_mut(&svc_key(svc, p))?;
    // The template is shared: read and refreshed field by field.
    let (last_used, real_idx, generation) = unsafe {
        (
            atomic::load(&raw const (*t).last_used),
            atomic::load(&raw const (*t).real),
            atomic::load(&raw const (*t).real_generation),
        )
    };
    if now.wrapping_sub(last_used) > svc.persist_timeout as u64 * 1_000_000_000 {
        return None;
    }
    // The slot still holds the template's server (not reused)...
    let real = REALS.get(real_idx)?;
    if real.flags & REAL_F_IN_USE == 0 || real.generation != generation {
        return None;
    }
    // ... and it is a member in this generation.
    let view = avail::view(real_idx, g)?;
    if view.flags & REAL_F_MEMBER == 0 {
        return None;
    }
    let conns = REAL_CONNS.get_ptr_mut(real_idx)?;
    // Availability apart from the weight: a weight-0 server keeps its
    // persistent clients.
    let mut r = *view;
    r.weight = r.weight.max(1);
    if !avail::available(&r, conns) {
        return None;
    }
    // Two CPUs refreshing at once store nearly the same time: either wins.
    atomic::store(unsafe { &raw mut (*t).last_used }, now);
    Some(real_idx)
}

#[inline(always)]
pub fn save(svc: &Service, p: &Packet, real: u32, now: u64) {
    let Some(r) = REALS.get(real) else {
        return;
    };
    let t = Persist {
        real,
        real_generation: r.generation,
        last_used: now,
    };
    let _ = PERSIST.insert(&svc_key(svc, p), &t, 0);
}
