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

// ---------------------------------------------------------------------------------------------
// Command line parsing (pure)
// ---------------------------------------------------------------------------------------------

/// Splits a command line like zkCli: whitespace-separated words, where a word that starts with a
/// double or single quote runs to the matching quote (the quotes are removed).
fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let first = rest.chars().next().unwrap_or(' ');
        if first == '"' || first == '\'' {
            if let Some(end) = rest[1..].find(first) {
                out.push(rest[1..1 + end].to_string());
                rest = rest[end + 2..].trim_start();
                continue;
            }
            // An unterminated quote: Java's regex skips the quote character.
            rest = &rest[1..];
            if rest.is_empty() {
                break;
            }
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    out
}

/// Options and positional arguments of one command (commons-cli `DefaultParser` rules: options
/// may appear anywhere, flags can be clustered (`-es`), a value follows its option (`-v 3` or
/// `-v3`), a negative number is an argument, `--` ends the options).
#[derive(Debug, Default)]
struct Parsed {
    flags: HashSet<char>,
    values: HashMap<char, String>,
    args: Vec<String>,
}

impl Parsed {
    fn has(&self, c: char) -> bool {
        self.flags.contains(&c)
    }
}

fn parse_opts(tokens: &[String], flags: &str, valued: &str) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut it = tokens.iter();
    let mut only_args = false;
    while let Some(t) = it.next() {
        if only_args || !t.starts_with('-') || t.len() == 1 || t.parse::<f64>().is_ok() {
            p.args.push(t.clone());
            continue;
        }
        if t == "--" {
            only_args = true;
            continue;
        }
        let body = &t[1..];
        for (i, c) in body.char_indices() {
            if flags.contains(c) {
                p.flags.insert(c);
            } else if valued.contains(c) {
                let rest = &body[i + c.len_utf8()..];
                let v = if !rest.is_empty() {
                    rest.to_string()
                } else {
                    it.next()
                        .cloned()
                        .ok_or_else(|| format!("Missing argument for option: {c}"))?
                };
                p.values.insert(c, v);
                break;
            } else {
                return Err(format!("Unrecognized option: -{c}"));
            }
        }
    }
    Ok(p)
}

/// One parsed shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Ls {
        path: String,
        stat: bool,
        watch: bool,
        recursive: bool,
    },
    Get {
        path: String,
        stat: bool,
        watch: bool,
    },
    Set {
        path: String,
        data: String,
        version: i32,
        stat: bool,
    },
    Create {
        path: String,
        data: Option<String>,
        acl: Option<String>,
        mode: CreateMode,
        ttl: Option<i64>,
    },
    Delete {
        path: String,
        version: i32,
    },
    DeleteAll {
        path: String,
        batch: usize,
    },
    Stat {
        path: String,
        watch: bool,
    },
    GetAcl {
        path: String,
        stat: bool,
    },
    SetAcl {
        path: String,
        acl: String,
        version: i32,
        stat: bool,
        recursive: bool,
    },
    AddAuth {
        scheme: String,
        auth: String,
    },
    Sync {
        path: String,
    },
    GetEphemerals {
        path: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    WhoAmI,
    AddWatch {
        path: String,
        mode: i32,
    },
    RemoveWatches {
        path: String,
        watcher_type: i32,
    },
    Close,
    Connect {
        server: Option<String>,
    },
    PrintWatches(Option<bool>),
    Version,
    Help,
    Quit,
}

/// zkCli's usage line of each command, in `help` order.
const USAGE: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("help", ""),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

fn usage(cmd: &str) -> String {
    match USAGE.iter().find(|(n, _)| *n == cmd) {
        Some((n, "")) => n.to_string(),
        Some((n, u)) => format!("{n} {u}"),
        None => cmd.to_string(),
    }
}

fn help_text() -> String {
    let mut s = String::from("wazoo shell [-s host:port] [-c cmd]... [cmd args]\n");
    for (n, u) in USAGE {
        s.push('\t');
        s.push_str(n);
        s.push(' ');
        s.push_str(u);
        s.push('\n');
    }
    s
}

fn parse_version(v: Option<&String>) -> Result<i32, String> {
    match v {
        None => Ok(-1),
        Some(v) => v
            .parse()
            .map_err(|_| format!("version must be an integer: {v}")),
    }
}

