//! What the simulated clients do next: the operation mix (setData with and without a version,
//! multis, plain and synced reads, creates, ephemerals, closeSession, recipe calls), and a lost
//! recipe call sent again under its request id.

use super::*;

use wazoo_proto::MultiOp;

use super::client::Waiting;
use super::history::Kind;
use super::lock;

/// The request of a recipe call (`None`: not one): sent again as it was after a lost
/// connection.
pub(super) fn recipe_call(kind: &Kind) -> Option<Request> {
    let (recipe, op, args, rid) = match kind {
        Kind::Add { rid } => ("counter", "add", 1i64.to_le_bytes().to_vec(), rid),
        Kind::Acquire { rid, timeout } => ("mutex", "acquire", lock::acquire_args(*timeout), rid),
        Kind::Release { rid, name } => ("mutex", "release", name.as_bytes().to_vec(), rid),
        _ => return None,
    };
    Some(Request::RecipeCall(wazoo_proto::RecipeCall {
        recipe: recipe.into(),
        op: op.into(),
        args,
        request_id: rid.clone(),
    }))
}

impl super::World {
    pub(super) fn next_op(&mut self, c: usize) {
        let keys = self.cfg.keys;
        let key = self.rng.random_range(0..keys);
        let r = self.rng.random_range(0..100);
        let now = self.now;
        let client = &mut self.clients[c];
        client.counter += 1;
        let n = client.counter;
        let id = client.id;
        let retry = client.retry.take();
        match &retry {
            Some(Kind::Add { .. }) => self.report.adds_retried += 1,
            Some(_) => self.report.lock_calls_retried += 1,
            None => {}
        }
        let rid = format!("c{id}-{n}");
        // A recipe call: one sent again, a holder's release, a lock acquire or a counter add.
        let call = if retry.is_some() {
            retry
        } else if let Some(name) = client.holding.clone().filter(|_| r < 50) {
            Some(Kind::Release { rid, name })
        } else if (80..87).contains(&r) && client.holding.is_none() {
            let timeout = self.rng.random_range(50..800);
            Some(Kind::Acquire { rid, timeout })
        } else if (87..92).contains(&r) {
            Some(Kind::Add { rid })
        } else {
            None
        };
        let (kind, req, sync_first) = if let Some(kind) = call {
            let req = recipe_call(&kind).expect("a recipe call");
            (kind, req, false)
        } else if r < 8 && keys > 1 {
            let other = (key + 1 + self.rng.random_range(0..keys - 1)) % keys;
            // A multi of two setData, the first a CAS on the version last seen when there is
            // one (then it may fail BADVERSION, and the other with it: all or nothing).
            let mut sets = Vec::new();
            let mut ops = Vec::new();
            for (i, k) in [key, other].into_iter().enumerate() {
                let tag = format!("c{id}-{n}-{i}").into_bytes();
                let expect = if i == 0 {
                    client.versions[k].unwrap_or(-1)
                } else {
                    -1
                };
                ops.push(MultiOp::SetData {
                    path: history::key_path(k),
                    data: Some(tag.clone()),
                    version: expect,
                });
                sets.push((k, tag, expect));
            }
            (Kind::Multi { sets }, Request::Multi(ops), false)
        } else if r < 30 || (r < 40 && client.versions[key].is_none()) {
            let tag = format!("c{id}-{n}").into_bytes();
            let req = Request::SetData {
                path: history::key_path(key),
                data: Some(tag.clone()),
                version: -1,
            };
            (
                Kind::Set {
                    key,
                    tag,
                    expect: -1,
                },
                req,
                false,
            )
        } else if r < 40 {
            let expect = client.versions[key].expect("known");
            let tag = format!("c{id}-{n}").into_bytes();
            let req = Request::SetData {
                path: history::key_path(key),
                data: Some(tag.clone()),
                version: expect,
            };
            (Kind::Set { key, tag, expect }, req, false)
        } else if r < 60 {
            let watch = self.rng.random_bool(0.5);
            let client = &mut self.clients[c];
            client.watching = watch.then_some(key);
            let req = Request::GetData {
                path: history::key_path(key),
                watch,
            };
            (Kind::Read { key, synced: false }, req, false)
        } else if r < 75 {
            let req = Request::Sync {
                path: history::key_path(key),
            };
            (Kind::Read { key, synced: true }, req, true)
        } else if r < 87 || client.has_ephemeral && r < 97 {
            let path = format!("/u/c{id}-{n}");
            (
                Kind::Create { path: path.clone() },
                create(&path, b"u", 0),
                false,
            )
        } else if r < 97 {
            let path = format!("/e/c{id}-{n}");
            (
                Kind::Ephemeral { path: path.clone() },
                create(&path, b"e", 1),
                false,
            )
        } else {
            (Kind::Close, Request::CloseSession, false)
        };
        let entry = client::op(&self.clients[c], kind, now);
        self.ops.push(entry);
        let op = self.ops.len() - 1;
        let xid = self.request(c, req);
        let client = &mut self.clients[c];
        client.waiting = Waiting::Reply {
            xid,
            op,
            sync_first,
        };
        client.sent_at = now;
        let t = now + self.read_timeout() / 3;
        self.wake(c, t);
    }
}
