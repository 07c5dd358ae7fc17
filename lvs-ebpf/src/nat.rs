//! NAT rewrites: DNAT of the forward direction (VIP:vport -> RIP:rport) and
//! reverse NAT of replies (RIP:rport -> VIP:vport), with incremental IPv4
//! header and L4 checksum updates.

use aya_ebpf::programs::XdpContext;
use lvs_common::{csum, AF_INET, PROTO_TCP};

use crate::parse::{ptr_at, Packet, TCP_CSUM_OFF, UDP_CSUM_OFF};

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
        End::Src => (p.src, p.sport),
        End::Dst => (p.dst, p.dport),
    };
    let l4_csum_off = p.l4_off
        + if p.proto == PROTO_TCP {
            TCP_CSUM_OFF
        } else {
            UDP_CSUM_OFF
        };
    let l4c = ptr_at::<u16>(ctx, l4_csum_off)?;
    let old_l4 = unsafe { l4c.read_unaligned() };
    let mut new_l4;
    if p.family == AF_INET {
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
    if p.proto != PROTO_TCP {
        new_l4 = csum::udp_fixup(old_l4, new_l4);
    }
    // Re-derive the pointer: the verifier forgets packet bounds across the
    // writes above on some kernels.
    let l4c = ptr_at::<u16>(ctx, l4_csum_off)?;
    unsafe { l4c.write_unaligned(new_l4) };
    Some(())
}
