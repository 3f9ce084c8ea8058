//! The leader's sync stream and the NEWLEADER quorum (zab-reference.md §3.3, D5, D9).

use super::*;
use crate::learner_sync::{LearnerSync, SyncOutput};
use crate::sync::plan_sync;

fn z(epoch: u32, counter: u32) -> Zxid {
    (i64::from(epoch) << 32) | i64::from(counter)
}

#[test]
fn a_participants_stream_is_the_plan_then_the_outstanding_proposals_then_newleader() {
    let committed = [z(1, 1), z(1, 2), z(1, 3)];
    let plan = plan_sync(z(1, 1), &committed, z(1, 3));
    let outstanding = [z(1, 4), z(1, 5)];
    assert_eq!(
        sync_stream(&plan, &[], &outstanding, false, 2),
        vec![
            SyncPacket::Diff(z(1, 3)),
            SyncPacket::Proposal(z(1, 2)),
            SyncPacket::Commit(z(1, 2)),
            SyncPacket::Proposal(z(1, 3)),
            SyncPacket::Commit(z(1, 3)),
            SyncPacket::Proposal(z(1, 4)),
            SyncPacket::Proposal(z(1, 5)),
            SyncPacket::NewLeader(z(2, 0)),
        ]
    );
}

#[test]
fn an_observer_gets_committed_txns_only_and_newleader_comes_last() {
    let plan = plan_sync(z(1, 2), &[z(1, 1), z(1, 2), z(1, 3)], z(1, 3));
    let stream = sync_stream(&plan, &[], &[z(1, 4)], true, 2);
    assert_eq!(
        stream,
        vec![
            SyncPacket::Diff(z(1, 3)),
            SyncPacket::Proposal(z(1, 3)),
            SyncPacket::Commit(z(1, 3)),
            SyncPacket::NewLeader(z(2, 0)),
        ]
    );
}

#[test]
fn the_stream_a_leader_builds_is_one_its_learner_accepts() {
    // The two sides agree: a learner fed the leader's stream reaches NEWLEADER asking to log
    // exactly the committed txns it lacked, and hands on the outstanding ones at UPTODATE.
    let committed = [z(1, 1), z(1, 2), z(1, 3), z(2, 1)];
    let plan = plan_sync(z(1, 2), &committed, z(2, 1));
    let stream = sync_stream(&plan, &[], &[z(2, 2)], false, 3);
    let mut learner = LearnerSync::new(z(1, 2));
    let mut out = Vec::new();
    for p in stream {
        out.extend(learner.on_packet(p));
    }
    assert_eq!(
        out,
        vec![
            SyncOutput::AppendAndApply(z(1, 3)),
            SyncOutput::AppendAndApply(z(2, 1)),
            SyncOutput::SyncLog
        ]
    );
    learner.on_log_durable();
    assert_eq!(
        learner.on_current_epoch_durable(),
        vec![SyncOutput::Ack(z(3, 0))]
    );
    let last = learner.on_packet(SyncPacket::UpToDate);
    assert!(
        matches!(&last[1], SyncOutput::StartServing { proposals, .. } if proposals == &vec![z(2, 2)]),
        "{last:?}"
    );
}

#[test]
fn the_epoch_is_established_by_a_quorum_with_the_leader_and_uptodate_follows() {
    let mut q = NewLeaderQuorum::new(1, [1, 2, 3, 4, 5], 3, 0, 10_000);
    for sid in [2, 3, 4, 9] {
        q.sent(sid);
    }
    assert_eq!(q.on_ack(9, z(3, 0)), vec![], "an observer never counts");
    assert_eq!(q.on_ack(2, z(3, 0)), vec![]);
    assert_eq!(
        q.on_ack(3, z(3, 0)),
        vec![
            NewLeaderOutput::Established,
            NewLeaderOutput::UpToDate(9),
            NewLeaderOutput::UpToDate(2),
            NewLeaderOutput::UpToDate(3),
        ]
    );
    assert_eq!(
        q.on_ack(4, z(3, 0)),
        vec![NewLeaderOutput::UpToDate(4)],
        "late: at once"
    );
    assert_eq!(q.next_wake(), None);
}

#[test]
fn a_first_ack_that_is_not_the_newleader_ack_drops_the_learner() {
    // D5 (ZOOKEEPER-4685): a proposal's ACK before the NEWLEADER ACK means the learner logged
    // outside the initial history.
    let mut q = NewLeaderQuorum::new(1, [1, 2, 3], 3, 0, 10_000);
    q.sent(2);
    let out = q.on_ack(2, z(2, 7));
    assert!(
        matches!(&out[..], [NewLeaderOutput::Drop { sid: 2, .. }]),
        "{out:?}"
    );
    assert_eq!(q.on_ack(2, z(3, 0)), vec![], "it no longer counts");
    assert_eq!(
        q.on_ack(7, z(3, 0)),
        vec![],
        "nor does one never sent NEWLEADER"
    );
}

