//! wazoo-server: the tokio runtime of a standalone wazoo server. It recovers state from the store,
//! then runs the client listener ([`conn`]), the core task that sequences prep → log → apply → reply
//! ([`core`]), the storage worker (group commit, from `wazoo-store`), timers, and the HTTP admin
//! endpoint ([`admin_http`]). Configuration is ZooKeeper's zoo.cfg ([`config`]).

pub mod admin_http;
pub mod config;
pub mod conn;
pub mod core;
pub mod ensemble;
pub mod recipes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{info, warn};
use wazoo_admin::metrics::{Metrics, SummaryKind};
use wazoo_disk::{GroupCommitter, RocksStore};
use wazoo_store::{Batch, Store, StoreError};
use wazoo_tree::{DataTree, LoadEntry};

pub use config::{ConfigError, ServerConfig};

/// The version reported to clients (`envi`, `srvr`): ZooKeeper 3.8 compatible.
pub const VERSION: &str = concat!("3.8.0-wazoo-", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("ensemble: {0}")]
    Ensemble(String),
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The store's own message says what failed and where (`{:#}` would print it twice if this
    /// variant added a prefix: `#[from]` makes it the source too).
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt state in the data directory: {0}")]
    Corrupt(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Core(#[from] core::CoreError),
    #[error(transparent)]
    Recipes(#[from] recipes::WorkersError),
}

impl From<core::RecoveryError> for ServerError {
    fn from(e: core::RecoveryError) -> ServerError {
        match e {
            core::RecoveryError::Store(e) => ServerError::Store(e),
            core::RecoveryError::Corrupt(m) => ServerError::Corrupt(m),
        }
    }
}

/// `envi` lines after zookeeper.version.
pub fn env_lines() -> Vec<(String, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    vec![
        ("host.name".into(), host),
        ("wazoo.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("os.name".into(), std::env::consts::OS.into()),
        ("os.arch".into(), std::env::consts::ARCH.into()),
        (
            "user.dir".into(),
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        ),
    ]
}

/// State recovered from the data directory.
pub struct Recovered {
    pub tree: DataTree,
    pub store: RocksStore,
    pub last_logged: i64,
    pub replayed: usize,
}

/// Opens the store, loads the persisted tree and replays the log after `last_applied`.
///
/// Refuses to start on a log that cannot hold every acknowledged txn: the first entry after the
/// tree's `last_applied` must follow it ([`wazoo_store::zxid_follows`]; otherwise the entries in
/// between are missing), and the replay must reach the store's last logged zxid.
pub fn recover(cfg: &ServerConfig) -> Result<Recovered, ServerError> {
    // Each directory created here is fsynced into its parent: a crash must not lose the directory
    // entry of a data dir whose log already acknowledged writes.
    wazoo_disk::create_dir_all_durable(&cfg.data_dir)
        .map_err(|e| ServerError::DataDir(cfg.data_dir.display().to_string(), e))?;
    let store = RocksStore::open(&cfg.data_dir)?;
    let mut tree = load_tree(&store)?;
    let (last_logged, replayed) = core::replay_log(&store, &mut tree)?;
    Ok(Recovered {
        tree,
        store,
        last_logged,
        replayed,
    })
}

/// Entries a loader thread hands over at a time.
const LOAD_BATCH: usize = 4096;

/// Loads the persisted tree in two stages on two threads: a loader thread reads the store (RocksDB
/// iteration, checksums) and decodes each entry ([`LoadEntry::decode`]), this thread links the
/// decoded entries into the tree. With 1M znodes each half was about half of the load's CPU.
fn load_tree(store: &RocksStore) -> Result<DataTree, ServerError> {
    let mut tree = DataTree::new();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<LoadEntry>>(8);
        let loader = std::thread::Builder::new()
            .name("wazoo-load".to_owned())
            .spawn_scoped(scope, move || -> Result<(), ServerError> {
                let mut batch = Vec::with_capacity(LOAD_BATCH);
                let mut bad: Option<String> = None;
                let read = store.load_tree(&mut |k, v| {
                    let entry = LoadEntry::decode(k, v).map_err(|e| {
                        bad = Some(e.clone());
                        StoreError::Corrupt {
                            what: "tree entry",
                            key: String::from_utf8_lossy(k).into_owned(),
                            detail: e,
                        }
                    })?;
                    batch.push(entry);
                    if batch.len() == LOAD_BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(LOAD_BATCH));
                        // The receiver is gone only after it failed; its error is the one reported.
                        tx.send(full)
                            .map_err(|_| StoreError::InvalidInput("tree load stopped".into()))?;
                    }
                    Ok(())
                });
                if let Some(e) = bad {
                    return Err(ServerError::Corrupt(e));
                }
                read?;
                let _ = tx.send(batch);
                Ok(())
            })
            .map_err(|e| ServerError::Store(StoreError::Io(e)))?;
        let mut linked: Result<(), ServerError> = Ok(());
        'batches: for batch in rx.iter() {
            for entry in batch {
                if let Err(e) = tree.insert_entry(entry) {
                    linked = Err(ServerError::Corrupt(e));
                    break 'batches;
                }
            }
        }
        // Dropping the receiver (a failed link) stops the loader at its next batch.
        drop(rx);
        let loaded = loader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        linked?;
        loaded
    })?;
    Ok(tree)
}

