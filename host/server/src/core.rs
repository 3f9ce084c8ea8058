//! The core task: the single owner of the DataTree, the outstanding changes, the watch registry,
//! the session tracker and the connection table. Connections send it decoded requests; it preps
//! writes, hands them to the storage worker (group commit), applies them once durable, fires watches
//! and queues replies, keeping ZooKeeper's ordering rules:
//!
//! - per connection, replies leave in request order (reads wait behind that connection's writes);
//! - a watch notification is queued before any reply that reveals its change (apply, notify and
//!   reply happen in one step on this task, in commit order);
//! - a write is acknowledged only after its txn is durable.
//!
//! All the decisions are made by the pure crates (`wazoo-tree` prep/apply/reads); this task only
//! sequences them. It processes messages in bursts and flushes once per burst: one storage batch,
//! one socket write per connection.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};
use wazoo_admin::metrics::{Counter, Metrics, Op, SummaryKind};
use wazoo_admin::published::Gauges;
use wazoo_admin::stats::{ConnectionStats, SessionDump};
use wazoo_proto::{
    encode_notification, encode_reply, encode_txn, op, perms, ConnectRequest, ConnectResponse,
    ErrorCode, MultiOp, OpResult, Request, Response, Txn, TxnHeader, Writer, Zxid,
};
use wazoo_store::{Batch, CommitReport, GroupCommitter, LogEntry};
use wazoo_tree::acl::{authenticate, check_acl};
use wazoo_tree::{
    prep, read, set_watches, AuthInfo, DataTree, OpOutcome, PendingChanges, PrepConfig, PrepCtx,
    ReadCtx, SessionTracker, WatchRegistry,
};

use crate::admin_http::{Published, SessionChunk, WatchQuery, WatchTables};
use crate::config::ServerConfig;
pub use crate::conn::{Admission, ConnOut};

pub type ConnId = u64;

/// The core's per-request maps (connections, sessions' connections) with foldhash instead of
/// SipHash: several lookups per request, and SipHash was about 1.5% of getData 16x8's samples.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A connection's outgoing side (see [`ConnOut`]).
pub type ConnTx = Arc<ConnOut>;

/// Dirty tree entries (nodes and sessions) that make the core stage them for the store before the
/// next tick: bounds the memory they hold and the log a restart replays. Staging encodes every
/// dirty node on the core, a pause for every request: at 16k it took 8-28 ms (create 16x8, p99
/// 7.8-8.4 ms); at 4096 pauses stay under about 6 ms (p99 6.2-6.5 ms) at no measurable CPU cost.
const TREE_STAGE_DIRTY: usize = 4096;

/// Capacity a connection's reply buffer keeps between flushes (it is reused, not reallocated).
const OUT_BUF_KEEP: usize = 64 * 1024;

/// Largest batch (in txns) the core commits on its own thread when idle; see
/// `Core::hand_over_batch`.
const INLINE_COMMIT_MAX: usize = 4;

/// Reads of one connection queued behind its unapplied writes, beyond which its further requests
/// wait unprocessed (see `Core::can_take`). Each such read may answer up to a frame's worth of
/// data when the write ahead of it applies, all at once, so this bounds that burst of output; it
/// costs nothing else, since those reads could not be answered earlier anyway.
const MAX_QUEUED_READS: usize = 16;

/// Bytes of large writes (requests of at least `largeRequestThreshold`) prepped and not yet applied,
/// beyond which the next large write waits for one to apply: at most about this much bulk data rides
/// each group commit, so the fsync that small writes share with it stays short (one 1 MiB setData
/// after another would otherwise fill every commit with megabytes). Writers of large requests take
/// turns (`Core::waiting_large`). At least one large write is always allowed.
const LARGE_WRITES_IN_FLIGHT: usize = 1 << 20;

/// Tree bytes applied (data of creates and setData) that make the core stage the tree's changes
/// before `TREE_STAGE_DIRTY` nodes are dirty: a stream of large setData would otherwise keep
/// thousands of megabyte-sized encodings in the storage batch.
const TREE_STAGE_BYTES: usize = 16 << 20;

/// Messages to the core task.
pub enum CoreMsg {
    Connect {
        conn: ConnId,
        remote: SocketAddr,
        req: ConnectRequest,
        out: ConnTx,
        /// [`mono_ms`] when the connection read the ConnectRequest.
        received_ms: i64,
    },
    /// A decoded request; `Err` is an undecodable record (answered MARSHALLINGERROR, in order).
    Request {
        conn: ConnId,
        xid: i32,
        op: i32,
        req: Result<Request, ErrorCode>,
        /// Frame size in bytes, for the metrics.
        size: usize,
        /// [`mono_ms`] when the connection read the frame: the session's activity time.
        received_ms: i64,
        /// Its place in the outstanding-request budgets, held until it is answered or applied.
        admit: Admission,
    },
    Closed {
        conn: ConnId,
    },
    /// The connection's writer has written all queued output (asked for by the core when it held
    /// back the connection's requests: `ConnOut::want_drained`).
    Drained {
        conn: ConnId,
    },
    Durable(CommitReport),
    /// Session expiry, as of `at_ms` ([`mono_ms`] when the timer fired, not when the core gets to
    /// it: a tick that waited behind a stall must not count the stall against sessions).
    Tick {
        at_ms: i64,
    },
    ContainerCheck,
    /// An admin command that lists the core's tables (`cons`, `stat`, `dump`, `wchs`, `wchc`,
    /// `wchp`); every other command is answered from the published gauges, without the core.
    Admin(AdminQuery),
}

/// A piece of an admin listing. The core answers each in time bounded by the size of the piece
/// ([`ADMIN_CHUNK`] entries; see `admin_http` for the protocol), except the watch tables, which
/// it walks whole ([`AdminQuery::Watches`]).
pub enum AdminQuery {
    /// The ids of every session (of the tree) and every connection: integers only.
    Ids(oneshot::Sender<(Vec<i64>, Vec<ConnId>)>),
    /// The sessions `ids`, in order, with their ephemerals, the first one's from its `skip`th
    /// path on; the piece ends after [`ADMIN_CHUNK`] paths (see [`SessionChunk::resume`]).
    /// Sessions closed since are left out.
    Sessions {
        ids: Vec<i64>,
        skip: usize,
        reply: oneshot::Sender<SessionChunk>,
    },
    /// The connections `ids` (closed ones left out).
    Conns {
        ids: Vec<ConnId>,
        reply: oneshot::Sender<Vec<ConnectionStats>>,
    },
    /// The watch tables: `WatchRegistry` offers them only whole, so this one is not bounded.
    Watches {
        what: WatchQuery,
        reply: oneshot::Sender<WatchTables>,
    },
}

