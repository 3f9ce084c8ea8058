//! The core's side of recipe calls named by a request id, and of loaded recipes: the catalog's
//! versions, taking over a call after a lost connection, recorded answers, parked calls recorded
//! and re-armed. The same scripted worker as `recipe_test.rs`.

use wazoo_tree::WaitFor;

use super::tests::*;
use super::*;
use crate::core_test::{create, Harness};

fn create_with(path: &str, data: &[u8]) -> Request {
    let Request::Create(mut c) = create(path, 0) else {
        unreachable!()
    };
    c.data = Some(data.to_vec());
    Request::Create(c)
}

fn set_data_to(path: &str, data: &[u8]) -> Request {
    Request::SetData {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        version: -1,
    }
}

fn delete(path: &str) -> Request {
    Request::Delete {
        path: path.to_owned(),
        version: -1,
    }
}

fn call_of(recipe: &str, op: &str) -> Request {
    Request::RecipeCall(RecipeCall {
        recipe: recipe.into(),
        op: op.into(),
        args: Vec::new(),
        request_id: String::new(),
    })
}

/// Writes recipe `name` from `wasm` as a loader does: the chunk, then the name's node's spec.
fn load_recipe(h: &mut Harness, conn: ConnId, name: &str, wasm: &[u8], sha: &str) {
    let spec = crate::RecipeSpec {
        sha256: sha.into(),
        size: wasm.len() as u64,
        chunks: 1,
    };
    let node = format!("{}/{name}", crate::RECIPES_ROOT);
    let chunk = format!("{node}/{}", spec.chunk_name(0));
    for (i, (path, data)) in [
        ("/wazoo".to_owned(), Vec::new()),
        (crate::RECIPES_ROOT.to_owned(), Vec::new()),
        (node.clone(), b"loading".to_vec()),
        (chunk, wasm.to_vec()),
    ]
    .into_iter()
    .enumerate()
    {
        if h.core.tree().get(&path).is_none() {
            h.request(conn, 100 + i as i32, create_with(&path, &data));
        }
    }
    h.request(conn, 110, set_data_to(&node, spec.encode().as_bytes()));
    h.settle();
    h.replies(conn);
}

/// Loads `name` (as [`load_recipe`]) and takes the install the core asked the runtime for.
fn load_and_take_install(
    h: &mut Harness,
    s: &Scripted,
    name: &str,
    wasm: &[u8],
    sha: &str,
) -> crate::Install {
    load_recipe(h, 1, name, wasm, sha);
    std::mem::take(&mut s.0.lock().unwrap().installs)
        .pop()
        .expect("an install")
}

