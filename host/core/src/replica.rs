//! The core as an ensemble member: the `zab::peer::Peer` lives on this task beside the tree, so
//! a client write gets its zxid from the peer synchronously, the peer's log appends and epoch
//! writes ride the core's storage batches (in order, as the peer requires), and the peer's
//! `Apply(z)` is the commit point the core applies up to, replacing the standalone
//! `CommitPoint`. The peer decides; this module executes its outputs.
//!
//! What it holds for the peer: the window of recent encoded txns that PROPOSALs and DIFFs are
//! sent from (`wazoo.diffWindowBytes`; the peer forgets what leaves it, so a learner further
//! behind gets a SNAP), payloads received and not logged yet, a SNAP being received, and the ids
//! of forwarded requests and syncs. TRUNC and SNAP are `resync.rs`'s; recipe calls relayed
//! between members are `relay.rs`'s.
//! Sessions on learners and forwarding are `forward.rs`'s.

use std::collections::{BTreeMap, HashMap, VecDeque};

use wazoo_admin::stats::{BufferSizeStats, ServerMode};
use wazoo_proto::decode_txn;
use wazoo_store::MetaKey;
use wazoo_zab::peer::{Input, Output, Packet, Peer, Serving, StoreOp};

use super::*;
use crate::snapshot::SnapReceive;

/// The peer and what its outputs need on the core.
pub struct Replica {
    peer: Peer,
    pub(super) links: Links,
    serving: Serving,
    /// Encoded txns by zxid (the log's recent part), and their total size.
    pub(super) window: BTreeMap<Zxid, Arc<Vec<u8>>>,
    pub(super) window_bytes: usize,
    /// About how many bytes of encoded txns `window` keeps (`wazoo.diffWindowBytes`).
    window_limit: usize,
    /// PROPOSAL / INFORM payloads received and not logged yet.
    stash: HashMap<Zxid, Vec<u8>>,
    /// A SNAP being received, or received and not installed yet.
    pub(super) receiving: Option<SnapReceive>,
    /// While one is: the zxid the tree (dropped meanwhile) was at.
    pub(super) tree_before_snap: Zxid,
    /// Txns logged as a learner (or by an earlier role) and not applied yet, in zxid order.
    pub(super) learned: VecDeque<(TxnHeader, Txn)>,
    /// The outputs of a leader's `Write` step after its `Proposed`: run once the txn is encoded.
    deferred: Vec<Output>,
    /// Store ops of the batch being built, in order; and of the batches submitted, by seq.
    ops: Vec<StoreOp>,
    submitted_ops: VecDeque<(u64, Vec<StoreOp>)>,
    /// The last batch seq reported durable.
    durable_seq: u64,
    /// When the peer wants its next `Timeout` (read by the timer task).
    wake: Box<dyn Alarm>,
    /// A learner's forwarded requests not sent yet, by the id the peer knows them by.
    outgoing: HashMap<u64, Vec<u8>>,
    /// A learner's clients' syncs in flight: id -> (connection, xid, path).
    syncs: HashMap<u64, (ConnId, i32, String)>,
    next_id: u64,
    /// The leader: learners' forwarded requests, by (learner, id), until the peer numbers them.
    forwarded: HashMap<(wazoo_zab::Sid, u64), Vec<u8>>,
    /// When this member became the established leader, in ms of the admin views' uptime.
    leading_since_ms: u64,
    /// The sizes of the txns it proposed since (ZooKeeper's proposal `BufferStats`).
    proposal_sizes: BufferSizeStats,
    /// A learner's sessions (and their timeouts) that connected since its last PING answer.
    pub(super) touches: HashMap<i64, i32>,
    /// Recipe calls across the ensemble (`relay.rs`).
    pub(super) relays: crate::relay::Relays,
}

