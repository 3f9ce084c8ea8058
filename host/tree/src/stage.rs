//! Staging (issue 11, item 2): what a server-side recipe does with the tree in one invocation —
//! writes staged one at a time, read back through the staged view, then handed over as the ops
//! of one multi (or dropped) — built so the recipe can run on another thread than the one that
//! owns the tree (docs/recipes.md, "Running recipes off the core").
//!
//! A [`Stage`] owns everything it staged: its own outstanding changes, layered over the server's
//! (which it reads and never writes), the ops, and the data and child-list changes its reads show.
//! The tree's owner answers each of the recipe's [`Access`]es with [`Stage::access`] against the
//! tree and the server's outstanding changes as they are at that moment, so nothing of a stage is
//! visible to other requests, and a slow recipe holds nothing of the server's between accesses.
//!
//! - A staged op is checked as prep checks a multi's sub-op, against the tree plus the server's
//!   outstanding changes plus this stage's; a failing op leaves no trace and the stage goes on
//!   (the recipe decides whether to abort).
//! - Reads see the server's outstanding changes too, as prep does: a path's existence, stat and
//!   children come from its outstanding change and the outstanding changes of its children (so
//!   contenders creating and deleting children of one lock or barrier node do not wait for each
//!   other's fsyncs). Only data the outstanding changes hold and the tree does not (a node created
//!   or set outstanding) is not known yet: a read of it [`Wait`]s until that change is applied. The
//!   highest outstanding txn a read depended on is [`Stage::observed`]: a run that writes nothing
//!   must not answer before that txn is applied (its client would see a write that is not yet
//!   durable), which the stage's owner sees to.
//! - Every path a read or an op depended on is stamped with its state under the stage (its
//!   [`NodeMeta`], which every change of data, children, ACL or existence alters). The ops are
//!   committed by prepping them again as one multi, after [`Stage::still_holds`] confirmed every
//!   stamp: then the multi preps to what the stage showed, and the recipe decided on a state
//!   that is still current (optimistic concurrency control; a stale stage runs again).
//!
//! - No access reaches the server's own subtrees, `/zookeeper` and `/wazoo` ([`is_system_path`]):
//!   NOAUTH.
//!
//! Cost: staging an op is what prepping it costs (its path's records, no scan of earlier ops); a
//! child list read costs the node's children plus this stage's changes under it; validation
//! costs a lookup per stamped path.

use std::collections::{BTreeMap, BTreeSet};

use wazoo_proto::{
    perms, ErrorCode, EventType, MultiOp, Stat, Txn, Zxid, MAX_TXN_LEN, TXN_HEADER_LEN,
};

use crate::acl::{check_acl, AuthInfo};
use crate::datatree::DataTree;
use crate::hash::FastMap;
use crate::node::{stat_of, NodeMeta};
use crate::path;
use crate::prep::{PendingChanges, Prep, PrepConfig, PrepCtx};

/// Children one read of a recipe may list: listing is done on the core's thread, and a list of
/// 65,536 names is about a millisecond of it; past that the read fails MARSHALLINGERROR (the
/// recipe sees `limit-exceeded`), as a client's reply past the frame limit does.
pub const MAX_CHILDREN_PER_READ: usize = 1 << 16;

/// One thing a recipe asks of the tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// Data and stat (needs READ).
    Get(String),
    /// Stat, or `None`.
    Exists(String),
    /// Child names, sorted (needs READ).
    Children(String),
    /// A create, delete, setData or check, as a multi's sub-op.
    Stage(MultiOp),
}

impl Access {
    /// The path it reads or writes.
    pub fn path(&self) -> &str {
        match self {
            Access::Get(p) | Access::Exists(p) | Access::Children(p) => p,
            Access::Stage(MultiOp::Create(c)) => &c.path,
            Access::Stage(
                MultiOp::Delete { path, .. }
                | MultiOp::SetData { path, .. }
                | MultiOp::Check { path, .. },
            ) => path,
        }
    }
}

