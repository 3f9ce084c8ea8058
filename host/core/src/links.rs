//! An ensemble member's peer links, as the core keeps them: which quorum link is the current one
//! to each peer (links are numbered, so an event of a link that was replaced is recognised and
//! dropped), the frames held back behind a SNAP image being read, and how packets, snapshots and
//! election notifications are framed (`wazoo_zab::wire`). Pure: the sockets are the runtime's,
//! behind [`PeerTransport`] and [`QuorumTx`]; its link tasks report [`LinkEvent`]s, which reach
//! the core as [`crate::CoreMsg::Link`] and [`Links::on_event`] turns into the peer's inputs.

use std::collections::BTreeMap;

use wazoo_zab::election::Notification;
use wazoo_zab::peer::{Input, Packet};
use wazoo_zab::{wire, Sid};

/// The sending side of one quorum link: frames go out in order. Dropping it closes the link (its
/// tasks end, the socket closes).
pub trait QuorumTx: Send {
    fn send(&self, frame: Vec<u8>);
}

/// How a [`SnapshotDelivery`] reports back: posts an event into the core's inbox.
pub type PostEvent = Box<dyn FnOnce(LinkEvent) + Send>;

/// The sockets under the links, the runtime's (tokio tasks) or a simulator's.
pub trait PeerTransport: Send {
    /// Sends an election notification to `to` (the latest one replaces one not sent yet).
    fn notify(&self, to: Sid, n: &Notification);
    /// Dials `leader`'s quorum port as link `conn`; [`LinkEvent::QuorumUp`] or
    /// [`LinkEvent::QuorumDown`] for `conn` follows.
    fn dial(&mut self, leader: Sid, conn: u64);
    /// A way to post one event into the core's inbox later, from another thread.
    fn poster(&self) -> PostEvent;
}

/// What the link tasks report to the core.
pub enum LinkEvent {
    Notification(Notification),
    /// A quorum link is up: dialled to the leader, or accepted from a learner (after its first
    /// packet, FOLLOWERINFO, which follows as a `QuorumPacket` event). Accepted links are
    /// numbered from 2^32 up, dialled ones below.
    QuorumUp {
        sid: Sid,
        conn: u64,
        tx: Box<dyn QuorumTx>,
    },
    QuorumPacket {
        sid: Sid,
        conn: u64,
        packet: Packet,
        /// Its payload (a txn, a request), empty when it has none.
        data: Vec<u8>,
    },
    QuorumDown {
        sid: Sid,
        conn: u64,
    },
    /// A SNAP image built off the core for the link `(sid, conn)` (see
    /// [`Links::hold_for_snapshot`]), or why it could not be read.
    SnapshotImage {
        sid: Sid,
        conn: u64,
        zxid: wazoo_zab::Zxid,
        image: Result<Vec<u8>, String>,
    },
}

/// A quorum link as the core holds it.
struct QuorumLink {
    conn: u64,
    /// `None` while a dialled link is not up yet.
    tx: Option<Box<dyn QuorumTx>>,
    /// While a SNAP image for this link is being read: the frames sent after it, in order.
    held: Option<Vec<Vec<u8>>>,
}

impl QuorumLink {
    fn write(&mut self, frame: Vec<u8>) {
        match (self.held.as_mut(), self.tx.as_ref()) {
            (Some(held), _) => held.push(frame),
            (None, Some(tx)) => tx.send(frame),
            (None, None) => {}
        }
    }
}

/// SNAP(z) to be sent on a link once its image, read off the core, is delivered
/// ([`LinkEvent::SnapshotImage`]).
pub struct SnapshotDelivery {
    post: PostEvent,
    sid: Sid,
    conn: u64,
    zxid: wazoo_zab::Zxid,
}

impl SnapshotDelivery {
    pub fn deliver(self, image: Result<Vec<u8>, String>) {
        (self.post)(LinkEvent::SnapshotImage {
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
    quorum: BTreeMap<Sid, QuorumLink>,
    /// Dialled links are numbered from 1 up, accepted ones (the transport's) from 2^32 up.
    next_dial: u64,
    transport: Box<dyn PeerTransport>,
}

impl Links {
    /// The links of server `me` among `voters`, over `transport`.
    pub fn new(me: Sid, voters: Vec<Sid>, transport: Box<dyn PeerTransport>) -> Links {
        Links {
            me,
            voters,
            quorum: BTreeMap::new(),
            next_dial: 0,
            transport,
        }
    }

    /// An election notification to one server, or (`None`) to every other voter.
    pub fn notify(&self, to: Option<Sid>, n: &Notification) {
        match to {
            Some(t) if t != self.me => self.transport.notify(t, n),
            Some(_) => {}
            None => {
                for &v in &self.voters {
                    if v != self.me {
                        self.transport.notify(v, n);
                    }
                }
            }
        }
    }

    /// Dials the leader's quorum port; `Connected` or `Disconnected` follows as an input.
    pub fn connect(&mut self, leader: Sid) {
        self.next_dial += 1;
        let conn = self.next_dial;
        // Until the link reports itself up, this names the link expected.
        self.quorum.insert(
            leader,
            QuorumLink {
                conn,
                tx: None,
                held: None,
            },
        );
        self.transport.dial(leader, conn);
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
            post: self.transport.poster(),
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
            LinkEvent::QuorumUp { sid, conn, tx } => {
                let dialled = conn < (1 << 32);
                if dialled && self.quorum.get(&sid).is_none_or(|l| l.conn != conn) {
                    return None; // a dial the peer no longer waits for
                }
                self.quorum.insert(
                    sid,
                    QuorumLink {
                        conn,
                        tx: Some(tx),
                        held: None,
                    },
                );
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
                    l.write(frame);
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
