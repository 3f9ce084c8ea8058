//! The double barrier recipe: `enter` returns once `count` participants have entered, `leave`
//! once all of them have left; each is one call that waits on the server, and each release
//! wakes every waiter once (no herd of re-checks).
//!
//! The barrier is a container whose children are the participants, one ephemeral node per
//! session named by the session (16 hex digits), and `ready`, a marker the participant that
//! completes the count creates in the same txn as its own node. Enterers park on `ready`'s
//! creation. A leaver deletes its node; the last one deletes `ready` in the same txn, which
//! releases the others, who park on `ready`'s deletion (the state remembers which `ready`, by
//! its czxid, so a next round's marker is not mistaken for this one). A participant whose session
//! ends before it leaves is gone as if it had left: each parked leaver also watches one other
//! remaining participant (chosen at random, to spread the wake-ups) and re-checks when it goes.
//!
//! - `enter {path, count, timeout_ms?}` → `{entered}`: false after the timeout (the participant
//!   is gone then).
//! - `leave {path, timeout_ms?}` → `{left}`: false after the timeout.
//!
//! Both are safe to retry after a lost connection: a session has one participant node.

use serde::{Deserialize, Serialize};
use wazoo_guest::{bail, context, tree, Call, CreateMode, Outcome, Reason, Result, Watch};

const READY: &str = "ready";

#[derive(Deserialize)]
struct Enter {
    path: String,
    count: usize,
    timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Leave {
    path: String,
    timeout_ms: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Leaving {
    ready_czxid: i64,
}

fn me() -> String {
    format!("{:016x}", context::session_id() as u64)
}

/// The participants other than `ready`.
fn participants(path: &str) -> Result<Vec<String>> {
    let mut names = tree::children_or_none(path)?;
    names.retain(|n| n != READY);
    Ok(names)
}

fn enter(call: &Call) -> Result<Outcome> {
    let e: Enter = call.args()?;
    #[derive(Serialize)]
    struct Entered {
        entered: bool,
    }
    let ready = format!("{}/{READY}", e.path);
    let own = format!("{}/{}", e.path, me());
    if call.is_initial() {
        tree::ensure(&e.path, CreateMode::Container)?;
        if tree::exists(&own).is_none() {
            tree::create(&own, b"", CreateMode::Ephemeral)?;
        }
    }
    if tree::exists(&ready).is_some() {
        return Outcome::done(&Entered { entered: true });
    }
    if tree::exists(&own).is_none() {
        bail!("the participant is gone");
    }
    if participants(&e.path)?.len() >= e.count.max(1) {
        tree::create(&ready, b"", CreateMode::Persistent)?;
        return Outcome::done(&Entered { entered: true });
    }
    if call.reason == Reason::TimedOut {
        tree::delete(&own, None)?;
        return Outcome::done(&Entered { entered: false });
    }
    let on = vec![Watch::NodeCreated(ready)];
    Outcome::park(on, call.deadline_ms(e.timeout_ms), &())
}

fn leave(call: &Call) -> Result<Outcome> {
    let l: Leave = call.args()?;
    #[derive(Serialize)]
    struct Left {
        left: bool,
    }
    let ready = format!("{}/{READY}", l.path);
    let this_round = match call.state::<Leaving>()? {
        Some(s) => s.ready_czxid,
        None => {
            let own = format!("{}/{}", l.path, me());
            // Gone already if this is the retry of a leave whose reply was lost.
            if tree::exists(&own).is_some() {
                tree::delete(&own, None)?;
            }
            match tree::exists(&ready) {
                Some(stat) => stat.czxid,
                // No round was complete: nothing to wait for.
                None => return Outcome::done(&Left { left: true }),
            }
        }
    };
    match tree::exists(&ready) {
        Some(stat) if stat.czxid == this_round => {}
        // The last one left (and maybe a next round began).
        _ => return Outcome::done(&Left { left: true }),
    }
    let remaining = participants(&l.path)?;
    if remaining.is_empty() {
        tree::delete(&ready, None)?;
        return Outcome::done(&Left { left: true });
    }
    if call.reason == Reason::TimedOut {
        return Outcome::done(&Left { left: false });
    }
    let other = &remaining[(context::random_seed() % remaining.len() as u64) as usize];
    let on = vec![
        Watch::NodeDeleted(ready),
        Watch::NodeDeleted(format!("{}/{other}", l.path)),
    ];
    let state = Leaving {
        ready_czxid: this_round,
    };
    Outcome::park(on, call.deadline_ms(l.timeout_ms), &state)
}

fn run(call: Call) -> Result<Outcome> {
    match call.op.as_str() {
        "enter" => enter(&call),
        "leave" => leave(&call),
        other => bail!("no op {other}"),
    }
}

wazoo_guest::recipe!(run);
