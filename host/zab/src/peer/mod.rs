//! One server of an ensemble as a single pure state machine: [`Peer::step`] takes the time and
//! one [`Input`] (an election notification, a quorum packet, a link going up or down, a storage
//! completion, a timer, a client write) and returns the [`Output`]s to execute, in order. It
//! composes the phases built beside it — [`election`](crate::election) while LOOKING, then
//! [`discovery`](crate::discovery), synchronisation ([`leader_sync`](crate::leader_sync),
//! [`learner_sync`](crate::learner_sync)), [`broadcast`](crate::broadcast) and
//! [`liveness`](crate::liveness) — and owns what they share: the durable epochs, the log's
//! [`History`], and what is durable and applied.
//!
//! Packets carry zxids only: the host keeps the payloads (txns, snapshot images) beside its log
//! and attaches them when it sends, and stashes what it receives until an output names it. The
//! host executes outputs in order, decides nothing, and reports storage completions in the order
//! the writes were asked for (a completion means every earlier write is durable too: the store's
//! group commit writes metadata after the log). Restarting is [`Peer::new`] with what the store
//! recovered.

mod leader;
mod learner;

use std::collections::BTreeSet;

use crate::discovery::EpochState;
use crate::election::{self, Election, ElectionConfig, Notification, PeerState};
use crate::history::History;
use crate::sync::SyncPacket;
use crate::{Sid, Zxid};

use leader::Leading;
use learner::Learning;

/// The ensemble and its timing, as one server sees them.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub me: Sid,
    /// Participants (they vote and may lead).
    pub voters: BTreeSet<Sid>,
    /// Observers (they follow, never vote).
    pub observers: BTreeSet<Sid>,
    /// `tickTime`: the leader pings its learners every half tick.
    pub tick_ms: u64,
    /// `initLimit × tickTime`: discovery and sync must finish within it.
    pub init_limit_ms: u64,
    /// `syncLimit × tickTime`: a silent peer is gone after it.
    pub sync_limit_ms: u64,
    /// Election timing (notification intervals, finalize wait).
    pub election: ElectionConfig,
}

impl PeerConfig {
    /// ZooKeeper's defaults for `me` among `voters` and `observers`: tickTime 2000, initLimit 10,
    /// syncLimit 5 (the sample zoo.cfg), FLE's 200 ms waits.
    pub fn new(
        me: Sid,
        voters: impl IntoIterator<Item = Sid>,
        observers: impl IntoIterator<Item = Sid>,
    ) -> PeerConfig {
        let voters: BTreeSet<Sid> = voters.into_iter().collect();
        PeerConfig {
            me,
            election: ElectionConfig::new(me, voters.iter().copied()),
            voters,
            observers: observers.into_iter().collect(),
            tick_ms: 2_000,
            init_limit_ms: 20_000,
            sync_limit_ms: 10_000,
        }
    }

    fn is_observer(&self, sid: Sid) -> bool {
        self.observers.contains(&sid)
    }
}

/// What the store recovered at start: the epochs and the log (after a snapshot, its zxid first).
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub accepted_epoch: u64,
    pub current_epoch: u64,
    pub log: History,
}

/// A packet on the quorum port (`QuorumPacket`), with zxids only: payloads ride beside them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    /// FOLLOWERINFO, or OBSERVERINFO when `observer`.
    FollowerInfo {
        accepted_epoch: u64,
        observer: bool,
    },
    LeaderInfo {
        epoch: u64,
    },
    /// ACKEPOCH; `current_epoch: None` is the −1 of a learner that had already accepted it.
    AckEpoch {
        last_zxid: Zxid,
        current_epoch: Option<u64>,
    },
    Diff(Zxid),
    Trunc(Zxid),
    /// SNAP: the leader's tree as of this zxid rides with it.
    Snap(Zxid),
    /// PROPOSAL: the txn rides with it.
    Proposal(Zxid),
    Commit(Zxid),
    NewLeader(Zxid),
    UpToDate,
    /// INFORM (to observers): the txn rides with it.
    Inform(Zxid),
    Ack(Zxid),
    Ping,
    /// REQUEST: a learner forwards its client's write; `id` names it at the learner (the request
    /// itself rides with it).
    Request {
        id: u64,
    },
    /// SYNC: from a learner, its client's `sync`; back from the leader once everything proposed
    /// before it was committed (its COMMITs precede this packet on the link).
    Sync {
        id: u64,
    },
}

