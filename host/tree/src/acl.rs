//! ACLs: the permission check (`ZooKeeperServer.checkACL`), ACL fix-up on create/setACL
//! (`PrepRequestProcessor.fixupACL`), the auth schemes (world, auth, digest, ip, super), and an
//! interning cache so that nodes share identical ACL lists.

use crate::hash::FastMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use sha1::{Digest, Sha1};
use wazoo_proto::{perms, Acl, ErrorCode, Id};

/// A shared, immutable ACL list.
pub type AclList = Arc<[Acl]>;

/// The identities a connection has proved (`ServerCnxn.authInfo`). Every connection has its `ip` id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub ids: Vec<Id>,
}

impl AuthInfo {
    pub fn for_ip(ip: &str) -> Self {
        AuthInfo {
            ids: vec![Id::new("ip", ip)],
        }
    }

    pub fn is_super(&self) -> bool {
        self.ids.iter().any(|i| i.scheme == "super")
    }

    pub fn add(&mut self, id: Id) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }
}

/// `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1("user:password"))`.
pub fn generate_digest(id_password: &str) -> String {
    let user = id_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(id_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Handles an auth packet: the ids it grants, or AuthFailed for an unknown scheme.
/// `super_digest` is `DigestAuthenticationProvider.superDigest` (`super:<base64>`), if configured.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    remote_ip: &str,
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        "digest" => {
            let text = String::from_utf8_lossy(auth);
            let digest = generate_digest(&text);
            let mut ids = Vec::with_capacity(2);
            if super_digest == Some(digest.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", digest));
            Ok(ids)
        }
        "ip" => Ok(vec![Id::new("ip", remote_ip)]),
        _ => Err(ErrorCode::AuthFailed),
    }
}

fn parse_ip_acl(expr: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (expr, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn ip_matches(client: &str, expr: &str) -> bool {
    let Some((net, bits)) = parse_ip_acl(expr) else {
        return false;
    };
    let Ok(client) = client.parse::<IpAddr>() else {
        return false;
    };
    match (net, client) {
        (IpAddr::V4(n), IpAddr::V4(c)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(c) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(c)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(c) & mask
        }
        _ => false,
    }
}

/// Whether a scheme's provider accepts an ACL id (`isValid`).
fn provider_accepts(scheme: &str, id: &str) -> bool {
    match scheme {
        // Java's `id.split(":").length == 2`, which drops trailing empty strings.
        "digest" => {
            let parts: Vec<&str> = id.split(':').collect();
            let mut n = parts.len();
            while n > 0 && parts[n - 1].is_empty() {
                n -= 1;
            }
            n == 2
        }
        "ip" => parse_ip_acl(id).is_some(),
        _ => false,
    }
}

/// Whether a scheme's ids count as authenticated for `auth` ACL expansion (digest yes, ip no).
fn is_authenticated_scheme(scheme: &str) -> bool {
    matches!(scheme, "digest" | "sasl" | "x509")
}

/// `PrepRequestProcessor.fixupACL`: de-duplicate, reject empty lists and invalid ids, expand `auth`.
pub fn fixup_acl(acl: &[Acl], auth: &AuthInfo) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    // One pass: a repeat of an earlier entry is skipped, every other entry is checked and copied
    // once (the usual world:anyone list is a single clone).
    let mut out = Vec::with_capacity(acl.len());
    for (i, a) in acl.iter().enumerate() {
        if acl[..i].contains(a) {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            let mut any = false;
            for cid in &auth.ids {
                if is_authenticated_scheme(&cid.scheme) {
                    any = true;
                    out.push(Acl {
                        perms: a.perms,
                        id: cid.clone(),
                    });
                }
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if provider_accepts(&a.id.scheme, &a.id.id) {
            out.push(a.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// `ZooKeeperServer.checkACL`: Ok if any entry granting `perm` matches one of the caller's ids.
pub fn check_acl(acl: &[Acl], perm: i32, auth: &AuthInfo) -> Result<(), ErrorCode> {
    if acl.is_empty() || auth.is_super() {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        for cid in &auth.ids {
            if cid.scheme != a.id.scheme {
                continue;
            }
            let matched = match cid.scheme.as_str() {
                "ip" => ip_matches(&cid.id, &a.id.id),
                _ => cid.id == a.id.id,
            };
            if matched {
                return Ok(());
            }
        }
    }
    Err(ErrorCode::NoAuth)
}

/// getACL: a caller without ADMIN sees digest ids masked as `user:x`.
pub fn masked_for(acl: &[Acl], auth: &AuthInfo) -> Vec<Acl> {
    if check_acl(acl, perms::ADMIN, auth).is_ok() {
        return acl.to_vec();
    }
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl::new(a.perms, "digest", &format!("{user}:x"))
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Interns ACL lists so that a million nodes with the same ACL share one allocation.
#[derive(Debug, Default)]
pub struct AclCache {
    lists: FastMap<Vec<Acl>, AclList>,
}

impl AclCache {
    pub fn intern(&mut self, acl: &[Acl]) -> AclList {
        if let Some(l) = self.lists.get(acl) {
            return l.clone();
        }
        let l: AclList = Arc::from(acl);
        self.lists.insert(acl.to_vec(), l.clone());
        l
    }

    /// Drops lists no node refers to any more.
    pub fn purge_unused(&mut self) {
        self.lists.retain(|_, l| Arc::strong_count(l) > 1);
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeepers_super_test_credential() {
        // kazoo's harness: super:test -> super:D/InIHSb7yEEbrWz8b9l71RjZJU=
        assert_eq!(
            generate_digest("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        let ids = authenticate(
            "digest",
            b"super:test",
            "127.0.0.1",
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU="),
        )
        .unwrap();
        assert!(ids.iter().any(|i| i.scheme == "super"));
        assert_eq!(
            authenticate("kerberos", b"x", "127.0.0.1", None),
            Err(ErrorCode::AuthFailed)
        );
    }

    #[test]
    fn fixup_rejects_empty_and_auth_without_ids_and_dedups() {
        let anon = AuthInfo::for_ip("127.0.0.1");
        assert_eq!(fixup_acl(&[], &anon), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup_acl(&[Acl::new(31, "auth", "")], &anon),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(&[Acl::new(31, "world", "someone")], &anon),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(&[Acl::new(31, "digest", "user")], &anon),
            Err(ErrorCode::InvalidAcl)
        );
        let open = Acl::open_unsafe();
        let twice = [open[0].clone(), open[0].clone()];
        assert_eq!(fixup_acl(&twice, &anon).unwrap(), open);
        let mut authed = anon.clone();
        authed.add(Id::new("digest", "u:h"));
        assert_eq!(
            fixup_acl(&[Acl::new(7, "auth", "")], &authed).unwrap(),
            vec![Acl::new(7, "digest", "u:h")]
        );
    }

    #[test]
    fn check_acl_matches_world_digest_ip_and_super() {
        let anon = AuthInfo::for_ip("10.1.2.3");
        assert!(check_acl(&Acl::open_unsafe(), perms::WRITE, &anon).is_ok());
        assert_eq!(
            check_acl(&Acl::read_unsafe(), perms::WRITE, &anon),
            Err(ErrorCode::NoAuth)
        );
        let d = [Acl::new(perms::ALL, "digest", "u:h")];
        assert_eq!(check_acl(&d, perms::READ, &anon), Err(ErrorCode::NoAuth));
        let mut u = anon.clone();
        u.add(Id::new("digest", "u:h"));
        assert!(check_acl(&d, perms::READ, &u).is_ok());
        let ip = [Acl::new(perms::READ, "ip", "10.1.0.0/16")];
        assert!(check_acl(&ip, perms::READ, &anon).is_ok());
        assert!(check_acl(&ip, perms::READ, &AuthInfo::for_ip("10.2.0.1")).is_err());
        let mut s = AuthInfo::for_ip("1.1.1.1");
        s.add(Id::new("super", ""));
        assert!(check_acl(&d, perms::ADMIN, &s).is_ok());
    }
}
