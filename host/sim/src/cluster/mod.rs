//! The simulator over the server itself (issue 10, item 4): 3, 5 or 7 voters and sometimes an
//! observer, each the real [`wazoo_core::Core`] with its replica (the real ZAB peer), tree,
//! session tracker and reply queues over a [`MemStore`], recovered from that store at every
//! restart by the same code the server runs ([`wazoo_core::load_tree`],
//! [`wazoo_core::replay_log`], [`wazoo_core::member_state`]); their own links run over a
//! simulated network (`net`), their storage commits when the simulator says (a commit, then its
//! fsync returning later), their clocks and timers are simulated, one clock per server. Clients
//! with sessions send real requests (`client`): setData with and without a version, getData with
//! and without a sync first (some setting watches), creates, ephemerals, closeSession, recipe
//! calls (a counter's add; a mutex's acquire, which parks server-side, and release: `recipes`,
//! `lock`); they move
//! their sessions between servers as ZooKeeper's clients do. One seeded RNG drives everything, so
//! a seed replays exactly.
//!
//! Faults (`faults`): crash and restart (losing what was not synced; a torn final record while a
//! commit's fsync has not returned), the leader crashed, a majority crashed at once, one server
//! isolated, splits, one server's messages lost one way, partitions that hold quorum traffic
//! until they heal, link resets, clogged pairs, slow disks, clock jumps, and SNAPs cut off after
//! a chunk that was not their last (the link, the learner or the leader goes). Checked after every
//! event: at most one leader per epoch, equal tree digests at equal applied zxids, the epochs on
//! disk, a serving server's tree never ahead of its store; as replies arrive, watch events before
//! the changes they announce; per seed, the clients' history (`history`); then, with faults
//! healed and every server restarted, one leader that every server follows, a write
//! acknowledged after the healing, and every server converged on the same tree.

mod client;
mod faults;
mod history;
mod lock;
mod net;
mod recipes;
mod workload;
mod world;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wazoo_admin::metrics::Metrics;
use wazoo_admin::published::Gauges;
use wazoo_core::{
    load_tree, member_state, replay_log, Admission, Alarm, ClientRequest, Core, CoreConfig,
    CoreMsg, LinkEvent, Links, MemStorage, Now, RecordingSink, Recovered, Replica, Wiring,
};
use wazoo_proto::{op as opcode, Acl, ConnectRequest, CreateRequest, Request};
use wazoo_store::{Batch, CommitReport, MemStore};
use wazoo_zab::election::Notification;
use wazoo_zab::peer::{PeerConfig, Serving};
use wazoo_zab::Sid;

use client::{Client, Waiting};
use history::{Kind, Op, Outcome, INITIAL};
use net::{NetAction, Outbox, QLink, SimTransport};

/// What a run simulates.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub voters: usize,
    /// Observers, after the voters (sids `voters + 1` ...).
    pub observers: usize,
    pub clients: usize,
    /// Keys the clients write and read (`/k0` ...).
    pub keys: usize,
    /// Simulated time with faults.
    pub chaos_ms: u64,
    /// After healing: the ensemble must serve a write and converge within this.
    pub converge_ms: u64,
    /// A client's think time between operations (at most).
    pub think_ms: u64,
    /// Mean interval between faults.
    pub fault_every_ms: u64,
    pub tick_ms: u32,
    /// initLimit and syncLimit, in ticks.
    pub init_limit: u32,
    pub sync_limit: u32,
    /// The session timeout clients ask for.
    pub session_timeout_ms: i32,
    /// `wazoo.diffWindowBytes`.
    pub diff_window_bytes: usize,
}

impl ClusterConfig {
    /// The shape seed `seed` runs: 3, 5 or 7 voters, sometimes an observer; odd seeds keep a
    /// small DIFF window, so learners further behind get a SNAP.
    pub fn for_seed(seed: u64) -> ClusterConfig {
        ClusterConfig {
            voters: [3, 5, 3, 7, 3][(seed % 5) as usize],
            observers: usize::from(seed % 4 == 1),
            clients: 6,
            keys: 3,
            chaos_ms: 6_000,
            converge_ms: 30_000,
            think_ms: 30,
            fault_every_ms: 600,
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
            session_timeout_ms: 3_000,
            diff_window_bytes: if seed % 2 == 1 { 4 << 10 } else { 1 << 20 },
        }
    }
}

