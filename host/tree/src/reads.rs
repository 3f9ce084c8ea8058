//! Read requests against the local tree (`FinalRequestProcessor`'s read cases), including the watch
//! registration each read implies, and setWatches re-registration on reconnect.

use wazoo_proto::{
    add_watch_mode, perms, ClientInfo, ErrorCode, EventType, OpResult, ReadOp, Request, Response,
    SetWatches, Zxid,
};

use crate::acl::{check_acl, masked_for, AuthInfo};
use crate::datatree::{DataTree, NodeRef};

use crate::watch::{WatchRegistry, WatcherId};

/// The caller of a read.
#[derive(Debug, Clone, Copy)]
pub struct ReadCtx<'a> {
    pub session_id: i64,
    pub watcher: WatcherId,
    pub auth: &'a AuthInfo,
    /// The largest reply payload (reply header + body, what the frame length counts) the caller
    /// may be sent: the server's `jute.maxbuffer`.
    pub max_reply: usize,
}

/// Encoded sizes of the parts of a reply (jute), to know a reply's size before building it.
const REPLY_HEADER_LEN: usize = 4 + 8 + 4; // xid, zxid, err
const STAT_LEN: usize = 6 * 8 + 5 * 4;
const MULTI_HEADER_LEN: usize = 4 + 1 + 4; // type, done, err
/// A jute string or buffer: its length, then its bytes (a null buffer is just the length).
const fn buf_len(len: usize) -> usize {
    4 + len
}

/// Refuses a reply whose payload (header + body) would be longer than `ctx.max_reply`.
///
/// ZooKeeper 3.8 does not check: it serializes the whole reply (one multiRead of 65k getData of a
/// 1 MB node is a 64 GiB allocation) and its client then drops the connection ("Packet len ... is
/// out of range"), so no ZooKeeper client can receive such a reply anyway. We answer the request
/// with MARSHALLINGERROR instead, the code ZooKeeper's FinalRequestProcessor sends when it fails
/// to process a read for any reason other than a KeeperException; the connection stays usable.
/// The check runs after the request's own checks (NONODE, NOAUTH keep their precedence), and a
/// refused read sets no watch: the client registers a watch only on a successful reply, so a
/// watch left on the server would deliver an event the client never asked for (with ZooKeeper
/// the dropped connection takes the watch with it).
///
/// Single getData and exists are not checked: a node's data is bounded by the request that wrote
/// it, so their reply cannot be amplified, and ZooKeeper answers them whatever their size (some
/// clients accept frames over their jute.maxbuffer).
fn fits(ctx: &ReadCtx, len: usize) -> Result<(), ErrorCode> {
    if len > ctx.max_reply {
        Err(ErrorCode::MarshallingError)
    } else {
        Ok(())
    }
}

/// The node at `p` if the caller may read it.
fn readable<'t>(tree: &'t DataTree, ctx: &ReadCtx, p: &str) -> Result<NodeRef<'t>, ErrorCode> {
    let n = tree.get(p).ok_or(ErrorCode::NoNode)?;
    check_acl(n.acl(), perms::READ, ctx.auth)?;
    Ok(n)
}

/// The encoded size of a node's child list (a jute vector of strings).
fn children_len(n: &NodeRef) -> usize {
    4 + n.children().map(|c| buf_len(c.len())).sum::<usize>()
}

fn get_data(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    ctx: ReadCtx,
    p: &str,
    watch: bool,
) -> Result<(Option<Vec<u8>>, wazoo_proto::Stat), ErrorCode> {
    let n = readable(tree, &ctx, p)?;
    if watch {
        watches.add_data_watch(p, ctx.watcher);
    }
    Ok((n.data().map(<[u8]>::to_vec), n.stat()))
}

/// getChildren (`with_stat` false) or getChildren2.
fn get_children(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    ctx: ReadCtx,
    p: &str,
    watch: bool,
    with_stat: bool,
) -> Result<(Vec<String>, wazoo_proto::Stat), ErrorCode> {
    let n = readable(tree, &ctx, p)?;
    let stat_len = if with_stat { STAT_LEN } else { 0 };
    fits(&ctx, REPLY_HEADER_LEN + children_len(&n) + stat_len)?;
    if watch {
        watches.add_child_watch(p, ctx.watcher);
    }
    Ok((n.children().map(str::to_string).collect(), n.stat()))
}