#[test]
fn a_recipe_loaded_as_znodes_is_installed_and_new_calls_use_it_while_a_parked_call_keeps_its_version(
) {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    // An unknown name is answered by the core.
    h.request(1, 1, call_of("nonesuch", "x"));
    h.settle();
    assert_eq!(codes(&mut h, 1), vec![(1, ErrorCode::NoRecipe.code())]);
    // A call parks on the built-in (version 0).
    h.request(2, 1, call("wait"));
    let (run, start) = started(&s);
    assert_eq!(start.version, 0);
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b""),
    );
    // Version 1 of "test" is loaded as znodes: the core reads it back and asks for it to be
    // compiled; until then new calls run the built-in.
    let sha = "ab".repeat(32);
    load_recipe(&mut h, 1, "test", b"\0asm v1", &sha);
    let installs = std::mem::take(&mut s.0.lock().unwrap().installs);
    assert_eq!(installs.len(), 1, "{installs:?}");
    let install = &installs[0];
    assert_eq!(
        (install.name.as_str(), &install.wasm[..]),
        ("test", &b"\0asm v1"[..])
    );
    assert_eq!(install.sha256, sha);
    h.request(1, 2, call("x"));
    let (run, start) = started(&s);
    assert_eq!(
        start.version, 0,
        "not compiled yet: the current version still runs"
    );
    end(&mut h, run, commit(b""));
    h.input(CoreMsg::RecipeInstalled {
        name: "test".into(),
        version: install.version,
        error: None,
    });
    h.request(1, 3, call("x"));
    let (run, start) = started(&s);
    assert_eq!(
        start.version, install.version,
        "new calls run the new version"
    );
    end(&mut h, run, commit(b""));
    // A call parks on version 1; version 2 is loaded and compiled: version 1 stays for it, and
    // is retired once it is done.
    h.request(1, 31, call("wait"));
    let (on_v1, start) = started(&s);
    assert_eq!(start.version, install.version);
    end(
        &mut h,
        on_v1,
        park(vec![WaitFor::Created("/v2done".into())], None, b""),
    );
    let sha2 = "cd".repeat(32);
    h.connect(5);
    load_recipe(&mut h, 5, "test", b"\0asm v2", &sha2);
    let v2 = std::mem::take(&mut s.0.lock().unwrap().installs)
        .pop()
        .expect("v2 to install");
    h.input(CoreMsg::RecipeInstalled {
        name: "test".into(),
        version: v2.version,
        error: None,
    });
    assert!(
        s.0.lock().unwrap().retired.is_empty(),
        "a parked call runs on version 1"
    );
    h.request(5, 32, create("/v2done", 0));
    h.settle();
    let (woken, start) = started(&s);
    assert_eq!((woken, start.version), (on_v1, install.version));
    end(&mut h, woken, commit(b""));
    crate::core_test::tick(&mut h);
    assert_eq!(
        std::mem::take(&mut s.0.lock().unwrap().retired),
        vec![("test".to_owned(), install.version)],
        "retired once no call uses it"
    );
    // The parked call on the built-in wakes on its own version.
    h.request(1, 4, create("/go", 0));
    h.settle();
    let (_, woken) = started(&s);
    assert_eq!((woken.reason, woken.version), (RunReason::Woken, 0));
    // Removed: new calls are answered by the built-in again.
    let node = format!("{}/test", crate::RECIPES_ROOT);
    h.request(1, 5, delete(&format!("{node}/{sha}-0000")));
    h.request(1, 8, delete(&format!("{node}/{sha2}-0000")));
    h.request(1, 6, delete(&node));
    h.settle();
    h.request(1, 7, call("x"));
    let (_, start) = started(&s);
    assert_eq!(start.version, 0);
}

fn call_with_id(op: &str, request_id: &str) -> Request {
    Request::RecipeCall(RecipeCall {
        recipe: "test".into(),
        op: op.into(),
        args: b"args".to_vec(),
        request_id: request_id.into(),
    })
}

#[test]
fn a_call_retried_with_its_request_id_after_a_connection_loss_gets_the_original_result() {
    let (mut h, s) = harness();
    let hs = h.connect_to(1, 0, vec![0; 16]);
    // A call with a request id commits a create; its connection drops before the reply.
    h.request(1, 1, call_with_id("add", "r1"));
    let (run, _) = started(&s);
    access(&mut h, run, stage_create("/once"));
    h.input(CoreMsg::Closed { conn: 1 });
    end(&mut h, run, commit(b"done"));
    // The client resumes its session elsewhere and sends the call again: the first run's
    // result, and no second run.
    h.connect_to(2, hs.session_id, hs.passwd.clone());
    h.request(2, 1, call_with_id("add", "r1"));
    h.settle();
    assert!(s.starts().is_empty(), "not run again");
    let frames = h.frames(2);
    assert_eq!(frames.len(), 1);
    assert_eq!(body(&frames[0]), (false, b"done".to_vec()));
    // A parked call whose connection drops stays parked for its retry, which takes it over.
    h.request(2, 2, call_with_id("wait", "r2"));
    let (run2, _) = started(&s);
    end(
        &mut h,
        run2,
        park(vec![WaitFor::Created("/go".into())], None, b""),
    );
    h.input(CoreMsg::Closed { conn: 2 });
    h.connect_to(3, hs.session_id, hs.passwd.clone());
    h.request(3, 1, call_with_id("wait", "r2"));
    h.settle();
    assert!(s.starts().is_empty(), "taken over, not run again");
    assert!(h.frames(3).is_empty(), "still parked");
    h.connect(4);
    h.request(4, 1, create("/go", 0));
    h.settle();
    let (woken, _) = started(&s);
    assert_eq!(woken, run2);
    end(&mut h, woken, commit(b"went"));
    let frames = h.frames(3);
    assert_eq!(frames.len(), 1);
    assert_eq!(body(&frames[0]), (false, b"went".to_vec()));
    // The same id again on a live connection: the recorded result, still no run.
    h.request(3, 2, call_with_id("wait", "r2"));
    h.settle();
    assert!(s.starts().is_empty());
    assert_eq!(body(&h.frames(3)[0]), (false, b"went".to_vec()));
}

