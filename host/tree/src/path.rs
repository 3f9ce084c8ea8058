//! Znode path rules: `PathUtils.validatePath`, parent/name splitting, and the system paths.

/// The paths that exist on every server and can never be deleted.
pub const SYSTEM_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

pub const ZOOKEEPER: &str = "/zookeeper";
pub const QUOTA: &str = "/zookeeper/quota";
pub const CONFIG: &str = "/zookeeper/config";

/// ZooKeeper's `PathUtils.validatePath`: absolute, no trailing `/` (except the root), no empty,
/// `.` or `..` segments, none of the forbidden characters.
pub fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("path length must be > 0");
    }
    if !path.starts_with('/') {
        return Err("path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("path must not end with / character");
    }
    for seg in path[1..].split('/') {
        match seg {
            "" => return Err("empty node name specified"),
            "." | ".." => return Err("relative paths not allowed"),
            _ => {}
        }
    }
    for c in path.chars() {
        let u = c as u32;
        if u == 0
            || (0x1..=0x1f).contains(&u)
            || (0x7f..=0x9f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u)
        {
            return Err("invalid character in path");
        }
    }
    Ok(())
}

/// The parent of an absolute path: `/a/b` -> `/a`, `/a` -> `/`. `None` for the root or a path
/// without any `/`.
pub fn parent(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    if path == "/" {
        return None;
    }
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// The last segment: `/a/b` -> `b`.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `path` joined with a child `name`.
pub fn child(path: &str, name: &str) -> String {
    if path == "/" {
        format!("/{name}")
    } else {
        format!("{path}/{name}")
    }
}

pub fn is_system(path: &str) -> bool {
    SYSTEM_PATHS.contains(&path)
}

/// `path` itself and each of its ancestors up to the root, deepest first.
pub fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let cur = next?;
        next = parent(cur);
        Some(cur)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_path_follows_path_utils() {
        for ok in ["/", "/a", "/a/b", "/...", "/.a", "/a.b/c-d_e", "/ü"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/a/..",
            "/a\0b",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{e000}",
            "/\u{fff0}",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/a", "b"), "/a/b");
        let v: Vec<_> = self_and_ancestors("/a/b/c").collect();
        assert_eq!(v, ["/a/b/c", "/a/b", "/a", "/"]);
    }
}
