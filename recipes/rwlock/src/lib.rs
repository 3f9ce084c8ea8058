//! The read-write lock recipe: readers share it, a writer holds it alone, in arrival order (a
//! writer waiting keeps later readers out, so writers do not starve). Each acquire is one call
//! that waits on the server.
//!
//! The lock is a container whose children are the waiters, ephemeral sequential nodes named
//! `read-<session>-<sequence>` or `write-<session>-<sequence>`, ordered by sequence. A reader
//! holds when no writer of another session is before it, and parks on the deletion of the last
//! such writer; a writer holds when it is first, and parks on its predecessor's deletion. So a
//! writer's release wakes the readers right behind it (who then hold together) or the next
//! writer; nobody else. Reentrant per session and mode (the count is the node's data, 8
//! little-endian bytes), and a writer may take the read lock too (a downgrade: release the
//! write lock after). A session's end releases its holds.
//!
//! - `acquire {path, mode: "read" | "write", timeout_ms?}` → `{acquired: true, node}`, or after
//!   the timeout `{acquired: false}` (the waiter is gone then). A retry after a lost connection
//!   takes the lost call's place.
//! - `release {path, mode}` → `{held}`: the holds left in that mode; abort `not held`.

use serde::{Deserialize, Serialize};
use wazoo_guest::context::session_prefix;
use wazoo_guest::{bail, holds, name_of, tree, Call, CreateMode, Outcome, Reason};
use wazoo_guest::{Acquired, Result, Watch};

#[derive(Deserialize)]
struct Args {
    path: String,
    mode: String,
    timeout_ms: Option<i64>,
}

fn is_write(name: &str) -> bool {
    name.starts_with("write-")
}

/// What blocks `name` (at `at` in `queue`), if anything: the node to park on.
fn blocker<'a>(queue: &'a [String], at: usize, mine: &str) -> Option<&'a String> {
    if is_write(&queue[at]) {
        return at.checked_sub(1).map(|i| &queue[i]);
    }
    // A reader waits for writers of other sessions only (its own: a downgrade).
    queue[..at]
        .iter()
        .rev()
        .find(|n| is_write(n) && !n["write-".len()..].starts_with(mine))
}

fn mode_prefix(mode: &str) -> Result<&'static str> {
    match mode {
        "read" => Ok("read-"),
        "write" => Ok("write-"),
        other => bail!("mode is read or write, not {other}"),
    }
}

fn acquire(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    let lock = a.path.as_str();
    let mine = session_prefix();
    let prefix = format!("{}{mine}", mode_prefix(&a.mode)?);
    let mut queue = tree::queue(lock)?;
    let existing = queue.iter().find(|n| n.starts_with(&prefix)).cloned();
    let own = match existing.clone() {
        Some(n) => n,
        None if call.is_initial() => {
            tree::ensure(lock, CreateMode::Container)?;
            let path = format!("{lock}/{prefix}");
            let created = tree::create(&path, &holds::ONE, CreateMode::EphemeralSequential)?;
            queue.push(name_of(&created).to_owned());
            name_of(&created).to_owned()
        }
        None => bail!("the waiter is gone"),
    };
    let own_path = format!("{lock}/{own}");
    let at = queue.iter().position(|n| *n == own).expect("listed");
    let Some(blocked_by) = blocker(&queue, at, &mine) else {
        if existing.is_some() && call.is_initial() {
            holds::add_one(&own_path)?;
        }
        return Acquired::held(own_path);
    };
    // A waiting node of the session on a first run is a lost call's (a session's calls run one
    // at a time): this retry takes its place.
    if call.reason == Reason::TimedOut {
        return Acquired::gave_up(&own_path);
    }
    let on = vec![Watch::NodeDeleted(format!("{lock}/{blocked_by}"))];
    Outcome::park(on, call.deadline_ms(a.timeout_ms), &())
}

fn release(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    let prefix = format!("{}{}", mode_prefix(&a.mode)?, session_prefix());
    let queue = tree::queue(&a.path)?;
    let Some(name) = queue.iter().find(|n| n.starts_with(&prefix)) else {
        bail!("not held");
    };
    let at = queue.iter().position(|n| n == name).expect("listed");
    if blocker(&queue, at, &session_prefix()).is_some() {
        bail!("not held");
    }
    let held = holds::release_one(&format!("{}/{name}", a.path))?;
    #[derive(Serialize)]
    struct Held {
        held: u64,
    }
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
