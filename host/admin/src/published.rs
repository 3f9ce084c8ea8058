//! What a server publishes for its admin commands, so that answering them never waits for the
//! task that owns the tree.
//!
//! The server's core task owns the tree, the sessions, the watches and the connections. Asking it
//! for a [`ServerStats`] puts every `srvr`, `mntr` or `/metrics` scrape in the queue behind client
//! requests, and walking its tables there stalls them. Instead the core stores a few numbers into
//! [`Gauges`] (relaxed atomic stores), and the admin commands read them from any task:
//!
//! - once per burst of messages (when it flushes): the last applied zxid, the znode count, the
//!   approximate data size, the requests in flight, the connection and session counts: values the
//!   core knows without walking anything;
//! - once per session-expiry tick (`tickTime / 2`): the counts that take a walk over connections
//!   or sessions (watches, watching connections, ephemerals), so they may lag by one tick.
//!
//! [`published_stats`] turns them, the [`StaticInfo`] fixed at startup and the [`Metrics`] into
//! the [`ServerStats`] that `srvr`, `stat`'s header, `mntr`, `conf`, `envi`, `isro`, `dirs`,
//! `gtmk` and `/metrics` (and their `/commands/*` forms) are rendered from: it takes nothing else,
//! so those commands need no round trip through the core.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

use crate::metrics::Metrics;
use crate::stats::{BufferSizeStats, ServerMode, ServerStats};

/// Gauges published by the core task, read by the admin commands. Every access is a relaxed
/// atomic operation; each value is exact as of its last publication, and values published in
/// the same call may be read from different publications.
#[derive(Debug, Default)]
pub struct Gauges {
    serving: AtomicBool,
    /// The role once the server has one that changes (an ensemble member): 0 = the static one.
    mode: AtomicU8,
    /// A leader's learners: connected, synced voters, synced observers, syncs waiting; and when
    /// it started leading (ms of the server's clock, 0: not leading).
    learners: AtomicU64,
    synced_followers: AtomicU64,
    synced_observers: AtomicU64,
    pending_syncs: AtomicU64,
    leading_since_ms: AtomicU64,
    /// A leader's proposal sizes (last, min, max; -1: none yet).
    proposal_last: AtomicI64,
    proposal_min: AtomicI64,
    proposal_max: AtomicI64,
    zxid: AtomicI64,
    node_count: AtomicU64,
    approximate_data_size: AtomicU64,
    outstanding_requests: AtomicU64,
    connections: AtomicU64,
    global_sessions: AtomicU64,
    ephemerals_count: AtomicU64,
    watch_count: AtomicU64,
    watching_connections: AtomicU64,
    /// The tree's digest and the zxid it is the digest at, published together (`hash`; two
    /// relaxed stores could be read from different bursts, and a digest paired with the wrong
    /// zxid is worse than none).
    digest: Mutex<(i64, u64)>,
}

/// A read-out of [`Gauges`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GaugeValues {
    pub serving: bool,
    /// The current role, when it is not the static [`StaticInfo::mode`].
    pub mode: Option<ServerMode>,
    /// A leader's learners (see [`Gauges::publish_leader`]).
    pub learners: u64,
    pub synced_followers: u64,
    pub synced_observers: u64,
    pub pending_syncs: u64,
    pub leading_since_ms: u64,
    /// A leader's proposal sizes (`srvr`'s `Proposal sizes last/min/max`).
    pub proposal_sizes: BufferSizeStats,
    pub zxid: i64,
    pub node_count: u64,
    pub approximate_data_size: u64,
    pub outstanding_requests: u64,
    pub connections: u64,
    pub global_sessions: u64,
    pub ephemerals_count: u64,
    pub watch_count: u64,
    pub watching_connections: u64,
    /// (zxid, the tree's digest at that zxid).
    pub digest: (i64, u64),
}

impl Gauges {
    /// Not serving, everything zero.
    pub fn new() -> Self {
        let g = Self::default();
        for size in [&g.proposal_last, &g.proposal_min, &g.proposal_max] {
            size.store(-1, Relaxed);
        }
        g
    }

