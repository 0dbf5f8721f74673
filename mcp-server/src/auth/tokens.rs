//! The API-token store (`tokens.yaml`): who a bearer token belongs to.
//!
//! Tokens are kept only as SHA-256 hashes. A presented token is hashed, the
//! hash's first eight bytes pick a bucket in O(1), and the full 32 bytes are
//! compared with every candidate in constant time, so neither the lookup nor
//! the comparison reveals how much of a stored hash a guess matched.

use std::collections::HashMap;

use fleet_common::tokens::TokenEntry;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{AuthFailure, Principal};

/// One immutable generation of `tokens.yaml`.
#[derive(Debug, Default)]
pub struct TokenStore {
    buckets: HashMap<u64, Vec<TokenEntry>>,
    len: usize,
    /// Some token has permissions, a database binding or a role.
    varied: bool,
}

impl TokenStore {
    pub fn new(entries: Vec<TokenEntry>) -> TokenStore {
        let len = entries.len();
        let varied = entries
            .iter()
            .any(|e| e.database.is_some() || e.role.is_some() || !e.permissions.is_unrestricted());
        let mut buckets: HashMap<u64, Vec<TokenEntry>> = HashMap::with_capacity(len);
        for e in entries {
            buckets.entry(bucket_of(&e.hash)).or_default().push(e);
        }
        TokenStore {
            buckets,
            len,
            varied,
        }
    }

    /// Whether two of its tokens may be answered differently: some token
    /// has permissions, a database binding or a role.
    pub fn varied(&self) -> bool {
        self.varied
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Check a presented bearer token.
    pub fn authenticate(
        &self,
        bearer: &str,
        now: OffsetDateTime,
    ) -> Result<Principal, AuthFailure> {
        let hash: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        let candidates = self
            .buckets
            .get(&bucket_of(&hash))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut found: Option<&TokenEntry> = None;
        for entry in candidates {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(AuthFailure::Unknown)?;
        if entry.is_expired(now) {
            return Err(AuthFailure::Expired);
        }
        Ok(Principal {
            subject: format!("token:{}", entry.id),
            database: entry.database.clone(),
            permissions: entry.permissions.clone(),
            roles: super::Roles::of(entry.role.as_ref()),
        })
    }
}

fn bucket_of(hash: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_common::permissions::Permissions;

    fn entry(id: &str, secret: &str, expires_at: Option<OffsetDateTime>) -> TokenEntry {
        TokenEntry {
            id: id.into(),
            hash: Sha256::digest(secret.as_bytes()).into(),
            expires_at,
            annotation: None,
            database: Some("prod".into()),
            permissions: Permissions::unrestricted(),
            role: None,
        }
    }

    #[test]
    fn a_token_carries_its_permissions() {
        let now = OffsetDateTime::now_utc();
        let limited = Permissions::from_lists(Some(vec!["search_knowledgebase".into()]), None);
        let mut kb = entry("kb", "secret-kb", None);
        kb.permissions = limited.clone().shared();
        let store = TokenStore::new(vec![kb, entry("all", "secret-all", None)]);
        assert_eq!(
            *store.authenticate("secret-kb", now).unwrap().permissions,
            limited
        );
        assert!(
            store
                .authenticate("secret-all", now)
                .unwrap()
                .permissions
                .is_unrestricted()
        );
    }

    #[test]
    fn a_token_carries_its_role_and_makes_answers_vary() {
        let now = OffsetDateTime::now_utc();
        let mut plain = entry("plain", "secret-plain", None);
        plain.database = None;
        assert!(!TokenStore::new(vec![plain.clone()]).varied());
        let mut analyst = plain.clone();
        analyst.hash = Sha256::digest(b"secret-analyst").into();
        analyst.role = Some("analyst".into());
        let store = TokenStore::new(vec![plain, analyst]);
        assert!(store.varied(), "a role alone makes answers per caller");
        let p = store.authenticate("secret-analyst", now).unwrap();
        assert_eq!(
            p.role_for("query_database", "any").as_deref(),
            Some("analyst")
        );
        let p = store.authenticate("secret-plain", now).unwrap();
        assert_eq!(p.roles, super::super::Roles::Login);
    }

    #[test]
    fn known_unknown_and_expired_tokens() {
        let now = OffsetDateTime::now_utc();
        let store = TokenStore::new(vec![
            entry("a", "secret-a", None),
            entry("b", "secret-b", Some(now - time::Duration::seconds(1))),
            entry("c", "secret-c", Some(now + time::Duration::hours(1))),
        ]);
        assert_eq!(store.len(), 3);
        let p = store.authenticate("secret-a", now).unwrap();
        assert_eq!(p.subject, "token:a");
        assert_eq!(p.database.as_deref(), Some("prod"));
        assert_eq!(
            store.authenticate("secret-b", now),
            Err(AuthFailure::Expired)
        );
        assert!(store.authenticate("secret-c", now).is_ok());
        assert_eq!(
            store.authenticate("secret-x", now),
            Err(AuthFailure::Unknown)
        );
        assert_eq!(store.authenticate("", now), Err(AuthFailure::Unknown));
    }
}
