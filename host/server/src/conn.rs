//! Client connections: the accept loop (with `maxClientCnxns` per IP), four-letter-word detection on
//! the first 4 bytes, the handshake frame, request framing and decoding (done here, off the core
//! task), and a writer task that batches everything queued into one socket write.
//!
//! Bad input closes only the offending connection, with one log line saying why.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, info, warn};
use wazoo_admin::fourletter::{not_whitelisted_message, render, FourLetterWord, Whitelist};
use wazoo_proto::frame::{frame_len, FrameLen};
use wazoo_proto::request::RequestError;
use wazoo_proto::{decode_request, ConnectRequest, ErrorCode};

use crate::config::ServerConfig;
use crate::core::{request_stats, ConnId, CoreMsg};

struct Shared {
    cfg: Arc<ServerConfig>,
    core: mpsc::UnboundedSender<CoreMsg>,
    whitelist: Whitelist,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

/// Accepts client connections until the listener fails.
pub async fn accept_loop(
    listener: TcpListener,
    cfg: Arc<ServerConfig>,
    core: mpsc::UnboundedSender<CoreMsg>,
) {
    let shared = Arc::new(Shared {
        whitelist: Whitelist::parse(cfg.four_letter_whitelist.as_deref(), false),
        cfg,
        core,
        per_ip: Mutex::new(HashMap::new()),
    });
    let mut next_id: ConnId = 1;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let max = shared.cfg.max_client_cnxns;
        {
            let mut m = shared.per_ip.lock().expect("not poisoned");
            let n = m.entry(remote.ip()).or_insert(0);
            if max > 0 && *n >= max {
                warn!(%remote, limit = max, "too many connections from this address (maxClientCnxns); closing");
                continue;
            }
            *n += 1;
        }
        let id = next_id;
        next_id += 1;
        let shared = shared.clone();
        tokio::spawn(async move {
            connection(id, stream, remote, &shared).await;
            let mut m = shared.per_ip.lock().expect("not poisoned");
            if let Some(n) = m.get_mut(&remote.ip()) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&remote.ip());
                }
            }
        });
    }
}

async fn connection(id: ConnId, stream: TcpStream, remote: SocketAddr, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut first = [0u8; 4];
    if rd.read_exact(&mut first).await.is_err() {
        return;
    }
    if let Some(cmd) = FourLetterWord::from_bytes(first) {
        four_letter(cmd, wr, shared).await;
        return;
    }
    let max = shared.cfg.jute_max_buffer;
    let len = match frame_len(first, max) {
        FrameLen::Len(n) => n,
        FrameLen::Invalid(len) => {
            warn!(%remote, len, max, "closing connection: handshake length is negative or exceeds jute.maxbuffer");
            return;
        }
    };
    let mut payload = vec![0u8; len];
    if rd.read_exact(&mut payload).await.is_err() {
        debug!(%remote, "connection closed during handshake");
        return;
    }
    let req = match ConnectRequest::decode(&payload) {
        Ok(r) => r,
        Err(e) => {
            warn!(%remote, "closing connection: malformed ConnectRequest: {e}");
            return;
        }
    };
    let out = Arc::new(ConnOut {
        wr,
        state: Mutex::new(OutState::default()),
        wake: Notify::new(),
    });
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    tokio::spawn(writer(Arc::clone(&out), stop_tx));
    if shared
        .core
        .send(CoreMsg::Connect {
            conn: id,
            remote,
            req,
            out: Arc::clone(&out),
        })
        .is_err()
    {
        out.close();
        return;
    }
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max) => f,
            _ = &mut stop_rx => break,
        };
        let payload = match frame {
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
        let msg = match decode_request(&payload) {
            Ok((h, req)) => CoreMsg::Request {
                conn: id,
                xid: h.xid,
                op: h.op,
                req: Ok(req),
                size: payload.len() + 4,
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
                    xid,
                    op: opcode,
                    req: Err(ErrorCode::MarshallingError),
                    size: payload.len() + 4,
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

async fn read_frame(
    rd: &mut BufReader<OwnedReadHalf>,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
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
    let mut payload = vec![0u8; n];
    rd.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated(n)
        } else {
            FrameError::Io
        }
    })?;
    Ok(Some(payload))
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
}

#[derive(Debug, Default)]
struct OutState {
    /// Bytes waiting for the writer task, after the ones it is writing.
    pending: Vec<u8>,
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
        drop(st);
        self.wake.notify_one();
    }

    /// Closes the connection once everything sent before has been written.
    pub fn close(&self) {
        self.lock().close = true;
        self.wake.notify_one();
    }
}

/// The writer task: writes what the core could not write at once, and closes the connection when
/// told to (or when a write fails), then stops the reader.
async fn writer(out: Arc<ConnOut>, stop: oneshot::Sender<()>) {
    let mut chunk: Vec<u8> = Vec::new();
    loop {
        let wait = {
            let mut st = out.lock();
            if st.failed {
                break;
            }
            if st.pending.is_empty() {
                st.writing = false;
                if st.close {
                    break;
                }
                true
            } else {
                std::mem::swap(&mut chunk, &mut st.pending);
                st.writing = true;
                false
            }
        };
        if wait {
            // A notification sent since the check above is kept as a permit: none is lost.
            out.wake.notified().await;
            continue;
        }
        if let Err(e) = write_all(&out.wr, &chunk).await {
            debug!("write to client failed: {e}");
            out.lock().failed = true;
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

async fn write_all(wr: &OwnedWriteHalf, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        wr.writable().await?;
        match wr.try_write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn four_letter(cmd: FourLetterWord, mut wr: OwnedWriteHalf, shared: &Shared) {
    let text = if !shared.whitelist.allows(cmd) {
        not_whitelisted_message(cmd)
    } else {
        match request_stats(&shared.core, &shared.cfg.data_dir).await {
            Some(stats) => render(cmd, &stats),
            None => return,
        }
    };
    let _ = wr.write_all(text.as_bytes()).await;
    let _ = wr.shutdown().await;
}
