//! The queue recipe: a FIFO queue with priorities and exactly-once take. A take is one call that
//! waits on the server for an item; takers are served in arrival order, and an item's arrival
//! wakes one of them.
//!
//! Layout under the queue's path (a container):
//! - `item-<priority>-<sequence>`: the items, persistent sequential nodes holding the data.
//!   Lower priorities come first, then arrival order (the priority is offset into 10 digits so
//!   names sort right).
//! - `claims/<item>`: an ephemeral node per taken item, owned by the taker's session. A taken
//!   item stays until that session consumes it (deleting both) or gives it back; if the session
//!   ends, the claim goes with it and the item is taken again, so none is lost or taken twice.
//! - `takers/<session>-<sequence>`: the takers waiting, ephemeral sequential nodes. The first
//!   parks on changes of the items and claims, each later one on its predecessor's deletion.
//!
//! - `put {path, data, priority?}` → `{item}` (data: bytes).
//! - `take {path, timeout_ms?, consume?}` → `{item, data}`, or after the timeout `{item: nil}`.
//!   With `consume: true` the item is removed in the same txn (at-most-once, no claim).
//! - `consume {path, item}` → `{consumed: true}`; abort `not taken by this session`.
//! - `give_back {path, item}` → `{given_back: true}`; abort `not taken by this session`.
//! - `size {path}` → `{items, taken}`.

use serde::{Deserialize, Serialize};
use wazoo_guest::context::{self, session_prefix};
use wazoo_guest::{bail, name_of, tree, Call, CreateMode, ErrorCode, Outcome};
use wazoo_guest::{Reason, Result, Watch};

#[derive(Deserialize)]
struct Put {
    path: String,
    #[serde(with = "wazoo_guest::serde_bytes")]
    data: Vec<u8>,
    priority: Option<i32>,
}

#[derive(Deserialize)]
struct Take {
    path: String,
    timeout_ms: Option<i64>,
    consume: Option<bool>,
}

#[derive(Deserialize)]
struct Item {
    path: String,
    item: String,
}

#[derive(Serialize, Deserialize)]
struct Waiting {
    taker: String,
}

#[derive(Serialize)]
struct Taken {
    item: Option<String>,
    #[serde(with = "wazoo_guest::serde_bytes")]
    data: Vec<u8>,
}

fn put(call: &Call) -> Result<Outcome> {
    let p: Put = call.args()?;
    tree::ensure(&p.path, CreateMode::Container)?;
    let priority = i64::from(p.priority.unwrap_or(0)) - i64::from(i32::MIN);
    let base = format!("{}/item-{priority:010}-", p.path);
    let created = tree::create(&base, &p.data, CreateMode::PersistentSequential)?;
    #[derive(Serialize)]
    struct Queued {
        item: String,
    }
    Outcome::done(&Queued {
        item: name_of(&created).to_owned(),
    })
}

/// The items in queue order and the names of those taken.
fn items(queue: &str) -> Result<(Vec<String>, Vec<String>)> {
    let mut items = tree::children_or_none(queue)?;
    items.retain(|n| n.starts_with("item-"));
    items.sort();
    let claims = tree::children_or_none(&format!("{queue}/claims"))?;
    Ok((items, claims))
}

/// Claims (or consumes) the first item not taken, if there is one.
fn take_first(queue: &str, consume: bool) -> Result<Option<Taken>> {
    let (items, claims) = items(queue)?;
    let Some(item) = items.iter().find(|i| claims.binary_search(i).is_err()) else {
        return Ok(None);
    };
    let path = format!("{queue}/{item}");
    let data = tree::get(&path)?.data;
    if consume {
        tree::delete(&path, None)?;
    } else {
        tree::ensure(&format!("{queue}/claims"), CreateMode::Container)?;
        tree::create(
            &format!("{queue}/claims/{item}"),
            b"",
            CreateMode::Ephemeral,
        )?;
    }
    Ok(Some(Taken {
        item: Some(item.clone()),
        data,
    }))
}

