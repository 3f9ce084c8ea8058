//! wazoo-proto: the ZooKeeper client wire codec, pure and deterministic (no I/O, no async).
//!
//! It owns the jute encoding ([`jute`]), the records ([`records`]), requests and opcodes
//! ([`request`]), replies and multi results ([`response`]), error codes ([`error`]), the transaction
//! records that are logged and replicated ([`txn`]) and frame-length handling ([`frame`]).
//! The reference is `shared/design/zk-protocol.md`; decoding never panics on any input.

pub mod error;
pub mod frame;
pub mod jute;
pub mod records;
pub mod request;
pub mod response;
pub mod txn;

pub use error::ErrorCode;
pub use jute::{DecodeError, Reader, Writer};
pub use records::{
    add_watch_mode, make_zxid, perms, watcher_type, xid, zxid_counter, zxid_epoch, Acl, ClientInfo,
    ConnectRequest, ConnectResponse, CreateMode, EventType, Id, ReplyHeader, RequestHeader, Stat,
    WatcherEvent, Zxid,
};
pub use request::{
    decode_request, op, CreateRequest, MultiOp, ReadOp, RecipeCall, Request, SetWatches,
};
pub use response::{encode_notification, encode_reply, OpResult, Response};
pub use txn::{decode_txn, encode_txn, Txn, TxnHeader, MAX_TXN_LEN, TXN_HEADER_LEN};
