//! The leader latch recipe (leader election): among the candidates at a path, the oldest is the
//! leader, one at a time; anyone can see who it is; a candidate waits for leadership with one
//! call that waits on the server.
//!
//! The latch is a container whose children are the candidates, one ephemeral sequential node
//! per session, `<session>-<sequence>`, holding the candidate's id. The leader is the lowest
//! sequence. A waiting candidate parks on its predecessor's deletion (no herd); a session's end
//! (or `leave`) hands leadership to the next.
//!
//! - `join {path, id?}` → `{leader, node}`: becomes a candidate (once per session) and says
//!   whether it leads, without waiting.
//! - `await {path, id?, timeout_ms?}` → `{leader, node}`: joins if not a candidate yet, then
//!   waits until it leads, or until the timeout (`leader: false`, still a candidate).
//! - `leader {path}` → `{id, node}` of the leader, or nil if there is none.
//! - `leave {path}` → `{was_leader}`; abort `not a candidate`.

use serde::{Deserialize, Serialize};
use wazoo_guest::context::session_prefix;
use wazoo_guest::{bail, name_of, tree, Call, CreateMode, Outcome, Reason};
use wazoo_guest::{Result, Watch};

#[derive(Deserialize)]
struct Args {
    path: String,
    /// The candidate's id: text, the node's data (readable by any client).
    id: Option<String>,
    timeout_ms: Option<i64>,
}

#[derive(Serialize)]
struct Standing {
    leader: bool,
    node: String,
}

/// The session's candidate node's name, made if `join` and there is none.
fn candidate(a: &Args, queue: &mut Vec<String>, join: bool) -> Result<String> {
    let mine = session_prefix();
    if let Some(n) = queue.iter().find(|n| n.starts_with(&mine)) {
        return Ok(n.clone());
    }
    if !join {
        bail!("not a candidate");
    }
    tree::ensure(&a.path, CreateMode::Container)?;
    let id = a.id.clone().unwrap_or_default();
    let path = format!("{}/{mine}", a.path);
    let created = tree::create(&path, id.as_bytes(), CreateMode::EphemeralSequential)?;
    queue.push(name_of(&created).to_owned());
    Ok(name_of(&created).to_owned())
}

fn join(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    let mut queue = tree::queue(&a.path)?;
    let own = candidate(&a, &mut queue, true)?;
    let leader = queue.first() == Some(&own);
    let node = format!("{}/{own}", a.path);
    Outcome::done(&Standing { leader, node })
}

fn await_leadership(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    let mut queue = tree::queue(&a.path)?;
    let own = match candidate(&a, &mut queue, call.is_initial()) {
        Ok(own) => own,
        Err(_) => bail!("no longer a candidate"),
    };
    let node = format!("{}/{own}", a.path);
    let at = queue.iter().position(|n| *n == own).expect("listed");
    if at == 0 {
        return Outcome::done(&Standing { leader: true, node });
    }
    if call.reason == Reason::TimedOut {
        return Outcome::done(&Standing {
            leader: false,
            node,
        });
    }
    let on = vec![Watch::NodeDeleted(format!("{}/{}", a.path, queue[at - 1]))];
    Outcome::park(on, call.deadline_ms(a.timeout_ms), &())
}

fn leader(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    #[derive(Serialize)]
    struct Leader {
        id: String,
        node: String,
    }
    let queue = tree::queue(&a.path)?;
    let Some(first) = queue.first() else {
        return Outcome::done(&());
    };
    let node = format!("{}/{first}", a.path);
    let data = tree::get(&node)?.data;
    let id = String::from_utf8_lossy(&data).into_owned();
    Outcome::done(&Some(Leader { id, node }))
}

fn leave(call: &Call) -> Result<Outcome> {
    let a: Args = call.args()?;
    let mut queue = tree::queue(&a.path)?;
    let own = candidate(&a, &mut queue, false)?;
    tree::delete(&format!("{}/{own}", a.path), None)?;
    #[derive(Serialize)]
    struct Left {
        was_leader: bool,
    }
    let was_leader = queue.first() == Some(&own);
    Outcome::done(&Left { was_leader })
}

fn run(call: Call) -> Result<Outcome> {
    match call.op.as_str() {
        "join" => join(&call),
        "await" => await_leadership(&call),
        "leader" => leader(&call),
        "leave" => leave(&call),
        other => bail!("no op {other}"),
    }
}

wazoo_guest::recipe!(run);
