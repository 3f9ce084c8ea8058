//! Unit tests of `admin.rs`: the watch listing comes in bounded pieces that together list every
//! watch once.

use std::sync::mpsc;

use crate::core_test::{standalone, Harness};

use super::*;

fn watch(h: &mut Harness, conn: ConnId, xid: i32, path: &str) {
    h.request(
        conn,
        xid,
        Request::Exists {
            path: path.to_owned(),
            watch: true,
        },
    );
}

fn ask<T: Send + 'static>(h: &mut Harness, query: impl FnOnce(Reply<T>) -> AdminQuery) -> T {
    let (tx, rx) = mpsc::channel();
    h.input(CoreMsg::Admin(query(Reply::new(move |v| {
        let _ = tx.send(v);
    }))));
    rx.try_recv().expect("answered in the same turn")
}

/// `wchc`/`wchp` (admin_http.rs): one message lists at most ADMIN_CHUNK watched paths, resumes
/// within a connection, and the pieces list each watch once; `wchs`' counts need no walk.
#[test]
fn the_watch_listing_comes_in_pieces_of_at_most_admin_chunk_paths() {
    let mut h = Harness::new(standalone());
    h.connect(1);
    h.connect(2);
    let n = 2 * ADMIN_CHUNK + 500;
    for i in 0..n {
        watch(&mut h, 1, i as i32 + 1, &format!("/w{i:05}"));
    }
    watch(&mut h, 2, 1, "/w00000");
    watch(&mut h, 2, 2, "/other");
    h.settle();
    let counts = ask(&mut h, AdminQuery::WatchCounts);
    assert_eq!(counts.watch_count, n as u64 + 2);
    assert_eq!(counts.watched_paths, n as u64 + 1);
    assert_eq!(counts.watching_connections, 2);

    let ids = [1, 2, 99];
    let (mut next, mut from) = (0, None);
    let mut seen: Vec<(ConnId, i64, String)> = Vec::new();
    let mut pieces = 0;
    while next < ids.len() {
        let piece = ids[next..].to_vec();
        let chunk = ask(&mut h, |reply| AdminQuery::WatchesOf {
            ids: piece,
            from: from.take(),
            reply,
        });
        let paths: usize = chunk.watches.iter().map(|(_, _, p)| p.len()).sum();
        assert!(paths <= ADMIN_CHUNK, "a piece of {paths} paths");
        for (conn, session, ps) in chunk.watches {
            seen.extend(ps.into_iter().map(|p| (conn, session, p)));
        }
        pieces += 1;
        match chunk.resume {
            Some((i, cursor)) => {
                next += i;
                from = cursor;
            }
            None => break,
        }
    }
    assert_eq!(pieces, 3);
    assert_eq!(seen.len(), n + 2);
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "no watch listed twice");
    assert!(seen.iter().filter(|(c, _, _)| *c == 2).count() == 2);
}
