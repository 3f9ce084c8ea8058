//! Loading the persisted tree: entries (nodes parents first, sessions) decoded and linked into the
//! arena, then the indexes and the digest finished.

use super::*;

impl DataTree {
    /// Loads one persisted entry (node keys arrive parents first, as bytewise key order guarantees).
    pub fn load_entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let entry = LoadEntry::decode(key, value)?;
        self.insert_entry(entry)
    }

    /// The second half of [`DataTree::load_entry`]: links a decoded entry into the tree. The first
    /// half, [`LoadEntry::decode`], needs no tree, so a loader can run it on another thread.
    pub fn insert_entry(&mut self, entry: LoadEntry) -> Result<(), String> {
        let (path, meta, acl, data) = match entry {
            LoadEntry::Session { id, entry } => {
                self.sessions.insert(id, entry);
                return Ok(());
            }
            LoadEntry::Node {
                path,
                meta,
                acl,
                data,
            } => (path, meta, acl, data),
        };
        let p = path.as_str();
        let (parent, existing) = match path::parent(p) {
            None => (None, self.lookup(p)),
            Some(pp) => {
                let parent = match &self.load_parent {
                    Some((cached, id)) if cached == pp => *id,
                    _ => {
                        let id = self
                            .lookup(pp)
                            .ok_or_else(|| format!("node {p} loaded before its parent"))?;
                        self.load_parent = Some((pp.to_string(), id));
                        id
                    }
                };
                (
                    Some(parent),
                    self.find_child(parent, path::name(p).as_bytes()),
                )
            }
        };
        if let Some(id) = existing {
            let old = self.slot(id);
            self.digest = self
                .digest
                .wrapping_sub(node_digest(p, &old.meta(), old.data()));
            let old_len = self.slot(id).data_len() as u64;
            let new_acl = self.acls.acquire(&acl);
            let old_acl = self.slot(id).acl;
            self.acls.release(old_acl);
            let s = self.slot_mut(id);
            s.set_meta(&meta);
            s.set_data(data.as_deref());
            s.acl = new_acl;
            self.data_size = self.data_size - old_len + data.as_ref().map_or(0, |d| d.len() as u64);
        } else {
            let parent = parent.ok_or_else(|| format!("node {p} has no parent"))?;
            self.insert_child(parent, p, &meta, &acl, data.as_deref());
        }
        self.digest = self
            .digest
            .wrapping_add(node_digest(p, &meta, data.as_deref()));
        self.index_owner(p, meta.owner);
        Ok(())
    }

    /// The whole tree as persisted records (what [`DataTree::take_changes`] writes for each node
    /// and session), in bytewise key order, parents before children: what a SNAP sends, and what
    /// [`DataTree::load_entry`] reads back into an equal tree.
    pub fn snapshot_records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.count + self.sessions.len());
        let mut stack = vec![(ROOT, "/".to_string())];
        while let Some((id, p)) = stack.pop() {
            let s = self.slot(id);
            out.push((
                p.clone().into_bytes(),
                encode_node(&s.meta(), self.acls.get(s.acl), s.data()),
            ));
            if let Some(t) = s.children() {
                for c in t.iter() {
                    let name = String::from_utf8_lossy(self.slot(c).name()).into_owned();
                    stack.push((c, path::child(&p, &name)));
                }
            }
        }
        for (id, e) in &self.sessions {
            let mut v = e.timeout.to_be_bytes().to_vec();
            v.extend_from_slice(&e.passwd);
            out.push((session_key(*id), v));
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Finishes a load: sets last_applied. The digest was kept up to date by each
    /// [`DataTree::load_entry`].
    pub fn finish_load(&mut self, last_applied: Zxid) {
        self.last_applied = last_applied;
        self.load_parent = None;
        self.dirty_nodes.clear();
        self.dirty_sessions.clear();
    }
}
