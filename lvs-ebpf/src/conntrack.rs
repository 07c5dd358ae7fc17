//! Connection tracking: the client-side table (`CONNS`) the forward path
//! reads, the real-server-side table (`REPLIES`) the reverse-NAT path reads,
//! IPVS's TCP state machine with per-state timeouts, and each real server's
//! active/inactive counts.
//!
//! A connection's state word changes only by compare-and-swap, so that of
//! two CPUs handling its two directions exactly one moves the counts; an
//! expired connection is claimed the same way (`CONN_F_DEAD`) by whoever
//! meets it first, the data path or the sweeper, and only that one
//! uncounts and deletes it.

use lvs_common::{
    state, tcp, Conn, FlowKey, Real, CONN_F_ACTIVE, CONN_F_DEAD, CONN_F_NOOUTPUT, CONN_STATE_MASK,
    CONN_TOUCH_NS, METHOD_MASQ, PROTO_TCP, REAL_F_IN_USE,
};

use crate::{
    atomic,
    maps::{CONFIG, CONNS, REALS, REAL_CONNS, REPLIES},
    parse::Packet,
};

/// A TCP SYN that opens a connection (not a SYN-ACK).
#[inline(always)]
pub fn is_syn(p: &Packet) -> bool {
    p.key.proto == PROTO_TCP && tcp::opens(p.tcp_flags)
}

/// Timeout of a state, in seconds.
#[inline(always)]
fn timeout_s(st: u32) -> u32 {
    let s = (st & CONN_STATE_MASK) as usize;
    match CONFIG.get(0) {
        Some(c) if s < state::COUNT => c.timeouts[s],
        _ => 60,
    }
}

#[inline(always)]
pub(crate) fn counts_add(real: u32, active: bool, delta: u64) {
    if let Some(c) = REAL_CONNS.get_ptr_mut(real) {
        let field = unsafe {
            if active {
                &raw mut (*c).active
            } else {
                &raw mut (*c).inactive
            }
        };
        atomic::fetch_add(field, delta);
    }
}

/// Claims an expired (or about to be replaced) connection: on success it
/// is uncounted and removed, and the caller may treat it as gone.
#[inline(always)]
pub fn kill(key: &FlowKey, c: *mut Conn) -> bool {
    let stp = unsafe { &raw mut (*c).st };
    let old = unsafe { core::ptr::read_volatile(stp) };
    if old & CONN_F_DEAD != 0 || !atomic::cas32(stp, old, old | CONN_F_DEAD) {
        return false;
    }
    let conn = atomic::load(c as *const Conn);
    counts_add(conn.real, old & CONN_F_ACTIVE != 0, u64::MAX);
    if let Some(real) = REALS.get(conn.real) {
        if real.generation == conn.real_generation && real.method == METHOD_MASQ {
            let _ = REPLIES.remove(&FlowKey::reply_of(key, &real.addr, real.port));
        }
    }
    let _ = CONNS.remove(key);
    true
}

#[inline(always)]
pub fn expired(c: &Conn, now: u64) -> bool {
    c.expired(timeout_s(c.st), now)
}

/// The tracked connection of a forward-direction packet, if it is still
/// usable: not expired, its real-server slot not reused, and not a closing
/// connection that a new SYN reopens.
#[inline(always)]
pub fn lookup(key: &FlowKey, syn: bool, now: u64) -> Option<(*mut Conn, Real)> {
    let c = CONNS.get_ptr_mut(key)?;
    // A copy: other CPUs change the entry while this one reads it.
    let conn = &atomic::load(c as *const Conn);
    if conn.st & CONN_F_DEAD != 0 {
        return None;
    }
    if expired(conn, now) || (syn && tcp::closing((conn.st & CONN_STATE_MASK) as u8)) {
        kill(key, c);
        return None;
    }
    let real = REALS.get(conn.real)?;
    if real.flags & REAL_F_IN_USE == 0 || real.generation != conn.real_generation {
        crate::stats::count(lvs_common::counters::STALE_CONN);
        kill(key, c);
        return None;
    }
    Some((c, *real))
}

/// Records a new connection, counted inactive as IPVS does until it is
/// established; for NAT also the reply-direction entry.
#[inline(always)]
pub fn create(key: &FlowKey, p: &Packet, real_idx: u32, real: &Real, svc_id: u32, now: u64) {
    // Only a SYN opens a TCP connection: NONE --syn--> SYN_RECV.
    let mut st = if p.key.proto == PROTO_TCP {
        state::SYN_RECV as u32
    } else {
        state::UDP as u32
    };
    if real.method != METHOD_MASQ {
        st |= CONN_F_NOOUTPUT;
    }
    let conn = Conn {
        real: real_idx,
        real_generation: real.generation,
        svc_id,
        st,
        last_seen: now,
    };
    if CONNS.insert(key, &conn, 0).is_err() {
        return;
    }
    counts_add(real_idx, false, 1);
    if real.method == METHOD_MASQ {
        let _ = REPLIES.insert(&FlowKey::reply_of(key, &real.addr, real.port), key, 0);
    }
}

/// Advances the TCP state for one packet (`inbound`: client -> server),
/// moving the real server's counts when the connection becomes or stops
/// being established, and refreshes the last-seen time at most every
/// `CONN_TOUCH_NS`.
#[inline(always)]
pub fn touch(c: *mut Conn, p: &Packet, inbound: bool, now: u64) {
    if p.key.proto == PROTO_TCP {
        if let Some(ev) = tcp::event(p.tcp_flags) {
            transition(c, ev, inbound);
        }
    }
    // Shared with the other direction's CPU: refreshed field-wise; either
    // CPU's time is right.
    let seen = unsafe { &raw mut (*c).last_seen };
    if now.wrapping_sub(atomic::load(seen)) > CONN_TOUCH_NS {
        atomic::store(seen, now);
    }
}

#[inline(always)]
fn transition(c: *mut Conn, ev: usize, inbound: bool) {
    let stp = unsafe { &raw mut (*c).st };
    // A lost race means the other direction just moved it: look again.
    for _ in 0..3 {
        let old = unsafe { core::ptr::read_volatile(stp) };
        if old & CONN_F_DEAD != 0 {
            return;
        }
        let dir = if !inbound {
            tcp::DIR_OUTPUT
        } else if old & CONN_F_NOOUTPUT != 0 {
            tcp::DIR_INPUT_ONLY
        } else {
            tcp::DIR_INPUT
        };
        let cur = (old & CONN_STATE_MASK) as usize;
        let Some(next) = tcp::next_state(dir, ev, cur) else {
            return;
        };
        let next = next as u32;
        let active = next == state::ESTABLISHED as u32;
        let mut new = (old & !(CONN_STATE_MASK | CONN_F_ACTIVE)) | next;
        if active {
            new |= CONN_F_ACTIVE;
        }
        if new == old {
            return;
        }
        if atomic::cas32(stp, old, new) {
            let was_active = old & CONN_F_ACTIVE != 0;
            if was_active != active {
                let real = unsafe { (*c).real };
                counts_add(real, active, 1);
                counts_add(real, was_active, u64::MAX);
            }
            return;
        }
    }
}