/// getACL: the list as this caller is sent it (digest ids masked without ADMIN).
fn get_acl(tree: &DataTree, ctx: ReadCtx, p: &str) -> Result<Response, ErrorCode> {
    let n = tree.get(p).ok_or(ErrorCode::NoNode)?;
    check_acl(n.acl(), perms::READ | perms::ADMIN, ctx.auth)?;
    let masked = check_acl(n.acl(), perms::ADMIN, ctx.auth).is_err();
    let acl_len = 4 + n
        .acl()
        .iter()
        .map(|a| {
            let id_len = if masked && a.id.scheme == "digest" {
                // `masked_for`'s `user:x`.
                a.id.id.split(':').next().unwrap_or("").len() + 2
            } else {
                a.id.id.len()
            };
            4 + buf_len(a.id.scheme.len()) + buf_len(id_len)
        })
        .sum::<usize>();
    fits(&ctx, REPLY_HEADER_LEN + acl_len + STAT_LEN)?;
    Ok(Response::GetAcl {
        acl: masked_for(n.acl(), ctx.auth),
        stat: n.stat(),
    })
}

/// getEphemerals: the caller's ephemerals under `prefix`, sorted.
fn get_ephemerals(tree: &DataTree, ctx: ReadCtx, prefix: &str) -> Result<Response, ErrorCode> {
    let all = prefix.is_empty() || prefix == "/";
    let matching = || {
        tree.ephemerals_of(ctx.session_id)
            .filter(move |p| all || p.starts_with(prefix))
    };
    let len = 4 + matching().map(|p| buf_len(p.len())).sum::<usize>();
    fits(&ctx, REPLY_HEADER_LEN + len)?;
    let mut v: Vec<String> = matching().cloned().collect();
    v.sort();
    Ok(Response::Ephemerals(v))
}

/// whoAmI: the caller's ids as (scheme, user), without the superuser marker.
fn who_am_i(ctx: ReadCtx) -> Result<Response, ErrorCode> {
    let user = |i: &wazoo_proto::Id| -> String {
        if i.scheme == "digest" {
            i.id.split(':').next().unwrap_or("").to_string()
        } else {
            i.id.clone()
        }
    };
    let ids = || ctx.auth.ids.iter().filter(|i| i.scheme != "super");
    let len = 4 + ids()
        .map(|i| buf_len(i.scheme.len()) + buf_len(user(i).len()))
        .sum::<usize>();
    fits(&ctx, REPLY_HEADER_LEN + len)?;
    Ok(Response::WhoAmI(
        ids()
            .map(|i| ClientInfo {
                auth_scheme: i.scheme.clone(),
                user: user(i),
            })
            .collect(),
    ))
}

/// multiRead. A first pass sizes the reply from the nodes themselves and stops as soon as the
/// running size passes the limit, having copied no data or child name and set no watch; only a
/// reply that fits is then built (65k getData of a 1 MB node used to build 64 GiB first).
fn multi_read(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    ctx: ReadCtx,
    ops: &[ReadOp],
) -> Result<Response, ErrorCode> {
    // Reply header, and the multi's end marker.
    let mut size = REPLY_HEADER_LEN + MULTI_HEADER_LEN;
    let mut found = Vec::with_capacity(ops.len());
    for op in ops {
        let (p, data) = match op {
            ReadOp::GetData { path, .. } => (path, true),
            ReadOp::GetChildren { path, .. } => (path, false),
        };
        let n = readable(tree, &ctx, p);
        size += MULTI_HEADER_LEN
            + match &n {
                // An error result carries its code again as the body.
                Err(_) => 4,
                Ok(n) if data => buf_len(n.data().map_or(0, <[u8]>::len)) + STAT_LEN,
                Ok(n) => children_len(n),
            };
        fits(&ctx, size)?;
        found.push(n);
    }
    Ok(Response::Multi(
        ops.iter()
            .zip(found)
            .map(|(op, n)| match (op, n) {
                (_, Err(e)) => OpResult::Error(e.code()),
                (ReadOp::GetData { path, watch }, Ok(n)) => {
                    if *watch {
                        watches.add_data_watch(path, ctx.watcher);
                    }
                    OpResult::GetData {
                        data: n.data().map(<[u8]>::to_vec),
                        stat: n.stat(),
                    }
                }
                (ReadOp::GetChildren { path, watch }, Ok(n)) => {
                    if *watch {
                        watches.add_child_watch(path, ctx.watcher);
                    }
                    OpResult::GetChildren {
                        children: n.children().map(str::to_string).collect(),
                    }
                }
            })
            .collect(),
    ))
}

