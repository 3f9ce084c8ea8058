//! Unit tests of the engine: pacing, the feeds' requests, and how replies count.
use super::*;

#[test]
fn rng_below_stays_in_range_and_spreads() {
    let mut r = Rng::new(1);
    let mut seen = [0u32; 10];
    for _ in 0..10_000 {
        let v = r.below(10);
        assert!(v < 10);
        seen[v as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
}

#[test]
fn layout_names() {
    let l = Layout {
        prefix: "/bench-1".into(),
    };
    let mut s = String::new();
    l.populate_path(123_456, &mut s);
    assert_eq!(s, "/bench-1/d123/n123456");
    l.populate_dir(7, &mut s);
    assert_eq!(s, "/bench-1/d7");
    assert_eq!(l.create_base(3), "/bench-1/c/s3-");
    assert_eq!(l.key_base(), "/bench-1/k/");
}

#[test]
fn window_counts_only_inside() {
    let t0 = Instant::now();
    let w = Window {
        measure_from: t0 + Duration::from_secs(1),
        end: Some(t0 + Duration::from_secs(2)),
        pace: None,
        pace_phase: Duration::ZERO,
    };
    assert!(!w.counts(t0));
    assert!(w.counts(t0 + Duration::from_millis(1500)));
    assert!(!w.counts(t0 + Duration::from_millis(2500)));
    assert!(w.issuing(t0));
    assert!(!w.issuing(t0 + Duration::from_secs(2)));
    let u = Window {
        measure_from: t0,
        end: None,
        pace: None,
        pace_phase: Duration::ZERO,
    };
    assert!(u.counts(t0 + Duration::from_secs(1_000)));
    assert!(u.issuing(t0 + Duration::from_secs(1_000)));
}

/// Requests are due every interval from the first; when the sender fell behind, the overdue
/// ones come out one by one with their own due times (latency counts from those), and none
/// is due early.
#[test]
fn pacer_schedules_every_interval_and_catches_up_with_due_times() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut p = Pacer::new(t0, ms(10));
    assert_eq!(p.take(t0), Some(t0));
    assert_eq!(p.take(t0 + ms(9)), None);
    assert_eq!(p.next_at(), t0 + ms(10));
    assert_eq!(p.take(t0 + ms(10)), Some(t0 + ms(10)));
    // 35 ms later than that: three requests are overdue, the fourth is not.
    let late = t0 + ms(45);
    assert_eq!(p.take(late), Some(t0 + ms(20)));
    assert_eq!(p.take(late), Some(t0 + ms(30)));
    assert_eq!(p.take(late), Some(t0 + ms(40)));
    assert_eq!(p.take(late), None);
    assert_eq!(p.next_at(), t0 + ms(50));
}

/// Sessions of a paced run start their schedules spread over one interval.
#[test]
fn staggered_sessions_spread_over_one_interval() {
    let (_, w) = Window::timed(Duration::ZERO, Duration::from_secs(1));
    let p = w.paced(Duration::from_millis(4));
    let phases: Vec<Duration> = (0..4).map(|sid| p.staggered(sid, 4).pace_phase).collect();
    let ms = Duration::from_millis;
    assert_eq!(phases, [ms(0), ms(1), ms(2), ms(3)]);
    // A closed loop has nothing to stagger.
    assert_eq!(w.staggered(3, 4).pace_phase, Duration::ZERO);
}

#[test]
fn job_feed_hands_out_each_job_once_across_sessions() {
    let next = Arc::new(AtomicU64::new(0));
    let f: Arc<JobFn> = Arc::new(|i, p: &mut String| {
        p.push_str("/x/");
        push_num(p, i);
        Job::Delete
    });
    let data = Arc::new(Vec::new());
    let mut a = JobFeed::new(next.clone(), 5, f.clone(), data.clone());
    let mut b = JobFeed::new(next, 5, f, data);
    let mut buf = Vec::new();
    let mut n = 0;
    while a.next(1, &mut buf).is_some() {
        n += 1;
        if b.next(2, &mut buf).is_some() {
            n += 1;
        }
    }
    assert_eq!(n, 5);
    assert!(b.next(3, &mut buf).is_none());
}

#[test]
fn op_feed_names_creates_uniquely_per_session() {
    let l = Layout {
        prefix: "/p".into(),
    };
    let data = Arc::new(vec![1u8; 3]);
    let mut f = OpFeed::new(OpKind::Create, &l, 2, data, 1);
    let mut buf = Vec::new();
    f.next(1, &mut buf);
    f.next(2, &mut buf);
    let (_, r1) = wazoo_proto::decode_request(&buf[4..]).unwrap();
    match r1 {
        wazoo_proto::Request::Create(c) => assert_eq!(c.path, "/p/c/s2-0"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.issued, 2);
}

/// A recipe call answered with err 0 may still have aborted (its body says so): counted as
/// a success, an aborted counter add (it writes nothing, so no fsync) made the `recipe`
/// workload look faster than a write (bench/results/2026-12-07-vm-recipe-call-sdk.md).
#[test]
fn an_aborted_recipe_reply_is_a_failure_not_an_op() {
    let l = Layout {
        prefix: "/p".into(),
    };
    let recipe = OpFeed::new(OpKind::Recipe, &l, 0, Arc::new(vec![]), 10);
    let set = OpFeed::new(OpKind::Set, &l, 0, Arc::new(vec![]), 10);
    // RecipeCall reply body: int aborted, buffer output.
    let aborted = [0, 0, 0, 1, 0, 0, 0, 1, 0xa1];
    let committed = [0, 0, 0, 0, 0, 0, 0, 1, 0x05];
    assert!(recipe.failed(0, &aborted));
    assert!(!recipe.failed(0, &committed));
    assert!(recipe.failed(0, &[0, 0]), "a body too short to read");
    assert!(
        !set.failed(0, &aborted),
        "only recipe replies carry the flag"
    );
}

#[test]
fn mix_respects_the_read_share_at_the_extremes() {
    let l = Layout {
        prefix: "/p".into(),
    };
    let data = Arc::new(vec![]);
    let mut all_reads = OpFeed::new(OpKind::Mix(100), &l, 0, data.clone(), 10);
    let mut all_writes = OpFeed::new(OpKind::Mix(0), &l, 0, data, 10);
    let mut buf = Vec::new();
    for i in 0..100 {
        assert_eq!(all_reads.next(i, &mut buf), Some(CLASS_READ));
        assert_eq!(all_writes.next(i, &mut buf), Some(CLASS_WRITE));
    }
}
