//! The counter recipe: `add` adds a signed delta to the counter at a path (created at 0 the first
//! time) and returns the new value, in one atomic txn. Arguments: the delta as 8 little-endian
//! bytes, then the counter's path in UTF-8; output: the new value as 8 little-endian bytes. (The
//! MessagePack arguments of the guest SDK replace this encoding when the SDK exists.)

wit_bindgen::generate!({ world: "recipe", path: "../../wit" });

use exports::wazoo::recipe::runner::{Guest, Invocation, Outcome};
use wazoo::recipe::tree;
use wazoo::recipe::types::{CreateMode, ErrorCode};

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

impl Guest for Counter {
    fn run(inv: Invocation) -> Outcome {
        match inv.op.as_str() {
            "add" => match add(&inv.args) {
                Ok(v) => Outcome::Commit(v.to_le_bytes().to_vec()),
                Err(e) => Outcome::Abort(e),
            },
            other => Outcome::Abort(format!("no op {other}").into_bytes()),
        }
    }
}

export!(Counter);