impl Packet {
    fn sync(p: SyncPacket) -> Packet {
        match p {
            SyncPacket::Diff(z) => Packet::Diff(z),
            SyncPacket::Trunc(z) => Packet::Trunc(z),
            SyncPacket::Snap(z) => Packet::Snap(z),
            SyncPacket::Proposal(z) => Packet::Proposal(z),
            SyncPacket::Commit(z) => Packet::Commit(z),
            SyncPacket::NewLeader(z) => Packet::NewLeader(z),
            SyncPacket::UpToDate => Packet::UpToDate,
        }
    }
}

/// A durable write. Completions come back as [`Input::Stored`] with the same value, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    AcceptedEpoch(u64),
    CurrentEpoch(u64),
    /// Append the txn with this zxid (the host has its payload) to the log.
    Append(Zxid),
    /// Cut the log after this zxid, and the tree back to it (D8).
    TruncateAfter(Zxid),
    /// Replace the tree and the log with the snapshot received as of this zxid.
    LoadSnapshot(Zxid),
    /// Nothing to write: completes once everything asked for before it is durable.
    Barrier(u64),
}

/// Where this server stands, reported as it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// Not serving: electing, or discovering and synchronising with a leader.
    Looking,
    /// An established leader of `epoch`.
    Leading {
        epoch: u64,
    },
    /// Synchronised with `leader` of `epoch`: serving reads, forwarding writes.
    Following {
        leader: Sid,
        epoch: u64,
    },
    Observing {
        leader: Sid,
        epoch: u64,
    },
}

/// A leader's learners, for the admin views (`mntr`'s `zk_synced_followers`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// Learners connected (followers and observers).
    pub learners: usize,
    /// Voters past UPTODATE.
    pub synced_followers: usize,
    pub synced_observers: usize,
    /// Syncs waiting for their commit point or quorum.
    pub pending_syncs: usize,
}

/// One input to [`Peer::step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The server has recovered and starts looking for a leader.
    Start,
    /// An election notification from the election port.
    Notification(Notification),
    /// The quorum link to `sid` is up (this server connected to its leader, or a learner
    /// connected to this leader).
    Connected(Sid),
    /// The quorum link to `sid` is gone.
    Disconnected(Sid),
    Packet {
        from: Sid,
        packet: Packet,
    },
    Stored(StoreOp),
    /// A wake-up asked for by [`Peer::next_wake`] (early or late ones are harmless).
    Timeout,
    /// A client write reached this server, `id` naming it here: the leader numbers and proposes
    /// it; a serving learner forwards it to the leader.
    Write {
        id: u64,
    },
    /// A client's `sync` reached this server: [`Output::SyncReached`] once this server has applied
    /// everything the leader had proposed when the sync reached it.
    Sync {
        id: u64,
    },
}

/// What the host must do, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send an election notification to every other server (`to: None`) or to one.
    Notify {
        to: Option<Sid>,
        notification: Notification,
    },
    /// Open the quorum link to the leader.
    Connect(Sid),
    /// Close the quorum link to `sid` (and forget what was queued for it).
    Disconnect(Sid),
    /// Send a packet on the quorum link to `to`, with its payload where it has one.
    Send {
        to: Sid,
        packet: Packet,
    },
    Store(StoreOp),
    /// Apply the txn with this zxid to the tree: it is committed and durable here (or, while
    /// synchronising, committed history that becomes durable before this server serves).
    Apply(Zxid),
    /// A write got this zxid: this server's own [`Input::Write`] (`from: None`), or one a learner
    /// forwarded. Its payload goes into the log and to the followers under the zxid.
    Proposed {
        zxid: Zxid,
        id: u64,
        from: Option<Sid>,
    },
    /// The write cannot be proposed or forwarded from here (not serving, or a new epoch is
    /// needed): its client gets an error.
    WriteRefused {
        id: u64,
    },
    /// The `sync` of [`Input::Sync`] is complete: reads here now see every write committed before
    /// it reached the leader.
    SyncReached {
        id: u64,
    },
    /// The `sync` cannot be served here (not serving).
    SyncRefused {
        id: u64,
    },
    /// This server's role changed.
    Serving(Serving),
}

enum Role {
    /// Not started.
    Idle,
    Looking,
    Leading(Box<Leading>),
    Learning(Box<Learning>),
}