/// Runs a standalone server until `shutdown` resolves or storage fails.
pub async fn run(cfg: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let cfg = Arc::new(cfg);
    for k in &cfg.unknown_keys {
        warn!(key = %k, "unknown configuration key ignored");
    }
    let t0 = Instant::now();
    let Recovered {
        mut tree,
        store,
        last_logged,
        replayed,
    } = recover(&cfg)?;
    let metrics = Arc::new(Metrics::new());
    metrics.observe(SummaryKind::DbInitTime, t0.elapsed().as_millis() as u64);
    metrics.observe(SummaryKind::StartupTxnsLoaded, replayed as u64);
    info!(
        nodes = tree.node_count(),
        sessions = tree.sessions().len(),
        replayed,
        zxid = format_args!("{:#x}", tree.last_applied()),
        ms = t0.elapsed().as_millis() as u64,
        "recovered state from {}",
        cfg.data_dir.display()
    );
    // An ensemble member's peer starts from the store's epochs and the log it holds.
    let member = match &cfg.ensemble {
        Some(e) => Some(member_state(&cfg, &store, e)?),
        None => None,
    };
    let mut first = Batch::default();
    let mut persisted = tree.last_applied();
    if cfg.ensemble.is_some() {
        persisted = store.last_applied()?;
        // An ensemble member's log may end in txns nobody committed: the replayed changes stay
        // unpersisted (the log covers them) until the member serves, so that a TRUNC can still
        // drop them (wazoo-core's replica.rs, `may_stage`).
    } else {
        for (k, v) in tree.take_changes() {
            match v {
                Some(v) => first.tree_puts.push((k, v)),
                None => first.tree_deletes.push(k),
            }
        }
        if replayed > 0 {
            first.last_applied = Some(tree.last_applied());
        }
    }

    let listener = TcpListener::bind(cfg.client_addr)
        .await
        .map_err(|e| ServerError::Bind(cfg.client_addr, e))?;
    let admin = if cfg.admin_enabled {
        match TcpListener::bind(cfg.admin_addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(addr = %cfg.admin_addr, "admin server not started: {e}");
                None
            }
        }
    } else {
        None
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let durable_tx = tx.clone();
    let committer = GroupCommitter::spawn(
        Box::new(store),
        Box::new(move |report| {
            let _ = durable_tx.send(core::CoreMsg::Durable(report));
        }),
    );
    let published = admin_http::Published::new(&cfg, metrics.clone(), VERSION.to_string());
    let (pace_alarm, pace_wakeups) = core::alarm();
    let mut core = core::Core::new(
        Arc::new(cfg.core()),
        core::Recovered {
            tree,
            first_batch: first,
            next_zxid: last_logged + 1,
            persisted,
        },
        core::Wiring {
            storage: Box::new(core::Committer(committer)),
            pace_alarm,
            metrics: metrics.clone(),
            gauges: published.gauges.clone(),
            started: published.started,
        },
        core::read_now(),
        // Session passwords come from this seed: OS randomness, 256 bits.
        rand::random(),
    );
    if let (Some(e), Some((peer, window))) = (&cfg.ensemble, member) {
        let links = ensemble::start_links(e, tx.clone()).await?;
        let (wake, wakeups) = core::alarm();
        let replica = core::Replica::new(peer, links, window, cfg.diff_window_bytes, wake);
        core::spawn_wake(wakeups, tx.clone(), || core::CoreMsg::PeerWake);
        core.attach_replica(replica);
    }
    if !cfg.recipes.is_empty() {
        // Every member compiles the loaded recipes as their znodes apply; calls run on the
        // leader (a learner relays its clients' calls there: `wazoo-core`'s `relay.rs`).
        let workers = recipes::Workers::start(
            &cfg.recipes,
            cfg.recipe_workers,
            cfg.recipe_cache_dir.clone(),
            tx.clone(),
            metrics.clone(),
        )?;
        core.attach_recipes(Box::new(workers));
        // Parked calls' deadlines wake the core at their instant, not at the next tick.
        let (recipe_alarm, recipe_wakeups) = core::alarm();
        core.set_recipe_alarm(recipe_alarm);
        core::spawn_wake(recipe_wakeups, tx.clone(), || core::CoreMsg::RecipeDeadline);
    }
    core::spawn_timers(&cfg, tx.clone(), pace_wakeups);
    let core_task = tokio::spawn(core::run(core, rx));
    info!(addr = %cfg.client_addr, "serving ZooKeeper clients");
    tokio::spawn(conn::accept_loop(
        listener,
        cfg.clone(),
        tx.clone(),
        published.clone(),
    ));
    if let Some(l) = admin {
        info!(addr = %cfg.admin_addr, "admin server: /metrics, /commands");
        tokio::spawn(admin_http::serve(l, tx.clone(), cfg.clone(), published));
    }
    drop(tx);
    tokio::select! {
        r = core_task => match r {
            Ok(res) => res?,
            Err(e) => return Err(ServerError::Corrupt(format!("core task panicked: {e}"))),
        },
        _ = shutdown => info!("shutting down"),
    }
    Ok(())
}

