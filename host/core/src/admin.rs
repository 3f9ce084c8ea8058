//! The core's side of the admin commands: the gauges it publishes (once per burst, once per
//! tick) and the listings it answers in bounded pieces (`AdminQuery`).

use super::*;

/// Where the answer to an [`AdminQuery`] goes (the runtime's is a channel back to the admin
/// command's task).
pub struct Reply<T>(Box<dyn FnOnce(T) + Send>);

impl<T> Reply<T> {
    pub fn new(f: impl FnOnce(T) + Send + 'static) -> Reply<T> {
        Reply(Box::new(f))
    }

    pub fn send(self, value: T) {
        (self.0)(value)
    }
}

/// A piece of the session listing ([`AdminQuery::Sessions`]).
#[derive(Debug, Default)]
pub struct SessionChunk {
    /// The sessions of the piece, in the order asked; the last one may be partial (see `resume`).
    pub sessions: Vec<SessionDump>,
    /// Where the next piece starts: (index among the ids asked, ephemerals of that session
    /// already sent). `None`: every id asked was answered.
    pub resume: Option<(usize, usize)>,
}

/// Which watch table [`AdminQuery::Watches`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchQuery {
    /// `wchs`: the counts.
    Summary,
    /// `wchc`: watched paths by session.
    BySession,
    /// `wchp`: watching sessions by path.
    ByPath,
}

/// The answer to [`AdminQuery::WatchCounts`] (`wchs`), kept by the registry as it changes.
#[derive(Debug, Default)]
pub struct WatchCounts {
    pub watch_count: u64,
    pub watched_paths: u64,
    pub watching_connections: u64,
}

/// A piece of the watch listing ([`AdminQuery::WatchesOf`]), from which the admin task builds
/// `wchc` and `wchp` off the core.
#[derive(Debug, Default)]
pub struct WatchChunk {
    /// (connection, its session, watched paths), in the order asked; a path watched in two
    /// modes comes twice, and a connection's paths may go on in the next piece.
    pub watches: Vec<(ConnId, i64, Vec<String>)>,
    /// Where the next piece starts: the index among the ids asked, and where within that
    /// connection's watches. `None`: every id asked was answered.
    pub resume: Option<(usize, Option<WatchCursor>)>,
}

impl Core {
    /// Once per burst: six relaxed stores of values known without a walk, and the digest.
    pub(super) fn publish_burst(&self) {
        self.gauges.publish_burst(
            self.tree.last_applied(),
            self.tree.node_count() as u64,
            self.tree.approximate_data_size(),
            self.inflight.len() as u64,
            self.client_conns() as u64,
            self.tree.sessions().len() as u64,
        );
        self.gauges
            .publish_digest(self.tree.last_applied(), self.tree.digest());
    }

    /// Client connections: a leader's relay connections (`relay.rs`), which stand for
    /// learners' clients, are not counted (each is counted by its member).
    fn client_conns(&self) -> usize {
        let relays = self.replica.as_ref().map_or(0, |r| r.relays.relay_conns());
        self.conns.len().saturating_sub(relays)
    }

    /// Once per tick: the counts that walk the sessions with ephemerals and the watching
    /// connections (a sum of their sizes, no copies).
    pub(super) fn publish_tables(&self) {
        self.gauges.publish_tables(
            self.tree.ephemeral_count() as u64,
            self.watches.watch_count() as u64,
            self.watches.watcher_count() as u64,
        );
        self.publish_leader();
    }

    pub(super) fn admin(&mut self, q: AdminQuery) {
        match q {
            AdminQuery::Ids(reply) => {
                let sessions = self.tree.sessions().keys().copied().collect();
                // A leader's relay connections stand for learners' clients, listed there.
                let relay: std::collections::HashSet<ConnId> = self
                    .replica
                    .as_ref()
                    .map(|r| r.relays.relay_conn_ids().collect())
                    .unwrap_or_default();
                let conns = self
                    .conns
                    .keys()
                    .copied()
                    .filter(|id| !relay.contains(id))
                    .collect();
                reply.send((sessions, conns));
            }
            AdminQuery::Sessions { ids, skip, reply } => {
                reply.send(self.session_chunk(&ids, skip));
            }
            AdminQuery::Conns { ids, reply } => {
                let clock = Clock::at(&self.now);
                let conns = ids
                    .iter()
                    .take(ADMIN_CHUNK)
                    .filter_map(|id| Some(self.conn_stats(self.conns.get(id)?, &clock)))
                    .collect();
                reply.send(conns);
            }
            AdminQuery::WatchCounts(reply) => reply.send(WatchCounts {
                watch_count: self.watches.watch_count() as u64,
                watched_paths: self.watches.path_count() as u64,
                watching_connections: self.watches.watcher_count() as u64,
            }),
            AdminQuery::WatchesOf { ids, from, reply } => {
                reply.send(self.watch_chunk(&ids, from));
            }
            AdminQuery::ResetConnStats => {
                for c in self.conns.values_mut() {
                    c.stats = ConnStats::default();
                }
            }
        }
    }