/// The durable and in-memory state every role shares.
#[derive(Debug)]
struct Shared {
    cfg: PeerConfig,
    /// The epochs as asked for: writes complete in order, so what depends on them is asked for
    /// after them and a later decision never goes below an earlier one still in flight.
    accepted_epoch: u64,
    current_epoch: u64,
    /// The acceptedEpoch known durable.
    accepted_durable: u64,
    /// The log as asked for (appends may still be in flight).
    log: History,
    /// The last zxid whose append is durable.
    durable: Zxid,
    /// The last zxid applied to the tree.
    applied: Zxid,
    /// The zxid of the tree the host has persisted (see [`Peer::set_persisted`]); `Zxid::MAX`
    /// until the host says.
    persisted: Zxid,
    next_barrier: u64,
}

impl Shared {
    fn last_logged(&self) -> Zxid {
        self.log.last().unwrap_or(0)
    }

    fn epochs(&self) -> EpochState {
        EpochState {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: self.last_logged(),
        }
    }

    fn append(&mut self, zxid: Zxid, out: &mut Vec<Output>) {
        self.log.push(zxid);
        out.push(Output::Store(StoreOp::Append(zxid)));
    }

    fn apply(&mut self, zxid: Zxid, out: &mut Vec<Output>) {
        self.applied = zxid;
        out.push(Output::Apply(zxid));
    }

    fn persist_accepted_epoch(&mut self, e: u64, out: &mut Vec<Output>) {
        debug_assert!(e >= self.accepted_epoch, "acceptedEpoch never goes back");
        self.accepted_epoch = self.accepted_epoch.max(e);
        out.push(Output::Store(StoreOp::AcceptedEpoch(e)));
    }

    fn persist_current_epoch(&mut self, e: u64, out: &mut Vec<Output>) {
        debug_assert!(e >= self.current_epoch, "currentEpoch never goes back");
        self.current_epoch = self.current_epoch.max(e);
        out.push(Output::Store(StoreOp::CurrentEpoch(e)));
    }

    fn barrier(&mut self, out: &mut Vec<Output>) -> u64 {
        self.next_barrier += 1;
        out.push(Output::Store(StoreOp::Barrier(self.next_barrier)));
        self.next_barrier
    }
}

/// One server of the ensemble.
pub struct Peer {
    s: Shared,
    election: Election,
    role: Role,
    serving: Serving,
}

impl Peer {
    /// A server with what its store recovered; its tree holds the whole recovered log (as
    /// ZooKeeper's does after a restart: synchronisation cuts what was never committed).
    pub fn new(cfg: PeerConfig, recovered: Recovered) -> Peer {
        let last = recovered.log.last().unwrap_or(0);
        Peer {
            election: Election::new(cfg.election.clone()),
            s: Shared {
                cfg,
                accepted_epoch: recovered.accepted_epoch,
                current_epoch: recovered.current_epoch,
                accepted_durable: recovered.accepted_epoch,
                log: recovered.log,
                durable: last,
                applied: last,
                persisted: Zxid::MAX,
                next_barrier: 0,
            },
            role: Role::Idle,
            serving: Serving::Looking,
        }
    }

    pub fn me(&self) -> Sid {
        self.s.cfg.me
    }

    pub fn serving(&self) -> Serving {
        self.serving
    }

    pub fn accepted_epoch(&self) -> u64 {
        self.s.accepted_epoch
    }

    pub fn current_epoch(&self) -> u64 {
        self.s.current_epoch
    }

    pub fn last_logged(&self) -> Zxid {
        self.s.last_logged()
    }

    pub fn applied(&self) -> Zxid {
        self.s.applied
    }

    /// The host's persisted tree is as of `zxid` (it persists only committed state). A leader
    /// that is not established yet sends a SNAP as of that point, with the rest of its history
    /// after it as txns: its tree in memory may hold txns of its log nobody committed (a log is
    /// reapplied when a server leaves its role), which a learner must still be able to TRUNC,
    /// and a learner cannot cut a persisted tree back. Until the host says, a SNAP is as of the
    /// applied point (the simulator of peers alone keeps no tree).
    pub fn set_persisted(&mut self, zxid: Zxid) {
        self.s.persisted = zxid;
    }

    /// The txns the host may forget (drop from what it DIFFs learners from): the applied ones
    /// its persisted tree holds. A txn past it may still have to follow a SNAP.
    pub fn forgettable(&self) -> Zxid {
        self.s.applied.min(self.s.persisted)
    }

