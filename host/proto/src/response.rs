//! Server replies: the [`Response`] records, multi results, notifications, and frame encoding.
//!
//! An error reply is header-only (clients decode a body only when `err == 0`). The one success reply
//! that surprises reimplementations is addWatch, which carries a 4-byte `ErrorResponse{0}` body.

use crate::error::ErrorCode;
use crate::jute::{DecodeError, Reader, Writer};
use crate::records::{
    xid, Acl, ClientInfo, ReplyHeader, Stat, WatcherEvent, Zxid, KEEPER_STATE_SYNC_CONNECTED,
};
use crate::request::op;

/// The result of one multi or multiRead sub-operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Create { path: String },
    Create2 { path: String, stat: Stat },
    Delete,
    SetData { stat: Stat },
    Check,
    GetChildren { children: Vec<String> },
    GetData { data: Option<Vec<u8>>, stat: Stat },
    Error(i32),
}

/// A success reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Header only (delete, sync-less writes, setWatches, auth, closeSession, checkWatches ...).
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL.
    Stat(Stat),
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    Children(Vec<String>),
    Children2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<OpResult>),
    /// `ErrorResponse{int err}`: the addWatch success body.
    ErrorBody(i32),
    Ephemerals(Vec<String>),
    AllChildrenNumber(i32),
    WhoAmI(Vec<ClientInfo>),
    Sasl {
        token: Vec<u8>,
    },
    /// `RecipeCallResponse`: the recipe committed (`aborted` false; `output` is its result) or
    /// aborted (`output` is its error); its failures are error codes instead.
    RecipeCall {
        aborted: bool,
        output: Vec<u8>,
    },
}

fn write_multi_header(w: &mut Writer, typ: i32, done: bool, err: i32) {
    w.i32(typ).bool(done).i32(err);
}

impl OpResult {
    fn write(&self, w: &mut Writer) {
        match self {
            OpResult::Create { path } => {
                write_multi_header(w, op::CREATE, false, 0);
                w.string(path);
            }
            OpResult::Create2 { path, stat } => {
                write_multi_header(w, op::CREATE2, false, 0);
                w.string(path);
                stat.write(w);
            }
            OpResult::Delete => write_multi_header(w, op::DELETE, false, 0),
            OpResult::SetData { stat } => {
                write_multi_header(w, op::SET_DATA, false, 0);
                stat.write(w);
            }
            OpResult::Check => write_multi_header(w, op::CHECK, false, 0),
            OpResult::GetChildren { children } => {
                write_multi_header(w, op::GET_CHILDREN, false, 0);
                w.string_vec(children);
            }
            OpResult::GetData { data, stat } => {
                write_multi_header(w, op::GET_DATA, false, 0);
                w.buffer(data.as_deref());
                stat.write(w);
            }
            OpResult::Error(code) => {
                write_multi_header(w, op::ERROR, false, *code);
                w.i32(*code);
            }
        }
    }

    fn read(typ: i32, err: i32, r: &mut Reader) -> Result<OpResult, DecodeError> {
        Ok(match typ {
            op::CREATE => OpResult::Create {
                path: r.read_string()?,
            },
            op::CREATE2 => OpResult::Create2 {
                path: r.read_string()?,
                stat: Stat::read(r)?,
            },
            op::DELETE => OpResult::Delete,
            op::SET_DATA => OpResult::SetData {
                stat: Stat::read(r)?,
            },
            op::CHECK => OpResult::Check,
            op::GET_CHILDREN => OpResult::GetChildren {
                children: r.read_string_vec()?,
            },
            op::GET_DATA => OpResult::GetData {
                data: r.read_buffer()?.map(<[u8]>::to_vec),
                stat: Stat::read(r)?,
            },
            op::ERROR => {
                let body = r.read_i32()?;
                OpResult::Error(if err != 0 { err } else { body })
            }
            other => {
                return Err(DecodeError::BadValue {
                    what: "multi result type",
                    value: other as i64,
                })
            }
        })
    }
}

