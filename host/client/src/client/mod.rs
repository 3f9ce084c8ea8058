//! [`Client`]: one ZooKeeper session over one TCP connection, with pipelined requests.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;
use wazoo_proto::{
    op, xid, Acl, ClientInfo, CreateMode, CreateRequest, ErrorCode, MultiOp, OpResult, ReadOp,
    Request, Response, Stat,
};

use crate::conn::{
    handshake, reader_task, writer_task, Handshake, Outgoing, ReplyResult, Shared, CLOSED, CLOSING,
    CONNECTED,
};
use crate::error::ClientError;
use crate::event::WatchedEvent;

/// The port used when an address has none.
pub const DEFAULT_PORT: u16 = 2181;

/// How to open a session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The requested session timeout; the server clamps it (see [`Client::negotiated_timeout`]).
    pub session_timeout: Duration,
    /// Accept a read-only server (the `readOnly` byte of the ConnectRequest).
    pub read_only: bool,
    /// Limit for TCP connect plus handshake, per address tried.
    pub connect_timeout: Duration,
    /// If set, a call whose reply has not arrived after this long fails with
    /// [`ClientError::Timeout`] (the request stays on the wire; its late reply is dropped).
    /// `None`: calls wait for the reply or the loss of the connection.
    pub request_timeout: Option<Duration>,
    /// Credentials sent with `add_auth` right after the handshake, in order.
    pub auth: Vec<(String, Vec<u8>)>,
    /// The largest reply frame accepted; a larger one drops the connection.
    pub max_frame_len: usize,
    /// `lastZxidSeen` of the ConnectRequest (a server that is behind refuses the connection).
    pub last_zxid_seen: i64,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            session_timeout: Duration::from_secs(30),
            read_only: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: None,
            auth: Vec::new(),
            max_frame_len: 64 << 20,
            last_zxid_seen: 0,
        }
    }
}

impl ConnectOptions {
    /// Default options with this session timeout.
    pub fn with_session_timeout(timeout: Duration) -> Self {
        ConnectOptions {
            session_timeout: timeout,
            ..ConnectOptions::default()
        }
    }
}

/// The public view of the connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Connected,
    /// `close` is waiting for the closeSession reply.
    Closing,
    Closed,
    /// The connection was lost; the session may still be alive on the server until it expires
    /// (use [`Client::resume`] to reattach).
    Disconnected,
}

struct EventQueue {
    rx: Option<mpsc::UnboundedReceiver<WatchedEvent>>,
    /// Events `wait_for_event` received but did not match.
    backlog: VecDeque<WatchedEvent>,
}

struct Inner {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outgoing>,
    session_id: i64,
    passwd: Vec<u8>,
    negotiated: Duration,
    read_only: bool,
    server: String,
    request_timeout: Option<Duration>,
    events: tokio::sync::Mutex<EventQueue>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without `close`: drop the TCP connection. The session lives on
        // in the server until it expires.
        self.shared.abort_tasks();
    }
}

/// An async ZooKeeper client: one session, one TCP connection, a writer task and a reader task.
///
/// * Cheap to clone (an `Arc`); all clones share the session. Dropping the last clone without
///   [`Client::close`] drops the connection and leaves the session to expire on the server.
/// * Every call is pipelined: it is encoded and queued immediately, and many calls (from one task
///   or many) can be in flight at once. Replies are matched in order. [`Client::submit`] returns a
///   `'static` [`ResponseFuture`] that does not borrow the client, so a benchmark can keep M
///   requests in flight per session, e.g. in a `JoinSet` or a `VecDeque` of futures:
///   ```no_run
///   # async fn f(client: wazoo_client::Client) {
///   use wazoo_client::Request;
///   let mut inflight = std::collections::VecDeque::new();
///   for i in 0..1000 {
///       if inflight.len() == 8 {
///           let done: wazoo_client::ResponseFuture = inflight.pop_front().unwrap();
///           done.await.unwrap();
///       }
///       inflight.push_back(client.submit(Request::GetData { path: "/a".into(), watch: false }));
///   }
///   # }
///   ```
/// * Watch notifications and client-side state events (`Disconnected`, `Closed`) go to one event
///   stream: take it with [`Client::events`] or wait on it with [`Client::wait_for_event`].
///   A notification is in the stream before the reply that follows it on the wire resolves.
/// * No automatic reconnect in this version: when the connection is lost every pending call fails
///   with [`ClientError::ConnectionLoss`], later calls fail fast, and a `Disconnected` event is
///   emitted. [`Client::resume`] opens a new connection to the same session. Watches are not
///   restored (no setWatches), and a chroot suffix in the address is not supported.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.server)
            .field("session_id", &format_args!("0x{:x}", self.inner.session_id))
            .field("state", &self.state())
            .finish()
    }
}

