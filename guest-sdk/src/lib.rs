//! wazoo-guest: write a wazoo recipe in Rust.
//!
//! A recipe is a function from a [`Call`] to an [`Outcome`] (or an [`Error`], which aborts the
//! call: nothing it staged is written). It reads the tree as of the call plus its own staged
//! writes ([`tree`]), stages writes that commit as one atomic transaction when it returns, and
//! may park until a path changes ([`Outcome::park`]). Arguments, outputs, abort messages and
//! parked state are MessagePack (serde + rmp-serde), so a client in any language sends a map and
//! gets one back; `wazoo recipe call NAME OP '{"path": "/x"}'` converts JSON both ways.
//!
//! ```ignore
//! use serde::Deserialize;
//! use wazoo_guest::{tree, Call, CreateMode, Outcome, Result};
//!
//! #[derive(Deserialize)]
//! struct Add { path: String, delta: i64 }
//!
//! fn run(call: Call) -> Result<Outcome> {
//!     let Add { path, delta } = call.args()?;
//!     let value = match tree::get_opt(&path)? { ... };
//!     Outcome::done(&value)
//! }
//! wazoo_guest::recipe!(run);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (a `cdylib` crate); `guest-sdk/README.md`
//! walks through writing, building, loading and calling one.

#![warn(missing_docs)]

/// For byte fields of arguments and outputs: `#[serde(with = "wazoo_guest::serde_bytes")]` makes
/// a `Vec<u8>` MessagePack bin (what other languages send as bytes), not an array of integers.
pub use serde_bytes;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The WIT bindings (`wit/recipe.wit`), for what this crate does not wrap.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "recipe",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_recipe",
        default_bindings_module: "wazoo_guest::bindings",
    });
}

use bindings::exports::wazoo::recipe::runner;
pub use bindings::exports::wazoo::recipe::runner::Reason;
pub use bindings::wazoo::recipe::types::{CreateMode, ErrorCode, Stat, Watch};

/// Why a call aborts: a message the client gets as its error (a MessagePack string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An abort with this message.
    pub fn msg(m: impl Into<String>) -> Self {
        Error(m.into())
    }
}

impl From<ErrorCode> for Error {
    fn from(e: ErrorCode) -> Self {
        Error(e.name().to_owned())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A recipe's result: an abort is an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns from the recipe with an abort: `bail!("not held")`, `bail!("no op {op}")`.
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::Error(format!($($t)*))) };
}

/// One run of a recipe: the client's call, or a re-run of a parked one.
pub struct Call {
    /// The operation the client named.
    pub op: String,
    /// Why this run: the client's call, a watched change, the deadline, or the session's end.
    pub reason: Reason,
    args: Vec<u8>,
    state: Option<Vec<u8>>,
    deadline_ms: Option<i64>,
}

/// What the SDK keeps across a park: the deadline the first run fixed and the recipe's state.
#[derive(Serialize, Deserialize)]
struct Parked {
    deadline_ms: Option<i64>,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
}

impl Call {
    /// The arguments, decoded from MessagePack (a map or an array for a struct).
    pub fn args<T: DeserializeOwned>(&self) -> Result<T> {
        rmp_serde::from_slice(&self.args).map_err(|e| Error(format!("{}: arguments: {e}", self.op)))
    }

    /// The raw argument bytes.
    pub fn raw_args(&self) -> &[u8] {
        &self.args
    }

    /// The state the call parked with ([`Outcome::park`]); `None` on the first run.
    pub fn state<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match &self.state {
            None => Ok(None),
            Some(s) => rmp_serde::from_slice(s)
                .map(Some)
                .map_err(|e| Error(format!("{}: parked state: {e}", self.op))),
        }
    }

    /// True on the client's own call (not a re-run of a parked one).
    pub fn is_initial(&self) -> bool {
        self.reason == Reason::Initial
    }

    /// The deadline (leader ms) of a wait with `timeout_ms` (`None` or 0: none): fixed by the
    /// first run and kept by [`Outcome::park`] across re-runs.
    pub fn deadline_ms(&self, timeout_ms: Option<i64>) -> Option<i64> {
        if self.state.is_some() {
            return self.deadline_ms;
        }
        timeout_ms
            .filter(|t| *t > 0)
            .map(|t| context::now_ms().saturating_add(t))
    }
}

/// How a run ends when it does not abort.
pub struct Outcome(runner::Outcome);

impl Outcome {
    /// Commit the staged writes; the client gets `output` (MessagePack, maps for structs).
    pub fn done<T: Serialize + ?Sized>(output: &T) -> Result<Outcome> {
        let bytes = rmp_serde::to_vec_named(output).map_err(|e| Error(format!("output: {e}")))?;
        Ok(Outcome(runner::Outcome::Commit(bytes)))
    }

