//! `DataTree::apply`: a txn (and each op of a multi) applied to the tree, deterministically,
//! returning the watch events it triggers as data.

use super::*;

impl DataTree {
    /// Changes a node's meta (and optionally data / ACL), keeping digest, sizes and the dirty set up
    /// to date. Returns the node's new Stat and its ACL.
    fn update(
        &mut self,
        p: &str,
        f: impl FnOnce(&mut NodeMeta),
        data: Option<Option<&[u8]>>,
        acl: Option<&[Acl]>,
    ) -> Option<(Stat, AclList)> {
        let id = self.lookup(p)?;
        Some(self.update_at(id, p, f, data, acl))
    }

    /// [`DataTree::update`] of a node already looked up: `id` is the node at `p`.
    fn update_at(
        &mut self,
        id: NodeId,
        p: &str,
        f: impl FnOnce(&mut NodeMeta),
        data: Option<Option<&[u8]>>,
        acl: Option<&[Acl]>,
    ) -> (Stat, AclList) {
        let (before, before_len) = {
            let s = self.slot(id);
            (node_digest(p, &s.meta(), s.data()), s.data_len() as u64)
        };
        let new_acl = acl.map(|a| self.acls.acquire(a));
        if new_acl.is_some() {
            let old = self.slot(id).acl;
            self.acls.release(old);
        }
        let s = self.slot_mut(id);
        let mut m = s.meta();
        f(&mut m);
        s.set_meta(&m);
        if let Some(d) = data {
            s.set_data(d);
        }
        if let Some(a) = new_acl {
            s.acl = a;
        }
        let (after, after_len) = {
            let s = self.slot(id);
            (node_digest(p, &s.meta(), s.data()), s.data_len() as u64)
        };
        self.data_size = self.data_size - before_len + after_len;
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        // The parent of many creates is dirty already: no new key for it.
        match self.dirty_nodes.get_mut(p) {
            Some(v) => *v = id,
            None => {
                self.dirty_nodes.insert(p.to_string(), id);
            }
        }
        let s = self.slot(id);
        (
            stat_of(&s.meta(), s.data_len(), s.child_count() as i32),
            self.acls.get(s.acl).clone(),
        )
    }

