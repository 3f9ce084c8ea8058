//! The watch registry (`WatchManager` for the data and child tables, with ZooKeeper 3.6's persistent
//! and persistent-recursive modes). Watches belong to a connection ([`WatcherId`]); the registry only
//! decides *who* an event goes to, the server delivers it.

use std::collections::{HashMap, HashSet};

use crate::hash::{FastMap, FastSet};

use wazoo_proto::{watcher_type, EventType};

use crate::path;

/// The owner of a watch: a client connection.
pub type WatcherId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Data,
    Child,
    Persistent,
    Recursive,
}

#[derive(Debug, Default)]
struct PathWatchers {
    by_table: FastMap<Table, FastMap<String, FastSet<WatcherId>>>,
}

/// All watches of the server.
#[derive(Debug, Default)]
pub struct WatchRegistry {
    tables: PathWatchers,
    by_watcher: FastMap<WatcherId, FastSet<(Table, String)>>,
    recursive_count: usize,
}

impl WatchRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, t: Table, p: &str, w: WatcherId) {
        let added = self
            .tables
            .by_table
            .entry(t)
            .or_default()
            .entry(p.to_string())
            .or_default()
            .insert(w);
        if added {
            self.by_watcher
                .entry(w)
                .or_default()
                .insert((t, p.to_string()));
            if t == Table::Recursive {
                self.recursive_count += 1;
            }
        }
    }

    fn remove(&mut self, t: Table, p: &str, w: WatcherId) -> bool {
        let Some(table) = self.tables.by_table.get_mut(&t) else {
            return false;
        };
        let Some(set) = table.get_mut(p) else {
            return false;
        };
        let removed = set.remove(&w);
        if set.is_empty() {
            table.remove(p);
        }
        if removed {
            if let Some(ws) = self.by_watcher.get_mut(&w) {
                ws.remove(&(t, p.to_string()));
                if ws.is_empty() {
                    self.by_watcher.remove(&w);
                }
            }
            if t == Table::Recursive {
                self.recursive_count -= 1;
            }
        }
        removed
    }

    fn has(&self, t: Table, p: &str, w: WatcherId) -> bool {
        self.tables
            .by_table
            .get(&t)
            .and_then(|m| m.get(p))
            .is_some_and(|s| s.contains(&w))
    }

    /// A data watch (getData, or exists, including on a missing node).
    pub fn add_data_watch(&mut self, p: &str, w: WatcherId) {
        self.add(Table::Data, p, w);
    }

    /// A child watch (getChildren).
    pub fn add_child_watch(&mut self, p: &str, w: WatcherId) {
        self.add(Table::Child, p, w);
    }

    /// addWatch PERSISTENT (0) or PERSISTENT_RECURSIVE (1).
    pub fn add_persistent_watch(&mut self, p: &str, w: WatcherId, recursive: bool) {
        let t = if recursive {
            Table::Recursive
        } else {
            Table::Persistent
        };
        self.add(t, p, w);
    }

    /// Drops every watch of a closed connection.
    pub fn remove_watcher(&mut self, w: WatcherId) {
        if let Some(entries) = self.by_watcher.remove(&w) {
            for (t, p) in entries {
                if let Some(table) = self.tables.by_table.get_mut(&t) {
                    if let Some(set) = table.get_mut(&p) {
                        set.remove(&w);
                        if set.is_empty() {
                            table.remove(&p);
                        }
                    }
                }
                if t == Table::Recursive {
                    self.recursive_count -= 1;
                }
            }
        }
    }

    fn tables_for(watcher_type: i32) -> &'static [Table] {
        match watcher_type {
            watcher_type::CHILDREN => &[Table::Child],
            watcher_type::DATA => &[Table::Data],
            watcher_type::ANY => &[
                Table::Data,
                Table::Child,
                Table::Persistent,
                Table::Recursive,
            ],
            watcher_type::PERSISTENT => &[Table::Persistent],
            watcher_type::PERSISTENT_RECURSIVE => &[Table::Recursive],
            _ => &[],
        }
    }

    /// checkWatches (17): whether this connection has a watch of the type on the path.
    pub fn check(&self, p: &str, watcher_type: i32, w: WatcherId) -> bool {
        Self::tables_for(watcher_type)
            .iter()
            .any(|t| self.has(*t, p, w))
    }

    /// removeWatches (18): removes this connection's watches of the type; false if none.
    pub fn remove_watches(&mut self, p: &str, watcher_type: i32, w: WatcherId) -> bool {
        let mut any = false;
        for t in Self::tables_for(watcher_type) {
            any |= self.remove(*t, p, w);
        }
        any
    }

    fn take_one_shot(&mut self, t: Table, p: &str, out: &mut Vec<WatcherId>) {
        if let Some(set) = self.tables.by_table.get_mut(&t).and_then(|m| m.remove(p)) {
            for w in set {
                if let Some(ws) = self.by_watcher.get_mut(&w) {
                    ws.remove(&(t, p.to_string()));
                    if ws.is_empty() {
                        self.by_watcher.remove(&w);
                    }
                }
                out.push(w);
            }
        }
    }

    fn persistent_of(&self, t: Table, p: &str, out: &mut Vec<WatcherId>) {
        if let Some(set) = self.tables.by_table.get(&t).and_then(|m| m.get(p)) {
            out.extend(set.iter().copied());
        }
    }

    /// Who receives an event (`WatchManager.triggerWatch`), one-shot watches removed, each
    /// connection at most once per event.
    ///
    /// - NodeCreated / NodeDataChanged: data watches on the path, persistent watches on the path,
    ///   recursive watches on the path or any ancestor.
    /// - NodeDeleted: as above plus the child watches of the path.
    /// - NodeChildrenChanged (on the parent): child watches and persistent watches of that path;
    ///   recursive watches never receive it.
    pub fn trigger(&mut self, kind: EventType, p: &str) -> Vec<WatcherId> {
        let mut out = Vec::new();
        match kind {
            EventType::NodeChildrenChanged => {
                self.take_one_shot(Table::Child, p, &mut out);
                self.persistent_of(Table::Persistent, p, &mut out);
            }
            EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted => {
                self.take_one_shot(Table::Data, p, &mut out);
                if kind == EventType::NodeDeleted {
                    self.take_one_shot(Table::Child, p, &mut out);
                }
                self.persistent_of(Table::Persistent, p, &mut out);
                if self.recursive_count > 0 {
                    for a in path::self_and_ancestors(p) {
                        self.persistent_of(Table::Recursive, a, &mut out);
                    }
                }
            }
            _ => {}
        }
        if out.len() > 1 {
            let mut seen = FastSet::with_capacity_and_hasher(out.len(), Default::default());
            out.retain(|w| seen.insert(*w));
        }
        out
    }

    /// Total watch registrations (`wchs`' "Total watches").
    pub fn watch_count(&self) -> usize {
        self.by_watcher.values().map(FastSet::len).sum()
    }

    /// Distinct watched paths.
    pub fn path_count(&self) -> usize {
        let mut paths: HashSet<&str> = HashSet::new();
        for t in self.tables.by_table.values() {
            paths.extend(t.keys().map(String::as_str));
        }
        paths.len()
    }

    pub fn watcher_count(&self) -> usize {
        self.by_watcher.len()
    }

    /// Paths watched by each connection (`wchc`).
    pub fn by_watcher(&self) -> Vec<(WatcherId, Vec<String>)> {
        let mut v: Vec<_> = self
            .by_watcher
            .iter()
            .map(|(w, set)| {
                let mut paths: Vec<String> = set.iter().map(|(_, p)| p.clone()).collect();
                paths.sort();
                paths.dedup();
                (*w, paths)
            })
            .collect();
        v.sort();
        v
    }

    /// Connections watching each path (`wchp`).
    pub fn by_path(&self) -> Vec<(String, Vec<WatcherId>)> {
        let mut m: HashMap<&str, HashSet<WatcherId>> = HashMap::new();
        for t in self.tables.by_table.values() {
            for (p, ws) in t {
                m.entry(p).or_default().extend(ws.iter().copied());
            }
        }
        let mut v: Vec<_> = m
            .into_iter()
            .map(|(p, ws)| {
                let mut ws: Vec<_> = ws.into_iter().collect();
                ws.sort();
                (p.to_string(), ws)
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_data_watch_fires_once() {
        let mut r = WatchRegistry::new();
        r.add_data_watch("/a", 1);
        assert_eq!(r.trigger(EventType::NodeDataChanged, "/a"), vec![1]);
        assert!(r.trigger(EventType::NodeDataChanged, "/a").is_empty());
        assert_eq!(r.watch_count(), 0);
    }

    #[test]
    fn delete_notifies_data_and_child_watchers_once_per_connection() {
        let mut r = WatchRegistry::new();
        r.add_data_watch("/a", 1);
        r.add_child_watch("/a", 1);
        r.add_child_watch("/a", 2);
        let mut got = r.trigger(EventType::NodeDeleted, "/a");
        got.sort();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn persistent_watch_stays_and_sees_children_changes() {
        let mut r = WatchRegistry::new();
        r.add_persistent_watch("/a", 1, false);
        assert_eq!(r.trigger(EventType::NodeDataChanged, "/a"), vec![1]);
        assert_eq!(r.trigger(EventType::NodeChildrenChanged, "/a"), vec![1]);
        assert_eq!(r.trigger(EventType::NodeDeleted, "/a"), vec![1]);
        assert_eq!(r.trigger(EventType::NodeCreated, "/a"), vec![1]);
    }

    #[test]
    fn recursive_watch_sees_descendants_but_never_children_changed() {
        let mut r = WatchRegistry::new();
        r.add_persistent_watch("/a", 1, true);
        assert_eq!(r.trigger(EventType::NodeCreated, "/a/b/c"), vec![1]);
        assert_eq!(r.trigger(EventType::NodeDataChanged, "/a"), vec![1]);
        assert!(r.trigger(EventType::NodeChildrenChanged, "/a").is_empty());
        assert!(r.trigger(EventType::NodeCreated, "/b").is_empty());
    }

    #[test]
    fn remove_and_check_watches_by_type() {
        let mut r = WatchRegistry::new();
        r.add_data_watch("/a", 1);
        r.add_child_watch("/a", 1);
        assert!(r.check("/a", watcher_type::DATA, 1));
        assert!(!r.check("/a", watcher_type::DATA, 2));
        assert!(r.remove_watches("/a", watcher_type::CHILDREN, 1));
        assert!(!r.remove_watches("/a", watcher_type::CHILDREN, 1));
        assert!(r.check("/a", watcher_type::ANY, 1));
        r.remove_watcher(1);
        assert_eq!(r.watch_count(), 0);
        assert!(r.trigger(EventType::NodeDataChanged, "/a").is_empty());
    }
}
