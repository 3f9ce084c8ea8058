//! An ensemble member's peer links, as the core keeps them: which quorum link is the current one
//! to each peer (links are numbered, so an event of a link that was replaced is recognised and
//! dropped), the SNAP image streamed on a link, and how packets, snapshots and election
//! notifications are framed (`wazoo_zab::wire`). Pure: the sockets are the runtime's,
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
    /// A sink for a long run of frames (a SNAP image), written by a thread other than the core's:
    /// they go out after every frame sent before this call and before every frame sent after it
    /// (those wait behind the run until the sink is dropped). Its `send` blocks while the link
    /// has a few frames of the run unwritten, so the image is read no faster than the peer takes
    /// it, and fails once the link is closed.
    fn stream(&self) -> Box<dyn FrameSink>;
}

/// See [`QuorumTx::stream`].
pub trait FrameSink: Send {
    /// Queues a frame, waiting for room; `Err` once the link is closed.
    fn send(&mut self, frame: Vec<u8>) -> Result<(), LinkClosed>;
}

/// The link a [`FrameSink`] wrote to is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkClosed;

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
    /// A piece of the SNAP image that follows a SNAP packet on the link (that packet comes as a
    /// `QuorumPacket` before it); `last` ends the image.
    SnapChunk {
        sid: Sid,
        conn: u64,
        last: bool,
        data: Vec<u8>,
        /// Held until the core has taken the chunk in: the link reads no further while the
        /// chunks it passed on and the core has not taken in are a few MiB (`None`: unbounded).
        credit: Option<Box<dyn Send>>,
    },
    /// A recipe frame (`relay.rs`): a learner's call or news, or (`reply`) the leader's reply
    /// frames for one.
    Recipe {
        sid: Sid,
        conn: u64,
        reply: bool,
        data: Vec<u8>,
    },
    /// A SNAP image streamed to the link `(sid, conn)` off the core ([`Links::stream_snapshot`])
    /// is all written, or the link closed first (`Ok` both), or the store could not be read.
    SnapshotStreamed {
        sid: Sid,
        conn: u64,
        zxid: wazoo_zab::Zxid,
        result: Result<(), String>,
    },
}

/// A quorum link as the core holds it.
struct QuorumLink {
    conn: u64,
    /// `None` while a dialled link is not up yet.
    tx: Option<Box<dyn QuorumTx>>,
    /// A SNAP image is being streamed on it.
    streaming: bool,
}

impl QuorumLink {
    fn write(&mut self, frame: Vec<u8>) {
        if let Some(tx) = self.tx.as_ref() {
            tx.send(frame)
        }
    }
}

/// A SNAP image's way to its link, for the thread that reads it: the sink its chunks go into,
/// and the report to the core when it is done ([`LinkEvent::SnapshotStreamed`]).
pub struct SnapshotStream {
    pub sink: Box<dyn FrameSink>,
    post: PostEvent,
    sid: Sid,
    conn: u64,
    zxid: wazoo_zab::Zxid,
}

impl SnapshotStream {
    /// Reports the stream done (the sink is dropped first, so frames sent after it may go).
    pub fn done(self, result: Result<(), String>) {
        let SnapshotStream {
            sink,
            post,
            sid,
            conn,
            zxid,
        } = self;
        drop(sink);
        post(LinkEvent::SnapshotStreamed {
            sid,
            conn,
            zxid,
            result,
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
                streaming: false,
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

    /// Sends SNAP(z) and the image's chunk `frames` after it (from memory: see
    /// [`crate::snapshot`]).
    pub fn send_snapshot(&mut self, to: Sid, z: wazoo_zab::Zxid, frames: Vec<Vec<u8>>) {
        if let Some(l) = self.quorum.get_mut(&to) {
            let mut buf = Vec::with_capacity(32);
            wire::encode_packet(&Packet::Snap(z), self.me, &[], &mut buf);
            l.write(buf);
            for frame in frames {
                l.write(frame);
            }
        }
    }

    /// Sends SNAP(z) to `to`; its image follows from the returned stream, written by another
    /// thread, and what is sent to `to` meanwhile goes after it. `None` without a link to `to`.
    pub fn stream_snapshot(&mut self, to: Sid, z: wazoo_zab::Zxid) -> Option<SnapshotStream> {
        let l = self.quorum.get_mut(&to)?;
        if l.streaming {
            // One SNAP per sync: a second one on this link is a peer bug. Dropping the link
            // makes the learner sync again.
            tracing::error!(to, "a second SNAP on one link; dropping the link");
            self.quorum.remove(&to);
            return None;
        }
        let tx = l.tx.as_ref()?;
        let mut buf = Vec::with_capacity(32);
        wire::encode_packet(&Packet::Snap(z), self.me, &[], &mut buf);
        tx.send(buf);
        let sink = tx.stream();
        l.streaming = true;
        Some(SnapshotStream {
            sink,
            post: self.transport.poster(),
            sid: to,
            conn: l.conn,
            zxid: z,
        })
    }

    /// Sends a recipe frame (`relay.rs`) on the quorum link to `to`, if there is one.
    pub fn send_recipe(&mut self, to: Sid, reply: bool, data: &[u8]) {
        if let Some(l) = self.quorum.get_mut(&to) {
            let mut buf = Vec::with_capacity(32 + data.len());
            wire::encode_recipe_frame(reply, data, &mut buf);
            l.write(buf);
        }
    }

    /// The number of the current quorum link to `sid`.
    pub fn conn(&self, sid: Sid) -> Option<u64> {
        self.quorum.get(&sid).map(|l| l.conn)
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
                        streaming: false,
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
            LinkEvent::SnapshotStreamed { sid, conn, .. } => {
                // The core stops on an image that could not be read (`Replica::on_link`).
                if let Some(l) = self.quorum.get_mut(&sid).filter(|l| l.conn == conn) {
                    l.streaming = false;
                }
                None
            }
            // The replica takes chunks and recipe frames itself (`Replica::on_link`).
            LinkEvent::SnapChunk { .. } | LinkEvent::Recipe { .. } => None,
        }
    }
}
