//! The live progress line on stderr (only when stderr is a terminal): phase, elapsed time, the
//! completion rate over the last half second, and the total so far.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// Phases shown on the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Connect = 0,
    Setup = 1,
    Warmup = 2,
    Measure = 3,
    Drain = 4,
    Cleanup = 5,
    Populate = 6,
    Failover = 7,
}

const NAMES: [&str; 8] = [
    "connect", "setup", "warm-up", "measure", "drain", "cleanup", "populate", "failover",
];

/// Counters the workers bump and the progress line reads.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Completed requests (or acquisitions, rounds, attempts).
    pub done: Arc<AtomicU64>,
    phase: Arc<AtomicU8>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            done: Arc::new(AtomicU64::new(0)),
            phase: Arc::new(AtomicU8::new(0)),
        }
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    fn phase_name(&self) -> &'static str {
        NAMES
            .get(self.phase.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or("?")
    }

    /// Starts the line printer; abort the returned handle and call [`clear_line`] to stop it.
    pub fn spawn_printer(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut last = (Instant::now(), me.done.load(Ordering::Relaxed));
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = Instant::now();
                let done = me.done.load(Ordering::Relaxed);
                let dt = (now - last.0).as_secs_f64().max(1e-3);
                let rate = (done - last.1) as f64 / dt;
                last = (now, done);
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[K  {:<8} {:>6.1}s  {:>9}/s  {:>11} done",
                    me.phase_name(),
                    (now - start).as_secs_f64(),
                    crate::stats::group(rate.round() as u64),
                    crate::stats::group(done)
                );
                let _ = err.flush();
            }
        })
    }
}

/// Erases the progress line.
pub fn clear_line() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[K");
    let _ = err.flush();
}
