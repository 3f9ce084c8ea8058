//! The learner's sync stream, packet by packet (zab-reference.md §3.3, D4, D5, D8, and the
//! ZooKeeper bugs behind them).

use super::SyncOutput::*;
use super::SyncPacket::*;
use super::*;

fn z(epoch: u32, counter: u32) -> Zxid {
    (i64::from(epoch) << 32) | i64::from(counter)
}

fn feed(s: &mut LearnerSync, packets: &[SyncPacket]) -> Vec<SyncOutput> {
    packets.iter().flat_map(|&p| s.on_packet(p)).collect()
}

#[test]
fn a_diff_logs_the_committed_history_then_persists_the_epoch_then_acks() {
    // D4 (ZOOKEEPER-3911, 4646, 4643, 4785): log durable, then currentEpoch, then the ACK.
    let mut s = LearnerSync::new(z(1, 3));
    let out = feed(
        &mut s,
        &[
            Diff(z(1, 5)),
            Proposal(z(1, 4)),
            Commit(z(1, 4)),
            Proposal(z(1, 5)),
            Commit(z(1, 5)),
        ],
    );
    assert_eq!(out, vec![], "nothing is logged or applied before NEWLEADER");
    assert_eq!(
        s.on_packet(NewLeader(z(2, 0))),
        vec![AppendAndApply(z(1, 4)), AppendAndApply(z(1, 5)), SyncLog]
    );
    assert_eq!(
        s.on_current_epoch_durable(),
        vec![],
        "not before the log is durable"
    );
    assert_eq!(s.on_log_durable(), vec![PersistCurrentEpoch(2)]);
    assert_eq!(s.on_current_epoch_durable(), vec![Ack(z(2, 0))]);
    assert_eq!(
        s.on_packet(UpToDate),
        vec![
            Ack(z(2, 0)),
            StartServing {
                proposals: vec![],
                commits: vec![]
            }
        ]
    );
    assert!(s.serving());
}

#[test]
fn uncommitted_proposals_are_logged_and_acked_only_after_the_newleader_ack() {
    // D5 (ZOOKEEPER-4685): a late joiner gets outstanding proposals; their ACKs must follow the
    // NEWLEADER ACK, so they are handed to the broadcast path only at UPTODATE.
    let mut s = LearnerSync::new(z(1, 5));
    feed(&mut s, &[Diff(z(1, 5)), Proposal(z(1, 6))]);
    assert_eq!(s.on_packet(NewLeader(z(2, 0))), vec![SyncLog]);
    s.on_log_durable();
    assert_eq!(s.on_current_epoch_durable(), vec![Ack(z(2, 0))]);
    feed(&mut s, &[Commit(z(1, 6)), Proposal(z(1, 7))]);
    assert_eq!(
        s.on_packet(UpToDate),
        vec![
            Ack(z(2, 0)),
            StartServing {
                proposals: vec![z(1, 6), z(1, 7)],
                commits: vec![z(1, 6)]
            }
        ]
    );
}

#[test]
fn packets_during_a_durable_write_wait_for_it() {
    let mut s = LearnerSync::new(z(1, 5));
    feed(&mut s, &[Diff(z(1, 5))]);
    s.on_packet(NewLeader(z(2, 0)));
    // UPTODATE can arrive while the history is being made durable: held until after the ACK.
    assert_eq!(s.on_packet(UpToDate), vec![]);
    assert_eq!(s.on_log_durable(), vec![PersistCurrentEpoch(2)]);
    let out = s.on_current_epoch_durable();
    assert_eq!(out[0], Ack(z(2, 0)), "the NEWLEADER ACK first: {out:?}");
    assert!(
        matches!(&out[1..], [Ack(_), StartServing { .. }]),
        "{out:?}"
    );
}

#[test]
fn a_trunc_cuts_the_log_durably_before_anything_else_is_taken() {
    // D8: the cut must be durable (and cover everything a reload reads) before the stream goes on.
    let mut s = LearnerSync::new(z(1, 9));
    assert_eq!(s.on_packet(Trunc(z(1, 6))), vec![TruncateAfter(z(1, 6))]);
    assert_eq!(s.on_packet(Proposal(z(1, 7))), vec![], "held");
    assert_eq!(s.on_packet(Commit(z(1, 7))), vec![], "held");
    assert_eq!(s.on_truncated(), vec![Apply(z(1, 7))]);
    assert_eq!(s.on_packet(NewLeader(z(2, 0))), vec![SyncLog]);
}

#[test]
fn a_trunc_above_the_learners_log_abandons_the_leader() {
    let mut s = LearnerSync::new(z(1, 4));
    assert!(matches!(&s.on_packet(Trunc(z(1, 6)))[..], [Abandon(_)]));
}

#[test]
fn a_snap_loads_the_tree_and_applies_commits_as_they_come() {
    let mut s = LearnerSync::new(0);
    assert_eq!(s.on_packet(Snap(z(3, 10))), vec![LoadSnapshot(z(3, 10))]);
    assert_eq!(
        feed(
            &mut s,
            &[Proposal(z(3, 11)), Commit(z(3, 11)), Proposal(z(3, 12))]
        ),
        vec![Apply(z(3, 11))]
    );
    // The uncommitted 3:12 is not part of the history made durable at NEWLEADER.
    assert_eq!(s.on_packet(NewLeader(z(4, 0))), vec![SyncLog]);
}

#[test]
fn a_gap_in_the_proposals_abandons_the_leader() {
    // ZOOKEEPER-4925: never log around a missing txn.
    let mut s = LearnerSync::new(z(1, 3));
    s.on_packet(Diff(z(1, 6)));
    assert!(matches!(&s.on_packet(Proposal(z(1, 5)))[..], [Abandon(_)]));
    assert_eq!(
        s.on_packet(Proposal(z(1, 4))),
        vec![],
        "nothing after abandoning"
    );
    // A new epoch may start at its counter 1.
    let mut t = LearnerSync::new(z(1, 3));
    feed(&mut t, &[Diff(z(2, 1))]);
    assert_eq!(t.on_packet(Proposal(z(2, 1))), vec![]);
    assert!(matches!(&t.on_packet(Proposal(z(2, 3)))[..], [Abandon(_)]));
}

#[test]
fn a_commit_for_no_proposal_or_a_stream_without_a_mode_abandons_the_leader() {
    let mut s = LearnerSync::new(z(1, 3));
    s.on_packet(Diff(z(1, 3)));
    assert!(matches!(&s.on_packet(Commit(z(1, 4)))[..], [Abandon(_)]));
    let mut t = LearnerSync::new(z(1, 3));
    assert!(matches!(&t.on_packet(Proposal(z(1, 4)))[..], [Abandon(_)]));
}
