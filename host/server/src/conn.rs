//! Client connections: the accept loop (with `maxClientCnxns` per IP and `maxCnxns` in all),
//! four-letter-word detection on the first 4 bytes, the handshake frame (within
//! `nio.sessionlessCnxnTimeout`), request framing and decoding (done here, off the core task),
//! admission into the outstanding-request budgets, and a writer task that batches everything
//! queued into one socket write.
//!
//! Bad input closes only the offending connection, with one log line saying why.
//!
//! Memory per client is bounded with backpressure, never with errors:
//! - Before reading a request's body, the connection takes its places in the budgets: one of
//!   `wazoo.maxOutstandingPerConnection`, one of `globalOutstandingLimit`, and, for a request of
//!   at least `largeRequestThreshold` bytes, its size from `largeRequestMaxBytes`. The request
//!   holds them (an [`Admission`]) until it is answered (a read) or applied (a write). At a limit
//!   the connection stops reading its socket, and TCP pushes back on the client.
//! - The core processes no further request of a connection whose queued output has reached
//!   `wazoo.maxConnectionOutputBytes` (see `wazoo-core`'s `flow`), so replies a client does not read never
//!   pile up past about one reply more than that.
//! - Output that makes no progress for the session's timeout (or `nio.sessionlessCnxnTimeout`
//!   before it is known), even after the peer has closed its side, closes the connection and
//!   frees it; a connection counts against `maxClientCnxns`/`maxCnxns` until then.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};
use wazoo_admin::fourletter::{not_whitelisted_message, FourLetterWord, Whitelist};
use wazoo_admin::metrics::Counter;
use wazoo_proto::frame::{frame_len, FrameLen};
use wazoo_proto::request::RequestError;
use wazoo_proto::{decode_request, ConnectRequest, ErrorCode};

use crate::admin_http::Published;
use crate::config::ServerConfig;
use crate::core::{mono_ms, Admission, ClientRequest, ConnId, CoreMsg};

