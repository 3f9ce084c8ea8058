//! Recovery from a [`Store`], pure: the tree as of the log's end (the persisted tree, then the log
//! replayed after its `last_applied`), and an ensemble member's peer from the store's epochs and
//! retained log. The server (with its own faster two-thread tree load) and the simulator both
//! recover through these, so a restart in either is the same code.

use wazoo_proto::{decode_txn, Zxid};
use wazoo_store::{zxid_follows, MetaKey, Store, StoreError};
use wazoo_tree::DataTree;
use wazoo_zab::history::History;
use wazoo_zab::peer::{Peer, PeerConfig};

/// Why a store cannot be recovered from. Either is fatal: the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's content is impossible: a txn or tree entry that does not decode, a log with a
    /// gap or a missing end.
    #[error("corrupt state in the data directory: {0}")]
    Corrupt(String),
}

/// The persisted tree, loaded entry by entry on this thread (the server loads it on two).
pub fn load_tree(store: &dyn Store) -> Result<DataTree, RecoveryError> {
    let mut tree = DataTree::new();
    let mut bad = None;
    let read = store.load_tree(&mut |k, v| {
        tree.load_entry(k, v).map_err(|e| {
            bad = Some(e.clone());
            StoreError::Corrupt {
                what: "tree entry",
                key: String::from_utf8_lossy(k).into_owned(),
                detail: e,
            }
        })
    });
    if let Some(e) = bad {
        return Err(RecoveryError::Corrupt(e));
    }
    read?;
    Ok(tree)
}

/// Finishes a loaded `tree` at the store's `last_applied` and replays the log after it. Returns
/// the last logged zxid (at least the tree's) and how many txns were replayed.
///
/// Refuses a log that cannot hold every acknowledged txn: the first entry after the tree's
/// `last_applied` must follow it ([`zxid_follows`]; otherwise the entries in between are
/// missing), and the replay must reach the store's last logged zxid.
pub fn replay_log(store: &dyn Store, tree: &mut DataTree) -> Result<(Zxid, usize), RecoveryError> {
    let last_applied = store.last_applied()?;
    tree.finish_load(last_applied);
    let mut after = last_applied;
    let mut replayed = 0;
    loop {
        let entries = store.read_log(after, 10_000)?;
        if entries.is_empty() {
            break;
        }
        for e in entries {
            if !zxid_follows(after, e.zxid) {
                let what = if replayed == 0 {
                    format!("the persisted tree is at zxid {after:#x}")
                } else {
                    format!("the previous entry is {after:#x}")
                };
                return Err(RecoveryError::Corrupt(format!(
                    "the txn log has a gap: {what} but the next logged entry is {:#x}; the \
                     entries between them are missing",
                    e.zxid
                )));
            }
            let (h, txn) = decode_txn(&e.data)
                .map_err(|err| RecoveryError::Corrupt(format!("log entry {:#x}: {err}", e.zxid)))?;
            tree.apply(&h, &txn);
            after = e.zxid;
            replayed += 1;
        }
    }
    let store_last = store.last_logged_zxid()?;
    if after < store_last {
        return Err(RecoveryError::Corrupt(format!(
            "the txn log replay ended at zxid {after:#x}, but the store logged entries up to \
             {store_last:#x}: the end of the log is missing"
        )));
    }
    Ok((store_last.max(tree.last_applied()), replayed))
}

/// The log's retained txns, ascending: the window an ensemble member can DIFF a learner from.
pub type Window = Vec<(Zxid, Vec<u8>)>;

/// An ensemble member's peer (configured by `pc`), from the store's epochs and its retained log,
/// whose txns it returns as the [`Window`].
pub fn member_state(store: &dyn Store, pc: PeerConfig) -> Result<(Peer, Window), RecoveryError> {
    let mut window = Vec::new();
    let mut after = -1;
    loop {
        let entries = store.read_log(after, 10_000)?;
        let Some(last) = entries.last() else { break };
        after = last.zxid;
        window.extend(entries.into_iter().map(|e| (e.zxid, e.data)));
    }
    // The history: the retained log, and the persisted tree's zxid when the log does not reach it
    // (after a SNAP the log starts empty at the snapshot's zxid).
    let mut log = History::from_zxids(window.iter().map(|w| w.0));
    let applied = store.last_applied()?;
    if applied > log.last().unwrap_or(0) {
        log.push(applied);
    }
    let recovered = wazoo_zab::peer::Recovered {
        accepted_epoch: store.get_meta_u64(MetaKey::AcceptedEpoch)?.unwrap_or(0),
        current_epoch: store.get_meta_u64(MetaKey::CurrentEpoch)?.unwrap_or(0),
        log,
    };
    let mut peer = Peer::new(pc, recovered);
    peer.set_persisted(applied);
    Ok((peer, window))
}
