//! Discovery (ZAB phase 1; zab-reference.md §3.2 and the ordering rules D1–D3 of §1.3), as pure
//! state machines for the two sides.
//!
//! The elected leader collects FOLLOWERINFO (the paper's CEPOCH) and fixes a new epoch greater
//! than every acceptedEpoch in a quorum that includes itself, makes it its own acceptedEpoch
//! *durably* (D2), and only then sends LEADERINFO (NEWEPOCH). A learner promises the epoch by
//! making it its acceptedEpoch durably before it answers ACKEPOCH (D1), reporting its
//! currentEpoch and last durable zxid; an epoch equal to what it already accepted gets an
//! ACKEPOCH that is not an ack (currentEpoch −1), a smaller one makes it abandon the leader. The
//! leader drops a learner whose (currentEpoch, last zxid) is ahead of its own, and once a quorum
//! including itself has acknowledged, makes the epoch its currentEpoch durably (D3) and moves to
//! synchronisation with each learner's last zxid. Timeouts (`initLimit × tickTime`) abandon the
//! attempt on either side: back to LOOKING. Observers are told the epoch but never count.
//!
//! Durable writes are outputs ([`LeaderOutput::PersistAcceptedEpoch`], …); the caller reports
//! their completion as an input, and nothing that depends on them is emitted before.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Sid, Zxid};

/// A server's durable ZAB state, as discovery needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochState {
    pub accepted_epoch: u64,
    pub current_epoch: u64,
    /// The last durable zxid (what a restart would rebuild; D7).
    pub last_zxid: Zxid,
}