struct Shared {
    cfg: Arc<ServerConfig>,
    /// Gauges and metrics for the four-letter words, and the connection counters.
    published: Arc<Published>,
    core: mpsc::UnboundedSender<CoreMsg>,
    whitelist: Whitelist,
    cnxns: Mutex<Cnxns>,
    /// `globalOutstandingLimit`.
    requests: Arc<Semaphore>,
    /// `largeRequestMaxBytes`.
    large_bytes: Arc<Semaphore>,
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Cnxns {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

/// A connection's place in the connection limits, held by its reader and its writer task: it is
/// given back only when both have ended, that is when the socket is closed.
struct CnxnSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for CnxnSlot {
    fn drop(&mut self) {
        let mut c = self.shared.cnxns.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// What a request holds from its receipt until it is done (a read answered, a write applied):
/// its places in the connection's and the server's outstanding-request budgets. The core keeps
/// it as an opaque [`Admission`]; dropping it gives the places back, and a connection waiting
/// for them reads on.
struct Places {
    _conn: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

impl Places {
    /// Waits for a request of `len` bytes to fit the budgets (the connection's first, so that a
    /// connection at its own limit never holds places in the global ones while it waits).
    async fn acquire(shared: &Shared, conn: &Arc<Semaphore>, len: usize) -> Admission {
        let closed = "the budgets are never closed";
        let _conn = conn.clone().acquire_owned().await.expect(closed);
        let _global = shared.requests.clone().acquire_owned().await.expect(closed);
        let _bytes = if len >= shared.cfg.large_request_threshold {
            // A request larger than the whole budget takes all of it.
            let n = len.min(shared.cfg.large_request_max_bytes) as u32;
            Some(
                shared
                    .large_bytes
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect(closed),
            )
        } else {
            None
        };
        Admission::new(Places {
            _conn,
            _global,
            _bytes,
        })
    }
}

/// Accepts client connections until the listener fails.
pub async fn accept_loop(
    listener: TcpListener,
    cfg: Arc<ServerConfig>,
    core: mpsc::UnboundedSender<CoreMsg>,
    published: Arc<Published>,
) {
    let shared = Arc::new(Shared {
        whitelist: Whitelist::parse(cfg.four_letter_whitelist.as_deref(), false),
        requests: Arc::new(Semaphore::new(cfg.global_outstanding_limit as usize)),
        large_bytes: Arc::new(Semaphore::new(cfg.large_request_max_bytes)),
        cfg,
        core,
        published,
        cnxns: Mutex::new(Cnxns::default()),
    });
    let mut next_id: ConnId = 1;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => {
                backoff = ACCEPT_BACKOFF_MIN;
                x
            }
            Err(e) => {
                // EMFILE and the like persist until connections close: back off, do not spin.
                warn!("accept failed: {e}; retrying in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Some(slot) = take_slot(&shared, remote) else {
            continue;
        };
        let id = next_id;
        next_id += 1;
        tokio::spawn(async move {
            let shared = Arc::clone(&slot.shared);
            connection(id, stream, remote, &shared, Arc::new(slot)).await;
        });
    }
}

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A place for a new connection from `remote` within `maxCnxns` and `maxClientCnxns`, or None
/// (logged; the socket is dropped, which closes it).
fn take_slot(shared: &Arc<Shared>, remote: SocketAddr) -> Option<CnxnSlot> {
    let (max_ip, max_all) = (shared.cfg.max_client_cnxns, shared.cfg.max_cnxns);
    let metrics = &shared.published.metrics;
    let mut c = shared.cnxns.lock().unwrap_or_else(|e| e.into_inner());
    if max_all > 0 && c.total >= max_all {
        warn!(%remote, limit = max_all, "too many connections (maxCnxns); closing");
        metrics.inc(Counter::ConnectionRejected);
        return None;
    }
    let n = c.per_ip.entry(remote.ip()).or_insert(0);
    if max_ip > 0 && *n >= max_ip {
        warn!(%remote, limit = max_ip, "too many connections from this address (maxClientCnxns); closing");
        metrics.inc(Counter::ConnectionRejected);
        return None;
    }
    *n += 1;
    c.total += 1;
    metrics.inc(Counter::ConnectionRequest);
    Some(CnxnSlot {
        shared: Arc::clone(shared),
        ip: remote.ip(),
    })
}

/// Reads the ConnectRequest (or a four-letter word, answered here). None: the connection is done.
async fn handshake(
    rd: &mut BufReader<OwnedReadHalf>,
    wr: &mut Option<OwnedWriteHalf>,
    remote: SocketAddr,
    shared: &Shared,
) -> Option<ConnectRequest> {
    let mut first = [0u8; 4];
    rd.read_exact(&mut first).await.ok()?;
    if let Some(cmd) = FourLetterWord::from_bytes(first) {
        four_letter(cmd, wr.take().expect("not taken yet"), shared).await;
        return None;
    }
    let max = shared.cfg.jute_max_buffer;
    let len = match frame_len(first, max) {
        FrameLen::Len(n) => n,
        FrameLen::Invalid(len) => {
            warn!(%remote, len, max, "closing connection: handshake length is negative or exceeds jute.maxbuffer");
            return None;
        }
    };
    let mut payload = vec![0u8; len];
    if rd.read_exact(&mut payload).await.is_err() {
        debug!(%remote, "connection closed during handshake");
        return None;
    }
    match ConnectRequest::decode(&payload) {
        Ok(r) => Some(r),
        Err(e) => {
            warn!(%remote, "closing connection: malformed ConnectRequest: {e}");
            None
        }
    }
}

async fn connection(
    id: ConnId,
    stream: TcpStream,
    remote: SocketAddr,
    shared: &Shared,
    slot: Arc<CnxnSlot>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = Some(wr);
    let sessionless = Duration::from_millis(shared.cfg.sessionless_cnxn_timeout_ms);
    let req = match tokio::time::timeout(sessionless, handshake(&mut rd, &mut wr, remote, shared))
        .await
    {
        Ok(Some(req)) => req,
        Ok(None) => return,
        Err(_) => {
            info!(%remote, ms = sessionless.as_millis() as u64, "closing connection: no ConnectRequest within nio.sessionlessCnxnTimeout");
            shared
                .published
                .metrics
                .inc(Counter::SessionlessConnectionsExpired);
            return;
        }
    };
    let received_ms = mono_ms();
    let out = Arc::new(ConnOut {
        wr: wr.take().expect("kept for a client connection"),
        state: Mutex::new(OutState::default()),
        wake: Notify::new(),
        last_received: AtomicI64::new(received_ms),
        queued: AtomicUsize::new(0),
        drain_wanted: AtomicBool::new(false),
        stall_ms: AtomicU64::new(shared.cfg.sessionless_cnxn_timeout_ms),
    });
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    tokio::spawn(writer(
        Arc::clone(&out),
        stop_tx,
        id,
        shared.core.clone(),
        Arc::clone(&slot),
    ));
    let conn_budget = Arc::new(Semaphore::new(
        shared.cfg.max_outstanding_per_connection as usize,
    ));
    if shared
        .core
        .send(CoreMsg::Connect {
            conn: id,
            remote,
            req,
            out: out.clone(),
            received_ms,
        })
        .is_err()
    {
        out.close();
        return;
    }
    let max = shared.cfg.jute_max_buffer;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max, shared, &conn_budget) => f,
            _ = &mut stop_rx => break,
        };
        let (payload, admit) = match frame {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(FrameError::Length(len)) => {
                warn!(%remote, len, max, "closing connection: frame length is negative or exceeds jute.maxbuffer");
                break;
            }
            Err(FrameError::Truncated(len)) => {
                info!(%remote, len, "client closed the connection in the middle of a frame (truncated)");
                break;
            }
            Err(FrameError::Io) => break,
        };
        // Activity as of receipt: the core may get to this frame only after a stall.
        let received_ms = mono_ms();
        out.last_received.store(received_ms, Ordering::Relaxed);
        let msg = match decode_request(&payload) {
            Ok((h, req)) => CoreMsg::Request {
                conn: id,
                request: ClientRequest {
                    xid: h.xid,
                    op: h.op,
                    req: Ok(req),
                    size: payload.len() + 4,
                    received_ms,
                    admit,
                },
            },
            Err(RequestError::Header(e)) => {
                warn!(%remote, "closing connection: frame too short for a request header: {e}");
                break;
            }
            Err(RequestError::Marshalling { op, err }) => {
                let xid = i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let opcode = i32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                info!(%remote, op, "undecodable request: {err}");
                CoreMsg::Request {
                    conn: id,
                    request: ClientRequest {
                        xid,
                        op: opcode,
                        req: Err(ErrorCode::MarshallingError),
                        size: payload.len() + 4,
                        received_ms,
                        admit,
                    },
                }
            }
        };
        if shared.core.send(msg).is_err() {
            break;
        }
    }
    // The writer flushes what is queued and ends; the socket closes when the core lets go of it too.
    out.close();
    let _ = shared.core.send(CoreMsg::Closed { conn: id });
}

enum FrameError {
    Length(i32),
    /// EOF inside a frame of this length.
    Truncated(usize),
    Io,
}

/// Reads the next request frame, admitted into the budgets before its body is read (so that a
/// connection at a limit reads nothing more, and the body's memory is within the budget).
async fn read_frame(
    rd: &mut BufReader<OwnedReadHalf>,
    max: usize,
    shared: &Shared,
    conn_budget: &Arc<Semaphore>,
) -> Result<Option<(Vec<u8>, Admission)>, FrameError> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(_) => return Err(FrameError::Io),
    }
    let n = match frame_len(len, max) {
        FrameLen::Len(n) => n,
        FrameLen::Invalid(l) => return Err(FrameError::Length(l)),
    };
    let admit = Places::acquire(shared, conn_budget, n + 4).await;
    let mut payload = vec![0u8; n];
    rd.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated(n)
        } else {
            FrameError::Io
        }
    })?;
    Ok(Some((payload, admit)))
}

