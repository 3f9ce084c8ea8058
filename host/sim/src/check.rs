//! The invariants the simulator checks after every event (zab-reference.md §6): at most one
//! established leader per epoch; epochs monotonic and `currentEpoch ≤ acceptedEpoch` on disk;
//! every serving server applies exactly the one global history, in order, with no gap and no
//! other payload (integrity, agreement, total and primary order, prefix consistency); a serving
//! server applies only what is durable in its own log (D10); an acknowledged write is in that
//! history with the payload the client sent; an ACK goes out only for what is durable (checked
//! by the host as it sends). A violation is an error naming what broke.

use std::collections::BTreeMap;

use wazoo_zab::{Sid, Zxid};

/// A txn's payload in the simulation: a number unique per client write.
pub type Payload = u64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Violation {
    #[error("two leaders established in epoch {epoch}: {first} and {second}")]
    TwoLeaders { epoch: u64, first: Sid, second: Sid },
    #[error("server {sid}: {what}")]
    Epochs { sid: Sid, what: String },
    #[error("server {sid} applied {zxid:#x} out of the global history: {what}")]
    History { sid: Sid, zxid: Zxid, what: String },
    #[error("server {sid} applied {zxid:#x} before it was durable in its log (D10)")]
    NotDurable { sid: Sid, zxid: Zxid },
    #[error("server {sid} sent ACK({zxid:#x}) for what is not durable on its disk (D4/D6)")]
    AckNotDurable { sid: Sid, zxid: Zxid },
    #[error("acknowledged write {payload} at {zxid:#x} is lost: {what}")]
    LostWrite {
        zxid: Zxid,
        payload: Payload,
        what: String,
    },
    #[error("server {sid} completed a sync without acknowledged write {zxid:#x}")]
    StaleSync { sid: Sid, zxid: Zxid },
    #[error("no liveness: {0}")]
    Liveness(String),
}

/// What every server's serving history is checked against.
#[derive(Debug, Default)]
pub struct Checker {
    leaders: BTreeMap<u64, Sid>,
    /// Every txn applied by a serving server, with its payload.
    history: BTreeMap<Zxid, Payload>,
    /// Writes acknowledged to clients.
    pub acked: BTreeMap<Zxid, Payload>,
    pub established: u64,
}

impl Checker {
    pub fn established(&mut self, sid: Sid, epoch: u64) -> Result<(), Violation> {
        self.established += 1;
        match self.leaders.insert(epoch, sid) {
            Some(first) if first != sid => Err(Violation::TwoLeaders {
                epoch,
                first,
                second: sid,
            }),
            _ => Ok(()),
        }
    }

    /// A server's durable epochs changed from `before` to `after` (accepted, current).
    pub fn epochs(&self, sid: Sid, before: (u64, u64), after: (u64, u64)) -> Result<(), Violation> {
        let what = if after.0 < before.0 {
            "acceptedEpoch went backwards"
        } else if after.1 < before.1 {
            "currentEpoch went backwards"
        } else if after.1 > after.0 {
            "currentEpoch is above acceptedEpoch"
        } else {
            return Ok(());
        };
        Err(Violation::Epochs {
            sid,
            what: format!("{what}: {before:?} -> {after:?}"),
        })
    }

    /// A server starts serving with this tree: it must be a prefix of the global history or
    /// extend it past its end.
    pub fn start_serving(&mut self, sid: Sid, tree: &[(Zxid, Payload)]) -> Result<(), Violation> {
        let bad = |zxid, what: &str| {
            Err(Violation::History {
                sid,
                zxid,
                what: what.to_string(),
            })
        };
        let mut prev = Zxid::MIN;
        for &(z, p) in tree {
            if z <= prev {
                return bad(z, "the tree is not in zxid order");
            }
            prev = z;
            match self.history.get(&z) {
                Some(&q) if q != p => return bad(z, "another payload than the history's"),
                Some(_) => {}
                None if self.history.range(z..).next().is_some() => {
                    return bad(z, "a txn the history skipped")
                }
                None => {
                    self.history.insert(z, p);
                }
            }
        }
        let last = tree.last().map_or(Zxid::MIN, |t| t.0);
        let have = tree.len();
        let should = self.history.range(..=last).count();
        if have != should {
            let missing = self
                .history
                .range(..=last)
                .find(|(&z, _)| tree.binary_search_by_key(&z, |t| t.0).is_err())
                .map_or(last, |(z, _)| *z);
            return bad(missing, "a gap: the tree lacks a txn of the history");
        }
        Ok(())
    }

