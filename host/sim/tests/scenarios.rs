//! Named scenarios from zab-reference.md §7 (the catalogue of ZooKeeper's election and sync
//! bugs), each driven as that exact sequence on three scripted servers. The invariants of
//! `check.rs` run after every event, as in random runs; each scenario ends with the ensemble
//! converged (one leader, equal trees) and every acknowledged write in every tree.
//!
//! Catalogue entries not here: Z-335 and Z-epoch-files-torn (durable epochs and their recovery
//! are the store's: conformance suite), Z-1277 (the counter wrap: `broadcast` unit test), Z-1732
//! (found by the random sweep, seed 8461 in failing-seeds.txt), Z-vote-circle (liveness only),
//! Z-1549, Z-3104, Z-2418 (snapshot and on-disk log paths of the server runtime, not wired yet),
//! Z-4685 (`leader_sync` and `learner_sync` unit tests: D5), Z-4925 (`learner_sync` and
//! `broadcast` unit tests), Z-4712 and Z-4882 (the runtime's storage worker).

use wazoo_sim::{Sim, SimConfig, Violation};
use wazoo_zab::peer::{Packet, Serving};
use wazoo_zab::{Sid, Zxid};

/// Unwraps a step of the scenario, printing the trace on failure.
macro_rules! ok {
    ($sim:ident . $($call:tt)*) => {
        match $sim.$($call)* {
            Ok(v) => v,
            Err(e) => panic!("{e}\nlast events:\n{}", $sim.trace()),
        }
    };
}

fn three() -> Sim {
    let mut sim = Sim::scripted(7, SimConfig::new(3, 0));
    for sid in 1..=3 {
        sim.boot(sid).unwrap();
    }
    sim
}

fn leader(sim: &mut Sim) -> Sid {
    ok!(sim.run_until_that(5_000, "a leader", |s| s.leader().is_some()));
    sim.leader().unwrap()
}

fn others(l: Sid) -> (Sid, Sid) {
    let o: Vec<Sid> = (1..=3).filter(|&s| s != l).collect();
    (o[0], o[1])
}

/// Writes `n` txns through the leader and waits until each is acknowledged.
fn write(sim: &mut Sim, n: usize) {
    for _ in 0..n {
        let l = leader(sim);
        let before = sim.acked();
        ok!(sim.write(l));
        ok!(sim.run_until_that(5_000, "a write acknowledged", |s| s.acked() > before));
    }
}

fn last(sim: &Sim, sid: Sid) -> Zxid {
    sim.tree(sid).last().map_or(0, |t| t.0)
}

#[test]
fn three_servers_elect_one_leader_and_replicate_every_write() {
    let mut sim = three();
    write(&mut sim, 20);
    let l = ok!(sim.converge(5_000));
    for sid in 1..=3 {
        assert_eq!(sim.tree(sid).len(), 20, "server {sid}");
        if sid != l {
            assert!(matches!(sim.serving(sid), Serving::Following { leader, .. } if leader == l));
        }
    }
}

/// Z-1154 diff-without-trunc: a leader cut off from its followers logs a txn alone; everyone
/// crashes; the other two elect a leader and commit; the old leader returns holding the orphan.
/// It must lose it (TRUNC or SNAP), never keep it beside the new history.
#[test]
fn z1154_an_orphan_txn_of_a_deposed_leader_is_cut_when_it_returns() {
    let mut sim = three();
    write(&mut sim, 3);
    let a = leader(&mut sim);
    let (b, c) = others(a);
    sim.isolate(a);
    ok!(sim.write(a)); // proposed and logged by A alone
    ok!(sim.run_until_that(100, "the orphan durable on A", |s| s.disk_log(a).len() == 4));
    let orphan = sim.disk_log(a)[3];
    for sid in [a, b, c] {
        sim.kill(sid);
    }
    sim.heal_network();
    sim.isolate(a);
    ok!(sim.boot(b));
    ok!(sim.boot(c));
    write(&mut sim, 2);
    ok!(sim.boot(a));
    ok!(sim.converge(10_000));
    assert!(
        !sim.tree(a).contains(&orphan),
        "A kept its orphan {orphan:?}"
    );
    assert_eq!(sim.tree(a).len(), 5);
}

