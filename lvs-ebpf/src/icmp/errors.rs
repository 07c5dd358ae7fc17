//! ICMP/ICMPv6 errors about tracked connections (destination unreachable,
//! fragmentation needed / packet too big, time exceeded, parameter
//! problem), as IPVS handles them:
//! - an error about a packet the director sent towards a client (its
//!   embedded packet is VIP:vport -> client) goes to the connection's real
//!   server; for NAT the outer destination and the embedded source are
//!   translated back to the real server's;
//! - an error about a packet sent to a NAT real server (embedded packet
//!   client -> RIP:rport, reported to the client address) goes back to the
//!   client, with the outer source and the embedded destination made the
//!   VIP's.
//!
//! Anything else, echo included, is passed to the director's stack.

use aya_ebpf::programs::XdpContext;
use lvs_common::{counters, csum, FlowKey, Real, AF_INET, PROTO_TCP, PROTO_UDP, REAL_F_IN_USE};

use crate::{
    fwd::nat::End,
    maps::{CHOSEN_CLIENT, REALS},
    parse::{ptr_at, Packet, PROTO_ICMP},
    stats::count,
    verdict::Verdict,
    xmit,
};

/// The embedded (quoted) packet of an ICMP error.
struct Inner {
    l3: usize,
    l4: usize,
    proto: u8,
    src: [u32; 4],
    dst: [u32; 4],
    sport: u16,
    dport: u16,
}

#[inline(always)]
fn is_error(p: &Packet, icmp_type: u8) -> bool {
    if p.key.proto == PROTO_ICMP {
        matches!(icmp_type, 3 | 11 | 12)
    } else {
        matches!(icmp_type, 1..=4)
    }
}

/// The quoted packet, if the error holds its IP header and the 8 bytes
/// after it (the ports, and UDP's checksum) within the outer IP packet's
/// own length, not only within the frame: bytes past the IP length are
/// padding, never read. A quoted IPv4 header may carry options (its IHL is
/// honoured).
#[inline(always)]
fn inner(ctx: &XdpContext, p: &Packet) -> Option<Inner> {
    let l3 = p.l4_off + 8;
    let end = p.l3_off + p.ip_len as usize;
    let (l4, proto, src, dst) = if p.key.family == AF_INET {
        let h = unsafe { &*ptr_at::<[u8; 20]>(ctx, l3)? };
        let ihl = ((h[0] & 0x0f) as usize) * 4;
        if h[0] >> 4 != 4 || ihl < 20 {
            return None;
        }
        let a = |o: usize| u32::from_ne_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        (l3 + (ihl & 0x3c), h[9], [a(12), 0, 0, 0], [a(16), 0, 0, 0])
    } else {
        let h = unsafe { &*ptr_at::<[u8; 40]>(ctx, l3)? };
        if h[0] >> 4 != 6 {
            return None;
        }
        let a = |o: usize| u32::from_ne_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        (
            l3 + 40,
            h[6],
            [a(8), a(12), a(16), a(20)],
            [a(24), a(28), a(32), a(36)],
        )
    };
    if (proto != PROTO_TCP && proto != PROTO_UDP) || l4 + 8 > end {
        return None;
    }
    let ports = unsafe { &*ptr_at::<[u8; 8]>(ctx, l4)? };
    Some(Inner {
        l3,
        l4,
        proto,
        src,
        dst,
        sport: u16::from_ne_bytes([ports[0], ports[1]]),
        dport: u16::from_ne_bytes([ports[2], ports[3]]),
    })
}

/// Handles an ICMP/ICMPv6 packet; returns a verdict (`ICMP_TO_REAL` with
/// the real server in `CHOSEN` when the caller must forward it).
#[inline(never)]
pub fn handle(ctx: &XdpContext, p: &Packet) -> Verdict {
    let v = tracked(ctx, p);
    // A tracked error at TTL / hop limit <= 1 is not forwarded, nor
    // answered: no ICMP error about an ICMP error (RFC 1122 3.2.2).
    if v != Verdict::PASS && v != Verdict::DROP && crate::fwd::expired(p) {
        count(counters::TTL_EXCEEDED);
        return Verdict::DROP;
    }
    v
}

