//! Unit tests of the core's sequencing rules, driven one input at a time with injected time
//! ([`Now`]): a [`MemStorage`] whose commits the test runs and feeds back as inputs, and
//! connections that record the bytes the core sends them.

use std::time::Duration;

use wazoo_proto::{Acl, ConnectResponse, CreateRequest};
use wazoo_store::MemStore;

use crate::time::NoAlarm;

use super::*;

/// A reply as the client reads it: (xid, zxid, err); notifications have xid -1.
pub(crate) type Reply = (i32, Zxid, i32);

/// A standalone server's defaults (`ServerConfig::standalone_default` in `wazoo-server`).
pub(crate) fn standalone() -> CoreConfig {
    CoreConfig {
        tick_time_ms: 2000,
        server_id: 0,
        min_session_timeout_ms: 4000,
        max_session_timeout_ms: 40_000,
        max_outstanding_per_connection: 64,
        large_request_threshold: 16 << 10,
        max_connection_output_bytes: 1 << 20,
        large_write_bytes_per_second: 64 << 20,
        jute_max_buffer: wazoo_proto::frame::DEFAULT_MAX_BUFFER,
        extended_types_enabled: false,
        reconfig_enabled: false,
        super_digest: None,
        container_max_never_used_ms: 0,
        log_retain_txns: 100_000,
        snap_chunk_bytes: crate::snapshot::CHUNK,
    }
}

pub(crate) struct Harness {
    pub(crate) core: Core,
    storage: MemStorage,
    pub(crate) now: Now,
    sinks: HashMap<ConnId, Arc<RecordingSink>>,
}

impl Harness {
    pub(crate) fn new(cfg: CoreConfig) -> Harness {
        let storage = MemStorage::new(MemStore::new());
        let now = Now {
            at: Instant::now(),
            mono_ms: 1_000_000,
            wall_ms: 1_700_000_000_000,
        };
        let recovered = Recovered {
            tree: DataTree::new(),
            first_batch: Batch::default(),
            next_zxid: 1,
            persisted: 0,
        };
        let wiring = Wiring {
            storage: Box::new(storage.clone()),
            pace_alarm: Box::new(NoAlarm),
            metrics: Arc::new(Metrics::new()),
            gauges: Arc::new(Gauges::new()),
            started: now.at,
        };
        let mut core = Core::new(Arc::new(cfg), recovered, wiring, now, [7; 32]);
        core.start(now).expect("a standalone core starts");
        Harness {
            core,
            storage,
            now,
            sinks: HashMap::new(),
        }
    }

    pub(crate) fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    pub(crate) fn input(&mut self, msg: CoreMsg) {
        self.core
            .handle(self.now, msg)
            .expect("the core handles it");
    }

    /// Runs the core until it waits for nothing: hands its batches to storage and feeds every
    /// completion back, as the run loop does.
    pub(crate) fn settle(&mut self) {
        loop {
            self.core.flush(false);
            let Some(report) = self.storage.commit_next() else {
                return;
            };
            self.input(CoreMsg::Durable(report));
        }
    }

    /// A new session on connection `id`; returns its id.
    pub(crate) fn connect(&mut self, id: ConnId) -> i64 {
        self.connect_to(id, 0, vec![0; 16]).session_id
    }

