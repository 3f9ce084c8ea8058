//! Lock-free server metrics and their Prometheus text exposition (format 0.0.4).
//!
//! [`Metrics`] is shared by every connection task (`Arc<Metrics>`) and updated on the hot path
//! with relaxed atomic operations only: a request counter and a latency histogram per ZooKeeper
//! operation ([`Op`]), read/update latency summaries (mntr's `readlatency` / `updatelatency`), an
//! fsync histogram and summary, packet and byte counts, auth failures, client response sizes, and
//! a fixed table of ZooKeeper's `ServerMetrics` counters ([`Counter`]) and summaries
//! ([`SummaryKind`]). Readers take snapshots; [`Metrics::fill_stats`] copies them into a
//! [`ServerStats`] for the four-letter words, and [`render_prometheus`] serves `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::javafmt::round4;
use crate::stats::{BufferSizeStats, LatencySummary, Percentiles, ServerStats, SummarySnapshot};

/// A ZooKeeper operation, for per-op metrics. Names are `ZooDefs.OpCode` spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Create,
    Delete,
    Exists,
    GetData,
    SetData,
    GetAcl,
    SetAcl,
    GetChildren,
    Sync,
    Ping,
    GetChildren2,
    Check,
    Multi,
    Create2,
    Reconfig,
    CheckWatches,
    RemoveWatches,
    CreateContainer,
    DeleteContainer,
    CreateTtl,
    MultiRead,
    Auth,
    SetWatches,
    Sasl,
    GetEphemerals,
    GetAllChildrenNumber,
    SetWatches2,
    AddWatch,
    WhoAmI,
    CreateSession,
    CloseSession,
    /// Any other opcode (including wazoo's own extensions unless they get an entry here).
    Unknown,
}

impl Op {
    /// Number of distinct [`Op`] values (the size of per-op tables).
    pub const COUNT: usize = 32;

    /// Every op, in table order.
    pub const ALL: [Op; Op::COUNT] = [
        Op::Create,
        Op::Delete,
        Op::Exists,
        Op::GetData,
        Op::SetData,
        Op::GetAcl,
        Op::SetAcl,
        Op::GetChildren,
        Op::Sync,
        Op::Ping,
        Op::GetChildren2,
        Op::Check,
        Op::Multi,
        Op::Create2,
        Op::Reconfig,
        Op::CheckWatches,
        Op::RemoveWatches,
        Op::CreateContainer,
        Op::DeleteContainer,
        Op::CreateTtl,
        Op::MultiRead,
        Op::Auth,
        Op::SetWatches,
        Op::Sasl,
        Op::GetEphemerals,
        Op::GetAllChildrenNumber,
        Op::SetWatches2,
        Op::AddWatch,
        Op::WhoAmI,
        Op::CreateSession,
        Op::CloseSession,
        Op::Unknown,
    ];

    /// The op of a wire opcode (`ZooDefs.OpCode`); anything unlisted is [`Op::Unknown`].
    pub fn from_opcode(code: i32) -> Op {
        match code {
            1 => Op::Create,
            2 => Op::Delete,
            3 => Op::Exists,
            4 => Op::GetData,
            5 => Op::SetData,
            6 => Op::GetAcl,
            7 => Op::SetAcl,
            8 => Op::GetChildren,
            9 => Op::Sync,
            11 => Op::Ping,
            12 => Op::GetChildren2,
            13 => Op::Check,
            14 => Op::Multi,
            15 => Op::Create2,
            16 => Op::Reconfig,
            17 => Op::CheckWatches,
            18 => Op::RemoveWatches,
            19 => Op::CreateContainer,
            20 => Op::DeleteContainer,
            21 => Op::CreateTtl,
            22 => Op::MultiRead,
            100 => Op::Auth,
            101 => Op::SetWatches,
            102 => Op::Sasl,
            103 => Op::GetEphemerals,
            104 => Op::GetAllChildrenNumber,
            105 => Op::SetWatches2,
            106 => Op::AddWatch,
            107 => Op::WhoAmI,
            -10 => Op::CreateSession,
            -11 => Op::CloseSession,
            _ => Op::Unknown,
        }
    }

