//! Prep (`PrepRequestProcessor`): turns a write request into a txn, validating it against the
//! committed tree **plus the outstanding changes** of txns that are prepped but not yet applied
//! (`outstandingChanges` / `ChangeRecord`). A failing write becomes an error txn that still consumes
//! a zxid; a failing multi rolls back the change records its earlier sub-ops added.

use std::collections::VecDeque;

use crate::hash::{FastMap, FastSet};
use std::sync::Arc;

use wazoo_proto::{
    perms, CreateMode, CreateRequest, ErrorCode, MultiOp, Request, Txn, Zxid, MAX_TXN_LEN,
    TXN_HEADER_LEN,
};

use crate::acl::{check_acl, fixup_acl, AclList, AuthInfo};
use crate::datatree::DataTree;
use crate::node::{owner_kind, ttl_owner, NodeMeta, OwnerKind, CONTAINER_OWNER, MAX_TTL};
use crate::path;

/// Server settings prep depends on.
#[derive(Debug, Clone, Default)]
pub struct PrepConfig {
    /// `zookeeper.extendedTypesEnabled`: allows TTL nodes.
    pub extended_types: bool,
    /// `reconfigEnabled`.
    pub reconfig_enabled: bool,
}

/// Who is asking, and the zxid/time the txn will carry.
#[derive(Debug, Clone, Copy)]
pub struct PrepCtx<'a> {
    pub session_id: i64,
    /// False for an unknown, expired or closing session: writes get SESSIONEXPIRED.
    pub session_valid: bool,
    pub auth: &'a AuthInfo,
    pub zxid: Zxid,
    pub time: i64,
}

/// The pending state of one path (`ChangeRecord`). `meta` None = deleted.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    pub zxid: Zxid,
    pub meta: Option<NodeMeta>,
    pub child_count: i32,
    pub acl: AclList,
}

/// Outstanding changes: txns prepped but not yet applied to the tree.
#[derive(Debug, Default)]
pub struct PendingChanges {
    /// Keyed by path; `order` shares the key (a path changed by many txns in a row, such as the
    /// parent of many creates, is allocated once).
    by_path: FastMap<Arc<str>, ChangeRecord>,
    order: VecDeque<(Zxid, Arc<str>)>,
}

impl PendingChanges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Forgets the records of txns up to `zxid` once the tree has applied them.
    pub fn applied(&mut self, zxid: Zxid) {
        while let Some((z, _)) = self.order.front() {
            if *z > zxid {
                break;
            }
            let (z, p) = self.order.pop_front().expect("front exists");
            if self.by_path.get(&*p).is_some_and(|r| r.zxid == z) {
                self.by_path.remove(&*p);
            }
        }
    }

    /// Whether `p` exists once the outstanding changes apply (the tree's node otherwise).
    pub fn exists(&self, tree: &DataTree, p: &str) -> bool {
        match self.by_path.get(p) {
            Some(r) => r.meta.is_some(),
            None => tree.get(p).is_some(),
        }
    }

    /// The outstanding change of `p`, if any (a deletion included).
    pub(crate) fn record_of(&self, p: &str) -> Option<&ChangeRecord> {
        self.by_path.get(p)
    }

    /// The outstanding changes of `parent`'s children: each child's name and whether it exists
    /// once they apply. Only a path with an outstanding change of its own can have children
    /// created or deleted outstanding (each such change is recorded on the parent too). Costs a
    /// pass over the outstanding paths.
    pub(crate) fn children_changes<'a>(
        &'a self,
        parent: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a ChangeRecord)> + 'a {
        self.by_path
            .iter()
            .filter(move |(p, _)| crate::path::parent(p) == Some(parent))
            .map(|(p, r)| (crate::path::name(p), r))
    }

    /// Drops everything (e.g. when a storage error makes the pipeline restart from the tree).
    pub fn clear(&mut self) {
        self.by_path.clear();
        self.order.clear();
    }
}

