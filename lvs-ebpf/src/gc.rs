//! The connection sweeper's kernel half. `lvs load` walks `CONNS` once a
//! second from userspace and, through BPF_PROG_TEST_RUN, hands these
//! programs a connection key (or a count correction) as the "packet":
//! claiming an expired connection and fixing counts must be atomic with the
//! data path, which userspace map writes are not.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    programs::XdpContext,
};
use lvs_common::{counters, occupancy, ConnFix, FlowKey, FIX_ACTIVE, FIX_EMBRYO};

use crate::{
    atomic, clock, conntrack,
    maps::{CONNS, EMBRYOS, EMBRYO_COUNTS, OCCUPANCY, REAL_CONNS},
    parse::ptr_at,
    stats::add,
};

/// Input: a `FlowKey`, then a byte: non-zero for `EMBRYOS`, zero for
/// `CONNS`. Removes the connection if it has expired (XDP_PASS), else
/// leaves it (XDP_DROP).
#[inline(always)]
pub fn conn_expire(ctx: &XdpContext) -> u32 {
    let Some(k) = ptr_at::<FlowKey>(ctx, 0) else {
        return XDP_DROP;
    };
    let key = unsafe { k.read_unaligned() };
    let embryo = ptr_at::<u8>(ctx, core::mem::size_of::<FlowKey>())
        .is_some_and(|b| unsafe { b.read_unaligned() } != 0);
    let c = if embryo {
        EMBRYOS.get_ptr_mut(&key)
    } else {
        CONNS.get_ptr_mut(&key)
    };
    let Some(c) = c else {
        return XDP_DROP;
    };
    let now = clock::now();
    if conntrack::expired(unsafe { &*c }, now) && conntrack::kill(&key, c, embryo) {
        XDP_PASS
    } else {
        XDP_DROP
    }
}

/// Subtracts up to `amount` from `*p`, never below zero; returns what it
/// took.
#[inline(always)]
fn take(p: *mut u64, amount: u64) -> u64 {
    let amount = amount.min(unsafe { core::ptr::read_volatile(p) });
    atomic::fetch_add(p, amount.wrapping_neg());
    amount
}

/// Input: a `ConnFix`. Takes evicted connections off a real server's count
/// (embryonic ones also off their epoch's count) and off the table's
/// occupancy.
#[inline(always)]
pub fn conn_fix(ctx: &XdpContext) -> u32 {
    let Some(f) = ptr_at::<ConnFix>(ctx, 0) else {
        return XDP_DROP;
    };
    let f = unsafe { f.read_unaligned() };
    let Some(c) = REAL_CONNS.get_ptr_mut(f.real) else {
        return XDP_DROP;
    };
    if f.kind == FIX_EMBRYO || f.kind == FIX_EMBRYO + 1 {
        let Some(e) = EMBRYO_COUNTS.get_ptr_mut(f.real) else {
            return XDP_DROP;
        };
        let epoch = (f.kind - FIX_EMBRYO) as usize & 1;
        let field = unsafe { &raw mut (*e).epochs[epoch] };
        let amount = f
            .amount
            .min(unsafe { core::ptr::read_volatile(field) })
            .min(unsafe { core::ptr::read_volatile(&raw const (*c).inactive) });
        take(field, amount);
        take(unsafe { &raw mut (*c).inactive }, amount);
        if let Some(o) = OCCUPANCY.get_ptr_mut(occupancy::EMBRYOS) {
            take(o, amount);
        }
        add(counters::SYN_FLOOD_EVICTED, amount);
        return XDP_PASS;
    }
    let field = unsafe {
        if f.kind == FIX_ACTIVE {
            &raw mut (*c).active
        } else {
            &raw mut (*c).inactive
        }
    };
    // Never below zero: connections may have ended since userspace looked.
    let amount = take(field, f.amount);
    atomic::fetch_add(unsafe { &raw mut (*c).evicted }, amount);
    if let Some(o) = OCCUPANCY.get_ptr_mut(occupancy::CONNS) {
        take(o, amount);
    }
    add(counters::EVICTED, amount);
    XDP_PASS
}
