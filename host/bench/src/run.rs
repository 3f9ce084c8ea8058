//! The runs: connect the sessions, set up what the workload needs under the prefix, run it, clean
//! up, and fill the [`Report`]. Throughput workloads and `populate` use the lean pipelined path
//! ([`crate::engine`]); `lock` and `barrier` run their recipes over `wazoo-client` sessions
//! ([`crate::recipes`]); `failover` is in [`crate::failover`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use wazoo_proto::ErrorCode;

use crate::args::{Config, Workload};
use crate::cpu::process_cpu_seconds;
use crate::engine::{
    pump, push_num, Feed, Job, JobFeed, JobFn, Layout, ListFeed, OpFeed, OpKind, PathFeed, Window,
    POPULATE_FANOUT,
};
use crate::error::BenchError;
use crate::progress::{Phase, Progress};
use crate::stats::{PopulateReport, Recorder, Report};
use crate::wire::Conn;

/// How long a session may wait for any reply before the run gives up on it.
pub fn stall_limit(cfg: &Config) -> Duration {
    (cfg.session_timeout * 2).max(Duration::from_secs(10))
}

pub(crate) fn connect_timeout(cfg: &Config) -> Duration {
    cfg.session_timeout
        .clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// An empty report for `cfg`, to be filled by the run.
pub fn blank_report(cfg: &Config) -> Report {
    Report {
        workload: cfg.workload.name(),
        unit: cfg.workload.unit().to_string(),
        servers: cfg.servers.clone(),
        sessions: match cfg.workload {
            Workload::Barrier => cfg.participants,
            _ => cfg.sessions,
        },
        inflight: match cfg.workload {
            Workload::Lock | Workload::Barrier | Workload::Failover => 1,
            _ => cfg.inflight,
        },
        rate: cfg.rate,
        payload: cfg.payload,
        prefix: cfg.prefix.clone(),
        warmup_s: if cfg.workload.is_timed() {
            cfg.warmup.as_secs_f64()
        } else {
            0.0
        },
        duration_s: 0.0,
        ops: 0,
        ops_per_sec: 0.0,
        completed: 0,
        latency_ms: None,
        classes: BTreeMap::new(),
        errors: BTreeMap::new(),
        errors_total: 0,
        client_cpu_s: 0.0,
        client_cpu_total_s: 0.0,
        client_cpu_us_per_op: 0.0,
        setup_s: 0.0,
        cleanup_s: 0.0,
        window_start_unix: 0.0,
        window_end_unix: 0.0,
        populate: None,
        failover: None,
    }
}

/// The wall-clock time (Unix seconds) of a monotonic instant.
pub fn unix_at(t: Instant) -> f64 {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let now = Instant::now();
    if t >= now {
        now_unix + (t - now).as_secs_f64()
    } else {
        now_unix - (now - t).as_secs_f64()
    }
}

/// Records the window's wall-clock span in the report.
pub(crate) fn mark_window(report: &mut Report, from: Instant, to: Instant) {
    report.window_start_unix = unix_at(from);
    report.window_end_unix = unix_at(to);
}

/// Opens `n` sessions, spread round-robin over the servers, all at once.
pub(crate) async fn connect_all(cfg: &Config, n: usize) -> Result<Vec<Conn>, BenchError> {
    let mut set = JoinSet::new();
    for sid in 0..n {
        let addr = cfg.servers[sid % cfg.servers.len()].clone();
        let st = cfg.session_timeout;
        let ct = connect_timeout(cfg);
        set.spawn(async move { (sid, Conn::connect(&addr, st, ct).await) });
    }
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    while let Some(j) = set.join_next().await {
        let (sid, r) = j.map_err(|e| BenchError::Protocol(format!("connect task: {e}")))?;
        conns[sid] = Some(r?);
    }
    Ok(conns.into_iter().flatten().collect())
}

/// Opens one session to the first server that accepts it.
pub(crate) async fn connect_any(cfg: &Config) -> Result<Conn, BenchError> {
    let mut last = None;
    for addr in &cfg.servers {
        match Conn::connect(addr, cfg.session_timeout, connect_timeout(cfg)).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| BenchError::Arg("no servers".into())))
}

