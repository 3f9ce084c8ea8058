//! The admin surface: what the four-letter words (`conn.rs` hands them here) and the HTTP admin
//! endpoint (`/metrics` in Prometheus format, the four-letter commands as JSON under
//! `/commands/`) answer, and how they get it without holding up client requests. Parsing and
//! rendering live in `wazoo-admin`.
//!
//! Where each answer comes from:
//! - `ruok`: nothing; it is `imok` whenever the listener accepts (ZooKeeper answers `imok` when
//!   serving), without asking the core.
//! - `srvr`, `stat`'s header, `mntr`, `conf`, `envi`, `isro`, `dirs`, `gtmk`, `/metrics` and the
//!   same `/commands/*`: the gauges the core publishes ([`wazoo_admin::Gauges`]: once per burst
//!   the O(1) values, once per tick the counts that sum over connections or sessions), the
//!   metrics, and the configuration fixed at startup ([`Published`]). No message to the core.
//!   The directory sizes (`dirs`, `conf`, the JSON and Prometheus forms) are read from disk here.
//! - `cons`, `stat`'s client list and `dump` walk the core's tables in pieces: one message gets
//!   the ids of every session and connection (integers only, no strings copied), then each
//!   further message asks for at most [`ADMIN_CHUNK`] sessions or connections, and a session
//!   piece stops after [`ADMIN_CHUNK`] ephemeral paths ([`SessionChunk::resume`] says where the
//!   next piece starts, within a session if need be). The core answers each message in time
//!   bounded by the piece, and client requests queued meanwhile are served between pieces.
//!   Chosen over copy-on-write snapshots: no cost at all on the hot path, only when asked. The
//!   listing is consistent within a piece, not across pieces (ZooKeeper's walks its concurrent
//!   maps just as loosely); sessions or connections gone in between are left out.
//! - `wchs`: one message; the registry keeps its counts as it changes.
//! - `wchc`, `wchp`: the connection ids (as above), then pieces of at most [`ADMIN_CHUNK`]
//!   watched paths, resumed within a connection from a cursor ([`WatchChunk::resume`]: the
//!   registry keeps each connection's watches ordered, so a piece starts after the last one
//!   sent). Both tables are built here from the pieces (paths sorted and deduplicated per
//!   session, or turned into sessions per path), off the core. Before, the core built either
//!   table whole in one turn: a client with a million watches stopped it for the length of the
//!   copy.
//!
//! A server's [`Published`] is made at startup (`run`) and handed to the core, which updates its
//! gauges, and to the connection listener and this endpoint, which read them.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;
use wazoo_admin::fourletter::{render, AdminAction, FourLetterWord};
use wazoo_admin::http::{action_for, parse_request_head, route};
use wazoo_admin::json::canonical_name;
use wazoo_admin::metrics::Metrics;
use wazoo_admin::published::{published_stats, Gauges, StaticInfo};
use wazoo_admin::stats::{ServerStats, SessionDump};

use crate::config::ServerConfig;
use crate::core::{AdminQuery, CoreMsg, Reply, WatchChunk, WatchQuery, ADMIN_CHUNK};

const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// What a server publishes for its admin commands.
pub struct Published {
    pub gauges: Arc<Gauges>,
    pub metrics: Arc<Metrics>,
    pub info: StaticInfo,
    /// What uptime counts from.
    pub started: Instant,
}

impl Published {
    pub fn new(cfg: &ServerConfig, metrics: Arc<Metrics>, version: String) -> Arc<Published> {
        Arc::new(Published {
            gauges: Arc::new(Gauges::new()),
            metrics,
            info: static_info(cfg, version),
            started: Instant::now(),
        })
    }

    /// The stats of the commands served from published values (see the module docs).
    pub fn stats(&self) -> ServerStats {
        let uptime = self.started.elapsed().as_millis() as u64;
        published_stats(&self.info, &self.gauges.read(), &self.metrics, uptime)
    }
}

