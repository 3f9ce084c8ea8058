//! ZooKeeper's atomic broadcast as pure state machines: inputs (messages, time in ms as an
//! argument) in, outputs (messages to send, decisions, wake-up times) out; no I/O, no clock, no
//! threads. The runtime carries the messages over the election and quorum ports; the simulator
//! carries them over its simulated network. Nouns follow ZooKeeper's Java source and
//! `shared/design/zab-reference.md` so the two cross-read.
//!
//! The phases: [`election`] (Fast Leader Election, electionAlg 3), [`discovery`] (the first
//! ZAB phase), [`sync`]'s decision (DIFF, TRUNC or SNAP) and the learner's side of the sync
//! stream ([`learner_sync`]) and the leader's ([`leader_sync`]), [`broadcast`], and the
//! `syncLimit` rules of [`liveness`]; [`peer`] composes them into one state machine per server,
//! which the simulator (`host/sim`) drives today and the server's runtime will (issue 10).
//! [`wire`] encodes and decodes what travels between peers. [`planted`] holds known bugs a test can switch on to show the simulator catches them.

pub mod broadcast;
pub mod discovery;
pub mod election;
pub mod history;
pub mod leader_sync;
pub mod learner_sync;
pub mod liveness;
pub mod peer;
pub mod planted;
pub mod quorum;
pub mod sync;
pub mod wire;

/// A server id (`server.N` in zoo.cfg, `myid` in the data dir).
pub type Sid = u64;

/// A ZooKeeper transaction id: `epoch << 32 | counter`.
pub type Zxid = i64;