    /// Up to [`ADMIN_CHUNK`] ephemeral paths of the sessions `ids` (the first from its `skip`th).
    fn session_chunk(&self, ids: &[i64], mut skip: usize) -> SessionChunk {
        let clock = Clock::at(&self.now);
        let mut budget = ADMIN_CHUNK;
        let mut sessions = Vec::new();
        for (i, &id) in ids.iter().enumerate().take(ADMIN_CHUNK) {
            if budget == 0 {
                return SessionChunk {
                    sessions,
                    resume: Some((i, 0)),
                };
            }
            let Some(entry) = self.tree.session(id) else {
                skip = 0;
                continue;
            };
            let mut paths = self.tree.ephemerals_of(id).skip(skip);
            let ephemerals: Vec<String> = paths.by_ref().take(budget).cloned().collect();
            budget -= ephemerals.len();
            // The budget ran out within this session: the next piece continues it.
            let more = budget == 0 && paths.next().is_some();
            let sent = skip + ephemerals.len();
            skip = 0;
            sessions.push(SessionDump {
                id,
                timeout_ms: entry.timeout,
                expires_at_ms: self.tracker.expires_at(id).map(|t| clock.wall(t)),
                ephemerals,
            });
            if more {
                return SessionChunk {
                    sessions,
                    resume: Some((i, sent)),
                };
            }
        }
        let done = ids.len().min(ADMIN_CHUNK);
        SessionChunk {
            sessions,
            resume: (done < ids.len()).then_some((done, 0)),
        }
    }

    fn conn_stats(&self, c: &Conn, clock: &Clock) -> ConnectionStats {
        let st = &c.stats;
        // Requests holding a place in the connection's budget: parked, queued reads, unapplied
        // writes (the handshake holds none). With all of them held, its reader waits for one
        // to finish: it does not read (ZooKeeper's interest ops 0).
        let held = c.parked.len() + c.queue.len()
            - usize::from(matches!(c.queue.front(), Some(Queued::Handshake { .. })));
        let reading = held < self.cfg.max_outstanding_per_connection as usize;
        ConnectionStats {
            remote: c.remote.to_string(),
            interest_ops: u32::from(reading),
            queued: held as u64,
            received: st.received,
            sent: st.sent,
            session_id: c.session,
            last_op: st.last_op.to_string(),
            established_ms: c.established_ms,
            timeout_ms: c.timeout,
            last_cxid: st.last_cxid as i64,
            last_zxid: st.last_zxid,
            last_response_ms: st.last_response_ms,
            last_latency_ms: st.last_latency_ms,
            min_latency_ms: if st.count > 0 { st.min_latency_ms } else { 0 },
            avg_latency_ms: if st.count > 0 {
                st.total_latency_ms as f64 / st.count as f64
            } else {
                0.0
            },
            max_latency_ms: st.max_latency_ms,
            // The connection is closed when its session expires.
            expires_at_ms: self.tracker.expires_at(c.session).map(|t| clock.wall(t)),
        }
    }

    /// Up to [`ADMIN_CHUNK`] watched paths of the connections `ids` (the first one's from
    /// `from`).
    fn watch_chunk(&self, ids: &[ConnId], mut from: Option<WatchCursor>) -> WatchChunk {
        let mut budget = ADMIN_CHUNK;
        let mut out = WatchChunk::default();
        for (i, &id) in ids.iter().enumerate().take(ADMIN_CHUNK) {
            if budget == 0 {
                out.resume = Some((i, None));
                return out;
            }
            let (paths, next) = self.watches.watched_by(id, from.take().as_ref(), budget);
            budget -= paths.len();
            if !paths.is_empty() {
                let session = self.conns.get(&id).map_or(0, |c| c.session);
                out.watches.push((id, session, paths));
            }
            if next.is_some() {
                out.resume = Some((i, next));
                return out;
            }
        }
        let done = ids.len().min(ADMIN_CHUNK);
        out.resume = (done < ids.len()).then_some((done, None));
        out
    }
}

/// The server's monotonic clock ([`mono_ms`]) and the wall clock, read together: converts one
/// to the other.
struct Clock {
    mono: i64,
    wall: i64,
}

impl Clock {
    fn at(now: &Now) -> Clock {
        Clock {
            mono: now.mono_ms,
            wall: now.wall_ms,
        }
    }

    /// The wall-clock time of monotonic time `mono`.
    fn wall(&self, mono: i64) -> i64 {
        self.wall + (mono - self.mono)
    }
}
