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
//!
//! A new connection starts embryonic, in `EMBRYOS` (and, for NAT,
//! `EMBRYO_REPLIES`), a separate and smaller LRU: a flood of new flows
//! can only evict other new flows there, never an established connection.
//! It is promoted to `CONNS`/`REPLIES` by the client's packet that
//! completes the handshake (the ACK that takes SYN_RECV to ESTABLISHED, in
//! every method: a real server answers spoofed SYNs too, so its SYN-ACK
//! proves nothing); a UDP one by a second client packet (DR/TUN) or by the
//! real server's reply (NAT). Established traffic finds its entry in
//! `CONNS`/`REPLIES` at the first lookup, as before: the embryonic tables
//! are read only when those miss. An embryonic connection is counted
//! inactive, as IPVS counts SYN_RECV, and in its real server's
//! `EMBRYO_COUNTS` epoch, from which the sweeper takes off the ones the LRU
//! evicted.

use lvs_common::{
    counters, occupancy, sched, state, tcp, Conn, FlowKey, Real, Service, CONN_F_ACTIVE,
    CONN_F_DEAD, CONN_F_EMBRYO, CONN_F_EPOCH, CONN_F_NOOUTPUT, CONN_F_SHORT, CONN_STATE_MASK,
    CONN_TOUCH_NS, METHOD_MASQ, PROTO_TCP, REAL_F_IN_USE, TABLE_FULL_REFUSE,
};

use aya_ebpf::{macros::map, maps::PerCpuArray};

use crate::{
    atomic,
    maps::{
        CONFIG, CONNS, EMBRYOS, EMBRYO_COUNTS, EMBRYO_REPLIES, OCCUPANCY, REALS, REAL_CONNS,
        REPLIES,
    },
    parse::Packet,
    stats::count,
};

/// A TCP SYN that opens a connection (not a SYN-ACK).
#[inline(always)]
pub fn is_syn(p: &Packet) -> bool {
    p.key.proto == PROTO_TCP && tcp::opens(p.tcp_flags)
}

/// A TCP segment without SYN that may open a connection anyway, as IPVS's
/// `sloppy_tcp` lets it (any but a RST): only for services whose
/// schedulers hash the client (`mh`, `sh`), where another director behind
/// the same ECMP router picked, or would pick, the same real server, so a
/// connection the router moved here mid-stream keeps its server. It is
/// tracked as [`create`] tracks a SYN (SYN_RECV: inactive, short-lived)
/// until the next segment moves it on; anything else without an entry
/// goes to the stack.
#[inline(always)]
pub fn sloppy(p: &Packet, svc: &Service) -> bool {
    p.key.proto == PROTO_TCP
        && p.tcp_flags & tcp::RST == 0
        && (svc.sched == sched::MH || svc.sched == sched::SH)
}

/// Timeout of a state, in seconds (shortened for embryonic connections
/// created under pressure).
#[inline(always)]
fn timeout_s(st: u32) -> u32 {
    match CONFIG.get(0) {
        Some(c) => lvs_common::conn_timeout_s(st, &c.timeouts),
        None => 60,
    }
}

#[inline(always)]
fn occ_add(i: u32, delta: u64) {
    if let Some(p) = OCCUPANCY.get_ptr_mut(i) {
        atomic::fetch_add(p, delta);
    }
}

/// An occupancy count. Read as signed and floored at zero: an entry
/// removed that was never counted (one inserted from userspace) must not
/// wrap it into a table that looks full for ever.
#[inline(always)]
fn occ_get(i: u32) -> u64 {
    match OCCUPANCY.get_ptr_mut(i) {
        Some(p) => (unsafe { core::ptr::read_volatile(p) } as i64).max(0) as u64,
        None => 0,
    }
}

/// The epoch bit (0 or 1) of an embryonic connection's state word.
#[inline(always)]
fn epoch_of(st: u32) -> usize {
    (st & CONN_F_EPOCH != 0) as usize
}

