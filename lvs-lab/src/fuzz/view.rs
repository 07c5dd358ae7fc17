//! A lenient reading of a frame, for the checker: where its IP header is
//! (after one VLAN tag, if any), what its addresses, ports and TTL say, and
//! whether its checksums verify. Lenient on purpose: a frame the director
//! must reject may still read as addressed to a service here, which only
//! allows the director more (to pass it) and never less.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{checksum, ETH_P_IP, ETH_P_IPV6};

pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;
pub const IPIP: u8 = 4;
pub const IPV6_IN_IP: u8 = 41;

/// What one frame's headers say.
#[derive(Clone, Debug)]
pub struct View {
    /// Offset of the IP header.
    pub l3: usize,
    pub v6: bool,
    /// IPv4 header length (40 for IPv6).
    pub ihl: usize,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// Offset of the L4 header.
    pub l4: usize,
    /// Ports, zero where the frame is too short.
    pub sport: u16,
    pub dport: u16,
    /// Where the IP packet ends by its own length (clamped to the frame).
    pub end: usize,
    /// The IP length fits in the frame.
    pub whole: bool,
    pub tagged: bool,
    /// MF or a fragment offset (IPv4).
    pub fragment: bool,
}

fn be16(f: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([f[o], f[o + 1]])
}

/// Reads the frame's headers; `None` if it is not IPv4/IPv6 or shorter
/// than the fixed IP header.
pub fn view(f: &[u8]) -> Option<View> {
    if f.len() < 14 {
        return None;
    }
    let (mut et, mut l3, mut tagged) = (be16(f, 12), 14, false);
    if et == 0x8100 || et == 0x88a8 {
        if f.len() < 18 {
            return None;
        }
        (et, l3, tagged) = (be16(f, 16), 18, true);
    }
    view_at(f, l3, et, tagged)
}

/// Reads an IP header at `l3` whose ethertype is `et`.
pub fn view_at(f: &[u8], l3: usize, et: u16, tagged: bool) -> Option<View> {
    let (v6, ihl, proto, src, dst, ttl, len, fragment) = match et {
        ETH_P_IP => {
            let h = f.get(l3..l3 + 20)?;
            let ihl = ((h[0] & 0x0f) as usize * 4).max(20);
            let a = |o: usize| IpAddr::V4(Ipv4Addr::new(h[o], h[o + 1], h[o + 2], h[o + 3]));
            let frag = be16(h, 6) & 0x3fff != 0;
            (
                false,
                ihl,
                h[9],
                a(12),
                a(16),
                h[8],
                be16(h, 2) as usize,
                frag,
            )
        }
        ETH_P_IPV6 => {
            let h = f.get(l3..l3 + 40)?;
            let a =
                |o: usize| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&h[o..o + 16]).unwrap()));
            let len = be16(h, 4) as usize + 40;
            (true, 40, h[6], a(8), a(24), h[7], len, false)
        }
        _ => return None,
    };
    let l4 = l3 + ihl;
    let port = |o: usize| f.get(o..o + 2).map_or(0, |b| be16(b, 0));
    Some(View {
        l3,
        v6,
        ihl,
        proto,
        src,
        dst,
        ttl,
        l4,
        sport: port(l4),
        dport: port(l4 + 2),
        end: (l3 + len).min(f.len()),
        whole: l3 + len <= f.len(),
        tagged,
        fragment,
    })
}

impl View {
    /// The IPv4 header checksum verifies (always true for IPv6).
    pub fn ip_csum_ok(&self, f: &[u8]) -> bool {
        self.v6
            || f.get(self.l3..self.l3 + self.ihl)
                .is_some_and(|h| checksum(h) == 0)
    }

    /// The L4 (TCP, UDP, ICMP, ICMPv6) checksum of the IP packet's payload
    /// verifies; `None` for other protocols or a truncated packet.
    pub fn l4_csum_ok(&self, f: &[u8]) -> Option<bool> {
        let seg = f.get(self.l4..self.end)?;
        match self.proto {
            ICMP if !self.v6 => Some(checksum(seg) == 0),
            6 | 17 | ICMPV6 => {
                if self.proto == 17 && !self.v6 && seg.len() >= 8 && seg[6..8] == [0, 0] {
                    return Some(true);
                }
                let mut acc = 0u32;
                let mut add = |b: &[u8]| {
                    for c in b.chunks(2) {
                        acc += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
                    }
                };
                match (self.src, self.dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        add(&s.octets());
                        add(&d.octets());
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        add(&s.octets());
                        add(&d.octets());
                    }
                    _ => return None,
                }
                add(seg);
                let mut acc = acc + self.proto as u32 + seg.len() as u32;
                while acc > 0xffff {
                    acc = (acc & 0xffff) + (acc >> 16);
                }
                Some(acc == 0xffff)
            }
            _ => None,
        }
    }

    /// The ICMP type, if this is ICMP/ICMPv6 with its first byte present.
    pub fn icmp_type(&self, f: &[u8]) -> Option<u8> {
        matches!(self.proto, ICMP | ICMPV6)
            .then(|| f.get(self.l4).copied())
            .flatten()
    }

    /// The packet an ICMP error quotes (after its 8-byte header).
    pub fn quoted(&self, f: &[u8]) -> Option<View> {
        self.icmp_type(f)?;
        let et = if self.v6 { ETH_P_IPV6 } else { ETH_P_IP };
        view_at(f, self.l4 + 8, et, self.tagged)
    }
}

/// Recomputes the IPv4 header checksum of the frame's IP header (tagged or
/// not, IHL honoured); nothing for other frames.
pub fn fix_ip_checksum(f: &mut [u8]) {
    let Some(v) = view(f) else { return };
    if v.v6 || f.len() < v.l3 + v.ihl {
        return;
    }
    f[v.l3 + 10..v.l3 + 12].copy_from_slice(&[0, 0]);
    let c = checksum(&f[v.l3..v.l3 + v.ihl]);
    f[v.l3 + 10..v.l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Recomputes the L4 checksum (TCP, UDP, ICMP, ICMPv6) of the frame's IP
/// packet over its IP length; nothing if the frame does not hold it.
pub fn fix_l4_checksum(f: &mut [u8]) {
    let Some(v) = view(f) else { return };
    let off = match v.proto {
        6 => 16,
        17 => 6,
        ICMP | ICMPV6 => 2,
        _ => return,
    };
    if !v.whole || v.end < v.l4 + off + 2 {
        return;
    }
    f[v.l4 + off..v.l4 + off + 2].copy_from_slice(&[0, 0]);
    let seg = &f[v.l4..v.end];
    let c = if v.proto == ICMP && !v.v6 {
        checksum(seg)
    } else if v.proto == ICMP {
        return;
    } else {
        crate::packet::checksum_l4(v.src, v.dst, v.proto, seg)
    };
    f[v.l4 + off..v.l4 + off + 2].copy_from_slice(&c.to_be_bytes());
}