    /// A serving server whose previous applied zxid was `prev` applies `zxid`.
    pub fn applied(
        &mut self,
        sid: Sid,
        prev: Option<Zxid>,
        zxid: Zxid,
        payload: Payload,
        durable: bool,
    ) -> Result<(), Violation> {
        let bad = |what: String| Err(Violation::History { sid, zxid, what });
        if !durable {
            return Err(Violation::NotDurable { sid, zxid });
        }
        if prev.is_some_and(|p| p >= zxid) {
            return bad(format!("not after the previous applied txn {prev:?}"));
        }
        let lo = prev.map_or(Zxid::MIN, |p| p + 1);
        if let Some((skipped, _)) = self.history.range(lo..zxid).next() {
            return bad(format!("a gap: {skipped:#x} of the history was skipped"));
        }
        match self.history.get(&zxid) {
            Some(&q) if q != payload => bad(format!("payload {payload}, the history's is {q}")),
            Some(_) => Ok(()),
            None if self.history.range(zxid..).next().is_some() => {
                bad("a txn the history skipped".into())
            }
            None => {
                self.history.insert(zxid, payload);
                Ok(())
            }
        }
    }

    /// A write was acknowledged to its client.
    pub fn ack(&mut self, zxid: Zxid, payload: Payload) -> Result<(), Violation> {
        if self.history.get(&zxid) != Some(&payload) {
            return Err(Violation::LostWrite {
                zxid,
                payload,
                what: "acknowledged but not in the history".into(),
            });
        }
        self.acked.insert(zxid, payload);
        Ok(())
    }

    /// A `sync` completed at `sid`: every write acknowledged before it was issued (zxid up to
    /// `upto`) must be in the tree there (sync-then-read is linearizable).
    pub fn synced(&self, sid: Sid, tree: &[(Zxid, Payload)], upto: Zxid) -> Result<(), Violation> {
        for (&z, &p) in self.acked.range(..=upto) {
            if tree.binary_search(&(z, p)).is_err() {
                return Err(Violation::StaleSync { sid, zxid: z });
            }
        }
        Ok(())
    }

    /// At the end: every acknowledged write is in this server's tree.
    pub fn has_acked(&self, sid: Sid, tree: &[(Zxid, Payload)]) -> Result<(), Violation> {
        for (&z, &p) in &self.acked {
            if tree.binary_search(&(z, p)).is_err() {
                return Err(Violation::LostWrite {
                    zxid: z,
                    payload: p,
                    what: format!("not in server {sid}'s tree"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_leader_in_an_epoch_is_a_violation() {
        let mut c = Checker::default();
        c.established(1, 3).unwrap();
        c.established(1, 3).unwrap();
        assert!(matches!(
            c.established(2, 3),
            Err(Violation::TwoLeaders { epoch: 3, .. })
        ));
    }

    #[test]
    fn gaps_other_payloads_and_skipped_txns_are_violations() {
        let mut c = Checker::default();
        c.applied(1, None, 1, 10, true).unwrap();
        c.applied(1, Some(1), 2, 20, true).unwrap();
        c.applied(1, Some(2), 3, 30, true).unwrap();
        // Server 2 skips 2.
        assert!(c.applied(2, Some(1), 3, 30, true).is_err());
        // Server 3 has another payload for 2.
        assert!(c.applied(3, Some(1), 2, 21, true).is_err());
        // Server 4 applies a txn between two of the history.
        assert!(c.start_serving(4, &[(1, 10), (2, 20), (3, 30)]).is_ok());
        let mut c2 = Checker::default();
        c2.start_serving(1, &[(1, 10), (3, 30)]).unwrap();
        assert!(c2.start_serving(2, &[(1, 10), (2, 20), (3, 30)]).is_err());
        assert!(c2.start_serving(3, &[(3, 30)]).is_err(), "a gap");
        assert!(matches!(
            c.applied(5, Some(3), 4, 40, false),
            Err(Violation::NotDurable { .. })
        ));
    }

    #[test]
    fn epochs_must_not_go_backwards_nor_current_pass_accepted() {
        let c = Checker::default();
        assert!(c.epochs(1, (2, 1), (3, 1)).is_ok());
        assert!(c.epochs(1, (2, 1), (1, 1)).is_err());
        assert!(c.epochs(1, (2, 2), (2, 1)).is_err());
        assert!(c.epochs(1, (2, 1), (2, 3)).is_err());
    }
}
