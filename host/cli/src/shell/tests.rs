//! The shell's parsing, formats and commands against zkCli's behaviour.

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
