//! Connection tracking: the client-side table (`CONNS`) the forward path
//! reads, the real-server-side table (`REPLIES`) the reverse-NAT path reads,
//! and TCP state transitions.

use lvs_common::{state, Conn, FlowKey, Real, CONN_TOUCH_NS, REAL_F_IN_USE};

use crate::{
    maps::{CONNS, REALS, REPLIES},
    parse::{Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

#[inline(always)]
pub fn flow_key(p: &Packet) -> FlowKey {
    FlowKey {
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: p.dport,
        proto: p.proto,
        family: p.family,
        _pad: [0; 2],
    }
}

/// A TCP SYN that opens a connection (not a SYN-ACK).
#[inline(always)]
pub fn is_syn(p: &Packet) -> bool {
    p.proto == lvs_common::PROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN
}

/// States after which a new SYN from the same client port starts a new
/// connection that is scheduled afresh (IPVS's conn_reuse_mode).
#[inline(always)]
fn closing(s: u8) -> bool {
    matches!(
        s,
        state::FIN_WAIT | state::TIME_WAIT | state::CLOSE | state::CLOSE_WAIT | state::LAST_ACK
    )
}

/// The tracked connection of a forward-direction packet, if it is still
/// usable: its real-server slot has not been reused, and a new SYN does not
/// reopen a closing connection.
#[inline(always)]
pub fn lookup(key: &FlowKey, syn: bool) -> Option<(*mut Conn, Real)> {
    let c = CONNS.get_ptr_mut(key)?;
    let conn = unsafe { &*c };
    if syn && closing(conn.state) {
        return None;
    }
    let real = REALS.get(conn.real)?;
    if real.flags & REAL_F_IN_USE == 0 || real.generation != conn.real_generation {
        crate::stats::count(lvs_common::counters::STALE_CONN);
        return None;
    }
    Some((c, *real))
}

/// Records a new connection; for NAT also the reply-direction entry.
#[inline(always)]
pub fn create(key: &FlowKey, p: &Packet, real_idx: u32, real: &Real, svc_id: u32, now: u64) {
    let conn = Conn {
        real: real_idx,
        real_generation: real.generation,
        svc_id,
        state: if p.proto == lvs_common::PROTO_TCP {
            state::SYN_RECV
        } else {
            state::UDP
        },
        method: real.method,
        flags: 0,
        _pad: 0,
        last_seen: now,
    };
    let _ = CONNS.insert(key, &conn, 0);
    if real.method == lvs_common::METHOD_MASQ {
        let rkey = FlowKey {
            src: real.addr,
            dst: key.src,
            sport: real.port,
            dport: key.sport,
            proto: key.proto,
            family: key.family,
            _pad: [0; 2],
        };
        let _ = REPLIES.insert(&rkey, key, 0);
    }
}

/// Advances the TCP state for one packet (`inbound`: client -> server) and
/// refreshes the last-seen time at most every `CONN_TOUCH_NS`.
#[inline(always)]
pub fn touch(c: *mut Conn, p: &Packet, inbound: bool, now: u64) {
    let conn = unsafe { &mut *c };
    if p.proto == lvs_common::PROTO_TCP {
        let next = tcp_next(conn.state, p.tcp_flags, inbound);
        if next != conn.state {
            conn.state = next;
        }
    }
    if now.wrapping_sub(conn.last_seen) > CONN_TOUCH_NS {
        conn.last_seen = now;
    }
}

/// A reduced form of IPVS's TCP state table: enough to know when a
/// connection is established, closing, or closed.
#[inline(always)]
fn tcp_next(cur: u8, flags: u8, inbound: bool) -> u8 {
    if flags & TCP_RST != 0 {
        return state::CLOSE;
    }
    if flags & TCP_FIN != 0 {
        return match (cur, inbound) {
            (state::CLOSE_WAIT, true) => state::LAST_ACK,
            (state::FIN_WAIT, false) => state::TIME_WAIT,
            (_, true) => state::FIN_WAIT,
            (_, false) => state::CLOSE_WAIT,
        };
    }
    if flags & TCP_SYN != 0 {
        return if inbound { state::SYN_RECV } else { cur };
    }
    if flags & TCP_ACK != 0 && cur == state::SYN_RECV && inbound {
        return state::ESTABLISHED;
    }
    cur
}