/// Parses one tokenized line. `Ok(None)` for an empty line; `Err` is the usage message.
fn parse_command(tokens: &[String]) -> Result<Option<Command>, String> {
    let Some((name, rest)) = tokens.split_first() else {
        return Ok(None);
    };
    let name = name.as_str();
    let need = |p: &Parsed, n: usize| -> Result<(), String> {
        if p.args.len() < n {
            Err(usage(name))
        } else {
            Ok(())
        }
    };
    let cmd = match name {
        "ls" => {
            let p = parse_opts(rest, "swR", "")?;
            need(&p, 1)?;
            Command::Ls {
                path: p.args[0].clone(),
                stat: p.has('s'),
                watch: p.has('w'),
                recursive: p.has('R'),
            }
        }
        "get" => {
            let p = parse_opts(rest, "sw", "")?;
            need(&p, 1)?;
            Command::Get {
                path: p.args[0].clone(),
                stat: p.has('s'),
                watch: p.has('w'),
            }
        }
        "set" => {
            let p = parse_opts(rest, "s", "v")?;
            need(&p, 2)?;
            Command::Set {
                path: p.args[0].clone(),
                data: p.args[1].clone(),
                version: parse_version(p.values.get(&'v'))?,
                stat: p.has('s'),
            }
        }
        "create" => {
            let p = parse_opts(rest, "esc", "t")?;
            need(&p, 1)?;
            let (e, s, c) = (p.has('e'), p.has('s'), p.has('c'));
            if c && (e || s) {
                return Err("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.".into());
            }
            let ttl = match p.values.get(&'t') {
                None => None,
                Some(t) => Some(
                    t.parse::<i64>()
                        .map_err(|_| "-t argument must be a long value".to_string())?,
                ),
            };
            if ttl.is_some() && e {
                return Err("TTLs cannot be used with Ephemeral znodes".into());
            }
            if ttl.is_some() && c {
                return Err("TTLs cannot be used with Container znodes".into());
            }
            let mode = match (e, s, c, ttl.is_some()) {
                (true, true, _, _) => CreateMode::EphemeralSequential,
                (true, false, _, _) => CreateMode::Ephemeral,
                (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
                (false, true, _, false) => CreateMode::PersistentSequential,
                (false, false, true, _) => CreateMode::Container,
                (false, false, false, true) => CreateMode::PersistentWithTtl,
                (false, false, false, false) => CreateMode::Persistent,
            };
            Command::Create {
                path: p.args[0].clone(),
                data: p.args.get(1).cloned(),
                acl: p.args.get(2).cloned(),
                mode,
                ttl,
            }
        }
        "delete" => {
            let p = parse_opts(rest, "", "v")?;
            need(&p, 1)?;
            Command::Delete {
                path: p.args[0].clone(),
                version: parse_version(p.values.get(&'v'))?,
            }
        }
        "deleteall" | "rmr" => {
            let p = parse_opts(rest, "", "b")?;
            need(&p, 1)?;
            let batch = match p.values.get(&'b') {
                None => 1000,
                Some(b) => match b.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err("-b argument must be an int value".into()),
                },
            };
            Command::DeleteAll {
                path: p.args[0].clone(),
                batch,
            }
        }
        "stat" => {
            let p = parse_opts(rest, "w", "")?;
            need(&p, 1)?;
            Command::Stat {
                path: p.args[0].clone(),
                watch: p.has('w'),
            }
        }
        "getAcl" => {
            let p = parse_opts(rest, "s", "")?;
            need(&p, 1)?;
            Command::GetAcl {
                path: p.args[0].clone(),
                stat: p.has('s'),
            }
        }
        "setAcl" => {
            let p = parse_opts(rest, "sR", "v")?;
            need(&p, 2)?;
            Command::SetAcl {
                path: p.args[0].clone(),
                acl: p.args[1].clone(),
                version: parse_version(p.values.get(&'v'))?,
                stat: p.has('s'),
                recursive: p.has('R'),
            }
        }
        "addauth" => {
            let p = parse_opts(rest, "", "")?;
            need(&p, 1)?;
            Command::AddAuth {
                scheme: p.args[0].clone(),
                auth: p.args.get(1).cloned().unwrap_or_default(),
            }
        }
        "sync" => {
            let p = parse_opts(rest, "", "")?;
            need(&p, 1)?;
            Command::Sync {
                path: p.args[0].clone(),
            }
        }
        "getEphemerals" => {
            let p = parse_opts(rest, "", "")?;
            Command::GetEphemerals {
                path: p.args.first().cloned().unwrap_or_else(|| "/".into()),
            }
        }
        "getAllChildrenNumber" => {
            let p = parse_opts(rest, "", "")?;
            need(&p, 1)?;
            Command::GetAllChildrenNumber {
                path: p.args[0].clone(),
            }
        }
        "whoami" => Command::WhoAmI,
        "addWatch" => {
            let p = parse_opts(rest, "", "m")?;
            need(&p, 1)?;
            let mode = match p.values.get(&'m').map(|m| m.to_ascii_uppercase()) {
                None => add_watch_mode::PERSISTENT_RECURSIVE,
                Some(m) if m == "PERSISTENT_RECURSIVE" => add_watch_mode::PERSISTENT_RECURSIVE,
                Some(m) if m == "PERSISTENT" => add_watch_mode::PERSISTENT,
                Some(_) => return Err(usage(name)),
            };
            Command::AddWatch {
                path: p.args[0].clone(),
                mode,
            }
        }
        "removewatches" => {
            let p = parse_opts(rest, "cdal", "")?;
            need(&p, 1)?;
            let watcher_type = if p.has('c') {
                watcher_type::CHILDREN
            } else if p.has('d') {
                watcher_type::DATA
            } else {
                watcher_type::ANY
            };
            Command::RemoveWatches {
                path: p.args[0].clone(),
                watcher_type,
            }
        }
        "close" => Command::Close,
        "connect" => Command::Connect {
            server: rest.first().cloned(),
        },
        "printwatches" => match rest.first().map(String::as_str) {
            None => Command::PrintWatches(None),
            Some("on") => Command::PrintWatches(Some(true)),
            Some("off") => Command::PrintWatches(Some(false)),
            Some(_) => return Err(usage(name)),
        },
        "version" => Command::Version,
        "help" | "?" => Command::Help,
        "quit" | "exit" => Command::Quit,
        other => return Err(format!("Command not found: {other}\n{}", help_text())),
    };
    Ok(Some(cmd))
}

