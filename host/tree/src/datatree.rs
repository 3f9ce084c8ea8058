//! `DataTree`: the znode tree, the replicated session table, ephemeral/container/TTL indexes, the
//! tree digest, and deterministic `apply(txn)`. Apply never reads a clock: every time, owner and
//! version it needs is in the txn, so every replica that applies the same log holds the same tree.
//!
//! Memory layout (memory per znode is a headline number): nodes live in a chunked arena of fixed
//! 64-byte slots addressed by `u32` ids. A slot holds the common stat fields, its parent id, an ACL id
//! into an interned table, one allocation with the node's *name* (not its path) followed by its
//! data, and — only for parents, ephemeral/container/TTL nodes and nodes whose ACL was set — a box
//! with the child table (`ChildTable`: child ids keyed by name) and the stat fields that are
//! otherwise implicit.
//! A path is resolved by walking its segments from the root.

use std::collections::BTreeSet;

use crate::hash::{FastMap, FastSet, FastState};
use std::hash::BuildHasher;

use wazoo_proto::{Acl, ErrorCode, EventType, Stat, Txn, TxnHeader, Zxid};

use crate::acl::AclList;
use crate::blob::{self, Blob};
use crate::children::{ChildTable, NodeId};
use crate::close_order::java_hash_set_order;
use crate::node::{encode_node, owner_kind, stat_of, NodeMeta, OwnerKind};
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

/// One persisted entry (a node or a session), decoded from its stored key and value.
#[derive(Debug)]
pub enum LoadEntry {
    Node {
        path: String,
        meta: NodeMeta,
        acl: Vec<Acl>,
        data: Option<Vec<u8>>,
    },
    Session {
        id: i64,
        entry: SessionEntry,
    },
}

impl LoadEntry {
    /// Decodes a stored key and value (the format [`DataTree::take_changes`] produces).
    pub fn decode(key: &[u8], value: &[u8]) -> Result<LoadEntry, String> {
        if let Some(id) = key.strip_prefix(SESSION_KEY_PREFIX) {
            let id: [u8; 8] = id.try_into().map_err(|_| "bad session key".to_string())?;
            if value.len() < 4 {
                return Err("bad session record".into());
            }
            let timeout = i32::from_be_bytes([value[0], value[1], value[2], value[3]]);
            return Ok(LoadEntry::Session {
                id: i64::from_be_bytes(id),
                entry: SessionEntry {
                    timeout,
                    passwd: value[4..].to_vec(),
                },
            });
        }
        let p = std::str::from_utf8(key).map_err(|_| "node key is not UTF-8".to_string())?;
        let (meta, acl, data) =
            crate::node::decode_node(value).map_err(|e| format!("node {p}: {e}"))?;
        Ok(LoadEntry::Node {
            path: p.to_owned(),
            meta,
            acl,
            data,
        })
    }
}

