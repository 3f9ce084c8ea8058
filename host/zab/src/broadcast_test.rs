//! Broadcast's rules (zab-reference.md §3.4, D6, D10).

use super::FollowerBroadcastOutput as F;
use super::LeaderBroadcastOutput as L;
use super::*;

fn z(epoch: u32, counter: u32) -> Zxid {
    (i64::from(epoch) << 32) | i64::from(counter)
}

#[test]
fn a_majority_of_durable_acks_commits_in_order_and_the_leader_applies_what_it_has() {
    let mut l = LeaderBroadcast::new(1, [1, 2, 3], 4);
    assert_eq!(l.propose(), vec![L::Propose(z(4, 1))]);
    assert_eq!(l.propose(), vec![L::Propose(z(4, 2))]);
    assert_eq!(l.propose(), vec![L::Propose(z(4, 3))]);
    // Follower 2 has all three durable; the leader nothing yet: one voter of three.
    assert_eq!(l.on_ack(2, z(4, 3)), vec![]);
    // Follower 3 has the first two: a majority (2, 3) holds 4:2. Commits go out in order, but the
    // leader applies nothing it has not made durable itself (D10).
    assert_eq!(
        l.on_ack(3, z(4, 2)),
        vec![L::Commit(z(4, 1)), L::Commit(z(4, 2))]
    );
    assert_eq!(
        l.on_local_durable(z(4, 3)),
        vec![
            L::Commit(z(4, 3)),
            L::Apply(z(4, 1)),
            L::Apply(z(4, 2)),
            L::Apply(z(4, 3))
        ]
    );
    assert_eq!(l.committed(), z(4, 3));
}

#[test]
fn observers_and_acks_of_an_older_epoch_never_count() {
    let mut l = LeaderBroadcast::new(1, [1, 2, 3], 4);
    l.propose();
    l.on_local_durable(z(4, 1));
    assert_eq!(l.on_ack(9, z(4, 1)), vec![], "an observer");
    assert_eq!(l.on_ack(2, z(3, 7)), vec![], "a stale ACK of the old epoch");
    assert_eq!(
        l.on_ack(3, z(4, 1)),
        vec![L::Commit(z(4, 1)), L::Apply(z(4, 1))]
    );
}

#[test]
fn an_exhausted_counter_asks_for_a_new_epoch_instead_of_wrapping() {
    let mut l = LeaderBroadcast::new(1, [1], 4);
    l.last_proposed = z(4, 0xffff_fffe);
    assert_eq!(l.propose(), vec![L::Propose(z(4, 0xffff_ffff))]);
    assert_eq!(l.propose(), vec![L::NewEpochNeeded]);
}

#[test]
fn a_follower_acks_only_what_is_durable_and_applies_only_what_is_also_committed() {
    let mut f = FollowerBroadcast::new(z(4, 0), false);
    assert_eq!(f.on_proposal(z(4, 1)), vec![F::Log(z(4, 1))]);
    assert_eq!(f.on_proposal(z(4, 2)), vec![F::Log(z(4, 2))]);
    // COMMIT before its own fsync: nothing is applied yet (D10).
    assert_eq!(f.on_commit(z(4, 2)), vec![]);
    assert_eq!(
        f.on_durable(z(4, 1)),
        vec![F::Ack(z(4, 1)), F::Apply(z(4, 1))]
    );
    assert_eq!(
        f.on_durable(z(4, 2)),
        vec![F::Ack(z(4, 2)), F::Apply(z(4, 2))]
    );
    // Durable but not committed: ACKed, not applied.
    f.on_proposal(z(4, 3));
    assert_eq!(f.on_durable(z(4, 3)), vec![F::Ack(z(4, 3))]);
    assert_eq!(f.on_commit(z(4, 3)), vec![F::Apply(z(4, 3))]);
}

#[test]
fn a_follower_applies_across_an_epoch_change_without_inventing_zxids() {
    let mut f = FollowerBroadcast::new(z(3, 5), false);
    f.on_proposal(z(4, 1));
    f.on_proposal(z(4, 2));
    f.on_durable(z(4, 2));
    assert_eq!(
        f.on_commit(z(4, 2)),
        vec![F::Apply(z(4, 1)), F::Apply(z(4, 2))]
    );
}

#[test]
fn a_gap_or_a_commit_from_nowhere_abandons_the_leader() {
    let mut f = FollowerBroadcast::new(z(4, 3), false);
    assert!(matches!(&f.on_proposal(z(4, 5))[..], [F::Abandon(_)]));
    assert_eq!(f.on_proposal(z(4, 4)), vec![], "nothing after abandoning");
    let mut g = FollowerBroadcast::new(z(4, 3), false);
    assert!(matches!(&g.on_commit(z(4, 4))[..], [F::Abandon(_)]));
}

#[test]
fn an_observer_never_acks_and_applies_informs_once_durable() {
    let mut o = FollowerBroadcast::new(z(4, 0), true);
    assert_eq!(o.on_inform(z(4, 1)), vec![F::Log(z(4, 1))]);
    assert_eq!(o.on_durable(z(4, 1)), vec![F::Apply(z(4, 1))]);
}
