//! Synchronisation's decision (ZAB phase 2, the leader's `LearnerHandler.syncFollower`;
//! zab-reference.md §3.3): from a learner's last durable zxid and the leader's committed log,
//! how the learner is brought to the leader's history — an empty or filled DIFF, a TRUNC of the
//! txns the leader never committed, or a SNAP — and which committed txns follow as
//! PROPOSAL+COMMIT pairs. Almost every data-loss bug ZooKeeper had lives on this path, so the
//! decision is a pure function with a test per case.
//!
//! wazoo's leader keeps its whole log from the purge floor on disk, readable like ZooKeeper's
//! in-memory `committedLog`, so the "committed window" here is that log (committed part only):
//! there is no separate on-disk catch-up case (ZooKeeper's case 5).

use crate::history::History;
use crate::Zxid;

/// How the learner's history is replaced or extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// DIFF(zxid): keep everything; the txns in [`SyncPlan::send`] follow.
    Diff(Zxid),
    /// TRUNC(zxid): cut the learner's log after `zxid` (durably, with everything a reload reads:
    /// D8), then the txns in `send` follow.
    Trunc(Zxid),
    /// SNAP(zxid): replace the learner's tree with the leader's, as of `zxid`.
    Snap(Zxid),
}

/// The leader's plan for one learner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncPlan {
    pub mode: SyncMode,
    /// Committed txns to send, in order, each as PROPOSAL then COMMIT, before NEWLEADER.
    pub send: Vec<Zxid>,
}

/// A packet of the sync stream, as the leader sends it and the learner receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPacket {
    Diff(Zxid),
    Trunc(Zxid),
    /// SNAP(zxid): the snapshot itself is streamed and loaded by the caller before the next packet.
    Snap(Zxid),
    Proposal(Zxid),
    Commit(Zxid),
    /// NEWLEADER(newEpoch << 32).
    NewLeader(Zxid),
    UpToDate,
}

/// The epoch of a zxid.
pub fn epoch_of(zxid: Zxid) -> u64 {
    (zxid >> 32) as u64
}

/// Whether a proposal `next` may follow `last` in a log: the next counter of the same epoch, or
/// the first txn of a later epoch. Anything else is a gap (ZOOKEEPER-4925).
pub fn follows(last: Zxid, next: Zxid) -> bool {
    next == last + 1 || (epoch_of(next) > epoch_of(last) && next & 0xffff_ffff == 1)
}

/// `newEpochZxid`: the zxid a server reports after acknowledging a new epoch with no txn in it.
fn is_new_epoch_zxid(zxid: Zxid) -> bool {
    zxid & 0xffff_ffff == 0
}

/// The leader's committed log as synchronisation reads it: a slice of zxids (the tests) or a
/// [`History`] up to a zxid (the peer, without listing a zxid per txn).
pub trait CommittedLog {
    fn first(&self) -> Option<Zxid>;
    fn last(&self) -> Option<Zxid>;
    /// The first zxid at or after `z`.
    fn at_or_after(&self, z: Zxid) -> Option<Zxid>;
    /// The last zxid before `z`.
    fn before(&self, z: Zxid) -> Option<Zxid>;
    /// Every zxid at or after `z`, ascending.
    fn from(&self, z: Zxid) -> Vec<Zxid>;
}

impl CommittedLog for [Zxid] {
    fn first(&self) -> Option<Zxid> {
        <[Zxid]>::first(self).copied()
    }
    fn last(&self) -> Option<Zxid> {
        <[Zxid]>::last(self).copied()
    }
    fn at_or_after(&self, z: Zxid) -> Option<Zxid> {
        self.get(self.partition_point(|&p| p < z)).copied()
    }
    fn before(&self, z: Zxid) -> Option<Zxid> {
        self.partition_point(|&p| p < z)
            .checked_sub(1)
            .map(|i| self[i])
    }
    fn from(&self, z: Zxid) -> Vec<Zxid> {
        self[self.partition_point(|&p| p < z)..].to_vec()
    }
}

/// A history's zxids up to `upto` (the leader's applied point).
pub struct HistoryUpTo<'a> {
    pub history: &'a History,
    pub upto: Zxid,
}

