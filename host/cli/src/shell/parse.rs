//! The shell's commands as zkCli reads them: a line split into words, options, and the
//! [`Command`] it names (pure: no client, no I/O).

use super::*;

/// Splits a command line like zkCli: whitespace-separated words, where a word that starts with a
/// double or single quote runs to the matching quote (the quotes are removed).
pub(super) fn tokenize(line: &str) -> Vec<String> {
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
pub(super) struct Parsed {
    flags: HashSet<char>,
    values: HashMap<char, String>,
    args: Vec<String>,
}

impl Parsed {
    fn has(&self, c: char) -> bool {
        self.flags.contains(&c)
    }
}

pub(super) fn parse_opts(tokens: &[String], flags: &str, valued: &str) -> Result<Parsed, String> {
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
pub(super) enum Command {
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
pub(super) const USAGE: &[(&str, &str)] = &[
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

pub(super) fn usage(cmd: &str) -> String {
    match USAGE.iter().find(|(n, _)| *n == cmd) {
        Some((n, "")) => n.to_string(),
        Some((n, u)) => format!("{n} {u}"),
        None => cmd.to_string(),
    }
}

pub(super) fn help_text() -> String {
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

pub(super) fn parse_version(v: Option<&String>) -> Result<i32, String> {
    match v {
        None => Ok(-1),
        Some(v) => v
            .parse()
            .map_err(|_| format!("version must be an integer: {v}")),
    }
}

/// Parses one tokenized line. `Ok(None)` for an empty line; `Err` is the usage message.
pub(super) fn parse_command(tokens: &[String]) -> Result<Option<Command>, String> {
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