fn static_info(cfg: &ServerConfig, version: String) -> StaticInfo {
    let config = vec![
        ("clientPort".into(), cfg.client_addr.port().to_string()),
        ("secureClientPort".into(), "-1".into()),
        ("dataDir".into(), cfg.data_dir.display().to_string()),
        ("dataDirSize".into(), "0".into()),
        (
            "dataLogDir".into(),
            cfg.data_log_dir
                .as_ref()
                .unwrap_or(&cfg.data_dir)
                .display()
                .to_string(),
        ),
        ("dataLogSize".into(), "0".into()),
        ("tickTime".into(), cfg.tick_time_ms.to_string()),
        ("maxClientCnxns".into(), cfg.max_client_cnxns.to_string()),
        (
            "minSessionTimeout".into(),
            cfg.min_session_timeout_ms.to_string(),
        ),
        (
            "maxSessionTimeout".into(),
            cfg.max_session_timeout_ms.to_string(),
        ),
        ("clientPortListenBacklog".into(), "-1".into()),
        ("serverId".into(), cfg.server_id.to_string()),
    ];
    StaticInfo {
        version,
        mode: Default::default(),
        server_id: cfg.server_id as i64,
        config,
        env: crate::env_lines(),
    }
}

/// What a command lists beyond the published values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lists {
    Nothing,
    Connections,
    /// Sessions with their ephemerals, and connections.
    Dump,
    Watches(WatchQuery),
}

fn lists_for_word(cmd: FourLetterWord) -> Lists {
    match cmd {
        FourLetterWord::Cons | FourLetterWord::Stat => Lists::Connections,
        FourLetterWord::Dump => Lists::Dump,
        FourLetterWord::Wchs => Lists::Watches(WatchQuery::Summary),
        FourLetterWord::Wchc => Lists::Watches(WatchQuery::BySession),
        FourLetterWord::Wchp => Lists::Watches(WatchQuery::ByPath),
        _ => Lists::Nothing,
    }
}

/// `path`: `/metrics`, `/commands/<name or alias>`, ...
fn lists_for_path(path: &str) -> Lists {
    let name = path
        .strip_prefix("/commands/")
        .map(|n| n.strip_suffix('/').unwrap_or(n));
    match name.and_then(canonical_name) {
        Some("connections" | "stats") => Lists::Connections,
        Some("dump") => Lists::Dump,
        Some("watch_summary") => Lists::Watches(WatchQuery::Summary),
        Some("watches") => Lists::Watches(WatchQuery::BySession),
        Some("watches_by_path") => Lists::Watches(WatchQuery::ByPath),
        _ => Lists::Nothing,
    }
}

/// Asks the core one question and waits for its answer.
async fn ask<T: Send + 'static>(
    core: &mpsc::UnboundedSender<CoreMsg>,
    query: impl FnOnce(Reply<T>) -> AdminQuery,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    let reply = Reply::new(move |v| {
        let _ = tx.send(v);
    });
    core.send(CoreMsg::Admin(query(reply))).ok()?;
    rx.await.ok()
}

/// Adds the listed tables to `stats`, asking the core in pieces (see the module docs).
async fn add_lists(
    stats: &mut ServerStats,
    lists: Lists,
    core: &mpsc::UnboundedSender<CoreMsg>,
) -> Option<()> {
    if lists == Lists::Nothing {
        return Some(());
    }
    if let Lists::Watches(what) = lists {
        if what == WatchQuery::Summary {
            let c = ask(core, AdminQuery::WatchCounts).await?;
            stats.watch_count = c.watch_count;
            stats.watched_paths = c.watched_paths;
            stats.watching_connections = c.watching_connections;
            return Some(());
        }
        let (_, mut conn_ids) = ask(core, AdminQuery::Ids).await?;
        conn_ids.sort_unstable();
        let pieces = watch_listing(&conn_ids, core).await?;
        // Sorting and turning around a large table is CPU work: off the runtime's workers,
        // which also run the core and the connections.
        let tables = tokio::task::spawn_blocking(move || {
            let by_session = sorted(pieces);
            if what == WatchQuery::BySession {
                (by_session, Vec::new())
            } else {
                (Vec::new(), by_path(by_session))
            }
        });
        (stats.watches_by_session, stats.watches_by_path) = tables.await.ok()?;
        return Some(());
    }
    let (mut session_ids, mut conn_ids) = ask(core, AdminQuery::Ids).await?;
    conn_ids.sort_unstable();
    for ids in conn_ids.chunks(ADMIN_CHUNK) {
        let ids = ids.to_vec();
        let conns = ask(core, |reply| AdminQuery::Conns { ids, reply }).await?;
        stats.connections.extend(conns);
    }
    if lists == Lists::Dump {
        session_ids.sort_unstable();
        stats.sessions = session_listing(&session_ids, core).await?;
    }
    Some(())
}

