//! Broadcast (ZAB phase 3; zab-reference.md §3.4 and rules D6, D10), pure: the leader's
//! proposals and the quorum that commits them, and a follower's log-then-ACK and apply.
//!
//! The leader numbers each write `epoch << 32 | counter` and proposes it to the synced followers;
//! a voter's ACK(z) says z and everything before it is durable in its log (D6: a follower ACKs
//! only after its fsync, the leader counts its own ACK only after its own), so the commit point
//! is the highest zxid a majority of the voters has acknowledged, and it only moves forward, in
//! order. Followers get COMMIT, observers INFORM (they never ACK). Everyone applies a txn only
//! once it is both committed and durable in its own log (D10; ZooKeeper may apply before its own
//! flush, ZOOKEEPER-4882). Before the counter would wrap, the leader asks for a new epoch.

use std::collections::VecDeque;

use crate::quorum::CommitPoint;
use crate::sync::{epoch_of, follows};
use crate::{Sid, Zxid};

/// What the leader's broadcast asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderBroadcastOutput {
    /// Log this proposal locally, and send PROPOSAL(zxid) to every synced follower.
    Propose(Zxid),
    /// Send COMMIT(zxid) to the followers and INFORM(zxid) to the observers.
    Commit(Zxid),
    /// Apply this txn locally (committed, and durable here).
    Apply(Zxid),
    /// The counter is exhausted: step down so that a new epoch starts (no write is proposed).
    NewEpochNeeded,
}

/// The leader's side of broadcast (`Leader.propose`, `processAck`, `tryToCommit`).
#[derive(Debug)]
pub struct LeaderBroadcast {
    me: Sid,
    last_proposed: Zxid,
    /// What a majority of the voters has acknowledged.
    quorum: CommitPoint,
    /// The last zxid COMMIT went out for.
    committed: Zxid,
    /// Durable in the leader's own log.
    durable: Zxid,
    applied: Zxid,
}

impl LeaderBroadcast {
    /// An established leader of `voters` whose history ends at `epoch << 32` (the NEWLEADER
    /// zxid): everything up to it is committed, applied and durable.
    pub fn new(me: Sid, voters: impl IntoIterator<Item = Sid>, epoch: u64) -> LeaderBroadcast {
        let start = (epoch as Zxid) << 32;
        let voters: Vec<Sid> = voters.into_iter().collect();
        LeaderBroadcast {
            me,
            last_proposed: start,
            quorum: CommitPoint::new(&voters, start),
            committed: start,
            durable: start,
            applied: start,
        }
    }

    pub fn committed(&self) -> Zxid {
        self.committed
    }

    /// A new write: its zxid, or [`LeaderBroadcastOutput::NewEpochNeeded`] when the counter is
    /// used up (ZooKeeper's `zxid & 0xffffffff == 0xffffffff` check).
    pub fn propose(&mut self) -> Vec<LeaderBroadcastOutput> {
        if self.last_proposed & 0xffff_ffff == 0xffff_ffff {
            return vec![LeaderBroadcastOutput::NewEpochNeeded];
        }
        self.last_proposed += 1;
        vec![LeaderBroadcastOutput::Propose(self.last_proposed)]
    }

    /// The leader's own log is durable up to `zxid`: its own ACK (D6), and local applies.
    pub fn on_local_durable(&mut self, zxid: Zxid) -> Vec<LeaderBroadcastOutput> {
        self.durable = self.durable.max(zxid.min(self.last_proposed));
        let me = self.me;
        self.on_ack(me, zxid)
    }

    /// ACK(zxid) from `sid`: everything up to `zxid` is durable there.
    pub fn on_ack(&mut self, sid: Sid, zxid: Zxid) -> Vec<LeaderBroadcastOutput> {
        let mut out = Vec::new();
        if epoch_of(zxid) == epoch_of(self.last_proposed) {
            if let Some(quorum_has) = self.quorum.ack(sid, zxid.min(self.last_proposed)) {
                // Commits go out one by one, in order.
                while self.committed < quorum_has {
                    self.committed += 1;
                    out.push(LeaderBroadcastOutput::Commit(self.committed));
                }
            }
        }
        while self.applied < self.committed.min(self.durable) {
            self.applied += 1;
            out.push(LeaderBroadcastOutput::Apply(self.applied));
        }
        out
    }
}

