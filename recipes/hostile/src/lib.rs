//! A recipe that misbehaves on request, to show that each misbehaviour ends its own call only
//! (issue 11, "hostile recipes"). The server embeds it but loads it only when
//! `wazoo.recipes` names it. Ops (the argument bytes are UTF-8 where a path or a number is
//! needed):
//!
//! - `spin`: loops forever (fuel ends it);
//! - `trap`: panics (a trap);
//! - `bomb`: grows its memory until the memory limit refuses, then traps;
//! - `recurse`: recurses until the stack limit stops it;
//! - `huge`: returns as many bytes as its argument says;
//! - `flood`: stages creates under the path it is given until the host refuses one, then
//!   aborts saying how many it staged;
//! - `children`: lists the children of the path it is given and returns how many (as text);
//! - `park`: parks on as many paths (`/park/<i>`) as its argument says, forever;
//! - `escape`: tries to read and write `/zookeeper` and `/wazoo` and aborts saying how each
//!   try ended;
//! - `refuse`: aborts with "refused";
//! - `linger`: creates the persistent node at the path it is given and parks until `<path>/go`
//!   is created; its cancelled run (the session closed or expired meanwhile) deletes that node,
//!   tries an ephemeral `<path>-ephemeral` (refused: the session is closed) and creates
//!   `<path>-cancelled` holding how the try ended.

wit_bindgen::generate!({ world: "recipe", path: "../../wit" });

use exports::wazoo::recipe::runner::{Guest, Invocation, Outcome, Park, Reason};
use wazoo::recipe::tree;
use wazoo::recipe::types::{CreateMode, Watch};

struct Hostile;

fn text(args: &[u8]) -> String {
    String::from_utf8_lossy(args).into_owned()
}

/// Recurses without end (on purpose: the host's stack limit ends it).
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u64; 16]) -> u64 {
    let mut next = pad;
    next[(depth % 16) as usize] = depth;
    std::hint::black_box(recurse(depth + 1, std::hint::black_box(next))) + pad[0]
}

impl Guest for Hostile {
    fn run(inv: Invocation) -> Outcome {
        match inv.op.as_str() {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "trap" => panic!("a trap, as asked"),
            "bomb" => {
                // Grows linear memory 1 MiB at a time (no writes: only the memory limit can
                // stop it, not fuel) and traps when a growth is refused.
                loop {
                    if std::arch::wasm32::memory_grow(0, 16) == usize::MAX {
                        panic!("out of memory");
                    }
                }
            }
            "recurse" => Outcome::Commit(recurse(0, [0; 16]).to_le_bytes().to_vec()),
            "huge" => {
                let n: usize = text(&inv.args).parse().unwrap_or(0);
                Outcome::Commit(vec![0x5a; n])
            }
            "flood" => {
                let base = text(&inv.args);
                let mut n = 0u64;
                loop {
                    match tree::create(&format!("{base}/f-"), b"", CreateMode::PersistentSequential)
                    {
                        Ok(_) => n += 1,
                        Err(e) => {
                            return Outcome::Abort(
                                format!("flood: {} after {n}", e.name()).into_bytes(),
                            )
                        }
                    }
                }
            }
            "children" => match tree::children(&text(&inv.args)) {
                Ok(c) => Outcome::Commit(c.len().to_string().into_bytes()),
                Err(e) => Outcome::Abort(format!("children: {}", e.name()).into_bytes()),
            },
            "park" => {
                let n: usize = text(&inv.args).parse().unwrap_or(0);
                Outcome::CommitAndPark(Park {
                    on: (0..n)
                        .map(|i| Watch::NodeCreated(format!("/park/{i}")))
                        .collect(),
                    deadline_ms: None,
                    state: Vec::new(),
                })
            }
            "escape" => {
                // Reaches for the server's own subtrees: config, quotas, loaded recipes.
                let tries = [
                    tree::get("/zookeeper/config").err(),
                    tree::children("/wazoo/recipes").err(),
                    tree::create("/wazoo/recipes/evil", b"", CreateMode::Persistent).err(),
                    tree::set("/zookeeper", b"", None).err(),
                ];
                let said: Vec<&str> = tries
                    .iter()
                    .map(|e| e.as_ref().map_or("allowed", |e| e.name()))
                    .collect();
                Outcome::Abort(format!("escape: {}", said.join(", ")).into_bytes())
            }
            "refuse" => Outcome::Abort(b"refused".to_vec()),
            "linger" => {
                let path = text(&inv.args);
                if inv.reason == Reason::Cancelled {
                    let _ = tree::delete(&path, None);
                    let tried =
                        tree::create(&format!("{path}-ephemeral"), b"", CreateMode::Ephemeral);
                    let said = tried.as_ref().map_or_else(|e| e.name(), |_| "allowed");
                    let _ = tree::create(
                        &format!("{path}-cancelled"),
                        said.as_bytes(),
                        CreateMode::Persistent,
                    );
                    return Outcome::Commit(Vec::new());
                }
                if inv.reason == Reason::Initial {
                    if let Err(e) = tree::create(&path, b"", CreateMode::Persistent) {
                        return Outcome::Abort(format!("linger: {}", e.name()).into_bytes());
                    }
                }
                Outcome::CommitAndPark(Park {
                    on: vec![Watch::NodeCreated(format!("{path}/go"))],
                    deadline_ms: None,
                    state: Vec::new(),
                })
            }
            other => Outcome::Abort(format!("no op {other}").into_bytes()),
        }
    }
}

export!(Hostile);
