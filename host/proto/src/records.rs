//! Jute data records of the client protocol: headers, Stat, ACL/Id, connect records, watcher events,
//! and the small enumerations (create modes, event types, watcher types, permissions).

use crate::jute::{DecodeError, Reader, Writer};

/// A transaction id: `epoch << 32 | counter`.
pub type Zxid = i64;

/// Builds a zxid from an epoch and a counter.
pub fn make_zxid(epoch: u32, counter: u32) -> Zxid {
    ((epoch as i64) << 32) | counter as i64
}

/// The epoch half of a zxid.
pub fn zxid_epoch(zxid: Zxid) -> u32 {
    (zxid >> 32) as u32
}

/// The counter half of a zxid.
pub fn zxid_counter(zxid: Zxid) -> u32 {
    zxid as u32
}

/// Special xids (ClientCnxn constants).
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Permission bits of an ACL entry (`ZooDefs.Perms`).
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

/// `RequestHeader{int xid; int type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl RequestHeader {
    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(RequestHeader {
            xid: r.read_i32()?,
            op: r.read_i32()?,
        })
    }
    pub fn write(&self, w: &mut Writer) {
        w.i32(self.xid).i32(self.op);
    }
}

/// `ReplyHeader{int xid; long zxid; int err}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: Zxid,
    pub err: i32,
}

impl ReplyHeader {
    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: r.read_i32()?,
            zxid: r.read_i64()?,
            err: r.read_i32()?,
        })
    }
    pub fn write(&self, w: &mut Writer) {
        w.i32(self.xid).i64(self.zxid).i32(self.err);
    }
}

/// The client-visible `Stat` (68 bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: Zxid,
}

impl Stat {
    pub const ENCODED_LEN: usize = 68;

    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Stat {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            data_length: r.read_i32()?,
            num_children: r.read_i32()?,
            pzxid: r.read_i64()?,
        })
    }

    pub fn write(&self, w: &mut Writer) {
        w.i64(self.czxid)
            .i64(self.mzxid)
            .i64(self.ctime)
            .i64(self.mtime)
            .i32(self.version)
            .i32(self.cversion)
            .i32(self.aversion)
            .i64(self.ephemeral_owner)
            .i32(self.data_length)
            .i32(self.num_children)
            .i64(self.pzxid);
    }
}

/// `Id{ustring scheme; ustring id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }
    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Id {
            scheme: r.read_string()?,
            id: r.read_string()?,
        })
    }
    pub fn write(&self, w: &mut Writer) {
        w.string(&self.scheme).string(&self.id);
    }
}

/// `ACL{int perms; Id id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Self {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    /// `ZooDefs.Ids.OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, "world", "anyone")]
    }

    /// `ZooDefs.Ids.READ_ACL_UNSAFE`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::READ, "world", "anyone")]
    }

    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id::read(r)?,
        })
    }

    pub fn write(&self, w: &mut Writer) {
        w.i32(self.perms);
        self.id.write(w);
    }

    pub fn read_vec(r: &mut Reader) -> Result<Vec<Acl>, DecodeError> {
        let n = r.read_vec_len(12)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(Acl::read(r)?);
        }
        Ok(v)
    }

    pub fn write_vec(acl: &[Acl], w: &mut Writer) {
        w.i32(acl.len() as i32);
        for a in acl {
            a.write(w);
        }
    }
}

/// Client-side create mode (`CreateMode.fromFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        Some(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    pub fn flags(self) -> i32 {
        match self {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
            CreateMode::Container => 4,
            CreateMode::PersistentWithTtl => 5,
            CreateMode::PersistentSequentialWithTtl => 6,
        }
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// `Watcher.Event.EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    None = -1,
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
    DataWatchRemoved = 5,
    ChildWatchRemoved = 6,
    PersistentWatchRemoved = 7,
}

impl EventType {
    pub fn from_code(c: i32) -> Option<EventType> {
        Some(match c {
            -1 => EventType::None,
            1 => EventType::NodeCreated,
            2 => EventType::NodeDeleted,
            3 => EventType::NodeDataChanged,
            4 => EventType::NodeChildrenChanged,
            5 => EventType::DataWatchRemoved,
            6 => EventType::ChildWatchRemoved,
            7 => EventType::PersistentWatchRemoved,
            _ => return None,
        })
    }
}

/// `Watcher.Event.KeeperState.SyncConnected`, the state of every server-generated event.
pub const KEEPER_STATE_SYNC_CONNECTED: i32 = 3;