#[test]
fn a_parked_call_with_a_request_id_is_recorded_and_re_armed_from_its_record() {
    let (mut h, s) = harness();
    let hs = h.connect_to(1, 0, vec![0; 16]);
    h.request(1, 1, call_with_id("wait", "r9"));
    let (run, _) = started(&s);
    end(
        &mut h,
        run,
        park(
            vec![WaitFor::Created("/go".into())],
            Some(h_deadline()),
            b"st",
        ),
    );
    // The park wrote the call's record: an ephemeral node of the session.
    let node = format!("/wazoo/parked/{:016x}-r9", hs.session_id);
    let rec = crate::parked_record::Record::decode(
        h.core.tree().get(&node).expect("recorded").data().unwrap(),
    )
    .expect("decodes");
    assert_eq!(
        (
            rec.recipe.as_str(),
            rec.op.as_str(),
            &rec.state[..],
            rec.deadline_ms
        ),
        ("test", "wait", &b"st"[..], Some(h_deadline()))
    );
    assert_eq!(rec.on, vec![WaitFor::Created("/go".into())]);
    // What a restarted server does with it: the call re-armed (its connection gone), run once at
    // the next tick, then taken over by the client's retry.
    h.input(CoreMsg::Closed { conn: 1 });
    h.core.runs = Default::default();
    h.core.load_parked();
    crate::core_test::tick(&mut h);
    let (rerun, start) = started(&s);
    assert_eq!(start.reason, RunReason::Woken);
    assert_eq!(start.state.as_deref(), Some(&b"st"[..]));
    end(
        &mut h,
        rerun,
        park(vec![WaitFor::Created("/go".into())], None, b"st2"),
    );
    h.connect_to(2, hs.session_id, hs.passwd.clone());
    h.request(2, 1, call_with_id("wait", "r9"));
    h.settle();
    assert!(s.starts().is_empty(), "taken over, not run again");
    h.connect(3);
    h.request(3, 1, create("/go", 0));
    h.settle();
    let (woken, _) = started(&s);
    end(&mut h, woken, commit(b"gone"));
    assert_eq!(body(&h.frames(2)[0]), (false, b"gone".to_vec()));
    assert!(
        h.core.tree().get(&node).is_none(),
        "the call's end deleted its record"
    );
    // A call that ends writing nothing deletes it by a txn of its own.
    h.request(2, 2, call_with_id("wait", "r10"));
    let (run, _) = started(&s);
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/never".into())], None, b""),
    );
    let node10 = format!("/wazoo/parked/{:016x}-r10", hs.session_id);
    assert!(h.core.tree().get(&node10).is_some());
    h.request(3, 2, create("/never", 0));
    h.settle();
    let (woken, _) = started(&s);
    end(
        &mut h,
        woken,
        RunEnd::Abort {
            error: b"no".to_vec(),
        },
    );
    assert!(h.core.tree().get(&node10).is_none());
    assert_eq!(body(&h.frames(2)[0]), (true, b"no".to_vec()));
}

fn h_deadline() -> i64 {
    1_700_000_999_000
}

