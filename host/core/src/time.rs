//! What the core is driven with from outside: the time of each input ([`Now`]), the wake-ups it
//! asks for ([`Alarm`]), and the budget places a request holds while the core has it
//! ([`Admission`]). The runtime reads the clocks and owns the timers and budgets; the core only
//! sees these values, so a test or a simulator drives it with its own time.

use std::any::Any;
use std::fmt;
use std::time::Instant;

/// The time an input is handled at, as the runtime read it: the core reads no clock itself.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// For latencies and pacing.
    pub at: Instant,
    /// The server's monotonic clock in ms: sessions (connections stamp requests on this clock).
    pub mono_ms: i64,
    /// Wall-clock ms: txn times (ctime, mtime), connection statistics.
    pub wall_ms: i64,
}

impl Now {
    /// `self` moved on by `d` on all three clocks (tests and simulators).
    pub fn after(self, d: std::time::Duration) -> Now {
        let ms = d.as_millis() as i64;
        Now {
            at: self.at + d,
            mono_ms: self.mono_ms + ms,
            wall_ms: self.wall_ms + ms,
        }
    }
}

/// Where the core asks to be woken: the runtime arms a timer that sends the matching
/// [`crate::CoreMsg`] at `at` (`None`: no wake-up wanted). Every call counts, the same instant
/// again included: the timer waits for a new call after it fired.
pub trait Alarm: Send + Sync {
    fn set(&self, at: Option<Instant>);
}

/// An alarm nobody listens to (a core whose test drives the wake-ups itself).
pub struct NoAlarm;

impl Alarm for NoAlarm {
    fn set(&self, _at: Option<Instant>) {}
}

/// What a request holds from its receipt until it is done (a read answered, a write applied): its
/// places in the connection's and the server's outstanding-request budgets, as the runtime's
/// token. The core only keeps it and drops it when the request is done, which gives the places
/// back.
pub struct Admission(Option<Box<dyn Any + Send>>);

impl Admission {
    /// Holds the runtime's `token` (dropped when the request is done).
    pub fn new(token: impl Any + Send) -> Admission {
        Admission(Some(Box::new(token)))
    }

    /// A request that holds nothing (tests, simulators).
    pub fn none() -> Admission {
        Admission(None)
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Admission(held)"
        } else {
            "Admission(none)"
        })
    }
}
