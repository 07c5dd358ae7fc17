//! Save/restore of the frame head for the benchmark wrapper programs.

use aya_ebpf::{
    helpers::bpf_xdp_adjust_head, macros::map, maps::PerCpuArray, programs::XdpContext,
};

use crate::parse::ptr_at;

/// Bytes restored after each run: every header the director rewrites fits.
pub const SAVED: usize = 64;

/// Per-CPU scratch holding the saved head and the frame length.
#[repr(C)]
pub struct Scratch {
    head: [u8; SAVED],
    len: u64,
}

#[map]
static BENCH_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Nothing is kept on the stack across the director's run.
pub struct Saved;

#[inline(always)]
pub fn save(ctx: &XdpContext) -> Option<Saved> {
    let buf = BENCH_SCRATCH.get_ptr_mut(0)?;
    let head = ptr_at::<[u8; SAVED]>(ctx, 0)?;
    unsafe {
        (*buf).head = *head;
        (*buf).len = crate::parse::frame_len(ctx) as u64;
    }
    Some(Saved)
}

#[inline(never)]
pub fn restore(ctx: &XdpContext, _s: Saved) {
    let Some(buf) = BENCH_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let len = unsafe { (*buf).len } as usize;
    // Undo an encapsulation (adjust_head by a negative delta).
    let now = crate::parse::frame_len(ctx);
    if now > len {
        let delta = (now - len) as i32;
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
            return;
        }
    }
    if let Some(head) = ptr_at::<[u8; SAVED]>(ctx, 0) {
        unsafe { *head = (*buf).head };
    }
}
