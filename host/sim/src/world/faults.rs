//! The faults of the chaos phase, and crash / restart.

use rand::Rng;
use wazoo_zab::history::History;
use wazoo_zab::peer::{Input, Peer, Recovered, Serving};
use wazoo_zab::Sid;

use super::{ConnId, Event, Sim};
use crate::check::Violation;

impl Sim {
    pub(super) fn bump(&mut self, kind: &'static str) {
        *self.report.faults.entry(kind).or_default() += 1;
    }

    pub(super) fn fault(&mut self) -> Result<(), Violation> {
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

    pub(super) fn block(&mut self, pairs: Vec<(Sid, Sid)>, dur: u64, kind: &'static str) {
        self.bump(kind);
        let fresh: Vec<(Sid, Sid)> = pairs
            .into_iter()
            .filter(|p| self.blocked.insert(*p))
            .collect();
        self.note(|| format!("{kind}: {fresh:?} for {dur} ms"));
        self.schedule(self.now + dur, Event::Unblock { pairs: fresh });
    }

    /// kill -9: the process and its unsynced writes are gone; the kernel resets its links.
    pub(super) fn crash(&mut self, i: usize) {
        let sid = self.nodes[i].sid;
        self.note(|| format!("{sid} crashes"));
        let n = &mut self.nodes[i];
        n.peer = None;
        n.inc += 1;
        n.queue.clear();
        n.wake_at = None;
        n.serving = Serving::Looking;
        n.pending.clear();
        n.syncs.clear();
        let links: Vec<ConnId> = std::mem::take(&mut n.links).into_values().collect();
        for c in links {
            self.close(c, true);
        }
    }

    pub(super) fn restart(&mut self, i: usize) -> Result<(), Violation> {
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
        // A restarted server's window is its log's tail again.
        n.forgot = 0;
        self.keep_window(i);
        let sid = self.nodes[i].sid;
        self.note(|| format!("{sid} starts"));
        self.step(i, Input::Start)
    }
}
