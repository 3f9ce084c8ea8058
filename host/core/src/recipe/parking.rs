//! Parking (docs/recipes.md, "Parking"): a run that returns commit-and-park commits its writes
//! and waits, holding no worker and no instance, until a path it named changes or its deadline
//! passes; then the call runs again. Owns the parked calls' indexes (by path, by deadline, in
//! parking order), waking, time-outs, a closed connection's or a closing session's parked call
//! (its cancelled run), and re-arming a recorded call at start.

use wazoo_proto::EventType;

use super::*;

impl Run {
    /// A call re-armed from its record, with no connection until a retry takes it over.
    pub(crate) fn detached(session: i64, start: RunStart, at: Instant) -> Run {
        Run {
            conn: ConnId::MAX,
            xid: 0,
            session,
            auth: AuthInfo::default(),
            stage: Stage::new(session, 0, start.now_ms),
            start,
            handle: None,
            at,
            admit: Admission::none(),
        }
    }
}

impl Runs {
    /// Parks `run` as recorded and has it run once at the next tick (re-armed at start).
    pub(crate) fn rearm(
        &mut self,
        run: Run,
        on: Vec<WaitFor>,
        deadline_ms: Option<i64>,
        state: Vec<u8>,
    ) -> RunId {
        let run_id = self.next;
        self.next += 1;
        let seq = self.insert_parked(run_id, run, on, deadline_ms, state, Zxid::MAX);
        self.woken.insert(seq, (run_id, RunReason::Woken));
        run_id
    }

    /// Parks `run` under `run_id`: indexed by the paths it waits on and its deadline, in
    /// parking order (returned). `logged`: the last zxid logged as it parks.
    pub(super) fn insert_parked(
        &mut self,
        run_id: RunId,
        run: Run,
        on: Vec<WaitFor>,
        deadline_ms: Option<i64>,
        state: Vec<u8>,
        logged: Zxid,
    ) -> u64 {
        for w in &on {
            let ids = self.by_path.entry(w.path().to_owned()).or_default();
            if !ids.contains(&run_id) {
                ids.push(run_id);
            }
        }
        if let Some(d) = deadline_ms {
            self.deadlines.insert((d, run_id), ());
        }
        self.by_session.entry(run.session).or_default().push(run_id);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.parked.insert(
            run_id,
            Parked {
                run,
                on,
                deadline_ms,
                state,
                seq,
                logged_at_park: logged,
            },
        );
        seq
    }

    /// Whether calls wait to be run after a wake.
    pub(crate) fn any_woken(&self) -> bool {
        !self.woken.is_empty()
    }
}

impl Core {
    /// Commits what a parking run staged (a txn with no reply: the call's reply waits for a later
    /// run) and parks the call.
    pub(super) fn park(
        &mut self,
        run_id: RunId,
        mut run: Run,
        on: Vec<WaitFor>,
        deadline_ms: Option<i64>,
        state: Vec<u8>,
    ) {
        let stage = std::mem::replace(&mut run.stage, Stage::new(run.session, 0, 0));
        let rid = run.start.request_id.as_str();
        let record = crate::parked_record::put_ops(self, run.session, rid, || {
            crate::parked_record::Record {
                recipe: run.start.recipe.clone(),
                version: run.start.version,
                op: run.start.op.clone(),
                args: run.start.args.clone(),
                state: state.clone(),
                deadline_ms,
                on: on.clone(),
                seed: run.start.seed,
            }
        });
        if (!stage.is_empty() || !record.is_empty())
            && self
                .log_stage(false, run.session, run.xid, &run.auth, stage, record, None)
                .is_none()
        {
            return; // a refused zxid: the step down closes the connection
        }
        let conn = run.conn;
        let logged = self.next_zxid - 1;
        self.runs
            .insert_parked(run_id, run, on, deadline_ms, state, logged);
        if deadline_ms.is_some() {
            self.arm_recipe_deadline();
        }
        let closing = self.conns.get(&conn).is_some_and(|c| {
            c.parked
                .iter()
                .any(|p| matches!(p.r.req, Ok(Request::CloseSession)))
        });
        if closing {
            self.cancel_parked_call(conn);
        }
    }

    /// The connection's closeSession waits behind its parked call: the call is answered
    /// SESSIONEXPIRED (the client gave up waiting) and the close goes on. The call stays parked,
    /// answered and detached, for the cancelled run the close gives it
    /// ([`Core::cancel_session_parked`]).
    pub(crate) fn cancel_parked_call(&mut self, conn: ConnId) {
        let Some(run_id) = self.conns.get(&conn).and_then(|c| c.run) else {
            return;
        };
        if run_id == crate::relay::RELAYED_RUN {
            // A learner: the call waits at the leader, which gives it its cancelled run when
            // the close applies there.
            self.answer_relayed_here(conn, Err(ErrorCode::SessionExpired));
            return;
        }
        if let Some(p) = self.runs.parked.get_mut(&run_id) {
            let (xid, at, session) = (p.run.xid, p.run.at, p.run.session);
            p.run.conn = ConnId::MAX;
            let rid = std::mem::take(&mut p.run.start.request_id);
            self.runs.by_request.remove(&(session, rid));
            self.answer_call(conn, run_id, xid, at, Err(ErrorCode::SessionExpired), 0);
        } else if let Some(run) = self.runs.awaiting_compile.remove(&run_id) {
            // A call waiting for its recipe's compile (which may take a minute) is no different.
            self.finish(run_id, run, Err(ErrorCode::SessionExpired));
        }
    }

