//! Coordination recipes as clients run them, over `wazoo-client` sessions (one per contender or
//! participant), so any ZooKeeper-compatible server can be measured:
//!
//! * **lock** with `--recipe-impl server`: wazoo's built-in `mutex` recipe, acquire in one call
//!   that waits on the server, release in another; the number and latency as below.
//! * **barrier** with `--recipe-impl server`: wazoo's built-in `double-barrier` recipe, enter in
//!   one call that waits until all P are in, leave in one that waits until all are out; rounds
//!   and latency as below.
//! * **lock** (Curator's `InterProcessMutex` algorithm): create an ephemeral-sequential
//!   `lock-` node under the lock node, getChildren, if ours is the lowest the lock is held;
//!   otherwise `exists` with a watch on the next lower node and wait for its deletion, then look
//!   again. Release by deleting our node. The lock is released as soon as it is acquired, so the
//!   number is the handoff rate; the latency is from the create to the acquisition.
//! * **barrier** (double barrier, as Curator's `DistributedDoubleBarrier` enters): round `r` has
//!   a ready node `<prefix>/ready/r<r>`. Enter: `exists` on it with a watch, create our ephemeral
//!   `r<r>-p<id>` under `<prefix>/barrier`, getChildren and count this round's nodes; the one who
//!   sees all P creates the ready node, the others wait for its creation event. Leave: delete our
//!   node, then getChildren with a watch until no node of the round is left. A round counts once
//!   participant 0 has left it; the latency is participant 0's enter-to-left time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio::time::Instant;
use wazoo_client::{
    Acl, Client, ClientError, ConnectOptions, CreateMode, ErrorCode, EventType, KeeperState,
    WatchedEvent,
};

use crate::args::Config;
use crate::cpu::process_cpu_seconds;
use crate::engine::{Job, Layout, Window};
use crate::error::BenchError;
use crate::progress::{Phase, Progress};
use crate::run::{
    blank_report, close_all, connect_any, delete_tree, prefix_creates, run_paths, spawn_cpu_window,
    spawn_phase_marks, stall_limit,
};
use crate::stats::{Recorder, Report};

const NODE_EXISTS: &[i32] = &[ErrorCode::NodeExists as i32];

/// The ZooKeeper code a client error is counted under.
pub fn client_error_code(e: &ClientError) -> i32 {
    match e {
        ClientError::UnknownCode(c) => *c,
        other => other
            .code()
            .map(|c| c.code())
            .unwrap_or(ErrorCode::SystemError as i32),
    }
}

/// A recipe step failed: the code goes to the error counts.
struct Failed(i32, String);

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Self {
        Failed(client_error_code(&e), e.to_string())
    }
}

/// Waits for the first event matching `want`; others are dropped (the recipes re-read the state
/// after every wake-up, so a stale event only costs a read).
async fn wait_event(
    events: &mut UnboundedReceiver<WatchedEvent>,
    timeout: Duration,
    what: &str,
    mut want: impl FnMut(&WatchedEvent) -> bool,
) -> Result<(), Failed> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                return Err(Failed(
                    ErrorCode::OperationTimeout as i32,
                    format!("no {what} within {timeout:?}"),
                ))
            }
            Ok(None) => return Err(Failed(ErrorCode::ConnectionLoss as i32, "closed".into())),
            Ok(Some(ev)) if want(&ev) => return Ok(()),
            Ok(Some(ev))
                if ev.event_type == EventType::None
                    && matches!(ev.state, KeeperState::Disconnected | KeeperState::Closed) =>
            {
                return Err(Failed(
                    ErrorCode::ConnectionLoss as i32,
                    "disconnected".into(),
                ))
            }
            Ok(Some(_)) => {}
        }
    }
}

/// The sequence number of a sequential node name (its last 10 digits).
pub fn sequence_of(name: &str) -> Option<u64> {
    if name.len() < 10 {
        return None;
    }
    name[name.len() - 10..].parse().ok()
}

async fn connect_clients(
    cfg: &Config,
    n: usize,
) -> Result<Vec<(Client, UnboundedReceiver<WatchedEvent>)>, BenchError> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let addr = cfg.servers[i % cfg.servers.len()].clone();
        let opts = ConnectOptions {
            session_timeout: cfg.session_timeout,
            connect_timeout: crate::run::connect_timeout(cfg),
            request_timeout: Some(stall_limit(cfg)),
            ..ConnectOptions::default()
        };
        set.spawn(async move { (i, addr.clone(), Client::connect(&addr, opts).await) });
    }
    let mut out: Vec<Option<(Client, UnboundedReceiver<WatchedEvent>)>> =
        (0..n).map(|_| None).collect();
    while let Some(j) = set.join_next().await {
        let (i, addr, r) = j.map_err(|e| BenchError::Protocol(format!("connect task: {e}")))?;
        let c = r.map_err(|e| BenchError::client(format!("connecting to {addr}"), e))?;
        let ev = c
            .events()
            .ok_or_else(|| BenchError::Protocol("event stream already taken".into()))?;
        out[i] = Some((c, ev));
    }
    Ok(out.into_iter().flatten().collect())
}