impl Replica {
    /// A member with `peer` (built from what the store recovered), its links, the log's recent
    /// txns (`window`, ascending) that the peer's history covers, and where it asks for a
    /// [`CoreMsg::PeerWake`] (`wake`).
    pub fn new(
        peer: Peer,
        links: Links,
        window: Vec<(Zxid, Vec<u8>)>,
        window_limit: usize,
        wake: Box<dyn Alarm>,
    ) -> Replica {
        let mut r = Replica {
            peer,
            links,
            serving: Serving::Looking,
            window: BTreeMap::new(),
            window_bytes: 0,
            window_limit,
            stash: HashMap::new(),
            receiving: None,
            tree_before_snap: 0,
            learned: VecDeque::new(),
            deferred: Vec::new(),
            ops: Vec::new(),
            submitted_ops: VecDeque::new(),
            durable_seq: 0,
            wake,
            outgoing: HashMap::new(),
            syncs: HashMap::new(),
            next_id: 0,
            forwarded: HashMap::new(),
            leading_since_ms: 0,
            proposal_sizes: BufferSizeStats::default(),
            touches: HashMap::new(),
            relays: Default::default(),
        };
        for (z, data) in window {
            r.remember(z, Arc::new(data));
        }
        r
    }

    fn remember(&mut self, z: Zxid, data: Arc<Vec<u8>>) {
        self.window_bytes += data.len();
        self.window.insert(z, data);
        // Only applied txns leave: one logged and not applied yet may still be proposed or
        // synced (the window then holds more than its limit until commits catch up).
        // Nor one past the persisted tree: a SNAP before the leader is established is as of
        // that tree, and the txns after it follow the image (`Peer::set_persisted`).
        let forgettable = self.peer.forgettable();
        let mut forgotten = None;
        while self.window_bytes > self.window_limit {
            let Some(first) = self
                .window
                .first_entry()
                .filter(|e| *e.key() <= forgettable)
            else {
                break;
            };
            forgotten = Some(*first.key());
            self.window_bytes -= first.remove().len();
        }
        // A txn out of the window cannot be sent: the peer must not plan a DIFF that needs it
        // (it did, and a learner that far behind was dropped at every try, for good).
        if let Some(z) = forgotten {
            self.peer.forget_through(z);
        }
    }

    /// Where the log may be purged below to keep `retain` txns behind the applied one.
    pub(super) fn retention_floor(&self, retain: u64) -> Zxid {
        self.peer.retention_floor(retain)
    }

    pub(super) fn leading(&self) -> bool {
        matches!(self.serving, Serving::Leading { .. })
    }

    /// The leader this member follows or observes (0 while it does neither).
    pub(super) fn leader(&self) -> wazoo_zab::Sid {
        match self.serving {
            Serving::Following { leader, .. } | Serving::Observing { leader, .. } => leader,
            _ => 0,
        }
    }

    pub(super) fn learning(&self) -> bool {
        matches!(
            self.serving,
            Serving::Following { .. } | Serving::Observing { .. }
        )
    }

    /// Keeps a forwarded request until the peer sends it; its id.
    pub(super) fn park_forward(&mut self, data: Vec<u8>) -> u64 {
        self.next_id += 1;
        self.outgoing.insert(self.next_id, data);
        self.next_id
    }

    pub(super) fn park_sync(&mut self, conn: ConnId, xid: i32, path: String) -> u64 {
        self.next_id += 1;
        self.syncs.insert(self.next_id, (conn, xid, path));
        self.next_id
    }

    pub(super) fn unpark_sync(&mut self, id: u64) -> Option<(ConnId, i32, String)> {
        self.syncs.remove(&id)
    }

    /// Takes the sync `xid` of `conn` out, whatever its id; its path.
    pub(super) fn unpark_sync_of(&mut self, conn: ConnId, xid: i32) -> Option<String> {
        let id = self
            .syncs
            .iter()
            .find(|(_, (c, x, _))| *c == conn && *x == xid)
            .map(|(id, _)| *id)?;
        self.syncs.remove(&id).map(|(_, _, path)| path)
    }
}

impl Core {
    /// The member's role as its peer reports it (`None`: a standalone server).
    pub fn serving(&self) -> Option<Serving> {
        self.replica.as_ref().map(|r| r.serving)
    }

