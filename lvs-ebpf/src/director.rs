//! The director program: one XDP entry point and its packet paths.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::bpf_ktime_get_ns,
    macros::xdp,
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use lvs_common::{counters, ServiceKey, AF_INET, METHOD_MASQ, METHOD_ROUTE, METHOD_TUNNEL};

use crate::{
    conntrack, icmp, icmp_fwd,
    maps::{CHOSEN, CHOSEN_CLIENT, CONFIG, CONNS, PACKET, REPLIES, SERVICES},
    nat,
    nat::End,
    parse,
    parse::Packet,
    sched,
    stats::{account, count},
    tunnel, verdict, xmit,
    xmit::Miss,
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
    // The packet view lives in a per-CPU slot, not on this frame: every
    // call chain starts here, and the verifier allows 512 bytes for all of
    // a chain's frames together.
    let Some(slot) = PACKET.get_ptr_mut(0) else {
        return XDP_PASS;
    };
    match parse::parse(ctx) {
        Ok(mut parsed) => {
            // Read once here: deeper down LLVM may reuse a computed pointer
            // to this context field, which the verifier refuses.
            parsed.ingress = unsafe { (*ctx.ctx).ingress_ifindex };
            unsafe { slot.write(parsed) }
        }
        Err(skip) => {
            count(skip.counter());
            return XDP_PASS;
        }
    }
    let p = unsafe { &*slot };
    // Each path is a call of its own and returns a verdict; only this
    // frame stays live below them, and the chosen real server is passed in
    // a per-CPU slot rather than on the stack. That keeps the verifier's
    // combined stack (512 bytes over the call chain) in bounds.
    let v = if p.proto == parse::PROTO_ICMP || p.proto == parse::PROTO_ICMPV6 {
        icmp_fwd::handle(ctx, p)
    } else {
        let key = ServiceKey {
            addr: p.dst,
            port: p.dport,
            proto: p.proto,
            family: p.family,
        };
        match unsafe { SERVICES.get(&key) } {
            Some(svc) => match forward(p, svc) {
                verdict::NEW => schedule(ctx, p, svc),
                v => v,
            },
            None => reply(ctx, p),
        }
    };
    if v == verdict::SCHEDULED || v == verdict::ICMP_TO_REAL {
        let Some(real) = CHOSEN.get(0) else {
            return XDP_DROP;
        };
        if v == verdict::ICMP_TO_REAL {
            count(counters::ICMP_FWD);
        }
        let v = match real.method {
            METHOD_MASQ if v == verdict::ICMP_TO_REAL => icmp_fwd::nat_to_real(ctx, p, real),
            METHOD_MASQ => nat_forward(ctx, p, real),
            METHOD_ROUTE => dr_forward(ctx, p, real),
            METHOD_TUNNEL => tunnel::forward(ctx, p, real, CONFIG.get(0)),
            _ => {
                count(counters::XMIT_ERR);
                XDP_DROP
            }
        };
        return finish(ctx, p, v);
    }
    if v == verdict::ICMP_TO_CLIENT {
        return match CHOSEN_CLIENT.get(0) {
            Some(client) => icmp_fwd::nat_to_client(ctx, p, client),
            None => XDP_DROP,
        };
    }
    finish(ctx, p, v)
}

/// Turns a verdict into the XDP action.
#[inline(always)]
fn finish(ctx: &XdpContext, p: &Packet, v: u32) -> u32 {
    match verdict::too_big_mtu(v) {
        Some(mtu) => icmp::too_big(ctx, p, mtu),
        None => v,
    }
}

fn debug_on() -> bool {
    CONFIG.get(0).is_some_and(|c| c.debug != 0)
}

/// Client -> VIP of a tracked connection: on success its real server is
/// in `CHOSEN` and the verdict is `SCHEDULED`; `NEW` asks for `schedule`.
#[inline(never)]
fn forward(p: &Packet, svc: &lvs_common::Service) -> u32 {
    let now = unsafe { bpf_ktime_get_ns() };
    let key = conntrack::flow_key(p);
    let syn = conntrack::is_syn(p);
    let Some((c, real)) = conntrack::lookup(&key, syn, now) else {
        // As IPVS: only a SYN opens a TCP connection; anything else
        // without one goes to the director's stack (which resets it).
        if p.proto == lvs_common::PROTO_TCP && !syn {
            count(counters::NO_CONN);
            return XDP_PASS;
        }
        return verdict::NEW;
    };
    conntrack::touch(c, p, true, now);
    account(svc.id, unsafe { (*c).real }, true, p.ip_len as u64, false);
    if !crate::maps::choose(&real) {
        return XDP_DROP;
    }
    verdict::SCHEDULED
}