fn take(call: &Call) -> Result<Outcome> {
    let t: Take = call.args()?;
    let queue = t.path.as_str();
    let consume = t.consume.unwrap_or(false);
    let takers_dir = format!("{queue}/takers");
    let mut takers = tree::queue(&takers_dir)?;
    let own = match call.state::<Waiting>()? {
        Some(w) if takers.contains(&w.taker) => Some(w.taker),
        Some(_) => bail!("the taker is gone"),
        // A session's calls run one at a time: a taker of the session on a first run is a lost
        // call's (the connection dropped), and this retry takes its place.
        None => takers
            .iter()
            .find(|n| n.starts_with(&session_prefix()))
            .cloned(),
    };
    let first = match &own {
        Some(o) => takers.first() == Some(o),
        None => takers.is_empty(),
    };
    if first {
        if let Some(taken) = take_first(queue, consume)? {
            if let Some(o) = &own {
                // Hands the front to the next taker.
                tree::delete(&format!("{takers_dir}/{o}"), None)?;
            }
            return Outcome::done(&taken);
        }
    }
    if call.reason == Reason::TimedOut {
        if let Some(o) = &own {
            tree::delete(&format!("{takers_dir}/{o}"), None)?;
        }
        return Outcome::done(&Taken {
            item: None,
            data: Vec::new(),
        });
    }
    let own = match own {
        Some(o) => o,
        None => {
            tree::ensure(&takers_dir, CreateMode::Container)?;
            let base = format!("{takers_dir}/{}", session_prefix());
            let created = tree::create(&base, b"", CreateMode::EphemeralSequential)?;
            takers.push(name_of(&created).to_owned());
            name_of(&created).to_owned()
        }
    };
    let at = takers.iter().position(|n| *n == own).expect("listed");
    let on = if at == 0 {
        vec![
            Watch::ChildrenChanged(queue.to_owned()),
            Watch::ChildrenChanged(format!("{queue}/claims")),
        ]
    } else {
        vec![Watch::NodeDeleted(format!(
            "{takers_dir}/{}",
            takers[at - 1]
        ))]
    };
    Outcome::park(on, call.deadline_ms(t.timeout_ms), &Waiting { taker: own })
}

/// The claim of `item` if the calling session holds it.
fn own_claim(i: &Item) -> Result<String> {
    let claim = format!("{}/claims/{}", i.path, name_of(&i.item));
    match tree::exists(&claim) {
        Some(stat) if stat.ephemeral_owner == context::session_id() => Ok(claim),
        _ => bail!("not taken by this session"),
    }
}

fn consume(call: &Call) -> Result<Outcome> {
    let i: Item = call.args()?;
    let claim = own_claim(&i)?;
    tree::delete(&claim, None)?;
    match tree::delete(&format!("{}/{}", i.path, name_of(&i.item)), None) {
        Ok(()) => {}
        Err(ErrorCode::NoNode) => bail!("the item is gone"),
        Err(e) => return Err(e.into()),
    }
    #[derive(Serialize)]
    struct Consumed {
        consumed: bool,
    }
    Outcome::done(&Consumed { consumed: true })
}

fn give_back(call: &Call) -> Result<Outcome> {
    let i: Item = call.args()?;
    tree::delete(&own_claim(&i)?, None)?;
    #[derive(Serialize)]
    struct GivenBack {
        given_back: bool,
    }
    Outcome::done(&GivenBack { given_back: true })
}

fn size(call: &Call) -> Result<Outcome> {
    #[derive(Deserialize)]
    struct Size {
        path: String,
    }
    #[derive(Serialize)]
    struct Sizes {
        items: usize,
        taken: usize,
    }
    let Size { path } = call.args()?;
    let (items, claims) = items(&path)?;
    let taken = items
        .iter()
        .filter(|i| claims.binary_search(i).is_ok())
        .count();
    Outcome::done(&Sizes {
        items: items.len(),
        taken,
    })
}

fn run(call: Call) -> Result<Outcome> {
    match call.op.as_str() {
        "put" => put(&call),
        "take" => take(&call),
        "consume" => consume(&call),
        "give_back" => give_back(&call),
        "size" => size(&call),
        other => bail!("no op {other}"),
    }
}

wazoo_guest::recipe!(run);
