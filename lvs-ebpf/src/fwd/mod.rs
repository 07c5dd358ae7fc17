//! Forwarding to a real server by its method: NAT (`nat`, also the reverse
//! direction), direct routing (`dr`), IP-in-IP tunnelling (`tun`).

pub mod dr;
pub mod nat;
pub mod tun;

use aya_ebpf::programs::XdpContext;
use lvs_common::{csum, AF_INET};

use crate::parse::{ptr_at, Packet};

/// Whether the packet may not be fragmented on the way (IPv6 never is).
#[inline(always)]
pub fn dont_fragment(ctx: &XdpContext, p: &Packet) -> bool {
    p.key.family != AF_INET
        || ptr_at::<u8>(ctx, p.l3_off + 6).is_some_and(|b| unsafe { *b } & 0x40 != 0)
}

/// Decrements the TTL (IPv4, updating the header checksum incrementally)
/// or the hop limit (IPv6) of the IP header at `p.l3_off`, as a router and
/// IPVS do for every packet they forward. The caller checked it was > 1.
#[inline(always)]
pub fn dec_ttl(ctx: &XdpContext, p: &Packet) -> Option<()> {
    if p.key.family == AF_INET {
        // TTL and protocol: one 16-bit word of the checksum.
        let w = ptr_at::<[u8; 4]>(ctx, p.l3_off + 8)?;
        let old = unsafe { w.read_unaligned() };
        let mut new = old;
        new[0] = old[0].wrapping_sub(1);
        let c = u16::from_ne_bytes([old[2], old[3]]);
        let c = csum::replace16(
            c,
            u16::from_ne_bytes([old[0], old[1]]),
            u16::from_ne_bytes([new[0], new[1]]),
        );
        [new[2], new[3]] = c.to_ne_bytes();
        unsafe { w.write_unaligned(new) };
    } else {
        let h = ptr_at::<u8>(ctx, p.l3_off + 7)?;
        unsafe { *h = (*h).wrapping_sub(1) };
    }
    Some(())
}

/// What a forwarded packet is counted as: `forwarded` (its method's
/// counter), or `icmp_fwd` for an ICMP error of a connection sent to its
/// real server.
#[inline(always)]
pub fn sent_counter(p: &Packet, forwarded: u32) -> u32 {
    if p.key.proto == crate::parse::PROTO_ICMP || p.key.proto == crate::parse::PROTO_ICMPV6 {
        lvs_common::counters::ICMP_FWD
    } else {
        forwarded
    }
}

/// Whether the packet may not be forwarded: TTL / hop limit <= 1. The
/// forwarding paths then answer with time exceeded (`Verdict::TIME_EXCEEDED`)
/// before changing anything, as IPVS's `decrement_ttl`.
#[inline(always)]
pub fn expired(p: &Packet) -> bool {
    p.ttl <= 1
}
