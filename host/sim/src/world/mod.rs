//! The simulated world: the event queue, the servers' hosts (executing each peer's outputs), the
//! network, the disks and the faults. Everything random comes from the one seeded RNG, and
//! events at the same instant run in the order they were scheduled.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wazoo_zab::election::Notification;
use wazoo_zab::peer::{Input, Output, Packet, Peer, PeerConfig, Serving, StoreOp};
use wazoo_zab::{Sid, Zxid};

use crate::check::{Checker, Payload, Violation};
use crate::{Failure, Report, SimConfig};

mod disk;
mod faults;
mod net;
mod script;

type ConnId = u64;

#[derive(Clone, Debug)]
enum Event {
    Wake {
        node: usize,
        inc: u64,
    },
    StoreDone {
        node: usize,
        inc: u64,
    },
    Election {
        to: usize,
        n: Notification,
    },
    ConnOpen {
        conn: ConnId,
    },
    Deliver {
        conn: ConnId,
        dir: usize,
    },
    LinkDown {
        node: usize,
        inc: u64,
        peer: Sid,
        conn: ConnId,
    },
    ClientWrite,
    Fault,
    Unblock {
        pairs: Vec<(Sid, Sid)>,
    },
    Unclog {
        node: usize,
        ms: u64,
    },
    Restart {
        node: usize,
    },
}

/// A packet's payload, attached by the sender's host.
#[derive(Clone, Debug)]
enum Blob {
    None,
    Txn(Payload),
    Snap(Vec<(Zxid, Payload)>),
}

/// A quorum link: FIFO in each direction, like a TCP connection.
#[derive(Debug)]
struct Conn {
    /// (learner, leader), and the incarnation each end had when it opened.
    ends: [usize; 2],
    incs: [u64; 2],
    open: bool,
    queues: [VecDeque<(u64, Packet, Blob)>; 2],
    last_ready: [u64; 2],
}

/// A durable write in flight.
#[derive(Debug)]
enum Pending {
    Op(StoreOp),
    Append(Zxid, Payload),
    Snapshot(Zxid, Vec<(Zxid, Payload)>),
}

#[derive(Debug, Default)]
struct Disk {
    accepted: u64,
    current: u64,
    log: Vec<(Zxid, Payload)>,
}

/// One server and its host.
struct Node {
    sid: Sid,
    peer: Option<Peer>,
    /// Bumped at every crash: events of an earlier life are dropped.
    inc: u64,
    disk: Disk,
    /// The log as asked for (the disk's plus what is in flight).
    log: Vec<(Zxid, Payload)>,
    tree: Vec<(Zxid, Payload)>,
    stash: BTreeMap<Zxid, Payload>,
    snaps: BTreeMap<Zxid, Vec<(Zxid, Payload)>>,
    queue: VecDeque<Pending>,
    disk_free_at: u64,
    links: BTreeMap<Sid, ConnId>,
    /// This server's clock runs ahead of the simulation's by this much.
    offset: u64,
    wake_at: Option<u64>,
    serving: Serving,
    /// Client writes that started here and are not answered yet (a write's payload is its id).
    pending: BTreeSet<Payload>,
    /// Client syncs here not answered yet: id -> the highest acknowledged zxid when it was issued.
    syncs: BTreeMap<u64, Zxid>,
    /// Txns up to this zxid left the DIFF window ([`SimConfig::diff_window`]): the peer was
    /// told to forget them, and they must never be sent.
    forgot: Zxid,
}

pub struct Sim {
    seed: u64,
    cfg: SimConfig,
    rng: StdRng,
    now: u64,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, usize)>>,
    payloads: BTreeMap<usize, Event>,
    nodes: Vec<Node>,
    voters: BTreeSet<Sid>,
    observers: BTreeSet<Sid>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    blocked: BTreeSet<(Sid, Sid)>,
    slow: BTreeMap<usize, u64>,
    /// A stalled disk completes nothing before this time.
    disk_stalled_until: BTreeMap<usize, u64>,
    chaos: bool,
    next_payload: Payload,
    check: Checker,
    report: Report,
    trace: VecDeque<String>,
    /// Scripted runs: every packet delivered (pings aside), for scenarios to wait on.
    delivered: Option<Vec<(Sid, Sid, Packet)>>,
}

const TRACE: usize = 400;