#[test]
fn without_a_quorum_within_init_limit_leadership_is_abandoned() {
    let mut q = NewLeaderQuorum::new(1, [1, 2, 3, 4, 5], 3, 100, 10_000);
    q.sent(2);
    q.on_ack(2, z(3, 0));
    assert_eq!(q.next_wake(), Some(10_100));
    assert_eq!(q.on_timeout(10_099), vec![]);
    assert_eq!(q.on_timeout(10_100), vec![NewLeaderOutput::Abandon]);
    q.sent(3);
    assert_eq!(q.on_ack(3, z(3, 0)), vec![], "nothing after abandoning");
}

#[test]
fn txns_committed_but_not_applied_by_the_leader_go_as_pairs_before_the_outstanding_ones() {
    // A late joiner while the leader's own log lags the quorum (D10: it applies only what is
    // durable here): committed-but-unapplied txns must come with their COMMIT, or the learner
    // would never get one (the broadcast already sent it).
    let committed = [z(2, 1), z(2, 2)];
    let plan = plan_sync(z(2, 1), &committed, z(2, 2));
    let stream = sync_stream(&plan, &[z(2, 3)], &[z(2, 4)], false, 3);
    assert_eq!(
        stream,
        vec![
            SyncPacket::Diff(z(2, 2)),
            SyncPacket::Proposal(z(2, 2)),
            SyncPacket::Commit(z(2, 2)),
            SyncPacket::Proposal(z(2, 3)),
            SyncPacket::Commit(z(2, 3)),
            SyncPacket::Proposal(z(2, 4)),
            SyncPacket::NewLeader(z(3, 0)),
        ]
    );
    // An observer gets the committed ones only.
    let stream = sync_stream(&plan, &[z(2, 3)], &[z(2, 4)], true, 3);
    assert!(!stream.contains(&SyncPacket::Proposal(z(2, 4))));
    assert!(stream.contains(&SyncPacket::Commit(z(2, 3))));
}

fn history(zxids: impl IntoIterator<Item = Zxid>) -> History {
    History::from_zxids(zxids)
}

/// A leader whose own disk lags commits (on its followers' ACKs) ahead of applying: a learner
/// that applied a committed txn the leader has not is diffed from where it is, never truncated
/// below it (seed 27 of the server-pipeline simulator).
#[test]
fn a_learner_past_the_leaders_applied_point_but_within_its_commit_point_is_not_truncated() {
    let log = history((1..=10).map(|c| z(1, c)));
    let at = SyncPoint {
        applied: z(1, 5),
        committed: z(1, 8),
        last_proposed: z(1, 10),
        persisted: None,
    };
    assert_eq!(
        learner_stream(&log, z(1, 7), at, false, 2),
        vec![
            SyncPacket::Diff(z(1, 8)),
            SyncPacket::Proposal(z(1, 8)),
            SyncPacket::Commit(z(1, 8)),
            SyncPacket::Proposal(z(1, 9)),
            SyncPacket::Proposal(z(1, 10)),
            SyncPacket::NewLeader(z(2, 0)),
        ]
    );
    // One that holds txns the leader never had is cut back to the commit point, and gets the
    // outstanding proposals after it again; nothing it keeps is sent twice.
    assert_eq!(
        learner_stream(&log, z(1, 12), at, false, 2),
        vec![
            SyncPacket::Trunc(z(1, 8)),
            SyncPacket::Proposal(z(1, 9)),
            SyncPacket::Proposal(z(1, 10)),
            SyncPacket::NewLeader(z(2, 0)),
        ]
    );
}

/// A leader not established yet SNAPs a learner as of its persisted tree and sends the rest of
/// its history as txns, which the learner can still TRUNC should this leader fail (seed 10544).
#[test]
fn before_establishment_a_snap_is_the_persisted_tree_and_the_history_after_it_follows() {
    // Discovery: the leader's whole log (to 1.6) is its initial history, applied in memory; only
    // 1.3 is persisted. The learner is behind the log's start: it needs a SNAP.
    let log = history((3..=6).map(|c| z(1, c)));
    let mut at = SyncPoint {
        applied: z(1, 6),
        committed: z(1, 6),
        last_proposed: z(1, 6),
        persisted: Some(z(1, 3)),
    };
    assert_eq!(
        learner_stream(&log, z(1, 1), at, false, 2),
        vec![
            SyncPacket::Snap(z(1, 3)),
            SyncPacket::Proposal(z(1, 4)),
            SyncPacket::Commit(z(1, 4)),
            SyncPacket::Proposal(z(1, 5)),
            SyncPacket::Commit(z(1, 5)),
            SyncPacket::Proposal(z(1, 6)),
            SyncPacket::Commit(z(1, 6)),
            SyncPacket::NewLeader(z(2, 0)),
        ]
    );
    // Established, the SNAP is the applied tree.
    at.persisted = None;
    assert_eq!(
        learner_stream(&log, z(1, 1), at, false, 2),
        vec![SyncPacket::Snap(z(1, 6)), SyncPacket::NewLeader(z(2, 0))]
    );
}