/// An embryonic connection leaves `EMBRYOS` (expired, promoted): off its
/// epoch's count and the table's occupancy.
#[inline(always)]
fn embryo_forget(real: u32, st: u32) {
    if let Some(e) = EMBRYO_COUNTS.get_ptr_mut(real) {
        atomic::fetch_add(unsafe { &raw mut (*e).epochs[epoch_of(st)] }, u64::MAX);
    }
    occ_add(occupancy::EMBRYOS, u64::MAX);
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

/// Claims an expired (or about to be replaced) connection of `CONNS`
/// (`embryo`: of `EMBRYOS`): on success it is uncounted and removed, and
/// the caller may treat it as gone.
#[inline(always)]
pub fn kill(key: &FlowKey, c: *mut Conn, embryo: bool) -> bool {
    let stp = unsafe { &raw mut (*c).st };
    let old = unsafe { core::ptr::read_volatile(stp) };
    if old & CONN_F_DEAD != 0 || !atomic::cas32(stp, old, old | CONN_F_DEAD) {
        return false;
    }
    let conn = atomic::load(c as *const Conn);
    counts_add(conn.real, old & CONN_F_ACTIVE != 0, u64::MAX);
    let nat = match REALS.get(conn.real) {
        Some(real) if real.generation == conn.real_generation && real.method == METHOD_MASQ => {
            Some(FlowKey::reply_of(key, &real.addr, real.port))
        }
        _ => None,
    };
    if embryo {
        embryo_forget(conn.real, old);
        if let Some(rk) = &nat {
            let _ = EMBRYO_REPLIES.remove(rk);
        }
        let _ = EMBRYOS.remove(key);
    } else {
        occ_add(occupancy::CONNS, u64::MAX);
        if let Some(rk) = &nat {
            let _ = REPLIES.remove(rk);
        }
        let _ = CONNS.remove(key);
    }
    true
}

/// One entry more in `CONNS`, inserted by another path than promotion
/// (the sync backup's `conn_sync`): `kill` takes it off again.
#[inline(always)]
pub(crate) fn counted_in_conns() {
    occ_add(occupancy::CONNS, 1);
}

/// Ends the connection `c` that `lookup` returned, from whichever table
/// holds it.
#[inline(always)]
pub fn end(key: &FlowKey, c: *mut Conn) -> bool {
    let embryo = unsafe { core::ptr::read_volatile(&raw const (*c).st) } & CONN_F_EMBRYO != 0;
    kill(key, c, embryo)
}

/// Whether `CONNS` has room for one more connection: always with
/// `--conn-table-full evict` (the LRU makes it), else below `max_conns`.
#[inline(always)]
fn room() -> bool {
    match CONFIG.get(0) {
        Some(c) if c.conn_table_full == TABLE_FULL_REFUSE => {
            occ_get(occupancy::CONNS) < c.conn_table_size as u64
        }
        _ => true,
    }
}

/// Whether the client's packet `p` confirms the embryonic connection of
/// state word `st`: the TCP segment that takes it to ESTABLISHED (the
/// handshake's ACK), or a second UDP datagram of a DR/TUN connection (a
/// NAT one waits for the real server's reply).
#[inline(always)]
fn promotes(p: &Packet, st: u32) -> bool {
    if p.key.proto != PROTO_TCP {
        return st & CONN_F_NOOUTPUT != 0;
    }
    let Some(ev) = tcp::event(p.tcp_flags) else {
        return false;
    };
    let dir = if st & CONN_F_NOOUTPUT != 0 {
        tcp::DIR_INPUT_ONLY
    } else {
        tcp::DIR_INPUT
    };
    tcp::next_state(dir, ev, (st & CONN_STATE_MASK) as usize) == Some(state::ESTABLISHED)
}

/// Moves the embryonic connection `c` of client-side tuple `key` to
/// `CONNS` (and its reply entry to `REPLIES`), keeping its state and
/// counts: the caller's `touch` then makes it ESTABLISHED and active as it
/// would have in place. Null when it stays embryonic (no room in `CONNS`)
/// or is gone; another CPU that promoted it first is found in `CONNS`.
/// A call of its own: the established path carries none of its frame.
#[inline(never)]
pub fn promote(key: &FlowKey, c: *mut Conn) -> *mut Conn {
    if !room() {
        count(counters::PROMOTE_FULL);
        return core::ptr::null_mut();
    }
    // Copies in a per-CPU slot, not on this frame (the third of its call
    // chain): `key` may be a value of `EMBRYO_REPLIES`, removed below.
    let Some(sc) = PROMOTING.get_ptr_mut(0) else {
        return core::ptr::null_mut();
    };
    let sc = unsafe { &mut *sc };
    sc.key = *key;
    let stp = unsafe { &raw mut (*c).st };
    let old = unsafe { core::ptr::read_volatile(stp) };
    if old & CONN_F_DEAD != 0 || !atomic::cas32(stp, old, old | CONN_F_DEAD) {
        return CONNS.get_ptr_mut(&sc.key).unwrap_or(core::ptr::null_mut());
    }
    sc.conn = atomic::load(c as *const Conn);
    sc.conn.st = old & !(CONN_F_EMBRYO | CONN_F_SHORT | CONN_F_EPOCH);
    let real_idx = sc.conn.real;
    embryo_forget(real_idx, old);
    let nat = match REALS.get(real_idx) {
        Some(real) if real.generation == sc.conn.real_generation && real.method == METHOD_MASQ => {
            sc.reply = FlowKey::reply_of(&sc.key, &real.addr, real.port);
            true
        }
        _ => false,
    };
    if CONNS.insert(&sc.key, &sc.conn, 0).is_err() {
        // Gone altogether: uncounted like an expired one.
        counts_add(real_idx, false, u64::MAX);
        if nat {
            let _ = EMBRYO_REPLIES.remove(&sc.reply);
        }
        let _ = EMBRYOS.remove(&sc.key);
        return core::ptr::null_mut();
    }
    occ_add(occupancy::CONNS, 1);
    if nat {
        // The established entry first: a reply in between finds one.
        let _ = REPLIES.insert(&sc.reply, &sc.key, 0);
        let _ = EMBRYO_REPLIES.remove(&sc.reply);
    }
    let _ = EMBRYOS.remove(&sc.key);
    count(counters::PROMOTED);
    CONNS.get_ptr_mut(&sc.key).unwrap_or(core::ptr::null_mut())
}

/// `promote`'s working copies (index 0).
pub struct Promoting {
    key: FlowKey,
    reply: FlowKey,
    conn: Conn,
}

#[map]
static PROMOTING: PerCpuArray<Promoting> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn expired(c: &Conn, now: u64) -> bool {
    c.expired(timeout_s(c.st), now)
}

/// The tracked connection of a forward-direction packet `p`, if it is
/// still usable: not expired, its real-server slot not reused, and not a
/// closing connection that a new SYN reopens. An embryonic one that `p`
/// confirms is promoted first.
#[inline(always)]
pub fn lookup(p: &Packet, syn: bool, now: u64) -> Option<(*mut Conn, Real)> {
    let key = &p.key;
    let (c, embryo) = match CONNS.get_ptr_mut(key) {
        Some(c) => (c, false),
        None => (EMBRYOS.get_ptr_mut(key)?, true),
    };
    // A copy: other CPUs change the entry while this one reads it.
    let conn = &atomic::load(c as *const Conn);
    if conn.st & CONN_F_DEAD != 0 {
        return None;
    }
    if expired(conn, now) || (syn && tcp::closing((conn.st & CONN_STATE_MASK) as u8)) {
        kill(key, c, embryo);
        return None;
    }
    let real = REALS.get(conn.real)?;
    if real.flags & REAL_F_IN_USE == 0 || real.generation != conn.real_generation {
        crate::stats::count(lvs_common::counters::STALE_CONN);
        kill(key, c, embryo);
        return None;
    }
    if embryo && promotes(p, conn.st) {
        let promoted = promote(key, c);
        if !promoted.is_null() {
            return Some((promoted, *real));
        }
    }
    Some((c, *real))
}

/// The connection of client-side tuple `key`, established or embryonic
/// (for ICMP errors, which quote either).
#[inline(always)]
pub fn find(key: &FlowKey) -> Option<&'static Conn> {
    unsafe { CONNS.get(key).or_else(|| EMBRYOS.get(key)) }
}

