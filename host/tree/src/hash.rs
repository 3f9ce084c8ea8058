//! The hash tables of the tree, prep and watch registry: std's tables with foldhash instead of
//! SipHash. Paths hashed per request (child tables, change records, dirty sets, watches) made
//! SipHash about 5% of the server's CPU under write load. foldhash's `RandomState` is seeded per
//! process and per table, so clients cannot aim names at one bucket without knowing the seed.

/// The build-hasher of every table here.
pub type FastState = foldhash::fast::RandomState;
/// `HashMap` with [`FastState`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;
/// `HashSet` with [`FastState`].
pub type FastSet<K> = std::collections::HashSet<K, FastState>;
