//! The pipelined session loop ([`pump`]) and what feeds it: one [`Feed`] per session produces the
//! next request straight into the connection's write buffer. A session keeps up to `inflight`
//! requests outstanding, writes every request it can in one syscall, reads whatever replies have
//! arrived, and refills. Replies are matched in order (the server answers a session in order).
//!
//! Time: a [`Window`] says from when completions count (after the warm-up) and when to stop
//! issuing; replies that arrive after the end are drained but not counted. Latency is from the
//! write of the batch holding the request to the read of the batch holding its reply.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::BenchError;
use crate::stats::Recorder;
use crate::wire::{reply_header, Conn, Encoder};

/// When completions count and when issuing stops.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Completions at or after this instant are recorded.
    pub measure_from: Instant,
    /// No new request after this instant; completions after it are not recorded. `None`: run
    /// until the feed is exhausted.
    pub end: Option<Instant>,
    /// Open-loop pacing: each session sends one request per this interval (still at most
    /// `inflight` outstanding), and latency counts from when a request was due, so a slow server
    /// is not hidden by the client waiting for it (no coordinated omission). `None`: closed loop.
    pub pace: Option<Duration>,
    /// Delay of this session's first paced request, so that sessions spread their sends over the
    /// interval instead of sending in step (see [`Window::staggered`]).
    pub pace_phase: Duration,
}

impl Window {
    /// A timed run starting in 5 ms (time for every session to be ready): `warmup` unrecorded,
    /// then `duration` recorded. Returns the start instant and the window.
    pub fn timed(warmup: Duration, duration: Duration) -> (Instant, Window) {
        let start = Instant::now() + Duration::from_millis(5);
        let win = Window {
            measure_from: start + warmup,
            end: Some(start + warmup + duration),
            pace: None,
            pace_phase: Duration::ZERO,
        };
        (start, win)
    }

    /// This window with each session sending one request per `every`.
    pub fn paced(self, every: Duration) -> Window {
        Window {
            pace: Some(every),
            ..self
        }
    }

    /// The window of session `sid` of `n`: its paced sends start `sid / n` of an interval late, so
    /// that the sessions together send evenly rather than `n` requests at once.
    pub fn staggered(self, sid: usize, n: usize) -> Window {
        let Some(every) = self.pace else {
            return self;
        };
        Window {
            pace_phase: every.mul_f64(sid as f64 / n.max(1) as f64),
            ..self
        }
    }

    /// A window that records everything until the feed runs out.
    pub fn untimed() -> Window {
        Window::untimed_from(Instant::now())
    }

    /// A window that records everything from `start` until the feed runs out.
    pub fn untimed_from(start: Instant) -> Window {
        Window {
            measure_from: start,
            end: None,
            pace: None,
            pace_phase: Duration::ZERO,
        }
    }

    #[inline]
    pub fn counts(&self, t: Instant) -> bool {
        t >= self.measure_from && self.end.is_none_or(|e| t <= e)
    }

    #[inline]
    pub fn issuing(&self, t: Instant) -> bool {
        self.end.is_none_or(|e| t < e)
    }
}

/// A session's send schedule under [`Window::pace`]: request `i` is due at `first + i * every`.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    next: Instant,
    every: Duration,
}

impl Pacer {
    pub fn new(first: Instant, every: Duration) -> Pacer {
        Pacer { next: first, every }
    }

    /// The due time of the next request if it is due at `now` (and moves on to the one after);
    /// requests that fell behind (all `inflight` slots were busy) come out one by one with their
    /// own, earlier due times.
    pub fn take(&mut self, now: Instant) -> Option<Instant> {
        if self.next > now {
            return None;
        }
        let due = self.next;
        self.next += self.every;
        Some(due)
    }

    /// When the next request is due.
    pub fn next_at(&self) -> Instant {
        self.next
    }
}

/// Produces a session's requests.
pub trait Feed: Send + 'static {
    /// Appends the next request (with `xid`) to `buf` and returns its class (an index into the
    /// recorder's histograms), or `None` when there is nothing more to send.
    fn next(&mut self, xid: i32, buf: &mut Vec<u8>) -> Option<u8>;

    /// Sees each reply; `body` is the reply body (empty for an error reply).
    fn on_reply(&mut self, _class: u8, _err: i32, _body: &[u8]) {}

    /// Whether a reply without an error code failed all the same (an aborted recipe call):
    /// it is counted as [`crate::stats::RECIPE_ABORTED`], not as an operation.
    fn failed(&self, _class: u8, _body: &[u8]) -> bool {
        false
    }
}

