//! The snapshot of server state that every admin renderer reads: [`ServerStats`] and the small
//! records inside it.
//!
//! The server builds one `ServerStats` per admin request (four-letter word, `/commands/<name>` or
//! `/metrics`) from what its core task publishes ([`crate::published`]: gauges, static
//! configuration) and [`crate::Metrics::fill_stats`] (packets, latency, fsync, the mntr counters
//! and summaries). Only the commands that list tables (`cons`, `stat`, `dump`, `wchc`, `wchp`,
//! `wchs`) add what the server walks for them: `connections`, `sessions`, the watch tables.
//! Nothing here does I/O or reads a clock: every time is given by the server.

use std::fmt;

/// The role the server is in, as `srvr`'s `Mode:` line and mntr's `zk_server_state` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServerMode {
    /// A single server, no quorum.
    #[default]
    Standalone,
    /// The elected leader of an ensemble.
    Leader,
    /// A voting follower.
    Follower,
    /// A non-voting observer.
    Observer,
    /// A partitioned server serving read-only clients (`readonlymode.enabled`).
    ReadOnly,
}

impl ServerMode {
    /// ZooKeeper's spelling: `standalone`, `leader`, `follower`, `observer`, `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerMode::Standalone => "standalone",
            ServerMode::Leader => "leader",
            ServerMode::Follower => "follower",
            ServerMode::Observer => "observer",
            ServerMode::ReadOnly => "read-only",
        }
    }
}

impl fmt::Display for ServerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Request latency as `srvr` prints it (`Latency min/avg/max: min/avg/max`), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySummary {
    /// Smallest latency, ms (0 when nothing was measured).
    pub min: u64,
    /// Mean latency, ms, rounded half-up to 4 decimals as ZooKeeper does.
    pub avg: f64,
    /// Largest latency, ms (0 when nothing was measured).
    pub max: u64,
}

/// Estimated percentiles of a latency summary (mntr's `p50_`, `p95_`, `p99_`, `p999_` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
}

/// A read-out of a min/avg/max/count/sum summary (ZooKeeper's `AvgMinMaxCounter`), rendered by
/// mntr as `avg_<name>`, `min_<name>`, `max_<name>`, `cnt_<name>`, `sum_<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SummarySnapshot {
    pub count: u64,
    pub sum: u64,
    /// 0 when `count == 0`.
    pub min: u64,
    /// 0 when `count == 0`.
    pub max: u64,
    /// `sum / count` rounded half-up to 4 decimals; 0 when `count == 0`. Kept separately so that a
    /// summary recorded in microseconds and shown in milliseconds keeps its precision.
    pub avg: f64,
    /// Present for the summaries ZooKeeper keeps percentiles for (`readlatency`, `updatelatency`).
    pub percentiles: Option<Percentiles>,
}

/// ZooKeeper's `BufferStats`: last/min/max of a size, -1 while nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSizeStats {
    pub last: i64,
    pub min: i64,
    pub max: i64,
}

impl Default for BufferSizeStats {
    fn default() -> Self {
        BufferSizeStats {
            last: -1,
            min: -1,
            max: -1,
        }
    }
}

/// Leader-only values of mntr and `srvr` (`Proposal sizes last/min/max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaderStats {
    /// Connected learners (followers and observers).
    pub learners: u64,
    pub synced_followers: u64,
    pub synced_non_voting_followers: u64,
    pub synced_observers: u64,
    pub pending_syncs: u64,
    pub leader_uptime_ms: u64,
    pub proposal_sizes: BufferSizeStats,
}

