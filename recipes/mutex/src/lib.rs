//! The mutex recipe: a fair lock whose acquire is one client call that waits on the server.
//!
//! The lock at a path is a container whose children are the waiters, one ephemeral sequential
//! node per session, named `<session id, 16 hex digits>-<sequence>`: the holder is the lowest
//! sequence. A waiter parks until its predecessor's node is deleted (released, or its session
//! ended), so a release wakes exactly one waiter (no herd). Re-acquiring by the holding session
//! counts (the count is the node's data, 8 little-endian bytes); each release takes one back.
//!
//! - `acquire`: arguments the timeout in ms (8 little-endian bytes, 0: none), then the lock's path;
//!   output `acquired <node path>` or, after the timeout, `timeout` (the waiter is gone then).
//! - `release`: argument the lock's path; output `released` (or `held <count>` while the session
//!   still holds it), abort `not held`.

wit_bindgen::generate!({ world: "recipe", path: "../../wit" });

use exports::wazoo::recipe::runner::{Guest, Invocation, Outcome, Park, Reason};
use wazoo::recipe::types::{CreateMode, ErrorCode, Watch};
use wazoo::recipe::{context, tree};

struct Mutex;

fn session_prefix() -> String {
    format!("{:016x}-", context::session_id() as u64)
}

/// The sequence suffix of a waiter's name: the order of the queue.
fn sequence(name: &str) -> &str {
    name.rsplit('-').next().unwrap_or(name)
}

/// The waiters, in queue order.
fn queue(lock: &str) -> Result<Vec<String>, ErrorCode> {
    let mut names = tree::children(lock)?;
    names.sort_by(|a, b| sequence(a).cmp(sequence(b)));
    Ok(names)
}

fn abort(what: &str, e: ErrorCode) -> Outcome {
    Outcome::Abort(format!("{what}: {}", e.name()).into_bytes())
}

fn count_of(data: &[u8]) -> u64 {
    <[u8; 8]>::try_from(data).map_or(1, u64::from_le_bytes)
}

fn acquire(inv: &Invocation) -> Outcome {
    if inv.args.len() < 9 {
        return Outcome::Abort(b"acquire: arguments are an 8-byte timeout and a path".to_vec());
    }
    let timeout_ms = i64::from_le_bytes(inv.args[..8].try_into().expect("8 bytes"));
    let Ok(lock) = std::str::from_utf8(&inv.args[8..]) else {
        return Outcome::Abort(b"acquire: the path is not UTF-8".to_vec());
    };
    let mine = session_prefix();
    let mut waiters = match queue(lock) {
        Ok(w) => w,
        Err(ErrorCode::NoNode) => {
            if let Err(e) = tree::create(lock, b"", CreateMode::Container) {
                return abort("acquire", e);
            }
            Vec::new()
        }
        Err(e) => return abort("acquire", e),
    };
    let existing = waiters.iter().find(|n| n.starts_with(&mine)).cloned();
    let own = match existing.clone() {
        Some(n) => n,
        None if inv.reason == Reason::Initial => {
            let created = match tree::create(
                &format!("{lock}/{mine}"),
                &1u64.to_le_bytes(),
                CreateMode::EphemeralSequential,
            ) {
                Ok(p) => p,
                Err(e) => return abort("acquire", e),
            };
            let name = created.rsplit('/').next().unwrap_or_default().to_owned();
            waiters.push(name.clone());
            name
        }
        // A re-run whose waiter is gone: its session lost it.
        None => return Outcome::Abort(b"acquire: the waiter is gone".to_vec()),
    };
    let own_path = format!("{lock}/{own}");
    let at = waiters.iter().position(|n| *n == own).expect("listed");
    if at == 0 {
        if existing.is_some() && inv.reason == Reason::Initial {
            // The session holds it already: one more hold.
            let held = match tree::get(&own_path) {
                Ok((data, _)) => count_of(&data),
                Err(e) => return abort("acquire", e),
            };
            if let Err(e) = tree::set(&own_path, &(held + 1).to_le_bytes(), None) {
                return abort("acquire", e);
            }
        }
        return Outcome::Commit(format!("acquired {own_path}").into_bytes());
    }
    if inv.reason == Reason::TimedOut {
        if let Err(e) = tree::delete(&own_path, None) {
            return abort("acquire", e);
        }
        return Outcome::Commit(b"timeout".to_vec());
    }
    // The deadline is fixed by the first run and kept in the state across wake-ups.
    let deadline = match &inv.state {
        Some(s) if s.len() == 8 => i64::from_le_bytes(s[..].try_into().expect("8 bytes")),
        _ if timeout_ms > 0 => context::now_ms() + timeout_ms,
        _ => 0,
    };
    Outcome::CommitAndPark(Park {
        on: vec![Watch::NodeDeleted(format!("{lock}/{}", waiters[at - 1]))],
        deadline_ms: (deadline > 0).then_some(deadline),
        state: deadline.to_le_bytes().to_vec(),
    })
}

fn release(inv: &Invocation) -> Outcome {
    let Ok(lock) = std::str::from_utf8(&inv.args) else {
        return Outcome::Abort(b"release: the path is not UTF-8".to_vec());
    };
    let mine = session_prefix();
    let waiters = match queue(lock) {
        Ok(w) => w,
        Err(ErrorCode::NoNode) => return Outcome::Abort(b"not held".to_vec()),
        Err(e) => return abort("release", e),
    };
    match waiters.first() {
        Some(first) if first.starts_with(&mine) => {
            let path = format!("{lock}/{first}");
            let held = match tree::get(&path) {
                Ok((data, _)) => count_of(&data),
                Err(e) => return abort("release", e),
            };
            let result = if held > 1 {
                tree::set(&path, &(held - 1).to_le_bytes(), None).map(|_| ())
            } else {
                tree::delete(&path, None)
            };
            match result {
                Ok(()) if held > 1 => Outcome::Commit(format!("held {}", held - 1).into_bytes()),
                Ok(()) => Outcome::Commit(b"released".to_vec()),
                Err(e) => abort("release", e),
            }
        }
        _ => Outcome::Abort(b"not held".to_vec()),
    }
}

impl Guest for Mutex {
    fn run(inv: Invocation) -> Outcome {
        match inv.op.as_str() {
            "acquire" => acquire(&inv),
            "release" => release(&inv),
            other => Outcome::Abort(format!("no op {other}").into_bytes()),
        }
    }
}

export!(Mutex);