pub(crate) struct Prep<'a> {
    pub(crate) tree: &'a DataTree,
    /// Where this txn's changes are recorded (and read back first).
    pub(crate) pending: &'a mut PendingChanges,
    /// Outstanding changes read under `pending` and over the tree, never written: a recipe's
    /// stage records its changes in a set of its own over the server's ([`crate::Stage`]).
    pub(crate) base: Option<&'a PendingChanges>,
    pub(crate) ctx: PrepCtx<'a>,
    pub(crate) cfg: &'a PrepConfig,
    /// For each change this txn recorded, in order, the path's record before it (None: no
    /// pending record), to roll back on failure by restoring them in reverse. A path changed
    /// twice is saved twice, which costs a record per change instead of a search per change (a
    /// multi of 200k ops used to scan the list for the path before every change).
    pub(crate) saved: Vec<(Arc<str>, Option<ChangeRecord>)>,
    /// Whether changes are saved for a rollback: every request but closeSession, which cannot
    /// fail and may delete 100k ephemerals. A single op records its changes after every check
    /// that can fail, but its txn can still be refused as too large (see [`prep`]).
    pub(crate) undoable: bool,
}

fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// `getParentPathAndValidate`: the parent of a path to delete; `/`-less, NUL and system paths are
/// BadArguments.
fn parent_for_delete(p: &str) -> Result<&str, ErrorCode> {
    if !p.contains('/') || p.contains('\0') || path::is_system(p) {
        return Err(ErrorCode::BadArguments);
    }
    Ok(path::parent(p).unwrap_or("/"))
}