/// Splits `"h1:p1,h2:p2"` into addresses, adding the default port where missing.
pub fn parse_hosts(hosts: &str) -> Result<Vec<String>, ClientError> {
    let mut out = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        if h.is_empty() {
            continue;
        }
        if h.contains('/') {
            return Err(ClientError::InvalidArgument(format!(
                "chroot paths are not supported: {h}"
            )));
        }
        let has_port = match h.rsplit_once(':') {
            Some((host, port)) => {
                !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && (!host.contains(':') || host.ends_with(']'))
            }
            None => false,
        };
        if has_port {
            out.push(h.to_string());
        } else if h.contains(':') && !h.starts_with('[') {
            out.push(format!("[{h}]:{DEFAULT_PORT}"));
        } else {
            out.push(format!("{h}:{DEFAULT_PORT}"));
        }
    }
    if out.is_empty() {
        return Err(ClientError::InvalidArgument(format!(
            "no server address in {hosts:?}"
        )));
    }
    Ok(out)
}

/// Builds a create request for `mode`, choosing the opcode like the Java client: container →
/// createContainer (19), TTL modes → createTTL (21, `ttl_ms` required), others → create2 (15)
/// if `with_stat`, else create (1). `data: None` is a null buffer.
pub fn create_request(
    path: &str,
    data: Option<&[u8]>,
    acl: &[Acl],
    mode: CreateMode,
    ttl_ms: Option<i64>,
    with_stat: bool,
) -> Result<CreateRequest, ClientError> {
    let op_code = if mode.is_ttl() {
        match ttl_ms {
            Some(t) if t > 0 => op::CREATE_TTL,
            _ => {
                return Err(ClientError::InvalidArgument(format!(
                    "{mode:?} needs a positive ttl"
                )))
            }
        }
    } else if ttl_ms.is_some() {
        return Err(ClientError::InvalidArgument(format!(
            "a ttl needs a TTL create mode, not {mode:?}"
        )));
    } else if mode.is_container() {
        op::CREATE_CONTAINER
    } else if with_stat {
        op::CREATE2
    } else {
        op::CREATE
    };
    Ok(CreateRequest {
        op: op_code,
        path: path.to_string(),
        data: data.map(<[u8]>::to_vec),
        acl: acl.to_vec(),
        flags: mode.flags(),
        ttl: ttl_ms.unwrap_or(-1),
    })
}

/// Builders for the sub-operations of [`Client::multi`] and [`Client::multi_read`].
pub mod ops {
    use super::*;

    /// A create sub-op (opcode 1, or 19 for a container; its result is `OpResult::Create` or
    /// `Create2`). For TTL modes use [`create_ttl`].
    pub fn create(path: &str, data: &[u8], acl: &[Acl], mode: CreateMode) -> MultiOp {
        MultiOp::Create(CreateRequest {
            op: if mode.is_container() {
                op::CREATE_CONTAINER
            } else {
                op::CREATE
            },
            path: path.to_string(),
            data: Some(data.to_vec()),
            acl: acl.to_vec(),
            flags: mode.flags(),
            ttl: -1,
        })
    }

    /// A create2 sub-op (its result carries the Stat).
    pub fn create2(path: &str, data: &[u8], acl: &[Acl], mode: CreateMode) -> MultiOp {
        let mut c = create(path, data, acl, mode);
        if let MultiOp::Create(r) = &mut c {
            if r.op == op::CREATE {
                r.op = op::CREATE2;
            }
        }
        c
    }

    /// A createTTL sub-op.
    pub fn create_ttl(
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
    ) -> MultiOp {
        MultiOp::Create(CreateRequest {
            op: op::CREATE_TTL,
            path: path.to_string(),
            data: Some(data.to_vec()),
            acl: acl.to_vec(),
            flags: mode.flags(),
            ttl: ttl_ms,
        })
    }

    pub fn delete(path: &str, version: i32) -> MultiOp {
        MultiOp::Delete {
            path: path.to_string(),
            version,
        }
    }

    pub fn set_data(path: &str, data: &[u8], version: i32) -> MultiOp {
        MultiOp::SetData {
            path: path.to_string(),
            data: Some(data.to_vec()),
            version,
        }
    }