/// Z-2845 stale-memory-after-election: a txn reaches a follower's log but not its tree (never
/// committed: the leader is cut off before the ACK arrives); the leader changes without any
/// restart. The follower must not vote or sync with a tree behind its log.
#[test]
fn z2845_a_leader_change_without_restart_leaves_no_tree_behind_its_log() {
    let mut sim = three();
    write(&mut sim, 3);
    let l = leader(&mut sim);
    let (f1, f2) = others(l);
    sim.cut(l, f2);
    ok!(sim.write(l));
    ok!(sim.run_until_that(100, "the proposal at F1", |s| {
        s.delivered()
            .iter()
            .any(|&(from, to, p)| from == l && to == f1 && matches!(p, Packet::Proposal(_)))
    }));
    sim.isolate(l); // F1's ACK never arrives: T is logged on L and F1, committed nowhere
    ok!(sim.run_until_that(5_000, "a new leader", |s| {
        s.leader().is_some_and(|n| n != l)
    }));
    write(&mut sim, 2);
    ok!(sim.converge(10_000));
    // T was in the new leader's history (F1 had it) or cut everywhere: either way one history.
    assert_eq!(sim.tree(f1), sim.tree(f2));
    assert_eq!(sim.tree(l), sim.tree(f2));
}

/// Z-3642 partial-snap-then-diff: the leader dies after streaming SNAP to a new server, before
/// NEWLEADER; the new server dies before its snapshot is durable. Nothing it claimed to have may be
/// missing after it returns.
#[test]
fn z3642_a_snapshot_cut_off_before_newleader_is_not_taken_as_synced() {
    let mut sim = Sim::scripted(11, SimConfig::new(3, 0));
    ok!(sim.boot(1));
    ok!(sim.boot(2));
    write(&mut sim, 5);
    let l = leader(&mut sim);
    ok!(sim.boot(3));
    ok!(sim.run_until_that(5_000, "ACKEPOCH from server 3", |s| {
        s.delivered()
            .iter()
            .any(|&(from, _, p)| from == 3 && matches!(p, Packet::AckEpoch { .. }))
    }));
    sim.stall_disk(3, 2_000);
    ok!(sim.run_until_that(5_000, "SNAP to server 3", |s| {
        s.delivered()
            .iter()
            .any(|&(_, to, p)| to == 3 && matches!(p, Packet::Snap(_)))
    }));
    sim.kill(l);
    ok!(sim.run_for(300));
    sim.kill(3); // its snapshot was still in flight
    assert!(
        sim.disk_log(3).is_empty(),
        "the stall kept the snapshot off disk"
    );
    ok!(sim.boot(l));
    ok!(sim.boot(3));
    write(&mut sim, 2);
    ok!(sim.converge(10_000));
    assert_eq!(sim.tree(3).len(), 7);
}