/// The sessions `ids` with their ephemerals, piece by piece.
async fn session_listing(
    ids: &[i64],
    core: &mpsc::UnboundedSender<CoreMsg>,
) -> Option<Vec<SessionDump>> {
    let mut out: Vec<SessionDump> = Vec::with_capacity(ids.len());
    let (mut next, mut skip) = (0usize, 0usize);
    while next < ids.len() {
        let end = ids.len().min(next + ADMIN_CHUNK);
        let piece = ids[next..end].to_vec();
        let chunk = ask(core, |reply| AdminQuery::Sessions {
            ids: piece,
            skip,
            reply,
        })
        .await?;
        for s in chunk.sessions {
            // A session continued from the previous piece.
            match out.last_mut() {
                Some(last) if skip > 0 && last.id == s.id => last.ephemerals.extend(s.ephemerals),
                _ => out.push(s),
            }
            skip = 0;
        }
        match chunk.resume {
            Some((i, sent)) => {
                next += i;
                skip = sent;
            }
            None => next = end,
        }
    }
    Some(out)
}

/// The watched paths of the connections `ids`, piece by piece: (connection, session, paths), in
/// the order of `ids`, connections without watches left out.
async fn watch_listing(
    ids: &[u64],
    core: &mpsc::UnboundedSender<CoreMsg>,
) -> Option<Vec<(u64, i64, Vec<String>)>> {
    let mut out: Vec<(u64, i64, Vec<String>)> = Vec::new();
    let (mut next, mut from) = (0usize, None);
    while next < ids.len() {
        let end = ids.len().min(next + ADMIN_CHUNK);
        let piece = ids[next..end].to_vec();
        let WatchChunk { watches, resume } = ask(core, |reply| AdminQuery::WatchesOf {
            ids: piece,
            from: from.take(),
            reply,
        })
        .await?;
        for (conn, session, paths) in watches {
            // A connection continued from the previous piece.
            match out.last_mut() {
                Some(last) if last.0 == conn => last.2.extend(paths),
                _ => out.push((conn, session, paths)),
            }
        }
        match resume {
            Some((i, cursor)) => {
                next += i;
                from = cursor;
            }
            None => next = end,
        }
    }
    Some(out)
}

/// `wchc`'s table: each connection's session with its paths sorted and deduplicated.
fn sorted(listing: Vec<(u64, i64, Vec<String>)>) -> Vec<(i64, Vec<String>)> {
    listing
        .into_iter()
        .map(|(_, session, mut paths)| {
            paths.sort_unstable();
            paths.dedup();
            (session, paths)
        })
        .collect()
}

/// `wchc`'s table turned around (`wchp`): each watched path with its sessions, both sorted.
fn by_path(by_session: Vec<(i64, Vec<String>)>) -> Vec<(String, Vec<i64>)> {
    let mut paths: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (session, ps) in by_session {
        for p in ps {
            paths.entry(p).or_default().push(session);
        }
    }
    paths
        .into_iter()
        .map(|(p, mut sessions)| {
            sessions.sort_unstable();
            sessions.dedup();
            (p, sessions)
        })
        .collect()
}

/// Sets the data and txn log directory sizes (the persisted tree's RocksDB files and the log
/// segments, as ZooKeeper reports its snapshot and log directories), read here rather than on the
/// core.
fn add_dir_sizes(stats: &mut ServerStats, data_dir: &Path) {
    stats.set_dir_sizes(
        wazoo_disk::dir_file_bytes(data_dir),
        wazoo_disk::dir_file_bytes(&wazoo_disk::txn_log_dir(data_dir)),
    );
}

/// Performs a command's side effect: `srst` resets the published metrics here; `crst` asks the
/// core, which owns the connections' statistics (a listing asked for afterwards is answered after
/// the reset: the core handles its inbox in order).
fn perform(action: Option<AdminAction>, p: &Published, core: &mpsc::UnboundedSender<CoreMsg>) {
    match action {
        Some(AdminAction::ResetServerStats) => p.metrics.reset(),
        Some(AdminAction::ResetConnectionStats) => {
            let _ = core.send(CoreMsg::Admin(AdminQuery::ResetConnStats));
        }
        _ => {}
    }
}

/// The reply to a whitelisted four-letter word; `None` if the server is shutting down.
pub async fn four_letter_text(
    cmd: FourLetterWord,
    cfg: &ServerConfig,
    p: &Published,
    core: &mpsc::UnboundedSender<CoreMsg>,
) -> Option<String> {
    if cmd == FourLetterWord::Ruok {
        return Some(render(cmd, &ServerStats::default()));
    }
    perform(cmd.action(), p, core);
    let mut stats = p.stats();
    if matches!(cmd, FourLetterWord::Dirs | FourLetterWord::Conf) {
        add_dir_sizes(&mut stats, &cfg.data_dir);
    }
    let lists = lists_for_word(cmd);
    if stats.serving {
        add_lists(&mut stats, lists, core).await?;
    }
    if lists == Lists::Nothing {
        return Some(render(cmd, &stats));
    }
    // A listing's text can be megabytes: rendered off the runtime's workers.
    tokio::task::spawn_blocking(move || render(cmd, &stats))
        .await
        .ok()
}