/// Whether `p` is in the server's own subtrees, which no recipe reads or writes: `/zookeeper`
/// (quotas, the ensemble's config) and `/wazoo` (loaded recipes). A recipe that could rewrite a
/// loaded recipe or a quota would be a way out of its sandbox.
pub fn is_system_path(p: &str) -> bool {
    ["/zookeeper", "/wazoo"].iter().any(|root| {
        p.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The answer to an [`Access`].
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Data(Vec<u8>, Stat),
    Exists(Option<Stat>),
    Children(Vec<String>),
    /// An op staged: its node's path (a sequential create's resolved) and stat (`None` once
    /// deleted; a check's node's stat).
    Staged {
        path: String,
        stat: Option<Stat>,
    },
    /// The access failed with ZooKeeper's code for it; nothing was staged.
    Failed(ErrorCode),
}

/// An access that cannot be answered until the server's txn `until` is applied (the path read
/// has an outstanding change whose data or children the tree does not hold yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    pub until: Zxid,
}

/// What a parked call waits for: a change of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    Created(String),
    /// Deleted (a delete also wakes data and children waiters, as it fires ZooKeeper's data and
    /// child watches).
    Deleted(String),
    DataChanged(String),
    ChildrenChanged(String),
}

impl WaitFor {
    pub fn path(&self) -> &str {
        match self {
            WaitFor::Created(p)
            | WaitFor::Deleted(p)
            | WaitFor::DataChanged(p)
            | WaitFor::ChildrenChanged(p) => p,
        }
    }

    /// Whether an event of `kind` on this path fires it: creation for `Created`, deletion for
    /// `Deleted`, any change of the node's data or existence for `DataChanged`, a child created
    /// or deleted (or the node deleted) for `ChildrenChanged`.
    pub fn fired_by(&self, kind: EventType) -> bool {
        use EventType::*;
        match self {
            WaitFor::Created(_) => kind == NodeCreated,
            WaitFor::Deleted(_) => kind == NodeDeleted,
            WaitFor::DataChanged(_) => matches!(kind, NodeDataChanged | NodeCreated | NodeDeleted),
            WaitFor::ChildrenChanged(_) => matches!(kind, NodeChildrenChanged | NodeDeleted),
        }
    }
}

/// The tree as a stage is answered against: the applied tree, the server's outstanding changes,
/// and who is asking.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub tree: &'a DataTree,
    pub pending: &'a PendingChanges,
    pub cfg: &'a PrepConfig,
    pub auth: &'a AuthInfo,
    /// False once the calling session is closing or expired: staged writes get SESSIONEXPIRED.
    pub session_valid: bool,
}

/// One invocation's staged writes; see the module docs.
pub struct Stage {
    session_id: i64,
    /// The zxid and time its changes are recorded with (the real ones are the multi's, when it
    /// is prepped again at commit).
    zxid: Zxid,
    time: i64,
    own: PendingChanges,
    ops: Vec<MultiOp>,
    /// The multi txn's encoded size so far.
    size: usize,
    /// Data this stage wrote, by path (`None`: deleted by it).
    data: FastMap<String, Option<Vec<u8>>>,
    /// Children this stage created and deleted, by parent (`true`: created).
    children: FastMap<String, BTreeMap<String, bool>>,
    /// Each path the stage depended on, with its state under the stage when first used.
    stamps: FastMap<String, Option<NodeMeta>>,
    /// The highest outstanding txn of the server's a read depended on (0: none).
    observed: Zxid,
}

/// `p`'s state under a stage: the server's outstanding change of it, else the tree's node.
fn meta_under(tree: &DataTree, pending: &PendingChanges, p: &str) -> Option<NodeMeta> {
    match pending.record_of(p) {
        Some(r) => r.meta,
        None => tree.get(p).map(|n| n.meta()),
    }
}

impl Stage {
    /// A stage for `session_id`'s call at `time`; `zxid` stands in for the multi's zxid in the
    /// stats of nodes the stage creates or changes (the server's next zxid is a fair guess).
    pub fn new(session_id: i64, zxid: Zxid, time: i64) -> Stage {
        Stage {
            session_id,
            zxid,
            time,
            own: PendingChanges::new(),
            ops: Vec::new(),
            size: TXN_HEADER_LEN + Txn::Multi(Vec::new()).encoded_len(),
            data: FastMap::default(),
            children: FastMap::default(),
            stamps: FastMap::default(),
            observed: 0,
        }
    }