    /// The wire opcode, `None` for [`Op::Unknown`].
    pub fn opcode(self) -> Option<i32> {
        Some(match self {
            Op::Create => 1,
            Op::Delete => 2,
            Op::Exists => 3,
            Op::GetData => 4,
            Op::SetData => 5,
            Op::GetAcl => 6,
            Op::SetAcl => 7,
            Op::GetChildren => 8,
            Op::Sync => 9,
            Op::Ping => 11,
            Op::GetChildren2 => 12,
            Op::Check => 13,
            Op::Multi => 14,
            Op::Create2 => 15,
            Op::Reconfig => 16,
            Op::CheckWatches => 17,
            Op::RemoveWatches => 18,
            Op::CreateContainer => 19,
            Op::DeleteContainer => 20,
            Op::CreateTtl => 21,
            Op::MultiRead => 22,
            Op::Auth => 100,
            Op::SetWatches => 101,
            Op::Sasl => 102,
            Op::GetEphemerals => 103,
            Op::GetAllChildrenNumber => 104,
            Op::SetWatches2 => 105,
            Op::AddWatch => 106,
            Op::WhoAmI => 107,
            Op::CreateSession => -10,
            Op::CloseSession => -11,
            Op::Unknown => return None,
        })
    }

    /// The name used as the Prometheus `op` label (ZooKeeper's `Request.op2String` spelling,
    /// with `createTTL` and `addWatch` named as in `ZooDefs.OpCode`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Delete => "delete",
            Op::Exists => "exists",
            Op::GetData => "getData",
            Op::SetData => "setData",
            Op::GetAcl => "getACL",
            Op::SetAcl => "setACL",
            Op::GetChildren => "getChildren",
            Op::Sync => "sync",
            Op::Ping => "ping",
            Op::GetChildren2 => "getChildren2",
            Op::Check => "check",
            Op::Multi => "multi",
            Op::Create2 => "create2",
            Op::Reconfig => "reconfig",
            Op::CheckWatches => "checkWatches",
            Op::RemoveWatches => "removeWatches",
            Op::CreateContainer => "createContainer",
            Op::DeleteContainer => "deleteContainer",
            Op::CreateTtl => "createTTL",
            Op::MultiRead => "multiRead",
            Op::Auth => "auth",
            Op::SetWatches => "setWatches",
            Op::Sasl => "sasl",
            Op::GetEphemerals => "getEphemerals",
            Op::GetAllChildrenNumber => "getAllChildrenNumber",
            Op::SetWatches2 => "setWatches2",
            Op::AddWatch => "addWatch",
            Op::WhoAmI => "whoAmI",
            Op::CreateSession => "createSession",
            Op::CloseSession => "closeSession",
            Op::Unknown => "unknown",
        }
    }

    /// The abbreviation ZooKeeper's `FinalRequestProcessor` records as a connection's last
    /// operation (`cons`' `lop=`): `GETD`, `CREA`, `MULT`, ...; `NA` for ops it does not name.
    pub fn last_op(self) -> &'static str {
        match self {
            Op::Ping => "PING",
            Op::CreateSession => "SESS",
            Op::Multi => "MULT",
            Op::MultiRead => "MLTR",
            Op::Create | Op::Create2 | Op::CreateTtl | Op::CreateContainer => "CREA",
            Op::Delete | Op::DeleteContainer => "DELE",
            Op::SetData => "SETD",
            Op::Reconfig => "RECO",
            Op::SetAcl => "SETA",
            Op::CloseSession => "CLOS",
            Op::Sync => "SYNC",
            Op::Check => "CHEC",
            Op::Exists => "EXIS",
            Op::GetData => "GETD",
            Op::SetWatches => "SETW",
            Op::SetWatches2 => "STW2",
            Op::AddWatch => "ADDW",
            Op::GetAcl => "GETA",
            Op::GetChildren | Op::GetChildren2 => "GETC",
            Op::GetAllChildrenNumber => "GETACN",
            Op::CheckWatches => "CHKW",
            Op::RemoveWatches => "REMW",
            Op::WhoAmI => "HOMI",
            Op::GetEphemerals => "GETE",
            Op::Auth | Op::Sasl | Op::Unknown => "NA",
        }
    }

    /// Whether the op is a quorum write (has a txn), i.e. counts toward `updatelatency` rather
    /// than `readlatency`.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Op::Create
                | Op::Delete
                | Op::SetData
                | Op::SetAcl
                | Op::Multi
                | Op::Create2
                | Op::Reconfig
                | Op::CreateContainer
                | Op::DeleteContainer
                | Op::CreateTtl
                | Op::CreateSession
                | Op::CloseSession
        )
    }
}

