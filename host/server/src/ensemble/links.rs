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
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::AbortHandle;
use tracing::{debug, warn};
use wazoo_zab::election::Notification;
use wazoo_zab::peer::Packet;
use wazoo_zab::wire::{self, QuorumFrame};
use wazoo_zab::Sid;

use crate::core::{LinkEvent, QuorumTx};
use wazoo_core::{FrameSink, LinkClosed};

/// The largest quorum frame: a txn is at most `jute.maxbuffer` plus headers; snapshot chunks are
/// smaller.
const MAX_QUORUM_FRAME: usize = 64 << 20;
/// How long an accepted quorum link may take to send its FOLLOWERINFO.
const FIRST_PACKET: Duration = Duration::from_secs(5);
/// How long a dialler waits before trying a peer's election port again.
const REDIAL: Duration = Duration::from_millis(100);
/// SNAP image chunks (about 1 MiB each) a leader's link queues before the thread reading the
/// image waits for the socket.
const STREAM_FRAMES: usize = 2;
/// KiB of SNAP image chunks a learner's link passes to the core before it waits for the core to
/// take them in (and so stops reading the socket, which holds the leader's walk back).
const SNAP_WINDOW_KIB: usize = 8 << 10;

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

/// What a quorum link's writer task takes, in order.
enum Outgoing {
    Frame(Vec<u8>),
    /// A run of frames (a SNAP image), written whole before anything queued after it.
    Stream(mpsc::Receiver<Vec<u8>>),
}

/// A quorum link's sending side for the core: frames go to the link's writer task; dropping it
/// drops `_cancel`, which ends the link's reader, whose end ends the writer.
struct TaskTx {
    tx: mpsc::UnboundedSender<Outgoing>,
    _cancel: oneshot::Sender<()>,
}

impl QuorumTx for TaskTx {
    fn send(&self, frame: Vec<u8>) {
        let _ = self.tx.send(Outgoing::Frame(frame));
    }

    fn stream(&self) -> Box<dyn FrameSink> {
        let (tx, rx) = mpsc::channel(STREAM_FRAMES);
        let _ = self.tx.send(Outgoing::Stream(rx));
        Box::new(StreamSink(tx))
    }
}

/// A SNAP image's way into the writer task, for the thread that reads the image (never a tokio
/// thread: `blocking_send` waits for room).
struct StreamSink(mpsc::Sender<Vec<u8>>);

