//! Durability and apply: once a batch is durable and committed (`wazoo_zab::quorum`) its txns
//! are applied in order, watches fire, replies (and the reads queued behind them) go out; the
//! tree's changes are staged for the store.

use super::*;

impl Core {
    pub(super) fn on_durable(&mut self, report: CommitReport) -> Result<(), CoreError> {
        if let Err(e) = &report.result {
            error!("storage failure, stopping: {e}");
            return Err(CoreError::Storage(e.to_string()));
        }
        self.metrics
            .record_fsync(report.duration.as_micros() as u64);
        if report.entries > 0 {
            self.metrics
                .observe(SummaryKind::SyncProcessorBatchSize, report.entries as u64);
        }
        if self.replica.is_some() {
            // An ensemble member: durable is one ACK toward the peer's quorum, and the peer says
            // what is committed (its `Apply` outputs apply the txns).
            while self
                .submitted
                .front()
                .is_some_and(|&(seq, _)| seq <= report.seq)
            {
                self.submitted.pop_front();
            }
            self.peer_durable(report.seq)?;
            self.after_apply();
            return Ok(());
        }
        let mut durable: Option<Zxid> = None;
        while let Some(&(seq, z)) = self.submitted.front() {
            if seq > report.seq {
                break;
            }
            self.submitted.pop_front();
            durable = Some(durable.map_or(z, |d: Zxid| d.max(z)));
        }
        let Some(durable) = durable else {
            return Ok(());
        };
        // Durable is not committed: this server's log is one ack toward the quorum (standalone:
        // a quorum of one, so here they coincide).
        self.commit.ack(self.cfg.server_id as u64, durable);
        let committed = self.commit.committed();
        while self
            .inflight
            .front()
            .is_some_and(|f| f.header.zxid <= committed)
        {
            let f = self.inflight.pop_front().expect("front exists");
            self.apply(f);
        }
        self.after_apply();
        Ok(())
    }

    /// What follows applying a batch's txns: recipe accesses that waited for them, waiting
    /// large writes, staging, purging.
    pub(super) fn after_apply(&mut self) {
        self.install_touched();
        self.retry_waiting_accesses();
        self.run_woken();
        if !self.waiting_large.is_empty() && self.large_in_flight < LARGE_WRITES_IN_FLIGHT {
            self.pump_waiting_large();
        }
        if self.tree.dirty_count() >= TREE_STAGE_DIRTY || self.applied_bytes >= TREE_STAGE_BYTES {
            self.stage_tree_changes();
        }
        self.maybe_purge();
    }

    /// Moves the tree's dirty nodes and sessions, with `last_applied`, into the storage batch. The
    /// two always travel together: a persisted `last_applied` describes the persisted tree exactly.
    /// Between stages the log covers the changes (a restart replays it), and a node changed many
    /// times is written once.
    pub(super) fn stage_tree_changes(&mut self) {
        if !self.may_stage() {
            return;
        }
        let applied = self.tree.last_applied();
        self.applied_bytes = 0;
        if self.tree.dirty_count() == 0 && self.staged_applied == applied {
            return;
        }
        for (k, v) in self.tree.take_changes() {
            match v {
                Some(v) => self.batch.tree_puts.push((k, v)),
                None => self.batch.tree_deletes.push(k),
            }
        }
        self.batch.last_applied = Some(applied);
        self.set_staged(applied);
    }

    pub(super) fn maybe_purge(&mut self) {
        let retain = self.cfg.log_retain_txns;
        let every = (retain / 4).clamp(100, 25_000);
        if self.applied_since_purge < every || retain == 0 || !self.may_stage() {
            return;
        }
        self.applied_since_purge = 0;
        let below = match self.replica.as_ref() {
            // An ensemble's zxids jump at every epoch: count txns in the peer's history.
            Some(r) => r.retention_floor(retain),
            None => self.tree.last_applied() - retain as i64,
        };
        if below <= 0 {
            return;
        }
        // The purge rides the batch, after the tree changes staged here that cover the purged
        // entries (the store logs it).
        self.stage_tree_changes();
        self.batch.purge_before = Some(below);
        self.submit_batch();
    }

