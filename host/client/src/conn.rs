//! The connection machinery behind a [`crate::Client`]: the handshake, the pending-reply queue,
//! and the writer and reader tasks.
//!
//! * Callers encode a frame (with a placeholder xid) and push it on an unbounded channel. The
//!   **writer task** drains the channel in batches: for each frame it assigns the next xid (1, 2,
//!   ... wrapping to 1 after `i32::MAX`, like Java), registers `(xid, opcode, reply sender)` at the
//!   back of the FIFO [`PendingQueue`] *before* writing, then writes the whole batch with one
//!   `write_all`. When nothing was written for `timeout / 3` it sends a ping (xid -2).
//! * The **reader task** splits frames and handles them in arrival order: notifications (xid -1)
//!   go to the event channel, ping replies (-2) are dropped, every other reply is matched against
//!   the pending queue (auth -4 and setWatches -8 against the first entry with the same special
//!   xid, every other xid against the first normal entry, where a mismatch is fatal) and resolved.
//!   Because one task handles frames in order, a notification is always in the event channel
//!   before any later reply's future resolves.
//! * Anything fatal (EOF, I/O error, nothing received for `2/3 · timeout`, xid out of order, a bad
//!   frame) fails every pending call with `ConnectionLoss`, emits a `Disconnected` event and stops
//!   both tasks. There is no automatic reconnect.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, trace, warn};
use wazoo_proto::frame::split_frame;
use wazoo_proto::{
    op, xid, ConnectRequest, ConnectResponse, ErrorCode, EventType, Reader, ReplyHeader, Request,
    Response, WatcherEvent,
};

use crate::error::ClientError;
use crate::event::{KeeperState, WatchedEvent};

/// What a reply future eventually receives.
pub(crate) type ReplyResult = Result<Response, ClientError>;

/// One request on its way to the writer task.
pub(crate) struct Outgoing {
    /// A whole frame; bytes 4..8 are the xid, patched by the writer for normal requests.
    pub frame: Vec<u8>,
    /// `None`: assign the next normal xid. `Some(x)`: a special xid (-4 auth, -8 setWatches).
    pub special_xid: Option<i32>,
    pub opcode: i32,
    pub tx: oneshot::Sender<ReplyResult>,
}

/// A request written (or about to be) whose reply has not arrived.
#[derive(Debug)]
pub(crate) struct Pending {
    pub xid: i32,
    pub opcode: i32,
    pub tx: oneshot::Sender<ReplyResult>,
}

/// A reply that does not match what the pending queue expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XidMismatch {
    pub got: i32,
    /// The xid that was expected, if anything was pending.
    pub expected: Option<i32>,
}

fn is_special(xid: i32) -> bool {
    xid == xid::AUTH || xid == xid::SET_WATCHES
}

/// The FIFO of requests awaiting replies. Once closed (the connection died or the client was
/// closed) it accepts nothing more.
#[derive(Debug, Default)]
pub(crate) struct PendingQueue {
    queue: VecDeque<Pending>,
    closed: Option<ClientError>,
}

impl PendingQueue {
    /// Appends an entry, or hands it back with the error if the queue is closed.
    pub fn push(&mut self, p: Pending) -> Result<(), (Pending, ClientError)> {
        match &self.closed {
            Some(e) => Err((p, e.clone())),
            None => {
                self.queue.push_back(p);
                Ok(())
            }
        }
    }

    /// Removes the entry a reply with `xid` answers. Special xids (auth -4, setWatches -8) match
    /// the first entry with the same xid wherever it is (a real ZooKeeper answers auth on its I/O
    /// thread, possibly before earlier requests); a normal xid must be the first normal entry.
    pub fn take(&mut self, reply_xid: i32) -> Result<Pending, XidMismatch> {
        let pos = if is_special(reply_xid) {
            self.queue.iter().position(|p| p.xid == reply_xid)
        } else {
            match self.queue.iter().position(|p| !is_special(p.xid)) {
                Some(i) if self.queue[i].xid == reply_xid => Some(i),
                Some(i) => {
                    return Err(XidMismatch {
                        got: reply_xid,
                        expected: Some(self.queue[i].xid),
                    })
                }
                None => None,
            }
        };
        match pos.and_then(|i| self.queue.remove(i)) {
            Some(p) => Ok(p),
            None => Err(XidMismatch {
                got: reply_xid,
                expected: None,
            }),
        }
    }

