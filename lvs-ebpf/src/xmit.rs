//! Sending a rewritten packet: next hop and MACs from the kernel's FIB and
//! neighbour tables (`bpf_fib_lookup`), or for DR and TUN from the real
//! server's `REAL_HOPS` entry that `lvs load` keeps (`real_hop`), then
//! XDP_TX on the same link or a redirect to another.

use aya_ebpf::{
    bindings::{
        bpf_fib_lookup as FibParams, BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH,
        BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SRC,
    },
    helpers::{bpf_fib_lookup, bpf_redirect, bpf_xdp_adjust_head},
    macros::map,
    maps::LruPerCpuHashMap,
    programs::XdpContext,
};
use lvs_common::{AddrKey, NextHop, AF_INET};

use crate::{
    maps::{CONFIG, NEIGH_MISS, REAL_HOPS, VLAN_OUT},
    parse::{ptr_at, Packet, ETH_HLEN, ETH_P_8021Q, VLAN_HLEN},
    verdict::Verdict,
};

/// A resolved next hop.
pub struct Hop {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// The source address the kernel would use on that route (only when
    /// asked for with `want_src`).
    pub src: [u32; 4],
}

pub enum Miss {
    /// The packet (`tot_len`) exceeds the route's MTU, which is given.
    FragNeeded(u16),
    /// No route, no neighbour entry, forwarding disabled, ...
    Other,
}

/// A next hop remembered per CPU, so established traffic does not pay a
/// FIB and neighbour lookup per packet.
#[derive(Clone, Copy)]
pub struct CachedHop {
    in_ifindex: u32,
    out_ifindex: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u32; 4],
    /// The largest packet this route took without "fragmentation needed".
    ok_len: u16,
    with_src: u8,
    _pad: u8,
    at: u64,
}

/// How long a cached next hop is used: a route or neighbour change takes
/// effect within this time.
const HOP_TTL_NS: u64 = 1_000_000_000;

/// Next hops by destination (per CPU, LRU).
#[map]
static HOPS: LruPerCpuHashMap<AddrKey, CachedHop> = LruPerCpuHashMap::with_max_entries(4096, 0);

/// [`lookup`] through the per-CPU next-hop cache.
#[inline(always)]
pub fn lookup_cached(
    ctx: &XdpContext,
    p: &Packet,
    proto: u8,
    src: &[u32; 4],
    dst: &[u32; 4],
    tot_len: u16,
    want_src: bool,
) -> Result<Hop, Miss> {
    let key = AddrKey {
        addr: *dst,
        family: p.key.family,
        _pad: [0; 3],
    };
    let now = crate::clock::now();
    let ingress = p.fib_in;
    if let Some(c) = unsafe { HOPS.get(&key) } {
        if c.in_ifindex == ingress
            && tot_len <= c.ok_len
            && (!want_src || c.with_src != 0)
            && now.wrapping_sub(c.at) < HOP_TTL_NS
        {
            return Ok(Hop {
                ifindex: c.out_ifindex,
                smac: c.smac,
                dmac: c.dmac,
                src: c.src,
            });
        }
    }
    let hop = lookup(ctx, p, proto, src, dst, tot_len, want_src)?;
    let entry = CachedHop {
        in_ifindex: ingress,
        out_ifindex: hop.ifindex,
        smac: hop.smac,
        dmac: hop.dmac,
        src: hop.src,
        ok_len: tot_len,
        with_src: want_src as u8,
        _pad: 0,
        at: now,
    };
    let _ = HOPS.insert(&key, &entry, 0);
    Ok(hop)
}

