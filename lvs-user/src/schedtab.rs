//! Scheduler tables computed in userspace and walked or indexed by the XDP
//! program.
//!
//! # API
//!
//! [`table`]`(sched, members)` builds the table of one service from its
//! member list, in list order (the order real servers were added, as IPVS
//! keeps its `svc->destinations`). Entries are *positions* in `members`
//! (`0..members.len()`); the table store maps them to real-server indices.
//! [`EMPTY`] (`u32::MAX`) stands for a bucket without a member: the builders
//! below never leave one inside a non-empty table (a table is either empty
//! or fully populated), but the data path should treat it as "no server".
//! An empty table means the scheduler needs none (lc, wlc, sed, nq, fo, ovf,
//! twos, lblc, lblcr) or that no member can be chosen (the data path then
//! finds no server, as IPVS does).
//!
//! | scheduler | length | entry | data path |
//! |---|---|---|---|
//! | rr  | members with weight > 0 | IPVS's rr sequence | atomic counter mod length |
//! | wrr | Σ weight/gcd (≤ [`MAX_TABLE_LEN`]) | IPVS's wrr sequence | atomic counter mod length |
//! | dh  | [`DH_TABLE_SIZE`] = 256, or 0 without members | `ip_vs_dh_reassign` | bucket = dh hash of the destination address |
//! | sh  | [`SH_TABLE_SIZE`] = 256, or 0 without members | `ip_vs_sh_reassign` | bucket = sh hash of the source address (and port with sh-port); sh-fallback walks on |
//! | mh  | [`MH_TABLE_SIZE`] = 65 537, or 0 if no weight > 0 | Maglev, weighted as IPVS mh | slot = hash of the source address (and port with mh-port) mod 65 537 |
//!
//! [`build`]`(sched, weights)` is the earlier, weights-only entry point: rr
//! and wrr tables only (the hash tables need more than weights). Nothing
//! calls it any more but the test that checks it agrees with [`table`].
//!
//! # Semantics
//!
//! - **rr / wrr**: IPVS's selection sequence over one full cycle, so the data
//!   path needs only an atomic counter per service to reproduce IPVS's
//!   order exactly.
//! - **dh** (`ip_vs_dh_reassign`): 256 buckets given to the members round
//!   robin over the list, weights ignored; a member with weight 0 keeps its
//!   buckets (IPVS's dh then finds no server for them).
//! - **sh** (`ip_vs_sh_reassign`): 256 buckets filled in list order, each
//!   member taking `weight` consecutive buckets, then the next member,
//!   wrapping around the list until all 256 are filled. A member with weight
//!   0 still takes one bucket; the data path skips unavailable members
//!   (weight 0, over threshold), with sh-fallback trying the next buckets.
//! - **mh** (`ip_vs_mh`): a Maglev lookup table of 65 537 (prime) slots.
//!   Every member has a preference list of slots: start at `offset`, step by
//!   `skip` (mod 65 537), both from a deterministic hash of its address and
//!   port ([`mh_offset_skip`]; no random seed, so every director builds the
//!   same table from the same members — not the same table as an IPVS
//!   director, whose hsiphash is not reproduced). Population goes round by
//!   round over the list as IPVS's `ip_vs_mh_populate`: in each round a
//!   member takes `turns` slots, each its most-preferred free one, where
//!   `turns = (weight / gcd) >> rshift` (at least 1 for a non-zero weight),
//!   `gcd` the gcd of the non-zero weights and `rshift` the shift that keeps
//!   `max weight / gcd` within 6 bits (IPVS's `ip_vs_mh_shift_weight`). A
//!   member with weight 0 takes no slot. IPVS populates from `last_weight`,
//!   the last non-zero weight, so that quiescing a server (weight 0) keeps
//!   its slots and mh-fallback moves only its clients: the caller passes
//!   that weight as [`Member::weight`] to get the same behaviour.

use std::net::IpAddr;

use anyhow::{bail, Result};

use crate::model::Scheduler;

/// Longest rr/wrr table one service may use; a wrr cycle is Σ weight/gcd
/// long.
pub const MAX_TABLE_LEN: usize = 65536;