    /// Answers `a` against `view`, or says what it waits for.
    pub fn access(&mut self, view: View<'_>, a: &Access) -> Result<Answer, Wait> {
        if is_system_path(a.path()) {
            return Ok(Answer::Failed(ErrorCode::NoAuth));
        }
        let read = match a {
            Access::Get(p) | Access::Exists(p) | Access::Children(p) => p,
            Access::Stage(op) => return Ok(self.stage(view, op)),
        };
        if let Some(r) = view.pending.record_of(read) {
            let data_unknown = match (&r.meta, view.tree.get(read)) {
                (Some(m), Some(n)) => {
                    let t = n.meta();
                    (t.czxid, t.mzxid) != (m.czxid, m.mzxid)
                }
                (Some(_), None) => true,
                (None, _) => false,
            };
            // A child list needs no data; a stat needs the data's length.
            if data_unknown
                && !matches!(a, Access::Children(_))
                && self.own.record_of(read).is_none()
            {
                return Err(Wait { until: r.zxid });
            }
            self.observed = self.observed.max(r.zxid);
        }
        self.stamp(view, read);
        let needs_read = !matches!(a, Access::Exists(_));
        if needs_read {
            if let Err(e) = self.check_read(view, read) {
                return Ok(Answer::Failed(e));
            }
        }
        Ok(match a {
            Access::Get(p) => match self.get(view, p) {
                Some((d, s)) => Answer::Data(d, s),
                None => Answer::Failed(ErrorCode::NoNode),
            },
            Access::Exists(p) => Answer::Exists(self.stat(view, p)),
            Access::Children(p)
                if view
                    .tree
                    .get(p)
                    .is_some_and(|n| n.child_count() > MAX_CHILDREN_PER_READ) =>
            {
                Answer::Failed(ErrorCode::MarshallingError)
            }
            Access::Children(p) => match self.children(view, p) {
                Some(c) => Answer::Children(c),
                None => Answer::Failed(ErrorCode::NoNode),
            },
            Access::Stage(_) => unreachable!("answered above"),
        })
    }

    /// READ on `p` for the caller, the ACL as the stage has it (a node the stage created has the
    /// ACL it was created with). A missing node passes: the read answers NONODE.
    fn check_read(&self, view: View<'_>, p: &str) -> Result<(), ErrorCode> {
        let acl = match self.own.record_of(p).or_else(|| view.pending.record_of(p)) {
            Some(r) if r.meta.is_some() => r.acl.clone(),
            Some(_) => return Ok(()),
            None => match view.tree.get(p) {
                Some(n) => n.acl().clone(),
                None => return Ok(()),
            },
        };
        check_acl(&acl, perms::READ, view.auth)
    }

    fn stamp(&mut self, view: View<'_>, p: &str) {
        if !self.stamps.contains_key(p) {
            let m = meta_under(view.tree, view.pending, p);
            self.stamps.insert(p.to_owned(), m);
        }
    }

    /// Stages `op` (create, delete, setData or check, with ZooKeeper's semantics and error
    /// codes). On an error the stage is as it was before the op. A multi that would pass the
    /// log's record limit is refused with MARSHALLINGERROR, as prep refuses it.
    fn stage(&mut self, view: View<'_>, op: &MultiOp) -> Answer {
        let target = match op {
            MultiOp::Create(c) => c.path.as_str(),
            MultiOp::Delete { path, .. }
            | MultiOp::SetData { path, .. }
            | MultiOp::Check { path, .. } => path.as_str(),
        };
        // What the op depends on: its node and (a create's or delete's) parent. A sequential
        // create's node is stamped below, once its name is known.
        let parent = path::parent(target).unwrap_or("/").to_owned();
        let node_decides = !matches!(op, MultiOp::Create(c) if c.flags & 2 != 0);
        if node_decides {
            self.stamp(view, target);
        }
        if matches!(op, MultiOp::Create(_) | MultiOp::Delete { .. }) {
            self.stamp(view, &parent);
        }
        let mut prep = Prep {
            tree: view.tree,
            pending: &mut self.own,
            base: Some(view.pending),
            ctx: PrepCtx {
                session_id: self.session_id,
                session_valid: view.session_valid,
                auth: view.auth,
                zxid: self.zxid,
                time: self.time,
            },
            cfg: view.cfg,
            saved: Vec::new(),
            undoable: true,
        };
        // Every op of a stage has the stage's zxid: take back this op's changes only.
        let mark = prep.mark();
        let txn = match prep.multi_op(op) {
            Ok(t) => t,
            Err(e) => {
                prep.rollback_to(mark);
                return Answer::Failed(e);
            }
        };
        let len = txn.encoded_len();
        if self.size + len > MAX_TXN_LEN {
            prep.rollback_to(mark);
            return Answer::Failed(ErrorCode::MarshallingError);
        }
        self.size += len;
        let node = match &txn {
            Txn::Create { path: p, data, .. } => {
                self.data
                    .insert(p.clone(), Some(data.clone().unwrap_or_default()));
                self.child(p, true);
                p.clone()
            }
            Txn::Delete { path: p } => {
                self.data.insert(p.clone(), None);
                self.child(p, false);
                p.clone()
            }
            Txn::SetData { path: p, data, .. } => {
                self.data
                    .insert(p.clone(), Some(data.clone().unwrap_or_default()));
                p.clone()
            }
            _ => target.to_owned(),
        };
        if !node_decides {
            self.stamp(view, &node);
        }
        self.ops.push(op.clone());
        let stat = self.stat(view, &node);
        Answer::Staged { path: node, stat }
    }

