//! NAT: DNAT of the forward direction (VIP:vport -> RIP:rport) and reverse
//! NAT of replies (RIP:rport -> VIP:vport), with incremental IPv4 header
//! and L4 checksum updates.

use aya_ebpf::programs::XdpContext;
use lvs_common::{counters, csum, AF_INET, PROTO_TCP};

use crate::{
    clock, conntrack,
    flow::{self, Cacheable},
    maps::Chosen,
    parse::{ptr_at, Packet, TCP_CSUM_OFF, UDP_CSUM_OFF},
    stats::{account, count},
    verdict::Verdict,
    xmit::{self, Miss},
};

/// Client -> real server: the destination becomes the real server's.
#[inline(never)]
pub fn forward(ctx: &XdpContext, p: &Packet, ch: &Chosen) -> Verdict {
    if super::expired(p) {
        return Verdict::TIME_EXCEEDED;
    }
    let real = &ch.real;
    // The route is looked up before the rewrite, so that a "fragmentation
    // needed" can still quote the packet as the client sent it.
    let hop = xmit::lookup_cached(ctx, p, p.key.proto, &p.key.src, &real.addr, p.ip_len, false);
    if let Err(Miss::FragNeeded(mtu)) = hop {
        if super::dont_fragment(ctx, p) {
            return Verdict::too_big(mtu);
        }
    }
    if rewrite(ctx, p, End::Dst, &real.addr, real.port).is_none() {
        count(counters::XMIT_ERR);
        return Verdict::DROP;
    }
    match hop {
        Ok(h) => {
            if super::dec_ttl(ctx, p).is_none() {
                count(counters::XMIT_ERR);
                return Verdict::DROP;
            }
            let v = xmit::send(ctx, p, &h);
            if v != Verdict::DROP {
                count(counters::NAT_FWD);
                let rw = flow::Rewrite {
                    addr: real.addr[0],
                    port: real.port,
                    inbound: true,
                };
                flow::stage(&ch.cache, &h, Some(&rw));
            }
            v
        }
        // The kernel routes the already rewritten packet (fragmenting it
        // if it must) and resolves the neighbour; `lvs` keeps real
        // servers' neighbours resolved so this is rare.
        Err(_) => {
            count(counters::NAT_FWD_FIB_PASS);
            Verdict::PASS
        }
    }
}

/// Real server -> client of a NAT connection: restore VIP:vport as source.
/// Anything else not addressed to a service is not ours and passes.
#[inline(never)]
pub fn reply(ctx: &XdpContext, p: &Packet) -> Verdict {
    let Some((client, embryo)) = conntrack::reply_client(&p.key) else {
        count(counters::PASS);
        return Verdict::PASS;
    };
    // Not forwarded at TTL <= 1: untranslated, the kernel (which routes
    // between the real servers and clients for NAT) answers the real
    // server with time exceeded, as a router does.
    if p.ttl <= 1 {
        count(counters::TTL_EXCEEDED);
        return Verdict::PASS;
    }
    // Used in place (also as the key of `CONNS`): a map value stays valid
    // for the whole run.
    let hop = match xmit::lookup_cached(
        ctx,
        p,
        p.key.proto,
        &client.dst,
        &p.key.dst,
        p.ip_len,
        false,
    ) {
        Ok(hop) => hop,
        // Still untranslated: the kernel tells the real server to use a
        // smaller MTU, as a router would.
        Err(Miss::FragNeeded(_)) if super::dont_fragment(ctx, p) => {
            count(counters::PASS);
            return Verdict::PASS;
        }
        // Never hand a packet whose source is the VIP to the kernel: it
        // would drop it as a martian. Drop and count instead.
        Err(_) => {
            count(counters::NAT_REPLY_DROP);
            return Verdict::DROP;
        }
    };
    let mut cache = Cacheable::default();
    if let Some(c) = conntrack::reply_conn(p, client, embryo) {
        conntrack::touch(c, p, false, clock::now());
        let (svc_id, real, st) =
            unsafe { ((*c).svc_id, (*c).real, core::ptr::read_volatile(&(*c).st)) };
        account(svc_id, real, false, p.ip_len as u64, false);
        cache = Cacheable {
            svc_id,
            real,
            ok: flow::cacheable(p, st),
        };
    }
    if rewrite(ctx, p, End::Src, &client.dst, client.dport).is_none()
        || super::dec_ttl(ctx, p).is_none()
    {
        count(counters::XMIT_ERR);
        return Verdict::DROP;
    }
    let v = xmit::send(ctx, p, &hop);
    if v != Verdict::DROP {
        count(counters::NAT_REPLY);
        let rw = flow::Rewrite {
            addr: client.dst[0],
            port: client.dport,
            inbound: false,
        };
        flow::stage(&cache, &hop, Some(&rw));
    }
    v
}

/// Which end of the packet to rewrite.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

/// Rewrites one end's address and port. `None` if the packet is shorter
/// than the parser promised (cannot happen; the verifier wants the checks).
#[inline(always)]
pub fn rewrite(ctx: &XdpContext, p: &Packet, end: End, addr: &[u32; 4], port: u16) -> Option<()> {
    let (old_addr, old_port) = match end {
        End::Src => (p.key.src, p.key.sport),
        End::Dst => (p.key.dst, p.key.dport),
    };
    let l4_csum_off = p.l4_off
        + if p.key.proto == PROTO_TCP {
            TCP_CSUM_OFF
        } else {
            UDP_CSUM_OFF
        };
    let l4c = ptr_at::<u16>(ctx, l4_csum_off)?;
    let old_l4 = unsafe { l4c.read_unaligned() };
    let mut new_l4;
    if p.key.family == AF_INET {
        let ip_addr_off = p.l3_off + if end == End::Src { 12 } else { 16 };
        let a = ptr_at::<u32>(ctx, ip_addr_off)?;
        let ipc = ptr_at::<u16>(ctx, p.l3_off + 10)?;
        unsafe {
            a.write_unaligned(addr[0]);
            ipc.write_unaligned(csum::replace32(ipc.read_unaligned(), old_addr[0], addr[0]));
        }
        new_l4 = csum::replace32(old_l4, old_addr[0], addr[0]);
    } else {
        let ip_addr_off = p.l3_off + if end == End::Src { 8 } else { 24 };
        let a = ptr_at::<[u32; 4]>(ctx, ip_addr_off)?;
        unsafe { a.write_unaligned(*addr) };
        new_l4 = csum::replace128(old_l4, &old_addr, addr);
    }
    let port_off = p.l4_off + if end == End::Src { 0 } else { 2 };
    let pp = ptr_at::<u16>(ctx, port_off)?;
    unsafe { pp.write_unaligned(port) };
    new_l4 = csum::replace16(new_l4, old_port, port);
    if p.key.proto != PROTO_TCP {
        new_l4 = csum::udp_fixup(old_l4, new_l4);
    }
    // Re-derive the pointer: the verifier forgets packet bounds across the
    // writes above on some kernels.
    let l4c = ptr_at::<u16>(ctx, l4_csum_off)?;
    unsafe { l4c.write_unaligned(new_l4) };
    Some(())
}
