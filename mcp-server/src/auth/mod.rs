//! Authentication: who a request comes from, decided in one place.
//!
//! [`credential`] reads the bearer token of a request's `Authorization`;
//! [`Credentials::authenticate`] checks it against the live credentials: a
//! session token signed with `session.key` ([`sessions`]) for a user of
//! `users.yaml` ([`users`]), or an API token of `tokens.yaml` ([`tokens`]).
//! An OAuth access token from a trusted issuer is checked by [`oauth`]
//! (see `AppState::authenticate`, which picks the path by the token's shape).
//! The [`Principal`] carries the credential's permissions: the token's, or
//! the user's in the live `users.yaml` (so a change to a user's `tools:`
//! applies to their sessions at the next reload, without a new login).
//! [`Credentials::login`] is `authenticate_user`'s password check and
//! session issue. Wrong guesses are limited per client ([`rate_limit`]),
//! whose address is taken from the peer or a trusted proxy's
//! `X-Forwarded-For` ([`client_ip`]).

pub mod client_ip;
pub mod oauth;
pub mod rate_limit;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, header};
use fleet_common::permissions::Permissions;
use time::OffsetDateTime;

use sessions::SessionFailure;
use tokens::TokenStore;
use users::UserStore;

/// Who made a request, as later layers and tools need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `token:<id>` for API tokens, `user:<name>` for sessions.
    pub subject: String,
    /// Database the credential is bound to, if any.
    pub database: Option<String>,
    /// The tools and databases this credential may use.
    pub permissions: Arc<Permissions>,
}

/// Why a credential was refused; the label is used in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Unknown,
    Expired,
    /// More than one `Authorization` header.
    Ambiguous,
    /// A session token that does not hold (see [`SessionFailure`]).
    Session(SessionFailure),
    /// An OAuth access token refused (see [`oauth::OAuthFailure`]).
    OAuth(oauth::OAuthFailure),
}

impl AuthFailure {
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Unknown => "invalid",
            AuthFailure::Expired => "expired",
            AuthFailure::Ambiguous => "ambiguous",
            AuthFailure::Session(s) => s.label(),
            AuthFailure::OAuth(oauth::OAuthFailure::Invalid(j)) => j.label(),
            AuthFailure::OAuth(oauth::OAuthFailure::InsufficientScope) => "insufficient_scope",
        }
    }
}

/// What a request's `Authorization` says.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No bearer token (no header, or another scheme).
    None,
    Bearer(&'a str),
    /// The header more than once: which one counts would be a guess that a
    /// proxy and this server could make differently, so it is refused.
    Ambiguous,
}

/// The bearer token in `Authorization`, if any.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Credential::None;
    };
    if all.next().is_some() {
        return Credential::Ambiguous;
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    token.map_or(Credential::None, Credential::Bearer)
}

/// The live credentials: one immutable generation of each auth file, each
/// swapped whole by a reload.
#[derive(Default)]
pub struct Credentials {
    pub tokens: ArcSwap<TokenStore>,
    pub users: ArcSwap<UserStore>,
    pub session_keys: ArcSwap<Vec<Vec<u8>>>,
}

/// How many credentials of each kind are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub tokens: usize,
    pub users: usize,
    pub session_keys: usize,
}

impl Credentials {
    /// Authenticate a bearer token: a session token (signed, from
    /// `authenticate_user`) or an API token from `tokens.yaml`.
    pub fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        let now = OffsetDateTime::now_utc();
        if token.starts_with(sessions::PREFIX) {
            let users = self.users.load();
            let user = sessions::verify(token, &self.session_keys.load(), &users, now)
                .map_err(AuthFailure::Session)?;
            // `verify` found the user in this same generation.
            let permissions = users
                .get(&user)
                .map(|u| u.permissions.clone())
                .ok_or(AuthFailure::Session(SessionFailure::UnknownUser))?;
            return Ok(Principal {
                subject: format!("user:{user}"),
                database: None,
                permissions,
            });
        }
        self.tokens.load().authenticate(token, now)
    }

    /// `authenticate_user`: check a user's password and, if it holds, issue
    /// a session token valid for `ttl` with its expiry. `None` for a wrong
    /// name or password and when no session key is loaded (nothing to sign
    /// with). Costs a bcrypt or argon2 check: call it off the runtime.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        ttl: std::time::Duration,
    ) -> Option<(String, OffsetDateTime)> {
        let users = self.users.load();
        let user = users.login(username, password).ok()?;
        let keys = self.session_keys.load();
        let key = keys.first()?;
        let ttl = time::Duration::try_from(ttl).ok()?;
        sessions::issue(
            key,
            &user.username,
            &user.password_hash,
            ttl,
            OffsetDateTime::now_utc(),
        )
    }

    /// Whether two credentials may get different answers to the same
    /// request: some token or user has permissions or a binding.
    pub fn vary_by_caller(&self) -> bool {
        self.tokens.load().varied() || self.users.load().varied()
    }

    /// Whether anyone at all can authenticate: an API token, or a user with
    /// a session key to sign their session.
    pub fn can_authenticate(&self) -> bool {
        let n = self.counts();
        n.tokens > 0 || (n.users > 0 && n.session_keys > 0)
    }

    pub fn counts(&self) -> Counts {
        Counts {
            tokens: self.tokens.load().len(),
            users: self.users.load().len(),
            session_keys: self.session_keys.load().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), Credential::None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(credential(&h), Credential::Bearer("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&h), Credential::None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(credential(&h), Credential::None);
        let two = crate::test_support::headers(&[
            ("authorization", "Bearer good"),
            ("authorization", "Bearer other"),
        ]);
        assert_eq!(credential(&two), Credential::Ambiguous);
    }

    #[test]
    fn a_session_carries_its_users_live_permissions() {
        const HASH: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        let user = |tools: Option<Vec<String>>| fleet_common::users::UserEntry {
            username: "alice".into(),
            password_hash: HASH.into(),
            scheme: fleet_common::users::HashScheme::Bcrypt,
            enabled: true,
            annotation: None,
            permissions: Permissions::from_lists(tools, None).shared(),
        };
        let creds = Credentials::default();
        let key = vec![7u8; 32];
        creds.session_keys.store(Arc::new(vec![key.clone()]));
        creds
            .users
            .store(Arc::new(UserStore::new(vec![user(Some(vec![
                "search_knowledgebase".into(),
            ]))])));
        let now = OffsetDateTime::now_utc();
        let (token, _) =
            sessions::issue(&key, "alice", HASH, time::Duration::hours(1), now).unwrap();
        let p = creds.authenticate(&token).unwrap();
        assert_eq!(p.subject, "user:alice");
        assert!(p.permissions.allows_tool("search_knowledgebase"));
        assert!(!p.permissions.allows_tool("query_database"));
        // A reload of users.yaml widens the same session.
        creds
            .users
            .store(Arc::new(UserStore::new(vec![user(None)])));
        assert!(
            creds
                .authenticate(&token)
                .unwrap()
                .permissions
                .is_unrestricted()
        );
    }
}
