//! The peer links, as tokio tasks that carry bytes and decide nothing: the election port (one
//! connection per pair of servers, the one dialled by the larger sid survives; each peer's
//! latest notification is what gets sent, and re-sent on reconnect, as ZooKeeper's
//! `QuorumCnxManager` does) and the quorum port (a learner dials its leader; the leader learns
//! who dialled from FOLLOWERINFO's LearnerInfo). Frames are `wazoo_zab::wire`'s; a malformed frame
//! closes that link only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tracing::{debug, warn};
use wazoo_zab::election::Notification;
use wazoo_zab::peer::Packet;
use wazoo_zab::wire::{self, QuorumFrame};
use wazoo_zab::Sid;

use crate::core::{LinkEvent, QuorumTx};

/// The largest quorum frame: a txn is at most `jute.maxbuffer` plus headers; snapshot chunks are
/// smaller.
const MAX_QUORUM_FRAME: usize = 64 << 20;
/// How long an accepted quorum link may take to send its FOLLOWERINFO.
const FIRST_PACKET: Duration = Duration::from_secs(5);
/// How long a dialler waits before trying a peer's election port again.
const REDIAL: Duration = Duration::from_millis(100);

/// Where the link tasks report: straight into the core's inbox (a forwarding task in between
/// cost every packet a hop).
#[derive(Clone)]
pub(super) struct Events(pub(super) mpsc::UnboundedSender<crate::core::CoreMsg>);

impl Events {
    pub(super) fn send(&self, e: LinkEvent) -> Result<(), ()> {
        self.0.send(crate::core::CoreMsg::Link(e)).map_err(|_| ())
    }

    pub(super) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// A quorum link's sending side for the core: frames go to the link's writer task; dropping it
/// drops `_cancel`, which ends the link's reader (and the sender, which ends the writer).
struct TaskTx {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    _cancel: oneshot::Sender<()>,
}

impl QuorumTx for TaskTx {
    fn send(&self, frame: Vec<u8>) {
        let _ = self.tx.send(frame);
    }
}

/// Reads length-prefixed frames off a socket.
struct FrameReader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    max: usize,
}

impl FrameReader {
    /// A reader that starts with `prefix`, bytes already read off the socket (after a handshake).
    fn new(rd: OwnedReadHalf, max: usize, prefix: Vec<u8>) -> FrameReader {
        FrameReader {
            rd,
            buf: prefix,
            max,
        }
    }