    /// Commit the staged writes and wait until one of `on` changes or `deadline_ms` passes; the
    /// call then runs again (reason `Woken` — maybe spuriously, so re-check — or `TimedOut`)
    /// with `state`.
    pub fn park<S: Serialize + ?Sized>(
        on: Vec<Watch>,
        deadline_ms: Option<i64>,
        state: &S,
    ) -> Result<Outcome> {
        let state = rmp_serde::to_vec_named(state).map_err(|e| Error(format!("state: {e}")))?;
        let parked = Parked { deadline_ms, state };
        let bytes = rmp_serde::to_vec_named(&parked).map_err(|e| Error(format!("state: {e}")))?;
        Ok(Outcome(runner::Outcome::CommitAndPark(runner::Park {
            on,
            deadline_ms,
            state: bytes,
        })))
    }
}

/// The output of a lock-like acquire (mutex, semaphore, read-write lock): `{acquired, node}`.
#[derive(Serialize)]
pub struct Acquired {
    /// Whether the caller holds it now.
    pub acquired: bool,
    /// The caller's node while it holds.
    pub node: Option<String>,
}

impl Acquired {
    /// Held through the waiter node at `node`.
    pub fn held(node: String) -> Result<Outcome> {
        Outcome::done(&Acquired {
            acquired: true,
            node: Some(node),
        })
    }

    /// Given up (the wait timed out): the waiter node at `node` is deleted with this outcome.
    pub fn gave_up(node: &str) -> Result<Outcome> {
        tree::delete(node, None)?;
        Outcome::done(&Acquired {
            acquired: false,
            node: None,
        })
    }
}

/// Runs `f` for one invocation: what [`recipe!`] exports.
#[doc(hidden)]
pub fn __run(f: fn(Call) -> Result<Outcome>, inv: runner::Invocation) -> runner::Outcome {
    let (state, deadline_ms) = match inv.state {
        None => (None, None),
        Some(bytes) => match rmp_serde::from_slice::<Parked>(&bytes) {
            Ok(p) => (Some(p.state), p.deadline_ms),
            Err(e) => return abort(&Error(format!("{}: parked state: {e}", inv.op))),
        },
    };
    let call = Call {
        op: inv.op,
        reason: inv.reason,
        args: inv.args,
        state,
        deadline_ms,
    };
    match f(call) {
        Ok(Outcome(o)) => o,
        Err(e) => abort(&e),
    }
}

fn abort(e: &Error) -> runner::Outcome {
    runner::Outcome::Abort(rmp_serde::to_vec(&e.0).unwrap_or_else(|_| e.0.clone().into_bytes()))
}

/// Exports `f: fn(Call) -> Result<Outcome>` as the component's recipe.
#[macro_export]
macro_rules! recipe {
    ($f:path) => {
        struct __WazooRecipe;
        impl $crate::bindings::exports::wazoo::recipe::runner::Guest for __WazooRecipe {
            fn run(
                inv: $crate::bindings::exports::wazoo::recipe::runner::Invocation,
            ) -> $crate::bindings::exports::wazoo::recipe::runner::Outcome {
                $crate::__run($f, inv)
            }
        }
        $crate::bindings::export_recipe!(__WazooRecipe with_types_in $crate::bindings);
    };
}

/// What the leader fixed for the call.
pub mod context {
    pub use crate::bindings::wazoo::recipe::context::{
        log, now_ms, random_seed, request_id, session_id, tenant,
    };

    /// The calling session as 16 hex digits and a dash: the prefix of the nodes a recipe names
    /// after their session (`<session>-<sequence>`), so a re-run finds its own.
    pub fn session_prefix() -> String {
        format!("{:016x}-", session_id() as u64)
    }
}

/// A znode as read.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its data.
    pub data: Vec<u8>,
    /// Its stat.
    pub stat: Stat,
}

/// The tree as of the call plus the call's staged writes. Writes are staged: they commit with
/// the run's [`Outcome`] and vanish with an abort.
pub mod tree {
    use super::{CreateMode, ErrorCode, Node, Stat};
    use crate::bindings::wazoo::recipe::tree as t;

    /// The node at `path`.
    pub fn get(path: &str) -> Result<Node, ErrorCode> {
        t::get(path).map(|(data, stat)| Node { data, stat })
    }

