//! Regions of a shared array (member lists, scheduler tables) taken during
//! one commit.

/// The regions in use: new ones go after the last used region while there
/// is room (amortised O(1) for a bulk restore), else into the first gap.
pub(super) struct Regions {
    used: Vec<(u32, u32)>,
    end: u32,
    cap: u32,
}

impl Regions {
    /// `used` as (offset, length) pairs in an array of `cap` slots.
    pub(super) fn new(used: Vec<(u32, u32)>, cap: u32) -> Regions {
        let end = used.iter().map(|&(o, l)| o + l).max().unwrap_or(0);
        Regions { used, end, cap }
    }

    /// The offset of a fresh region of `len` slots, `None` if none fits.
    pub(super) fn alloc(&mut self, len: u32) -> Option<u32> {
        let off = if self.cap.checked_sub(self.end)? >= len {
            self.end
        } else {
            find_gap(&mut self.used, len, self.cap)?
        };
        self.used.push((off, len));
        self.end = self.end.max(off + len);
        Some(off)
    }
}

/// First gap of `len` slots in `[0, cap)` not overlapping `used`.
fn find_gap(used: &mut [(u32, u32)], len: u32, cap: u32) -> Option<u32> {
    used.sort_unstable();
    let mut at = 0u32;
    for &(off, l) in used.iter() {
        if off >= at && off - at >= len {
            return Some(at);
        }
        at = at.max(off + l);
    }
    (cap.checked_sub(at)? >= len).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_first_fit_and_bounded() {
        assert_eq!(find_gap(&mut [], 4, 10), Some(0));
        assert_eq!(find_gap(&mut [(0, 3)], 4, 10), Some(3));
        assert_eq!(find_gap(&mut [(5, 2), (0, 3)], 2, 10), Some(3));
        assert_eq!(find_gap(&mut [(5, 2), (0, 3)], 3, 10), Some(7));
        assert_eq!(find_gap(&mut [(5, 2), (0, 3)], 4, 10), None);
        assert_eq!(find_gap(&mut [(0, 0)], 0, 0), Some(0));
    }

    #[test]
    fn regions_append_then_fill_gaps() {
        let mut r = Regions::new(vec![(0, 4), (10, 2)], 16);
        assert_eq!(r.alloc(3), Some(12));
        // No room at the end: the first gap.
        assert_eq!(r.alloc(3), Some(4));
        assert_eq!(r.alloc(1), Some(15));
        assert_eq!(r.alloc(3), Some(7));
        assert_eq!(r.alloc(1), None);
    }
}
