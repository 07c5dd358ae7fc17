//! The production object: the director and the sweeper's kernel half.
//! Everything is in the `lvs_ebpf` library; this file only names the
//! programs `lvs load` loads.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

/// Which build of the director this is: `lvs load` sets it as it loads the
/// object (aya's `override_global`; by default a hash of the object), so
/// the running program says which build it is through its `.rodata` map,
/// which the director references anyway (IPVS's TCP state table lives
/// there too). Read only by the sweeper's `conn_expire` (run from userspace
/// for connections that look expired): it costs the packet path nothing.
#[cfg(target_arch = "bpf")]
#[no_mangle]
pub static BUILD_ID: u64 = 0;

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
        // A volatile read keeps BUILD_ID in the object (see its comment).
        // SAFETY: a plain read of an immutable global.
        let _ = unsafe { core::ptr::read_volatile(&super::BUILD_ID) };
        lvs_ebpf::gc::conn_expire(&ctx)
    }

    #[xdp]
    pub fn conn_fix(ctx: XdpContext) -> u32 {
        lvs_ebpf::gc::conn_fix(&ctx)
    }

    /// Run by the sweeper through BPF_PROG_TEST_RUN, one slice of the walk
    /// of `CONNS` or `EMBRYOS` per run (see `sweep`).
    #[xdp]
    pub fn conn_sweep(ctx: XdpContext) -> u32 {
        lvs_ebpf::sweep::conn_sweep(&ctx)
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
