//! ACLs: the permission check (`ZooKeeperServer.checkACL`), ACL fix-up on create/setACL
//! (`PrepRequestProcessor.fixupACL`), the auth schemes (world, auth, digest, ip, super), and an
//! interning cache so that nodes share identical ACL lists.

use crate::hash::{FastMap, FastSet};
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use sha1::{Digest, Sha1};
use wazoo_proto::{perms, Acl, ErrorCode, Id, MAX_TXN_LEN};

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

/// Lists up to this long are de-duplicated by comparing each entry with the ones before it (at
/// most 120 comparisons, no allocation); longer ones through a hash set.
const SHORT_ACL: usize = 16;

/// The encoded size of one ACL entry in a txn (perms, then scheme and id as jute strings).
fn encoded_entry_len(id: &Id) -> usize {
    4 + 4 + id.scheme.len() + 4 + id.id.len()
}

/// `PrepRequestProcessor.fixupACL`: de-duplicate (keeping the first occurrence of each entry, in
/// order, as `removeDuplicates` does), reject empty lists and invalid ids, expand `auth`.
///
/// Linear in the list: repeats are found with a hash set (ZooKeeper's `List.contains` per entry
/// is quadratic, and prep runs this before the parent and existence checks, so a request of 200k
/// distinct entries cost minutes). The expanded list is refused with MARSHALLINGERROR once its
/// encoding passes [`MAX_TXN_LEN`]: `auth` entries times the caller's auth ids can multiply a
/// request far past what a txn may hold, and this stops before allocating it. Every validity check
/// runs first, so a list that ZooKeeper answers INVALIDACL for still gets INVALIDACL.
pub fn fixup_acl(acl: &[Acl], auth: &AuthInfo) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut authed = auth
        .ids
        .iter()
        .filter(|cid| is_authenticated_scheme(&cid.scheme))
        .peekable();
    let has_authed = authed.peek().is_some();
    for a in acl {
        let valid = (a.id.scheme == "world" && a.id.id == "anyone")
            || (a.id.scheme == "auth" && has_authed)
            || provider_accepts(&a.id.scheme, &a.id.id);
        if !valid {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    // One pass: a repeat of an earlier entry is skipped, every other entry is copied once (the
    // usual world:anyone list is a single clone). A short list (nearly all of them) is searched
    // directly; a long one through a hash set, so that the pass stays linear.
    let mut seen: Option<FastSet<&Acl>> = (acl.len() > SHORT_ACL)
        .then(|| FastSet::with_capacity_and_hasher(acl.len(), Default::default()));
    let mut out = Vec::with_capacity(acl.len());
    let mut size = 4usize;
    for (i, a) in acl.iter().enumerate() {
        let repeat = match seen.as_mut() {
            Some(set) => !set.insert(a),
            None => acl[..i].contains(a),
        };
        if repeat {
            continue;
        }
        if a.id.scheme == "auth" {
            for cid in authed.clone() {
                size += encoded_entry_len(cid);
                if size > MAX_TXN_LEN {
                    return Err(ErrorCode::MarshallingError);
                }
                out.push(Acl {
                    perms: a.perms,
                    id: cid.clone(),
                });
            }
        } else {
            size += encoded_entry_len(&a.id);
            if size > MAX_TXN_LEN {
                return Err(ErrorCode::MarshallingError);
            }
            out.push(a.clone());
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

    /// ZooKeeper's `removeDuplicates` keeps the first occurrence of each entry, in order. At 200k
    /// distinct entries the de-duplication must be linear (it was quadratic: minutes in prep).
    #[test]
    fn fixup_keeps_first_occurrences_in_order_at_200k_entries() {
        let anon = AuthInfo::for_ip("127.0.0.1");
        let distinct: Vec<Acl> = (0..200_000usize)
            .map(|i| {
                Acl::new(
                    31,
                    "ip",
                    &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                )
            })
            .collect();
        let mut input = Vec::new();
        for (i, a) in distinct.iter().enumerate() {
            input.push(a.clone());
            // Repeats of earlier entries, and one that differs only in perms (not a repeat).
            if i % 3 == 0 {
                input.push(distinct[i / 2].clone());
            }
        }
        input.push(Acl::new(1, "ip", "10.0.0.0"));
        let mut want = distinct.clone();
        want.push(Acl::new(1, "ip", "10.0.0.0"));
        assert_eq!(fixup_acl(&input, &anon).unwrap(), want);
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
