//! Calls named by a request id (docs/recipes.md, "Request ids"): a retry after a lost
//! connection takes the live call over or gets its recorded answer, so nothing runs twice; the
//! answers kept per session, and what a session's close takes with it.

use super::*;

impl Core {
    /// Answers `result` in the connection's turn once txn `after` is applied.
    pub(super) fn answer_after(
        &mut self,
        id: ConnId,
        xid: i32,
        opcode: i32,
        result: Result<Response, ErrorCode>,
        at: Instant,
        after: Zxid,
    ) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.queue.push_back(Queued::Ready {
            xid,
            op: opcode,
            result,
            at,
            after,
        });
        if after > self.tree.last_applied() {
            self.runs.replies_after.entry(after).or_default().push(id);
        }
        self.drain_reads(id);
        self.dirty.push(id);
    }

    /// Gives the live call `run_id` to connection `id`'s retry of it (xid, arrival, budget),
    /// if the connection it came on is gone; false if that connection is open.
    pub(super) fn take_over(
        &mut self,
        run_id: RunId,
        id: ConnId,
        xid: i32,
        at: Instant,
        admit: Admission,
    ) -> bool {
        let runs = &mut self.runs;
        let run = match runs.parked.get_mut(&run_id) {
            Some(p) => Some(&mut p.run),
            None => match runs.by_id.get_mut(&run_id) {
                Some(r) => Some(r),
                None => match runs.awaiting_compile.get_mut(&run_id) {
                    Some(r) => Some(r),
                    None => runs
                        .waiting_here
                        .values_mut()
                        .flat_map(|v| v.iter_mut())
                        .find(|(i, _)| *i == run_id)
                        .map(|(_, r)| r),
                },
            },
        };
        let Some(run) = run else {
            return false;
        };
        if self.conns.contains_key(&run.conn) {
            return false;
        }
        run.conn = id;
        run.xid = xid;
        run.at = at;
        run.admit = admit;
        if let Some(c) = self.conns.get(&id) {
            // A call re-armed from its record had no auth: the session's connection has it.
            run.auth = c.auth.clone();
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.run = Some(run_id);
            c.queue.push_back(Queued::Recipe { run: run_id });
        }
        true
    }

    /// Keeps what a call named `request_id` answered, for its retries.
    pub(super) fn record_result(
        &mut self,
        session: i64,
        request_id: String,
        result: &Result<Response, ErrorCode>,
        after: Zxid,
    ) {
        if request_id.is_empty() {
            return;
        }
        let key = (session, request_id);
        self.runs.by_request.remove(&key);
        // Large outputs are not kept (a retry runs the call again), so what a session's answers
        // hold is bounded: 16 of at most 64 KiB.
        let large = matches!(result, Ok(Response::RecipeCall { output, .. })
            if output.len() > crate::answers::MAX_KEPT_OUTPUT);
        if large || !self.tracker.is_valid(session) {
            return;
        }
        let order = self.runs.result_order.entry(session).or_default();
        order.push_back(key.1.clone());
        if order.len() > MAX_RESULTS_PER_SESSION {
            if let Some(old) = order.pop_front() {
                self.runs.results.remove(&(session, old));
            }
        }
        self.runs.results.insert(key, (result.clone(), after));
    }

    /// A session closed or expired: its calls' results go, and so do its parked calls that
    /// waited for a retry.
    pub(crate) fn forget_session_calls(&mut self, session: i64) {
        for rid in self.runs.result_order.remove(&session).unwrap_or_default() {
            self.runs.results.remove(&(session, rid));
        }
        let live: Vec<(i64, String)> = self
            .runs
            .by_request
            .keys()
            .filter(|(s, _)| *s == session)
            .cloned()
            .collect();
        for key in live {
            if let Some(run_id) = self.runs.by_request.remove(&key) {
                let detached = self
                    .runs
                    .parked
                    .get(&run_id)
                    .is_some_and(|p| !self.conns.contains_key(&p.run.conn));
                if detached {
                    self.unpark(run_id);
                }
            }
        }
    }
}