/// What one session's phase ended with.
pub(crate) struct Done<F> {
    pub sid: usize,
    pub conn: Conn,
    pub feed: F,
    pub rec: Recorder,
    pub err: Option<BenchError>,
}

/// Runs `feeds[i]` on `conns[i]`, all sessions concurrently; results in session order.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_phase<F: Feed>(
    conns: Vec<Conn>,
    feeds: Vec<F>,
    inflight: usize,
    win: Window,
    classes: usize,
    accept: &'static [i32],
    progress: &Progress,
    stall: Duration,
) -> Vec<Done<F>> {
    let mut set = JoinSet::new();
    let n = conns.len();
    for (sid, (mut conn, mut feed)) in conns.into_iter().zip(feeds).enumerate() {
        let done = progress.done.clone();
        let win = win.staggered(sid, n);
        set.spawn(async move {
            let mut rec = Recorder::new(classes);
            let r = pump(
                &mut conn, &mut feed, inflight, win, &mut rec, accept, &done, stall,
            )
            .await;
            Done {
                sid,
                conn,
                feed,
                rec,
                err: r.err(),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(j) = set.join_next().await {
        if let Ok(d) = j {
            out.push(d);
        }
    }
    out.sort_by_key(|d| d.sid);
    out
}

const NODE_EXISTS: &[i32] = &[ErrorCode::NodeExists as i32];
const NO_NODE: &[i32] = &[ErrorCode::NoNode as i32];

/// Splits a measured phase's sessions into their feeds, recorders and the connections still
/// usable; a session that failed is reported on stderr and its connection dropped.
#[allow(clippy::type_complexity)]
fn measured_sessions<F>(done: Vec<Done<F>>) -> (Vec<F>, Vec<Recorder>, Vec<Conn>) {
    let mut feeds = Vec::with_capacity(done.len());
    let mut recs = Vec::with_capacity(done.len());
    let mut conns = Vec::new();
    for d in done {
        feeds.push(d.feed);
        recs.push(d.rec);
        match d.err {
            None => conns.push(d.conn),
            Some(e) => eprintln!("wazoo bench: session {}: {e}", d.sid),
        }
    }
    (feeds, recs, conns)
}

/// Turns a setup/cleanup phase's failures into an error, or gives the connections back.
fn phase_ok<F>(what: &str, done: Vec<Done<F>>) -> Result<Vec<Conn>, BenchError> {
    let mut conns = Vec::with_capacity(done.len());
    let mut rec = Recorder::new(1);
    for d in done {
        if let Some(e) = d.err {
            return Err(BenchError::Protocol(format!("{what}: {e}")));
        }
        rec.merge(&d.rec);
        conns.push(d.conn);
    }
    if rec.errors_total() > 0 {
        let list: Vec<String> = rec
            .named_errors()
            .into_iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect();
        return Err(BenchError::Server {
            what: what.to_string(),
            code: list.join(", "),
        });
    }
    Ok(conns)
}

/// Runs an ordered list of creates/deletes on one session (pipelined; a session's requests are
/// handled in order, so parents may precede their children in the list).
pub(crate) async fn run_paths(
    conn: Conn,
    what: &str,
    paths: Vec<(String, Job)>,
    data: Arc<Vec<u8>>,
    accept: &'static [i32],
    stall: Duration,
) -> Result<Conn, BenchError> {
    let done = run_phase(
        vec![conn],
        vec![PathFeed::new(paths, data)],
        64,
        Window::untimed(),
        1,
        accept,
        &Progress::new(),
        stall,
    )
    .await;
    let mut conns = phase_ok(what, done)?;
    conns
        .pop()
        .ok_or_else(|| BenchError::Protocol(format!("{what}: session lost")))
}

/// Runs jobs `0..total` spread over all `conns`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_jobs(
    conns: Vec<Conn>,
    what: &str,
    total: u64,
    f: Arc<JobFn>,
    data: Arc<Vec<u8>>,
    inflight: usize,
    accept: &'static [i32],
    progress: &Progress,
    stall: Duration,
) -> Result<Vec<Conn>, BenchError> {
    if total == 0 {
        return Ok(conns);
    }
    let next = Arc::new(AtomicU64::new(0));
    let feeds = (0..conns.len())
        .map(|_| JobFeed::new(next.clone(), total, f.clone(), data.clone()))
        .collect();
    let done = run_phase(
        conns,
        feeds,
        inflight,
        Window::untimed(),
        1,
        accept,
        progress,
        stall,
    )
    .await;
    phase_ok(what, done)
}

/// The prefix's ancestors and the prefix itself, as creates (existing ones are fine).
pub(crate) fn prefix_creates(prefix: &str) -> Vec<(String, Job)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for comp in prefix[1..].split('/') {
        cur.push('/');
        cur.push_str(comp);
        out.push((cur.clone(), Job::Create { with_data: false }));
    }
    out
}

/// Deletes `path` and everything under it: lists the tree (one getChildren per node), then
/// deletes it bottom-up, pipelined on one session. A missing node is fine.
/// Cleanup: deletes the `total` nodes whose paths `paths` generates (whatever job it returns),
/// pipelined like the workload; nodes already gone are fine.
async fn delete_generated(
    conns: Vec<Conn>,
    total: u64,
    paths: Arc<JobFn>,
    data: Arc<Vec<u8>>,
    cfg: &Config,
    progress: &Progress,
    stall: Duration,
) -> Result<Vec<Conn>, BenchError> {
    let delete: Arc<JobFn> = Arc::new(move |i, p: &mut String| {
        paths(i, p);
        Job::Delete
    });
    run_jobs(
        conns,
        "cleanup",
        total,
        delete,
        data,
        cfg.inflight,
        NO_NODE,
        progress,
        stall,
    )
    .await
}

/// Cleanup: deletes whatever is left under the run's prefix, and the prefix itself.
async fn delete_prefix(
    mut conns: Vec<Conn>,
    cfg: &Config,
    stall: Duration,
) -> Result<Vec<Conn>, BenchError> {
    let first = conns.remove(0);
    conns.insert(0, delete_tree(first, &cfg.prefix, stall).await?);
    Ok(conns)
}

pub(crate) async fn delete_tree(
    mut conn: Conn,
    path: &str,
    stall: Duration,
) -> Result<Conn, BenchError> {
    let mut preorder = Vec::new();
    let mut stack = vec![path.to_string()];
    while let Some(p) = stack.pop() {
        let mut done = run_phase(
            vec![conn],
            vec![ListFeed::new(p.clone())],
            1,
            Window::untimed(),
            1,
            NO_NODE,
            &Progress::new(),
            stall,
        )
        .await;
        let d = done
            .pop()
            .ok_or_else(|| BenchError::Protocol("cleanup: session lost".into()))?;
        if let Some(e) = d.err {
            return Err(BenchError::Protocol(format!("cleanup: listing {p}: {e}")));
        }
        conn = d.conn;
        if d.feed.err != 0 {
            continue; // gone already
        }
        for c in &d.feed.children {
            stack.push(format!("{}/{c}", if p == "/" { "" } else { &p }));
        }
        preorder.push(p);
    }
    preorder.reverse();
    let deletes = preorder.into_iter().map(|p| (p, Job::Delete)).collect();
    run_paths(
        conn,
        "cleanup",
        deletes,
        Arc::new(Vec::new()),
        NO_NODE,
        stall,
    )
    .await
}

/// Maps a global index over per-session counts to (session, n).
pub fn split_index(cum: &[u64], i: u64) -> (usize, u64) {
    // cum[s] = number of items of sessions 0..s (exclusive prefix sums), cum.len() = sessions + 1.
    let s = cum.partition_point(|&c| c <= i) - 1;
    (s, i - cum[s])
}

/// The data of the keys created before a run (and of each create or setData): the payload,
/// or for the `recipe` workload a counter at 0 (8 little-endian bytes), which the counter recipe
/// adds to. With the payload there, every add aborted "not a counter" and wrote nothing.
fn key_data(kind: OpKind, payload: usize) -> Vec<u8> {
    match kind {
        OpKind::Recipe => 0u64.to_le_bytes().to_vec(),
        _ => vec![b'x'; payload],
    }
}

fn op_kind(w: Workload) -> Option<OpKind> {
    Some(match w {
        Workload::Create => OpKind::Create,
        Workload::Set => OpKind::Set,
        Workload::Get => OpKind::Get,
        Workload::Exists => OpKind::Exists,
        Workload::Children => OpKind::Children,
        Workload::Mix { read_pct } => OpKind::Mix(read_pct),
        Workload::Multi => OpKind::Multi,
        Workload::MultiSet => OpKind::MultiSet,
        Workload::Recipe => OpKind::Recipe,
        _ => return None,
    })
}

/// Samples this process's CPU time at the start and at the end of the window.
pub(crate) fn spawn_cpu_window(win: Window) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        tokio::time::sleep_until(win.measure_from).await;
        let a = process_cpu_seconds();
        if let Some(end) = win.end {
            tokio::time::sleep_until(end).await;
        }
        process_cpu_seconds() - a
    })
}

