//! The director's entry: parse, then hand the packet to the path it
//! belongs to, and carry out what that path asks for.

use aya_ebpf::programs::XdpContext;
use lvs_common::{counters, VlanKey, METHOD_MASQ, METHOD_ROUTE, METHOD_TUNNEL};

use crate::{
    flow, fwd, icmp,
    maps::{maybe_ours, to_link, CHOSEN, CHOSEN_CLIENT, CONFIG, PACKET, VLAN_IN},
    parse::{self, Packet},
    stats::{self, count},
    svc,
    verdict::Verdict,
};

#[inline(always)]
pub fn director(ctx: &XdpContext) -> u32 {
    // One lookup of this CPU's counter block serves the fast path's counts.
    let Some(counts) = stats::block() else {
        return Verdict::PASS.xdp();
    };
    stats::bump(counts, counters::RX, 1);
    if let Some(action) = flow::fast(ctx, counts) {
        return action;
    }
    // The packet view lives in a per-CPU slot, not on this frame: every
    // call chain starts here, and the verifier allows 512 bytes for all of
    // a chain's frames together.
    let Some(slot) = PACKET.get_ptr_mut(0) else {
        return Verdict::PASS.xdp();
    };
    // SAFETY: this CPU's slot; nothing else uses it during the run.
    let slot = unsafe { &mut *slot };
    if let Err(skip) = parse::parse(ctx, slot) {
        count(skip.counter());
        return Verdict::PASS.xdp();
    }
    // Read once here: deeper down LLVM may reuse a computed pointer to
    // this context field, which the verifier refuses.
    slot.ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    slot.fib_in = slot.ingress;
    if slot.tagged {
        // The FIB knows a VLAN's addresses and routes on its sub-interface;
        // a VLAN the director has none for is not its traffic.
        let key = VlanKey {
            ifindex: slot.ingress,
            vid: slot.vid,
            _pad: 0,
        };
        match unsafe { VLAN_IN.get(&key) } {
            Some(sub) => slot.fib_in = *sub,
            None => {
                count(counters::PASS);
                return Verdict::PASS.xdp();
            }
        }
    }
    let p = &*slot;
    flow::unstage();
    // Each path is a call of its own and returns a verdict; only this
    // frame stays live below them, and the chosen real server is passed in
    // a per-CPU slot rather than on the stack. That keeps the verifier's
    // combined stack (512 bytes over the call chain) in bounds.
    let icmp = p.key.proto == parse::PROTO_ICMP || p.key.proto == parse::PROTO_ICMPV6;
    if !icmp && !maybe_ours(&p.key.dst, p.key.dport) && !maybe_ours(&p.key.src, p.key.sport) {
        count(counters::PASS);
        return Verdict::PASS.xdp();
    }
    // A frame to another MAC (broadcast, multicast, another host's) is
    // not routed to us: the kernel would not forward it, nor do we. The
    // parser read the Ethernet header, so 14 bytes are there.
    if !parse::ptr_at::<[u8; 14]>(ctx, 0).is_some_and(|e| to_link(e as usize, p.ingress)) {
        count(counters::FOREIGN_MAC);
        return Verdict::PASS.xdp();
    }
    let v = if icmp {
        match icmp::errors::handle(ctx, p) {
            // Not an error of a tracked connection: the stack's.
            Verdict::PASS => {
                count(counters::PASS);
                return Verdict::PASS.xdp();
            }
            v => v,
        }
    } else {
        match svc::lookup(p) {
            Some(s) => match flow::established(p, s) {
                Verdict::NEW => svc::schedule(ctx, p, s),
                v => v,
            },
            None => fwd::nat::reply(ctx, p),
        }
    };
    let v = finish(ctx, p, v);
    if p.key.proto != parse::PROTO_ICMP && p.key.proto != parse::PROTO_ICMPV6 {
        flow::commit(p);
    }
    v.xdp()
}

/// Carries out a path's request: forward to the chosen real server by its
/// method, send a translated ICMP error, or answer with too-big or time
/// exceeded. Every packet forwarded leaves with its TTL / hop limit one
/// less (`fwd::dec_ttl`), as IPVS's; one that arrived with <= 1 is not
/// forwarded (the forwarding paths check, `fwd::expired`).
#[inline(always)]
fn finish(ctx: &XdpContext, p: &Packet, v: Verdict) -> Verdict {
    let v = if v == Verdict::SCHEDULED || v == Verdict::ICMP_TO_REAL {
        let Some(ch) = CHOSEN.get(0) else {
            return Verdict::DROP;
        };
        // An error forwarded to its connection's real server is counted
        // as `icmp_fwd` in place of its method's counter.
        match ch.real.method {
            METHOD_MASQ if v == Verdict::ICMP_TO_REAL => {
                icmp::errors::nat_to_real(ctx, p, &ch.real)
            }
            METHOD_MASQ => fwd::nat::forward(ctx, p, ch),
            METHOD_ROUTE => fwd::dr::forward(ctx, p, ch),
            METHOD_TUNNEL => fwd::tun::forward(ctx, p, ch, CONFIG.get(0)),
            _ => {
                count(counters::XMIT_ERR);
                Verdict::DROP
            }
        }
    } else if v == Verdict::ICMP_TO_CLIENT {
        return match CHOSEN_CLIENT.get(0) {
            Some(client) => icmp::errors::nat_to_client(ctx, p, client),
            None => Verdict::DROP,
        };
    } else {
        v
    };
    if v == Verdict::TIME_EXCEEDED {
        return icmp::too_big::time_exceeded(ctx, p);
    }
    match v.too_big_mtu() {
        Some(mtu) => icmp::too_big::too_big(ctx, p, mtu),
        None => v,
    }
}
