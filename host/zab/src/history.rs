//! The zxids a server's log holds, as runs of consecutive counters: what synchronisation plans
//! from (the leader's committed history) and what a vote reports (the last zxid). A log of
//! millions of txns is a handful of runs (one per epoch), so a peer can keep its history in
//! memory without keeping a zxid per txn. After a SNAP the history starts at the snapshot's zxid:
//! everything up to it is in the tree, and nothing before it can be sent as a DIFF.

use crate::Zxid;

/// Ascending, disjoint runs `(first, last)` of consecutive zxids, both ends included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    runs: Vec<(Zxid, Zxid)>,
}

impl History {
    /// An empty log.
    pub fn new() -> History {
        History::default()
    }

    /// A history made of these zxids (ascending).
    pub fn from_zxids(zxids: impl IntoIterator<Item = Zxid>) -> History {
        let mut h = History::new();
        for z in zxids {
            h.push(z);
        }
        h
    }

    /// A history that is a snapshot as of `zxid` and nothing else.
    pub fn snapshot(zxid: Zxid) -> History {
        History::from_zxids([zxid])
    }

    /// Appends `zxid`, which must be above the last one.
    pub fn push(&mut self, zxid: Zxid) {
        match self.runs.last_mut() {
            Some((_, last)) if zxid == *last + 1 => *last = zxid,
            Some((_, last)) => {
                assert!(
                    zxid > *last,
                    "history out of order: {zxid:#x} after {last:#x}"
                );
                self.runs.push((zxid, zxid));
            }
            None => self.runs.push((zxid, zxid)),
        }
    }

    pub fn first(&self) -> Option<Zxid> {
        self.runs.first().map(|r| r.0)
    }

    pub fn last(&self) -> Option<Zxid> {
        self.runs.last().map(|r| r.1)
    }

    pub fn contains(&self, zxid: Zxid) -> bool {
        let i = self.runs.partition_point(|r| r.1 < zxid);
        self.runs.get(i).is_some_and(|r| r.0 <= zxid)
    }

    /// The first zxid at or after `zxid`.
    pub fn first_at_or_after(&self, zxid: Zxid) -> Option<Zxid> {
        let i = self.runs.partition_point(|r| r.1 < zxid);
        self.runs.get(i).map(|r| r.0.max(zxid))
    }

    /// The last zxid before `zxid`.
    pub fn last_before(&self, zxid: Zxid) -> Option<Zxid> {
        let i = self.runs.partition_point(|r| r.0 < zxid);
        i.checked_sub(1).map(|i| self.runs[i].1.min(zxid - 1))
    }

    /// Cuts everything after `zxid`.
    pub fn truncate_after(&mut self, zxid: Zxid) {
        self.runs.retain(|r| r.0 <= zxid);
        if let Some(last) = self.runs.last_mut() {
            last.1 = last.1.min(zxid);
        }
    }

    /// Forgets every zxid up to `zxid` except the last one (the log's last zxid is what a vote
    /// reports and where a learner's sync starts): what the host can no longer send.
    pub fn forget_through(&mut self, zxid: Zxid) {
        let Some(last) = self.last() else { return };
        let keep_from = zxid.saturating_add(1).min(last);
        self.runs.retain(|r| r.1 >= keep_from);
        if let Some(first) = self.runs.first_mut() {
            first.0 = first.0.max(keep_from);
        }
    }

    /// The zxid `n` txns before `upto` in this history (`upto` itself for 0), counting only the
    /// zxids it holds at or below `upto`; `None` if it holds fewer.
    pub fn nth_back(&self, upto: Zxid, mut n: u64) -> Option<Zxid> {
        for &(a, b) in self.runs.iter().rev() {
            if a > upto {
                continue;
            }
            let top = b.min(upto);
            let count = (top - a) as u64 + 1;
            if n < count {
                return Some(top - n as Zxid);
            }
            n -= count;
        }
        None
    }

    /// The zxids in `(after, upto]`, ascending.
    pub fn range(&self, after: Zxid, upto: Zxid) -> Vec<Zxid> {
        let mut out = Vec::new();
        for &(a, b) in &self.runs {
            let (lo, hi) = (a.max(after.saturating_add(1)), b.min(upto));
            if lo <= hi {
                out.extend(lo..=hi);
            }
        }
        out
    }