/// Z-4785 diff-race (with Z-4646 ack-before-flush and Z-4643 epoch-before-history): a follower
/// that missed txns rejoins a new leader by DIFF, ACKs NEWLEADER, and then it and the leader crash
/// at once; it wins the next election on its currentEpoch. The DIFF's txns must have been durable
/// before that ACK (D4), and the epoch only after them.
#[test]
fn z4785_a_diff_synced_follower_that_crashes_after_its_newleader_ack_loses_nothing() {
    let mut sim = three();
    write(&mut sim, 3);
    let l = leader(&mut sim);
    let (f, g) = others(l);
    sim.kill(f);
    write(&mut sim, 3); // committed by L and G; F lacks them
    sim.kill(l);
    ok!(sim.boot(f));
    ok!(sim.run_until_that(5_000, "F's NEWLEADER ACK", |s| {
        s.delivered().iter().any(|&(from, to, p)| {
            from == f && to == g && matches!(p, Packet::Ack(z) if z & 0xffff_ffff == 0)
        })
    }));
    // At the moment of its ACK: the DIFF is durable on F, and so is the new epoch.
    assert_eq!(
        sim.disk_log(f).len(),
        6,
        "the DIFF is durable before the ACK"
    );
    let epoch = sim.disk_epochs(f).1;
    assert!(epoch > 1, "currentEpoch {epoch} persisted before the ACK");
    sim.kill(g);
    sim.kill(f);
    ok!(sim.boot(f));
    ok!(sim.boot(l));
    ok!(sim.run_until_that(5_000, "a leader", |s| s.leader().is_some()));
    ok!(sim.boot(g));
    write(&mut sim, 1);
    ok!(sim.converge(10_000));
    assert_eq!(sim.tree(f).len(), 7);
}

/// Z-4394 commit-after-newleader: a late joiner's stream carries a proposal still outstanding
/// at the leader; its COMMIT comes by broadcast, around NEWLEADER and UPTODATE. The joiner must
/// apply it, in order, and keep serving.
#[test]
fn z4394_an_outstanding_proposal_in_a_late_joiners_stream_is_committed_and_applied() {
    let mut sim = Sim::scripted(5, SimConfig::new(3, 0));
    ok!(sim.boot(1));
    ok!(sim.boot(2));
    write(&mut sim, 2);
    let l = leader(&mut sim);
    let other = if l == 1 { 2 } else { 1 };
    ok!(sim.boot(3));
    ok!(sim.run_until_that(5_000, "LEADERINFO to server 3", |s| {
        s.delivered()
            .iter()
            .any(|&(_, to, p)| to == 3 && matches!(p, Packet::LeaderInfo { .. }))
    }));
    // A write the quorum cannot commit yet: the other follower's disk is stalled.
    sim.stall_disk(other, 300);
    ok!(sim.write(l));
    ok!(sim.run_until_that(5_000, "server 3 serving", |s| {
        matches!(s.serving(3), Serving::Following { .. })
    }));
    let to3: Vec<Packet> = sim
        .delivered()
        .iter()
        .filter(|&&(_, to, _)| to == 3)
        .map(|&(_, _, p)| p)
        .collect();
    let nl = to3
        .iter()
        .position(|p| matches!(p, Packet::NewLeader(_)))
        .unwrap();
    let outstanding = to3[..nl].iter().rev().find_map(|p| match p {
        Packet::Proposal(z) => Some(*z),
        _ => None,
    });
    let z = outstanding.expect("an outstanding proposal in the stream");
    assert!(
        !to3[..nl].contains(&Packet::Commit(z)),
        "it was outstanding: its COMMIT came after NEWLEADER"
    );
    ok!(sim.run_until_that(5_000, "the write acknowledged", |s| s.acked() == 3));
    ok!(sim.converge(10_000));
    assert!(
        sim.tree(3).iter().any(|t| t.0 == z),
        "{z:#x} not applied; tree {:x?}\n{}",
        sim.tree(3),
        sim.trace()
    );
    assert_eq!(last(&sim, 3), last(&sim, l));
}

