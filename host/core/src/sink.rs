//! [`RecordingSink`]: a connection's output for tests and simulators, keeping what the core sends
//! as the bytes a socket would carry, its peer reading everything at once.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use crate::ConnSink;

/// A [`ConnSink`] that keeps the bytes sent to it; see the module docs.
#[derive(Default)]
pub struct RecordingSink {
    out: Mutex<Vec<u8>>,
    closed: AtomicBool,
    /// What the connection's reader would stamp: when it last received a frame.
    last_received: AtomicI64,
}

impl ConnSink for RecordingSink {
    fn send(&self, bytes: &[u8]) {
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
    }
    fn queued(&self) -> usize {
        0
    }
    fn want_drained(&self) {}
    fn drained_not_wanted(&self) {}
    fn set_stall_timeout(&self, _ms: u64) {}
    fn last_received(&self) -> i64 {
        self.last_received.load(Ordering::SeqCst)
    }
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl RecordingSink {
    /// The whole frames sent since the last call, without their length prefix (a partial one
    /// stays for the next call).
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let mut buf = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut at = 0;
        while buf.len() >= at + 4 {
            let len = i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            if buf.len() < at + 4 + len {
                break;
            }
            out.push(buf[at + 4..at + 4 + len].to_vec());
            at += 4 + len;
        }
        buf.drain(..at);
        out
    }

    /// The core closed the connection (or the test did, as a reset would).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The connection is gone (a reset): what its owner learns at its next read.
    pub fn reset(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// The connection received a frame at `mono_ms`.
    pub fn received_at(&self, mono_ms: i64) {
        self.last_received.store(mono_ms, Ordering::SeqCst);
    }
}
