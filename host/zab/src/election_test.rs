//! Fast Leader Election over a small deterministic network: messages are delivered one at a time
//! in FIFO order (optionally dropped to or from chosen servers), and time advances only to the
//! next wake-up when nothing is in flight. Scenarios follow zab-reference.md §2.

use std::collections::{BTreeMap, VecDeque};

use super::*;

struct Net {
    nodes: BTreeMap<Sid, Election>,
    voters: Vec<Sid>,
    queue: VecDeque<(Sid, Notification)>,
    now: u64,
    /// Servers that are down: nothing reaches them, they send nothing.
    down: BTreeSet<Sid>,
    decisions: BTreeMap<Sid, (PeerState, Vote, u64)>,
}

impl Net {
    /// `voters` and `observers`, none started.
    fn new(voters: &[Sid], observers: &[Sid]) -> Net {
        let mut nodes = BTreeMap::new();
        for &sid in voters.iter().chain(observers) {
            nodes.insert(
                sid,
                Election::new(ElectionConfig::new(sid, voters.iter().copied())),
            );
        }
        Net {
            nodes,
            voters: voters.to_vec(),
            queue: VecDeque::new(),
            now: 0,
            down: BTreeSet::new(),
            decisions: BTreeMap::new(),
        }
    }

    fn start(&mut self, sid: Sid, last_zxid: Zxid, current_epoch: u64) {
        let now = self.now;
        let out = self
            .nodes
            .get_mut(&sid)
            .unwrap()
            .look_for_leader(now, last_zxid, current_epoch);
        self.emit(sid, out);
    }

    fn emit(&mut self, from: Sid, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Broadcast(n) => {
                    for &v in &self.voters {
                        if v != from {
                            self.queue.push_back((v, n));
                        }
                    }
                }
                Output::Send { to, notification } => self.queue.push_back((to, notification)),
                Output::Decided { state, vote, round } => {
                    self.decisions.insert(from, (state, vote, round));
                }
            }
        }
    }

    /// Delivers messages and fires timeouts until every live server has decided or `until` ms.
    fn run(&mut self, until: u64) {
        while self.now <= until {
            if let Some((to, n)) = self.queue.pop_front() {
                if self.down.contains(&to) || self.down.contains(&n.from) {
                    continue;
                }
                let now = self.now;
                let out = self.nodes.get_mut(&to).unwrap().on_notification(now, n);
                self.emit(to, out);
                continue;
            }
            let live: Vec<Sid> = self
                .nodes
                .keys()
                .copied()
                .filter(|s| !self.down.contains(s))
                .collect();
            let Some(next) = live.iter().filter_map(|s| self.nodes[s].next_wake()).min() else {
                return; // nobody is looking
            };
            self.now = self.now.max(next);
            for sid in live {
                if self.nodes[&sid].next_wake().is_some_and(|w| w <= self.now) {
                    let now = self.now;
                    let out = self.nodes.get_mut(&sid).unwrap().on_timeout(now);
                    self.emit(sid, out);
                }
            }
        }
    }

    fn leader_of(&self, sid: Sid) -> Option<Sid> {
        self.decisions.get(&sid).map(|d| d.1.leader)
    }

    fn state_of(&self, sid: Sid) -> Option<PeerState> {
        self.decisions.get(&sid).map(|d| d.0)
    }
}

fn zxid(epoch: u32, counter: u32) -> Zxid {
    (i64::from(epoch) << 32) | i64::from(counter)
}

#[test]
fn three_voters_elect_the_one_with_the_highest_zxid() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.start(1, zxid(1, 5), 1);
    net.start(2, zxid(1, 9), 1);
    net.start(3, zxid(1, 7), 1);
    net.run(10_000);
    for sid in [1, 2, 3] {
        assert_eq!(net.leader_of(sid), Some(2), "server {sid}");
    }
    assert_eq!(net.state_of(2), Some(PeerState::Leading));
    assert_eq!(net.state_of(1), Some(PeerState::Following));
    assert_eq!(net.state_of(3), Some(PeerState::Following));
}

