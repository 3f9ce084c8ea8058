//! Staging (issue 11, item 2): writes staged one at a time against the tree and the outstanding
//! changes, read back through the staged view, then committed as one multi txn or dropped — what
//! a server-side recipe does with the tree in one invocation.
//!
//! Each [`Stage::stage`] checks its op as prep checks a multi's sub-op (against the tree plus
//! every outstanding change, this stage's own included) and records its changes as outstanding;
//! a failing op leaves no trace and the stage goes on (the recipe decides whether to abort). The
//! reads ([`Stage::stat`], [`Stage::get`], [`Stage::children`]) see the applied tree plus this
//! stage's own writes, data and sorted child lists included; other outstanding txns only
//! constrain what may be staged, as they constrain prep. [`Stage::commit`] hands back the multi
//! txn, its changes left outstanding until it is applied, exactly as [`crate::prep`] leaves a
//! multi; [`Stage::abort`] takes every change back.
//!
//! Cost: staging an op is what prepping it costs (its path's records, no scan of earlier ops);
//! aborting costs what was staged. A child list read costs the node's children plus this
//! stage's changes under it.

use std::collections::{BTreeMap, BTreeSet};

use wazoo_proto::{ErrorCode, MultiOp, Stat, Txn, MAX_TXN_LEN, TXN_HEADER_LEN};

use crate::datatree::DataTree;
use crate::hash::FastMap;
use crate::node::stat_of;
use crate::path;
use crate::prep::{PendingChanges, Prep, PrepConfig, PrepCtx};

/// One invocation's staged writes; see the module docs.
pub struct Stage<'a> {
    prep: Prep<'a>,
    txns: Vec<Txn>,
    /// The multi txn's encoded size so far.
    size: usize,
    /// Data this stage wrote, by path (`None`: deleted by it).
    data: FastMap<String, Option<Vec<u8>>>,
    /// Children this stage created and deleted, by parent (`true`: created).
    children: FastMap<String, BTreeMap<String, bool>>,
}

impl<'a> Stage<'a> {
    /// A stage for the txn that will be logged at `ctx.zxid`.
    pub fn new(
        tree: &'a DataTree,
        pending: &'a mut PendingChanges,
        ctx: PrepCtx<'a>,
        cfg: &'a PrepConfig,
    ) -> Stage<'a> {
        Stage {
            prep: Prep {
                tree,
                pending,
                ctx,
                cfg,
                saved: Vec::new(),
                undoable: true,
            },
            txns: Vec::new(),
            size: TXN_HEADER_LEN + Txn::Multi(Vec::new()).encoded_len(),
            data: FastMap::default(),
            children: FastMap::default(),
        }
    }

    /// Stages `op` (create, delete, setData or check, with ZooKeeper's semantics and error
    /// codes); a create returns the path it creates (sequential names resolved). On an error the
    /// stage is as it was before the op. A txn that would pass the log's record limit is
    /// refused with MARSHALLINGERROR, as prep refuses it.
    pub fn stage(&mut self, op: &MultiOp) -> Result<Option<String>, ErrorCode> {
        let mark = self.prep.mark();
        let txn = match self.prep.multi_op(op) {
            Ok(t) => t,
            Err(e) => {
                self.prep.rollback_to(mark);
                return Err(e);
            }
        };
        let len = txn.encoded_len();
        if self.size + len > MAX_TXN_LEN {
            self.prep.rollback_to(mark);
            return Err(ErrorCode::MarshallingError);
        }
        self.size += len;
        let created = match &txn {
            Txn::Create { path: p, data, .. } => {
                self.data
                    .insert(p.clone(), Some(data.clone().unwrap_or_default()));
                self.child(p, true);
                Some(p.clone())
            }
            Txn::Delete { path: p } => {
                self.data.insert(p.clone(), None);
                self.child(p, false);
                None
            }
            Txn::SetData { path: p, data, .. } => {
                self.data
                    .insert(p.clone(), Some(data.clone().unwrap_or_default()));
                None
            }
            _ => None,
        };
        self.txns.push(txn);
        Ok(created)
    }

    fn child(&mut self, p: &str, created: bool) {
        let parent = path::parent(p).unwrap_or("/");
        let name = &p[p.rfind('/').map_or(0, |i| i + 1)..];
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
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// The node at `p` as the tree plus this stage's writes have it (`None`: no such node).
    pub fn stat(&self, p: &str) -> Option<Stat> {
        let own = self
            .prep
            .pending
            .record_of(p)
            .filter(|r| r.zxid == self.prep.ctx.zxid);
        let meta = match own {
            Some(r) => r.meta?,
            None => self.prep.tree.get(p)?.meta(),
        };
        let data_len = match self.data.get(p) {
            Some(Some(d)) => d.len() as i32,
            Some(None) => return None,
            None => self.prep.tree.get(p).map_or(0, |n| n.data_len()),
        };
        let children = self.children(p).map_or(0, |c| c.len()) as i32;
        Some(stat_of(&meta, data_len, children))
    }

    /// The data and stat of `p` as the tree plus this stage's writes have them.
    pub fn get(&self, p: &str) -> Option<(Vec<u8>, Stat)> {
        let stat = self.stat(p)?;
        let data = match self.data.get(p) {
            Some(Some(d)) => d.clone(),
            _ => self
                .prep
                .tree
                .get(p)
                .and_then(|n| n.data())
                .unwrap_or_default()
                .to_vec(),
        };
        Some((data, stat))
    }

    /// The children of `p`, sorted by name, as the tree plus this stage's writes have them
    /// (`None`: no such node).
    pub fn children(&self, p: &str) -> Option<Vec<String>> {
        if matches!(self.data.get(p), Some(None)) {
            return None;
        }
        let mut names: BTreeSet<String> = match self.prep.tree.get(p) {
            Some(n) => n.children().map(str::to_owned).collect(),
            None if self.data.contains_key(p) => BTreeSet::new(),
            None => return None,
        };
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

    /// The multi txn of every op staged, to log at the stage's zxid; its changes stay
    /// outstanding until the tree applies it.
    pub fn commit(self) -> Txn {
        Txn::Multi(self.txns)
    }

    /// Drops every staged op: the outstanding changes are as they were before the stage.
    pub fn abort(mut self) {
        self.prep.rollback();
    }
}

#[cfg(test)]
#[path = "stage_test.rs"]
mod tests;
