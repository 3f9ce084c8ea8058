//! The request pipeline of a wazoo server, pure: no tokio, no I/O, no clock, no OS randomness. It is
//! the single owner of the DataTree, the outstanding changes, the watch registry,
//! the session tracker and the connection table. Connections send it decoded requests; it preps
//! writes, hands them to the storage worker (group commit), applies them once durable, fires watches
//! and queues replies, keeping ZooKeeper's ordering rules:
//!
//! - per connection, replies leave in request order (reads wait behind that connection's writes);
//! - a watch notification is queued before any reply that reveals its change (apply, notify and
//!   reply happen in one step on this task, in commit order);
//! - a write is acknowledged only after its txn is durable.
//!
//! All the decisions are made here and in the pure crates (`wazoo-tree` prep/apply/reads,
//! `wazoo-zab`'s peer); the runtime (`wazoo-server`) only executes them. Inputs are
//! [`CoreMsg`]s handed to [`Core::handle`] with the [`Now`] they happen at; the runtime processes
//! them in bursts and calls [`Core::flush`] once per burst: one storage batch, one socket write per
//! connection. What the core asks of the outside goes through narrow seams the runtime (or a test,
//! or a simulator) implements: [`ConnSink`] (a connection's output), [`Storage`] (the group
//! committer), [`Alarm`] (a wake-up at an instant), and, for an ensemble member,
//! [`PeerTransport`] (the peer links' sockets, under [`Links`]' bookkeeping).
//!
//! Beside this file: `flow` (requests held back while a connection's output is full, large writes
//! taking turns), `apply` (durability, apply, staging the tree), `reply` (encoding replies),
//! `admin` (published gauges, admin listings in bounded pieces), `session` (handshakes, ticks),
//! `replica` and `forward` (the ensemble member), `links` (its peer links' bookkeeping),
//! `storage`, `time` and `config` (the seams and what the core is configured and driven with).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tracing::{debug, error, info, warn};
use wazoo_admin::metrics::{Counter, Metrics, Op, SummaryKind};
use wazoo_admin::published::Gauges;
use wazoo_admin::stats::{ConnectionStats, SessionDump};
use wazoo_proto::{
    encode_notification, encode_reply, encode_txn, op, perms, ConnectRequest, ConnectResponse,
    ErrorCode, MultiOp, OpResult, RecipeCall, Request, Response, Txn, TxnHeader, Writer, Zxid,
};
use wazoo_store::{Batch, CommitReport, LogEntry};
use wazoo_tree::acl::{authenticate, check_acl};
use wazoo_tree::{
    prep, read, set_watches, AuthInfo, DataTree, OpOutcome, PendingChanges, PrepConfig, PrepCtx,
    ReadCtx, SessionTracker, WatchCursor, WatchRegistry,
};

mod admin;
#[cfg(test)]
mod admin_test;
mod answer;
mod answers;
mod apply;
mod catalog;
mod config;
#[cfg(test)]
mod core_test;
mod flow;
mod forward;
pub mod links;
mod pace;
mod parked_record;
mod recipe;
mod recovery;
mod relay;
mod replica;
mod reply;
mod resync;
mod session;
mod sink;
pub mod snapshot;
mod storage;
mod time;

pub use admin::{Reply, SessionChunk, WatchChunk, WatchCounts, WatchQuery};
pub use catalog::{Install, RecipeSpec, RECIPES_ROOT, RECIPE_STATUS_ROOT};
pub use config::CoreConfig;
use flow::{is_large_write, LARGE_WRITES_IN_FLIGHT};
pub use links::{
    FrameSink, LinkClosed, LinkEvent, Links, PeerTransport, PostEvent, QuorumTx, SnapshotStream,
};
use pace::LargeWritePacer;
pub use recipe::{
    Recipes, RunEnd, RunHandle, RunId, RunReason, RunStart, MAX_PARK_WATCHES, MAX_RUNS,
};
pub use recovery::{load_tree, member_state, replay_log, RecoveryError, Window};
pub use replica::Replica;
pub use sink::RecordingSink;
pub use storage::{MemStorage, Storage, StoreCall};
pub use time::{Admission, Alarm, NoAlarm, Now};
use wazoo_zab::quorum::CommitPoint;

use reply::{build_reply, multi_sub_ops, reply, ReplyTo};

pub type ConnId = u64;