    /// Closes the queue with `err` and returns everything that was pending (in order).
    pub fn close(&mut self, err: ClientError) -> Vec<Pending> {
        if self.closed.is_none() {
            self.closed = Some(err);
        }
        self.queue.drain(..).collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

/// Connection states ([`crate::ClientState`] is the public view).
pub(crate) const CONNECTED: u8 = 0;
pub(crate) const CLOSING: u8 = 1;
pub(crate) const CLOSED: u8 = 2;
pub(crate) const LOST: u8 = 3;

/// State shared by the client handle and its two tasks.
pub(crate) struct Shared {
    pub pending: Mutex<PendingQueue>,
    pub state: AtomicU8,
    pub last_zxid: AtomicI64,
    pub events_tx: Mutex<mpsc::UnboundedSender<WatchedEvent>>,
    pub tasks: Mutex<Vec<AbortHandle>>,
    /// Set when an auth reply said AuthFailed: the server closes the connection next.
    pub auth_failed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(events_tx: mpsc::UnboundedSender<WatchedEvent>) -> Shared {
        Shared {
            pending: Mutex::new(PendingQueue::default()),
            state: AtomicU8::new(CONNECTED),
            last_zxid: AtomicI64::new(0),
            events_tx: Mutex::new(events_tx),
            tasks: Mutex::new(Vec::new()),
            auth_failed: AtomicBool::new(false),
        }
    }

    pub fn pending(&self) -> MutexGuard<'_, PendingQueue> {
        lock(&self.pending)
    }

    pub fn emit(&self, ev: WatchedEvent) {
        // The receiver may have been dropped by a client that does not care about events.
        let _ = lock(&self.events_tx).send(ev);
    }

    /// Swaps the event sender (see `Client::events`) while holding the lock, so that no event is
    /// sent between draining the old channel and the swap.
    pub fn with_events_tx<R>(
        &self,
        f: impl FnOnce(&mut mpsc::UnboundedSender<WatchedEvent>) -> R,
    ) -> R {
        f(&mut lock(&self.events_tx))
    }

    /// The error a call made now fails with, if the connection is no longer usable.
    pub fn dead_error(&self) -> Option<ClientError> {
        match self.state.load(Ordering::Acquire) {
            CONNECTED => None,
            CLOSING | CLOSED => Some(ClientError::Closed),
            _ => Some(ClientError::ConnectionLoss),
        }
    }

    /// Ends the connection: records the final state, fails every pending call, emits the state
    /// event and stops both tasks. Idempotent.
    pub fn shutdown(&self, closed_by_client: bool) {
        let (new_state, err, ev_state) = if closed_by_client {
            (CLOSED, ClientError::Closed, KeeperState::Closed)
        } else {
            (LOST, ClientError::ConnectionLoss, KeeperState::Disconnected)
        };
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur == CLOSED || cur == LOST {
                return;
            }
            match self
                .state
                .compare_exchange(cur, new_state, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let failed = self.pending().close(err.clone());
        if !failed.is_empty() {
            debug!(count = failed.len(), "failing pending requests: {err}");
        }
        for p in failed {
            let _ = p.tx.send(Err(err.clone()));
        }
        self.emit(WatchedEvent::state_change(ev_state));
        self.abort_tasks();
    }

    /// Stops both tasks without touching the state (the last client handle was dropped).
    pub fn abort_tasks(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    /// Whether the client is closing or closed (an EOF then is expected, not an error).
    fn closing(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), CLOSING | CLOSED)
    }
}

/// What the handshake produced.
pub(crate) struct Handshake {
    pub stream: TcpStream,
    pub response: ConnectResponse,
}

/// Connects to one address and performs the ConnectRequest/ConnectResponse exchange (§1.3–1.4).
/// A session-expired answer (timeout 0) is `Server(SessionExpired)`.
pub(crate) async fn handshake(
    addr: &str,
    session_id: i64,
    passwd: &[u8],
    timeout_ms: i32,
    read_only: bool,
    last_zxid_seen: i64,
) -> Result<Handshake, ClientError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ClientError::Connect(format!("{addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let mut pw = passwd.to_vec();
    pw.resize(16, 0);
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen,
        timeout: timeout_ms,
        session_id,
        passwd: pw,
        read_only: Some(read_only),
    };
    stream
        .write_all(&req.encode_frame())
        .await
        .map_err(|e| ClientError::Connect(format!("{addr}: {e}")))?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.map_err(|e| {
        ClientError::Connect(format!("{addr}: no ConnectResponse (server closed: {e})"))
    })?;
    let n = i32::from_be_bytes(len);
    if !(0..=4096).contains(&n) {
        return Err(ClientError::Connect(format!(
            "{addr}: bad ConnectResponse length {n}"
        )));
    }
    let mut body = vec![0u8; n as usize];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| ClientError::Connect(format!("{addr}: truncated ConnectResponse: {e}")))?;
    let response = ConnectResponse::decode(&body).map_err(ClientError::Decode)?;
    if response.timeout <= 0 {
        return Err(ClientError::Server(ErrorCode::SessionExpired));
    }
    Ok(Handshake { stream, response })
}