/// The client-side tuple of a reply `key` (real server -> client) of a
/// NAT connection, and whether it is embryonic: `REPLIES` first, so an
/// established reply costs what it did.
#[inline(always)]
pub fn reply_client(key: &FlowKey) -> Option<(&'static FlowKey, bool)> {
    if let Some(c) = unsafe { REPLIES.get(key) } {
        return Some((c, false));
    }
    unsafe { EMBRYO_REPLIES.get(key) }.map(|c| (c, true))
}

/// The connection of a reply `p` whose client-side tuple `reply_client`
/// found. The reply of an embryonic UDP connection promotes it; a TCP one
/// stays embryonic (a SYN-ACK proves nothing).
#[inline(always)]
pub fn reply_conn(p: &Packet, client: &FlowKey, embryo: bool) -> Option<*mut Conn> {
    if !embryo {
        return CONNS.get_ptr_mut(client);
    }
    let c = EMBRYOS.get_ptr_mut(client)?;
    if p.key.proto != PROTO_TCP {
        let promoted = promote(client, c);
        if !promoted.is_null() {
            return Some(promoted);
        }
    }
    Some(c)
}

/// Records a new connection in the embryonic table, counted inactive as
/// IPVS does until it is established; for NAT also the reply-direction
/// entry. False: refused, `CONNS` is full (`--conn-table-full refuse`).
#[inline(always)]
pub fn create(
    key: &FlowKey,
    p: &Packet,
    real_idx: u32,
    real: &Real,
    svc_id: u32,
    now: u64,
) -> bool {
    if !room() {
        count(counters::CONN_TABLE_FULL);
        return false;
    }
    // Only a SYN opens a TCP connection: NONE --syn--> SYN_RECV.
    let mut st = if p.key.proto == PROTO_TCP {
        state::SYN_RECV as u32
    } else {
        state::UDP as u32
    };
    if real.method != METHOD_MASQ {
        st |= CONN_F_NOOUTPUT;
    }
    st |= CONN_F_EMBRYO;
    let epoch = occ_get(occupancy::EPOCH) & 1;
    if epoch != 0 {
        st |= CONN_F_EPOCH;
    }
    // Pressure: from half full on, new embryonic connections expire soon
    // (IPVS's secure_tcp, automatic); full, each insert evicts one.
    let max = CONFIG.get(0).map_or(0, |c| c.max_embryonic) as u64;
    let n = occ_get(occupancy::EMBRYOS);
    if max > 0 && n >= max / 2 {
        st |= CONN_F_SHORT;
        count(counters::SYN_PRESSURE);
        if n >= max {
            count(counters::EMBRYONIC_FULL);
        }
    }
    let conn = Conn {
        real: real_idx,
        real_generation: real.generation,
        svc_id,
        st,
        last_seen: now,
    };
    if EMBRYOS.insert(key, &conn, 0).is_err() {
        return true;
    }
    counts_add(real_idx, false, 1);
    if let Some(e) = EMBRYO_COUNTS.get_ptr_mut(real_idx) {
        atomic::fetch_add(unsafe { &raw mut (*e).epochs[epoch as usize] }, 1);
    }
    occ_add(occupancy::EMBRYOS, 1);
    if real.method == METHOD_MASQ {
        let _ = EMBRYO_REPLIES.insert(&FlowKey::reply_of(key, &real.addr, real.port), key, 0);
    }
    true
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
        // An embryonic connection is promoted before it may get there
        // (`lookup`); a real server's packet never takes it there.
        if active && old & CONN_F_EMBRYO != 0 {
            return;
        }
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