#[test]
fn a_session_keeps_few_calls_parked_for_a_retry_however_often_it_reconnects() {
    let (mut h, s) = harness();
    let hs = h.connect_to(1, 0, vec![0; 16]);
    for i in 0..8u64 {
        let conn = 10 + i;
        h.connect_to(conn, hs.session_id, hs.passwd.clone());
        h.request(conn, 1, call_with_id("wait", &format!("r{i}")));
        let (run, _) = started(&s);
        end(
            &mut h,
            run,
            park(vec![WaitFor::Created("/never".into())], None, b""),
        );
        h.input(CoreMsg::Closed { conn });
        h.settle();
    }
    assert_eq!(h.core.runs.parked(), MAX_DETACHED_PER_SESSION);
    let records = h
        .core
        .tree()
        .get("/wazoo/parked")
        .map_or(0, |n| n.children().count());
    assert_eq!(
        records, MAX_DETACHED_PER_SESSION,
        "the dropped calls' records went too"
    );
}

#[test]
fn a_call_of_a_recipe_still_being_compiled_waits_for_it_then_runs_on_it_or_is_answered_norecipe() {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    // "fresh" is loaded (as after a restart, or a first load): the runtime compiles it.
    let install = load_and_take_install(&mut h, &s, "fresh", b"\0asm fresh", &"ab".repeat(32));
    // A call arriving meanwhile waits for the compile, and so does what its connection sends
    // after it.
    h.request(2, 1, call_of("fresh", "x"));
    h.request(2, 2, create("/after", 0));
    h.settle();
    assert!(s.starts().is_empty(), "not compiled yet: nothing runs");
    assert!(h.replies(2).is_empty(), "neither is answered yet");
    h.input(CoreMsg::RecipeInstalled {
        name: "fresh".into(),
        version: install.version,
        error: None,
    });
    let (run, start) = started(&s);
    assert_eq!(
        (start.recipe.as_str(), start.version),
        ("fresh", install.version)
    );
    end(&mut h, run, commit(b"ran"));
    assert_eq!(
        codes(&mut h, 2),
        vec![(1, 0), (2, 0)],
        "the call, then the create behind it"
    );
    // A recipe whose compile fails: the waiting call is answered NORECIPE.
    let install = load_and_take_install(&mut h, &s, "broken", b"\0asm broken", &"cd".repeat(32));
    h.request(2, 3, call_of("broken", "x"));
    h.settle();
    assert!(s.starts().is_empty());
    h.input(CoreMsg::RecipeInstalled {
        name: "broken".into(),
        version: install.version,
        error: Some("not a component".into()),
    });
    h.settle();
    assert!(s.starts().is_empty());
    assert_eq!(codes(&mut h, 2), vec![(3, ErrorCode::NoRecipe.code())]);
    // A name nobody loaded is still answered at once.
    h.request(2, 4, call_of("nonesuch", "x"));
    h.settle();
    assert_eq!(codes(&mut h, 2), vec![(4, ErrorCode::NoRecipe.code())]);
}

#[test]
fn a_close_session_behind_a_call_waiting_for_a_compile_cancels_it_and_closes() {
    let (mut h, s) = harness();
    h.connect(1);
    h.connect(2);
    let install = load_and_take_install(&mut h, &s, "fresh", b"\0asm fresh", &"ab".repeat(32));
    h.request(2, 1, call_of("fresh", "x"));
    h.request(2, 2, Request::CloseSession);
    h.settle();
    assert_eq!(
        codes(&mut h, 2),
        vec![(1, ErrorCode::SessionExpired.code()), (2, 0)],
        "the waiting call is cancelled and the session closes"
    );
    h.input(CoreMsg::RecipeInstalled {
        name: "fresh".into(),
        version: install.version,
        error: None,
    });
    h.settle();
    assert!(s.starts().is_empty(), "the cancelled call never runs");
}

