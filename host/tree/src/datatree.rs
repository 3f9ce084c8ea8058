//! `DataTree`: the znode map, the replicated session table, ephemeral/container/TTL indexes, the
//! tree digest, and deterministic `apply(txn)`. Apply never reads a clock: every time, owner and
//! version it needs is in the txn, so every replica that applies the same log holds the same tree.

use std::collections::{BTreeSet, HashMap, HashSet};

use wazoo_proto::{Acl, ErrorCode, EventType, Stat, Txn, TxnHeader, Zxid};

use crate::acl::{AclCache, AclList};
use crate::node::{owner_kind, Node, NodeMeta, OwnerKind};
use crate::path;

/// A replicated session: created by a createSession txn, removed by closeSession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout: i32,
    pub passwd: Vec<u8>,
}

/// A change that watches may fire on; `acl` is the ACL of the node the event is about (the parent's
/// for NodeChildrenChanged), used to filter delivery by READ permission.
#[derive(Debug, Clone)]
pub struct TreeEvent {
    pub kind: EventType,
    pub path: String,
    pub acl: AclList,
}

/// What applying one (sub-)txn did, for building the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    AclSet { stat: Stat },
    Checked,
    SessionCreated,
    SessionClosed,
    Error(i32),
    Multi(Vec<OpOutcome>),
}

/// The result of applying a txn.
#[derive(Debug, Clone)]
pub struct Applied {
    pub zxid: Zxid,
    pub outcome: OpOutcome,
    pub events: Vec<TreeEvent>,
}

/// Key prefix of persisted sessions (node keys are absolute paths and start with `/`).
pub const SESSION_KEY_PREFIX: &[u8] = b"~session/";

