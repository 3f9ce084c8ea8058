//! The simulated clients: each a sequential ZooKeeper client with a session, on one server at a
//! time, speaking to the core through a [`ConnSink`] and [`ClientRequest`]s exactly as a
//! connection task does (the frames it reads back are the bytes a socket would carry). A client
//! whose connection is closed or silent past its read timeout moves its session, with its id,
//! password and last zxid seen, to another server, as ZooKeeper's clients do; one told its
//! session expired starts a new one.

use super::*;
use std::sync::Arc;

use wazoo_proto::{op, ConnectResponse, OpResult, Reader, Response, Stat};
use wazoo_zab::Sid;

use super::history::{Kind, Op, Outcome};
use super::lock;

/// A client's live connection.
pub(super) struct Conn {
    pub(super) sid: Sid,
    /// The incarnation of the server it is on.
    pub(super) inc: u64,
    pub(super) id: u64,
    pub(super) sink: Arc<RecordingSink>,
    /// The ConnectResponse has arrived.
    pub(super) ready: bool,
    pub(super) opened_at: u64,
}

/// What the client waits for.
pub(super) enum Waiting {
    Nothing,
    /// The reply to `xid`: the history entry `op`; `sync_first`: it is the sync of a
    /// sync-then-read, whose read is sent when it returns.
    Reply {
        xid: i32,
        op: usize,
        sync_first: bool,
    },
}

pub(super) struct Client {
    pub(super) id: usize,
    pub(super) conn: Option<Conn>,
    pub(super) session: i64,
    pub(super) passwd: Vec<u8>,
    pub(super) last_zxid: i64,
    pub(super) waiting: Waiting,
    /// When the waited-for request was sent (for the read timeout).
    pub(super) sent_at: u64,
    /// When this client last sent anything (pings go out when it has been quiet).
    pub(super) last_send: u64,
    pub(super) next_xid: i32,
    /// Writes and creates numbered per client, for unique tags and paths.
    pub(super) counter: u64,
    /// The last version this client read or wrote per key (for CAS writes).
    pub(super) versions: Vec<Option<i32>>,
    /// Per key, the version a data watch of this connection was set at and has not fired since.
    pub(super) watches: Vec<Option<i32>>,
    /// The key whose read in flight sets a watch.
    pub(super) watching: Option<usize>,
    /// The session has an ephemeral node already.
    pub(super) has_ephemeral: bool,
    /// A recipe call (a counter add, a lock acquire or release) whose connection was lost
    /// before its answer: sent again, under the same request id, on the session's next
    /// connection.
    pub(super) retry: Option<Kind>,
    /// The lock node this session holds (granted and not released).
    pub(super) holding: Option<String>,
    /// Not before this time does it send its next operation (think time, reconnect backoff).
    pub(super) idle_until: u64,
    /// Its next step: when, and the generation of the event scheduled for it.
    pub(super) step: (Option<u64>, u64),
}

impl Client {
    pub(super) fn new(id: usize, keys: usize) -> Client {
        Client {
            id,
            conn: None,
            session: 0,
            passwd: vec![0; 16],
            last_zxid: 0,
            waiting: Waiting::Nothing,
            sent_at: 0,
            last_send: 0,
            next_xid: 1,
            counter: 0,
            versions: vec![None; keys],
            watches: vec![None; keys],
            watching: None,
            has_ephemeral: false,
            retry: None,
            holding: None,
            idle_until: 0,
            step: (None, 0),
        }
    }

    pub(super) fn xid(&mut self) -> i32 {
        self.next_xid += 1;
        self.next_xid
    }
}

/// A reply as read off the connection.
pub(super) struct ReplyFrame {
    pub(super) xid: i32,
    pub(super) zxid: i64,
    pub(super) err: i32,
    pub(super) body: Vec<u8>,
}

pub(super) fn parse_reply(frame: &[u8]) -> Option<ReplyFrame> {
    let mut r = Reader::new(frame);
    let xid = r.read_i32().ok()?;
    let zxid = r.read_i64().ok()?;
    let err = r.read_i32().ok()?;
    Some(ReplyFrame {
        xid,
        zxid,
        err,
        body: frame[16..].to_vec(),
    })
}

pub(super) fn parse_connect(frame: &[u8]) -> Option<ConnectResponse> {
    ConnectResponse::decode(frame).ok()
}

/// The outcome of a recipe call answered "aborted" (not a ZooKeeper code).
pub(super) const RECIPE_ABORTED: i32 = -1_000_000;

