//! An XDP program that passes everything. `lvs pass` attaches it to the
//! peers of the director's veth links: a veth delivers XDP_TX/redirected
//! frames promptly only when its peer runs an XDP program.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
mod prog {
    use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

    // `frags`: attachable to links with jumbo MTUs.
    #[xdp(frags)]
    pub fn pass(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
