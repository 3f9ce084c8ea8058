//! The mutex recipe: a fair lock whose acquire is one client call that waits on the server.
//!
//! The lock at a path is a container whose children are the waiters, one ephemeral sequential
//! node per session, named `<session id, 16 hex digits>-<sequence>`: the holder is the lowest
//! sequence. A waiter parks until its predecessor's node is deleted (released, or its session
//! ended), so a release wakes exactly one waiter (no herd). Re-acquiring by the holding session
//! counts (the count is the node's data, 8 little-endian bytes); each release takes one back.
//!
//! - `acquire {path, timeout_ms?}` → `{acquired: true, node}`, or after the timeout
//!   `{acquired: false}` (the waiter is gone then).
//! - `release {path}` → `{held}`: the holds the session still has (0: released); abort
//!   `not held`.

use serde::{Deserialize, Serialize};
use wazoo_guest::context::session_prefix;
use wazoo_guest::{bail, holds, name_of, tree, Call, CreateMode, Outcome, Reason};
use wazoo_guest::{Acquired, Result, Watch};

#[derive(Deserialize)]
struct Acquire {
    path: String,
    timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Release {
    path: String,
}

#[derive(Serialize)]
struct Held {
    held: u64,
}

fn acquire(call: &Call) -> Result<Outcome> {
    let a: Acquire = call.args()?;
    let lock = a.path.as_str();
    let mine = session_prefix();
    let mut waiters = tree::queue(lock)?;
    let existing = waiters.iter().find(|n| n.starts_with(&mine)).cloned();
    let own = match existing.clone() {
        Some(n) => n,
        None if call.is_initial() => {
            tree::ensure(lock, CreateMode::Container)?;
            let path = format!("{lock}/{mine}");
            let created = tree::create(&path, &holds::ONE, CreateMode::EphemeralSequential)?;
            let name = name_of(&created).to_owned();
            waiters.push(name.clone());
            name
        }
        // A re-run whose waiter is gone: its session lost it.
        None => bail!("the waiter is gone"),
    };
    let own_path = format!("{lock}/{own}");
    let at = waiters.iter().position(|n| *n == own).expect("listed");
    if at == 0 {
        if existing.is_some() && call.is_initial() {
            // The session holds it already: one more hold.
            holds::add_one(&own_path)?;
        }
        return Acquired::held(own_path);
    }
    if call.reason == Reason::TimedOut {
        return Acquired::gave_up(&own_path);
    }
    let before = Watch::NodeDeleted(format!("{lock}/{}", waiters[at - 1]));
    Outcome::park(vec![before], call.deadline_ms(a.timeout_ms), &())
}

fn release(call: &Call) -> Result<Outcome> {
    let Release { path: lock } = call.args()?;
    let mine = session_prefix();
    let waiters = tree::queue(&lock)?;
    let Some(first) = waiters.first().filter(|n| n.starts_with(&mine)) else {
        bail!("not held");
    };
    let held = holds::release_one(&format!("{lock}/{first}"))?;
    Outcome::done(&Held { held })
}

fn run(call: Call) -> Result<Outcome> {
    match call.op.as_str() {
        "acquire" => acquire(&call),
        "release" => release(&call),
        other => bail!("no op {other}"),
    }
}

wazoo_guest::recipe!(run);
