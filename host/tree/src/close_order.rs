//! The order in which ZooKeeper deletes a closing session's ephemerals, and so the order of the
//! NodeDeleted events a closeSession fires.
//!
//! ZooKeeper's prep lists them by iterating `new HashSet<>(ephemerals)` (capacity
//! `max(n/.75+1, 16)` rounded up to a power of two) copied from the session's set in the tree,
//! which was filled in creation order. Apply computes the same order from the tree's ephemeral
//! index, since the closeSession txn no longer carries the paths. (A create still outstanding at
//! ZooKeeper's prep is added to that set after the copy; by the time wazoo applies the close it is
//! applied like the others, so in that race the order can differ from ZooKeeper's. The set of
//! deleted nodes cannot.)

use wazoo_proto::Zxid;

/// Java's `String.hashCode` (over UTF-16 code units) spread as `HashMap.hash` does.
fn java_hash(s: &str) -> u32 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(u as i32);
    }
    let h = h as u32;
    h ^ (h >> 16)
}

/// The table size of a `HashSet` that received `n` adds one by one (default 16, doubling past 3/4).
fn grown_capacity(n: usize) -> u32 {
    let mut cap = 16usize;
    while n > cap * 3 / 4 {
        cap *= 2;
    }
    cap as u32
}

/// Sorts a session's ephemerals, given with their czxid, into ZooKeeper's closeSession order:
/// by bucket of the copied set, then by bucket of the session's set, then by creation.
pub(crate) fn java_hash_set_order(mut found: Vec<(String, Zxid)>) -> Vec<String> {
    let n = found.len();
    let orig_cap = grown_capacity(n);
    let copy_cap = ((n as f32 / 0.75) as usize + 1).max(16).next_power_of_two() as u32;
    let final_cap = orig_cap.max(copy_cap);
    found.sort_by_cached_key(|(p, czxid)| {
        let h = java_hash(p);
        (h & (final_cap - 1), h & (orig_cap - 1), *czxid)
    });
    found.into_iter().map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash_matches_the_jvm() {
        // "abc".hashCode() == 96354 in Java; HashMap.hash spreads it with h ^ (h >>> 16).
        assert_eq!(java_hash("abc"), 96354 ^ (96354 >> 16));
        // Non-ASCII goes through UTF-16 code units: "é".hashCode() == 233.
        assert_eq!(java_hash("é"), 233);
    }

    #[test]
    fn close_session_order_follows_hash_buckets_then_creation() {
        let order = java_hash_set_order(vec![
            ("/d/r/a/a0000000001".into(), 5),
            ("/d/r/a0000000004".into(), 9),
        ]);
        // The order real ZooKeeper 3.8 produced for these two paths (differential test).
        assert_eq!(order, vec!["/d/r/a0000000004", "/d/r/a/a0000000001"]);
    }
}