impl CommittedLog for HistoryUpTo<'_> {
    fn first(&self) -> Option<Zxid> {
        self.history.first().filter(|&z| z <= self.upto)
    }
    fn last(&self) -> Option<Zxid> {
        self.history.last_before(self.upto.saturating_add(1))
    }
    fn at_or_after(&self, z: Zxid) -> Option<Zxid> {
        self.history
            .first_at_or_after(z)
            .filter(|&f| f <= self.upto)
    }
    fn before(&self, z: Zxid) -> Option<Zxid> {
        self.history.last_before(z.min(self.upto.saturating_add(1)))
    }
    fn from(&self, z: Zxid) -> Vec<Zxid> {
        self.history.range(z.saturating_sub(1), self.upto)
    }
}

/// Plans the sync of a learner whose last durable zxid is `peer`. `committed` is the leader's
/// committed log from its purge floor on, ascending; `last_processed` its last applied zxid
/// (the last of `committed` when that is not empty).
pub fn plan_sync(peer: Zxid, committed: &[Zxid], last_processed: Zxid) -> SyncPlan {
    plan_sync_in(peer, committed, last_processed)
}

/// [`plan_sync`] over any [`CommittedLog`].
pub fn plan_sync_in<L: CommittedLog + ?Sized>(
    peer: Zxid,
    committed: &L,
    last_processed: Zxid,
) -> SyncPlan {
    let snap = SyncPlan {
        mode: SyncMode::Snap(last_processed),
        send: Vec::new(),
    };
    if peer == last_processed {
        return SyncPlan {
            mode: SyncMode::Diff(peer),
            send: Vec::new(),
        };
    }
    let (Some(min), Some(max)) = (committed.first(), committed.last()) else {
        // Nothing in the log to diff with: only a learner ahead of us can be cut back.
        if peer > last_processed && !is_new_epoch_zxid(peer) {
            return SyncPlan {
                mode: SyncMode::Trunc(last_processed),
                send: Vec::new(),
            };
        }
        return snap;
    };
    if peer > max && !is_new_epoch_zxid(peer) {
        // The learner holds txns past everything committed: they were never committed.
        return SyncPlan {
            mode: SyncMode::Trunc(max),
            send: Vec::new(),
        };
    }
    if peer < min || peer > max {
        // Below the purge floor (or a new-epoch zxid past the log): only a snapshot will do.
        return snap;
    }
    // min <= peer <= max: walk the log.
    if crate::planted::planted(crate::planted::Bug::DiffWithoutTrunc) {
        return SyncPlan {
            mode: SyncMode::Diff(max),
            send: committed.from(peer.saturating_add(1)),
        };
    }
    let prev = committed.before(peer);
    let p = committed.at_or_after(peer).expect("peer <= max");
    if p == peer {
        return SyncPlan {
            mode: SyncMode::Diff(max),
            send: committed.from(peer + 1),
        };
    }
    if is_new_epoch_zxid(peer) {
        return SyncPlan {
            mode: SyncMode::Diff(max),
            send: committed.from(peer),
        };
    }
    // The learner has txns the leader never committed, in the middle of the log: cut them,
    // but never across an epoch.
    match prev {
        Some(prev) if epoch_of(p) == epoch_of(peer) => SyncPlan {
            mode: SyncMode::Trunc(prev),
            send: committed.from(peer),
        },
        _ => snap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: u32, counter: u32) -> Zxid {
        (i64::from(epoch) << 32) | i64::from(counter)
    }

    /// The leader's committed log: epoch 1 txns 1..=5, epoch 3 txns 1..=4 (epoch 2 committed
    /// nothing).
    fn log() -> Vec<Zxid> {
        (1..=5)
            .map(|c| z(1, c))
            .chain((1..=4).map(|c| z(3, c)))
            .collect()
    }

    fn plan(peer: Zxid) -> SyncPlan {
        plan_sync(peer, &log(), z(3, 4))
    }

    #[test]
    fn an_up_to_date_learner_gets_an_empty_diff() {
        assert_eq!(
            plan(z(3, 4)),
            SyncPlan {
                mode: SyncMode::Diff(z(3, 4)),
                send: vec![]
            }
        );
    }

    #[test]
    fn a_learner_behind_gets_a_diff_of_what_it_lacks() {
        assert_eq!(
            plan(z(1, 4)),
            SyncPlan {
                mode: SyncMode::Diff(z(3, 4)),
                send: vec![z(1, 5), z(3, 1), z(3, 2), z(3, 3), z(3, 4)]
            }
        );
    }

    #[test]
    fn uncommitted_txns_past_the_log_are_truncated() {
        // The learner proposed (as an old leader) or logged txns nobody committed.
        assert_eq!(
            plan(z(3, 9)),
            SyncPlan {
                mode: SyncMode::Trunc(z(3, 4)),
                send: vec![]
            }
        );
        assert_eq!(
            plan(z(4, 2)),
            SyncPlan {
                mode: SyncMode::Trunc(z(3, 4)),
                send: vec![]
            }
        );
    }

    #[test]
    fn uncommitted_txns_inside_the_log_of_the_same_epoch_are_truncated_and_replaced() {
        // ZooKeeper's walk has this branch (a learner's txn the leader lacks, with leader txns of
        // the same epoch after it); with contiguous counters per epoch it needs a hole in the
        // leader's log to reach, which this test makes. Kept for parity with syncFollower.
        let committed = vec![z(1, 1), z(1, 2), z(1, 4), z(1, 5)];
        assert_eq!(
            plan_sync(z(1, 3), &committed, z(1, 5)),
            SyncPlan {
                mode: SyncMode::Trunc(z(1, 2)),
                send: vec![z(1, 4), z(1, 5)]
            }
        );
    }

    #[test]
    fn a_truncation_never_crosses_an_epoch() {
        // The learner's last txn is from epoch 2, which committed nothing: cutting it back into
        // epoch 1 by TRUNC is forbidden; it gets a snapshot.
        assert_eq!(
            plan(z(2, 7)),
            SyncPlan {
                mode: SyncMode::Snap(z(3, 4)),
                send: vec![]
            }
        );
    }

    #[test]
    fn a_learner_that_only_acknowledged_a_new_epoch_gets_the_txns_from_there() {
        // currentEpoch 3 acknowledged, no txn of epoch 3 logged: it reports 3:0.
        assert_eq!(
            plan(z(3, 0)),
            SyncPlan {
                mode: SyncMode::Diff(z(3, 4)),
                send: vec![z(3, 1), z(3, 2), z(3, 3), z(3, 4)]
            }
        );
        // Past the log, a new-epoch zxid is not truncated (it holds no txn): a snapshot.
        assert_eq!(
            plan(z(4, 0)),
            SyncPlan {
                mode: SyncMode::Snap(z(3, 4)),
                send: vec![]
            }
        );
    }

    #[test]
    fn a_learner_below_the_purge_floor_gets_a_snapshot() {
        let committed: Vec<Zxid> = (3..=5).map(|c| z(1, c)).collect();
        assert_eq!(
            plan_sync(z(1, 1), &committed, z(1, 5)),
            SyncPlan {
                mode: SyncMode::Snap(z(1, 5)),
                send: vec![]
            }
        );
        assert_eq!(
            plan_sync(0, &committed, z(1, 5)),
            SyncPlan {
                mode: SyncMode::Snap(z(1, 5)),
                send: vec![]
            },
            "an empty learner"
        );
    }

    #[test]
    fn with_an_empty_log_the_leader_diffs_equals_truncates_the_ahead_and_snaps_the_behind() {
        assert_eq!(
            plan_sync(z(1, 5), &[], z(1, 5)).mode,
            SyncMode::Diff(z(1, 5))
        );
        assert_eq!(
            plan_sync(z(1, 9), &[], z(1, 5)).mode,
            SyncMode::Trunc(z(1, 5))
        );
        assert_eq!(
            plan_sync(z(1, 2), &[], z(1, 5)).mode,
            SyncMode::Snap(z(1, 5))
        );
    }
}
