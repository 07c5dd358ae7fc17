//! Packet parsing into a small [`Packet`] view, with verifier-proof bounds
//! checks. Nothing here writes to the packet.
//!
//! Rules (documented in the README's "Packet rules"): a frame we cannot
//! fully parse, an IPv4 header with IHL < 5, a total length beyond the
//! frame or a bad header checksum (the kernel would drop it), and any IP
//! fragment are handed to the kernel untouched (XDP_PASS, counted as
//! `malformed` or `fragment`), so the director never forwards something it
//! did not understand. IPv6 extension headers are not parsed: such a
//! packet is not TCP/UDP/ICMPv6 here and passes (`pass`). One VLAN tag is parsed (the headers then start 4
//! bytes later); a frame with two is passed untouched.

use aya_ebpf::programs::XdpContext;
use lvs_common::{counters, FlowKey, AF_INET, AF_INET6, PROTO_TCP, PROTO_UDP};

pub use crate::bounds::{data, data_end, frame_holds, frame_len, ptr_at};

pub const ETH_HLEN: usize = 14;
/// An 802.1Q/802.1ad tag: TPID (the frame's first ethertype) then TCI.
pub const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_ICMPV6: u8 = 58;

pub use lvs_common::tcp::{ACK as TCP_ACK, FIN as TCP_FIN, RST as TCP_RST, SYN as TCP_SYN};

/// Byte offsets of the checksum field inside the L4 header.
pub const TCP_CSUM_OFF: usize = 16;
pub const UDP_CSUM_OFF: usize = 6;

/// Why a frame was not parsed into a [`Packet`]; each maps to a counter.
#[derive(Clone, Copy)]
pub enum Skip {
    /// Not IP/TCP/UDP, or tagged: not ours.
    Other,
    Malformed,
    Fragment,
}

impl Skip {
    pub fn counter(self) -> u32 {
        match self {
            Skip::Other => counters::PASS,
            Skip::Malformed => counters::MALFORMED,
            Skip::Fragment => counters::FRAGMENT,
        }
    }
}

/// The parsed view of an IPv4/IPv6 TCP or UDP packet. It lives in a
/// per-CPU map slot, and `key` is laid out as the connection tables' key,
/// so the tables are looked up with a pointer into the slot: no 40-byte
/// key is built on the stack.
pub struct Packet {
    /// The 5-tuple as the packet carries it (client side for a forward
    /// packet, real-server side for a reply).
    pub key: FlowKey,
    /// Offset of the IP header (after Ethernet).
    pub l3_off: usize,
    /// Offset of the TCP/UDP header.
    pub l4_off: usize,
    pub tcp_flags: u8,
    /// IP total length (IPv4) or payload length + 40 (IPv6), host order.
    pub ip_len: u16,
    /// The link the frame arrived on.
    pub ingress: u32,
    /// Where the FIB sees it arrive: `ingress`, or for a tagged frame the
    /// VLAN sub-interface of its VLAN on `ingress` (filled in by the entry
    /// point).
    pub fib_in: u32,
    /// The 802.1Q/802.1ad tag's VLAN id, if the frame carries one.
    pub vid: u16,
    pub tagged: bool,
    /// TTL / hop limit as received: a packet with <= 1 is never forwarded.
    pub ttl: u8,
}

#[inline(always)]
fn load_u16(ctx: &XdpContext, off: usize) -> Result<u16, Skip> {
    let p = ptr_at::<u16>(ctx, off).ok_or(Skip::Malformed)?;
    Ok(unsafe { p.read_unaligned() })
}

/// Parses the frame into `p` (the per-CPU slot, written in place so no
/// copy of the view sits on the entry point's stack).
#[inline(always)]
pub fn parse(ctx: &XdpContext, p: &mut Packet) -> Result<(), Skip> {
    let mut proto = u16::from_be(load_u16(ctx, 12).map_err(|_| Skip::Other)?);
    let mut l3 = ETH_HLEN;
    p.tagged = false;
    p.vid = 0;
    // One 802.1Q or 802.1ad tag; a frame with two (QinQ) is not ours.
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let tci = u16::from_be(load_u16(ctx, ETH_HLEN).map_err(|_| Skip::Other)?);
        proto = u16::from_be(load_u16(ctx, ETH_HLEN + 2).map_err(|_| Skip::Other)?);
        p.tagged = true;
        p.vid = tci & 0x0fff;
        l3 = ETH_HLEN + VLAN_HLEN;
    }
    match proto {
        ETH_P_IP => parse_ipv4(ctx, p, l3),
        ETH_P_IPV6 => parse_ipv6(ctx, p, l3),
        _ => Err(Skip::Other),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, p: &mut Packet, l3: usize) -> Result<(), Skip> {
    let b0 = ptr_at::<[u8; 20]>(ctx, l3).ok_or(Skip::Malformed)?;
    let h = unsafe { &*b0 };
    if h[0] >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(Skip::Malformed);
    }
    let tot = u16::from_be_bytes([h[2], h[3]]);
    if (tot as usize) < ihl || !frame_holds(ctx, l3 + tot as usize) {
        return Err(Skip::Malformed);
    }
    if !header_sum_ok(ctx, b0, l3, ihl) {
        return Err(Skip::Malformed);
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    // MF set or a non-zero offset: a fragment.
    if frag & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    let src = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
    let dst = u32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
    p.key = FlowKey {
        src: [src, 0, 0, 0],
        dst: [dst, 0, 0, 0],
        sport: 0,
        dport: 0,
        proto: h[9],
        family: AF_INET,
        _pad: [0; 2],
    };
    p.l3_off = l3;
    // ihl is at most 60, so the verifier sees a bounded offset.
    p.l4_off = l3 + (ihl & 0x3c);
    p.tcp_flags = 0;
    p.ip_len = tot;
    p.ttl = h[8];
    parse_l4(ctx, p, tot as usize - ihl)
}

