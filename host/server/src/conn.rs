//! Client connections: the accept loop (with `maxClientCnxns` per IP), four-letter-word detection on
//! the first 4 bytes, the handshake frame, request framing and decoding (done here, off the core
//! task), and a writer task that batches everything queued into one socket write.
//!
//! Bad input closes only the offending connection, with one log line saying why.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use wazoo_admin::fourletter::{not_whitelisted_message, render, FourLetterWord, Whitelist};
use wazoo_proto::frame::{frame_len, FrameLen};
use wazoo_proto::request::RequestError;
use wazoo_proto::{decode_request, ConnectRequest, ErrorCode};

use crate::config::ServerConfig;
use crate::core::{ConnId, CoreMsg, Outbound};

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
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    tokio::spawn(writer(wr, out_rx, stop_tx));
    if shared
        .core
        .send(CoreMsg::Connect {
            conn: id,
            remote,
            req,
            out: out_tx,
        })
        .is_err()
    {
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

async fn writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    stop: oneshot::Sender<()>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    'outer: while let Some(first) = rx.recv().await {
        let mut close = false;
        match first {
            Outbound::Frames(b) => buf.extend_from_slice(&b),
            Outbound::Close => close = true,
        }
        while !close {
            match rx.try_recv() {
                Ok(Outbound::Frames(b)) => buf.extend_from_slice(&b),
                Ok(Outbound::Close) => close = true,
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            if wr.write_all(&buf).await.is_err() {
                break 'outer;
            }
            buf.clear();
            if buf.capacity() > 1 << 20 {
                buf.shrink_to(16 * 1024);
            }
        }
        if close {
            break;
        }
    }
    let _ = wr.shutdown().await;
    let _ = stop.send(());
}

async fn four_letter(cmd: FourLetterWord, mut wr: OwnedWriteHalf, shared: &Shared) {
    let text = if !shared.whitelist.allows(cmd) {
        not_whitelisted_message(cmd)
    } else {
        let (tx, rx) = oneshot::channel();
        if shared.core.send(CoreMsg::Stats(tx)).is_err() {
            return;
        }
        match rx.await {
            Ok(stats) => render(cmd, &stats),
            Err(_) => return,
        }
    };
    let _ = wr.write_all(text.as_bytes()).await;
    let _ = wr.shutdown().await;
}
