//! Client requests: opcodes (`ZooDefs.OpCode`), the decoded [`Request`] enum, and its encoding.
//!
//! `decode_request` parses one frame payload (RequestHeader + record). It never panics; an unknown
//! opcode is not a decode error but [`Request::Unknown`], which the server answers with
//! `UNIMPLEMENTED` and a close, as ZooKeeper does.

use crate::error::ErrorCode;
use crate::jute::{DecodeError, Reader, Writer};
use crate::records::{Acl, RequestHeader};

/// `ZooDefs.OpCode`.
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    /// wazoo's own: call a server-side recipe (docs/recipes.md, "Wire"). A ZooKeeper server
    /// answers it UNIMPLEMENTED and closes the connection, so a client can tell.
    pub const RECIPE_CALL: i32 = 1000;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;

    /// Whether ZooKeeper handles the opcode as a state change (prep + txn), even when its record
    /// cannot be decoded.
    pub fn is_write(code: i32) -> bool {
        matches!(
            code,
            CREATE
                | DELETE
                | SET_DATA
                | SET_ACL
                | MULTI
                | CREATE2
                | RECONFIG
                | CREATE_CONTAINER
                | DELETE_CONTAINER
                | CREATE_TTL
                | CLOSE_SESSION
        )
    }

    /// The name ZooKeeper's metrics and `cons` use for an opcode.
    pub fn name(code: i32) -> &'static str {
        match code {
            NOTIFICATION => "notification",
            CREATE => "create",
            DELETE => "delete",
            EXISTS => "exists",
            GET_DATA => "getData",
            SET_DATA => "setData",
            GET_ACL => "getACL",
            SET_ACL => "setACL",
            GET_CHILDREN => "getChildren",
            SYNC => "sync",
            PING => "ping",
            GET_CHILDREN2 => "getChildren2",
            CHECK => "check",
            MULTI => "multi",
            CREATE2 => "create2",
            RECONFIG => "reconfig",
            CHECK_WATCHES => "checkWatches",
            REMOVE_WATCHES => "removeWatches",
            CREATE_CONTAINER => "createContainer",
            DELETE_CONTAINER => "deleteContainer",
            CREATE_TTL => "createTTL",
            MULTI_READ => "multiRead",
            AUTH => "auth",
            SET_WATCHES => "setWatches",
            SASL => "sasl",
            GET_EPHEMERALS => "getEphemerals",
            GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
            SET_WATCHES2 => "setWatches2",
            ADD_WATCH => "addWatch",
            WHO_AM_I => "whoAmI",
            RECIPE_CALL => "recipeCall",
            CREATE_SESSION => "createSession",
            CLOSE_SESSION => "closeSession",
            ERROR => "error",
            _ => "unknown",
        }
    }
}

/// `CreateRequest` / `CreateTTLRequest`, shared by create, create2, createContainer and createTTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The opcode it arrived with (1, 15, 19 or 21); decides the reply record.
    pub op: i32,
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// Only createTTL carries a ttl; every other opcode reads as -1.
    pub ttl: i64,
}

/// The write sub-operations of a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// The read sub-operations of a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetChildren { path: String, watch: bool },
    GetData { path: String, watch: bool },
}

/// `SetWatches` (101) and `SetWatches2` (105); the persistent lists are empty for 101.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// `RecipeCallRequest` (wazoo's opcode 1000): recipe `recipe`'s `op` with `args` (MessagePack
/// by convention, opaque here). `request_id` names the call across retries; empty for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeCall {
    pub recipe: String,
    pub op: String,
    pub args: Vec<u8>,
    pub request_id: String,
}

/// A decoded client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    /// A top-level check: not a valid request on its own (answered UNIMPLEMENTED + close).
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    Reconfig {
        joining: String,
        leaving: String,
        new_members: String,
        config_id: i64,
    },
    CheckWatches {
        path: String,
        watch_type: i32,
    },
    RemoveWatches {
        path: String,
        watch_type: i32,
    },
    DeleteContainer {
        path: String,
    },
    Auth {
        auth_type: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    SetWatches(SetWatches),
    Sasl {
        token: Vec<u8>,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
    RecipeCall(RecipeCall),
    /// An opcode this protocol does not accept from clients.
    Unknown(i32),
}

/// Why a request frame was rejected. `Marshalling` maps to `MARSHALLINGERROR` (-5), as ZooKeeper
/// answers an undecodable record; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("frame too short for a request header: {0}")]
    Header(DecodeError),
    #[error("undecodable {op} request: {err}")]
    Marshalling { op: &'static str, err: DecodeError },
}

impl RequestError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::MarshallingError
    }
}

