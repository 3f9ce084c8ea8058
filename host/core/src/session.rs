//! Connections and sessions on the core: the handshake (new, resumed, refused), connection
//! close, session expiry on ticks, and the container/TTL reaper's deletions.

use super::*;

impl Core {
    pub(super) fn on_connect(
        &mut self,
        id: ConnId,
        remote: SocketAddr,
        req: ConnectRequest,
        out: ConnTx,
        received_ms: i64,
    ) {
        let auth = AuthInfo::for_ip(&remote.ip().to_string());
        let mut conn = Conn::new(remote, 0, 0, auth, out, self.now.wall_ms);
        if !self.takes_clients() {
            // An ensemble member that is not serving (looking, or synchronising).
            debug!(%remote, "refusing a client: this member is not serving");
            conn.out.close();
            return;
        }
        if req.last_zxid_seen > self.tree.last_applied() {
            info!(
                %remote,
                client_zxid = format_args!("{:#x}", req.last_zxid_seen),
                server_zxid = format_args!("{:#x}", self.tree.last_applied()),
                "refusing connection: client has seen a later zxid than this server"
            );
            conn.out.close();
            return;
        }
        let timeout = self.cfg.negotiate_timeout(req.timeout);
        // A client that reads none of its replies for its session timeout is gone.
        conn.out.set_stall_timeout(timeout as u64);
        if req.session_id == 0 {
            let session = self.alloc_session_id();
            let mut passwd = vec![0u8; 16];
            self.rng.fill_bytes(&mut passwd);
            conn.session = session;
            conn.timeout = timeout;
            conn.queue.push_back(Queued::Handshake {
                read_only: req.read_only,
                timeout,
            });
            self.conns.insert(id, conn);
            self.session_conn.insert(session, id);
            // Tracked from now on, as ZooKeeper's prep does (`trackSession`): the requests pipelined
            // behind the handshake are checked against it like any other, and a closeSession among
            // them marks it closing before anything after it is prepped.
            self.tracker.add(session, timeout, received_ms);
            if self.forwards() {
                let f = forward::Forward::CreateSession {
                    session,
                    timeout,
                    passwd,
                };
                if !self.forward(&f) {
                    self.close_conn(id);
                }
                return;
            }
            let _ = self.submit_txn(session, 0, Txn::CreateSession { timeout, passwd }, Some(id));
            return;
        }
        let valid = self
            .tree
            .session(req.session_id)
            .is_some_and(|s| s.passwd == req.passwd)
            && self.tracker.is_valid(req.session_id);
        if !valid {
            debug!(%remote, session = format_args!("{:#x}", req.session_id), "session expired or unknown");
            conn.out
                .send(&ConnectResponse::expired(req.read_only).encode_frame());
            conn.out.close();
            return;
        }
        // Resume: the session moves to this connection.
        if let Some(old) = self.session_conn.insert(req.session_id, id) {
            if let Some(c) = self.conns.get_mut(&old) {
                c.session = 0;
                c.closing = true;
                c.out.close();
            }
            self.drop_conn(old);
        }
        // The client is told `timeout`; the tracker expires the session by the same one (on a
        // follower, the leader's tracker learns it with the next PING answer).
        self.tracker.resume(req.session_id, timeout, received_ms);
        self.note_session(req.session_id, timeout);
        let passwd = self
            .tree
            .session(req.session_id)
            .map(|s| s.passwd.clone())
            .unwrap_or_default();
        conn.session = req.session_id;
        conn.timeout = timeout;
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout,
            session_id: req.session_id,
            passwd,
            read_only: req.read_only.map(|_| false),
        };
        conn.buf.buf.extend_from_slice(&resp.encode_frame());
        self.conns.insert(id, conn);
        self.dirty.push(id);
    }

    pub(super) fn alloc_session_id(&mut self) -> i64 {
        loop {
            let id = self.next_session_id;
            self.next_session_id = self.next_session_id.wrapping_add(1);
            if id != 0 && id != i64::MIN && self.tree.session(id).is_none() {
                return id;
            }
        }
    }

    pub(super) fn drop_conn(&mut self, id: ConnId) {
        if self.runs.parked() > 0 {
            self.drop_parked_of(id);
        }
        self.relayed_conn_dropped(id);
        if let Some(c) = self.conns.remove(&id) {
            // Ends the writer task once it has written what was sent (it holds the socket too).
            c.out.close();
            self.watches.remove_watcher(id);
            if c.session != 0 && self.session_conn.get(&c.session) == Some(&id) {
                self.session_conn.remove(&c.session);
            }
        }
    }

    pub(super) fn on_closed(&mut self, id: ConnId) {
        self.drop_conn(id);
    }

    pub(super) fn on_tick(&mut self, now: i64) {
        self.time_out_parked();
        if self.runs.any_woken() {
            self.run_woken(); // calls re-armed at start
        }
        self.retire_unused_versions();
        if self.replica.as_ref().is_some_and(|r| r.leading()) {
            self.sweep_relay_conns();
        }
        self.stage_tree_changes();
        self.submit_batch();
        // What a session's connection received counts even if the request still waits in the
        // inbox behind this tick (ZooKeeper touches sessions on the receiving thread).
        let (conns, session_conn) = (&self.conns, &self.session_conn);
        let last_received = |session: i64| {
            let c = conns.get(session_conn.get(&session)?)?;
            Some(c.out.last_received())
        };
        // Only a standalone server or an ensemble's leader expires sessions (followers learn of
        // the closes as txns).
        let expired = if self.leads() {
            self.tracker.expire(now, last_received)
        } else {
            Vec::new()
        };
        for session in expired {
            info!(session = format_args!("{session:#x}"), "session expired");
            self.metrics.inc(Counter::StaleSessionsExpired);
            let _ = self.submit_close_session(session, None);
        }
        self.publish_tables();
    }

    pub(super) fn on_container_check(&mut self) {
        if !self.leads() {
            return; // the leader reaps, and its deletions reach the others as txns
        }
        let candidates = self
            .tree
            .container_candidates(self.now.wall_ms, self.cfg.container_max_never_used_ms);
        let mut auth = AuthInfo::default();
        auth.add(wazoo_proto::Id::new("super", ""));
        for path in candidates {
            debug!(%path, "deleting empty container or expired TTL node");
            if self
                .prep_internal(0, &auth, &Request::DeleteContainer { path }, None)
                .is_none()
            {
                return;
            }
        }
    }
}
