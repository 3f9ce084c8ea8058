//! The following (or observing) role: connect to the elected leader, discovery, the learner's
//! side of synchronisation, then broadcast; the leader is left when it goes silent for
//! `syncLimit`, when the link drops, or when it breaks the protocol.

use super::{Output, Packet, Serving, Shared, StoreOp};
use crate::broadcast::{FollowerBroadcast, FollowerBroadcastOutput};
use crate::discovery::{LearnerDiscovery, LearnerOutput};
use crate::learner_sync::{LearnerSync, SyncOutput};
use crate::liveness::FollowerLiveness;
use crate::sync::{epoch_of, SyncPacket};
use crate::{Sid, Zxid};

type Step = Result<(), &'static str>;

/// How soon a learner dials its elected leader again after a refused link, doubling each time,
/// and how many times (20 ms to 640 ms: about 1.3 s in all; ZooKeeper tries 5 times a second
/// apart).
const REDIAL_MS: u64 = 20;
const REDIALS: u32 = 6;

#[derive(Debug)]
pub(super) struct Learning {
    leader: Sid,
    observer: bool,
    /// Until discovery has heard from the leader: give up at this time.
    connect_deadline: Option<u64>,
    /// The link dropped before LEADERINFO (the leader was not leading yet): dial again then.
    redial_at: Option<u64>,
    redials: u32,
    discovery: Option<LearnerDiscovery>,
    liveness: Option<FollowerLiveness>,
    /// The epoch of LEADERINFO.
    epoch: u64,
    /// Durable writes this role waits for.
    pending_accepted: Option<u64>,
    /// LEADERINFO of an epoch accepted by a write still in flight: answered once it is durable
    /// (D1), from another connection's discovery that timed out.
    held_leader_info: Option<u64>,
    pending_truncate: Option<Zxid>,
    pending_barrier: Option<u64>,
    pending_epoch: Option<u64>,
    sync: Option<LearnerSync>,
    broadcast: Option<FollowerBroadcast>,
    /// Syncs answered by the leader, waiting until this server applied what was committed when
    /// the answer came: (zxid, id).
    syncs: Vec<(Zxid, u64)>,
    /// The highest COMMIT (or INFORM) received from the leader.
    commit_seen: Zxid,
}

impl Learning {
    pub(super) fn new(s: &Shared, leader: Sid, now: u64, out: &mut Vec<Output>) -> Learning {
        out.push(Output::Connect(leader));
        Learning {
            leader,
            observer: s.cfg.is_observer(s.cfg.me),
            connect_deadline: Some(now + s.cfg.init_limit_ms),
            redial_at: None,
            redials: 0,
            discovery: None,
            liveness: None,
            epoch: 0,
            pending_accepted: None,
            held_leader_info: None,
            pending_truncate: None,
            pending_barrier: None,
            pending_epoch: None,
            sync: None,
            broadcast: None,
            syncs: Vec::new(),
            commit_seen: 0,
        }
    }

    pub(super) fn leader(&self) -> Sid {
        self.leader
    }