/// Answers a read request. Returns `None` for requests that are not reads. A reply longer than
/// `ctx.max_reply` is refused with MARSHALLINGERROR before it is built (see [`fits`]).
pub fn read(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    ctx: ReadCtx,
    req: &Request,
) -> Option<Result<Response, ErrorCode>> {
    Some(match req {
        Request::Exists { path: p, watch } => {
            if p.contains('\0') {
                return Some(Err(ErrorCode::BadArguments));
            }
            match tree.get(p) {
                Some(n) => match check_acl(n.acl(), perms::READ, ctx.auth) {
                    Ok(()) => {
                        if *watch {
                            watches.add_data_watch(p, ctx.watcher);
                        }
                        Ok(Response::Stat(n.stat()))
                    }
                    Err(e) => Err(e),
                },
                None => {
                    if *watch {
                        watches.add_data_watch(p, ctx.watcher);
                    }
                    Err(ErrorCode::NoNode)
                }
            }
        }
        Request::GetData { path: p, watch } => get_data(tree, watches, ctx, p, *watch)
            .map(|(data, stat)| Response::GetData { data, stat }),
        Request::GetChildren { path: p, watch } => {
            get_children(tree, watches, ctx, p, *watch, false).map(|(c, _)| Response::Children(c))
        }
        Request::GetChildren2 { path: p, watch } => {
            get_children(tree, watches, ctx, p, *watch, true)
                .map(|(children, stat)| Response::Children2 { children, stat })
        }
        Request::GetAcl { path: p } => get_acl(tree, ctx, p),
        Request::GetAllChildrenNumber { path: p } => match tree.get(p) {
            None => Err(ErrorCode::NoNode),
            Some(n) => check_acl(n.acl(), perms::READ, ctx.auth)
                .map(|()| Response::AllChildrenNumber(tree.count_descendants(p))),
        },
        Request::GetEphemerals { prefix } => get_ephemerals(tree, ctx, prefix),
        Request::MultiRead(ops) => multi_read(tree, watches, ctx, ops),
        Request::Sync { path: p } => Ok(Response::Sync { path: p.clone() }),
        Request::AddWatch { path: p, mode } => match *mode {
            add_watch_mode::PERSISTENT | add_watch_mode::PERSISTENT_RECURSIVE => {
                watches.add_persistent_watch(
                    p,
                    ctx.watcher,
                    *mode == add_watch_mode::PERSISTENT_RECURSIVE,
                );
                Ok(Response::ErrorBody(0))
            }
            _ => Err(ErrorCode::BadArguments),
        },
        Request::CheckWatches {
            path: p,
            watch_type,
        } => {
            if watches.check(p, *watch_type, ctx.watcher) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::RemoveWatches {
            path: p,
            watch_type,
        } => {
            if watches.remove_watches(p, *watch_type, ctx.watcher) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::WhoAmI => who_am_i(ctx),
        _ => return None,
    })
}

/// setWatches / setWatches2 (§7.7): re-registers the client's watches, or returns the events it
/// missed while disconnected (to be sent, with zxid -1, before the reply).
pub fn set_watches(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    watcher: WatcherId,
    sw: &SetWatches,
) -> Vec<(EventType, String)> {
    let rel: Zxid = sw.relative_zxid;
    let mut events = Vec::new();
    for p in &sw.data {
        match tree.get(p) {
            None => events.push((EventType::NodeDeleted, p.clone())),
            Some(n) if n.meta().mzxid > rel => events.push((EventType::NodeDataChanged, p.clone())),
            Some(_) => watches.add_data_watch(p, watcher),
        }
    }
    for p in &sw.exist {
        if tree.contains(p) {
            events.push((EventType::NodeCreated, p.clone()));
        } else {
            watches.add_data_watch(p, watcher);
        }
    }
    for p in &sw.child {
        match tree.get(p) {
            None => events.push((EventType::NodeDeleted, p.clone())),
            Some(n) if n.meta().pzxid > rel => {
                events.push((EventType::NodeChildrenChanged, p.clone()))
            }
            Some(_) => watches.add_child_watch(p, watcher),
        }
    }
    for p in &sw.persistent {
        watches.add_persistent_watch(p, watcher, false);
    }
    for p in &sw.persistent_recursive {
        watches.add_persistent_watch(p, watcher, true);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazoo_proto::frame::DEFAULT_MAX_BUFFER;
    use wazoo_proto::{encode_reply, Acl, Txn, TxnHeader, Writer};

    fn h(zxid: i64, session: i64) -> TxnHeader {
        TxnHeader {
            session_id: session,
            cxid: 1,
            zxid,
            time: zxid,
        }
    }

    fn create(t: &mut DataTree, p: &str, owner: i64, data: Vec<u8>, acl: Vec<Acl>) {
        let z = t.last_applied() + 1;
        let out = t.apply(
            &h(z, owner),
            &Txn::Create {
                path: p.into(),
                data: Some(data),
                acl,
                owner,
                parent_cversion: z as i32,
            },
        );
        assert!(!matches!(out.outcome, crate::OpOutcome::Error(_)), "{p}");
    }

    fn ctx(auth: &AuthInfo, session_id: i64, max_reply: usize) -> ReadCtx<'_> {
        ReadCtx {
            session_id,
            watcher: 1,
            auth,
            max_reply,
        }
    }

    /// The payload length of the reply frame the server would send.
    fn reply_len(r: &Result<Response, ErrorCode>) -> usize {
        let mut w = Writer::new();
        encode_reply(&mut w, 1, 1, r.as_ref().map_err(|e| *e));
        w.into_inner().len() - 4
    }

    fn too_large() -> Option<Result<Response, ErrorCode>> {
        Some(Err(ErrorCode::MarshallingError))
    }

    /// 65,536 getData of a 1 MiB node in one multiRead would be a 64 GiB reply: it is refused
    /// with MARSHALLINGERROR before any of it is copied (the test would run out of memory
    /// otherwise), and none of its watches is set.
    #[test]
    fn multi_read_of_65k_get_data_on_a_1mib_node_is_refused_without_building_it() {
        let mut t = DataTree::new();
        create(&mut t, "/big", 0, vec![1; 1 << 20], Acl::open_unsafe());
        let mut w = WatchRegistry::new();
        let auth = AuthInfo::for_ip("127.0.0.1");
        let ops: Vec<ReadOp> = (0..65_536)
            .map(|_| ReadOp::GetData {
                path: "/big".into(),
                watch: true,
            })
            .collect();
        let req = Request::MultiRead(ops);
        let r = read(&t, &mut w, ctx(&auth, 0, DEFAULT_MAX_BUFFER), &req);
        assert_eq!(r, too_large());
        assert_eq!(w.watch_count(), 0);
    }

    /// A multiRead is refused exactly when its encoded reply would be longer than the limit, and
    /// an answered one is unchanged (and sets its watches).
    #[test]
    fn multi_read_is_refused_exactly_past_the_limit() {
        let mut t = DataTree::new();
        create(&mut t, "/a", 0, vec![1; 1000], Acl::open_unsafe());
        create(&mut t, "/a/c", 0, vec![], Acl::open_unsafe());
        let auth = AuthInfo::for_ip("127.0.0.1");
        let req = Request::MultiRead(vec![
            ReadOp::GetData {
                path: "/a".into(),
                watch: true,
            },
            ReadOp::GetChildren {
                path: "/a".into(),
                watch: true,
            },
            ReadOp::GetData {
                path: "/missing".into(),
                watch: true,
            },
        ]);
        let mut w = WatchRegistry::new();
        let ok = read(&t, &mut w, ctx(&auth, 0, DEFAULT_MAX_BUFFER), &req).unwrap();
        assert!(matches!(&ok, Ok(Response::Multi(r)) if r.len() == 3));
        assert_eq!(w.watch_count(), 2);
        let exact = reply_len(&ok);
        let mut w = WatchRegistry::new();
        assert_eq!(read(&t, &mut w, ctx(&auth, 0, exact), &req), Some(ok));
        let mut w = WatchRegistry::new();
        assert_eq!(
            read(&t, &mut w, ctx(&auth, 0, exact - 1), &req),
            too_large()
        );
        assert_eq!(w.watch_count(), 0);
    }

    /// getChildren / getChildren2 of a node whose child list does not fit the limit are refused
    /// and set no child watch; at exactly the limit they are answered.
    #[test]
    fn get_children_over_the_limit_is_refused_and_sets_no_watch() {
        let mut t = DataTree::new();
        create(&mut t, "/p", 0, vec![], Acl::open_unsafe());
        for i in 0..2000 {
            create(
                &mut t,
                &format!("/p/child-{i:010}"),
                0,
                vec![],
                Acl::open_unsafe(),
            );
        }
        let auth = AuthInfo::for_ip("127.0.0.1");
        for req in [
            Request::GetChildren {
                path: "/p".into(),
                watch: true,
            },
            Request::GetChildren2 {
                path: "/p".into(),
                watch: true,
            },
        ] {
            let mut w = WatchRegistry::new();
            let ok = read(&t, &mut w, ctx(&auth, 0, DEFAULT_MAX_BUFFER), &req).unwrap();
            let exact = reply_len(&ok);
            assert!(exact > 2000 * 20, "{exact}");
            let mut w = WatchRegistry::new();
            assert_eq!(read(&t, &mut w, ctx(&auth, 0, exact), &req), Some(ok));
            assert_eq!(w.watch_count(), 1);
            let mut w = WatchRegistry::new();
            assert_eq!(
                read(&t, &mut w, ctx(&auth, 0, exact - 1), &req),
                too_large()
            );
            assert_eq!(w.watch_count(), 0);
        }
    }

    /// getEphemerals, getACL and whoAmI replies are bounded the same way.
    #[test]
    fn get_ephemerals_get_acl_and_who_am_i_over_the_limit_are_refused() {
        let mut t = DataTree::new();
        for i in 0..500 {
            create(&mut t, &format!("/e{i:05}"), 7, vec![], Acl::open_unsafe());
        }
        let acl: Vec<Acl> = (0..500)
            .map(|i| {
                Acl::new(
                    31,
                    "digest",
                    &format!("user{i}:c2VjcmV0c2VjcmV0c2VjcmV0cw=="),
                )
            })
            .chain([Acl::new(perms::READ, "world", "anyone")])
            .collect();
        create(&mut t, "/acl", 0, vec![], acl);
        let mut auth = AuthInfo::for_ip("127.0.0.1");
        auth.add(wazoo_proto::Id::new(
            "digest",
            "user0:c2VjcmV0c2VjcmV0c2VjcmV0cw==",
        ));
        for i in 0..500 {
            auth.add(wazoo_proto::Id::new("digest", format!("user{i}:x")));
        }
        for req in [
            Request::GetEphemerals { prefix: "/".into() },
            Request::GetEphemerals {
                prefix: "/e0".into(),
            },
            Request::GetAcl {
                path: "/acl".into(),
            },
            Request::WhoAmI,
        ] {
            let mut w = WatchRegistry::new();
            let ok = read(&t, &mut w, ctx(&auth, 7, DEFAULT_MAX_BUFFER), &req).unwrap();
            assert!(ok.is_ok(), "{req:?}");
            let exact = reply_len(&ok);
            assert!(exact > 5000, "{req:?}: {exact}");
            assert_eq!(read(&t, &mut w, ctx(&auth, 7, exact), &req), Some(ok));
            assert_eq!(
                read(&t, &mut w, ctx(&auth, 7, exact - 1), &req),
                too_large(),
                "{req:?}"
            );
        }
        // A caller without ADMIN sees masked digest ids: the limit applies to what it is sent.
        let anon = AuthInfo::for_ip("127.0.0.1");
        let req = Request::GetAcl {
            path: "/acl".into(),
        };
        let mut w = WatchRegistry::new();
        let masked = read(&t, &mut w, ctx(&anon, 0, DEFAULT_MAX_BUFFER), &req).unwrap();
        let exact = reply_len(&masked);
        assert_eq!(read(&t, &mut w, ctx(&anon, 0, exact), &req), Some(masked));
        assert_eq!(
            read(&t, &mut w, ctx(&anon, 0, exact - 1), &req),
            too_large()
        );
    }
}
