//! Discovery's rules, each driven message by message (zab-reference.md §3.2, D1–D3).

use super::*;

fn zxid(epoch: u32, counter: u32) -> Zxid {
    (i64::from(epoch) << 32) | i64::from(counter)
}

fn state(accepted_epoch: u64, current_epoch: u64, last_zxid: Zxid) -> EpochState {
    EpochState {
        accepted_epoch,
        current_epoch,
        last_zxid,
    }
}

const INIT_LIMIT: u64 = 20_000;

fn leader_of_five() -> LeaderDiscovery {
    LeaderDiscovery::new(1, [1, 2, 3, 4, 5], state(3, 3, zxid(3, 10)), 0, INIT_LIMIT)
}

#[test]
fn the_epoch_exceeds_every_accepted_epoch_of_the_quorum_and_then_is_frozen() {
    let mut l = leader_of_five();
    assert_eq!(l.on_follower_info(2, 5), vec![]);
    let out = l.on_follower_info(3, 4);
    assert_eq!(
        out,
        vec![LeaderOutput::PersistAcceptedEpoch(6)],
        "leader, 2 and 3 are a quorum"
    );
    // A late follower's higher acceptedEpoch no longer moves it.
    assert_eq!(l.on_follower_info(4, 9), vec![]);
    assert_eq!(l.epoch(), 6);
}

#[test]
fn no_leaderinfo_leaves_before_the_epoch_is_durable() {
    // D2 (ZOOKEEPER-1291).
    let mut l = leader_of_five();
    l.on_follower_info(2, 3);
    assert_eq!(
        l.on_follower_info(3, 3),
        vec![LeaderOutput::PersistAcceptedEpoch(4)]
    );
    assert_eq!(
        l.on_follower_info(4, 3),
        vec![],
        "waits for the durable epoch too"
    );
    let mut out = l.on_accepted_epoch_durable();
    out.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        out,
        vec![
            LeaderOutput::LeaderInfo { to: 2, epoch: 4 },
            LeaderOutput::LeaderInfo { to: 3, epoch: 4 },
            LeaderOutput::LeaderInfo { to: 4, epoch: 4 },
        ]
    );
    assert_eq!(
        l.on_follower_info(5, 3),
        vec![LeaderOutput::LeaderInfo { to: 5, epoch: 4 }],
        "a late learner is told at once"
    );
}

/// Runs a leader of five to the point where LEADERINFO(4) went to 2, 3, 4 and 5.
fn informed_leader() -> LeaderDiscovery {
    let mut l = leader_of_five();
    for sid in [2, 3] {
        l.on_follower_info(sid, 3);
    }
    l.on_accepted_epoch_durable();
    for sid in [4, 5] {
        l.on_follower_info(sid, 3);
    }
    l
}

#[test]
fn a_quorum_of_acks_with_the_leader_makes_the_epoch_current_before_synchronising() {
    // D3: currentEpoch is durable on the leader before anyone is synchronised.
    let mut l = informed_leader();
    assert_eq!(l.on_ack_epoch(2, zxid(3, 8), Some(3)), vec![]);
    assert_eq!(
        l.on_ack_epoch(3, zxid(3, 10), Some(3)),
        vec![LeaderOutput::PersistCurrentEpoch(4)]
    );
    assert_eq!(
        l.on_ack_epoch(4, zxid(2, 7), Some(2)),
        vec![],
        "held until D3"
    );
    let mut out = l.on_current_epoch_durable();
    out.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        out,
        vec![
            LeaderOutput::Synchronise {
                sid: 2,
                last_zxid: zxid(3, 8)
            },
            LeaderOutput::Synchronise {
                sid: 3,
                last_zxid: zxid(3, 10)
            },
            LeaderOutput::Synchronise {
                sid: 4,
                last_zxid: zxid(2, 7)
            },
        ]
    );
    assert_eq!(
        l.on_ack_epoch(5, zxid(3, 1), Some(3)),
        vec![LeaderOutput::Synchronise {
            sid: 5,
            last_zxid: zxid(3, 1)
        }],
        "a late learner is synchronised at once"
    );
    assert_eq!(l.next_wake(), None);
}