/// A connection's outgoing side, shared by the core and the connection's writer task. The core
/// writes replies straight to the socket when nothing is queued before them (one `send` per flush,
/// no hand-off); whatever the socket does not take at once is queued here and written by the
/// writer task when the socket is writable again. Bytes always leave in the order they were sent.
#[derive(Debug)]
pub struct ConnOut {
    wr: OwnedWriteHalf,
    state: Mutex<OutState>,
    /// Wakes the writer task: bytes were queued, or the connection is to close.
    wake: Notify,
    /// [`mono_ms`] of the last frame received: session activity that the core's expiry counts
    /// even while the frame still waits in its inbox.
    last_received: AtomicI64,
    /// Bytes queued for the writer task and being written by it (mirrors `state`, read by the
    /// core without the lock).
    queued: AtomicUsize,
    /// The core holds back this connection's requests until its output drains: the writer tells
    /// it (`CoreMsg::Drained`) when it has written everything queued.
    drain_wanted: AtomicBool,
    /// How long queued output may make no progress before the connection is closed: the
    /// session's timeout once negotiated.
    stall_ms: AtomicU64,
}

#[derive(Debug, Default)]
struct OutState {
    /// Bytes waiting for the writer task, after the ones it is writing.
    pending: Vec<u8>,
    /// Bytes the writer task took from `pending` and has not finished writing.
    in_write: usize,
    /// The writer task is writing bytes taken from `pending`: nothing may overtake them.
    writing: bool,
    /// Close once everything sent before is written.
    close: bool,
    /// A write failed; nothing more is written.
    failed: bool,
}