    /// The host no longer holds the txns up to `zxid` (they left the window it DIFFs learners
    /// from): the history forgets them, so a learner that needs one is planned a SNAP rather
    /// than a DIFF that cannot be sent. Only applied txns are forgotten (returns the zxid the
    /// history now forgets through): one logged and not applied is still needed, to apply it
    /// (leaving a role reapplies the log past the applied point) or to propose it. The last
    /// zxid is kept whatever `zxid` is.
    pub fn forget_through(&mut self, zxid: Zxid) -> Zxid {
        use crate::planted::{planted, Bug};
        let upto = if planted(Bug::ForgetUnapplied) {
            zxid
        } else {
            zxid.min(self.forgettable())
        };
        if !planted(Bug::DiffBeyondWindow) {
            self.s.log.forget_through(upto);
        }
        upto
    }

    /// Where a log keeping `n` txns behind the applied one starts: the zxid `n` txns back in
    /// the history (across epochs), or the history's first if it holds fewer (what the host
    /// forgot it cannot send anyway).
    pub fn retention_floor(&self, n: u64) -> Zxid {
        let log = &self.s.log;
        log.nth_back(self.s.applied, n).or(log.first()).unwrap_or(0)
    }

    /// The leader's learners, while leading.
    pub fn leader_view(&self) -> Option<LeaderView> {
        match &self.role {
            Role::Leading(l) => Some(l.view()),
            _ => None,
        }
    }

    /// The election's state (LOOKING until decided, then the decided role).
    pub fn election_state(&self) -> PeerState {
        self.election.state()
    }

    /// When to deliver the next [`Input::Timeout`].
    pub fn next_wake(&self) -> Option<u64> {
        match &self.role {
            Role::Idle => None,
            Role::Looking => self.election.next_wake(),
            Role::Leading(l) => l.next_wake(),
            Role::Learning(l) => l.next_wake(),
        }
    }

