//! Client-side path validation, as the Java client's `PathUtils.validatePath` does it before
//! sending. The typed [`crate::Client`] methods do **not** call it (the server validates too, and
//! tests need to send bad paths); the shell does, to print zkCli's messages.

/// Checks a znode path. `sequential` validates `path + "1"` as Java does for sequential creates
/// (so `/a/` is accepted as a sequential prefix). The error is Java's message, e.g.
/// `Invalid path string "/a/../b" caused by relative paths not allowed @5`.
pub fn validate_path(path: &str, sequential: bool) -> Result<(), String> {
    if sequential {
        return validate(&format!("{path}1"));
    }
    validate(path)
}

fn validate(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("Path must not end with / character".into());
    }
    let chars: Vec<char> = path.chars().collect();
    let mut reason = None;
    for i in 1..chars.len() {
        let c = chars[i];
        let last = chars[i - 1];
        let next_is_end_or_slash = i + 1 == chars.len() || chars[i + 1] == '/';
        if c == '\0' {
            reason = Some(format!("null character not allowed @{i}"));
        } else if c == '/' && last == '/' {
            reason = Some(format!("empty node name specified @{i}"));
        } else if c == '.' && last == '.' {
            if i >= 2 && chars[i - 2] == '/' && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if c == '.' {
            if last == '/' && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
            || c > '\u{ffff}'
        {
            // Java checks UTF-16 units: surrogates (every char above U+FFFF) are invalid too.
            reason = Some(format!("invalid character @{i}"));
        }
        if reason.is_some() {
            break;
        }
    }
    match reason {
        Some(r) => Err(format!("Invalid path string \"{path}\" caused by {r}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths_and_rejects_java_invalid_ones() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/a/..b", "/a/.b/c", "/zookeeper"] {
            assert_eq!(validate_path(ok, false), Ok(()), "{ok}");
        }
        assert_eq!(
            validate_path("a", false).unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(
            validate_path("/a/", false).unwrap_err(),
            "Path must not end with / character"
        );
        assert_eq!(validate_path("/a/", true), Ok(()));
        assert_eq!(
            validate_path("/zke/c/../d", false).unwrap_err(),
            "Invalid path string \"/zke/c/../d\" caused by relative paths not allowed @8"
        );
        assert!(validate_path("/a/.", false)
            .unwrap_err()
            .contains("relative paths not allowed @3"));
        assert!(validate_path("/a//b", false)
            .unwrap_err()
            .contains("empty node name specified @3"));
        assert!(validate_path("/a\u{1}", false)
            .unwrap_err()
            .contains("invalid character @2"));
        assert!(validate_path("/a\0", false)
            .unwrap_err()
            .contains("null character not allowed @2"));
        assert_eq!(
            validate_path("", false).unwrap_err(),
            "Path length must be > 0"
        );
    }
}