/// One node's share of the tree digest: CRC32C (hardware-accelerated) over the path, the stat
/// fields and the data, like ZooKeeper's `DigestCalculator` (CRC32 over path and stat). The tree
/// digest is the wrapping sum over all nodes, so a change updates it in O(1).
fn node_digest(path: &str, m: &NodeMeta, data: Option<&[u8]>) -> u64 {
    let mut fields = [0u8; 6 * 8 + 3 * 4 + 1];
    for (i, v) in [m.czxid, m.mzxid, m.ctime, m.mtime, m.owner, m.pzxid]
        .into_iter()
        .enumerate()
    {
        fields[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
    }
    for (i, v) in [m.version, m.cversion, m.aversion].into_iter().enumerate() {
        fields[48 + i * 4..52 + i * 4].copy_from_slice(&v.to_be_bytes());
    }
    fields[60] = if data.is_none() { 0xff } else { 0 };
    let crc = crc32c::crc32c(path.as_bytes());
    let crc = crc32c::crc32c_append(crc, &fields);
    let crc = crc32c::crc32c_append(crc, data.unwrap_or_default());
    u64::from(crc)
}

const ROOT: NodeId = 0;
const NONE: NodeId = u32::MAX;
const CHUNK: usize = 4096;
/// Top bit of `Slot::name_len`: the data is null (as opposed to empty).
const NULL_DATA: u32 = 1 << 31;

/// The rarely-set part of a node, boxed so that a plain leaf pays 8 bytes for it: its children,
/// and the stat fields that are only non-default for parents, ephemeral/container/TTL nodes and
/// nodes whose ACL was set. A slot without it has no children, `pzxid == czxid`, owner 0,
/// cversion 0 and aversion 0.
#[derive(Debug, Default)]
struct Extra {
    children: ChildTable,
    pzxid: Zxid,
    owner: i64,
    cversion: i32,
    aversion: i32,
}

/// One node. Field order keeps it at 64 bytes (checked below).
#[derive(Debug)]
struct Slot {
    czxid: i64,
    mzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    acl: u32,
    parent: NodeId,
    /// Length of the name at the start of `blob`, plus the NULL_DATA flag.
    name_len: u32,
    /// Name bytes followed by data bytes (`None` when both are empty).
    blob: Option<Blob>,
    extra: Option<Box<Extra>>,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    fn name(&self) -> &[u8] {
        &blob::bytes(&self.blob)[..(self.name_len & !NULL_DATA) as usize]
    }

    fn data(&self) -> Option<&[u8]> {
        if self.name_len & NULL_DATA != 0 {
            None
        } else {
            Some(&blob::bytes(&self.blob)[(self.name_len & !NULL_DATA) as usize..])
        }
    }

    fn set_data(&mut self, data: Option<&[u8]>) {
        let n = (self.name_len & !NULL_DATA) as usize;
        self.blob = Blob::concat(&[self.name(), data.unwrap_or_default()]);
        self.name_len = n as u32 | if data.is_none() { NULL_DATA } else { 0 };
    }

    fn data_len(&self) -> i32 {
        self.data().map_or(0, |d| d.len() as i32)
    }

    fn meta(&self) -> NodeMeta {
        let (pzxid, owner, cversion, aversion) = match &self.extra {
            Some(e) => (e.pzxid, e.owner, e.cversion, e.aversion),
            None => (self.czxid, 0, 0, 0),
        };
        NodeMeta {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion,
            aversion,
            owner,
            pzxid,
        }
    }

    fn set_meta(&mut self, m: &NodeMeta) {
        self.czxid = m.czxid;
        self.mzxid = m.mzxid;
        self.ctime = m.ctime;
        self.mtime = m.mtime;
        self.version = m.version;
        let plain = m.pzxid == m.czxid && m.owner == 0 && m.cversion == 0 && m.aversion == 0;
        if self.extra.is_none() && plain {
            return;
        }
        let e = self.extra_mut();
        e.pzxid = m.pzxid;
        e.owner = m.owner;
        e.cversion = m.cversion;
        e.aversion = m.aversion;
        self.tidy();
    }

    /// The extra part, created with the implicit values if the slot has none.
    fn extra_mut(&mut self) -> &mut Extra {
        let czxid = self.czxid;
        self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                pzxid: czxid,
                ..Extra::default()
            })
        })
    }

    /// Drops the extra part once it holds nothing but the implicit values.
    fn tidy(&mut self) {
        if self.extra.as_ref().is_some_and(|e| {
            e.children.is_empty()
                && e.pzxid == self.czxid
                && e.owner == 0
                && e.cversion == 0
                && e.aversion == 0
        }) {
            self.extra = None;
        }
    }

    fn children(&self) -> Option<&ChildTable> {
        self.extra.as_deref().map(|e| &e.children)
    }

    fn child_count(&self) -> usize {
        self.children().map_or(0, ChildTable::len)
    }

    fn is_free(&self) -> bool {
        self.parent == NONE
            && self.blob.is_none()
            && self.name_len == NULL_DATA
            && self.extra.is_none()
    }
}

