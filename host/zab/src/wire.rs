//! The peer wire formats, pure: election notifications and the election handshake as ZooKeeper
//! writes them (zab-reference.md §2.1, §2.2), and quorum packets in ZooKeeper's `QuorumPacket`
//! shape and numbering (§3.1), each in a length-prefixed frame. Decoding never panics and never
//! trusts a length: a malformed frame is an error that closes that link only.
//!
//! Quorum frames are `u32 length` + a jute `QuorumPacket` (`int type, long zxid, buffer data,
//! vector authinfo` — authinfo always null here: REQUEST forwarding carries it in `data`). SNAP is
//! followed by the snapshot as wazoo's own chunk frames (types 100 and 101, the last one), so that
//! no frame is larger than a chunk; ZooKeeper instead streams the raw snapshot after SNAP.

use crate::election::{Notification, PeerState, Vote};
use crate::peer::Packet;
use crate::{Sid, Zxid};

/// Election frames above this are refused (ZooKeeper's 512 KiB).
pub const MAX_ELECTION_FRAME: usize = 512 * 1024;
/// The protocol version a notification carries (with the config field).
const NOTIFICATION_VERSION: i32 = 2;
/// `QuorumCnxManager`'s V1 handshake marker.
const HANDSHAKE_V1: i64 = -65536;
/// `LearnerInfo.protocolVersion` / LEADERINFO's data.
const PROTOCOL_VERSION: i32 = 0x10000;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame truncated: {need} bytes needed, {have} present")]
    Truncated { need: usize, have: usize },
    #[error("frame length {0} is out of bounds")]
    BadLength(i64),
    #[error("unknown quorum packet type {0}")]
    UnknownType(i32),
    #[error("unknown election state {0}")]
    UnknownState(i32),
    #[error("bad handshake: {0}")]
    Handshake(&'static str),
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let have = self.buf.len() - self.at;
        if n > have {
            return Err(WireError::Truncated { need: n, have });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }
}

/// Splits one length-prefixed frame off the front of `buf`: `Ok(None)` until it is complete;
/// the body and the bytes consumed once it is.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes(buf[..4].try_into().expect("4 bytes"));
    if len <= 0 || len as usize > max {
        return Err(WireError::BadLength(len.into()));
    }
    let end = 4 + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((&buf[4..end], end)))
}

fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn state_code(s: PeerState) -> i32 {
    match s {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

/// Appends a framed notification (the current form: version 2, an empty config).
pub fn encode_notification(n: &Notification, out: &mut Vec<u8>) {
    frame(out, |b| {
        b.extend_from_slice(&state_code(n.state).to_be_bytes());
        b.extend_from_slice(&(n.vote.leader as i64).to_be_bytes());
        b.extend_from_slice(&n.vote.zxid.to_be_bytes());
        b.extend_from_slice(&(n.round as i64).to_be_bytes());
        b.extend_from_slice(&(n.vote.peer_epoch as i64).to_be_bytes());
        b.extend_from_slice(&NOTIFICATION_VERSION.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
    });
}

/// Decodes a notification body from `from` (the sid of the link's handshake). Older forms are
/// read as ZooKeeper reads them: 28 bytes have no peerEpoch (the zxid's epoch stands in).
pub fn decode_notification(from: Sid, body: &[u8]) -> Result<Notification, WireError> {
    let mut r = Reader::new(body);
    let state = match r.i32()? {
        0 => PeerState::Looking,
        1 => PeerState::Following,
        2 => PeerState::Leading,
        3 => PeerState::Observing,
        s => return Err(WireError::UnknownState(s)),
    };
    let leader = r.i64()? as Sid;
    let zxid = r.i64()?;
    let round = r.i64()? as u64;
    let peer_epoch = if r.remaining() >= 8 {
        r.i64()? as u64
    } else {
        (zxid >> 32) as u64
    };
    if r.remaining() >= 4 {
        let version = r.i32()?;
        if version > 1 {
            let len = r.i32()?;
            if len < 0 {
                return Err(WireError::BadLength(len.into()));
            }
            r.take(len as usize)?; // the dynamic config: reconfig is out of scope
        }
    }
    Ok(Notification {
        from,
        state,
        vote: Vote {
            leader,
            zxid,
            peer_epoch,
        },
        round,
    })
}

/// The election handshake a dialler sends (V1: marker, sid, its election address).
pub fn encode_handshake(sid: Sid, addr: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&HANDSHAKE_V1.to_be_bytes());
    out.extend_from_slice(&(sid as i64).to_be_bytes());
    out.extend_from_slice(&(addr.len() as i32).to_be_bytes());
    out.extend_from_slice(addr.as_bytes());
}

/// Reads a handshake off the front of `buf`: `Ok(None)` until complete; the peer's sid, its
/// address (empty in the old bare-sid form) and the bytes consumed.
pub fn decode_handshake(buf: &[u8]) -> Result<Option<(Sid, String, usize)>, WireError> {
    let mut r = Reader::new(buf);
    let Ok(first) = r.i64() else { return Ok(None) };
    if first >= 0 {
        return Ok(Some((first as Sid, String::new(), 8)));
    }
    if first != HANDSHAKE_V1 && first != HANDSHAKE_V1 + 1 {
        return Err(WireError::Handshake("unknown protocol version"));
    }
    let Ok(sid) = r.i64() else { return Ok(None) };
    let Ok(len) = r.i32() else { return Ok(None) };
    if !(0..=1024).contains(&len) {
        return Err(WireError::Handshake("address length out of bounds"));
    }
    let Ok(addr) = r.take(len as usize) else {
        return Ok(None);
    };
    let addr = std::str::from_utf8(addr).map_err(|_| WireError::Handshake("address not UTF-8"))?;
    if sid < 0 {
        return Err(WireError::Handshake("negative sid"));
    }
    Ok(Some((sid as Sid, addr.to_string(), r.at)))
}

/// A decoded quorum frame.
#[derive(Debug, PartialEq, Eq)]
pub enum QuorumFrame<'a> {
    /// A packet and its data (the txn of PROPOSAL/INFORM, the sender's sid in FOLLOWERINFO's
    /// LearnerInfo, a PING's session table).
    Packet { packet: Packet, data: &'a [u8] },
    /// A piece of the snapshot that follows SNAP; `last` closes it.
    SnapChunk { last: bool, data: &'a [u8] },
    /// A recipe call forwarded by a learner, or (`reply`) the leader's reply frames for one.
    Recipe { reply: bool, data: &'a [u8] },
}

const SNAP_CHUNK: i32 = 100;
const SNAP_LAST: i32 = 101;
/// wazoo's recipe calls between members (docs/recipes.md, "Recipes in an ensemble"): a
/// learner's client's call to the leader, and the leader's reply frames back. Never seen by the
/// peer: calls are not numbered (a call is not one txn).
const RECIPE_CALL: i32 = 110;
const RECIPE_REPLY: i32 = 111;

fn quorum(out: &mut Vec<u8>, ty: i32, zxid: Zxid, data: &[u8]) {
    frame(out, |b| {
        b.extend_from_slice(&ty.to_be_bytes());
        b.extend_from_slice(&zxid.to_be_bytes());
        if data.is_empty() {
            b.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            b.extend_from_slice(&(data.len() as i32).to_be_bytes());
            b.extend_from_slice(data);
        }
        b.extend_from_slice(&(-1i32).to_be_bytes()); // authinfo: null
    });
}

/// Appends a framed packet. `data` is the payload where the packet has one (the txn of
/// PROPOSAL and INFORM, the request of REQUEST, a PING's session table); FOLLOWERINFO's LearnerInfo and the small fixed
/// data of LEADERINFO and ACKEPOCH are written here from `sid` and the packet itself.
pub fn encode_packet(packet: &Packet, sid: Sid, data: &[u8], out: &mut Vec<u8>) {
    let epoch_zxid = |e: u64| (e as Zxid) << 32;
    match *packet {
        Packet::FollowerInfo {
            accepted_epoch,
            observer,
        } => {
            let mut info = Vec::with_capacity(20);
            info.extend_from_slice(&(sid as i64).to_be_bytes());
            info.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
            info.extend_from_slice(&0i64.to_be_bytes());
            let ty = if observer { 16 } else { 11 };
            quorum(out, ty, epoch_zxid(accepted_epoch), &info)
        }
        Packet::LeaderInfo { epoch } => {
            quorum(out, 17, epoch_zxid(epoch), &PROTOCOL_VERSION.to_be_bytes())
        }
        Packet::AckEpoch {
            last_zxid,
            current_epoch,
        } => {
            let e = current_epoch.map_or(-1, |e| e as i32);
            quorum(out, 18, last_zxid, &e.to_be_bytes())
        }
        Packet::Proposal(z) => quorum(out, 2, z, data),
        Packet::Ack(z) => quorum(out, 3, z, &[]),
        Packet::Commit(z) => quorum(out, 4, z, &[]),
        Packet::Ping => quorum(out, 5, 0, data),
        Packet::Inform(z) => quorum(out, 8, z, data),
        Packet::NewLeader(z) => quorum(out, 10, z, &[]),
        Packet::UpToDate => quorum(out, 12, -1, &[]),
        Packet::Diff(z) => quorum(out, 13, z, &[]),
        Packet::Trunc(z) => quorum(out, 14, z, &[]),
        Packet::Snap(z) => quorum(out, 15, z, &[]),
        // ZooKeeper sends zxid −1 with REQUEST and 0 with SYNC; wazoo's peers carry the
        // learner's id for the request there, to match the answer.
        Packet::Request { id } => quorum(out, 1, id as Zxid, data),
        Packet::Sync { id } => quorum(out, 7, id as Zxid, &[]),
    }
}

/// Appends a framed recipe call (learner to leader) or reply (leader to learner).
pub fn encode_recipe_frame(reply: bool, data: &[u8], out: &mut Vec<u8>) {
    quorum(out, if reply { RECIPE_REPLY } else { RECIPE_CALL }, 0, data);
}

/// Appends a framed piece of a snapshot.
pub fn encode_snap_chunk(last: bool, data: &[u8], out: &mut Vec<u8>) {
    quorum(out, if last { SNAP_LAST } else { SNAP_CHUNK }, 0, data);
}

/// The sender's sid in FOLLOWERINFO / OBSERVERINFO data (`LearnerInfo.serverid`).
pub fn learner_sid(data: &[u8]) -> Result<Sid, WireError> {
    let sid = Reader::new(data).i64()?;
    if sid < 0 {
        return Err(WireError::Handshake("negative sid in LearnerInfo"));
    }
    Ok(sid as Sid)
}

/// Decodes a quorum frame's body.
pub fn decode_packet(body: &[u8]) -> Result<QuorumFrame<'_>, WireError> {
    let mut r = Reader::new(body);
    let ty = r.i32()?;
    let zxid = r.i64()?;
    let len = r.i32()?;
    let data: &[u8] = match len {
        -1 => &[],
        l if l < 0 => return Err(WireError::BadLength(l.into())),
        l => r.take(l as usize)?,
    };
    let auth = r.i32()?;
    if auth != -1 && auth != 0 {
        return Err(WireError::BadLength(auth.into()));
    }
    let epoch = |z: Zxid| (z >> 32) as u64;
    let small_int = |d: &[u8]| -> Result<i32, WireError> { Reader::new(d).i32() };
    let packet = match ty {
        1 => Packet::Request { id: zxid as u64 },
        7 => Packet::Sync { id: zxid as u64 },
        2 => Packet::Proposal(zxid),
        3 => Packet::Ack(zxid),
        4 => Packet::Commit(zxid),
        5 => Packet::Ping,
        8 => Packet::Inform(zxid),
        10 => Packet::NewLeader(zxid),
        11 | 16 => {
            learner_sid(data)?;
            Packet::FollowerInfo {
                accepted_epoch: epoch(zxid),
                observer: ty == 16,
            }
        }
        12 => Packet::UpToDate,
        13 => Packet::Diff(zxid),
        14 => Packet::Trunc(zxid),
        15 => Packet::Snap(zxid),
        17 => Packet::LeaderInfo { epoch: epoch(zxid) },
        18 => {
            let e = small_int(data)?;
            Packet::AckEpoch {
                last_zxid: zxid,
                current_epoch: (e >= 0).then_some(e as u64),
            }
        }
        SNAP_CHUNK | SNAP_LAST => {
            return Ok(QuorumFrame::SnapChunk {
                last: ty == SNAP_LAST,
                data,
            })
        }
        RECIPE_CALL | RECIPE_REPLY => {
            return Ok(QuorumFrame::Recipe {
                reply: ty == RECIPE_REPLY,
                data,
            })
        }
        t => return Err(WireError::UnknownType(t)),
    };
    Ok(QuorumFrame::Packet { packet, data })
}

#[cfg(test)]
#[path = "wire_test.rs"]
mod tests;
