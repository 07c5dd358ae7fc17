//! The flow hash of the dh, sh and mh schedulers: the XDP program indexes
//! their tables with it, and tests predict its choices with the same code.

/// Mixes a word into the running hash (MurmurHash3's block step).
#[inline(always)]
fn mix(h: u32, k: u32) -> u32 {
    let k = k
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

/// MurmurHash3's finaliser.
#[inline(always)]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Hash of an address (raw network-order words) and port under `seed`;
/// `seed` varies for fallback probes.
#[inline(always)]
pub fn flow(addr: &[u32; 4], port: u16, seed: u32) -> u32 {
    let mut h = seed;
    h = mix(h, addr[0]);
    h = mix(h, addr[1]);
    h = mix(h, addr[2]);
    h = mix(h, addr[3]);
    h = mix(h, port as u32);
    fmix(h ^ 20)
}

/// Fibonacci hashing's multiplier: 2^32 / the golden ratio.
const GOLDEN: u32 = 0x9e37_79b1;

/// The per-CPU flow cache's slot of an IPv4 5-tuple (words as they lie in
/// the frame: addresses, then both ports as one word), for a cache of
/// `1 << bits` slots. One multiply on purpose: it runs for every
/// established packet, and a collision only costs a trip through the
/// shared table.
#[inline(always)]
pub fn cache_slot(src: u32, dst: u32, ports: u32, proto: u8, bits: u32) -> u32 {
    (src ^ dst.rotate_left(16) ^ ports ^ proto as u32).wrapping_mul(GOLDEN) >> (32 - bits)
}

/// Bits in the address filter (`ADDR_FILTER`, `ADDR_FILTER_BITS / 64`
/// words): a packet whose destination is no service (VIP and port) and
/// whose source is no NAT real server (address and port) has neither bit
/// set and is passed without a table lookup, even when it is addressed to
/// a VIP that is also the director's own address.
pub const ADDR_FILTER_BITS: u32 = 1 << 16;

/// The address filter's bit of an address (raw network-order words) and a
/// port (network order): one multiply, as it runs for every packet.
#[inline(always)]
pub fn addr_bit(addr: &[u32; 4], port: u16) -> u32 {
    let folded =
        addr[0] ^ addr[1].rotate_left(8) ^ addr[2].rotate_left(16) ^ addr[3].rotate_left(24);
    (folded ^ (port as u32) << 16 ^ port as u32).wrapping_mul(GOLDEN) >> 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_depends_on_every_input() {
        let a = [u32::from_ne_bytes([10, 0, 0, 1]), 0, 0, 0];
        let b = [u32::from_ne_bytes([10, 0, 0, 2]), 0, 0, 0];
        assert_ne!(flow(&a, 0, 0), flow(&b, 0, 0));
        assert_ne!(flow(&a, 1, 0), flow(&a, 2, 0));
        assert_ne!(flow(&a, 0, 0), flow(&a, 0, 1));
        let mut buckets = [0u32; 16];
        for i in 0..1600u32 {
            let x = [
                u32::from_ne_bytes([10, 0, (i >> 8) as u8, i as u8]),
                0,
                0,
                0,
            ];
            buckets[(flow(&x, 0, 0) % 16) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (60..=140).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn filter_bits_spread_services() {
        // 10 000 services on one VIP and 10 000 VIPs on one port: few
        // share a bit, so unrelated traffic rarely takes the table path.
        let vip = [u32::from_ne_bytes([192, 168, 47, 128]), 0, 0, 0];
        let by_port: std::collections::HashSet<u32> =
            (0..10_000u16).map(|p| addr_bit(&vip, p.to_be())).collect();
        assert!(by_port.len() > 9_000, "{}", by_port.len());
        let by_addr: std::collections::HashSet<u32> = (0..10_000u32)
            .map(|i| addr_bit(&[(0x0a00_0000 + i).to_be(), 0, 0, 0], 80u16.to_be()))
            .collect();
        assert!(by_addr.len() > 9_000, "{}", by_addr.len());
        assert!(by_addr.iter().all(|b| *b < ADDR_FILTER_BITS));
    }

    #[test]
    fn cache_slots_spread_flows() {
        let vip = u32::from_ne_bytes([192, 168, 47, 128]);
        let slots: std::collections::HashSet<u32> = (0..4096u32)
            .map(|i| {
                let client = (0x0a64_0000 + i / 64).to_be();
                let ports = (20_000 + i as u16 % 64).to_be() as u32 | (80u16.to_be() as u32) << 16;
                cache_slot(client, vip, ports, 6, 12)
            })
            .collect();
        // A direct-mapped cache of 4096 slots keeps most of 4096 flows.
        assert!(slots.len() > 2_400, "{}", slots.len());
    }
}