/// Entries (sessions, connections, ephemeral paths) of an admin listing per core message.
pub const ADMIN_CHUNK: usize = 1024;

enum Queued {
    /// The createSession txn of this connection is not applied yet.
    Handshake {
        read_only: Option<bool>,
        timeout: i32,
    },
    Write {
        xid: i32,
        op: i32,
        zxid: Zxid,
        sub_ops: Vec<i32>,
        at: Instant,
    },
    Read {
        xid: i32,
        op: i32,
        req: Result<Request, ErrorCode>,
        at: Instant,
        _admit: Admission,
    },
}

/// A request received while its connection could take no more (see `Core::can_take`), kept
/// unprocessed, in order: its session is checked and it is prepped when its turn comes.
struct Parked {
    xid: i32,
    op: i32,
    req: Result<Request, ErrorCode>,
    /// Frame size in bytes.
    size: usize,
    received_ms: i64,
    at: Instant,
    admit: Admission,
}

#[derive(Default)]
struct ConnStats {
    received: u64,
    sent: u64,
    last_op: &'static str,
    last_cxid: i32,
    last_zxid: Zxid,
    last_latency_ms: u64,
    min_latency_ms: u64,
    max_latency_ms: u64,
    total_latency_ms: u64,
    count: u64,
    last_response_ms: i64,
}

struct Conn {
    remote: SocketAddr,
    session: i64,
    timeout: i32,
    auth: AuthInfo,
    out: ConnTx,
    queue: VecDeque<Queued>,
    /// Number of `Queued::Read` in `queue`.
    queued_reads: usize,
    /// Requests received and not processed yet, in order.
    parked: VecDeque<Parked>,
    /// In `Core::waiting_large`.
    waiting_large: bool,
    buf: Writer,
    closing: bool,
    established_ms: i64,
    stats: ConnStats,
}

struct InFlight {
    header: TxnHeader,
    txn: Txn,
    origin: Option<ConnId>,
    /// The client request's place in the budgets: its memory (request, txn, log entry) lives
    /// until the txn is applied, whether or not its connection still exists.
    admit: Option<Admission>,
    /// Its bytes in `Core::large_in_flight` (a large write), else 0.
    large: usize,
}

/// The core's state.
pub struct Core {
    cfg: Arc<ServerConfig>,
    prep_cfg: PrepConfig,
    tree: DataTree,
    pending: PendingChanges,
    watches: WatchRegistry,
    tracker: SessionTracker,
    conns: FastMap<ConnId, Conn>,
    session_conn: FastMap<i64, ConnId>,
    committer: Arc<GroupCommitter>,
    batch: Batch,
    inflight: VecDeque<InFlight>,
    /// (batch seq, highest zxid in it) of submitted batches not yet durable.
    submitted: VecDeque<(u64, Zxid)>,
    next_zxid: Zxid,
    next_session_id: i64,
    dirty: Vec<ConnId>,
    metrics: Arc<Metrics>,
    /// Published for the admin commands: once per burst (`publish_burst`) and per tick
    /// (`publish_tables`).
    gauges: Arc<Gauges>,
    applied_since_purge: u64,
    /// The `last_applied` of the last staged tree changes.
    staged_applied: Zxid,
    /// Node data bytes applied since the tree's changes were last staged.
    applied_bytes: usize,
    /// Bytes of large writes prepped and not yet applied (see [`LARGE_WRITES_IN_FLIGHT`]).
    large_in_flight: usize,
    /// Connections whose next request is a large write waiting for `large_in_flight` to drop, in
    /// the order they started waiting.
    waiting_large: VecDeque<ConnId>,
}

/// Milliseconds on the server's monotonic clock, shared by the connection tasks, which stamp
/// every frame they receive, and the core, which tracks sessions with it. The coarse clock
/// (`CLOCK_MONOTONIC_COARSE`, a few ms resolution, plenty for tick-bucketed session expiry) is read
/// without touching the clock source: `Instant::now` per frame was about 1% of getData 16x8.
pub fn mono_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The result of [`Core::run`]: a storage failure stops the node.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("storage failure: {0}")]
    Storage(String),
}

impl Core {
    pub fn new(
        cfg: Arc<ServerConfig>,
        tree: DataTree,
        committer: GroupCommitter,
        first_batch: Batch,
        next_zxid: Zxid,
        metrics: Arc<Metrics>,
        published: Arc<Published>,
    ) -> Core {
        let now_ms = wall_ms();
        let mut tracker = SessionTracker::new(cfg.tick_time_ms as i64);
        // Sessions that were open before a restart get a full timeout to come back.
        let now = mono_ms();
        for (id, s) in tree.sessions() {
            tracker.add(*id, s.timeout, now);
        }
        let staged_applied = tree.last_applied();
        let sid = cfg.server_id as i64;
        let gauges = published.gauges.clone();
        let next_session_id = (sid << 56) | (((now_ms as u64) << 24) >> 8) as i64;
        Core {
            prep_cfg: PrepConfig {
                extended_types: cfg.extended_types_enabled,
                reconfig_enabled: cfg.reconfig_enabled,
            },
            cfg,
            tree,
            pending: PendingChanges::new(),
            watches: WatchRegistry::new(),
            tracker,
            conns: FastMap::default(),
            session_conn: FastMap::default(),
            committer: Arc::new(committer),
            batch: first_batch,
            inflight: VecDeque::new(),
            submitted: VecDeque::new(),
            next_zxid,
            next_session_id,
            dirty: Vec::new(),
            metrics,
            gauges,
            applied_since_purge: 0,
            staged_applied,
            applied_bytes: 0,
            large_in_flight: 0,
            waiting_large: VecDeque::new(),
        }
    }

