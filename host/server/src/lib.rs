//! wazoo-server: the tokio runtime of a standalone wazoo server. It recovers state from the store,
//! then runs the client listener ([`conn`]), the core task that sequences prep → log → apply → reply
//! ([`core`]), the storage worker (group commit, from `wazoo-store`), timers, and the HTTP admin
//! endpoint ([`admin_http`]). Configuration is ZooKeeper's zoo.cfg ([`config`]).

pub mod admin_http;
pub mod config;
pub mod conn;
pub mod core;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{info, warn};
use wazoo_admin::metrics::Metrics;
use wazoo_proto::decode_txn;
use wazoo_store::{Batch, GroupCommitter, RocksStore, Store, StoreError};
use wazoo_tree::DataTree;

pub use config::{ConfigError, ServerConfig};

/// The version reported to clients (`envi`, `srvr`): ZooKeeper 3.8 compatible.
pub const VERSION: &str = concat!("3.8.0-wazoo-", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("corrupt state in the data directory: {0}")]
    Corrupt(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Core(#[from] core::CoreError),
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
pub fn recover(cfg: &ServerConfig) -> Result<Recovered, ServerError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServerError::DataDir(cfg.data_dir.display().to_string(), e))?;
    let store = RocksStore::open(&cfg.data_dir)?;
    let mut tree = DataTree::new();
    let mut load_err: Option<String> = None;
    store.load_tree(&mut |k, v| {
        tree.load_entry(k, v).map_err(|e| {
            load_err = Some(e.clone());
            StoreError::Corrupt {
                what: "tree entry",
                key: String::from_utf8_lossy(k).into_owned(),
                detail: e,
            }
        })
    })?;
    if let Some(e) = load_err {
        return Err(ServerError::Corrupt(e));
    }
    let last_applied = store.last_applied()?;
    tree.finish_load(last_applied);
    let mut after = last_applied;
    let mut replayed = 0;
    loop {
        let entries = store.read_log(after, 10_000)?;
        if entries.is_empty() {
            break;
        }
        for e in entries {
            let (h, txn) = decode_txn(&e.data)
                .map_err(|err| ServerError::Corrupt(format!("log entry {:#x}: {err}", e.zxid)))?;
            tree.apply(&h, &txn);
            after = e.zxid;
            replayed += 1;
        }
    }
    let last_logged = store.last_logged_zxid()?.max(tree.last_applied());
    Ok(Recovered {
        tree,
        store,
        last_logged,
        replayed,
    })
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
    info!(
        nodes = tree.node_count(),
        sessions = tree.sessions().len(),
        replayed,
        zxid = format_args!("{:#x}", tree.last_applied()),
        ms = t0.elapsed().as_millis() as u64,
        "recovered state from {}",
        cfg.data_dir.display()
    );
    let mut first = Batch::default();
    for (k, v) in tree.take_changes() {
        match v {
            Some(v) => first.tree_puts.push((k, v)),
            None => first.tree_deletes.push(k),
        }
    }
    if replayed > 0 {
        first.last_applied = Some(tree.last_applied());
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
    let metrics = Arc::new(Metrics::new());
    let core = core::Core::new(
        cfg.clone(),
        tree,
        committer,
        first,
        last_logged + 1,
        metrics.clone(),
        VERSION.to_string(),
    );
    core::spawn_timers(&cfg, tx.clone());
    let core_task = tokio::spawn(core.run(rx));
    info!(addr = %cfg.client_addr, "serving ZooKeeper clients");
    tokio::spawn(conn::accept_loop(listener, cfg.clone(), tx.clone()));
    if let Some(l) = admin {
        info!(addr = %cfg.admin_addr, "admin server: /metrics, /commands");
        tokio::spawn(admin_http::serve(l, tx.clone(), metrics));
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