/// A session's loop: keeps `inflight` requests outstanding until the window ends or the feed is
/// exhausted, then drains. Error replies whose code is in `accept` count as successes (setup's
/// NODEEXISTS, cleanup's NONODE). On a broken connection every request in flight is recorded as
/// CONNECTIONLOSS and the error is returned.
#[allow(clippy::too_many_arguments)]
pub async fn pump<F: Feed>(
    conn: &mut Conn,
    feed: &mut F,
    inflight: usize,
    win: Window,
    rec: &mut Recorder,
    accept: &[i32],
    progress: &AtomicU64,
    stall: Duration,
) -> Result<(), BenchError> {
    let mut pending: VecDeque<(i32, Instant, u8)> = VecDeque::with_capacity(inflight);
    let mut exhausted = false;
    let mut pacer = win
        .pace
        .map(|every| Pacer::new(Instant::now() + win.pace_phase, every));
    let result = loop {
        let now = Instant::now();
        let issuing = !exhausted && win.issuing(now);
        if issuing {
            while pending.len() < inflight {
                // Latency counts from when the request was due (open loop) or from now.
                let sent = match pacer.as_mut() {
                    None => now,
                    Some(p) => match p.take(now) {
                        Some(due) => due,
                        None => break,
                    },
                };
                let xid = conn.xid();
                match feed.next(xid, &mut conn.wbuf) {
                    Some(class) => pending.push_back((xid, sent, class)),
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
        }
        if let Err(e) = conn.flush().await {
            break Err(BenchError::Protocol(format!("{}: write: {e}", conn.addr)));
        }
        // Paced and a slot free: wait for replies only until the next request is due.
        let due = pacer
            .as_ref()
            .filter(|_| issuing && pending.len() < inflight)
            .map(Pacer::next_at);
        if pending.is_empty() {
            match due {
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    continue;
                }
                None => break Ok(()),
            }
        }
        let filled = match due {
            // `fill` only loses its read when dropped, which is cancel-safe.
            Some(at) => match tokio::time::timeout_at(at, conn.fill(stall)).await {
                Ok(r) => r,
                Err(_) => continue,
            },
            None => conn.fill(stall).await,
        };
        match filled {
            Ok(true) => {}
            Ok(false) => {
                break Err(BenchError::Protocol(format!(
                    "{}: the server closed the connection",
                    conn.addr
                )))
            }
            Err(e) => break Err(e),
        }
        let now = Instant::now();
        let counts = win.counts(now);
        let mut bad = None;
        loop {
            let (s, e) = match conn.next_frame() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            };
            let frame = &conn.rbuf[s..e];
            let Some(h) = reply_header(frame) else {
                bad = Some(BenchError::Protocol("short reply".into()));
                break;
            };
            if h.xid == -1 || h.xid == -2 {
                continue; // a watch notification or a ping reply
            }
            let Some((xid, sent, class)) = pending.pop_front() else {
                bad = Some(BenchError::Protocol(format!(
                    "{}: reply xid {} with nothing pending",
                    conn.addr, h.xid
                )));
                break;
            };
            if xid != h.xid {
                bad = Some(BenchError::Protocol(format!(
                    "{}: reply xid {} where {xid} was expected",
                    conn.addr, h.xid
                )));
                break;
            }
            let failed = h.err == 0 && feed.failed(class, &frame[16..]);
            if (h.err == 0 && !failed) || accept.contains(&h.err) {
                if counts {
                    rec.ok(
                        class as usize,
                        u64::try_from((now - sent).as_nanos()).unwrap_or(u64::MAX),
                    );
                } else {
                    rec.ok_unmeasured();
                }
            } else if failed {
                rec.error(crate::stats::RECIPE_ABORTED);
            } else {
                rec.error(h.err);
            }
            feed.on_reply(class, h.err, &frame[16..]);
            progress.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(e) = bad {
            break Err(e);
        }
    };
    if result.is_err() {
        for _ in pending.drain(..) {
            rec.error(wazoo_proto::ErrorCode::ConnectionLoss.code());
        }
    }
    result
}

/// A small, fast PRNG (xorshift64*), seeded per session.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Appends `n` in decimal to `s` without allocating.
#[inline]
pub fn push_num(s: &mut String, n: u64) {
    let _ = write!(s, "{n}");
}

/// The znode names a workload uses under its prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
}