/// Records one recipe operation that started at `t0` and completed now: measured if it completed
/// inside the window, counted as done either way.
fn record_completion(win: &Window, rec: &mut Recorder, progress: &Progress, t0: Instant) {
    let t = Instant::now();
    if win.counts(t) {
        rec.ok(0, u64::try_from((t - t0).as_nanos()).unwrap_or(u64::MAX));
    } else {
        rec.ok_unmeasured();
    }
    progress.done.fetch_add(1, Ordering::Relaxed);
}

async fn lock_contender(
    client: &Client,
    events: &mut UnboundedReceiver<WatchedEvent>,
    dir: &str,
    win: Window,
    rec: &mut Recorder,
    progress: &Progress,
    wait: Duration,
) -> Result<(), Failed> {
    let acl = Acl::open_unsafe();
    let node_prefix = format!("{dir}/lock-");
    while win.issuing(Instant::now()) {
        let t0 = Instant::now();
        let me = client
            .create(&node_prefix, b"", &acl, CreateMode::EphemeralSequential)
            .await?;
        let my_name = me.rsplit('/').next().unwrap_or("").to_string();
        let my_seq = sequence_of(&my_name);
        loop {
            let kids = client.get_children(dir, false).await?;
            // The highest node below ours is the one to wait for.
            let mut pred: Option<(u64, &String)> = None;
            let mut found = false;
            for k in &kids {
                if *k == my_name {
                    found = true;
                    continue;
                }
                if let (Some(s), Some(mine)) = (sequence_of(k), my_seq) {
                    if s < mine && pred.is_none_or(|(ps, _)| s > ps) {
                        pred = Some((s, k));
                    }
                }
            }
            if !found {
                return Err(Failed(
                    ErrorCode::NoNode as i32,
                    format!("our lock node {me} disappeared"),
                ));
            }
            let Some((_, pred)) = pred else { break };
            let pred_path = format!("{dir}/{pred}");
            if client.exists(&pred_path, true).await?.is_none() {
                continue;
            }
            wait_event(events, wait, "predecessor deletion", |ev| {
                ev.event_type == EventType::NodeDeleted && ev.path == pred_path
            })
            .await?;
        }
        record_completion(&win, rec, progress, t0);
        client.delete(&me, -1).await?;
    }
    Ok(())
}

/// `{path}`, the arguments of a recipe op on one path (MessagePack, as the guest SDK reads them).
fn path_args(path: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Args<'a> {
        path: &'a str,
    }
    rmp_serde::to_vec_named(&Args { path }).expect("encodes")
}

/// The counter's `add {path, delta}` arguments.
pub fn counter_add_args(path: &str, delta: i64) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Add<'a> {
        path: &'a str,
        delta: i64,
    }
    rmp_serde::to_vec_named(&Add { path, delta }).expect("encodes")
}

/// Whether the mutex's `acquire` output says it is held.
fn acquired(output: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Acquired {
        acquired: bool,
    }
    rmp_serde::from_slice::<Acquired>(output).is_ok_and(|a| a.acquired)
}

/// The lock through wazoo's `mutex` recipe: the same loop as [`lock_contender`], each acquire
/// and release one call.
async fn server_lock_contender(
    client: &Client,
    dir: &str,
    win: Window,
    rec: &mut Recorder,
    progress: &Progress,
) -> Result<(), Failed> {
    let lock = path_args(dir);
    while win.issuing(Instant::now()) {
        let t0 = Instant::now();
        let held = client.recipe_call("mutex", "acquire", &lock, "").await?;
        if !matches!(&held, Ok(out) if acquired(out)) {
            return Err(Failed(
                ErrorCode::SystemError as i32,
                format!("acquire answered {held:?}"),
            ));
        }
        record_completion(&win, rec, progress, t0);
        if let Err(e) = client.recipe_call("mutex", "release", &lock, "").await? {
            return Err(Failed(
                ErrorCode::SystemError as i32,
                format!("release aborted: {}", String::from_utf8_lossy(&e)),
            ));
        }
    }
    Ok(())
}

/// Decides the last round of the barrier so that every participant stops after the same one.
pub struct RoundGate {
    end: Instant,
    state: Mutex<(i64, Option<i64>)>, // (highest round started, final round)
}