#[test]
fn a_learner_ahead_of_the_leader_is_dropped_and_not_counted() {
    let mut l = informed_leader();
    let ahead = l.on_ack_epoch(2, zxid(3, 11), Some(3));
    assert!(
        matches!(&ahead[..], [LeaderOutput::Drop { sid: 2, .. }]),
        "{ahead:?}"
    );
    let newer_epoch = l.on_ack_epoch(3, zxid(1, 1), Some(4));
    assert!(
        matches!(&newer_epoch[..], [LeaderOutput::Drop { sid: 3, .. }]),
        "{newer_epoch:?}"
    );
    // Neither counted: 4 alone with the leader is not a quorum of five.
    assert_eq!(l.on_ack_epoch(4, zxid(3, 2), Some(3)), vec![]);
    assert_eq!(
        l.on_ack_epoch(5, zxid(3, 2), Some(3)),
        vec![LeaderOutput::PersistCurrentEpoch(4)]
    );
}

#[test]
fn an_ack_of_minus_one_and_an_observer_never_count() {
    let mut l = LeaderDiscovery::new(1, [1, 2, 3], state(3, 3, zxid(3, 10)), 0, INIT_LIMIT);
    assert_eq!(
        l.on_follower_info(9, 7),
        vec![],
        "an observer is not a quorum member"
    );
    assert_eq!(
        l.on_follower_info(2, 3),
        vec![LeaderOutput::PersistAcceptedEpoch(8)]
    );
    let out = l.on_accepted_epoch_durable();
    assert_eq!(out.len(), 2, "the observer is told too: {out:?}");
    assert_eq!(l.on_ack_epoch(9, zxid(3, 1), Some(3)), vec![], "observer");
    assert_eq!(
        l.on_ack_epoch(2, zxid(3, 1), None),
        vec![],
        "-1: not an ack"
    );
    l.on_follower_info(3, 3);
    assert_eq!(
        l.on_ack_epoch(3, zxid(3, 1), Some(3)),
        vec![LeaderOutput::PersistCurrentEpoch(8)]
    );
    // Both still get synchronised.
    assert_eq!(l.on_current_epoch_durable().len(), 3);
}

#[test]
fn without_a_quorum_by_init_limit_leadership_is_abandoned() {
    let mut l = leader_of_five();
    l.on_follower_info(2, 3);
    assert_eq!(l.next_wake(), Some(INIT_LIMIT));
    assert_eq!(l.on_timeout(INIT_LIMIT - 1), vec![]);
    assert_eq!(l.on_timeout(INIT_LIMIT), vec![LeaderOutput::Abandon]);
    assert_eq!(l.on_follower_info(3, 3), vec![], "nothing after abandoning");
    assert_eq!(l.next_wake(), None);
}

#[test]
fn an_ack_epoch_before_leaderinfo_drops_the_learner() {
    let mut l = informed_leader();
    let out = l.on_ack_epoch(7, zxid(1, 1), Some(1));
    assert!(
        matches!(&out[..], [LeaderOutput::Drop { sid: 7, .. }]),
        "{out:?}"
    );
}

#[test]
fn a_learner_promises_durably_before_it_acknowledges() {
    // D1, larger epoch: persist, then ACKEPOCH with currentEpoch and the last durable zxid.
    let (mut f, hello) = LearnerDiscovery::new(state(3, 2, zxid(2, 40)), 0, INIT_LIMIT);
    assert_eq!(hello, LearnerOutput::FollowerInfo { accepted_epoch: 3 });
    assert_eq!(
        f.on_leader_info(5),
        vec![LearnerOutput::PersistAcceptedEpoch(5)]
    );
    assert!(!f.acked());
    assert_eq!(f.on_timeout(INIT_LIMIT - 1), vec![]);
    assert_eq!(
        f.on_accepted_epoch_durable(),
        vec![LearnerOutput::AckEpoch {
            last_zxid: zxid(2, 40),
            current_epoch: Some(2)
        }]
    );
    assert!(f.acked());
    assert_eq!(f.on_timeout(INIT_LIMIT), vec![], "discovery is over for it");
}

#[test]
fn a_learner_answers_an_epoch_it_already_accepted_with_minus_one_and_refuses_an_older_one() {
    let (mut f, _) = LearnerDiscovery::new(state(5, 4, zxid(4, 1)), 0, INIT_LIMIT);
    assert_eq!(
        f.on_leader_info(5),
        vec![LearnerOutput::AckEpoch {
            last_zxid: zxid(4, 1),
            current_epoch: None
        }]
    );
    let (mut g, _) = LearnerDiscovery::new(state(5, 4, zxid(4, 1)), 0, INIT_LIMIT);
    assert!(matches!(
        &g.on_leader_info(4)[..],
        [LearnerOutput::Abandon { .. }]
    ));
    let (mut h, _) = LearnerDiscovery::new(state(5, 4, zxid(4, 1)), 0, INIT_LIMIT);
    assert!(matches!(
        &h.on_timeout(INIT_LIMIT)[..],
        [LearnerOutput::Abandon { .. }]
    ));
}
