//! The simulated network under the servers' own [`Links`](wazoo_core::Links): what a server's
//! links ask of their transport ([`SimTransport`], [`SimQuorumTx`]) is recorded as
//! [`NetAction`]s in the server's outbox, and the world carries them: election notifications
//! as messages, quorum links as FIFO byte streams between two servers, decoded into the
//! [`LinkEvent`]s the runtime's link tasks would report (a SNAP's chunks passed on as they come,
//! an accepted link's peer learned from its FOLLOWERINFO, as `wazoo-server`'s
//! `ensemble/links.rs` does).

use super::*;
use std::sync::{Arc, Mutex};

use rand::Rng;

use wazoo_core::{FrameSink, LinkClosed, LinkEvent, PeerTransport, PostEvent, QuorumTx};
use wazoo_zab::election::Notification;
use wazoo_zab::peer::Packet;
use wazoo_zab::wire::{self, QuorumFrame};
use wazoo_zab::Sid;

/// The largest quorum frame a link reads (the runtime's limit).
const MAX_QUORUM_FRAME: usize = 64 << 20;

/// What a server's links asked of the network, in order.
pub(super) enum NetAction {
    Notify {
        to: Sid,
        n: Notification,
    },
    Dial {
        to: Sid,
        conn: u64,
    },
    Frame {
        link: u64,
        side: usize,
        bytes: Vec<u8>,
    },
    Close {
        link: u64,
    },
    /// An event for the server itself (a SNAP image read off its core).
    Post(LinkEvent),
}

/// One server incarnation's outbox: its transport and its quorum links' senders write here.
pub(super) type Outbox = Arc<Mutex<Vec<NetAction>>>;

pub(super) fn push(outbox: &Outbox, a: NetAction) {
    outbox.lock().unwrap_or_else(|e| e.into_inner()).push(a);
}

