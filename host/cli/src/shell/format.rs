//! The shell's output as zkCli prints it: stats, child lists, ACLs, error texts (pure).

use super::*;

/// `java.util.Date.toString()` in UTC, shared with the four-letter words' `dump`.
pub(super) use wazoo_admin::java_date_utc as java_date;

/// zkCli's `StatPrinter`: eleven `name = value` lines (zxids and the owner in hex).
pub(super) fn format_stat(s: &Stat) -> String {
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
pub(super) fn format_children(mut children: Vec<String>) -> String {
    children.sort();
    format!("[{}]", children.join(", "))
}

/// Java's `List.toString()`: `[a, b]` in the given order.
pub(super) fn format_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// `ZKUtil.getPermString`: the letters of `perms` in the order c, d, r, w, a.
pub(super) fn perm_string(perms: i32) -> String {
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
pub(super) fn csv_string(s: &str) -> String {
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
pub(super) fn format_acl(a: &Acl) -> String {
    format!(
        "{},{}\n: {}",
        csv_string(&a.id.scheme),
        csv_string(&a.id.id),
        perm_string(a.perms)
    )
}

/// zkCli's `AclParser`: comma-separated `scheme:id:perms` (the id may contain colons). Malformed
/// entries and unknown permission letters are skipped with a warning, as zkCli does.
pub(super) fn parse_acl(text: &str) -> (Vec<Acl>, Vec<String>) {
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
pub(super) fn code_message(code: ErrorCode) -> &'static str {
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

pub(super) const RECONFIG_IN_PROGRESS: &str =
    "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)";
pub(super) const NEW_CONFIG_NO_QUORUM: &str =
    "No quorum of new config is connected and up-to-date with the \
     leader of last committed config - try invoking reconfiguration after new servers are \
     connected and synced";

/// The text zkCli prints for a failed call on `path` (`CliWrapperException`, else
/// `KeeperException.getMessage()`).
pub(super) fn error_message(e: &ClientError, path: &str) -> String {
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