/// After a restart the loaded recipes compile again, off the core (from the artifact cache in
/// milliseconds, or for a minute without it): a parked call re-armed on a loaded version waits
/// for that compile instead of running on a version the runtime does not hold yet (which failed
/// it RECIPEFAILED and answered its retry so).
#[test]
fn a_re_armed_call_of_a_loaded_recipe_waits_for_its_compile_after_a_restart() {
    let (mut h, s) = harness();
    let hs = h.connect_to(1, 0, vec![0; 16]);
    let install = load_and_take_install(&mut h, &s, "fresh", b"\0asm fresh", &"ab".repeat(32));
    h.input(CoreMsg::RecipeInstalled {
        name: "fresh".into(),
        version: install.version,
        error: None,
    });
    h.request(
        1,
        2,
        Request::RecipeCall(RecipeCall {
            recipe: "fresh".into(),
            op: "wait".into(),
            args: Vec::new(),
            request_id: "r1".into(),
        }),
    );
    let (run, start) = started(&s);
    assert_eq!(start.version, install.version);
    end(
        &mut h,
        run,
        park(vec![WaitFor::Created("/go".into())], None, b"st"),
    );
    // A restart: the catalog and the runs start empty, the recipe compiles again.
    h.input(CoreMsg::Closed { conn: 1 });
    h.core.runs = Default::default();
    h.core.catalog = Default::default();
    h.core.load_catalog();
    let again = std::mem::take(&mut s.0.lock().unwrap().installs)
        .pop()
        .expect("compiled again at start");
    assert_eq!(again.version, install.version);
    crate::core_test::tick(&mut h);
    assert!(
        s.starts().is_empty(),
        "the re-armed run waits: its version is not compiled yet"
    );
    h.input(CoreMsg::RecipeInstalled {
        name: "fresh".into(),
        version: install.version,
        error: None,
    });
    let (_, start) = started(&s);
    assert_eq!(
        (start.version, start.reason, start.state.as_deref()),
        (install.version, RunReason::Woken, Some(&b"st"[..]))
    );
    let _ = hs;
}

/// A loader learns what became of its load from `/wazoo/recipe-status/<name>` (readable by all,
/// written by the server only): the version compiled and current, or the compile's error.
#[test]
fn each_loaded_versions_compile_is_recorded_where_its_loader_can_read_it() {
    let (mut h, s) = harness();
    h.connect(1);
    let good = load_and_take_install(&mut h, &s, "good", b"\0asm good", &"ab".repeat(32));
    h.input(CoreMsg::RecipeInstalled {
        name: "good".into(),
        version: good.version,
        error: None,
    });
    h.settle();
    let status = |h: &Harness, name: &str| {
        let node = h
            .core
            .tree()
            .get(&format!("{}/{name}", crate::RECIPE_STATUS_ROOT))?;
        Some(String::from_utf8(node.data().unwrap_or_default().to_vec()).unwrap())
    };
    assert_eq!(
        status(&h, "good").as_deref(),
        Some(format!("version={:#x} state=current", good.version).as_str())
    );
    let bad = load_and_take_install(&mut h, &s, "bad", b"not wasm", &"cd".repeat(32));
    h.input(CoreMsg::RecipeInstalled {
        name: "bad".into(),
        version: bad.version,
        error: Some("the component does not load as a recipe: magic".into()),
    });
    h.settle();
    assert_eq!(
        status(&h, "bad").as_deref(),
        Some(
            format!(
                "version={:#x} state=failed error=the component does not load as a recipe: magic",
                bad.version
            )
            .as_str()
        )
    );
    // Reported again (a restart): nothing is written when nothing changed.
    let zxid = h.core.tree().last_applied();
    h.input(CoreMsg::RecipeInstalled {
        name: "good".into(),
        version: good.version,
        error: None,
    });
    h.settle();
    assert_eq!(
        h.core.tree().last_applied(),
        zxid,
        "no txn for the same status"
    );
    // Clients read it and cannot write it.
    h.request(
        1,
        50,
        set_data_to(&format!("{}/good", crate::RECIPE_STATUS_ROOT), b"x"),
    );
    h.settle();
    assert_eq!(codes(&mut h, 1), vec![(50, ErrorCode::NoAuth.code())]);
    // A removed recipe's status goes with it.
    h.request(
        1,
        51,
        delete(&format!(
            "{}/good/{}-0000",
            crate::RECIPES_ROOT,
            "ab".repeat(32)
        )),
    );
    h.request(1, 52, delete(&format!("{}/good", crate::RECIPES_ROOT)));
    h.settle();
    h.replies(1);
    assert_eq!(status(&h, "good"), None);
}