    /// Runs until the message channel closes or storage fails.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<CoreMsg>) -> Result<(), CoreError> {
        self.publish_tables();
        self.gauges.set_serving(true);
        self.flush(false);
        while let Some(msg) = rx.recv().await {
            self.handle(msg)?;
            let mut idle = false;
            for _ in 0..4096 {
                match rx.try_recv() {
                    Ok(m) => self.handle(m)?,
                    Err(_) => {
                        idle = true;
                        break;
                    }
                }
            }
            self.flush(idle);
        }
        Ok(())
    }

    fn handle(&mut self, msg: CoreMsg) -> Result<(), CoreError> {
        match msg {
            CoreMsg::Connect {
                conn,
                remote,
                req,
                out,
                received_ms,
            } => self.on_connect(conn, remote, req, out, received_ms),
            CoreMsg::Request {
                conn,
                xid,
                op,
                req,
                size,
                received_ms,
                admit,
            } => self.on_request(conn, xid, op, req, size, received_ms, admit),
            CoreMsg::Closed { conn } => self.on_closed(conn),
            CoreMsg::Drained { conn } => self.pump(conn),
            CoreMsg::Durable(report) => return self.on_durable(report),
            CoreMsg::Tick { at_ms } => self.on_tick(at_ms),
            CoreMsg::ContainerCheck => self.on_container_check(),
            CoreMsg::Admin(q) => self.admin(q),
        }
        Ok(())
    }

    // ---- connections and sessions ----

    fn on_connect(
        &mut self,
        id: ConnId,
        remote: SocketAddr,
        req: ConnectRequest,
        out: ConnTx,
        received_ms: i64,
    ) {
        let mut conn = Conn {
            remote,
            session: 0,
            timeout: 0,
            auth: AuthInfo::for_ip(&remote.ip().to_string()),
            out,
            queue: VecDeque::new(),
            queued_reads: 0,
            parked: VecDeque::new(),
            waiting_large: false,
            buf: Writer::new(),
            closing: false,
            established_ms: wall_ms(),
            stats: ConnStats::default(),
        };
        if req.last_zxid_seen > self.tree.last_applied() {
            info!(
                %remote,
                client_zxid = format_args!("{:#x}", req.last_zxid_seen),
                server_zxid = format_args!("{:#x}", self.tree.last_applied()),
                "refusing connection: client has seen a later zxid than this server"
            );
            conn.out.close();
            return;
        }
        let timeout = self.cfg.negotiate_timeout(req.timeout);
        // A client that reads none of its replies for its session timeout is gone.
        conn.out.set_stall_timeout(timeout as u64);
        if req.session_id == 0 {
            let session = self.alloc_session_id();
            let mut passwd = vec![0u8; 16];
            rand::rng().fill_bytes(&mut passwd);
            conn.session = session;
            conn.timeout = timeout;
            conn.queue.push_back(Queued::Handshake {
                read_only: req.read_only,
                timeout,
            });
            self.conns.insert(id, conn);
            self.session_conn.insert(session, id);
            // Tracked from now on, as ZooKeeper's prep does (`trackSession`): the requests pipelined
            // behind the handshake are checked against it like any other, and a closeSession among
            // them marks it closing before anything after it is prepped.
            self.tracker.add(session, timeout, received_ms);
            self.submit_txn(session, 0, Txn::CreateSession { timeout, passwd }, Some(id));
            return;
        }
        let valid = self
            .tree
            .session(req.session_id)
            .is_some_and(|s| s.passwd == req.passwd)
            && self.tracker.is_valid(req.session_id);
        if !valid {
            debug!(%remote, session = format_args!("{:#x}", req.session_id), "session expired or unknown");
            conn.out
                .send(&ConnectResponse::expired(req.read_only).encode_frame());
            conn.out.close();
            return;
        }
        // Resume: the session moves to this connection.
        if let Some(old) = self.session_conn.insert(req.session_id, id) {
            if let Some(c) = self.conns.get_mut(&old) {
                c.session = 0;
                c.closing = true;
                c.out.close();
            }
            self.drop_conn(old);
        }
        // The client is told `timeout`; the tracker expires the session by the same one.
        self.tracker.resume(req.session_id, timeout, received_ms);
        let passwd = self
            .tree
            .session(req.session_id)
            .map(|s| s.passwd.clone())
            .unwrap_or_default();
        conn.session = req.session_id;
        conn.timeout = timeout;
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout,
            session_id: req.session_id,
            passwd,
            read_only: req.read_only.map(|_| false),
        };
        conn.buf.buf.extend_from_slice(&resp.encode_frame());
        self.conns.insert(id, conn);
        self.dirty.push(id);
    }

    fn alloc_session_id(&mut self) -> i64 {
        loop {
            let id = self.next_session_id;
            self.next_session_id = self.next_session_id.wrapping_add(1);
            if id != 0 && id != i64::MIN && self.tree.session(id).is_none() {
                return id;
            }
        }
    }

    fn drop_conn(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(&id) {
            // Ends the writer task once it has written what was sent (it holds the socket too).
            c.out.close();
            self.watches.remove_watcher(id);
            if c.session != 0 && self.session_conn.get(&c.session) == Some(&id) {
                self.session_conn.remove(&c.session);
            }
        }
    }

    fn on_closed(&mut self, id: ConnId) {
        self.drop_conn(id);
    }

    fn on_tick(&mut self, now: i64) {
        self.stage_tree_changes();
        self.submit_batch();
        // What a session's connection received counts even if the request still waits in the
        // inbox behind this tick (ZooKeeper touches sessions on the receiving thread).
        let (conns, session_conn) = (&self.conns, &self.session_conn);
        let last_received = |session: i64| {
            let c = conns.get(session_conn.get(&session)?)?;
            Some(c.out.last_received())
        };
        for session in self.tracker.expire(now, last_received) {
            info!(session = format_args!("{session:#x}"), "session expired");
            self.metrics.inc(Counter::StaleSessionsExpired);
            let _ = self.submit_close_session(session, None);
        }
        self.publish_tables();
    }

    fn on_container_check(&mut self) {
        let candidates = self
            .tree
            .container_candidates(wall_ms(), self.cfg.container_max_never_used_ms);
        let mut auth = AuthInfo::default();
        auth.add(wazoo_proto::Id::new("super", ""));
        for path in candidates {
            debug!(%path, "deleting empty container or expired TTL node");
            self.prep_internal(0, &auth, &Request::DeleteContainer { path }, None);
        }
    }

    fn submit_close_session(&mut self, session: i64, origin: Option<ConnId>) -> Zxid {
        self.tracker.set_closing(session);
        self.prep_internal(
            session,
            &AuthInfo::default(),
            &Request::CloseSession,
            origin,
        )
    }

    /// Preps a server-generated request (session close, container reaping) at the next zxid and
    /// queues its txn for the log.
    fn prep_internal(
        &mut self,
        session: i64,
        auth: &AuthInfo,
        req: &Request,
        origin: Option<ConnId>,
    ) -> Zxid {
        let zxid = self.alloc_zxid();
        let time = wall_ms();
        let ctx = PrepCtx {
            session_id: session,
            session_valid: true,
            auth,
            zxid,
            time,
        };
        let txn = prep(&self.tree, &mut self.pending, req, ctx, &self.prep_cfg);
        let header = TxnHeader {
            session_id: session,
            cxid: 0,
            zxid,
            time,
        };
        self.log_txn(header, txn, origin);
        zxid
    }

    fn alloc_zxid(&mut self) -> Zxid {
        let z = self.next_zxid;
        self.next_zxid += 1;
        z
    }

    fn submit_txn(&mut self, session: i64, cxid: i32, txn: Txn, origin: Option<ConnId>) -> Zxid {
        let zxid = self.alloc_zxid();
        self.log_txn(
            TxnHeader {
                session_id: session,
                cxid,
                zxid,
                time: wall_ms(),
            },
            txn,
            origin,
        );
        zxid
    }

    fn log_txn(&mut self, header: TxnHeader, txn: Txn, origin: Option<ConnId>) {
        self.batch.log.push(LogEntry {
            zxid: header.zxid,
            data: encode_txn(&header, &txn),
        });
        self.inflight.push_back(InFlight {
            header,
            txn,
            origin,
            admit: None,
            large: 0,
        });
    }

    /// Keeps a client request's budget places with the txn just logged for it, until it applies.
    fn hold_until_applied(&mut self, admit: Admission) {
        if let Some(f) = self.inflight.back_mut() {
            f.admit = Some(admit);
        }
    }

    // ---- requests ----

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &mut self,
        id: ConnId,
        xid: i32,
        op: i32,
        req: Result<Request, ErrorCode>,
        size: usize,
        received_ms: i64,
        admit: Admission,
    ) {
        let at = Instant::now();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.stats.received += 1;
        self.metrics.packet_received(size as u64);
        let p = Parked {
            xid,
            op,
            req,
            size,
            received_ms,
            at,
            admit,
        };
        // The usual case, straight through: nothing waits before it, the connection can take it,
        // and it is not a large write (which may have to wait its turn: `pump`).
        if conn.parked.is_empty()
            && !is_large_write(&p, self.cfg.large_request_threshold)
            && Self::can_take(conn, self.cfg.max_connection_output_bytes)
        {
            self.process(id, p);
            return;
        }
        conn.parked.push_back(p);
        self.pump(id);
    }

    /// Whether a connection can take its next request now: its queued output is under
    /// `wazoo.maxConnectionOutputBytes` (else its writer is asked to report when it has drained)
    /// and fewer than [`MAX_QUEUED_READS`] reads wait behind its writes (else the apply of the
    /// write ahead pumps it). Requests it cannot take wait unprocessed in `parked`, where they
    /// hold their budget places, so that the connection soon stops reading its socket.
    fn can_take(c: &Conn, max_output: usize) -> bool {
        if c.queued_reads >= MAX_QUEUED_READS {
            return false;
        }
        if c.buf.buf.len() + c.out.queued() < max_output {
            return true;
        }
        c.out.want_drained();
        // The writer may have drained between the check and the request: look again.
        if c.buf.buf.len() + c.out.queued() < max_output {
            c.out.drained_not_wanted();
            return true;
        }
        false
    }

    /// Processes a connection's parked requests, in order, while it can take them.
    fn pump(&mut self, id: ConnId) {
        let max_output = self.cfg.max_connection_output_bytes;
        let threshold = self.cfg.large_request_threshold;
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if c.closing || c.parked.is_empty() || !Self::can_take(c, max_output) {
                return;
            }
            let front = c.parked.front().expect("not empty");
            if is_large_write(front, threshold) {
                let size = front.size;
                let fits = self.large_in_flight == 0
                    || self.large_in_flight + size <= LARGE_WRITES_IN_FLIGHT;
                let first = self.waiting_large.front().is_none_or(|w| *w == id);
                if !(fits && first) {
                    if !c.waiting_large {
                        c.waiting_large = true;
                        self.waiting_large.push_back(id);
                    }
                    return;
                }
                if c.waiting_large {
                    c.waiting_large = false;
                    self.waiting_large.pop_front();
                }
            }
            let p = c.parked.pop_front().expect("not empty");
            self.process(id, p);
        }
    }

    /// Gives the connections waiting to send a large write their turns, in the order they started
    /// waiting, after one applied. A connection whose turn has come but that cannot take requests
    /// for another reason (it does not read its replies) loses its place and queues again when it
    /// is pumped next, so it never holds the others up.
    fn pump_waiting_large(&mut self) {
        let max_output = self.cfg.max_connection_output_bytes;
        let threshold = self.cfg.large_request_threshold;
        while let Some(&id) = self.waiting_large.front() {
            let ready = self.conns.get(&id).is_some_and(|c| {
                !c.closing
                    && c.parked
                        .front()
                        .is_some_and(|p| is_large_write(p, threshold))
                    && Self::can_take(c, max_output)
            });
            if !ready {
                self.waiting_large.pop_front();
                if let Some(c) = self.conns.get_mut(&id) {
                    c.waiting_large = false;
                }
                continue;
            }
            self.pump(id);
            if self.waiting_large.front() == Some(&id) {
                // Its turn, but the large writes in flight leave no room yet.
                return;
            }
        }
    }

    /// Checks a request against its session and preps it (a write) or answers or queues it (a
    /// read), in its connection's order.
    fn process(&mut self, id: ConnId, p: Parked) {
        let large = if is_large_write(&p, self.cfg.large_request_threshold) {
            p.size
        } else {
            0
        };
        let Parked {
            xid,
            op: opcode,
            req,
            received_ms,
            at: now,
            admit,
            ..
        } = p;
        let conn = self.conns.get_mut(&id).expect("pumped connections exist");
        let session = conn.session;
        let remote = conn.remote;
        // Every request is checked against its session as it stands now, in arrival order, a
        // request pipelined behind the handshake included: the session is tracked from the
        // ConnectRequest on. A request of a closing session (its closeSession prepped, or expired)
        // is dropped unanswered, taking no zxid, as ZooKeeper drops a request whose
        // `touchSession` fails (MissingSessionException in `submitRequestNow`); the connection
        // closes when the closeSession applies. So no ephemeral is ever created for a closed or
        // closing session, and prep's own check (`session_valid`, SESSIONEXPIRED) is a backstop.
        let valid = self.tracker.touch(session, received_ms);
        if !valid && req.as_ref().map_or(true, checks_session) {
            debug!(
                %remote,
                session = format_args!("{session:#x}"),
                op = op::name(opcode),
                "dropping a request of a closing or expired session"
            );
            return;
        }
        if let Err(code) = req {
            if op::is_write(opcode) {
                // ZooKeeper preps writes before decoding fails: the error is a txn with a zxid.
                warn!(%remote, op = op::name(opcode), "undecodable request record: replying {code}");
                let zxid = self.submit_txn(session, xid, Txn::Error { err: code.code() }, Some(id));
                self.hold_until_applied(admit);
                self.queue_write(id, xid, opcode, zxid, Vec::new(), now);
                return;
            }
        }
        let is_write = matches!(&req, Ok(r) if r.is_write());
        if !is_write {
            let conn = self.conns.get_mut(&id).expect("present");
            if conn.queue.is_empty() {
                self.answer(id, xid, opcode, req, now);
            } else {
                conn.queued_reads += 1;
                conn.queue.push_back(Queued::Read {
                    xid,
                    op: opcode,
                    req,
                    at: now,
                    _admit: admit,
                });
            }
            return;
        }
        let req = req.expect("writes decoded");
        if let Request::CloseSession = req {
            let zxid = self.submit_close_session(session, Some(id));
            self.hold_until_applied(admit);
            self.queue_write(id, xid, opcode, zxid, Vec::new(), now);
            return;
        }
        let zxid = self.alloc_zxid();
        let time = wall_ms();
        let conn = self.conns.get(&id).expect("present");
        let txn = prep(
            &self.tree,
            &mut self.pending,
            &req,
            PrepCtx {
                session_id: session,
                session_valid: valid,
                auth: &conn.auth,
                zxid,
                time,
            },
            &self.prep_cfg,
        );
        let sub_ops = match &req {
            Request::Multi(ops) => ops
                .iter()
                .map(|o| match o {
                    MultiOp::Create(c) => c.op,
                    MultiOp::Delete { .. } => op::DELETE,
                    MultiOp::SetData { .. } => op::SET_DATA,
                    MultiOp::Check { .. } => op::CHECK,
                })
                .collect(),
            _ => Vec::new(),
        };
        self.queue_write(id, xid, opcode, zxid, sub_ops, now);
        self.log_txn(
            TxnHeader {
                session_id: session,
                cxid: xid,
                zxid,
                time,
            },
            txn,
            Some(id),
        );
        self.hold_until_applied(admit);
        if let Some(f) = self.inflight.back_mut() {
            f.large = large;
            self.large_in_flight += large;
        }
    }

    /// Queues a write's place in its connection's reply order; the reply goes out when `zxid` is
    /// applied.
    fn queue_write(
        &mut self,
        id: ConnId,
        xid: i32,
        op: i32,
        zxid: Zxid,
        sub_ops: Vec<i32>,
        at: Instant,
    ) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.queue.push_back(Queued::Write {
                xid,
                op,
                zxid,
                sub_ops,
                at,
            });
        }
    }

    /// Answers a non-write request now (its turn in the connection's order has come).
    fn answer(
        &mut self,
        id: ConnId,
        xid: i32,
        opcode: i32,
        req: Result<Request, ErrorCode>,
        at: Instant,
    ) {
        let last = self.tree.last_applied();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let req = match req {
            Ok(r) => r,
            Err(code) => {
                if code == ErrorCode::MarshallingError {
                    warn!(remote = %conn.remote, op = op::name(opcode), "undecodable request record: replying {code}");
                }
                reply(conn, &self.metrics, xid, opcode, last, Err(code), at);
                self.dirty.push(id);
                return;
            }
        };
        match &req {
            Request::Ping => reply(
                conn,
                &self.metrics,
                xid,
                opcode,
                last,
                Ok(&Response::Empty),
                at,
            ),
            Request::Auth { scheme, auth, .. } => {
                let ip = conn.remote.ip().to_string();
                match authenticate(scheme, auth, &ip, self.cfg.super_digest.as_deref()) {
                    Ok(ids) => {
                        for i in ids {
                            conn.auth.add(i);
                        }
                        reply(
                            conn,
                            &self.metrics,
                            xid,
                            opcode,
                            0,
                            Ok(&Response::Empty),
                            at,
                        );
                    }
                    Err(code) => {
                        warn!(remote = %conn.remote, %scheme, "auth failed: unknown scheme; closing connection");
                        self.metrics.auth_failed();
                        reply(conn, &self.metrics, xid, opcode, 0, Err(code), at);
                        conn.closing = true;
                    }
                }
            }
            Request::SetWatches(sw) => {
                for (kind, path) in set_watches(&self.tree, &mut self.watches, id, sw) {
                    encode_notification(&mut conn.buf, -1, kind as i32, &path);
                    conn.stats.sent += 1;
                }
                reply(
                    conn,
                    &self.metrics,
                    xid,
                    opcode,
                    last,
                    Ok(&Response::Empty),
                    at,
                );
            }
            Request::Unknown(_) | Request::Check { .. } | Request::Sasl { .. } => {
                warn!(remote = %conn.remote, op = opcode, "unsupported opcode: replying UNIMPLEMENTED and closing");
                reply(
                    conn,
                    &self.metrics,
                    xid,
                    opcode,
                    -1,
                    Err(ErrorCode::Unimplemented),
                    at,
                );
                conn.closing = true;
            }
            _ => {
                let ctx = ReadCtx {
                    session_id: conn.session,
                    watcher: id,
                    auth: &conn.auth,
                    max_reply: self.cfg.jute_max_buffer,
                };
                let result = read(&self.tree, &mut self.watches, ctx, &req)
                    .unwrap_or(Err(ErrorCode::Unimplemented));
                reply(
                    conn,
                    &self.metrics,
                    xid,
                    opcode,
                    last,
                    result.as_ref().map_err(|e| *e),
                    at,
                );
            }
        }
        self.dirty.push(id);
    }

    // ---- durability and apply ----

    fn on_durable(&mut self, report: CommitReport) -> Result<(), CoreError> {
        if let Err(e) = &report.result {
            error!("storage failure, stopping: {e}");
            return Err(CoreError::Storage(e.to_string()));
        }
        self.metrics
            .record_fsync(report.duration.as_micros() as u64);
        if report.entries > 0 {
            self.metrics
                .observe(SummaryKind::SyncProcessorBatchSize, report.entries as u64);
        }
        let mut durable: Option<Zxid> = None;
        while let Some(&(seq, z)) = self.submitted.front() {
            if seq > report.seq {
                break;
            }
            self.submitted.pop_front();
            durable = Some(durable.map_or(z, |d: Zxid| d.max(z)));
        }
        let Some(durable) = durable else {
            return Ok(());
        };
        while self
            .inflight
            .front()
            .is_some_and(|f| f.header.zxid <= durable)
        {
            let f = self.inflight.pop_front().expect("front exists");
            self.apply(f);
        }
        if !self.waiting_large.is_empty() && self.large_in_flight < LARGE_WRITES_IN_FLIGHT {
            self.pump_waiting_large();
        }
        if self.tree.dirty_count() >= TREE_STAGE_DIRTY || self.applied_bytes >= TREE_STAGE_BYTES {
            self.stage_tree_changes();
        }
        self.maybe_purge();
        Ok(())
    }

    /// Moves the tree's dirty nodes and sessions, with `last_applied`, into the storage batch. The
    /// two always travel together: a persisted `last_applied` describes the persisted tree exactly.
    /// Between stages the log covers the changes (a restart replays it), and a node changed many
    /// times is written once.
    fn stage_tree_changes(&mut self) {
        let applied = self.tree.last_applied();
        self.applied_bytes = 0;
        if self.tree.dirty_count() == 0 && self.staged_applied == applied {
            return;
        }
        for (k, v) in self.tree.take_changes() {
            match v {
                Some(v) => self.batch.tree_puts.push((k, v)),
                None => self.batch.tree_deletes.push(k),
            }
        }
        self.batch.last_applied = Some(applied);
        self.staged_applied = applied;
    }

    fn maybe_purge(&mut self) {
        let retain = self.cfg.log_retain_txns;
        let every = (retain / 4).clamp(100, 25_000);
        if self.applied_since_purge < every || retain == 0 {
            return;
        }
        self.applied_since_purge = 0;
        let below = self.tree.last_applied() - retain as i64;
        if below <= 0 {
            return;
        }
        self.stage_tree_changes();
        // Runs on the storage thread after the batches submitted so far, so the tree state that
        // covers the purged entries is queued first. `with_store` blocks until its turn, so it is
        // called from a blocking thread, never from this task.
        self.submit_batch();
        let committer = self.committer.clone();
        tokio::task::spawn_blocking(move || {
            committer.with_store(move |s| {
                if let Err(e) = s.purge_log_before(below) {
                    warn!("log purge failed: {e}");
                } else {
                    info!(
                        below = format_args!("{below:#x}"),
                        "purged log entries older than the retention window"
                    );
                }
            })
        });
    }

    fn apply(&mut self, f: InFlight) {
        self.applied_bytes += txn_data_len(&f.txn);
        if f.large > 0 {
            self.large_in_flight -= f.large;
        }
        let applied = self.tree.apply(&f.header, &f.txn);
        self.metrics.inc(Counter::CommitCount);
        self.pending.applied(f.header.zxid);
        self.applied_since_purge += 1;
        let zxid = applied.zxid;
        for ev in &applied.events {
            let triggered = self.watches.trigger(ev.kind, &ev.path);
            self.metrics
                .watches_triggered(ev.kind as i32, triggered.len());
            for w in triggered {
                if let Some(c) = self.conns.get_mut(&w) {
                    // ZOOKEEPER-4799 (3.8.4+): events are only delivered to readers of the node.
                    if check_acl(&ev.acl, perms::READ, &c.auth).is_err() {
                        continue;
                    }
                    let before = c.buf.buf.len();
                    encode_notification(&mut c.buf, -1, ev.kind as i32, &ev.path);
                    c.stats.sent += 1;
                    self.metrics.packet_sent((c.buf.buf.len() - before) as u64);
                    self.dirty.push(w);
                }
            }
        }
        let session = f.header.session_id;
        match &f.txn {
            Txn::CreateSession { passwd, .. } => {
                // The tracker has had the session since its ConnectRequest (`on_connect`): adding
                // it here would revive one that a pipelined closeSession already marked closing.
                if let Some(c) = f.origin.and_then(|o| self.conns.get_mut(&o)) {
                    if let Some(Queued::Handshake { read_only, timeout }) = c.queue.pop_front() {
                        let resp = ConnectResponse {
                            protocol_version: 0,
                            timeout,
                            session_id: session,
                            passwd: passwd.clone(),
                            read_only: read_only.map(|_| false),
                        };
                        c.buf.buf.extend_from_slice(&resp.encode_frame());
                        self.dirty.push(f.origin.expect("origin"));
                        self.drain_reads(f.origin.expect("origin"));
                        self.pump(f.origin.expect("origin"));
                    }
                }
                return;
            }
            Txn::CloseSession { .. } => {
                self.tracker.remove(session);
                if let Some(cid) = self.session_conn.remove(&session) {
                    if Some(cid) != f.origin {
                        if let Some(c) = self.conns.get_mut(&cid) {
                            c.closing = true;
                            c.session = 0;
                            self.dirty.push(cid);
                        }
                    }
                }
            }
            _ => {}
        }
        let Some(origin) = f.origin else {
            return;
        };
        let Some(c) = self.conns.get_mut(&origin) else {
            return;
        };
        if c.closing {
            // Its closeSession was answered: ZooKeeper closes the connection after that reply,
            // and nothing prepped behind the close reaches the client.
            return;
        }
        match c.queue.pop_front() {
            Some(Queued::Write {
                xid,
                op: opcode,
                zxid: qz,
                sub_ops,
                at,
            }) if qz == zxid => {
                let result = build_reply(opcode, &sub_ops, applied.outcome);
                if let Err(code) = &result {
                    debug!(
                        session = format_args!("{session:#x}"),
                        op = op::name(opcode),
                        "write failed: {code}"
                    );
                }
                reply(
                    c,
                    &self.metrics,
                    xid,
                    opcode,
                    zxid,
                    result.as_ref().map_err(|e| *e),
                    at,
                );
                if opcode == op::CLOSE_SESSION {
                    c.closing = true;
                }
                self.dirty.push(origin);
                self.drain_reads(origin);
                self.pump(origin);
            }
            other => {
                error!(
                    zxid,
                    "reply queue out of step with applied txns; closing connection"
                );
                drop(other);
                c.closing = true;
                self.dirty.push(origin);
            }
        }
    }

    /// Answers the reads queued behind a connection's write, up to its next write.
    fn drain_reads(&mut self, id: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if c.closing {
                return;
            }
            match c.queue.front() {
                Some(Queued::Read { .. }) => {
                    if let Some(Queued::Read {
                        xid, op, req, at, ..
                    }) = c.queue.pop_front()
                    {
                        c.queued_reads -= 1;
                        self.answer(id, xid, op, req, at);
                    }
                }
                _ => return,
            }
        }
    }

    /// Submits the storage batch and hands each touched connection its bytes.
    /// `idle`: nothing else is waiting in the inbox, so the batch may be committed right here
    /// (see `hand_over_batch`).
    fn flush(&mut self, idle: bool) {
        // Sending may let a connection whose requests wait for its output take more (the socket
        // took the bytes at once): pump those, and send again, until nothing moves.
        while !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            let mut waiting = Vec::new();
            for id in dirty {
                let Some(c) = self.conns.get_mut(&id) else {
                    continue;
                };
                if !c.buf.buf.is_empty() {
                    c.out.send(&c.buf.buf);
                    c.buf.buf.clear();
                    if c.buf.buf.capacity() > OUT_BUF_KEEP {
                        c.buf.buf.shrink_to(OUT_BUF_KEEP);
                    }
                }
                if c.closing {
                    c.out.close();
                    self.drop_conn(id);
                } else if !c.parked.is_empty() {
                    waiting.push(id);
                }
            }
            waiting.dedup();
            for id in waiting {
                self.pump(id);
            }
        }
        // Replies first: an idle commit below blocks this task for an fsync.
        self.hand_over_batch(idle);
        self.publish_burst();
    }

    /// Hands the storage batch (log entries and/or tree changes) to the group committer.
    fn submit_batch(&mut self) {
        self.hand_over_batch(false);
    }

    /// Hands the storage batch to the group committer. With `inline_if_idle` (nothing else in the
    /// inbox), a small batch with no earlier one in flight is committed on this task's thread when
    /// the storage worker is idle (`GroupCommitter::commit_now_if_idle`): a lone write then skips
    /// the hand-off to the storage thread and back, which on this machine is about a fifth of its
    /// latency. Under load the inbox is never empty here and batches go to the worker, which
    /// group-commits them while this task keeps prepping.
    fn hand_over_batch(&mut self, inline_if_idle: bool) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let last = batch.log.last().map(|e| e.zxid);
        // Only a small batch with no earlier one still in flight: under pipelined load the core
        // must keep prepping while the worker syncs, not block on the fsync itself.
        let lone = self.submitted.is_empty() && (1..=INLINE_COMMIT_MAX).contains(&batch.log.len());
        let seq = if inline_if_idle && lone {
            self.committer.commit_now_if_idle(batch)
        } else {
            self.committer.submit(batch)
        };
        if let Some(z) = last {
            self.submitted.push_back((seq, z));
        }
    }

    // ---- admin: published gauges and bounded listings ----

    /// Once per burst: six relaxed stores of values known without a walk.
    fn publish_burst(&self) {
        self.gauges.publish_burst(
            self.tree.last_applied(),
            self.tree.node_count() as u64,
            self.tree.approximate_data_size(),
            self.inflight.len() as u64,
            self.conns.len() as u64,
            self.tree.sessions().len() as u64,
        );
    }

    /// Once per tick: the counts that walk the sessions with ephemerals and the watching
    /// connections (a sum of their sizes, no copies).
    fn publish_tables(&self) {
        self.gauges.publish_tables(
            self.tree.ephemeral_count() as u64,
            self.watches.watch_count() as u64,
            self.watches.watcher_count() as u64,
        );
    }

    fn admin(&self, q: AdminQuery) {
        match q {
            AdminQuery::Ids(reply) => {
                let sessions = self.tree.sessions().keys().copied().collect();
                let conns = self.conns.keys().copied().collect();
                let _ = reply.send((sessions, conns));
            }
            AdminQuery::Sessions { ids, skip, reply } => {
                let _ = reply.send(self.session_chunk(&ids, skip));
            }
            AdminQuery::Conns { ids, reply } => {
                let clock = Clock::now();
                let conns = ids
                    .iter()
                    .take(ADMIN_CHUNK)
                    .filter_map(|id| Some(self.conn_stats(self.conns.get(id)?, &clock)))
                    .collect();
                let _ = reply.send(conns);
            }
            AdminQuery::Watches { what, reply } => {
                let _ = reply.send(self.watch_tables(what));
            }
        }
    }

    /// Up to [`ADMIN_CHUNK`] ephemeral paths of the sessions `ids` (the first from its `skip`th).
    fn session_chunk(&self, ids: &[i64], mut skip: usize) -> SessionChunk {
        let clock = Clock::now();
        let mut budget = ADMIN_CHUNK;
        let mut sessions = Vec::new();
        for (i, &id) in ids.iter().enumerate().take(ADMIN_CHUNK) {
            if budget == 0 {
                return SessionChunk {
                    sessions,
                    resume: Some((i, 0)),
                };
            }
            let Some(entry) = self.tree.session(id) else {
                skip = 0;
                continue;
            };
            let mut paths = self.tree.ephemerals_of(id).skip(skip);
            let ephemerals: Vec<String> = paths.by_ref().take(budget).cloned().collect();
            budget -= ephemerals.len();
            // The budget ran out within this session: the next piece continues it.
            let more = budget == 0 && paths.next().is_some();
            let sent = skip + ephemerals.len();
            skip = 0;
            sessions.push(SessionDump {
                id,
                timeout_ms: entry.timeout,
                expires_at_ms: self.tracker.expires_at(id).map(|t| clock.wall(t)),
                ephemerals,
            });
            if more {
                return SessionChunk {
                    sessions,
                    resume: Some((i, sent)),
                };
            }
        }
        let done = ids.len().min(ADMIN_CHUNK);
        SessionChunk {
            sessions,
            resume: (done < ids.len()).then_some((done, 0)),
        }
    }

    fn conn_stats(&self, c: &Conn, clock: &Clock) -> ConnectionStats {
        let st = &c.stats;
        // Requests holding a place in the connection's budget: parked, queued reads, unapplied
        // writes (the handshake holds none). With all of them held, its reader waits for one
        // to finish: it does not read (ZooKeeper's interest ops 0).
        let held = c.parked.len() + c.queue.len()
            - usize::from(matches!(c.queue.front(), Some(Queued::Handshake { .. })));
        let reading = held < self.cfg.max_outstanding_per_connection as usize;
        ConnectionStats {
            remote: c.remote.to_string(),
            interest_ops: u32::from(reading),
            queued: held as u64,
            received: st.received,
            sent: st.sent,
            session_id: c.session,
            last_op: st.last_op.to_string(),
            established_ms: c.established_ms,
            timeout_ms: c.timeout,
            last_cxid: st.last_cxid as i64,
            last_zxid: st.last_zxid,
            last_response_ms: st.last_response_ms,
            last_latency_ms: st.last_latency_ms,
            min_latency_ms: if st.count > 0 { st.min_latency_ms } else { 0 },
            avg_latency_ms: if st.count > 0 {
                st.total_latency_ms as f64 / st.count as f64
            } else {
                0.0
            },
            max_latency_ms: st.max_latency_ms,
            // The connection is closed when its session expires.
            expires_at_ms: self.tracker.expires_at(c.session).map(|t| clock.wall(t)),
        }
    }

    fn watch_tables(&self, what: WatchQuery) -> WatchTables {
        let session_of = |w: &ConnId| self.conns.get(w).map_or(0, |c| c.session);
        let mut t = WatchTables::default();
        match what {
            WatchQuery::Summary => {
                t.watch_count = self.watches.watch_count() as u64;
                t.watched_paths = self.watches.path_count() as u64;
                t.watching_connections = self.watches.watcher_count() as u64;
            }
            WatchQuery::BySession => {
                t.by_session = self
                    .watches
                    .by_watcher()
                    .into_iter()
                    .map(|(w, p)| (session_of(&w), p))
                    .collect();
            }
            WatchQuery::ByPath => {
                t.by_path = self
                    .watches
                    .by_path()
                    .into_iter()
                    .map(|(p, ws)| (p, ws.iter().map(session_of).collect()))
                    .collect();
            }
        }
        t
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.gauges.set_serving(false);
    }
}

