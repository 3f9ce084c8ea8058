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

    fn schedule(&mut self, id: i64, now: i64) {
        let Some(s) = self.sessions.get(&id).copied() else {
            return;
        };
        let at = self.round_up(now + s.timeout as i64);
        if at == s.expire_at {
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

    /// Any request counts as activity. False if the session is unknown or closing.
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
        if let Some(s) = self.sessions.remove(&id) {
            if let Some(b) = self.buckets.get_mut(&s.expire_at) {
                b.remove(&id);
                if b.is_empty() {
                    self.buckets.remove(&s.expire_at);
                }
            }
        }
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

    /// When the next bucket expires, if any.
    pub fn next_expiry(&self) -> Option<i64> {
        self.buckets.keys().next().copied()
    }

    /// Sessions whose bucket time has passed; they are marked closing and must be closed with a
    /// closeSession txn by the caller.
    pub fn expire(&mut self, now: i64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some((&at, _)) = self.buckets.first_key_value() {
            if at > now {
                break;
            }
            let ids = self.buckets.remove(&at).expect("exists");
            for id in ids {
                if let Some(s) = self.sessions.get_mut(&id) {
                    if !s.closing {
                        s.closing = true;
                        out.push(id);
                    }
                }
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
        assert!(t.expire(5999).is_empty());
        assert_eq!(t.expire(6000), vec![1]);
        assert!(!t.is_valid(1));
        assert!(t.expire(100_000).is_empty());
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut t = SessionTracker::new(1000);
        t.add(1, 3000, 0);
        assert!(t.touch(1, 2500));
        assert!(t.expire(4000).is_empty());
        assert_eq!(t.expire(6000), vec![1]);
        assert!(!t.touch(1, 6000));
    }
}