/// Upper bounds (inclusive, microseconds) of the latency histogram buckets; a final `+Inf`
/// bucket follows. Log-scaled 1-2.5-5 from 10 µs to 10 s.
pub const LATENCY_BUCKETS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

const NBUCKETS: usize = LATENCY_BUCKETS_US.len() + 1;

/// A fixed-bucket histogram of durations in microseconds (buckets [`LATENCY_BUCKETS_US`]).
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; NBUCKETS],
    sum_us: AtomicU64,
}

/// A read-out of a [`Histogram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per-bucket (not cumulative) counts; the last is the `+Inf` bucket.
    pub counts: [u64; NBUCKETS],
    pub sum_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe_us(&self, us: u64) {
        let idx = LATENCY_BUCKETS_US.partition_point(|&bound| bound < us);
        self.counts[idx].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Relaxed)),
            sum_us: self.sum_us.load(Relaxed),
        }
    }

    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Relaxed);
        }
        self.sum_us.store(0, Relaxed);
    }
}

impl HistogramSnapshot {
    /// Total observations (the sum of the buckets, so it always equals the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another snapshot's counts into this one.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    /// Estimated `q`-quantile in µs, interpolating linearly inside the bucket (as Prometheus'
    /// `histogram_quantile`); values in the `+Inf` bucket are estimated as `max_us`. 0 if empty.
    pub fn quantile_us(&self, q: f64, max_us: u64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let lower = if i == 0 { 0 } else { LATENCY_BUCKETS_US[i - 1] };
                let Some(&upper) = LATENCY_BUCKETS_US.get(i) else {
                    return max_us.max(lower);
                };
                let frac = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                let est = lower as f64 + (upper - lower) as f64 * frac;
                return (est.round() as u64).min(max_us.max(lower));
            }
            below += n;
        }
        max_us
    }
}

/// A lock-free min/max/sum/count summary (ZooKeeper's `AvgMinMaxCounter`).
#[derive(Debug)]
pub struct Summary {
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}