/// The core's per-request maps (connections, sessions' connections) with foldhash instead of
/// SipHash: several lookups per request, and SipHash was about 1.5% of getData 16x8's samples.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A connection's outgoing side as the core sees it: where its replies go, and what the core
/// learns back for flow control and session liveness. The runtime's is `ConnOut` (the socket and
/// its writer task); the core's unit tests use their own.
pub trait ConnSink: Send + Sync {
    /// Sends whole frames, in order; never blocks.
    fn send(&self, bytes: &[u8]);
    /// Bytes sent and not yet taken by the peer.
    fn queued(&self) -> usize;
    /// Asks for a [`CoreMsg::Drained`] once everything queued is written (the caller checks
    /// [`queued`](Self::queued) again afterwards).
    fn want_drained(&self);
    /// Withdraws [`want_drained`](Self::want_drained).
    fn drained_not_wanted(&self);
    /// Output stuck for this long closes the connection (the negotiated session timeout).
    fn set_stall_timeout(&self, ms: u64);
    /// `Now::mono_ms` when the connection last received a frame.
    fn last_received(&self) -> i64;
    /// Closes the connection once everything sent before has been written.
    fn close(&self);
}

/// A connection's outgoing side (see [`ConnSink`]).
pub type ConnTx = Arc<dyn ConnSink>;

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
        /// `Now::mono_ms` when the connection read the ConnectRequest.
        received_ms: i64,
    },
    Request {
        conn: ConnId,
        request: ClientRequest,
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
    /// Session expiry, as of `at_ms` (`Now::mono_ms` when the timer fired, not when the core gets to
    /// it: a tick that waited behind a stall must not count the stall against sessions).
    Tick {
        at_ms: i64,
    },
    ContainerCheck,
    /// The instant the core asked for (its pace [`Alarm`]) has come: large writes waiting for
    /// their pace may go.
    PaceLarge,
    /// A peer link's event (an ensemble member).
    Link(LinkEvent),
    /// The time the peer asked for (the [`Alarm`] given to [`Replica::new`]).
    PeerWake,
    /// The instant the core asked for on its recipe alarm ([`Core::set_recipe_alarm`]) has
    /// come: the earliest deadline of a parked recipe call.
    RecipeDeadline,
    /// A running recipe's tree access (see [`Recipes`]).
    RecipeAccess {
        run: RunId,
        access: wazoo_tree::Access,
    },
    /// A recipe run's end (see [`Recipes`]).
    RecipeEnd {
        run: RunId,
        end: RunEnd,
    },
    /// The runtime compiled `version` of recipe `name` ([`Recipes::install`]), or could not.
    RecipeInstalled {
        name: String,
        version: u64,
        error: Option<String>,
    },
    /// An admin command that lists the core's tables (`cons`, `stat`, `dump`, `wchs`, `wchc`,
    /// `wchp`); every other command is answered from the published gauges, without the core.
    Admin(AdminQuery),
}

