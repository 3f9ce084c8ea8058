//! Parked calls as data: a call named by a request id that parks writes a record of itself in
//! the park's own txn, an ephemeral node of the calling session, `/wazoo/parked/<session, 16
//! hex>-<request id>`, holding what it waits for and the state it parked with. So the record is
//! durable exactly when the park's writes are, it goes with the session, and a restarted server
//! re-arms the call from the tree (a new leader will do the same): the call runs once at the
//! first tick (what it waited for may have happened just before the restart; a recipe re-checks
//! on every run), then waits as it did, and the client's retry with the same id takes it over.
//! The record is deleted in the txn that ends the call, or by a txn of its own when the call ends
//! writing nothing.
//!
//! A call without a request id is not recorded: after a restart no client could find it again.

use wazoo_proto::jute::{Reader, Writer};
use wazoo_tree::WaitFor;

use super::*;
use crate::recipe::Run;

/// Where parked calls' records live.
pub const PARKED_ROOT: &str = "/wazoo/parked";

/// What a record holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub recipe: String,
    pub version: u64,
    pub op: String,
    pub args: Vec<u8>,
    pub state: Vec<u8>,
    pub deadline_ms: Option<i64>,
    pub on: Vec<WaitFor>,
    pub seed: u64,
}

impl Record {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.string(&self.recipe)
            .i64(self.version as i64)
            .string(&self.op)
            .buffer(Some(&self.args))
            .buffer(Some(&self.state))
            .bool(self.deadline_ms.is_some())
            .i64(self.deadline_ms.unwrap_or(0))
            .i32(self.on.len() as i32);
        for watch in &self.on {
            let kind = match watch {
                WaitFor::Created(_) => 0,
                WaitFor::Deleted(_) => 1,
                WaitFor::DataChanged(_) => 2,
                WaitFor::ChildrenChanged(_) => 3,
            };
            w.u8(kind).string(watch.path());
        }
        w.i64(self.seed as i64);
        w.into_inner()
    }

    pub(super) fn decode(data: &[u8]) -> Option<Record> {
        let mut r = Reader::new(data);
        let recipe = r.read_string().ok()?;
        let version = r.read_i64().ok()? as u64;
        let op = r.read_string().ok()?;
        let args = r.read_buffer().ok()?.unwrap_or_default().to_vec();
        let state = r.read_buffer().ok()?.unwrap_or_default().to_vec();
        let has_deadline = r.read_bool().ok()?;
        let deadline = r.read_i64().ok()?;
        let n = r.read_vec_len(5).ok()?;
        let mut on = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = r.read_u8().ok()?;
            let path = r.read_string().ok()?;
            on.push(match kind {
                0 => WaitFor::Created(path),
                1 => WaitFor::Deleted(path),
                2 => WaitFor::DataChanged(path),
                3 => WaitFor::ChildrenChanged(path),
                _ => return None,
            });
        }
        let seed = r.read_i64().ok()? as u64;
        r.finish().ok()?;
        Some(Record {
            recipe,
            version,
            op,
            args,
            state,
            deadline_ms: has_deadline.then_some(deadline),
            on,
            seed,
        })
    }
}

fn node_of(session: i64, request_id: &str) -> String {
    format!(
        "{PARKED_ROOT}/{}",
        crate::answers::node_name(session, request_id)
    )
}

/// The ops that write the record `make()` builds for the call of `session` named
/// `request_id` (appended to the park's multi); none if the call is not recorded.
pub(super) fn put_ops(
    core: &Core,
    session: i64,
    request_id: &str,
    make: impl FnOnce() -> Record,
) -> Vec<MultiOp> {
    match crate::answers::kept_node(core, session, request_id, PARKED_ROOT) {
        Some((mut ops, node)) => {
            ops.push(crate::answers::put_ephemeral(core, &node, &make().encode()));
            ops
        }
        None => Vec::new(),
    }
}

/// The op that deletes the call's record, if it has one.
pub(super) fn drop_ops(core: &Core, session: i64, request_id: &str) -> Vec<MultiOp> {
    if request_id.is_empty() {
        return Vec::new();
    }
    let node = node_of(session, request_id);
    if core.pending.exists(&core.tree, &node) {
        vec![MultiOp::Delete {
            path: node,
            version: -1,
        }]
    } else {
        Vec::new()
    }
}

impl Core {
    /// Re-arms the parked calls recorded in the tree (at start): each parks as recorded, with no
    /// connection until its client's retry takes it over, and runs once at the next tick.
    pub(super) fn load_parked(&mut self) {
        let mut found = Vec::new();
        for (session, rid, data) in crate::answers::read_kept(self, PARKED_ROOT) {
            match Record::decode(&data) {
                Some(rec) => found.push((session, rid, rec)),
                None => {
                    warn!(record = %rid, "a parked call's record does not decode: not re-armed")
                }
            }
        }
        for (session, rid, rec) in found {
            // The version it parked on if the server installs it at start (a built-in, or the
            // loaded version the tree still names: its run waits for that compile, `begin`),
            // else the name's current one.
            let loaded = self
                .tree
                .get(&format!("{}/{}", crate::RECIPES_ROOT, rec.recipe))
                .map(|n| n.meta().mzxid as u64);
            let version = if loaded == Some(rec.version)
                || (rec.version == 0 && self.catalog.is_builtin(&rec.recipe))
            {
                rec.version
            } else if let Some(v) = self.catalog.current(&rec.recipe) {
                v
            } else {
                warn!(recipe = %rec.recipe, "a parked call of a recipe no longer loaded: not re-armed");
                continue;
            };
            let start = RunStart {
                recipe: rec.recipe,
                version,
                op: rec.op,
                args: rec.args,
                session_id: session,
                request_id: rid.clone(),
                now_ms: self.now.wall_ms,
                seed: rec.seed,
                attempt: 1,
                reason: RunReason::Woken,
                state: Some(rec.state.clone()),
            };
            let run = Run::detached(session, start, self.now.at);
            let run_id = self.runs.rearm(run, rec.on, rec.deadline_ms, rec.state);
            self.runs.by_request.insert((session, rid), run_id);
            self.metrics.inc(Counter::RecipeCallsRearmed);
            info!(
                session = format_args!("{session:#x}"),
                run_id, "re-armed a parked recipe call"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let rec = Record {
            recipe: "mutex".into(),
            version: 0x1_0000_0007,
            op: "acquire".into(),
            args: vec![0x81, 1, 2],
            state: vec![9; 40],
            deadline_ms: Some(1_700_000_123_456),
            on: vec![
                WaitFor::Deleted("/l/a-0000000001".into()),
                WaitFor::ChildrenChanged("/q".into()),
            ],
            seed: u64::MAX - 3,
        };
        assert_eq!(Record::decode(&rec.encode()), Some(rec.clone()));
        let none = Record {
            deadline_ms: None,
            on: Vec::new(),
            ..rec
        };
        assert_eq!(Record::decode(&none.encode()), Some(none.clone()));
        assert_eq!(Record::decode(&none.encode()[..10]), None);
    }
}