    pub fn check(path: &str, version: i32) -> MultiOp {
        MultiOp::Check {
            path: path.to_string(),
            version,
        }
    }

    pub fn get_data(path: &str) -> ReadOp {
        ReadOp::GetData {
            path: path.to_string(),
            watch: false,
        }
    }

    pub fn get_children(path: &str) -> ReadOp {
        ReadOp::GetChildren {
            path: path.to_string(),
            watch: false,
        }
    }
}

/// The first failed sub-op of a multi result (its index and error), as the Java client reports a
/// failed multi. Rolled-back sub-ops (`Error(0)`) are skipped.
pub fn first_error(results: &[OpResult]) -> Option<(usize, ClientError)> {
    results.iter().enumerate().find_map(|(i, r)| match r {
        OpResult::Error(code) if *code != 0 => Some((i, ClientError::from_code(*code))),
        _ => None,
    })
}

/// The future of one submitted request. It owns nothing of the client, so it can be stored,
/// moved to another task or awaited later; the request is already queued when it is created.
#[must_use = "the request is sent regardless; await the future to get the reply"]
pub struct ResponseFuture {
    state: RespState,
}

enum RespState {
    Ready(Option<ReplyResult>),
    Waiting {
        rx: oneshot::Receiver<ReplyResult>,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl ResponseFuture {
    fn ready(r: ReplyResult) -> Self {
        ResponseFuture {
            state: RespState::Ready(Some(r)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            RespState::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| {
                Err(ClientError::Protocol(
                    "ResponseFuture polled after completion".into(),
                ))
            })),
            RespState::Waiting { rx, deadline } => {
                if let Poll::Ready(r) = Pin::new(rx).poll(cx) {
                    // A dropped sender means the connection task went away with the request.
                    return Poll::Ready(r.unwrap_or(Err(ClientError::ConnectionLoss)));
                }
                if let Some(d) = deadline {
                    if d.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(ClientError::Timeout));
                    }
                }
                Poll::Pending
            }
        }
    }
}

fn unexpected(what: &str, r: Response) -> ClientError {
    ClientError::Protocol(format!("unexpected reply to {what}: {r:?}"))
}

impl Client {
    /// Opens a new session. `hosts` is `"host:port"` or a comma list, tried in order until one
    /// completes the handshake.
    pub async fn connect(hosts: &str, opts: ConnectOptions) -> Result<Client, ClientError> {
        Self::establish(hosts, 0, &[0u8; 16], opts).await
    }

    /// Reattaches to an existing session (from [`Client::session_id`] and
    /// [`Client::session_password`] of an earlier client). An expired or unknown session fails
    /// with `Server(SessionExpired)`.
    pub async fn resume(
        hosts: &str,
        session_id: i64,
        passwd: &[u8],
        opts: ConnectOptions,
    ) -> Result<Client, ClientError> {
        Self::establish(hosts, session_id, passwd, opts).await
    }

    async fn establish(
        hosts: &str,
        session_id: i64,
        passwd: &[u8],
        opts: ConnectOptions,
    ) -> Result<Client, ClientError> {
        let addrs = parse_hosts(hosts)?;
        let timeout_ms = opts.session_timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut last_err = None;
        for addr in &addrs {
            let attempt = tokio::time::timeout(
                opts.connect_timeout,
                handshake(
                    addr,
                    session_id,
                    passwd,
                    timeout_ms,
                    opts.read_only,
                    opts.last_zxid_seen,
                ),
            )
            .await;
            match attempt {
                Ok(Ok(h)) => return Self::start(addr.clone(), h, &opts).await,
                Ok(Err(e @ ClientError::Server(_))) => return Err(e),
                Ok(Err(e)) => {
                    debug!("connecting to {addr} failed: {e}");
                    last_err = Some(e);
                }
                Err(_) => {
                    debug!("connecting to {addr} timed out");
                    last_err = Some(ClientError::Connect(format!(
                        "{addr}: no handshake within {:?}",
                        opts.connect_timeout
                    )));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::Connect(hosts.to_string())))
    }

    async fn start(
        addr: String,
        h: Handshake,
        opts: &ConnectOptions,
    ) -> Result<Client, ClientError> {
        let Handshake { stream, response } = h;
        let negotiated = Duration::from_millis(response.timeout as u64);
        debug!(
            server = %addr,
            session_id = format_args!("0x{:x}", response.session_id),
            timeout_ms = response.timeout,
            "session established"
        );
        let (rd, wr) = stream.into_split();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(events_tx));
        let (tx, rx) = mpsc::unbounded_channel();
        let ping_interval = (negotiated / 3).max(Duration::from_millis(10));
        let read_timeout = (negotiated * 2 / 3).max(Duration::from_millis(20));
        let w = tokio::spawn(writer_task(wr, rx, shared.clone(), ping_interval));
        let r = tokio::spawn(reader_task(
            rd,
            shared.clone(),
            read_timeout,
            opts.max_frame_len,
        ));
        shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([w.abort_handle(), r.abort_handle()]);
        let client = Client {
            inner: Arc::new(Inner {
                shared,
                tx,
                session_id: response.session_id,
                passwd: response.passwd,
                negotiated,
                read_only: response.read_only.unwrap_or(false),
                server: addr,
                request_timeout: opts.request_timeout,
                events: tokio::sync::Mutex::new(EventQueue {
                    rx: Some(events_rx),
                    backlog: VecDeque::new(),
                }),
            }),
        };
        for (scheme, auth) in &opts.auth {
            client.add_auth(scheme, auth).await?;
        }
        Ok(client)
    }