/// The next hop towards real server `idx` (of `REALS`) at `dst`: its
/// `REAL_HOPS` entry when `lvs load` keeps one for that address, which
/// works with forwarding off; otherwise the FIB, through the per-CPU cache
/// (`lookup_cached`: forwarding on, or no `lvs load` to fill the entry, as
/// in BPF_PROG_TEST_RUN fixtures). When neither has one the destination
/// is reported in `NEIGH_MISS`, so that `lvs load` resolves it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn real_hop(
    ctx: &XdpContext,
    p: &Packet,
    idx: u32,
    proto: u8,
    src: &[u32; 4],
    dst: &[u32; 4],
    tot_len: u16,
    want_src: bool,
) -> Result<Hop, Miss> {
    if let Some(kept) = kept_hop(idx, dst, tot_len, want_src) {
        return kept;
    }
    let r = lookup_cached(ctx, p, proto, src, dst, tot_len, want_src);
    if let Err(Miss::Other) = r {
        report_miss(dst, p.key.family);
    }
    r
}

/// Real server `idx`'s `REAL_HOPS` entry for `dst`, with the MTU check the
/// FIB makes; `None` without a current copy for that address (or, with
/// `want_src`, without a source address).
#[inline(always)]
fn kept_hop(idx: u32, dst: &[u32; 4], tot_len: u16, want_src: bool) -> Option<Result<Hop, Miss>> {
    // Through raw pointers, each field loaded once: `lvs load` rewrites
    // the value in place (the copy not named by the `seq` loaded here).
    let v = REAL_HOPS.get_ptr(idx)?;
    let (seq, copies) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*v).seq)),
            core::ptr::addr_of!((*v).copies),
        )
    };
    let c: *const NextHop = match seq {
        0 => return None,
        s if s & 1 == 0 => copies.cast(),
        _ => unsafe { copies.cast::<NextHop>().add(1) },
    };
    let (addr, src, mtu) = unsafe {
        (
            core::ptr::read(core::ptr::addr_of!((*c).addr)),
            core::ptr::read(core::ptr::addr_of!((*c).src)),
            core::ptr::read(core::ptr::addr_of!((*c).mtu)),
        )
    };
    if addr != *dst || (want_src && src == [0; 4]) {
        return None;
    }
    if tot_len as u32 > mtu {
        return Some(Err(Miss::FragNeeded(mtu as u16)));
    }
    let (ifindex, smac, dmac) = unsafe {
        (
            core::ptr::read(core::ptr::addr_of!((*c).ifindex)),
            core::ptr::read(core::ptr::addr_of!((*c).smac)),
            core::ptr::read(core::ptr::addr_of!((*c).dmac)),
        )
    };
    Some(Ok(Hop {
        ifindex,
        smac,
        dmac,
        src,
    }))
}

/// Tells `lvs load` that `dst` had no next hop (`NEIGH_MISS`).
#[inline(always)]
fn report_miss(dst: &[u32; 4], family: u8) {
    let key = AddrKey {
        addr: *dst,
        family,
        _pad: [0; 3],
    };
    let now = crate::clock::now();
    let _ = NEIGH_MISS.insert(&key, &now, 0);
}

/// One FIB lookup as if the packet arrived on its ingress link.
#[inline(always)]
pub fn lookup(
    ctx: &XdpContext,
    p: &Packet,
    proto: u8,
    src: &[u32; 4],
    dst: &[u32; 4],
    tot_len: u16,
    want_src: bool,
) -> Result<Hop, Miss> {
    let family = p.key.family;
    let mut f: FibParams = unsafe { core::mem::zeroed() };
    f.family = family;
    f.l4_protocol = proto;
    f.__bindgen_anon_1.tot_len = tot_len;
    f.ifindex = p.fib_in;
    if family == AF_INET {
        f.__bindgen_anon_3.ipv4_src = src[0];
        f.__bindgen_anon_4.ipv4_dst = dst[0];
    } else {
        f.__bindgen_anon_3.ipv6_src = *src;
        f.__bindgen_anon_4.ipv6_dst = *dst;
    }
    let flags = if want_src { BPF_FIB_LOOKUP_SRC } else { 0 };
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx as *mut _,
            &mut f,
            core::mem::size_of::<FibParams>() as i32,
            flags,
        )
    };
    if rc == BPF_FIB_LKUP_RET_FRAG_NEEDED as i64 {
        return Err(Miss::FragNeeded(unsafe { f.__bindgen_anon_1.mtu_result }));
    }
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        if rc == BPF_FIB_LKUP_RET_NO_NEIGH as i64 {
            report_miss(dst, family);
        }
        return Err(Miss::Other);
    }
    let src = if family == AF_INET {
        [unsafe { f.__bindgen_anon_3.ipv4_src }, 0, 0, 0]
    } else {
        unsafe { f.__bindgen_anon_3.ipv6_src }
    };
    Ok(Hop {
        ifindex: f.ifindex,
        smac: f.smac,
        dmac: f.dmac,
        src,
    })
}

