//! The sync backup's kernel half: `lvs load`'s backup daemon maps each
//! connection a master announced onto this director's tables and hands it
//! to `conn_sync` through BPF_PROG_TEST_RUN, so that the insert and the
//! real server's ActiveConn/InActConn move atomically with the data path
//! (userspace map writes would race with its counting).

use aya_ebpf::{
    bindings::{
        xdp_action::{XDP_DROP, XDP_PASS},
        BPF_NOEXIST,
    },
    programs::XdpContext,
};
use lvs_common::{
    ConnSync, FlowKey, CONN_F_ACTIVE, CONN_F_DEAD, CONN_F_NOOUTPUT, METHOD_MASQ, REAL_F_IN_USE,
};

use crate::{
    atomic,
    conntrack::{counted_in_conns, counts_add, kill},
    maps::{CONNS, REALS, REPLIES},
    parse::ptr_at,
};

/// Input: a `ConnSync`. XDP_PASS: inserted or updated; XDP_DROP: not
/// applied (its real server's slot changed, or a race the next sync
/// message repairs).
#[inline(always)]
pub fn conn_sync(ctx: &XdpContext) -> u32 {
    let Some(p) = ptr_at::<ConnSync>(ctx, 0) else {
        return XDP_DROP;
    };
    let s = unsafe { p.read_unaligned() };
    let Some(real) = REALS.get(s.conn.real) else {
        return XDP_DROP;
    };
    if real.flags & REAL_F_IN_USE == 0 || real.generation != s.conn.real_generation {
        return XDP_DROP;
    }
    // The forwarding method is the backup's own real server's, as IPVS's
    // backup binds a synced connection to its destination.
    // Established-table flags only (a master syncs `CONNS`).
    let mut st = s.conn.st
        & !(CONN_F_NOOUTPUT
            | CONN_F_DEAD
            | lvs_common::CONN_F_EMBRYO
            | lvs_common::CONN_F_SHORT
            | lvs_common::CONN_F_EPOCH);
    if real.method != METHOD_MASQ {
        st |= CONN_F_NOOUTPUT;
    }
    let active = st & CONN_F_ACTIVE != 0;
    if let Some(c) = CONNS.get_ptr_mut(&s.key) {
        let cur = atomic::load(c as *const lvs_common::Conn);
        if cur.st & CONN_F_DEAD != 0 {
            return XDP_DROP;
        }
        if cur.real == s.conn.real && cur.real_generation == s.conn.real_generation {
            let stp = unsafe { &raw mut (*c).st };
            if !atomic::cas32(stp, cur.st, st) {
                return XDP_DROP;
            }
            let was_active = cur.st & CONN_F_ACTIVE != 0;
            if was_active != active {
                counts_add(s.conn.real, active, 1);
                counts_add(s.conn.real, was_active, u64::MAX);
            }
            if s.conn.last_seen > cur.last_seen {
                atomic::store(unsafe { &raw mut (*c).last_seen }, s.conn.last_seen);
            }
            return XDP_PASS;
        }
        // Another real server for the same tuple: the master's is the
        // truth (IPVS's backup expires the old one too).
        if !kill(&s.key, c, false) {
            return XDP_DROP;
        }
    }
    let mut conn = s.conn;
    conn.st = st;
    if CONNS.insert(&s.key, &conn, BPF_NOEXIST as u64).is_err() {
        return XDP_DROP;
    }
    counts_add(conn.real, active, 1);
    counted_in_conns();
    if real.method == METHOD_MASQ {
        let reply: FlowKey = FlowKey::reply_of(&s.key, &real.addr, real.port);
        let _ = REPLIES.insert(&reply, &s.key, 0);
    }
    XDP_PASS
}
