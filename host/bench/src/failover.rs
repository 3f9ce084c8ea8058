//! The failover probe: with a session open to every server, run the kill command (`sh -c`), then
//! try a write (setData on the prefix node) against every server at once, reconnecting whatever
//! connection broke, until one succeeds. The number is the time from the start of the kill
//! command to that first successful write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use wazoo_proto::ErrorCode;

use crate::args::Config;
use crate::cpu::process_cpu_seconds;
use crate::error::BenchError;
use crate::progress::{Phase, Progress};
use crate::run::{
    blank_report, close_all, connect_any, delete_tree, prefix_creates, run_paths, stall_limit,
};
use crate::stats::{FailoverReport, Recorder, Report};
use crate::wire::{reply_header, Conn, Encoder};

const NODE_EXISTS: &[i32] = &[ErrorCode::NodeExists as i32];

/// Per-attempt limits: a dead or electing server must not hold a prober for long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1000);
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// One setData on `path`: `Ok(true)` on success, `Ok(false)` on a ZooKeeper error (recorded),
/// `Err` when the connection is unusable.
async fn try_write(conn: &mut Conn, path: &str, rec: &mut Recorder) -> Result<bool, BenchError> {
    let xid = conn.xid();
    Encoder::new(&mut conn.wbuf).set_data(xid, path, b"failover");
    conn.flush()
        .await
        .map_err(|e| BenchError::Protocol(e.to_string()))?;
    loop {
        if !conn.fill(ATTEMPT_TIMEOUT).await? {
            return Err(BenchError::Protocol("closed".into()));
        }
        while let Some((s, e)) = conn.next_frame()? {
            let Some(h) = reply_header(&conn.rbuf[s..e]) else {
                continue;
            };
            if h.xid != xid {
                continue;
            }
            if h.err == 0 {
                return Ok(true);
            }
            rec.error(h.err);
            return Ok(false);
        }
    }
}

async fn prober(
    addr: String,
    mut conn: Option<Conn>,
    path: String,
    cfg_timeout: Duration,
    deadline: Instant,
    attempts: Arc<AtomicU64>,
) -> (Option<Instant>, String, Recorder) {
    let mut rec = Recorder::new(1);
    while Instant::now() < deadline {
        let mut c = match conn.take() {
            Some(c) => c,
            None => match Conn::connect(&addr, cfg_timeout, ATTEMPT_TIMEOUT).await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            },
        };
        attempts.fetch_add(1, Ordering::Relaxed);
        match try_write(&mut c, &path, &mut rec).await {
            Ok(true) => return (Some(Instant::now()), addr, rec),
            Ok(false) => {
                conn = Some(c);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(_) => {
                rec.error(ErrorCode::ConnectionLoss as i32);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    (None, addr, rec)
}

/// `failover`.
pub async fn run_failover(cfg: &Config, progress: &Progress) -> Result<Report, BenchError> {
    let kill_cmd = cfg
        .kill_cmd
        .clone()
        .ok_or_else(|| BenchError::Arg("failover needs --kill-cmd".into()))?;
    let cpu0 = process_cpu_seconds();
    let stall = stall_limit(cfg);
    let mut report = blank_report(cfg);
    report.sessions = cfg.servers.len();

    progress.set_phase(Phase::Setup);
    let setup_start = Instant::now();
    let admin = connect_any(cfg).await?;
    let admin = run_paths(
        admin,
        "setup",
        prefix_creates(&cfg.prefix),
        Arc::new(Vec::new()),
        NODE_EXISTS,
        stall,
    )
    .await?;
    close_all(vec![admin]).await;
    // A session on every server that takes one, before the kill.
    let mut pre = Vec::new();
    for addr in &cfg.servers {
        pre.push(
            Conn::connect(addr, cfg.session_timeout, crate::run::connect_timeout(cfg))
                .await
                .ok(),
        );
    }
    report.setup_s = setup_start.elapsed().as_secs_f64();

    progress.set_phase(Phase::Failover);
    let cpu_a = process_cpu_seconds();
    let t0 = Instant::now();
    let cmd = kill_cmd.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .status()
    })
    .await
    .map_err(|e| BenchError::Protocol(format!("kill command task: {e}")))?
    .map_err(|err| BenchError::Io {
        what: format!("running {kill_cmd:?}"),
        err,
    })?;
    let kill_ms = t0.elapsed().as_secs_f64() * 1e3;
    if !status.success() {
        eprintln!("wazoo bench: the kill command {kill_cmd:?} exited with {status}");
    }

    let deadline = t0 + cfg.failover_timeout;
    let attempts = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for (addr, conn) in cfg.servers.iter().cloned().zip(pre) {
        set.spawn(prober(
            addr,
            conn,
            cfg.prefix.clone(),
            cfg.session_timeout,
            deadline,
            attempts.clone(),
        ));
    }
    let mut first: Option<(Instant, String)> = None;
    let mut recs = Vec::new();
    while let Some(j) = set.join_next().await {
        if let Ok((t, addr, rec)) = j {
            recs.push(rec);
            if let Some(t) = t {
                first = Some((t, addr));
                set.abort_all();
                break;
            }
        }
    }
    while set.join_next().await.is_some() {}
    report.client_cpu_s = process_cpu_seconds() - cpu_a;
    let merged = Recorder::merge_all(1, &recs);
    report.errors = merged.named_errors();
    report.errors_total = merged.errors_total();
    let first_ms = first.as_ref().map(|(t, _)| (*t - t0).as_secs_f64() * 1e3);
    report.ops = first.is_some() as u64;
    report.completed = report.ops;
    crate::run::mark_window(
        &mut report,
        t0,
        first.as_ref().map_or_else(Instant::now, |(t, _)| *t),
    );
    report.duration_s = first_ms.unwrap_or(0.0) / 1e3;
    report.failover = Some(FailoverReport {
        kill_cmd: kill_cmd.clone(),
        kill_cmd_exit: status.code(),
        kill_cmd_ms: kill_ms,
        first_write_ms: first_ms,
        first_write_server: first.as_ref().map(|(_, a)| a.clone()),
        attempts: attempts.load(Ordering::Relaxed),
    });
    progress.done.fetch_add(1, Ordering::Relaxed);

    if !cfg.keep {
        if let Some((_, addr)) = &first {
            progress.set_phase(Phase::Cleanup);
            let t = Instant::now();
            let mut c = cfg.clone();
            c.servers = vec![addr.clone()];
            if let Ok(conn) = connect_any(&c).await {
                if let Ok(conn) = delete_tree(conn, &cfg.prefix, stall).await {
                    close_all(vec![conn]).await;
                }
            }
            report.cleanup_s = t.elapsed().as_secs_f64();
        }
    }
    report.client_cpu_total_s = process_cpu_seconds() - cpu0;
    Ok(report)
}