/// A piece of an admin listing. The core answers each in time bounded by the size of the piece
/// ([`ADMIN_CHUNK`] entries; see `wazoo-server`'s `admin_http` for the protocol), except the
/// watch tables, which it walks whole ([`AdminQuery::Watches`]).
pub enum AdminQuery {
    /// The ids of every session (of the tree) and every connection: integers only.
    Ids(Reply<(Vec<i64>, Vec<ConnId>)>),
    /// The sessions `ids`, in order, with their ephemerals, the first one's from its `skip`th
    /// path on; the piece ends after [`ADMIN_CHUNK`] paths (see [`SessionChunk::resume`]).
    /// Sessions closed since are left out.
    Sessions {
        ids: Vec<i64>,
        skip: usize,
        reply: Reply<SessionChunk>,
    },
    /// The connections `ids` (closed ones left out).
    Conns {
        ids: Vec<ConnId>,
        reply: Reply<Vec<ConnectionStats>>,
    },
    /// `wchs`: the watch counts (kept as the registry changes: no walk).
    WatchCounts(Reply<WatchCounts>),
    /// The watched paths of the connections `ids`, in order, the first one's after `from`; the
    /// piece ends after [`ADMIN_CHUNK`] paths (see [`WatchChunk::resume`]). Closed connections
    /// are left out.
    WatchesOf {
        ids: Vec<ConnId>,
        from: Option<WatchCursor>,
        reply: Reply<WatchChunk>,
    },
    /// `crst`: every connection's statistics start again, as a new connection's
    /// (ZooKeeper's `ServerCnxn.resetStats`).
    ResetConnStats,
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
        /// A write forwarded to the leader keeps its place in the budgets here until answered
        /// (a write prepped here keeps it with its in-flight txn instead).
        _admit: Option<Admission>,
    },
    Read {
        xid: i32,
        op: i32,
        req: Result<Request, ErrorCode>,
        at: Instant,
        _admit: Admission,
    },
    /// A recipe call whose run has not ended (`recipe.rs`).
    Recipe { run: RunId },
    /// A recipe call's multi txn: answered with `output` when `zxid` applies.
    RecipeCommit {
        xid: i32,
        zxid: Zxid,
        output: Vec<u8>,
        at: Instant,
    },
    /// A learner's client's recipe call relayed to the leader (`relay.rs`): its reply frame
    /// (`None` until the leader's comes) goes out in turn once txn `after` (the zxid in the
    /// frame's header) is applied here.
    Relayed {
        xid: i32,
        frame: Option<Vec<u8>>,
        after: Zxid,
        at: Instant,
        _admit: Admission,
    },
    /// A reply decided before its turn (a recipe call's abort or failure): sent in turn, once
    /// txn `after` is applied (a recipe that read outstanding changes answers only once they
    /// are durable and applied; 0: at once).
    Ready {
        xid: i32,
        op: i32,
        result: Result<Response, ErrorCode>,
        at: Instant,
        after: Zxid,
    },
}

/// A request as its connection read and decoded it.
pub struct ClientRequest {
    pub xid: i32,
    pub op: i32,
    /// `Err`: an undecodable record (answered MARSHALLINGERROR, in order).
    pub req: Result<Request, ErrorCode>,
    /// Frame size in bytes.
    pub size: usize,
    /// `Now::mono_ms` when the connection read the frame: the session's activity time.
    pub received_ms: i64,
    /// Its place in the outstanding-request budgets, held until it is answered or applied.
    pub admit: Admission,
}

/// A request on the core, from its arrival (`at`, for its latency) until it is processed; it waits
/// in its connection's `parked` while the connection can take no more (see `Core::can_take`), and
/// its session is checked and it is prepped when its turn comes.
struct Parked {
    r: ClientRequest,
    at: Instant,
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
    /// Its recipe call running, if any: its later requests wait unprocessed until it ends.
    run: Option<RunId>,
    buf: Writer,
    closing: bool,
    established_ms: i64,
    stats: ConnStats,
}

impl Conn {
    /// A connection with nothing queued yet.
    fn new(
        remote: SocketAddr,
        session: i64,
        timeout: i32,
        auth: AuthInfo,
        out: ConnTx,
        established_ms: i64,
    ) -> Conn {
        Conn {
            remote,
            session,
            timeout,
            auth,
            out,
            queue: VecDeque::new(),
            queued_reads: 0,
            parked: VecDeque::new(),
            waiting_large: false,
            run: None,
            buf: Writer::new(),
            closing: false,
            established_ms,
            stats: ConnStats::default(),
        }
    }
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
    /// Its watch events woke parked calls when it was logged (`wake_logged`).
    woken_at_log: bool,
}

/// The core's state.
pub struct Core {
    cfg: Arc<CoreConfig>,
    prep_cfg: PrepConfig,
    tree: DataTree,
    pending: PendingChanges,
    watches: WatchRegistry,
    tracker: SessionTracker,
    conns: FastMap<ConnId, Conn>,
    session_conn: FastMap<i64, ConnId>,
    committer: Box<dyn Storage>,
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
    /// Connections whose next request is a large write waiting for `large_in_flight` to drop or
    /// for the pacer, in the order they started waiting.
    waiting_large: VecDeque<ConnId>,
    /// Holds large writes to their rate while others are served (see [`pace`]).
    pacer: LargeWritePacer,
    /// Where the core asks for a [`CoreMsg::PaceLarge`] (the pacer's retry instant).
    pace_wake: Box<dyn Alarm>,
    /// The highest zxid a quorum has durably ([`CommitPoint`]); txns up to it are applied.
    commit: CommitPoint,
    /// The time of the input being handled (see [`Now`]).
    now: Now,
    /// Session passwords; seeded by the runtime, so a simulator's run is reproducible.
    rng: StdRng,
    /// An ensemble member's peer (`None`: standalone).
    replica: Option<Box<Replica>>,
    /// The seq of the last batch handed to the committer.
    last_seq: u64,
    /// What the admin views' uptime counts from.
    started: Instant,
    /// Where recipe calls run (`None`: answered NORECIPE).
    recipes: Option<Box<dyn Recipes>>,
    runs: recipe::Runs,
    catalog: catalog::Catalog,
    /// Where the core asks for a [`CoreMsg::RecipeDeadline`], and the deadline (leader ms) it
    /// asked for last, if that is still to come.
    recipe_wake: Box<dyn Alarm>,
    recipe_wake_armed: Option<i64>,
}