    /// Every zxid up to `upto`, ascending.
    #[cfg(test)]
    pub fn to_vec_upto(&self, upto: Zxid) -> Vec<Zxid> {
        self.range(Zxid::MIN, upto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: u32, counter: u32) -> Zxid {
        (i64::from(epoch) << 32) | i64::from(counter)
    }

    #[test]
    fn consecutive_zxids_make_one_run_and_an_epoch_change_starts_another() {
        let h = History::from_zxids([z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2)]);
        assert_eq!(h.runs.len(), 2);
        assert_eq!(h.first(), Some(z(1, 1)));
        assert_eq!(h.last(), Some(z(2, 2)));
        assert!(h.contains(z(1, 2)) && h.contains(z(2, 1)));
        assert!(!h.contains(z(1, 4)) && !h.contains(z(2, 0)) && !h.contains(z(3, 1)));
        assert_eq!(
            h.to_vec_upto(z(2, 1)),
            vec![z(1, 1), z(1, 2), z(1, 3), z(2, 1)]
        );
        assert_eq!(h.range(z(1, 2), z(2, 9)), vec![z(1, 3), z(2, 1), z(2, 2)]);
    }

    #[test]
    fn forgetting_keeps_what_follows_and_always_the_last_zxid() {
        let mut h = History::from_zxids([z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2)]);
        h.forget_through(z(1, 2));
        assert_eq!(h.to_vec_upto(z(9, 0)), vec![z(1, 3), z(2, 1), z(2, 2)]);
        h.forget_through(z(1, 9));
        assert_eq!(h.to_vec_upto(z(9, 0)), vec![z(2, 1), z(2, 2)]);
        h.forget_through(z(2, 2));
        assert_eq!(h.to_vec_upto(z(9, 0)), vec![z(2, 2)]);
        h.forget_through(z(3, 0));
        assert_eq!((h.first(), h.last()), (Some(z(2, 2)), Some(z(2, 2))));
        let mut empty = History::new();
        empty.forget_through(z(1, 1));
        assert_eq!(empty, History::new());
    }

    #[test]
    fn counting_back_crosses_epochs_and_skips_what_is_above() {
        let h = History::from_zxids([z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2), z(2, 3)]);
        assert_eq!(h.nth_back(z(2, 2), 0), Some(z(2, 2)));
        assert_eq!(h.nth_back(z(2, 2), 1), Some(z(2, 1)));
        assert_eq!(h.nth_back(z(2, 2), 2), Some(z(1, 3)));
        assert_eq!(h.nth_back(z(2, 2), 4), Some(z(1, 1)));
        assert_eq!(h.nth_back(z(2, 2), 5), None);
        assert_eq!(h.nth_back(z(1, 9), 1), Some(z(1, 2)));
        assert_eq!(History::new().nth_back(z(1, 1), 0), None);
    }

    #[test]
    fn neighbours_of_a_zxid_are_found_across_runs() {
        let h = History::from_zxids([z(1, 1), z(1, 2), z(1, 3), z(3, 1), z(3, 2)]);
        assert_eq!(h.first_at_or_after(z(1, 2)), Some(z(1, 2)));
        assert_eq!(h.first_at_or_after(z(1, 4)), Some(z(3, 1)));
        assert_eq!(h.first_at_or_after(z(3, 3)), None);
        assert_eq!(h.last_before(z(1, 1)), None);
        assert_eq!(h.last_before(z(1, 3)), Some(z(1, 2)));
        assert_eq!(h.last_before(z(3, 1)), Some(z(1, 3)));
        assert_eq!(h.last_before(z(9, 0)), Some(z(3, 2)));
    }

    #[test]
    fn truncation_cuts_inside_a_run_and_drops_later_runs() {
        let mut h = History::from_zxids([z(1, 1), z(1, 2), z(1, 3), z(2, 1)]);
        h.truncate_after(z(1, 2));
        assert_eq!(h.to_vec_upto(Zxid::MAX), vec![z(1, 1), z(1, 2)]);
        h.push(z(3, 1));
        assert_eq!(h.last(), Some(z(3, 1)));
        h.truncate_after(0);
        assert_eq!(h, History::new());
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn a_zxid_below_the_last_is_refused() {
        let mut h = History::from_zxids([z(1, 5)]);
        h.push(z(1, 4));
    }
}
