//! Access tokens already verified, by their SHA-256: a client sends the
//! same token on every request until it expires, and its signature need not
//! be checked again each time (an RSA or ECDSA check costs tens of
//! microseconds; a hit costs one hash).
//!
//! An entry holds until the token's `exp` (plus the clock skew) and only
//! for the issuer's key set it was verified with: when the keys change (a
//! rotation, a key withdrawn), every entry of that issuer stops counting.
//! Only accepted tokens are kept, never refusals, so every bad guess is
//! checked and counted. The table is bounded: when full, it is emptied.
//! Keys are digests, not tokens: nothing here is a credential.

use std::collections::HashMap;
use std::sync::RwLock;

use sha2::{Digest, Sha256};

use crate::auth::Principal;

/// Entries kept before the table is emptied.
const MAX_ENTRIES: usize = 8192;

struct Entry {
    principal: Principal,
    /// Unix seconds after which the token no longer holds.
    until: u64,
    issuer: usize,
    generation: u64,
}

#[derive(Default)]
pub struct Verified {
    map: RwLock<HashMap<[u8; 32], Entry>>,
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Verified {
    /// The principal of a token verified before, if it still holds now and
    /// the issuer's keys are still those of `generation(issuer)`.
    pub fn get(
        &self,
        digest: &[u8; 32],
        now: u64,
        generation: impl Fn(usize) -> u64,
    ) -> Option<Principal> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let e = map.get(digest)?;
        (now <= e.until && generation(e.issuer) == e.generation).then(|| e.principal.clone())
    }

    pub fn insert(
        &self,
        digest: [u8; 32],
        principal: Principal,
        until: u64,
        issuer: usize,
        generation: u64,
    ) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            digest,
            Entry {
                principal,
                until,
                issuer,
                generation,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Principal {
        Principal {
            subject: "oauth:x".into(),
            database: None,
            permissions: fleet_common::permissions::Permissions::unrestricted(),
            roles: crate::auth::Roles::Login,
        }
    }

    #[test]
    fn an_entry_holds_until_expiry_and_for_its_key_generation_only() {
        let c = Verified::default();
        let d = digest("t");
        c.insert(d, p(), 100, 0, 7);
        assert!(c.get(&d, 100, |_| 7).is_some());
        assert!(c.get(&d, 101, |_| 7).is_none());
        assert!(c.get(&d, 50, |_| 8).is_none());
        assert!(c.get(&digest("u"), 50, |_| 7).is_none());
        for i in 0..MAX_ENTRIES {
            c.insert(digest(&i.to_string()), p(), 100, 0, 7);
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}
