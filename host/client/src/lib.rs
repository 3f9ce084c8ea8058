//! wazoo-client: an async Rust ZooKeeper client, used by `wazoo shell`, `wazoo bench` and the
//! integration tests. It speaks the ZooKeeper 3.5–3.9 wire protocol through `wazoo-proto`, so it
//! works against wazoo and against Apache ZooKeeper alike.
//!
//! * [`Client`]: one session over one TCP connection, a writer task and a reader task, requests
//!   pipelined and matched to replies in order (the private `conn` module describes the
//!   machinery). Typed methods (`create`, `get_data`, `multi`, ...) sit on top of
//!   [`Client::submit`], which takes a raw [`Request`] and returns a `'static` [`ResponseFuture`]
//!   for keeping many requests in flight.
//! * Watch notifications and the client-side `Disconnected`/`Closed` state events arrive on one
//!   stream ([`Client::events`], [`Client::wait_for_event`]).
//! * No automatic reconnect: a lost connection fails every pending call with
//!   [`ClientError::ConnectionLoss`] and later calls fail fast; [`Client::resume`] reattaches to
//!   the session on a new connection (watches are not restored).
//! * [`four_letter`] sends a four-letter word; [`validate_path`] is the Java client's path check.

mod client;
mod conn;
mod error;
mod event;
mod fourlw;
mod path;

pub use client::{
    create_request, first_error, ops, parse_hosts, Client, ClientState, ConnectOptions,
    ResponseFuture, DEFAULT_PORT,
};
pub use error::ClientError;
pub use event::{event_type_name, KeeperState, WatchedEvent};
pub use fourlw::{four_letter, four_letter_with_timeout};
pub use path::validate_path;

pub use wazoo_proto::{
    add_watch_mode, perms, watcher_type, Acl, ClientInfo, CreateMode, CreateRequest, ErrorCode,
    EventType, Id, MultiOp, OpResult, ReadOp, Request, Response, Stat,
};