impl Sim {
    pub fn new(seed: u64, cfg: SimConfig) -> Sim {
        let voters: BTreeSet<Sid> = (1..=cfg.voters as Sid).collect();
        let observers: BTreeSet<Sid> =
            (cfg.voters as Sid + 1..=(cfg.voters + cfg.observers) as Sid).collect();
        let nodes = voters
            .iter()
            .chain(&observers)
            .map(|&sid| Node {
                sid,
                peer: None,
                inc: 0,
                disk: Disk::default(),
                log: Vec::new(),
                tree: Vec::new(),
                stash: BTreeMap::new(),
                snaps: BTreeMap::new(),
                forgot: 0,
                queue: VecDeque::new(),
                disk_free_at: 0,
                links: BTreeMap::new(),
                offset: 0,
                wake_at: None,
                serving: Serving::Looking,
                pending: BTreeSet::new(),
                syncs: BTreeMap::new(),
            })
            .collect();
        Sim {
            seed,
            cfg,
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            payloads: BTreeMap::new(),
            nodes,
            voters,
            observers,
            conns: BTreeMap::new(),
            next_conn: 1,
            blocked: BTreeSet::new(),
            slow: BTreeMap::new(),
            disk_stalled_until: BTreeMap::new(),
            chaos: true,
            next_payload: 1,
            check: Checker::default(),
            report: Report::default(),
            trace: VecDeque::new(),
            delivered: None,
        }
    }

    fn peer_config(&self, sid: Sid) -> PeerConfig {
        let mut c = PeerConfig::new(
            sid,
            self.voters.iter().copied(),
            self.observers.iter().copied(),
        );
        c.tick_ms = self.cfg.tick_ms;
        c.init_limit_ms = self.cfg.init_limit_ms;
        c.sync_limit_ms = self.cfg.sync_limit_ms;
        c.election.min_notification_interval_ms = 50;
        c.election.max_notification_interval_ms = 800;
        c.election.finalize_wait_ms = 50;
        c
    }

    fn schedule(&mut self, at: u64, e: Event) {
        self.seq += 1;
        let key = self.seq as usize;
        self.payloads.insert(key, e);
        self.events.push(Reverse((at.max(self.now), self.seq, key)));
    }

