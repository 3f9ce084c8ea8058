//! Client sessions on a follower or an observer: what its clients write goes to the leader, and
//! comes back as a txn the member applies like any other.
//!
//! - A new session's createSession, a write, a closeSession (and an undecodable write, as an
//!   error) are forwarded as REQUEST: the leader preps them against its tree, with the session's
//!   auth ids the follower sends along, numbers them and proposes them. The client's reply goes
//!   out when this member applies the txn: its header's (session, cxid) matches the write waiting
//!   at the front of the connection's queue, as ZooKeeper's CommitProcessor matches them.
//! - A `sync` is forwarded as SYNC (confirmed by a quorum at the leader) and answered when this
//!   member has applied what the leader had committed.
//! - The member relays its clients' sessions in its PING answers; the leader's tracker expires
//!   sessions, and its closeSession txns close them here.

use wazoo_proto::{decode_request, Id};

use super::*;

/// What a member forwards, as the data of a REQUEST.
#[derive(Debug, PartialEq)]
pub(super) enum Forward {
    CreateSession {
        session: i64,
        timeout: i32,
        passwd: Vec<u8>,
    },
    /// A client request frame (header and record), with the connection's auth ids.
    Request {
        session: i64,
        auth: Vec<Id>,
        frame: Vec<u8>,
    },
    /// An undecodable write: the leader logs it as an error txn.
    Error { session: i64, cxid: i32, err: i32 },
}

impl Forward {
    /// Connection `c`'s request `req` (cxid `xid`), with the connection's auth ids.
    pub(super) fn request(c: &Conn, req: &Request, xid: i32) -> Forward {
        Forward::Request {
            session: c.session,
            auth: c.auth.ids.clone(),
            // The request as its frame's body (the length prefix off), as `decode_request` reads it.
            frame: req.encode_frame(xid).split_off(4),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Forward::CreateSession {
                session,
                timeout,
                passwd,
            } => {
                w.i32(0).i64(*session).i32(*timeout).buffer(Some(passwd));
            }
            Forward::Request {
                session,
                auth,
                frame,
            } => {
                w.i32(1).i64(*session).i32(auth.len() as i32);
                for id in auth {
                    w.string(&id.scheme).string(&id.id);
                }
                w.buffer(Some(frame));
            }
            Forward::Error { session, cxid, err } => {
                w.i32(2).i64(*session).i32(*cxid).i32(*err);
            }
        }
        w.buf
    }

    pub(super) fn decode(b: &[u8]) -> Result<Forward, String> {
        let mut r = wazoo_proto::Reader::new(b);
        let e = |e: wazoo_proto::DecodeError| e.to_string();
        let f = match r.read_i32().map_err(e)? {
            0 => Forward::CreateSession {
                session: r.read_i64().map_err(e)?,
                timeout: r.read_i32().map_err(e)?,
                passwd: r
                    .read_buffer()
                    .map_err(e)?
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
            },
            1 => {
                let session = r.read_i64().map_err(e)?;
                let n = r.read_i32().map_err(e)?;
                if !(0..=1024).contains(&n) {
                    return Err(format!("{n} auth ids"));
                }
                let mut auth = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let scheme = r.read_string().map_err(e)?;
                    let id = r.read_string().map_err(e)?;
                    auth.push(Id::new(&scheme, &id));
                }
                let frame = r
                    .read_buffer()
                    .map_err(e)?
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                Forward::Request {
                    session,
                    auth,
                    frame,
                }
            }
            2 => Forward::Error {
                session: r.read_i64().map_err(e)?,
                cxid: r.read_i32().map_err(e)?,
                err: r.read_i32().map_err(e)?,
            },
            k => return Err(format!("unknown forwarded request kind {k}")),
        };
        Ok(f)
    }
}

impl Core {
    /// Whether this core's clients' writes go to a leader elsewhere.
    pub(super) fn forwards(&self) -> bool {
        self.replica.as_ref().is_some_and(|r| r.learning())
    }

    /// Sends `f` to the leader; `false` when this member cannot (it is not serving).
    pub(super) fn forward(&mut self, f: &Forward) -> bool {
        // A learner forwards exactly while it serves (the peer refuses otherwise).
        let Some(r) = self.replica.as_mut().filter(|r| r.learning()) else {
            return false;
        };
        let id = r.park_forward(f.encode());
        if let Err(e) = self.peer_step(wazoo_zab::peer::Input::Write { id }) {
            error!("{e}");
        }
        true
    }