#[test]
fn the_current_epoch_outranks_the_zxid_and_the_sid_breaks_ties() {
    // 1 and 3 acknowledged NEWLEADER of epoch 3 (currentEpoch 3) with no txn of it yet; 2 has
    // more txns of epoch 2 but never joined epoch 3. currentEpoch decides, then the sid.
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.start(1, zxid(2, 5), 3);
    net.start(2, zxid(2, 9), 2);
    net.start(3, zxid(2, 5), 3);
    net.run(10_000);
    for sid in [1, 2, 3] {
        assert_eq!(net.leader_of(sid), Some(3), "server {sid}");
    }
}

#[test]
fn a_majority_elects_without_the_minority() {
    let mut net = Net::new(&[1, 2, 3, 4, 5], &[]);
    net.down.extend([4, 5]);
    net.start(1, zxid(1, 3), 1);
    net.start(2, zxid(1, 3), 1);
    net.start(3, zxid(1, 2), 1);
    net.run(10_000);
    for sid in [1, 2, 3] {
        assert_eq!(net.leader_of(sid), Some(2), "server {sid}");
    }
    // Two of five cannot elect anyone.
    let mut net = Net::new(&[1, 2, 3, 4, 5], &[]);
    net.down.extend([3, 4, 5]);
    net.start(1, zxid(1, 3), 1);
    net.start(2, zxid(1, 3), 1);
    net.run(120_000);
    assert!(net.decisions.is_empty(), "{:?}", net.decisions);
}

#[test]
fn a_restarted_server_joins_the_established_leader_from_the_answers() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.down.insert(1);
    net.start(2, zxid(1, 9), 1);
    net.start(3, zxid(1, 4), 1);
    net.run(10_000);
    assert_eq!(net.state_of(2), Some(PeerState::Leading));
    assert_eq!(net.state_of(3), Some(PeerState::Following));
    // Server 1 comes back with a newer-looking log, in a later round than the ensemble's (it had
    // looked three times on its own before): it must not win, it must follow the leader the
    // others answer with.
    net.down.clear();
    for _ in 0..3 {
        let now = net.now;
        drop(
            net.nodes
                .get_mut(&1)
                .unwrap()
                .look_for_leader(now, zxid(1, 20), 1),
        );
    }
    net.start(1, zxid(1, 20), 1);
    net.run(net.now + 10_000);
    assert_eq!(net.leader_of(1), Some(2));
    assert_eq!(net.state_of(1), Some(PeerState::Following));
    assert_eq!(
        net.nodes[&1].round(),
        net.decisions[&2].2,
        "it takes the ensemble's round"
    );
}

#[test]
fn a_crashed_leader_that_others_still_report_is_never_followed() {
    // checkLeader: a quorum (2, 4, 5 of five) still reports FOLLOWING 3, but 3 crashed: until 3
    // itself says LEADING, server 1 must not follow it.
    let mut e = Election::new(ElectionConfig::new(1, [1, 2, 3, 4, 5]));
    e.look_for_leader(0, zxid(1, 1), 1);
    let stale = Vote {
        leader: 3,
        zxid: zxid(1, 5),
        peer_epoch: 1,
    };
    let following = |from| Notification {
        from,
        state: PeerState::Following,
        vote: stale,
        round: 7,
    };
    for from in [2, 4, 5] {
        let out = e.on_notification(1, following(from));
        assert!(
            out.iter().all(|o| !matches!(o, Output::Decided { .. })),
            "{out:?}"
        );
    }
    assert_eq!(e.state(), PeerState::Looking);
    let out = e.on_notification(
        2,
        Notification {
            from: 3,
            state: PeerState::Leading,
            vote: stale,
            round: 7,
        },
    );
    assert!(
        out.contains(&Output::Decided {
            state: PeerState::Following,
            vote: stale,
            round: 7
        }),
        "{out:?}"
    );
    assert_eq!(e.round(), 7, "it takes the ensemble's round");
}