/// What [`handle`] does with an error of a tracked connection, TTL aside.
#[inline(always)]
fn tracked(ctx: &XdpContext, p: &Packet) -> Verdict {
    // The ICMP header itself within the IP packet (`inner` checks the rest).
    if p.l4_off + 8 > p.l3_off + p.ip_len as usize {
        return Verdict::PASS;
    }
    let Some(t) = ptr_at::<u8>(ctx, p.l4_off) else {
        return Verdict::PASS;
    };
    if !is_error(p, unsafe { *t }) {
        return Verdict::PASS;
    }
    let Some(inn) = inner(ctx, p) else {
        return Verdict::PASS;
    };
    // The embedded packet went out from us to a client.
    let client_key = FlowKey {
        src: inn.dst,
        dst: inn.src,
        sport: inn.dport,
        dport: inn.sport,
        proto: inn.proto,
        family: p.key.family,
        _pad: [0; 2],
    };
    if let Some(c) = crate::conntrack::find(&client_key) {
        let Some(real) = REALS.get(c.real) else {
            return Verdict::PASS;
        };
        if real.flags & REAL_F_IN_USE == 0 || real.generation != c.real_generation {
            return Verdict::PASS;
        }
        if !crate::maps::choose(real, c.real, Default::default()) {
            return Verdict::DROP;
        }
        return Verdict::ICMP_TO_REAL;
    }
    // The embedded packet went out from us to a NAT real server.
    let reply_key = FlowKey {
        src: inn.dst,
        dst: inn.src,
        sport: inn.dport,
        dport: inn.sport,
        proto: inn.proto,
        family: p.key.family,
        _pad: [0; 2],
    };
    if let Some((client, _)) = crate::conntrack::reply_client(&reply_key) {
        let Some(slot) = CHOSEN_CLIENT.get_ptr_mut(0) else {
            return Verdict::DROP;
        };
        unsafe { slot.write(*client) };
        return Verdict::ICMP_TO_CLIENT;
    }
    Verdict::PASS
}

/// NAT: the error goes back to the client (`client` is the connection's
/// client-side tuple) with the VIP as outer source and as the embedded
/// packet's destination.
#[inline(never)]
pub fn nat_to_client(ctx: &XdpContext, p: &Packet, client: &FlowKey) -> Verdict {
    let to = Towards {
        route_src: &client.dst,
        route_dst: &p.key.dst,
        outer: End::Src,
        inner: End::Dst,
        miss: counters::NAT_REPLY_DROP,
    };
    translate_and_send(ctx, p, &to, &client.dst, client.dport, counters::ICMP_REPLY)
}

/// NAT: the error goes to the real server with its address as outer
/// destination and as the embedded packet's source.
#[inline(never)]
pub fn nat_to_real(ctx: &XdpContext, p: &Packet, real: &Real) -> Verdict {
    let to = Towards {
        route_src: &p.key.src,
        route_dst: &real.addr,
        outer: End::Dst,
        inner: End::Src,
        miss: counters::FWD_NO_NEIGH,
    };
    translate_and_send(ctx, p, &to, &real.addr, real.port, counters::ICMP_FWD)
}

/// Which way a translated error goes.
struct Towards<'a> {
    route_src: &'a [u32; 4],
    route_dst: &'a [u32; 4],
    /// The outer address and the embedded end that become `addr`/`port`.
    outer: End,
    inner: End,
    /// Counted when there is no next hop.
    miss: u32,
}

/// Routes first (so a miss leaves the packet as it was), translates (the
/// outer TTL / hop limit one less), sends; `sent` is counted on success.
#[inline(always)]
fn translate_and_send(
    ctx: &XdpContext,
    p: &Packet,
    to: &Towards,
    addr: &[u32; 4],
    port: u16,
    sent: u32,
) -> Verdict {
    let Some(inn) = inner(ctx, p) else {
        return Verdict::PASS;
    };
    let Ok(hop) = xmit::lookup(
        ctx,
        p,
        p.key.proto,
        to.route_src,
        to.route_dst,
        p.ip_len,
        false,
    ) else {
        count(to.miss);
        return Verdict::DROP;
    };
    if translate(ctx, p, &inn, to.outer, addr, to.inner, port).is_none() {
        count(counters::XMIT_ERR);
        return Verdict::DROP;
    }
    let v = xmit::send(ctx, p, &hop);
    if v != Verdict::DROP {
        count(sent);
    }
    v
}

