//! Sending a rewritten packet: next hop and MACs from the kernel's FIB and
//! neighbour tables (`bpf_fib_lookup`), then XDP_TX on the same link or a
//! redirect to another.

use aya_ebpf::{
    bindings::{bpf_fib_lookup as FibParams, xdp_action, BPF_FIB_LKUP_RET_SUCCESS},
    helpers::{bpf_fib_lookup, bpf_redirect},
    programs::XdpContext,
};
use lvs_common::AF_INET;

use crate::parse::{ptr_at, Packet};

pub enum Fib {
    /// Next hop resolved; the packet's MACs were rewritten. Carries the
    /// XDP action that sends it.
    Sent(u32),
    /// No neighbour entry (or another FIB failure): the caller decides.
    Miss,
}

/// Looks up the route from `src` to `dst` as if the packet arrived on its
/// ingress link, rewrites the Ethernet header and returns the action.
#[inline(always)]
pub fn route(ctx: &XdpContext, p: &Packet, src: &[u32; 4], dst: &[u32; 4]) -> Fib {
    let mut f: FibParams = unsafe { core::mem::zeroed() };
    f.family = p.family;
    f.l4_protocol = p.proto;
    f.__bindgen_anon_1.tot_len = p.ip_len;
    f.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    if p.family == AF_INET {
        f.__bindgen_anon_3.ipv4_src = src[0];
        f.__bindgen_anon_4.ipv4_dst = dst[0];
    } else {
        f.__bindgen_anon_3.ipv6_src = *src;
        f.__bindgen_anon_4.ipv6_dst = *dst;
    }
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx as *mut _,
            &mut f,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return Fib::Miss;
    }
    let Some(eth) = ptr_at::<[u8; 12]>(ctx, 0) else {
        return Fib::Miss;
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&f.dmac);
    macs[6..].copy_from_slice(&f.smac);
    unsafe { eth.write_unaligned(macs) };
    if f.ifindex == unsafe { (*ctx.ctx).ingress_ifindex } {
        Fib::Sent(xdp_action::XDP_TX)
    } else {
        Fib::Sent(unsafe { bpf_redirect(f.ifindex, 0) } as u32)
    }
}