    /// Connection `id` for session `session_id` (0: a new one) with `passwd`; the handshake's
    /// reply.
    pub(crate) fn connect_to(
        &mut self,
        id: ConnId,
        session_id: i64,
        passwd: Vec<u8>,
    ) -> ConnectResponse {
        let sink = Arc::new(RecordingSink::default());
        self.sinks.insert(id, sink.clone());
        self.input(CoreMsg::Connect {
            conn: id,
            remote: "127.0.0.1:40000".parse().unwrap(),
            req: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout: 10_000,
                session_id,
                passwd,
                read_only: None,
            },
            out: sink,
            received_ms: self.now.mono_ms,
        });
        self.settle();
        let frames = self.frames(id);
        assert_eq!(frames.len(), 1, "one handshake reply");
        ConnectResponse::decode(&frames[0]).expect("a ConnectResponse")
    }

    fn request_sized(&mut self, id: ConnId, xid: i32, req: Request, size: usize) {
        let request = ClientRequest {
            xid,
            op: req.opcode(),
            req: Ok(req),
            size,
            received_ms: self.now.mono_ms,
            admit: Admission::none(),
        };
        self.input(CoreMsg::Request { conn: id, request });
    }

    pub(crate) fn request(&mut self, id: ConnId, xid: i32, req: Request) {
        self.request_sized(id, xid, req, 64);
    }

    /// The frames sent to connection `id` since the last call, without their length prefix.
    pub(crate) fn frames(&mut self, id: ConnId) -> Vec<Vec<u8>> {
        self.sinks[&id].frames()
    }

    /// The replies sent to connection `id` since the last call.
    pub(crate) fn replies(&mut self, id: ConnId) -> Vec<Reply> {
        self.frames(id)
            .iter()
            .map(|f| {
                (
                    i32::from_be_bytes(f[0..4].try_into().unwrap()),
                    i64::from_be_bytes(f[4..12].try_into().unwrap()),
                    i32::from_be_bytes(f[12..16].try_into().unwrap()),
                )
            })
            .collect()
    }
}

pub(crate) fn create(path: &str, flags: i32) -> Request {
    Request::Create(CreateRequest {
        op: op::CREATE,
        path: path.to_owned(),
        data: Some(b"x".to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    })
}

pub(crate) fn get(path: &str) -> Request {
    Request::GetData {
        path: path.to_owned(),
        watch: false,
    }
}

const EPHEMERAL: i32 = 1;
const NONODE: i32 = -101;

/// zk-protocol.md (replies in request order): a read pipelined behind a write of the same
/// connection is answered only once the write has applied, after the write's reply, and sees it.
#[test]
fn a_read_behind_a_write_is_answered_after_the_write_and_sees_it() {
    let mut h = Harness::new(standalone());
    h.connect(1);
    h.request(1, 1, create("/a", 0));
    h.request(1, 2, get("/a"));
    h.core.flush(false);
    assert_eq!(
        h.replies(1),
        vec![],
        "nothing is answered before the write is durable"
    );
    h.settle();
    let replies = h.replies(1);
    assert_eq!(
        replies.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        vec![(1, 0), (2, 0)]
    );
    assert_eq!(
        replies[0].1, replies[1].1,
        "the read reports the write's zxid"
    );
}

/// Issue 9, item 1 (ZooKeeper's touchSession): requests pipelined behind a closeSession are
/// dropped unanswered and take no zxid, so an ephemeral can never outlive its session.
#[test]
fn requests_behind_a_close_session_get_no_reply_and_no_zxid() {
    let mut h = Harness::new(standalone());
    h.connect(1);
    h.request(1, 1, Request::CloseSession);
    h.request(1, 2, create("/e", EPHEMERAL));
    h.request(1, 3, get("/e"));
    h.settle();
    let replies = h.replies(1);
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1]);
    let close_zxid = replies[0].1;
    assert!(h.sinks[&1].is_closed());
    h.connect(2);
    h.request(2, 1, create("/x", 0));
    h.request(2, 2, get("/e"));
    h.settle();
    let replies = h.replies(2);
    assert_eq!(
        replies[0],
        (1, close_zxid + 2, 0),
        "the next txn after the second createSession"
    );
    assert_eq!((replies[1].0, replies[1].2), (2, NONODE));
}

/// Pacing (`pace.rs`) as the core applies it: while another connection is being served, a large
/// write beyond the bucket waits unprocessed, and goes at the instant the pacer named.
#[test]
fn a_large_write_waits_for_its_pace_while_others_are_served() {
    let mut cfg = standalone();
    cfg.large_write_bytes_per_second = 1 << 20; // a bucket of 0.1 MiB
    let mut h = Harness::new(cfg);
    h.connect(1);
    h.connect(2);
    h.request(1, 1, create("/big", 0));
    h.settle();
    assert_eq!(h.replies(1).len(), 1);
    let big = |xid| {
        (
            xid,
            Request::SetData {
                path: "/big".to_owned(),
                data: Some(vec![0x5a; 200 << 10]),
                version: -1,
            },
        )
    };
    // Connection 2 is being served; the first large write takes the bucket into debt (0.1 MiB),
    // the second waits for it to be paid, about 0.1 s.
    h.request(2, 1, get("/big"));
    let (x, r) = big(2);
    h.request_sized(1, x, r, 200 << 10);
    let (x, r) = big(3);
    h.request_sized(1, x, r, 200 << 10);
    h.settle();
    assert_eq!(
        h.replies(1).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2]
    );
    h.advance(Duration::from_millis(40));
    h.request(2, 2, get("/big"));
    h.input(CoreMsg::PaceLarge);
    h.settle();
    assert_eq!(h.replies(1), vec![], "still paying the debt at +40 ms");
    h.advance(Duration::from_millis(80));
    h.request(2, 3, get("/big"));
    h.input(CoreMsg::PaceLarge);
    h.settle();
    assert_eq!(
        h.replies(1).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![3]
    );
}

