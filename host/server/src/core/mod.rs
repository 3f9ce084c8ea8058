//! The core task: `wazoo-core`'s pure [`Core`] run on tokio. This module executes and decides
//! nothing: it stamps each input with the clocks ([`clock`]), feeds the core its inbox in bursts
//! and flushes after each, and adapts the core's seams to the runtime: [`Committer`] (the
//! group-commit worker as the core's [`Storage`]) and [`alarm`] (a wake-up the timer tasks
//! watch). Everything the core is and decides is re-exported from `wazoo-core`.

use std::time::Instant;

use tokio::sync::{mpsc, watch};
use wazoo_disk::GroupCommitter;
use wazoo_store::Batch;

mod clock;

pub use clock::{mono_ms, read_now, spawn_timers, spawn_wake, wall_ms};
pub use wazoo_core::*;

use clock::ClockReader;

/// The storage worker as the core's [`Storage`].
pub struct Committer(pub GroupCommitter);

impl Storage for Committer {
    fn submit(&self, batch: Batch) -> u64 {
        self.0.submit(batch)
    }

    fn commit_now_if_idle(&self, batch: Batch) -> u64 {
        self.0.commit_now_if_idle(batch)
    }

    fn run_on_store(&self, f: StoreCall) {
        self.0.with_store(f)
    }
}

/// An [`Alarm`] published on a watch channel, for [`spawn_wake`].
struct WatchAlarm(watch::Sender<Option<Instant>>);

impl Alarm for WatchAlarm {
    fn set(&self, at: Option<Instant>) {
        self.0.send_replace(at);
    }
}

/// An alarm for the core, and what a timer task ([`spawn_wake`]) watches to fire it.
pub fn alarm() -> (Box<dyn Alarm>, watch::Receiver<Option<Instant>>) {
    let (tx, rx) = watch::channel(None);
    (Box::new(WatchAlarm(tx)), rx)
}

/// Runs `core` until its inbox closes or storage fails: each input is stamped with the time it
/// is handled at; after a burst (everything waiting, up to 4096 inputs) the core flushes, `idle`
/// when the inbox was emptied.
pub async fn run(
    mut core: Core,
    mut rx: mpsc::UnboundedReceiver<CoreMsg>,
) -> Result<(), CoreError> {
    let mut clock = ClockReader::new();
    core.start(clock.now())?;
    core.flush(false);
    while let Some(msg) = rx.recv().await {
        core.handle(clock.now(), msg)?;
        let mut idle = false;
        for _ in 0..4096 {
            match rx.try_recv() {
                Ok(m) => core.handle(clock.now(), m)?,
                Err(_) => {
                    idle = true;
                    break;
                }
            }
        }
        core.flush(idle);
    }
    Ok(())
}