    /// The session's close applied: each of its parked calls runs once more, with reason
    /// Cancelled, in parking order, to undo what it left behind (its writes commit as the closed
    /// session's, no ephemeral node among them; nobody is answered; it cannot park again).
    pub(crate) fn cancel_session_parked(&mut self, session: i64) {
        let Some(of_session) = self.runs.by_session.get(&session) else {
            return;
        };
        let mut ids: Vec<(u64, RunId)> = of_session
            .iter()
            .filter_map(|id| self.runs.parked.get(id).map(|p| (p.seq, *id)))
            .collect();
        ids.sort_unstable();
        for (_, id) in ids {
            let Some(Parked { mut run, state, .. }) = self.unpark(id) else {
                continue;
            };
            let rid = std::mem::take(&mut run.start.request_id);
            self.runs.by_request.remove(&(session, rid));
            run.conn = ConnId::MAX;
            run.start.attempt = 1;
            run.start.reason = RunReason::Cancelled;
            run.start.state = Some(state);
            self.metrics.inc(Counter::RecipeCallsCancelled);
            self.begin_again(id, run);
        }
    }

    /// Takes a parked call out of the indexes.
    pub(super) fn unpark(&mut self, run_id: RunId) -> Option<Parked> {
        let p = self.runs.parked.remove(&run_id)?;
        for w in &p.on {
            if let Some(ids) = self.runs.by_path.get_mut(w.path()) {
                ids.retain(|&r| r != run_id);
                if ids.is_empty() {
                    self.runs.by_path.remove(w.path());
                }
            }
        }
        if let Some(d) = p.deadline_ms {
            self.runs.deadlines.remove(&(d, run_id));
        }
        if let Some(ids) = self.runs.by_session.get_mut(&p.run.session) {
            ids.retain(|&r| r != run_id);
            if ids.is_empty() {
                self.runs.by_session.remove(&p.run.session);
            }
        }
        Some(p)
    }

    /// A txn this server just logged (it leads, or stands alone): the parked calls its deletes
    /// and child-list changes fire are woken now rather than when it applies, so their runs
    /// overlap its fsync (and its quorum round): they read through the outstanding changes,
    /// and a run that writes nothing is answered once the txn it saw applies, so nobody learns
    /// of the change before it is durable; what they write (a parked call's record among it)
    /// is logged right behind it rather than after its apply. `false` for a txn whose events
    /// only its apply knows (closeSession): its apply wakes them. (A txn that never commits,
    /// the leader having lost its quorum, takes the woken runs with it: a member that stops
    /// leading forgets its runs and closes its clients' connections.)
    pub(crate) fn wake_logged(&mut self, zxid: Zxid, txn: &Txn) -> bool {
        if self.runs.parked() == 0 {
            // Nobody waits: the txn's events are not built (this runs for every write); the
            // answer is the one `events_of` would give.
            return !matches!(txn, Txn::CloseSession { .. });
        }
        let Some(events) = wazoo_tree::events_of(txn) else {
            return false;
        };
        for (kind, path) in events.iter().filter(|(k, _)| wakes_at_log(*k)) {
            self.wake_parked(*kind, path, zxid, false);
        }
        true
    }

    /// A watch event of txn `zxid`: the parked calls it fires are woken (they run after the
    /// batch of applies, or at the next flush for one that was logged, in parking order).
    /// `applied`, with the txn's events already seen as it was logged: only the calls that
    /// parked after that (while it was outstanding) are woken by its apply.
    pub(crate) fn wake_parked(&mut self, kind: EventType, path: &str, zxid: Zxid, applied: bool) {
        let Some(ids) = self.runs.by_path.get(path) else {
            return;
        };
        let fired: Vec<RunId> = ids
            .iter()
            .copied()
            .filter(|id| {
                self.runs.parked.get(id).is_some_and(|p| {
                    (!applied || !wakes_at_log(kind) || p.logged_at_park >= zxid)
                        && p.on.iter().any(|w| w.path() == path && w.fired_by(kind))
                })
            })
            .collect();
        for id in fired {
            if let Some(p) = self.runs.parked.get(&id) {
                self.runs.woken.insert(p.seq, (id, RunReason::Woken));
            }
        }
    }