/// The outcome of an operation from its reply.
pub(super) fn outcome(kind: &Kind, reply: &ReplyFrame) -> Outcome {
    if reply.err != 0 {
        return Outcome::Err(reply.err);
    }
    let mut r = Reader::new(&reply.body);
    match kind {
        Kind::Read { .. } => {
            let data = r.read_buffer().ok().flatten().unwrap_or_default().to_vec();
            match Stat::read(&mut r) {
                Ok(stat) => Outcome::Ok {
                    version: stat.version,
                    data,
                },
                Err(_) => Outcome::Unknown,
            }
        }
        Kind::Add { .. } | Kind::Acquire { .. } | Kind::Release { .. } => {
            match Response::decode_body(op::RECIPE_CALL, &mut r) {
                Ok(Response::RecipeCall {
                    aborted: false,
                    output,
                }) => Outcome::Ok {
                    version: 0,
                    data: output,
                },
                Ok(Response::RecipeCall { aborted: true, .. }) => Outcome::Err(RECIPE_ABORTED),
                _ => Outcome::Unknown,
            }
        }
        Kind::Set { .. } => match Stat::read(&mut r) {
            Ok(stat) => Outcome::Ok {
                version: stat.version,
                data: Vec::new(),
            },
            Err(_) => Outcome::Unknown,
        },
        Kind::Multi { sets } => {
            let Ok(Response::Multi(results)) = Response::decode_body(op::MULTI, &mut r) else {
                return Outcome::Unknown;
            };
            // A failed multi: every result an error (the failing op's code, the others'
            // RUNTIMEINCONSISTENCY); all of its ops or none took effect.
            if let Some(code) = results.iter().find_map(|res| match res {
                OpResult::Error(c) if *c != 0 => Some(*c),
                _ => None,
            }) {
                return Outcome::Err(code);
            }
            let versions: Vec<i32> = results
                .iter()
                .filter_map(|res| match res {
                    OpResult::SetData { stat } => Some(stat.version),
                    _ => None,
                })
                .collect();
            if versions.len() != sets.len() {
                return Outcome::Unknown;
            }
            Outcome::MultiOk(versions)
        }
        _ => Outcome::Ok {
            version: 0,
            data: Vec::new(),
        },
    }
}

/// A new history entry for `client`.
pub(super) fn op(client: &Client, kind: Kind, now: u64) -> Op {
    Op {
        client: client.id,
        session: client.session,
        kind,
        invoked: now,
        completed: None,
        outcome: Outcome::Pending,
        zxid: 0,
    }
}

// The clients, driven by the world.
impl super::World {
    /// Client `c` steps at `t`, unless it already steps at or before `t`.
    pub(super) fn wake(&mut self, c: usize, t: u64) {
        let step = &mut self.clients[c].step;
        if step.0.is_some_and(|s| s <= t) {
            return;
        }
        step.1 += 1;
        step.0 = Some(t);
        let gen = step.1;
        self.at(t, Event::ClientStep { client: c, gen });
    }

    pub(super) fn send(&mut self, c: usize, msg: CoreMsg) {
        let Some(k) = self.clients[c].conn.as_ref() else {
            return;
        };
        let (sid, inc, sink) = (k.sid, k.inc, k.sink.clone());
        // FIFO per connection: never before what this client sent last.
        let t = (self.now + self.rng.random_range(0..2)).max(self.clients[c].last_send);
        self.clients[c].last_send = t;
        self.at(
            t,
            Event::ClientSend {
                sid,
                inc,
                sink,
                msg,
            },
        );
    }

    pub(super) fn request(&mut self, c: usize, req: Request) -> i32 {
        let xid = match req {
            Request::Ping => -2,
            // ZooKeeper's clients send it with this xid and skip its reply.
            Request::SetWatches(_) => wazoo_proto::xid::SET_WATCHES,
            _ => self.clients[c].xid(),
        };
        let (conn, sid) = self.clients[c]
            .conn
            .as_ref()
            .map_or((0, 1), |k| (k.id, k.sid));
        if self.trace_len > TRACE {
            self.note(format!("client {c} -> {sid}: xid {xid} {req:?}"));
        }
        let request = ClientRequest {
            xid,
            op: req.opcode(),
            req: Ok(req),
            size: 64,
            received_ms: self.now_at(sid).mono_ms,
            admit: Admission::none(),
        };
        self.send(c, CoreMsg::Request { conn, request });
        xid
    }

