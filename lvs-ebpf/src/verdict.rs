//! What a packet path returns to the entry point: an XDP action, or
//! "answer the client with ICMP too-big for this MTU" (the entry point
//! builds that error itself, so the ICMP builder's stack frame never sits
//! on top of a path's).

/// `forward` found the real server; the caller forwards by its method.
pub const SCHEDULED: u32 = 1 << 17;
/// An ICMP error about a connection whose real server is in `CHOSEN`.
pub const ICMP_TO_REAL: u32 = 1 << 18;
/// An ICMP error to send back to the client in `CHOSEN_CLIENT`.
pub const ICMP_TO_CLIENT: u32 = 1 << 19;
/// `forward` found no connection for a packet that may open one.
pub const NEW: u32 = 1 << 20;
const TOO_BIG: u32 = 1 << 16;

#[inline(always)]
pub fn too_big(mtu: u16) -> u32 {
    TOO_BIG | mtu as u32
}

#[inline(always)]
pub fn too_big_mtu(v: u32) -> Option<u16> {
    (v & TOO_BIG != 0).then_some(v as u16)
}
