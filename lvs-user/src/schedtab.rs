//! Scheduler tables computed in userspace and walked by the XDP program.
//!
//! For rr and wrr the table is IPVS's selection sequence over one full
//! cycle, so the data path needs only an atomic counter per service to
//! reproduce IPVS's order exactly. Entries are positions in the service's
//! member list.

use anyhow::{bail, Result};

use crate::model::Scheduler;

/// Longest table one service may use; a wrr cycle is Σ weight/gcd long.
pub const MAX_TABLE_LEN: usize = 65536;

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

/// The table a scheduler needs (empty for those that need none).
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
}