/// Writer task: see the module docs.
pub(crate) async fn writer_task(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
    ping_interval: Duration,
) {
    const MAX_BATCH: usize = 1024;
    const MAX_BATCH_BYTES: usize = 256 * 1024;
    let mut next_xid: i32 = 1;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut batch: Vec<Outgoing> = Vec::with_capacity(64);
    let mut last_write = Instant::now();
    let ping = Request::Ping.encode_frame(xid::PING);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(first) = msg else {
                    debug!("all client handles dropped; writer exits");
                    return;
                };
                batch.push(first);
                let mut bytes = batch[0].frame.len();
                while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(m) => {
                            bytes += m.frame.len();
                            batch.push(m);
                        }
                        Err(_) => break,
                    }
                }
                let mut rejected = Vec::new();
                {
                    let mut q = shared.pending();
                    for mut m in batch.drain(..) {
                        let x = match m.special_xid {
                            Some(x) => x,
                            None => {
                                let x = next_xid;
                                next_xid = if next_xid == i32::MAX { 1 } else { next_xid + 1 };
                                x
                            }
                        };
                        m.frame[4..8].copy_from_slice(&x.to_be_bytes());
                        let p = Pending { xid: x, opcode: m.opcode, tx: m.tx };
                        match q.push(p) {
                            Ok(()) => buf.extend_from_slice(&m.frame),
                            Err(r) => rejected.push(r),
                        }
                    }
                }
                for (p, e) in rejected {
                    let _ = p.tx.send(Err(e));
                }
                if buf.is_empty() {
                    continue;
                }
                trace!(bytes = buf.len(), "writing batch");
                if let Err(e) = wr.write_all(&buf).await {
                    if !shared.closing() {
                        warn!("write to server failed: {e}");
                    }
                    shared.shutdown(shared.closing());
                    return;
                }
                buf.clear();
                last_write = Instant::now();
            }
            _ = tokio::time::sleep_until(last_write + ping_interval) => {
                trace!("idle: sending ping");
                if let Err(e) = wr.write_all(&ping).await {
                    if !shared.closing() {
                        warn!("ping write failed: {e}");
                    }
                    shared.shutdown(shared.closing());
                    return;
                }
                last_write = Instant::now();
            }
        }
    }
}

/// Why the reader stopped.
#[derive(Debug)]
enum ReadEnd {
    Eof,
    Fatal(String),
}

/// Reader task: see the module docs.
pub(crate) async fn reader_task(
    mut rd: OwnedReadHalf,
    shared: Arc<Shared>,
    read_timeout: Duration,
    max_frame: usize,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let end = 'outer: loop {
        loop {
            match split_frame(&buf, max_frame) {
                Ok(Some((start, end))) => {
                    if let Err(e) = handle_frame(&shared, &buf[start..end]) {
                        break 'outer ReadEnd::Fatal(e);
                    }
                    buf.advance(end);
                }
                Ok(None) => break,
                Err(len) => break 'outer ReadEnd::Fatal(format!("bad frame length {len}")),
            }
        }
        match tokio::time::timeout(read_timeout, rd.read_buf(&mut buf)).await {
            Err(_) => {
                break ReadEnd::Fatal(format!(
                    "nothing received from the server for {read_timeout:?}"
                ))
            }
            Ok(Ok(0)) => break ReadEnd::Eof,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break ReadEnd::Fatal(format!("read error: {e}")),
        }
    };
    let closing = shared.closing();
    match &end {
        ReadEnd::Eof if closing => debug!("server closed the connection after closeSession"),
        ReadEnd::Eof if shared.auth_failed.load(Ordering::Acquire) => {
            debug!("server closed the connection after AuthFailed")
        }
        ReadEnd::Eof => warn!("server closed the connection"),
        ReadEnd::Fatal(why) => warn!("connection lost: {why}"),
    }
    shared.shutdown(closing);
}

