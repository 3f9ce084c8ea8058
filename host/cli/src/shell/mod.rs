//! `wazoo shell`: a zkCli-like shell on top of `wazoo-client`.
//!
//! It keeps zkCli's (ZooKeeper 3.8) habits: the same commands and flags (`ls [-s] [-w] [-R]`,
//! `get [-s] [-w]`, `create [-s] [-e] [-c] [-t ttl] path [data] [acl]`, `setAcl`, `deleteall`,
//! ...), the same output formats (`[a, b]`, the 11 stat lines with `0x` zxids and Java dates,
//! `'world,'anyone` / `: cdrwa`, `Created /p`) and the same error texts (`Node does not exist: /x`,
//! `Insufficient permission : /x`, ...), printed to stderr.
//!
//! * `-c CMD` (repeatable) or trailing `CMD ARGS...` run those commands and exit: status 0, 1 when
//!   a command failed (the first failure stops the run), 2 for a usage error.
//! * Otherwise lines are read from stdin; with a terminal a prompt `[zk: addr(CONNECTED) N] ` is
//!   shown. Watch events are printed as zkCli does (`WATCHER::` then `WatchedEvent state:...
//!   type:... path:...`). The exit status is the last command's, like zkCli. EOF or `quit` closes
//!   the session.
//! * Differences from zkCli: no connection retries (an unreachable server is an error), no
//!   reconnect after a connection loss, dates are printed in UTC, no `history`/`redo`/quota/
//!   `config`/`reconfig` commands, and `removewatches -l` is accepted but has no local effect.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use wazoo_client::{
    add_watch_mode, create_request, first_error, ops, validate_path, watcher_type, Acl, Client,
    ClientError, ClientState, ConnectOptions, CreateMode, ErrorCode, MultiOp, Request, Response,
    Stat, WatchedEvent,
};

/// `wazoo shell` options.
#[derive(clap::Args, Debug, Clone)]
pub struct ShellArgs {
    /// Server address, `host:port` or a comma-separated list tried in order.
    #[arg(short = 's', long = "server", default_value = "127.0.0.1:2181")]
    pub server: String,
    /// Run this command and exit (repeatable; stops at the first failing command).
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    pub command: Vec<String>,
    /// Requested session timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 30000)]
    pub timeout_ms: u64,
    /// Accept a read-only server.
    #[arg(short = 'r', long = "read-only")]
    pub read_only: bool,
    /// zkCli's one-shot form: a command and its arguments, run after any `-c` commands.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD ARGS"
    )]
    pub args: Vec<String>,
}

/// Runs the shell; returns the process exit status.
pub async fn run(args: ShellArgs) -> anyhow::Result<i32> {
    let opts = ConnectOptions {
        session_timeout: Duration::from_millis(args.timeout_ms),
        read_only: args.read_only,
        ..ConnectOptions::default()
    };
    let mut batch: Vec<Vec<String>> = args.command.iter().map(|c| tokenize(c)).collect();
    if !args.args.is_empty() {
        batch.push(args.args.clone());
    }
    let mut shell = Shell::connect(&args.server, opts).await?;
    if !batch.is_empty() {
        return Ok(shell.run_batch(batch).await);
    }
    shell.run_interactive().await
}

mod format;
mod parse;

use format::*;
use parse::*;

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

/// Why a command failed; the exit status is 1 for `Failed`, 2 for `Usage`.
#[derive(Debug)]
enum CmdError {
    Usage(String),
    Failed(String),
}

impl CmdError {
    fn status(&self) -> i32 {
        match self {
            CmdError::Usage(_) => 2,
            CmdError::Failed(_) => 1,
        }
    }

    fn print(&self) {
        match self {
            CmdError::Usage(m) | CmdError::Failed(m) => eprintln!("{m}"),
        }
    }
}

enum Flow {
    Continue,
    Quit,
}

fn failed(e: &ClientError, path: &str) -> CmdError {
    CmdError::Failed(error_message(e, path))
}