    /// A follower's client write: queued for its reply, forwarded to the leader.
    pub(super) fn forward_write(
        &mut self,
        id: ConnId,
        xid: i32,
        opcode: i32,
        req: &Request,
        now: Instant,
        admit: Admission,
    ) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let session = c.session;
        if let Request::CloseSession = req {
            self.tracker.set_closing(session);
        }
        let f = Forward::request(c, req, xid);
        self.queue_forwarded(id, xid, opcode, multi_sub_ops(req), now, Some(admit));
        if !self.forward(&f) {
            self.close_conn(id);
        }
    }

    /// A follower's client's undecodable write: the leader logs it as an error txn.
    pub(super) fn forward_error(
        &mut self,
        id: ConnId,
        xid: i32,
        opcode: i32,
        err: i32,
        now: Instant,
        admit: Admission,
    ) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let f = Forward::Error {
            session: c.session,
            cxid: xid,
            err,
        };
        self.queue_forwarded(id, xid, opcode, Vec::new(), now, Some(admit));
        if !self.forward(&f) {
            self.close_conn(id);
        }
    }

    /// An ensemble member's client's `sync`: answered once the leader's commit point, confirmed
    /// by a quorum after the sync reached the leader, is applied here (a learner forwards it; the
    /// leader's peer handles its own clients' the same way).
    pub(super) fn peer_sync(&mut self, id: ConnId, xid: i32, path: String, now: Instant) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let sync_id = r.park_sync(id, xid, path);
        self.queue_forwarded(id, xid, op::SYNC, Vec::new(), now, None);
        if let Err(e) = self.peer_step(wazoo_zab::peer::Input::Sync { id: sync_id }) {
            error!("{e}");
        }
    }

    /// The peer completed a sync: its reply, in its connection's order.
    pub(super) fn sync_reached(&mut self, sync_id: u64) {
        let Some((id, xid, path)) = self.replica.as_mut().and_then(|r| r.unpark_sync(sync_id))
        else {
            return; // answered already (`answer_syncs_before`), or its connection is gone
        };
        self.answer_sync(id, xid, path);
    }

    /// Syncs queued on `conn` before its write `cxid` that was just applied. That write was
    /// committed by a quorum after the sync reached the leader (a connection's requests reach
    /// the leader in order), which confirms what the sync waits for: the leader still led when
    /// the sync arrived, and everything it had committed before is applied here. So each is
    /// answered now, ahead of the write, in the connection's order. (Waiting for the peer's
    /// answer instead, the write's reply met the sync's place at the front of the queue when
    /// both commits came in one step, and the connection was closed.)
    pub(super) fn answer_syncs_before(&mut self, conn: ConnId, cxid: i32) {
        loop {
            let Some(c) = self.conns.get(&conn) else {
                return;
            };
            let xid = match c.queue.front() {
                Some(q @ Queued::Write { xid, .. }) if is_pending_sync(q) && *xid != cxid => *xid,
                _ => return,
            };
            let Some(path) = self
                .replica
                .as_mut()
                .and_then(|r| r.unpark_sync_of(conn, xid))
            else {
                return;
            };
            self.answer_sync(conn, xid, path);
        }
    }

    /// Replies to the sync `xid` at the front of `id`'s queue.
    fn answer_sync(&mut self, id: ConnId, xid: i32, path: String) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match c.queue.front() {
            Some(Queued::Write { xid: qx, zxid, .. }) if *qx == xid && *zxid == FORWARDED => {
                let Some(Queued::Write { op: opcode, at, .. }) = c.queue.pop_front() else {
                    return;
                };
                let zxid = self.tree.last_applied();
                reply(
                    c,
                    &self.metrics,
                    ReplyTo { xid, opcode, at },
                    zxid,
                    Ok(&Response::Sync { path }),
                    &self.now,
                );
                self.dirty.push(id);
                self.drain_reads(id);
                self.pump(id);
            }
            // Out of step (it cannot happen while the queue keeps request order): close.
            _ => self.close_conn(id),
        }
    }

    /// The leader: a learner's forwarded request got `zxid` from the peer; prep it and log it.
    pub(super) fn prep_forwarded(&mut self, zxid: Zxid, data: &[u8]) {
        let time = self.now.wall_ms;
        // The zxid is numbered already: whatever arrived, a txn takes it (an error txn for what
        // does not decode), so that the log has no gap.
        let header = |session_id: i64, cxid: i32| TxnHeader {
            session_id,
            cxid,
            zxid,
            time,
        };
        let undecodable = Txn::Error {
            err: ErrorCode::MarshallingError.code(),
        };
        let (header, txn) = match Forward::decode(data) {
            Err(e) => {
                warn!(
                    zxid = format_args!("{zxid:#x}"),
                    "a malformed forwarded request: {e}"
                );
                (header(0, 0), undecodable)
            }
            Ok(Forward::CreateSession {
                session,
                timeout,
                passwd,
            }) => {
                self.tracker.add(session, timeout, self.now.mono_ms);
                (header(session, 0), Txn::CreateSession { timeout, passwd })
            }
            Ok(Forward::Error { session, cxid, err }) => {
                (header(session, cxid), Txn::Error { err })
            }
            Ok(Forward::Request {
                session,
                auth,
                frame,
            }) => match decode_request(&frame) {
                Err(e) => {
                    warn!(
                        zxid = format_args!("{zxid:#x}"),
                        "a forwarded request does not decode: {e}"
                    );
                    (header(session, 0), undecodable)
                }
                Ok((h, req)) => {
                    let valid = self.tracker.touch(session, self.now.mono_ms);
                    if let Request::CloseSession = req {
                        self.tracker.set_closing(session);
                    }
                    let auth = AuthInfo { ids: auth };
                    self.prep_and_log(session, h.xid, valid, &auth, &req, zxid, None);
                    return;
                }
            },
        };
        self.log_txn(header, txn, None);
    }

    /// A forwarded request's place in its connection's reply order (its zxid is learned when it
    /// applies; the reply is matched by cxid), holding its budget places until answered.
    fn queue_forwarded(
        &mut self,
        id: ConnId,
        xid: i32,
        op: i32,
        sub_ops: Vec<i32>,
        at: Instant,
        admit: Option<Admission>,
    ) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.queue.push_back(Queued::Write {
                xid,
                op,
                zxid: FORWARDED,
                sub_ops,
                at,
                _admit: admit,
            });
        }
    }

    /// The sessions of this member's clients and the timeout each was told, for its PING answer
    /// to the leader (ZooKeeper's touch table: `long session, int timeout`).
    /// Sessions that connected here since the last PING answer are in it even if their
    /// connection is gone by then (a resumed session's new timeout must reach the leader).
    pub(super) fn session_touches(&mut self) -> Vec<u8> {
        let mut touches = self
            .replica
            .as_mut()
            .map(|r| std::mem::take(&mut r.touches))
            .unwrap_or_default();
        for (s, cid) in &self.session_conn {
            if let Some(c) = self.conns.get(cid) {
                touches.insert(*s, c.timeout);
            }
        }
        let mut b = Vec::with_capacity(12 * touches.len());
        for (s, timeout) in touches {
            b.extend_from_slice(&s.to_be_bytes());
            b.extend_from_slice(&timeout.to_be_bytes());
        }
        b
    }

    /// A session connected (or resumed) here with `timeout`: relayed with the next PING answer.
    pub(super) fn note_session(&mut self, session: i64, timeout: i32) {
        if let Some(r) = self.replica.as_mut().filter(|r| r.learning()) {
            r.touches.insert(session, timeout);
        }
    }

    /// The leader: a learner's clients are alive. A session resumed there with another timeout
    /// expires by the one its client was told.
    pub(super) fn touch_sessions(&mut self, data: &[u8]) {
        let now = self.now.mono_ms;
        for t in data.chunks_exact(12) {
            let id = i64::from_be_bytes(t[..8].try_into().expect("8 bytes"));
            let timeout = i32::from_be_bytes(t[8..].try_into().expect("4 bytes"));
            if timeout > 0 && self.tracker.timeout(id).is_some_and(|old| old != timeout) {
                self.tracker.resume(id, timeout, now);
            } else {
                self.tracker.touch(id, now);
            }
        }
    }

    /// Closes a connection once what was queued for it is written.
    pub(super) fn close_conn(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.closing = true;
            self.dirty.push(id);
        }
    }
}