/// An ensemble member's peer, from the store's epochs and its retained log (whose txns are the
/// window it can DIFF a learner from).
fn member_state(
    cfg: &ServerConfig,
    store: &RocksStore,
    e: &config::Ensemble,
) -> Result<(wazoo_zab::peer::Peer, core::Window), ServerError> {
    let tick = cfg.tick_time_ms as u64;
    let mut pc = wazoo_zab::peer::PeerConfig::new(e.me, e.voters(), e.observers());
    pc.tick_ms = tick;
    pc.init_limit_ms = tick * cfg.init_limit as u64;
    pc.sync_limit_ms = tick * cfg.sync_limit as u64;
    Ok(core::member_state(store, pc)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazoo_proto::Acl;
    use wazoo_tree::node::{encode_node, NodeMeta};

    fn config(dir: &std::path::Path) -> ServerConfig {
        ServerConfig {
            data_dir: dir.to_owned(),
            ..ServerConfig::standalone_default()
        }
    }

    fn node(czxid: i64) -> Vec<u8> {
        let meta = NodeMeta {
            czxid,
            mzxid: czxid,
            pzxid: czxid,
            ..NodeMeta::default()
        };
        encode_node(&meta, &Acl::open_unsafe(), Some(b"v"))
    }

    /// Writes tree records into a new store in `dir` and flushes them, as a stopped server leaves them.
    fn persist(dir: &std::path::Path, puts: Vec<(Vec<u8>, Vec<u8>)>, last_applied: i64) {
        let mut store = RocksStore::open(dir).unwrap();
        store
            .commit(Batch {
                tree_puts: puts,
                last_applied: Some(last_applied),
                ..Batch::default()
            })
            .unwrap();
        store.checkpoint().unwrap();
    }

    /// The tree is read on a loader thread and linked on this one, in batches: more entries than
    /// fit one batch all arrive, parents before children, and the digest is the tree's own.
    #[test]
    fn recovery_loads_every_entry_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3 * LOAD_BATCH + 17;
        let mut puts = vec![(b"/d".to_vec(), node(1))];
        puts.extend((0..n).map(|i| (format!("/d/n{i:06}").into_bytes(), node(2))));
        persist(dir.path(), puts, 2);
        let mut r = recover(&config(dir.path())).unwrap();
        assert_eq!(r.tree.get("/d").unwrap().child_count(), n);
        assert!(r.tree.get(&format!("/d/n{:06}", n - 1)).is_some());
        assert_eq!(r.tree.digest(), r.tree.recompute_digest());
    }

    /// A stored entry that does not decode (its record checksum is fine) stops recovery with an
    /// error naming it, wherever it sits among the batches; so does a node without its parent.
    #[test]
    fn recovery_refuses_an_undecodable_entry_or_an_orphan() {
        for (bad_key, bad_value) in [
            (format!("/d/n{:06}", LOAD_BATCH + 5), b"not a node".to_vec()),
            ("/e/orphan".to_string(), node(3)),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut puts = vec![(b"/d".to_vec(), node(1))];
            puts.extend((0..2 * LOAD_BATCH).map(|i| (format!("/d/n{i:06}").into_bytes(), node(2))));
            puts.retain(|(k, _)| k != bad_key.as_bytes());
            puts.push((bad_key.clone().into_bytes(), bad_value));
            persist(dir.path(), puts, 3);
            match recover(&config(dir.path())) {
                Err(ServerError::Corrupt(msg)) => assert!(msg.contains(&bad_key), "{msg}"),
                Err(other) => panic!("{bad_key}: expected Corrupt, got {other}"),
                Ok(_) => panic!("{bad_key}: recovery accepted a bad tree"),
            }
        }
    }

    fn txn_entry(zxid: i64) -> wazoo_store::LogEntry {
        let header = wazoo_proto::TxnHeader {
            session_id: 1,
            cxid: 1,
            zxid,
            time: 0,
        };
        let txn = wazoo_proto::Txn::CloseSession {
            ephemerals: Vec::new(),
        };
        wazoo_store::LogEntry::new(zxid, wazoo_proto::encode_txn(&header, &txn))
    }

    /// Logs zxids `1.1 ..= 1.n` and persists the tree at `last_applied`.
    fn logged_store(dir: &std::path::Path, n: u32, last_applied: i64) -> RocksStore {
        let mut store = RocksStore::open(dir).unwrap();
        store
            .commit(Batch {
                log: (1..=n).map(|c| txn_entry(1 << 32 | i64::from(c))).collect(),
                last_applied: Some(last_applied),
                ..Batch::default()
            })
            .unwrap();
        store.checkpoint().unwrap();
        store
    }

    /// Entries between the persisted tree and the first entry left in the log are missing (here
    /// the log was purged past the tree): recovery refuses to start instead of skipping them.
    #[test]
    fn recovery_refuses_a_gap_after_the_persisted_tree() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = logged_store(dir.path(), 5, 1 << 32 | 2);
        store.purge_log_before(1 << 32 | 5).unwrap();
        store.checkpoint().unwrap();
        drop(store);
        match recover(&config(dir.path())) {
            Err(ServerError::Corrupt(msg)) => {
                assert!(msg.contains("gap"), "{msg}");
                assert!(msg.contains("0x100000002"), "{msg}");
                assert!(msg.contains("0x100000005"), "{msg}");
            }
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("recovery skipped missing entries"),
        }
    }

    /// The store knows entries up to 1.5 were logged, but the log's files are gone: the replay
    /// stops short, and recovery refuses to start.
    #[test]
    fn recovery_refuses_a_replay_that_stops_short_of_the_last_logged_zxid() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = logged_store(dir.path(), 5, 1 << 32 | 2);
        // A purge records the last logged zxid in meta.
        store.purge_log_before(1 << 32 | 1).unwrap();
        store.checkpoint().unwrap();
        drop(store);
        for e in std::fs::read_dir(wazoo_disk::txn_log_dir(dir.path())).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        match recover(&config(dir.path())) {
            Err(ServerError::Corrupt(msg)) => {
                assert!(msg.contains("replay ended at zxid 0x100000002"), "{msg}");
                assert!(msg.contains("0x100000005"), "{msg}");
            }
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("recovery accepted a log missing its end"),
        }
    }

    /// A whole log replays when it is contiguous with the tree, and the data directory (two
    /// levels of it missing) is created.
    #[test]
    fn recovery_replays_a_contiguous_log_into_a_new_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("data");
        drop(logged_store(&dir, 5, 1 << 32 | 2));
        let r = recover(&config(&dir)).unwrap();
        assert_eq!(r.replayed, 3);
        assert_eq!(r.last_logged, 1 << 32 | 5);
    }
}
