//! Recipe calls in an ensemble (docs/recipes.md, "Recipes in an ensemble"): calls run on the
//! leader only, against its tree and outstanding changes, and commit as one multi txn proposed
//! like any write; followers and observers apply that txn and never run the wasm.
//!
//! - A learner's client's call goes to the leader as a recipe frame of its own
//!   (`wire::encode_recipe_frame`), not as REQUEST: a REQUEST takes a zxid the moment the
//!   leader's peer sees it, and a call is not one txn (it may write nothing, commit later, run
//!   again or park). It keeps its place in the client connection's reply order
//!   (`Queued::Relayed`), and the connection's later requests wait behind it as behind a call
//!   on a standalone server.
//! - The leader gives each learner's client connection that calls a connection of its own
//!   (a *relay connection*: no socket, its replies are carried back to that learner), so that
//!   runs, retries by request id, parking, cancelled runs and reply order work exactly as for
//!   the leader's own clients. The learner tells the leader when such a client connection
//!   closes, so that a retry from the session's next connection takes the call over.
//! - The leader's reply frames go back whole; the learner sends one to its client once it has
//!   applied the zxid in its header, so a client never reads state older than a zxid it saw.
//! - A leader change drops the relay connections with every client connection (members close
//!   them when they leave their role); the new leader reloads the recorded answers and re-arms
//!   the parked calls from their znodes, and the clients' retries under their request ids find
//!   them there.

use std::sync::Mutex;

use wazoo_proto::{RecipeCall, Writer};
use wazoo_zab::Sid;

use super::forward::Forward;
use super::*;

/// What a learner sends the leader in a recipe frame.
#[derive(Debug, PartialEq)]
pub(super) enum RelayMsg {
    /// Its client connection `conn`'s call: session, auth ids and request frame.
    Call { conn: ConnId, call: Forward },
    /// Its client connection `conn` closed.
    Closed { conn: ConnId },
}

impl RelayMsg {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            RelayMsg::Call { conn, call } => {
                w.i32(0).i64(*conn as i64);
                w.buf.extend_from_slice(&call.encode());
            }
            RelayMsg::Closed { conn } => {
                w.i32(1).i64(*conn as i64);
            }
        }
        w.buf
    }

    pub(super) fn decode(b: &[u8]) -> Result<RelayMsg, String> {
        let mut r = wazoo_proto::Reader::new(b);
        let e = |e: wazoo_proto::DecodeError| e.to_string();
        let kind = r.read_i32().map_err(e)?;
        let conn = r.read_i64().map_err(e)? as ConnId;
        match kind {
            0 => Ok(RelayMsg::Call {
                conn,
                call: Forward::decode(&b[12..])?,
            }),
            1 => Ok(RelayMsg::Closed { conn }),
            k => Err(format!("unknown relay message kind {k}")),
        }
    }
}

/// Reply bytes of relay connections, written by their sinks and carried back by the core after
/// each flush: (learner, its client connection, frames).
pub(super) type RelayOutbox = Arc<Mutex<Vec<(Sid, ConnId, Vec<u8>)>>>;

/// A relay connection's output: its reply frames go to the outbox.
struct RelaySink {
    outbox: RelayOutbox,
    learner: Sid,
    conn: ConnId,
}

impl ConnSink for RelaySink {
    fn send(&self, bytes: &[u8]) {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner()).push((
            self.learner,
            self.conn,
            bytes.to_vec(),
        ));
    }
    fn queued(&self) -> usize {
        0
    }
    fn want_drained(&self) {}
    fn drained_not_wanted(&self) {}
    fn set_stall_timeout(&self, _ms: u64) {}
    fn last_received(&self) -> i64 {
        0
    }
    fn close(&self) {}
}

/// Relay connections are numbered from here down to stay clear of the runtime's.
const RELAY_CONN_TOP: ConnId = ConnId::MAX - 1;

/// The leader's relay connections and the learner's relayed client connections.
#[derive(Default)]
pub(super) struct Relays {
    /// Leader: (learner, its client connection) -> this core's relay connection.
    by_origin: FastMap<(Sid, ConnId), ConnId>,
    /// Leader: the origin of each session's latest call (a session has one connection at a time).
    origin_of: FastMap<i64, (Sid, ConnId)>,
    outbox: RelayOutbox,
    next: ConnId,
    /// Learner: client connections with a call relayed (the leader hears when they close).
    relayed: std::collections::HashSet<ConnId>,
}

impl Relays {
    /// The leader's relay connections (a few may be gone already until the next tick's sweep).
    pub(super) fn relay_conns(&self) -> usize {
        self.by_origin.len()
    }

    pub(super) fn relay_conn_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.by_origin.values().copied()
    }
}

