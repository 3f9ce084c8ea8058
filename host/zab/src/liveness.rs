//! Quorum liveness (zab-reference.md §4): a leader steps down when it has not heard from a
//! quorum of voters for `syncLimit` ticks, and a follower leaves a leader it has not heard from
//! for as long. Pure: time in ms is an argument, and the caller asks again at
//! [`next_wake`](LeaderLiveness::next_wake).
//!
//! ZooKeeper counts ticks (every `tickTime`, checked every half tick) and sets each learner's
//! deadline to `tick + syncLimit` on any packet, pings included; a leader that with the learners
//! still within their deadline is not a quorum goes LOOKING. The same rule with time in ms: a
//! voter is alive while its last packet is at most `sync_limit_ms` old. A leader that loses its
//! quorum must stop serving promptly: its reads may be stale once another leader is elected.

use std::collections::{BTreeMap, BTreeSet};

use crate::Sid;

/// The leader's view of its followers' liveness.
#[derive(Debug)]
pub struct LeaderLiveness {
    voters: BTreeSet<Sid>,
    sync_limit_ms: u64,
    /// When each voter other than the leader was last heard from.
    heard: BTreeMap<Sid, u64>,
}

impl LeaderLiveness {
    /// Established at `now`: every voter gets a full `sync_limit_ms` to be heard from.
    pub fn new(
        me: Sid,
        voters: impl IntoIterator<Item = Sid>,
        sync_limit_ms: u64,
        now: u64,
    ) -> LeaderLiveness {
        let voters: BTreeSet<Sid> = voters.into_iter().collect();
        let heard = voters
            .iter()
            .filter(|&&v| v != me)
            .map(|&v| (v, now))
            .collect();
        LeaderLiveness {
            voters,
            sync_limit_ms,
            heard,
        }
    }

    /// Any packet from `sid` (an ACK, a PING reply, a REQUEST) at `now`.
    pub fn heard_from(&mut self, sid: Sid, now: u64) {
        if let Some(t) = self.heard.get_mut(&sid) {
            *t = (*t).max(now);
        }
    }

    fn alive_voters(&self, now: u64) -> usize {
        1 + self
            .heard
            .values()
            .filter(|&&t| now.saturating_sub(t) <= self.sync_limit_ms)
            .count()
    }

    /// Whether the leader must step down at `now`: the voters heard from within `syncLimit`,
    /// itself included, are not a quorum.
    pub fn must_step_down(&self, now: u64) -> bool {
        self.alive_voters(now) <= self.voters.len() / 2
    }

    /// When the quorum could next be lost if nobody is heard from: the instant the
    /// majority-th most recent voter falls past `syncLimit`.
    pub fn next_wake(&self) -> u64 {
        let mut times: Vec<u64> = self.heard.values().copied().collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        // The leader plus the `need - 1` most recent followers make a quorum.
        let need = self.voters.len() / 2 + 1;
        match times.get(need.saturating_sub(2)) {
            Some(&t) if need >= 2 => t + self.sync_limit_ms + 1,
            _ => u64::MAX, // a quorum of one: the leader alone
        }
    }
}

/// A follower's view of its leader's liveness.
#[derive(Debug)]
pub struct FollowerLiveness {
    sync_limit_ms: u64,
    heard: u64,
}

impl FollowerLiveness {
    pub fn new(sync_limit_ms: u64, now: u64) -> FollowerLiveness {
        FollowerLiveness {
            sync_limit_ms,
            heard: now,
        }
    }

    /// Any packet from the leader at `now`.
    pub fn heard(&mut self, now: u64) {
        self.heard = self.heard.max(now);
    }

    /// Whether the leader is to be considered gone at `now`.
    pub fn leader_gone(&self, now: u64) -> bool {
        now.saturating_sub(self.heard) > self.sync_limit_ms
    }

    pub fn next_wake(&self) -> u64 {
        self.heard + self.sync_limit_ms + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: u64 = 10_000;

    #[test]
    fn a_leader_keeps_leading_while_a_quorum_is_heard_from() {
        let mut l = LeaderLiveness::new(1, [1, 2, 3, 4, 5], SYNC, 0);
        for t in (1_000..60_000).step_by(1_000) {
            l.heard_from(2, t);
            l.heard_from(3, t); // 4 and 5 are gone
            assert!(!l.must_step_down(t), "at {t}");
        }
    }

    #[test]
    fn a_leader_steps_down_once_its_quorum_is_silent_for_sync_limit() {
        let mut l = LeaderLiveness::new(1, [1, 2, 3, 4, 5], SYNC, 0);
        l.heard_from(2, 5_000);
        l.heard_from(3, 2_000);
        // At 12 s: 2 heard 7 s ago (alive), 3 heard 10 s ago (alive, at the limit), 4 and 5 never.
        assert!(!l.must_step_down(12_000));
        assert_eq!(l.next_wake(), 12_001, "when 3 falls past the limit");
        assert!(l.must_step_down(12_001));
        // Hearing from 3 again restores the quorum.
        l.heard_from(3, 12_500);
        assert!(!l.must_step_down(12_500));
    }

    #[test]
    fn observers_and_strangers_keep_no_leader_alive() {
        let mut l = LeaderLiveness::new(1, [1, 2, 3], SYNC, 0);
        for t in (1_000..30_000).step_by(1_000) {
            l.heard_from(9, t);
        }
        assert!(l.must_step_down(20_001));
    }

    #[test]
    fn a_standalone_quorum_of_one_never_steps_down() {
        let l = LeaderLiveness::new(1, [1], SYNC, 0);
        assert!(!l.must_step_down(1_000_000));
        assert_eq!(l.next_wake(), u64::MAX);
    }

    #[test]
    fn a_follower_leaves_a_silent_leader_after_sync_limit() {
        let mut f = FollowerLiveness::new(SYNC, 0);
        f.heard(4_000);
        assert!(!f.leader_gone(14_000));
        assert_eq!(f.next_wake(), 14_001);
        assert!(f.leader_gone(14_001));
    }
}