// ---------------------------------------------------------------------------------------------
// Output formats (pure)
// ---------------------------------------------------------------------------------------------

/// `java.util.Date.toString()` in UTC, shared with the four-letter words' `dump`.
use wazoo_admin::java_date_utc as java_date;

/// zkCli's `StatPrinter`: eleven `name = value` lines (zxids and the owner in hex).
fn format_stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

/// `ls` output: the names sorted, as `[a, b]`.
fn format_children(mut children: Vec<String>) -> String {
    children.sort();
    format!("[{}]", children.join(", "))
}

/// Java's `List.toString()`: `[a, b]` in the given order.
fn format_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// `ZKUtil.getPermString`: the letters of `perms` in the order c, d, r, w, a.
fn perm_string(perms: i32) -> String {
    use wazoo_client::perms::{ADMIN, CREATE, DELETE, READ, WRITE};
    [
        (CREATE, 'c'),
        (DELETE, 'd'),
        (READ, 'r'),
        (WRITE, 'w'),
        (ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| perms & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// Jute's CSV form of a string (`Id.toString()` uses it): a leading `'`, and `\0 \n \r , } %`
/// percent-escaped.
fn csv_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// One `getAcl` entry: `'scheme,'id` and `: perms` on two lines.
fn format_acl(a: &Acl) -> String {
    format!(
        "{},{}\n: {}",
        csv_string(&a.id.scheme),
        csv_string(&a.id.id),
        perm_string(a.perms)
    )
}

/// zkCli's `AclParser`: comma-separated `scheme:id:perms` (the id may contain colons). Malformed
/// entries and unknown permission letters are skipped with a warning, as zkCli does.
fn parse_acl(text: &str) -> (Vec<Acl>, Vec<String>) {
    let mut acl = Vec::new();
    let mut warnings = Vec::new();
    let mut parts: Vec<&str> = text.split(',').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    for a in parts {
        let (Some(first), Some(last)) = (a.find(':'), a.rfind(':')) else {
            warnings.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            warnings.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        }
        let mut perms = 0;
        for c in a[last + 1..].chars() {
            match c {
                'r' => perms |= wazoo_client::perms::READ,
                'w' => perms |= wazoo_client::perms::WRITE,
                'c' => perms |= wazoo_client::perms::CREATE,
                'd' => perms |= wazoo_client::perms::DELETE,
                'a' => perms |= wazoo_client::perms::ADMIN,
                other => warnings.push(format!("Unknown perm type: {other}")),
            }
        }
        acl.push(Acl::new(perms, &a[..first], &a[first + 1..last]));
    }
    (acl, warnings)
}

/// `KeeperException.getCodeMessage`.
fn code_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Ok => "ok",
        ErrorCode::SystemError => "SystemError",
        ErrorCode::RuntimeInconsistency => "RuntimeInconsistency",
        ErrorCode::DataInconsistency => "DataInconsistency",
        ErrorCode::ConnectionLoss => "ConnectionLoss",
        ErrorCode::MarshallingError => "MarshallingError",
        ErrorCode::Unimplemented => "Unimplemented",
        ErrorCode::OperationTimeout => "OperationTimeout",
        ErrorCode::BadArguments => "BadArguments",
        ErrorCode::UnknownSession => "Unknown session",
        ErrorCode::NewConfigNoQuorum => "NewConfigNoQuorum",
        ErrorCode::ReconfigInProgress => "ReconfigInProgress",
        ErrorCode::ApiError => "APIError",
        ErrorCode::NoNode => "NoNode",
        ErrorCode::NoAuth => "NoAuth",
        ErrorCode::BadVersion => "BadVersion",
        ErrorCode::NoChildrenForEphemerals => "NoChildrenForEphemerals",
        ErrorCode::NodeExists => "NodeExists",
        ErrorCode::NotEmpty => "Directory not empty",
        ErrorCode::SessionExpired => "Session expired",
        ErrorCode::InvalidCallback => "Invalid callback",
        ErrorCode::InvalidAcl => "InvalidACL",
        ErrorCode::AuthFailed => "AuthFailed",
        ErrorCode::SessionMoved => "Session moved",
        ErrorCode::NotReadOnly => "Not a read-only call",
        ErrorCode::EphemeralOnLocalSession => "Ephemeral node on local session",
        ErrorCode::NoWatcher => "No such watcher",
        ErrorCode::RequestTimeout => "Request timeout",
        ErrorCode::ReconfigDisabled => "Reconfig is disabled",
        ErrorCode::SessionClosedRequireSaslAuth => {
            "Session closed because client failed to authenticate"
        }
        ErrorCode::QuotaExceeded => "Quota has exceeded",
        ErrorCode::ThrottledOp => "Op throttled due to high load",
        ErrorCode::NoRecipe => "No such recipe",
        ErrorCode::RecipeFailed => "Recipe failed",
        ErrorCode::RecipeConflict => "Recipe conflict",
    }
}

const RECONFIG_IN_PROGRESS: &str =
    "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)";
const NEW_CONFIG_NO_QUORUM: &str = "No quorum of new config is connected and up-to-date with the \
     leader of last committed config - try invoking reconfiguration after new servers are \
     connected and synced";

/// The text zkCli prints for a failed call on `path` (`CliWrapperException`, else
/// `KeeperException.getMessage()`).
fn error_message(e: &ClientError, path: &str) -> String {
    let keeper = |code: ErrorCode| {
        if path.is_empty() {
            format!("KeeperErrorCode = {}", code_message(code))
        } else {
            format!("KeeperErrorCode = {} for {path}", code_message(code))
        }
    };
    match e {
        ClientError::Server(code) => match code {
            ErrorCode::NoNode => format!("Node does not exist: {path}"),
            ErrorCode::NoChildrenForEphemerals => {
                format!("Ephemerals cannot have children: {path}")
            }
            ErrorCode::NodeExists => format!("Node already exists: {path}"),
            ErrorCode::NotEmpty => format!("Node not empty: {path}"),
            ErrorCode::NotReadOnly => format!("Not a read-only call: {path}"),
            ErrorCode::InvalidAcl => format!("Acl is not valid : {path}"),
            ErrorCode::NoAuth => format!("Insufficient permission : {path}"),
            ErrorCode::BadArguments => format!("Arguments are not valid : {path}"),
            ErrorCode::BadVersion => format!("version No is not valid : {path}"),
            ErrorCode::AuthFailed => format!("Authentication is not valid : {path}"),
            ErrorCode::QuotaExceeded => format!("Quota has exceeded : {path}"),
            ErrorCode::ReconfigInProgress => RECONFIG_IN_PROGRESS.into(),
            ErrorCode::NewConfigNoQuorum => NEW_CONFIG_NO_QUORUM.into(),
            other => keeper(*other),
        },
        ClientError::UnknownCode(c) => format!("KeeperErrorCode = Unknown error {c} for {path}"),
        ClientError::ConnectionLoss => keeper(ErrorCode::ConnectionLoss),
        ClientError::Timeout => keeper(ErrorCode::OperationTimeout),
        ClientError::Closed => "Not connected".into(),
        other => other.to_string(),
    }
}

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
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        tokenize(s)
    }

    fn cmd(s: &str) -> Command {
        parse_command(&toks(s)).unwrap().unwrap()
    }

    #[test]
    fn tokenize_handles_quotes_like_zkcli() {
        assert_eq!(toks("  ls   -R /a "), vec!["ls", "-R", "/a"]);
        assert_eq!(
            toks(r#"set /a "hello world" 'x y'"#),
            vec!["set", "/a", "hello world", "x y"]
        );
        assert_eq!(toks(r#"create /a it"s"#), vec!["create", "/a", r#"it"s"#]);
        assert_eq!(toks(r#"set /a "open"#), vec!["set", "/a", "open"]);
        assert_eq!(toks(r#"set /a """#), vec!["set", "/a", ""]);
        assert!(toks("   ").is_empty());
    }

    #[test]
    fn ls_get_set_stat_flags() {
        assert_eq!(
            cmd("ls -s -R /a"),
            Command::Ls {
                path: "/a".into(),
                stat: true,
                watch: false,
                recursive: true
            }
        );
        assert_eq!(
            cmd("ls /a -w"),
            Command::Ls {
                path: "/a".into(),
                stat: false,
                watch: true,
                recursive: false
            }
        );
        assert_eq!(
            cmd("get -sw /a"),
            Command::Get {
                path: "/a".into(),
                stat: true,
                watch: true
            }
        );
        assert_eq!(
            cmd("set -v 3 /a data"),
            Command::Set {
                path: "/a".into(),
                data: "data".into(),
                version: 3,
                stat: false
            }
        );
        assert_eq!(
            cmd("set -s -v7 /a -1"),
            Command::Set {
                path: "/a".into(),
                data: "-1".into(),
                version: 7,
                stat: true
            }
        );
        assert_eq!(
            cmd("stat -w /a"),
            Command::Stat {
                path: "/a".into(),
                watch: true
            }
        );
        assert_eq!(
            parse_command(&toks("ls")).unwrap_err(),
            "ls [-s] [-w] [-R] path"
        );
        assert_eq!(
            parse_command(&toks("set /a")).unwrap_err(),
            "set [-s] [-v version] path data"
        );
        assert_eq!(
            parse_command(&toks("ls -x /")).unwrap_err(),
            "Unrecognized option: -x"
        );
        assert!(parse_command(&toks("set -v abc /a d")).is_err());
        assert_eq!(
            parse_command(&toks("delete -v")).unwrap_err(),
            "Missing argument for option: v"
        );
        assert_eq!(parse_command(&toks("")).unwrap(), None);
        assert!(parse_command(&toks("bogus /"))
            .unwrap_err()
            .starts_with("Command not found: bogus"));
    }

    #[test]
    fn create_modes_and_checks() {
        let mode = |s: &str| match cmd(s) {
            Command::Create { mode, .. } => mode,
            c => panic!("{c:?}"),
        };
        assert_eq!(mode("create /a"), CreateMode::Persistent);
        assert_eq!(mode("create -e /a"), CreateMode::Ephemeral);
        assert_eq!(mode("create -s /a"), CreateMode::PersistentSequential);
        assert_eq!(mode("create -e -s /a"), CreateMode::EphemeralSequential);
        assert_eq!(mode("create -es /a"), CreateMode::EphemeralSequential);
        assert_eq!(mode("create -c /a"), CreateMode::Container);
        assert_eq!(mode("create -t 100 /a"), CreateMode::PersistentWithTtl);
        assert_eq!(
            mode("create -s -t 100 /a"),
            CreateMode::PersistentSequentialWithTtl
        );
        assert_eq!(
            cmd("create -t 500 /a x world:anyone:r"),
            Command::Create {
                path: "/a".into(),
                data: Some("x".into()),
                acl: Some("world:anyone:r".into()),
                mode: CreateMode::PersistentWithTtl,
                ttl: Some(500)
            }
        );
        assert_eq!(
            cmd("create /a"),
            Command::Create {
                path: "/a".into(),
                data: None,
                acl: None,
                mode: CreateMode::Persistent,
                ttl: None
            }
        );
        assert!(parse_command(&toks("create -c -e /a"))
            .unwrap_err()
            .starts_with("-c cannot be combined"));
        assert_eq!(
            parse_command(&toks("create -e -t 5 /a")).unwrap_err(),
            "TTLs cannot be used with Ephemeral znodes"
        );
        assert_eq!(
            parse_command(&toks("create -c -t 5 /a")).unwrap_err(),
            "TTLs cannot be used with Container znodes"
        );
        assert_eq!(
            parse_command(&toks("create -t x /a")).unwrap_err(),
            "-t argument must be a long value"
        );
    }

    #[test]
    fn other_commands_parse() {
        assert_eq!(
            cmd("delete -v 2 /a"),
            Command::Delete {
                path: "/a".into(),
                version: 2
            }
        );
        assert_eq!(
            cmd("delete /a"),
            Command::Delete {
                path: "/a".into(),
                version: -1
            }
        );
        assert_eq!(
            cmd("deleteall /a -b 10"),
            Command::DeleteAll {
                path: "/a".into(),
                batch: 10
            }
        );
        assert_eq!(
            cmd("rmr /a"),
            Command::DeleteAll {
                path: "/a".into(),
                batch: 1000
            }
        );
        assert_eq!(
            cmd("getAcl -s /a"),
            Command::GetAcl {
                path: "/a".into(),
                stat: true
            }
        );
        assert_eq!(
            cmd("setAcl -R -v 1 /a auth::cdrwa"),
            Command::SetAcl {
                path: "/a".into(),
                acl: "auth::cdrwa".into(),
                version: 1,
                stat: false,
                recursive: true
            }
        );
        assert_eq!(
            cmd("addauth digest u:p"),
            Command::AddAuth {
                scheme: "digest".into(),
                auth: "u:p".into()
            }
        );
        assert_eq!(cmd("sync /a"), Command::Sync { path: "/a".into() });
        assert_eq!(
            cmd("getEphemerals"),
            Command::GetEphemerals { path: "/".into() }
        );
        assert_eq!(
            cmd("getAllChildrenNumber /a"),
            Command::GetAllChildrenNumber { path: "/a".into() }
        );
        assert_eq!(cmd("whoami"), Command::WhoAmI);
        assert_eq!(
            cmd("addWatch /a"),
            Command::AddWatch {
                path: "/a".into(),
                mode: add_watch_mode::PERSISTENT_RECURSIVE
            }
        );
        assert_eq!(
            cmd("addWatch -m persistent /a"),
            Command::AddWatch {
                path: "/a".into(),
                mode: add_watch_mode::PERSISTENT
            }
        );
        assert!(parse_command(&toks("addWatch -m bogus /a")).is_err());
        assert_eq!(
            cmd("removewatches /a -d"),
            Command::RemoveWatches {
                path: "/a".into(),
                watcher_type: watcher_type::DATA
            }
        );
        assert_eq!(
            cmd("removewatches /a"),
            Command::RemoveWatches {
                path: "/a".into(),
                watcher_type: watcher_type::ANY
            }
        );
        assert_eq!(cmd("quit"), Command::Quit);
        assert_eq!(cmd("close"), Command::Close);
        assert_eq!(cmd("help"), Command::Help);
        assert_eq!(cmd("printwatches off"), Command::PrintWatches(Some(false)));
        assert_eq!(
            cmd("connect h:1"),
            Command::Connect {
                server: Some("h:1".into())
            }
        );
    }

    #[test]
    fn acl_text_parses_like_zkcli_acl_parser() {
        let (acl, warnings) = parse_acl("world:anyone:cdrwa,digest:u:hash=:r,ip:10.0.0.0/8:rw");
        assert!(warnings.is_empty());
        assert_eq!(
            acl,
            vec![
                Acl::new(31, "world", "anyone"),
                Acl::new(1, "digest", "u:hash="),
                Acl::new(3, "ip", "10.0.0.0/8"),
            ]
        );
        let (acl, warnings) = parse_acl("auth::cdrwa");
        assert_eq!(acl, vec![Acl::new(31, "auth", "")]);
        assert!(warnings.is_empty());
        let (acl, warnings) = parse_acl("bad,world:anyone:rz,");
        assert_eq!(acl, vec![Acl::new(1, "world", "anyone")]);
        assert_eq!(
            warnings,
            vec![
                "bad does not have the form scheme:id:perm".to_string(),
                "Unknown perm type: z".into()
            ]
        );
    }

    #[test]
    fn acl_and_perm_formatting() {
        assert_eq!(perm_string(31), "cdrwa");
        assert_eq!(perm_string(17), "ra");
        assert_eq!(perm_string(0), "");
        assert_eq!(
            format_acl(&Acl::new(31, "world", "anyone")),
            "'world,'anyone\n: cdrwa"
        );
        assert_eq!(
            format_acl(&Acl::new(1, "digest", "u:a/b+c=")),
            "'digest,'u:a/b+c=\n: r"
        );
        assert_eq!(csv_string("a,b%}\n"), "'a%2Cb%25%7D%0A");
    }

    #[test]
    fn stat_formatting_matches_stat_printer() {
        let s = Stat {
            czxid: 0x10,
            mzxid: 0x2_0000_0001,
            ctime: 0,
            mtime: 1_700_000_000_123,
            version: 1,
            cversion: 2,
            aversion: 0,
            ephemeral_owner: 0x1000_0abc,
            data_length: 5,
            num_children: 2,
            pzxid: 0x11,
        };
        assert_eq!(
            format_stat(&s),
            "cZxid = 0x10\nctime = Thu Jan 01 00:00:00 UTC 1970\nmZxid = 0x200000001\n\
             mtime = Tue Nov 14 22:13:20 UTC 2023\npZxid = 0x11\ncversion = 2\ndataVersion = 1\n\
             aclVersion = 0\nephemeralOwner = 0x10000abc\ndataLength = 5\nnumChildren = 2\n"
        );
        // Long.toHexString of a negative long is its two's complement.
        let neg = Stat {
            ephemeral_owner: -1,
            ..Stat::default()
        };
        assert!(format_stat(&neg).contains("ephemeralOwner = 0xffffffffffffffff\n"));
    }

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
        assert_eq!(java_date(4_102_444_799_000), "Thu Dec 31 23:59:59 UTC 2099");
    }

    #[test]
    fn ls_formatting_sorts_names() {
        assert_eq!(
            format_children(vec!["zookeeper".into(), "b".into(), "a".into()]),
            "[a, b, zookeeper]"
        );
        assert_eq!(format_children(vec![]), "[]");
        assert_eq!(format_list(&["/b".into(), "/a".into()]), "[/b, /a]");
    }

    #[test]
    fn error_messages_match_zkcli() {
        let m = |c: ErrorCode| error_message(&ClientError::Server(c), "/x");
        assert_eq!(m(ErrorCode::NoNode), "Node does not exist: /x");
        assert_eq!(m(ErrorCode::NodeExists), "Node already exists: /x");
        assert_eq!(m(ErrorCode::NotEmpty), "Node not empty: /x");
        assert_eq!(m(ErrorCode::BadVersion), "version No is not valid : /x");
        assert_eq!(m(ErrorCode::NoAuth), "Insufficient permission : /x");
        assert_eq!(m(ErrorCode::AuthFailed), "Authentication is not valid : /x");
        assert_eq!(m(ErrorCode::InvalidAcl), "Acl is not valid : /x");
        assert_eq!(
            m(ErrorCode::NoChildrenForEphemerals),
            "Ephemerals cannot have children: /x"
        );
        assert_eq!(
            m(ErrorCode::NoWatcher),
            "KeeperErrorCode = No such watcher for /x"
        );
        assert_eq!(
            error_message(&ClientError::ConnectionLoss, "/x"),
            "KeeperErrorCode = ConnectionLoss for /x"
        );
        assert_eq!(error_message(&ClientError::Closed, "/x"), "Not connected");
    }

    #[test]
    fn usage_lines_cover_every_command() {
        for (name, _) in USAGE {
            assert!(help_text().contains(name));
        }
        assert_eq!(usage("stat"), "stat [-w] path");
        assert_eq!(usage("whoami"), "whoami");
    }
}
