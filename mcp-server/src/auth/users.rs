//! The user store: who may log in with `authenticate_user`, and the check of
//! a password against a bcrypt or argon2id hash.
//!
//! A login for an unknown or disabled user still runs one hash verification,
//! so its timing does not tell which usernames exist.

use std::collections::HashMap;

use fleet_common::users::{HashScheme, UserEntry};

/// Why a login was refused. Callers answer every case the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownUser,
    Disabled,
    WrongPassword,
}

/// One immutable generation of `users.yaml`.
#[derive(Debug, Default)]
pub struct UserStore {
    by_name: HashMap<String, UserEntry>,
    /// Some user has permissions or a role (asked on every list request:
    /// kept, not counted).
    varied: bool,
}

/// A bcrypt hash (cost 12, like pgEdge's) of a random password, verified
/// against when there is no real hash to check, to keep timing uniform.
const DUMMY_BCRYPT: &str = "$2b$12$C6UzMDM.H6dfI/f/IKxGhuS3tX4W3bQp1Zh5Jb1cG3wRKZbKzj7Jm";

impl UserStore {
    pub fn new(users: Vec<UserEntry>) -> UserStore {
        let varied = users
            .iter()
            .any(|u| u.role.is_some() || !u.permissions.is_unrestricted());
        UserStore {
            by_name: users.into_iter().map(|u| (u.username.clone(), u)).collect(),
            varied,
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether two of its users may be answered differently: some user has
    /// permissions or a role.
    pub fn varied(&self) -> bool {
        self.varied
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn get(&self, username: &str) -> Option<&UserEntry> {
        self.by_name.get(username)
    }

    /// Check a username and password. Blocking and deliberately slow (the
    /// hash's cost): call from a blocking thread.
    pub fn login(&self, username: &str, password: &str) -> Result<&UserEntry, LoginFailure> {
        match self.by_name.get(username) {
            None => {
                let _ = verify_password(password, DUMMY_BCRYPT, HashScheme::Bcrypt);
                Err(LoginFailure::UnknownUser)
            }
            Some(user) => {
                let ok = verify_password(password, &user.password_hash, user.scheme);
                match (ok, user.enabled) {
                    (_, false) => Err(LoginFailure::Disabled),
                    (false, true) => Err(LoginFailure::WrongPassword),
                    (true, true) => Ok(user),
                }
            }
        }
    }
}

/// bcrypt reads at most this many bytes of a password and silently ignores
/// the rest; a longer password is refused rather than cut (argon2id has no
/// such limit).
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// Verify `password` against a stored hash; any malformed hash is a mismatch.
/// Against bcrypt, a password longer than bcrypt reads never matches (its
/// first 72 bytes plus anything must not log in); its hash still runs, so the
/// answer takes as long as any other.
pub fn verify_password(password: &str, hash: &str, scheme: HashScheme) -> bool {
    match scheme {
        HashScheme::Bcrypt => {
            let bytes = password.as_bytes();
            let read = &bytes[..bytes.len().min(BCRYPT_MAX_PASSWORD_BYTES)];
            let matched = bcrypt::verify(read, hash).unwrap_or(false);
            matched && bytes.len() <= BCRYPT_MAX_PASSWORD_BYTES
        }
        HashScheme::Argon2id => {
            use argon2::password_hash::PasswordVerifier;
            argon2::password_hash::phc::PasswordHash::new(hash)
                .map(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        }
    }
}

/// Hash a new password for `users.yaml`.
pub fn hash_password(password: &str, scheme: HashScheme) -> anyhow::Result<String> {
    match scheme {
        HashScheme::Bcrypt => {
            anyhow::ensure!(
                password.len() <= BCRYPT_MAX_PASSWORD_BYTES,
                "the password is {} bytes, and bcrypt uses only the first {BCRYPT_MAX_PASSWORD_BYTES}: \
                 choose a shorter one, or use --hash argon2id, which has no such limit",
                password.len()
            );
            Ok(bcrypt::hash(password, 12)?)
        }
        HashScheme::Argon2id => {
            use argon2::password_hash::PasswordHasher;
            let hash = argon2::Argon2::default()
                .hash_password(password.as_bytes())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
            Ok(hash.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str, scheme: HashScheme, enabled: bool) -> UserEntry {
        UserEntry {
            username: name.into(),
            password_hash: hash_password(password, scheme).unwrap(),
            scheme,
            enabled,
            annotation: None,
            permissions: fleet_common::permissions::Permissions::unrestricted(),
            role: None,
        }
    }

    #[test]
    fn dummy_hash_is_a_real_bcrypt_hash() {
        assert_eq!(
            fleet_common::users::hash_scheme(DUMMY_BCRYPT),
            Some(HashScheme::Bcrypt)
        );
        assert!(bcrypt::verify("anything", DUMMY_BCRYPT).is_ok());
    }

    #[test]
    fn bcrypt_passwords_longer_than_72_bytes_are_refused() {
        let long = "p".repeat(80);
        let err = hash_password(&long, HashScheme::Bcrypt)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("80 bytes") && err.contains("argon2id"),
            "{err}"
        );
        assert!(hash_password(&long, HashScheme::Argon2id).is_ok());
        // A hash made elsewhere from the first 72 bytes (bcrypt ignores the
        // rest) must not let "those 72 bytes plus anything" log in.
        let store = UserStore::new(vec![UserEntry {
            username: "alice".into(),
            password_hash: bcrypt::hash(&long[..72], 4).unwrap(),
            scheme: HashScheme::Bcrypt,
            enabled: true,
            annotation: None,
            permissions: fleet_common::permissions::Permissions::unrestricted(),
            role: None,
        }]);
        assert!(store.login("alice", &long[..72]).is_ok());
        assert_eq!(
            store.login("alice", &long).unwrap_err(),
            LoginFailure::WrongPassword
        );
        assert_eq!(
            store
                .login("alice", &format!("{}anything", &long[..72]))
                .unwrap_err(),
            LoginFailure::WrongPassword
        );
    }

    #[test]
    fn bcrypt_and_argon2id_logins() {
        let store = UserStore::new(vec![
            user("alice", "correct horse", HashScheme::Bcrypt, true),
            user("bob", "battery staple", HashScheme::Argon2id, true),
            user("carol", "pw", HashScheme::Argon2id, false),
        ]);
        assert!(store.login("alice", "correct horse").is_ok());
        assert_eq!(
            store.login("alice", "wrong").unwrap_err(),
            LoginFailure::WrongPassword
        );
        assert!(store.login("bob", "battery staple").is_ok());
        assert_eq!(
            store.login("carol", "pw").unwrap_err(),
            LoginFailure::Disabled
        );
        assert_eq!(
            store.login("mallory", "x").unwrap_err(),
            LoginFailure::UnknownUser
        );
        let h = &store.get("bob").unwrap().password_hash;
        assert!(fleet_common::users::hash_scheme(h) == Some(HashScheme::Argon2id));
    }
}