    /// The node at `path`, or `None` if there is none.
    pub fn get_opt(path: &str) -> Result<Option<Node>, ErrorCode> {
        match get(path) {
            Ok(n) => Ok(Some(n)),
            Err(ErrorCode::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stat of `path`, if it exists.
    pub fn exists(path: &str) -> Option<Stat> {
        t::exists(path)
    }

    /// The children's names, sorted by name.
    pub fn children(path: &str) -> Result<Vec<String>, ErrorCode> {
        t::children(path)
    }

    /// The children's names, or none if `path` does not exist.
    pub fn children_or_none(path: &str) -> Result<Vec<String>, ErrorCode> {
        match t::children(path) {
            Err(ErrorCode::NoNode) => Ok(Vec::new()),
            r => r,
        }
    }

    /// The children of `path` in the order they were created ([`crate::sort_by_sequence`]),
    /// or none if `path` does not exist: the queue of waiters a lock, latch or semaphore keeps.
    pub fn queue(path: &str) -> Result<Vec<String>, ErrorCode> {
        let mut names = children_or_none(path)?;
        crate::sort_by_sequence(&mut names);
        Ok(names)
    }

    /// Stages a create; returns the path created (with a sequential node's suffix).
    pub fn create(path: &str, data: &[u8], mode: CreateMode) -> Result<String, ErrorCode> {
        t::create(path, data, mode)
    }

    /// Stages a setData (`version`: the expected version, `None`: any).
    pub fn set(path: &str, data: &[u8], version: Option<i32>) -> Result<Stat, ErrorCode> {
        t::set(path, data, version)
    }

    /// Stages a delete (`version`: the expected version, `None`: any).
    pub fn delete(path: &str, version: Option<i32>) -> Result<(), ErrorCode> {
        t::delete(path, version)
    }

    /// Stages a check that `path` is at `version`.
    pub fn check(path: &str, version: i32) -> Result<(), ErrorCode> {
        t::check(path, version)
    }

    /// Stages `path` and any missing ancestors as `mode` nodes (containers suit a recipe's
    /// nodes: the server removes them once empty). Returns whether `path` was missing.
    pub fn ensure(path: &str, mode: CreateMode) -> Result<bool, ErrorCode> {
        if exists(path).is_some() {
            return Ok(false);
        }
        if let Some(cut) = path.rfind('/').filter(|i| *i > 0) {
            ensure(&path[..cut], mode)?;
        }
        match create(path, b"", mode) {
            Ok(_) | Err(ErrorCode::NodeExists) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// The sequence number ZooKeeper appended to a sequential node's name (its last ten digits).
pub fn sequence(name: &str) -> Option<u64> {
    let tail = name.get(name.len().checked_sub(10)?..)?;
    tail.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| tail.parse().ok())
        .flatten()
}

/// Reentrant holds kept in a waiter node's data: 8 little-endian bytes (a node without them
/// counts one), so each acquire by the holding session needs a release.
pub mod holds {
    use super::{tree, Result};

    /// The data of a node holding once.
    pub const ONE: [u8; 8] = 1u64.to_le_bytes();

    fn count(path: &str) -> Result<u64> {
        let data = tree::get(path)?.data;
        Ok(<[u8; 8]>::try_from(data.as_slice()).map_or(1, u64::from_le_bytes))
    }

    /// Stages one more hold of the node at `path`.
    pub fn add_one(path: &str) -> Result<()> {
        let held = count(path)? + 1;
        tree::set(path, &held.to_le_bytes(), None)?;
        Ok(())
    }

    /// Stages one hold fewer, deleting the node at the last; the holds left.
    pub fn release_one(path: &str) -> Result<u64> {
        let held = count(path)? - 1;
        if held > 0 {
            tree::set(path, &held.to_le_bytes(), None)?;
        } else {
            tree::delete(path, None)?;
        }
        Ok(held)
    }
}

/// Sorts sequential nodes' names by their sequence (names without one last, by name): the order
/// they were created in, whatever prefixes they carry.
pub fn sort_by_sequence(names: &mut [String]) {
    names.sort_by(|a, b| {
        (sequence(a).unwrap_or(u64::MAX), a.as_str()).cmp(&(sequence(b).unwrap_or(u64::MAX), b))
    });
}

/// The name just before `name` in `sorted`, if any.
pub fn predecessor<'a>(sorted: &'a [String], name: &str) -> Option<&'a str> {
    let at = sorted.iter().position(|n| n == name)?;
    at.checked_sub(1).map(|i| sorted[i].as_str())
}

/// The last path segment.
pub fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_the_last_ten_digits() {
        assert_eq!(sequence("00000000000000ab-0000000042"), Some(42));
        assert_eq!(sequence("read-0000000007"), Some(7));
        assert_eq!(sequence("lock"), None);
        assert_eq!(sequence("x-00000000a1"), None);
    }

    #[test]
    fn sorting_by_sequence_ignores_prefixes() {
        let mut v: Vec<String> = ["write-0000000003", "read-0000000001", "b-0000000002", "zz"]
            .map(String::from)
            .to_vec();
        sort_by_sequence(&mut v);
        assert_eq!(
            v,
            ["read-0000000001", "b-0000000002", "write-0000000003", "zz"]
        );
        assert_eq!(predecessor(&v, "write-0000000003"), Some("b-0000000002"));
        assert_eq!(predecessor(&v, "read-0000000001"), None);
    }
}