/// What the leader's side asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderOutput {
    /// Make `acceptedEpoch := epoch` durable, then report it ([`LeaderDiscovery::on_accepted_epoch_durable`]).
    PersistAcceptedEpoch(u64),
    /// Send LEADERINFO(epoch) to `to`.
    LeaderInfo { to: Sid, epoch: u64 },
    /// Close this learner's connection: it is ahead of the leader, or spoke out of turn.
    Drop { sid: Sid, why: &'static str },
    /// Make `currentEpoch := epoch` durable, then report it ([`LeaderDiscovery::on_current_epoch_durable`]).
    PersistCurrentEpoch(u64),
    /// Discovery is over for a quorum: synchronise this learner, whose last durable zxid is
    /// `last_zxid` (emitted for each learner that acknowledged, late ones included).
    Synchronise { sid: Sid, last_zxid: Zxid },
    /// No quorum in time: give up leadership and look again.
    Abandon,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaderPhase {
    /// Collecting FOLLOWERINFO.
    Connecting,
    /// The epoch is fixed; waiting for it to be durable as acceptedEpoch.
    PersistingAccepted,
    /// LEADERINFO may go out; collecting ACKEPOCH.
    Acking,
    /// A quorum acknowledged; waiting for currentEpoch to be durable.
    PersistingCurrent,
    Done,
    Abandoned,
}

/// The leader's side of discovery (ZooKeeper's `Leader.getEpochToPropose` / `waitForEpochAck` and
/// the first packets of each `LearnerHandler`).
#[derive(Debug)]
pub struct LeaderDiscovery {
    me: Sid,
    voters: BTreeSet<Sid>,
    own: EpochState,
    phase: LeaderPhase,
    /// The epoch to propose: one more than the highest acceptedEpoch seen.
    epoch: u64,
    /// Voters whose FOLLOWERINFO arrived, the leader included.
    connecting: BTreeSet<Sid>,
    /// Learners (observers too) waiting for LEADERINFO.
    waiting: BTreeSet<Sid>,
    /// Learners that were sent LEADERINFO.
    informed: BTreeSet<Sid>,
    /// Voters that acknowledged the epoch, the leader included.
    electing: BTreeSet<Sid>,
    /// Learners' last zxids, from their ACKEPOCH, until synchronisation starts.
    acked: BTreeMap<Sid, Zxid>,
    deadline: u64,
}

impl LeaderDiscovery {
    /// Starts discovery at `now` as leader `me` of `voters`, with its own durable state; gives up
    /// at `now + init_limit_ms` without a quorum.
    pub fn new(
        me: Sid,
        voters: impl IntoIterator<Item = Sid>,
        own: EpochState,
        now: u64,
        init_limit_ms: u64,
    ) -> LeaderDiscovery {
        LeaderDiscovery {
            me,
            voters: voters.into_iter().collect(),
            own,
            phase: LeaderPhase::Connecting,
            epoch: own.accepted_epoch + 1,
            connecting: BTreeSet::from([me]),
            waiting: BTreeSet::new(),
            informed: BTreeSet::new(),
            electing: BTreeSet::from([me]),
            acked: BTreeMap::new(),
            deadline: now + init_limit_ms,
        }
    }

    /// The epoch being proposed (final once it is durable as acceptedEpoch).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When [`on_timeout`](Self::on_timeout) is due, until discovery is over.
    pub fn next_wake(&self) -> Option<u64> {
        match self.phase {
            LeaderPhase::Done | LeaderPhase::Abandoned => None,
            _ => Some(self.deadline),
        }
    }

    fn is_quorum(&self, set: &BTreeSet<Sid>) -> bool {
        set.iter().filter(|s| self.voters.contains(s)).count() > self.voters.len() / 2
    }

    /// FOLLOWERINFO (or OBSERVERINFO) from `sid`, which has accepted `accepted_epoch`.
    pub fn on_follower_info(&mut self, sid: Sid, accepted_epoch: u64) -> Vec<LeaderOutput> {
        let mut out = Vec::new();
        if sid == self.me || self.phase == LeaderPhase::Abandoned {
            return out;
        }
        if self.phase == LeaderPhase::Connecting {
            self.epoch = self.epoch.max(accepted_epoch + 1);
            if self.voters.contains(&sid) {
                self.connecting.insert(sid);
            }
            self.waiting.insert(sid);
            if self.is_quorum(&self.connecting) {
                // The epoch is frozen: late learners get it as it is.
                self.phase = LeaderPhase::PersistingAccepted;
                out.push(LeaderOutput::PersistAcceptedEpoch(self.epoch));
            }
            return out;
        }
        if self.phase == LeaderPhase::PersistingAccepted {
            self.waiting.insert(sid);
        } else {
            self.inform(sid, &mut out);
        }
        out
    }

    /// D2 is satisfied: the epoch is durable as the leader's acceptedEpoch; LEADERINFO goes out.
    pub fn on_accepted_epoch_durable(&mut self) -> Vec<LeaderOutput> {
        let mut out = Vec::new();
        if self.phase != LeaderPhase::PersistingAccepted {
            return out;
        }
        self.own.accepted_epoch = self.epoch;
        self.phase = LeaderPhase::Acking;
        for sid in std::mem::take(&mut self.waiting) {
            self.inform(sid, &mut out);
        }
        out
    }

    fn inform(&mut self, sid: Sid, out: &mut Vec<LeaderOutput>) {
        self.informed.insert(sid);
        out.push(LeaderOutput::LeaderInfo {
            to: sid,
            epoch: self.epoch,
        });
    }

    /// ACKEPOCH from `sid`: its last durable zxid, and its currentEpoch (`None`: the −1 of a
    /// learner that had already accepted this epoch, which is not an acknowledgement).
    pub fn on_ack_epoch(
        &mut self,
        sid: Sid,
        last_zxid: Zxid,
        current_epoch: Option<u64>,
    ) -> Vec<LeaderOutput> {
        let mut out = Vec::new();
        if matches!(
            self.phase,
            LeaderPhase::Connecting | LeaderPhase::PersistingAccepted | LeaderPhase::Abandoned
        ) {
            return out;
        }
        if !self.informed.contains(&sid) {
            out.push(LeaderOutput::Drop {
                sid,
                why: "ACKEPOCH before LEADERINFO",
            });
            return out;
        }
        // `StateSummary.isMoreRecentThan`: a learner ahead of the leader must not be synced by it.
        let theirs = (current_epoch.unwrap_or(0), last_zxid);
        if current_epoch.is_some() && theirs > (self.own.current_epoch, self.own.last_zxid) {
            out.push(LeaderOutput::Drop {
                sid,
                why: "learner is ahead of the leader",
            });
            return out;
        }
        if self.phase == LeaderPhase::Done {
            out.push(LeaderOutput::Synchronise { sid, last_zxid });
            return out;
        }
        self.acked.insert(sid, last_zxid);
        if current_epoch.is_some() && self.voters.contains(&sid) {
            self.electing.insert(sid);
        }
        if self.phase == LeaderPhase::Acking && self.is_quorum(&self.electing) {
            self.phase = LeaderPhase::PersistingCurrent;
            out.push(LeaderOutput::PersistCurrentEpoch(self.epoch));
        }
        out
    }

    /// D3 is satisfied: the epoch is durable as the leader's currentEpoch; every learner that
    /// acknowledged is synchronised (and later ones as they acknowledge).
    pub fn on_current_epoch_durable(&mut self) -> Vec<LeaderOutput> {
        if self.phase != LeaderPhase::PersistingCurrent {
            return Vec::new();
        }
        self.own.current_epoch = self.epoch;
        self.phase = LeaderPhase::Done;
        std::mem::take(&mut self.acked)
            .into_iter()
            .map(|(sid, last_zxid)| LeaderOutput::Synchronise { sid, last_zxid })
            .collect()
    }

    /// Time passed: without a quorum by the deadline, leadership is abandoned.
    pub fn on_timeout(&mut self, now: u64) -> Vec<LeaderOutput> {
        if now < self.deadline || matches!(self.phase, LeaderPhase::Done | LeaderPhase::Abandoned) {
            return Vec::new();
        }
        self.phase = LeaderPhase::Abandoned;
        vec![LeaderOutput::Abandon]
    }
}

/// What the learner's side asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LearnerOutput {
    /// Send FOLLOWERINFO (OBSERVERINFO for an observer) with this acceptedEpoch.
    FollowerInfo { accepted_epoch: u64 },
    /// Make `acceptedEpoch := epoch` durable, then report it ([`LearnerDiscovery::on_accepted_epoch_durable`]).
    PersistAcceptedEpoch(u64),
    /// Send ACKEPOCH: the last durable zxid and currentEpoch (`None` is the −1 "not an ack").
    AckEpoch {
        last_zxid: Zxid,
        current_epoch: Option<u64>,
    },
    /// Leave this leader and look again.
    Abandon { why: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LearnerPhase {
    WaitingLeaderInfo,
    PersistingAccepted(u64),
    /// ACKEPOCH sent: synchronisation comes next.
    Acked,
    Abandoned,
}

/// The learner's side of discovery (`Learner.registerWithLeader`).
#[derive(Debug)]
pub struct LearnerDiscovery {
    own: EpochState,
    phase: LearnerPhase,
    deadline: u64,
}

impl LearnerDiscovery {
    /// Connected to the leader at `now`: FOLLOWERINFO goes out.
    pub fn new(own: EpochState, now: u64, init_limit_ms: u64) -> (LearnerDiscovery, LearnerOutput) {
        let d = LearnerDiscovery {
            own,
            phase: LearnerPhase::WaitingLeaderInfo,
            deadline: now + init_limit_ms,
        };
        let hello = LearnerOutput::FollowerInfo {
            accepted_epoch: own.accepted_epoch,
        };
        (d, hello)
    }

    /// When [`on_timeout`](Self::on_timeout) is due, until ACKEPOCH has gone out.
    pub fn next_wake(&self) -> Option<u64> {
        matches!(
            self.phase,
            LearnerPhase::WaitingLeaderInfo | LearnerPhase::PersistingAccepted(_)
        )
        .then_some(self.deadline)
    }

    /// Whether ACKEPOCH has gone out (synchronisation comes next).
    pub fn acked(&self) -> bool {
        self.phase == LearnerPhase::Acked
    }

    /// LEADERINFO(epoch) from the leader (D1).
    pub fn on_leader_info(&mut self, epoch: u64) -> Vec<LearnerOutput> {
        if self.phase != LearnerPhase::WaitingLeaderInfo {
            return Vec::new();
        }
        if epoch > self.own.accepted_epoch {
            self.phase = LearnerPhase::PersistingAccepted(epoch);
            return vec![LearnerOutput::PersistAcceptedEpoch(epoch)];
        }
        if epoch == self.own.accepted_epoch {
            // Already promised to this epoch (to this or another leader): not a second ack.
            self.phase = LearnerPhase::Acked;
            return vec![LearnerOutput::AckEpoch {
                last_zxid: self.own.last_zxid,
                current_epoch: None,
            }];
        }
        self.phase = LearnerPhase::Abandoned;
        vec![LearnerOutput::Abandon {
            why: "the leader's epoch is below the accepted epoch",
        }]
    }

    /// D1 is satisfied: the new acceptedEpoch is durable; ACKEPOCH goes out.
    pub fn on_accepted_epoch_durable(&mut self) -> Vec<LearnerOutput> {
        let LearnerPhase::PersistingAccepted(epoch) = self.phase else {
            return Vec::new();
        };
        self.own.accepted_epoch = epoch;
        self.phase = LearnerPhase::Acked;
        vec![LearnerOutput::AckEpoch {
            last_zxid: self.own.last_zxid,
            current_epoch: Some(self.own.current_epoch),
        }]
    }

    /// Time passed: no LEADERINFO (or no durable promise) by the deadline abandons the leader.
    pub fn on_timeout(&mut self, now: u64) -> Vec<LearnerOutput> {
        if now < self.deadline
            || matches!(self.phase, LearnerPhase::Acked | LearnerPhase::Abandoned)
        {
            return Vec::new();
        }
        self.phase = LearnerPhase::Abandoned;
        vec![LearnerOutput::Abandon {
            why: "no LEADERINFO within initLimit",
        }]
    }
}

#[cfg(test)]
#[path = "discovery_test.rs"]
mod tests;