/// What a follower's (or observer's) broadcast asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowerBroadcastOutput {
    /// Append this proposal to the log (durable at [`FollowerBroadcast::on_durable`]).
    Log(Zxid),
    /// Send ACK(zxid): it and everything before it are durable here.
    Ack(Zxid),
    /// Apply this txn (committed, and durable here).
    Apply(Zxid),
    /// Leave this leader and look again.
    Abandon(&'static str),
}

/// A follower's side of broadcast (`FollowerZooKeeperServer`'s log, ACK and commit processors);
/// an observer is the same without ACKs, and its INFORM is a proposal and its commit at once.
#[derive(Debug)]
pub struct FollowerBroadcast {
    observer: bool,
    last_logged: Zxid,
    durable: Zxid,
    committed: Zxid,
    /// Logged and not applied yet, in order.
    unapplied: VecDeque<Zxid>,
    abandoned: bool,
}

impl FollowerBroadcast {
    /// Synchronised up to `zxid` (logged, durable, committed and applied).
    pub fn new(zxid: Zxid, observer: bool) -> FollowerBroadcast {
        FollowerBroadcast {
            observer,
            last_logged: zxid,
            durable: zxid,
            committed: zxid,
            unapplied: VecDeque::new(),
            abandoned: false,
        }
    }

    fn abandon(&mut self, why: &'static str) -> Vec<FollowerBroadcastOutput> {
        self.abandoned = true;
        vec![FollowerBroadcastOutput::Abandon(why)]
    }

    /// PROPOSAL(zxid): it must be the next zxid (a gap means a lost packet; never log around it).
    pub fn on_proposal(&mut self, zxid: Zxid) -> Vec<FollowerBroadcastOutput> {
        if self.abandoned {
            return Vec::new();
        }
        if !follows(self.last_logged, zxid) {
            return self.abandon("a proposal that is not the next zxid");
        }
        self.last_logged = zxid;
        self.unapplied.push_back(zxid);
        if crate::planted::planted(crate::planted::Bug::AckBeforeDurable) && !self.observer {
            return vec![
                FollowerBroadcastOutput::Log(zxid),
                FollowerBroadcastOutput::Ack(zxid),
            ];
        }
        vec![FollowerBroadcastOutput::Log(zxid)]
    }

    /// INFORM(zxid), for an observer: a committed proposal.
    pub fn on_inform(&mut self, zxid: Zxid) -> Vec<FollowerBroadcastOutput> {
        let mut out = self.on_proposal(zxid);
        if !self.abandoned {
            out.extend(self.on_commit(zxid));
        }
        out
    }

    /// The log is durable up to `zxid` (D6: only now the ACK).
    pub fn on_durable(&mut self, zxid: Zxid) -> Vec<FollowerBroadcastOutput> {
        if self.abandoned || zxid <= self.durable {
            return Vec::new();
        }
        self.durable = zxid.min(self.last_logged);
        let mut out = Vec::new();
        if !self.observer {
            out.push(FollowerBroadcastOutput::Ack(self.durable));
        }
        self.apply_ready(&mut out);
        out
    }

    /// COMMIT(zxid).
    pub fn on_commit(&mut self, zxid: Zxid) -> Vec<FollowerBroadcastOutput> {
        if self.abandoned {
            return Vec::new();
        }
        if zxid > self.last_logged {
            return self.abandon("a COMMIT for a proposal never received");
        }
        self.committed = self.committed.max(zxid);
        let mut out = Vec::new();
        self.apply_ready(&mut out);
        out
    }

    /// D10: apply what is both committed and durable here, in order.
    fn apply_ready(&mut self, out: &mut Vec<FollowerBroadcastOutput>) {
        let upto = self.committed.min(self.durable);
        while let Some(&z) = self.unapplied.front().filter(|&&z| z <= upto) {
            self.unapplied.pop_front();
            out.push(FollowerBroadcastOutput::Apply(z));
        }
    }
}

#[cfg(test)]
#[path = "broadcast_test.rs"]
mod tests;
