//! The simulated network: election notifications (lost, duplicated, reordered by random
//! delays) and quorum links (FIFO per direction like TCP; a partition holds packets until it heals,
//! a reset drops them and tells each end that can still be reached).

use rand::Rng;
use wazoo_zab::peer::{Input, Packet};
use wazoo_zab::Sid;

use super::{lookup, Blob, ConnId, Event, Sim};
use crate::check::Violation;

impl Sim {
    pub(super) fn delay(&mut self, node: usize) -> u64 {
        self.rng.random_range(1..8) + self.slow.get(&node).copied().unwrap_or(0)
    }

    /// Closes a link; with `notify`, each live end still using it learns (a reset reaches the far
    /// end only if the network lets it through: otherwise it finds out by timeout or on its next
    /// send).
    pub(super) fn close(&mut self, id: ConnId, notify: bool) {
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

    pub(super) fn send(&mut self, i: usize, to: Sid, packet: Packet) -> Result<(), Violation> {
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
        let kind = match packet {
            Packet::Diff(_) => Some("DIFF"),
            Packet::Trunc(_) => Some("TRUNC"),
            Packet::Snap(_) => Some("SNAP"),
            _ => None,
        };
        if let Some(k) = kind {
            *self.report.learner_syncs.entry(k).or_default() += 1;
        }
        let n = &self.nodes[i];
        let blob = match packet {
            Packet::Proposal(z) | Packet::Inform(z) if z <= n.forgot => {
                return Err(Violation::History {
                    sid: n.sid,
                    zxid: z,
                    what: "sent a txn that left its DIFF window (a SNAP was needed)".into(),
                })
            }
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

    pub(super) fn conn_open(&mut self, id: ConnId) -> Result<(), Violation> {
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

    /// Delivers the head packet of one direction of a link: one packet per event (each send
    /// scheduled one), so a scenario can act between any two packets.
    pub(super) fn deliver(&mut self, id: ConnId, dir: usize) -> Result<(), Violation> {
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
        if self.nodes[to].inc != c.incs[1 - dir] || self.nodes[to].links.get(&fsid) != Some(&id) {
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
            if let Some(d) = self.delivered.as_mut() {
                d.push((fsid, tsid, packet));
            }
        }
        self.step(to, Input::Packet { from: fsid, packet })
    }
}