pub(super) fn drain(outbox: &Outbox) -> Vec<NetAction> {
    std::mem::take(&mut *outbox.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The transport a simulated server's links use.
pub(super) struct SimTransport {
    pub(super) outbox: Outbox,
}

impl PeerTransport for SimTransport {
    fn notify(&self, to: Sid, n: &Notification) {
        push(&self.outbox, NetAction::Notify { to, n: *n });
    }

    fn dial(&mut self, leader: Sid, conn: u64) {
        push(&self.outbox, NetAction::Dial { to: leader, conn });
    }

    fn poster(&self) -> PostEvent {
        let outbox = self.outbox.clone();
        Box::new(move |e| push(&outbox, NetAction::Post(e)))
    }
}

/// One side's sender on a simulated quorum link; dropping it closes the link.
pub(super) struct SimQuorumTx {
    pub(super) outbox: Outbox,
    pub(super) link: u64,
    pub(super) side: usize,
}

impl QuorumTx for SimQuorumTx {
    fn send(&self, frame: Vec<u8>) {
        self.sink().push(frame);
    }

    fn stream(&self) -> Box<dyn FrameSink> {
        Box::new(self.sink())
    }
}

impl SimQuorumTx {
    fn sink(&self) -> SimFrameSink {
        SimFrameSink {
            outbox: self.outbox.clone(),
            link: self.link,
            side: self.side,
        }
    }
}

/// Frames onto one side of a simulated link, in order; also a SNAP image's sink (tree walks run
/// inline in the simulator, so the whole image is queued before anything sent after it).
struct SimFrameSink {
    outbox: Outbox,
    link: u64,
    side: usize,
}

impl SimFrameSink {
    fn push(&self, bytes: Vec<u8>) {
        let (link, side) = (self.link, self.side);
        push(&self.outbox, NetAction::Frame { link, side, bytes });
    }
}

impl FrameSink for SimFrameSink {
    fn send(&mut self, frame: Vec<u8>) -> Result<(), LinkClosed> {
        self.push(frame);
        Ok(())
    }
}

impl Drop for SimQuorumTx {
    fn drop(&mut self) {
        push(&self.outbox, NetAction::Close { link: self.link });
    }
}

/// A quorum link: side 0 dialled (a learner), side 1 accepted (the leader).
pub(super) struct QLink {
    pub(super) sids: [Sid; 2],
    /// The link's number at each side, as that side's `Links` knows it.
    pub(super) conns: [u64; 2],
    /// The incarnation of each side's server.
    pub(super) incs: [u64; 2],
    pub(super) open: bool,
    /// The accepted side has seen FOLLOWERINFO (and reported the link up).
    pub(super) known: bool,
    /// When the last bytes towards each side are delivered (FIFO).
    pub(super) last_at: [u64; 2],
    /// Frames towards each side held by a partition, sent on when it heals.
    pub(super) held: [Vec<Vec<u8>>; 2],
    /// Bytes received by each side and not framed yet, and whether a SNAP's chunks are coming.
    buf: [Vec<u8>; 2],
    snap: [bool; 2],
}

/// What delivering bytes to one side of a link produced.
pub(super) enum Delivered {
    Events(Vec<LinkEvent>),
    /// The bytes were malformed, or the accepted side did not open with FOLLOWERINFO: the link
    /// closes.
    Broken(String),
}

impl QLink {
    pub(super) fn new(sids: [Sid; 2], conns: [u64; 2], incs: [u64; 2]) -> QLink {
        QLink {
            sids,
            conns,
            incs,
            open: true,
            known: false,
            last_at: [0, 0],
            held: [Vec::new(), Vec::new()],
            buf: [Vec::new(), Vec::new()],
            snap: [false, false],
        }
    }

    /// Frames the bytes that reached `side`, as that side's link task would: `up` makes the
    /// accepted side's sender when it learns its peer.
    pub(super) fn deliver(
        &mut self,
        side: usize,
        bytes: &[u8],
        up: &mut dyn FnMut() -> Box<dyn QuorumTx>,
    ) -> Delivered {
        self.buf[side].extend_from_slice(bytes);
        let mut out = Vec::new();
        let peer = self.sids[1 - side];
        loop {
            let (packet, data, used) = match wire::split_frame(&self.buf[side], MAX_QUORUM_FRAME) {
                Ok(None) => break,
                Err(e) => return Delivered::Broken(e.to_string()),
                Ok(Some((body, used))) => match wire::decode_packet(body) {
                    Ok(QuorumFrame::Packet { packet, data }) => {
                        self.snap[side] = matches!(packet, Packet::Snap(_));
                        (packet, data.to_vec(), used)
                    }
                    Ok(QuorumFrame::Recipe { reply, data }) => {
                        // The simulator's clients call no recipes; passed on as the runtime does.
                        if side == 1 && !self.known {
                            return Delivered::Broken("a recipe frame before FOLLOWERINFO".into());
                        }
                        out.push(LinkEvent::Recipe {
                            sid: peer,
                            conn: self.conns[side],
                            reply,
                            data: data.to_vec(),
                        });
                        self.buf[side].drain(..used);
                        continue;
                    }
                    Ok(QuorumFrame::SnapChunk { last, data }) => {
                        if !self.snap[side] {
                            return Delivered::Broken("a snapshot chunk without SNAP".into());
                        }
                        self.snap[side] = !last;
                        out.push(LinkEvent::SnapChunk {
                            sid: peer,
                            conn: self.conns[side],
                            last,
                            data: data.to_vec(),
                            credit: None,
                        });
                        self.buf[side].drain(..used);
                        continue;
                    }
                    Err(e) => return Delivered::Broken(e.to_string()),
                },
            };
            self.buf[side].drain(..used);
            if side == 1 && !self.known {
                let who = match packet {
                    Packet::FollowerInfo { .. } => wire::learner_sid(&data).ok(),
                    _ => None,
                };
                if who != Some(peer) {
                    return Delivered::Broken("the link did not open with FOLLOWERINFO".into());
                }
                self.known = true;
                out.push(LinkEvent::QuorumUp {
                    sid: peer,
                    conn: self.conns[1],
                    tx: up(),
                });
            }
            out.push(LinkEvent::QuorumPacket {
                sid: peer,
                conn: self.conns[side],
                packet,
                data,
            });
        }
        Delivered::Events(out)
    }
}

// What the world does with the servers' network actions.
impl super::World {
    pub(super) fn connected(&self, a: Sid, b: Sid) -> bool {
        !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a))
    }

    /// A message from `a` to `b` takes this long: a few ms, more while the pair is clogged.
    fn delay(&mut self, a: Sid, b: Sid) -> u64 {
        let d = self.net_delay();
        match self.clogged.get(&(a, b)) {
            Some(&until) if until > self.now => d + self.rng.random_range(50..300),
            _ => d,
        }
    }

    /// The partitions heal: what they held on the quorum links flows again, in order.
    pub(super) fn heal(&mut self) {
        self.cut.clear();
        let links: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, q)| q.open && q.held.iter().any(|h| !h.is_empty()))
            .map(|(&l, _)| l)
            .collect();
        for link in links {
            for to in 0..2 {
                let q = self.links.get_mut(&link).expect("present");
                let held = std::mem::take(&mut q.held[to]);
                for bytes in held {
                    self.send_frame(link, to, bytes);
                }
            }
        }
    }

    /// Frames `bytes` on to side `to` of `link`, after what went before, or holds them while a
    /// partition cuts that direction.
    fn send_frame(&mut self, link: u64, to: usize, bytes: Vec<u8>) {
        let Some(q) = self.links.get(&link) else {
            return;
        };
        let (from_sid, to_sid) = (q.sids[1 - to], q.sids[to]);
        if !q.open {
            return;
        }
        if self.cut.contains(&(from_sid, to_sid)) {
            let q = self.links.get_mut(&link).expect("present");
            q.held[to].push(bytes);
            return;
        }
        let delay = self.delay(from_sid, to_sid);
        let q = self.links.get_mut(&link).expect("present");
        let t = (self.now + delay).max(q.last_at[to]);
        q.last_at[to] = t;
        self.at(
            t,
            Event::Bytes {
                link,
                side: to,
                bytes,
            },
        );
    }

    /// D6 and D4 at the sender, as the peer simulator checks them: a learner's ACK says
    /// "durable here" (a proposal's txn is in its synced log, the NEWLEADER ACK's epoch is its
    /// currentEpoch on disk) when it is sent.
    pub(super) fn check_ack(&self, sid: Sid, frame: &[u8]) -> Step {
        let Ok(Some((body, _))) = wire::split_frame(frame, MAX_QUORUM_FRAME) else {
            return Ok(());
        };
        let Ok(QuorumFrame::Packet {
            packet: Packet::Ack(z),
            ..
        }) = wire::decode_packet(body)
        else {
            return Ok(());
        };
        let store = &self.nodes[Self::idx(sid)].store;
        let durable = if z & 0xffff_ffff == 0 {
            store
                .durable_meta(wazoo_store::MetaKey::CurrentEpoch)
                .is_some_and(|e| e >= (z >> 32) as u64)
        } else {
            store.durable_covers(z)
        };
        if durable {
            Ok(())
        } else {
            Err(format!(
                "{sid} sent an ACK of {z:#x}, which is not durable there"
            ))
        }
    }

    /// Carries out what server `sid`'s links asked.
    pub(super) fn net(&mut self, sid: Sid, inc: u64, a: NetAction) {
        match a {
            NetAction::Notify { to, n } => {
                let up = self.nodes[Self::idx(to)].live.is_some();
                if up && !self.cut.contains(&(sid, to)) && !self.rng.random_bool(0.02) {
                    let t = self.now + self.delay(sid, to);
                    self.at(t, Event::Notify { to, n });
                    if self.rng.random_bool(0.02) {
                        let again = t + self.delay(sid, to);
                        self.at(again, Event::Notify { to, n });
                    }
                }
            }
            NetAction::Dial { to, conn } => {
                let target = &self.nodes[Self::idx(to)];
                if target.live.is_some() && self.connected(sid, to) {
                    self.next_link += 1;
                    self.next_accept += 1;
                    let link = self.next_link;
                    let q = QLink::new([sid, to], [conn, self.next_accept], [inc, target.inc]);
                    self.links.insert(link, q);
                    let t = self.now + self.net_delay();
                    self.at(t, Event::LinkUp { link });
                } else {
                    let t = self.now + self.rng.random_range(5..50);
                    self.at(
                        t,
                        Event::DialFailed {
                            sid,
                            inc,
                            leader: to,
                            conn,
                        },
                    );
                }
            }
            NetAction::Frame { link, side, bytes } => self.send_frame(link, 1 - side, bytes),
            NetAction::Close { link } => self.close_link(link),
            NetAction::Post(event) => {
                let t = self.now + self.rng.random_range(1..10);
                self.at(t, Event::Post { sid, inc, event });
            }
        }
    }

    /// Closes a quorum link: each side learns it after what was sent to it before.
    pub(super) fn close_link(&mut self, link: u64) {
        let d = self.net_delay();
        let Some(q) = self.links.get_mut(&link) else {
            return;
        };
        if !q.open {
            return;
        }
        q.open = false;
        let mut downs = Vec::new();
        for side in 0..2 {
            if side == 1 && !q.known {
                continue; // the accepted side never reported it up
            }
            let t = (self.now + d).max(q.last_at[side]);
            downs.push((
                t,
                Event::Down {
                    sid: q.sids[side],
                    inc: q.incs[side],
                    peer: q.sids[1 - side],
                    conn: q.conns[side],
                },
            ));
        }
        for (t, e) in downs {
            self.at(t, e);
        }
    }

    pub(super) fn link_up(&mut self, link: u64) -> Step {
        let Some(q) = self.links.get(&link) else {
            return Ok(());
        };
        let (sid, inc, peer, conn) = (q.sids[0], q.incs[0], q.sids[1], q.conns[0]);
        let peer_inc = q.incs[1];
        if !q.open || !self.is_live(sid, inc) || !self.is_live(peer, peer_inc) {
            self.close_link(link);
            return Ok(());
        }
        let outbox = self.outbox_of(sid);
        let tx = Box::new(SimQuorumTx {
            outbox,
            link,
            side: 0,
        });
        self.link_event(
            sid,
            inc,
            LinkEvent::QuorumUp {
                sid: peer,
                conn,
                tx,
            },
        )
    }

    /// Where live server `sid`'s links write.
    fn outbox_of(&self, sid: Sid) -> Outbox {
        let live = self.nodes[Self::idx(sid)].live.as_ref();
        live.map(|l| l.outbox.clone()).expect("live")
    }

    pub(super) fn link_event(&mut self, sid: Sid, inc: u64, e: LinkEvent) -> Step {
        if !self.is_live(sid, inc) {
            return Ok(());
        }
        self.with_core(sid, |c, now| c.handle(now, CoreMsg::Link(e)))
    }

    pub(super) fn bytes(&mut self, link: u64, side: usize, bytes: Vec<u8>) -> Step {
        let Some(q) = self.links.get(&link) else {
            return Ok(());
        };
        let (sid, inc) = (q.sids[side], q.incs[side]);
        if !q.open || !self.is_live(sid, inc) {
            return Ok(());
        }
        let outbox = self.outbox_of(sid);
        let q = self.links.get_mut(&link).expect("present");
        let mut up = || -> Box<dyn wazoo_core::QuorumTx> {
            Box::new(SimQuorumTx {
                outbox: outbox.clone(),
                link,
                side,
            })
        };
        match q.deliver(side, &bytes, &mut up) {
            Delivered::Broken(why) => {
                self.close_link(link);
                Err(format!(
                    "link {link} to {sid} carried malformed bytes: {why}"
                ))
            }
            Delivered::Events(events) => {
                self.report.snaps_received += events
                    .iter()
                    .filter(|e| matches!(e, LinkEvent::SnapChunk { last: true, .. }))
                    .count() as u64;
                let mid_snap = events
                    .iter()
                    .any(|e| matches!(e, LinkEvent::SnapChunk { last: false, .. }));
                if self.trace_len > TRACE {
                    for e in &events {
                        if let LinkEvent::QuorumPacket {
                            sid: from, packet, ..
                        } = e
                        {
                            self.note(format!("{sid} <- {from}: {packet:?}"));
                        }
                    }
                }
                let now = self.now_at(sid);
                let Some(live) = self.nodes[Self::idx(sid)].live.as_mut() else {
                    return Ok(());
                };
                for e in events {
                    live.core
                        .handle(now, CoreMsg::Link(e))
                        .map_err(|e| format!("server {sid} stopped: {e}"))?;
                }
                live.core.flush(true);
                self.after_step(sid)?;
                if mid_snap {
                    self.maybe_cut_snap(link, side);
                }
                Ok(())
            }
        }
    }

    pub(super) fn disk(&mut self, sid: Sid, inc: u64) -> Step {
        if !self.is_live(sid, inc) {
            return Ok(());
        }
        let fsync = self.rng.random_range(1..4);
        let live = self.nodes[Self::idx(sid)].live.as_mut().expect("live");
        match live.storage.commit_next() {
            Some(report) => {
                if let Err(e) = &report.result {
                    return Err(format!("server {sid}'s store failed: {e}"));
                }
                live.in_flight_entries = report.entries;
                self.at(self.now + fsync, Event::DiskDone { sid, inc, report });
                Ok(())
            }
            None => {
                live.disk_busy = false;
                Ok(())
            }
        }
    }
}