    pub(super) fn read_timeout(&self) -> u64 {
        self.cfg.session_timeout_ms as u64 * 2 / 3
    }

    pub(super) fn client_step(&mut self, c: usize) -> Step {
        let now = self.now;
        if self.clients[c].conn.is_none() {
            if self.stopping && matches!(self.clients[c].waiting, Waiting::Nothing) {
                return Ok(());
            }
            if now < self.clients[c].idle_until {
                let t = self.clients[c].idle_until;
                self.wake(c, t);
                return Ok(());
            }
            return self.connect(c);
        }
        let k = self.clients[c].conn.as_ref().expect("connected");
        let (closed, ready, opened_at) = (k.sink.is_closed(), k.ready, k.opened_at);
        if closed {
            self.lost(c);
            return Ok(());
        }
        let timeout = self.read_timeout();
        if !ready {
            if now >= opened_at + timeout {
                self.abandon(c);
            } else {
                self.wake(c, opened_at + timeout);
            }
            return Ok(());
        }
        if let Waiting::Reply { .. } = self.clients[c].waiting {
            if now >= self.clients[c].sent_at + timeout {
                self.abandon(c);
                return Ok(());
            }
            self.ping_if_quiet(c);
            let t = (self.clients[c].sent_at + timeout).min(now + timeout / 3);
            self.wake(c, t);
            return Ok(());
        }
        if now < self.clients[c].idle_until {
            let t = self.clients[c].idle_until;
            self.wake(c, t);
            return Ok(());
        }
        if c == 0 && !self.setup.is_empty() {
            let req = self.setup.front().cloned().expect("not empty");
            let xid = self.request(c, req);
            self.clients[c].waiting = Waiting::Reply {
                xid,
                op: usize::MAX,
                sync_first: false,
            };
            self.clients[c].sent_at = now;
            self.wake(c, now + timeout);
            return Ok(());
        }
        if self.stopping || (!self.chaos && self.healed_at.is_none()) {
            // Before the setup is done, or once the run is ending: only keep the session alive.
            self.ping_if_quiet(c);
            if !self.stopping {
                self.wake(c, now + timeout / 3);
            }
            return Ok(());
        }
        self.next_op(c);
        Ok(())
    }

    pub(super) fn ping_if_quiet(&mut self, c: usize) {
        let quiet = self.cfg.session_timeout_ms as u64 / 3;
        if self.now >= self.clients[c].last_send + quiet {
            self.request(c, Request::Ping);
        }
    }