    /// The session id (as zkCli prints it: `0x{:x}`).
    pub fn session_id(&self) -> i64 {
        self.inner.session_id
    }

    /// The 16-byte session password, for [`Client::resume`].
    pub fn session_password(&self) -> &[u8] {
        &self.inner.passwd
    }

    /// The session timeout the server granted.
    pub fn negotiated_timeout(&self) -> Duration {
        self.inner.negotiated
    }

    /// Whether the server said it is in read-only mode.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The address (`host:port`) of the server this client is connected to.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The highest zxid seen in a reply header.
    pub fn last_zxid(&self) -> i64 {
        self.inner.shared.last_zxid.load(Ordering::Acquire)
    }

    pub fn state(&self) -> ClientState {
        match self.inner.shared.state.load(Ordering::Acquire) {
            CONNECTED => ClientState::Connected,
            CLOSING => ClientState::Closing,
            CLOSED => ClientState::Closed,
            _ => ClientState::Disconnected,
        }
    }

    /// Whether calls can still succeed.
    pub fn is_connected(&self) -> bool {
        self.state() == ClientState::Connected
    }

    /// Queues `req` and returns the future of its reply. The request is handed to the writer
    /// before this returns, so calls are sent in the order `submit` is called. Auth requests use
    /// xid -4 and setWatches -8, everything else the next xid. `Ping` is refused (the client
    /// sends its own). A `CloseSession` sent this way makes the server drop the connection; use
    /// [`Client::close`] instead.
    ///
    /// The reply is `Ok(body)` when the header's err is 0 (the body decoded for the request's
    /// opcode), `Err(Server(code))` otherwise.
    pub fn submit(&self, req: Request) -> ResponseFuture {
        if let Some(e) = self.inner.shared.dead_error() {
            return ResponseFuture::ready(Err(e));
        }
        self.enqueue(req)
    }

    fn enqueue(&self, req: Request) -> ResponseFuture {
        let special_xid = match &req {
            Request::Auth { .. } => Some(xid::AUTH),
            Request::SetWatches(_) => Some(xid::SET_WATCHES),
            Request::Ping => {
                return ResponseFuture::ready(Err(ClientError::InvalidArgument(
                    "pings are sent by the client itself".into(),
                )))
            }
            _ => None,
        };
        let opcode = req.opcode();
        let frame = req.encode_frame(special_xid.unwrap_or(0));
        let (tx, rx) = oneshot::channel();
        let out = Outgoing {
            frame,
            special_xid,
            opcode,
            tx,
        };
        if self.inner.tx.send(out).is_err() {
            let e = self
                .inner
                .shared
                .dead_error()
                .unwrap_or(ClientError::ConnectionLoss);
            return ResponseFuture::ready(Err(e));
        }
        ResponseFuture {
            state: RespState::Waiting {
                rx,
                deadline: self
                    .inner
                    .request_timeout
                    .map(|t| Box::pin(tokio::time::sleep(t))),
            },
        }
    }

