//! Crafting Ethernet/IPv4/IPv6/TCP/UDP frames with correct checksums, and
//! checking the checksums of frames the director wrote: the fixtures of the
//! `BPF_PROG_TEST_RUN` tests and of the benchmarks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub type Mac = [u8; 6];

/// `aa:bb:…`, as `ip link` and `ip neigh` take and print it.
pub fn mac_str(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One's-complement sum of big-endian 16-bit words.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        acc += (*b as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Internet checksum (big-endian value).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(data, 0))
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(&s.octets(), acc);
            acc = sum16(&d.octets(), acc);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = sum16(&s.octets(), acc);
            acc = sum16(&d.octets(), acc);
        }
        _ => panic!("mixed address families"),
    }
    acc + proto as u32 + len as u32
}

/// The L4 part of a frame under construction.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
}

/// A frame description; `build()` gives the bytes.
#[derive(Clone, Debug)]
pub struct Frame {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub ip_id: u16,
    pub df: bool,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// UDP only: send a zero ("no") checksum.
    pub udp_no_csum: bool,
}

impl Frame {
    pub fn tcp(src: (IpAddr, u16), dst: (IpAddr, u16), flags: u8) -> Frame {
        Frame::new(
            src.0,
            dst.0,
            L4::Tcp {
                sport: src.1,
                dport: dst.1,
                flags,
                seq: 0x1000_0000,
                ack: 0,
            },
        )
    }

    pub fn udp(src: (IpAddr, u16), dst: (IpAddr, u16)) -> Frame {
        Frame::new(
            src.0,
            dst.0,
            L4::Udp {
                sport: src.1,
                dport: dst.1,
            },
        )
    }

    fn new(src: IpAddr, dst: IpAddr, l4: L4) -> Frame {
        Frame {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src,
            dst,
            ttl: 64,
            ip_id: 0x1234,
            df: true,
            l4,
            payload: Vec::new(),
            udp_no_csum: false,
        }
    }

    pub fn macs(mut self, src: Mac, dst: Mac) -> Frame {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    pub fn payload(mut self, p: &[u8]) -> Frame {
        self.payload = p.to_vec();
        self
    }

    fn l4_bytes(&self) -> Vec<u8> {
        let mut b = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
            } => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&sport.to_be_bytes());
                t[2..4].copy_from_slice(&dport.to_be_bytes());
                t[4..8].copy_from_slice(&seq.to_be_bytes());
                t[8..12].copy_from_slice(&ack.to_be_bytes());
                t[12] = 5 << 4;
                t[13] = flags;
                t[14..16].copy_from_slice(&64240u16.to_be_bytes());
                t
            }
            L4::Udp { sport, dport } => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&sport.to_be_bytes());
                u[2..4].copy_from_slice(&dport.to_be_bytes());
                let len = (8 + self.payload.len()) as u16;
                u[4..6].copy_from_slice(&len.to_be_bytes());
                u
            }
        };
        b.extend_from_slice(&self.payload);
        let proto = self.proto();
        let c = checksum_l4(self.src, self.dst, proto, &b);
        let off = if proto == TCP { 16 } else { 6 };
        let c = if proto == UDP && self.udp_no_csum {
            0
        } else {
            c
        };
        b[off..off + 2].copy_from_slice(&c.to_be_bytes());
        b
    }

    pub fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => TCP,
            L4::Udp { .. } => UDP,
        }
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let mut f = Vec::with_capacity(14 + 40 + l4.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&ETH_P_IP.to_be_bytes());
                f.extend_from_slice(&ipv4_header(
                    s,
                    d,
                    self.proto(),
                    l4.len(),
                    self.ttl,
                    self.ip_id,
                    self.df,
                ));
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                f.extend_from_slice(&ipv6_header(s, d, self.proto(), l4.len(), self.ttl));
            }
            _ => panic!("mixed address families"),
        }
        f.extend_from_slice(&l4);
        f
    }
}

/// An IPv4 header (no options) with a correct checksum.
pub fn ipv4_header(
    s: Ipv4Addr,
    d: Ipv4Addr,
    proto: u8,
    l4_len: usize,
    ttl: u8,
    id: u16,
    df: bool,
) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    if df {
        h[6] = 0x40;
    }
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&s.octets());
    h[16..20].copy_from_slice(&d.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

pub fn ipv6_header(s: Ipv6Addr, d: Ipv6Addr, next: u8, payload_len: usize, hop: u8) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop;
    h[8..24].copy_from_slice(&s.octets());
    h[24..40].copy_from_slice(&d.octets());
    h
}

