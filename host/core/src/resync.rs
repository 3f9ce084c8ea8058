//! A learner's resynchronisation on the core, and the leader's side of it: TRUNC (the log cut,
//! the tree rebuilt from the store) and SNAP (the image streamed off the leader's store and into
//! the learner's staged tree, installed crash-atomically: `snapshot.rs`). Split from
//! `replica.rs`, which runs the peer's other outputs.

use wazoo_proto::decode_txn;
use wazoo_zab::peer::{Input, Packet, StoreOp};

use super::*;
use crate::snapshot::{self, SnapReceive};

impl Core {
    /// SNAP(z) to `to`, the tree as of `z` read from a consistent view of the store on a thread
    /// of its own and streamed to the link as it is read (`snapshot.rs`): the leader goes on
    /// serving meanwhile (encoding the tree here stalled it for the length of the walk), what it
    /// sends `to` meanwhile goes after the image, and the image is never whole in memory.
    /// Everything applied is staged and submitted first, so the store's tree is at `z` when the
    /// view is taken (checked there). Before the leader is established nothing is staged (see
    /// `may_stage`): `z` is then the persisted tree's zxid (`Peer::set_persisted`).
    pub(super) fn send_snapshot(&mut self, to: wazoo_zab::Sid, z: Zxid) -> Result<(), CoreError> {
        if !self.may_stage() && z != self.staged_applied {
            // Not established and not as of the persisted tree (a peer not told where the store
            // is): the in-memory tree, encoded here, whole. It serves no client yet, so none
            // waits; and the store cannot be read for it (its tree is older).
            let chunk = self.cfg.snap_chunk_bytes;
            let frames = snapshot::chunk_frames(&self.tree.snapshot_records(), chunk);
            info!(
                to,
                zxid = format_args!("{z:#x}"),
                bytes = frames.iter().map(Vec::len).sum::<usize>(),
                "sending SNAP (from memory: not serving yet)"
            );
            let r = self.replica.as_mut().expect("a replica");
            r.links.send_snapshot(to, z, frames);
            return Ok(());
        }
        // Established: everything applied is committed, staged now. Not yet: the SNAP is as of
        // the persisted tree (committed state only; `Peer::set_persisted`), its history after it
        // following as txns, so nothing is staged (it may hold txns a TRUNC would cut).
        self.stage_tree_changes();
        self.submit_batch();
        let r = self.replica.as_mut().expect("a replica");
        let Some(stream) = r.links.stream_snapshot(to, z) else {
            return Ok(()); // no link to it any more
        };
        info!(to, zxid = format_args!("{z:#x}"), "sending SNAP");
        let chunk = self.cfg.snap_chunk_bytes;
        let started = self.committer.with_store(move |store| {
            let at = store.last_applied().map_err(|e| e.to_string())?;
            if at != z {
                return Err(format!("the store's tree is at {at:#x}, not {z:#x}"));
            }
            store
                .spawn_tree_walk(Box::new(snapshot::StreamWalk::new(stream, chunk)))
                .map_err(|e| e.to_string())
        });
        started.map_err(|e| CoreError::Storage(format!("SNAP at {z:#x}: {e}")))
    }

    /// A SNAP(z) from `from` begins: its image follows as chunks ([`Replica::take_snap_chunk`]),
    /// staged into the store beside the tree in use. The tree in use is dropped meanwhile (as
    /// ZooKeeper clears its database for a SNAP), so that a learner does not hold two trees:
    /// `bench/snapstall.py` measured its peak RSS at the synced RSS plus its old tree. A SNAP cut
    /// off part way loads it again from the store, which still holds it whole
    /// ([`Core::abandon_snap_receive`]).
    pub(super) fn begin_snap_receive(
        &mut self,
        from: wazoo_zab::Sid,
        z: Zxid,
    ) -> Result<(), CoreError> {
        let r = self.replica.as_mut().expect("a replica");
        let Some(conn) = r.links.conn(from) else {
            return Ok(());
        };
        let begun = self
            .committer
            .with_store(|store| store.begin_tree_install().map_err(|e| e.to_string()));
        begun.map_err(|e| CoreError::Storage(format!("SNAP at {z:#x}: {e}")))?;
        info!(from, zxid = format_args!("{z:#x}"), "receiving SNAP");
        let r = self.replica.as_mut().expect("a replica");
        if r.receiving.is_none() {
            // What to load again if this SNAP is cut off (one cut off before it left the tree
            // dropped already, and its zxid here).
            r.tree_before_snap = self.tree.last_applied();
            self.tree = DataTree::new();
        }
        let r = self.replica.as_mut().expect("a replica");
        r.receiving = Some(SnapReceive::new(from, conn, z));
        Ok(())
    }

