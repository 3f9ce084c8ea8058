//! The ensemble's peer links (issue 10, item 3): the election and quorum connections of this
//! server, as the core task's `zab::peer::Peer` uses them (`core/replica.rs`). [`Links`] holds the
//! live quorum links and turns the link tasks' events into peer inputs; it sends what the peer
//! asks, with the payloads the core attaches, and decides nothing.

mod links;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::info;
use wazoo_zab::election::Notification;
use wazoo_zab::peer::{Input, Packet};
use wazoo_zab::{wire, Sid};

use crate::config::Ensemble;
use crate::core::CoreMsg;
use crate::ServerError;
use links::ElectionLinks;
pub use links::LinkEvent;

/// A quorum link as the core holds it.
struct QuorumLink {
    conn: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    _cancel: Option<oneshot::Sender<()>>,
    /// While a SNAP image for this link is being read: the frames sent after it, in order.
    held: Option<Vec<Vec<u8>>>,
}

impl QuorumLink {
    fn new(
        conn: u64,
        tx: mpsc::UnboundedSender<Vec<u8>>,
        cancel: Option<oneshot::Sender<()>>,
    ) -> Self {
        QuorumLink {
            conn,
            tx,
            _cancel: cancel,
            held: None,
        }
    }

    fn write(&mut self, frame: Vec<u8>) {
        match self.held.as_mut() {
            Some(held) => held.push(frame),
            None => {
                let _ = self.tx.send(frame);
            }
        }
    }
}

/// Delivers a SNAP image, read off the core, back to the core (as
/// [`LinkEvent::SnapshotImage`]).
pub struct SnapshotDelivery {
    events: links::Events,
    sid: Sid,
    conn: u64,
    zxid: wazoo_zab::Zxid,
}

impl SnapshotDelivery {
    pub fn deliver(self, image: Result<Vec<u8>, String>) {
        let _ = self.events.send(LinkEvent::SnapshotImage {
            sid: self.sid,
            conn: self.conn,
            zxid: self.zxid,
            image,
        });
    }
}

/// This server's peer links.
pub struct Links {
    me: Sid,
    voters: Vec<Sid>,
    election: ElectionLinks,
    quorum: BTreeMap<Sid, QuorumLink>,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    /// Dialled links are numbered from 1 up, accepted ones from 2^32 up.
    next_dial: u64,
    events: links::Events,
}

/// Resolves a member's address (`host:port`).
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ServerError> {
    tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServerError::Ensemble(format!("cannot resolve {host}:{port}")))
}

impl Links {
    /// Binds this server's election and quorum ports and starts the link tasks; their events
    /// reach the core as [`CoreMsg::Link`].
    pub async fn start(
        ensemble: &Ensemble,
        core: mpsc::UnboundedSender<CoreMsg>,
    ) -> Result<Links, ServerError> {
        let me = ensemble.me;
        let mut election_peers = BTreeMap::new();
        let mut quorum_addrs = BTreeMap::new();
        for m in ensemble.members.values() {
            if m.sid != me {
                election_peers.insert(m.sid, resolve(&m.host, m.election_port).await?);
                quorum_addrs.insert(m.sid, resolve(&m.host, m.quorum_port).await?);
            }
        }
        let mine = ensemble.myself();
        let election_addr = resolve(&mine.host, mine.election_port).await?;
        let quorum_addr = resolve(&mine.host, mine.quorum_port).await?;
        let events = links::Events(core);
        let election = ElectionLinks::start(me, election_addr, election_peers, events.clone())
            .await
            .map_err(|e| ServerError::Bind(election_addr, e))?;
        let quorum_listener = TcpListener::bind(quorum_addr)
            .await
            .map_err(|e| ServerError::Bind(quorum_addr, e))?;
        tokio::spawn(links::accept_quorum(
            quorum_listener,
            Arc::new(AtomicU64::new(1 << 32)),
            events.clone(),
        ));
        info!(
            sid = me,
            %election_addr,
            %quorum_addr,
            voters = ?ensemble.voters().collect::<Vec<_>>(),
            observers = ?ensemble.observers().collect::<Vec<_>>(),
            "ensemble links up"
        );
        Ok(Links {
            me,
            voters: ensemble.voters().collect(),
            election,
            quorum: BTreeMap::new(),
            quorum_addrs,
            next_dial: 0,
            events,
        })
    }

    /// An election notification to one server, or (`None`) to every other voter.
    pub fn notify(&self, to: Option<Sid>, n: &Notification) {
        match to {
            Some(t) => self.election.send(t, n),
            None => {
                for &v in &self.voters {
                    if v != self.me {
                        self.election.send(v, n);
                    }
                }
            }
        }
    }