    /// Parked calls whose deadline has passed are woken as timed out.
    pub(crate) fn time_out_parked(&mut self) {
        let now = self.now.wall_ms;
        let due: Vec<RunId> = self
            .runs
            .deadlines
            .range(..=(now, RunId::MAX))
            .map(|(&(_, id), _)| id)
            .collect();
        for id in due {
            if let Some(p) = self.runs.parked.get(&id) {
                self.runs.woken.insert(p.seq, (id, RunReason::TimedOut));
            }
        }
        self.run_woken();
        self.arm_recipe_deadline();
    }

    /// Where the runtime wakes the core for parked calls' deadlines: a timer at their
    /// earliest ([`CoreMsg::RecipeDeadline`]), so a wait ends at its deadline rather than at
    /// the next tick (every tickTime / 2). Called whenever a deadline may have become the
    /// earliest: a park, a re-arm, after deadlines fired. A deadline whose call ended sooner
    /// leaves its timer armed: that wake-up finds nothing due and arms the next one.
    pub(crate) fn arm_recipe_deadline(&mut self) {
        let next = self.runs.deadlines.keys().next().map(|&(d, _)| d);
        if next == self.recipe_wake_armed {
            return;
        }
        self.recipe_wake_armed = next;
        // Deadlines are leader wall-clock ms; the alarm takes an instant on the monotonic clock
        // (one ms later: the deadline has passed once the wall clock reads it).
        let at = next.map(|d| {
            let ms = d.saturating_sub(self.now.wall_ms).max(0) as u64 + 1;
            self.now.at + std::time::Duration::from_millis(ms)
        });
        self.recipe_wake.set(at);
    }

    /// Gives the core the alarm for parked calls' deadlines (without one, deadlines are seen
    /// at ticks only).
    pub fn set_recipe_alarm(&mut self, alarm: Box<dyn Alarm>) {
        self.recipe_wake = alarm;
        self.recipe_wake_armed = None;
        self.arm_recipe_deadline();
    }

    /// Runs the woken calls again, in parking order.
    pub(crate) fn run_woken(&mut self) {
        while let Some((_, (id, reason))) = self.runs.woken.pop_first() {
            let Some(p) = self.unpark(id) else {
                continue;
            };
            let Parked { mut run, state, .. } = p;
            let detached = !self.conns.contains_key(&run.conn);
            if !self.tracker.is_valid(run.session) || (detached && run.start.request_id.is_empty())
            {
                // Its session is gone, or its connection and no retry can find it: nobody
                // waits for the answer.
                let key = (run.session, std::mem::take(&mut run.start.request_id));
                self.runs.by_request.remove(&key);
                continue;
            }
            run.start.attempt = 1;
            run.start.reason = reason;
            run.start.state = Some(state);
            self.begin_again(id, run);
        }
    }

    /// Drops the parked calls of a connection that closed, but those named by a request id:
    /// they stay parked while their session lives, for the client's retry to take over.
    pub(crate) fn drop_parked_of(&mut self, conn: ConnId) {
        let ids: Vec<RunId> = self
            .runs
            .parked
            .iter()
            .filter(|(_, p)| p.run.conn == conn)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let (session, named) = match self.runs.parked.get(&id) {
                Some(p) => (p.run.session, !p.run.start.request_id.is_empty()),
                None => continue,
            };
            // A session keeps at most this many calls parked for a retry: a client that
            // reconnected and parked again and again would otherwise pile them up.
            let detached = self
                .runs
                .parked
                .values()
                .filter(|p| p.run.session == session && !self.conns.contains_key(&p.run.conn))
                .count();
            if named && detached < MAX_DETACHED_PER_SESSION {
                continue;
            }
            if let Some(mut p) = self.unpark(id) {
                let rid = std::mem::take(&mut p.run.start.request_id);
                let gone = crate::parked_record::drop_ops(self, session, &rid);
                if !gone.is_empty() && self.tracker.is_valid(session) {
                    let empty = Stage::new(session, 0, 0);
                    let (xid, auth) = (p.run.xid, p.run.auth.clone());
                    self.log_stage(false, session, xid, &auth, empty, gone, None);
                }
                self.runs.by_request.remove(&(session, rid));
            }
        }
    }
}

/// Whether an event wakes parked calls when its txn is logged (`wake_logged`) rather than when
/// it applies: a deletion or a child-list change, which a run reads through the outstanding
/// changes. A created node's or a data change's data is not in the tree until the txn applies,
/// and the run such an event wakes usually reads it (a stat included): woken early, it would
/// stop at that read and run again after the apply (the double barrier's enterers, woken by
/// `ready`'s creation and reading its czxid, ran twice: 16% fewer rounds).
fn wakes_at_log(kind: EventType) -> bool {
    matches!(
        kind,
        EventType::NodeDeleted | EventType::NodeChildrenChanged
    )
}
