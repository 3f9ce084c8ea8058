//! The counter recipe.
//!
//! - `add` adds a signed delta to the counter at a path (created at the delta the first time) and
//!   returns the new value, in one atomic txn. Arguments: the delta as 8 little-endian bytes, then
//!   the counter's path in UTF-8.
//! - `wait` returns once the counter at a path is at least a target (a countdown latch's await,
//!   turned up): it parks on the counter's node until then, or aborts with "timed out" after a
//!   timeout. Arguments: the target and the timeout in ms (0: none) as 8 little-endian bytes each,
//!   then the path.
//!
//! Outputs are the counter's value as 8 little-endian bytes. (The MessagePack arguments of the
//! guest SDK replace this encoding when the SDK exists.)

wit_bindgen::generate!({ world: "recipe", path: "../../wit" });

use exports::wazoo::recipe::runner::{Guest, Invocation, Outcome, Park, Reason};
use wazoo::recipe::types::{CreateMode, ErrorCode, Watch};
use wazoo::recipe::{context, tree};

struct Counter;

fn add(args: &[u8]) -> Result<i64, Vec<u8>> {
    if args.len() < 9 {
        return Err(b"add: arguments are an 8-byte delta and a path".to_vec());
    }
    let delta = i64::from_le_bytes(args[..8].try_into().expect("8 bytes"));
    let path =
        std::str::from_utf8(&args[8..]).map_err(|_| b"add: the path is not UTF-8".to_vec())?;
    let value = match tree::get(path) {
        Ok((data, stat)) => {
            let current = match <[u8; 8]>::try_from(data.as_slice()) {
                Ok(b) => i64::from_le_bytes(b),
                Err(_) => return Err(b"add: the node does not hold a counter".to_vec()),
            };
            let next = current.wrapping_add(delta);
            tree::set(path, &next.to_le_bytes(), Some(stat.version))
                .map_err(|e| format!("add: {}", e.name()).into_bytes())?;
            next
        }
        Err(ErrorCode::NoNode) => {
            tree::create(path, &delta.to_le_bytes(), CreateMode::Persistent)
                .map_err(|e| format!("add: {}", e.name()).into_bytes())?;
            delta
        }
        Err(e) => return Err(format!("add: {}", e.name()).into_bytes()),
    };
    Ok(value)
}

fn value_of(data: &[u8]) -> Result<i64, Vec<u8>> {
    <[u8; 8]>::try_from(data)
        .map(i64::from_le_bytes)
        .map_err(|_| b"the node does not hold a counter".to_vec())
}

fn wait(inv: &Invocation) -> Outcome {
    let args = &inv.args;
    if args.len() < 17 {
        return Outcome::Abort(
            b"wait: arguments are an 8-byte target, an 8-byte timeout and a path".to_vec(),
        );
    }
    let target = i64::from_le_bytes(args[..8].try_into().expect("8 bytes"));
    let timeout_ms = i64::from_le_bytes(args[8..16].try_into().expect("8 bytes"));
    let Ok(path) = std::str::from_utf8(&args[16..]) else {
        return Outcome::Abort(b"wait: the path is not UTF-8".to_vec());
    };
    let value = match tree::get(path) {
        Ok((data, _)) => match value_of(&data) {
            Ok(v) => Some(v),
            Err(e) => return Outcome::Abort(e),
        },
        Err(ErrorCode::NoNode) => None,
        Err(e) => return Outcome::Abort(format!("wait: {}", e.name()).into_bytes()),
    };
    if let Some(v) = value.filter(|v| *v >= target) {
        return Outcome::Commit(v.to_le_bytes().to_vec());
    }
    if inv.reason == Reason::TimedOut {
        return Outcome::Abort(b"timed out".to_vec());
    }
    // The deadline is fixed by the first run and kept in the state across wake-ups.
    let deadline = match &inv.state {
        Some(s) if s.len() == 8 => i64::from_le_bytes(s[..].try_into().expect("8 bytes")),
        _ if timeout_ms > 0 => context::now_ms() + timeout_ms,
        _ => 0,
    };
    Outcome::CommitAndPark(Park {
        on: vec![Watch::DataChanged(path.to_owned())],
        deadline_ms: (deadline > 0).then_some(deadline),
        state: deadline.to_le_bytes().to_vec(),
    })
}

impl Guest for Counter {
    fn run(inv: Invocation) -> Outcome {
        match inv.op.as_str() {
            "wait" => wait(&inv),
            "add" => match add(&inv.args) {
                Ok(v) => Outcome::Commit(v.to_le_bytes().to_vec()),
                Err(e) => Outcome::Abort(e),
            },
            other => Outcome::Abort(format!("no op {other}").into_bytes()),
        }
    }
}

export!(Counter);
