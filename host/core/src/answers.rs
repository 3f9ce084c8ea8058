//! Recipe answers as data (and the helpers parked calls' records share, `parked_record.rs`): what a call named by a request id committed is kept in the tree, so a
//! retry after a server restart (its reply lost with the connection) gets the first answer and
//! the call's writes happen once. The answer is an ephemeral node of the calling session written
//! in the call's own multi, `/wazoo/answers/<session, 16 hex>-<request id>` holding the output:
//! it is durable exactly when the call's writes are, and it goes with the session. The latest
//! [`MAX_RESULTS_PER_SESSION`] of a session are kept (the multi that adds one past that deletes
//! the oldest). At start the core reads them back into its table of answers (`recipe.rs`).
//!
//! An abort writes nothing and is not kept across a restart: running it again has no effect to
//! repeat. Outputs over [`MAX_KEPT_OUTPUT`] bytes and request ids that are not a plain path
//! segment are kept in memory only, as is everything when `/wazoo/answers` has an ACL other
//! than the open one the server gives it (the caller's auth writes it, within the call's multi).

use wazoo_proto::{Acl, CreateRequest};

use super::*;
use crate::recipe::MAX_RESULTS_PER_SESSION;

/// Where answers live.
pub const ANSWERS_ROOT: &str = "/wazoo/answers";

/// The largest output kept as data.
pub const MAX_KEPT_OUTPUT: usize = 64 << 10;

pub(super) fn node_name(session: i64, request_id: &str) -> String {
    format!("{:016x}-{request_id}", session as u64)
}

/// The session and request id a [`node_name`] names.
pub(super) fn parse_node_name(name: &str) -> Option<(i64, &str)> {
    let (hex, rid) = name.split_once('-')?;
    let session = u64::from_str_radix(hex, 16).ok()? as i64;
    Some((session, rid))
}

/// Whether `request_id` can name a node (kept answers, parked calls' records).
pub(super) fn storable(request_id: &str) -> bool {
    !request_id.is_empty()
        && request_id.len() <= 128
        && request_id != "."
        && request_id != ".."
        && request_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Where a kept node of `session`'s call named `request_id` goes under `root`, and the ops
/// that create `/wazoo` and `root` if they are missing; `None` if the call's node is not kept:
/// an id that is not a plain segment, a session no longer valid, or an ACL on `/wazoo` or
/// `root` other than the open one the server gives them (the caller's auth writes the node,
/// within its call's multi). Shared by answers and parked calls' records.
pub(super) fn kept_node(
    core: &Core,
    session: i64,
    request_id: &str,
    root: &str,
) -> Option<(Vec<MultiOp>, String)> {
    if !storable(request_id) || !core.tracker.is_valid(session) {
        return None;
    }
    let open = |p: &str| {
        core.tree
            .get(p)
            .is_none_or(|n| n.acl()[..] == Acl::open_unsafe()[..])
    };
    if !open("/wazoo") || !open(root) {
        return None;
    }
    let dirs = ["/wazoo", root]
        .into_iter()
        .filter(|d| !core.pending.exists(&core.tree, d))
        .map(|d| create(d, b"", 0))
        .collect();
    Some((dirs, format!("{root}/{}", node_name(session, request_id))))
}

/// The op that makes `data` the content of the ephemeral node `node` of the call's session:
/// its setData if it exists, else its create.
pub(super) fn put_ephemeral(core: &Core, node: &str, data: &[u8]) -> MultiOp {
    if core.pending.exists(&core.tree, node) {
        MultiOp::SetData {
            path: node.to_owned(),
            data: Some(data.to_vec()),
            version: -1,
        }
    } else {
        create(node, data, 1) // ephemeral: it goes with the session
    }
}

/// The kept nodes under `root` of live sessions, in creation order: (session, request id,
/// data).
pub(super) fn read_kept(core: &Core, root: &str) -> Vec<(i64, String, Vec<u8>)> {
    let Some(dir) = core.tree.get(root) else {
        return Vec::new();
    };
    let mut found: Vec<(Zxid, i64, String, Vec<u8>)> = dir
        .children()
        .filter_map(|name| {
            let (session, rid) = parse_node_name(name)?;
            let n = core.tree.get(&format!("{root}/{name}"))?;
            core.tracker.is_valid(session).then(|| {
                let data = n.data().unwrap_or_default().to_vec();
                (n.meta().czxid, session, rid.to_owned(), data)
            })
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(_, s, rid, d)| (s, rid, d))
        .collect()
}

fn create(path: &str, data: &[u8], flags: i32) -> MultiOp {
    MultiOp::Create(CreateRequest {
        op: op::CREATE,
        path: path.to_owned(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    })
}

/// The ops that keep `output` as `session`'s answer to `request_id`, appended to the call's
/// multi (none if it is not to be kept as data).
pub(super) fn answer_ops(
    core: &Core,
    session: i64,
    request_id: &str,
    output: &[u8],
) -> Vec<MultiOp> {
    if output.len() > MAX_KEPT_OUTPUT {
        return Vec::new();
    }
    let Some((mut ops, node)) = kept_node(core, session, request_id, ANSWERS_ROOT) else {
        return Vec::new();
    };
    ops.push(put_ephemeral(core, &node, output));
    // The oldest past the cap goes (`record_result` drops it from memory the same way).
    if let Some(order) = core.runs.result_order.get(&session) {
        if order.len() >= MAX_RESULTS_PER_SESSION && order[0] != request_id {
            let oldest = format!("{ANSWERS_ROOT}/{}", node_name(session, &order[0]));
            if core.pending.exists(&core.tree, &oldest) {
                ops.push(MultiOp::Delete {
                    path: oldest,
                    version: -1,
                });
            }
        }
    }
    ops
}

impl Core {
    /// Reads the answers kept as data back into the table (at start).
    pub(super) fn load_answers(&mut self) {
        for (session, rid, output) in read_kept(self, ANSWERS_ROOT) {
            let answer = Ok(Response::RecipeCall {
                aborted: false,
                output,
            });
            self.runs
                .result_order
                .entry(session)
                .or_default()
                .push_back(rid.clone());
            self.runs.results.insert((session, rid), (answer, 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_segments_name_a_kept_answer() {
        assert!(storable("0f3a9c1e2b4d4e6f8a0b1c2d3e4f5a6b"));
        assert!(storable("retry-7"));
        for bad in ["", ".", "..", "a/b", "with space", &"x".repeat(129)] {
            assert!(!storable(bad), "{bad:?}");
        }
        assert_eq!(node_name(-1, "r"), "ffffffffffffffff-r");
    }
}