#[inline(always)]
fn swap_addr(ctx: &XdpContext, off: usize, v4: bool, new: &[u32; 4]) -> Option<[u32; 4]> {
    if v4 {
        let a = ptr_at::<u32>(ctx, off)?;
        let old = unsafe { a.read_unaligned() };
        unsafe { a.write_unaligned(new[0]) };
        Some([old, 0, 0, 0])
    } else {
        let a = ptr_at::<[u32; 4]>(ctx, off)?;
        let old = unsafe { a.read_unaligned() };
        unsafe { a.write_unaligned(*new) };
        Some(old)
    }
}

#[inline(always)]
fn sum_addr(c: u16, v4: bool, old: &[u32; 4], new: &[u32; 4]) -> u16 {
    if v4 {
        csum::replace32(c, old[0], new[0])
    } else {
        csum::replace128(c, old, new)
    }
}

/// Rewrites the outer `outer_end` address to `addr` and the embedded
/// packet's `inner_end` address and port to `addr`/`port`, keeping the
/// outer IPv4, embedded IPv4, embedded UDP and ICMP checksums right.
#[inline(always)]
fn translate(
    ctx: &XdpContext,
    p: &Packet,
    inn: &Inner,
    outer_end: End,
    addr: &[u32; 4],
    inner_end: End,
    port: u16,
) -> Option<()> {
    let v4 = p.key.family == AF_INET;
    let icmp_c = ptr_at::<u16>(ctx, p.l4_off + 2)?;
    let mut c = unsafe { icmp_c.read_unaligned() };
    // Outer header.
    let off = match (v4, outer_end) {
        (true, End::Src) => p.l3_off + 12,
        (true, End::Dst) => p.l3_off + 16,
        (false, End::Src) => p.l3_off + 8,
        (false, End::Dst) => p.l3_off + 24,
    };
    let old = swap_addr(ctx, off, v4, addr)?;
    // The outer header is the one forwarded: its TTL / hop limit is one
    // less (the caller checked it was > 1), updated with the address in
    // one checksum update. The TTL and protocol word loaded little-endian
    // (bpfel) drops by one when the TTL does.
    if v4 {
        let w = ptr_at::<[u16; 2]>(ctx, p.l3_off + 8)?;
        let [ttl, ipc] = unsafe { w.read_unaligned() };
        let new_ttl = ttl.wrapping_sub(1);
        let ipc = csum::replace16(csum::replace32(ipc, old[0], addr[0]), ttl, new_ttl);
        unsafe { w.write_unaligned([new_ttl, ipc]) };
    } else {
        // ICMPv6's checksum covers the pseudo-header, not the hop limit.
        c = csum::replace128(c, &old, addr);
        let h = ptr_at::<u8>(ctx, p.l3_off + 7)?;
        unsafe { *h = (*h).wrapping_sub(1) };
    }
    // Embedded header: address, its checksum, port, UDP checksum.
    let off = match (v4, inner_end) {
        (true, End::Src) => inn.l3 + 12,
        (true, End::Dst) => inn.l3 + 16,
        (false, End::Src) => inn.l3 + 8,
        (false, End::Dst) => inn.l3 + 24,
    };
    let old = swap_addr(ctx, off, v4, addr)?;
    c = sum_addr(c, v4, &old, addr);
    if v4 {
        let ipc = ptr_at::<u16>(ctx, inn.l3 + 10)?;
        let o = unsafe { ipc.read_unaligned() };
        let n = csum::replace32(o, old[0], addr[0]);
        unsafe { ipc.write_unaligned(n) };
        c = csum::replace16(c, o, n);
    }
    let (port_off, old_port) = match inner_end {
        End::Src => (inn.l4, inn.sport),
        End::Dst => (inn.l4 + 2, inn.dport),
    };
    let pp = ptr_at::<u16>(ctx, port_off)?;
    unsafe { pp.write_unaligned(port) };
    c = csum::replace16(c, old_port, port);
    if inn.proto == PROTO_UDP {
        let uc = ptr_at::<u16>(ctx, inn.l4 + 6)?;
        let o = unsafe { uc.read_unaligned() };
        if o != 0 {
            let n = csum::udp_fixup(
                o,
                csum::replace16(sum_addr(o, v4, &old, addr), old_port, port),
            );
            unsafe { uc.write_unaligned(n) };
            c = csum::replace16(c, o, n);
        }
    }
    let icmp_c = ptr_at::<u16>(ctx, p.l4_off + 2)?;
    unsafe { icmp_c.write_unaligned(c) };
    Some(())
}