pub(crate) fn set_data(path: &str) -> Request {
    Request::SetData {
        path: path.to_owned(),
        data: Some(b"y".to_vec()),
        version: -1,
    }
}

/// zk-protocol.md (watches): the watch event reaches the watcher before the reply that reveals the
/// change, here on the same connection.
#[test]
fn a_watch_event_comes_before_the_reply_that_reveals_the_change() {
    let mut h = Harness::new(standalone());
    h.connect(1);
    h.request(1, 1, create("/w", 0));
    h.request(
        1,
        2,
        Request::GetData {
            path: "/w".to_owned(),
            watch: true,
        },
    );
    h.settle();
    assert_eq!(h.replies(1).len(), 2);
    h.request(1, 3, set_data("/w"));
    h.settle();
    let replies = h.replies(1);
    assert_eq!(
        replies.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        vec![(-1, 0), (3, 0)]
    );
}

pub(crate) fn tick(h: &mut Harness) {
    let at_ms = h.now.mono_ms;
    h.input(CoreMsg::Tick { at_ms });
    h.settle();
}

fn exists_for_a_new_session(h: &mut Harness, conn: ConnId, path: &str) -> i32 {
    h.connect(conn);
    h.request(conn, 1, get(path));
    h.settle();
    h.replies(conn)[0].2
}

/// A session that sends nothing for longer than its timeout (10 s) expires at the next tick, and
/// its ephemeral is deleted by the closeSession that expiry commits.
#[test]
fn a_silent_session_expires_at_a_tick_past_its_timeout_with_its_ephemerals() {
    let mut h = Harness::new(standalone());
    h.connect(1);
    h.request(1, 1, create("/eph", EPHEMERAL));
    h.settle();
    h.advance(Duration::from_secs(5));
    tick(&mut h);
    assert_eq!(
        exists_for_a_new_session(&mut h, 2, "/eph"),
        0,
        "alive at +5 s"
    );
    h.advance(Duration::from_secs(20));
    tick(&mut h);
    assert_eq!(exists_for_a_new_session(&mut h, 3, "/eph"), NONODE);
}

/// Issue 9, item 5: pings keep a session alive however long it lives, and a ping the connection
/// received before the tick counts even while it still waits behind the tick in the inbox.
#[test]
fn pings_keep_a_session_alive_even_when_the_tick_overtakes_them() {
    let mut h = Harness::new(standalone());
    h.connect(1);
    h.request(1, 1, create("/eph", EPHEMERAL));
    h.settle();
    for xid in 2..7 {
        h.advance(Duration::from_secs(6));
        h.request(1, xid, Request::Ping);
        tick(&mut h);
    }
    assert_eq!(
        exists_for_a_new_session(&mut h, 2, "/eph"),
        0,
        "alive at +30 s"
    );
    // 9 s of silence as far as the core knows, then the connection receives a ping; the tick
    // 5 s later (past the 10 s timeout and the tick it rounds up to) is handled before that ping
    // reaches the core.
    h.advance(Duration::from_secs(9));
    h.sinks[&1].received_at(h.now.mono_ms);
    h.advance(Duration::from_secs(5));
    tick(&mut h);
    assert_eq!(
        exists_for_a_new_session(&mut h, 3, "/eph"),
        0,
        "the received ping counted"
    );
    h.advance(Duration::from_secs(30));
    tick(&mut h);
    assert_eq!(exists_for_a_new_session(&mut h, 4, "/eph"), NONODE);
}
