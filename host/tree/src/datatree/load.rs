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

    /// Finishes a load: sets last_applied. The digest was kept up to date by each
    /// [`DataTree::load_entry`].
    pub fn finish_load(&mut self, last_applied: Zxid) {
        self.last_applied = last_applied;
        self.load_parent = None;
        self.dirty_nodes.clear();
        self.dirty_sessions.clear();
    }
}
