//! TUN forwarding: IP-in-IP (IPv4) and IPv6-in-IPv6 encapsulation towards
//! the real server, which decapsulates (kernel ipip/ip6tnl device, or
//! `lvs decap`) and answers the client directly.

use aya_ebpf::{helpers::bpf_xdp_adjust_head, programs::XdpContext};
use lvs_common::{counters, csum, Config, AF_INET};

use crate::{
    flow,
    maps::Chosen,
    parse::{ptr_at, Packet, ETH_HLEN, ETH_P_8021Q, VLAN_HLEN},
    stats::count,
    verdict::Verdict,
    xmit::{self, Miss},
};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;

// A call of its own: its headers and FIB parameters need a stack frame
// that the NAT and DR paths do not share.
#[inline(never)]
pub fn forward(ctx: &XdpContext, p: &Packet, ch: &Chosen, cfg: Option<&Config>) -> Verdict {
    if super::expired(p) {
        return Verdict::TIME_EXCEEDED;
    }
    let real = &ch.real;
    let v4 = p.key.family == AF_INET;
    let overhead: u16 = if v4 { 20 } else { 40 };
    let tot = p.ip_len.saturating_add(overhead);
    let (cfg_src, cfg_mtu) = match cfg {
        Some(c) if v4 => ([c.tunnel_src4, 0, 0, 0], c.tunnel_mtu),
        Some(c) => (c.tunnel_src6, c.tunnel_mtu),
        None => ([0; 4], 0),
    };
    let want_src = cfg_src == [0; 4];
    let proto = if v4 { IPPROTO_IPIP } else { IPPROTO_IPV6 };
    let hop = match xmit::real_hop(ctx, p, ch.idx, proto, &cfg_src, &real.addr, tot, want_src) {
        Ok(h) => h,
        Err(Miss::FragNeeded(mtu)) => return too_big(ctx, p, mtu.saturating_sub(overhead)),
        Err(Miss::Other) => {
            count(counters::FWD_NO_NEIGH);
            return Verdict::DROP;
        }
    };
    if cfg_mtu != 0 && tot as u32 > cfg_mtu {
        return too_big(ctx, p, (cfg_mtu as u16).saturating_sub(overhead));
    }
    let src = if want_src { hop.src } else { cfg_src };
    // The inner packet is the one forwarded: its TTL is one less (the
    // outer header's is 64).
    let ok = if super::dec_ttl(ctx, p).is_none() {
        None
    } else if v4 {
        encap4(ctx, p, &src, &real.addr)
    } else {
        encap6(ctx, p, &src, &real.addr)
    };
    if ok.is_none() {
        count(counters::XMIT_ERR);
        return Verdict::DROP;
    }
    let v = xmit::send(ctx, p, &hop);
    if v != Verdict::DROP {
        count(super::sent_counter(p, counters::TUN_FWD));
        if v4 {
            flow::stage_tunnel(&ch.cache, &hop, src[0], real.addr[0]);
        }
    }
    v
}

/// A packet too big for the tunnel: with DF (always, for IPv6) the client
/// is told the usable MTU; without DF it cannot be fragmented here.
#[inline(always)]
fn too_big(ctx: &XdpContext, p: &Packet, mtu: u16) -> Verdict {
    if !super::dont_fragment(ctx, p) {
        count(counters::XMIT_ERR);
        return Verdict::DROP;
    }
    Verdict::too_big(mtu)
}

/// The L2 header in front of the new outer header: Ethernet (MACs are
/// written by `xmit::send`), with the frame's VLAN tag kept when it had
/// one (`xmit::send` then rewrites or pops it for the egress). Returns the
/// outer header's offset. `tci` is the tag read before the head moved.
#[inline(always)]
fn put_l2(ctx: &XdpContext, p: &Packet, tci: u16, ethertype: u16) -> Option<usize> {
    if p.tagged {
        let h = ptr_at::<[u16; 3]>(ctx, 12)?;
        unsafe { h.write_unaligned([ETH_P_8021Q.to_be(), tci, ethertype.to_be()]) };
        Some(ETH_HLEN + VLAN_HLEN)
    } else {
        let h = ptr_at::<u16>(ctx, 12)?;
        unsafe { h.write_unaligned(ethertype.to_be()) };
        Some(ETH_HLEN)
    }
}

/// The frame's VLAN TCI as it lies in the frame (0 if untagged), and
/// whether its IP header sits where one tag or none puts it.
#[inline(always)]
fn l2_of(ctx: &XdpContext, p: &Packet) -> Option<u16> {
    if p.tagged {
        (p.l3_off == ETH_HLEN + VLAN_HLEN).then_some(())?;
        Some(unsafe { ptr_at::<u16>(ctx, ETH_HLEN)?.read_unaligned() })
    } else {
        (p.l3_off == ETH_HLEN).then_some(0)
    }
}

#[inline(always)]
fn encap4(ctx: &XdpContext, p: &Packet, src: &[u32; 4], dst: &[u32; 4]) -> Option<()> {
    let tci = l2_of(ctx, p)?;
    let inner = unsafe { *ptr_at::<[u8; 8]>(ctx, p.l3_off)? };
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -20) } != 0 {
        return None;
    }
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[1] = inner[1]; // TOS
    ip[2..4].copy_from_slice(&(p.ip_len + 20).to_be_bytes());
    ip[6] = inner[6] & 0x40; // DF, copied from the inner packet
    ip[8] = 64;
    ip[9] = IPPROTO_IPIP;
    ip[12..16].copy_from_slice(&src[0].to_ne_bytes());
    ip[16..20].copy_from_slice(&dst[0].to_ne_bytes());
    let c = csum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_ne_bytes());
    let at = put_l2(ctx, p, tci, 0x0800)?;
    let head = ptr_at::<[u8; 20]>(ctx, at)?;
    unsafe { head.write_unaligned(ip) };
    Some(())
}

#[inline(always)]
fn encap6(ctx: &XdpContext, p: &Packet, src: &[u32; 4], dst: &[u32; 4]) -> Option<()> {
    let tci = l2_of(ctx, p)?;
    let inner = unsafe { *ptr_at::<[u8; 4]>(ctx, p.l3_off)? };
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -40) } != 0 {
        return None;
    }
    let mut ip = [0u8; 40];
    // Version 6, the inner traffic class, flow label 0.
    ip[0] = 0x60 | (inner[0] & 0x0f);
    ip[1] = inner[1] & 0xf0;
    ip[4..6].copy_from_slice(&p.ip_len.to_be_bytes());
    ip[6] = IPPROTO_IPV6;
    ip[7] = 64;
    for i in 0..4 {
        ip[8 + i * 4..12 + i * 4].copy_from_slice(&src[i].to_ne_bytes());
        ip[24 + i * 4..28 + i * 4].copy_from_slice(&dst[i].to_ne_bytes());
    }
    let at = put_l2(ctx, p, tci, 0x86dd)?;
    let head = ptr_at::<[u8; 40]>(ctx, at)?;
    unsafe { head.write_unaligned(ip) };
    Some(())
}
