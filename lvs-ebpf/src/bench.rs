//! Save/restore of the frame head for the benchmark wrapper programs.

use aya_ebpf::{
    helpers::bpf_xdp_adjust_head, macros::map, maps::PerCpuArray, programs::XdpContext,
};

use crate::parse::ptr_at;

/// Bytes restored after each run: every header the director rewrites fits.
pub const SAVED: usize = 64;

/// Per-CPU scratch holding the saved head (too large for the BPF stack
/// next to the director's own frame).
#[map]
static BENCH_SCRATCH: PerCpuArray<[u8; SAVED]> = PerCpuArray::with_max_entries(1, 0);

/// What `restore` needs: where the head was saved and the frame's length.
pub struct Saved {
    buf: *mut [u8; SAVED],
    len: usize,
}

#[inline(always)]
pub fn save(ctx: &XdpContext) -> Option<Saved> {
    let buf = BENCH_SCRATCH.get_ptr_mut(0)?;
    let head = ptr_at::<[u8; SAVED]>(ctx, 0)?;
    unsafe { *buf = *head };
    Some(Saved {
        buf,
        len: crate::parse::frame_len(ctx),
    })
}

#[inline(always)]
pub fn restore(ctx: &XdpContext, s: Saved) {
    // Undo an encapsulation (adjust_head by a negative delta).
    let now = crate::parse::frame_len(ctx);
    if now > s.len {
        let delta = (now - s.len) as i32;
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
            return;
        }
    }
    if let Some(head) = ptr_at::<[u8; SAVED]>(ctx, 0) {
        unsafe { *head = *s.buf };
    }
}