/// Sets the progress phase at the warm-up end and the window end.
pub(crate) fn spawn_phase_marks(progress: &Progress, win: Window) -> tokio::task::JoinHandle<()> {
    let p = progress.clone();
    tokio::spawn(async move {
        p.set_phase(Phase::Warmup);
        tokio::time::sleep_until(win.measure_from).await;
        p.set_phase(Phase::Measure);
        if let Some(end) = win.end {
            tokio::time::sleep_until(end).await;
            p.set_phase(Phase::Drain);
        }
    })
}

/// The timed throughput workloads: create, set, get, exists, children, mix, multi.
pub async fn run_throughput(cfg: &Config, progress: &Progress) -> Result<Report, BenchError> {
    let kind = op_kind(cfg.workload).ok_or_else(|| {
        BenchError::Arg(format!(
            "{} is not a throughput workload",
            cfg.workload.name()
        ))
    })?;
    let cpu0 = process_cpu_seconds();
    let stall = stall_limit(cfg);
    let layout = Layout {
        prefix: cfg.prefix.clone(),
    };
    let data = Arc::new(key_data(kind, cfg.payload));
    let mut report = blank_report(cfg);

    progress.set_phase(Phase::Connect);
    let setup_start = Instant::now();
    let mut conns = connect_all(cfg, cfg.sessions).await?;

    // Parents in order on the first session, then the bulk nodes over all sessions.
    progress.set_phase(Phase::Setup);
    let mut paths = prefix_creates(&cfg.prefix);
    let dirs: Vec<String> = match kind {
        OpKind::Create => vec![layout.create_dir()],
        OpKind::Children => vec![layout.list_dir()],
        OpKind::Multi => vec![layout.key_dir(), layout.multi_dir()],
        _ => vec![layout.key_dir()],
    };
    paths.extend(
        dirs.iter()
            .map(|d| (d.clone(), Job::Create { with_data: false })),
    );
    let first = conns.remove(0);
    let first = run_paths(first, "setup", paths, data.clone(), NODE_EXISTS, stall).await?;
    conns.insert(0, first);
    let bulk: Option<(u64, Arc<JobFn>)> = match kind {
        OpKind::Create => None,
        OpKind::Children => {
            let base = layout.list_base();
            Some((
                cfg.children,
                Arc::new(move |i, p: &mut String| {
                    p.push_str(&base);
                    push_num(p, i);
                    Job::Create { with_data: false }
                }),
            ))
        }
        _ => {
            let base = layout.key_base();
            Some((
                cfg.keys,
                Arc::new(move |i, p: &mut String| {
                    p.push_str(&base);
                    push_num(p, i);
                    Job::Create { with_data: true }
                }),
            ))
        }
    };
    if let Some((n, f)) = &bulk {
        conns = run_jobs(
            conns,
            "setup",
            *n,
            f.clone(),
            data.clone(),
            cfg.inflight,
            NODE_EXISTS,
            progress,
            stall,
        )
        .await?;
    }
    report.setup_s = setup_start.elapsed().as_secs_f64();

    // The run.
    let (start, win) = Window::timed(cfg.warmup, cfg.duration);
    let win = match cfg.pace {
        Some(every) => win.paced(every),
        None => win,
    };
    let cpu_task = spawn_cpu_window(win);
    let marks = spawn_phase_marks(progress, win);
    let feeds: Vec<OpFeed> = (0..conns.len())
        .map(|sid| OpFeed::new(kind, &layout, sid, data.clone(), cfg.keys))
        .collect();
    let classes = if matches!(kind, OpKind::Mix(_)) { 2 } else { 1 };
    tokio::time::sleep_until(start).await;
    let done = run_phase(
        conns,
        feeds,
        cfg.inflight,
        win,
        classes,
        &[],
        progress,
        stall,
    )
    .await;
    marks.abort();
    report.client_cpu_s = cpu_task.await.unwrap_or(0.0);

    let (feeds, recs, mut conns) = measured_sessions(done);
    let issued: Vec<u64> = feeds.iter().map(|f| f.issued).collect();
    let merged = Recorder::merge_all(classes, &recs);
    report.fill_from(&merged, &["read", "write"], cfg.duration);
    mark_window(
        &mut report,
        win.measure_from,
        win.measure_from + cfg.duration,
    );

    // Cleanup.
    if !cfg.keep {
        progress.set_phase(Phase::Cleanup);
        let t = Instant::now();
        if conns.is_empty() {
            conns = connect_all(cfg, cfg.sessions.min(4)).await?;
        }
        if matches!(kind, OpKind::Create | OpKind::Multi) {
            let mut cum = vec![0u64];
            for n in &issued {
                cum.push(cum.last().unwrap() + n);
            }
            let total = *cum.last().unwrap();
            let bases: Vec<String> = (0..issued.len())
                .map(|sid| match kind {
                    OpKind::Create => layout.create_base(sid),
                    _ => layout.multi_base(sid),
                })
                .collect();
            let f: Arc<JobFn> = Arc::new(move |i, p: &mut String| {
                let (s, n) = split_index(&cum, i);
                p.push_str(&bases[s]);
                push_num(p, n);
                Job::Delete
            });
            conns = delete_generated(conns, total, f, data.clone(), cfg, progress, stall).await?;
        }
        if let Some((n, f)) = bulk {
            conns = delete_generated(conns, n, f, data.clone(), cfg, progress, stall).await?;
        }
        conns = delete_prefix(conns, cfg, stall).await?;
        report.cleanup_s = t.elapsed().as_secs_f64();
    }
    close_all(conns).await;
    report.client_cpu_total_s = process_cpu_seconds() - cpu0;
    Ok(report)
}