    /// Takes the event stream (once; `None` afterwards, or while a `wait_for_event` is running).
    /// Events that `wait_for_event` had buffered come first. After this, `wait_for_event` fails.
    pub fn events(&self) -> Option<mpsc::UnboundedReceiver<WatchedEvent>> {
        let mut q = self.inner.events.try_lock().ok()?;
        let mut old = q.rx.take()?;
        let backlog = std::mem::take(&mut q.backlog);
        if backlog.is_empty() {
            return Some(old);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.shared.with_events_tx(|cur| {
            for ev in backlog {
                let _ = tx.send(ev);
            }
            while let Ok(ev) = old.try_recv() {
                let _ = tx.send(ev);
            }
            *cur = tx;
        });
        Some(rx)
    }

    /// Waits up to `timeout` for the first event matching `pred`. Non-matching events are kept,
    /// in order, for later calls. Fails with `Timeout`, or `InvalidArgument` if [`Client::events`]
    /// took the stream.
    pub async fn wait_for_event(
        &self,
        mut pred: impl FnMut(&WatchedEvent) -> bool,
        timeout: Duration,
    ) -> Result<WatchedEvent, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut guard = tokio::time::timeout_at(deadline, self.inner.events.lock())
            .await
            .map_err(|_| ClientError::Timeout)?;
        let EventQueue { rx, backlog } = &mut *guard;
        if let Some(i) = backlog.iter().position(&mut pred) {
            if let Some(ev) = backlog.remove(i) {
                return Ok(ev);
            }
        }
        let rx = rx.as_mut().ok_or_else(|| {
            ClientError::InvalidArgument("the event stream was taken with events()".into())
        })?;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(None) => return Err(ClientError::Closed),
                Ok(Some(ev)) if pred(&ev) => return Ok(ev),
                Ok(Some(ev)) => backlog.push_back(ev),
            }
        }
    }

    /// The next event (of any kind), waiting up to `timeout`.
    pub async fn next_event(&self, timeout: Duration) -> Result<WatchedEvent, ClientError> {
        self.wait_for_event(|_| true, timeout).await
    }

    /// Ends the session: sends closeSession (opcode -11), waits for its reply (at most the
    /// negotiated timeout), then drops the connection. Calls made after this starts fail with
    /// `Closed`. Closing a closed client is a no-op; closing a client whose connection was lost
    /// fails with `ConnectionLoss` (the session then expires on its own).
    pub async fn close(&self) -> Result<(), ClientError> {
        let shared = &self.inner.shared;
        match shared
            .state
            .compare_exchange(CONNECTED, CLOSING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(CLOSING) | Err(CLOSED) => return Ok(()),
            Err(_) => return Err(ClientError::ConnectionLoss),
        }
        let reply = self.enqueue(Request::CloseSession);
        let wait = self.inner.negotiated.max(Duration::from_secs(1));
        let res = tokio::time::timeout(wait, reply).await;
        shared.shutdown(true);
        match res {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(ClientError::Closed)) => Err(ClientError::ConnectionLoss),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

mod requests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_get_default_ports() {
        assert_eq!(
            parse_hosts("127.0.0.1:2181, localhost ,[::1]:2182,::1").unwrap(),
            vec![
                "127.0.0.1:2181".to_string(),
                "localhost:2181".into(),
                "[::1]:2182".into(),
                "[::1]:2181".into()
            ]
        );
        assert!(parse_hosts(" , ").is_err());
        assert!(parse_hosts("h:1/chroot").is_err());
    }

    #[test]
    fn create_request_picks_the_java_client_opcode() {
        let acl = Acl::open_unsafe();
        let c = |mode, ttl, stat| create_request("/a", Some(b"x"), &acl, mode, ttl, stat);
        assert_eq!(
            c(CreateMode::Persistent, None, false).unwrap().op,
            op::CREATE
        );
        assert_eq!(
            c(CreateMode::Ephemeral, None, true).unwrap().op,
            op::CREATE2
        );
        assert_eq!(
            c(CreateMode::Container, None, false).unwrap().op,
            op::CREATE_CONTAINER
        );
        let t = c(CreateMode::PersistentWithTtl, Some(500), false).unwrap();
        assert_eq!((t.op, t.ttl, t.flags), (op::CREATE_TTL, 500, 5));
        assert!(c(CreateMode::PersistentWithTtl, None, false).is_err());
        assert!(c(CreateMode::Persistent, Some(5), false).is_err());
        assert_eq!(
            create_request("/a", None, &acl, CreateMode::Persistent, None, false)
                .unwrap()
                .data,
            None
        );
    }

    #[test]
    fn first_error_skips_rolled_back_results() {
        let r = [
            OpResult::Error(0),
            OpResult::Error(-101),
            OpResult::Error(-2),
        ];
        assert_eq!(
            first_error(&r),
            Some((1, ClientError::Server(ErrorCode::NoNode)))
        );
        assert_eq!(first_error(&[OpResult::Delete]), None);
    }
}
