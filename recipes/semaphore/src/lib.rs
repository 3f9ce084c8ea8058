//! The semaphore recipe: N leases at a path, each acquire one call that waits on the server for
//! one of them, fairly (in arrival order) and without a herd.
//!
//! The semaphore is a container whose data is its lease count (8 little-endian bytes, stored
//! with it by the first acquire, so every client agrees on it: an acquire naming another count
//! aborts). Its children are one ephemeral sequential node per acquire, `<session>-<sequence>`;
//! the first `permits` in sequence order hold a lease (their data is `held`), the rest wait. A
//! session's end gives its leases back (ephemeral nodes).
//!
//! Waking: the first waiter (at position `permits`) parks on the deletion of every holder; each
//! later waiter on a change of its predecessor (deleted, or set to `held` when it gets a lease,
//! which moves this waiter to the front). So a release wakes one waiter, and every move forward
//! is seen.
//!
//! - `acquire {path, permits, timeout_ms?}` → `{acquired: true, node}`, or after the timeout
//!   `{acquired: false}` (the waiter is gone then). A retry after a lost connection takes the
//!   lost call's place.
//! - `release {path, node?}` → `{released: node}`: gives back `node` (one of the session's
//!   leases), or the session's oldest; abort `not held`.
//! - `leases {path}` → `{permits, holders, waiting}`.

use serde::{Deserialize, Serialize};
use wazoo_guest::context::session_prefix;
use wazoo_guest::{bail, name_of, tree, Call, CreateMode, Outcome, Reason};
use wazoo_guest::{Acquired, Result, Watch};

const HELD: &[u8] = b"held";

#[derive(Deserialize)]
struct Acquire {
    path: String,
    permits: u64,
    timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Release {
    path: String,
    node: Option<String>,
}

#[derive(Deserialize)]
struct Leases {
    path: String,
}

#[derive(Serialize, Deserialize)]
struct Waiting {
    node: String,
}

/// The semaphore's lease count and its nodes in queue order (none if it does not exist).
fn read(path: &str) -> Result<Option<(u64, Vec<String>)>> {
    let Some(sem) = tree::get_opt(path)? else {
        return Ok(None);
    };
    let Ok(permits) = <[u8; 8]>::try_from(sem.data.as_slice()) else {
        bail!("{path} is not a semaphore");
    };
    Ok(Some((u64::from_le_bytes(permits), tree::queue(path)?)))
}

fn acquire(call: &Call) -> Result<Outcome> {
    let a: Acquire = call.args()?;
    if a.permits == 0 {
        bail!("permits must be at least 1");
    }
    let sem = a.path.as_str();
    let (permits, mut queue) = match read(sem)? {
        Some(found) => found,
        None if call.is_initial() => {
            if let Some(cut) = sem.rfind('/').filter(|i| *i > 0) {
                tree::ensure(&sem[..cut], CreateMode::Container)?;
            }
            tree::create(sem, &a.permits.to_le_bytes(), CreateMode::Container)?;
            (a.permits, Vec::new())
        }
        None => bail!("the waiter is gone"),
    };
    if permits != a.permits {
        bail!("{sem} has {permits} permits, not {}", a.permits);
    }
    let mine = session_prefix();
    // A session's calls run one at a time, so a waiting node of the session on its first run
    // is a lost call's (the connection dropped): this retry takes its place in the queue.
    let lost = queue
        .iter()
        .skip(permits as usize)
        .find(|n| n.starts_with(&mine))
        .cloned();
    let own = match (call.state::<Waiting>()?, lost) {
        (Some(w), _) if queue.contains(&w.node) => w.node,
        (Some(_), _) => bail!("the waiter is gone"),
        (None, Some(lost)) => lost,
        (None, None) => {
            let holds = queue.len() < permits as usize;
            let data = if holds { HELD } else { b"" };
            let base = format!("{sem}/{mine}");
            let created = tree::create(&base, data, CreateMode::EphemeralSequential)?;
            queue.push(name_of(&created).to_owned());
            name_of(&created).to_owned()
        }
    };
    let own_path = format!("{sem}/{own}");
    let at = queue.iter().position(|n| *n == own).expect("listed");
    let permits = permits as usize;
    if at < permits {
        if tree::get(&own_path)?.data != HELD {
            // Tells the waiter behind it that it moved up.
            tree::set(&own_path, HELD, None)?;
        }
        return Acquired::held(own_path);
    }
    if call.reason == Reason::TimedOut {
        return Acquired::gave_up(&own_path);
    }
    let on = if at == permits {
        queue[..permits]
            .iter()
            .map(|h| Watch::NodeDeleted(format!("{sem}/{h}")))
            .collect()
    } else {
        // Fires on its deletion too.
        vec![Watch::DataChanged(format!("{sem}/{}", queue[at - 1]))]
    };
    Outcome::park(on, call.deadline_ms(a.timeout_ms), &Waiting { node: own })
}

fn release(call: &Call) -> Result<Outcome> {
    let r: Release = call.args()?;
    let Some((permits, queue)) = read(&r.path)? else {
        bail!("not held");
    };
    let mine = session_prefix();
    let holders = &queue[..queue.len().min(permits as usize)];
    let pick = match &r.node {
        Some(node) => holders.iter().find(|n| **n == name_of(node)),
        None => holders.iter().find(|n| n.starts_with(&mine)),
    };
    let Some(name) = pick.filter(|n| n.starts_with(&mine)) else {
        bail!("not held");
    };
    let path = format!("{}/{name}", r.path);
    tree::delete(&path, None)?;
    #[derive(Serialize)]
    struct Released {
        released: String,
    }
    Outcome::done(&Released { released: path })
}

fn leases(call: &Call) -> Result<Outcome> {
    let Leases { path } = call.args()?;
    #[derive(Serialize)]
    struct Shown {
        permits: u64,
        holders: Vec<String>,
        waiting: Vec<String>,
    }
    let (permits, mut queue) = read(&path)?.unwrap_or_default();
    let waiting = queue.split_off(queue.len().min(permits as usize));
    Outcome::done(&Shown {
        permits,
        holders: queue,
        waiting,
    })
}

fn run(call: Call) -> Result<Outcome> {
    match call.op.as_str() {
        "acquire" => acquire(&call),
        "release" => release(&call),
        "leases" => leases(&call),
        other => bail!("no op {other}"),
    }
}

wazoo_guest::recipe!(run);