impl Request {
    pub fn opcode(&self) -> i32 {
        match self {
            Request::Create(c) => c.op,
            Request::Delete { .. } => op::DELETE,
            Request::Exists { .. } => op::EXISTS,
            Request::GetData { .. } => op::GET_DATA,
            Request::SetData { .. } => op::SET_DATA,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl { .. } => op::SET_ACL,
            Request::GetChildren { .. } => op::GET_CHILDREN,
            Request::GetChildren2 { .. } => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Ping => op::PING,
            Request::Check { .. } => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig { .. } => op::RECONFIG,
            Request::CheckWatches { .. } => op::CHECK_WATCHES,
            Request::RemoveWatches { .. } => op::REMOVE_WATCHES,
            Request::DeleteContainer { .. } => op::DELETE_CONTAINER,
            Request::Auth { .. } => op::AUTH,
            Request::SetWatches(s) => {
                if s.persistent.is_empty() && s.persistent_recursive.is_empty() {
                    op::SET_WATCHES
                } else {
                    op::SET_WATCHES2
                }
            }
            Request::Sasl { .. } => op::SASL,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch { .. } => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
            Request::RecipeCall(_) => op::RECIPE_CALL,
            Request::Unknown(c) => *c,
        }
    }

    /// Whether the request changes state and must go through prep and the log.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Multi(_)
                | Request::DeleteContainer { .. }
                | Request::CloseSession
                | Request::Reconfig { .. }
        )
    }
}

fn read_create(r: &mut Reader, op: i32) -> Result<CreateRequest, DecodeError> {
    let path = r.read_path()?;
    let data = r.read_buffer()?.map(<[u8]>::to_vec);
    let acl = Acl::read_vec(r)?;
    let flags = r.read_i32()?;
    let ttl = if op == op::CREATE_TTL {
        r.read_i64()?
    } else {
        -1
    };
    Ok(CreateRequest {
        op,
        path,
        data,
        acl,
        flags,
        ttl,
    })
}

fn read_path_watch(r: &mut Reader) -> Result<(String, bool), DecodeError> {
    Ok((r.read_path()?, r.read_bool()?))
}

/// Reads MultiHeader-delimited sub-requests until the `done` header.
fn read_multi_headers<T>(
    r: &mut Reader,
    mut item: impl FnMut(i32, &mut Reader) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let typ = r.read_i32()?;
        let done = r.read_bool()?;
        let _err = r.read_i32()?;
        if done {
            return Ok(ops);
        }
        ops.push(item(typ, r)?);
    }
}