    /// A SNAP being received is cut off (its link went, or the peer dropped it): the tree this
    /// member had is loaded again from the store (its persisted tree and its log up to the zxid
    /// it had applied; nothing of the SNAP was installed).
    pub(super) fn abandon_snap_receive(&mut self) -> Result<(), CoreError> {
        let Some(r) = self.replica.as_mut() else {
            return Ok(());
        };
        if r.receiving.take().is_none() {
            return Ok(());
        }
        let z = r.tree_before_snap;
        self.submit_batch();
        let loaded = self
            .committer
            .with_store(move |store| load_through(&*store, z));
        let (tree, _) =
            loaded.map_err(|e| CoreError::Storage(format!("reloading the tree to {z:#x}: {e}")))?;
        info!(
            zxid = format_args!("{z:#x}"),
            "SNAP cut off: the tree loaded again"
        );
        if !wazoo_zab::planted::planted(wazoo_zab::planted::Bug::ForgetTreeOnCutSnap) {
            self.tree = tree;
        }
        Ok(())
    }

    /// A chunk of the SNAP being received: its records loaded into the new tree and staged in
    /// the store (waiting for the storage thread holds the link back). After the last one, the
    /// SNAP packet for the peer, which then installs it (`install_snapshot`). A chunk of no SNAP
    /// being received on that link is dropped (its link was replaced); an image that does not
    /// decode or load stops the node, as a damaged one would.
    pub(super) fn take_snap_chunk(
        &mut self,
        sid: wazoo_zab::Sid,
        conn: u64,
        last: bool,
        data: &[u8],
    ) -> Result<Option<Input>, CoreError> {
        let r = self.replica.as_mut().expect("a replica");
        let Some(rx) = r
            .receiving
            .as_mut()
            .filter(|s| s.from == sid && s.conn == conn)
        else {
            return Ok(None);
        };
        let z = rx.zxid;
        let records = rx
            .take_chunk(data, last)
            .map_err(|e| CoreError::Storage(format!("SNAP at {z:#x} from {sid}: {e}")))?;
        if !records.is_empty() {
            let staged = self.committer.with_store(move |store| {
                store.stage_tree_entries(records).map_err(|e| e.to_string())
            });
            staged.map_err(|e| CoreError::Storage(format!("SNAP at {z:#x}: {e}")))?;
        }
        Ok(last.then_some(Input::Packet {
            from: sid,
            packet: Packet::Snap(z),
        }))
    }

    /// TRUNC: the log is cut after `z` (on the storage thread, after every batch asked before) and
    /// the tree rebuilt from the store as of `z` (the persisted tree never holds uncommitted txns:
    /// see `may_stage`). The completion reaches the peer after those of the earlier batches.
    pub(super) fn truncate_after(&mut self, z: Zxid) -> Result<(), CoreError> {
        self.submit_batch();
        let rebuilt = self
            .committer
            .with_store(move |store| rebuild_after_truncation(store, z));
        let (tree, persisted) =
            rebuilt.map_err(|e| CoreError::Storage(format!("TRUNC to {z:#x}: {e}")))?;
        info!(
            zxid = format_args!("{z:#x}"),
            "log truncated and tree rebuilt (TRUNC)"
        );
        // The txns replayed over the persisted tree stay dirty: staged once this member serves.
        self.replace_tree(tree, persisted);
        let r = self.replica.as_mut().expect("a replica");
        r.learned.retain(|(h, _)| h.zxid <= z);
        while r.window.last_key_value().is_some_and(|(k, _)| *k > z) {
            if let Some((_, d)) = r.window.pop_last() {
                r.window_bytes -= d.len();
            }
        }
        self.complete_after_submitted(StoreOp::TruncateAfter(z))
    }