/// Interned, reference-counted ACL lists; nodes hold a `u32` id.
#[derive(Debug, Default)]
struct AclTable {
    lists: Vec<Option<(AclList, u32)>>,
    index: FastMap<Vec<Acl>, u32>,
    free: Vec<u32>,
}

impl AclTable {
    fn acquire(&mut self, acl: &[Acl]) -> u32 {
        if let Some(&id) = self.index.get(acl) {
            if let Some((_, refs)) = self.lists[id as usize].as_mut() {
                *refs += 1;
            }
            return id;
        }
        let entry = Some((AclList::from(acl), 1));
        let id = match self.free.pop() {
            Some(id) => {
                self.lists[id as usize] = entry;
                id
            }
            None => {
                self.lists.push(entry);
                (self.lists.len() - 1) as u32
            }
        };
        self.index.insert(acl.to_vec(), id);
        id
    }

    fn release(&mut self, id: u32) {
        let Some(Some((list, refs))) = self.lists.get_mut(id as usize) else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            let key = list.to_vec();
            self.index.remove(&key);
            self.lists[id as usize] = None;
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> &AclList {
        &self.lists[id as usize].as_ref().expect("live ACL id").0
    }

    /// The table's list equal to `acl`, if some node has it.
    fn find(&self, acl: &[Acl]) -> Option<&AclList> {
        let &id = self.index.get(acl)?;
        Some(self.get(id))
    }
}

/// A read-only view of one node.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    tree: &'a DataTree,
    slot: &'a Slot,
}

impl<'a> NodeRef<'a> {
    pub fn meta(&self) -> NodeMeta {
        self.slot.meta()
    }

    pub fn data(&self) -> Option<&'a [u8]> {
        self.slot.data()
    }

    pub fn data_len(&self) -> i32 {
        self.slot.data_len()
    }

    pub fn acl(&self) -> &'a AclList {
        self.tree.acls.get(self.slot.acl)
    }

    pub fn child_count(&self) -> usize {
        self.slot.child_count()
    }

    /// Child names, in no particular order (as ZooKeeper's HashSet).
    pub fn children(&self) -> impl Iterator<Item = &'a str> + 'a {
        let tree = self.tree;
        self.slot
            .children()
            .into_iter()
            .flat_map(|t| t.iter())
            .map(move |id| std::str::from_utf8(tree.slot(id).name()).unwrap_or(""))
    }

    pub fn stat(&self) -> Stat {
        stat_of(
            &self.slot.meta(),
            self.slot.data_len(),
            self.slot.child_count() as i32,
        )
    }
}

