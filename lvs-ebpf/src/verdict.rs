//! What a packet path returns to the entry point: an XDP action, or a
//! request the entry point carries out itself ("forward to the real server
//! in `CHOSEN`", "answer the client with ICMP too-big for this MTU"), so
//! that no path's stack frame sits on top of another's.

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX};

/// An XDP action (the low 16 bits, flags clear) or one of the requests
/// below (a flag bit set; too-big carries its MTU in the low 16 bits).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Verdict(u32);

const TOO_BIG: u32 = 1 << 16;

impl Verdict {
    pub const PASS: Verdict = Verdict(XDP_PASS);
    pub const DROP: Verdict = Verdict(XDP_DROP);
    pub const TX: Verdict = Verdict(XDP_TX);
    /// The real server is in `CHOSEN`; the entry point forwards by its method.
    pub const SCHEDULED: Verdict = Verdict(1 << 17);
    /// An ICMP error about a connection whose real server is in `CHOSEN`.
    pub const ICMP_TO_REAL: Verdict = Verdict(1 << 18);
    /// An ICMP error to send back to the client in `CHOSEN_CLIENT`.
    pub const ICMP_TO_CLIENT: Verdict = Verdict(1 << 19);
    /// No connection for a packet that may open one: schedule it.
    pub const NEW: Verdict = Verdict(1 << 20);
    /// A packet to forward arrived with TTL / hop limit <= 1: answer its
    /// sender with time exceeded.
    pub const TIME_EXCEEDED: Verdict = Verdict(1 << 21);

    /// An action returned by a helper (`bpf_redirect`) or chosen directly.
    #[inline(always)]
    pub fn action(a: u32) -> Verdict {
        Verdict(a & 0xffff)
    }

    /// Answer the sender with "fragmentation needed" / "packet too big".
    #[inline(always)]
    pub fn too_big(mtu: u16) -> Verdict {
        Verdict(TOO_BIG | mtu as u32)
    }

    #[inline(always)]
    pub fn too_big_mtu(self) -> Option<u16> {
        (self.0 & TOO_BIG != 0).then_some(self.0 as u16)
    }

    /// The XDP action to return (a request left unhandled is a drop).
    #[inline(always)]
    pub fn xdp(self) -> u32 {
        if self.0 > 0xffff {
            XDP_DROP
        } else {
            self.0
        }
    }
}
