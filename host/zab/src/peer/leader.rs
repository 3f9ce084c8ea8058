//! The leading role: discovery with the learners that connect, a sync stream for each, the
//! NEWLEADER quorum that establishes the epoch, then broadcast, pings and the `syncLimit` check.
//! One `LearnerHandler`'s state per connected learner lives in [`Handler`].

use std::collections::BTreeMap;

use super::{Output, Packet, Serving, Shared, StoreOp};
use crate::broadcast::{LeaderBroadcast, LeaderBroadcastOutput};
use crate::discovery::{LeaderDiscovery, LeaderOutput};
use crate::leader_sync::{learner_stream, NewLeaderOutput, NewLeaderQuorum, SyncPoint};
use crate::liveness::LeaderLiveness;
use crate::planted::{planted, Bug};

use crate::{Sid, Zxid};

/// A connected learner, as the leader's `LearnerHandler` knows it.
#[derive(Debug, Default)]
struct Handler {
    /// PINGs sent on this link, and PINGs received (a learner answers each one, in order).
    pings_sent: u64,
    pings_answered: u64,
    observer: bool,
    /// Its sync stream was sent: broadcast packets follow it (`startForwarding`).
    forwarding: bool,
    /// UPTODATE sent: its ACKs count for commits.
    synced: bool,
}

#[derive(Debug)]
pub(super) struct Leading {
    discovery: LeaderDiscovery,
    /// The epoch, once durable as currentEpoch (discovery done).
    epoch: Option<u64>,
    /// Zxid of the first txn of the epoch's history.
    newleader: Option<NewLeaderQuorum>,
    /// Once established.
    broadcast: Option<LeaderBroadcast>,
    liveness: Option<LeaderLiveness>,
    handlers: BTreeMap<Sid, Handler>,
    /// The last zxid proposed in this epoch (the log's last while not established).
    last_proposed: Zxid,
    /// The last zxid committed (everything before the epoch is, once discovery is done).
    committed: Zxid,
    next_ping: u64,
    /// Syncs not answered yet.
    syncs: Vec<PendingSync>,
}

/// A `sync` waiting at the leader until (a) everything proposed before it is committed (and, for
/// this server's own client, applied) and (b) a quorum of voters answered a PING sent after it
/// arrived: this server was still the leader then, so no write acknowledged before the sync was
/// issued can be missing (a deposed leader, cut off with a minority, would otherwise answer from
/// a stale tree until syncLimit: ZooKeeper's sync has that gap).
#[derive(Debug)]
struct PendingSync {
    zxid: Zxid,
    /// The learner to answer, or `None` for this server's own client.
    to: Option<Sid>,
    id: u64,
    /// Per voter: the PINGs it must have answered.
    pings: Vec<(Sid, u64)>,
}

type Step = Result<(), &'static str>;

impl Leading {
    pub(super) fn new(s: &Shared, now: u64) -> Leading {
        let cfg = &s.cfg;
        Leading {
            discovery: LeaderDiscovery::new(
                cfg.me,
                cfg.voters.iter().copied(),
                s.epochs(),
                now,
                cfg.init_limit_ms,
            ),
            epoch: None,
            newleader: None,
            broadcast: None,
            liveness: None,
            handlers: BTreeMap::new(),
            last_proposed: s.last_logged(),
            committed: 0,
            next_ping: now + cfg.tick_ms / 2,
            syncs: Vec::new(),
        }
    }

    /// Counts for the admin views: learners connected, voters and observers synced, syncs
    /// waiting.
    pub(super) fn view(&self) -> super::LeaderView {
        let synced = |observer: bool| {
            self.handlers
                .values()
                .filter(|h| h.synced && h.observer == observer)
                .count()
        };
        super::LeaderView {
            learners: self.handlers.len(),
            synced_followers: synced(false),
            synced_observers: synced(true),
            pending_syncs: self.syncs.len(),
        }
    }

    pub(super) fn serving(&self) -> Serving {
        match (self.epoch, &self.broadcast) {
            (Some(epoch), Some(_)) => Serving::Leading { epoch },
            _ => Serving::Looking,
        }
    }

    pub(super) fn next_wake(&self) -> Option<u64> {
        let mut wake = self.next_ping;
        for w in [
            self.discovery.next_wake(),
            self.newleader.as_ref().and_then(|n| n.next_wake()),
            self.liveness.as_ref().map(|l| l.next_wake()),
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(w);
        }
        Some(wake)
    }