    pub(super) fn connect(&mut self, c: usize) -> Step {
        let up: Vec<Sid> = self
            .nodes
            .iter()
            .filter(|n| n.live.is_some())
            .map(|n| n.sid)
            .collect();
        if up.is_empty() {
            self.clients[c].idle_until = self.now + 50;
            self.wake(c, self.now + 50);
            return Ok(());
        }
        let sid = up[self.rng.random_range(0..up.len())];
        self.next_conn += 1;
        let sink = Arc::new(RecordingSink::default());
        let client = &mut self.clients[c];
        if client.session != 0 {
            self.report.session_moves += 1;
        }
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: client.last_zxid,
            timeout: self.cfg.session_timeout_ms,
            session_id: client.session,
            passwd: client.passwd.clone(),
            read_only: None,
        };
        client.conn = Some(Conn {
            sid,
            inc: self.nodes[Self::idx(sid)].inc,
            id: self.next_conn,
            sink: sink.clone(),
            ready: false,
            opened_at: self.now,
        });
        client.last_send = self.now;
        let received_ms = self.now_at(sid).mono_ms;
        let msg = CoreMsg::Connect {
            conn: self.next_conn,
            remote: "127.0.0.1:40000".parse().expect("an address"),
            req,
            out: sink,
            received_ms,
        };
        self.send(c, msg);
        let t = self.now + self.read_timeout();
        self.wake(c, t);
        Ok(())
    }

    /// The connection is gone: what was waited for is unknown; reconnect after a backoff.
    pub(super) fn lost(&mut self, c: usize) {
        let backoff = self.rng.random_range(10..100);
        let client = &mut self.clients[c];
        client.conn = None;
        // Armed watches stay: the client sets them again on its next connection (SetWatches),
        // as ZooKeeper's do; a read in flight set none.
        client.watching = None;
        if let Waiting::Reply { op, .. } = std::mem::replace(&mut client.waiting, Waiting::Nothing)
        {
            if op != usize::MAX {
                self.ops[op].outcome = Outcome::Unknown;
                if super::workload::recipe_call(&self.ops[op].kind).is_some() {
                    client.retry = Some(self.ops[op].kind.clone());
                }
            }
        }
        client.idle_until = self.now + backoff;
        self.wake(c, self.now + backoff);
    }

    /// The client gives up on its connection (no answer within its read timeout) and closes it.
    pub(super) fn abandon(&mut self, c: usize) {
        if let Some(k) = self.clients[c].conn.as_ref() {
            let conn = k.id;
            self.send(c, CoreMsg::Closed { conn });
        }
        self.lost(c);
    }

    /// Reads what client `c`'s server sent it.
    pub(super) fn client_read(&mut self, c: usize) -> Step {
        let Some(k) = self.clients[c].conn.as_ref() else {
            return Ok(());
        };
        let frames = k.sink.frames();
        for f in frames {
            let Some(ready) = self.clients[c].conn.as_ref().map(|k| k.ready) else {
                return Ok(());
            };
            if !ready {
                let resp = client::parse_connect(&f).ok_or("an undecodable ConnectResponse")?;
                let client = &mut self.clients[c];
                if resp.timeout <= 0 || resp.session_id == 0 {
                    // Expired: a new session, on a new connection.
                    if client.session != 0 {
                        let session = client.session;
                        let sid = client.conn.as_ref().map_or(0, |k| k.sid);
                        self.expired.insert(session);
                        self.note(format!(
                            "client {c}: {sid} says session {session:#x} expired"
                        ));
                    }
                    let client = &mut self.clients[c];
                    client.session = 0;
                    client.retry = None;
                    client.holding = None;
                    client.passwd = vec![0; 16];
                    client.has_ephemeral = false;
                    // The session's watches went with it.
                    client.watches.iter_mut().for_each(|w| *w = None);
                    self.abandon(c);
                    return Ok(());
                }
                if client.session != 0 && client.session != resp.session_id {
                    return Err(format!(
                        "client {c} resumed session {:#x} and got session {:#x}",
                        client.session, resp.session_id
                    ));
                }
                let moved = client.session != 0;
                client.session = resp.session_id;
                client.passwd = resp.passwd;
                if let Some(k) = client.conn.as_mut() {
                    k.ready = true;
                }
                // A moved session sets its armed data watches again, relative to the last zxid
                // it saw: the server fires at once those whose node changed since.
                let data: Vec<String> = client
                    .watches
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| w.is_some())
                    .map(|(k, _)| history::key_path(k))
                    .collect();
                if moved && !data.is_empty() {
                    let relative_zxid = client.last_zxid;
                    self.report.watches_set_again += data.len() as u64;
                    self.request(
                        c,
                        Request::SetWatches(wazoo_proto::SetWatches {
                            relative_zxid,
                            data,
                            exist: Vec::new(),
                            child: Vec::new(),
                            persistent: Vec::new(),
                            persistent_recursive: Vec::new(),
                        }),
                    );
                } else if !moved {
                    client.watches.iter_mut().for_each(|w| *w = None);
                }
                self.wake(c, self.now);
                continue;
            }
            let reply = client::parse_reply(&f).ok_or("an undecodable reply")?;
            if self.trace_len > TRACE {
                self.note(format!(
                    "client {c} <- xid {} zxid {:#x} err {}",
                    reply.xid, reply.zxid, reply.err
                ));
            }
            if reply.xid == -1 {
                // A watch event: the key's watch has fired.
                let mut r = Reader::new(&reply.body);
                let (_ty, _state) = (r.read_i32(), r.read_i32());
                let path = r
                    .read_string()
                    .map_err(|e| format!("a bad watch event: {e}"))?;
                if let Some(k) = path
                    .strip_prefix("/k")
                    .and_then(|k| k.parse::<usize>().ok())
                {
                    if let Some(w) = self.clients[c].watches.get_mut(k) {
                        *w = None;
                        self.report.watch_events += 1;
                    }
                }
                continue;
            }
            if reply.xid == -2 || reply.xid == wazoo_proto::xid::SET_WATCHES {
                continue; // a ping's or a SetWatches' reply
            }
            let client = &mut self.clients[c];
            if reply.zxid > 0 {
                client.last_zxid = client.last_zxid.max(reply.zxid);
            }
            let Waiting::Reply {
                xid,
                op,
                sync_first,
            } = client.waiting
            else {
                return Err(format!(
                    "client {c} got a reply to xid {} it never sent",
                    reply.xid
                ));
            };
            if reply.xid != xid {
                return Err(format!(
                    "client {c} got the reply to xid {} while waiting for xid {xid}",
                    reply.xid
                ));
            }
            if op == usize::MAX {
                // A setup create (NODEEXISTS: an earlier try of it got through).
                if reply.err != 0 && reply.err != -110 {
                    return Err(format!("setup create failed with {}", reply.err));
                }
                self.setup.pop_front();
                client.waiting = Waiting::Nothing;
                if self.setup.is_empty() {
                    self.chaos = true;
                    let t = self.now + self.rng.random_range(0..self.cfg.fault_every_ms);
                    self.at(t, Event::Fault);
                    self.at(self.now + self.cfg.chaos_ms, Event::EndChaos);
                    for other in 0..self.clients.len() {
                        self.wake(other, self.now);
                    }
                }
                self.wake(c, self.now);
                continue;
            }
            if sync_first && reply.err == 0 {
                // The sync returned: now the read.
                let Kind::Read { key, .. } = self.ops[op].kind else {
                    unreachable!("a sync-then-read")
                };
                let xid = self.request(c, get(&history::key_path(key)));
                self.clients[c].waiting = Waiting::Reply {
                    xid,
                    op,
                    sync_first: false,
                };
                continue;
            }
            let outcome = client::outcome(&self.ops[op].kind, &reply);
            let entry = &mut self.ops[op];
            entry.outcome = outcome.clone();
            entry.completed = Some(self.now);
            entry.zxid = reply.zxid;
            let client = &mut self.clients[c];
            client.waiting = Waiting::Nothing;
            match (&entry.kind, &outcome) {
                (Kind::Set { key, .. } | Kind::Read { key, .. }, Outcome::Ok { version, .. }) => {
                    client.versions[*key] = Some(*version);
                    // ZooKeeper's order: a connection sees a watch event before any reply that
                    // reveals the change it is about (zk-protocol.md; the core's apply queues
                    // the event first, on a learner too).
                    if let Some(armed) = client.watches[*key] {
                        if *version > armed {
                            return Err(format!(
                                "client {c} saw {} at version {version} before the event of the \
                                 watch it set at version {armed}",
                                history::key_path(*key)
                            ));
                        }
                    }
                    if client.watching.take() == Some(*key) {
                        let w = &mut client.watches[*key];
                        *w = Some(w.map_or(*version, |a| a.min(*version)));
                    }
                }
                (Kind::Set { key, .. }, Outcome::Err(_)) => client.versions[*key] = None,
                (Kind::Multi { sets }, Outcome::MultiOk(versions)) => {
                    for ((key, _, _), version) in sets.iter().zip(versions) {
                        client.versions[*key] = Some(*version);
                        if let Some(armed) = client.watches[*key] {
                            if version > &armed {
                                return Err(format!(
                                    "client {c} saw {} at version {version} (its multi) before \
                                     the event of the watch it set at version {armed}",
                                    history::key_path(*key)
                                ));
                            }
                        }
                    }
                }
                (Kind::Multi { sets }, Outcome::Err(_)) => {
                    for (key, _, _) in sets {
                        client.versions[*key] = None;
                    }
                }
                (Kind::Read { .. }, _) => client.watching = None,
                (Kind::Ephemeral { .. }, Outcome::Ok { .. }) => client.has_ephemeral = true,
                (Kind::Acquire { .. }, Outcome::Ok { data, .. }) => {
                    if let Some(&(lock::GRANTED | lock::GRANTED_AFTER_WAIT)) = data.first() {
                        client.holding = Some(String::from_utf8_lossy(&data[1..]).into_owned());
                    }
                }
                // Released, or not held any more (its node went with an earlier session).
                (Kind::Release { .. }, Outcome::Ok { .. } | Outcome::Err(_)) => {
                    client.holding = None
                }
                (Kind::Close, Outcome::Ok { .. }) => {
                    client.session = 0;
                    client.retry = None;
                    client.holding = None;
                    client.passwd = vec![0; 16];
                    client.has_ephemeral = false;
                    client.conn = None;
                    client.watches.iter_mut().for_each(|w| *w = None);
                }
                _ => {}
            }
            let think = self.rng.random_range(0..=self.cfg.think_ms);
            self.clients[c].idle_until = self.now + think;
            self.wake(c, self.now + think);
        }
        Ok(())
    }
}