    /// The next frame's body; `None` at a clean end of stream; an error for anything malformed.
    async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            match wire::split_frame(&self.buf, self.max) {
                Ok(Some((body, used))) => {
                    let body = body.to_vec();
                    self.buf.drain(..used);
                    return Ok(Some(body));
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let mut chunk = [0u8; 8192];
            let n = self.rd.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The election port: each peer's latest notification, and the tasks that deliver them.
pub(super) struct ElectionLinks {
    me: Sid,
    outbox: BTreeMap<Sid, watch::Sender<Option<Arc<Vec<u8>>>>>,
}

impl ElectionLinks {
    /// Listens on `listen` and keeps a link to every peer in `peers` (sid → election address).
    pub(super) async fn start(
        me: Sid,
        listen: SocketAddr,
        peers: BTreeMap<Sid, SocketAddr>,
        events: Events,
    ) -> std::io::Result<ElectionLinks> {
        let listener = TcpListener::bind(listen).await?;
        let mut outbox = BTreeMap::new();
        let mut inbound = BTreeMap::new();
        for (&sid, &addr) in &peers {
            let (tx, rx) = watch::channel(None);
            outbox.insert(sid, tx);
            if sid < me {
                // The larger sid dials.
                tokio::spawn(dial_election(me, sid, addr, listen, rx, events.clone()));
            } else {
                inbound.insert(sid, rx);
            }
        }
        tokio::spawn(accept_election(me, listener, inbound, events));
        Ok(ElectionLinks { me, outbox })
    }

    /// Queues `n` for `to` (replacing what was not sent yet, as ZooKeeper's queue of one does).
    pub(super) fn send(&self, to: Sid, n: &Notification) {
        if to == self.me {
            return;
        }
        if let Some(tx) = self.outbox.get(&to) {
            let mut buf = Vec::with_capacity(48);
            wire::encode_notification(n, &mut buf);
            tx.send_replace(Some(Arc::new(buf)));
        }
    }
}

async fn dial_election(
    me: Sid,
    peer: Sid,
    addr: SocketAddr,
    my_addr: SocketAddr,
    rx: watch::Receiver<Option<Arc<Vec<u8>>>>,
    events: Events,
) {
    loop {
        if let Ok(sock) = TcpStream::connect(addr).await {
            let _ = sock.set_nodelay(true);
            let (rd, mut wr) = sock.into_split();
            let mut hello = Vec::new();
            wire::encode_handshake(me, &my_addr.to_string(), &mut hello);
            if wr.write_all(&hello).await.is_ok() {
                debug!(peer, "election link dialled");
                let rd = FrameReader::new(rd, wire::MAX_ELECTION_FRAME, Vec::new());
                run_election_link(peer, rd, wr, rx.clone(), events.clone()).await;
            }
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(REDIAL).await;
    }
}

/// A connection that completed the election handshake: the peer's sid, the socket, and what was
/// read past the handshake.
type Greeted = (Sid, OwnedReadHalf, OwnedWriteHalf, Vec<u8>);

async fn accept_election(
    me: Sid,
    listener: TcpListener,
    inbound: BTreeMap<Sid, watch::Receiver<Option<Arc<Vec<u8>>>>>,
    events: Events,
) {
    // Handshakes run in their own tasks (a slow or silent connection delays no other); this loop
    // owns the links that completed one, and replaces a peer's link when it dials again.
    let (greeted_tx, mut greeted) = mpsc::unbounded_channel::<Greeted>();
    let mut current: BTreeMap<Sid, AbortHandle> = BTreeMap::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, remote)) = accepted else { continue };
                tokio::spawn(handshake(sock, remote, greeted_tx.clone()));
            }
            Some((sid, rd, wr, rest)) = greeted.recv() => {
                let Some(rx) = inbound.get(&sid).filter(|_| sid > me) else {
                    // A smaller sid (it should not dial: this server dials it) or a stranger.
                    debug!(sid, "election connection closed (not ours to accept)");
                    continue;
                };
                if let Some(old) = current.remove(&sid) {
                    old.abort();
                }
                let (rx, events) = (rx.clone(), events.clone());
                let task = tokio::spawn(async move {
                    let rd = FrameReader::new(rd, wire::MAX_ELECTION_FRAME, rest);
                    run_election_link(sid, rd, wr, rx, events).await;
                });
                current.insert(sid, task.abort_handle());
            }
        }
    }
}

/// Reads the election handshake (a few hundred bytes at most, within a second).
async fn handshake(sock: TcpStream, remote: SocketAddr, greeted: mpsc::UnboundedSender<Greeted>) {
    let _ = sock.set_nodelay(true);
    let (mut rd, wr) = sock.into_split();
    let mut buf = Vec::new();
    let hello = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match wire::decode_handshake(&buf) {
                Ok(Some((sid, _, used))) => return Ok((sid, used)),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            let mut chunk = [0u8; 512];
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err("closed during the handshake".to_string()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 2048 {
                return Err("handshake too long".to_string());
            }
        }
    })
    .await;
    match hello {
        Ok(Ok((sid, used))) => {
            let rest = buf[used..].to_vec();
            let _ = greeted.send((sid, rd, wr, rest));
        }
        Ok(Err(e)) => warn!(%remote, "election handshake refused: {e}"),
        Err(_) => warn!(%remote, "election handshake timed out"),
    }
}