    pub(super) fn apply(&mut self, f: InFlight) {
        self.applied_bytes += txn_data_len(&f.txn);
        if f.large > 0 {
            self.large_in_flight -= f.large;
        }
        let applied = self.tree.apply(&f.header, &f.txn);
        self.metrics.inc(Counter::CommitCount);
        self.pending.applied(f.header.zxid);
        self.applied_since_purge += 1;
        let zxid = applied.zxid;
        if self.runs.parked() > 0 {
            for ev in &applied.events {
                self.wake_parked(ev.kind, &ev.path, zxid, f.woken_at_log);
            }
        }
        for ev in &applied.events {
            self.catalog_event(&ev.path);
            let triggered = self.watches.trigger(ev.kind, &ev.path);
            self.metrics
                .watches_triggered(ev.kind as i32, triggered.len());
            for w in triggered {
                if let Some(c) = self.conns.get_mut(&w) {
                    // ZOOKEEPER-4799 (3.8.4+): events are only delivered to readers of the node.
                    if check_acl(&ev.acl, perms::READ, &c.auth).is_err() {
                        continue;
                    }
                    let before = c.buf.buf.len();
                    encode_notification(&mut c.buf, -1, ev.kind as i32, &ev.path);
                    c.stats.sent += 1;
                    self.metrics.packet_sent((c.buf.buf.len() - before) as u64);
                    self.dirty.push(w);
                }
            }
        }
        let session = f.header.session_id;
        match &f.txn {
            Txn::CreateSession { passwd, .. } => {
                // The tracker has had the session since its ConnectRequest (`on_connect`): adding
                // it here would revive one that a pipelined closeSession already marked closing.
                if let Some(c) = f.origin.and_then(|o| self.conns.get_mut(&o)) {
                    if let Some(Queued::Handshake { read_only, timeout }) = c.queue.pop_front() {
                        let resp = ConnectResponse {
                            protocol_version: 0,
                            timeout,
                            session_id: session,
                            passwd: passwd.clone(),
                            read_only: read_only.map(|_| false),
                        };
                        c.buf.buf.extend_from_slice(&resp.encode_frame());
                        self.dirty.push(f.origin.expect("origin"));
                        self.drain_reads(f.origin.expect("origin"));
                        self.pump(f.origin.expect("origin"));
                    }
                }
                return;
            }
            Txn::CloseSession { .. } => {
                self.tracker.remove(session);
                self.cancel_session_parked(session);
                self.forget_session_calls(session);
                if let Some(cid) = self.session_conn.remove(&session) {
                    if Some(cid) != f.origin {
                        if let Some(c) = self.conns.get_mut(&cid) {
                            c.closing = true;
                            c.session = 0;
                            self.dirty.push(cid);
                        }
                    }
                }
            }
            _ => {}
        }
        let Some(origin) = f.origin else {
            return;
        };
        if self.replica.is_some() {
            self.answer_syncs_before(origin, f.header.cxid);
        }
        let Some(c) = self.conns.get_mut(&origin) else {
            return;
        };
        if c.closing {
            // Its closeSession was answered: ZooKeeper closes the connection after that reply,
            // and nothing prepped behind the close reaches the client.
            return;
        }
        match c.queue.pop_front() {
            Some(Queued::Write {
                xid,
                op: opcode,
                zxid: qz,
                sub_ops,
                at,
                ..
            }) if qz == zxid || (qz == forward::FORWARDED && xid == f.header.cxid) => {
                let result = build_reply(opcode, &sub_ops, applied.outcome);
                if let Err(code) = &result {
                    debug!(
                        session = format_args!("{session:#x}"),
                        op = op::name(opcode),
                        "write failed: {code}"
                    );
                }
                reply(
                    c,
                    &self.metrics,
                    ReplyTo { xid, opcode, at },
                    zxid,
                    result.as_ref().map_err(|e| *e),
                    &self.now,
                );
                if opcode == op::CLOSE_SESSION {
                    c.closing = true;
                }
                self.dirty.push(origin);
                self.drain_reads(origin);
                self.pump(origin);
            }
            Some(Queued::RecipeCommit {
                xid,
                zxid: qz,
                output,
                at,
            }) if qz == zxid => {
                let result = recipe::commit_reply(applied.outcome, output);
                reply(
                    c,
                    &self.metrics,
                    ReplyTo {
                        xid,
                        opcode: op::RECIPE_CALL,
                        at,
                    },
                    zxid,
                    result.as_ref().map_err(|e| *e),
                    &self.now,
                );
                self.dirty.push(origin);
                self.drain_reads(origin);
                self.pump(origin);
            }
            other => {
                error!(
                    zxid,
                    "reply queue out of step with applied txns; closing connection"
                );
                drop(other);
                c.closing = true;
                self.dirty.push(origin);
            }
        }
    }

    /// Answers the reads (and replies decided before their turn) queued behind a connection's
    /// write, up to its next write.
    pub(super) fn drain_reads(&mut self, id: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if c.closing {
                return;
            }
            match c.queue.front() {
                Some(Queued::Ready { after, .. }) if *after > self.tree.last_applied() => return,
                Some(Queued::Ready { .. }) => {
                    if let Some(Queued::Ready {
                        xid,
                        op: opcode,
                        result,
                        at,
                        ..
                    }) = c.queue.pop_front()
                    {
                        reply(
                            c,
                            &self.metrics,
                            ReplyTo { xid, opcode, at },
                            self.tree.last_applied(),
                            result.as_ref().map_err(|e| *e),
                            &self.now,
                        );
                        self.dirty.push(id);
                    }
                }
                Some(Queued::Relayed { frame: None, .. }) => return,
                Some(Queued::Relayed { after, .. }) if *after > self.tree.last_applied() => return,
                Some(Queued::Relayed { .. }) => {
                    if let Some(Queued::Relayed {
                        frame: Some(frame), ..
                    }) = c.queue.pop_front()
                    {
                        // The leader's reply frame, whole (its zxid is applied here now).
                        c.buf.buf.extend_from_slice(&frame);
                        c.stats.sent += 1;
                        self.metrics.packet_sent(frame.len() as u64);
                        self.dirty.push(id);
                    }
                }
                Some(Queued::Read { .. }) => {
                    if let Some(Queued::Read {
                        xid, op, req, at, ..
                    }) = c.queue.pop_front()
                    {
                        c.queued_reads -= 1;
                        self.answer(id, xid, op, req, at);
                    }
                }
                _ => return,
            }
        }
    }
}

/// Node data bytes a txn writes into the tree.
fn txn_data_len(txn: &Txn) -> usize {
    match txn {
        Txn::Create { data, .. } | Txn::SetData { data, .. } => data.as_ref().map_or(0, Vec::len),
        Txn::Multi(ops) => ops.iter().map(txn_data_len).sum(),
        _ => 0,
    }
}