/// Writes the hop's MACs into the frame and returns the action that sends
/// it: XDP_TX on the ingress link, a redirect otherwise. A hop out of a
/// VLAN sub-interface leaves through its parent link with the VLAN's tag
/// (pushed, or the tag the frame came with rewritten); a tagged frame to
/// an untagged link loses its tag.
#[inline(always)]
pub fn send(ctx: &XdpContext, p: &Packet, hop: &Hop) -> Verdict {
    let (dev, vid) = egress(hop.ifindex);
    // (Counted here: the callers count only what was sent.)
    let Some(eth) = retag(ctx, p.tagged, vid).and_then(|_| ptr_at::<[u8; 12]>(ctx, 0)) else {
        crate::stats::count(lvs_common::counters::XMIT_ERR);
        return Verdict::DROP;
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&hop.dmac);
    macs[6..].copy_from_slice(&hop.smac);
    unsafe { eth.write_unaligned(macs) };
    if dev == p.ingress {
        Verdict::TX
    } else {
        Verdict::action(unsafe { bpf_redirect(dev, 0) } as u32)
    }
}

/// The link a frame for `ifindex` leaves by, and its VLAN id if `ifindex`
/// is a VLAN sub-interface (`lvs load` keeps `VLAN_OUT`; without VLANs
/// there is no lookup).
#[inline(always)]
pub fn egress(ifindex: u32) -> (u32, Option<u16>) {
    if CONFIG.get(0).is_none_or(|c| c.vlans == 0) {
        return (ifindex, None);
    }
    match unsafe { VLAN_OUT.get(&ifindex) } {
        Some(d) => (d.parent, Some(d.vid)),
        None => (ifindex, None),
    }
}

/// Makes the frame's tag what the egress wants: `vid` (tagged) or none.
/// The MACs are left for the caller to write.
#[inline(always)]
fn retag(ctx: &XdpContext, tagged: bool, vid: Option<u16>) -> Option<()> {
    match (tagged, vid) {
        (false, None) => {}
        (true, Some(vid)) => {
            // The VLAN id changes; priority and DEI bits stay.
            let tci = ptr_at::<u16>(ctx, ETH_HLEN)?;
            let old = u16::from_be(unsafe { tci.read_unaligned() });
            unsafe { tci.write_unaligned(((old & 0xf000) | (vid & 0x0fff)).to_be()) };
        }
        // Pop: the frame starts 4 bytes later, where the ethertype after
        // the tag lands at offset 12; the MACs are written afresh.
        (true, None) => {
            if unsafe { bpf_xdp_adjust_head(ctx.ctx, VLAN_HLEN as i32) } != 0 {
                return None;
            }
        }
        // Push: 4 bytes more in front; the old MACs' place takes the tag,
        // the ethertype stays where it was relative to the IP header.
        (false, Some(vid)) => {
            if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(VLAN_HLEN as i32)) } != 0 {
                return None;
            }
            let tag = ptr_at::<[u16; 2]>(ctx, 12)?;
            unsafe { tag.write_unaligned([ETH_P_8021Q.to_be(), (vid & 0x0fff).to_be()]) };
        }
    }
    Some(())
}