impl ConnOut {
    fn lock(&self) -> MutexGuard<'_, OutState> {
        // Only whole-field updates happen under the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `bytes` (whole frames): straight to the socket when nothing is queued or being written
    /// before them, else queued for the writer task. Never blocks.
    pub fn send(&self, bytes: &[u8]) {
        let mut st = self.lock();
        if st.close || st.failed || bytes.is_empty() {
            return;
        }
        if st.pending.is_empty() && !st.writing {
            match self.wr.try_write(bytes) {
                Ok(n) if n == bytes.len() => return,
                Ok(n) => st.pending.extend_from_slice(&bytes[n..]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    st.pending.extend_from_slice(bytes)
                }
                Err(e) => {
                    debug!("write to client failed: {e}");
                    st.failed = true;
                }
            }
        } else {
            st.pending.extend_from_slice(bytes);
        }
        self.queued
            .store(st.pending.len() + st.in_write, Ordering::SeqCst);
        drop(st);
        self.wake.notify_one();
    }

    /// Bytes sent to this connection and not yet taken by its socket.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Asks the writer task to send `CoreMsg::Drained` once everything queued is written. The
    /// caller checks [`queued`](Self::queued) again afterwards: the writer may have drained just
    /// before the request (both sides use SeqCst, so one of them sees the other).
    pub fn want_drained(&self) {
        self.drain_wanted.store(true, Ordering::SeqCst);
    }

    /// Withdraws [`want_drained`](Self::want_drained).
    pub fn drained_not_wanted(&self) {
        self.drain_wanted.store(false, Ordering::SeqCst);
    }

    /// Output stuck for this long closes the connection (the negotiated session timeout).
    pub fn set_stall_timeout(&self, ms: u64) {
        self.stall_ms.store(ms, Ordering::Relaxed);
    }

    /// [`mono_ms`] when this connection last received a frame.
    pub fn last_received(&self) -> i64 {
        self.last_received.load(Ordering::Relaxed)
    }

