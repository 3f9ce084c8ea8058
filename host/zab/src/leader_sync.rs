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

use crate::history::History;
use crate::sync::{plan_sync_in, HistoryUpTo, SyncMode, SyncPacket, SyncPlan};
use crate::{Sid, Zxid};

/// Where the leader stands when it plans a learner's sync.
#[derive(Clone, Copy, Debug)]
pub struct SyncPoint {
    /// The last txn applied to its tree.
    pub applied: Zxid,
    /// The last txn committed (by a quorum; its whole log during discovery).
    pub committed: Zxid,
    pub last_proposed: Zxid,
    /// Before the epoch is established: the zxid of the tree its host persisted (committed
    /// state only), which is what a SNAP is made of then. `None` once established.
    pub persisted: Option<Zxid>,
}

/// The stream for a learner whose last zxid is `last_zxid`, from the leader's `log` and where it
/// stands (`LearnerHandler.syncFollower` + `startForwarding`):
///
/// - The learner is synced to the leader's commit point, not to what the leader has applied:
///   with its own disk slower than its followers' a leader commits (on their ACKs) ahead of
///   applying, and a learner that applied a txn the leader had not must not be told to TRUNC it
///   (it is committed; a server cannot cut its persisted tree back, and stopped). Found by the
///   server-pipeline simulator, seed 27.
/// - A SNAP is the tree as applied once the epoch is established; before, as the host persisted
///   it, and the rest of the leader's history follows as txns: that history (its log, reapplied
///   when it left its last role) may hold txns nobody committed, which the learner must still be
///   able to TRUNC if this leader never establishes. Found by the server-pipeline simulator,
///   seed 10544.
pub fn learner_stream(
    log: &History,
    last_zxid: Zxid,
    at: SyncPoint,
    observer: bool,
    new_epoch: u64,
) -> Vec<SyncPacket> {
    let upto = at.applied.max(at.committed);
    let committed = HistoryUpTo { history: log, upto };
    let mut plan = plan_sync_in(last_zxid, &committed, upto);
    // What the learner holds after the plan's opening, before the txns that follow it.
    let mut from = at.applied;
    if let SyncMode::Snap(_) = plan.mode {
        if let Some(p) = at.persisted {
            from = from.min(p);
        }
        plan = SyncPlan {
            mode: SyncMode::Snap(from),
            send: Vec::new(),
        };
    }
    let to_be_applied = log.range(from, at.committed);
    let outstanding = log.range(at.committed, at.last_proposed);
    sync_stream(&plan, &to_be_applied, &outstanding, observer, new_epoch)
}

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
    let at = match plan.mode {
        SyncMode::Diff(z) | SyncMode::Trunc(z) | SyncMode::Snap(z) => z,
    };
    out.push(match plan.mode {
        SyncMode::Diff(z) => SyncPacket::Diff(z),
        SyncMode::Trunc(z) => SyncPacket::Trunc(z),
        SyncMode::Snap(z) => SyncPacket::Snap(z),
    });
    // What the learner holds once the plan is carried out: the mode's zxid, or the last txn the
    // plan sends. Nothing at or before it is sent again.
    let mut last_sent = plan.send.last().copied().unwrap_or(Zxid::MIN).max(at);
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
