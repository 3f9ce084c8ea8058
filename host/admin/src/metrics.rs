//! Lock-free server metrics and their Prometheus text exposition (format 0.0.4).
//!
//! [`Metrics`] is shared by every connection task (`Arc<Metrics>`) and updated on the hot path
//! with relaxed atomic operations only: a request counter and a latency histogram per ZooKeeper
//! operation ([`Op`]), read/update latency summaries (mntr's `readlatency` / `updatelatency`), an
//! fsync histogram and summary, packet and byte counts, auth failures, client response sizes, and
//! a fixed table of ZooKeeper's `ServerMetrics` counters ([`Counter`]) and summaries
//! ([`SummaryKind`]). Readers take snapshots; [`Metrics::fill_stats`] copies them into a
//! [`ServerStats`] for the four-letter words, and [`render_prometheus`] serves `/metrics`.

use std::fmt::Write as _;
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
}

impl Counter {
    pub const COUNT: usize = 7;
    pub const ALL: [Counter; Counter::COUNT] = [
        Counter::BytesReceived,
        Counter::ResponseBytes,
        Counter::CommitCount,
        Counter::StaleSessionsExpired,
        Counter::ConnectionRequest,
        Counter::ConnectionRejected,
        Counter::SessionlessConnectionsExpired,
    ];

    /// The mntr key (without `zk_`).
    pub fn name(self) -> &'static str {
        self.info().0
    }

    /// (mntr name, Prometheus name without `wazoo_`, help).
    fn info(self) -> (&'static str, &'static str, &'static str) {
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
}

impl SummaryKind {
    pub const COUNT: usize = 7;
    pub const ALL: [SummaryKind; SummaryKind::COUNT] = [
        SummaryKind::DbInitTime,
        SummaryKind::SyncProcessorBatchSize,
        SummaryKind::NodeCreatedWatchCount,
        SummaryKind::NodeDeletedWatchCount,
        SummaryKind::NodeChangedWatchCount,
        SummaryKind::NodeChildrenWatchCount,
        SummaryKind::StartupTxnsLoaded,
    ];