    /// A TRUNC's or SNAP's tree replaces this member's, with the store's tree at `persisted`:
    /// the pending changes of the old one go, and its sessions are tracked.
    fn replace_tree(&mut self, tree: DataTree, persisted: Zxid) {
        self.tree = tree;
        self.pending = PendingChanges::new();
        self.set_staged(persisted);
        self.track_tree_sessions();
    }

    /// SNAP: the leader's tree as of `z`, received and staged in the store, replaces this
    /// member's tree and log, on the storage thread after every batch asked before, in one
    /// crash-atomic step (`Store::finish_tree_install`): a crash before it leaves the member's
    /// history as it was, which syncs again; never a partial snapshot taken for whole
    /// (ZOOKEEPER-3642), and never the history a quorum may count on dropped for a SNAP that did
    /// not arrive.
    pub(super) fn install_snapshot(&mut self, z: Zxid) -> Result<(), CoreError> {
        let r = self.replica.as_mut().expect("a replica");
        let Some(received) = r.receiving.take().filter(|s| s.zxid == z) else {
            return Err(CoreError::Storage(format!(
                "SNAP at {z:#x} asked for, but no such snapshot arrived"
            )));
        };
        let (records, bytes) = (received.records, received.bytes);
        let tree = received
            .into_tree()
            .map_err(|e| CoreError::Storage(format!("SNAP at {z:#x}: {e}")))?;
        self.submit_batch();
        let installed = self
            .committer
            .with_store(move |store| store.finish_tree_install(z).map_err(|e| e.to_string()));
        installed.map_err(|e| CoreError::Storage(format!("SNAP at {z:#x}: {e}")))?;
        info!(
            zxid = format_args!("{z:#x}"),
            nodes = tree.node_count(),
            records,
            bytes,
            "snapshot installed (SNAP)"
        );
        self.replace_tree(tree, z);
        let r = self.replica.as_mut().expect("a replica");
        r.learned.clear();
        r.window.clear();
        r.window_bytes = 0;
        self.complete_after_submitted(StoreOp::LoadSnapshot(z))
    }
}

/// On the storage thread: cuts the log after `z` and loads the tree as of `z` (the persisted tree,
/// then the log up to `z`); with the persisted tree's `last_applied`.
fn rebuild_after_truncation(
    store: &mut dyn wazoo_store::Store,
    z: Zxid,
) -> Result<(DataTree, Zxid), String> {
    store.truncate_log_after(z).map_err(|e| e.to_string())?;
    load_through(store, z)
}

/// On the storage thread: the tree as of `z` (the persisted tree, then the log up to `z`), with
/// the persisted tree's `last_applied`.
fn load_through(store: &dyn wazoo_store::Store, z: Zxid) -> Result<(DataTree, Zxid), String> {
    let mut tree = DataTree::new();
    store
        .load_tree(&mut |k, v| {
            tree.load_entry(k, v)
                .map_err(|e| wazoo_store::StoreError::Corrupt {
                    what: "tree entry",
                    key: String::from_utf8_lossy(k).into_owned(),
                    detail: e,
                })
        })
        .map_err(|e| e.to_string())?;
    let applied = store.last_applied().map_err(|e| e.to_string())?;
    if applied > z {
        return Err(format!(
            "the persisted tree is at {applied:#x}, past the truncation point: it holds txns \
             nobody committed"
        ));
    }
    tree.finish_load(applied);
    let mut after = applied;
    loop {
        let entries = store.read_log(after, 10_000).map_err(|e| e.to_string())?;
        let mut any = false;
        for e in entries.into_iter().take_while(|e| e.zxid <= z) {
            let (h, txn) = decode_txn(&e.data).map_err(|err| format!("{:#x}: {err}", e.zxid))?;
            tree.apply(&h, &txn);
            after = e.zxid;
            any = true;
        }
        if !any || after >= z {
            return Ok((tree, applied));
        }
    }
}