    /// Leadership is over: every learner's link closes.
    pub(super) fn close(&self, out: &mut Vec<Output>) {
        out.extend(self.handlers.keys().map(|&sid| Output::Disconnect(sid)));
    }

    pub(super) fn on_connected(&mut self, s: &Shared, sid: Sid, out: &mut Vec<Output>) -> Step {
        if !s.cfg.voters.contains(&sid) && !s.cfg.is_observer(sid) || sid == s.cfg.me {
            out.push(Output::Disconnect(sid));
            return Ok(());
        }
        // A reconnecting learner starts over.
        self.handlers.insert(
            sid,
            Handler {
                observer: s.cfg.is_observer(sid),
                ..Handler::default()
            },
        );
        Ok(())
    }

    pub(super) fn on_disconnected(&mut self, sid: Sid) {
        self.handlers.remove(&sid);
    }

    fn drop_learner(&mut self, sid: Sid, out: &mut Vec<Output>) {
        if self.handlers.remove(&sid).is_some() {
            out.push(Output::Disconnect(sid));
        }
    }

    pub(super) fn on_timeout(&mut self, s: &mut Shared, now: u64, out: &mut Vec<Output>) -> Step {
        let d = self.discovery.on_timeout(now);
        self.discovery_outputs(s, now, d, out)?;
        if let Some(n) = self.newleader.as_mut() {
            let o = n.on_timeout(now);
            self.newleader_outputs(s, now, o, out)?;
        }
        if self
            .liveness
            .as_ref()
            .is_some_and(|l| l.must_step_down(now))
        {
            return Err("no quorum of voters heard from within syncLimit");
        }
        if now >= self.next_ping {
            self.next_ping = now + (s.cfg.tick_ms / 2).max(1);
            self.ping_all(out);
        }
        Ok(())
    }

    fn ping_all(&mut self, out: &mut Vec<Output>) {
        for (&sid, h) in self.handlers.iter_mut() {
            h.pings_sent += 1;
            out.push(Output::Send {
                to: sid,
                packet: Packet::Ping,
            });
        }
    }

    /// Queues a sync: pings every learner now, and remembers what each voter must answer.
    fn queue_sync(&mut self, s: &Shared, to: Option<Sid>, id: u64, out: &mut Vec<Output>) {
        self.ping_all(out);
        let pings = self
            .handlers
            .iter()
            .filter(|(sid, h)| h.synced && s.cfg.voters.contains(sid))
            .map(|(&sid, h)| (sid, h.pings_sent))
            .collect();
        self.syncs.push(PendingSync {
            zxid: self.last_proposed,
            to,
            id,
            pings,
        });
        self.release_syncs(s, out);
    }

