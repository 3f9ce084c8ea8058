//! The commit point, kept apart from durability: a txn is applied once a quorum of voters has it
//! durably in their logs, not when this server's own fsync returns. Standalone is a quorum of one
//! (this server), so there the two coincide; in an ensemble the leader feeds it the ACKs of its
//! followers (each sent only once the proposal is durable on that follower), and observers,
//! which never vote, do not count. Pure: acks in, commit point out.

use std::collections::HashMap;

use crate::{Sid as ServerId, Zxid};

/// The highest zxid a quorum (a majority) of the voters has logged durably.
#[derive(Debug)]
pub struct CommitPoint {
    voters: Vec<ServerId>,
    /// The highest zxid each voter has acknowledged (durable in its log).
    acked: HashMap<ServerId, Zxid>,
    committed: Zxid,
}

impl CommitPoint {
    /// An ensemble of `voters`, everything up to `committed` already committed.
    pub fn new(voters: &[ServerId], committed: Zxid) -> CommitPoint {
        assert!(!voters.is_empty(), "an ensemble has at least one voter");
        CommitPoint {
            voters: voters.to_vec(),
            acked: HashMap::new(),
            committed,
        }
    }

    /// A standalone server: a quorum of one.
    pub fn standalone(me: ServerId, committed: Zxid) -> CommitPoint {
        CommitPoint::new(&[me], committed)
    }

    /// `server` has everything up to `zxid` durably in its log. Returns the new commit point if it
    /// moved. Acks never move a voter backwards, and those of non-voters (observers) are ignored.
    pub fn ack(&mut self, server: ServerId, zxid: Zxid) -> Option<Zxid> {
        if !self.voters.contains(&server) {
            return None;
        }
        let acked = self.acked.entry(server).or_insert(zxid);
        *acked = (*acked).max(zxid);
        let mut durable: Vec<Zxid> = self
            .voters
            .iter()
            .map(|v| self.acked.get(v).copied().unwrap_or(0))
            .collect();
        durable.sort_unstable_by(|a, b| b.cmp(a));
        // The majority-th highest: a majority has at least that much.
        let quorum_has = if crate::planted::planted(crate::planted::Bug::CommitOnMinority) {
            durable[0]
        } else {
            durable[self.voters.len() / 2]
        };
        if quorum_has > self.committed {
            self.committed = quorum_has;
            return Some(quorum_has);
        }
        None
    }

    /// Everything up to here may be applied.
    pub fn committed(&self) -> Zxid {
        self.committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_commits_what_its_own_log_has() {
        let mut c = CommitPoint::standalone(1, 0);
        assert_eq!(c.ack(1, 5), Some(5));
        assert_eq!(c.ack(1, 5), None, "no move, no news");
        assert_eq!(c.ack(1, 9), Some(9));
        assert_eq!(c.committed(), 9);
    }

    #[test]
    fn three_voters_commit_what_two_have() {
        let mut c = CommitPoint::new(&[1, 2, 3], 0);
        assert_eq!(c.ack(1, 10), None, "the leader alone is a minority");
        assert_eq!(c.ack(3, 7), Some(7));
        assert_eq!(c.ack(2, 12), Some(10));
        assert_eq!(c.committed(), 10);
    }

    #[test]
    fn five_voters_commit_what_three_have() {
        let mut c = CommitPoint::new(&[1, 2, 3, 4, 5], 0);
        assert_eq!(c.ack(1, 20), None);
        assert_eq!(c.ack(2, 20), None);
        assert_eq!(c.ack(3, 15), Some(15));
        assert_eq!(c.ack(4, 18), Some(18));
    }

    #[test]
    fn observers_and_strangers_never_count() {
        let mut c = CommitPoint::new(&[1, 2, 3], 0);
        assert_eq!(c.ack(1, 10), None);
        assert_eq!(c.ack(4, 10), None, "server 4 is an observer");
        assert_eq!(c.ack(5, 10), None);
        assert_eq!(c.committed(), 0);
    }

    #[test]
    fn the_commit_point_never_goes_back() {
        let mut c = CommitPoint::new(&[1, 2, 3], 8);
        assert_eq!(c.ack(1, 5), None);
        assert_eq!(
            c.ack(2, 6),
            None,
            "a quorum at 5 is below what is committed"
        );
        assert_eq!(c.committed(), 8);
        assert_eq!(c.ack(2, 3), None, "an old ack moves nobody back");
        assert_eq!(c.ack(1, 9), None);
        assert_eq!(c.ack(2, 9), Some(9));
    }
}