impl Layout {
    /// Parent of the nodes the `create` workload makes.
    pub fn create_dir(&self) -> String {
        format!("{}/c", self.prefix)
    }
    /// `create` node `n` of session `sid`.
    pub fn create_base(&self, sid: usize) -> String {
        format!("{}/c/s{sid}-", self.prefix)
    }
    /// Parent of the key space.
    pub fn key_dir(&self) -> String {
        format!("{}/k", self.prefix)
    }
    /// Key `i` is `key_base() + i`.
    pub fn key_base(&self) -> String {
        format!("{}/k/", self.prefix)
    }
    /// The node listed by `children`.
    pub fn list_dir(&self) -> String {
        format!("{}/l", self.prefix)
    }
    pub fn list_base(&self) -> String {
        format!("{}/l/", self.prefix)
    }
    /// Parent of the nodes created by `multi`.
    pub fn multi_dir(&self) -> String {
        format!("{}/m", self.prefix)
    }
    pub fn multi_base(&self, sid: usize) -> String {
        format!("{}/m/s{sid}-", self.prefix)
    }
    /// `populate` node `i`: `<prefix>/d<i / 1000>/n<i>`.
    pub fn populate_path(&self, i: u64, out: &mut String) {
        out.clear();
        out.push_str(&self.prefix);
        out.push_str("/d");
        push_num(out, i / POPULATE_FANOUT);
        out.push_str("/n");
        push_num(out, i);
    }
    pub fn populate_dir(&self, bucket: u64, out: &mut String) {
        out.clear();
        out.push_str(&self.prefix);
        out.push_str("/d");
        push_num(out, bucket);
    }
    pub fn lock_dir(&self) -> String {
        format!("{}/lock", self.prefix)
    }
    pub fn barrier_dir(&self) -> String {
        format!("{}/barrier", self.prefix)
    }
    pub fn ready_dir(&self) -> String {
        format!("{}/ready", self.prefix)
    }
}

/// Children per parent in `populate` (keeps every getChildren reply small).
pub const POPULATE_FANOUT: u64 = 1000;

/// The request of a throughput workload, per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Set,
    Get,
    Exists,
    Children,
    /// getData with this probability in percent, else setData.
    Mix(u8),
    Multi,
    /// A multi of one 8-byte setData on a random key.
    MultiSet,
    /// The counter recipe's add of 1 on a random key.
    Recipe,
}

/// Issues the throughput workloads' requests for one session.
pub struct OpFeed {
    kind: OpKind,
    data: Arc<Vec<u8>>,
    keys: u64,
    rng: Rng,
    /// Requests issued so far (the create/multi node numbers are `0..issued`).
    pub issued: u64,
    base: String,
    key_base: String,
    list_dir: String,
    path: String,
    path2: String,
}

impl OpFeed {
    pub fn new(kind: OpKind, layout: &Layout, sid: usize, data: Arc<Vec<u8>>, keys: u64) -> Self {
        let base = match kind {
            OpKind::Create => layout.create_base(sid),
            OpKind::Multi => layout.multi_base(sid),
            _ => String::new(),
        };
        OpFeed {
            kind,
            data,
            keys: keys.max(1),
            rng: Rng::new(sid as u64 + 1),
            issued: 0,
            base,
            key_base: layout.key_base(),
            list_dir: layout.list_dir(),
            path: String::with_capacity(128),
            path2: String::with_capacity(128),
        }
    }

    fn key_path(&mut self) {
        let k = self.rng.below(self.keys);
        self.path.clear();
        self.path.push_str(&self.key_base);
        push_num(&mut self.path, k);
    }
}

/// Class indices of `mix`.
pub const CLASS_READ: u8 = 0;
pub const CLASS_WRITE: u8 = 1;