#[test]
fn an_observer_is_never_elected_and_learns_the_leader() {
    let mut net = Net::new(&[1, 2, 3], &[9]);
    net.start(9, zxid(5, 500), 5); // the best log, but no vote
    net.start(1, zxid(1, 1), 1);
    net.start(2, zxid(1, 2), 1);
    net.start(3, zxid(1, 3), 1);
    net.run(60_000);
    for sid in [1, 2, 3, 9] {
        assert_eq!(net.leader_of(sid), Some(3), "server {sid}");
    }
    assert_eq!(net.state_of(9), Some(PeerState::Observing));
}

#[test]
fn a_better_vote_during_the_finalize_wait_changes_the_outcome() {
    let cfg = ElectionConfig::new(1, [1, 2, 3]);
    let mut e = Election::new(cfg);
    e.look_for_leader(0, zxid(1, 5), 1);
    let mine = e.current_vote();
    // Server 2 agrees with 1: a quorum (1 and 2) holds 1's vote, finalizing until 200 ms.
    e.on_notification(
        10,
        Notification {
            from: 2,
            state: PeerState::Looking,
            vote: mine,
            round: 1,
        },
    );
    assert_eq!(
        e.next_wake(),
        Some(210),
        "finalizing: nothing is re-sent meanwhile"
    );
    // Server 3's better vote arrives at 150 ms: adopted, no decision for 1's vote.
    let better = Vote {
        leader: 3,
        zxid: zxid(1, 8),
        peer_epoch: 1,
    };
    let out = e.on_notification(
        150,
        Notification {
            from: 3,
            state: PeerState::Looking,
            vote: better,
            round: 1,
        },
    );
    assert!(
        matches!(&out[..], [Output::Broadcast(n)] if n.vote == better),
        "{out:?}"
    );
    assert!(e
        .on_timeout(200)
        .iter()
        .all(|o| !matches!(o, Output::Decided { .. })));
    // 1 and 3 hold 3's vote from 150: a quorum, finalizing until 350; 2 adopting it too at 210
    // brings nothing new and does not put the decision off.
    e.on_notification(
        210,
        Notification {
            from: 2,
            state: PeerState::Looking,
            vote: better,
            round: 1,
        },
    );
    assert!(e
        .on_timeout(349)
        .iter()
        .all(|o| !matches!(o, Output::Decided { .. })));
    let out = e.on_timeout(350);
    assert_eq!(
        out,
        vec![Output::Decided {
            state: PeerState::Following,
            vote: better,
            round: 1
        }]
    );
}

#[test]
fn a_lonely_server_resends_with_a_doubling_wait_up_to_the_maximum() {
    let cfg = ElectionConfig::new(1, [1, 2, 3]);
    let mut e = Election::new(cfg);
    assert_eq!(e.look_for_leader(0, 0, 0).len(), 1);
    let mut sends = Vec::new();
    let mut now = 0;
    while now < 300_000 {
        now = e.next_wake().unwrap();
        if !e.on_timeout(now).is_empty() {
            sends.push(now);
        }
    }
    assert_eq!(&sends[..4], &[200, 600, 1400, 3000]);
    let gaps: Vec<u64> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(*gaps.iter().max().unwrap(), 60_000);
}

