//! The director program: one XDP entry point and its packet paths.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::bpf_ktime_get_ns,
    macros::xdp,
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use lvs_common::{counters, ServiceKey, METHOD_MASQ, METHOD_ROUTE};

use crate::{
    conntrack,
    maps::{CONFIG, CONNS, REPLIES, SERVICES},
    nat,
    nat::End,
    parse,
    parse::Packet,
    sched,
    stats::{account, count},
    xmit,
    xmit::Fib,
};

#[xdp]
pub fn director(ctx: XdpContext) -> u32 {
    run(&ctx)
}

/// Benchmark-only: the director on a frame that is restored afterwards, so
/// BPF_PROG_TEST_RUN's repeats (which reuse one buffer) all see the same
/// input. `bench_overhead` is the same wrapper around nothing; `cargo xtask
/// bench` subtracts its cost.
#[xdp]
pub fn director_bench(ctx: XdpContext) -> u32 {
    let Some(saved) = crate::bench::save(&ctx) else {
        return XDP_DROP;
    };
    let action = run(&ctx);
    crate::bench::restore(&ctx, saved);
    action
}

#[xdp]
pub fn bench_overhead(ctx: XdpContext) -> u32 {
    let Some(saved) = crate::bench::save(&ctx) else {
        return XDP_DROP;
    };
    crate::bench::restore(&ctx, saved);
    XDP_PASS
}

#[inline(always)]
fn run(ctx: &XdpContext) -> u32 {
    count(counters::RX);
    let p = match parse::parse(ctx) {
        Ok(p) => p,
        Err(skip) => {
            count(skip.counter());
            return XDP_PASS;
        }
    };
    let key = ServiceKey {
        addr: p.dst,
        port: p.dport,
        proto: p.proto,
        family: p.family,
    };
    if let Some(svc) = unsafe { SERVICES.get(&key) } {
        return forward(ctx, &p, svc);
    }
    reply(ctx, &p)
}

fn debug_on() -> bool {
    CONFIG.get(0).is_some_and(|c| c.debug != 0)
}

/// Client -> VIP: find or schedule the connection, then forward it by its
/// real server's method.
#[inline(always)]
fn forward(ctx: &XdpContext, p: &Packet, svc: &lvs_common::Service) -> u32 {
    let now = unsafe { bpf_ktime_get_ns() };
    let key = conntrack::flow_key(p);
    let syn = conntrack::is_syn(p);
    let (idx, real, new) = match conntrack::lookup(&key, syn) {
        Some((c, real)) => {
            let idx = unsafe { (*c).real };
            conntrack::touch(c, p, true, now);
            (idx, real, false)
        }
        None => {
            // As IPVS: only a SYN opens a TCP connection; anything else
            // without one goes to the director's stack (which resets it).
            if p.proto == lvs_common::PROTO_TCP && !syn {
                count(counters::NO_CONN);
                return XDP_PASS;
            }
            let Some(pick) = sched::pick(svc) else {
                count(counters::NO_REAL);
                return XDP_PASS;
            };
            conntrack::create(&key, p, pick.idx, &pick.real, svc.id, now);
            count(counters::NEW_CONN);
            if debug_on() {
                debug!(
                    ctx,
                    "new conn svc {} -> real {} (port {})",
                    svc.id,
                    pick.idx,
                    u16::from_be(pick.real.port)
                );
            }
            (pick.idx, pick.real, true)
        }
    };
    account(svc.id, idx, true, p.ip_len as u64, new);
    match real.method {
        METHOD_MASQ => nat_forward(ctx, p, &real),
        METHOD_ROUTE => dr_forward(ctx, p, &real),
        _ => {
            count(counters::XMIT_ERR);
            XDP_DROP
        }
    }
}

/// Direct routing: the packet keeps its IP header (the real server holds
/// the VIP on a loopback); only the MACs change, towards the real server.
#[inline(always)]
fn dr_forward(ctx: &XdpContext, p: &Packet, real: &lvs_common::Real) -> u32 {
    match xmit::route(ctx, p, &p.src, &real.addr) {
        Fib::Sent(action) => {
            count(counters::DR_FWD);
            action
        }
        // Never pass it: its destination is the VIP, a local address, so
        // the director's own stack would answer it. `lvs` resolves the
        // real server's neighbour; until then, drop and count.
        Fib::Miss => {
            count(counters::FWD_NO_NEIGH);
            XDP_DROP
        }
    }
}

#[inline(always)]
fn nat_forward(ctx: &XdpContext, p: &Packet, real: &lvs_common::Real) -> u32 {
    if nat::rewrite(ctx, p, End::Dst, &real.addr, real.port).is_none() {
        count(counters::XMIT_ERR);
        return XDP_DROP;
    }
    match xmit::route(ctx, p, &p.src, &real.addr) {
        Fib::Sent(action) => {
            count(counters::NAT_FWD);
            action
        }
        // The kernel routes the already rewritten packet and resolves the
        // neighbour; `lvs` keeps real servers' neighbours resolved so this
        // is rare.
        Fib::Miss => {
            count(counters::NAT_FWD_FIB_PASS);
            XDP_PASS
        }
    }
}

/// Real server -> client of a NAT connection: restore VIP:vport as source.
#[inline(always)]
fn reply(ctx: &XdpContext, p: &Packet) -> u32 {
    let rkey = conntrack::flow_key(p);
    let Some(client) = (unsafe { REPLIES.get(&rkey) }) else {
        count(counters::PASS);
        return XDP_PASS;
    };
    let client = *client;
    if let Some(c) = CONNS.get_ptr_mut(&client) {
        let now = unsafe { bpf_ktime_get_ns() };
        conntrack::touch(c, p, false, now);
        let (svc_id, real) = unsafe { ((*c).svc_id, (*c).real) };
        account(svc_id, real, false, p.ip_len as u64, false);
    }
    if nat::rewrite(ctx, p, End::Src, &client.dst, client.dport).is_none() {
        count(counters::XMIT_ERR);
        return XDP_DROP;
    }
    match xmit::route(ctx, p, &client.dst, &p.dst) {
        Fib::Sent(action) => {
            count(counters::NAT_REPLY);
            action
        }
        // Never hand a packet whose source is now the VIP to the kernel: it
        // would drop it as a martian. Drop and count instead.
        Fib::Miss => {
            count(counters::NAT_REPLY_DROP);
            XDP_DROP
        }
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
