//! Direct routing: the packet keeps its addresses (the real server holds
//! the VIP on a loopback); the MACs change, towards the real server, and
//! the TTL / hop limit is one less, as a router's.

use aya_ebpf::programs::XdpContext;
use lvs_common::counters;

use crate::{
    flow,
    maps::Chosen,
    parse::Packet,
    stats::count,
    verdict::Verdict,
    xmit::{self, Miss},
};

/// Sends the frame to the real server, counted as `dr_fwd` (`icmp_fwd` for
/// an ICMP error of the connection).
#[inline(never)]
pub fn forward(ctx: &XdpContext, p: &Packet, ch: &Chosen) -> Verdict {
    if super::expired(p) {
        return Verdict::TIME_EXCEEDED;
    }
    match xmit::real_hop(
        ctx,
        p,
        ch.idx,
        p.key.proto,
        &p.key.src,
        &ch.real.addr,
        p.ip_len,
        false,
    ) {
        Ok(hop) => {
            if super::dec_ttl(ctx, p).is_none() {
                count(counters::XMIT_ERR);
                return Verdict::DROP;
            }
            let v = xmit::send(ctx, p, &hop);
            if v != Verdict::DROP {
                count(super::sent_counter(p, counters::DR_FWD));
                flow::stage(&ch.cache, &hop, None);
            }
            v
        }
        Err(Miss::FragNeeded(mtu)) if super::dont_fragment(ctx, p) => Verdict::too_big(mtu),
        // Never pass it: its destination is the VIP, a local address, so
        // the director's own stack would answer it. `lvs` resolves the
        // real server's next hop (`REAL_HOPS`, reported in `NEIGH_MISS`);
        // until then, drop and count.
        Err(_) => {
            count(counters::FWD_NO_NEIGH);
            Verdict::DROP
        }
    }
}
