//! The storage conformance suite: named cases every [`Store`] implementation passes (openraft's
//! `testing::log::Suite` style). A backend supplies a [`StoreBuilder`] and calls [`run_all`] from a
//! unit test; each case is also a public function, so a failing one can be run alone.
//!
//! Cases panic (with the case name) on the first broken expectation. They use small zxids written
//! with [`zxid`] (`epoch << 32 | counter`) so that failures read like ZAB histories.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Batch, LogEntry, Store, Zxid};

mod install;
mod log;
mod state;

pub use install::*;
pub use log::*;
pub use state::*;

/// Creates stores for the suite.
pub trait StoreBuilder {
    type S: Store;
    /// A new, empty store (each call independent of the others).
    fn build(&self) -> Self::S;
    /// Closes `s` and opens it again on the same data (a process restart): every write that returned
    /// must be visible again, durable or not.
    fn reopen(&self, s: Self::S) -> Self::S;
    /// A machine crash: only durable writes must survive. Stores that cannot simulate one reopen
    /// instead (the default), which checks less.
    fn crash(&self, s: Self::S) -> Self::S {
        self.reopen(s)
    }
}

/// A named case of the suite.
type Case<B> = (&'static str, fn(&B));

/// Runs every case against stores from `b`.
pub fn run_all<B: StoreBuilder>(b: &B) {
    let cases: &[Case<B>] = &[
        ("empty_store_reports_zero", empty_store_reports_zero),
        ("append_then_read_in_order", append_then_read_in_order),
        ("read_log_after_and_limit", read_log_after_and_limit),
        ("read_log_in_pages", read_log_in_pages),
        (
            "commit_is_atomic_tree_and_last_applied",
            commit_is_atomic_tree_and_last_applied,
        ),
        ("empty_batch_changes_nothing", empty_batch_changes_nothing),
        ("last_applied_without_log", last_applied_without_log),
        (
            "reopen_keeps_everything_committed",
            reopen_keeps_everything_committed,
        ),
        ("synced_writes_survive_crash", synced_writes_survive_crash),
        (
            "checkpoint_makes_tree_durable",
            checkpoint_makes_tree_durable,
        ),
        (
            "purge_never_drops_entries_the_durable_tree_needs",
            purge_never_drops_entries_the_durable_tree_needs,
        ),
        (
            "truncate_drops_suffix_durably",
            truncate_drops_suffix_durably,
        ),
        (
            "truncate_between_entries_keeps_lower_entry",
            truncate_between_entries_keeps_lower_entry,
        ),
        (
            "truncate_at_or_after_last_is_noop",
            truncate_at_or_after_last_is_noop,
        ),
        (
            "append_after_truncate_reuses_zxids",
            append_after_truncate_reuses_zxids,
        ),
        ("purge_keeps_last_logged_zxid", purge_keeps_last_logged_zxid),
        (
            "purge_keeps_entries_from_zxid_on",
            purge_keeps_entries_from_zxid_on,
        ),
        (
            "batch_purge_runs_after_its_entries",
            batch_purge_runs_after_its_entries,
        ),
        ("truncate_below_purged_prefix", truncate_below_purged_prefix),
        ("out_of_order_zxid_rejected", out_of_order_zxid_rejected),
        (
            "zxid_gap_and_oversized_entry_rejected",
            zxid_gap_and_oversized_entry_rejected,
        ),
        (
            "negative_last_applied_rejected",
            negative_last_applied_rejected,
        ),
        ("tree_loads_in_key_order", tree_loads_in_key_order),
        ("tree_delete_removes", tree_delete_removes),
        (
            "tree_put_then_delete_in_one_batch_deletes",
            tree_put_then_delete_in_one_batch_deletes,
        ),
        (
            "load_tree_visitor_error_stops_walk",
            load_tree_visitor_error_stops_walk,
        ),
        (
            "tree_walk_sees_the_tree_as_of_its_start",
            tree_walk_sees_the_tree_as_of_its_start,
        ),
        (
            "tree_walk_visitor_error_is_its_result",
            tree_walk_visitor_error_is_its_result,
        ),
        ("meta_roundtrip_and_durable", meta_roundtrip_and_durable),
        (
            "batch_meta_is_durable_on_return",
            batch_meta_is_durable_on_return,
        ),
        (
            "batch_with_store_owned_meta_is_rejected_whole",
            batch_with_store_owned_meta_is_rejected_whole,
        ),
        (
            "merged_batches_keep_log_order_and_last_meta",
            merged_batches_keep_log_order_and_last_meta,
        ),
        (
            "format_version_is_store_owned",
            format_version_is_store_owned,
        ),
        ("large_values_roundtrip", large_values_roundtrip),
        (
            "tree_install_replaces_the_tree_and_empties_the_log",
            tree_install_replaces_the_tree_and_empties_the_log,
        ),
        ("tree_install_is_crash_atomic", tree_install_is_crash_atomic),
        (
            "tree_install_begun_again_starts_empty",
            tree_install_begun_again_starts_empty,
        ),
        (
            "tree_install_without_begin_is_refused",
            tree_install_without_begin_is_refused,
        ),
    ];
    for (name, case) in cases {
        tracing::debug!(case = name, "store conformance case");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(b))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("non-string panic payload");
            panic!("store conformance case `{name}` failed: {message}");
        }
    }
}

/// `epoch << 32 | counter`.
pub fn zxid(epoch: u32, counter: u32) -> Zxid {
    (i64::from(epoch) << 32) | i64::from(counter)
}

fn entry(zxid: Zxid) -> LogEntry {
    LogEntry::new(zxid, format!("txn-{zxid:#x}").into_bytes())
}

fn log_batch(zxids: &[Zxid]) -> Batch {
    Batch {
        log: zxids.iter().map(|&z| entry(z)).collect(),
        ..Batch::default()
    }
}

fn commit(s: &mut impl Store, batch: Batch) {
    s.commit(batch).expect("commit");
}

fn logged_zxids(s: &impl Store) -> Vec<Zxid> {
    s.read_log(-1, usize::MAX)
        .expect("read_log")
        .into_iter()
        .map(|e| e.zxid)
        .collect()
}

fn tree(s: &impl Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    s.load_tree(&mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .expect("load_tree");
    out
}

fn put(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs.iter().map(|(k, v)| put(k, v)).collect()
}
