//! `lvs decap`: the real server's side of TUN. Strips the outer header of
//! IP-in-IP and IPv6-in-IPv6 packets addressed to this host and passes the
//! inner packet (destined to the VIP on `lo`) to the stack, so real servers
//! need no ipip/ip6tnl device. Everything else passes untouched.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// Map keys are passed by reference on purpose (the 512-byte BPF stack).
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

// The director's bounds-checked view (masked offsets, two-byte minimum
// reads), included as a file rather than linked: linking the `lvs_ebpf`
// library would bring the director's maps into this object.
#[cfg(target_arch = "bpf")]
#[path = "../bounds.rs"]
#[allow(dead_code)]
mod bounds;

#[cfg(target_arch = "bpf")]
mod prog {
    use super::bounds::ptr_at;
    use aya_ebpf::{
        bindings::xdp_action::XDP_PASS,
        helpers::bpf_xdp_adjust_head,
        macros::{map, xdp},
        maps::{HashMap, PerCpuArray},
        programs::XdpContext,
    };
    use lvs_common::{decap_counters as dc, AddrKey, AF_INET, AF_INET6};

    /// The host's own addresses, kept current by `lvs decap`.
    #[map]
    static DECAP_ADDRS: HashMap<AddrKey, u8> = HashMap::pinned(256, 0);

    #[map]
    static DECAP_COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(dc::COUNT, 0);

    const ETH_HLEN: usize = 14;

    #[inline(always)]
    fn count(i: u32) {
        if let Some(c) = DECAP_COUNTERS.get_ptr_mut(i) {
            unsafe { *c += 1 };
        }
    }

    // `frags`: attachable to links with jumbo MTUs (the outer and inner
    // headers lie in the first buffer).
    #[xdp(frags)]
    pub fn decap(ctx: XdpContext) -> u32 {
        count(dc::RX);
        if try_decap(&ctx).is_none() {
            count(dc::NOT_OURS);
        }
        XDP_PASS
    }

    /// `None`: not a tunnelled packet for us (passed untouched).
    #[inline(always)]
    fn try_decap(ctx: &XdpContext) -> Option<()> {
        let eth = unsafe { ptr_at::<[u8; ETH_HLEN]>(ctx, 0)?.read_unaligned() };
        let (outer_len, inner_proto, key) = match u16::from_be_bytes([eth[12], eth[13]]) {
            0x0800 => {
                let h = unsafe { &*ptr_at::<[u8; 20]>(ctx, ETH_HLEN)? };
                let ihl = ((h[0] & 0x0f) as usize) * 4;
                let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
                if h[0] >> 4 != 4 || ihl < 20 || frag != 0 {
                    return None;
                }
                let dst = u32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
                let key = AddrKey {
                    addr: [dst, 0, 0, 0],
                    family: AF_INET,
                    _pad: [0; 3],
                };
                (ihl & 0x3c, h[9], key)
            }
            0x86dd => {
                let h = unsafe { &*ptr_at::<[u8; 40]>(ctx, ETH_HLEN)? };
                let a = |o: usize| u32::from_ne_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
                let key = AddrKey {
                    addr: [a(24), a(28), a(32), a(36)],
                    family: AF_INET6,
                    _pad: [0; 3],
                };
                (40, h[6], key)
            }
            _ => return None,
        };
        let ethertype: u16 = match inner_proto {
            4 => 0x0800,
            41 => 0x86dd,
            _ => return None,
        };
        unsafe { DECAP_ADDRS.get(&key)? };
        // The inner header must be there and of the version announced.
        let v = unsafe { *ptr_at::<u8>(ctx, ETH_HLEN + outer_len)? } >> 4;
        if (ethertype == 0x0800 && v != 4) || (ethertype == 0x86dd && v != 6) {
            return None;
        }
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, outer_len as i32) } != 0 {
            return None;
        }
        let new = ptr_at::<[u8; ETH_HLEN]>(ctx, 0)?;
        let mut e = eth;
        e[12..14].copy_from_slice(&ethertype.to_be_bytes());
        unsafe { new.write_unaligned(e) };
        count(dc::DECAP);
        Some(())
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