impl Summary {
    pub const fn new() -> Self {
        Summary {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn record(&self, v: u64) {
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        // Read first: most samples change neither bound, and a load is cheaper than an RMW.
        if v < self.min.load(Relaxed) {
            self.min.fetch_min(v, Relaxed);
        }
        if v > self.max.load(Relaxed) {
            self.max.fetch_max(v, Relaxed);
        }
    }

    /// The values as recorded.
    pub fn snapshot(&self) -> SummarySnapshot {
        self.snapshot_scaled(1)
    }

    /// The values divided by `divisor` (e.g. 1000 to show µs as ms): min, max and sum are
    /// truncated, the average is computed before scaling and rounded to 4 decimals.
    pub fn snapshot_scaled(&self, divisor: u64) -> SummarySnapshot {
        let divisor = divisor.max(1);
        let count = self.count.load(Relaxed);
        let sum = self.sum.load(Relaxed);
        if count == 0 {
            return SummarySnapshot::default();
        }
        let min = self.min.load(Relaxed);
        SummarySnapshot {
            count,
            sum: sum / divisor,
            min: if min == u64::MAX { 0 } else { min / divisor },
            max: self.max.load(Relaxed) / divisor,
            avg: round4(sum as f64 / count as f64 / divisor as f64),
            percentiles: None,
        }
    }

    pub fn reset(&self) {
        self.count.store(0, Relaxed);
        self.sum.store(0, Relaxed);
        self.min.store(u64::MAX, Relaxed);
        self.max.store(0, Relaxed);
    }
}

/// ZooKeeper `ServerMetrics` counters the server can bump with [`Metrics::inc`] / [`Metrics::add`].
///
/// Only counters wazoo measures are listed: a counter that is never bumped would show a zero that
/// looks like a measurement. ZooKeeper's ensemble counters (proposals, elections, DIFF/SNAP syncs,
/// learner proposals and commits) join when the ensemble exists; the ones for behaviours wazoo does
/// not have are left out: request throttling and large-request rejection (wazoo makes requests wait
/// for budget, it never drops or rejects them), connection drops (no drop probability), stale
/// requests and replies, digest mismatches. Connection accepts and rejections are not counted yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Bytes of client packets received (fed by [`Metrics::packet_received`]).
    BytesReceived,
    /// Bytes of responses sent, watch notifications excluded (fed by
    /// [`Metrics::client_response_size`]).
    ResponseBytes,
    /// Transactions applied to the tree (the server bumps it once per applied txn).
    CommitCount,
    /// Sessions expired by the session tracker (not closed by their client).
    StaleSessionsExpired,
    /// Client connections accepted within the connection limits.
    ConnectionRequest,
    /// Client connections refused by `maxClientCnxns` or `maxCnxns`.
    ConnectionRejected,
    /// Connections closed for sending no ConnectRequest within `nio.sessionlessCnxnTimeout`.
    SessionlessConnectionsExpired,
    /// A leader's learner syncs by DIFF, by SNAP, and (wazoo's) the ones that began by cutting
    /// the learner's log back (TRUNC).
    DiffCount,
    SnapCount,
    TruncCount,
    /// Recipe calls started (wazoo's), and their runs again after stale reads.
    RecipeRuns,
    RecipeReruns,
    /// Loaded recipe versions compiled and installed, and versions retired (wazoo's).
    RecipeVersionsInstalled,
    RecipeVersionsRetired,
    /// Recipe calls retried under their request id and answered without running again (taken
    /// over while live, or answered from the recorded answer), and parked calls re-armed from
    /// their records at start (wazoo's).
    RecipeRetriesAnswered,
    RecipeCallsRearmed,
    /// Parked recipe calls run once more, cancelled, because their session ended (wazoo's).
    RecipeCallsCancelled,
}

impl Counter {
    pub const COUNT: usize = 17;
    pub const ALL: [Counter; Counter::COUNT] = [
        Counter::BytesReceived,
        Counter::ResponseBytes,
        Counter::CommitCount,
        Counter::StaleSessionsExpired,
        Counter::ConnectionRequest,
        Counter::ConnectionRejected,
        Counter::SessionlessConnectionsExpired,
        Counter::DiffCount,
        Counter::SnapCount,
        Counter::TruncCount,
        Counter::RecipeRuns,
        Counter::RecipeReruns,
        Counter::RecipeVersionsInstalled,
        Counter::RecipeVersionsRetired,
        Counter::RecipeRetriesAnswered,
        Counter::RecipeCallsRearmed,
        Counter::RecipeCallsCancelled,
    ];

    /// The mntr key (without `zk_`).
    pub fn name(self) -> &'static str {
        self.info().0
    }

