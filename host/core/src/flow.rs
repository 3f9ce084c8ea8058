//! Flow control on the core: a connection's requests wait unprocessed (`Parked`, holding their
//! budget places, so that the connection soon stops reading its socket) while its queued output
//! is over `wazoo.maxConnectionOutputBytes` or too many of its reads wait behind its writes, and
//! large writes take turns so that each group commit carries at most about a megabyte of them, at
//! the pace `LargeWritePacer` sets while others are served.

use super::*;

/// Reads of one connection queued behind its unapplied writes, beyond which its further requests
/// wait unprocessed (see `Core::can_take`). Each such read may answer up to a frame's worth of
/// data when the write ahead of it applies, all at once, so this bounds that burst of output; it
/// costs nothing else, since those reads could not be answered earlier anyway.
const MAX_QUEUED_READS: usize = 16;

/// Bytes of large writes (requests of at least `largeRequestThreshold`) prepped and not yet applied,
/// beyond which the next large write waits for one to apply: at most about this much bulk data rides
/// each group commit, so the fsync that small writes share with it stays short (one 1 MiB setData
/// after another would otherwise fill every commit with megabytes). Writers of large requests take
/// turns (`Core::waiting_large`). At least one large write is always allowed.
pub(super) const LARGE_WRITES_IN_FLIGHT: usize = 1 << 20;

impl Core {
    pub(super) fn on_request(&mut self, id: ConnId, r: ClientRequest) {
        let at = self.now.at;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.stats.received += 1;
        self.metrics.packet_received(r.size as u64);
        if r.op == op::PING && conn.run.is_some() {
            // Behind a running recipe call, which may take long, a heartbeat is answered at
            // once: clients match ping replies by their xid (-2), outside the others' order.
            let session = conn.session;
            self.tracker.touch(session, r.received_ms);
            self.answer(id, r.xid, r.op, r.req, at);
            return;
        }
        let p = Parked { r, at };
        let large = is_large_write(&p.r, self.cfg.large_request_threshold);
        if !large && p.r.op != op::PING {
            // Pings cost nothing and a bulk writer's own session pings too.
            self.pacer.served_other(at);
        }
        // The usual case, straight through: nothing waits before it, the connection can take it,
        // and it is not a large write (which may have to wait its turn: `pump`).
        if conn.parked.is_empty()
            && !large
            && Self::can_take(conn, self.cfg.max_connection_output_bytes)
        {
            self.process(id, p);
            return;
        }
        let close_behind_run = conn.run.is_some() && matches!(p.r.req, Ok(Request::CloseSession));
        conn.parked.push_back(p);
        if close_behind_run {
            // A parked call would hold it forever (a running one parks or ends soon).
            self.cancel_parked_call(id);
        }
        self.pump(id);
    }

    /// Whether a connection can take its next request now: its queued output is under
    /// `wazoo.maxConnectionOutputBytes` (else its writer is asked to report when it has drained)
    /// and fewer than [`MAX_QUEUED_READS`] reads wait behind its writes (else the apply of the
    /// write ahead pumps it), and no recipe call of its is running or parked (its end pumps
    /// it). Requests it cannot take wait unprocessed in `parked`, where they hold their budget
    /// places, so that the connection soon stops reading its socket.
    fn can_take(c: &Conn, max_output: usize) -> bool {
        if c.queued_reads >= MAX_QUEUED_READS || c.run.is_some() {
            return false;
        }
        if c.buf.buf.len() + c.out.queued() < max_output {
            return true;
        }
        c.out.want_drained();
        // The writer may have drained between the check and the request: look again.
        if c.buf.buf.len() + c.out.queued() < max_output {
            c.out.drained_not_wanted();
            return true;
        }
        false
    }

    /// Processes a connection's parked requests, in order, while it can take them.
    pub(super) fn pump(&mut self, id: ConnId) {
        let max_output = self.cfg.max_connection_output_bytes;
        let threshold = self.cfg.large_request_threshold;
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            if c.closing || c.parked.is_empty() || !Self::can_take(c, max_output) {
                return;
            }
            let front = c.parked.front().expect("not empty");
            if is_large_write(&front.r, threshold) {
                let size = front.r.size;
                let fits = self.large_in_flight == 0
                    || self.large_in_flight + size <= LARGE_WRITES_IN_FLIGHT;
                let first = self.waiting_large.front().is_none_or(|w| *w == id);
                // Its turn, room in flight, and the pacer's leave (asked last: it takes credit).
                let may_go = fits
                    && first
                    && match self.pacer.admit(size, self.now.at) {
                        Ok(()) => true,
                        Err(at) => {
                            // Every request notifies the timer task, the same instant included.
                            self.pace_wake.set(Some(at));
                            false
                        }
                    };
                if !may_go {
                    if !c.waiting_large {
                        c.waiting_large = true;
                        self.waiting_large.push_back(id);
                    }
                    return;
                }
                if c.waiting_large {
                    c.waiting_large = false;
                    self.waiting_large.pop_front();
                }
            }
            let p = c.parked.pop_front().expect("not empty");
            self.process(id, p);
        }
    }

    /// Gives the connections waiting to send a large write their turns, in the order they started
    /// waiting, after one applied. A connection whose turn has come but that cannot take requests
    /// for another reason (it does not read its replies) loses its place and queues again when it
    /// is pumped next, so it never holds the others up.
    pub(super) fn pump_waiting_large(&mut self) {
        let max_output = self.cfg.max_connection_output_bytes;
        let threshold = self.cfg.large_request_threshold;
        while let Some(&id) = self.waiting_large.front() {
            let ready = self.conns.get(&id).is_some_and(|c| {
                !c.closing
                    && c.parked
                        .front()
                        .is_some_and(|p| is_large_write(&p.r, threshold))
                    && Self::can_take(c, max_output)
            });
            if !ready {
                self.waiting_large.pop_front();
                if let Some(c) = self.conns.get_mut(&id) {
                    c.waiting_large = false;
                }
                continue;
            }
            self.pump(id);
            if self.waiting_large.front() == Some(&id) {
                // Its turn, but the large writes in flight leave no room yet.
                return;
            }
        }
    }
}

/// Whether a request is a write of at least `threshold` bytes (see [`LARGE_WRITES_IN_FLIGHT`]).
pub(super) fn is_large_write(r: &ClientRequest, threshold: usize) -> bool {
    r.size >= threshold && matches!(&r.req, Ok(req) if req.is_write())
}
