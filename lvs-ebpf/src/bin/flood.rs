//! The flood generator: run with BPF_PROG_TEST_RUN in live-frames mode
//! (`lvs::floodgen`), it turns each frame into the template of its
//! `FLOOD` map with a pseudo-random source address and port from the
//! configured ranges, fixes the IPv4 header and TCP/UDP checksums
//! incrementally, and transmits it (XDP_TX sends it out of the link the
//! run names). Live mode repeats one frame; this makes every one a new
//! flow, as a spoofed SYN or UDP flood is.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

// The director's bounds-checked view, included as a file rather than
// linked (as `lvs decap` does): linking the `lvs_ebpf` library would bring
// the director's maps into this object, and loading it would pin them.
#[cfg(target_arch = "bpf")]
#[path = "../bounds.rs"]
#[allow(dead_code)]
mod bounds;

#[cfg(target_arch = "bpf")]
mod prog {
    use super::bounds::ptr_at;
    use aya_ebpf::{
        bindings::xdp_action,
        helpers::bpf_get_prandom_u32,
        macros::{map, xdp},
        maps::Array,
        programs::XdpContext,
    };
    use lvs_common::{
        csum::{replace16, replace32, udp_fixup},
        flood::{FloodGen, HEAD},
        PROTO_TCP, PROTO_UDP,
    };

    #[map]
    static FLOOD: Array<FloodGen> = Array::with_max_entries(1, 0);

    // Offsets in the template: Ethernet (14), IPv4 without options (20).
    const IP_PROTO: usize = 23;
    const IP_CHECK: usize = 24;
    const IP_SRC: usize = 26;
    const L4: usize = 34;

    #[xdp]
    pub fn flood(ctx: XdpContext) -> u32 {
        let Some(g) = FLOOD.get(0) else {
            return xdp_action::XDP_ABORTED;
        };
        let Some(head) = ptr_at::<[u64; HEAD / 8]>(&ctx, 0) else {
            return xdp_action::XDP_ABORTED;
        };
        // Word copies: a plain 64-byte copy becomes a byte loop on BPF.
        let head = head as *mut u64;
        for i in 0..HEAD / 8 {
            unsafe { head.add(i).write_volatile(g.head[i]) };
        }
        let r = unsafe { bpf_get_prandom_u32() };
        let src = g.src_base.wrapping_add(r & g.src_mask).to_be();
        let r = unsafe { bpf_get_prandom_u32() } as u16;
        let port = g.port_base.wrapping_add(r & g.port_mask).to_be();
        let old_src = g.src_base.to_be();
        let old_port = g.port_base.to_be();
        let base = head as *mut u8;
        // SAFETY: every offset lies in the first HEAD bytes, checked above.
        unsafe {
            let proto = *base.add(IP_PROTO);
            let ipc = base.add(IP_CHECK) as *mut u16;
            ipc.write_unaligned(replace32(ipc.read_unaligned(), old_src, src));
            (base.add(IP_SRC) as *mut u32).write_unaligned(src);
            (base.add(L4) as *mut u16).write_unaligned(port);
            // The pseudo-header holds the source address; the port is in
            // the L4 header itself.
            let l4c = if proto == PROTO_TCP {
                base.add(L4 + 16) as *mut u16
            } else if proto == PROTO_UDP {
                base.add(L4 + 6) as *mut u16
            } else {
                return xdp_action::XDP_TX;
            };
            let old = l4c.read_unaligned();
            let new = replace16(replace32(old, old_src, src), old_port, port);
            let new = if proto == PROTO_UDP {
                udp_fixup(old, new)
            } else {
                new
            };
            l4c.write_unaligned(new);
        }
        xdp_action::XDP_TX
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