/// The server's monotonic clock ([`mono_ms`]) and the wall clock, read together: converts one
/// to the other.
struct Clock {
    mono: i64,
    wall: i64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            mono: mono_ms(),
            wall: wall_ms(),
        }
    }

    /// The wall-clock time of monotonic time `mono`.
    fn wall(&self, mono: i64) -> i64 {
        self.wall + (mono - self.mono)
    }
}

/// Encodes a reply into the connection's buffer and updates its statistics.
fn reply(
    c: &mut Conn,
    metrics: &Metrics,
    xid: i32,
    opcode: i32,
    zxid: Zxid,
    result: Result<&Response, ErrorCode>,
    at: Instant,
) {
    let before = c.buf.buf.len();
    encode_reply(&mut c.buf, xid, zxid, result);
    let size = (c.buf.buf.len() - before) as u64;
    let lat = at.elapsed();
    metrics.record_request(Op::from_opcode(opcode), lat.as_micros() as u64);
    metrics.packet_sent(size);
    metrics.client_response_size(size);
    let ms = lat.as_millis() as u64;
    let st = &mut c.stats;
    st.sent += 1;
    st.last_op = Op::from_opcode(opcode).last_op();
    st.last_cxid = xid;
    st.last_zxid = zxid;
    st.last_latency_ms = ms;
    st.min_latency_ms = if st.count == 0 {
        ms
    } else {
        st.min_latency_ms.min(ms)
    };
    st.max_latency_ms = st.max_latency_ms.max(ms);
    st.total_latency_ms += ms;
    st.count += 1;
    st.last_response_ms = wall_ms();
}