    pub fn step(&mut self, now: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if matches!(self.role, Role::Idle) {
                    self.look(now, &mut out);
                }
            }
            Input::Notification(n) => {
                if !matches!(self.role, Role::Idle) {
                    let eo = self.election.on_notification(now, n);
                    self.election_outputs(now, eo, &mut out);
                }
            }
            Input::Timeout => {
                if matches!(self.role, Role::Looking) {
                    let eo = self.election.on_timeout(now);
                    self.election_outputs(now, eo, &mut out);
                } else {
                    self.dispatch(
                        now,
                        |role, s, out| match role {
                            Role::Leading(l) => l.on_timeout(s, now, out),
                            Role::Learning(l) => l.on_timeout(s, now, out),
                            _ => Ok(()),
                        },
                        &mut out,
                    );
                }
            }
            Input::Stored(op) => {
                match op {
                    StoreOp::AcceptedEpoch(e) => {
                        self.s.accepted_durable = self.s.accepted_durable.max(e)
                    }
                    StoreOp::Append(z) => self.s.durable = self.s.durable.max(z),
                    StoreOp::TruncateAfter(z) | StoreOp::LoadSnapshot(z) => self.s.durable = z,
                    _ => {}
                }
                self.dispatch(
                    now,
                    |role, s, out| match role {
                        Role::Leading(l) => l.on_stored(s, now, op, out),
                        Role::Learning(l) => l.on_stored(s, now, op, out),
                        _ => Ok(()),
                    },
                    &mut out,
                );
            }
            Input::Connected(sid) => self.dispatch(
                now,
                |role, s, out| match role {
                    Role::Leading(l) => l.on_connected(s, sid, out),
                    Role::Learning(l) => l.on_connected(s, now, sid, out),
                    _ => {
                        out.push(Output::Disconnect(sid));
                        Ok(())
                    }
                },
                &mut out,
            ),
            Input::Disconnected(sid) => self.dispatch(
                now,
                |role, _s, _out| match role {
                    Role::Leading(l) => {
                        l.on_disconnected(sid);
                        Ok(())
                    }
                    Role::Learning(l) if l.leader() == sid => l.on_disconnected(now),
                    _ => Ok(()),
                },
                &mut out,
            ),
            Input::Packet { from, packet } => self.dispatch(
                now,
                |role, s, out| match role {
                    Role::Leading(l) => l.on_packet(s, now, from, packet, out),
                    Role::Learning(l) => l.on_packet(s, now, from, packet, out),
                    _ => {
                        out.push(Output::Disconnect(from));
                        Ok(())
                    }
                },
                &mut out,
            ),
            Input::Write { id } => self.dispatch(
                now,
                |role, s, out| match role {
                    Role::Leading(l) => l.write(s, id, None, out),
                    Role::Learning(l) => {
                        l.forward(id, out);
                        Ok(())
                    }
                    _ => {
                        out.push(Output::WriteRefused { id });
                        Ok(())
                    }
                },
                &mut out,
            ),
            Input::Sync { id } => self.dispatch(
                now,
                |role, s, out| {
                    match role {
                        Role::Leading(l) => l.sync_local(s, id, out),
                        Role::Learning(l) => l.sync(id, out),
                        _ => out.push(Output::SyncRefused { id }),
                    }
                    Ok(())
                },
                &mut out,
            ),
        }
        // Report a change of role once, after the outputs that caused it.
        let serving = match &self.role {
            Role::Leading(l) => l.serving(),
            Role::Learning(l) => l.serving(),
            _ => Serving::Looking,
        };
        if serving != self.serving {
            if let Serving::Leading { epoch }
            | Serving::Following { epoch, .. }
            | Serving::Observing { epoch, .. } = serving
            {
                self.election.update_vote_epoch(epoch);
            }
            self.serving = serving;
            out.push(Output::Serving(serving));
        }
        out
    }

    /// Runs `f` on the role; an `Err` abandons it (back to LOOKING).
    fn dispatch(
        &mut self,
        now: u64,
        f: impl FnOnce(&mut Role, &mut Shared, &mut Vec<Output>) -> Result<(), &'static str>,
        out: &mut Vec<Output>,
    ) {
        if f(&mut self.role, &mut self.s, out).is_err() {
            self.look(now, out);
        }
    }

    /// Leaves whatever role this server had and starts an election round.
    fn look(&mut self, now: u64, out: &mut Vec<Output>) {
        match std::mem::replace(&mut self.role, Role::Looking) {
            Role::Leading(l) => l.close(out),
            Role::Learning(l) => out.push(Output::Disconnect(l.leader())),
            _ => {}
        }
        if self.serving != Serving::Looking {
            // No longer serving, before the tree changes under the clients.
            self.serving = Serving::Looking;
            out.push(Output::Serving(Serving::Looking));
        }
        // As a restart would (and ZooKeeper's `zkDb.clear()` on leaving a role): the tree is the
        // whole log again, proposals never committed included; synchronisation with the next
        // leader keeps or cuts them (DIFF or TRUNC) from there.
        for z in self.s.log.range(self.s.applied, self.s.last_logged()) {
            self.s.apply(z, out);
        }
        let eo = self
            .election
            .look_for_leader(now, self.s.last_logged(), self.s.current_epoch);
        self.election_outputs(now, eo, out);
    }

    fn election_outputs(&mut self, now: u64, eo: Vec<election::Output>, out: &mut Vec<Output>) {
        for o in eo {
            match o {
                election::Output::Broadcast(notification) => out.push(Output::Notify {
                    to: None,
                    notification,
                }),
                election::Output::Send { to, notification } => out.push(Output::Notify {
                    to: Some(to),
                    notification,
                }),
                election::Output::Decided { state, vote, .. } => {
                    self.role = match state {
                        PeerState::Leading => Role::Leading(Box::new(Leading::new(&self.s, now))),
                        _ => {
                            Role::Learning(Box::new(Learning::new(&self.s, vote.leader, now, out)))
                        }
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: u32, counter: u32) -> Zxid {
        (i64::from(epoch) << 32) | i64::from(counter)
    }

    /// A server that recovered epoch 1's txns 1..=10 and epoch 2's 1..=5 (all applied).
    fn recovered() -> Peer {
        let log = History::from_zxids((1..=10).map(|c| z(1, c)).chain((1..=5).map(|c| z(2, c))));
        Peer::new(
            PeerConfig::new(1, [1, 2, 3], []),
            Recovered {
                accepted_epoch: 2,
                current_epoch: 2,
                log,
            },
        )
    }

    #[test]
    fn the_retention_floor_counts_txns_back_across_epochs() {
        let p = recovered();
        assert_eq!(p.retention_floor(0), z(2, 5));
        assert_eq!(p.retention_floor(4), z(2, 1));
        assert_eq!(p.retention_floor(7), z(1, 8));
        // More than it holds: its first txn (nothing below it to purge).
        assert_eq!(p.retention_floor(1_000), z(1, 1));
    }

    #[test]
    fn forgetting_stops_at_the_applied_txn_and_keeps_the_last() {
        let mut p = recovered();
        assert_eq!(p.forget_through(z(1, 7)), z(1, 7));
        assert_eq!(p.retention_floor(1_000), z(1, 8));
        // Past what is applied (here: everything logged): only up to it, and the last stays.
        assert_eq!(p.forget_through(z(3, 0)), z(2, 5));
        assert_eq!(p.last_logged(), z(2, 5));
        assert_eq!(p.retention_floor(1_000), z(2, 5));
    }
}