/// What recovery hands the core: the tree as of the last applied txn, the first storage batch
/// (tree changes recovery staged), the zxid after the last logged one, and the zxid of the tree
/// as the store will hold it once the first batch is committed (an ensemble member keeps the
/// replayed txns unpersisted: see `Core::may_stage`).
pub struct Recovered {
    pub tree: DataTree,
    pub first_batch: Batch,
    pub next_zxid: Zxid,
    pub persisted: Zxid,
}

/// Why [`Core::handle`] stopped: a storage failure stops the node.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("storage failure: {0}")]
    Storage(String),
}

/// What the runtime hands a new core beside its state: the seams it works through and the shared
/// gauges it publishes to.
pub struct Wiring {
    /// The group committer (the runtime's storage worker; [`MemStorage`] in tests).
    pub storage: Box<dyn Storage>,
    /// Where the core asks for a [`CoreMsg::PaceLarge`].
    pub pace_alarm: Box<dyn Alarm>,
    pub metrics: Arc<Metrics>,
    pub gauges: Arc<Gauges>,
    /// What the admin views' uptime counts from.
    pub started: Instant,
}

impl Core {
    /// A core over the recovered state, working through `wiring`; `now` and `seed` (session
    /// passwords) come from the runtime.
    pub fn new(
        cfg: Arc<CoreConfig>,
        recovered: Recovered,
        wiring: Wiring,
        now: Now,
        seed: [u8; 32],
    ) -> Core {
        let Recovered {
            tree,
            first_batch,
            next_zxid,
            persisted,
        } = recovered;
        let Wiring {
            storage,
            pace_alarm,
            metrics,
            gauges,
            started,
        } = wiring;
        let now_ms = now.wall_ms;
        let mut tracker = SessionTracker::new(cfg.tick_time_ms as i64);
        // Sessions that were open before a restart get a full timeout to come back.
        for (id, s) in tree.sessions() {
            tracker.add(*id, s.timeout, now.mono_ms);
        }
        let staged_applied = persisted;
        let sid = cfg.server_id as i64;
        let next_session_id = (sid << 56) | (((now_ms as u64) << 24) >> 8) as i64;
        let large_write_rate = cfg.large_write_bytes_per_second;
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
            committer: storage,
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
            pacer: LargeWritePacer::new(large_write_rate),
            pace_wake: pace_alarm,
            commit: CommitPoint::standalone(sid as u64, staged_applied),
            now,
            rng: StdRng::from_seed(seed),
            replica: None,
            last_seq: 0,
            started,
            recipes: None,
            runs: recipe::Runs::default(),
            catalog: catalog::Catalog::default(),
            recipe_wake: Box::new(NoAlarm),
            recipe_wake_armed: None,
        }
    }

    /// The applied tree (for a simulator's or a test's checks; clients read it through requests).
    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    /// The core's first step, before any input: publishes its tables and starts the ensemble
    /// member's peer (a standalone server serves at once). The runtime calls [`Core::flush`]
    /// after it, as after every burst.
    pub fn start(&mut self, now: Now) -> Result<(), CoreError> {
        self.now = now;
        self.publish_tables();
        if self.replica.is_some() {
            self.peer_step(wazoo_zab::peer::Input::Start)?;
        } else {
            self.gauges.set_serving(true);
        }
        Ok(())
    }

    /// Handles one input at `now`. An error (storage failed) stops the node: the runtime stops
    /// feeding it.
    pub fn handle(&mut self, now: Now, msg: CoreMsg) -> Result<(), CoreError> {
        self.now = now;
        match msg {
            CoreMsg::Connect {
                conn,
                remote,
                req,
                out,
                received_ms,
            } => self.on_connect(conn, remote, req, out, received_ms),
            CoreMsg::Request { conn, request } => self.on_request(conn, request),
            CoreMsg::Closed { conn } => self.on_closed(conn),
            CoreMsg::Drained { conn } => self.pump(conn),
            CoreMsg::Durable(report) => return self.on_durable(report),
            CoreMsg::Tick { at_ms } => self.on_tick(at_ms),
            CoreMsg::ContainerCheck => self.on_container_check(),
            CoreMsg::PaceLarge => self.pump_waiting_large(),
            CoreMsg::Admin(q) => self.admin(q),
            CoreMsg::RecipeAccess { run, access } => self.on_recipe_access(run, access),
            CoreMsg::RecipeEnd { run, end } => self.on_recipe_end(run, end),
            CoreMsg::RecipeInstalled {
                name,
                version,
                error,
            } => self.on_recipe_installed(name, version, error),
            CoreMsg::Link(e) => return self.on_link(e),
            CoreMsg::PeerWake => return self.peer_step(wazoo_zab::peer::Input::Timeout),
            CoreMsg::RecipeDeadline => {
                self.recipe_wake_armed = None;
                self.time_out_parked();
            }
        }
        Ok(())
    }

    fn submit_close_session(&mut self, session: i64, origin: Option<ConnId>) -> Option<Zxid> {
        self.tracker.set_closing(session);
        self.prep_internal(
            session,
            &AuthInfo::default(),
            &Request::CloseSession,
            origin,
        )
    }

    /// Preps a server-generated request (session close, container reaping) at the next zxid and
    /// queues its txn for the log (`None`: no zxid, see [`Self::alloc_zxid`]).
    fn prep_internal(
        &mut self,
        session: i64,
        auth: &AuthInfo,
        req: &Request,
        origin: Option<ConnId>,
    ) -> Option<Zxid> {
        let zxid = self.alloc_zxid()?;
        self.prep_and_log(session, 0, true, auth, req, zxid, origin);
        Some(zxid)
    }

    /// Preps `req` of `session` (valid or not, as its tracker says) at `zxid` and logs the txn
    /// under `cxid`.
    #[allow(clippy::too_many_arguments)]
    fn prep_and_log(
        &mut self,
        session: i64,
        cxid: i32,
        valid: bool,
        auth: &AuthInfo,
        req: &Request,
        zxid: Zxid,
        origin: Option<ConnId>,
    ) {
        let time = self.now.wall_ms;
        let ctx = PrepCtx {
            session_id: session,
            session_valid: valid,
            auth,
            zxid,
            time,
        };
        let txn = prep(&self.tree, &mut self.pending, req, ctx, &self.prep_cfg);
        let header = TxnHeader {
            session_id: session,
            cxid,
            zxid,
            time,
        };
        self.log_txn(header, txn, origin);
    }

    /// The next txn's zxid. `None` when an ensemble's peer refuses to number it: it no longer
    /// leads, or its zxid counter is used up and it steps down for a new epoch. The request is
    /// then neither prepped nor logged (logging it at a zxid nobody proposed would put a txn
    /// of the next epoch's first zxid in this server's log), and leaving the role closes its
    /// connection.
    fn alloc_zxid(&mut self) -> Option<Zxid> {
        if self.replica.is_some() {
            // An ensemble's leader: the peer numbers it (only a leader takes clients and
            // expires sessions, so it is one here).
            let z = self.propose_zxid();
            match z {
                Some(z) => self.next_zxid = z + 1,
                None => warn!("the peer refused to number a write: not logged"),
            }
            return z;
        }
        let z = self.next_zxid;
        self.next_zxid += 1;
        Some(z)
    }

    fn submit_txn(
        &mut self,
        session: i64,
        cxid: i32,
        txn: Txn,
        origin: Option<ConnId>,
    ) -> Option<Zxid> {
        let zxid = self.alloc_zxid()?;
        self.log_txn(
            TxnHeader {
                session_id: session,
                cxid,
                zxid,
                time: self.now.wall_ms,
            },
            txn,
            origin,
        );
        Some(zxid)
    }

    fn log_txn(&mut self, header: TxnHeader, txn: Txn, origin: Option<ConnId>) {
        let woken_at_log = self.wake_logged(header.zxid, &txn);
        let data = encode_txn(&header, &txn);
        if self.replica.is_some() {
            self.proposed(header.zxid, &data);
        }
        self.batch.log.push(LogEntry {
            zxid: header.zxid,
            data,
        });
        self.inflight.push_back(InFlight {
            header,
            txn,
            origin,
            admit: None,
            large: 0,
            woken_at_log,
        });
    }

    /// Keeps a client request's budget places (and, for a large write, its bytes in
    /// `large_in_flight`) with the txn just logged for it, until it applies.
    fn hold_until_applied(&mut self, admit: Admission, large: usize) {
        if let Some(f) = self.inflight.back_mut() {
            f.admit = Some(admit);
            f.large = large;
            self.large_in_flight += large;
        }
    }

    /// Checks a request against its session and preps it (a write) or answers or queues it (a
    /// read), in its connection's order.
    fn process(&mut self, id: ConnId, p: Parked) {
        let large = if is_large_write(&p.r, self.cfg.large_request_threshold) {
            p.r.size
        } else {
            0
        };
        let Parked {
            r:
                ClientRequest {
                    xid,
                    op: opcode,
                    req,
                    received_ms,
                    admit,
                    ..
                },
            at: now,
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
            if op::is_write(opcode) && self.forwards() {
                self.forward_error(id, xid, opcode, code.code(), now, admit);
                return;
            }
            if op::is_write(opcode) {
                // ZooKeeper preps writes before decoding fails: the error is a txn with a zxid.
                warn!(%remote, op = op::name(opcode), "undecodable request record: replying {code}");
                let Some(zxid) =
                    self.submit_txn(session, xid, Txn::Error { err: code.code() }, Some(id))
                else {
                    return;
                };
                self.hold_until_applied(admit, 0);
                self.queue_write(id, xid, opcode, zxid, Vec::new(), now);
                return;
            }
        }
        let req = match req {
            Ok(Request::RecipeCall(call)) => {
                self.start_call(id, xid, opcode, call, now, admit);
                return;
            }
            other => other,
        };
        let is_write = matches!(&req, Ok(r) if r.is_write());
        if let (Ok(Request::Sync { path }), Some(_)) = (&req, &self.replica) {
            // An ensemble member's client's sync goes through the peer, the leader's own
            // clients' too: it completes once a quorum of voters confirmed that this server
            // still leads (docs/ensemble.md, departure 7). Answered here as a read, a leader cut
            // off from its quorum answered it from its stale tree.
            let path = path.clone();
            self.peer_sync(id, xid, path, now);
            return;
        }
        if self.forwards() && is_write {
            // A follower's or observer's client: writes go to the leader.
            let r = req.as_ref().expect("writes decoded").clone();
            self.forward_write(id, xid, opcode, &r, now, admit);
            return;
        }
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
            let Some(zxid) = self.submit_close_session(session, Some(id)) else {
                return;
            };
            self.hold_until_applied(admit, 0);
            self.queue_write(id, xid, opcode, zxid, Vec::new(), now);
            return;
        }
        let Some(zxid) = self.alloc_zxid() else {
            return;
        };
        let time = self.now.wall_ms;
        let Some(conn) = self.conns.get(&id) else {
            return; // the refusal's step down closed it
        };
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
        let sub_ops = multi_sub_ops(&req);
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
        self.hold_until_applied(admit, large);
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
                _admit: None,
            });
        }
    }

    /// Submits the storage batch and hands each touched connection its bytes; the runtime calls it
    /// after each burst of inputs. `idle`: nothing else is waiting in the inbox, so the batch may be
    /// committed right here (see `hand_over_batch`).
    pub fn flush(&mut self, idle: bool) {
        // Parked calls woken by the txns logged since the last flush (`wake_logged`) run now,
        // each once, when the disk is idle: the batch goes to it next, their runs overlap its
        // fsync, and what those that run on the core write joins it. While a batch is in
        // flight they run when it is durable (`after_apply`), still before the txn that woke
        // them is, and as many txns wake them at once as a group commit holds.
        if self.runs.any_woken() && self.submitted.is_empty() {
            self.run_woken();
        }
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
        // The leader's replies to learners' relayed recipe calls.
        self.send_relayed();
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
        if self.batch.is_empty() && !self.peer_ops_pending() {
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
        self.last_seq = seq;
        self.batch_submitted(seq);
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.gauges.set_serving(false);
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