impl Prep<'_> {
    pub(crate) fn record(&self, p: &str) -> Option<ChangeRecord> {
        if let Some(r) = self
            .pending
            .by_path
            .get(p)
            .or_else(|| self.base.and_then(|b| b.by_path.get(p)))
        {
            return r.meta.is_some().then(|| r.clone());
        }
        let p = if p.is_empty() { "/" } else { p };
        self.tree.get(p).map(|n| {
            let meta = n.meta();
            ChangeRecord {
                zxid: meta.mzxid,
                meta: Some(meta),
                child_count: n.child_count() as i32,
                acl: n.acl().clone(),
            }
        })
    }

    fn put(&mut self, p: &str, rec: ChangeRecord) {
        let key = match self.pending.by_path.get_key_value(p) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(p),
        };
        let prev = self.pending.by_path.insert(Arc::clone(&key), rec);
        self.pending
            .order
            .push_back((self.ctx.zxid, Arc::clone(&key)));
        if self.undoable {
            self.saved.push((key, prev));
        }
    }

    /// Where a rollback to this point starts: the changes saved and the pending order so far.
    pub(crate) fn mark(&self) -> (usize, usize) {
        (self.saved.len(), self.pending.order.len())
    }

    /// Undoes the changes recorded since `mark` (newest first), as [`Prep::rollback`] does for
    /// all of them.
    pub(crate) fn rollback_to(&mut self, mark: (usize, usize)) {
        for (p, prev) in self.saved.drain(mark.0..).rev() {
            match prev {
                Some(r) => self.pending.by_path.insert(p, r),
                None => self.pending.by_path.remove(&*p),
            };
        }
        self.pending.order.truncate(mark.1);
    }

    pub(crate) fn rollback(&mut self) {
        // Newest first: a path changed twice ends up with the record it had before the first.
        for (p, prev) in self.saved.drain(..).rev() {
            match prev {
                Some(r) => self.pending.by_path.insert(p, r),
                None => self.pending.by_path.remove(&*p),
            };
        }
        // This txn's entries are the newest, at the back: popping them costs what the txn added,
        // not a scan of every outstanding change (a failed write behind 100k outstanding ones
        // used to walk all of them).
        let z = self.ctx.zxid;
        while self.pending.order.back().is_some_and(|(oz, _)| *oz == z) {
            self.pending.order.pop_back();
        }
    }

    fn check_session(&self) -> Result<(), ErrorCode> {
        if self.ctx.session_valid {
            Ok(())
        } else {
            Err(ErrorCode::SessionExpired)
        }
    }

    fn existing(&self, p: &str) -> Result<(ChangeRecord, NodeMeta), ErrorCode> {
        let r = self.record(p).ok_or(ErrorCode::NoNode)?;
        let m = r.meta.expect("record() only returns live records");
        Ok((r, m))
    }

    fn create(&mut self, c: &CreateRequest) -> Result<Txn, ErrorCode> {
        // createContainer ignores its flags, as ZooKeeper does; createTTL needs a TTL mode (ZooKeeper
        // 3.8.0 crashes on anything else, we refuse it).
        let mode = if c.op == wazoo_proto::op::CREATE_CONTAINER {
            CreateMode::Container
        } else {
            CreateMode::from_flags(c.flags).ok_or(ErrorCode::BadArguments)?
        };
        if c.op == wazoo_proto::op::CREATE_TTL && !mode.is_ttl() {
            return Err(ErrorCode::BadArguments);
        }
        if mode.is_ttl() && !self.cfg.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        if mode.is_ttl() {
            if c.ttl <= 0 || c.ttl > MAX_TTL {
                return Err(ErrorCode::BadArguments);
            }
        } else if c.ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        self.check_session()?;
        let last_slash = c.path.rfind('/').ok_or(ErrorCode::BadArguments)?;
        if c.path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let acl = fixup_acl(&c.acl, self.ctx.auth)?;
        let parent = if last_slash == 0 {
            "/"
        } else {
            &c.path[..last_slash]
        };
        let (mut prec, mut pmeta) = self.existing(parent)?;
        check_acl(&prec.acl, perms::CREATE, self.ctx.auth)?;
        let p = if mode.is_sequential() {
            format!("{}{:010}", c.path, pmeta.cversion)
        } else {
            c.path.clone()
        };
        path::validate_path(&p).map_err(|_| ErrorCode::BadArguments)?;
        if self.record(&p).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if let OwnerKind::Ephemeral(_) = owner_kind(pmeta.owner) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let new_cv = pmeta.cversion.wrapping_add(1);
        let owner = if mode.is_ephemeral() {
            self.ctx.session_id
        } else if mode.is_container() {
            CONTAINER_OWNER
        } else if mode.is_ttl() {
            ttl_owner(c.ttl)
        } else {
            0
        };
        let z = self.ctx.zxid;
        pmeta.cversion = new_cv;
        pmeta.pzxid = z;
        prec.meta = Some(pmeta);
        prec.child_count += 1;
        prec.zxid = z;
        self.put(parent, prec);
        self.put(
            &p,
            ChangeRecord {
                zxid: z,
                meta: Some(NodeMeta {
                    czxid: z,
                    mzxid: z,
                    ctime: self.ctx.time,
                    mtime: self.ctx.time,
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    owner,
                    pzxid: z,
                }),
                child_count: 0,
                acl: self.tree.acl_list(&acl),
            },
        );
        Ok(Txn::Create {
            path: p,
            data: c.data.clone(),
            acl,
            owner,
            parent_cversion: new_cv,
        })
    }

    fn remove(&mut self, p: &str, parent: &str, mut prec: ChangeRecord, nrec: ChangeRecord) {
        let z = self.ctx.zxid;
        if let Some(m) = prec.meta.as_mut() {
            m.pzxid = z;
        }
        prec.child_count -= 1;
        prec.zxid = z;
        self.put(parent, prec);
        self.put(
            p,
            ChangeRecord {
                zxid: z,
                meta: None,
                child_count: 0,
                acl: nrec.acl,
            },
        );
    }

    fn delete(&mut self, p: &str, version: i32) -> Result<Txn, ErrorCode> {
        self.check_session()?;
        let parent = parent_for_delete(p)?;
        let (prec, _) = self.existing(parent)?;
        check_acl(&prec.acl, perms::DELETE, self.ctx.auth)?;
        let (nrec, nmeta) = self.existing(p)?;
        check_version(nmeta.version, version)?;
        if nrec.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove(p, parent, prec, nrec);
        Ok(Txn::Delete {
            path: p.to_string(),
        })
    }

    fn delete_container(&mut self, p: &str) -> Result<Txn, ErrorCode> {
        let parent = parent_for_delete(p)?;
        let (nrec, nmeta) = self.existing(p)?;
        if nrec.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if !matches!(
            owner_kind(nmeta.owner),
            OwnerKind::Container | OwnerKind::Ttl(_)
        ) {
            return Err(ErrorCode::BadVersion);
        }
        let (prec, _) = self.existing(parent)?;
        self.remove(p, parent, prec, nrec);
        Ok(Txn::Delete {
            path: p.to_string(),
        })
    }

    fn set_data(
        &mut self,
        p: &str,
        data: &Option<Vec<u8>>,
        version: i32,
    ) -> Result<Txn, ErrorCode> {
        self.check_session()?;
        path::validate_path(p).map_err(|_| ErrorCode::BadArguments)?;
        let (mut nrec, mut nmeta) = self.existing(p)?;
        check_acl(&nrec.acl, perms::WRITE, self.ctx.auth)?;
        let new_version = check_version(nmeta.version, version)?;
        nmeta.version = new_version;
        nmeta.mzxid = self.ctx.zxid;
        nmeta.mtime = self.ctx.time;
        nrec.meta = Some(nmeta);
        nrec.zxid = self.ctx.zxid;
        self.put(p, nrec);
        Ok(Txn::SetData {
            path: p.to_string(),
            data: data.clone(),
            version: new_version,
        })
    }

    fn set_acl(
        &mut self,
        p: &str,
        acl: &[wazoo_proto::Acl],
        version: i32,
    ) -> Result<Txn, ErrorCode> {
        self.check_session()?;
        path::validate_path(p).map_err(|_| ErrorCode::BadArguments)?;
        let acl = fixup_acl(acl, self.ctx.auth)?;
        let (mut nrec, mut nmeta) = self.existing(p)?;
        check_acl(&nrec.acl, perms::ADMIN, self.ctx.auth)?;
        let new_aversion = check_version(nmeta.aversion, version)?;
        nmeta.aversion = new_aversion;
        nrec.meta = Some(nmeta);
        nrec.acl = self.tree.acl_list(&acl);
        nrec.zxid = self.ctx.zxid;
        self.put(p, nrec);
        Ok(Txn::SetAcl {
            path: p.to_string(),
            acl,
            aversion: new_aversion,
        })
    }

    fn check(&mut self, p: &str, version: i32) -> Result<Txn, ErrorCode> {
        self.check_session()?;
        path::validate_path(p).map_err(|_| ErrorCode::BadArguments)?;
        let (nrec, nmeta) = self.existing(p)?;
        check_acl(&nrec.acl, perms::READ, self.ctx.auth)?;
        check_version(nmeta.version, version)?;
        Ok(Txn::Check {
            path: p.to_string(),
            version: nmeta.version,
        })
    }

    /// closeSession: records the deletion of the session's ephemerals as the pipeline will see
    /// them (applied ones not pending deletion, plus pending creates), so that later preps of the
    /// batch see them gone.
    ///
    /// The txn does not list them: apply deletes what the tree's ephemeral index holds for the
    /// session, which is the same set (every create of the session prepped before this close is
    /// applied before it, and the core preps no create for a closing session after it). A list
    /// would make the txn grow with the session's ephemerals, past the log's record limit
    /// ([`MAX_TXN_LEN`]) for a session with many long paths, and such a log could not be read
    /// back at restart. Apply also derives ZooKeeper's deletion (event) order from the paths.
    fn close_session(&mut self) -> Txn {
        let s = self.ctx.session_id;
        // A set: an applied ephemeral with a pending change (say setData) appears in both sources.
        let mut paths: FastSet<String> = FastSet::default();
        for p in self.tree.ephemerals_of(s) {
            if self
                .pending
                .by_path
                .get(p.as_str())
                .is_none_or(|r| r.meta.is_some())
            {
                paths.insert(p.clone());
            }
        }
        for (p, r) in &self.pending.by_path {
            if r.meta.is_some_and(|m| m.owner == s) && !paths.contains(&**p) {
                paths.insert(p.to_string());
            }
        }
        for p in &paths {
            let parent = path::parent(p).unwrap_or("/");
            if let (Some(prec), Some(nrec)) = (self.record(parent), self.record(p)) {
                self.remove(p, parent, prec, nrec);
            }
        }
        Txn::CloseSession {
            ephemerals: Vec::new(),
        }
    }

    pub(crate) fn multi_op(&mut self, op: &MultiOp) -> Result<Txn, ErrorCode> {
        match op {
            MultiOp::Create(c) => self.create(c),
            MultiOp::Delete { path, version } => self.delete(path, *version),
            MultiOp::SetData {
                path,
                data,
                version,
            } => self.set_data(path, data, *version),
            MultiOp::Check { path, version } => self.check(path, *version),
        }
    }

    fn single(&mut self, req: &Request) -> Result<Txn, ErrorCode> {
        match req {
            Request::Create(c) => self.create(c),
            Request::Delete { path, version } => self.delete(path, *version),
            Request::SetData {
                path,
                data,
                version,
            } => self.set_data(path, data, *version),
            Request::SetAcl { path, acl, version } => self.set_acl(path, acl, *version),
            Request::DeleteContainer { path } => self.delete_container(path),
            Request::CloseSession => Ok(self.close_session()),
            Request::Reconfig { .. } => Err(if self.cfg.reconfig_enabled {
                ErrorCode::Unimplemented
            } else {
                ErrorCode::ReconfigDisabled
            }),
            _ => Err(ErrorCode::Unimplemented),
        }
    }
}

