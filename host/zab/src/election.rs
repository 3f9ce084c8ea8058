//! Fast Leader Election (ZooKeeper's electionAlg 3, `FastLeaderElection.lookForLeader` and its
//! `WorkerReceiver`), as a pure state machine: zab-reference.md §2.
//!
//! A server in LOOKING proposes a vote, broadcasts it, adopts any better vote it hears in its
//! round (votes are ordered by the proposed leader's currentEpoch, then last zxid, then sid),
//! and decides once a majority of voters holds its proposal and no better vote arrives for
//! `finalize_wait_ms`. A server that finds the others already FOLLOWING or LEADING joins them,
//! provided the leader itself says LEADING (`checkLeader`: never elect a crashed leader that
//! others still report). Observers never count and are never elected; they learn the leader from
//! the voters' answers. FLE only promises liveness: discovery, which comes next, makes it safe.
//!
//! Inputs: [`Election::look_for_leader`], [`Election::on_notification`],
//! [`Election::on_timeout`], each with the time in ms. Outputs: [`Output`]s, and
//! [`Election::next_wake`] (when to call `on_timeout`).

use std::collections::{BTreeMap, BTreeSet};

use crate::{Sid, Zxid};

/// A server's election state (the `state` field of a notification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// A vote: who should lead, and the proposed leader's (currentEpoch, last zxid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub leader: Sid,
    pub zxid: Zxid,
    pub peer_epoch: u64,
}

impl Vote {
    /// ZooKeeper's `totalOrderPredicate(new = self, current = other)`: `self` is better when its
    /// (peerEpoch, zxid, leader) is lexicographically greater.
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// A notification on the election port (zab-reference.md §2.2): the sender's state, its vote,
/// and the round (`electionEpoch`) it is in, or that its decided vote was formed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    pub from: Sid,
    pub state: PeerState,
    pub vote: Vote,
    pub round: u64,
}

/// What the runtime (or the simulator) must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send to every other voter.
    Broadcast(Notification),
    /// Send to one server (an answer).
    Send { to: Sid, notification: Notification },
    /// The election is over: LEADING (the vote is this server's own), FOLLOWING or OBSERVING.
    Decided {
        state: PeerState,
        vote: Vote,
        round: u64,
    },
}

/// The ensemble as the election sees it, and its timing.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    pub me: Sid,
    /// The participants (`server.N=...:participant`); observers are not in it.
    pub voters: BTreeSet<Sid>,
    /// `minNotificationInterval`: the first wait before notifications are sent again (200 ms).
    pub min_notification_interval_ms: u64,
    /// `maxNotificationInterval`: the wait doubles up to this (60 s).
    pub max_notification_interval_ms: u64,
    /// `finalizeWait`: how long a quorum for the proposal must hear no better vote (200 ms).
    pub finalize_wait_ms: u64,
}

impl ElectionConfig {
    /// ZooKeeper's timing for server `me` among `voters`.
    pub fn new(me: Sid, voters: impl IntoIterator<Item = Sid>) -> ElectionConfig {
        ElectionConfig {
            me,
            voters: voters.into_iter().collect(),
            min_notification_interval_ms: 200,
            max_notification_interval_ms: 60_000,
            finalize_wait_ms: 200,
        }
    }
}

/// A vote as received, with the round and state it came with.
#[derive(Clone, Copy, Debug)]
struct Received {
    vote: Vote,
    round: u64,
    state: PeerState,
}

/// One server's Fast Leader Election.
#[derive(Debug)]
pub struct Election {
    cfg: ElectionConfig,
    state: PeerState,
    /// `logicalclock`: this server's round.
    logical_clock: u64,
    /// The vote this server started the round with (its own, or the minimum for an observer).
    initial: Vote,
    proposal: Vote,
    /// LOOKING votes of this round, and FOLLOWING/LEADING ones of this round (`recvset`).
    recv_set: BTreeMap<Sid, Received>,
    /// FOLLOWING/LEADING votes of other rounds (`outofelection`).
    out_of_election: BTreeMap<Sid, Received>,
    /// A quorum holds the proposal: decide at this time unless a better vote arrives.
    finalize_at: Option<u64>,
    /// The current wait between re-sends, and when the next one is due.
    not_timeout: u64,
    resend_at: u64,
    /// The decided vote and its round, while not LOOKING.
    decided: Option<(Vote, u64)>,
}

impl Election {
    /// A server that has not started looking yet (it answers as LOOKING with its initial vote
    /// once [`look_for_leader`](Self::look_for_leader) is called).
    pub fn new(cfg: ElectionConfig) -> Election {
        let not_timeout = cfg.min_notification_interval_ms;
        let none = Vote {
            leader: cfg.me,
            zxid: Zxid::MIN,
            peer_epoch: 0,
        };
        Election {
            cfg,
            state: PeerState::Looking,
            logical_clock: 0,
            initial: none,
            proposal: none,
            recv_set: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            finalize_at: None,
            not_timeout,
            resend_at: u64::MAX,
            decided: None,
        }
    }

