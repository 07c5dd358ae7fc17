//! Virtual services: is a packet addressed to one, and, for a packet that
//! opens a connection, which real server gets it.
//!
//! Every new connection is scheduled with one generation of the tables:
//! the published generation's bit is read once, here, and everything the
//! schedulers read (the service's copy, its member list and table, the
//! members' views) belongs to that generation. Established connections
//! never read it: they already know their real server.

use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::debug;
use lvs_common::{counters, Service, ServiceEntry, ServiceKey, GEN_CURRENT, SVC_F_DELETED};

use crate::{
    clock, conntrack,
    maps::{choose, CONFIG, GENERATION, SERVICES},
    parse::Packet,
    sched,
    stats::{account, count},
    verdict::Verdict,
};

/// The service the packet is addressed to (protocol, VIP, port): the
/// first copy of its `SERVICES` entry, whose `id` (the same in both
/// copies) is all the established path reads. [`schedule`] takes it back
/// to the whole entry.
#[inline(always)]
pub fn lookup(p: &Packet) -> Option<&'static Service> {
    let key = ServiceKey {
        addr: p.key.dst,
        port: p.key.dport,
        proto: p.key.proto,
        family: p.key.family,
    };
    unsafe { SERVICES.get(&key) }.map(|e| &e.views[0])
}

/// The entry whose first copy `lookup` returned.
#[inline(always)]
fn entry_of(first: &'static Service) -> &'static ServiceEntry {
    // SAFETY: `first` is `views[0]` of a `SERVICES` value (`lookup`), the
    // first field of the repr(C) `ServiceEntry`: the same address.
    unsafe { &*(first as *const Service as *const ServiceEntry) }
}

/// The published generation (its lowest bit is what counts).
#[inline(always)]
fn generation() -> u64 {
    GENERATION.get(GEN_CURRENT).copied().unwrap_or(0)
}

fn debug_on() -> bool {
    CONFIG.get(0).is_some_and(|c| c.debug != 0)
}

/// A new connection: choose its real server (into `CHOSEN`) and track it.
/// A call of its own, beside the established path: the schedulers' scans
/// need the stack room.
#[inline(never)]
pub fn schedule(ctx: &XdpContext, p: &Packet, first: &'static Service) -> Verdict {
    let now = clock::now();
    let g = generation() & 1;
    let svc = entry_of(first).view(g);
    // Not a service of this generation (deleted, or added by the next).
    let pick = if svc.flags & SVC_F_DELETED != 0 {
        None
    } else {
        sched::pick(svc, g as u32, p, now)
    };
    let Some(pick) = pick else {
        count(counters::NO_REAL);
        return Verdict::PASS;
    };
    // Refused: the established table is full (`--conn-table-full
    // refuse`); the stack answers it, as for a service without servers.
    if !conntrack::create(&p.key, p, pick.idx, &pick.real, svc.id, now) {
        return Verdict::PASS;
    }
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