/// Closes the sessions politely (closeSession), all at once.
pub(crate) async fn close_all(conns: Vec<Conn>) {
    let mut set = JoinSet::new();
    for c in conns {
        set.spawn(c.close(Duration::from_secs(5)));
    }
    while set.join_next().await.is_some() {}
}

/// `populate`: `count` znodes of `payload` bytes under `<prefix>/d<i/1000>/n<i>`.
pub async fn run_populate(cfg: &Config, progress: &Progress) -> Result<Report, BenchError> {
    let cpu0 = process_cpu_seconds();
    let stall = stall_limit(cfg);
    let layout = Layout {
        prefix: cfg.prefix.clone(),
    };
    let data = Arc::new(vec![b'x'; cfg.payload]);
    let mut report = blank_report(cfg);

    progress.set_phase(Phase::Connect);
    let setup_start = Instant::now();
    let mut conns = connect_all(cfg, cfg.sessions).await?;
    progress.set_phase(Phase::Setup);
    let first = conns.remove(0);
    let first = run_paths(
        first,
        "setup",
        prefix_creates(&cfg.prefix),
        data.clone(),
        NODE_EXISTS,
        stall,
    )
    .await?;
    conns.insert(0, first);
    let buckets = cfg.count.div_ceil(POPULATE_FANOUT);
    let l2 = layout.clone();
    let dir_fn: Arc<JobFn> = Arc::new(move |b, p: &mut String| {
        l2.populate_dir(b, p);
        Job::Create { with_data: false }
    });
    conns = run_jobs(
        conns,
        "setup",
        buckets,
        dir_fn.clone(),
        data.clone(),
        cfg.inflight,
        NODE_EXISTS,
        progress,
        stall,
    )
    .await?;
    report.setup_s = setup_start.elapsed().as_secs_f64();

    progress.set_phase(Phase::Populate);
    let cpu_a = process_cpu_seconds();
    let start = Instant::now();
    let l3 = layout.clone();
    let node_fn: Arc<JobFn> = Arc::new(move |i, p: &mut String| {
        l3.populate_path(i, p);
        Job::Create { with_data: true }
    });
    let next = Arc::new(AtomicU64::new(0));
    let feeds = (0..conns.len())
        .map(|_| JobFeed::new(next.clone(), cfg.count, node_fn.clone(), data.clone()))
        .collect();
    let win = Window::untimed_from(start);
    let done = run_phase(conns, feeds, cfg.inflight, win, 1, &[], progress, stall).await;
    let total = start.elapsed();
    report.client_cpu_s = process_cpu_seconds() - cpu_a;
    let (_, recs, mut conns) = measured_sessions(done);
    let merged = Recorder::merge_all(1, &recs);
    report.fill_from(&merged, &[], total);
    mark_window(&mut report, start, start + total);
    let mut probe = String::new();
    layout.populate_path(0, &mut probe);
    report.populate = Some(PopulateReport {
        count: cfg.count,
        total_s: total.as_secs_f64(),
        probe_path: probe,
    });

    if !cfg.keep {
        progress.set_phase(Phase::Cleanup);
        let t = Instant::now();
        if conns.is_empty() {
            conns = connect_all(cfg, cfg.sessions.min(4)).await?;
        }
        conns = delete_generated(
            conns,
            cfg.count,
            node_fn,
            data.clone(),
            cfg,
            progress,
            stall,
        )
        .await?;
        conns = delete_prefix(conns, cfg, stall).await?;
        report.cleanup_s = t.elapsed().as_secs_f64();
    }
    close_all(conns).await;
    report.client_cpu_total_s = process_cpu_seconds() - cpu0;
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recipe_workloads_keys_are_counters_and_the_others_hold_the_payload() {
        use super::{key_data, OpKind};
        assert_eq!(key_data(OpKind::Recipe, 100), vec![0u8; 8]);
        assert_eq!(key_data(OpKind::Set, 3), b"xxx".to_vec());
        assert_eq!(key_data(OpKind::Get, 0), Vec::<u8>::new());
    }

    use super::*;

    #[test]
    fn split_index_maps_global_to_session() {
        // sessions with 3, 0, 2 items
        let cum = [0, 3, 3, 5];
        assert_eq!(split_index(&cum, 0), (0, 0));
        assert_eq!(split_index(&cum, 2), (0, 2));
        assert_eq!(split_index(&cum, 3), (2, 0));
        assert_eq!(split_index(&cum, 4), (2, 1));
    }

    #[test]
    fn prefix_creates_walk_down_from_the_root() {
        let p: Vec<String> = prefix_creates("/a/b/c").into_iter().map(|x| x.0).collect();
        assert_eq!(p, vec!["/a", "/a/b", "/a/b/c"]);
    }
}
