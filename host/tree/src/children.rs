//! `ChildTable`: a node's children, a hash table of child ids keyed by the children's names (the
//! names live in the tree's slots, so the table takes closures that reach them).
//!
//! Small tables hold bare 4-byte ids: growing one re-hashes every child's name, a cache miss or
//! two per child, which is cheap for a few thousand. Past [`LARGE_FROM`] children the table holds
//! the id with 32 bits of the name's hash (8 bytes), so growing it is a copy: re-hashing names at
//! the doubling from 512k to 1M children stalled the core for about 150 ms, and every request with
//! it. Memory per child stays 4 bytes plus control bytes for the common small directory.

use hashbrown::HashTable;

/// Node ids, as in the tree's arena.
pub(crate) type NodeId = u32;

/// Children count at which a table switches to entries that carry their hash.
pub(crate) const LARGE_FROM: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Hashed {
    id: NodeId,
    hash: u32,
}

#[derive(Debug)]
enum Table {
    Small(HashTable<NodeId>),
    Large(HashTable<Hashed>),
}

#[derive(Debug)]
pub(crate) struct ChildTable(Table);

impl Default for ChildTable {
    fn default() -> Self {
        ChildTable(Table::Small(HashTable::new()))
    }
}

/// 32 bits of a name's 64-bit hash, kept in large tables.
fn fold(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// The probe hash of a large table, rebuilt from the 32 stored bits alone: the low bits pick the
/// bucket, the top 7 are hashbrown's control tag.
fn spread(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

impl ChildTable {
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Table::Small(t) => t.len(),
            Table::Large(t) => t.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buckets allocated (tests check that an emptied table gave its memory back).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        match &self.0 {
            Table::Small(t) => t.capacity(),
            Table::Large(t) => t.capacity(),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_large(&self) -> bool {
        matches!(self.0, Table::Large(_))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = NodeId> + '_ {
        let (small, large) = match &self.0 {
            Table::Small(t) => (Some(t.iter().copied()), None),
            Table::Large(t) => (None, Some(t.iter().map(|e| e.id))),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    /// The child whose name hashes to `h` and for which `is_it` holds.
    pub(crate) fn find(&self, h: u64, is_it: impl Fn(NodeId) -> bool) -> Option<NodeId> {
        match &self.0 {
            Table::Small(t) => t.find(h, |id| is_it(*id)).copied(),
            Table::Large(t) => {
                let f = fold(h);
                t.find(spread(f), |e| e.hash == f && is_it(e.id))
                    .map(|e| e.id)
            }
        }
    }

    /// Adds child `id` whose name hashes to `h` (no child of that name may exist). `name_hash`
    /// gives any child's name hash, for growing a small table.
    pub(crate) fn insert(&mut self, h: u64, id: NodeId, name_hash: impl Fn(NodeId) -> u64) {
        if let Table::Small(t) = &mut self.0 {
            if t.len() < LARGE_FROM {
                t.insert_unique(h, id, |c| name_hash(*c));
                return;
            }
            let mut large = HashTable::with_capacity(t.len() * 2);
            for c in t.drain() {
                let f = fold(name_hash(c));
                large.insert_unique(spread(f), Hashed { id: c, hash: f }, |e| spread(e.hash));
            }
            self.0 = Table::Large(large);
        }
        if let Table::Large(t) = &mut self.0 {
            let f = fold(h);
            t.insert_unique(spread(f), Hashed { id, hash: f }, |e| spread(e.hash));
        }
    }

    /// Removes child `id` whose name hashes to `h`; an emptied table frees its buckets and is small
    /// again.
    pub(crate) fn remove(&mut self, h: u64, id: NodeId) -> bool {
        let removed = match &mut self.0 {
            Table::Small(t) => t.find_entry(h, |c| *c == id).map(|e| e.remove()).is_ok(),
            Table::Large(t) => t
                .find_entry(spread(fold(h)), |e| e.id == id)
                .map(|e| e.remove())
                .is_ok(),
        };
        if self.is_empty() {
            *self = ChildTable::default();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Names are `n<id>`; the hash is foldhash as in the tree.
    struct Names(foldhash::fast::FixedState);

    impl Names {
        fn hash(&self, id: NodeId) -> u64 {
            self.0.hash_one(format!("n{id}").as_bytes())
        }
    }

    #[test]
    fn grows_from_small_to_large_and_keeps_finding_every_child() {
        let names = Names(foldhash::fast::FixedState::with_seed(7));
        let mut t = ChildTable::default();
        let n = (LARGE_FROM * 3) as NodeId;
        for id in 0..n {
            assert_eq!(t.is_large(), id as usize > LARGE_FROM);
            t.insert(names.hash(id), id, |c| names.hash(c));
        }
        assert!(t.is_large());
        assert_eq!(t.len(), n as usize);
        for id in 0..n {
            assert_eq!(t.find(names.hash(id), |c| c == id), Some(id), "{id}");
        }
        assert_eq!(t.find(names.hash(n), |c| c == n), None);
        let mut all: Vec<NodeId> = t.iter().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        // Removing keeps the rest; the last removal frees the table and makes it small again.
        for id in (0..n).step_by(2) {
            assert!(t.remove(names.hash(id), id));
        }
        assert!(!t.remove(names.hash(0), 0), "already gone");
        for id in 0..n {
            let expect = (id % 2 == 1).then_some(id);
            assert_eq!(t.find(names.hash(id), |c| c == id), expect, "{id}");
        }
        for id in (1..n).step_by(2) {
            assert!(t.remove(names.hash(id), id));
        }
        assert!(t.is_empty() && !t.is_large());
        assert_eq!(t.capacity(), 0);
    }

    /// Two names with equal hashes (forced here) stay apart: `find` checks the child itself.
    #[test]
    fn equal_hashes_are_told_apart_by_the_check() {
        for size in [1, LARGE_FROM + 1] {
            let mut t = ChildTable::default();
            for id in 0..size as NodeId {
                t.insert(42, id, |_| 42);
            }
            assert_eq!(t.find(42, |c| c == 0), Some(0));
            let last = size as NodeId - 1;
            assert_eq!(t.find(42, |c| c == last), Some(last));
            assert!(t.remove(42, last));
            assert_eq!(t.find(42, |c| c == last), None);
        }
    }
}
