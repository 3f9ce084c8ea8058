//! Known ZAB bugs that a test can switch on, one at a time and per thread, to show that the
//! simulator catches them (issue 10: "planting a known bug is caught"). Only with the
//! `planted-bugs` feature; without it [`planted`] is a constant `false` and nothing here exists
//! at run time.

/// A bug to plant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    None,
    /// A follower ACKs a proposal before it is durable (breaks D6).
    AckBeforeDurable,
    /// A learner told to TRUNC keeps its log and treats the stream as a DIFF.
    SkipTrunc,
    /// The leader commits what any one voter (itself) has, not a majority.
    CommitOnMinority,
    /// The leader DIFFs a learner whose last zxid is not in its history (ZOOKEEPER-1154),
    /// instead of cutting the learner's orphans by TRUNC or SNAP.
    DiffWithoutTrunc,
    /// The leader answers a sync without checking that a quorum still follows it (a deposed
    /// leader answers from a stale tree).
    SyncWithoutQuorum,
    /// The peer ignores what its host forgot (the DIFF window): it plans DIFFs with txns the
    /// host can no longer send.
    DiffBeyondWindow,
    /// The peer forgets txns it has not applied yet: leaving a role, it reapplies its log with
    /// a gap.
    ForgetUnapplied,
    /// A learner whose SNAP is cut off part way keeps the empty tree it was loading the image
    /// into, instead of loading its own again from its store (planted in the server's core,
    /// `resync.rs`).
    ForgetTreeOnCutSnap,
    /// A recipe run ends on what it read even though that changed before it ended (its
    /// decision is not checked against the tree it commits into; planted in the server's core,
    /// `recipe/mod.rs`).
    StaleRecipeRunCommits,
}

#[cfg(feature = "planted-bugs")]
thread_local! {
    static PLANTED: std::cell::Cell<Bug> = const { std::cell::Cell::new(Bug::None) };
}

/// Plants `bug` on this thread (`Bug::None` removes it).
#[cfg(feature = "planted-bugs")]
pub fn plant(bug: Bug) {
    PLANTED.with(|p| p.set(bug));
}

/// Whether `bug` is planted on this thread.
#[inline]
pub fn planted(bug: Bug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        PLANTED.with(|p| p.get() == bug)
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}
