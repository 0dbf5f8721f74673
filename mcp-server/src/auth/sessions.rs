//! Stateless session tokens, valid on every instance that has the same files.
//!
//! A token is `mcps1.<claims>.<mac>`: base64url JSON claims (user, expiry,
//! and a fingerprint of that user's current password hash) and an
//! HMAC-SHA-256 over them with the first key of `session.key`. Any key in
//! the file verifies, so a key is rotated by adding a new first line. No
//! instance stores sessions: a token is checked against the live user store,
//! so it stops working when its user is disabled, removed or changes
//! password, and survives every other reload.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::users::UserStore;

/// Prefix that tells session tokens from API tokens.
pub const PREFIX: &str = "mcps1.";

#[derive(Serialize, Deserialize)]
struct Claims {
    /// Username.
    u: String,
    /// Expiry, Unix seconds.
    exp: i64,
    /// Fingerprint of the user's password hash when the token was issued.
    fp: String,
}

/// Why a session token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFailure {
    Malformed,
    BadSignature,
    Expired,
    UnknownUser,
    Disabled,
    PasswordChanged,
    NoKey,
}

impl SessionFailure {
    pub fn label(self) -> &'static str {
        match self {
            SessionFailure::Malformed => "session_malformed",
            SessionFailure::BadSignature => "session_bad_signature",
            SessionFailure::Expired => "session_expired",
            SessionFailure::UnknownUser => "session_unknown_user",
            SessionFailure::Disabled => "session_user_disabled",
            SessionFailure::PasswordChanged => "session_password_changed",
            SessionFailure::NoKey => "session_no_key",
        }
    }
}

fn password_fingerprint(password_hash: &str) -> String {
    let digest = Sha256::new_with_prefix(b"mcp-session-fp\0")
        .chain_update(password_hash.as_bytes())
        .finalize();
    hex::encode(&digest[..12])
}

fn mac(key: &[u8], signed: &str) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    m.update(signed.as_bytes());
    Some(m)
}

/// Issue a token for `username` (whose hash is `password_hash`), signed
/// with `key`, valid for `ttl`.
pub fn issue(
    key: &[u8],
    username: &str,
    password_hash: &str,
    ttl: time::Duration,
    now: OffsetDateTime,
) -> Option<(String, OffsetDateTime)> {
    let expires_at = now + ttl;
    let claims = Claims {
        u: username.to_string(),
        exp: expires_at.unix_timestamp(),
        fp: password_fingerprint(password_hash),
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).ok()?);
    let signed = format!("{PREFIX}{payload}");
    let tag = URL_SAFE_NO_PAD.encode(mac(key, &signed)?.finalize().into_bytes());
    Some((format!("{signed}.{tag}"), expires_at))
}

/// Check a session token against the keys and the live users; returns the
/// username.
pub fn verify(
    token: &str,
    keys: &[Vec<u8>],
    users: &UserStore,
    now: OffsetDateTime,
) -> Result<String, SessionFailure> {
    if keys.is_empty() {
        return Err(SessionFailure::NoKey);
    }
    let (signed, tag) = token.rsplit_once('.').ok_or(SessionFailure::Malformed)?;
    let payload = signed
        .strip_prefix(PREFIX)
        .ok_or(SessionFailure::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| SessionFailure::Malformed)?;
    // verify_slice compares in constant time.
    let valid = keys
        .iter()
        .any(|k| mac(k, signed).is_some_and(|m| m.verify_slice(&tag).is_ok()));
    if !valid {
        return Err(SessionFailure::BadSignature);
    }
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(SessionFailure::Malformed)?;
    if claims.exp <= now.unix_timestamp() {
        return Err(SessionFailure::Expired);
    }
    let user = users.get(&claims.u).ok_or(SessionFailure::UnknownUser)?;
    if !user.enabled {
        return Err(SessionFailure::Disabled);
    }
    let current = password_fingerprint(&user.password_hash);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        current.as_bytes(),
        claims.fp.as_bytes(),
    )) {
        return Err(SessionFailure::PasswordChanged);
    }
    Ok(claims.u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_common::users::{HashScheme, UserEntry};

    fn store(hash: &str, enabled: bool) -> UserStore {
        UserStore::new(vec![UserEntry {
            username: "alice".into(),
            password_hash: hash.into(),
            scheme: HashScheme::Bcrypt,
            enabled,
            annotation: None,
            permissions: fleet_common::permissions::Permissions::unrestricted(),
            role: None,
        }])
    }

    const H1: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    const H2: &str = "$2b$12$C6UzMDM.H6dfI/f/IKxGhuS3tX4W3bQp1Zh5Jb1cG3wRKZbKzj7Jm";

    #[test]
    fn issue_verify_and_every_refusal() {
        let now = OffsetDateTime::now_utc();
        let k1 = vec![1u8; 32];
        let k2 = vec![2u8; 32];
        let (only_k1, only_k2) = (vec![k1.clone()], vec![k2.clone()]);
        let (tok, exp) = issue(&k1, "alice", H1, time::Duration::hours(24), now).unwrap();
        assert!(tok.starts_with(PREFIX));
        assert!(exp > now);
        let users = store(H1, true);
        assert_eq!(verify(&tok, &only_k1, &users, now).unwrap(), "alice");
        // Rotation: a new first key, the old one still verifies.
        assert!(verify(&tok, &[k2.clone(), k1.clone()], &users, now).is_ok());
        assert_eq!(
            verify(&tok, &only_k2, &users, now),
            Err(SessionFailure::BadSignature)
        );
        assert_eq!(verify(&tok, &[], &users, now), Err(SessionFailure::NoKey));
        assert_eq!(
            verify(&tok, &only_k1, &store(H2, true), now),
            Err(SessionFailure::PasswordChanged)
        );
        assert_eq!(
            verify(&tok, &only_k1, &store(H1, false), now),
            Err(SessionFailure::Disabled)
        );
        assert_eq!(
            verify(&tok, &only_k1, &UserStore::default(), now),
            Err(SessionFailure::UnknownUser)
        );
        let later = now + time::Duration::hours(25);
        assert_eq!(
            verify(&tok, &only_k1, &users, later),
            Err(SessionFailure::Expired)
        );
        // Tampering with the claims breaks the signature.
        let (signed, tag) = tok.rsplit_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"u":"alice","exp":99999999999,"fp":"x"}"#);
        let forged = format!("{PREFIX}{forged_claims}.{tag}");
        assert_eq!(
            verify(&forged, &only_k1, &users, now),
            Err(SessionFailure::BadSignature)
        );
        assert_eq!(
            verify(signed, &only_k1, &users, now),
            Err(SessionFailure::Malformed)
        );
        assert_eq!(
            verify("mcps1.a.b.c", &only_k1, &users, now),
            Err(SessionFailure::Malformed)
        );
    }
}
