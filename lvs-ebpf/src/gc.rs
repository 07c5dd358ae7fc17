//! The connection sweeper's kernel half. `lvs load` walks `CONNS` once a
//! second from userspace and, through BPF_PROG_TEST_RUN, hands these
//! programs a connection key (or a count correction) as the "packet":
//! claiming an expired connection and fixing counts must be atomic with the
//! data path, which userspace map writes are not.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    programs::XdpContext,
};
use lvs_common::{counters, ConnFix, FlowKey, FIX_ACTIVE};

use crate::{
    atomic, clock, conntrack,
    maps::{CONNS, REAL_CONNS},
    parse::ptr_at,
    stats::add,
};

/// Input: a `FlowKey`. Removes the connection if it has expired (XDP_PASS),
/// else leaves it (XDP_DROP).
#[inline(always)]
pub fn conn_expire(ctx: &XdpContext) -> u32 {
    let Some(k) = ptr_at::<FlowKey>(ctx, 0) else {
        return XDP_DROP;
    };
    let key = unsafe { k.read_unaligned() };
    let Some(c) = CONNS.get_ptr_mut(&key) else {
        return XDP_DROP;
    };
    let now = clock::now();
    if conntrack::expired(unsafe { &*c }, now) && conntrack::kill(&key, c) {
        XDP_PASS
    } else {
        XDP_DROP
    }
}

/// Input: a `ConnFix`. Takes evicted connections off a real server's count.
#[inline(always)]
pub fn conn_fix(ctx: &XdpContext) -> u32 {
    let Some(f) = ptr_at::<ConnFix>(ctx, 0) else {
        return XDP_DROP;
    };
    let f = unsafe { f.read_unaligned() };
    let Some(c) = REAL_CONNS.get_ptr_mut(f.real) else {
        return XDP_DROP;
    };
    let field = unsafe {
        if f.kind == FIX_ACTIVE {
            &raw mut (*c).active
        } else {
            &raw mut (*c).inactive
        }
    };
    // Never below zero: connections may have ended since userspace looked.
    let amount = f.amount.min(unsafe { core::ptr::read_volatile(field) });
    atomic::fetch_add(field, amount.wrapping_neg());
    atomic::fetch_add(unsafe { &raw mut (*c).evicted }, amount);
    add(counters::EVICTED, amount);
    XDP_PASS
}