/// Preps a write request into the txn that will be logged at `ctx.zxid`. Failures are returned as
/// error txns (`Txn::Error`, or a `Txn::Multi` of error results for a multi), never as `Err`: like
/// ZooKeeper, a failed write is still a txn.
pub fn prep(
    tree: &DataTree,
    pending: &mut PendingChanges,
    req: &Request,
    ctx: PrepCtx<'_>,
    cfg: &PrepConfig,
) -> Txn {
    let mut p = Prep {
        tree,
        pending,
        base: None,
        ctx,
        cfg,
        saved: Vec::new(),
        undoable: !matches!(req, Request::CloseSession),
    };
    // A txn whose encoding would pass MAX_TXN_LEN (the log's record limit: a larger one could not
    // be read back at restart) is refused with MARSHALLINGERROR, the code ZooKeeper's prep gives
    // a request it fails to turn into a txn for any reason other than a KeeperException. It is a
    // whole-request error, for a multi too (ZooKeeper's prep fails the whole multi on such an
    // exception). The size is exact and checked last, so every ZooKeeper check keeps its
    // precedence; only an ACL whose `auth` expansion alone is too large is refused earlier, in
    // `fixup_acl`, before it is built.
    let too_large = Txn::Error {
        err: ErrorCode::MarshallingError.code(),
    };
    if let Request::Multi(ops) = req {
        let mut txns = Vec::with_capacity(ops.len());
        // Header, multi tag and count; each sub-txn is added as it is prepped, so a multi stops
        // at the op that passes the limit instead of building all of them.
        let mut size = TXN_HEADER_LEN + Txn::Multi(Vec::new()).encoded_len();
        for (i, op) in ops.iter().enumerate() {
            match p.multi_op(op) {
                Ok(t) => {
                    size += t.encoded_len();
                    if size > MAX_TXN_LEN {
                        p.rollback();
                        return too_large;
                    }
                    txns.push(t);
                }
                Err(code) => {
                    p.rollback();
                    let mut res: Vec<Txn> = (0..i).map(|_| Txn::Error { err: 0 }).collect();
                    res.push(Txn::Error { err: code.code() });
                    res.extend((i + 1..ops.len()).map(|_| Txn::Error {
                        err: ErrorCode::RuntimeInconsistency.code(),
                    }));
                    return Txn::Multi(res);
                }
            }
        }
        return Txn::Multi(txns);
    }
    match p.single(req) {
        Ok(t) if TXN_HEADER_LEN + t.encoded_len() > MAX_TXN_LEN => {
            p.rollback();
            too_large
        }
        Ok(t) => t,
        Err(code) => {
            p.rollback();
            Txn::Error { err: code.code() }
        }
    }
}