/// A new connection: choose its real server (into `CHOSEN`) and track it.
/// A call of its own, beside `forward`: the schedulers' scans need the
/// stack room.
#[inline(never)]
fn schedule(ctx: &XdpContext, p: &Packet, svc: &lvs_common::Service) -> u32 {
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(pick) = sched::pick(svc, p, now) else {
        count(counters::NO_REAL);
        return XDP_PASS;
    };
    conntrack::create(
        &conntrack::flow_key(p),
        p,
        pick.idx,
        &pick.real,
        svc.id,
        now,
    );
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
    account(svc.id, pick.idx, true, p.ip_len as u64, true);
    if !crate::maps::choose(&pick.real) {
        return XDP_DROP;
    }
    verdict::SCHEDULED
}

/// Whether the packet may not be fragmented on the way (IPv6 never is).
#[inline(always)]
pub fn dont_fragment(ctx: &XdpContext, p: &Packet) -> bool {
    p.family != AF_INET
        || parse::ptr_at::<u8>(ctx, p.l3_off + 6).is_some_and(|b| unsafe { *b } & 0x40 != 0)
}

#[inline(never)]
fn nat_forward(ctx: &XdpContext, p: &Packet, real: &lvs_common::Real) -> u32 {
    // The route is looked up before the rewrite, so that a "fragmentation
    // needed" can still quote the packet as the client sent it.
    let hop = xmit::lookup_cached(ctx, p, p.proto, &p.src, &real.addr, p.ip_len, false);
    if let Err(Miss::FragNeeded(mtu)) = hop {
        if dont_fragment(ctx, p) {
            return verdict::too_big(mtu);
        }
    }
    if nat::rewrite(ctx, p, End::Dst, &real.addr, real.port).is_none() {
        count(counters::XMIT_ERR);
        return XDP_DROP;
    }
    match hop.ok().and_then(|h| xmit::send(ctx, p, &h)) {
        Some(action) => {
            count(counters::NAT_FWD);
            action
        }
        // The kernel routes the already rewritten packet (fragmenting it
        // if it must) and resolves the neighbour; `lvs` keeps real
        // servers' neighbours resolved so this is rare.
        None => {
            count(counters::NAT_FWD_FIB_PASS);
            XDP_PASS
        }
    }
}

/// Direct routing: the packet keeps its IP header (the real server holds
/// the VIP on a loopback); only the MACs change, towards the real server.
#[inline(never)]
fn dr_forward(ctx: &XdpContext, p: &Packet, real: &lvs_common::Real) -> u32 {
    match xmit::lookup_cached(ctx, p, p.proto, &p.src, &real.addr, p.ip_len, false) {
        Ok(hop) => match xmit::send(ctx, p, &hop) {
            Some(action) => {
                count(counters::DR_FWD);
                action
            }
            None => XDP_DROP,
        },
        Err(Miss::FragNeeded(mtu)) if dont_fragment(ctx, p) => verdict::too_big(mtu),
        // Never pass it: its destination is the VIP, a local address, so
        // the director's own stack would answer it. `lvs` resolves the
        // real server's neighbour; until then, drop and count.
        Err(_) => {
            count(counters::FWD_NO_NEIGH);
            XDP_DROP
        }
    }
}

/// Real server -> client of a NAT connection: restore VIP:vport as source.
#[inline(never)]
fn reply(ctx: &XdpContext, p: &Packet) -> u32 {
    let rkey = conntrack::flow_key(p);
    let Some(client) = (unsafe { REPLIES.get(&rkey) }) else {
        count(counters::PASS);
        return XDP_PASS;
    };
    let client = *client;
    let hop = match xmit::lookup_cached(ctx, p, p.proto, &client.dst, &p.dst, p.ip_len, false) {
        Ok(hop) => hop,
        // Still untranslated: the kernel tells the real server to use a
        // smaller MTU, as a router would.
        Err(Miss::FragNeeded(_)) if dont_fragment(ctx, p) => {
            count(counters::PASS);
            return XDP_PASS;
        }
        // Never hand a packet whose source is the VIP to the kernel: it
        // would drop it as a martian. Drop and count instead.
        Err(_) => {
            count(counters::NAT_REPLY_DROP);
            return XDP_DROP;
        }
    };
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
    match xmit::send(ctx, p, &hop) {
        Some(action) => {
            count(counters::NAT_REPLY);
            action
        }
        None => XDP_DROP,
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