impl RoundGate {
    pub fn new(end: Instant) -> Self {
        RoundGate {
            end,
            state: Mutex::new((-1, None)),
        }
    }

    /// Whether round `r` is to be run (`now` is the caller's clock).
    pub fn may_start(&self, r: i64, now: Instant) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = g.1 {
            return r <= last;
        }
        if now >= self.end {
            // Rounds somebody already started must be finished by everyone.
            g.1 = Some(g.0);
            return r <= g.0;
        }
        g.0 = g.0.max(r);
        true
    }
}

#[allow(clippy::too_many_arguments)]
async fn barrier_participant(
    id: usize,
    p: usize,
    client: &Client,
    events: &mut UnboundedReceiver<WatchedEvent>,
    layout: &Layout,
    gate: &RoundGate,
    win: Window,
    rec: &mut Recorder,
    progress: &Progress,
    wait: Duration,
) -> Result<(), Failed> {
    let acl = Acl::open_unsafe();
    let bdir = layout.barrier_dir();
    let rdir = layout.ready_dir();
    let mut r: i64 = 0;
    while gate.may_start(r, Instant::now()) {
        let t0 = Instant::now();
        let ready = format!("{rdir}/r{r}");
        let round_prefix = format!("r{r:010}-");
        let mine = format!("{bdir}/{round_prefix}p{id}");
        // Enter.
        let ready_exists = client.exists(&ready, true).await?.is_some();
        client
            .create(&mine, b"", &acl, CreateMode::Ephemeral)
            .await?;
        if !ready_exists {
            let n = client
                .get_children(&bdir, false)
                .await?
                .iter()
                .filter(|c| c.starts_with(&round_prefix))
                .count();
            if n >= p {
                match client
                    .create(&ready, b"", &acl, CreateMode::Persistent)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is(ErrorCode::NodeExists) => {}
                    Err(e) => return Err(e.into()),
                }
            } else {
                wait_event(events, wait, "barrier ready", |ev| {
                    ev.event_type == EventType::NodeCreated && ev.path == ready
                })
                .await?;
            }
        }
        // Leave.
        client.delete(&mine, -1).await?;
        loop {
            let left = client
                .get_children(&bdir, true)
                .await?
                .iter()
                .filter(|c| c.starts_with(&round_prefix))
                .count();
            if left == 0 {
                break;
            }
            wait_event(events, wait, "barrier leave", |ev| {
                ev.event_type == EventType::NodeChildrenChanged && ev.path == bdir
            })
            .await?;
        }
        if id == 0 {
            record_completion(&win, rec, progress, t0);
        }
        r += 1;
    }
    Ok(())
}

/// The double barrier through wazoo's `double-barrier` recipe: each round is two calls, both
/// waiting on the server; counted as [`barrier_participant`] counts.
#[allow(clippy::too_many_arguments)]
async fn server_barrier_participant(
    id: usize,
    p: usize,
    client: &Client,
    dir: &str,
    gate: &RoundGate,
    win: Window,
    rec: &mut Recorder,
    progress: &Progress,
) -> Result<(), Failed> {
    #[derive(serde::Serialize)]
    struct Enter<'a> {
        path: &'a str,
        count: usize,
    }
    let enter = rmp_serde::to_vec_named(&Enter {
        path: dir,
        count: p,
    })
    .expect("encodes");
    let leave = path_args(dir);
    let mut r: i64 = 0;
    while gate.may_start(r, Instant::now()) {
        let t0 = Instant::now();
        for (op, args) in [("enter", &enter), ("leave", &leave)] {
            if let Err(e) = client.recipe_call("double-barrier", op, args, "").await? {
                return Err(Failed(
                    ErrorCode::SystemError as i32,
                    format!("{op} aborted: {}", String::from_utf8_lossy(&e)),
                ));
            }
        }
        if id == 0 {
            record_completion(&win, rec, progress, t0);
        }
        r += 1;
    }
    Ok(())
}

