//! The learner's side of synchronisation (`Learner.syncWithLeader` as of ZOOKEEPER-4394, 4785
//! and 4925; zab-reference.md §3.3 and rules D4, D5, D8), as a pure state machine.
//!
//! The leader opens with DIFF, TRUNC or SNAP, streams PROPOSAL/COMMIT pairs (and, for a late
//! joiner, proposals not committed yet), then NEWLEADER, then UPTODATE. Until NEWLEADER nothing is
//! logged: proposals wait in `not_logged`, and commits in `committed` (DIFF) or are applied at
//! once (SNAP/TRUNC, whose tree the snapshot at NEWLEADER makes durable). At NEWLEADER, strictly
//! in order (D4): the committed proposals are logged and applied; once the log is durable,
//! currentEpoch := the new epoch is persisted; once that is durable, the NEWLEADER ACK goes out.
//! Any other order lost committed txns in ZooKeeper. Proposals still uncommitted are logged, and
//! ACKed, only after that ACK (D5), once UPTODATE arrives. A proposal that is not exactly the next
//! zxid, a COMMIT that matches no proposal, or a stream that does not open with a sync mode
//! abandons the leader.
//!
//! Durable writes are outputs; their completions are inputs ([`LearnerSync::on_log_durable`],
//! [`LearnerSync::on_current_epoch_durable`], [`LearnerSync::on_truncated`]).

use std::collections::VecDeque;

use crate::sync::{epoch_of, follows, SyncPacket};
use crate::Zxid;

/// What the learner must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutput {
    /// Cut the log after this zxid, durably, with everything a reload reads (D8); report it.
    TruncateAfter(Zxid),
    /// Replace the tree with the streamed snapshot, as of this zxid.
    LoadSnapshot(Zxid),
    /// Apply this committed txn to the tree (not logged yet: SNAP/TRUNC before NEWLEADER).
    Apply(Zxid),
    /// Append, then apply, this committed txn.
    AppendAndApply(Zxid),
    /// Make the log durable (and, after SNAP/TRUNC, a snapshot of the tree), then report it.
    SyncLog,
    /// Persist currentEpoch := epoch, then report it.
    PersistCurrentEpoch(u64),
    /// Send ACK(zxid) to the leader.
    Ack(Zxid),
    /// Synchronised: serve clients. `proposals` (not logged yet) go the broadcast phase's way —
    /// logged, ACKed once durable (so after the NEWLEADER ACK: D5) — and `commits` are applied as
    /// their proposals become durable.
    StartServing {
        proposals: Vec<Zxid>,
        commits: Vec<Zxid>,
    },
    /// Leave this leader and look again.
    Abandon(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Diff,
    Snap,
    Trunc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for DIFF, TRUNC or SNAP.
    Opening,
    /// TRUNC asked for; waiting for it to be durable.
    Truncating,
    Streaming,
    /// NEWLEADER: committed history appended; waiting for the log to be durable (D4 a).
    LoggingHistory,
    /// Waiting for currentEpoch to be durable (D4 b).
    PersistingEpoch,
    /// NEWLEADER ACKed (D4 c); waiting for UPTODATE.
    Acked,
    Serving,
    Abandoned,
}

/// One learner's synchronisation with its leader.
#[derive(Debug)]
pub struct LearnerSync {
    phase: Phase,
    mode: Mode,
    /// The zxid the next proposal must follow.
    last: Zxid,
    new_epoch: u64,
    /// Proposals received and not logged (`packetsNotLogged`).
    not_logged: VecDeque<Zxid>,
    /// DIFF: commits received for proposals not logged yet (`packetsCommitted`).
    committed: VecDeque<Zxid>,
    /// Packets that arrived while a durable write was pending, handled after it.
    held: VecDeque<SyncPacket>,
}

impl LearnerSync {
    /// A learner whose last durable zxid is `last_zxid` starts synchronising.
    pub fn new(last_zxid: Zxid) -> LearnerSync {
        LearnerSync {
            phase: Phase::Opening,
            mode: Mode::Diff,
            last: last_zxid,
            new_epoch: 0,
            not_logged: VecDeque::new(),
            committed: VecDeque::new(),
            held: VecDeque::new(),
        }
    }

    /// Whether the learner serves (UPTODATE handled).
    pub fn serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    fn abandon(&mut self, why: &'static str) -> Vec<SyncOutput> {
        self.phase = Phase::Abandoned;
        vec![SyncOutput::Abandon(why)]
    }

    /// A packet from the leader.
    pub fn on_packet(&mut self, p: SyncPacket) -> Vec<SyncOutput> {
        match self.phase {
            Phase::Abandoned | Phase::Serving => Vec::new(),
            Phase::Truncating | Phase::LoggingHistory | Phase::PersistingEpoch => {
                self.held.push_back(p);
                Vec::new()
            }
            Phase::Opening => self.open(p),
            Phase::Streaming => self.stream(p),
            Phase::Acked => self.after_ack(p),
        }
    }