impl Feed for OpFeed {
    /// A recipe call's reply body starts with its `aborted` flag (an int).
    fn failed(&self, _class: u8, body: &[u8]) -> bool {
        if self.kind != OpKind::Recipe {
            return false;
        }
        body.get(..4)
            .is_none_or(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]) != 0)
    }

    #[inline]
    fn next(&mut self, xid: i32, buf: &mut Vec<u8>) -> Option<u8> {
        let n = self.issued;
        self.issued += 1;
        match self.kind {
            OpKind::Create => {
                self.path.clear();
                self.path.push_str(&self.base);
                push_num(&mut self.path, n);
                Encoder::new(buf).create(xid, &self.path, &self.data, 0);
                Some(0)
            }
            OpKind::Set => {
                self.key_path();
                let mut e = Encoder::new(buf);
                e.set_data(xid, &self.path, &self.data);
                Some(0)
            }
            OpKind::Get => {
                self.key_path();
                let mut e = Encoder::new(buf);
                e.get_data(xid, &self.path);
                Some(0)
            }
            OpKind::Exists => {
                self.key_path();
                let mut e = Encoder::new(buf);
                e.exists(xid, &self.path);
                Some(0)
            }
            OpKind::Children => {
                Encoder::new(buf).get_children(xid, &self.list_dir);
                Some(0)
            }
            OpKind::Mix(read_pct) => {
                let read = self.rng.below(100) < read_pct as u64;
                self.key_path();
                let mut e = Encoder::new(buf);
                if read {
                    e.get_data(xid, &self.path);
                    Some(CLASS_READ)
                } else {
                    e.set_data(xid, &self.path, &self.data);
                    Some(CLASS_WRITE)
                }
            }
            OpKind::MultiSet => {
                self.key_path();
                Encoder::new(buf).multi_set(xid, &self.path, &1i64.to_le_bytes());
                Some(0)
            }
            OpKind::Recipe => {
                self.key_path();
                let args = crate::recipes::counter_add_args(&self.path, 1);
                Encoder::new(buf).recipe_call(xid, "counter", "add", &args);
                Some(0)
            }
            OpKind::Multi => {
                self.path2.clear();
                self.path2.push_str(&self.base);
                push_num(&mut self.path2, n);
                self.key_path();
                let mut e = Encoder::new(buf);
                e.multi_create_set(xid, &self.path2, &self.path, &self.data);
                Some(0)
            }
        }
    }
}

/// One request of a setup or cleanup job list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// create with the payload (`with_data`) or empty, persistent.
    Create {
        with_data: bool,
    },
    Delete,
}

/// Maps job index → (path, what to do).
pub type JobFn = dyn Fn(u64, &mut String) -> Job + Send + Sync;

/// Hands out the jobs `0..total` of a shared list to every session that pumps it.
pub struct JobFeed {
    next: Arc<AtomicU64>,
    total: u64,
    f: Arc<JobFn>,
    data: Arc<Vec<u8>>,
    path: String,
}

impl JobFeed {
    pub fn new(next: Arc<AtomicU64>, total: u64, f: Arc<JobFn>, data: Arc<Vec<u8>>) -> Self {
        JobFeed {
            next,
            total,
            f,
            data,
            path: String::with_capacity(128),
        }
    }
}

impl Feed for JobFeed {
    #[inline]
    fn next(&mut self, xid: i32, buf: &mut Vec<u8>) -> Option<u8> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.total {
            return None;
        }
        self.path.clear();
        let job = (self.f)(i, &mut self.path);
        let mut e = Encoder::new(buf);
        match job {
            Job::Create { with_data } => {
                let data: &[u8] = if with_data { &self.data } else { &[] };
                e.create(xid, &self.path, data, 0)
            }
            Job::Delete => e.delete(xid, &self.path),
        }
        Some(0)
    }
}

/// A list of paths handled in order on one session (parents before children).
pub struct PathFeed {
    paths: VecDeque<(String, Job)>,
    data: Arc<Vec<u8>>,
}

impl PathFeed {
    pub fn new(paths: Vec<(String, Job)>, data: Arc<Vec<u8>>) -> Self {
        PathFeed {
            paths: paths.into(),
            data,
        }
    }
}

impl Feed for PathFeed {
    fn next(&mut self, xid: i32, buf: &mut Vec<u8>) -> Option<u8> {
        let (path, job) = self.paths.pop_front()?;
        let mut e = Encoder::new(buf);
        match job {
            Job::Create { with_data } => {
                let data: &[u8] = if with_data { &self.data } else { &[] };
                e.create(xid, &path, data, 0)
            }
            Job::Delete => e.delete(xid, &path),
        }
        Some(0)
    }
}

/// Lists one node's children (one getChildren).
pub struct ListFeed {
    path: Option<String>,
    pub children: Vec<String>,
    pub err: i32,
}

impl ListFeed {
    pub fn new(path: String) -> Self {
        ListFeed {
            path: Some(path),
            children: Vec::new(),
            err: 0,
        }
    }
}

impl Feed for ListFeed {
    fn next(&mut self, xid: i32, buf: &mut Vec<u8>) -> Option<u8> {
        let p = self.path.take()?;
        Encoder::new(buf).get_children(xid, &p);
        Some(0)
    }

    fn on_reply(&mut self, _class: u8, err: i32, body: &[u8]) {
        self.err = err;
        if err == 0 {
            if let Ok(c) = crate::wire::decode_children(body) {
                self.children = c;
            }
        }
    }
}

#[cfg(test)]
#[path = "engine_test.rs"]
mod tests;