    /// The mntr name (keys `zk_avg_<name>`, ...).
    pub fn name(self) -> &'static str {
        self.info().0
    }

    /// (mntr name, Prometheus name without `wazoo_`, help).
    fn info(self) -> (&'static str, &'static str, &'static str) {
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
    fsync_threshold_exceeded: AtomicU64,
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

/// Writes Prometheus text exposition (0.0.4) lines.
struct Prom {
    out: String,
}

impl Prom {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP wazoo_{name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE wazoo_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.out.push_str("wazoo_");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(value);
        self.out.push('\n');
    }

    fn gauge(&mut self, name: &str, help: &str, value: &str) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], &value.to_string());
    }

    fn histogram_samples(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = match LATENCY_BUCKETS_US.get(i) {
                Some(&us) => fmt_f64(us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, &cumulative.to_string());
        }
        self.sample(
            &format!("{name}_sum"),
            labels,
            &fmt_f64(h.sum_us as f64 / 1e6),
        );
        self.sample(&format!("{name}_count"), labels, &cumulative.to_string());
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A float as Prometheus (Go's `ParseFloat`) reads it.
fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// The `/metrics` body: Prometheus text exposition format 0.0.4, every name prefixed `wazoo_`.
/// Gauges come from `stats` (the server's current state); counters and histograms from `metrics`.
pub fn render_prometheus(stats: &ServerStats, metrics: &Metrics) -> String {
    let mut p = Prom {
        out: String::with_capacity(16 * 1024),
    };

    p.family(
        "info",
        "gauge",
        "Server version and role; the value is always 1.",
    );
    p.sample(
        "info",
        &[("version", &stats.version), ("mode", stats.mode.as_str())],
        "1",
    );
    p.gauge(
        "serving",
        "1 if the server is serving client requests.",
        if stats.serving { "1" } else { "0" },
    );
    p.gauge(
        "read_only",
        "1 if the server is in read-only mode.",
        if stats.is_read_only() { "1" } else { "0" },
    );
    p.gauge(
        "uptime_seconds",
        "Time since the server started.",
        &fmt_f64(stats.uptime_ms as f64 / 1000.0),
    );
    p.gauge(
        "zxid",
        "Last processed zxid (exact up to 2^53; see wazoo_zxid_epoch and wazoo_zxid_counter).",
        &stats.zxid.to_string(),
    );
    p.gauge(
        "zxid_epoch",
        "Epoch of the last processed zxid.",
        &((stats.zxid as u64) >> 32).to_string(),
    );
    p.gauge(
        "zxid_counter",
        "Counter of the last processed zxid.",
        &((stats.zxid as u64) & 0xffff_ffff).to_string(),
    );
    p.gauge(
        "znodes",
        "Znodes in the tree.",
        &stats.node_count.to_string(),
    );
    p.gauge(
        "approximate_data_size_bytes",
        "Approximate size of znode paths and data.",
        &stats.approximate_data_size.to_string(),
    );
    p.gauge(
        "ephemerals",
        "Ephemeral znodes.",
        &stats.ephemerals_count.to_string(),
    );
    p.gauge(
        "sessions",
        "Global sessions.",
        &stats.global_sessions.to_string(),
    );
    p.gauge(
        "connections",
        "Live client connections.",
        &stats.connection_count.to_string(),
    );
    p.gauge(
        "outstanding_requests",
        "Requests received and not yet answered.",
        &stats.outstanding_requests.to_string(),
    );
    // Distinct watched paths take a walk of the watch tables: only `wchs` reports them.
    p.gauge("watches", "Watches set.", &stats.watch_count.to_string());
    p.gauge(
        "data_dir_size_bytes",
        "Size of the data directory.",
        &stats.data_dir_size.to_string(),
    );
    p.gauge(
        "log_dir_size_bytes",
        "Size of the transaction log directory.",
        &stats.log_dir_size.to_string(),
    );
    if let Some(n) = stats.open_fds {
        p.gauge("open_fds", "Open file descriptors.", &n.to_string());
    }
    if let Some(n) = stats.max_fds {
        p.gauge("max_fds", "File descriptor limit.", &n.to_string());
    }
    if let Some(l) = &stats.leader {
        p.gauge("learners", "Connected learners.", &l.learners.to_string());
        p.gauge(
            "synced_followers",
            "Followers in sync with this leader.",
            &l.synced_followers.to_string(),
        );
        p.gauge(
            "synced_observers",
            "Observers in sync with this leader.",
            &l.synced_observers.to_string(),
        );
        p.gauge(
            "pending_syncs",
            "Sync requests waiting for a commit.",
            &l.pending_syncs.to_string(),
        );
    }

    p.counter(
        "packets_received_total",
        "Client packets received (reset by srst).",
        metrics.packets_received(),
    );
    p.counter(
        "packets_sent_total",
        "Client packets sent (reset by srst).",
        metrics.packets_sent(),
    );
    p.counter(
        "sent_bytes_total",
        "Bytes of client packets sent.",
        metrics.bytes_sent(),
    );
    p.counter(
        "auth_failures_total",
        "Failed authentication attempts.",
        metrics.auth_failed_count(),
    );
    p.counter(
        "fsync_threshold_exceeded_total",
        "Fsyncs slower than the warning threshold.",
        metrics.fsync_threshold_exceeded.load(Relaxed),
    );
    for c in Counter::ALL {
        let (_, name, help) = c.info();
        p.counter(name, help, metrics.counter(c));
    }

    p.family(
        "requests_total",
        "counter",
        "Client requests answered, by operation.",
    );
    for op in Op::ALL {
        p.sample(
            "requests_total",
            &[("op", op.name())],
            &metrics.requests(op).to_string(),
        );
    }

    p.family(
        "request_latency_seconds",
        "histogram",
        "Time from receiving a request to sending its reply, by operation.",
    );
    for op in Op::ALL {
        let h = metrics.request_latency(op);
        if h.count() > 0 {
            p.histogram_samples("request_latency_seconds", &[("op", op.name())], &h);
        }
    }

    p.family(
        "fsync_seconds",
        "histogram",
        "Duration of transaction log fsyncs.",
    );
    p.histogram_samples("fsync_seconds", &[], &metrics.fsync_histogram());

    for s in SummaryKind::ALL {
        let (_, name, help) = s.info();
        let snap = metrics.summary(s);
        p.family(name, "summary", help);
        p.sample(&format!("{name}_sum"), &[], &snap.sum.to_string());
        p.sample(&format!("{name}_count"), &[], &snap.count.to_string());
    }
    p.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn op_table_is_consistent() {
        assert_eq!(Op::ALL.len(), Op::COUNT);
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
            if *op != Op::Unknown {
                let code = op.opcode().expect("listed op has an opcode");
                assert_eq!(Op::from_opcode(code), *op);
            }
        }
        assert_eq!(Op::Unknown.opcode(), None);
        assert_eq!(Op::from_opcode(0), Op::Unknown);
        assert_eq!(Op::from_opcode(-1), Op::Unknown);
        assert_eq!(Op::from_opcode(4).name(), "getData");
        assert_eq!(Op::from_opcode(21).name(), "createTTL");
        assert_eq!(Op::GetChildren2.last_op(), "GETC");
        let names: HashSet<_> = Op::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), Op::COUNT);
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        for (i, s) in SummaryKind::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn summary_min_max_avg() {
        let s = Summary::new();
        assert_eq!(s.snapshot(), SummarySnapshot::default());
        for v in [5, 1, 9, 3] {
            s.record(v);
        }
        let snap = s.snapshot();
        assert_eq!((snap.count, snap.sum, snap.min, snap.max), (4, 18, 1, 9));
        assert_eq!(snap.avg, 4.5);
        let ms = s.snapshot_scaled(1000);
        assert_eq!((ms.min, ms.max, ms.sum), (0, 0, 0));
        assert_eq!(ms.avg, 0.0045);
        s.reset();
        assert_eq!(s.snapshot(), SummarySnapshot::default());
    }

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::new();
        h.observe_us(0);
        h.observe_us(10); // le 10 (inclusive)
        h.observe_us(11); // le 25
        h.observe_us(20_000_000); // +Inf
        let snap = h.snapshot();
        assert_eq!(snap.counts[0], 2);
        assert_eq!(snap.counts[1], 1);
        assert_eq!(snap.counts[NBUCKETS - 1], 1);
        assert_eq!(snap.count(), 4);
        assert_eq!(snap.sum_us, 20_000_021);
        assert_eq!(snap.quantile_us(1.0, 20_000_000), 20_000_000);
        assert!(snap.quantile_us(0.5, 20_000_000) <= 10);

        let h = Histogram::new();
        for _ in 0..100 {
            h.observe_us(400); // bucket (250, 500]
        }
        let q = h.snapshot().quantile_us(0.5, 400);
        assert!((250..=400).contains(&q), "{q}");
        assert_eq!(Histogram::new().snapshot().quantile_us(0.99, 0), 0);
    }

    #[test]
    fn fill_stats_copies_metrics() {
        let m = Metrics::new();
        m.record_request(Op::GetData, 1_500);
        m.record_request(Op::GetData, 500);
        m.record_request(Op::Create, 4_000);
        m.record_fsync(2_000);
        m.packet_received(100);
        m.packet_received(50);
        m.packet_sent(80);
        m.auth_failed();
        m.client_response_size(10);
        m.client_response_size(30);
        m.client_response_size(20);
        m.inc(Counter::CommitCount);
        m.observe(SummaryKind::DbInitTime, 12);
        let mut s = ServerStats::new("v");
        m.fill_stats(&mut s);
        assert_eq!(s.packets_received, 2);
        assert_eq!(s.packets_sent, 1);
        assert_eq!(s.auth_failed_count, 1);
        assert_eq!(
            s.client_response,
            BufferSizeStats {
                last: 20,
                min: 10,
                max: 30
            }
        );
        assert_eq!(s.read_latency.count, 2);
        assert_eq!(s.read_latency.avg, 1.0);
        assert_eq!(s.update_latency.count, 1);
        assert_eq!(s.update_latency.max, 4);
        assert_eq!(
            s.latency,
            LatencySummary {
                min: 0,
                avg: 2.0,
                max: 4
            }
        );
        assert_eq!(s.fsync.count, 1);
        assert_eq!(s.fsync.avg, 2.0);
        assert!(s.read_latency.percentiles.is_some());
        assert!(s.counters.contains(&("commit_count", 1)));
        assert!(s.counters.contains(&("bytes_received_count", 150)));
        let snap = s
            .summaries
            .iter()
            .find(|(n, _)| *n == "dbinittime")
            .map(|(_, v)| *v)
            .unwrap();
        assert_eq!((snap.count, snap.max), (1, 12));
        assert_eq!(m.requests(Op::GetData), 2);

        m.reset();
        let mut s = ServerStats::new("v");
        m.fill_stats(&mut s);
        assert_eq!(s.packets_received, 0);
        assert_eq!(s.read_latency.count, 0);
        assert_eq!(s.client_response, BufferSizeStats::default());
        assert_eq!(s.latency, LatencySummary::default());
        assert!(s.counters.contains(&("commit_count", 0)));
        // Prometheus per-op totals survive srst.
        assert_eq!(m.requests(Op::GetData), 2);
    }

    /// mntr and /metrics list only what wazoo measures: none of ZooKeeper's ensemble, snapshot,
    /// throttling or rejection metrics, which would read as measured zeros.
    #[test]
    fn never_updated_metrics_are_not_reported() {
        let m = Metrics::new();
        let mut s = ServerStats::new("v");
        m.fill_stats(&mut s);
        let mntr = crate::render(crate::FourLetterWord::Mntr, &s);
        let prom = render_prometheus(&s, &m);
        for absent in [
            "proposal_count",
            "looking_count",
            "diff_count",
            "snap_count",
            "learner_proposal_received_count",
            "learner_commit_received_count",
            "throttled_ops",
            "large_requests_rejected",
            "connection_drop_count",
            "stale_requests",
            "stale_replies",
            "digest_mismatches_count",
            "unrecoverable_error_count",
            "watch_bytes",
            "snapshottime",
            "election_time",
            "follower_sync_time",
            "observer_sync_time",
            "unavailable_time",
            "propagation_latency",
            "proposal_latency",
            "quorum_ack_latency",
            "startup_snap_load_time",
            "startup_txns_load_time",
        ] {
            assert!(
                !mntr.contains(&format!("_{absent}\t")),
                "mntr lists {absent}"
            );
        }
        for absent in [
            "proposals_total",
            "elections_total",
            "throttled_ops_total",
            "large_requests_rejected_total",
            "election_time_milliseconds",
            "snapshot_time_milliseconds",
            "quorum_ack_latency_milliseconds",
        ] {
            assert!(!prom.contains(absent), "/metrics lists {absent}");
        }
        for present in [
            "zk_bytes_received_count\t0\n",
            "zk_response_bytes\t0\n",
            "zk_commit_count\t0\n",
            "zk_stale_sessions_expired\t0\n",
            "zk_connection_request_count\t0\n",
            "zk_connection_rejected\t0\n",
            "zk_sessionless_connections_expired\t0\n",
            "zk_cnt_sync_processor_batch_size\t0\n",
            "zk_cnt_node_created_watch_count\t0\n",
            "zk_cnt_dbinittime\t0\n",
            "zk_cnt_startup_txns_loaded\t0\n",
        ] {
            assert!(mntr.contains(present), "{present:?} not in\n{mntr}");
        }
    }

    /// Each listed counter and summary moves when its event happens.
    #[test]
    fn listed_metrics_move_with_their_events() {
        let m = Metrics::new();
        m.packet_received(40);
        m.client_response_size(16);
        m.client_response_size(24);
        m.inc(Counter::CommitCount);
        m.add(Counter::StaleSessionsExpired, 2);
        m.record_fsync(500);
        m.record_fsync(1_500_000);
        m.watches_triggered(1, 2);
        m.watches_triggered(2, 1);
        m.watches_triggered(3, 0); // triggered nothing: not recorded
        m.watches_triggered(4, 3);
        m.watches_triggered(4, 5);
        m.observe(SummaryKind::SyncProcessorBatchSize, 7);
        let mut s = ServerStats::new("v");
        m.fill_stats(&mut s);
        let mntr = crate::render(crate::FourLetterWord::Mntr, &s);
        for line in [
            "zk_bytes_received_count\t40\n",
            "zk_response_bytes\t40\n",
            "zk_commit_count\t1\n",
            "zk_stale_sessions_expired\t2\n",
            "zk_cnt_node_created_watch_count\t1\n",
            "zk_sum_node_created_watch_count\t2\n",
            "zk_cnt_node_deleted_watch_count\t1\n",
            "zk_cnt_node_changed_watch_count\t0\n",
            "zk_cnt_node_children_watch_count\t2\n",
            "zk_max_node_children_watch_count\t5\n",
            "zk_max_sync_processor_batch_size\t7\n",
            "zk_cnt_fsynctime\t2\n",
        ] {
            assert!(mntr.contains(line), "{line:?} not in\n{mntr}");
        }
        assert_eq!(s.fsync_threshold_exceed_count, 1);
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        m.record_request(Op::Exists, i % 1000 + t);
                        m.packet_received(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(m.requests(Op::Exists), 40_000);
        assert_eq!(m.request_latency(Op::Exists).count(), 40_000);
        assert_eq!(m.packets_received(), 40_000);
        let mut s = ServerStats::default();
        m.fill_stats(&mut s);
        assert_eq!(s.read_latency.count, 40_000);
        assert_eq!(s.read_latency.min, 0);
    }

    /// A strict line-by-line validator for the Prometheus text format 0.0.4.
    fn validate_exposition(text: &str) -> Result<usize, String> {
        type Labels = Vec<(String, String)>;
        fn valid_name(s: &str) -> bool {
            let mut chars = s.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        }
        fn valid_label_name(s: &str) -> bool {
            valid_name(s) && !s.contains(':')
        }
        fn parse_value(s: &str) -> Option<f64> {
            match s {
                "+Inf" => Some(f64::INFINITY),
                "-Inf" => Some(f64::NEG_INFINITY),
                "NaN" => Some(f64::NAN),
                _ if s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
                {
                    s.parse().ok()
                }
                _ => None,
            }
        }
        /// Parses `{a="x",b="y"}`; returns the labels and the rest of the line.
        fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
            let mut labels = Vec::new();
            let mut rest = &s[1..];
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    return Ok((labels, r));
                }
                let eq = rest.find('=').ok_or("label without =")?;
                let name = &rest[..eq];
                if !valid_label_name(name) {
                    return Err(format!("bad label name {name:?}"));
                }
                rest = rest[eq + 1..]
                    .strip_prefix('"')
                    .ok_or("label value not quoted")?;
                let mut value = String::new();
                let mut chars = rest.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            _ => return Err("bad escape".into()),
                        },
                        Some((i, '"')) => break i,
                        Some((_, '\n')) => return Err("raw newline in label".into()),
                        Some((_, c)) => value.push(c),
                        None => return Err("unterminated label value".into()),
                    }
                };
                labels.push((name.to_owned(), value));
                rest = &rest[end + 1..];
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else if !rest.starts_with('}') {
                    return Err("expected , or }".into());
                }
            }
        }

        if !text.ends_with('\n') {
            return Err("no trailing newline".into());
        }
        let mut types: HashMap<String, String> = HashMap::new();
        let mut helps: HashSet<String> = HashSet::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut series: HashSet<String> = HashSet::new();
        // histogram (family, labels without le) -> (last le, last cumulative count)
        let mut buckets: HashMap<String, (f64, f64)> = HashMap::new();
        let mut inf_counts: HashMap<String, f64> = HashMap::new();
        let mut samples = 0;
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let err = |m: String| format!("line {n}: {m}: {line:?}");
            if line.is_empty() {
                return Err(err("empty line".into()));
            }
            if let Some(comment) = line.strip_prefix('#') {
                let parts: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
                match parts.as_slice() {
                    ["HELP", name, ..]
                        if !valid_name(name) || !helps.insert((*name).to_owned()) =>
                    {
                        return Err(err("bad or repeated HELP".into()));
                    }
                    ["TYPE", name, kind] => {
                        if !valid_name(name) {
                            return Err(err("bad TYPE name".into()));
                        }
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                            return Err(err("bad TYPE".into()));
                        }
                        if types
                            .insert((*name).to_owned(), (*kind).to_owned())
                            .is_some()
                            || finished.contains(*name)
                        {
                            return Err(err("TYPE repeated or after samples".into()));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            let name_end = line
                .find(['{', ' '])
                .ok_or_else(|| err("no value".into()))?;
            let name = &line[..name_end];
            if !valid_name(name) {
                return Err(err("bad metric name".into()));
            }
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..]).map_err(err)?
            } else {
                (Vec::new(), &line[name_end..])
            };
            let rest = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space".into()))?;
            let mut fields = rest.split(' ');
            let value = fields
                .next()
                .and_then(parse_value)
                .ok_or_else(|| err("bad value".into()))?;
            if let Some(ts) = fields.next() {
                ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
            }
            if fields.next().is_some() {
                return Err(err("trailing fields".into()));
            }
            // Resolve the family this sample belongs to.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    matches!(
                        types.get(base).map(String::as_str),
                        Some("histogram") | Some("summary")
                    )
                    .then(|| base.to_owned())
                })
                .unwrap_or_else(|| name.to_owned());
            let kind = types
                .get(&family)
                .ok_or_else(|| err("sample before its TYPE".into()))?
                .clone();
            if current.as_deref() != Some(family.as_str()) {
                if finished.contains(&family) {
                    return Err(err("family samples not contiguous".into()));
                }
                if let Some(prev) = current.replace(family.clone()) {
                    finished.insert(prev);
                }
            }
            let mut key_labels: Vec<(String, String)> =
                labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            key_labels.sort();
            let series_key = format!("{name}{labels:?}");
            if !series.insert(series_key) {
                return Err(err("duplicate series".into()));
            }
            let group = format!("{family}{key_labels:?}");
            match kind.as_str() {
                "counter" if value < 0.0 || value.is_nan() => {
                    return Err(err("negative counter".into()))
                }
                "histogram" if name.ends_with("_bucket") => {
                    let le = labels
                        .iter()
                        .find(|(k, _)| k == "le")
                        .and_then(|(_, v)| parse_value(v))
                        .ok_or_else(|| err("bucket without le".into()))?;
                    let (prev_le, prev_count) = buckets
                        .get(&group)
                        .copied()
                        .unwrap_or((f64::NEG_INFINITY, 0.0));
                    if le <= prev_le || value < prev_count {
                        return Err(err("buckets not increasing/cumulative".into()));
                    }
                    buckets.insert(group.clone(), (le, value));
                    if le == f64::INFINITY {
                        inf_counts.insert(group, value);
                    }
                }
                "histogram"
                    if name.ends_with("_count") && inf_counts.get(&group) != Some(&value) =>
                {
                    return Err(err("_count differs from +Inf bucket".into()));
                }
                _ => {}
            }
            samples += 1;
        }
        Ok(samples)
    }

    #[test]
    fn validator_rejects_bad_exposition() {
        let good = "# HELP wazoo_x help\n# TYPE wazoo_x counter\nwazoo_x{a=\"b\\\"c\"} 1\n";
        assert_eq!(validate_exposition(good), Ok(1));
        for bad in [
            "wazoo_x 1\n",                                               // no TYPE
            "# TYPE wazoo_x counter\nwazoo_x 1",                         // no newline
            "# TYPE wazoo_x counter\nwazoo_x{a=b} 1\n",                  // unquoted
            "# TYPE wazoo_x counter\nwazoo_x one\n",                     // bad value
            "# TYPE wazoo_x counter\nwazoo_x 1\nwazoo_x 2\n",            // duplicate
            "# TYPE wazoo_x counter\n# TYPE wazoo_x gauge\nwazoo_x 1\n", // two TYPEs
            "# TYPE 1x counter\n1x 1\n",                                 // bad name
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
            "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 1\n",
        ] {
            assert!(validate_exposition(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn prometheus_output_is_valid_exposition() {
        let m = Metrics::new();
        m.record_request(Op::Create, 700);
        m.record_request(Op::Create, 70_000_000);
        m.record_request(Op::GetData, 3);
        m.record_request(Op::Unknown, 1);
        m.record_fsync(150);
        m.packet_received(10);
        m.inc(Counter::CommitCount);
        m.observe(SummaryKind::DbInitTime, 200);
        let mut s = ServerStats::new("3.8.0-wazoo \"quoted\"\\ \nnewline");
        s.zxid = 0x5_0000_0007;
        s.node_count = 4;
        s.global_sessions = 2;
        s.open_fds = Some(10);
        s.mode = crate::ServerMode::Leader;
        s.leader = Some(crate::LeaderStats::default());
        let text = render_prometheus(&s, &m);
        let samples = validate_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(samples > 50);
        for needle in [
            "# TYPE wazoo_requests_total counter\n",
            "wazoo_requests_total{op=\"create\"} 2\n",
            "wazoo_requests_total{op=\"getData\"} 1\n",
            "wazoo_requests_total{op=\"multiRead\"} 0\n",
            "# TYPE wazoo_request_latency_seconds histogram\n",
            "wazoo_request_latency_seconds_bucket{op=\"create\",le=\"0.001\"} 1\n",
            "wazoo_request_latency_seconds_bucket{op=\"create\",le=\"+Inf\"} 2\n",
            "wazoo_request_latency_seconds_count{op=\"create\"} 2\n",
            "wazoo_request_latency_seconds_sum{op=\"create\"} 70.0007\n",
            "# TYPE wazoo_fsync_seconds histogram\n",
            "wazoo_fsync_seconds_bucket{le=\"0.00025\"} 1\n",
            "wazoo_fsync_seconds_count 1\n",
            "wazoo_sessions 2\n",
            "wazoo_znodes 4\n",
            "wazoo_watches 0\n",
            "wazoo_outstanding_requests 0\n",
            "wazoo_connections 0\n",
            "wazoo_approximate_data_size_bytes 0\n",
            "wazoo_zxid 21474836487\n",
            "wazoo_zxid_epoch 5\n",
            "wazoo_zxid_counter 7\n",
            "wazoo_commits_total 1\n",
            "wazoo_db_init_time_milliseconds_sum 200\n",
            "wazoo_open_fds 10\n",
            "wazoo_learners 0\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("watched_paths"));
        // Ops never seen have no histogram series.
        assert!(!text.contains("request_latency_seconds_count{op=\"multiRead\"}"));
        assert!(text.contains("version=\"3.8.0-wazoo \\\"quoted\\\"\\\\ \\nnewline\""));

        // An idle server is valid too.
        let text = render_prometheus(&ServerStats::default(), &Metrics::new());
        validate_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}