    /// (mntr name, Prometheus name without `wazoo_`, help).
    pub(crate) fn info(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Counter::BytesReceived => (
                "bytes_received_count",
                "received_bytes_total",
                "Bytes of client packets received.",
            ),
            Counter::ResponseBytes => (
                "response_bytes",
                "response_bytes_total",
                "Bytes of client responses sent (watch notifications excluded).",
            ),
            Counter::CommitCount => (
                "commit_count",
                "commits_total",
                "Transactions applied to the tree.",
            ),
            Counter::StaleSessionsExpired => (
                "stale_sessions_expired",
                "stale_sessions_expired_total",
                "Sessions expired by the session tracker.",
            ),
            Counter::ConnectionRequest => (
                "connection_request_count",
                "connection_requests_total",
                "Client connections accepted within the connection limits.",
            ),
            Counter::ConnectionRejected => (
                "connection_rejected",
                "connections_rejected_total",
                "Client connections refused by maxClientCnxns or maxCnxns.",
            ),
            Counter::SessionlessConnectionsExpired => (
                "sessionless_connections_expired",
                "sessionless_connections_expired_total",
                "Connections closed for sending no ConnectRequest in time.",
            ),
            Counter::DiffCount => (
                "diff_count",
                "learner_diff_syncs_total",
                "Learners synced by DIFF (leader).",
            ),
            Counter::SnapCount => (
                "snap_count",
                "learner_snap_syncs_total",
                "Learners synced by SNAP (leader).",
            ),
            Counter::TruncCount => (
                "trunc_count",
                "learner_trunc_syncs_total",
                "Learner syncs that began with a TRUNC (leader).",
            ),
            Counter::RecipeRuns => (
                "recipe_calls",
                "recipe_calls_total",
                "Recipe calls started.",
            ),
            Counter::RecipeReruns => (
                "recipe_reruns",
                "recipe_reruns_total",
                "Recipe calls run again because something they read changed while they ran.",
            ),
            Counter::RecipeVersionsInstalled => (
                "recipe_versions_installed",
                "recipe_versions_installed_total",
                "Loaded recipe versions compiled and installed.",
            ),
            Counter::RecipeVersionsRetired => (
                "recipe_versions_retired",
                "recipe_versions_retired_total",
                "Loaded recipe versions retired once no call used them.",
            ),
            Counter::RecipeRetriesAnswered => (
                "recipe_retries_answered",
                "recipe_retries_answered_total",
                "Recipe calls retried under their request id and answered without running again.",
            ),
            Counter::RecipeCallsRearmed => (
                "recipe_calls_rearmed",
                "recipe_calls_rearmed_total",
                "Parked recipe calls re-armed from their records at start.",
            ),
            Counter::RecipeCallsCancelled => (
                "recipe_calls_cancelled",
                "recipe_calls_cancelled_total",
                "Parked recipe calls run once more, cancelled, because their session closed or expired.",
            ),
        }
    }
}

/// ZooKeeper `ServerMetrics` summaries (besides fsync/read/update latency, which [`Metrics`]
/// keeps itself) recorded with [`Metrics::observe`]. Units are ZooKeeper's: milliseconds for
/// times, plain numbers for sizes and counts.
///
/// Only summaries wazoo measures are listed (see [`Counter`]): the ensemble's (election, sync,
/// proposal, quorum ack and propagation latencies, unavailable time) join with the ensemble;
/// snapshot times have no meaning here (the tree is persisted continuously, not snapshotted), and
/// startup is measured as a whole ([`SummaryKind::DbInitTime`]) and in replayed txns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SummaryKind {
    /// Time to recover the database at startup (tree load and log replay), ms.
    DbInitTime,
    /// Transactions written per group commit (one log write and fsync).
    SyncProcessorBatchSize,
    /// Watches triggered by a node creation (events that triggered none are not recorded, as in
    /// ZooKeeper's `WatchManager`).
    NodeCreatedWatchCount,
    NodeDeletedWatchCount,
    NodeChangedWatchCount,
    NodeChildrenWatchCount,
    /// Transactions replayed from the log at startup.
    StartupTxnsLoaded,
    /// A built-in recipe's run on the core's thread (instantiation, the wasm, its accesses), µs.
    RecipeRunHereMicros,
}