    /// Attaches the ensemble member's peer: from now on writes are numbered and committed by it.
    pub fn attach_replica(&mut self, replica: Replica) {
        self.gauges.set_mode(ServerMode::Follower);
        self.gauges.set_serving(false);
        self.replica = Some(Box::new(replica));
    }

    /// A leader's learners, for `mntr` and `/metrics` (once per tick).
    pub(super) fn publish_leader(&self) {
        let Some(v) = self.replica.as_ref().and_then(|r| r.peer.leader_view()) else {
            return;
        };
        let Some(r) = self.replica.as_ref() else {
            return;
        };
        self.gauges.publish_leader(
            v.learners as u64,
            v.synced_followers as u64,
            v.synced_observers as u64,
            v.pending_syncs as u64,
            r.leading_since_ms,
            r.proposal_sizes,
        );
    }

    /// Whether the tree's changes may be persisted now. An ensemble member persists them only
    /// while it serves, when everything it applied is committed: the tree it holds while looking
    /// or synchronising may carry txns nobody committed (reloaded from its log), which a TRUNC
    /// must be able to drop by rebuilding the tree from the store.
    pub(super) fn may_stage(&self) -> bool {
        self.replica
            .as_ref()
            .is_none_or(|r| r.serving != Serving::Looking)
    }

    /// Whether this core takes client sessions: standalone, or an ensemble member that serves.
    pub(super) fn takes_clients(&self) -> bool {
        self.replica
            .as_ref()
            .is_none_or(|r| r.serving != Serving::Looking)
    }

