//! Pacing of large writes while other requests are being served: the fair share that keeps one
//! client streaming big setData from taking the server away from everyone else.
//!
//! Taking turns (`LARGE_WRITES_IN_FLIGHT`) bounds how much bulk data rides each group commit, but
//! not how often: on a fast disk the next megabyte is prepped as soon as the last one applies, and
//! a single connection streaming 1 MB setData kept ~250 MB/s flowing through the server. Each such
//! megabyte costs about 4.4 ms of server CPU (read from the socket, logged, applied, staged into
//! RocksDB), so on the 2-core machine the other clients' create throughput fell 4x and their p99
//! rose 3-7x (`bench/abuse.py --hostiles setstream`). The same stream held to 50 MB/s by the
//! client left the others' creates unharmed.
//!
//! So: while any other request (pings aside) reached the core in the last [`OTHERS_WINDOW`],
//! large writes (all connections together) are held to `wazoo.largeWriteBytesPerSecond`, a token
//! bucket with a tenth of a second's worth of burst; a write goes whenever the bucket holds any
//! credit and may leave it in debt, so writes of any size get the rate on average. With no one
//! else to serve they are not paced at all, so a bulk load alone runs at disk speed. The pacer
//! decides only; time is an argument and the core arms a wake-up at the instant it returns.

use std::time::{Duration, Instant};

/// How recently another request must have been served for large writes to be paced.
pub(crate) const OTHERS_WINDOW: Duration = Duration::from_millis(50);

/// The share of a second the bucket holds at most (its burst).
const BURST_DIVISOR: u64 = 10;

/// A token bucket for large-write bytes that only applies while others are being served.
#[derive(Debug)]
pub(crate) struct LargeWritePacer {
    /// Bytes per second; 0 turns pacing off.
    rate: u64,
    /// Bytes that may start now; negative is a debt left by a write larger than the bucket.
    credit: f64,
    /// When `credit` was last brought up to date.
    updated: Option<Instant>,
    /// When a request other than a large write was last served.
    others_at: Option<Instant>,
}

impl LargeWritePacer {
    pub(crate) fn new(rate: u64) -> Self {
        LargeWritePacer {
            rate,
            credit: Self::burst_of(rate),
            updated: None,
            others_at: None,
        }
    }

    fn burst_of(rate: u64) -> f64 {
        (rate / BURST_DIVISOR) as f64
    }

    /// A request that is not a large write (nor a ping) reached the core at `now`.
    pub(crate) fn served_other(&mut self, now: Instant) {
        if self.rate != 0 {
            self.others_at = Some(now);
        }
    }

    /// Whether a large write of `size` bytes may start at `now`: `Ok` (and its bytes are taken
    /// from the bucket when others are being served), or `Err(at)`, the instant to ask again.
    pub(crate) fn admit(&mut self, size: usize, now: Instant) -> Result<(), Instant> {
        if self.rate == 0 {
            return Ok(());
        }
        self.refill(now);
        let others_until = match self.others_at {
            Some(t) if now.saturating_duration_since(t) < OTHERS_WINDOW => t + OTHERS_WINDOW,
            _ => return Ok(()),
        };
        if self.credit > 0.0 {
            self.credit -= size as f64;
            return Ok(());
        }
        // The bucket is positive again after the debt is paid at `rate`, or the write may go
        // unpaced once no one else has been served for a window, whichever is first.
        let wait = Duration::from_secs_f64((-self.credit + 1.0) / self.rate as f64);
        Err((now + wait).min(others_until))
    }

    fn refill(&mut self, now: Instant) {
        if let Some(t) = self.updated {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            self.credit = (self.credit + dt * self.rate as f64).min(Self::burst_of(self.rate));
        }
        self.updated = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const RATE: u64 = 10 * MIB as u64;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn alone_large_writes_are_never_paced() {
        let t0 = Instant::now();
        let mut p = LargeWritePacer::new(RATE);
        for i in 0..1000 {
            assert_eq!(p.admit(MIB, t0 + ms(i / 10)), Ok(()));
        }
    }

    #[test]
    fn with_others_served_large_writes_get_the_rate_over_time() {
        let t0 = Instant::now();
        let mut p = LargeWritePacer::new(RATE);
        // Others are served every millisecond for 10 s; a writer retries at each instant the
        // pacer names (or every millisecond, whichever comes first).
        let mut started = 0usize;
        let mut next_try = t0;
        for m in 0..10_000u64 {
            let now = t0 + ms(m);
            p.served_other(now);
            if now >= next_try {
                match p.admit(MIB, now) {
                    Ok(()) => started += MIB,
                    Err(at) => {
                        assert!(at > now, "a retry instant is in the future");
                        next_try = at;
                    }
                }
            }
        }
        // 10 s at 10 MiB/s, plus the initial burst (a tenth of a second's worth) and the write
        // that may overdraw it.
        let most = 10 * RATE as usize + RATE as usize / 10 + MIB;
        assert!(started <= most, "started {started} > {most}");
        assert!(
            started >= 9 * RATE as usize,
            "started {started}: the rate must be granted"
        );
    }

    #[test]
    fn a_write_larger_than_the_bucket_goes_on_any_credit_and_leaves_a_debt() {
        let t0 = Instant::now();
        let mut p = LargeWritePacer::new(RATE); // burst 1 MiB
        p.served_other(t0);
        assert_eq!(p.admit(4 * MIB, t0), Ok(()));
        p.served_other(t0 + ms(10));
        let at = p.admit(MIB, t0 + ms(10)).expect_err("in debt");
        // 3 MiB of debt at 10 MiB/s: about 0.3 s after t0, but others were last seen at +10 ms,
        // so the write may go unpaced at +60 ms if no one else is served by then.
        assert_eq!(at, t0 + ms(10) + OTHERS_WINDOW);
        // Others keep being served: the debt is what decides.
        for m in (20..=300).step_by(10) {
            p.served_other(t0 + ms(m));
        }
        let at = p.admit(MIB, t0 + ms(300)).expect_err("still in debt");
        assert!(at > t0 + ms(300) && at <= t0 + ms(320), "{:?}", at - t0);
        assert_eq!(p.admit(MIB, t0 + ms(320)), Ok(()));
    }

    #[test]
    fn once_others_stop_being_served_the_writer_goes_after_the_window() {
        let t0 = Instant::now();
        let mut p = LargeWritePacer::new(RATE);
        p.served_other(t0);
        assert_eq!(p.admit(2 * MIB, t0), Ok(()));
        assert!(p.admit(MIB, t0 + ms(1)).is_err());
        assert!(p.admit(MIB, t0 + OTHERS_WINDOW - ms(1)).is_err());
        assert_eq!(p.admit(MIB, t0 + OTHERS_WINDOW), Ok(()));
    }

    #[test]
    fn rate_zero_turns_pacing_off() {
        let t0 = Instant::now();
        let mut p = LargeWritePacer::new(0);
        for i in 0..100 {
            p.served_other(t0 + ms(i));
            assert_eq!(p.admit(64 * MIB, t0 + ms(i)), Ok(()));
        }
    }
}