/// A bucket without a member.
pub const EMPTY: u32 = u32::MAX;

/// IPVS dh's `IP_VS_DH_TAB_SIZE` (1 << 8).
pub const DH_TABLE_SIZE: usize = 256;

/// IPVS sh's `IP_VS_SH_TAB_SIZE` (1 << 8).
pub const SH_TABLE_SIZE: usize = 256;

/// The Maglev table size: a prime, so that every skip in `1..M` visits
/// every slot.
pub const MH_TABLE_SIZE: usize = 65537;

/// IPVS's `IP_VS_MH_TAB_BITS`: `max weight / gcd` is shifted right until it
/// fits in this many bits.
const MH_WEIGHT_BITS: u32 = 6;

/// One member of a service, as the hash-table schedulers need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
}

impl Member {
    pub fn new(addr: IpAddr, port: u16, weight: u32) -> Member {
        Member { addr, port, weight }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// rr: every server with a non-zero weight once, in list order (IPVS's rr
/// skips quiesced servers).
pub fn rr(weights: &[u32]) -> Vec<u32> {
    (0..weights.len() as u32)
        .filter(|&i| weights[i as usize] > 0)
        .collect()
}

/// wrr: IPVS's interleaved weighted round robin. Each pass over the list
/// has a current weight, starting at the maximum weight and stepping down by
/// the gcd of the weights (then wrapping back to the maximum), and picks
/// every server whose weight is at least the current weight; one cycle holds
/// each server weight/gcd times.
pub fn wrr(weights: &[u32]) -> Result<Vec<u32>> {
    let g = weights.iter().fold(0, |g, &w| gcd(g, w));
    if g == 0 {
        return Ok(Vec::new());
    }
    let len: u64 = weights.iter().map(|&w| (w / g) as u64).sum();
    if len > MAX_TABLE_LEN as u64 {
        bail!(
            "weights {weights:?} need a wrr cycle of {len} entries (max {MAX_TABLE_LEN}); use weights with a larger common divisor"
        );
    }
    let mw = *weights.iter().max().unwrap() as i64;
    let mut out = Vec::with_capacity(len as usize);
    for pass in 0..(mw / g as i64) {
        let cw = mw - pass * g as i64;
        for (i, &w) in weights.iter().enumerate() {
            if w as i64 >= cw {
                out.push(i as u32);
            }
        }
    }
    Ok(out)
}

/// dh: [`DH_TABLE_SIZE`] buckets, bucket `i` to member `i mod n` (round
/// robin over the list, weights ignored); none without members.
pub fn dh(members: usize) -> Vec<u32> {
    if members == 0 {
        return Vec::new();
    }
    (0..DH_TABLE_SIZE).map(|i| (i % members) as u32).collect()
}

/// sh: [`SH_TABLE_SIZE`] buckets, each member repeated `weight` times
/// consecutively (at least once), in list order and wrapping around the
/// list; none without members.
pub fn sh(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(SH_TABLE_SIZE);
    let (mut p, mut count) = (0usize, 0u32);
    while out.len() < SH_TABLE_SIZE {
        out.push(p as u32);
        count += 1;
        // IPVS: `if (++d_count >= weight)` move on, so weight 0 counts as 1.
        if count >= weights[p] {
            p = (p + 1) % weights.len();
            count = 0;
        }
    }
    out
}

/// splitmix64's finalizer: a bijective 64-bit mix.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Seeds of the two member hashes (fixed: the same table on every
/// director).
const MH_SEED_OFFSET: u64 = 0x6c76_732d_6d68_2d6f; // "lvs-mh-o"
const MH_SEED_SKIP: u64 = 0x6c76_732d_6d68_2d73; // "lvs-mh-s"

/// A member's hash: its family, every 32-bit word of its address (network
/// order, 1 for IPv4, 4 for IPv6) and its port, folded through [`mix64`].
fn member_hash(addr: IpAddr, port: u16, seed: u64) -> u64 {
    let mut h = mix64(seed);
    let mut feed = |w: u64| h = mix64(h ^ w);
    match addr {
        IpAddr::V4(a) => {
            feed(4);
            feed(u32::from(a) as u64);
        }
        IpAddr::V6(a) => {
            feed(6);
            let o = a.octets();
            for c in o.chunks_exact(4) {
                feed(u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64);
            }
        }
    }
    feed(port as u64);
    h
}

/// A member's Maglev `(offset, skip)` for a table of `m` slots: `offset` in
/// `0..m`, `skip` in `1..m`.
pub fn mh_offset_skip(addr: IpAddr, port: u16, m: usize) -> (u32, u32) {
    let m = m as u64;
    let offset = member_hash(addr, port, MH_SEED_OFFSET) % m;
    let skip = member_hash(addr, port, MH_SEED_SKIP) % (m - 1) + 1;
    (offset as u32, skip as u32)
}

/// Each member's turns per population round, as IPVS's
/// `ip_vs_mh_permutate` computes them; all zero if no weight is.
pub fn mh_turns(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().fold(0, |g, &w| gcd(g, w));
    if g == 0 {
        return vec![0; weights.len()];
    }
    let mw = weights.iter().max().copied().unwrap_or(0) / g;
    // fls(mw) - bits, as ip_vs_mh_shift_weight.
    let fls = u32::BITS - mw.leading_zeros();
    let rshift = fls.saturating_sub(MH_WEIGHT_BITS);
    weights
        .iter()
        .map(|&w| match (w / g) >> rshift {
            0 => u32::from(w != 0),
            t => t,
        })
        .collect()
}

/// mh: the Maglev lookup table of [`MH_TABLE_SIZE`] slots.
pub fn mh(members: &[Member]) -> Result<Vec<u32>> {
    mh_sized(members, MH_TABLE_SIZE)
}

/// [`mh`] for a table of `m` slots (`m` prime).
fn mh_sized(members: &[Member], m: usize) -> Result<Vec<u32>> {
    if members.len() > m {
        bail!(
            "mh: {} real servers do not fit a Maglev table of {m} slots",
            members.len()
        );
    }
    let weights: Vec<u32> = members.iter().map(|x| x.weight).collect();
    let turns = mh_turns(&weights);
    if turns.iter().all(|&t| t == 0) {
        return Ok(Vec::new());
    }
    // (position, next preferred slot, skip, turns) per member with turns.
    let mut setup: Vec<(u32, u32, u32, u32)> = members
        .iter()
        .zip(&turns)
        .enumerate()
        .filter(|(_, (_, &t))| t > 0)
        .map(|(i, (x, &t))| {
            let (offset, skip) = mh_offset_skip(x.addr, x.port, m);
            (i as u32, offset, skip, t)
        })
        .collect();
    let m32 = m as u32;
    let mut table = vec![EMPTY; m];
    let mut filled = 0usize;
    'rounds: loop {
        for (pos, perm, skip, turns) in setup.iter_mut() {
            for _ in 0..*turns {
                let mut c = *perm;
                while table[c as usize] != EMPTY {
                    c += *skip;
                    if c >= m32 {
                        c -= m32;
                    }
                }
                *perm = c;
                table[c as usize] = *pos;
                filled += 1;
                if filled == m {
                    break 'rounds;
                }
            }
        }
    }
    Ok(table)
}

/// The table `sched` needs for `members` (see the module documentation);
/// empty for schedulers that need none.
pub fn table(sched: Scheduler, members: &[Member]) -> Result<Vec<u32>> {
    let weights = || members.iter().map(|x| x.weight).collect::<Vec<u32>>();
    match sched {
        Scheduler::Rr => Ok(rr(&weights())),
        Scheduler::Wrr => wrr(&weights()),
        Scheduler::Dh => Ok(dh(members.len())),
        Scheduler::Sh => Ok(sh(&weights())),
        Scheduler::Mh => mh(members),
        Scheduler::Lc
        | Scheduler::Wlc
        | Scheduler::Lblc
        | Scheduler::Lblcr
        | Scheduler::Sed
        | Scheduler::Nq
        | Scheduler::Fo
        | Scheduler::Ovf
        | Scheduler::Twos => Ok(Vec::new()),
    }
}

/// The rr and wrr tables from weights alone (empty for every other
/// scheduler): the entry point before [`table`], which the table store
/// uses instead.
pub fn build(sched: Scheduler, weights: &[u32]) -> Result<Vec<u32>> {
    match sched {
        Scheduler::Rr => Ok(rr(weights)),
        Scheduler::Wrr => wrr(weights),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn rr_skips_quiesced() {
        assert_eq!(rr(&[1, 0, 5, 1]), vec![0, 2, 3]);
        assert!(rr(&[0, 0]).is_empty());
    }

    #[test]
    fn wrr_follows_ipvs_sequence() {
        // Weights 3:1 -- A at cw=3, A at cw=2, A and B at cw=1.
        assert_eq!(wrr(&[3, 1]).unwrap(), vec![0, 0, 0, 1]);
        // 4:3:2 from the LVS documentation: A A B A B C A B C.
        assert_eq!(wrr(&[4, 3, 2]).unwrap(), vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
        // Equal weights behave as rr.
        assert_eq!(wrr(&[5, 5, 5]).unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn wrr_steps_by_gcd_and_counts_shares() {
        let t = wrr(&[300, 100, 0]).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.iter().filter(|&&i| i == 0).count(), 3);
        assert!(!t.contains(&2));
        let t = wrr(&[7, 3, 2]).unwrap();
        assert_eq!(t.len(), 12);
        for (i, w) in [7, 3, 2].iter().enumerate() {
            assert_eq!(t.iter().filter(|&&x| x == i as u32).count(), *w);
        }
    }

    #[test]
    fn wrr_refuses_huge_cycles() {
        assert!(wrr(&[65535, 65534]).is_err());
        assert!(wrr(&[0, 0]).unwrap().is_empty());
    }

    fn v4(i: u32, weight: u32) -> Member {
        Member::new(IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i)), 80, weight)
    }

    fn members(n: u32, weight: impl Fn(u32) -> u32) -> Vec<Member> {
        (0..n).map(|i| v4(i, weight(i))).collect()
    }

    #[test]
    fn table_dispatches_and_legacy_build_agrees() {
        let ms = members(3, |i| i + 1);
        let w = [1, 2, 3];
        assert_eq!(
            table(Scheduler::Rr, &ms).unwrap(),
            build(Scheduler::Rr, &w).unwrap()
        );
        assert_eq!(
            table(Scheduler::Wrr, &ms).unwrap(),
            build(Scheduler::Wrr, &w).unwrap()
        );
        assert_eq!(table(Scheduler::Dh, &ms).unwrap().len(), DH_TABLE_SIZE);
        assert_eq!(table(Scheduler::Sh, &ms).unwrap().len(), SH_TABLE_SIZE);
        assert_eq!(table(Scheduler::Mh, &ms).unwrap().len(), MH_TABLE_SIZE);
        for s in [
            Scheduler::Lc,
            Scheduler::Wlc,
            Scheduler::Lblc,
            Scheduler::Lblcr,
            Scheduler::Sed,
            Scheduler::Nq,
            Scheduler::Fo,
            Scheduler::Ovf,
            Scheduler::Twos,
        ] {
            assert!(table(s, &ms).unwrap().is_empty(), "{s}");
            assert!(build(s, &w).unwrap().is_empty(), "{s}");
        }
        for s in Scheduler::ALL {
            assert!(table(s, &[]).unwrap().is_empty(), "{s}");
        }
    }

    #[test]
    fn dh_is_round_robin_ignoring_weights() {
        assert!(dh(0).is_empty());
        let t = table(Scheduler::Dh, &members(3, |i| [5, 0, 1][i as usize])).unwrap();
        assert_eq!(t.len(), 256);
        assert_eq!(&t[..7], &[0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(t[255], 0); // 255 mod 3
        assert!(t.iter().enumerate().all(|(i, &p)| p == (i % 3) as u32));
        // More members than buckets: the first 256 only.
        let t = dh(300);
        assert_eq!(t.len(), 256);
        assert_eq!(t[255], 255);
    }

    #[test]
    fn sh_repeats_each_member_weight_times() {
        assert!(sh(&[]).is_empty());
        let t = sh(&[2, 0, 3]);
        assert_eq!(t.len(), 256);
        // 0 0 | 1 (weight 0 still gets one bucket) | 2 2 2 | 0 0 | 1 | ...
        assert_eq!(&t[..12], &[0, 0, 1, 2, 2, 2, 0, 0, 1, 2, 2, 2]);
        // 256 = 42 full cycles of 6, then 0 0 1 2.
        assert_eq!(&t[252..], &[0, 0, 1, 2]);
        // A weight beyond 256 takes every bucket.
        assert!(sh(&[300, 1]).iter().all(|&p| p == 0));
        assert!(sh(&[0]).iter().all(|&p| p == 0));
        let ms = members(2, |_| 1);
        assert_eq!(table(Scheduler::Sh, &ms).unwrap(), sh(&[1, 1]));
    }

    #[test]
    fn mh_turns_as_ipvs() {
        assert_eq!(mh_turns(&[1, 2, 3]), [1, 2, 3]);
        assert_eq!(mh_turns(&[300, 100, 0]), [3, 1, 0]);
        assert_eq!(mh_turns(&[0, 0]), [0, 0]);
        // max/gcd = 100 needs 7 bits: shifted right by one; 1 >> 1 = 0
        // still gets a turn.
        assert_eq!(mh_turns(&[1, 100]), [1, 50]);
        assert_eq!(mh_turns(&[63, 1]), [63, 1]);
        assert_eq!(mh_turns(&[64, 1]), [32, 1]);
        assert_eq!(mh_turns(&[65535, 1]), [63, 1]);
    }

    #[test]
    fn mh_offset_and_skip_are_deterministic_and_in_range() {
        let a: IpAddr = "10.1.0.1".parse().unwrap();
        let b: IpAddr = "fd00::1".parse().unwrap();
        for (addr, port) in [(a, 80), (a, 81), (b, 80)] {
            let (o, s) = mh_offset_skip(addr, port, MH_TABLE_SIZE);
            assert_eq!((o, s), mh_offset_skip(addr, port, MH_TABLE_SIZE));
            assert!((o as usize) < MH_TABLE_SIZE);
            assert!(s >= 1 && (s as usize) < MH_TABLE_SIZE);
        }
        // The port and the family count.
        assert_ne!(
            mh_offset_skip(a, 80, MH_TABLE_SIZE),
            mh_offset_skip(a, 81, MH_TABLE_SIZE)
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 0, 1).to_ipv6_mapped());
        assert_ne!(
            mh_offset_skip(a, 80, MH_TABLE_SIZE),
            mh_offset_skip(mapped, 80, MH_TABLE_SIZE)
        );
    }

    fn shares(t: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &p in t {
            c[p as usize] += 1;
        }
        c
    }

    /// The first slots of `mh(&members(10, |_| 1))`.
    const PINNED_10: &[u32] = &[2, 2, 7, 6, 7, 0, 4, 9, 7, 8, 7, 1, 4, 9, 4, 0];

    #[test]
    fn mh_is_deterministic_and_full() {
        let ms = members(10, |_| 1);
        let a = mh(&ms).unwrap();
        let b = mh(&ms.clone()).unwrap();
        assert_eq!(a.len(), MH_TABLE_SIZE);
        assert_eq!(a, b);
        assert!(!a.contains(&EMPTY));
        // Pinned: directors running different builds must agree, so the
        // table of a given member set must not change between versions.
        assert_eq!(&a[..16], PINNED_10, "the mh hash or population changed");
        // IPv6 members too.
        let v6: Vec<Member> = (0..5u16)
            .map(|i| {
                Member::new(
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)),
                    80,
                    1,
                )
            })
            .collect();
        let t = mh(&v6).unwrap();
        assert_eq!(t, mh(&v6).unwrap());
        assert!(shares(&t, 5).iter().all(|&c| c > 12_000));
    }

    #[test]
    fn mh_shares_follow_weights() {
        for n in [4u32, 10, 100] {
            let ms = members(n, |i| 1 + i % 4);
            let t = mh(&ms).unwrap();
            let total: u32 = ms.iter().map(|x| x.weight).sum();
            for (i, c) in shares(&t, n as usize).into_iter().enumerate() {
                let want = MH_TABLE_SIZE as f64 * ms[i].weight as f64 / total as f64;
                let err = (c as f64 - want).abs() / want;
                assert!(err < 0.03, "n={n} member {i}: {c} slots, want {want:.0}");
            }
        }
        // Weight 0 takes no slot; all weights 0 give no table.
        let ms = members(3, |i| [2, 0, 1][i as usize]);
        let c = shares(&mh(&ms).unwrap(), 3);
        assert_eq!(c[1], 0);
        assert!((c[0] as f64 / c[2] as f64 - 2.0).abs() < 0.01, "{c:?}");
        assert!(mh(&members(3, |_| 0)).unwrap().is_empty());
        // IPVS's 6-bit cut: 1:100 becomes 1:50.
        let c = shares(&mh(&members(2, |i| [1, 100][i as usize])).unwrap(), 2);
        assert!((c[1] as f64 / c[0] as f64 - 50.0).abs() < 1.0, "{c:?}");
    }

    /// The table as member identities (addresses), not positions.
    fn owners(ms: &[Member], t: &[u32]) -> Vec<IpAddr> {
        t.iter().map(|&p| ms[p as usize].addr).collect()
    }

    #[test]
    fn mh_removal_moves_little_and_adding_back_restores() {
        for n in [10u32, 100] {
            let all = members(n, |i| 1 + i % 3);
            let before = owners(&all, &mh(&all).unwrap());
            for gone in [0, n / 2, n - 1] {
                let gone_addr = all[gone as usize].addr;
                let mut rest = all.clone();
                rest.remove(gone as usize);
                let after = owners(&rest, &mh(&rest).unwrap());
                let moved_others = before
                    .iter()
                    .zip(&after)
                    .filter(|(b, a)| **b != gone_addr && a != b)
                    .count();
                let frac = moved_others as f64 / MH_TABLE_SIZE as f64;
                assert!(
                    frac <= 0.02,
                    "n={n}, removing {gone}: {moved_others} other slots moved ({:.2} %)",
                    frac * 100.0
                );
                assert!(!after.contains(&gone_addr));

                // Back in its place: the same table.
                let mut back = rest.clone();
                back.insert(gone as usize, all[gone as usize]);
                assert_eq!(owners(&back, &mh(&back).unwrap()), before);
                // Back at the end of the list (where a re-added real server
                // goes): almost the same table.
                let mut end = rest.clone();
                end.push(all[gone as usize]);
                let readded = owners(&end, &mh(&end).unwrap());
                let differ = before.iter().zip(&readded).filter(|(a, b)| a != b).count();
                assert!(
                    differ as f64 / MH_TABLE_SIZE as f64 <= 0.02,
                    "n={n}, re-adding {gone} at the end: {differ} slots differ"
                );
            }
        }
    }

    #[test]
    fn mh_needs_a_slot_per_member() {
        let ms = members(8, |_| 1);
        assert!(mh_sized(&ms, 7).is_err());
        let t = mh_sized(&ms, 11).unwrap();
        assert_eq!(t.len(), 11);
        assert!(shares(&t, 8).iter().all(|&c| c >= 1));
    }

    /// The build time for 1 000 members (weights 1-4), the benchmarked case:
    /// printed always, and held under 20 ms in release builds.
    #[test]
    fn mh_build_time_1000_members() {
        let ms = members(1000, |i| 1 + i % 4);
        let mut best = std::time::Duration::MAX;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let t = mh(&ms).unwrap();
            best = best.min(start.elapsed());
            assert_eq!(t.len(), MH_TABLE_SIZE);
        }
        println!("mh table for 1000 members: {best:?} (best of 5)");
        if !cfg!(debug_assertions) {
            assert!(best.as_millis() < 20, "{best:?}");
        }
    }
}
