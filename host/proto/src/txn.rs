//! Transactions: what prep produces, the log stores, ZAB replicates and every replica applies.
//!
//! A txn is fully deterministic to apply: times, owners, parent cversions and the resulting node are
//! decided in prep (on the leader) and carried in the record. The encoding is jute-style and versioned
//! by the txn type code, like ZooKeeper's `TxnHeader` + `*Txn` records.

use crate::jute::{DecodeError, Reader, Writer};
use crate::records::{Acl, Zxid};

/// `TxnHeader{long clientId; int cxid; long zxid; long time; int type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: Zxid,
    /// The leader's wall clock in ms when the request was prepped.
    pub time: i64,
}

/// A transaction body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout: i32,
        /// The 16-byte session password, so a restarted server can authenticate resumes.
        passwd: Vec<u8>,
    },
    /// Closes (or expires) a session; `ephemerals` are deleted in the same txn.
    CloseSession {
        ephemerals: Vec<String>,
    },
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        /// Stored ephemeralOwner: 0, a session id, the container marker or a TTL marker.
        owner: i64,
        /// The parent's stored cversion after this create.
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        /// The node's version after this write.
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        /// The node's aversion after this write.
        aversion: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    /// A failed write: consumes a zxid, changes nothing.
    Error {
        err: i32,
    },
    /// All sub-txns commit at one zxid; a failed multi is a Multi of Error sub-txns.
    Multi(Vec<Txn>),
}

mod tag {
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const SET_DATA: i32 = 5;
    pub const SET_ACL: i32 = 7;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const ERROR: i32 = -1;
}

impl Txn {
    /// This txn's exact encoded size (without the header): what [`Txn::write`] appends. Prep
    /// compares it (plus [`TXN_HEADER_LEN`]) with [`MAX_TXN_LEN`] before it hands a txn out, and
    /// `encode_txn` allocates it once.
    pub fn encoded_len(&self) -> usize {
        // A jute buffer or string is its length (4 bytes) then its bytes; null is length -1.
        let buf = |len: usize| 4 + len;
        let data_len = |d: &Option<Vec<u8>>| buf(d.as_ref().map_or(0, Vec::len));
        let acl_len = |acl: &[Acl]| -> usize {
            4 + acl
                .iter()
                .map(|a| 4 + buf(a.id.scheme.len()) + buf(a.id.id.len()))
                .sum::<usize>()
        };
        // Every txn starts with its type tag.
        4 + match self {
            Txn::CreateSession { passwd, .. } => 4 + buf(passwd.len()),
            Txn::CloseSession { ephemerals } => {
                4 + ephemerals.iter().map(|p| buf(p.len())).sum::<usize>()
            }
            Txn::Create {
                path, data, acl, ..
            } => buf(path.len()) + data_len(data) + acl_len(acl) + 8 + 4,
            Txn::Delete { path } => buf(path.len()),
            Txn::SetData { path, data, .. } => buf(path.len()) + data_len(data) + 4,
            Txn::SetAcl { path, acl, .. } => buf(path.len()) + acl_len(acl) + 4,
            Txn::Check { path, .. } => buf(path.len()) + 4,
            Txn::Error { .. } => 4,
            Txn::Multi(ops) => 4 + ops.iter().map(Txn::encoded_len).sum::<usize>(),
        }
    }

    pub fn is_error(&self) -> bool {
        match self {
            Txn::Error { .. } => true,
            Txn::Multi(ops) => ops.iter().any(|o| matches!(o, Txn::Error { .. })),
            _ => false,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Txn::CreateSession { timeout, passwd } => {
                w.i32(tag::CREATE_SESSION)
                    .i32(*timeout)
                    .buffer(Some(passwd));
            }
            Txn::CloseSession { ephemerals } => {
                w.i32(tag::CLOSE_SESSION).string_vec(ephemerals);
            }
            Txn::Create {
                path,
                data,
                acl,
                owner,
                parent_cversion,
            } => {
                w.i32(tag::CREATE).string(path).buffer(data.as_deref());
                Acl::write_vec(acl, w);
                w.i64(*owner).i32(*parent_cversion);
            }
            Txn::Delete { path } => {
                w.i32(tag::DELETE).string(path);
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                w.i32(tag::SET_DATA)
                    .string(path)
                    .buffer(data.as_deref())
                    .i32(*version);
            }
            Txn::SetAcl {
                path,
                acl,
                aversion,
            } => {
                w.i32(tag::SET_ACL).string(path);
                Acl::write_vec(acl, w);
                w.i32(*aversion);
            }
            Txn::Check { path, version } => {
                w.i32(tag::CHECK).string(path).i32(*version);
            }
            Txn::Error { err } => {
                w.i32(tag::ERROR).i32(*err);
            }
            Txn::Multi(ops) => {
                w.i32(tag::MULTI).i32(ops.len() as i32);
                for o in ops {
                    o.write(w);
                }
            }
        }
    }