impl SummaryKind {
    pub const COUNT: usize = 8;
    pub const ALL: [SummaryKind; SummaryKind::COUNT] = [
        SummaryKind::DbInitTime,
        SummaryKind::SyncProcessorBatchSize,
        SummaryKind::NodeCreatedWatchCount,
        SummaryKind::NodeDeletedWatchCount,
        SummaryKind::NodeChangedWatchCount,
        SummaryKind::NodeChildrenWatchCount,
        SummaryKind::StartupTxnsLoaded,
        SummaryKind::RecipeRunHereMicros,
    ];

    /// The mntr name (keys `zk_avg_<name>`, ...).
    pub fn name(self) -> &'static str {
        self.info().0
    }

    /// (mntr name, Prometheus name without `wazoo_`, help).
    pub(crate) fn info(self) -> (&'static str, &'static str, &'static str) {
        match self {
            SummaryKind::DbInitTime => (
                "dbinittime",
                "db_init_time_milliseconds",
                "Time to load the database at startup.",
            ),
            SummaryKind::SyncProcessorBatchSize => (
                "sync_processor_batch_size",
                "group_commit_batch_size",
                "Transactions written per group-commit fsync.",
            ),
            SummaryKind::NodeCreatedWatchCount => (
                "node_created_watch_count",
                "node_created_watches_triggered",
                "Watches triggered per node creation.",
            ),
            SummaryKind::NodeDeletedWatchCount => (
                "node_deleted_watch_count",
                "node_deleted_watches_triggered",
                "Watches triggered per node deletion.",
            ),
            SummaryKind::NodeChangedWatchCount => (
                "node_changed_watch_count",
                "node_changed_watches_triggered",
                "Watches triggered per data change.",
            ),
            SummaryKind::NodeChildrenWatchCount => (
                "node_children_watch_count",
                "node_children_watches_triggered",
                "Watches triggered per children change.",
            ),
            SummaryKind::StartupTxnsLoaded => (
                "startup_txns_loaded",
                "startup_txns_loaded",
                "Transactions replayed at startup.",
            ),
            SummaryKind::RecipeRunHereMicros => (
                "recipe_run_here_us",
                "recipe_run_here_microseconds",
                "A built-in recipe's run on the core's thread, instantiation included.",
            ),
        }
    }
}

/// ZooKeeper's default `fsync.warningthresholdms`: an fsync slower than this is counted in
/// `fsync_threshold_exceed_count`.
pub const FSYNC_WARNING_THRESHOLD_US: u64 = 1_000_000;