pub async fn serve(
    listener: TcpListener,
    core: mpsc::UnboundedSender<CoreMsg>,
    cfg: Arc<ServerConfig>,
    published: Arc<Published>,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (mut stream, remote) = match listener.accept().await {
            Ok(x) => {
                backoff = ACCEPT_BACKOFF_MIN;
                x
            }
            Err(e) => {
                // EMFILE and the like persist until connections close: back off, do not spin.
                warn!(
                    "admin accept failed: {e}; retrying in {} ms",
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let core = core.clone();
        let cfg = cfg.clone();
        let published = published.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let resp = loop {
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                match parse_request_head(&buf) {
                    Ok(None) => continue,
                    Ok(Some(req)) => {
                        let p = &published;
                        perform(action_for(&req), p, &core);
                        let mut stats = p.stats();
                        add_dir_sizes(&mut stats, &cfg.data_dir);
                        let lists = lists_for_path(&req.path);
                        if stats.serving && add_lists(&mut stats, lists, &core).await.is_none() {
                            return;
                        }
                        if lists == Lists::Nothing {
                            break route(&req, &stats, &p.metrics);
                        }
                        // A listing's JSON can be megabytes: rendered off the workers.
                        let p = published.clone();
                        let rendered =
                            tokio::task::spawn_blocking(move || route(&req, &stats, &p.metrics));
                        match rendered.await {
                            Ok(resp) => break resp,
                            Err(_) => return,
                        }
                    }
                    Err(e) => {
                        warn!(%remote, "bad admin request: {e}");
                        break e.to_response();
                    }
                }
            };
            let _ = stream.write_all(&resp.to_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_asked_per_command() {
        assert_eq!(lists_for_word(FourLetterWord::Srvr), Lists::Nothing);
        assert_eq!(lists_for_word(FourLetterWord::Mntr), Lists::Nothing);
        assert_eq!(lists_for_word(FourLetterWord::Stat), Lists::Connections);
        assert_eq!(lists_for_word(FourLetterWord::Dump), Lists::Dump);
        assert_eq!(lists_for_path("/metrics"), Lists::Nothing);
        assert_eq!(lists_for_path("/commands/mntr"), Lists::Nothing);
        assert_eq!(lists_for_path("/commands/cons/"), Lists::Connections);
        assert_eq!(
            lists_for_path("/commands/wchp"),
            Lists::Watches(WatchQuery::ByPath)
        );
    }

    /// `srvr` and `mntr` are answered with the core's inbox never read: a core that answers
    /// nothing (its receiver is held, never polled) does not delay them.
    #[tokio::test]
    async fn published_words_need_no_core() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(ServerConfig {
            data_dir: dir.path().to_owned(),
            ..ServerConfig::standalone_default()
        });
        let p = Published::new(&cfg, Arc::new(Metrics::new()), "3.8.0-test".into());
        p.gauges.set_serving(true);
        p.gauges.publish_burst(5, 3, 0, 0, 1, 1);
        let (tx, _rx) = mpsc::unbounded_channel();
        for (cmd, needle) in [
            (FourLetterWord::Ruok, "imok"),
            (FourLetterWord::Srvr, "Node count: 3\n"),
            (FourLetterWord::Mntr, "zk_znode_count\t3\n"),
            (FourLetterWord::Isro, "rw"),
            (FourLetterWord::Envi, "zookeeper.version=3.8.0-test\n"),
            (FourLetterWord::Conf, "dataDirSize="),
            (FourLetterWord::Dirs, "datadir_size: "),
        ] {
            let text = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                four_letter_text(cmd, &cfg, &p, &tx),
            )
            .await
            .unwrap_or_else(|_| panic!("{cmd:?} waited for the core"))
            .unwrap();
            assert!(text.contains(needle), "{cmd:?}: {text}");
        }
        // A listing does ask the core.
        let wait = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            four_letter_text(FourLetterWord::Cons, &cfg, &p, &tx),
        )
        .await;
        assert!(wait.is_err(), "cons answered without the core");
    }
}