    fn read(r: &mut Reader, depth: u32) -> Result<Txn, DecodeError> {
        let t = r.read_i32()?;
        Ok(match t {
            tag::CREATE_SESSION => Txn::CreateSession {
                timeout: r.read_i32()?,
                passwd: r.read_buffer()?.unwrap_or_default().to_vec(),
            },
            tag::CLOSE_SESSION => Txn::CloseSession {
                ephemerals: r.read_string_vec()?,
            },
            tag::CREATE => Txn::Create {
                path: r.read_string()?,
                data: r.read_buffer()?.map(<[u8]>::to_vec),
                acl: Acl::read_vec(r)?,
                owner: r.read_i64()?,
                parent_cversion: r.read_i32()?,
            },
            tag::DELETE => Txn::Delete {
                path: r.read_string()?,
            },
            tag::SET_DATA => Txn::SetData {
                path: r.read_string()?,
                data: r.read_buffer()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            },
            tag::SET_ACL => Txn::SetAcl {
                path: r.read_string()?,
                acl: Acl::read_vec(r)?,
                aversion: r.read_i32()?,
            },
            tag::CHECK => Txn::Check {
                path: r.read_string()?,
                version: r.read_i32()?,
            },
            tag::ERROR => Txn::Error { err: r.read_i32()? },
            tag::MULTI if depth == 0 => {
                let n = r.read_vec_len(4)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(Txn::read(r, depth + 1)?);
                }
                Txn::Multi(ops)
            }
            other => {
                return Err(DecodeError::BadValue {
                    what: "txn type",
                    value: other as i64,
                })
            }
        })
    }
}

/// Encoded size of a [`TxnHeader`].
pub const TXN_HEADER_LEN: usize = 28;

/// The largest encoded txn (header + record, as [`encode_txn`] returns it) that the server may
/// write to its log, and so the largest a log reader accepts back: the store's record limit is
/// derived from it, so writer and reader share one limit. Prep never produces a larger txn (it
/// answers the request with an error instead), and the store refuses to write one.
///
/// 64 MiB: 64 times the default `jute.maxbuffer` (a request frame), room for what prep adds to a
/// request (ACLs expanded from `auth`, paths of a session's ephemerals), and small enough that
/// reading one record back at recovery costs bounded memory.
pub const MAX_TXN_LEN: usize = 64 << 20;

/// Encodes header + txn (the value stored in the log and sent in PROPOSALs).
pub fn encode_txn(header: &TxnHeader, txn: &Txn) -> Vec<u8> {
    let mut w = Writer::with_capacity(TXN_HEADER_LEN + txn.encoded_len());
    w.i64(header.session_id)
        .i32(header.cxid)
        .i64(header.zxid)
        .i64(header.time);
    txn.write(&mut w);
    w.into_inner()
}

/// Decodes what [`encode_txn`] wrote; the whole input must be consumed.
pub fn decode_txn(bytes: &[u8]) -> Result<(TxnHeader, Txn), DecodeError> {
    let mut r = Reader::new(bytes);
    let header = TxnHeader {
        session_id: r.read_i64()?,
        cxid: r.read_i32()?,
        zxid: r.read_i64()?,
        time: r.read_i64()?,
    };
    let txn = Txn::read(&mut r, 0)?;
    r.finish()?;
    Ok((header, txn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_roundtrip_including_nested_multi() {
        let h = TxnHeader {
            session_id: 0x100,
            cxid: 3,
            zxid: 0x1_0000_0005,
            time: 1_700_000_000_000,
        };
        let t = Txn::Multi(vec![
            Txn::Create {
                path: "/a".into(),
                data: None,
                acl: Acl::open_unsafe(),
                owner: 0x100,
                parent_cversion: 4,
            },
            Txn::SetData {
                path: "/b".into(),
                data: Some(vec![1, 2]),
                version: 2,
            },
            Txn::Check {
                path: "/c".into(),
                version: 0,
            },
        ]);
        let bytes = encode_txn(&h, &t);
        assert_eq!(decode_txn(&bytes).unwrap(), (h, t));
    }

    #[test]
    fn multi_inside_multi_is_rejected() {
        let h = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid: 1,
            time: 0,
        };
        let bytes = encode_txn(&h, &Txn::Multi(vec![Txn::Multi(vec![])]));
        assert!(decode_txn(&bytes).is_err());
    }

    /// `encoded_len` is exact for every kind of txn (null and empty data, ACLs, nested multi), so
    /// prep's size check is exact and `encode_txn` allocates once (its buffer never grows).
    #[test]
    fn encoded_len_is_exact_for_every_txn() {
        let h = TxnHeader {
            session_id: 7,
            cxid: 1,
            zxid: 2,
            time: 3,
        };
        let acl = vec![
            Acl::read_unsafe()[0].clone(),
            Acl {
                perms: 31,
                id: crate::records::Id {
                    scheme: "digest".into(),
                    id: "user:c2VjcmV0c2VjcmV0c2VjcmV0cw==".into(),
                },
            },
        ];
        let create = Txn::Create {
            path: "/a/long/enough/path-0000000001".into(),
            data: Some(vec![9; 100]),
            acl: acl.clone(),
            owner: 5,
            parent_cversion: 1,
        };
        let all = [
            Txn::CreateSession {
                timeout: 4000,
                passwd: vec![1; 16],
            },
            Txn::CloseSession {
                ephemerals: vec!["/e1".into(), "/e/two".into()],
            },
            create.clone(),
            Txn::Delete { path: "/d".into() },
            Txn::SetData {
                path: "/s".into(),
                data: None,
                version: 1,
            },
            Txn::SetAcl {
                path: "/acl".into(),
                acl,
                aversion: 2,
            },
            Txn::Check {
                path: "/c".into(),
                version: 0,
            },
            Txn::Error { err: -101 },
        ];
        let multi = Txn::Multi(
            all.iter()
                .filter(|t| !matches!(t, Txn::CreateSession { .. } | Txn::CloseSession { .. }))
                .cloned()
                .collect(),
        );
        let empty_data = Txn::SetData {
            path: "/s".into(),
            data: Some(vec![]),
            version: 1,
        };
        for t in all.iter().chain([&multi, &Txn::Multi(vec![]), &empty_data]) {
            let bytes = encode_txn(&h, t);
            assert_eq!(bytes.len(), TXN_HEADER_LEN + t.encoded_len(), "{t:?}");
            assert_eq!(bytes.capacity(), bytes.len(), "{t:?} grew");
        }
    }
}