    /// Applies a committed txn. Deterministic: the result depends only on the tree and the txn.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> Applied {
        let mut events = Vec::new();
        let outcome = self.apply_one(header, txn, &mut events);
        if header.zxid > self.last_applied {
            self.last_applied = header.zxid;
        }
        Applied {
            zxid: header.zxid,
            outcome,
            events,
        }
    }

    fn apply_one(&mut self, h: &TxnHeader, txn: &Txn, ev: &mut Vec<TreeEvent>) -> OpOutcome {
        match txn {
            Txn::CreateSession { timeout, passwd } => {
                self.sessions.insert(
                    h.session_id,
                    SessionEntry {
                        timeout: *timeout,
                        passwd: passwd.clone(),
                    },
                );
                self.dirty_sessions.insert(h.session_id);
                OpOutcome::SessionCreated
            }
            Txn::CloseSession { ephemerals } => {
                // Prep no longer lists the paths: the session's ephemerals are what the index
                // holds now (see `Prep::close_session`). Logs written before that list them; like
                // ZooKeeper's killSession, apply deletes the listed paths, in their order, then
                // whatever else the session still owns. The union is the right set: the two agree
                // whenever the pipeline keeps its ordering guarantee, and if they ever did not,
                // an ephemeral missing from the list would outlive its session forever, while a
                // listed path the session no longer owns is skipped by the owner check below.
                // A hash set keeps this linear (it compared every path with every other).
                let mut listed: FastSet<&str> =
                    FastSet::with_capacity_and_hasher(ephemerals.len(), Default::default());
                let mut paths: Vec<String> = Vec::with_capacity(ephemerals.len());
                for p in ephemerals {
                    if listed.insert(p.as_str()) {
                        paths.push(p.clone());
                    }
                }
                let rest: Vec<(String, Zxid)> = self
                    .ephemerals_of(h.session_id)
                    .filter(|p| !listed.contains(p.as_str()))
                    .map(|p| (p.clone(), self.get(p).map_or(0, |n| n.meta().czxid)))
                    .collect();
                paths.extend(java_hash_set_order(rest));
                for p in paths {
                    if self.get(&p).is_some_and(|n| n.meta().owner == h.session_id) {
                        self.delete_node(&p, h.zxid, ev);
                    }
                }
                self.sessions.remove(&h.session_id);
                self.dirty_sessions.insert(h.session_id);
                OpOutcome::SessionClosed
            }
            Txn::Create {
                path: p,
                data,
                acl,
                owner,
                parent_cversion,
            } => {
                let Some(parent) = path::parent(p) else {
                    return OpOutcome::Error(ErrorCode::BadArguments.code());
                };
                // The parent is resolved once and used by id from here on.
                let Some(parent_id) = self.lookup(parent) else {
                    return OpOutcome::Error(ErrorCode::NoNode.code());
                };
                let name = path::name(p).as_bytes();
                if self.find_child(parent_id, name).is_some() {
                    return OpOutcome::Error(ErrorCode::NodeExists.code());
                }
                let meta = NodeMeta {
                    czxid: h.zxid,
                    mzxid: h.zxid,
                    ctime: h.time,
                    mtime: h.time,
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    owner: *owner,
                    pzxid: h.zxid,
                };
                let id = self.insert_child(parent_id, p, &meta, acl, data.as_deref());
                self.digest = self
                    .digest
                    .wrapping_add(node_digest(p, &meta, data.as_deref()));
                self.dirty_nodes.insert(p.clone(), id);
                self.index_owner(p, *owner);
                let stat = stat_of(&meta, data.as_ref().map_or(0, |d| d.len() as i32), 0);
                let node_acl = self.acls.get(self.slot(id).acl).clone();
                let zxid = h.zxid;
                let pcv = *parent_cversion;
                let (_, parent_acl) = self.update_at(
                    parent_id,
                    parent,
                    |pm| {
                        if pcv > pm.cversion {
                            pm.cversion = pcv;
                            pm.pzxid = zxid;
                        }
                    },
                    None,
                    None,
                );
                ev.push(TreeEvent {
                    kind: EventType::NodeCreated,
                    path: p.clone(),
                    acl: node_acl,
                });
                ev.push(TreeEvent {
                    kind: EventType::NodeChildrenChanged,
                    path: parent.to_string(),
                    acl: parent_acl,
                });
                OpOutcome::Created {
                    path: p.clone(),
                    stat,
                }
            }
            Txn::Delete { path: p } => {
                if !self.contains(p) {
                    return OpOutcome::Error(ErrorCode::NoNode.code());
                }
                self.delete_node(p, h.zxid, ev);
                OpOutcome::Deleted
            }
            Txn::SetData {
                path: p,
                data,
                version,
            } => {
                let (zxid, time) = (h.zxid, h.time);
                match self.update(
                    p,
                    |m| {
                        m.version = *version;
                        m.mzxid = zxid;
                        m.mtime = time;
                    },
                    Some(data.as_deref()),
                    None,
                ) {
                    Some((stat, acl)) => {
                        ev.push(TreeEvent {
                            kind: EventType::NodeDataChanged,
                            path: p.clone(),
                            acl,
                        });
                        OpOutcome::DataSet { stat }
                    }
                    None => OpOutcome::Error(ErrorCode::NoNode.code()),
                }
            }
            Txn::SetAcl {
                path: p,
                acl,
                aversion,
            } => match self.update(p, |m| m.aversion = *aversion, None, Some(acl)) {
                Some((stat, _)) => OpOutcome::AclSet { stat },
                None => OpOutcome::Error(ErrorCode::NoNode.code()),
            },
            Txn::Check { .. } => OpOutcome::Checked,
            Txn::Error { err } => OpOutcome::Error(*err),
            Txn::Multi(ops) => {
                if ops.iter().any(|o| matches!(o, Txn::Error { .. })) {
                    return OpOutcome::Multi(
                        ops.iter()
                            .map(|o| match o {
                                Txn::Error { err } => OpOutcome::Error(*err),
                                _ => OpOutcome::Error(0),
                            })
                            .collect(),
                    );
                }
                OpOutcome::Multi(ops.iter().map(|o| self.apply_one(h, o, ev)).collect())
            }
        }
    }

    fn delete_node(&mut self, p: &str, zxid: Zxid, ev: &mut Vec<TreeEvent>) {
        let Some(id) = self.lookup(p) else {
            return;
        };
        if self.slot(id).child_count() > 0 || id == ROOT {
            return;
        }
        let (meta, digest, len, acl) = {
            let s = self.slot(id);
            (
                s.meta(),
                node_digest(p, &s.meta(), s.data()),
                s.data_len() as u64,
                self.acls.get(s.acl).clone(),
            )
        };
        self.free_node(id);
        self.digest = self.digest.wrapping_sub(digest);
        self.data_size -= p.len() as u64 + len;
        self.dirty_nodes.insert(p.to_string(), NONE);
        self.unindex_owner(p, meta.owner);
        let parent = path::parent(p).unwrap_or("/");
        let parent_acl = self
            .update(
                parent,
                |pm| {
                    if zxid > pm.pzxid {
                        pm.pzxid = zxid;
                    }
                },
                None,
                None,
            )
            .map(|(_, acl)| acl);
        ev.push(TreeEvent {
            kind: EventType::NodeDeleted,
            path: p.to_string(),
            acl,
        });
        if let Some(acl) = parent_acl {
            ev.push(TreeEvent {
                kind: EventType::NodeChildrenChanged,
                path: parent.to_string(),
                acl,
            });
        }
    }
}