impl Response {
    pub fn write_body(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Create { path } | Response::Sync { path } => {
                w.string(path);
            }
            Response::Create2 { path, stat } => {
                w.string(path);
                stat.write(w);
            }
            Response::Stat(stat) => stat.write(w),
            Response::GetData { data, stat } => {
                w.buffer(data.as_deref());
                stat.write(w);
            }
            Response::GetAcl { acl, stat } => {
                Acl::write_vec(acl, w);
                stat.write(w);
            }
            Response::Children(c) | Response::Ephemerals(c) => {
                w.string_vec(c);
            }
            Response::Children2 { children, stat } => {
                w.string_vec(children);
                stat.write(w);
            }
            Response::Multi(results) => {
                for res in results {
                    res.write(w);
                }
                write_multi_header(w, -1, true, -1);
            }
            Response::ErrorBody(code) | Response::AllChildrenNumber(code) => {
                w.i32(*code);
            }
            Response::WhoAmI(infos) => {
                w.i32(infos.len() as i32);
                for i in infos {
                    w.string(&i.auth_scheme).string(&i.user);
                }
            }
            Response::Sasl { token } => {
                w.buffer(Some(token));
            }
            Response::RecipeCall { aborted, output } => {
                w.i32(i32::from(*aborted)).buffer(Some(output));
            }
        }
    }

    /// Decodes a success body for the request opcode `op_code` (client side).
    pub fn decode_body(op_code: i32, r: &mut Reader) -> Result<Response, DecodeError> {
        Ok(match op_code {
            op::CREATE => Response::Create {
                path: r.read_string()?,
            },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => Response::Create2 {
                path: r.read_string()?,
                stat: Stat::read(r)?,
            },
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::read(r)?),
            op::GET_DATA => Response::GetData {
                data: r.read_buffer()?.map(<[u8]>::to_vec),
                stat: Stat::read(r)?,
            },
            op::GET_ACL => Response::GetAcl {
                acl: Acl::read_vec(r)?,
                stat: Stat::read(r)?,
            },
            op::GET_CHILDREN => Response::Children(r.read_string_vec()?),
            op::GET_CHILDREN2 => Response::Children2 {
                children: r.read_string_vec()?,
                stat: Stat::read(r)?,
            },
            op::SYNC => Response::Sync {
                path: r.read_string()?,
            },
            op::MULTI | op::MULTI_READ => {
                let mut results = Vec::new();
                loop {
                    let typ = r.read_i32()?;
                    let done = r.read_bool()?;
                    let err = r.read_i32()?;
                    if done {
                        break;
                    }
                    results.push(OpResult::read(typ, err, r)?);
                }
                Response::Multi(results)
            }
            op::ADD_WATCH => Response::ErrorBody(r.read_i32()?),
            op::GET_EPHEMERALS => Response::Ephemerals(r.read_string_vec()?),
            op::GET_ALL_CHILDREN_NUMBER => Response::AllChildrenNumber(r.read_i32()?),
            op::WHO_AM_I => {
                let n = r.read_vec_len(8)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(ClientInfo {
                        auth_scheme: r.read_string()?,
                        user: r.read_string()?,
                    });
                }
                Response::WhoAmI(v)
            }
            op::SASL => Response::Sasl {
                token: r.read_buffer()?.unwrap_or_default().to_vec(),
            },
            op::RECIPE_CALL => Response::RecipeCall {
                aborted: r.read_i32()? != 0,
                output: r.read_buffer()?.unwrap_or_default().to_vec(),
            },
            _ => Response::Empty,
        })
    }
}

/// Appends a reply frame (length + header + body if `err == 0`) to `out`.
pub fn encode_reply(out: &mut Writer, xid: i32, zxid: Zxid, result: Result<&Response, ErrorCode>) {
    let m = out.begin_frame();
    match result {
        Ok(resp) => {
            ReplyHeader { xid, zxid, err: 0 }.write(out);
            resp.write_body(out);
        }
        Err(code) => {
            ReplyHeader {
                xid,
                zxid,
                err: code.code(),
            }
            .write(out);
        }
    }
    out.end_frame(m);
}

/// Appends a watch notification frame (xid -1). `zxid` is -1 for 3.8-compatible servers.
pub fn encode_notification(out: &mut Writer, zxid: Zxid, event_type: i32, path: &str) {
    let m = out.begin_frame();
    ReplyHeader {
        xid: xid::NOTIFICATION,
        zxid,
        err: 0,
    }
    .write(out);
    WatcherEvent {
        event_type,
        state: KEEPER_STATE_SYNC_CONNECTED,
        path: path.to_owned(),
    }
    .write(out);
    out.end_frame(m);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_multi_layout_has_header_err_zero_and_error_results() {
        let resp = Response::Multi(vec![
            OpResult::Error(0),
            OpResult::Error(ErrorCode::NoNode.code()),
            OpResult::Error(ErrorCode::RuntimeInconsistency.code()),
        ]);
        let mut w = Writer::new();
        encode_reply(&mut w, 7, 0x10, Ok(&resp));
        let mut r = Reader::new(&w.buf[4..]);
        let h = ReplyHeader::read(&mut r).unwrap();
        assert_eq!(h.err, 0);
        // First result header: type -1, done false, err 0, then body err 0.
        assert_eq!(r.read_i32().unwrap(), -1);
        assert!(!r.read_bool().unwrap());
        assert_eq!(r.read_i32().unwrap(), 0);
        assert_eq!(r.read_i32().unwrap(), 0);
        let mut r = Reader::new(&w.buf[4 + 16..]);
        assert_eq!(Response::decode_body(op::MULTI, &mut r).unwrap(), resp);
        r.finish().unwrap();
    }

    #[test]
    fn error_reply_is_header_only() {
        let mut w = Writer::new();
        encode_reply(&mut w, 1, 5, Err(ErrorCode::NodeExists));
        assert_eq!(w.buf.len(), 4 + 16);
        assert_eq!(&w.buf[16..20], &(-110i32).to_be_bytes());
    }

    #[test]
    fn add_watch_success_carries_a_four_byte_body() {
        let mut w = Writer::new();
        encode_reply(&mut w, 3, 9, Ok(&Response::ErrorBody(0)));
        assert_eq!(w.buf.len(), 4 + 16 + 4);
    }
}