fn read_body(op_code: i32, r: &mut Reader) -> Result<Request, DecodeError> {
    Ok(match op_code {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            Request::Create(read_create(r, op_code)?)
        }
        op::DELETE => Request::Delete {
            path: r.read_path()?,
            version: r.read_i32()?,
        },
        op::EXISTS => {
            let (path, watch) = read_path_watch(r)?;
            Request::Exists { path, watch }
        }
        op::GET_DATA => {
            let (path, watch) = read_path_watch(r)?;
            Request::GetData { path, watch }
        }
        op::SET_DATA => Request::SetData {
            path: r.read_path()?,
            data: r.read_buffer()?.map(<[u8]>::to_vec),
            version: r.read_i32()?,
        },
        op::GET_ACL => Request::GetAcl {
            path: r.read_path()?,
        },
        op::SET_ACL => Request::SetAcl {
            path: r.read_path()?,
            acl: Acl::read_vec(r)?,
            version: r.read_i32()?,
        },
        op::GET_CHILDREN => {
            let (path, watch) = read_path_watch(r)?;
            Request::GetChildren { path, watch }
        }
        op::GET_CHILDREN2 => {
            let (path, watch) = read_path_watch(r)?;
            Request::GetChildren2 { path, watch }
        }
        op::SYNC => Request::Sync {
            path: r.read_path()?,
        },
        op::PING => Request::Ping,
        op::CHECK => Request::Check {
            path: r.read_path()?,
            version: r.read_i32()?,
        },
        op::MULTI => {
            let ops = read_multi_headers(r, |typ, r| {
                Ok(match typ {
                    op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                        MultiOp::Create(read_create(r, typ)?)
                    }
                    op::DELETE => MultiOp::Delete {
                        path: r.read_path()?,
                        version: r.read_i32()?,
                    },
                    op::SET_DATA => MultiOp::SetData {
                        path: r.read_path()?,
                        data: r.read_buffer()?.map(<[u8]>::to_vec),
                        version: r.read_i32()?,
                    },
                    op::CHECK => MultiOp::Check {
                        path: r.read_path()?,
                        version: r.read_i32()?,
                    },
                    other => {
                        return Err(DecodeError::BadValue {
                            what: "multi sub-op type",
                            value: other as i64,
                        })
                    }
                })
            })?;
            Request::Multi(ops)
        }
        op::MULTI_READ => {
            let ops = read_multi_headers(r, |typ, r| {
                let (path, watch) = read_path_watch(r)?;
                Ok(match typ {
                    op::GET_CHILDREN => ReadOp::GetChildren { path, watch },
                    op::GET_DATA => ReadOp::GetData { path, watch },
                    other => {
                        return Err(DecodeError::BadValue {
                            what: "multiRead sub-op type",
                            value: other as i64,
                        })
                    }
                })
            })?;
            Request::MultiRead(ops)
        }
        op::RECONFIG => Request::Reconfig {
            joining: r.read_string()?,
            leaving: r.read_string()?,
            new_members: r.read_string()?,
            config_id: r.read_i64()?,
        },
        op::CHECK_WATCHES => Request::CheckWatches {
            path: r.read_path()?,
            watch_type: r.read_i32()?,
        },
        op::REMOVE_WATCHES => Request::RemoveWatches {
            path: r.read_path()?,
            watch_type: r.read_i32()?,
        },
        op::DELETE_CONTAINER => Request::DeleteContainer {
            path: r.read_path()?,
        },
        op::AUTH => Request::Auth {
            auth_type: r.read_i32()?,
            scheme: r.read_string()?,
            auth: r.read_buffer()?.unwrap_or_default().to_vec(),
        },
        op::SET_WATCHES | op::SET_WATCHES2 => {
            let mut s = SetWatches {
                relative_zxid: r.read_i64()?,
                data: r.read_string_vec()?,
                exist: r.read_string_vec()?,
                child: r.read_string_vec()?,
                ..SetWatches::default()
            };
            if op_code == op::SET_WATCHES2 {
                s.persistent = r.read_string_vec()?;
                s.persistent_recursive = r.read_string_vec()?;
            }
            Request::SetWatches(s)
        }
        op::SASL => Request::Sasl {
            token: r.read_buffer()?.unwrap_or_default().to_vec(),
        },
        op::GET_EPHEMERALS => Request::GetEphemerals {
            prefix: r.read_string()?,
        },
        op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
            path: r.read_path()?,
        },
        op::ADD_WATCH => Request::AddWatch {
            path: r.read_path()?,
            mode: r.read_i32()?,
        },
        op::WHO_AM_I => Request::WhoAmI,
        op::CLOSE_SESSION => Request::CloseSession,
        op::RECIPE_CALL => Request::RecipeCall(RecipeCall {
            recipe: r.read_string()?,
            op: r.read_string()?,
            args: r.read_buffer()?.unwrap_or_default().to_vec(),
            request_id: r.read_string()?,
        }),
        other => Request::Unknown(other),
    })
}

/// Decodes one request frame payload (without the 4-byte length).
///
/// Trailing bytes after a well-formed record are tolerated, as Java's archive does (it reads the
/// fields it needs and ignores the rest of the buffer).
pub fn decode_request(frame: &[u8]) -> Result<(RequestHeader, Request), RequestError> {
    let mut r = Reader::new(frame);
    let header = RequestHeader::read(&mut r).map_err(RequestError::Header)?;
    let req = read_body(header.op, &mut r).map_err(|err| RequestError::Marshalling {
        op: op::name(header.op),
        err,
    })?;
    Ok((header, req))
}

fn write_create(c: &CreateRequest, w: &mut Writer) {
    w.string(&c.path).buffer(c.data.as_deref());
    Acl::write_vec(&c.acl, w);
    w.i32(c.flags);
    if c.op == op::CREATE_TTL {
        w.i64(c.ttl);
    }
}

fn write_multi_header(w: &mut Writer, typ: i32, done: bool) {
    w.i32(typ).bool(done).i32(-1);
}