    pub(super) fn on_stored(
        &mut self,
        s: &mut Shared,
        now: u64,
        op: StoreOp,
        out: &mut Vec<Output>,
    ) -> Step {
        match op {
            StoreOp::AcceptedEpoch(e) if e == self.discovery.epoch() => {
                let d = self.discovery.on_accepted_epoch_durable();
                self.discovery_outputs(s, now, d, out)
            }
            StoreOp::CurrentEpoch(e) if e == self.discovery.epoch() => {
                let d = self.discovery.on_current_epoch_durable();
                self.discovery_outputs(s, now, d, out)
            }
            StoreOp::Append(z) => {
                if let Some(b) = self.broadcast.as_mut() {
                    let o = b.on_local_durable(z);
                    self.broadcast_outputs(s, o, out);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn on_packet(
        &mut self,
        s: &mut Shared,
        now: u64,
        from: Sid,
        packet: Packet,
        out: &mut Vec<Output>,
    ) -> Step {
        if !self.handlers.contains_key(&from) {
            // A packet from a link this leader does not know (closed, or never opened).
            out.push(Output::Disconnect(from));
            return Ok(());
        }
        if let Some(l) = self.liveness.as_mut() {
            l.heard_from(from, now);
        }
        match packet {
            Packet::FollowerInfo {
                accepted_epoch,
                observer,
            } => {
                if observer != self.handlers[&from].observer {
                    self.drop_learner(from, out);
                    return Ok(());
                }
                let d = self.discovery.on_follower_info(from, accepted_epoch);
                if accepted_epoch > self.discovery.epoch() {
                    // The learner promised a later epoch (to a leader that failed) and must refuse
                    // this one (D1). ZooKeeper's leader carries on without it, for good; stepping
                    // down lets the next discovery pick an epoch at least as high as its promise.
                    return Err("a learner has accepted a later epoch than this leader's");
                }
                self.discovery_outputs(s, now, d, out)
            }
            Packet::AckEpoch {
                last_zxid,
                current_epoch,
            } => {
                let d = self.discovery.on_ack_epoch(from, last_zxid, current_epoch);
                self.discovery_outputs(s, now, d, out)
            }
            Packet::Ack(z) => {
                if let Some(n) = self.newleader.as_mut().filter(|n| n.is_waiting(from)) {
                    let o = n.on_ack(from, z);
                    return self.newleader_outputs(s, now, o, out);
                }
                let h = &self.handlers[&from];
                if h.synced && !h.observer {
                    if let Some(b) = self.broadcast.as_mut() {
                        let o = b.on_ack(from, z);
                        self.broadcast_outputs(s, o, out);
                    }
                }
                Ok(())
            }
            Packet::Ping => {
                if let Some(h) = self.handlers.get_mut(&from) {
                    h.pings_answered += 1;
                }
                if !self.syncs.is_empty() {
                    self.release_syncs(s, out);
                }
                Ok(())
            }
            Packet::Request { id } if self.handlers[&from].synced => {
                self.write(s, id, Some(from), out)
            }
            Packet::Sync { id } if self.handlers[&from].synced => {
                // `processSync`, plus the quorum check of `PendingSync`; the learner gets the
                // COMMITs before this answer (one link, in order).
                self.queue_sync(s, Some(from), id, out);
                Ok(())
            }
            _ => {
                self.drop_learner(from, out);
                Ok(())
            }
        }
    }

    fn discovery_outputs(
        &mut self,
        s: &mut Shared,
        now: u64,
        outputs: Vec<LeaderOutput>,
        out: &mut Vec<Output>,
    ) -> Step {
        for o in outputs {
            match o {
                LeaderOutput::PersistAcceptedEpoch(e) => s.persist_accepted_epoch(e, out),
                LeaderOutput::LeaderInfo { to, epoch } => out.push(Output::Send {
                    to,
                    packet: Packet::LeaderInfo { epoch },
                }),
                LeaderOutput::Drop { sid, .. } => self.drop_learner(sid, out),
                LeaderOutput::PersistCurrentEpoch(e) => {
                    // The leader's whole log is the new epoch's initial history: committed.
                    for z in s.log.range(s.applied, s.last_logged()) {
                        s.apply(z, out);
                    }
                    self.committed = s.last_logged();
                    s.persist_current_epoch(e, out);
                }
                LeaderOutput::Synchronise { sid, last_zxid } => {
                    if self.newleader.is_none() {
                        let epoch = self.discovery.epoch();
                        self.epoch = Some(epoch);
                        self.newleader = Some(NewLeaderQuorum::new(
                            s.cfg.me,
                            s.cfg.voters.iter().copied(),
                            epoch,
                            now,
                            s.cfg.init_limit_ms,
                        ));
                    }
                    self.synchronise(s, sid, last_zxid, out);
                }
                LeaderOutput::Abandon => {
                    return Err("no quorum for the new epoch within initLimit")
                }
            }
        }
        Ok(())
    }

    /// The sync stream for `sid` (`LearnerHandler.syncFollower` + `startForwarding`), built in
    /// one step so that no proposal falls between the plan and the forwarding.
    fn synchronise(&mut self, s: &Shared, sid: Sid, last_zxid: Zxid, out: &mut Vec<Output>) {
        let (Some(epoch), Some(h)) = (self.epoch, self.handlers.get_mut(&sid)) else {
            return;
        };
        let point = SyncPoint {
            applied: s.applied,
            committed: self.committed,
            last_proposed: self.last_proposed,
            persisted: (self.broadcast.is_none()).then_some(s.persisted),
        };
        for p in learner_stream(&s.log, last_zxid, point, h.observer, epoch) {
            out.push(Output::Send {
                to: sid,
                packet: Packet::sync(p),
            });
        }
        h.forwarding = true;
        if let Some(n) = self.newleader.as_mut() {
            n.sent(sid);
        }
    }

    fn newleader_outputs(
        &mut self,
        s: &mut Shared,
        now: u64,
        outputs: Vec<NewLeaderOutput>,
        out: &mut Vec<Output>,
    ) -> Step {
        for o in outputs {
            match o {
                NewLeaderOutput::Established => {
                    let epoch = self.epoch.expect("established after discovery");
                    let voters = s.cfg.voters.iter().copied();
                    self.broadcast = Some(LeaderBroadcast::new(s.cfg.me, voters.clone(), epoch));
                    self.liveness = Some(LeaderLiveness::new(
                        s.cfg.me,
                        voters,
                        s.cfg.sync_limit_ms,
                        now,
                    ));
                    let start = (epoch as Zxid) << 32;
                    self.last_proposed = start;
                    self.committed = start;
                }
                NewLeaderOutput::UpToDate(sid) => {
                    if let Some(h) = self.handlers.get_mut(&sid) {
                        h.synced = true;
                        out.push(Output::Send {
                            to: sid,
                            packet: Packet::UpToDate,
                        });
                    }
                }
                NewLeaderOutput::Drop { sid, .. } => self.drop_learner(sid, out),
                NewLeaderOutput::Abandon => return Err("no NEWLEADER quorum within initLimit"),
            }
        }
        Ok(())
    }

    /// A client write (this server's, or forwarded by learner `from`): numbered, logged, and
    /// proposed to the forwarding participants.
    pub(super) fn write(
        &mut self,
        s: &mut Shared,
        id: u64,
        from: Option<Sid>,
        out: &mut Vec<Output>,
    ) -> Step {
        let Some(b) = self.broadcast.as_mut() else {
            if from.is_none() {
                out.push(Output::WriteRefused { id });
            }
            return Ok(());
        };
        let o = b.propose();
        if o.contains(&LeaderBroadcastOutput::NewEpochNeeded) {
            if from.is_none() {
                out.push(Output::WriteRefused { id });
            }
            return Err("the zxid counter is used up: a new epoch is needed");
        }
        if let [LeaderBroadcastOutput::Propose(zxid)] = o[..] {
            out.push(Output::Proposed { zxid, id, from });
        }
        self.broadcast_outputs(s, o, out);
        Ok(())
    }

    /// This server's own client's `sync`: complete once what was proposed before it is applied
    /// here.
    pub(super) fn sync_local(&mut self, s: &Shared, id: u64, out: &mut Vec<Output>) {
        if self.broadcast.is_none() {
            out.push(Output::SyncRefused { id });
        } else {
            self.queue_sync(s, None, id, out);
        }
    }

    /// Answers the syncs that are complete (see [`PendingSync`]).
    fn release_syncs(&mut self, s: &Shared, out: &mut Vec<Output>) {
        let committed = self.committed;
        let need = s.cfg.voters.len() / 2 + 1;
        let handlers = &self.handlers;
        self.syncs.retain(|p| {
            let answered = 1 + p
                .pings
                .iter()
                .filter(|(sid, n)| handlers.get(sid).is_some_and(|h| h.pings_answered >= *n))
                .count();
            if answered < need && !planted(Bug::SyncWithoutQuorum) {
                return true;
            }
            match p.to {
                Some(to) if p.zxid <= committed => out.push(Output::Send {
                    to,
                    packet: Packet::Sync { id: p.id },
                }),
                None if p.zxid <= s.applied => out.push(Output::SyncReached { id: p.id }),
                _ => return true,
            }
            false
        });
    }

    fn broadcast_outputs(
        &mut self,
        s: &mut Shared,
        outputs: Vec<LeaderBroadcastOutput>,
        out: &mut Vec<Output>,
    ) {
        for o in outputs {
            match o {
                LeaderBroadcastOutput::Propose(z) => {
                    self.last_proposed = z;
                    s.append(z, out);
                    for (&sid, h) in &self.handlers {
                        if h.forwarding && !h.observer {
                            out.push(Output::Send {
                                to: sid,
                                packet: Packet::Proposal(z),
                            });
                        }
                    }
                }
                LeaderBroadcastOutput::Commit(z) => {
                    self.committed = z;
                    for (&sid, h) in &self.handlers {
                        if h.forwarding {
                            let packet = if h.observer {
                                Packet::Inform(z)
                            } else {
                                Packet::Commit(z)
                            };
                            out.push(Output::Send { to: sid, packet });
                        }
                    }
                }
                LeaderBroadcastOutput::Apply(z) => s.apply(z, out),
                LeaderBroadcastOutput::NewEpochNeeded => {}
            }
        }
        if !self.syncs.is_empty() {
            self.release_syncs(s, out);
        }
    }
}
