//! The counter recipe: an atomic counter whose add is one call and whose wait is a latch that
//! waits on the server.
//!
//! - `add {path, delta}` adds `delta` to the counter at `path` (created at `delta` the first
//!   time; its parent must exist) and returns the new value, in one txn.
//! - `wait {path, target, timeout_ms?}` returns the counter's value once it is at least `target`
//!   (a countdown latch's await, turned up): it parks on the counter's node until then, or aborts
//!   `timed out` after `timeout_ms`.
//!
//! The node holds the value as 8 little-endian bytes (readable by any client).

use serde::Deserialize;
use wazoo_guest::{bail, tree, Call, CreateMode, Outcome, Reason, Result, Watch};

#[derive(Deserialize)]
struct Add {
    path: String,
    delta: i64,
}

#[derive(Deserialize)]
struct Wait {
    path: String,
    target: i64,
    timeout_ms: Option<i64>,
}

fn value_of(data: &[u8]) -> Result<i64> {
    match <[u8; 8]>::try_from(data) {
        Ok(b) => Ok(i64::from_le_bytes(b)),
        Err(_) => bail!("the node does not hold a counter"),
    }
}

fn add(call: &Call) -> Result<Outcome> {
    let Add { path, delta } = call.args()?;
    let value = match tree::get_opt(&path)? {
        Some(node) => {
            let next = value_of(&node.data)?.wrapping_add(delta);
            tree::set(&path, &next.to_le_bytes(), Some(node.stat.version))?;
            next
        }
        None => {
            tree::create(&path, &delta.to_le_bytes(), CreateMode::Persistent)?;
            delta
        }
    };
    Outcome::done(&value)
}

fn wait(call: &Call) -> Result<Outcome> {
    let w: Wait = call.args()?;
    if let Some(node) = tree::get_opt(&w.path)? {
        let v = value_of(&node.data)?;
        if v >= w.target {
            return Outcome::done(&v);
        }
    }
    if call.reason == Reason::TimedOut {
        bail!("timed out");
    }
    // Fires on the node's creation and deletion too.
    let on = vec![Watch::DataChanged(w.path.clone())];
    Outcome::park(on, call.deadline_ms(w.timeout_ms), &())
}

fn run(call: Call) -> Result<Outcome> {
    match call.op.as_str() {
        "add" => add(&call),
        "wait" => wait(&call),
        other => bail!("no op {other}"),
    }
}

wazoo_guest::recipe!(run);
