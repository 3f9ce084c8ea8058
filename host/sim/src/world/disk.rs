//! The simulated disks: writes take effect in the host's view at once and become durable in
//! order, after a latency or a stall; a crash loses whatever had not completed. Applying a txn
//! checks D10 and the global history.

use rand::Rng;
use wazoo_zab::peer::{Input, Serving, StoreOp};
use wazoo_zab::Zxid;

use super::{lookup, Event, Pending, Sim};
use crate::check::Violation;

impl Sim {
    pub(super) fn store(&mut self, i: usize, op: StoreOp) -> Result<(), Violation> {
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
        let appended = matches!(pending, Pending::Append(..));
        n.queue.push_back(pending);
        if appended {
            self.keep_window(i);
        }
        let lat = self.rng.random_range(0..4);
        let stalled = self.disk_stalled_until.get(&i).copied().unwrap_or(0);
        let n = &mut self.nodes[i];
        n.disk_free_at = n.disk_free_at.max(self.now).max(stalled) + lat;
        let (at, inc) = (n.disk_free_at, n.inc);
        self.schedule(at, Event::StoreDone { node: i, inc });
        Ok(())
    }

    pub(super) fn store_done(&mut self, i: usize) -> Result<(), Violation> {
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

    pub(super) fn apply(&mut self, i: usize, z: Zxid) -> Result<(), Violation> {
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
            // A client write that started here (its payload is its id) is acknowledged when this
            // server applies it: the leader's own, or a learner's forwarded one.
            if n.pending.remove(&p) {
                self.check.ack(z, p)?;
            }
        }
        Ok(())
    }
}