/// One client connection, for `cons`, `stat` and `dump`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionStats {
    /// Peer address as `SocketAddr` displays it: `127.0.0.1:5555` or `[::1]:5555`.
    pub remote: String,
    /// NIO interest ops as ZooKeeper prints them in `[..]`: 1 = reading, 0 = suspended (the
    /// server reads no more requests from the connection until some are done), 5 = reading and
    /// writing.
    pub interest_ops: u32,
    /// Requests received and not yet answered (or applied, for writes).
    pub queued: u64,
    pub received: u64,
    pub sent: u64,
    /// 0 before the handshake completes; the long form of `cons` is printed only when non-zero.
    pub session_id: i64,
    /// ZooKeeper's 4-letter op abbreviation of the last answered request (`GETD`, `CREA`, ...;
    /// see [`crate::Op::last_op`]), `NA` before any.
    pub last_op: String,
    /// Wall-clock time the connection was established, ms since the Unix epoch.
    pub established_ms: i64,
    /// Negotiated session timeout, ms.
    pub timeout_ms: i32,
    /// Last cxid answered; negative = none (then `lcxid` is omitted, as in ZooKeeper).
    pub last_cxid: i64,
    pub last_zxid: i64,
    /// Time of the last response, ms (ZooKeeper prints its own monotonic clock here).
    pub last_response_ms: i64,
    pub last_latency_ms: u64,
    pub min_latency_ms: u64,
    /// Printed truncated to an integer, as ZooKeeper's `long` average.
    pub avg_latency_ms: f64,
    pub max_latency_ms: u64,
    /// Wall-clock time at which the connection expires if idle, ms since the Unix epoch; `dump`
    /// groups connections by it. `None`: not scheduled to expire (its session is closing).
    pub expires_at_ms: Option<i64>,
}

/// One session for `dump`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDump {
    pub id: i64,
    pub timeout_ms: i32,
    /// Wall-clock time the session expires if not touched, ms since the Unix epoch; `dump` groups
    /// sessions by it (ZooKeeper's expiry buckets). `None`: no longer scheduled (closing), listed
    /// with its ephemerals only.
    pub expires_at_ms: Option<i64>,
    /// Paths of the ephemeral nodes the session owns.
    pub ephemerals: Vec<String>,
}

