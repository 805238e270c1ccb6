//! The byte ranges of a split download: which bytes are written, which
//! are still missing, and the pieces the missing ones are asked for in.

use std::collections::VecDeque;
use std::ops::Range;

/// A set of byte ranges `[start, end)`, kept sorted, disjoint and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ranges(Vec<Range<u64>>);

impl Ranges {
    /// The set of `ranges`, in any order, overlapping or not; empty ones
    /// are dropped.
    pub(crate) fn of(ranges: impl IntoIterator<Item = Range<u64>>) -> Self {
        let mut set = Self::default();
        for range in ranges {
            set.insert(range);
        }
        set
    }

    /// Adds `range`, merging it with those it touches.
    pub(crate) fn insert(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        // The first range that ends at or after `range.start` (touching counts).
        let at = self.0.partition_point(|r| r.end < range.start);
        // Past the last range that starts at or before `range.end`.
        let to = self.0.partition_point(|r| r.start <= range.end);
        let merged = match self.0.get(at..to) {
            Some([first, .., last]) => first.start.min(range.start)..last.end.max(range.end),
            Some([only]) => only.start.min(range.start)..only.end.max(range.end),
            _ => range,
        };
        self.0.splice(at..to, [merged]);
    }

    /// Bytes in the set.
    pub(crate) fn len(&self) -> u64 {
        self.0.iter().map(|r| r.end - r.start).sum()
    }

    /// The end of the range that starts at byte 0: every byte before it is
    /// in the set (0 when byte 0 is not).
    pub(crate) fn prefix_end(&self) -> u64 {
        match self.0.first() {
            Some(first) if first.start == 0 => first.end,
            _ => 0,
        }
    }

    /// The ranges of `0..len` not in the set, in order.
    pub(crate) fn missing(&self, len: u64) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for range in &self.0 {
            if range.start >= len {
                break;
            }
            if range.start > at {
                gaps.push(at..range.start);
            }
            at = at.max(range.end);
        }
        if at < len {
            gaps.push(at..len);
        }
        gaps
    }

    /// The ranges, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Range<u64>> {
        self.0.iter()
    }

    /// The ranges, in order, as a slice.
    pub(crate) fn as_slice(&self) -> &[Range<u64>] {
        &self.0
    }
}

/// `gaps` cut into pieces of at most `piece` bytes, in order: what a split
/// download asks for, one ranged GET a piece, so that the bytes written
/// grow from the front and the hash (which must read them in order)
/// follows close behind.
pub(crate) fn pieces(gaps: &[Range<u64>], piece: u64) -> VecDeque<Range<u64>> {
    assert!(piece > 0, "a piece holds at least one byte");
    let mut out = VecDeque::new();
    for gap in gaps {
        let mut at = gap.start;
        while at < gap.end {
            let end = gap.end.min(at + piece);
            out.push_back(at..end);
            at = end;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // sets of one range
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_what_they_touch_and_keep_order() {
        let mut set = Ranges::default();
        set.insert(10..20);
        set.insert(30..40);
        set.insert(0..5);
        assert_eq!(set.0, vec![0..5, 10..20, 30..40]);
        set.insert(20..30);
        assert_eq!(set.0, vec![0..5, 10..40], "touching ranges merge");
        set.insert(3..12);
        assert_eq!(set.0, vec![0..40]);
        set.insert(50..50);
        assert_eq!(set.0, vec![0..40], "an empty range adds nothing");
        set.insert(45..60);
        set.insert(41..44);
        assert_eq!(set.0, vec![0..40, 41..44, 45..60]);
        set.insert(0..100);
        assert_eq!(set.0, vec![0..100]);
        assert_eq!(set.len(), 100);
    }

    #[test]
    fn the_prefix_ends_where_the_first_gap_starts() {
        assert_eq!(Ranges::default().prefix_end(), 0);
        assert_eq!(Ranges::of([5..10]).prefix_end(), 0);
        assert_eq!(Ranges::of([0..7, 9..12]).prefix_end(), 7);
    }

    #[test]
    fn missing_is_the_complement_within_the_length() {
        let set = Ranges::of([2..4, 6..8, 20..30]);
        assert_eq!(set.missing(10), vec![0..2, 4..6, 8..10]);
        assert_eq!(set.missing(25), vec![0..2, 4..6, 8..20]);
        assert_eq!(Ranges::of([0..10]).missing(10), Vec::<Range<u64>>::new());
        assert_eq!(Ranges::default().missing(3), vec![0..3]);
    }

    #[test]
    fn pieces_cover_the_gaps_in_order_and_no_more() {
        let got = pieces(&[0..10, 15..16, 20..45], 10);
        assert_eq!(Vec::from(got), vec![0..10, 15..16, 20..30, 30..40, 40..45]);
        assert!(pieces(&[], 4).is_empty());
    }
}