    fn child(&mut self, p: &str, created: bool) {
        let parent = path::parent(p).unwrap_or("/");
        let name = path::name(p);
        let under = self.children.entry(parent.to_owned()).or_default();
        match under.get(name) {
            // Deleted what this stage created, or recreated what it deleted: the tree's state.
            Some(&was) if was != created => {
                under.remove(name);
            }
            _ => {
                under.insert(name.to_owned(), created);
            }
        }
    }

    /// Ops staged so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// `p`'s meta under the stage: its own change, else the server's outstanding one, else the
    /// tree's node (`None`: no such node).
    fn meta(&self, view: View<'_>, p: &str) -> Option<NodeMeta> {
        match self.own.record_of(p).or_else(|| view.pending.record_of(p)) {
            Some(r) => r.meta,
            None => view.tree.get(p).map(|n| n.meta()),
        }
    }

    /// The node at `p` under the stage (`None`: no such node). Its data's length is the tree's
    /// unless the stage wrote it (callers wait for data written outstanding; see `access`).
    fn stat(&self, view: View<'_>, p: &str) -> Option<Stat> {
        let meta = self.meta(view, p)?;
        let data_len = match self.data.get(p) {
            Some(Some(d)) => d.len() as i32,
            Some(None) => return None,
            None => view.tree.get(p).map_or(0, |n| n.data_len()),
        };
        let children = self.children(view, p).map_or(0, |c| c.len()) as i32;
        Some(stat_of(&meta, data_len, children))
    }

    /// The data and stat of `p` under the stage.
    fn get(&self, view: View<'_>, p: &str) -> Option<(Vec<u8>, Stat)> {
        let stat = self.stat(view, p)?;
        let data = match self.data.get(p) {
            Some(Some(d)) => d.clone(),
            _ => view
                .tree
                .get(p)
                .and_then(|n| n.data())
                .unwrap_or_default()
                .to_vec(),
        };
        Some((data, stat))
    }

    /// The children of `p`, sorted by name, under the stage: the tree's, then the server's
    /// outstanding creates and deletes under `p`, then this stage's (`None`: no such node).
    fn children(&self, view: View<'_>, p: &str) -> Option<Vec<String>> {
        self.meta(view, p)?;
        let mut names: BTreeSet<String> = match view.tree.get(p) {
            Some(n) => n.children().map(str::to_owned).collect(),
            None => BTreeSet::new(),
        };
        if view.pending.record_of(p).is_some() {
            for (name, r) in view.pending.children_changes(p) {
                if r.meta.is_some() {
                    names.insert(name.to_owned());
                } else {
                    names.remove(name);
                }
            }
        }
        if let Some(changes) = self.children.get(p) {
            for (name, &created) in changes {
                if created {
                    names.insert(name.clone());
                } else {
                    names.remove(name);
                }
            }
        }
        Some(names.into_iter().collect())
    }

    /// Whether every path the stage depended on is as it was then, under the server's
    /// outstanding changes now: if so, its ops prep (as one multi) to what the stage showed.
    pub fn still_holds(&self, tree: &DataTree, pending: &PendingChanges) -> bool {
        self.stamps
            .iter()
            .all(|(p, m)| meta_under(tree, pending, p) == *m)
    }

    /// The highest outstanding txn of the server's that a read depended on (0: none): a run
    /// that commits nothing answers only once it is applied.
    pub fn observed(&self) -> Zxid {
        self.observed
    }

    /// Paths the stage depended on.
    pub fn stamped(&self) -> usize {
        self.stamps.len()
    }

    /// The ops staged, in order: the multi to prep at commit.
    pub fn into_ops(self) -> Vec<MultiOp> {
        self.ops
    }
}

#[cfg(test)]
#[path = "stage_test.rs"]
mod tests;