    pub fn state(&self) -> PeerState {
        self.state
    }

    /// `logicalclock`.
    pub fn round(&self) -> u64 {
        self.logical_clock
    }

    /// The vote this server reports: its proposal while LOOKING, the decided one after.
    pub fn current_vote(&self) -> Vote {
        self.decided.map_or(self.proposal, |(v, _)| v)
    }

    fn is_voter(&self, sid: Sid) -> bool {
        self.cfg.voters.contains(&sid)
    }

    fn am_voter(&self) -> bool {
        self.is_voter(self.cfg.me)
    }

    /// Starts a round (`lookForLeader`): this server's last logged zxid and currentEpoch make its
    /// initial vote (an observer's never wins: it proposes the minimum and adopts any voter's).
    pub fn look_for_leader(
        &mut self,
        now: u64,
        last_zxid: Zxid,
        current_epoch: u64,
    ) -> Vec<Output> {
        self.state = PeerState::Looking;
        self.decided = None;
        self.logical_clock += 1;
        self.initial = if self.am_voter() {
            Vote {
                leader: self.cfg.me,
                zxid: last_zxid,
                peer_epoch: current_epoch,
            }
        } else {
            Vote {
                leader: self.cfg.me,
                zxid: Zxid::MIN,
                peer_epoch: 0,
            }
        };
        self.proposal = self.initial;
        self.recv_set.clear();
        self.out_of_election.clear();
        self.finalize_at = None;
        self.not_timeout = self.cfg.min_notification_interval_ms;
        self.resend_at = now + self.not_timeout;
        let mut out = Vec::new();
        self.broadcast_proposal(&mut out);
        out
    }

    /// The epoch this server now serves in becomes its decided vote's peerEpoch, so that every
    /// member reports the same (leader, peerEpoch) to a server that starts looking
    /// (ZOOKEEPER-1732: otherwise votes decided in different rounds disagree and it never joins).
    pub fn update_vote_epoch(&mut self, epoch: u64) {
        if let Some((vote, _)) = self.decided.as_mut() {
            vote.peer_epoch = epoch;
        }
    }

    /// When [`on_timeout`](Self::on_timeout) is next due, while LOOKING.
    pub fn next_wake(&self) -> Option<u64> {
        if self.state != PeerState::Looking || self.logical_clock == 0 {
            return None;
        }
        Some(self.finalize_at.unwrap_or(self.resend_at))
    }

    /// Time passed: decide after a quiet finalize wait, or send the proposal again (the wait
    /// doubling up to `max_notification_interval_ms`).
    pub fn on_timeout(&mut self, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state != PeerState::Looking || self.logical_clock == 0 {
            return out;
        }
        if let Some(f) = self.finalize_at {
            // Finalizing: nothing is re-sent (`lookForLeader` polls only for a better vote).
            if now >= f {
                self.decide(self.proposal, self.logical_clock, &mut out);
            }
            return out;
        }
        if now >= self.resend_at {
            self.broadcast_proposal(&mut out);
            self.not_timeout = (self.not_timeout * 2).min(self.cfg.max_notification_interval_ms);
            self.resend_at = now + self.not_timeout;
        }
        out
    }

    /// A notification arrived.
    pub fn on_notification(&mut self, now: u64, n: Notification) -> Vec<Output> {
        let mut out = Vec::new();
        // WorkerReceiver (zab-reference.md §2.7): a non-voter (an observer) gets this server's
        // current vote and state at once, and is not counted.
        if !self.is_voter(n.from) {
            out.push(self.answer(n.from));
            return out;
        }
        if self.state != PeerState::Looking {
            if n.state == PeerState::Looking {
                out.push(self.answer(n.from));
            }
            return out;
        }
        if self.logical_clock == 0 {
            return out; // not looking yet
        }
        // The proposal is re-sent only after `not_timeout` without any notification, as
        // `recvqueue.poll(notTimeout)` does: re-sending on a fixed beat lands a stale copy in the
        // others' finalize wait and restarts it (measured: half the failovers took 400 ms, not 200).
        self.resend_at = now + self.not_timeout;
        // A vote for a non-voter (an observer's) has no weight.
        if !self.is_voter(n.vote.leader) {
            return out;
        }
        match n.state {
            PeerState::Looking => self.on_looking(now, n, &mut out),
            PeerState::Observing => {}
            PeerState::Following | PeerState::Leading => self.on_decided_peer(n, &mut out),
        }
        out
    }