/// Handles one reply frame; `Err` is fatal for the connection.
fn handle_frame(shared: &Shared, frame: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(frame);
    let hdr = ReplyHeader::read(&mut r).map_err(|e| format!("bad reply header: {e}"))?;
    match hdr.xid {
        xid::NOTIFICATION => {
            let ev = WatcherEvent::read(&mut r).map_err(|e| format!("bad notification: {e}"))?;
            let Some(event_type) = EventType::from_code(ev.event_type) else {
                warn!(code = ev.event_type, path = %ev.path, "ignoring notification of unknown type");
                return Ok(());
            };
            trace!(?event_type, path = %ev.path, "notification");
            shared.emit(WatchedEvent {
                event_type,
                state: KeeperState::from_code(ev.state),
                path: ev.path,
                zxid: hdr.zxid,
            });
            Ok(())
        }
        xid::PING => Ok(()),
        reply_xid => {
            if hdr.zxid > 0 {
                shared.last_zxid.fetch_max(hdr.zxid, Ordering::AcqRel);
            }
            let p = shared
                .pending()
                .take(reply_xid)
                .map_err(|m| match m.expected {
                    Some(x) => format!("xid out of order: got {}, expected {x}", m.got),
                    None => format!("reply with xid {} but nothing pending", m.got),
                })?;
            let result = if hdr.err != 0 {
                if p.xid == xid::AUTH && hdr.err == ErrorCode::AuthFailed.code() {
                    shared.auth_failed.store(true, Ordering::Release);
                }
                Err(ClientError::from_code(hdr.err))
            } else if p.opcode == op::CLOSE_SESSION || p.opcode == op::AUTH {
                Ok(Response::Empty)
            } else {
                Response::decode_body(p.opcode, &mut r).map_err(ClientError::Decode)
            };
            let _ = p.tx.send(result);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(xid: i32) -> (Pending, oneshot::Receiver<ReplyResult>) {
        let (tx, rx) = oneshot::channel();
        (
            Pending {
                xid,
                opcode: op::GET_DATA,
                tx,
            },
            rx,
        )
    }

    #[test]
    fn normal_replies_match_fifo_and_mismatch_is_reported() {
        let mut q = PendingQueue::default();
        let mut keep = Vec::new();
        for x in [1, 2, 3] {
            let (p, rx) = pending(x);
            q.push(p).unwrap();
            keep.push(rx);
        }
        assert_eq!(q.take(1).unwrap().xid, 1);
        assert_eq!(
            q.take(3).unwrap_err(),
            XidMismatch {
                got: 3,
                expected: Some(2)
            }
        );
        assert_eq!(q.take(2).unwrap().xid, 2);
        assert_eq!(q.take(3).unwrap().xid, 3);
        assert_eq!(
            q.take(4).unwrap_err(),
            XidMismatch {
                got: 4,
                expected: None
            }
        );
    }

    #[test]
    fn auth_replies_may_overtake_and_normal_ones_skip_pending_auth() {
        let mut q = PendingQueue::default();
        let mut keep = Vec::new();
        for x in [1, xid::AUTH, 2] {
            let (p, rx) = pending(x);
            q.push(p).unwrap();
            keep.push(rx);
        }
        // A real ZooKeeper may answer the auth packet first.
        assert_eq!(q.take(xid::AUTH).unwrap().xid, xid::AUTH);
        assert_eq!(q.take(1).unwrap().xid, 1);
        let (p, rx) = pending(xid::AUTH);
        q.push(p).unwrap();
        keep.push(rx);
        // Or after later requests: the normal reply matches the first normal entry.
        assert_eq!(q.take(2).unwrap().xid, 2);
        assert_eq!(q.take(xid::AUTH).unwrap().xid, xid::AUTH);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn closed_queue_rejects_and_returns_what_was_pending() {
        let mut q = PendingQueue::default();
        let (p, _rx1) = pending(1);
        q.push(p).unwrap();
        let drained = q.close(ClientError::ConnectionLoss);
        assert_eq!(drained.len(), 1);
        let (p, _rx2) = pending(2);
        let (back, err) = q.push(p).unwrap_err();
        assert_eq!(back.xid, 2);
        assert_eq!(err, ClientError::ConnectionLoss);
    }
}