/// `WatcherEvent{int type; int state; ustring path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(WatcherEvent {
            event_type: r.read_i32()?,
            state: r.read_i32()?,
            path: r.read_string()?,
        })
    }
    pub fn write(&self, w: &mut Writer) {
        w.i32(self.event_type).i32(self.state).string(&self.path);
    }
}

/// `WatcherType` of checkWatches/removeWatches.
pub mod watcher_type {
    pub const CHILDREN: i32 = 1;
    pub const DATA: i32 = 2;
    pub const ANY: i32 = 3;
    pub const PERSISTENT: i32 = 4;
    pub const PERSISTENT_RECURSIVE: i32 = 5;
}

/// `AddWatchMode` of addWatch.
pub mod add_watch_mode {
    pub const PERSISTENT: i32 = 0;
    pub const PERSISTENT_RECURSIVE: i32 = 1;
}

/// `ConnectRequest` (no RequestHeader). `read_only` is `None` when the client omitted the byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: Zxid,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// Decodes a whole handshake frame payload; the trailing readOnly byte is optional.
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame);
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let timeout = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer()?.unwrap_or_default().to_vec();
        let read_only = if r.is_empty() {
            None
        } else {
            Some(r.read_bool()?)
        };
        r.finish()?;
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout,
            session_id,
            passwd,
            read_only,
        })
    }

    pub fn encode_frame(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let m = w.begin_frame();
        w.i32(self.protocol_version)
            .i64(self.last_zxid_seen)
            .i32(self.timeout)
            .i64(self.session_id)
            .buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.end_frame(m);
        w.into_inner()
    }
}

/// `ConnectResponse` (no ReplyHeader). `read_only` is echoed only if the request carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// The reply to an expired, unknown or wrongly authenticated session resume.
    pub fn expired(read_only: Option<bool>) -> Self {
        ConnectResponse {
            protocol_version: 0,
            timeout: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: read_only.map(|_| false),
        }
    }

    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame);
        let protocol_version = r.read_i32()?;
        let timeout = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer()?.unwrap_or_default().to_vec();
        let read_only = if r.is_empty() {
            None
        } else {
            Some(r.read_bool()?)
        };
        r.finish()?;
        Ok(ConnectResponse {
            protocol_version,
            timeout,
            session_id,
            passwd,
            read_only,
        })
    }

    pub fn encode_frame(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48);
        let m = w.begin_frame();
        w.i32(self.protocol_version)
            .i32(self.timeout)
            .i64(self.session_id)
            .buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.end_frame(m);
        w.into_inner()
    }
}

/// `ClientInfo{ustring authScheme; ustring user}` of whoAmI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_68_bytes_in_field_order() {
        let s = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut w = Writer::new();
        s.write(&mut w);
        assert_eq!(w.buf.len(), Stat::ENCODED_LEN);
        assert_eq!(&w.buf[0..8], &1i64.to_be_bytes());
        assert_eq!(&w.buf[60..68], &11i64.to_be_bytes());
        assert_eq!(Stat::read(&mut Reader::new(&w.buf)).unwrap(), s);
    }

    #[test]
    fn connect_response_with_read_only_is_41_bytes_framed_for_the_c_client() {
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout: 30000,
            session_id: 0x1234,
            passwd: vec![7; 16],
            read_only: Some(false),
        };
        let f = resp.encode_frame();
        assert_eq!(f.len(), 41);
        assert_eq!(&f[..4], &[0, 0, 0, 0x25]);
        assert_eq!(ConnectResponse::decode(&f[4..]).unwrap(), resp);
    }

    #[test]
    fn connect_request_read_only_byte_is_optional() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: 10000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        let f = req.encode_frame();
        assert_eq!(f.len(), 4 + 45);
        assert_eq!(ConnectRequest::decode(&f[4..]).unwrap(), req);
        req.read_only = None;
        let f = req.encode_frame();
        assert_eq!(f.len(), 4 + 44);
        assert_eq!(ConnectRequest::decode(&f[4..]).unwrap().read_only, None);
    }

    #[test]
    fn zxid_halves() {
        let z = make_zxid(3, 17);
        assert_eq!(z, 0x0000_0003_0000_0011);
        assert_eq!(zxid_epoch(z), 3);
        assert_eq!(zxid_counter(z), 17);
    }
}
