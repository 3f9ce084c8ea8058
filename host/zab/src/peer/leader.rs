//! The leading role: discovery with the learners that connect, a sync stream for each, the
//! NEWLEADER quorum that establishes the epoch, then broadcast, pings and the `syncLimit` check.
//! One `LearnerHandler`'s state per connected learner lives in [`Handler`].

use std::collections::BTreeMap;

use super::{Output, Packet, Serving, Shared, StoreOp};
use crate::broadcast::{LeaderBroadcast, LeaderBroadcastOutput};
use crate::discovery::{LeaderDiscovery, LeaderOutput};
use crate::leader_sync::{sync_stream, NewLeaderOutput, NewLeaderQuorum};
use crate::liveness::LeaderLiveness;
use crate::sync::plan_sync;
use crate::{Sid, Zxid};

/// A connected learner, as the leader's `LearnerHandler` knows it.
#[derive(Debug, Default)]
struct Handler {
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
            for &sid in self.handlers.keys() {
                out.push(Output::Send {
                    to: sid,
                    packet: Packet::Ping,
                });
            }
        }
        Ok(())
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
            Packet::Ping => Ok(()),
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
        let plan = plan_sync(last_zxid, &s.log.to_vec_upto(s.applied), s.applied);
        let to_be_applied = s.log.range(s.applied, self.committed);
        let outstanding = s.log.range(self.committed, self.last_proposed);
        for p in sync_stream(&plan, &to_be_applied, &outstanding, h.observer, epoch) {
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

    /// A client write: numbered, logged, and proposed to the forwarding participants.
    pub(super) fn write(&mut self, s: &mut Shared, out: &mut Vec<Output>) -> Step {
        let Some(b) = self.broadcast.as_mut() else {
            out.push(Output::WriteRefused);
            return Ok(());
        };
        let o = b.propose();
        if o.contains(&LeaderBroadcastOutput::NewEpochNeeded) {
            out.push(Output::WriteRefused);
            return Err("the zxid counter is used up: a new epoch is needed");
        }
        self.broadcast_outputs(s, o, out);
        Ok(())
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
                    out.push(Output::Proposed(z));
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
    }
}
