//! Baselines for `cargo xtask bench`: the cheapest XDP programs, measured
//! in the same run as the director so its cost is reported as a ratio.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
mod prog {
    use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

    #[xdp]
    pub fn bench_drop(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_DROP
    }

    /// Swaps the Ethernet addresses and bounces the frame: the floor for any
    /// program that transmits.
    #[xdp]
    pub fn bench_swap(ctx: XdpContext) -> u32 {
        let start = ctx.data();
        if start + 12 > ctx.data_end() {
            return xdp_action::XDP_DROP;
        }
        let eth = start as *mut [u8; 12];
        unsafe {
            let mut m = *eth;
            m.rotate_left(6);
            *eth = m;
        }
        xdp_action::XDP_TX
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
