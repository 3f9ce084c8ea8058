//! The core's time, read by the runtime: the process clocks ([`mono_ms`], [`wall_ms`]), the
//! [`Now`] every input is handled at and the reader that stamps them in the run loop, and the
//! timer tasks that feed the core its ticks and the wake-ups it asks for (its [`super::Alarm`]s).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::{CoreMsg, Now};
use crate::config::ServerConfig;

/// Milliseconds on the server's monotonic clock, shared by the connection tasks, which stamp
/// every frame they receive, and the core, which tracks sessions with it. The coarse clock
/// (`CLOCK_MONOTONIC_COARSE`, a few ms resolution, plenty for tick-bucketed session expiry) is read
/// without touching the clock source: `Instant::now` per frame was about 1% of getData 16x8.
pub fn mono_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The clocks, now, as the core's [`Now`].
pub fn read_now() -> Now {
    Now {
        at: Instant::now(),
        mono_ms: mono_ms(),
        wall_ms: wall_ms(),
    }
}

/// Reads [`Now`] for the run loop: an `Instant` per input (what a request's latency is measured
/// with), the two ms clocks derived from it and read again every second (so the wall clock
/// follows a stepped system clock within a second, and no input pays for three clock reads).
pub(super) struct ClockReader {
    base: Now,
}

impl ClockReader {
    const REBASE: Duration = Duration::from_secs(1);

    pub(super) fn new() -> ClockReader {
        ClockReader { base: read_now() }
    }

    pub(super) fn now(&mut self) -> Now {
        let at = Instant::now();
        let since = at.saturating_duration_since(self.base.at);
        if since >= Self::REBASE {
            self.base = read_now();
            return self.base;
        }
        let ms = since.as_millis() as i64;
        Now {
            at,
            mono_ms: self.base.mono_ms + ms,
            wall_ms: self.base.wall_ms + ms,
        }
    }
}

/// Starts the timers that feed the core: session ticks, container checks, and the large-write pace
/// wake-ups the core asks for through `pace` (see [`super::alarm`]).
pub fn spawn_timers(
    cfg: &ServerConfig,
    tx: mpsc::UnboundedSender<CoreMsg>,
    pace: watch::Receiver<Option<Instant>>,
) {
    spawn_wake(pace, tx.clone(), || CoreMsg::PaceLarge);
    let tick = Duration::from_millis((cfg.tick_time_ms as u64 / 2).max(10));
    let t2 = tx.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            if t2.send(CoreMsg::Tick { at_ms: mono_ms() }).is_err() {
                return;
            }
        }
    });
    let every = Duration::from_millis(cfg.container_check_interval_ms.max(10));
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        iv.tick().await;
        loop {
            iv.tick().await;
            if tx.send(CoreMsg::ContainerCheck).is_err() {
                return;
            }
        }
    });
}

/// Sends `msg()` to the core at each instant it publishes on `at` (a later publication replaces
/// an earlier one; after firing, it waits for the next).
pub fn spawn_wake(
    mut at: watch::Receiver<Option<Instant>>,
    tx: mpsc::UnboundedSender<CoreMsg>,
    msg: fn() -> CoreMsg,
) {
    tokio::spawn(async move {
        loop {
            let when = *at.borrow_and_update();
            match when {
                Some(when) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(when.into()) => {
                            if tx.send(msg()).is_err() {
                                return;
                            }
                            // Then for the core's next request (it notifies even when it asks
                            // for the same instant again).
                            if at.changed().await.is_err() {
                                return;
                            }
                        }
                        r = at.changed() => if r.is_err() { return },
                    }
                }
                None => {
                    if at.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}
