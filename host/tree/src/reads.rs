//! Read requests against the local tree (`FinalRequestProcessor`'s read cases), including the watch
//! registration each read implies, and setWatches re-registration on reconnect.

use wazoo_proto::{
    add_watch_mode, perms, ClientInfo, ErrorCode, EventType, OpResult, ReadOp, Request, Response,
    SetWatches, Zxid,
};

use crate::acl::{check_acl, masked_for, AuthInfo};
use crate::datatree::DataTree;

use crate::watch::{WatchRegistry, WatcherId};

/// The caller of a read.
#[derive(Debug, Clone, Copy)]
pub struct ReadCtx<'a> {
    pub session_id: i64,
    pub watcher: WatcherId,
    pub auth: &'a AuthInfo,
}

fn get_data(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    ctx: ReadCtx,
    p: &str,
    watch: bool,
) -> Result<(Option<Vec<u8>>, wazoo_proto::Stat), ErrorCode> {
    let n = tree.get(p).ok_or(ErrorCode::NoNode)?;
    check_acl(n.acl(), perms::READ, ctx.auth)?;
    if watch {
        watches.add_data_watch(p, ctx.watcher);
    }
    Ok((n.data().map(<[u8]>::to_vec), n.stat()))
}

fn get_children(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    ctx: ReadCtx,
    p: &str,
    watch: bool,
) -> Result<(Vec<String>, wazoo_proto::Stat), ErrorCode> {
    let n = tree.get(p).ok_or(ErrorCode::NoNode)?;
    check_acl(n.acl(), perms::READ, ctx.auth)?;
    if watch {
        watches.add_child_watch(p, ctx.watcher);
    }
    Ok((n.children().map(str::to_string).collect(), n.stat()))
}

/// Answers a read request. Returns `None` for requests that are not reads.
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
            get_children(tree, watches, ctx, p, *watch).map(|(c, _)| Response::Children(c))
        }
        Request::GetChildren2 { path: p, watch } => get_children(tree, watches, ctx, p, *watch)
            .map(|(children, stat)| Response::Children2 { children, stat }),
        Request::GetAcl { path: p } => match tree.get(p) {
            None => Err(ErrorCode::NoNode),
            Some(n) => check_acl(n.acl(), perms::READ | perms::ADMIN, ctx.auth).map(|()| {
                Response::GetAcl {
                    acl: masked_for(n.acl(), ctx.auth),
                    stat: n.stat(),
                }
            }),
        },
        Request::GetAllChildrenNumber { path: p } => match tree.get(p) {
            None => Err(ErrorCode::NoNode),
            Some(n) => check_acl(n.acl(), perms::READ, ctx.auth)
                .map(|()| Response::AllChildrenNumber(tree.count_descendants(p))),
        },
        Request::GetEphemerals { prefix } => {
            let all = prefix.is_empty() || prefix == "/";
            let mut v: Vec<String> = tree
                .ephemerals_of(ctx.session_id)
                .filter(|p| all || p.starts_with(prefix.as_str()))
                .cloned()
                .collect();
            v.sort();
            Ok(Response::Ephemerals(v))
        }
        Request::MultiRead(ops) => Ok(Response::Multi(
            ops.iter()
                .map(|op| match op {
                    ReadOp::GetData { path: p, watch } => {
                        match get_data(tree, watches, ctx, p, *watch) {
                            Ok((data, stat)) => OpResult::GetData { data, stat },
                            Err(e) => OpResult::Error(e.code()),
                        }
                    }
                    ReadOp::GetChildren { path: p, watch } => {
                        match get_children(tree, watches, ctx, p, *watch) {
                            Ok((children, _)) => OpResult::GetChildren { children },
                            Err(e) => OpResult::Error(e.code()),
                        }
                    }
                })
                .collect(),
        )),
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
        Request::WhoAmI => Ok(Response::WhoAmI(
            ctx.auth
                .ids
                .iter()
                .filter(|i| i.scheme != "super")
                .map(|i| ClientInfo {
                    auth_scheme: i.scheme.clone(),
                    user: if i.scheme == "digest" {
                        i.id.split(':').next().unwrap_or("").to_string()
                    } else {
                        i.id.clone()
                    },
                })
                .collect(),
        )),
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