/// The zxid a forwarded write waits with in its connection's queue (its real one is learned when
/// the txn applies; the reply is matched by cxid).
pub(super) const FORWARDED: Zxid = -1;

/// Whether `q` is a `sync` waiting for the peer (its place in its connection's queue).
pub(super) fn is_pending_sync(q: &Queued) -> bool {
    matches!(q, Queued::Write { op, zxid, .. } if *op == op::SYNC && *zxid == FORWARDED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_requests_round_trip_and_garbage_is_refused() {
        for f in [
            Forward::CreateSession {
                session: 0x0102_0000_0000_0007,
                timeout: 4000,
                passwd: vec![9; 16],
            },
            Forward::Request {
                session: 5,
                auth: vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:x")],
                frame: Request::Sync { path: "/a".into() }
                    .encode_frame(7)
                    .split_off(4),
            },
            Forward::Error {
                session: 5,
                cxid: 8,
                err: -2,
            },
        ] {
            assert_eq!(Forward::decode(&f.encode()).unwrap(), f);
        }
        // The request frame a follower forwards is one the leader decodes.
        let req = Request::SetData {
            path: "/p".into(),
            data: Some(b"v".to_vec()),
            version: 3,
        };
        let (h, back) = decode_request(&req.encode_frame(11).split_off(4)).unwrap();
        assert_eq!((h.xid, back), (11, req));
        assert!(Forward::decode(&[0, 0, 0, 9]).is_err());
        assert!(Forward::decode(&[0, 0]).is_err());
    }
}