/// `lock` (`sessions` contenders) and `barrier` (`participants`).
pub async fn run_recipe(cfg: &Config, progress: &Progress) -> Result<Report, BenchError> {
    let is_lock = cfg.workload == crate::args::Workload::Lock;
    let n = if is_lock {
        cfg.sessions
    } else {
        cfg.participants
    };
    let cpu0 = process_cpu_seconds();
    let stall = stall_limit(cfg);
    let wait = stall;
    let layout = Layout {
        prefix: cfg.prefix.clone(),
    };
    let mut report = blank_report(cfg);

    progress.set_phase(Phase::Connect);
    let setup_start = Instant::now();
    let admin = connect_any(cfg).await?;
    progress.set_phase(Phase::Setup);
    let mut paths = prefix_creates(&cfg.prefix);
    let dirs = if is_lock {
        vec![layout.lock_dir()]
    } else {
        vec![layout.barrier_dir(), layout.ready_dir()]
    };
    paths.extend(
        dirs.into_iter()
            .map(|d| (d, Job::Create { with_data: false })),
    );
    let admin = run_paths(
        admin,
        "setup",
        paths,
        Arc::new(Vec::new()),
        NODE_EXISTS,
        stall,
    )
    .await?;
    let clients = connect_clients(cfg, n).await?;
    report.setup_s = setup_start.elapsed().as_secs_f64();

    let (start, win) = Window::timed(cfg.warmup, cfg.duration);
    let cpu_task = spawn_cpu_window(win);
    let marks = spawn_phase_marks(progress, win);
    let gate = Arc::new(RoundGate::new(win.end.unwrap_or(start)));
    tokio::time::sleep_until(start).await;
    let server_side = cfg.recipe_impl == crate::args::RecipeImpl::Server;
    let mut set = JoinSet::new();
    for (id, (client, mut events)) in clients.into_iter().enumerate() {
        let progress = progress.clone();
        let layout = layout.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let mut rec = Recorder::new(1);
            let r = if is_lock && server_side {
                server_lock_contender(&client, &layout.lock_dir(), win, &mut rec, &progress).await
            } else if server_side {
                let dir = layout.barrier_dir();
                server_barrier_participant(id, n, &client, &dir, &gate, win, &mut rec, &progress)
                    .await
            } else if is_lock {
                lock_contender(
                    &client,
                    &mut events,
                    &layout.lock_dir(),
                    win,
                    &mut rec,
                    &progress,
                    wait,
                )
                .await
            } else {
                barrier_participant(
                    id,
                    n,
                    &client,
                    &mut events,
                    &layout,
                    &gate,
                    win,
                    &mut rec,
                    &progress,
                    wait,
                )
                .await
            };
            if let Err(Failed(code, why)) = &r {
                rec.error(*code);
                eprintln!(
                    "wazoo bench: {} {id}: {why}",
                    if is_lock { "contender" } else { "participant" }
                );
            }
            // Closing the session removes its ephemeral nodes (releases a held lock).
            let _ = client.close().await;
            rec
        });
    }
    let mut recs = Vec::new();
    while let Some(j) = set.join_next().await {
        if let Ok(rec) = j {
            recs.push(rec);
        }
    }
    marks.abort();
    report.client_cpu_s = cpu_task.await.unwrap_or(0.0);
    let merged = Recorder::merge_all(1, &recs);
    report.fill_from(&merged, &[], cfg.duration);
    crate::run::mark_window(
        &mut report,
        win.measure_from,
        win.measure_from + cfg.duration,
    );

    let admin = if cfg.keep {
        admin
    } else {
        progress.set_phase(Phase::Cleanup);
        let t = Instant::now();
        let admin = delete_tree(admin, &cfg.prefix, stall).await?;
        report.cleanup_s = t.elapsed().as_secs_f64();
        admin
    };
    close_all(vec![admin]).await;
    report.client_cpu_total_s = process_cpu_seconds() - cpu0;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_the_last_ten_digits() {
        assert_eq!(sequence_of("lock-0000000042"), Some(42));
        assert_eq!(sequence_of("_c_abc-lock-0000000007"), Some(7));
        assert_eq!(sequence_of("short"), None);
        assert_eq!(sequence_of("lock-00000000x1"), None);
    }

    #[test]
    fn round_gate_stops_everyone_after_the_same_round() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(10);
        let g = RoundGate::new(end);
        assert!(g.may_start(0, t0));
        assert!(g.may_start(1, t0)); // a fast participant is in round 1
        assert!(g.may_start(0, t0)); // a slow one still starts round 0
                                     // The deadline passes: round 1 was started, so it is the last one for everybody.
        assert!(!g.may_start(2, end));
        assert!(g.may_start(1, end));
        assert!(g.may_start(1, end + Duration::from_secs(1)));
        assert!(!g.may_start(2, end + Duration::from_secs(1)));
    }

    #[test]
    fn client_errors_map_to_codes() {
        assert_eq!(client_error_code(&ClientError::ConnectionLoss), -4);
        assert_eq!(
            client_error_code(&ClientError::Server(ErrorCode::NoNode)),
            -101
        );
        assert_eq!(client_error_code(&ClientError::UnknownCode(-77)), -77);
        assert_eq!(client_error_code(&ClientError::Timeout), -7);
    }
}