    fn on_looking(&mut self, now: u64, n: Notification, out: &mut Vec<Output>) {
        if n.round < self.logical_clock {
            // The receiver thread answers a stale round with this server's proposal.
            out.push(self.answer(n.from));
            return;
        }
        if self.finalize_at.is_some() {
            // Finalizing: only a better vote interrupts; anything else is dropped. ZooKeeper's
            // `recvqueue.poll(finalizeWait)` loop also restarts the wait on each dropped one,
            // which carries no information: a copy of an agreeing vote (an answer to an older
            // round, a re-send) then delayed the decision by a whole finalizeWait (measured: a
            // third of the failovers took 450 ms instead of 230).
            if n.round == self.logical_clock && !n.vote.beats(&self.proposal) {
                return;
            }
            self.finalize_at = None;
        }
        if n.round == self.logical_clock && self.proposal.beats(&n.vote) {
            // The sender proposes a worse vote in this round: tell it ours now. ZooKeeper only
            // answers older rounds, so a server that missed the better vote (it was still
            // FOLLOWING when it arrived, and only answered it) waited for a re-send after a
            // whole notification interval (measured: failovers of 640 ms instead of 240).
            out.push(self.answer(n.from));
        }
        if n.round > self.logical_clock {
            self.logical_clock = n.round;
            self.recv_set.clear();
            self.proposal = if n.vote.beats(&self.initial) {
                n.vote
            } else {
                self.initial
            };
            self.broadcast_proposal(out);
        } else if n.vote.beats(&self.proposal) {
            self.proposal = n.vote;
            self.broadcast_proposal(out);
        }
        self.recv_set.insert(
            n.from,
            Received {
                vote: n.vote,
                round: n.round,
                state: n.state,
            },
        );
        let proposal = self.proposal;
        let round = self.logical_clock;
        let holders = self
            .recv_set
            .values()
            .filter(|r| r.state == PeerState::Looking && r.round == round && r.vote == proposal);
        if self.is_quorum(holders.count()) {
            self.finalize_at = Some(now + self.cfg.finalize_wait_ms);
        }
    }

    fn on_decided_peer(&mut self, n: Notification, out: &mut Vec<Output>) {
        let received = Received {
            vote: n.vote,
            round: n.round,
            state: n.state,
        };
        if n.round == self.logical_clock {
            self.recv_set.insert(n.from, received);
            if self.quorum_follows(&self.recv_set, &n.vote)
                && self.check_leader(&self.recv_set, n.vote.leader, n.round)
            {
                self.decide(n.vote, n.round, out);
                return;
            }
        }
        // How a restarted server joins an established ensemble: a quorum already follows a
        // leader that says LEADING, in whatever round they decided.
        self.out_of_election.insert(n.from, received);
        if self.quorum_follows(&self.out_of_election, &n.vote)
            && self.check_leader(&self.out_of_election, n.vote.leader, n.round)
        {
            self.logical_clock = n.round;
            self.decide(n.vote, n.round, out);
        }
    }

    /// Voters in `votes` for `vote` form a quorum; decided votes agree on (leader, peerEpoch).
    fn quorum_follows(&self, votes: &BTreeMap<Sid, Received>, vote: &Vote) -> bool {
        let agree = votes
            .values()
            .filter(|r| r.vote.leader == vote.leader && r.vote.peer_epoch == vote.peer_epoch);
        self.is_quorum(agree.count())
    }

    /// `checkLeader`: another server may be followed only if it says LEADING itself; this server
    /// may lead only in its own round.
    fn check_leader(&self, votes: &BTreeMap<Sid, Received>, leader: Sid, round: u64) -> bool {
        if leader != self.cfg.me {
            votes
                .get(&leader)
                .is_some_and(|r| r.state == PeerState::Leading)
        } else {
            round == self.logical_clock
        }
    }

    fn is_quorum(&self, count: usize) -> bool {
        count > self.cfg.voters.len() / 2
    }

    fn decide(&mut self, vote: Vote, round: u64, out: &mut Vec<Output>) {
        self.state = if vote.leader == self.cfg.me {
            PeerState::Leading
        } else if self.am_voter() {
            PeerState::Following
        } else {
            PeerState::Observing
        };
        self.decided = Some((vote, round));
        self.finalize_at = None;
        self.recv_set.clear();
        self.out_of_election.clear();
        out.push(Output::Decided {
            state: self.state,
            vote,
            round,
        });
    }

    fn notification(&self) -> Notification {
        let (vote, round) = self.decided.unwrap_or((self.proposal, self.logical_clock));
        Notification {
            from: self.cfg.me,
            state: self.state,
            vote,
            round,
        }
    }

    fn answer(&self, to: Sid) -> Output {
        Output::Send {
            to,
            notification: self.notification(),
        }
    }

    /// Sends the proposal to the other voters, and counts it as this server's own vote (ZooKeeper
    /// sends it to itself through the loopback).
    fn broadcast_proposal(&mut self, out: &mut Vec<Output>) {
        if self.am_voter() {
            self.recv_set.insert(
                self.cfg.me,
                Received {
                    vote: self.proposal,
                    round: self.logical_clock,
                    state: PeerState::Looking,
                },
            );
        }
        out.push(Output::Broadcast(self.notification()));
    }
}

#[cfg(test)]
#[path = "election_test.rs"]
mod tests;