/// The watch events applying `txn` will fire, known before it is applied (what a server-side
/// recipe parked on a path waits for): a create's `NodeCreated` and its parent's
/// `NodeChildrenChanged`, a delete's `NodeDeleted` and its parent's, a setData's
/// `NodeDataChanged`, each op of a multi that succeeds; none for a failed multi. `None` for a
/// closeSession, whose ephemerals apply finds in the tree (the txn does not list them).
///
/// For a txn prepped against the tree and the outstanding changes before it, these are the
/// events [`DataTree::apply`] returns, in its order, but for the ACLs it attaches (tested).
pub fn events_of(txn: &Txn) -> Option<Vec<(EventType, String)>> {
    let mut out = Vec::new();
    push_events(txn, &mut out)?;
    Some(out)
}

fn push_events(txn: &Txn, out: &mut Vec<(EventType, String)>) -> Option<()> {
    let parent = |p: &str| path::parent(p).unwrap_or("/").to_owned();
    match txn {
        Txn::CloseSession { .. } => return None,
        Txn::Create { path: p, .. } => {
            out.push((EventType::NodeCreated, p.clone()));
            out.push((EventType::NodeChildrenChanged, parent(p)));
        }
        Txn::Delete { path: p } => {
            out.push((EventType::NodeDeleted, p.clone()));
            out.push((EventType::NodeChildrenChanged, parent(p)));
        }
        Txn::SetData { path: p, .. } => out.push((EventType::NodeDataChanged, p.clone())),
        Txn::Multi(ops) => {
            if !ops.iter().any(|o| matches!(o, Txn::Error { .. })) {
                for o in ops {
                    push_events(o, out)?;
                }
            }
        }
        Txn::CreateSession { .. } | Txn::SetAcl { .. } | Txn::Check { .. } | Txn::Error { .. } => {}
    }
    Some(())
}
