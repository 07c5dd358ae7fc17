//! Incremental Internet checksum updates (RFC 1624), shared by the XDP
//! program and the host tests that verify its output.
//!
//! Every value is taken exactly as it lies in packet memory (read with
//! native-endian loads): the one's-complement sum is byte-order independent,
//! so as long as the checksum field is read the same way no swap is needed.

/// Folds a 64-bit one's-complement accumulator to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

#[inline(always)]
fn add32(sum: u64, v: u32) -> u64 {
    sum + (v & 0xffff) as u64 + (v >> 16) as u64
}

/// New checksum after a 32-bit field changed from `from` to `to`.
#[inline(always)]
pub fn replace32(check: u16, from: u32, to: u32) -> u16 {
    !fold(add32(add32(!check as u64, !from), to))
}

/// New checksum after a 16-bit field changed from `from` to `to`.
#[inline(always)]
pub fn replace16(check: u16, from: u16, to: u16) -> u16 {
    !fold(!check as u64 + !from as u64 + to as u64)
}

/// New checksum after a 128-bit (IPv6) address changed.
#[inline(always)]
pub fn replace128(check: u16, from: &[u32; 4], to: &[u32; 4]) -> u16 {
    let mut s = !check as u64;
    let mut i = 0;
    while i < 4 {
        s = add32(add32(s, !from[i]), to[i]);
        i += 1;
    }
    !fold(s)
}

/// UDP's rule: a zero checksum means "none" and stays zero; a computed zero
/// is sent as 0xffff.
#[inline(always)]
pub fn udp_fixup(old: u16, new: u16) -> u16 {
    if old == 0 {
        0
    } else if new == 0 {
        0xffff
    } else {
        new
    }
}

/// One's-complement sum of `data` as 16-bit words in memory order (an odd
/// trailing byte is padded with zero), for full checksums on the host and
/// for short headers in the XDP program.
#[inline(always)]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut i = 0;
    while i + 1 < data.len() {
        acc += u16::from_ne_bytes([data[i], data[i + 1]]) as u64;
        i += 2;
    }
    if i < data.len() {
        acc += u16::from_ne_bytes([data[i], 0]) as u64;
    }
    acc
}

/// Full Internet checksum of `data`, in memory order.
#[inline(always)]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> [u8; 20] {
        [
            0x45, 0, 0, 0x3c, 0x1c, 0x46, 0x40, 0, 0x40, 6, 0, 0, 0xac, 0x10, 0x0a, 0x63, 0xac,
            0x10, 0x0a, 0x0c,
        ]
    }

    fn with_csum(mut h: [u8; 20]) -> [u8; 20] {
        h[10] = 0;
        h[11] = 0;
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_ne_bytes());
        h
    }

    #[test]
    fn full_checksum_matches_rfc1071_example() {
        let h = with_csum(hdr());
        assert_eq!(u16::from_be_bytes([h[10], h[11]]), 0xb1e6);
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn incremental_equals_recomputed() {
        let h = with_csum(hdr());
        let old_dst = u32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
        let new_dst = u32::from_ne_bytes([192, 168, 211, 129]);
        let mut m = h;
        m[16..20].copy_from_slice(&new_dst.to_ne_bytes());
        let c = replace32(u16::from_ne_bytes([h[10], h[11]]), old_dst, new_dst);
        m[10..12].copy_from_slice(&c.to_ne_bytes());
        assert_eq!(m, with_csum(m));
        let c2 = replace16(c, u16::from_ne_bytes([m[2], m[3]]), 0x1234);
        m[2..4].copy_from_slice(&0x1234u16.to_ne_bytes());
        m[10..12].copy_from_slice(&c2.to_ne_bytes());
        assert_eq!(m, with_csum(m));
    }

    #[test]
    fn replace128_matches_four_replace32() {
        let from = [1u32, 0xffff_0000, 3, 0xdead_beef];
        let to = [7u32, 8, 0x1234_5678, 0];
        let mut c = 0x5a5a;
        for i in 0..4 {
            c = replace32(c, from[i], to[i]);
        }
        assert_eq!(replace128(0x5a5a, &from, &to), c);
    }

    #[test]
    fn udp_zero_checksum_rules() {
        assert_eq!(udp_fixup(0, 0x1234), 0);
        assert_eq!(udp_fixup(5, 0), 0xffff);
        assert_eq!(udp_fixup(5, 7), 7);
    }
}
