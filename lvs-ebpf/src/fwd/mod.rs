//! Forwarding to a real server by its method: NAT (`nat`, also the reverse
//! direction), direct routing (`dr`), IP-in-IP tunnelling (`tun`).

pub mod dr;
pub mod nat;
pub mod tun;

use aya_ebpf::programs::XdpContext;
use lvs_common::AF_INET;

use crate::parse::{ptr_at, Packet};

/// Whether the packet may not be fragmented on the way (IPv6 never is).
#[inline(always)]
pub fn dont_fragment(ctx: &XdpContext, p: &Packet) -> bool {
    p.key.family != AF_INET
        || ptr_at::<u8>(ctx, p.l3_off + 6).is_some_and(|b| unsafe { *b } & 0x40 != 0)
}