impl Core {
    /// A learner's client's call: relayed to the leader, its place kept in the reply order.
    pub(super) fn relay_call(
        &mut self,
        id: ConnId,
        xid: i32,
        call: RecipeCall,
        at: Instant,
        admit: Admission,
    ) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let msg = RelayMsg::Call {
            conn: id,
            call: Forward::request(c, &Request::RecipeCall(call), xid),
        };
        let Some(r) = self.replica.as_mut().filter(|r| r.learning()) else {
            self.close_conn(id);
            return;
        };
        c.queue.push_back(Queued::Relayed {
            xid,
            frame: None,
            after: 0,
            at,
            _admit: admit,
        });
        // Its later requests wait, as behind a call running here.
        c.run = Some(RELAYED_RUN);
        r.relays.relayed.insert(id);
        r.links.send_recipe(r.leader(), false, &msg.encode());
    }

    /// A recipe frame from `sid`'s link: a learner's call or news (the leader), or the leader's
    /// reply frames (a learner).
    pub(super) fn on_recipe_frame(&mut self, sid: Sid, reply: bool, data: &[u8]) {
        if reply {
            self.relayed_reply(data);
            return;
        }
        if !self.replica.as_ref().is_some_and(|r| r.leading()) {
            return; // not the leader (any more): the learner's clients will retry
        }
        match RelayMsg::decode(data) {
            Err(e) => warn!(from = sid, "a malformed relayed recipe call: {e}"),
            Ok(RelayMsg::Closed { conn }) => {
                let r = self.replica.as_mut().expect("a replica");
                if let Some(id) = r.relays.by_origin.remove(&(sid, conn)) {
                    self.drop_conn(id);
                }
            }
            Ok(RelayMsg::Call { conn, call }) => self.relayed_call(sid, conn, call),
        }
    }

    /// The leader: a learner's client connection's call, on its relay connection.
    fn relayed_call(&mut self, learner: Sid, origin: ConnId, call: Forward) {
        let Forward::Request {
            session,
            auth,
            frame,
        } = call
        else {
            warn!(from = learner, "a relayed recipe call of the wrong kind");
            return;
        };
        let (header, req) = match wazoo_proto::decode_request(&frame) {
            Ok((h, req @ Request::RecipeCall(_))) => (h, req),
            _ => {
                warn!(from = learner, "a relayed recipe call that does not decode");
                return;
            }
        };
        self.drop_moved_relay_conns(session, (learner, origin));
        let id = self.relay_conn(learner, origin, session, AuthInfo { ids: auth });
        let request = ClientRequest {
            xid: header.xid,
            op: op::RECIPE_CALL,
            req: Ok(req),
            size: frame.len(),
            received_ms: self.now.mono_ms,
            admit: Admission::none(),
        };
        self.on_request(id, request);
    }

    /// A session has one connection at a time: a call from another of its connections (the
    /// client moved, maybe to another member, before the old member saw its connection close)
    /// makes the relay connections of its earlier ones stale. They go, as a standalone server
    /// drops a session's old connection when it reconnects, so that a retry takes the call over
    /// (it would be refused as a request id reused on a live connection).
    fn drop_moved_relay_conns(&mut self, session: i64, current: (Sid, ConnId)) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let Some(earlier) = r.relays.origin_of.insert(session, current) else {
            return;
        };
        if earlier == current {
            return;
        }
        if let Some(id) = r.relays.by_origin.remove(&earlier) {
            self.drop_conn(id);
        }
    }

    /// The relay connection of a learner's client connection, made on its first call.
    fn relay_conn(&mut self, learner: Sid, origin: ConnId, session: i64, auth: AuthInfo) -> ConnId {
        let r = self.replica.as_mut().expect("a replica");
        if let Some(&id) = r.relays.by_origin.get(&(learner, origin)) {
            if let Some(c) = self.conns.get_mut(&id) {
                c.auth = auth; // what the client added since comes with each call
                return id;
            }
        }
        r.relays.next += 1;
        let id = RELAY_CONN_TOP - r.relays.next;
        r.relays.by_origin.insert((learner, origin), id);
        let out: ConnTx = Arc::new(RelaySink {
            outbox: r.relays.outbox.clone(),
            learner,
            conn: origin,
        });
        let timeout = self.tracker.timeout(session).unwrap_or(0);
        let remote = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let conn = Conn::new(remote, session, timeout, auth, out, self.now.wall_ms);
        self.conns.insert(id, conn);
        id
    }

    /// The leader, after a flush: the relay connections' reply frames go to their learners.
    pub(super) fn send_relayed(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let out = std::mem::take(&mut *r.relays.outbox.lock().unwrap_or_else(|e| e.into_inner()));
        for (learner, conn, bytes) in out {
            let mut data = Vec::with_capacity(8 + bytes.len());
            data.extend_from_slice(&(conn as i64).to_be_bytes());
            data.extend_from_slice(&bytes);
            r.links.send_recipe(learner, true, &data);
        }
    }

    /// The learner: reply frames for its client connection's relayed calls. Each takes the
    /// place its call kept and goes out once this member has applied the zxid in its header.
    fn relayed_reply(&mut self, data: &[u8]) {
        if data.len() < 8 {
            return;
        }
        let id = i64::from_be_bytes(data[..8].try_into().expect("8 bytes")) as ConnId;
        let mut rest = &data[8..];
        while rest.len() >= 20 {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            if len < 16 || rest.len() < 4 + len {
                warn!("a malformed relayed reply");
                return;
            }
            let (frame, tail) = rest.split_at(4 + len);
            rest = tail;
            let xid = i32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
            let zxid = i64::from_be_bytes(frame[8..16].try_into().expect("8 bytes"));
            let Some(c) = self.conns.get_mut(&id) else {
                return; // the client is gone
            };
            let place = c
                .queue
                .iter_mut()
                .find(|q| matches!(q, Queued::Relayed { xid: x, frame: None, .. } if *x == xid));
            let Some(Queued::Relayed {
                frame: slot, after, ..
            }) = place
            else {
                continue; // answered here already (its session closed behind it)
            };
            *slot = Some(frame.to_vec());
            *after = zxid;
            if c.run == Some(RELAYED_RUN) {
                c.run = None;
            }
            if zxid > self.tree.last_applied() {
                self.runs.replies_after.entry(zxid).or_default().push(id);
            }
            self.drain_reads(id);
            self.dirty.push(id);
            self.pump(id);
        }
    }

    /// The learner: answers the connection's relayed call here (its session closes behind it)
    /// and lets its later requests go on; the leader's reply, if one comes, is dropped.
    pub(super) fn answer_relayed_here(&mut self, id: ConnId, result: Result<Response, ErrorCode>) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let place = c
            .queue
            .iter_mut()
            .find(|q| matches!(q, Queued::Relayed { frame: None, .. }));
        if let Some(q) = place {
            let Queued::Relayed { xid, at, .. } = *q else {
                unreachable!("matched above")
            };
            *q = Queued::Ready {
                xid,
                op: op::RECIPE_CALL,
                result,
                at,
                after: 0,
            };
        }
        if c.run == Some(RELAYED_RUN) {
            c.run = None;
        }
        self.drain_reads(id);
        self.dirty.push(id);
        self.pump(id);
    }

    /// The learner: a client connection with relayed calls closed; the leader drops its relay
    /// connection (its parked calls with a request id wait for the session's retry).
    pub(super) fn relayed_conn_dropped(&mut self, id: ConnId) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        if r.relays.relayed.remove(&id) && r.learning() {
            let leader = r.leader();
            r.links
                .send_recipe(leader, false, &RelayMsg::Closed { conn: id }.encode());
        }
    }

    /// The leader: drops the relay connections of `learner` (its link went down), or of every
    /// learner (`None`: this member stopped leading).
    pub(super) fn drop_relay_conns(&mut self, learner: Option<Sid>) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let gone: Vec<ConnId> = r
            .relays
            .by_origin
            .iter()
            .filter(|((l, _), _)| learner.is_none_or(|x| x == *l))
            .map(|(_, id)| *id)
            .collect();
        r.relays
            .by_origin
            .retain(|(l, _), _| learner.is_some_and(|x| x != *l));
        if learner.is_none() {
            r.relays.relayed.clear();
            r.relays.origin_of.clear();
        }
        for id in gone {
            self.drop_conn(id);
        }
    }

    /// The leader, at a tick: relay connections of sessions that are gone.
    pub(super) fn sweep_relay_conns(&mut self) {
        let Some(r) = self.replica.as_ref() else {
            return;
        };
        let gone: Vec<(Sid, ConnId)> = r
            .relays
            .by_origin
            .iter()
            .filter(|(_, id)| {
                self.conns
                    .get(id)
                    .is_none_or(|c| !self.tracker.is_valid(c.session))
            })
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            let r = self.replica.as_mut().expect("a replica");
            if let Some(id) = r.relays.by_origin.remove(&k) {
                self.drop_conn(id);
            }
        }
        let tracker = &self.tracker;
        if let Some(r) = self.replica.as_mut() {
            r.relays.origin_of.retain(|s, _| tracker.is_valid(*s));
        }
    }
}

/// The run a learner's client connection waits on while its call is relayed (`Conn::run`).
pub(super) const RELAYED_RUN: RunId = RunId::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_messages_round_trip_and_garbage_is_refused() {
        for m in [
            RelayMsg::Call {
                conn: 77,
                call: Forward::Request {
                    session: 5,
                    auth: vec![wazoo_proto::Id::new("ip", "127.0.0.1")],
                    frame: vec![1, 2, 3],
                },
            },
            RelayMsg::Closed { conn: 9 },
        ] {
            assert_eq!(RelayMsg::decode(&m.encode()).unwrap(), m);
        }
        assert!(RelayMsg::decode(&[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(RelayMsg::decode(&[0, 0]).is_err());
    }
}