pub fn session_key(id: i64) -> Vec<u8> {
    let mut k = SESSION_KEY_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// A persisted-state mutation produced by apply: `value` None means delete.
pub type StateChange = (Vec<u8>, Option<Vec<u8>>);

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn node_digest(path: &str, n: &Node) -> u64 {
    let m = &n.meta;
    let mut h = fnv1a(0xcbf2_9ce4_8422_2325, path.as_bytes());
    for v in [m.czxid, m.mzxid, m.ctime, m.mtime, m.owner, m.pzxid] {
        h = fnv1a(h, &v.to_be_bytes());
    }
    for v in [m.version, m.cversion, m.aversion] {
        h = fnv1a(h, &v.to_be_bytes());
    }
    match &n.data {
        None => fnv1a(h, &[0xff]),
        Some(d) => fnv1a(fnv1a(h, &[0]), d),
    }
}

/// The in-memory znode tree.
#[derive(Debug)]
pub struct DataTree {
    nodes: HashMap<Box<str>, Node>,
    acls: AclCache,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    sessions: HashMap<i64, SessionEntry>,
    last_applied: Zxid,
    digest: u64,
    data_size: u64,
    dirty_nodes: HashSet<String>,
    dirty_sessions: HashSet<i64>,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A tree holding only the system nodes `/`, `/zookeeper`, `/zookeeper/quota` and
    /// `/zookeeper/config` (world-READ), all with zero stats and empty (non-null) data.
    pub fn new() -> Self {
        let mut t = DataTree {
            nodes: HashMap::new(),
            acls: AclCache::default(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: HashMap::new(),
            last_applied: 0,
            digest: 0,
            data_size: 0,
            dirty_nodes: HashSet::new(),
            dirty_sessions: HashSet::new(),
        };
        let open = t.acls.intern(&Acl::open_unsafe());
        let read = t.acls.intern(&Acl::read_unsafe());
        for (p, acl) in [
            ("/", open.clone()),
            (path::ZOOKEEPER, open.clone()),
            (path::QUOTA, open),
            (path::CONFIG, read),
        ] {
            t.insert_node(
                p,
                Node {
                    meta: NodeMeta::default(),
                    data: Some(Box::from(&[][..])),
                    acl,
                    children: HashSet::new(),
                },
            );
        }
        // The config node's ACL is set with setACL(-1) in ZooKeeper, leaving aversion -1.
        if let Some(n) = t.nodes.get_mut(path::CONFIG) {
            n.meta.aversion = -1;
        }
        t.recompute_digest();
        t.dirty_nodes.clear();
        t
    }

    fn insert_node(&mut self, p: &str, node: Node) {
        if let Some(parent) = path::parent(p) {
            if let Some(pn) = self.nodes.get_mut(parent) {
                pn.children.insert(Box::from(path::name(p)));
            }
        }
        self.data_size += p.len() as u64 + node.data_len() as u64;
        self.nodes.insert(Box::from(p), node);
    }

    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    pub fn contains(&self, p: &str) -> bool {
        self.nodes.contains_key(p)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    pub fn last_applied(&self) -> Zxid {
        self.last_applied
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn sessions(&self) -> &HashMap<i64, SessionEntry> {
        &self.sessions
    }

    pub fn session(&self, id: i64) -> Option<&SessionEntry> {
        self.sessions.get(&id)
    }

    /// The ephemeral paths a session owns (applied state only).
    pub fn ephemerals_of(&self, session: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session).into_iter().flatten()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    pub fn intern_acl(&mut self, acl: &[Acl]) -> AclList {
        self.acls.intern(acl)
    }

    /// Recomputes the digest from scratch (tests compare it with the incremental one).
    pub fn recompute_digest(&mut self) -> u64 {
        self.digest = self
            .nodes
            .iter()
            .fold(0u64, |acc, (p, n)| acc.wrapping_add(node_digest(p, n)));
        self.digest
    }

    /// Every path under `prefix` (recursive), excluding `prefix` itself.
    pub fn count_descendants(&self, p: &str) -> i32 {
        let mut count = 0i32;
        let mut stack = vec![p.to_string()];
        while let Some(cur) = stack.pop() {
            if let Some(n) = self.nodes.get(cur.as_str()) {
                for c in &n.children {
                    count += 1;
                    stack.push(path::child(&cur, c));
                }
            }
        }
        count
    }

    /// Containers and TTL nodes due for deletion at `now` (`ContainerManager.getCandidates`).
    pub fn container_candidates(&self, now: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(n) = self.nodes.get(p.as_str()) {
                if n.children.is_empty()
                    && (n.meta.cversion > 0
                        || (max_never_used_ms > 0 && now - n.meta.mtime > max_never_used_ms))
                {
                    out.push(p.clone());
                }
            }
        }
        for p in &self.ttls {
            if let Some(n) = self.nodes.get(p.as_str()) {
                if let OwnerKind::Ttl(ttl) = owner_kind(n.meta.owner) {
                    if n.children.is_empty() && ttl != 0 && now - n.meta.mtime > ttl {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }

    /// Takes the persisted-state mutations made since the last call (node and session keys).
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        let mut out = Vec::with_capacity(self.dirty_nodes.len() + self.dirty_sessions.len());
        for p in self.dirty_nodes.drain() {
            let v = self.nodes.get(p.as_str()).map(Node::encode);
            out.push((p.into_bytes(), v));
        }
        for id in self.dirty_sessions.drain() {
            let v = self.sessions.get(&id).map(|s| {
                let mut b = s.timeout.to_be_bytes().to_vec();
                b.extend_from_slice(&s.passwd);
                b
            });
            out.push((session_key(id), v));
        }
        out
    }

    /// Loads one persisted entry (node keys arrive parents first, as bytewise key order guarantees).
    pub fn load_entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        if let Some(id) = key.strip_prefix(SESSION_KEY_PREFIX) {
            let id: [u8; 8] = id.try_into().map_err(|_| "bad session key".to_string())?;
            if value.len() < 4 {
                return Err("bad session record".into());
            }
            let timeout = i32::from_be_bytes([value[0], value[1], value[2], value[3]]);
            self.sessions.insert(
                i64::from_be_bytes(id),
                SessionEntry {
                    timeout,
                    passwd: value[4..].to_vec(),
                },
            );
            return Ok(());
        }
        let p = std::str::from_utf8(key).map_err(|_| "node key is not UTF-8".to_string())?;
        let (meta, acl, data) = Node::decode(value).map_err(|e| format!("node {p}: {e}"))?;
        let acl = self.acls.intern(&acl);
        if let Some(existing) = self.nodes.get_mut(p) {
            self.data_size = self.data_size - existing.data_len() as u64
                + data.as_ref().map_or(0, |d| d.len() as u64);
            existing.meta = meta;
            existing.acl = acl;
            existing.data = data;
        } else {
            let parent = path::parent(p).ok_or_else(|| format!("node {p} has no parent"))?;
            if !self.nodes.contains_key(parent) {
                return Err(format!("node {p} loaded before its parent"));
            }
            self.insert_node(
                p,
                Node {
                    meta,
                    data,
                    acl,
                    children: HashSet::new(),
                },
            );
        }
        self.index_owner(p, meta.owner);
        Ok(())
    }

    /// Finishes a load: sets last_applied and recomputes the digest.
    pub fn finish_load(&mut self, last_applied: Zxid) {
        self.last_applied = last_applied;
        self.recompute_digest();
        self.dirty_nodes.clear();
        self.dirty_sessions.clear();
    }

    fn index_owner(&mut self, p: &str, owner: i64) {
        match owner_kind(owner) {
            OwnerKind::Ephemeral(s) => {
                self.ephemerals.entry(s).or_default().insert(p.to_string());
            }
            OwnerKind::Container => {
                self.containers.insert(p.to_string());
            }
            OwnerKind::Ttl(_) => {
                self.ttls.insert(p.to_string());
            }
            OwnerKind::Persistent => {}
        }
    }

    fn unindex_owner(&mut self, p: &str, owner: i64) {
        match owner_kind(owner) {
            OwnerKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(p);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            OwnerKind::Container => {
                self.containers.remove(p);
            }
            OwnerKind::Ttl(_) => {
                self.ttls.remove(p);
            }
            OwnerKind::Persistent => {}
        }
    }

    /// Runs `f` on a node, keeping the digest and the dirty set up to date.
    fn update_node<R>(&mut self, p: &str, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        let n = self.nodes.get_mut(p)?;
        let before = node_digest(p, n);
        let before_len = n.data_len() as u64;
        let r = f(n);
        let after = node_digest(p, n);
        self.data_size = self.data_size - before_len + n.data_len() as u64;
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        self.dirty_nodes.insert(p.to_string());
        Some(r)
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
                let mut paths: Vec<String> = ephemerals.clone();
                // Whatever else the session still owns goes too (ZooKeeper's killSession).
                for p in self.ephemerals_of(h.session_id) {
                    if !paths.contains(p) {
                        paths.push(p.clone());
                    }
                }
                for p in paths {
                    if self
                        .nodes
                        .get(p.as_str())
                        .is_some_and(|n| n.meta.owner == h.session_id)
                    {
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
                if !self.nodes.contains_key(parent) {
                    return OpOutcome::Error(ErrorCode::NoNode.code());
                }
                if self.nodes.contains_key(p.as_str()) {
                    return OpOutcome::Error(ErrorCode::NodeExists.code());
                }
                let acl = self.acls.intern(acl);
                let node = Node {
                    meta: NodeMeta {
                        czxid: h.zxid,
                        mzxid: h.zxid,
                        ctime: h.time,
                        mtime: h.time,
                        version: 0,
                        cversion: 0,
                        aversion: 0,
                        owner: *owner,
                        pzxid: h.zxid,
                    },
                    data: data.as_deref().map(Box::from),
                    acl: acl.clone(),
                    children: HashSet::new(),
                };
                let stat = node.stat();
                self.digest = self.digest.wrapping_add(node_digest(p, &node));
                self.insert_node(p, node);
                self.dirty_nodes.insert(p.clone());
                self.index_owner(p, *owner);
                let zxid = h.zxid;
                let pcv = *parent_cversion;
                let parent_acl = self
                    .update_node(parent, |pn| {
                        if pcv > pn.meta.cversion {
                            pn.meta.cversion = pcv;
                            pn.meta.pzxid = zxid;
                        }
                        pn.acl.clone()
                    })
                    .expect("parent checked above");
                ev.push(TreeEvent {
                    kind: EventType::NodeCreated,
                    path: p.clone(),
                    acl,
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
                if !self.nodes.contains_key(p.as_str()) {
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
                match self.update_node(p, |n| {
                    n.data = data.as_deref().map(Box::from);
                    n.meta.version = *version;
                    n.meta.mzxid = zxid;
                    n.meta.mtime = time;
                    (n.stat(), n.acl.clone())
                }) {
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
            } => {
                let acl = self.acls.intern(acl);
                match self.update_node(p, |n| {
                    n.acl = acl;
                    n.meta.aversion = *aversion;
                    n.stat()
                }) {
                    Some(stat) => OpOutcome::AclSet { stat },
                    None => OpOutcome::Error(ErrorCode::NoNode.code()),
                }
            }
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
        let Some(node) = self.nodes.remove(p) else {
            return;
        };
        self.digest = self.digest.wrapping_sub(node_digest(p, &node));
        self.data_size -= p.len() as u64 + node.data_len() as u64;
        self.dirty_nodes.insert(p.to_string());
        self.unindex_owner(p, node.meta.owner);
        let parent = path::parent(p).unwrap_or("/");
        let name = path::name(p);
        let parent_acl = self.update_node(parent, |pn| {
            pn.children.remove(name);
            if zxid > pn.meta.pzxid {
                pn.meta.pzxid = zxid;
            }
            pn.acl.clone()
        });
        ev.push(TreeEvent {
            kind: EventType::NodeDeleted,
            path: p.to_string(),
            acl: node.acl,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(zxid: Zxid, session: i64) -> TxnHeader {
        TxnHeader {
            session_id: session,
            cxid: 1,
            zxid,
            time: 1000 + zxid,
        }
    }

    fn create(p: &str, owner: i64, pcv: i32) -> Txn {
        Txn::Create {
            path: p.into(),
            data: Some(b"d".to_vec()),
            acl: Acl::open_unsafe(),
            owner,
            parent_cversion: pcv,
        }
    }

    #[test]
    fn system_nodes_exist_with_zero_stats() {
        let t = DataTree::new();
        for p in path::SYSTEM_PATHS {
            let n = t.get(p).unwrap();
            assert_eq!(n.meta.czxid, 0);
        }
        assert_eq!(t.get("/").unwrap().stat().num_children, 1);
        assert_eq!(*t.get(path::CONFIG).unwrap().acl, Acl::read_unsafe()[..]);
    }

    #[test]
    fn create_delete_maintain_parent_stat_like_data_tree() {
        let mut t = DataTree::new();
        t.apply(&h(1, 0), &create("/a", 0, 1));
        let a = t.apply(&h(2, 0), &create("/a/b", 0, 1));
        assert!(matches!(a.outcome, OpOutcome::Created { .. }));
        assert_eq!(a.events.len(), 2);
        let s = t.get("/a").unwrap().stat();
        assert_eq!((s.cversion, s.pzxid, s.num_children), (1, 2, 1));
        t.apply(
            &h(3, 0),
            &Txn::Delete {
                path: "/a/b".into(),
            },
        );
        let s = t.get("/a").unwrap().stat();
        assert_eq!((s.cversion, s.pzxid, s.num_children), (2, 3, 0));
        assert_eq!(t.last_applied(), 3);
    }

    #[test]
    fn incremental_digest_equals_recomputation() {
        let mut t = DataTree::new();
        t.apply(&h(1, 0), &create("/a", 0, 1));
        t.apply(&h(2, 7), &create("/a/e", 7, 1));
        t.apply(
            &h(3, 0),
            &Txn::SetData {
                path: "/a".into(),
                data: None,
                version: 1,
            },
        );
        t.apply(&h(4, 7), &Txn::CloseSession { ephemerals: vec![] });
        assert!(t.get("/a/e").is_none());
        let inc = t.digest();
        assert_eq!(inc, t.recompute_digest());
    }

    #[test]
    fn close_session_deletes_its_ephemerals_and_session() {
        let mut t = DataTree::new();
        t.apply(
            &h(1, 9),
            &Txn::CreateSession {
                timeout: 4000,
                passwd: vec![1; 16],
            },
        );
        t.apply(&h(2, 9), &create("/e1", 9, 1));
        t.apply(&h(3, 9), &create("/e2", 9, 2));
        assert_eq!(t.ephemerals_of(9).count(), 2);
        let a = t.apply(
            &h(4, 9),
            &Txn::CloseSession {
                ephemerals: vec!["/e1".into()],
            },
        );
        assert_eq!(t.ephemerals_of(9).count(), 0);
        assert!(t.session(9).is_none());
        assert_eq!(
            a.events
                .iter()
                .filter(|e| e.kind == EventType::NodeDeleted)
                .count(),
            2
        );
    }

    #[test]
    fn persisted_changes_reload_to_the_same_tree() {
        let mut t = DataTree::new();
        t.apply(
            &h(1, 9),
            &Txn::CreateSession {
                timeout: 4000,
                passwd: vec![1; 16],
            },
        );
        t.apply(&h(2, 0), &create("/a", 0, 1));
        t.apply(&h(3, 9), &create("/a/e", 9, 1));
        t.apply(&h(4, 0), &create("/z", crate::node::CONTAINER_OWNER, 2));
        let mut store: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
        for (k, v) in t.take_changes() {
            match v {
                Some(v) => store.insert(k, v),
                None => store.remove(&k),
            };
        }
        let mut u = DataTree::new();
        for (k, v) in &store {
            u.load_entry(k, v).unwrap();
        }
        u.finish_load(4);
        assert_eq!(u.digest(), t.digest());
        assert_eq!(u.node_count(), t.node_count());
        assert_eq!(u.ephemerals_of(9).count(), 1);
        assert_eq!(u.session(9), t.session(9));
        assert_eq!(u.get("/a").unwrap().stat(), t.get("/a").unwrap().stat());
    }
}