    fn open(&mut self, p: SyncPacket) -> Vec<SyncOutput> {
        match p {
            SyncPacket::Diff(_) => {
                self.mode = Mode::Diff;
                self.phase = Phase::Streaming;
                Vec::new()
            }
            SyncPacket::Trunc(_) if crate::planted::planted(crate::planted::Bug::SkipTrunc) => {
                self.mode = Mode::Diff;
                self.phase = Phase::Streaming;
                Vec::new()
            }
            SyncPacket::Trunc(z) => {
                if z > self.last {
                    return self.abandon("TRUNC above the learner's last zxid");
                }
                self.mode = Mode::Trunc;
                self.last = z;
                self.phase = Phase::Truncating;
                vec![SyncOutput::TruncateAfter(z)]
            }
            SyncPacket::Snap(z) => {
                self.mode = Mode::Snap;
                self.last = z;
                self.phase = Phase::Streaming;
                vec![SyncOutput::LoadSnapshot(z)]
            }
            _ => self.abandon("the sync stream must open with DIFF, TRUNC or SNAP"),
        }
    }

    /// A proposal joins `not_logged`; ZOOKEEPER-4925: a gap is never papered over.
    fn take_proposal(&mut self, z: Zxid) -> Vec<SyncOutput> {
        if !follows(self.last, z) {
            return self.abandon("a proposal that is not the next zxid");
        }
        self.last = z;
        self.not_logged.push_back(z);
        Vec::new()
    }

    fn stream(&mut self, p: SyncPacket) -> Vec<SyncOutput> {
        match p {
            SyncPacket::Proposal(z) => self.take_proposal(z),
            SyncPacket::Commit(z) => match self.mode {
                Mode::Diff => {
                    if !self.not_logged.contains(&z) {
                        return self.abandon("a COMMIT for no proposal");
                    }
                    self.committed.push_back(z);
                    Vec::new()
                }
                Mode::Snap | Mode::Trunc => {
                    if self.not_logged.front() != Some(&z) {
                        return self.abandon("a COMMIT out of order");
                    }
                    self.not_logged.pop_front();
                    vec![SyncOutput::Apply(z)]
                }
            },
            SyncPacket::NewLeader(z) => self.new_leader(z),
            _ => self.abandon("an unexpected packet before NEWLEADER"),
        }
    }

    fn new_leader(&mut self, z: Zxid) -> Vec<SyncOutput> {
        self.new_epoch = epoch_of(z);
        let mut out = Vec::new();
        // D4 (a): the committed history goes into the log, in order, each matching the head of
        // the proposals; then it must be durable (with the tree as a snapshot after SNAP/TRUNC).
        while let Some(c) = self.committed.pop_front() {
            if self.not_logged.front() != Some(&c) {
                return self.abandon("a committed zxid that is not the next proposal");
            }
            self.not_logged.pop_front();
            out.push(SyncOutput::AppendAndApply(c));
        }
        out.push(SyncOutput::SyncLog);
        self.phase = Phase::LoggingHistory;
        out
    }

    /// The truncation asked for is durable.
    pub fn on_truncated(&mut self) -> Vec<SyncOutput> {
        if self.phase != Phase::Truncating {
            return Vec::new();
        }
        self.phase = Phase::Streaming;
        self.replay_held()
    }

    /// The log (and snapshot) asked for by [`SyncOutput::SyncLog`] is durable: D4 (b).
    pub fn on_log_durable(&mut self) -> Vec<SyncOutput> {
        if self.phase != Phase::LoggingHistory {
            return Vec::new();
        }
        self.phase = Phase::PersistingEpoch;
        vec![SyncOutput::PersistCurrentEpoch(self.new_epoch)]
    }

    /// currentEpoch is durable: D4 (c), the NEWLEADER ACK.
    pub fn on_current_epoch_durable(&mut self) -> Vec<SyncOutput> {
        if self.phase != Phase::PersistingEpoch {
            return Vec::new();
        }
        self.phase = Phase::Acked;
        let mut out = vec![SyncOutput::Ack((self.new_epoch as Zxid) << 32)];
        out.extend(self.replay_held());
        out
    }

    fn replay_held(&mut self) -> Vec<SyncOutput> {
        let mut out = Vec::new();
        while let Some(p) = self.held.pop_front() {
            out.extend(self.on_packet(p));
            if matches!(
                self.phase,
                Phase::Truncating | Phase::LoggingHistory | Phase::PersistingEpoch
            ) {
                break; // waiting again: the rest stays held
            }
        }
        out
    }

    /// After the NEWLEADER ACK: proposals and commits keep arriving until UPTODATE; they are
    /// logged (and ACKed) only after UPTODATE (D5).
    fn after_ack(&mut self, p: SyncPacket) -> Vec<SyncOutput> {
        match p {
            SyncPacket::Proposal(z) => self.take_proposal(z),
            SyncPacket::Commit(z) => {
                if !self.not_logged.contains(&z) {
                    return self.abandon("a COMMIT for no proposal");
                }
                self.committed.push_back(z);
                Vec::new()
            }
            SyncPacket::UpToDate => {
                self.phase = Phase::Serving;
                vec![
                    // Ignored by the leader (counter 0), as ZooKeeper's.
                    SyncOutput::Ack((self.new_epoch as Zxid) << 32),
                    SyncOutput::StartServing {
                        proposals: std::mem::take(&mut self.not_logged).into(),
                        commits: std::mem::take(&mut self.committed).into(),
                    },
                ]
            }
            _ => self.abandon("an unexpected packet before UPTODATE"),
        }
    }
}

#[cfg(test)]
#[path = "learner_sync_test.rs"]
mod tests;
