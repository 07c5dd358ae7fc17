//! Bounds-checked access to the frame, in the shape the verifier accepts.
//! Shared by every program (`lvs decap` includes this file as a module of
//! its own, so that it does not link the director's maps).

use aya_ebpf::programs::XdpContext;

/// Start of the frame. A volatile load of the context field: otherwise
/// LLVM may hoist it out of a function and pass it to a BPF-to-BPF call as
/// a plain 32-bit integer, and the verifier no longer sees a packet pointer.
#[inline(always)]
pub fn data(ctx: &XdpContext) -> usize {
    unsafe { core::ptr::read_volatile(&(*ctx.ctx).data) as usize }
}

/// End of the frame; see [`data`].
#[inline(always)]
pub fn data_end(ctx: &XdpContext) -> usize {
    unsafe { core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize }
}

/// Length of the frame's first buffer: all that may be read directly.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    data_end(ctx) - data(ctx)
}

/// Whether the whole frame, fragments of a multi-buffer (jumbo) frame
/// included, is at least `len` bytes. The helper is called only when the
/// first buffer is shorter, which it never is for a single-buffer frame.
#[inline(always)]
pub fn frame_holds(ctx: &XdpContext, len: usize) -> bool {
    len <= frame_len(ctx)
        || len as u64 <= unsafe { aya_ebpf::helpers::bpf_xdp_get_buff_len(ctx.ctx) }
}

/// Larger than any header offset we use (Ethernet + VLAN + IPv4 options +
/// an ICMP error's embedded headers).
const MAX_OFF: usize = 0x3ff;

/// Returns a pointer to a `T` at `off`, if the whole `T` lies in the packet.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
    // Header offsets are small; the mask gives the verifier their bound
    // even when they were read back from a map (the per-CPU packet view).
    let off = off & MAX_OFF;
    let start = data(ctx);
    let end = data_end(ctx);
    // At least two bytes: for one, LLVM turns the check into `p >= end`,
    // from which the verifier derives no range when `off` is variable.
    // Every single byte we read has more header after it.
    let need = if core::mem::size_of::<T>() < 2 {
        2
    } else {
        core::mem::size_of::<T>()
    };
    if start + off + need > end {
        return None;
    }
    Some((start + off) as *mut T)
}
