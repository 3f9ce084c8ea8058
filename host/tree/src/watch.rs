//! The watch registry (`WatchManager` for the data and child tables, with ZooKeeper 3.6's persistent
//! and persistent-recursive modes). Watches belong to a connection ([`WatcherId`]); the registry only
//! decides *who* an event goes to, the server delivers it. Its counts are kept as it changes, and
//! a connection's watches are listed in bounded pieces from a cursor ([`WatchRegistry::watched_by`]),
//! so that the admin commands (`wchs`, `wchc`, `wchp`) never walk the tables in one piece.

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::hash::{FastMap, FastSet};

use wazoo_proto::{watcher_type, EventType};

use crate::path;

/// The owner of a watch: a client connection.
pub type WatcherId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// Each connection's watches, ordered, so that a listing resumes after the last one sent.
    by_watcher: FastMap<WatcherId, BTreeSet<(Table, String)>>,
    recursive_count: usize,
    /// Watch registrations.
    count: usize,
    /// Distinct watched paths (a path in several tables counts once).
    distinct_paths: usize,
}

/// Where a listing of a connection's watches ([`WatchRegistry::watched_by`]) goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchCursor(Table, String);

impl WatchRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any table has watches on `p`.
    fn watched(&self, p: &str) -> bool {
        self.tables.by_table.values().any(|m| m.contains_key(p))
    }

    /// `p` left table `t`'s keys: it may be watched no more.
    fn path_left(&mut self, p: &str) {
        if !self.watched(p) {
            self.distinct_paths -= 1;
        }
    }

    fn add(&mut self, t: Table, p: &str, w: WatcherId) {
        let new_path = !self
            .tables
            .by_table
            .get(&t)
            .is_some_and(|m| m.contains_key(p))
            && !self.watched(p);
        let added = self
            .tables
            .by_table
            .entry(t)
            .or_default()
            .entry(p.to_string())
            .or_default()
            .insert(w);
        if new_path {
            self.distinct_paths += 1;
        }
        if added {
            self.count += 1;
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
            self.path_left(p);
        }
        if removed {
            self.count -= 1;
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
            self.count -= entries.len();
            for (t, p) in entries {
                if let Some(table) = self.tables.by_table.get_mut(&t) {
                    if let Some(set) = table.get_mut(&p) {
                        set.remove(&w);
                        if set.is_empty() {
                            table.remove(&p);
                            self.path_left(&p);
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
            self.path_left(p);
            self.count -= set.len();
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
        self.count
    }

    /// Distinct watched paths.
    pub fn path_count(&self) -> usize {
        self.distinct_paths
    }

    pub fn watcher_count(&self) -> usize {
        self.by_watcher.len()
    }

    /// Up to `limit` of the paths `w` watches, after `after` (from the first when `None`), and
    /// where the next piece starts if more follow. A path watched in two modes comes once per
    /// mode. Watches added or removed between pieces are listed or not, none twice (the order is
    /// by mode and path, and the cursor is the last one sent).
    pub fn watched_by(
        &self,
        w: WatcherId,
        after: Option<&WatchCursor>,
        limit: usize,
    ) -> (Vec<String>, Option<WatchCursor>) {
        let Some(set) = self.by_watcher.get(&w) else {
            return (Vec::new(), None);
        };
        let from = match after {
            Some(WatchCursor(t, p)) => Bound::Excluded((*t, p.clone())),
            None => Bound::Unbounded,
        };
        let mut entries = set.range((from, Bound::Unbounded));
        let piece: Vec<&(Table, String)> = entries.by_ref().take(limit).collect();
        let resume = match (piece.last(), entries.next()) {
            (Some((t, p)), Some(_)) => Some(WatchCursor(*t, p.clone())),
            _ => None,
        };
        (piece.into_iter().map(|(_, p)| p.clone()).collect(), resume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The counts, computed from the tables.
    fn recount(r: &WatchRegistry) -> (usize, usize) {
        let count = r
            .tables
            .by_table
            .values()
            .flat_map(|m| m.values())
            .map(|s| s.len())
            .sum();
        let paths: HashSet<&String> = r.tables.by_table.values().flat_map(|m| m.keys()).collect();
        (count, paths.len())
    }

    /// The counts kept as the registry changes match the tables through every kind of change
    /// (adds in each mode, removals, events, closed connections).
    #[test]
    fn the_kept_counts_match_the_tables_through_every_change() {
        let mut r = WatchRegistry::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..20_000 {
            let p = format!("/p{}", next(30));
            let w = next(6);
            match next(9) {
                0 => r.add_data_watch(&p, w),
                1 => r.add_child_watch(&p, w),
                2 => r.add_persistent_watch(&p, w, next(2) == 0),
                3 => {
                    r.remove_watches(&p, [1, 2, 3, 4, 5][next(5) as usize], w);
                }
                4 => r.remove_watcher(w),
                5 => {
                    r.trigger(EventType::NodeDataChanged, &p);
                }
                6 => {
                    r.trigger(EventType::NodeDeleted, &p);
                }
                7 => {
                    r.trigger(EventType::NodeChildrenChanged, &p);
                }
                _ => r.add_data_watch(&p, w),
            }
            assert_eq!((r.watch_count(), r.path_count()), recount(&r));
        }
    }

    /// Pieces of any size list a connection's watches exactly once each, and changes between
    /// pieces never make one come twice.
    #[test]
    fn a_connection_s_watches_are_listed_once_in_pieces_of_any_size() {
        let mut r = WatchRegistry::new();
        for i in 0..500 {
            r.add_data_watch(&format!("/n{i:03}"), 1);
            if i % 3 == 0 {
                r.add_child_watch(&format!("/n{i:03}"), 1);
            }
        }
        r.add_data_watch("/other", 2);
        for limit in [1, 7, 100, 1024] {
            let (mut got, mut cursor) = r.watched_by(1, None, limit);
            while let Some(c) = cursor {
                let (more, next) = r.watched_by(1, Some(&c), limit);
                assert!(more.len() <= limit);
                got.extend(more);
                cursor = next;
            }
            assert_eq!(got.len(), 500 + 167, "limit {limit}");
            let distinct: HashSet<&String> = got.iter().collect();
            assert_eq!(distinct.len(), 500);
        }
        // Changes between pieces: what was sent is not sent again.
        let (first, cursor) = r.watched_by(1, None, 100);
        r.trigger(EventType::NodeDeleted, &first[0]);
        r.add_data_watch("/a-new-one", 1);
        let mut rest = Vec::new();
        let mut cursor = cursor;
        while let Some(c) = cursor {
            let (more, next) = r.watched_by(1, Some(&c), 100);
            rest.extend(more);
            cursor = next;
        }
        // The deleted path's child watch (not sent yet) is gone; the new watch sorts before
        // the cursor, so this listing does not reach it; nothing comes twice.
        assert_eq!(first.len() + rest.len(), 500 + 167 - 1);
        let all: Vec<&String> = first.iter().chain(&rest).collect();
        for i in 0..500 {
            let p = format!("/n{i:03}");
            let modes = if i % 3 == 0 && i > 0 { 2 } else { 1 };
            assert_eq!(all.iter().filter(|q| ***q == p).count(), modes, "{p}");
        }
        assert_eq!(r.watched_by(9, None, 10), (Vec::new(), None));
    }

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