#[test]
fn a_decided_server_answers_the_looking_and_a_stale_round_gets_the_proposal() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.start(1, zxid(1, 1), 1);
    net.start(2, zxid(1, 2), 1);
    net.start(3, zxid(1, 3), 1);
    net.run(10_000);
    let leader_vote = net.decisions[&3].1;
    let out = net.nodes.get_mut(&2).unwrap().on_notification(
        net.now,
        Notification {
            from: 1,
            state: PeerState::Looking,
            vote: leader_vote,
            round: 99,
        },
    );
    assert!(
        matches!(&out[..], [Output::Send { to: 1, notification }]
            if notification.state == PeerState::Following && notification.vote == leader_vote),
        "{out:?}"
    );
    // A LOOKING server in round 5 answers a round-3 notification with its own proposal.
    let mut e = Election::new(ElectionConfig::new(1, [1, 2, 3]));
    for _ in 0..5 {
        e.look_for_leader(0, zxid(1, 1), 1);
    }
    let out = e.on_notification(
        1,
        Notification {
            from: 2,
            state: PeerState::Looking,
            vote: leader_vote,
            round: 3,
        },
    );
    assert!(
        matches!(&out[..], [Output::Send { to: 2, notification }]
            if notification.round == 5 && notification.vote == e.current_vote()),
        "{out:?}"
    );
}

#[test]
fn the_proposal_is_resent_only_after_a_silence_of_the_notification_interval() {
    // `recvqueue.poll(notTimeout)`: a notification received restarts the wait, so a server busy
    // exchanging votes does not re-send stale copies into the others' finalize wait.
    let mut e = Election::new(ElectionConfig::new(1, [1, 2, 3]));
    e.look_for_leader(0, zxid(1, 5), 1);
    assert_eq!(e.next_wake(), Some(200));
    let worse = Vote {
        leader: 2,
        zxid: zxid(1, 1),
        peer_epoch: 1,
    };
    e.on_notification(
        150,
        Notification {
            from: 2,
            state: PeerState::Looking,
            vote: worse,
            round: 1,
        },
    );
    assert_eq!(e.next_wake(), Some(350));
    assert!(e.on_timeout(200).is_empty(), "no re-send at 200");
    assert!(matches!(&e.on_timeout(350)[..], [Output::Broadcast(_)]));
    assert_eq!(e.next_wake(), Some(750), "then the interval doubles");
}

#[test]
fn a_vote_that_is_not_better_does_not_prolong_the_finalize_wait() {
    let mut e = Election::new(ElectionConfig::new(1, [1, 2, 3]));
    e.look_for_leader(0, zxid(1, 5), 1);
    let mine = e.current_vote();
    let agree = |e: &mut Election, at: u64| {
        e.on_notification(
            at,
            Notification {
                from: 2,
                state: PeerState::Looking,
                vote: mine,
                round: 1,
            },
        )
    };
    agree(&mut e, 10); // a quorum: finalizing until 210
    assert_eq!(e.next_wake(), Some(210));
    agree(&mut e, 150); // the same vote again (a re-send, an answer)
    assert_eq!(e.next_wake(), Some(210), "the decision is not put off");
    let out = e.on_timeout(210);
    assert!(
        matches!(
            &out[..],
            [Output::Decided {
                state: PeerState::Leading,
                ..
            }]
        ),
        "{out:?}"
    );
}

#[test]
fn a_worse_vote_of_the_same_round_is_answered_with_the_better_one() {
    // Server 2 proposes itself, a worse vote than 1's: 1 answers at once with its own, so 2
    // need not wait for a re-send to learn it.
    let mut e = Election::new(ElectionConfig::new(1, [1, 2, 3]));
    e.look_for_leader(0, zxid(1, 9), 1);
    let worse = Vote {
        leader: 2,
        zxid: zxid(1, 3),
        peer_epoch: 1,
    };
    let out = e.on_notification(
        5,
        Notification {
            from: 2,
            state: PeerState::Looking,
            vote: worse,
            round: 1,
        },
    );
    assert!(
        matches!(&out[..], [Output::Send { to: 2, notification }] if notification.vote == e.current_vote()),
        "{out:?}"
    );
    // An agreeing vote is not answered (no ping-pong).
    let mine = e.current_vote();
    let out = e.on_notification(
        6,
        Notification {
            from: 2,
            state: PeerState::Looking,
            vote: mine,
            round: 1,
        },
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Send { .. })),
        "{out:?}"
    );
}
