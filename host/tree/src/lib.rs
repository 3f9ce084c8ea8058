//! wazoo-tree: ZooKeeper's data model, pure and deterministic (no I/O, no async, time as an argument).
//!
//! It owns the znode tree and its exact Stat semantics ([`datatree`], [`node`]), path rules
//! ([`path`]), ACLs and auth schemes ([`acl`]), prep of writes against committed state plus
//! outstanding changes ([`prep`]), reads with watch registration ([`reads`]), the watch registry
//! ([`watch`]) and session expiry ([`session`]). The server runtime drives it; the ZAB core will
//! apply the same txns on every replica.

pub mod acl;
mod blob;
mod children;
mod close_order;
pub mod datatree;
pub mod hash;
pub mod node;
pub mod path;
pub mod prep;
pub mod reads;
pub mod session;
pub mod stage;
pub mod watch;

pub use acl::{AclList, AuthInfo};
pub use datatree::{
    events_of, Applied, DataTree, LoadEntry, NodeRef, OpOutcome, SessionEntry, StateChange,
    TreeEvent,
};
pub use prep::{prep, PendingChanges, PrepConfig, PrepCtx};
pub use reads::{read, set_watches, ReadCtx};
pub use session::SessionTracker;
pub use stage::{is_system_path, Access, Answer, Stage, View, Wait, WaitFor};
pub use watch::{WatchCursor, WatchRegistry, WatcherId};