/// Maps an applied outcome to the client reply for the request's opcode.
fn build_reply(opcode: i32, sub_ops: &[i32], outcome: OpOutcome) -> Result<Response, ErrorCode> {
    let code = |c: i32| ErrorCode::from_code(c).unwrap_or(ErrorCode::SystemError);
    Ok(match outcome {
        OpOutcome::Error(c) => return Err(code(c)),
        OpOutcome::Created { path, stat } => match opcode {
            op::CREATE => Response::Create { path },
            _ => Response::Create2 { path, stat },
        },
        OpOutcome::Deleted | OpOutcome::SessionClosed | OpOutcome::Checked => Response::Empty,
        OpOutcome::SessionCreated => Response::Empty,
        OpOutcome::DataSet { stat } | OpOutcome::AclSet { stat } => Response::Stat(stat),
        OpOutcome::Multi(results) => Response::Multi(
            results
                .into_iter()
                .enumerate()
                .map(|(i, r)| match r {
                    // ZooKeeper 3.8 reports create and create2 sub-ops as CreateResult (type 1);
                    // createTTL and createContainer as Create2Result (type 15).
                    OpOutcome::Created { path, stat } => {
                        if matches!(sub_ops.get(i), Some(&op::CREATE) | Some(&op::CREATE2)) {
                            OpResult::Create { path }
                        } else {
                            OpResult::Create2 { path, stat }
                        }
                    }
                    OpOutcome::Deleted => OpResult::Delete,
                    OpOutcome::DataSet { stat } => OpResult::SetData { stat },
                    OpOutcome::Checked => OpResult::Check,
                    OpOutcome::Error(c) => OpResult::Error(c),
                    _ => OpResult::Error(ErrorCode::SystemError.code()),
                })
                .collect(),
        ),
    })
}