    pub(super) fn serving(&self) -> Serving {
        match (&self.broadcast, self.observer) {
            (Some(_), false) => Serving::Following {
                leader: self.leader,
                epoch: self.epoch,
            },
            (Some(_), true) => Serving::Observing {
                leader: self.leader,
                epoch: self.epoch,
            },
            (None, _) => Serving::Looking,
        }
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        [
            self.connect_deadline,
            self.redial_at,
            self.discovery.as_ref().and_then(|d| d.next_wake()),
            self.liveness.as_ref().map(|l| l.next_wake()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn on_timeout(&mut self, _s: &mut Shared, now: u64, out: &mut Vec<Output>) -> Step {
        if self.connect_deadline.is_some_and(|d| now >= d) {
            return Err("no leader answered within initLimit");
        }
        if self.redial_at.is_some_and(|t| now >= t) {
            self.redial_at = None;
            out.push(Output::Connect(self.leader));
        }
        if let Some(d) = self.discovery.as_mut() {
            if let Some(LearnerOutput::Abandon { why }) = d.on_timeout(now).into_iter().next() {
                return Err(why);
            }
        }
        if self.liveness.as_ref().is_some_and(|l| l.leader_gone(now)) {
            return Err("the leader was silent for syncLimit");
        }
        Ok(())
    }

    pub(super) fn on_connected(
        &mut self,
        s: &mut Shared,
        now: u64,
        sid: Sid,
        out: &mut Vec<Output>,
    ) -> Step {
        if sid != self.leader || self.discovery.is_some() {
            out.push(Output::Disconnect(sid));
            return Ok(());
        }
        self.liveness = Some(FollowerLiveness::new(s.cfg.sync_limit_ms, now));
        let (d, hello) = LearnerDiscovery::new(s.epochs(), now, s.cfg.init_limit_ms);
        self.discovery = Some(d);
        self.discovery_outputs(s, vec![hello], out)
    }

    /// The link to the leader dropped. Before LEADERINFO the elected server may simply not lead
    /// yet (it decides a little after its followers and refuses links until then): dial again
    /// shortly, until initLimit, as ZooKeeper's `connectToLeader` retries. After it, the leader
    /// is gone.
    pub(super) fn on_disconnected(&mut self, now: u64) -> Step {
        if self.connect_deadline.is_none() {
            return Err("the link to the leader is gone");
        }
        if self.redials == REDIALS {
            return Err("the elected leader refused the link, again and again");
        }
        self.discovery = None;
        self.liveness = None;
        self.redial_at = Some(now + (REDIAL_MS << self.redials));
        self.redials += 1;
        Ok(())
    }

    /// A client write here: forwarded to the leader while serving.
    pub(super) fn forward(&mut self, id: u64, out: &mut Vec<Output>) {
        if self.broadcast.is_some() {
            self.send(Packet::Request { id }, out);
        } else {
            out.push(Output::WriteRefused { id });
        }
    }

    /// A client's `sync` here: asked of the leader while serving.
    pub(super) fn sync(&mut self, id: u64, out: &mut Vec<Output>) {
        if self.broadcast.is_some() {
            self.send(Packet::Sync { id }, out);
        } else {
            out.push(Output::SyncRefused { id });
        }
    }

    /// Completes the syncs whose commit point this server has applied.
    fn release_syncs(&mut self, s: &Shared, out: &mut Vec<Output>) {
        self.syncs.retain(|&(z, id)| {
            if z <= s.applied {
                out.push(Output::SyncReached { id });
                false
            } else {
                true
            }
        });
    }

    fn send(&self, packet: Packet, out: &mut Vec<Output>) {
        out.push(Output::Send {
            to: self.leader,
            packet,
        });
    }

    fn discovery_outputs(
        &mut self,
        s: &mut Shared,
        outputs: Vec<LearnerOutput>,
        out: &mut Vec<Output>,
    ) -> Step {
        for o in outputs {
            match o {
                LearnerOutput::FollowerInfo { accepted_epoch } => self.send(
                    Packet::FollowerInfo {
                        accepted_epoch,
                        observer: self.observer,
                    },
                    out,
                ),
                LearnerOutput::PersistAcceptedEpoch(e) => {
                    self.pending_accepted = Some(e);
                    s.persist_accepted_epoch(e, out);
                }
                LearnerOutput::AckEpoch {
                    last_zxid,
                    current_epoch,
                } => {
                    self.send(
                        Packet::AckEpoch {
                            last_zxid,
                            current_epoch,
                        },
                        out,
                    );
                    self.sync = Some(LearnerSync::new(s.last_logged()));
                }
                LearnerOutput::Abandon { why } => return Err(why),
            }
        }
        Ok(())
    }

    pub(super) fn on_stored(
        &mut self,
        s: &mut Shared,
        _now: u64,
        op: StoreOp,
        out: &mut Vec<Output>,
    ) -> Step {
        let o = match op {
            StoreOp::AcceptedEpoch(e) if self.held_leader_info == Some(e) => {
                self.held_leader_info = None;
                let d = self.discovery.as_mut().map(|d| d.on_leader_info(e));
                return self.discovery_outputs(s, d.unwrap_or_default(), out);
            }
            StoreOp::AcceptedEpoch(e) if self.pending_accepted == Some(e) => {
                self.pending_accepted = None;
                let d = self
                    .discovery
                    .as_mut()
                    .map(|d| d.on_accepted_epoch_durable());
                return self.discovery_outputs(s, d.unwrap_or_default(), out);
            }
            StoreOp::TruncateAfter(z) if self.pending_truncate == Some(z) => {
                self.pending_truncate = None;
                self.sync.as_mut().map(|y| y.on_truncated())
            }
            StoreOp::Barrier(b) if self.pending_barrier == Some(b) => {
                self.pending_barrier = None;
                self.sync.as_mut().map(|y| y.on_log_durable())
            }
            StoreOp::CurrentEpoch(e) if self.pending_epoch == Some(e) => {
                self.pending_epoch = None;
                self.sync.as_mut().map(|y| y.on_current_epoch_durable())
            }
            StoreOp::Append(z) => {
                if let Some(b) = self.broadcast.as_mut() {
                    let o = b.on_durable(z);
                    return self.broadcast_outputs(s, o, out);
                }
                None
            }
            _ => None,
        };
        self.sync_outputs(s, o.unwrap_or_default(), out)
    }

    pub(super) fn on_packet(
        &mut self,
        s: &mut Shared,
        now: u64,
        from: Sid,
        packet: Packet,
        out: &mut Vec<Output>,
    ) -> Step {
        if from != self.leader {
            out.push(Output::Disconnect(from));
            return Ok(());
        }
        if let Some(l) = self.liveness.as_mut() {
            l.heard(now);
        }
        if let Some(b) = self.broadcast.as_mut() {
            let o = match packet {
                Packet::Proposal(z) if !self.observer => b.on_proposal(z),
                Packet::Commit(z) if !self.observer => {
                    self.commit_seen = self.commit_seen.max(z);
                    b.on_commit(z)
                }
                Packet::Inform(z) if self.observer => {
                    self.commit_seen = self.commit_seen.max(z);
                    b.on_inform(z)
                }
                Packet::Sync { id } => {
                    self.syncs.push((self.commit_seen, id));
                    self.release_syncs(s, out);
                    return Ok(());
                }
                Packet::Ping => {
                    self.send(Packet::Ping, out);
                    return Ok(());
                }
                _ => return Err("an unexpected packet while serving"),
            };
            return self.broadcast_outputs(s, o, out);
        }
        if let Packet::LeaderInfo { epoch } = packet {
            self.epoch = epoch;
            self.connect_deadline = None;
            if epoch == s.accepted_epoch && epoch > s.accepted_durable {
                self.held_leader_info = Some(epoch);
                return Ok(());
            }
            let d = match self.discovery.as_mut() {
                Some(d) => d.on_leader_info(epoch),
                None => return Err("LEADERINFO before the link was up"),
            };
            return self.discovery_outputs(s, d, out);
        }
        if packet == Packet::Ping {
            self.send(Packet::Ping, out);
            return Ok(());
        }
        let Some(sync) = self.sync.as_mut() else {
            return Err("a sync packet before ACKEPOCH");
        };
        let o = match packet {
            Packet::Diff(z) => sync.on_packet(SyncPacket::Diff(z)),
            Packet::Trunc(z) => sync.on_packet(SyncPacket::Trunc(z)),
            Packet::Snap(z) => sync.on_packet(SyncPacket::Snap(z)),
            Packet::Proposal(z) => sync.on_packet(SyncPacket::Proposal(z)),
            Packet::Commit(z) => sync.on_packet(SyncPacket::Commit(z)),
            Packet::Inform(z) => {
                let mut o = sync.on_packet(SyncPacket::Proposal(z));
                o.extend(sync.on_packet(SyncPacket::Commit(z)));
                o
            }
            Packet::NewLeader(z) => {
                if epoch_of(z) != self.epoch {
                    return Err("NEWLEADER of another epoch than LEADERINFO's");
                }
                sync.on_packet(SyncPacket::NewLeader(z))
            }
            Packet::UpToDate => sync.on_packet(SyncPacket::UpToDate),
            _ => return Err("an unexpected packet while synchronising"),
        };
        self.sync_outputs(s, o, out)
    }

    fn sync_outputs(
        &mut self,
        s: &mut Shared,
        outputs: Vec<SyncOutput>,
        out: &mut Vec<Output>,
    ) -> Step {
        for o in outputs {
            match o {
                SyncOutput::TruncateAfter(z) => {
                    s.log.truncate_after(z);
                    s.applied = s.applied.min(z);
                    s.durable = s.durable.min(z);
                    self.pending_truncate = Some(z);
                    out.push(Output::Store(StoreOp::TruncateAfter(z)));
                }
                SyncOutput::LoadSnapshot(z) => {
                    s.log = crate::history::History::snapshot(z);
                    s.applied = z;
                    s.durable = s.durable.min(z);
                    out.push(Output::Store(StoreOp::LoadSnapshot(z)));
                }
                // After SNAP or TRUNC ZooKeeper applies committed txns unlogged and snapshots the
                // tree at NEWLEADER; logging them is the same durable history, one way only.
                SyncOutput::Apply(z) | SyncOutput::AppendAndApply(z) => {
                    s.append(z, out);
                    s.apply(z, out);
                }
                SyncOutput::SyncLog => self.pending_barrier = Some(s.barrier(out)),
                SyncOutput::PersistCurrentEpoch(e) => {
                    self.pending_epoch = Some(e);
                    s.persist_current_epoch(e, out);
                }
                SyncOutput::Ack(z) => self.send(Packet::Ack(z), out),
                SyncOutput::StartServing { proposals, commits } => {
                    self.commit_seen = commits.last().copied().unwrap_or(0).max(s.applied);
                    let mut b = FollowerBroadcast::new(s.last_logged(), self.observer);
                    let mut o = Vec::new();
                    for p in proposals {
                        o.extend(b.on_proposal(p));
                    }
                    for c in commits {
                        o.extend(b.on_commit(c));
                    }
                    self.broadcast = Some(b);
                    self.sync = None;
                    self.broadcast_outputs(s, o, out)?;
                }
                SyncOutput::Abandon(why) => return Err(why),
            }
        }
        Ok(())
    }

    fn broadcast_outputs(
        &mut self,
        s: &mut Shared,
        outputs: Vec<FollowerBroadcastOutput>,
        out: &mut Vec<Output>,
    ) -> Step {
        for o in outputs {
            match o {
                FollowerBroadcastOutput::Log(z) => s.append(z, out),
                FollowerBroadcastOutput::Ack(z) => self.send(Packet::Ack(z), out),
                FollowerBroadcastOutput::Apply(z) => s.apply(z, out),
                FollowerBroadcastOutput::Abandon(why) => return Err(why),
            }
        }
        if !self.syncs.is_empty() {
            self.release_syncs(s, out);
        }
        Ok(())
    }
}
