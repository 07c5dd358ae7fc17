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

/// The per-CPU flow cache's slot of an IPv4 5-tuple (words as they lie in
/// the frame: addresses, then both ports as one word), for a cache of
/// `1 << bits` slots. Cheap on purpose: it runs for every established
/// packet, and a collision only costs a trip through the shared table.
#[inline(always)]
pub fn cache_slot(src: u32, dst: u32, ports: u32, proto: u8, bits: u32) -> u32 {
    let h = fmix(mix(mix(mix(proto as u32, src), dst), ports));
    h >> (32 - bits)
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
}