/// Whether a request is a write of at least `threshold` bytes (see [`LARGE_WRITES_IN_FLIGHT`]).
fn is_large_write(p: &Parked, threshold: usize) -> bool {
    p.size >= threshold && matches!(&p.req, Ok(r) if r.is_write())
}

/// Node data bytes a txn writes into the tree.
fn txn_data_len(txn: &Txn) -> usize {
    match txn {
        Txn::Create { data, .. } | Txn::SetData { data, .. } => data.as_ref().map_or(0, Vec::len),
        Txn::Multi(ops) => ops.iter().map(txn_data_len).sum(),
        _ => 0,
    }
}

/// Whether a request needs a live session: auth is the connection's own business (ZooKeeper
/// handles it before the request is submitted), and an unsupported opcode is answered
/// UNIMPLEMENTED whatever the session.
fn checks_session(req: &Request) -> bool {
    !matches!(
        req,
        Request::Auth { .. } | Request::Unknown(_) | Request::Check { .. } | Request::Sasl { .. }
    )
}

/// Periodic messages for session expiry and the container manager.
pub fn spawn_timers(cfg: &ServerConfig, tx: mpsc::UnboundedSender<CoreMsg>) {
    let tick = Duration::from_millis((cfg.tick_time_ms as u64 / 2).max(10));
    let t2 = tx.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            if t2.send(CoreMsg::Tick { at_ms: mono_ms() }).is_err() {
                return;
            }
        }
    });
    let every = Duration::from_millis(cfg.container_check_interval_ms.max(10));
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        iv.tick().await;
        loop {
            iv.tick().await;
            if tx.send(CoreMsg::ContainerCheck).is_err() {
                return;
            }
        }
    });
}