/// An Ethernet frame carrying an ICMPv4 error (`typ`/`code`, 4 bytes of
/// `rest`, e.g. the next-hop MTU) that quotes `quoted` (an IP header and
/// the start of its payload), with correct checksums.
#[allow(clippy::too_many_arguments)]
pub fn icmp4_error(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![typ, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(quoted);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETH_P_IP.to_be_bytes());
    f.extend_from_slice(&ipv4_header(src, dst, 1, icmp.len(), 64, 0, false));
    f.extend_from_slice(&icmp);
    f
}

/// An Ethernet frame carrying an ICMPv6 error (`typ`/`code`, 4 bytes of
/// `rest`, e.g. the MTU of "packet too big") that quotes `quoted`, with a
/// correct checksum over the pseudo-header.
#[allow(clippy::too_many_arguments)]
pub fn icmp6_error(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![typ, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(quoted);
    let c = checksum_l4(src.into(), dst.into(), 58, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&ipv6_header(src, dst, 58, icmp.len(), 64));
    f.extend_from_slice(&icmp);
    f
}

/// Recomputes the IPv4 header checksum of the untagged frame `f` (IHL
/// honoured); nothing for other frames.
pub fn fix_ipv4_checksum(f: &mut [u8]) {
    if f.len() < 34 || f[12..14] != ETH_P_IP.to_be_bytes() {
        return;
    }
    let ihl = (f[14] & 0x0f) as usize * 4;
    if ihl < 20 || f.len() < 14 + ihl {
        return;
    }
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// The untagged IPv4 frame `f` with `opts` (a multiple of 4 bytes) as IP
/// options: IHL, total length and header checksum adjusted (the L4
/// checksum does not cover options).
pub fn with_ip_options(f: &[u8], opts: &[u8]) -> Vec<u8> {
    assert!(opts.len().is_multiple_of(4) && opts.len() <= 40);
    let ihl = (f[14] & 0x0f) as usize * 4;
    let mut out = f[..14 + ihl].to_vec();
    out.extend_from_slice(opts);
    out.extend_from_slice(&f[14 + ihl..]);
    out[14] = 0x40 | ((ihl + opts.len()) / 4) as u8;
    let tot = u16::from_be_bytes([out[16], out[17]]) as usize + opts.len();
    out[16..18].copy_from_slice(&(tot as u16).to_be_bytes());
    fix_ipv4_checksum(&mut out);
    out
}

/// The untagged frame `f` as a router forwards it: TTL / hop limit one
/// less, the IPv4 header checksum updated.
pub fn dec_ttl(f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    match u16::from_be_bytes([f[12], f[13]]) {
        ETH_P_IP => {
            f[22] -= 1;
            fix_ipv4_checksum(&mut f);
        }
        ETH_P_IPV6 => f[21] -= 1,
        _ => panic!("not an IP frame"),
    }
    f
}

/// The L4 checksum over the pseudo-header and `seg` (whose checksum field
/// must be zero, or it is included).
pub fn checksum_l4(src: IpAddr, dst: IpAddr, proto: u8, seg: &[u8]) -> u16 {
    let c = !fold(sum16(seg, pseudo_sum(src, dst, proto, seg.len())));
    if proto == UDP && c == 0 {
        0xffff
    } else {
        c
    }
}

/// What a parsed frame says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    /// IPv4 header checksum verifies (true for IPv6).
    pub ip_csum_ok: bool,
    /// L4 checksum verifies (a zero UDP checksum over IPv4 counts as ok).
    pub l4_csum_ok: bool,
    /// Offset of the L4 header.
    pub l4_off: usize,
}

/// Parses an untagged Ethernet/IPv4|IPv6/TCP|UDP frame and verifies both
/// checksums by recomputing them.
pub fn parse(f: &[u8]) -> Option<Parsed> {
    let mac = |o: usize| -> Mac { f[o..o + 6].try_into().unwrap() };
    if f.len() < 14 {
        return None;
    }
    let et = u16::from_be_bytes([f[12], f[13]]);
    let (src, dst, proto, l4_off, l4_end, ttl, ip_ok) = match et {
        ETH_P_IP => {
            let h = f.get(14..34)?;
            let ihl = (h[0] & 0x0f) as usize * 4;
            let tot = u16::from_be_bytes([h[2], h[3]]) as usize;
            let hdr = f.get(14..14 + ihl)?;
            (
                IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
                IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
                h[9],
                14 + ihl,
                14 + tot,
                h[8],
                checksum(hdr) == 0,
            )
        }
        ETH_P_IPV6 => {
            let h = f.get(14..54)?;
            let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
            let a = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&h[o..o + 16]).unwrap());
            (
                IpAddr::V6(a(8)),
                IpAddr::V6(a(24)),
                h[6],
                54,
                54 + plen,
                h[7],
                true,
            )
        }
        _ => return None,
    };
    let seg = f.get(l4_off..l4_end)?;
    if seg.len() < 8 {
        return None;
    }
    let l4_ok = if proto == UDP && src.is_ipv4() && seg[6] == 0 && seg[7] == 0 {
        true
    } else {
        fold(sum16(seg, pseudo_sum(src, dst, proto, seg.len()))) == 0xffff
    };
    Some(Parsed {
        dst_mac: mac(0),
        src_mac: mac(6),
        src,
        dst,
        proto,
        sport: u16::from_be_bytes([seg[0], seg[1]]),
        dport: u16::from_be_bytes([seg[2], seg[3]]),
        ttl,
        ip_csum_ok: ip_ok,
        l4_csum_ok: l4_ok,
        l4_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mac_strings() {
        assert_eq!(mac_str(&crate::xdpns::mac::DIR_EXT), "02:00:00:00:47:80");
    }

    #[test]
    fn built_frames_parse_with_valid_checksums() {
        let f = Frame::tcp((v4("192.168.47.1"), 40000), (v4("192.168.47.128"), 80), SYN)
            .payload(b"hello")
            .build();
        assert_eq!(f.len(), 14 + 20 + 20 + 5);
        let p = parse(&f).unwrap();
        assert!(p.ip_csum_ok && p.l4_csum_ok);
        assert_eq!((p.sport, p.dport, p.proto), (40000, 80, TCP));

        let f = Frame::udp((v4("10.0.0.1"), 5353), (v4("10.0.0.2"), 53))
            .payload(b"q")
            .build();
        let p = parse(&f).unwrap();
        assert!(p.ip_csum_ok && p.l4_csum_ok);

        let s: IpAddr = "fd00::1".parse().unwrap();
        let d: IpAddr = "fd00::2".parse().unwrap();
        let f = Frame::tcp((s, 1), (d, 2), ACK).build();
        let p = parse(&f).unwrap();
        assert!(p.l4_csum_ok);
        assert_eq!(f.len(), 14 + 40 + 20);
    }

    #[test]
    fn corrupted_checksums_are_detected() {
        let mut f = Frame::tcp((v4("1.2.3.4"), 1), (v4("5.6.7.8"), 2), SYN).build();
        f[30] ^= 1; // destination address
        let p = parse(&f).unwrap();
        assert!(!p.ip_csum_ok && !p.l4_csum_ok);
    }

    #[test]
    fn icmp_errors_carry_valid_checksums() {
        let inner = Frame::tcp((v4("10.0.0.1"), 1), (v4("10.0.0.2"), 2), SYN).build();
        let f = icmp4_error(
            [2; 6],
            [3; 6],
            Ipv4Addr::new(10, 0, 0, 9),
            Ipv4Addr::new(10, 0, 0, 1),
            3,
            4,
            [0, 0, 5, 0xdc],
            &inner[14..14 + 28],
        );
        assert_eq!(checksum(&f[14..34]), 0);
        assert_eq!(checksum(&f[34..]), 0);
        assert_eq!(f.len(), 14 + 20 + 8 + 28);
    }

    #[test]
    fn ipv4_header_checksum_known_value() {
        // RFC 1071-style example header: checksum 0xb1e6.
        let h = ipv4_header(
            Ipv4Addr::new(172, 16, 10, 99),
            Ipv4Addr::new(172, 16, 10, 12),
            TCP,
            40,
            64,
            0x1c46,
            true,
        );
        assert_eq!(u16::from_be_bytes([h[10], h[11]]), 0xb1e6);
    }
}