/// Whether the IPv4 header at `l3` (`h`: its first 20 bytes, checked to be
/// in the frame; `ihl` bytes in all) has a valid checksum: its words sum
/// to 0xffff. Word loads (packet data need not be aligned for XDP, see
/// `flow::load`): byte reads would keep twenty values live across the
/// parser and grow the entry point's stack frame.
#[inline(always)]
fn header_sum_ok(ctx: &XdpContext, h: *const [u8; 20], l3: usize, ihl: usize) -> bool {
    let w = h as *const u32;
    let mut sum = 0u64;
    for i in 0..5 {
        // SAFETY: within the 20 bytes checked by the caller.
        let v = unsafe { core::ptr::read(w.add(i)) };
        sum += (v & 0xffff) as u64 + (v >> 16) as u64;
    }
    // Options: at most 40 bytes, in 4-byte words.
    for i in 0..10usize {
        let off = 20 + i * 4;
        if off >= ihl {
            break;
        }
        let Some(o) = ptr_at::<u32>(ctx, l3 + off) else {
            return false;
        };
        // SAFETY: `ptr_at` checked the word is in the frame.
        let v = unsafe { core::ptr::read(o) };
        sum += (v & 0xffff) as u64 + (v >> 16) as u64;
    }
    lvs_common::csum::fold(sum) == 0xffff
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, p: &mut Packet, l3: usize) -> Result<(), Skip> {
    let h = unsafe { &*ptr_at::<[u8; 40]>(ctx, l3).ok_or(Skip::Malformed)? };
    if h[0] >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let plen = u16::from_be_bytes([h[4], h[5]]);
    if !frame_holds(ctx, l3 + 40 + plen as usize) {
        return Err(Skip::Malformed);
    }
    let a = |o: usize| u32::from_ne_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    p.key = FlowKey {
        src: [a(8), a(12), a(16), a(20)],
        dst: [a(24), a(28), a(32), a(36)],
        sport: 0,
        dport: 0,
        proto: h[6],
        family: AF_INET6,
        _pad: [0; 2],
    };
    p.l3_off = l3;
    p.l4_off = l3 + 40;
    p.tcp_flags = 0;
    p.ip_len = plen.saturating_add(40);
    p.ttl = h[7];
    parse_l4(ctx, p, plen as usize)
}

/// Fills ports and flags. `l4_len` is what the IP header says follows it.
#[inline(always)]
fn parse_l4(ctx: &XdpContext, p: &mut Packet, l4_len: usize) -> Result<(), Skip> {
    match p.key.proto {
        PROTO_TCP => {
            let t = unsafe { &*ptr_at::<[u8; 20]>(ctx, p.l4_off).ok_or(Skip::Malformed)? };
            let doff = ((t[12] >> 4) as usize) * 4;
            if doff < 20 || doff > l4_len {
                return Err(Skip::Malformed);
            }
            p.key.sport = u16::from_ne_bytes([t[0], t[1]]);
            p.key.dport = u16::from_ne_bytes([t[2], t[3]]);
            p.tcp_flags = t[13];
        }
        PROTO_UDP => {
            let u = unsafe { &*ptr_at::<[u8; 8]>(ctx, p.l4_off).ok_or(Skip::Malformed)? };
            if l4_len < 8 {
                return Err(Skip::Malformed);
            }
            p.key.sport = u16::from_ne_bytes([u[0], u[1]]);
            p.key.dport = u16::from_ne_bytes([u[2], u[3]]);
        }
        // ICMP errors about tracked connections are handled by `icmp`,
        // which reads the embedded header itself; ports stay zero.
        PROTO_ICMP if p.key.family == AF_INET => {}
        PROTO_ICMPV6 if p.key.family == AF_INET6 => {}
        _ => return Err(Skip::Other),
    }
    Ok(())
}
