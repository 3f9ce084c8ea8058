//! The barrier recipe: a node that holds waiters back while it exists. `wait` is one call that
//! waits on the server until the barrier is removed.
//!
//! - `set {path}` → `{set}`: creates the barrier (and missing parents, as containers); `set` is
//!   false if it was up already.
//! - `remove {path}` → `{removed}`: takes it down, releasing every waiter at once.
//! - `wait {path, timeout_ms?}` → `{passed}`: true once the barrier is down (at once if it is not
//!   up), false after the timeout.

use serde::{Deserialize, Serialize};
use wazoo_guest::{bail, tree, Call, CreateMode, Outcome, Reason, Result, Watch};

#[derive(Deserialize)]
struct Args {
    path: String,
    timeout_ms: Option<i64>,
}

fn set(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    #[derive(Serialize)]
    struct Set {
        set: bool,
    }
    if tree::exists(&a.path).is_some() {
        return Outcome::done(&Set { set: false });
    }
    if let Some(cut) = a.path.rfind('/').filter(|i| *i > 0) {
        tree::ensure(&a.path[..cut], CreateMode::Container)?;
    }
    tree::create(&a.path, b"", CreateMode::Persistent)?;
    Outcome::done(&Set { set: true })
}

fn remove(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    #[derive(Serialize)]
    struct Removed {
        removed: bool,
    }
    let removed = tree::exists(&a.path).is_some();
    if removed {
        tree::delete(&a.path, None)?;
    }
    Outcome::done(&Removed { removed })
}

fn wait(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    #[derive(Serialize)]
    struct Passed {
        passed: bool,
    }
    if tree::exists(&a.path).is_none() {
        return Outcome::done(&Passed { passed: true });
    }
    if call.reason == Reason::TimedOut {
        return Outcome::done(&Passed { passed: false });
    }
    let on = vec![Watch::NodeDeleted(a.path.clone())];
    Outcome::park(on, call.deadline_ms(a.timeout_ms), &())
}

fn run(call: Call) -> Result<Outcome> {
    match call.op.as_str() {
        "set" => set(&call),
        "remove" => remove(&call),
        "wait" => wait(&call),
        other => bail!("no op {other}"),
    }
}

wazoo_guest::recipe!(run);
