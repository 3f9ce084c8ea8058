//! The simulated world: the event queue, the servers' hosts (executing each peer's outputs), the
//! network, the disks and the faults. Everything random comes from the one seeded RNG, and
//! events at the same instant run in the order they were scheduled.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wazoo_zab::election::Notification;
use wazoo_zab::history::History;
use wazoo_zab::peer::{Input, Output, Packet, Peer, PeerConfig, Recovered, Serving, StoreOp};
use wazoo_zab::{Sid, Zxid};

use crate::check::{Checker, Payload, Violation};
use crate::{Failure, Report, SimConfig};

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
    /// Client writes this server proposed as leader, by zxid.
    writes: BTreeMap<Zxid, Payload>,
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
                queue: VecDeque::new(),
                disk_free_at: 0,
                links: BTreeMap::new(),
                offset: 0,
                wake_at: None,
                serving: Serving::Looking,
                writes: BTreeMap::new(),
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
        while let Some(&Reverse((at, _, key))) = self.events.peek() {
            if at > until {
                break;
            }
            self.events.pop();
            self.now = at;
            let e = self.payloads.remove(&key).expect("scheduled event");
            self.report.events += 1;
            self.event(e)?;
        }
        self.now = self.now.max(until);
        Ok(())
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
        self.step(leader, Input::Write)?;
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

    fn delay(&mut self, node: usize) -> u64 {
        self.rng.random_range(1..8) + self.slow.get(&node).copied().unwrap_or(0)
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
                    self.step(i, Input::Write)?;
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

    fn bump(&mut self, kind: &'static str) {
        *self.report.faults.entry(kind).or_default() += 1;
    }

    fn fault(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        let sids: Vec<Sid> = self.nodes.iter().map(|n| n.sid).collect();
        let dur = self.rng.random_range(100..3_000);
        match self.rng.random_range(0..10) {
            0 => {
                // Isolate one server.
                let x = sids[self.rng.random_range(0..n)];
                let pairs: Vec<(Sid, Sid)> = sids
                    .iter()
                    .filter(|&&s| s != x)
                    .flat_map(|&s| [(s, x), (x, s)])
                    .collect();
                self.block(pairs, dur, "partition: isolate one");
            }
            1 => {
                // A symmetric split into a minority and the rest.
                let k = self.rng.random_range(1..=n / 2);
                let mut side = sids.clone();
                for i in 0..k {
                    let j = self.rng.random_range(i..n);
                    side.swap(i, j);
                }
                let (a, b) = side.split_at(k);
                let pairs: Vec<(Sid, Sid)> = a
                    .iter()
                    .flat_map(|&x| b.iter().flat_map(move |&y| [(x, y), (y, x)]))
                    .collect();
                self.block(pairs, dur, "partition: symmetric split");
            }
            2 => {
                let x = sids[self.rng.random_range(0..n)];
                let y = sids[self.rng.random_range(0..n)];
                if x != y {
                    self.block(vec![(x, y)], dur, "partition: asymmetric");
                }
            }
            3 => {
                let i = self.rng.random_range(0..n);
                if self.nodes[i].peer.is_some() {
                    self.bump("crash and restart");
                    self.crash(i);
                    let back = self.rng.random_range(50..2_000);
                    self.schedule(self.now + back, Event::Restart { node: i });
                }
            }
            4 => {
                // Crash the leader, when there is one.
                if let Some(i) = self
                    .nodes
                    .iter()
                    .position(|x| matches!(x.serving, Serving::Leading { .. }))
                {
                    self.bump("crash the leader");
                    self.crash(i);
                    let back = self.rng.random_range(50..2_000);
                    self.schedule(self.now + back, Event::Restart { node: i });
                }
            }
            5 => {
                let i = self.rng.random_range(0..n);
                let ms = self.rng.random_range(20..400);
                *self.slow.entry(i).or_default() += ms;
                self.bump("clog");
                self.schedule(self.now + dur, Event::Unclog { node: i, ms });
            }
            6 => {
                let i = self.rng.random_range(0..n);
                let jump = self.rng.random_range(0..self.cfg.sync_limit_ms * 2);
                self.nodes[i].offset += jump;
                self.bump("clock jump");
                self.rewake(i);
            }
            7 => {
                // A disk stall: nothing this server writes completes until it ends (fsync
                // stalls are common), which widens every window between a write and its
                // durability.
                let i = self.rng.random_range(0..n);
                let until = self.now + self.rng.random_range(50..1_500);
                let s = self.disk_stalled_until.entry(i).or_default();
                *s = (*s).max(until);
                self.bump("disk stall");
            }
            8 => {
                // Crash a majority at once, the leader among them when there is one.
                let mut order: Vec<usize> = (0..n).collect();
                if let Some(l) = self
                    .nodes
                    .iter()
                    .position(|x| matches!(x.serving, Serving::Leading { .. }))
                {
                    order.swap(0, l);
                }
                for k in 1..n {
                    let j = self.rng.random_range(k..n);
                    order.swap(k, j);
                }
                self.bump("crash a majority");
                for &i in &order[..n / 2 + 1] {
                    if self.nodes[i].peer.is_some() {
                        self.crash(i);
                        let back = self.rng.random_range(50..2_000);
                        self.schedule(self.now + back, Event::Restart { node: i });
                    }
                }
            }
            _ => {
                // Reset one open quorum link: both ends see it drop.
                let open: Vec<ConnId> = {
                    let mut v: Vec<ConnId> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.open)
                        .map(|(&id, _)| id)
                        .collect();
                    v.sort_unstable();
                    v
                };
                if !open.is_empty() {
                    let id = open[self.rng.random_range(0..open.len())];
                    self.bump("link reset");
                    self.close(id, true);
                }
            }
        }
        Ok(())
    }

    fn block(&mut self, pairs: Vec<(Sid, Sid)>, dur: u64, kind: &'static str) {
        self.bump(kind);
        let fresh: Vec<(Sid, Sid)> = pairs
            .into_iter()
            .filter(|p| self.blocked.insert(*p))
            .collect();
        self.note(|| format!("{kind}: {fresh:?} for {dur} ms"));
        self.schedule(self.now + dur, Event::Unblock { pairs: fresh });
    }

    /// kill -9: the process and its unsynced writes are gone; the kernel resets its links.
    fn crash(&mut self, i: usize) {
        let sid = self.nodes[i].sid;
        self.note(|| format!("{sid} crashes"));
        let n = &mut self.nodes[i];
        n.peer = None;
        n.inc += 1;
        n.queue.clear();
        n.wake_at = None;
        n.serving = Serving::Looking;
        n.writes.clear();
        let links: Vec<ConnId> = std::mem::take(&mut n.links).into_values().collect();
        for c in links {
            self.close(c, true);
        }
    }

    fn restart(&mut self, i: usize) -> Result<(), Violation> {
        let cfg = self.peer_config(self.nodes[i].sid);
        let n = &mut self.nodes[i];
        n.log = n.disk.log.clone();
        n.tree = n.disk.log.clone();
        n.stash.clear();
        n.snaps.clear();
        n.links.clear();
        n.serving = Serving::Looking;
        n.disk_free_at = self.now;
        let recovered = Recovered {
            accepted_epoch: n.disk.accepted,
            current_epoch: n.disk.current,
            log: History::from_zxids(n.disk.log.iter().map(|t| t.0)),
        };
        n.peer = Some(Peer::new(cfg, recovered));
        let sid = n.sid;
        self.note(|| format!("{sid} starts"));
        self.step(i, Input::Start)
    }

    /// Closes a link; with `notify`, each live end still using it learns (a reset reaches the far
    /// end only if the network lets it through: otherwise it finds out by timeout or on its next
    /// send).
    fn close(&mut self, id: ConnId, notify: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.open {
            return;
        }
        c.open = false;
        c.queues = Default::default();
        let (ends, incs) = (c.ends, c.incs);
        if !notify {
            return;
        }
        for k in 0..2 {
            let (me, other) = (ends[k], ends[1 - k]);
            let peer = self.nodes[other].sid;
            let msid = self.nodes[me].sid;
            if self.nodes[me].inc == incs[k] && !self.blocked.contains(&(peer, msid)) {
                let at = self.now + self.delay(me);
                let inc = incs[k];
                self.schedule(
                    at,
                    Event::LinkDown {
                        node: me,
                        inc,
                        peer,
                        conn: id,
                    },
                );
            }
        }
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
            Output::Proposed(z) => {
                let p = self.next_payload;
                self.next_payload += 1;
                let n = &mut self.nodes[i];
                n.stash.insert(z, p);
                n.writes.insert(z, p);
            }
            Output::WriteRefused => {}
            Output::Serving(s) => {
                self.note(|| format!("{sid} serving {s:?}"));
                let n = &mut self.nodes[i];
                n.serving = s;
                n.writes.clear();
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

    fn send(&mut self, i: usize, to: Sid, packet: Packet) -> Result<(), Violation> {
        let Some(&id) = self.nodes[i].links.get(&to) else {
            return Ok(()); // the link is gone; the peer hears of it separately
        };
        let open = self.conns.get(&id).is_some_and(|c| c.open);
        if !open {
            // Writing to a reset connection fails at once.
            let inc = self.nodes[i].inc;
            self.schedule(
                self.now,
                Event::LinkDown {
                    node: i,
                    inc,
                    peer: to,
                    conn: id,
                },
            );
            return Ok(());
        }
        let n = &self.nodes[i];
        if let (Packet::Ack(z), true) = (packet, self.cfg.check_acks) {
            // D6 and D4: an ACK says "durable here": a proposal's is in the log on disk, the
            // NEWLEADER ACK's epoch is the currentEpoch on disk.
            let durable = if z & 0xffff_ffff == 0 {
                n.disk.current >= (z >> 32) as u64
            } else {
                n.disk.log.last().is_some_and(|t| t.0 >= z) && lookup(&n.disk.log, z).is_some()
            };
            if !durable {
                return Err(Violation::AckNotDurable {
                    sid: n.sid,
                    zxid: z,
                });
            }
        }
        let blob = match packet {
            Packet::Proposal(z) | Packet::Inform(z) => match lookup(&n.log, z) {
                Some(p) => Blob::Txn(p),
                None => {
                    return Err(Violation::History {
                        sid: n.sid,
                        zxid: z,
                        what: "sent a txn that is not in its log".into(),
                    })
                }
            },
            Packet::Snap(z) => {
                Blob::Snap(n.tree.iter().copied().take_while(|t| t.0 <= z).collect())
            }
            _ => Blob::None,
        };
        let delay = self.delay(i);
        let c = self.conns.get_mut(&id).expect("open conn");
        let dir = usize::from(c.ends[0] != i);
        let ready = (self.now + delay).max(c.last_ready[dir]);
        c.last_ready[dir] = ready;
        c.queues[dir].push_back((ready, packet, blob));
        self.schedule(ready, Event::Deliver { conn: id, dir });
        Ok(())
    }

    fn conn_open(&mut self, id: ConnId) -> Result<(), Violation> {
        let Some(c) = self.conns.get(&id) else {
            return Ok(());
        };
        let (learner, leader) = (c.ends[0], c.ends[1]);
        let (lsid, dsid) = (self.nodes[learner].sid, self.nodes[leader].sid);
        let alive = c.open
            && self.nodes[learner].inc == c.incs[0]
            && self.nodes[leader].inc == c.incs[1]
            && self.nodes[leader].peer.is_some()
            && self.nodes[learner].links.get(&dsid) == Some(&id);
        let reachable =
            !self.blocked.contains(&(lsid, dsid)) && !self.blocked.contains(&(dsid, lsid));
        if !alive || !reachable {
            self.close(id, false);
            if self.nodes[learner].links.get(&dsid) == Some(&id) {
                let inc = self.nodes[learner].inc;
                // Refused, or timed out.
                let at = self.now + if reachable { 1 } else { 200 };
                self.schedule(
                    at,
                    Event::LinkDown {
                        node: learner,
                        inc,
                        peer: dsid,
                        conn: id,
                    },
                );
            }
            return Ok(());
        }
        self.note(|| format!("{lsid} connected to {dsid}"));
        if let Some(old) = self.nodes[leader].links.insert(lsid, id) {
            self.close(old, false);
        }
        self.step(leader, Input::Connected(lsid))?;
        self.step(learner, Input::Connected(dsid))
    }

    fn deliver(&mut self, id: ConnId, dir: usize) -> Result<(), Violation> {
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return Ok(());
            };
            if !c.open {
                return Ok(());
            }
            let (from, to) = (c.ends[dir], c.ends[1 - dir]);
            let (fsid, tsid) = (self.nodes[from].sid, self.nodes[to].sid);
            let Some(&(ready, _, _)) = c.queues[dir].front() else {
                return Ok(());
            };
            if ready > self.now {
                return Ok(());
            }
            if self.blocked.contains(&(fsid, tsid)) {
                // TCP keeps retransmitting: held until the partition heals.
                self.schedule(self.now + 20, Event::Deliver { conn: id, dir });
                return Ok(());
            }
            let (_, packet, blob) = c.queues[dir].pop_front().expect("front");
            if self.nodes[to].inc != c.incs[1 - dir] || self.nodes[to].links.get(&fsid) != Some(&id)
            {
                return Ok(());
            }
            let n = &mut self.nodes[to];
            match (packet, blob) {
                (Packet::Proposal(z) | Packet::Inform(z), Blob::Txn(p)) => {
                    n.stash.insert(z, p);
                }
                (Packet::Snap(z), Blob::Snap(image)) => {
                    n.snaps.insert(z, image);
                }
                _ => {}
            }
            if packet != Packet::Ping {
                self.note(|| format!("{tsid} <- {fsid} {packet:?}"));
            }
            self.step(to, Input::Packet { from: fsid, packet })?;
        }
    }

    fn store(&mut self, i: usize, op: StoreOp) -> Result<(), Violation> {
        let n = &mut self.nodes[i];
        let pending = match op {
            StoreOp::Append(z) => {
                let Some(&p) = n.stash.get(&z) else {
                    return Err(Violation::History {
                        sid: n.sid,
                        zxid: z,
                        what: "logged a txn whose payload never arrived".into(),
                    });
                };
                n.log.push((z, p));
                Pending::Append(z, p)
            }
            StoreOp::TruncateAfter(z) => {
                n.log.retain(|t| t.0 <= z);
                n.tree.retain(|t| t.0 <= z);
                Pending::Op(op)
            }
            StoreOp::LoadSnapshot(z) => {
                let Some(image) = n.snaps.remove(&z) else {
                    return Err(Violation::History {
                        sid: n.sid,
                        zxid: z,
                        what: "loaded a snapshot that never arrived".into(),
                    });
                };
                n.log = image.clone();
                n.tree = image.clone();
                Pending::Snapshot(z, image)
            }
            _ => Pending::Op(op),
        };
        n.queue.push_back(pending);
        let lat = self.rng.random_range(0..4);
        let stalled = self.disk_stalled_until.get(&i).copied().unwrap_or(0);
        let n = &mut self.nodes[i];
        n.disk_free_at = n.disk_free_at.max(self.now).max(stalled) + lat;
        let (at, inc) = (n.disk_free_at, n.inc);
        self.schedule(at, Event::StoreDone { node: i, inc });
        Ok(())
    }

    fn store_done(&mut self, i: usize) -> Result<(), Violation> {
        let n = &mut self.nodes[i];
        let Some(p) = n.queue.pop_front() else {
            return Ok(());
        };
        let before = (n.disk.accepted, n.disk.current);
        let op = match p {
            Pending::Append(z, payload) => {
                n.disk.log.push((z, payload));
                StoreOp::Append(z)
            }
            Pending::Snapshot(z, image) => {
                n.disk.log = image;
                StoreOp::LoadSnapshot(z)
            }
            Pending::Op(op) => {
                match op {
                    StoreOp::AcceptedEpoch(e) => n.disk.accepted = e,
                    StoreOp::CurrentEpoch(e) => n.disk.current = e,
                    StoreOp::TruncateAfter(z) => n.disk.log.retain(|t| t.0 <= z),
                    _ => {}
                }
                op
            }
        };
        let after = (n.disk.accepted, n.disk.current);
        let sid = n.sid;
        if !matches!(op, StoreOp::Append(_)) {
            self.note(|| format!("{sid} stored {op:?}"));
        }
        self.check.epochs(sid, before, after)?;
        self.step(i, Input::Stored(op))
    }

    fn apply(&mut self, i: usize, z: Zxid) -> Result<(), Violation> {
        let n = &mut self.nodes[i];
        let sid = n.sid;
        let Some(p) = lookup(&n.log, z) else {
            return Err(Violation::History {
                sid,
                zxid: z,
                what: "applied a txn that is not in its log".into(),
            });
        };
        let prev = n.tree.last().map(|t| t.0);
        n.tree.push((z, p));
        if n.serving != Serving::Looking {
            let durable = lookup(&n.disk.log, z) == Some(p);
            self.check.applied(sid, prev, z, p, durable)?;
            let n = &mut self.nodes[i];
            if let (Serving::Leading { .. }, Some(w)) = (n.serving, n.writes.remove(&z)) {
                if w != p {
                    return Err(Violation::History {
                        sid,
                        zxid: z,
                        what: "the leader applied another payload than its client's".into(),
                    });
                }
                self.check.ack(z, p)?;
            }
        }
        Ok(())
    }
}

fn lookup(log: &[(Zxid, Payload)], z: Zxid) -> Option<Payload> {
    log.binary_search_by_key(&z, |t| t.0).ok().map(|k| log[k].1)
}
