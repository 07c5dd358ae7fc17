//! Virtual services: is a packet addressed to one, and, for a packet that
//! opens a connection, which real server gets it.

use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::debug;
use lvs_common::{counters, Service, ServiceKey};

use crate::{
    clock, conntrack,
    maps::{choose, CONFIG, SERVICES},
    parse::Packet,
    sched,
    stats::{account, count},
    verdict::Verdict,
};

/// The service the packet is addressed to (protocol, VIP, port).
#[inline(always)]
pub fn lookup(p: &Packet) -> Option<&'static Service> {
    let key = ServiceKey {
        addr: p.key.dst,
        port: p.key.dport,
        proto: p.key.proto,
        family: p.key.family,
    };
    unsafe { SERVICES.get(&key) }
}

fn debug_on() -> bool {
    CONFIG.get(0).is_some_and(|c| c.debug != 0)
}

/// A new connection: choose its real server (into `CHOSEN`) and track it.
/// A call of its own, beside the established path: the schedulers' scans
/// need the stack room.
#[inline(never)]
pub fn schedule(ctx: &XdpContext, p: &Packet, svc: &Service) -> Verdict {
    let now = clock::now();
    let Some(pick) = sched::pick(svc, p, now) else {
        count(counters::NO_REAL);
        return Verdict::PASS;
    };
    conntrack::create(&p.key, p, pick.idx, &pick.real, svc.id, now);
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
    // A UDP connection's first packet already makes it one the flow cache
    // serves; a TCP one is not established before the handshake ends.
    let cache = crate::flow::Cacheable {
        svc_id: svc.id,
        real: pick.idx,
        ok: p.key.proto == lvs_common::PROTO_UDP,
    };
    if !choose(&pick.real, pick.idx, cache) {
        return Verdict::DROP;
    }
    Verdict::SCHEDULED
}
