//! The simulator over the server's own pipeline in CI (issue 10, item 4): a block of seeds, each
//! with faults, real client sessions and the history checker.

use wazoo_sim::cluster::{run_cluster, sweep_cluster, ClusterConfig};
use wazoo_zab::planted::{plant, Bug};

fn seeds_per_run() -> u64 {
    std::env::var("WAZOO_CLUSTER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
}

#[test]
fn every_seed_keeps_the_clients_history_linearizable_and_converges() {
    let s = sweep_cluster(0, seeds_per_run()).unwrap_or_else(|f| panic!("{f}"));
    eprintln!("{s:?}");
    for kind in [
        "crash and restart",
        "crash the leader",
        "isolate one",
        "split",
        "link reset",
        "slow disk",
        "asymmetric",
        "clog",
        "clock jump",
        "crash a majority",
    ] {
        assert!(
            s.faults.get(kind).copied().unwrap_or(0) > 0,
            "{kind} never injected: {s:?}"
        );
    }
    assert!(
        s.ops_ok > 100 * seeds_per_run(),
        "too little work done: {s:?}"
    );
    assert!(s.synced_reads > 0 && s.session_moves > 0, "{s:?}");
    assert!(
        s.multis_ok > 0 && s.multis_failed > 0,
        "multis both ways: {s:?}"
    );
    assert!(
        s.watches_set_again > 0,
        "moved sessions set watches again: {s:?}"
    );
    assert!(s.snaps_received > 0, "learners synced by SNAP: {s:?}");
    assert!(
        ["link reset", "the learner crashes", "the leader crashes"]
            .iter()
            .all(|how| s
                .faults
                .get(format!("cut a SNAP: {how}").as_str())
                .copied()
                .unwrap_or(0)
                > 0),
        "SNAPs cut off part way, each way: {s:?}"
    );
    assert!(
        s.adds_ok > 0 && s.adds_retried > 0,
        "recipe calls answered, and retried under their request id: {s:?}"
    );
    assert!(
        s.locks_granted > 0
            && s.locks_granted_after_wait > 0
            && s.lock_timeouts > 0
            && s.lock_calls_retried > 0,
        "mutex calls granted at once and after parking, timed out, and retried: {s:?}"
    );
}

#[test]
fn the_seeds_that_once_failed_pass() {
    let list = include_str!("../cluster-failing-seeds.txt");
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let seed: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
        if let Err(f) = run_cluster(seed, &ClusterConfig::for_seed(seed)) {
            panic!("{f}");
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let a = run_cluster(7, &ClusterConfig::for_seed(7)).unwrap_or_else(|f| panic!("{f}"));
    let b = run_cluster(7, &ClusterConfig::for_seed(7)).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(
        (a.events, a.ops_ok, a.converge_ms),
        (b.events, b.ops_ok, b.converge_ms)
    );
}

/// `SEED=n cargo test -p wazoo-sim --test cluster one_seed -- --ignored --nocapture` runs one
/// seed and prints its report (`WAZOO_SIM_TRACE=n` keeps the last n events for a failure).
#[test]
#[ignore]
fn one_seed() {
    let seed = std::env::var("SEED").unwrap().parse().unwrap();
    match run_cluster(seed, &ClusterConfig::for_seed(seed)) {
        Ok(r) => eprintln!("{r:?}"),
        Err(f) => panic!("{f}"),
    }
}

/// The first seed of the server-pipeline simulator that catches `bug` planted in the ZAB peer
/// every server runs, within `limit` seeds.
fn caught(bug: Bug, limit: u64) -> Option<(u64, String)> {
    plant(bug);
    let found = (0..limit).find_map(|seed| {
        run_cluster(seed, &ClusterConfig::for_seed(seed))
            .err()
            .map(|f| (seed, f.what))
    });
    plant(Bug::None);
    found
}

/// The bugs the issue names, planted in the peer under the whole server, and two in the server's
/// core (a cut SNAP's tree not reloaded; a recipe run's stale reads not caught): each is caught
/// by what it breaks for clients or for the servers' agreement, or (ACK before durable) by the
/// check at the sender of every ACK. A sync answered without the quorum check
/// is not caught here within 2,000 seeds (it needs a deposed leader's client to read right after
/// a newer write elsewhere); the peer simulator's named scenario catches it.
#[test]
fn planted_bugs_are_caught_through_the_servers_and_their_clients() {
    for (bug, name) in [
        (Bug::AckBeforeDurable, "ACK before durable"),
        (Bug::SkipTrunc, "skipped TRUNC"),
        (Bug::CommitOnMinority, "commit on a minority"),
        (Bug::DiffWithoutTrunc, "DIFF without TRUNC"),
        (Bug::ForgetTreeOnCutSnap, "no reload after a cut SNAP"),
        (Bug::StaleRecipeRunCommits, "a stale recipe run committed"),
    ] {
        let (seed, what) = caught(bug, 2_000).unwrap_or_else(|| panic!("{name} not caught"));
        eprintln!("{name}: caught by seed {seed}: {what}");
    }
}
