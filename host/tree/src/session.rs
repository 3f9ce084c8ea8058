//! Session expiry (`SessionTrackerImpl` + `ExpiryQueue`): sessions expire in tick-aligned buckets,
//! between `timeout` and `timeout + tick` after their last activity. Pure: time is an argument.

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, Copy)]
struct Tracked {
    timeout: i32,
    expire_at: i64,
    closing: bool,
}

/// Tracks liveness of the sessions this server is responsible for expiring.
#[derive(Debug)]
pub struct SessionTracker {
    tick: i64,
    sessions: HashMap<i64, Tracked>,
    buckets: BTreeMap<i64, HashSet<i64>>,
}

impl SessionTracker {
    pub fn new(tick_ms: i64) -> Self {
        SessionTracker {
            tick: tick_ms.max(1),
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    /// `ExpiryQueue.roundToNextInterval`.
    fn round_up(&self, t: i64) -> i64 {
        (t / self.tick + 1) * self.tick
    }

    /// Moves the session's expiry to the bucket after `now + timeout`, never earlier than it is:
    /// activity is reported with the time it was *received*, which can be older than activity
    /// already counted (a request that waited in the core's queue behind a newer receipt).
    fn schedule(&mut self, id: i64, now: i64) {
        let Some(s) = self.sessions.get(&id).copied() else {
            return;
        };
        let at = self.round_up(now + s.timeout as i64);
        if at <= s.expire_at {
            return;
        }
        if let Some(b) = self.buckets.get_mut(&s.expire_at) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&s.expire_at);
            }
        }
        self.buckets.entry(at).or_default().insert(id);
        self.sessions.get_mut(&id).expect("present").expire_at = at;
    }

    /// Starts tracking a session (new, or loaded at restart: then `now` is the restart time).
    pub fn add(&mut self, id: i64, timeout: i32, now: i64) {
        self.unschedule(id);
        self.sessions.insert(
            id,
            Tracked {
                timeout,
                expire_at: 0,
                closing: false,
            },
        );
        self.schedule(id, now);
    }

    /// A resumed session takes the timeout negotiated on its new connection, the one the client is
    /// told (ZooKeeper's `revalidateSession` touches with the connection's timeout, and every later
    /// touch does too). False if the session is unknown or closing.
    pub fn resume(&mut self, id: i64, timeout: i32, now: i64) -> bool {
        if !self.is_valid(id) {
            return false;
        }
        self.unschedule(id);
        let s = self.sessions.get_mut(&id).expect("valid");
        s.timeout = timeout;
        s.expire_at = 0;
        self.schedule(id, now);
        true
    }

    fn unschedule(&mut self, id: i64) {
        if let Some(s) = self.sessions.get(&id) {
            if let Some(b) = self.buckets.get_mut(&s.expire_at) {
                b.remove(&id);
                if b.is_empty() {
                    self.buckets.remove(&s.expire_at);
                }
            }
        }
    }

    /// Any request counts as activity, as of `now`: the time the connection received it
    /// (ZooKeeper's `touchSession` runs on the receiving thread, before the request queues).
    /// False if the session is unknown or closing.
    pub fn touch(&mut self, id: i64, now: i64) -> bool {
        match self.sessions.get(&id) {
            Some(s) if !s.closing => {
                self.schedule(id, now);
                true
            }
            _ => false,
        }
    }

    /// Marks a session as closing: further requests are refused (SESSIONEXPIRED) and it is not
    /// reported as expired again.
    pub fn set_closing(&mut self, id: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.closing = true;
        }
    }

    pub fn remove(&mut self, id: i64) {
        self.unschedule(id);
        self.sessions.remove(&id);
    }

    pub fn contains(&self, id: i64) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn is_valid(&self, id: i64) -> bool {
        self.sessions.get(&id).is_some_and(|s| !s.closing)
    }

    pub fn timeout(&self, id: i64) -> Option<i32> {
        self.sessions.get(&id).map(|s| s.timeout)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// When the session expires unless it sees activity first (the end of its bucket), on the
    /// clock the tracker is given; `None` if it is not tracked or no longer scheduled (closing).
    pub fn expires_at(&self, id: i64) -> Option<i64> {
        self.sessions
            .get(&id)
            .filter(|s| !s.closing && s.expire_at > 0)
            .map(|s| s.expire_at)
    }

    /// When the next bucket expires, if any.
    pub fn next_expiry(&self) -> Option<i64> {
        self.buckets.keys().next().copied()
    }

    /// Sessions whose bucket time has passed at `now`; they are marked closing and must be closed
    /// with a closeSession txn by the caller.
    ///
    /// `last_received(id)` is when the session's connection last received anything, if it has
    /// one: a receipt the tracker has not been told about yet (the request still waits in the
    /// core's queue, say after a stall) counts before the session is expired, so that a session
    /// whose ping arrived before this expiry ran is never expired by it.
    pub fn expire(&mut self, now: i64, last_received: impl Fn(i64) -> Option<i64>) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some((&at, _)) = self.buckets.first_key_value() {
            if at > now {
                break;
            }
            let ids = self.buckets.remove(&at).expect("exists");
            for id in ids {
                let Some(s) = self.sessions.get_mut(&id) else {
                    continue;
                };
                if s.closing {
                    continue;
                }
                // Taken out of its bucket above: schedule from scratch, then look again.
                s.expire_at = 0;
                if let Some(t) = last_received(id) {
                    self.schedule(id, t);
                    if self.sessions[&id].expire_at > now {
                        continue;
                    }
                    self.unschedule(id);
                }
                let s = self.sessions.get_mut(&id).expect("present");
                s.closing = true;
                out.push(id);
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_happens_between_timeout_and_timeout_plus_tick() {
        let mut t = SessionTracker::new(2000);
        t.add(1, 4000, 1000);
        assert_eq!(t.next_expiry(), Some(6000));
        assert!(t.expire(5999, none).is_empty());
        assert_eq!(t.expire(6000, none), vec![1]);
        assert!(!t.is_valid(1));
        assert!(t.expire(100_000, none).is_empty());
    }

    #[test]
    fn expires_at_is_the_end_of_the_sessions_bucket() {
        let mut t = SessionTracker::new(2000);
        t.add(1, 4000, 1000);
        assert_eq!(t.expires_at(1), Some(6000));
        assert!(t.touch(1, 3000));
        assert_eq!(t.expires_at(1), Some(8000));
        assert_eq!(t.expires_at(2), None);
        t.set_closing(1);
        assert_eq!(t.expires_at(1), None);
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut t = SessionTracker::new(1000);
        t.add(1, 3000, 0);
        assert!(t.touch(1, 2500));
        assert!(t.expire(4000, none).is_empty());
        assert_eq!(t.expire(6000, none), vec![1]);
        assert!(!t.touch(1, 6000));
    }

    fn none(_: i64) -> Option<i64> {
        None
    }

    /// A request that waited in the core's queue is counted as of its receipt: reported after a
    /// newer receipt, it does not pull the expiry back.
    #[test]
    fn an_older_receipt_never_moves_expiry_earlier() {
        let mut t = SessionTracker::new(1000);
        t.add(1, 3000, 0);
        assert!(t.touch(1, 5000));
        assert!(t.touch(1, 2000));
        assert_eq!(t.next_expiry(), Some(9000));
        assert!(t.expire(8999, none).is_empty());
    }

    /// The stall case: the tracker last heard of the session at 0, but its connection received
    /// a ping at 2500 that still waits in the core's queue when the expiry for 4000 runs. The
    /// session lives on (until 2500 + timeout), and expires only once that passes with nothing new.
    #[test]
    fn a_session_whose_ping_was_received_before_the_expiry_is_not_expired() {
        let mut t = SessionTracker::new(1000);
        t.add(1, 3000, 0);
        t.add(2, 3000, 0);
        let received = |id: i64| (id == 1).then_some(2500);
        assert_eq!(t.expire(4000, received), vec![2]);
        assert!(t.is_valid(1));
        assert_eq!(t.next_expiry(), Some(6000));
        assert!(t.expire(5999, received).is_empty());
        assert_eq!(t.expire(6000, received), vec![1]);
    }

    /// A resumed session is tracked with the timeout its new connection negotiated.
    #[test]
    fn resume_takes_the_newly_negotiated_timeout() {
        let mut t = SessionTracker::new(1000);
        t.add(1, 10_000, 0);
        assert!(t.resume(1, 2000, 1000));
        assert_eq!(t.timeout(1), Some(2000));
        assert_eq!(t.expire(4000, none), vec![1]);
        assert!(!t.resume(1, 2000, 4000));
    }

    /// A session announced at connect time can be marked closing before its createSession txn
    /// is applied (pipelined closeSession); a later re-add must not be needed, and touch refuses.
    #[test]
    fn a_closing_session_refuses_touches() {
        let mut t = SessionTracker::new(1000);
        t.add(7, 3000, 0);
        t.set_closing(7);
        assert!(!t.touch(7, 10));
        assert!(!t.is_valid(7));
        assert!(t.contains(7));
        assert!(t.expire(100_000, none).is_empty());
    }
}