impl FrameSink for StreamSink {
    fn send(&mut self, frame: Vec<u8>) -> Result<(), LinkClosed> {
        self.0.blocking_send(frame).map_err(|_| LinkClosed)
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

/// A quorum link's writer: frames go out in order, a SNAP image's run whole where it was queued;
/// it ends when the link's sender is gone, on a write error, or when the reader is gone.
async fn write_quorum_link(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut reader_gone: oneshot::Receiver<()>,
) {
    // Frames queued meanwhile go out in one write: under load a PROPOSAL or COMMIT per txn
    // would otherwise cost a syscall each.
    const COALESCE: usize = 256 << 10;
    let mut next: Option<Outgoing> = None;
    'link: loop {
        let item = match next.take() {
            Some(item) => item,
            None => tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => break 'link,
                },
                _ = &mut reader_gone => break 'link,
            },
        };
        match item {
            Outgoing::Frame(mut frame) => {
                while frame.len() < COALESCE {
                    match rx.try_recv() {
                        Ok(Outgoing::Frame(more)) => frame.extend_from_slice(&more),
                        Ok(stream) => {
                            next = Some(stream);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                tokio::select! {
                    r = wr.write_all(&frame) => if r.is_err() { break 'link },
                    _ = &mut reader_gone => break 'link,
                }
            }
            Outgoing::Stream(mut frames) => loop {
                let frame = tokio::select! {
                    f = frames.recv() => match f {
                        Some(f) => f,
                        None => break, // the image is all written
                    },
                    _ = &mut reader_gone => break 'link,
                };
                tokio::select! {
                    r = wr.write_all(&frame) => if r.is_err() { break 'link },
                    _ = &mut reader_gone => break 'link,
                }
            },
        }
    }
    let _ = wr.shutdown().await;
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
    let (rd, wr) = sock.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let (cancel, mut cancelled) = oneshot::channel::<()>();
    // Dropped when this function returns: the writer stops then, even in the middle of a write
    // to a peer that does not read (it held the socket, and a SNAP's store view, forever).
    let (_reader_alive, reader_gone) = oneshot::channel::<()>();
    let quorum_tx = |tx, cancel| -> Box<dyn QuorumTx> {
        Box::new(TaskTx {
            tx,
            _cancel: cancel,
        })
    };
    tokio::spawn(write_quorum_link(wr, rx, reader_gone));
    let mut rd = FrameReader::new(rd, MAX_QUORUM_FRAME, Vec::new());
    let mut sid = known;
    let mut up = Some((tx, cancel));
    // A SNAP's chunks are coming.
    let mut snapping = false;
    let window = Arc::new(Semaphore::new(SNAP_WINDOW_KIB));
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
            Ok(QuorumFrame::Packet { packet, data }) => {
                snapping = matches!(packet, Packet::Snap(_)) && sid.is_some();
                (packet, data.to_vec())
            }
            Ok(QuorumFrame::Recipe { reply, data }) => {
                let Some(s) = sid else {
                    warn!("a recipe frame before FOLLOWERINFO; closing the link");
                    return;
                };
                let frame = LinkEvent::Recipe {
                    sid: s,
                    conn,
                    reply,
                    data: data.to_vec(),
                };
                if events.send(frame).is_err() {
                    return;
                }
                continue;
            }
            Ok(QuorumFrame::SnapChunk { last, data }) => {
                let Some(s) = sid.filter(|_| snapping) else {
                    warn!(?sid, "a snapshot chunk without SNAP; closing the link");
                    break;
                };
                snapping = !last;
                // Room in the window first: the core takes chunks in at the disk's pace.
                let kib = (data.len() / 1024 + 1).min(SNAP_WINDOW_KIB) as u32;
                let credit = tokio::select! {
                    p = window.clone().acquire_many_owned(kib) => p.expect("never closed"),
                    _ = &mut cancelled, if up.is_none() => break,
                };
                let chunk = LinkEvent::SnapChunk {
                    sid: s,
                    conn,
                    last,
                    data: data.to_vec(),
                    credit: Some(Box::new(credit)),
                };
                if events.send(chunk).is_err() {
                    return;
                }
                continue;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair of sockets: the writer's half and the peer's end.
    async fn pair() -> (OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (rd, wr) = dialled.unwrap().into_split();
        std::mem::forget(rd); // keeps the socket open for the test's length
        (wr, accepted.unwrap().0)
    }

    /// A SNAP image's run goes out whole where it was queued: frames queued after it (while a
    /// thread is still writing the image) wait behind it, and frames before it go first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_sent_after_a_stream_wait_behind_the_whole_stream() {
        let (wr, mut peer) = pair().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let (_alive, gone) = oneshot::channel();
        let writer = tokio::spawn(write_quorum_link(wr, rx, gone));
        let (cancel, _) = oneshot::channel();
        let link = TaskTx {
            tx,
            _cancel: cancel,
        };
        link.send(b"a".to_vec());
        let mut sink = link.stream();
        link.send(b"d".to_vec());
        let image = std::thread::spawn(move || {
            for piece in [b"b".to_vec(), b"c".to_vec()] {
                std::thread::sleep(Duration::from_millis(20));
                sink.send(piece).unwrap();
            }
        });
        let mut got = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), peer.read_exact(&mut got))
            .await
            .expect("all four frames")
            .unwrap();
        assert_eq!(&got, b"abcd");
        image.join().unwrap();
        drop(link);
        writer.await.unwrap();
    }

    /// A writer stuck on a peer that does not read ends when the link's reader is gone, and the
    /// thread writing an image into it is told the link closed (it held a store view before).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_blocked_on_a_peer_that_does_not_read_ends_with_the_reader() {
        let (wr, _peer) = pair().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let (alive, gone) = oneshot::channel::<()>();
        let writer = tokio::spawn(write_quorum_link(wr, rx, gone));
        let (cancel, _) = oneshot::channel();
        let link = TaskTx {
            tx,
            _cancel: cancel,
        };
        let mut sink = link.stream();
        let image = std::thread::spawn(move || {
            // Far more than the socket buffers take: the writer blocks, then the sink.
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..256 {
                if sink.send(chunk.clone()).is_err() {
                    return true;
                }
            }
            false
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!writer.is_finished(), "the writer waits for the peer");
        drop(alive);
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the writer ends")
            .unwrap();
        let told = tokio::task::spawn_blocking(move || image.join().unwrap())
            .await
            .unwrap();
        assert!(told, "the image's thread learns that the link closed");
    }
}