/// What a passing run did.
#[derive(Clone, Debug, Default)]
pub struct ClusterReport {
    pub events: u64,
    /// Client operations by outcome.
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    /// Reads checked after a sync.
    pub synced_reads: u64,
    /// Multis of two setData that took effect, and that definitely failed (all or nothing).
    pub multis_ok: u64,
    pub multis_failed: u64,
    /// Watch events the clients received (each checked to come before any reply revealing the
    /// change it is about).
    pub watch_events: u64,
    /// Sessions moved to another server (reconnects with a session id).
    pub session_moves: u64,
    /// Armed data watches a moved session set again (SetWatches), each then checked like any.
    pub watches_set_again: u64,
    /// Counter adds (recipe calls) answered, and sent again under their request id after a
    /// lost connection.
    pub adds_ok: u64,
    pub adds_retried: u64,
    /// Mutex acquires granted (each node once), those granted after parking, those that timed
    /// out, and lock calls sent again under their request id.
    pub locks_granted: u64,
    pub locks_granted_after_wait: u64,
    pub lock_timeouts: u64,
    pub lock_calls_retried: u64,
    /// Sessions the clients were told had expired.
    pub sessions_expired: u64,
    pub leaders_established: u64,
    /// SNAP images received whole by a learner (streamed chunk by chunk).
    pub snaps_received: u64,
    /// SNAPs cut off on purpose after a chunk that was not their last (`maybe_cut_snap`).
    pub snaps_cut: u64,
    pub faults: BTreeMap<&'static str, u64>,
    /// Simulated ms from healing to a converged ensemble.
    pub converge_ms: u64,
}

/// A failing run: what broke, when, and the last events before it.
#[derive(Debug)]
pub struct ClusterFailure {
    pub seed: u64,
    pub at_ms: u64,
    pub what: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for ClusterFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "server-pipeline seed {} failed at {} ms: {}",
            self.seed, self.at_ms, self.what
        )?;
        writeln!(f, "last events:")?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        write!(
            f,
            "reproduce: wazoo sim --servers --seed {} (WAZOO_SIM_TRACE=100000 for every event)",
            self.seed
        )
    }
}

/// Runs one seed.
pub fn run_cluster(seed: u64, cfg: &ClusterConfig) -> Result<ClusterReport, ClusterFailure> {
    let mut w = World::new(seed, cfg.clone());
    match w.run() {
        Ok(()) => Ok(w.report),
        Err(what) => Err(ClusterFailure {
            seed,
            at_ms: w.now,
            what,
            trace: w.trace.into_iter().collect(),
        }),
    }
}

/// Runs `count` seeds from `from`, each with [`ClusterConfig::for_seed`]; stops at the first
/// failure. Returns the runs' reports summed.
pub fn sweep_cluster(from: u64, count: u64) -> Result<ClusterReport, ClusterFailure> {
    let mut sum = ClusterReport::default();
    for seed in from..from + count {
        let r = run_cluster(seed, &ClusterConfig::for_seed(seed))?;
        sum.events += r.events;
        sum.ops_ok += r.ops_ok;
        sum.ops_failed += r.ops_failed;
        sum.ops_unknown += r.ops_unknown;
        sum.synced_reads += r.synced_reads;
        sum.multis_ok += r.multis_ok;
        sum.watches_set_again += r.watches_set_again;
        sum.multis_failed += r.multis_failed;
        sum.watch_events += r.watch_events;
        sum.session_moves += r.session_moves;
        sum.sessions_expired += r.sessions_expired;
        sum.leaders_established += r.leaders_established;
        sum.snaps_received += r.snaps_received;
        sum.snaps_cut += r.snaps_cut;
        sum.adds_ok += r.adds_ok;
        sum.adds_retried += r.adds_retried;
        sum.locks_granted += r.locks_granted;
        sum.locks_granted_after_wait += r.locks_granted_after_wait;
        sum.lock_timeouts += r.lock_timeouts;
        sum.lock_calls_retried += r.lock_calls_retried;
        sum.converge_ms = sum.converge_ms.max(r.converge_ms);
        for (k, v) in r.faults {
            *sum.faults.entry(k).or_default() += v;
        }
    }
    Ok(sum)
}

/// A wake-up a core asked for: the instant and a generation (every call counts).
#[derive(Clone, Default)]
struct SimAlarm(Arc<Mutex<(Option<Instant>, u64)>>);

impl Alarm for SimAlarm {
    fn set(&self, at: Option<Instant>) {
        let mut a = self.0.lock().unwrap_or_else(|e| e.into_inner());
        a.0 = at;
        a.1 += 1;
    }
}