/// The server's hot-path metrics. Every update is a relaxed atomic operation; nothing locks.
#[derive(Debug)]
pub struct Metrics {
    requests: [AtomicU64; Op::COUNT],
    request_latency: [Histogram; Op::COUNT],
    read_latency_us: Summary,
    update_latency_us: Summary,
    read_hist: Histogram,
    update_hist: Histogram,
    fsync_hist: Histogram,
    fsync_us: Summary,
    pub(crate) fsync_threshold_exceeded: AtomicU64,
    packets_received: AtomicU64,
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    auth_failed: AtomicU64,
    response_size_last: AtomicI64,
    response_size_min: AtomicI64,
    response_size_max: AtomicI64,
    counters: [AtomicU64; Counter::COUNT],
    summaries: [Summary; SummaryKind::COUNT],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            request_latency: std::array::from_fn(|_| Histogram::new()),
            read_latency_us: Summary::new(),
            update_latency_us: Summary::new(),
            read_hist: Histogram::new(),
            update_hist: Histogram::new(),
            fsync_hist: Histogram::new(),
            fsync_us: Summary::new(),
            fsync_threshold_exceeded: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            response_size_last: AtomicI64::new(-1),
            response_size_min: AtomicI64::new(-1),
            response_size_max: AtomicI64::new(-1),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            summaries: std::array::from_fn(|_| Summary::new()),
        }
    }

    /// One request answered after `latency_us` (from receipt to reply): bumps the op's counter
    /// and histogram and the read or update latency summary.
    pub fn record_request(&self, op: Op, latency_us: u64) {
        let i = op as usize;
        self.requests[i].fetch_add(1, Relaxed);
        self.request_latency[i].observe_us(latency_us);
        if op.is_write() {
            self.update_latency_us.record(latency_us);
            self.update_hist.observe_us(latency_us);
        } else {
            self.read_latency_us.record(latency_us);
            self.read_hist.observe_us(latency_us);
        }
    }

    /// One fsync (or group-commit flush) that took `duration_us`; one slower than
    /// [`FSYNC_WARNING_THRESHOLD_US`] is also counted in `fsync_threshold_exceed_count`.
    pub fn record_fsync(&self, duration_us: u64) {
        self.fsync_hist.observe_us(duration_us);
        self.fsync_us.record(duration_us);
        if duration_us > FSYNC_WARNING_THRESHOLD_US {
            self.fsync_threshold_exceeded.fetch_add(1, Relaxed);
        }
    }

    /// A client packet of `bytes` bytes (including its length prefix) was received.
    pub fn packet_received(&self, bytes: u64) {
        self.packets_received.fetch_add(1, Relaxed);
        self.counters[Counter::BytesReceived as usize].fetch_add(bytes, Relaxed);
    }

    /// A packet (reply or notification) of `bytes` bytes was sent to a client.
    pub fn packet_sent(&self, bytes: u64) {
        self.packets_sent.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes, Relaxed);
    }

    /// An authentication attempt failed.
    pub fn auth_failed(&self) {
        self.auth_failed.fetch_add(1, Relaxed);
    }

    /// A serialized client response of `bytes` bytes (mntr's `*_client_response_size` and
    /// `response_bytes`).
    pub fn client_response_size(&self, bytes: u64) {
        self.counters[Counter::ResponseBytes as usize].fetch_add(bytes, Relaxed);
        let v = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.response_size_last.store(v, Relaxed);
        let _ = self
            .response_size_min
            .fetch_update(Relaxed, Relaxed, |cur| (cur < 0 || v < cur).then_some(v));
        self.response_size_max.fetch_max(v, Relaxed);
    }

    /// Adds 1 to a counter.
    pub fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, c: Counter, n: u64) {
        self.counters[c as usize].fetch_add(n, Relaxed);
    }

    /// Records a value into one of the summaries.
    pub fn observe(&self, s: SummaryKind, value: u64) {
        self.summaries[s as usize].record(value);
    }

    /// An event of wire type `event_type` (1 created, 2 deleted, 3 data changed, 4 children
    /// changed) triggered `watches` watches. As ZooKeeper's `WatchManager`, an event that
    /// triggered none is not recorded.
    pub fn watches_triggered(&self, event_type: i32, watches: usize) {
        let kind = match event_type {
            1 => SummaryKind::NodeCreatedWatchCount,
            2 => SummaryKind::NodeDeletedWatchCount,
            3 => SummaryKind::NodeChangedWatchCount,
            4 => SummaryKind::NodeChildrenWatchCount,
            _ => return,
        };
        if watches > 0 {
            self.observe(kind, watches as u64);
        }
    }

    /// Requests of `op` answered so far.
    pub fn requests(&self, op: Op) -> u64 {
        self.requests[op as usize].load(Relaxed)
    }

    /// The latency histogram of `op`.
    pub fn request_latency(&self, op: Op) -> HistogramSnapshot {
        self.request_latency[op as usize].snapshot()
    }

    pub fn fsync_histogram(&self) -> HistogramSnapshot {
        self.fsync_hist.snapshot()
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.counters[c as usize].load(Relaxed)
    }

    pub fn summary(&self, s: SummaryKind) -> SummarySnapshot {
        self.summaries[s as usize].snapshot()
    }

    pub fn packets_received(&self) -> u64 {
        self.packets_received.load(Relaxed)
    }

    pub fn packets_sent(&self) -> u64 {
        self.packets_sent.load(Relaxed)
    }

    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Relaxed)
    }

    pub fn auth_failed_count(&self) -> u64 {
        self.auth_failed.load(Relaxed)
    }

    /// `srst`: resets what ZooKeeper's `ServerStats.reset` resets (latency, packet counts,
    /// client response sizes and every `ServerMetrics` counter and summary). The per-op request
    /// counters and histograms behind `/metrics` are kept, so Prometheus counters stay monotonic,
    /// as is the auth failure count.
    pub fn reset(&self) {
        self.read_latency_us.reset();
        self.update_latency_us.reset();
        self.read_hist.reset();
        self.update_hist.reset();
        self.fsync_us.reset();
        self.fsync_threshold_exceeded.store(0, Relaxed);
        self.packets_received.store(0, Relaxed);
        self.packets_sent.store(0, Relaxed);
        self.response_size_last.store(-1, Relaxed);
        self.response_size_min.store(-1, Relaxed);
        self.response_size_max.store(-1, Relaxed);
        for c in &self.counters {
            c.store(0, Relaxed);
        }
        for s in &self.summaries {
            s.reset();
        }
    }

    /// Copies the metric-derived fields into `stats`: `packets_received`, `packets_sent`,
    /// `latency`, `auth_failed_count`, `client_response`, `fsync`, `read_latency`,
    /// `update_latency`, `fsync_threshold_exceed_count`, `counters` and `summaries`.
    pub fn fill_stats(&self, stats: &mut ServerStats) {
        stats.packets_received = self.packets_received();
        stats.packets_sent = self.packets_sent();
        stats.auth_failed_count = self.auth_failed_count();
        stats.client_response = BufferSizeStats {
            last: self.response_size_last.load(Relaxed),
            min: self.response_size_min.load(Relaxed),
            max: self.response_size_max.load(Relaxed),
        };
        stats.fsync = self.fsync_us.snapshot_scaled(1000);
        stats.fsync_threshold_exceed_count = self.fsync_threshold_exceeded.load(Relaxed);
        stats.read_latency = latency_ms(&self.read_latency_us, &self.read_hist);
        stats.update_latency = latency_ms(&self.update_latency_us, &self.update_hist);
        stats.latency = merged_latency(&stats.read_latency, &stats.update_latency);
        stats.counters = Counter::ALL
            .iter()
            .map(|&c| (c.name(), self.counter(c)))
            .collect();
        stats.summaries = SummaryKind::ALL
            .iter()
            .map(|&s| (s.name(), self.summary(s)))
            .collect();
    }
}

/// A µs summary shown in ms, with percentiles estimated from its histogram.
fn latency_ms(summary: &Summary, hist: &Histogram) -> SummarySnapshot {
    let mut snap = summary.snapshot_scaled(1000);
    let h = hist.snapshot();
    let max_us = summary.max.load(Relaxed);
    let q = |q: f64| (h.quantile_us(q, max_us) as f64 / 1000.0).round() as u64;
    snap.percentiles = Some(Percentiles {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
    });
    snap
}

/// `srvr`'s request latency: reads and writes together.
fn merged_latency(a: &SummarySnapshot, b: &SummarySnapshot) -> LatencySummary {
    let count = a.count + b.count;
    if count == 0 {
        return LatencySummary::default();
    }
    let min = match (a.count, b.count) {
        (0, _) => b.min,
        (_, 0) => a.min,
        _ => a.min.min(b.min),
    };
    let weighted = a.avg * a.count as f64 + b.avg * b.count as f64;
    LatencySummary {
        min,
        avg: round4(weighted / count as f64),
        max: a.max.max(b.max),
    }
}

pub use crate::prometheus::render_prometheus;

#[cfg(test)]
#[path = "metrics_test.rs"]
mod tests;
