//! The live-frames flood generator's configuration (lvs-ebpf's `lvs-flood`
//! object; written by `lvs::floodgen`): one frame template and the ranges
//! its source address and port are drawn from, per frame.

/// Bytes of the template the generator writes over each frame: a page of
/// BPF_PROG_TEST_RUN's live mode comes back as the receiver left it (a NAT
/// director rewrites it in place), so every header is rewritten, not only
/// the source.
pub const HEAD: usize = 64;

/// Entry 0 of the generator's `FLOOD` array.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FloodGen {
    /// The frame's first [`HEAD`] bytes: Ethernet, an IPv4 header without
    /// options, TCP or UDP, with valid checksums for `src_base` and
    /// `port_base`.
    pub head: [u64; HEAD / 8],
    /// First source address (host order) and the mask of the offset drawn
    /// onto it: sources are `src_base + (random & src_mask)`.
    pub src_base: u32,
    pub src_mask: u32,
    /// Source ports are `port_base + (random & port_mask)`.
    pub port_base: u16,
    pub port_mask: u16,
    pub _pad: u32,
}

impl Default for FloodGen {
    fn default() -> Self {
        FloodGen {
            head: [0; HEAD / 8],
            src_base: 0,
            src_mask: 0,
            port_base: 0,
            port_mask: 0,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, no implicit padding (explicit `_pad`), valid for
// any bit pattern.
unsafe impl aya::Pod for FloodGen {}