    /// Whether this core expires sessions and reaps containers: standalone, or the leader (the
    /// others learn of it as txns).
    pub(super) fn leads(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.leading())
    }

    pub(super) fn on_link(&mut self, e: LinkEvent) -> Result<(), CoreError> {
        let Some(r) = self.replica.as_mut() else {
            return Ok(());
        };
        match e {
            LinkEvent::SnapshotStreamed {
                zxid,
                result: Err(e),
                ..
            } => {
                return Err(CoreError::Storage(format!(
                    "reading the tree for a SNAP at {zxid:#x}: {e}"
                )))
            }
            LinkEvent::SnapChunk {
                sid,
                conn,
                last,
                data,
                credit,
            } => {
                let complete = self.take_snap_chunk(sid, conn, last, &data)?;
                // Taken in: the link may read on.
                drop(credit);
                return match complete {
                    Some(input) => self.peer_step(input),
                    None => Ok(()),
                };
            }
            LinkEvent::Recipe {
                sid,
                conn,
                reply,
                data,
            } => {
                if r.links.conn(sid) == Some(conn) {
                    self.on_recipe_frame(sid, reply, &data);
                }
                return Ok(());
            }
            LinkEvent::QuorumDown { sid, conn } if r.links.conn(sid) == Some(conn) => {
                self.quorum_link_gone(sid)?;
            }
            _ => {}
        }
        let r = self.replica.as_mut().expect("a replica");
        let Some((input, data)) = r.links.on_event(e) else {
            return Ok(());
        };
        if let Input::Notification(n) = &input {
            debug!(?n, "election notification in");
        }
        match input {
            Input::Packet {
                packet: Packet::Proposal(z) | Packet::Inform(z),
                ..
            } => {
                r.stash.insert(z, data);
            }
            Input::Packet {
                from,
                packet: Packet::Snap(z),
            } => {
                // The image follows as chunks; the peer gets the SNAP once it is all in.
                return self.begin_snap_receive(from, z);
            }
            Input::Packet {
                from,
                packet: Packet::Request { id },
            } => {
                r.forwarded.insert((from, id), data);
            }
            Input::Packet {
                packet: Packet::Ping,
                ..
            } if r.leading() && !data.is_empty() => self.touch_sessions(&data),
            _ => {}
        }
        let applied = self.tree.last_applied();
        self.peer_step(input)?;
        if self.tree.last_applied() != applied {
            // A COMMIT (a learner) or the ACK that completed a quorum (the leader) applied
            // txns: what waits for applies goes on now, as after this server's own durable
            // report (`on_durable`): woken recipe calls, replies waiting for their txn (a
            // learner's relayed ones), waiting large writes. They waited for the next durable
            // report or tick: the server-side mutex in a 3-server ensemble made 5-6
            // acquisitions/s, p50 1 s (`bench/results/2026-12-07-vm-ensemble3-recipes.md`).
            self.after_apply();
        }
        Ok(())
    }

    /// The quorum link to `sid` is gone (it went down, or the peer dropped it): a leader drops
    /// that learner's relay connections; a learner's SNAP from it, cut short, gives way to the
    /// tree it had (what was staged is dropped by the next SNAP's begin).
    fn quorum_link_gone(&mut self, sid: wazoo_zab::Sid) -> Result<(), CoreError> {
        let Some(r) = self.replica.as_ref() else {
            return Ok(());
        };
        let snapping = r.receiving.as_ref().is_some_and(|s| s.from == sid);
        if r.leading() {
            self.drop_relay_conns(Some(sid));
        }
        if snapping {
            self.abandon_snap_receive()?;
        }
        Ok(())
    }

    /// Steps the peer and executes its outputs in order.
    pub(super) fn peer_step(&mut self, input: Input) -> Result<(), CoreError> {
        let Some(r) = self.replica.as_mut() else {
            return Ok(());
        };
        let mut outputs = r.peer.step(self.now.mono_ms as u64, input).into_iter();
        while let Some(o) = outputs.next() {
            if let Output::Proposed {
                zxid,
                id,
                from: Some(learner),
            } = o
            {
                // A learner's forwarded write got its zxid: prep it; the rest of the step (the
                // append, the PROPOSALs) runs once it is encoded (`proposed`).
                let r = self.replica.as_mut().expect("a replica");
                r.deferred = outputs.collect();
                let data = r.forwarded.remove(&(learner, id)).unwrap_or_default();
                self.prep_forwarded(zxid, &data);
                break;
            }
            self.peer_output(o)?;
        }
        self.rearm_peer_wake();
        Ok(())
    }

    fn rearm_peer_wake(&mut self) {
        let Some(r) = self.replica.as_ref() else {
            return;
        };
        let at = r.peer.next_wake().map(|w| {
            let ahead = (w as i64 - self.now.mono_ms).max(0) as u64;
            self.now.at + std::time::Duration::from_millis(ahead)
        });
        // Always published: the timer task waits for a new publication after it fired, even for
        // the same instant.
        r.wake.set(at);
    }

    /// The zxid for a leader's next write, from the peer (`None`: it cannot propose).
    pub(super) fn propose_zxid(&mut self) -> Option<Zxid> {
        let r = self.replica.as_mut()?;
        let outputs = r.peer.step(self.now.mono_ms as u64, Input::Write { id: 0 });
        let zxid = outputs.iter().find_map(|o| match o {
            Output::Proposed { zxid, .. } => Some(*zxid),
            _ => None,
        });
        if zxid.is_some() {
            // Appending it and sending the PROPOSALs wait until the txn is encoded.
            r.deferred = outputs;
        } else {
            for o in outputs {
                if let Err(e) = self.peer_output(o) {
                    error!("{e}");
                }
            }
        }
        zxid
    }

    /// A leader's txn was just encoded into the batch: the rest of its `Write` step runs.
    pub(super) fn proposed(&mut self, zxid: Zxid, data: &[u8]) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        r.remember(zxid, Arc::new(data.to_vec()));
        if r.leading() {
            let n = data.len() as i64;
            let p = &mut r.proposal_sizes;
            p.last = n;
            p.min = if p.min < 0 { n } else { p.min.min(n) };
            p.max = p.max.max(n);
        }
        let deferred = std::mem::take(&mut r.deferred);
        for o in deferred {
            if let Err(e) = self.peer_output(o) {
                error!("{e}");
            }
        }
        self.rearm_peer_wake();
    }

    /// A storage batch went to the committer as `seq`: the peer's ops in it complete with it.
    pub(super) fn batch_submitted(&mut self, seq: u64) {
        if let Some(r) = self.replica.as_mut() {
            if !r.ops.is_empty() {
                let ops = coalesce_appends(std::mem::take(&mut r.ops));
                r.submitted_ops.push_back((seq, ops));
            }
        }
    }

    /// Whether the batch must be submitted though empty (a barrier the peer waits for).
    pub(super) fn peer_ops_pending(&self) -> bool {
        self.replica.as_ref().is_some_and(|r| !r.ops.is_empty())
    }

    /// Batches up to `seq` are durable: their ops complete, in order.
    pub(super) fn peer_durable(&mut self, seq: u64) -> Result<(), CoreError> {
        if let Some(r) = self.replica.as_mut() {
            r.durable_seq = r.durable_seq.max(seq);
        }
        loop {
            let Some(r) = self.replica.as_mut() else {
                return Ok(());
            };
            let Some((s, _)) = r.submitted_ops.front() else {
                return Ok(());
            };
            if *s > seq {
                return Ok(());
            }
            let (_, ops) = r.submitted_ops.pop_front().expect("front");
            for op in ops {
                self.peer_step(Input::Stored(op))?;
            }
        }
    }

    pub(super) fn peer_output(&mut self, o: Output) -> Result<(), CoreError> {
        let r = self.replica.as_mut().expect("a replica");
        match o {
            Output::Notify { to, notification } => {
                debug!(?to, ?notification, "election notification out");
                r.links.notify(to, &notification)
            }
            Output::Connect(leader) => r.links.connect(leader),
            Output::Disconnect(sid) => {
                r.links.disconnect(sid);
                self.quorum_link_gone(sid)?;
            }
            Output::Send { to, packet } => {
                // The learner syncs this leader begins, by kind (mntr `diff_count`, ...).
                match packet {
                    Packet::Diff(_) => self.metrics.inc(Counter::DiffCount),
                    Packet::Trunc(_) => self.metrics.inc(Counter::TruncCount),
                    Packet::Snap(_) => self.metrics.inc(Counter::SnapCount),
                    _ => {}
                }
                match packet {
                    Packet::Proposal(z) | Packet::Inform(z) => match r.window.get(&z) {
                        Some(d) => r.links.send(to, &packet, d),
                        None => {
                            error!(
                                zxid = format_args!("{z:#x}"),
                                to, "no txn to send; dropping the learner"
                            );
                            r.links.disconnect(to);
                        }
                    },
                    Packet::Snap(z) => {
                        // The tree as of the SNAP zxid: the peer plans it at what is applied
                        // here, or (not established yet) at what is persisted.
                        if z != self.tree.last_applied() && z != self.staged_applied {
                            return Err(CoreError::Storage(format!(
                                "SNAP at {z:#x} but the tree is at {:#x} (persisted at {:#x})",
                                self.tree.last_applied(),
                                self.staged_applied
                            )));
                        }
                        self.send_snapshot(to, z)?;
                    }
                    Packet::Request { id } => {
                        let data = r.outgoing.remove(&id).unwrap_or_default();
                        r.links.send(to, &packet, &data);
                    }
                    Packet::Ping if r.learning() => {
                        let touches = self.session_touches();
                        let r = self.replica.as_mut().expect("a replica");
                        r.links.send(to, &packet, &touches);
                    }
                    _ => r.links.send(to, &packet, &[]),
                }
            }
            Output::Store(op) => {
                match op {
                    StoreOp::AcceptedEpoch(e) => self.batch.meta.push((MetaKey::AcceptedEpoch, e)),
                    StoreOp::CurrentEpoch(e) => self.batch.meta.push((MetaKey::CurrentEpoch, e)),
                    StoreOp::Append(z) => {
                        if let Some(data) = r.stash.remove(&z) {
                            // A learner's txn: decoded once, logged, applied when committed.
                            let (header, txn) = decode_txn(&data).map_err(|e| {
                                CoreError::Storage(format!("txn {z:#x} from the leader: {e}"))
                            })?;
                            r.learned.push_back((header, txn));
                            r.remember(z, Arc::new(data.clone()));
                            self.batch.log.push(LogEntry { zxid: z, data });
                        }
                        // Else the leader's own: `log_txn` put it in the batch.
                    }
                    StoreOp::Barrier(_) => {}
                    StoreOp::TruncateAfter(z) => return self.truncate_after(z),
                    StoreOp::LoadSnapshot(z) => return self.install_snapshot(z),
                }
                let r = self.replica.as_mut().expect("a replica");
                r.ops.push(op);
            }
            Output::Apply(z) => self.apply_committed(z)?,
            Output::Proposed { .. } | Output::WriteRefused { .. } => {}
            Output::SyncReached { id } => self.sync_reached(id),
            Output::SyncRefused { id } => {
                if let Some((conn, _, _)) = r.unpark_sync(id) {
                    self.close_conn(conn);
                }
            }
            Output::Serving(s) => self.role_changed(s)?,
        }
        Ok(())
    }

    /// The store's tree is (once the batch being built commits) as of `z`: the peer plans SNAPs
    /// and keeps txns with it (`Peer::set_persisted`).
    pub(super) fn set_staged(&mut self, z: Zxid) {
        self.staged_applied = z;
        if let Some(r) = self.replica.as_mut() {
            r.peer.set_persisted(z);
        }
    }

    /// Tracks every session of the tree, one not tracked (or marked closing) with a full timeout
    /// to come back, as after a restart: when this member starts serving (as the leader it
    /// expires them from now on), and when its tree was replaced (SNAP, TRUNC), after which a
    /// client may move one of the tree's sessions here.
    /// Without it a learner synced by SNAP answered a moving client "session expired" for any
    /// session opened while it was away, though the session lived on (found by the
    /// server-pipeline simulator, seed 31).
    pub(super) fn track_tree_sessions(&mut self) {
        let untracked: Vec<(i64, i32)> = self
            .tree
            .sessions()
            .iter()
            .filter(|(id, _)| !self.tracker.is_valid(**id))
            .map(|(id, s)| (*id, s.timeout))
            .collect();
        for (id, timeout) in untracked {
            self.tracker.add(id, timeout, self.now.mono_ms);
        }
    }

    /// A store op done on the storage thread (after every batch asked before it): its completion
    /// reaches the peer right after those batches' ops.
    pub(super) fn complete_after_submitted(&mut self, op: StoreOp) -> Result<(), CoreError> {
        let after = self.last_seq;
        let r = self.replica.as_mut().expect("a replica");
        if after <= r.durable_seq {
            return self.peer_step(Input::Stored(op));
        }
        match r.submitted_ops.back_mut() {
            Some((s, ops)) if *s == after => ops.push(op),
            _ => r.submitted_ops.push_back((after, vec![op])),
        }
        Ok(())
    }

    /// The peer says `z` is committed (and durable here): apply it, with its replies if it was
    /// this server's client's write.
    fn apply_committed(&mut self, z: Zxid) -> Result<(), CoreError> {
        if self.inflight.front().is_some_and(|f| f.header.zxid == z) {
            let f = self.inflight.pop_front().expect("front");
            self.apply(f);
            return Ok(());
        }
        let r = self.replica.as_mut().expect("a replica");
        match r.learned.front() {
            Some((h, _)) if h.zxid == z => {
                let (header, txn) = r.learned.pop_front().expect("front");
                let session = header.session_id;
                if let Txn::CreateSession { timeout, .. } = &txn {
                    // A session opened elsewhere may move here: this member knows it.
                    if !self.tracker.is_valid(session) && !self.session_conn.contains_key(&session)
                    {
                        self.tracker.add(session, *timeout, self.now.mono_ms);
                    }
                }
                // This member's client's own forwarded request, when it waits at the front of
                // its connection's queue (matched by session and cxid), syncs queued before it
                // aside (`answer_syncs_before` answers them first).
                let origin = self.session_conn.get(&session).copied().filter(|cid| {
                    self.conns.get(cid).is_some_and(|c| {
                        let first = c.queue.iter().find(|q| !forward::is_pending_sync(q));
                        match (first, &txn) {
                            (Some(Queued::Handshake { .. }), Txn::CreateSession { .. }) => true,
                            (Some(Queued::Write { xid, zxid, .. }), _) => {
                                *zxid == forward::FORWARDED && *xid == header.cxid
                            }
                            _ => false,
                        }
                    })
                });
                self.apply(InFlight {
                    header,
                    txn,
                    origin,
                    admit: None,
                    large: 0,
                    woken_at_log: false,
                });
                Ok(())
            }
            _ => Err(CoreError::Storage(format!(
                "the peer applies {z:#x}, which this server does not hold"
            ))),
        }
    }

    fn role_changed(&mut self, s: Serving) -> Result<(), CoreError> {
        if s == Serving::Looking {
            // A SNAP being received ends with the sync it belonged to.
            self.abandon_snap_receive()?;
        }
        let Some(r) = self.replica.as_mut() else {
            return Ok(());
        };
        let was_serving = r.serving != Serving::Looking;
        let was_leading = r.leading();
        r.serving = s;
        if s == Serving::Looking {
            r.outgoing.clear();
            r.syncs.clear();
            r.forwarded.clear();
        }
        let mode = match s {
            Serving::Looking => {
                info!("LOOKING");
                None
            }
            Serving::Leading { epoch } => {
                info!(epoch, "LEADING");
                Some(ServerMode::Leader)
            }
            Serving::Following { leader, epoch } => {
                info!(leader, epoch, "FOLLOWING");
                Some(ServerMode::Follower)
            }
            Serving::Observing { leader, epoch } => {
                info!(leader, epoch, "OBSERVING");
                Some(ServerMode::Observer)
            }
        };
        if let Some(m) = mode {
            self.gauges.set_mode(m);
        }
        self.gauges.set_serving(mode.is_some());
        if was_serving && s == Serving::Looking {
            // ZooKeeper closes every client connection when the server leaves its role.
            let ids: Vec<ConnId> = self.conns.keys().copied().collect();
            for id in ids {
                self.drop_conn(id);
            }
        }
        if was_leading && !matches!(s, Serving::Leading { .. }) {
            // Recipe calls run on the leader only: what runs or waits here ends (its clients
            // were closed above and retry on the next leader, which re-arms from the records).
            self.drop_relay_conns(None);
            self.runs.forget_all();
        }
        if let Serving::Leading { .. } = s {
            if !was_leading {
                // The recorded answers and parked calls of the previous leader's calls.
                self.load_recipe_state();
            }
        }
        if let Serving::Leading { epoch } = s {
            let since = self
                .now
                .at
                .saturating_duration_since(self.started)
                .as_millis() as u64;
            if let Some(r) = self.replica.as_mut() {
                r.leading_since_ms = since;
                r.proposal_sizes = BufferSizeStats::default();
            }
            self.next_zxid = ((epoch as Zxid) << 32) | 1;
        }
        if s != Serving::Looking {
            // Serving again: every session of the tree is tracked and none is closing. A close
            // this member forwarded to a leader it has since lost died with that leader (its
            // client saw the connection go), so its session lives on and may be resumed here;
            // answering "expired" left its ephemerals behind a client told they were gone (found
            // by the server-pipeline simulator, seed 340).
            self.track_tree_sessions();
        }
        Ok(())
    }
}

/// Consecutive appends of a batch complete as one: `Stored(Append(z))` says everything up to `z`
/// is durable, so the peer acts once per batch (one ACK, one commit step) instead of once per txn.
fn coalesce_appends(ops: Vec<StoreOp>) -> Vec<StoreOp> {
    let mut out: Vec<StoreOp> = Vec::with_capacity(ops.len().min(8));
    for op in ops {
        match (op, out.last_mut()) {
            (StoreOp::Append(z), Some(StoreOp::Append(last))) => *last = z,
            (op, _) => out.push(op),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_appends_complete_as_one_and_other_ops_keep_their_place() {
        use StoreOp::*;
        assert_eq!(
            coalesce_appends(vec![
                Append(1),
                Append(2),
                CurrentEpoch(3),
                Append(4),
                Append(5),
                Barrier(1)
            ]),
            vec![Append(2), CurrentEpoch(3), Append(5), Barrier(1)]
        );
        assert_eq!(coalesce_appends(vec![]), vec![]);
    }
}