    fn fail(&self, violation: Violation) -> Failure {
        Failure {
            seed: self.seed,
            at_ms: self.now,
            violation,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn note(&mut self, s: impl FnOnce() -> String) {
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        let line = format!("{:>7} {}", self.now, s());
        self.trace.push_back(line);
    }

    fn idx(&self, sid: Sid) -> usize {
        (sid - 1) as usize
    }

    /// Runs the chaos phase, heals, and checks convergence.
    pub fn run(mut self) -> Result<Report, Failure> {
        for i in 0..self.nodes.len() {
            self.restart(i).map_err(|v| self.fail(v))?;
        }
        self.schedule(1, Event::ClientWrite);
        let first_fault = self.rng.random_range(0..self.cfg.fault_every_ms * 2);
        self.schedule(first_fault, Event::Fault);
        let chaos_end = self.cfg.chaos_ms;
        self.run_until(chaos_end).map_err(|v| self.fail(v))?;
        self.heal();
        let deadline = self.now + self.cfg.converge_ms;
        let healed_at = self.now;
        loop {
            let step_to = self.now + 50;
            self.run_until(step_to).map_err(|v| self.fail(v))?;
            if let Some(leader) = self.converged() {
                if self.report.converge_ms == 0 {
                    self.report.converge_ms = (self.now - healed_at).max(1);
                    self.fresh_write(leader, deadline)
                        .map_err(|v| self.fail(v))?;
                    continue; // and converge again, with the fresh write everywhere
                }
                break;
            }
            if self.now >= deadline {
                let states: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| {
                        format!(
                            "{}:{:?}@{:#x} (disk queue {}, free at {})",
                            n.sid,
                            n.serving,
                            n.tree.last().map_or(0, |t| t.0),
                            n.queue.len(),
                            n.disk_free_at
                        )
                    })
                    .collect();
                return Err(self.fail(Violation::Liveness(format!(
                    "not converged {} ms after healing: {}",
                    self.cfg.converge_ms,
                    states.join(" ")
                ))));
            }
        }
        for n in &self.nodes {
            self.check
                .has_acked(n.sid, &n.tree)
                .map_err(|v| self.fail(v))?;
        }
        self.report.writes_acked = self.check.acked.len() as u64;
        self.report.leaders_established = self.check.established;
        Ok(self.report)
    }

    fn run_until(&mut self, until: u64) -> Result<(), Violation> {
        while self.next_event_at().is_some_and(|at| at <= until) {
            self.run_one()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    fn next_event_at(&self) -> Option<u64> {
        self.events.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Runs the next event.
    fn run_one(&mut self) -> Result<(), Violation> {
        let Some(Reverse((at, _, key))) = self.events.pop() else {
            return Ok(());
        };
        self.now = at;
        let e = self.payloads.remove(&key).expect("scheduled event");
        self.report.events += 1;
        self.event(e)
    }

    /// Every fault healed, every crashed server restarted; no more faults.
    fn heal(&mut self) {
        self.chaos = false;
        self.blocked.clear();
        self.slow.clear();
        self.disk_stalled_until.clear();
        for i in 0..self.nodes.len() {
            if self.nodes[i].peer.is_none() {
                self.schedule(self.now, Event::Restart { node: i });
            }
        }
    }

    /// The leader's index once every server serves it in one epoch with the same tree.
    fn converged(&self) -> Option<usize> {
        let leader = self
            .nodes
            .iter()
            .position(|n| matches!(n.serving, Serving::Leading { .. }))?;
        let Serving::Leading { epoch } = self.nodes[leader].serving else {
            return None;
        };
        let lsid = self.nodes[leader].sid;
        let all = self.nodes.iter().all(|n| {
            n.peer.is_some()
                && n.tree == self.nodes[leader].tree
                && match n.serving {
                    Serving::Leading { .. } => n.sid == lsid,
                    Serving::Following { leader, epoch: e }
                    | Serving::Observing { leader, epoch: e } => leader == lsid && e == epoch,
                    Serving::Looking => false,
                }
        });
        all.then_some(leader)
    }

    /// After convergence a new write is acknowledged within the bound.
    fn fresh_write(&mut self, leader: usize, deadline: u64) -> Result<(), Violation> {
        let before = self.check.acked.len();
        self.client_write(leader)?;
        while self.check.acked.len() == before {
            if self.now >= deadline + 5_000 {
                return Err(Violation::Liveness(
                    "a fresh write was not acknowledged".into(),
                ));
            }
            let to = self.now + 10;
            self.run_until(to)?;
        }
        Ok(())
    }

    /// A client write reaches server `i` (its id, and payload, fresh).
    fn client_write(&mut self, i: usize) -> Result<(), Violation> {
        let id = self.next_payload;
        self.next_payload += 1;
        self.nodes[i].pending.insert(id);
        self.step(i, Input::Write { id })
    }

    /// A client `sync` reaches server `i`; when it completes, every write acknowledged before now
    /// must be readable there.
    fn client_sync(&mut self, i: usize) -> Result<(), Violation> {
        let id = self.next_payload;
        self.next_payload += 1;
        let upto = self.check.acked.keys().next_back().copied().unwrap_or(0);
        self.nodes[i].syncs.insert(id, upto);
        self.step(i, Input::Sync { id })
    }

    fn event(&mut self, e: Event) -> Result<(), Violation> {
        match e {
            Event::Wake { node, inc } => {
                let n = &mut self.nodes[node];
                if n.inc == inc && n.wake_at == Some(self.now) {
                    n.wake_at = None;
                    self.step(node, Input::Timeout)?;
                }
            }
            Event::StoreDone { node, inc } => {
                if self.nodes[node].inc == inc {
                    self.store_done(node)?;
                }
            }
            Event::Election { to, n } => {
                let from = n.from;
                let tsid = self.nodes[to].sid;
                if !self.blocked.contains(&(from, tsid)) {
                    self.note(|| format!("{tsid} <- {from} vote {:?}", n.vote));
                    self.step(to, Input::Notification(n))?;
                }
            }
            Event::ConnOpen { conn } => self.conn_open(conn)?,
            Event::Deliver { conn, dir } => self.deliver(conn, dir)?,
            Event::LinkDown {
                node,
                inc,
                peer,
                conn,
            } => {
                let n = &mut self.nodes[node];
                if n.inc == inc && n.links.get(&peer) == Some(&conn) {
                    n.links.remove(&peer);
                    let sid = n.sid;
                    self.note(|| format!("{sid} link to {peer} down"));
                    self.step(node, Input::Disconnected(peer))?;
                }
            }
            Event::ClientWrite => {
                let ups: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| self.nodes[i].peer.is_some())
                    .collect();
                if !ups.is_empty() {
                    let i = ups[self.rng.random_range(0..ups.len())];
                    // One request in four is a sync; the rest are writes.
                    if self.rng.random_range(0..4) == 0 {
                        self.client_sync(i)?;
                    } else {
                        self.client_write(i)?;
                    }
                }
                if self.chaos {
                    let gap = self.rng.random_range(1..=self.cfg.write_every_ms * 2);
                    self.schedule(self.now + gap, Event::ClientWrite);
                }
            }
            Event::Fault => {
                if self.chaos {
                    self.fault()?;
                    let gap = self.rng.random_range(1..=self.cfg.fault_every_ms * 2);
                    self.schedule(self.now + gap, Event::Fault);
                }
            }
            Event::Unblock { pairs } => {
                for p in pairs {
                    self.blocked.remove(&p);
                }
            }
            Event::Unclog { node, ms } => {
                if let Some(s) = self.slow.get_mut(&node) {
                    *s = s.saturating_sub(ms);
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].peer.is_none() {
                    self.restart(node)?;
                }
            }
        }
        Ok(())
    }

    fn rewake(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let Some(p) = n.peer.as_ref() else { return };
        let want = p
            .next_wake()
            .map(|w| w.saturating_sub(n.offset).max(self.now));
        if want != n.wake_at {
            n.wake_at = want;
            if let Some(at) = want {
                let inc = n.inc;
                self.schedule(at, Event::Wake { node: i, inc });
            }
        }
    }

    fn step(&mut self, i: usize, input: Input) -> Result<(), Violation> {
        let local = self.now + self.nodes[i].offset;
        let Some(p) = self.nodes[i].peer.as_mut() else {
            return Ok(());
        };
        let outs = p.step(local, input);
        for o in outs {
            self.execute(i, o)?;
            if self.nodes[i].peer.is_none() {
                break;
            }
        }
        self.rewake(i);
        Ok(())
    }

    fn execute(&mut self, i: usize, o: Output) -> Result<(), Violation> {
        let sid = self.nodes[i].sid;
        match o {
            Output::Notify { to, notification } => {
                let targets: Vec<Sid> = match to {
                    Some(t) => vec![t],
                    None => self.voters.iter().copied().filter(|&v| v != sid).collect(),
                };
                for t in targets {
                    let loss = if self.chaos {
                        self.cfg.election_loss
                    } else {
                        0.0
                    };
                    let dup = if self.chaos {
                        self.cfg.election_dup
                    } else {
                        0.0
                    };
                    if self.rng.random_bool(loss) {
                        continue;
                    }
                    let to = self.idx(t);
                    let copies = if self.rng.random_bool(dup) { 2 } else { 1 };
                    for _ in 0..copies {
                        let at = self.now + self.delay(i);
                        self.schedule(
                            at,
                            Event::Election {
                                to,
                                n: notification,
                            },
                        );
                    }
                }
            }
            Output::Connect(leader) => {
                let id = self.next_conn;
                self.next_conn += 1;
                let l = self.idx(leader);
                self.conns.insert(
                    id,
                    Conn {
                        ends: [i, l],
                        incs: [self.nodes[i].inc, self.nodes[l].inc],
                        open: true,
                        queues: Default::default(),
                        last_ready: [0, 0],
                    },
                );
                if let Some(old) = self.nodes[i].links.insert(leader, id) {
                    self.close(old, false);
                }
                let at = self.now + self.delay(i);
                self.schedule(at, Event::ConnOpen { conn: id });
            }
            Output::Disconnect(peer) => {
                if let Some(c) = self.nodes[i].links.remove(&peer) {
                    self.note(|| format!("{sid} closes link to {peer}"));
                    self.close(c, true);
                }
            }
            Output::Send { to, packet } => self.send(i, to, packet)?,
            Output::Store(op) => self.store(i, op)?,
            Output::Apply(z) => self.apply(i, z)?,
            Output::Proposed { zxid, id, .. } => {
                // The payload of a write is its id (ids are unique over the whole run).
                self.nodes[i].stash.insert(zxid, id);
            }
            Output::WriteRefused { id } => {
                self.nodes[i].pending.remove(&id);
            }
            Output::SyncReached { id } => {
                if let Some(upto) = self.nodes[i].syncs.remove(&id) {
                    self.check.synced(sid, &self.nodes[i].tree, upto)?;
                    self.report.syncs_completed += 1;
                }
            }
            Output::SyncRefused { id } => {
                self.nodes[i].syncs.remove(&id);
            }
            Output::Serving(s) => {
                self.note(|| format!("{sid} serving {s:?}"));
                let n = &mut self.nodes[i];
                n.serving = s;
                // A role change closes the clients' connections: their requests are lost, not
                // answered.
                n.pending.clear();
                n.syncs.clear();
                match s {
                    Serving::Leading { epoch } => {
                        self.check.established(sid, epoch)?;
                        self.check.start_serving(sid, &self.nodes[i].tree)?;
                    }
                    Serving::Following { .. } | Serving::Observing { .. } => {
                        self.check.start_serving(sid, &self.nodes[i].tree)?;
                    }
                    Serving::Looking => {}
                }
            }
        }
        Ok(())
    }
}

impl Sim {
    /// Keeps server `i`'s DIFF window: its peer forgets the log entries before the last
    /// [`SimConfig::diff_window`] ones, as the server's does when its window drops them.
    pub(super) fn keep_window(&mut self, i: usize) {
        let Some(w) = self.cfg.diff_window else {
            return;
        };
        let n = &mut self.nodes[i];
        if n.log.len() <= w {
            return;
        }
        let z = n.log[n.log.len() - w - 1].0;
        if z > n.forgot {
            if let Some(p) = n.peer.as_mut() {
                n.forgot = n.forgot.max(p.forget_through(z));
            }
        }
    }
}

fn lookup(log: &[(Zxid, Payload)], z: Zxid) -> Option<Payload> {
    log.binary_search_by_key(&z, |t| t.0).ok().map(|k| log[k].1)
}
