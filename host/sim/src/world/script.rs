//! Scripted runs, for named scenarios: no random faults, no lost or duplicated notifications
//! and no client writes unless the scenario makes them; the scenario starts servers, kills
//! them, cuts links and stalls disks, and waits for conditions between any two events. The
//! invariants are checked after every event exactly as in a random run.

use wazoo_zab::peer::{Packet, Serving};
use wazoo_zab::{Sid, Zxid};

use super::Sim;
use crate::check::{Payload, Violation};
use crate::SimConfig;

impl Sim {
    /// A scripted world of `cfg`'s shape; nothing runs until servers are started.
    pub fn scripted(seed: u64, cfg: SimConfig) -> Sim {
        let mut s = Sim::new(seed, cfg);
        s.chaos = false;
        s.delivered = Some(Vec::new());
        s
    }

    /// Before a server starts: what its disk holds.
    pub fn set_disk(
        &mut self,
        sid: Sid,
        accepted_epoch: u64,
        current_epoch: u64,
        log: Vec<(Zxid, Payload)>,
    ) {
        let i = self.idx(sid);
        let d = &mut self.nodes[i].disk;
        d.accepted = accepted_epoch;
        d.current = current_epoch;
        d.log = log;
    }

    /// Starts (or restarts) a server from its disk.
    pub fn boot(&mut self, sid: Sid) -> Result<(), Violation> {
        let i = self.idx(sid);
        if self.nodes[i].peer.is_none() {
            self.restart(i)?;
        }
        Ok(())
    }

    /// kill -9.
    pub fn kill(&mut self, sid: Sid) {
        let i = self.idx(sid);
        if self.nodes[i].peer.is_some() {
            self.crash(i);
        }
    }

    /// Cuts both directions between `a` and `b` until [`heal_network`](Self::heal_network).
    pub fn cut(&mut self, a: Sid, b: Sid) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    /// Cuts `sid` from every other server.
    pub fn isolate(&mut self, sid: Sid) {
        let others: Vec<Sid> = self
            .nodes
            .iter()
            .map(|n| n.sid)
            .filter(|&s| s != sid)
            .collect();
        for o in others {
            self.cut(sid, o);
        }
    }

    /// Resets every quorum link of `sid`: both ends learn at once (a process restarting its
    /// network, a middlebox dropping connections).
    pub fn reset_links(&mut self, sid: Sid) {
        let i = self.idx(sid);
        let mine: Vec<super::ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.open && c.ends.contains(&i))
            .map(|(&id, _)| id)
            .collect();
        for id in mine {
            self.close(id, true);
        }
    }

    pub fn heal_network(&mut self) {
        self.blocked.clear();
    }

    /// Nothing `sid` writes completes for `ms`.
    pub fn stall_disk(&mut self, sid: Sid, ms: u64) {
        let i = self.idx(sid);
        let until = self.now + ms;
        let s = self.disk_stalled_until.entry(i).or_default();
        *s = (*s).max(until);
    }

    /// A client write reaches `sid` (proposed if it is an established leader).
    pub fn write(&mut self, sid: Sid) -> Result<(), Violation> {
        let i = self.idx(sid);
        self.client_write(i)
    }

    /// A client `sync` reaches `sid`; checked for staleness when it completes.
    pub fn sync(&mut self, sid: Sid) -> Result<(), Violation> {
        let i = self.idx(sid);
        self.client_sync(i)
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    /// Runs every event up to `ms` from now.
    pub fn run_for(&mut self, ms: u64) -> Result<(), Violation> {
        let until = self.now + ms;
        self.run_until(until)
    }

    /// Runs until `pred` holds (checked after every event), failing after `limit_ms`.
    pub fn run_until_that(
        &mut self,
        limit_ms: u64,
        what: &str,
        pred: impl Fn(&Sim) -> bool,
    ) -> Result<(), Violation> {
        let deadline = self.now + limit_ms;
        while !pred(self) {
            let Some(next) = self.next_event_at() else {
                return Err(Violation::Liveness(format!(
                    "nothing left to run before {what}"
                )));
            };
            if next > deadline {
                return Err(Violation::Liveness(format!(
                    "{what}: not within {limit_ms} ms"
                )));
            }
            self.run_one()?;
        }
        Ok(())
    }

    /// The established leader, if one serves.
    pub fn leader(&self) -> Option<Sid> {
        self.nodes
            .iter()
            .find(|n| matches!(n.serving, Serving::Leading { .. }))
            .map(|n| n.sid)
    }

    pub fn serving(&self, sid: Sid) -> Serving {
        self.nodes[self.idx(sid)].serving
    }

    /// What `sid` has applied.
    pub fn tree(&self, sid: Sid) -> &[(Zxid, Payload)] {
        &self.nodes[self.idx(sid)].tree
    }

    /// What is durable in `sid`'s log.
    pub fn disk_log(&self, sid: Sid) -> &[(Zxid, Payload)] {
        &self.nodes[self.idx(sid)].disk.log
    }

    /// (acceptedEpoch, currentEpoch) on `sid`'s disk.
    pub fn disk_epochs(&self, sid: Sid) -> (u64, u64) {
        let d = &self.nodes[self.idx(sid)].disk;
        (d.accepted, d.current)
    }

    /// Every packet delivered so far (pings aside): (from, to, packet).
    pub fn delivered(&self) -> &[(Sid, Sid, Packet)] {
        self.delivered.as_deref().unwrap_or(&[])
    }

    /// Writes acknowledged to clients so far.
    pub fn acked(&self) -> usize {
        self.check.acked.len()
    }

    /// Heals the network, and runs until every live server serves one leader with the same
    /// tree and every acknowledged write is in every tree. Returns the leader.
    pub fn converge(&mut self, limit_ms: u64) -> Result<Sid, Violation> {
        self.heal_network();
        self.run_until_that(limit_ms, "convergence", |s| s.converged().is_some())?;
        for n in &self.nodes {
            self.check.has_acked(n.sid, &n.tree)?;
        }
        Ok(self.leader().expect("converged"))
    }

    /// The last trace lines, for a failing scenario's message.
    pub fn trace(&self) -> String {
        self.trace.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}