fn check_path(path: &str, sequential: bool) -> Result<(), CmdError> {
    validate_path(path, sequential).map_err(CmdError::Failed)
}

fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Subtree walk of zkCli's `ls -R` / `setAcl -R` (`ZKUtil.visitSubTreeDFS`): the root, then for
/// each node all of its sorted children before descending into them. Nodes that vanish meanwhile
/// are skipped.
async fn visit_subtree(
    client: &Client,
    root: &str,
    watch: bool,
    mut visit: impl FnMut(&str),
) -> Result<(), ClientError> {
    client.get_data_opt(root, watch).await?;
    visit(root);
    let mut stack = vec![root.to_string()];
    while let Some(node) = stack.pop() {
        let mut children = match client.get_children(&node, watch).await {
            Ok(c) => c,
            Err(ClientError::Server(ErrorCode::NoNode)) => continue,
            Err(e) => return Err(e),
        };
        children.sort();
        let paths: Vec<String> = children.iter().map(|c| child_path(&node, c)).collect();
        for p in &paths {
            visit(p);
        }
        stack.extend(paths.into_iter().rev());
    }
    Ok(())
}

/// `ZKUtil.deleteRecursive`: lists the subtree breadth-first (a level at a time, pipelined), then
/// deletes it leaves first in multi batches of at most `batch` deletes (and ~512 KiB), all
/// pipelined. `Ok(false)` if some batch failed.
async fn delete_all(client: &Client, root: &str, batch: usize) -> Result<bool, ClientError> {
    const MAX_INFLIGHT: usize = 4096;
    const MAX_BATCH_BYTES: usize = 512 * 1024;
    let mut order = vec![root.to_string()];
    let mut frontier = vec![(root.to_string(), client.get_children(root, false).await?)];
    loop {
        let level: Vec<String> = frontier
            .drain(..)
            .flat_map(|(parent, kids)| {
                kids.into_iter()
                    .map(move |k| child_path(&parent, &k))
                    .collect::<Vec<_>>()
            })
            .collect();
        if level.is_empty() {
            break;
        }
        for chunk in level.chunks(MAX_INFLIGHT) {
            let futs: Vec<_> = chunk
                .iter()
                .map(|p| {
                    client.submit(Request::GetChildren {
                        path: p.clone(),
                        watch: false,
                    })
                })
                .collect();
            for (p, f) in chunk.iter().zip(futs) {
                match f.await {
                    Ok(Response::Children(c)) => frontier.push((p.clone(), c)),
                    Ok(other) => {
                        return Err(ClientError::Protocol(format!(
                            "unexpected getChildren reply {other:?}"
                        )))
                    }
                    Err(ClientError::Server(ErrorCode::NoNode)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        order.extend(level);
    }
    let mut batches: Vec<Vec<MultiOp>> = Vec::new();
    let mut cur: Vec<MultiOp> = Vec::new();
    let mut bytes = 0;
    for p in order.iter().rev() {
        if cur.len() >= batch || bytes + p.len() > MAX_BATCH_BYTES {
            batches.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += p.len() + 16;
        cur.push(ops::delete(p, -1));
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    let futs: Vec<_> = batches
        .into_iter()
        .map(|b| client.submit(Request::Multi(b)))
        .collect();
    let mut ok = true;
    for f in futs {
        match f.await {
            Ok(Response::Multi(results)) => ok &= first_error(&results).is_none(),
            Ok(_) => ok = false,
            Err(e @ (ClientError::ConnectionLoss | ClientError::Closed)) => return Err(e),
            Err(_) => ok = false,
        }
    }
    Ok(ok)
}

/// The stdin line reader: a plain thread (tokio's stdin cannot be cancelled and can hold up the
/// runtime's shutdown), handing lines over a channel.
fn spawn_line_reader() -> mpsc::UnboundedReceiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let stop = line.is_err();
            if tx.send(line).is_err() || stop {
                return;
            }
        }
    });
    rx
}

async fn next_event(
    rx: &mut Option<mpsc::UnboundedReceiver<WatchedEvent>>,
) -> Option<WatchedEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

struct Shell {
    server: String,
    opts: ConnectOptions,
    client: Client,
    events: Option<mpsc::UnboundedReceiver<WatchedEvent>>,
    print_watches: bool,
    count: u64,
}

impl Shell {
    async fn connect(server: &str, opts: ConnectOptions) -> anyhow::Result<Shell> {
        let client = Client::connect(server, opts.clone())
            .await
            .with_context(|| format!("cannot connect to {server}"))?;
        let events = client.events();
        Ok(Shell {
            server: server.to_string(),
            opts,
            client,
            events,
            print_watches: true,
            count: 0,
        })
    }

    fn prompt(&self) -> String {
        let state = match self.client.state() {
            ClientState::Connected if self.client.is_read_only() => "CONNECTEDREADONLY",
            ClientState::Connected => "CONNECTED",
            ClientState::Closing | ClientState::Closed => "CLOSED",
            ClientState::Disconnected => "NOT_CONNECTED",
        };
        format!("[zk: {}({}) {}] ", self.server, state, self.count)
    }

    fn print_event(&self, ev: &WatchedEvent) {
        if self.print_watches {
            println!("\nWATCHER::\n\n{ev}");
        }
    }

    fn drain_events(&mut self) {
        let mut got = Vec::new();
        if let Some(rx) = &mut self.events {
            while let Ok(ev) = rx.try_recv() {
                got.push(ev);
            }
        }
        for ev in &got {
            self.print_event(ev);
        }
    }

    async fn run_batch(&mut self, batch: Vec<Vec<String>>) -> i32 {
        let mut status = 0;
        for tokens in batch {
            status = match self.run_tokens(&tokens).await {
                Ok(Flow::Continue) => 0,
                Ok(Flow::Quit) => break,
                Err(e) => {
                    e.print();
                    e.status()
                }
            };
            if status != 0 {
                break;
            }
        }
        let _ = self.client.close().await;
        status
    }

    async fn run_interactive(&mut self) -> anyhow::Result<i32> {
        let tty = std::io::stdin().is_terminal();
        let mut lines = spawn_line_reader();
        let mut status = 0;
        loop {
            if tty {
                print!("{}", self.prompt());
                let _ = std::io::stdout().flush();
            }
            let line = loop {
                tokio::select! {
                    biased;
                    Some(ev) = next_event(&mut self.events) => {
                        self.print_event(&ev);
                        if tty {
                            print!("{}", self.prompt());
                            let _ = std::io::stdout().flush();
                        }
                    }
                    l = lines.recv() => break l,
                }
            };
            let line = match line {
                None => break,
                Some(Ok(l)) => l,
                Some(Err(e)) => return Err(e).context("reading stdin"),
            };
            let tokens = tokenize(&line);
            if tokens.is_empty() {
                continue;
            }
            self.count += 1;
            match self.run_tokens(&tokens).await {
                Ok(Flow::Continue) => status = 0,
                Ok(Flow::Quit) => {
                    status = 0;
                    break;
                }
                Err(e) => {
                    e.print();
                    status = e.status();
                }
            }
            self.drain_events();
        }
        let _ = self.client.close().await;
        Ok(status)
    }

    async fn run_tokens(&mut self, tokens: &[String]) -> Result<Flow, CmdError> {
        match parse_command(tokens).map_err(CmdError::Usage)? {
            None => Ok(Flow::Continue),
            Some(cmd) => self.exec(cmd).await,
        }
    }

    async fn exec(&mut self, cmd: Command) -> Result<Flow, CmdError> {
        match cmd {
            Command::Quit => return Ok(Flow::Quit),
            Command::Help => {
                print!("{}", help_text());
                return Ok(Flow::Continue);
            }
            Command::Version => {
                println!("wazoo shell {}", env!("CARGO_PKG_VERSION"));
                return Ok(Flow::Continue);
            }
            Command::PrintWatches(v) => {
                match v {
                    Some(on) => self.print_watches = on,
                    None => println!(
                        "printwatches is {}",
                        if self.print_watches { "on" } else { "off" }
                    ),
                }
                return Ok(Flow::Continue);
            }
            Command::Connect { server } => {
                if let Some(s) = server {
                    self.server = s;
                }
                let _ = self.client.close().await;
                let client = Client::connect(&self.server, self.opts.clone())
                    .await
                    .map_err(|e| {
                        CmdError::Failed(format!("cannot connect to {}: {e}", self.server))
                    })?;
                self.events = client.events();
                self.client = client;
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        if matches!(
            self.client.state(),
            ClientState::Closed | ClientState::Closing
        ) {
            return Err(CmdError::Failed("Not connected".into()));
        }
        let c = &self.client;
        match cmd {
            Command::Ls {
                path,
                stat,
                watch,
                recursive,
            } => {
                check_path(&path, false)?;
                if recursive {
                    visit_subtree(c, &path, watch, |p| println!("{p}"))
                        .await
                        .map_err(|e| failed(&e, &path))?;
                } else if stat {
                    let (children, st) = c
                        .get_children2(&path, watch)
                        .await
                        .map_err(|e| failed(&e, &path))?;
                    println!("{}", format_children(children));
                    print!("{}", format_stat(&st));
                } else {
                    let children = c
                        .get_children(&path, watch)
                        .await
                        .map_err(|e| failed(&e, &path))?;
                    println!("{}", format_children(children));
                }
            }
            Command::Get { path, stat, watch } => {
                check_path(&path, false)?;
                let (data, st) = c
                    .get_data_opt(&path, watch)
                    .await
                    .map_err(|e| failed(&e, &path))?;
                match data {
                    Some(d) => println!("{}", String::from_utf8_lossy(&d)),
                    None => println!("null"),
                }
                if stat {
                    print!("{}", format_stat(&st));
                }
            }
            Command::Set {
                path,
                data,
                version,
                stat,
            } => {
                check_path(&path, false)?;
                let st = c
                    .set_data(&path, data.as_bytes(), version)
                    .await
                    .map_err(|e| failed(&e, &path))?;
                if stat {
                    print!("{}", format_stat(&st));
                }
            }
            Command::Create {
                path,
                data,
                acl,
                mode,
                ttl,
            } => {
                check_path(&path, mode.is_sequential())?;
                let acl = match acl {
                    Some(text) => {
                        let (acl, warnings) = parse_acl(&text);
                        for w in warnings {
                            eprintln!("{w}");
                        }
                        acl
                    }
                    None => Acl::open_unsafe(),
                };
                let req = create_request(
                    &path,
                    data.as_deref().map(str::as_bytes),
                    &acl,
                    mode,
                    ttl,
                    false,
                )
                .map_err(|e| CmdError::Usage(e.to_string()))?;
                let created = match c.submit(Request::Create(req)).await {
                    Ok(Response::Create { path } | Response::Create2 { path, .. }) => path,
                    Ok(other) => {
                        return Err(CmdError::Failed(format!("unexpected reply {other:?}")))
                    }
                    Err(ClientError::Server(ErrorCode::EphemeralOnLocalSession)) => {
                        return Err(CmdError::Failed(
                            "Unable to create ephemeral node on a local session".into(),
                        ))
                    }
                    Err(e) => return Err(failed(&e, &path)),
                };
                println!("Created {created}");
            }
            Command::Delete { path, version } => {
                check_path(&path, false)?;
                c.delete(&path, version)
                    .await
                    .map_err(|e| failed(&e, &path))?;
            }
            Command::DeleteAll { path, batch } => {
                check_path(&path, false)?;
                let ok = delete_all(c, &path, batch)
                    .await
                    .map_err(|e| failed(&e, &path))?;
                if !ok {
                    return Err(CmdError::Failed(
                        "Failed to delete some node(s) in the subtree!".into(),
                    ));
                }
            }
            Command::Stat { path, watch } => {
                check_path(&path, false)?;
                match c.exists(&path, watch).await {
                    Ok(Some(st)) => print!("{}", format_stat(&st)),
                    Ok(None) => return Err(failed(&ClientError::Server(ErrorCode::NoNode), &path)),
                    Err(e) => return Err(failed(&e, &path)),
                }
            }
            Command::GetAcl { path, stat } => {
                check_path(&path, false)?;
                let (acl, st) = c.get_acl(&path).await.map_err(|e| failed(&e, &path))?;
                for a in &acl {
                    println!("{}", format_acl(a));
                }
                if stat {
                    print!("{}", format_stat(&st));
                }
            }
            Command::SetAcl {
                path,
                acl,
                version,
                stat,
                recursive,
            } => {
                check_path(&path, false)?;
                let (acl, warnings) = parse_acl(&acl);
                for w in warnings {
                    eprintln!("{w}");
                }
                if recursive {
                    let mut paths = Vec::new();
                    visit_subtree(c, &path, false, |p| paths.push(p.to_string()))
                        .await
                        .map_err(|e| failed(&e, &path))?;
                    let futs: Vec<_> = paths
                        .iter()
                        .map(|p| {
                            c.submit(Request::SetAcl {
                                path: p.clone(),
                                acl: acl.clone(),
                                version,
                            })
                        })
                        .collect();
                    let mut first_failure = None;
                    for (p, f) in paths.iter().zip(futs) {
                        if let Err(e) = f.await {
                            let msg = error_message(&e, p);
                            eprintln!("{msg}");
                            first_failure.get_or_insert(msg);
                        }
                    }
                    if let Some(msg) = first_failure {
                        return Err(CmdError::Failed(msg));
                    }
                } else {
                    let st = c
                        .set_acl(&path, &acl, version)
                        .await
                        .map_err(|e| failed(&e, &path))?;
                    if stat {
                        print!("{}", format_stat(&st));
                    }
                }
            }
            Command::AddAuth { scheme, auth } => {
                c.add_auth(&scheme, auth.as_bytes())
                    .await
                    .map_err(|e| failed(&e, &scheme))?;
            }
            Command::Sync { path } => {
                check_path(&path, false)?;
                match c.sync(&path).await {
                    Ok(()) => println!("Sync is OK"),
                    Err(e) => {
                        let rc = e.code().map(ErrorCode::code).unwrap_or(-1);
                        return Err(CmdError::Failed(format!("Sync has failed. rc={rc}")));
                    }
                }
            }
            Command::GetEphemerals { path } => {
                let eph = c
                    .get_ephemerals(&path)
                    .await
                    .map_err(|e| failed(&e, &path))?;
                println!("{}", format_list(&eph));
            }
            Command::GetAllChildrenNumber { path } => {
                check_path(&path, false)?;
                let n = c
                    .get_all_children_number(&path)
                    .await
                    .map_err(|e| failed(&e, &path))?;
                println!("{n}");
            }
            Command::WhoAmI => {
                let infos = c.who_am_i().await.map_err(|e| failed(&e, ""))?;
                println!("Auth scheme: User");
                for i in infos {
                    println!("{}: {}", i.auth_scheme, i.user);
                }
            }
            Command::AddWatch { path, mode } => {
                check_path(&path, false)?;
                c.add_watch(&path, mode)
                    .await
                    .map_err(|e| failed(&e, &path))?;
            }
            Command::RemoveWatches { path, watcher_type } => {
                check_path(&path, false)?;
                c.remove_watches(&path, watcher_type)
                    .await
                    .map_err(|e| failed(&e, &path))?;
            }
            Command::Close => {
                c.close().await.map_err(|e| failed(&e, ""))?;
            }
            Command::Quit
            | Command::Help
            | Command::Version
            | Command::PrintWatches(_)
            | Command::Connect { .. } => {}
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests;