/// Carries one election connection until either direction fails.
async fn run_election_link(
    peer: Sid,
    mut rd: FrameReader,
    mut wr: OwnedWriteHalf,
    mut rx: watch::Receiver<Option<Arc<Vec<u8>>>>,
    events: Events,
) {
    // On (re)connect the last message goes (again): the peer may have missed it.
    let first = rx.borrow_and_update().clone();
    let writer = async move {
        if let Some(b) = first {
            wr.write_all(&b).await?;
        }
        while rx.changed().await.is_ok() {
            let b = rx.borrow_and_update().clone();
            if let Some(b) = b {
                wr.write_all(&b).await?;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let reader = async {
        while let Some(body) = rd.next().await? {
            match wire::decode_notification(peer, &body) {
                Ok(n) => {
                    if events.send(LinkEvent::Notification(n)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    warn!(
                        peer,
                        "malformed notification, closing the election link: {e}"
                    );
                    break;
                }
            }
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
}

/// Dials the leader's quorum port; the link's events follow (`QuorumUp` first, or `QuorumDown`
/// if the leader cannot be reached).
pub(super) fn dial_quorum(leader: Sid, addr: SocketAddr, conn: u64, events: Events) {
    tokio::spawn(async move {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(sock)) => run_quorum_link(Some(leader), sock, conn, events).await,
            _ => {
                let _ = events.send(LinkEvent::QuorumDown { sid: leader, conn });
            }
        }
    });
}

/// Accepts learners on the quorum port; each link's events follow once it said who it is.
pub(super) async fn accept_quorum(
    listener: TcpListener,
    conns: Arc<std::sync::atomic::AtomicU64>,
    events: Events,
) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let conn = conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(run_quorum_link(None, sock, conn, events.clone()));
    }
}

/// Carries one quorum connection: frames queued on its sender go out, decoded packets come in.
/// An accepted link learns its peer from its first packet, which must be FOLLOWERINFO. The link
/// ends when the peer task drops its `cancel` (or its sender), or on any error.
async fn run_quorum_link(known: Option<Sid>, sock: TcpStream, conn: u64, events: Events) {
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (cancel, mut cancelled) = oneshot::channel::<()>();
    let quorum_tx = |tx, cancel| -> Box<dyn QuorumTx> {
        Box::new(TaskTx {
            tx,
            _cancel: cancel,
        })
    };
    tokio::spawn(async move {
        // Frames queued meanwhile go out in one write: under load a PROPOSAL or COMMIT per txn
        // would otherwise cost a syscall each.
        const COALESCE: usize = 256 << 10;
        while let Some(mut frame) = rx.recv().await {
            while frame.len() < COALESCE {
                match rx.try_recv() {
                    Ok(more) => frame.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut rd = FrameReader::new(rd, MAX_QUORUM_FRAME, Vec::new());
    let mut sid = known;
    let mut up = Some((tx, cancel));
    // A SNAP being received: its zxid and the chunks so far.
    let mut snapshot: Option<(wazoo_zab::Zxid, Vec<u8>)> = None;
    if let Some(s) = known {
        let (tx, cancel) = up.take().expect("fresh");
        if events
            .send(LinkEvent::QuorumUp {
                sid: s,
                conn,
                tx: quorum_tx(tx, cancel),
            })
            .is_err()
        {
            return;
        }
    }
    loop {
        let next = if sid.is_none() {
            // An accepted link must say who it is promptly.
            match tokio::time::timeout(FIRST_PACKET, rd.next()).await {
                Ok(r) => r,
                Err(_) => {
                    warn!("a quorum link sent no FOLLOWERINFO within {FIRST_PACKET:?}; closing it");
                    return;
                }
            }
        } else {
            tokio::select! {
                r = rd.next() => r,
                _ = &mut cancelled, if up.is_none() => break,
            }
        };
        let body = match next {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                warn!(?sid, "quorum link closed: {e}");
                break;
            }
        };
        let (packet, data) = match wire::decode_packet(&body) {
            Ok(QuorumFrame::Packet {
                packet: Packet::Snap(z),
                ..
            }) if sid.is_some() => {
                // The snapshot follows as chunks; the packet goes up with all of it.
                snapshot = Some((z, Vec::new()));
                continue;
            }
            Ok(QuorumFrame::Packet { packet, data }) => (packet, data.to_vec()),
            Ok(QuorumFrame::SnapChunk { last, data }) => {
                let Some((z, mut image)) = snapshot.take() else {
                    warn!(?sid, "a snapshot chunk without SNAP; closing the link");
                    break;
                };
                image.extend_from_slice(data);
                if !last {
                    snapshot = Some((z, image));
                    continue;
                }
                (Packet::Snap(z), image)
            }
            Err(e) => {
                warn!(?sid, "malformed quorum packet, closing the link: {e}");
                break;
            }
        };
        if sid.is_none() {
            let who = match packet {
                Packet::FollowerInfo { .. } => wire::learner_sid(&data).ok(),
                _ => None,
            };
            let Some(who) = who else {
                warn!("a quorum link that did not open with FOLLOWERINFO; closing it");
                return;
            };
            sid = Some(who);
            let (tx, cancel) = up.take().expect("not up yet");
            if events
                .send(LinkEvent::QuorumUp {
                    sid: who,
                    conn,
                    tx: quorum_tx(tx, cancel),
                })
                .is_err()
            {
                return;
            }
        }
        let s = sid.expect("known");
        if events
            .send(LinkEvent::QuorumPacket {
                sid: s,
                conn,
                packet,
                data,
            })
            .is_err()
        {
            return;
        }
    }
    if let Some(s) = sid {
        let _ = events.send(LinkEvent::QuorumDown { sid: s, conn });
    }
}
