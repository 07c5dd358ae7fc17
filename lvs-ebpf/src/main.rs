//! The production object: the director and the sweeper's kernel half.
//! Everything is in the `lvs_ebpf` library; this file only names the
//! programs `lvs load` loads.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
mod prog {
    use aya_ebpf::{macros::xdp, programs::XdpContext};

    /// Attached to every link of the director.
    #[xdp(frags)]
    pub fn director(ctx: XdpContext) -> u32 {
        lvs_ebpf::director(&ctx)
    }

    /// Run by the sweeper through BPF_PROG_TEST_RUN (see `gc`).
    #[xdp]
    pub fn conn_expire(ctx: XdpContext) -> u32 {
        lvs_ebpf::gc::conn_expire(&ctx)
    }

    #[xdp]
    pub fn conn_fix(ctx: XdpContext) -> u32 {
        lvs_ebpf::gc::conn_fix(&ctx)
    }

    /// Run by a sync backup to insert a synced connection (see `sync`).
    #[xdp]
    pub fn conn_sync(ctx: XdpContext) -> u32 {
        lvs_ebpf::sync::conn_sync(&ctx)
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
