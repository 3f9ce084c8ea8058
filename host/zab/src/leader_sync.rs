//! The leader's side of synchronisation (`LearnerHandler` after discovery, `Leader.
//! waitForNewLeaderAck`; zab-reference.md §3.3, D5, D9), pure: the packet stream each learner
//! gets, and the NEWLEADER acknowledgements that establish the epoch.
//!
//! A learner's stream is its [`SyncPlan`]'s opening (DIFF, TRUNC or SNAP), the committed txns it
//! lacks as PROPOSAL+COMMIT pairs, then (`startForwarding`) the proposals still outstanding for a
//! participant — an observer gets only committed txns — and NEWLEADER last: it means "everything
//! before me is your new history" (D9). The epoch is established when a quorum of voters, the
//! leader included, has acknowledged NEWLEADER within `initLimit` (a learner's first packet
//! after NEWLEADER must be that ACK: an earlier proposal's ACK first would mean D5 was broken);
//! then the leader serves and each acknowledged learner gets UPTODATE, later ones as they ACK.

use std::collections::BTreeSet;

use crate::sync::{SyncMode, SyncPacket, SyncPlan};
use crate::{Sid, Zxid};

/// The stream for one learner up to and including NEWLEADER: the plan, then `to_be_applied`
/// (committed by the quorum, not applied by the leader yet: ZooKeeper's `toBeApplied`) as
/// PROPOSAL+COMMIT pairs, then `outstanding` (proposals not committed yet) for a participant —
/// an observer gets them later as INFORM — then NEWLEADER(epoch << 32). Both lists ascending.
pub fn sync_stream(
    plan: &SyncPlan,
    to_be_applied: &[Zxid],
    outstanding: &[Zxid],
    observer: bool,
    new_epoch: u64,
) -> Vec<SyncPacket> {
    let mut out =
        Vec::with_capacity(2 + 2 * (plan.send.len() + to_be_applied.len()) + outstanding.len());
    out.push(match plan.mode {
        SyncMode::Diff(z) => SyncPacket::Diff(z),
        SyncMode::Trunc(z) => SyncPacket::Trunc(z),
        SyncMode::Snap(z) => SyncPacket::Snap(z),
    });
    let mut last_sent = plan.send.last().copied().unwrap_or(Zxid::MIN);
    for &z in plan
        .send
        .iter()
        .chain(to_be_applied.iter().filter(|&&z| z > last_sent))
    {
        out.push(SyncPacket::Proposal(z));
        out.push(SyncPacket::Commit(z));
    }
    last_sent = last_sent.max(to_be_applied.last().copied().unwrap_or(Zxid::MIN));
    if !observer {
        // startForwarding: proposals past what was queued, in order; their COMMITs come later by
        // broadcast, like every other follower's.
        out.extend(
            outstanding
                .iter()
                .filter(|&&z| z > last_sent)
                .map(|&z| SyncPacket::Proposal(z)),
        );
    }
    out.push(SyncPacket::NewLeader((new_epoch as Zxid) << 32));
    out
}

/// What the NEWLEADER quorum asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewLeaderOutput {
    /// A quorum has the new epoch's initial history: serve, with everything up to
    /// `epoch << 32` committed.
    Established,
    /// Send UPTODATE to this learner.
    UpToDate(Sid),
    /// Close this learner's connection.
    Drop { sid: Sid, why: &'static str },
    /// No quorum within `initLimit`: give up leadership.
    Abandon,
}

/// The NEWLEADER acknowledgements (`waitForNewLeaderAck`).
#[derive(Debug)]
pub struct NewLeaderQuorum {
    voters: BTreeSet<Sid>,
    new_epoch: u64,
    /// Learners that were sent NEWLEADER and have not answered yet.
    waiting: BTreeSet<Sid>,
    /// Voters that acknowledged, the leader included.
    acked: BTreeSet<Sid>,
    /// Learners (observers too) that acknowledged and wait for UPTODATE.
    ready: Vec<Sid>,
    established: bool,
    abandoned: bool,
    deadline: u64,
}

impl NewLeaderQuorum {
    /// Leader `me` of `voters` has its own history durable for `new_epoch` at `now`.
    pub fn new(
        me: Sid,
        voters: impl IntoIterator<Item = Sid>,
        new_epoch: u64,
        now: u64,
        init_limit_ms: u64,
    ) -> NewLeaderQuorum {
        NewLeaderQuorum {
            voters: voters.into_iter().collect(),
            new_epoch,
            waiting: BTreeSet::new(),
            acked: BTreeSet::from([me]),
            ready: Vec::new(),
            established: false,
            abandoned: false,
            deadline: now + init_limit_ms,
        }
    }

    /// Whether NEWLEADER went to `sid` and its ACK has not come back yet.
    pub fn is_waiting(&self, sid: Sid) -> bool {
        self.waiting.contains(&sid)
    }

    /// NEWLEADER went to `sid` (at the end of its stream).
    pub fn sent(&mut self, sid: Sid) {
        self.waiting.insert(sid);
    }

    /// When [`on_timeout`](Self::on_timeout) is due, until the epoch is established.
    pub fn next_wake(&self) -> Option<u64> {
        (!self.established && !self.abandoned).then_some(self.deadline)
    }

    /// The first ACK `sid` sent after NEWLEADER, for `zxid`.
    pub fn on_ack(&mut self, sid: Sid, zxid: Zxid) -> Vec<NewLeaderOutput> {
        let mut out = Vec::new();
        if self.abandoned || !self.waiting.remove(&sid) {
            return out;
        }
        if zxid != (self.new_epoch as Zxid) << 32 {
            out.push(NewLeaderOutput::Drop {
                sid,
                why: "the first ACK after NEWLEADER is not the NEWLEADER ACK",
            });
            return out;
        }
        if self.established {
            out.push(NewLeaderOutput::UpToDate(sid));
            return out;
        }
        if self.voters.contains(&sid) {
            self.acked.insert(sid);
        }
        self.ready.push(sid);
        if self.acked.len() > self.voters.len() / 2 {
            self.established = true;
            out.push(NewLeaderOutput::Established);
            out.extend(self.ready.drain(..).map(NewLeaderOutput::UpToDate));
        }
        out
    }

    /// Time passed: without a quorum by `initLimit`, leadership is abandoned.
    pub fn on_timeout(&mut self, now: u64) -> Vec<NewLeaderOutput> {
        if self.established || self.abandoned || now < self.deadline {
            return Vec::new();
        }
        self.abandoned = true;
        vec![NewLeaderOutput::Abandon]
    }
}

#[cfg(test)]
#[path = "leader_sync_test.rs"]
mod tests;