    /// Closes the connection once everything sent before has been written.
    pub fn close(&self) {
        self.lock().close = true;
        self.wake.notify_one();
    }
}

impl crate::core::ConnSink for ConnOut {
    fn send(&self, bytes: &[u8]) {
        ConnOut::send(self, bytes)
    }
    fn queued(&self) -> usize {
        ConnOut::queued(self)
    }
    fn want_drained(&self) {
        ConnOut::want_drained(self)
    }
    fn drained_not_wanted(&self) {
        ConnOut::drained_not_wanted(self)
    }
    fn set_stall_timeout(&self, ms: u64) {
        ConnOut::set_stall_timeout(self, ms)
    }
    fn last_received(&self) -> i64 {
        ConnOut::last_received(self)
    }
    fn close(&self) {
        ConnOut::close(self)
    }
}

/// The writer task: writes what the core could not write at once, and closes the connection when
/// told to, when a write fails or when output makes no progress for the stall timeout; then it
/// stops the reader. It holds the connection's slot in the connection limits until it ends.
async fn writer(
    out: Arc<ConnOut>,
    stop: oneshot::Sender<()>,
    id: ConnId,
    core: mpsc::UnboundedSender<CoreMsg>,
    _slot: Arc<CnxnSlot>,
) {
    let mut chunk: Vec<u8> = Vec::new();
    loop {
        let wait = {
            let mut st = out.lock();
            if st.failed {
                break;
            }
            st.in_write = 0;
            if st.pending.is_empty() {
                st.writing = false;
                out.queued.store(0, Ordering::SeqCst);
                if out.drain_wanted.swap(false, Ordering::SeqCst) {
                    let _ = core.send(CoreMsg::Drained { conn: id });
                }
                if st.close {
                    break;
                }
                true
            } else {
                std::mem::swap(&mut chunk, &mut st.pending);
                st.writing = true;
                st.in_write = chunk.len();
                false
            }
        };
        if wait {
            // A notification sent since the check above is kept as a permit: none is lost.
            out.wake.notified().await;
            continue;
        }
        let stall = Duration::from_millis(out.stall_ms.load(Ordering::Relaxed));
        if let Err(e) = write_all(&out.wr, &chunk, stall).await {
            if e.kind() == std::io::ErrorKind::TimedOut {
                info!(
                    bytes = chunk.len(),
                    ms = stall.as_millis() as u64,
                    "closing connection: the client read none of its pending replies for its session timeout"
                );
            } else {
                debug!("write to client failed: {e}");
            }
            let mut st = out.lock();
            st.failed = true;
            // Nothing more will be written: free what was queued.
            st.pending = Vec::new();
            out.queued.store(0, Ordering::SeqCst);
            break;
        }
        chunk.clear();
        if chunk.capacity() > 1 << 20 {
            chunk.shrink_to(16 * 1024);
        }
    }
    // The write half shuts down when the last holder (this task or the core) drops it.
    let _ = stop.send(());
}

/// Writes `buf`; fails with `TimedOut` when the socket takes no byte for `stall`.
async fn write_all(wr: &OwnedWriteHalf, mut buf: &[u8], stall: Duration) -> std::io::Result<()> {
    while !buf.is_empty() {
        match tokio::time::timeout(stall, wr.writable()).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        }
        match wr.try_write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Answers a four-letter word: `ruok` at once, most others from what the core publishes, the
/// listings in pieces from the core (see `admin_http`).
async fn four_letter(cmd: FourLetterWord, mut wr: OwnedWriteHalf, shared: &Shared) {
    let text = if !shared.whitelist.allows(cmd) {
        not_whitelisted_message(cmd)
    } else {
        match crate::admin_http::four_letter_text(cmd, &shared.cfg, &shared.published, &shared.core)
            .await
        {
            Some(text) => text,
            None => return,
        }
    };
    let _ = wr.write_all(text.as_bytes()).await;
    let _ = wr.shutdown().await;
}