/// Z-5094 interrupted-trunc: a returning server must TRUNC its orphan tail; the leader dies right
/// after the TRUNC, before NEWLEADER. No gap may open between its log and its tree, and the next
/// sync must start from what is really there.
#[test]
fn z5094_an_interrupted_trunc_leaves_no_gap() {
    let mut sim = three();
    write(&mut sim, 3);
    let a = leader(&mut sim);
    let (b, c) = others(a);
    sim.isolate(a);
    ok!(sim.write(a));
    ok!(sim.write(a));
    ok!(
        sim.run_until_that(100, "the orphans durable on A", |s| s.disk_log(a).len()
            == 5)
    );
    sim.kill(a);
    sim.heal_network();
    ok!(sim.run_until_that(5_000, "B or C leads", |s| s.leader().is_some()));
    let newl = sim.leader().unwrap();
    ok!(sim.boot(a));
    ok!(sim.run_until_that(5_000, "TRUNC to A", |s| {
        s.delivered()
            .iter()
            .any(|&(_, to, p)| to == a && matches!(p, Packet::Trunc(_)))
    }));
    sim.kill(newl);
    write(&mut sim, 2);
    let _ = (b, c);
    ok!(sim.boot(newl));
    ok!(sim.converge(10_000));
    assert_eq!(sim.tree(a).len(), 5);
    assert_eq!(sim.disk_log(a), sim.tree(a), "log and tree agree, no gap");
}

/// A deposed leader must not complete a `sync` from its stale tree: cut off from its followers
/// (their links reset, then the network cut), it still believes it leads until syncLimit, while
/// the others elect a new leader and acknowledge a write. A sync on the old leader in that window
/// must not complete there (ZooKeeper's would: its leader answers a sync from its own commit
/// point).
#[test]
fn a_deposed_leader_completes_no_sync_from_its_stale_tree() {
    let mut sim = three();
    write(&mut sim, 2);
    let old = leader(&mut sim);
    sim.reset_links(old);
    sim.isolate(old);
    ok!(sim.run_until_that(1_000, "a new leader", |s| {
        (1..=3).any(|sid| sid != old && matches!(s.serving(sid), Serving::Leading { .. }))
    }));
    let new = (1..=3)
        .find(|&sid| sid != old && matches!(sim.serving(sid), Serving::Leading { .. }))
        .unwrap();
    let before = sim.acked();
    ok!(sim.write(new));
    ok!(sim.run_until_that(1_000, "the new leader's write", |s| s.acked() > before));
    assert!(
        matches!(sim.serving(old), Serving::Leading { .. }),
        "the scenario needs the old leader still leading here"
    );
    ok!(sim.sync(old)); // must not complete from the stale tree (the checker would say so)
    ok!(sim.converge(10_000));
}

#[test]
fn the_scripted_world_reports_a_violation_with_the_trace() {
    // A scenario helper that cannot be satisfied fails with a liveness violation, not a hang.
    let mut sim = Sim::scripted(1, SimConfig::new(3, 0));
    let e = sim.run_until_that(100, "a leader with nobody started", |s| {
        s.leader().is_some()
    });
    assert!(matches!(e, Err(Violation::Liveness(_))));
}

/// The scenarios can fail: with the bug each one guards against planted, it does.
#[test]
fn the_scenarios_fail_when_their_bug_is_planted() {
    use wazoo_zab::planted::{plant, Bug};
    let cases: [(&str, Bug, fn()); 5] = [
        (
            "stale sync",
            Bug::SyncWithoutQuorum,
            a_deposed_leader_completes_no_sync_from_its_stale_tree,
        ),
        (
            "z1154",
            Bug::DiffWithoutTrunc,
            z1154_an_orphan_txn_of_a_deposed_leader_is_cut_when_it_returns,
        ),
        (
            "z5094",
            Bug::SkipTrunc,
            z5094_an_interrupted_trunc_leaves_no_gap,
        ),
        (
            "z4785",
            Bug::AckBeforeDurable,
            z4785_a_diff_synced_follower_that_crashes_after_its_newleader_ack_loses_nothing,
        ),
        (
            "z1154",
            Bug::CommitOnMinority,
            z1154_an_orphan_txn_of_a_deposed_leader_is_cut_when_it_returns,
        ),
    ];
    for (name, bug, scenario) in cases {
        plant(bug);
        let failed = std::panic::catch_unwind(scenario).is_err();
        plant(Bug::None);
        assert!(failed, "{name} passed with {bug:?} planted");
    }
}