impl SimAlarm {
    fn get(&self) -> (Option<Instant>, u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running server.
struct Live {
    core: Core,
    storage: MemStorage,
    outbox: Outbox,
    /// What its recipe workers send its core (`recipes.rs`).
    workers: recipes::WorkerOutbox,
    /// The peer's and the pacer's alarms, and the generation of each last scheduled.
    alarms: [SimAlarm; 2],
    armed: [u64; 2],
    /// A commit is running or its fsync has not returned.
    disk_busy: bool,
    /// Log entries of the commit whose fsync has not returned (0: none in flight).
    in_flight_entries: usize,
    /// Its role as last seen.
    serving: Option<Serving>,
}

struct Node {
    sid: Sid,
    store: MemStore,
    /// Bumped at every boot: events of an earlier incarnation are dropped.
    inc: u64,
    live: Option<Live>,
    /// Its disk is slow until then.
    slow_disk_until: u64,
    /// How far its clocks are ahead of the simulation's (clock jumps move them forward).
    skew: u64,
    /// The epochs on its disk when last seen in this incarnation (they never go back while it
    /// runs).
    epochs: (u64, u64),
}

enum Event {
    Notify {
        to: Sid,
        n: Notification,
    },
    LinkUp {
        link: u64,
    },
    DialFailed {
        sid: Sid,
        inc: u64,
        leader: Sid,
        conn: u64,
    },
    Bytes {
        link: u64,
        side: usize,
        bytes: Vec<u8>,
    },
    Down {
        sid: Sid,
        inc: u64,
        peer: Sid,
        conn: u64,
    },
    Post {
        sid: Sid,
        inc: u64,
        event: LinkEvent,
    },
    Disk {
        sid: Sid,
        inc: u64,
    },
    DiskDone {
        sid: Sid,
        inc: u64,
        report: CommitReport,
    },
    Wake {
        sid: Sid,
        inc: u64,
        which: usize,
        gen: u64,
    },
    Tick {
        sid: Sid,
        inc: u64,
    },
    ClientSend {
        sid: Sid,
        inc: u64,
        sink: Arc<RecordingSink>,
        msg: CoreMsg,
    },
    ClientStep {
        client: usize,
        gen: u64,
    },
    /// A recipe worker's access or end, for its server's core.
    Worker {
        sid: Sid,
        inc: u64,
        msg: CoreMsg,
    },
    Fault,
    Heal,
    Restart {
        sid: Sid,
    },
    EndChaos,
}

impl Event {
    fn describe(&self) -> String {
        match self {
            Event::Notify { to, .. } => format!("notification to {to}"),
            Event::LinkUp { link } => format!("link {link} up"),
            Event::DialFailed { sid, leader, .. } => format!("{sid}'s dial of {leader} failed"),
            Event::Bytes { link, side, bytes } => {
                format!("{} bytes on link {link} to side {side}", bytes.len())
            }
            Event::Down { sid, peer, .. } => format!("{sid}'s link to {peer} down"),
            Event::Worker { sid, .. } => format!("{sid}: recipe worker"),
            Event::Post { sid, .. } => format!("{sid}: snapshot image read"),
            Event::Disk { sid, .. } => format!("{sid}: commit"),
            Event::DiskDone { sid, report, .. } => {
                format!(
                    "{sid}: fsync returned (seq {}, {} entries)",
                    report.seq, report.entries
                )
            }
            Event::Wake { sid, which, .. } => format!("{sid}: wake {which}"),
            Event::Tick { sid, .. } => format!("{sid}: tick"),
            Event::ClientSend { sid, msg, .. } => match msg {
                CoreMsg::Connect { req, .. } => {
                    format!("{sid}: connect (session {:#x})", req.session_id)
                }
                CoreMsg::Request { request, .. } => format!(
                    "{sid}: request xid {} {}",
                    request.xid,
                    opcode::name(request.op)
                ),
                CoreMsg::Closed { .. } => format!("{sid}: a client closed its connection"),
                _ => format!("{sid}: client message"),
            },
            Event::ClientStep { client, .. } => format!("client {client} step"),
            Event::Fault => "fault".into(),
            Event::Heal => "heal the network".into(),
            Event::Restart { sid } => format!("restart {sid}"),
            Event::EndChaos => "end of chaos".into(),
        }
    }
}

type Step = Result<(), String>;

struct World {
    cfg: ClusterConfig,
    rng: StdRng,
    now: u64,
    base: Instant,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    nodes: Vec<Node>,
    links: BTreeMap<u64, QLink>,
    next_link: u64,
    next_accept: u64,
    /// Directed pairs whose messages are held (quorum links) or lost (notifications) until the
    /// network heals, as a partition does to TCP.
    cut: BTreeSet<(Sid, Sid)>,
    /// Directed pairs whose messages are slow until then.
    clogged: BTreeMap<(Sid, Sid), u64>,
    clients: Vec<Client>,
    /// Setup requests client 0 sends before the chaos starts.
    setup: VecDeque<Request>,
    ops: Vec<Op>,
    expired: BTreeSet<i64>,
    next_conn: u64,
    leaders: BTreeMap<u64, Sid>,
    /// The digest of the tree at each applied zxid, as the first server to reach it had it.
    digests: BTreeMap<i64, u64>,
    chaos: bool,
    healed_at: Option<u64>,
    /// A write was acknowledged after the healing: clients stop, the servers must converge.
    stopping: bool,
    done: bool,
    report: ClusterReport,
    trace: VecDeque<String>,
    trace_len: usize,
}

/// Events a failure reports (`WAZOO_SIM_TRACE` sets another number, to debug a seed).
const TRACE: usize = 80;

pub(super) fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        op: opcode::CREATE,
        path: path.to_owned(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    })
}

pub(super) fn get(path: &str) -> Request {
    Request::GetData {
        path: path.to_owned(),
        watch: false,
    }
}