    /// Dials the leader's quorum port; `Connected` or `Disconnected` follows as an input.
    pub fn connect(&mut self, leader: Sid) {
        let Some(&addr) = self.quorum_addrs.get(&leader) else {
            return;
        };
        self.next_dial += 1;
        let conn = self.next_dial;
        // Until the link reports itself up, this names the link expected.
        let (tx, _) = mpsc::unbounded_channel();
        self.quorum.insert(leader, QuorumLink::new(conn, tx, None));
        links::dial_quorum(leader, addr, conn, self.events.clone());
    }

    /// Closes the quorum link to `sid` (its tasks end, the socket closes).
    pub fn disconnect(&mut self, sid: Sid) {
        self.quorum.remove(&sid);
    }

    /// Sends a packet with its payload on the quorum link to `to`, if there is one.
    pub fn send(&mut self, to: Sid, packet: &Packet, data: &[u8]) {
        if let Some(l) = self.quorum.get_mut(&to) {
            let mut buf = Vec::with_capacity(32 + data.len());
            wire::encode_packet(packet, self.me, data, &mut buf);
            l.write(buf);
        }
    }

    /// Sends SNAP(z) and the snapshot `image` after it, in chunks.
    pub fn send_snapshot(&mut self, to: Sid, z: wazoo_zab::Zxid, image: &[u8]) {
        if let Some(l) = self.quorum.get_mut(&to) {
            write_snapshot(l, self.me, z, image);
        }
    }

    /// SNAP(z) to `to` is to be sent once its image, being read off the core, is delivered:
    /// until then what is sent to `to` waits, in order. `None` without a link to `to`.
    pub fn hold_for_snapshot(&mut self, to: Sid, z: wazoo_zab::Zxid) -> Option<SnapshotDelivery> {
        let l = self.quorum.get_mut(&to)?;
        if l.held.is_some() {
            // One SNAP per sync: a second one on this link is a peer bug. Dropping the link
            // makes the learner sync again.
            tracing::error!(to, "a second SNAP on one link; dropping the link");
            self.quorum.remove(&to);
            return None;
        }
        l.held = Some(Vec::new());
        Some(SnapshotDelivery {
            events: self.events.clone(),
            sid: to,
            conn: l.conn,
            zxid: z,
        })
    }

    /// A link task's event, as the peer's input (`None`: a stale link's, or nothing for the
    /// peer); a packet's payload comes with it.
    pub fn on_event(&mut self, e: LinkEvent) -> Option<(Input, Vec<u8>)> {
        match e {
            LinkEvent::Notification(n) => Some((Input::Notification(n), Vec::new())),
            LinkEvent::QuorumUp {
                sid,
                conn,
                tx,
                cancel,
            } => {
                let dialled = conn < (1 << 32);
                if dialled && self.quorum.get(&sid).is_none_or(|l| l.conn != conn) {
                    return None; // a dial the peer no longer waits for
                }
                self.quorum
                    .insert(sid, QuorumLink::new(conn, tx, Some(cancel)));
                Some((Input::Connected(sid), Vec::new()))
            }
            LinkEvent::QuorumPacket {
                sid,
                conn,
                packet,
                data,
            } => self
                .quorum
                .get(&sid)
                .is_some_and(|l| l.conn == conn)
                .then_some((Input::Packet { from: sid, packet }, data)),
            LinkEvent::QuorumDown { sid, conn } => {
                if self.quorum.get(&sid).is_some_and(|l| l.conn == conn) {
                    self.quorum.remove(&sid);
                    Some((Input::Disconnected(sid), Vec::new()))
                } else {
                    None
                }
            }
            LinkEvent::SnapshotImage {
                sid,
                conn,
                zxid,
                image,
            } => {
                // The core stops on an image that could not be read (`Replica::on_link`).
                let (Some(l), Ok(image)) = (self.quorum.get_mut(&sid), image) else {
                    return None;
                };
                if l.conn != conn {
                    return None; // the link it was for is gone
                }
                let held = l.held.take().unwrap_or_default();
                write_snapshot(l, self.me, zxid, &image);
                for frame in held {
                    let _ = l.tx.send(frame);
                }
                None
            }
        }
    }
}

/// SNAP(z) and the snapshot `image` after it, in chunks.
fn write_snapshot(l: &mut QuorumLink, me: Sid, z: wazoo_zab::Zxid, image: &[u8]) {
    const CHUNK: usize = 1 << 20;
    let mut buf = Vec::with_capacity(32);
    wire::encode_packet(&Packet::Snap(z), me, &[], &mut buf);
    l.write(buf);
    let mut pieces = image.chunks(CHUNK).peekable();
    if pieces.peek().is_none() {
        let mut buf = Vec::new();
        wire::encode_snap_chunk(true, &[], &mut buf);
        l.write(buf);
    }
    while let Some(piece) = pieces.next() {
        let mut buf = Vec::with_capacity(piece.len() + 32);
        wire::encode_snap_chunk(pieces.peek().is_none(), piece, &mut buf);
        l.write(buf);
    }
}