impl Request {
    /// Writes the request record (without header).
    pub fn write_body(&self, w: &mut Writer) {
        match self {
            Request::Create(c) => write_create(c, w),
            Request::Delete { path, version } | Request::Check { path, version } => {
                w.string(path).i32(*version);
            }
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch }
            | Request::GetChildren2 { path, watch } => {
                w.string(path).bool(*watch);
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                w.string(path).buffer(data.as_deref()).i32(*version);
            }
            Request::GetAcl { path }
            | Request::Sync { path }
            | Request::DeleteContainer { path }
            | Request::GetAllChildrenNumber { path } => {
                w.string(path);
            }
            Request::GetEphemerals { prefix } => {
                w.string(prefix);
            }
            Request::SetAcl { path, acl, version } => {
                w.string(path);
                Acl::write_vec(acl, w);
                w.i32(*version);
            }
            Request::Ping | Request::WhoAmI | Request::CloseSession | Request::Unknown(_) => {}
            Request::Multi(ops) => {
                for o in ops {
                    match o {
                        MultiOp::Create(c) => {
                            write_multi_header(w, c.op, false);
                            write_create(c, w);
                        }
                        MultiOp::Delete { path, version } => {
                            write_multi_header(w, op::DELETE, false);
                            w.string(path).i32(*version);
                        }
                        MultiOp::SetData {
                            path,
                            data,
                            version,
                        } => {
                            write_multi_header(w, op::SET_DATA, false);
                            w.string(path).buffer(data.as_deref()).i32(*version);
                        }
                        MultiOp::Check { path, version } => {
                            write_multi_header(w, op::CHECK, false);
                            w.string(path).i32(*version);
                        }
                    }
                }
                write_multi_header(w, -1, true);
            }
            Request::MultiRead(ops) => {
                for o in ops {
                    let (typ, path, watch) = match o {
                        ReadOp::GetChildren { path, watch } => (op::GET_CHILDREN, path, watch),
                        ReadOp::GetData { path, watch } => (op::GET_DATA, path, watch),
                    };
                    write_multi_header(w, typ, false);
                    w.string(path).bool(*watch);
                }
                write_multi_header(w, -1, true);
            }
            Request::Reconfig {
                joining,
                leaving,
                new_members,
                config_id,
            } => {
                w.string(joining)
                    .string(leaving)
                    .string(new_members)
                    .i64(*config_id);
            }
            Request::CheckWatches { path, watch_type }
            | Request::RemoveWatches { path, watch_type } => {
                w.string(path).i32(*watch_type);
            }
            Request::Auth {
                auth_type,
                scheme,
                auth,
            } => {
                w.i32(*auth_type).string(scheme).buffer(Some(auth));
            }
            Request::SetWatches(s) => {
                w.i64(s.relative_zxid)
                    .string_vec(&s.data)
                    .string_vec(&s.exist)
                    .string_vec(&s.child);
                if self.opcode() == op::SET_WATCHES2 {
                    w.string_vec(&s.persistent)
                        .string_vec(&s.persistent_recursive);
                }
            }
            Request::Sasl { token } => {
                w.buffer(Some(token));
            }
            Request::RecipeCall(c) => {
                w.string(&c.recipe)
                    .string(&c.op)
                    .buffer(Some(&c.args))
                    .string(&c.request_id);
            }
            Request::AddWatch { path, mode } => {
                w.string(path).i32(*mode);
            }
        }
    }

    /// Encodes a whole frame: length, RequestHeader{xid, opcode}, record.
    pub fn encode_frame(&self, xid: i32) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        let m = w.begin_frame();
        RequestHeader {
            xid,
            op: self.opcode(),
        }
        .write(&mut w);
        self.write_body(&mut w);
        w.end_frame(m);
        w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zk-protocol.md §4.6: create "/a" with data "x", OPEN_ACL_UNSAFE, persistent, xid 1.
    #[test]
    fn create_request_matches_the_reference_bytes() {
        let hex = "00000032000000010000000100000002\
                   2f61000000017800000001000000 1f00000005776f726c6400000006616e796f6e6500000000";
        let expected: Vec<u8> = (0..hex.replace(' ', "").len() / 2)
            .map(|i| u8::from_str_radix(&hex.replace(' ', "")[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let req = Request::Create(CreateRequest {
            op: op::CREATE,
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        });
        assert_eq!(req.encode_frame(1), expected);
        let (h, back) = decode_request(&expected[4..]).unwrap();
        assert_eq!(h, RequestHeader { xid: 1, op: 1 });
        assert_eq!(back, req);
    }

    #[test]
    fn multi_with_unknown_sub_op_is_a_marshalling_error() {
        let mut w = Writer::new();
        RequestHeader {
            xid: 1,
            op: op::MULTI,
        }
        .write(&mut w);
        write_multi_header(&mut w, op::GET_DATA, false);
        w.string("/a").bool(false);
        write_multi_header(&mut w, -1, true);
        let err = decode_request(&w.buf).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MarshallingError);
    }

    #[test]
    fn unknown_and_notification_opcodes_decode_as_unknown() {
        for code in [0, 10, 23, 99, 999, -10] {
            let mut w = Writer::new();
            RequestHeader { xid: 5, op: code }.write(&mut w);
            assert_eq!(decode_request(&w.buf).unwrap().1, Request::Unknown(code));
        }
    }
}