/// The in-memory znode tree.
#[derive(Debug)]
pub struct DataTree {
    chunks: Vec<Vec<Slot>>,
    free: Vec<NodeId>,
    count: usize,
    hasher: FastState,
    acls: AclTable,
    ephemerals: FastMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    sessions: FastMap<i64, SessionEntry>,
    last_applied: Zxid,
    digest: u64,
    data_size: u64,
    /// Changed nodes since the last `take_changes`, with their id (`NONE` once deleted), so that
    /// staging them needs no second path walk.
    dirty_nodes: FastMap<String, NodeId>,
    dirty_sessions: FastSet<i64>,
    /// During a load (until [`DataTree::finish_load`]): the parent of the last loaded node. Keys
    /// arrive in bytewise order, so siblings come in a row and their parent is walked to once.
    /// Valid only while nothing but `load_entry` changes the tree (loads never delete).
    load_parent: Option<(String, NodeId)>,
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
            chunks: Vec::new(),
            free: Vec::new(),
            count: 0,
            hasher: FastState::default(),
            acls: AclTable::default(),
            ephemerals: FastMap::default(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: FastMap::default(),
            last_applied: 0,
            digest: 0,
            data_size: 0,
            dirty_nodes: FastMap::default(),
            load_parent: None,
            dirty_sessions: FastSet::default(),
        };
        let open = Acl::open_unsafe();
        let root = t.alloc(NONE, b"", &NodeMeta::default(), &open, Some(&[]));
        debug_assert_eq!(root, ROOT);
        t.data_size += 1;
        for p in [path::ZOOKEEPER, path::QUOTA] {
            t.insert_path(p, &NodeMeta::default(), &open, Some(&[]));
        }
        // The config node's ACL is set with setACL(-1) in ZooKeeper, leaving aversion -1.
        let config_meta = NodeMeta {
            aversion: -1,
            ..NodeMeta::default()
        };
        t.insert_path(path::CONFIG, &config_meta, &Acl::read_unsafe(), Some(&[]));
        t.recompute_digest();
        t.dirty_nodes.clear();
        t
    }

    fn slot(&self, id: NodeId) -> &Slot {
        &self.chunks[id as usize / CHUNK][id as usize % CHUNK]
    }

    fn slot_mut(&mut self, id: NodeId) -> &mut Slot {
        &mut self.chunks[id as usize / CHUNK][id as usize % CHUNK]
    }

    fn hash_name(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    fn find_child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let table = self.slot(parent).children()?;
        let h = self.hash_name(name);
        table.find(h, |id| self.slot(id).name() == name)
    }

    fn lookup(&self, p: &str) -> Option<NodeId> {
        if p == "/" {
            return Some(ROOT);
        }
        let rest = p.strip_prefix('/')?;
        let mut cur = ROOT;
        for seg in rest.split('/') {
            cur = self.find_child(cur, seg.as_bytes())?;
        }
        Some(cur)
    }

    /// Allocates a slot and links it under `parent` (which must not already have a child so named).
    fn alloc(
        &mut self,
        parent: NodeId,
        name: &[u8],
        meta: &NodeMeta,
        acl: &[Acl],
        data: Option<&[u8]>,
    ) -> NodeId {
        let mut slot = Slot {
            czxid: 0,
            mzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            acl: self.acls.acquire(acl),
            parent,
            name_len: name.len() as u32 | if data.is_none() { NULL_DATA } else { 0 },
            blob: Blob::concat(&[name, data.unwrap_or_default()]),
            extra: None,
        };
        slot.set_meta(meta);
        let id = match self.free.pop() {
            Some(id) => {
                *self.slot_mut(id) = slot;
                id
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let chunk = self.chunks.len() - 1;
                let c = self.chunks.last_mut().expect("pushed");
                c.push(slot);
                (chunk * CHUNK + c.len() - 1) as NodeId
            }
        };
        self.count += 1;
        if parent != NONE {
            let h = self.hash_name(name);
            // Taken out and put back so that the rehash closure can read the other slots.
            let ps = self.slot_mut(parent);
            ps.extra_mut();
            let mut extra = ps.extra.take().expect("just created");
            extra
                .children
                .insert(h, id, |c| self.hasher.hash_one(self.slot(c).name()));
            self.slot_mut(parent).extra = Some(extra);
        }
        id
    }

    /// Creates the node at `p` (its parent must exist); returns its id.
    fn insert_path(
        &mut self,
        p: &str,
        meta: &NodeMeta,
        acl: &[Acl],
        data: Option<&[u8]>,
    ) -> Option<NodeId> {
        let parent = self.lookup(path::parent(p)?)?;
        Some(self.insert_child(parent, p, meta, acl, data))
    }

    /// Creates the node at `p` under `parent`, the id of `p`'s parent (which has no child so
    /// named), and counts its path and data in the tree's size; returns its id.
    fn insert_child(
        &mut self,
        parent: NodeId,
        p: &str,
        meta: &NodeMeta,
        acl: &[Acl],
        data: Option<&[u8]>,
    ) -> NodeId {
        let id = self.alloc(parent, path::name(p).as_bytes(), meta, acl, data);
        self.data_size += p.len() as u64 + data.map_or(0, <[u8]>::len) as u64;
        id
    }

    /// Unlinks and frees a node that has no children.
    fn free_node(&mut self, id: NodeId) {
        let parent = self.slot(id).parent;
        let h = self.hash_name(self.slot(id).name());
        let ps = self.slot_mut(parent);
        if let Some(extra) = ps.extra.as_mut() {
            // An emptied table gives its buckets back; `tidy` drops the whole part if it is
            // plain now.
            extra.children.remove(h, id);
            ps.tidy();
        }
        let acl = self.slot(id).acl;
        self.acls.release(acl);
        let s = self.slot_mut(id);
        s.parent = NONE;
        s.blob = None;
        s.name_len = NULL_DATA;
        s.extra = None;
        debug_assert!(s.is_free());
        self.free.push(id);
        self.count -= 1;
    }

    /// `acl` as a shared list: the tree's copy when some node already has an equal ACL (nearly
    /// always: most nodes share a few ACLs), else a new one. Saves prep a copy per create.
    pub fn acl_list(&self, acl: &[Acl]) -> AclList {
        match self.acls.find(acl) {
            Some(list) => list.clone(),
            None => AclList::from(acl),
        }
    }

    pub fn get(&self, p: &str) -> Option<NodeRef<'_>> {
        let id = self.lookup(p)?;
        Some(NodeRef {
            tree: self,
            slot: self.slot(id),
        })
    }

    pub fn contains(&self, p: &str) -> bool {
        self.lookup(p).is_some()
    }

    pub fn node_count(&self) -> usize {
        self.count
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

    pub fn sessions(&self) -> &FastMap<i64, SessionEntry> {
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

    /// Recomputes the digest from scratch (tests compare it with the incremental one).
    pub fn recompute_digest(&mut self) -> u64 {
        let mut acc = 0u64;
        let mut stack = vec![(ROOT, "/".to_string())];
        while let Some((id, p)) = stack.pop() {
            let s = self.slot(id);
            acc = acc.wrapping_add(node_digest(&p, &s.meta(), s.data()));
            if let Some(t) = s.children() {
                for c in t.iter() {
                    let name = String::from_utf8_lossy(self.slot(c).name()).into_owned();
                    stack.push((c, path::child(&p, &name)));
                }
            }
        }
        self.digest = acc;
        acc
    }

    /// Every node under `p` (recursive), excluding `p` itself.
    pub fn count_descendants(&self, p: &str) -> i32 {
        let Some(start) = self.lookup(p) else {
            return 0;
        };
        let mut count = 0i32;
        let mut stack = vec![start];
        while let Some(id) = stack.pop() {
            if let Some(t) = self.slot(id).children() {
                count += t.len() as i32;
                stack.extend(t.iter());
            }
        }
        count
    }

    /// Containers and TTL nodes due for deletion at `now` (`ContainerManager.getCandidates`).
    pub fn container_candidates(&self, now: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(n) = self.get(p) {
                let m = n.meta();
                if n.child_count() == 0
                    && (m.cversion > 0
                        || (max_never_used_ms > 0 && now - m.mtime > max_never_used_ms))
                {
                    out.push(p.clone());
                }
            }
        }
        for p in &self.ttls {
            if let Some(n) = self.get(p) {
                let m = n.meta();
                if let OwnerKind::Ttl(ttl) = owner_kind(m.owner) {
                    if n.child_count() == 0 && ttl != 0 && now - m.mtime > ttl {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }

    /// Nodes and sessions changed since the last [`DataTree::take_changes`].
    pub fn dirty_count(&self) -> usize {
        self.dirty_nodes.len() + self.dirty_sessions.len()
    }

    /// Takes the persisted-state mutations made since the last call (node and session keys).
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        let mut out = Vec::with_capacity(self.dirty_nodes.len() + self.dirty_sessions.len());
        // Drained, not replaced: the map keeps its capacity for the next round of changes.
        let mut dirty = std::mem::take(&mut self.dirty_nodes);
        for (p, id) in dirty.drain() {
            let v = (id != NONE).then(|| {
                let s = self.slot(id);
                encode_node(&s.meta(), self.acls.get(s.acl), s.data())
            });
            out.push((p.into_bytes(), v));
        }
        self.dirty_nodes = dirty;
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
}

mod apply;
pub use apply::events_of;
mod load;

#[cfg(test)]
#[path = "datatree_test.rs"]
mod tests;