/// Everything the admin renderers need, filled in by the server on request.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    /// Full version string, e.g. `3.8.0-wazoo-0.1.0` (kazoo parses its leading digits from `envi`).
    pub version: String,
    /// False while the server cannot serve (electing a leader, starting, shutting down): most
    /// commands then print `This ZooKeeper instance is not currently serving requests`.
    pub serving: bool,
    pub mode: ServerMode,
    /// Serving read-only clients only. `mode == ReadOnly` implies it.
    pub read_only: bool,
    /// Quorum servers: ZooKeeper's detailed peer state, e.g. `leading - broadcast`, printed as
    /// `zk_peer_state`. `None` for a standalone server.
    pub peer_state: Option<String>,
    /// Last processed zxid.
    pub zxid: i64,
    pub node_count: u64,
    pub approximate_data_size: u64,
    /// Live client connections: `srvr`'s `Connections:`, mntr's `num_alive_connections`.
    pub connection_count: u64,
    /// The connections themselves, filled only for the commands that list them (`cons`, `stat`,
    /// `dump`).
    pub connections: Vec<ConnectionStats>,
    pub outstanding_requests: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency: LatencySummary,
    pub uptime_ms: u64,
    /// Total watches (`Total watches:` of `wchs`, `zk_watch_count`).
    pub watch_count: u64,
    /// Distinct watched paths.
    pub watched_paths: u64,
    /// Connections with at least one watch.
    pub watching_connections: u64,
    pub ephemerals_count: u64,
    pub global_sessions: u64,
    pub local_sessions: u64,
    /// Sessions for `dump`.
    pub sessions: Vec<SessionDump>,
    /// `wchc`: session id → watched paths.
    pub watches_by_session: Vec<(i64, Vec<String>)>,
    /// `wchp`: path → session ids watching it.
    pub watches_by_path: Vec<(String, Vec<i64>)>,
    /// `conf` lines in order, ZooKeeper's camelCase keys (clientPort, secureClientPort, dataDir,
    /// dataDirSize, dataLogDir, dataLogSize, tickTime, maxClientCnxns, minSessionTimeout,
    /// maxSessionTimeout, clientPortListenBacklog, serverId, ...).
    pub config: Vec<(String, String)>,
    /// `envi` lines after `zookeeper.version` (host.name, os.name, ...).
    pub env: Vec<(String, String)>,
    pub data_dir_size: u64,
    pub log_dir_size: u64,
    pub server_id: i64,
    pub auth_failed_count: u64,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// Sizes of serialized client responses.
    pub client_response: BufferSizeStats,
    /// Present on the leader only.
    pub leader: Option<LeaderStats>,
    /// Followers only: observers synced through this follower (`zk_synced_observers`).
    pub synced_observers: Option<u64>,
    /// The text trace mask (`gtmk`; `stmk` prints the mask the server just set).
    pub trace_mask: i64,
    /// Tree-digest history for `hash`: (zxid, digest), oldest first.
    pub digests: Vec<(i64, i64)>,
    /// Times an fsync took longer than the warning threshold.
    pub fsync_threshold_exceed_count: u64,
    /// fsync time, ms (`fsynctime`).
    pub fsync: SummarySnapshot,
    /// Latency of reads, ms (`readlatency`).
    pub read_latency: SummarySnapshot,
    /// Latency of writes (quorum requests), ms (`updatelatency`).
    pub update_latency: SummarySnapshot,
    /// Further mntr counters, `(name, value)`, printed as `zk_<name>`.
    pub counters: Vec<(&'static str, u64)>,
    /// Further mntr summaries, `(name, snapshot)`, printed as `zk_avg_<name>` etc.
    pub summaries: Vec<(&'static str, SummarySnapshot)>,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            version: String::new(),
            serving: true,
            mode: ServerMode::Standalone,
            read_only: false,
            peer_state: None,
            zxid: 0,
            node_count: 0,
            approximate_data_size: 0,
            connection_count: 0,
            connections: Vec::new(),
            outstanding_requests: 0,
            packets_received: 0,
            packets_sent: 0,
            latency: LatencySummary::default(),
            uptime_ms: 0,
            watch_count: 0,
            watched_paths: 0,
            watching_connections: 0,
            ephemerals_count: 0,
            global_sessions: 0,
            local_sessions: 0,
            sessions: Vec::new(),
            watches_by_session: Vec::new(),
            watches_by_path: Vec::new(),
            config: Vec::new(),
            env: Vec::new(),
            data_dir_size: 0,
            log_dir_size: 0,
            server_id: 0,
            auth_failed_count: 0,
            open_fds: None,
            max_fds: None,
            client_response: BufferSizeStats::default(),
            leader: None,
            synced_observers: None,
            trace_mask: 0,
            digests: Vec::new(),
            fsync_threshold_exceed_count: 0,
            fsync: SummarySnapshot::default(),
            read_latency: SummarySnapshot::default(),
            update_latency: SummarySnapshot::default(),
            counters: Vec::new(),
            summaries: Vec::new(),
        }
    }
}

impl ServerStats {
    /// A serving standalone server of the given version with everything else zero/empty.
    pub fn new(version: impl Into<String>) -> Self {
        ServerStats {
            version: version.into(),
            ..ServerStats::default()
        }
    }

    /// Sets the data and txn log directory sizes (`dirs`), and the `dataDirSize` and `dataLogSize`
    /// lines of `conf`.
    pub fn set_dir_sizes(&mut self, data: u64, log: u64) {
        self.data_dir_size = data;
        self.log_dir_size = log;
        for (key, value) in &mut self.config {
            match key.as_str() {
                "dataDirSize" => *value = data.to_string(),
                "dataLogSize" => *value = log.to_string(),
                _ => {}
            }
        }
    }

    /// Read-only mode, whether flagged by `read_only` or by the mode.
    pub fn is_read_only(&self) -> bool {
        self.read_only || self.mode == ServerMode::ReadOnly
    }
}