    /// Whether the server serves clients (`ruok`, `isro` and `mntr` answer regardless; most
    /// other commands print [`crate::NOT_SERVING`] while it does not).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Relaxed);
    }

    /// The server's current role (an ensemble member's changes with elections).
    pub fn set_mode(&self, mode: ServerMode) {
        let code = match mode {
            ServerMode::Standalone => 1,
            ServerMode::Leader => 2,
            ServerMode::Follower => 3,
            ServerMode::Observer => 4,
            ServerMode::ReadOnly => 5,
        };
        self.mode.store(code, Relaxed);
    }

    /// A leader's learners (`zk_learners`, `zk_synced_followers`, ...), when it started
    /// leading (in ms of the server's uptime), and the sizes of its proposals.
    pub fn publish_leader(
        &self,
        learners: u64,
        synced_followers: u64,
        synced_observers: u64,
        pending_syncs: u64,
        leading_since_ms: u64,
        proposal_sizes: BufferSizeStats,
    ) {
        self.learners.store(learners, Relaxed);
        self.synced_followers.store(synced_followers, Relaxed);
        self.synced_observers.store(synced_observers, Relaxed);
        self.pending_syncs.store(pending_syncs, Relaxed);
        self.leading_since_ms.store(leading_since_ms, Relaxed);
        self.proposal_last.store(proposal_sizes.last, Relaxed);
        self.proposal_min.store(proposal_sizes.min, Relaxed);
        self.proposal_max.store(proposal_sizes.max, Relaxed);
    }

    /// The values the core knows without walking a table, published once per burst.
    pub fn publish_burst(
        &self,
        zxid: i64,
        node_count: u64,
        approximate_data_size: u64,
        outstanding_requests: u64,
        connections: u64,
        global_sessions: u64,
    ) {
        self.zxid.store(zxid, Relaxed);
        self.node_count.store(node_count, Relaxed);
        self.approximate_data_size
            .store(approximate_data_size, Relaxed);
        self.outstanding_requests
            .store(outstanding_requests, Relaxed);
        self.connections.store(connections, Relaxed);
        self.global_sessions.store(global_sessions, Relaxed);
    }

    /// The tree's digest at `zxid` (`hash`), published with the burst's other values.
    pub fn publish_digest(&self, zxid: i64, digest: u64) {
        *self.digest.lock().unwrap_or_else(|e| e.into_inner()) = (zxid, digest);
    }

    /// The counts that walk the connections or the sessions, published once per tick.
    pub fn publish_tables(&self, ephemerals_count: u64, watch_count: u64, watching: u64) {
        self.ephemerals_count.store(ephemerals_count, Relaxed);
        self.watch_count.store(watch_count, Relaxed);
        self.watching_connections.store(watching, Relaxed);
    }

    pub fn read(&self) -> GaugeValues {
        GaugeValues {
            serving: self.serving.load(Relaxed),
            mode: match self.mode.load(Relaxed) {
                1 => Some(ServerMode::Standalone),
                2 => Some(ServerMode::Leader),
                3 => Some(ServerMode::Follower),
                4 => Some(ServerMode::Observer),
                5 => Some(ServerMode::ReadOnly),
                _ => None,
            },
            learners: self.learners.load(Relaxed),
            synced_followers: self.synced_followers.load(Relaxed),
            synced_observers: self.synced_observers.load(Relaxed),
            pending_syncs: self.pending_syncs.load(Relaxed),
            leading_since_ms: self.leading_since_ms.load(Relaxed),
            proposal_sizes: BufferSizeStats {
                last: self.proposal_last.load(Relaxed),
                min: self.proposal_min.load(Relaxed),
                max: self.proposal_max.load(Relaxed),
            },
            zxid: self.zxid.load(Relaxed),
            node_count: self.node_count.load(Relaxed),
            approximate_data_size: self.approximate_data_size.load(Relaxed),
            outstanding_requests: self.outstanding_requests.load(Relaxed),
            connections: self.connections.load(Relaxed),
            global_sessions: self.global_sessions.load(Relaxed),
            ephemerals_count: self.ephemerals_count.load(Relaxed),
            watch_count: self.watch_count.load(Relaxed),
            watching_connections: self.watching_connections.load(Relaxed),
            digest: *self.digest.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// What does not change while the server runs: fixed at startup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaticInfo {
    /// Full version string, e.g. `3.8.0-wazoo-0.1.0`.
    pub version: String,
    pub mode: ServerMode,
    pub server_id: i64,
    /// `conf` lines in order; `dataDirSize` and `dataLogSize` are filled per request
    /// ([`ServerStats::set_dir_sizes`]).
    pub config: Vec<(String, String)>,
    /// `envi` lines after `zookeeper.version`.
    pub env: Vec<(String, String)>,
}

/// The [`ServerStats`] of the commands served from published values: gauges, static information
/// and metrics, with `uptime_ms` given by the server. The lists (connections, sessions, watch
/// tables) are left empty; the directory sizes are the caller's to add.
pub fn published_stats(
    info: &StaticInfo,
    gauges: &GaugeValues,
    metrics: &Metrics,
    uptime_ms: u64,
) -> ServerStats {
    let mut s = ServerStats::new(info.version.clone());
    s.serving = gauges.serving;
    s.mode = gauges.mode.unwrap_or(info.mode);
    s.peer_state = match gauges.mode {
        Some(ServerMode::Leader) => Some("leading - broadcast".into()),
        Some(ServerMode::Follower) => Some("following - broadcast".into()),
        Some(ServerMode::Observer) => Some("observing - broadcast".into()),
        _ => None,
    };
    if gauges.mode == Some(ServerMode::Leader) {
        s.leader = Some(crate::stats::LeaderStats {
            learners: gauges.learners,
            synced_followers: gauges.synced_followers,
            // ZooKeeper counts followers outside the voting view here (mid-reconfig); wazoo has
            // no dynamic reconfiguration, so every follower votes: none exist, by construction.
            synced_non_voting_followers: 0,
            synced_observers: gauges.synced_observers,
            pending_syncs: gauges.pending_syncs,
            leader_uptime_ms: uptime_ms.saturating_sub(gauges.leading_since_ms),
            proposal_sizes: gauges.proposal_sizes,
        });
    }
    s.server_id = info.server_id;
    s.zxid = gauges.zxid;
    s.node_count = gauges.node_count;
    s.approximate_data_size = gauges.approximate_data_size;
    s.outstanding_requests = gauges.outstanding_requests;
    s.connection_count = gauges.connections;
    s.global_sessions = gauges.global_sessions;
    s.ephemerals_count = gauges.ephemerals_count;
    s.watch_count = gauges.watch_count;
    s.watching_connections = gauges.watching_connections;
    s.uptime_ms = uptime_ms;
    // `hash`: ZooKeeper lists a history of (zxid, digest) pairs; the latest is the one a
    // replica comparison needs.
    s.digests = vec![(gauges.digest.0, gauges.digest.1 as i64)];
    s.config = info.config.clone();
    s.env = info.env.clone();
    metrics.fill_stats(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fourletter::{render, FourLetterWord};
    use crate::metrics::{Counter, Op};

    fn info() -> StaticInfo {
        StaticInfo {
            version: "3.8.0-wazoo-test".into(),
            mode: ServerMode::Standalone,
            server_id: 0,
            config: vec![
                ("clientPort".into(), "2181".into()),
                ("dataDirSize".into(), "0".into()),
                ("dataLogSize".into(), "0".into()),
            ],
            env: vec![("os.name".into(), "linux".into())],
        }
    }

    /// `srvr` and `mntr` are rendered from published values only: the function that builds their
    /// stats takes the gauges, the static info and the metrics, nothing from the core.
    #[test]
    fn srvr_and_mntr_render_from_published_gauges() {
        let g = Gauges::new();
        g.set_serving(true);
        g.publish_burst(0x1_0000_0005, 12, 345, 3, 2, 4);
        g.publish_digest(0x1_0000_0005, 99);
        g.publish_tables(6, 7, 1);
        let m = Metrics::new();
        m.record_request(Op::GetData, 2_000);
        m.inc(Counter::CommitCount);
        let s = published_stats(&info(), &g.read(), &m, 9_000);
        let srvr = render(FourLetterWord::Srvr, &s);
        for line in [
            "Zookeeper version: 3.8.0-wazoo-test\n",
            "Latency min/avg/max: 2/2.0/2\n",
            "Received: 0\n",
            "Connections: 2\n",
            "Outstanding: 3\n",
            "Zxid: 0x100000005\n",
            "Mode: standalone\n",
            "Node count: 12\n",
        ] {
            assert!(srvr.contains(line), "{line:?} not in\n{srvr}");
        }
        let mntr = render(FourLetterWord::Mntr, &s);
        for line in [
            "zk_znode_count\t12\n",
            "zk_num_alive_connections\t2\n",
            "zk_outstanding_requests\t3\n",
            "zk_global_sessions\t4\n",
            "zk_ephemerals_count\t6\n",
            "zk_watch_count\t7\n",
            "zk_approximate_data_size\t345\n",
            "zk_uptime\t9000\n",
            "zk_commit_count\t1\n",
        ] {
            assert!(mntr.contains(line), "{line:?} not in\n{mntr}");
        }
        assert_eq!(
            render(FourLetterWord::Conf, &s),
            "clientPort=2181\ndataDirSize=0\ndataLogSize=0\n"
        );
        let mut s = s;
        s.set_dir_sizes(10, 20);
        assert_eq!(
            render(FourLetterWord::Conf, &s),
            "clientPort=2181\ndataDirSize=10\ndataLogSize=20\n"
        );
        assert_eq!(
            render(FourLetterWord::Dirs, &s),
            "datadir_size: 10\nlogdir_size: 20\n"
        );
        // `hash`: the digest with the zxid it was published with.
        assert_eq!(render(FourLetterWord::Hash, &s), "100000005: 99\n");
        // Before the core marks the server serving, commands say so.
        let s = published_stats(&info(), &Gauges::new().read(), &m, 0);
        assert!(render(FourLetterWord::Srvr, &s).starts_with(crate::NOT_SERVING));
    }

    #[test]
    fn an_ensemble_members_role_is_published_and_shown() {
        let g = Gauges::new();
        g.set_serving(true);
        let m = Metrics::new();
        let srvr = |g: &Gauges| {
            render(
                FourLetterWord::Srvr,
                &published_stats(&info(), &g.read(), &m, 0),
            )
        };
        assert!(
            srvr(&g).contains("Mode: standalone\n"),
            "the static mode until one is published"
        );
        g.set_mode(ServerMode::Follower);
        assert!(srvr(&g).contains("Mode: follower\n"));
        g.set_mode(ServerMode::Leader);
        let sizes = BufferSizeStats {
            last: 90,
            min: 40,
            max: 120,
        };
        g.publish_leader(2, 2, 0, 1, 1_000, sizes);
        let mntr = render(
            FourLetterWord::Mntr,
            &published_stats(&info(), &g.read(), &m, 5_000),
        );
        for line in [
            "zk_server_state\tleader\n",
            "zk_peer_state\tleading - broadcast\n",
            "zk_learners\t2\n",
            "zk_synced_followers\t2\n",
            "zk_pending_syncs\t1\n",
            "zk_leader_uptime\t4000\n",
            "zk_last_proposal_size\t90\n",
            "zk_min_proposal_size\t40\n",
            "zk_max_proposal_size\t120\n",
        ] {
            assert!(mntr.contains(line), "{line:?} not in\n{mntr}");
        }
        assert!(srvr(&g).contains("Proposal sizes last/min/max: 90/40/120\n"));
    }

    #[test]
    fn publications_overwrite() {
        let g = Gauges::new();
        g.publish_burst(1, 2, 3, 4, 5, 6);
        g.publish_digest(1, 13);
        g.publish_burst(7, 8, 9, 10, 11, 12);
        g.publish_digest(7, 14);
        g.publish_tables(1, 2, 3);
        assert_eq!(
            g.read(),
            GaugeValues {
                serving: false,
                mode: None,
                learners: 0,
                synced_followers: 0,
                synced_observers: 0,
                pending_syncs: 0,
                leading_since_ms: 0,
                proposal_sizes: BufferSizeStats::default(),
                zxid: 7,
                node_count: 8,
                approximate_data_size: 9,
                outstanding_requests: 10,
                connections: 11,
                global_sessions: 12,
                ephemerals_count: 1,
                watch_count: 2,
                watching_connections: 3,
                digest: (7, 14),
            }
        );
    }
}
