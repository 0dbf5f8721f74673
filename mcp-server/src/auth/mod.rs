//! Authentication: who a request comes from, decided in one place.
//!
//! [`credential`] reads the bearer token of a request's `Authorization`;
//! [`Credentials::authenticate`] checks it against the live credentials: a
//! session token signed with `session.key` ([`sessions`]) for a user of
//! `users.yaml` ([`users`]), or an API token of `tokens.yaml` ([`tokens`]).
//! An OAuth access token from a trusted issuer is checked by [`oauth`]
//! (see `AppState::authenticate`, which picks the path by the token's shape).
//! The [`Principal`] carries the credential's permissions and PostgreSQL
//! role ([`Roles`]): the token's, or the user's in the live `users.yaml`
//! (so a change to a user's `tools:` or `role:` applies to their sessions
//! at the next reload, without a new login).
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
    /// The PostgreSQL role its calls run as ([`Principal::role_for`]).
    pub roles: Roles,
}

/// The PostgreSQL role(s) a credential's tool calls run as (see
/// [`crate::pg::role`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Roles {
    /// The server's own login role: no `role:` anywhere (as before roles).
    #[default]
    Login,
    /// This role for every call: the `role:` of a `tokens.yaml` or
    /// `users.yaml` entry.
    Always(Arc<str>),
    /// An OAuth token's matching `oauth_permissions` grants, in
    /// configuration order, each with what it allows and its role (`None`:
    /// the login role). A call runs as the role of the first grant that
    /// allows it by itself: permissions merge pair by pair and a merge
    /// never grants what no single grant does, so a role is never taken
    /// from a grant that does not allow the call.
    ByGrant(Arc<[(Permissions, Option<Arc<str>>)]>),
}

impl Roles {
    /// An entry's `role:`: that role always, or the login role.
    pub fn of(role: Option<&Arc<str>>) -> Roles {
        role.map_or(Roles::Login, |r| Roles::Always(r.clone()))
    }
}

impl Principal {
    /// The role a call of `tool` on `database` runs as (`None`: the login
    /// role). For a call the permissions allow, as the gate checks first.
    pub fn role_for(&self, tool: &str, database: &str) -> Option<Arc<str>> {
        self.role_for_any(&[tool], database)
    }

    /// The role of a read of `database` open to any of `tools` (the
    /// `system_info` resource): that of the first grant allowing one.
    pub fn role_for_any(&self, tools: &[&str], database: &str) -> Option<Arc<str>> {
        match &self.roles {
            Roles::Login => None,
            Roles::Always(role) => Some(role.clone()),
            Roles::ByGrant(grants) => grants
                .iter()
                .find(|(allows, _)| tools.iter().any(|t| allows.allows(t, database)))
                .and_then(|(_, role)| role.clone()),
        }
    }

    /// Bytes that differ between two credentials whose answers may differ:
    /// the permissions' [`Permissions::fingerprint`] (empty when
    /// unrestricted) and, when some call runs as a role, the roles. Two
    /// credentials with equal permissions but other roles may see other
    /// rows, so nothing keyed by this is shared between them; credentials
    /// without a role keep the fingerprint they had before roles.
    pub fn fingerprint(&self) -> Vec<u8> {
        let permissions = self.permissions.fingerprint();
        if self.roles == Roles::Login {
            return permissions;
        }
        let role = |out: &mut Vec<u8>, role: Option<&Arc<str>>| match role {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                out.extend_from_slice(&(r.len() as u64).to_le_bytes());
                out.extend_from_slice(r.as_bytes());
            }
        };
        // `R` starts no permissions fingerprint (`-`, `[`, `*` or empty).
        let mut out = vec![b'R'];
        out.extend_from_slice(&(permissions.len() as u64).to_le_bytes());
        out.extend_from_slice(&permissions);
        match &self.roles {
            Roles::Login => {}
            Roles::Always(r) => {
                out.push(b'1');
                role(&mut out, Some(r));
            }
            Roles::ByGrant(grants) => {
                out.push(b'G');
                out.extend_from_slice(&(grants.len() as u64).to_le_bytes());
                for (allows, r) in grants.iter() {
                    let fp = allows.fingerprint();
                    out.extend_from_slice(&(fp.len() as u64).to_le_bytes());
                    out.extend_from_slice(&fp);
                    role(&mut out, r.as_ref());
                }
            }
        }
        out
    }
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
            let (permissions, roles) = users
                .get(&user)
                .map(|u| (u.permissions.clone(), Roles::of(u.role.as_ref())))
                .ok_or(AuthFailure::Session(SessionFailure::UnknownUser))?;
            return Ok(Principal {
                subject: format!("user:{user}"),
                database: None,
                permissions,
                roles,
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
    /// request: some token or user has permissions, a binding or a role.
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
            role: None,
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

    fn lists(l: &[&str]) -> Option<Vec<String>> {
        Some(l.iter().map(|s| s.to_string()).collect())
    }

    fn by_grant(grants: &[(Permissions, Option<&str>)]) -> Principal {
        let list: Vec<(Permissions, Option<Arc<str>>)> = grants
            .iter()
            .map(|(p, r)| (p.clone(), r.map(Arc::from)))
            .collect();
        Principal {
            subject: "oauth:x".into(),
            database: None,
            permissions: Permissions::from_grants(
                &list
                    .iter()
                    .flat_map(|(p, _)| p.grants())
                    .collect::<Vec<_>>(),
            )
            .shared(),
            roles: Roles::ByGrant(list.into()),
        }
    }

    #[test]
    fn merged_grants_take_the_role_of_the_first_grant_that_allows_the_call() {
        let q = |dbs: &[&str]| Permissions::from_lists(lists(&["query_database"]), lists(dbs));
        // Two grants, two roles, distinct pairs: each pair its grant's role.
        let p = by_grant(&[(q(&["sales"]), Some("seller")), (q(&["hr"]), Some("clerk"))]);
        assert_eq!(
            p.role_for("query_database", "sales").as_deref(),
            Some("seller")
        );
        assert_eq!(p.role_for("query_database", "hr").as_deref(), Some("clerk"));
        // A pair no single grant allows has no grant's role.
        assert_eq!(p.role_for("count_rows", "sales"), None);
        assert_eq!(p.role_for("query_database", "other"), None);
        // The same pair in both: the first in configuration order.
        let p = by_grant(&[
            (q(&["sales"]), Some("first")),
            (q(&["sales", "hr"]), Some("second")),
        ]);
        assert_eq!(
            p.role_for("query_database", "sales").as_deref(),
            Some("first")
        );
        assert_eq!(
            p.role_for("query_database", "hr").as_deref(),
            Some("second")
        );
        // A grant without a role beside one with: each on its own pairs
        // (the first decides where both allow).
        let everything_on_kb = Permissions::from_lists(None, lists(&["kb"]));
        let p = by_grant(&[
            (everything_on_kb, None),
            (q(&["sales", "kb"]), Some("seller")),
        ]);
        assert_eq!(p.role_for("count_rows", "kb"), None);
        assert_eq!(p.role_for("query_database", "kb"), None);
        assert_eq!(
            p.role_for("query_database", "sales").as_deref(),
            Some("seller")
        );
        // The system_info resource: the first grant allowing one of the tools.
        let tools = ["count_rows", "query_database"];
        assert_eq!(p.role_for_any(&tools, "sales").as_deref(), Some("seller"));
        assert_eq!(p.role_for_any(&tools, "kb"), None);
        // A token or user entry: its role everywhere; none: the login role.
        let mut one = p.clone();
        one.roles = Roles::of(Some(&Arc::from("analyst")));
        assert_eq!(
            one.role_for("anything", "anywhere").as_deref(),
            Some("analyst")
        );
        one.roles = Roles::of(None);
        assert_eq!(one.role_for("query_database", "sales"), None);
    }

    #[test]
    fn the_fingerprint_tells_roles_apart_and_is_unchanged_without_one() {
        let principal = |roles: Roles| Principal {
            subject: "token:t".into(),
            database: None,
            permissions: Permissions::unrestricted(),
            roles,
        };
        let login = principal(Roles::Login);
        assert!(
            login.fingerprint().is_empty(),
            "unrestricted, no role: shared as before"
        );
        let limited = Principal {
            permissions: Permissions::from_lists(lists(&["query_database"]), None).shared(),
            ..login.clone()
        };
        assert_eq!(limited.fingerprint(), limited.permissions.fingerprint());
        let a = principal(Roles::of(Some(&Arc::from("alice"))));
        let b = principal(Roles::of(Some(&Arc::from("bob"))));
        let fps = [
            login.fingerprint(),
            a.fingerprint(),
            b.fingerprint(),
            limited.fingerprint(),
        ];
        for (i, x) in fps.iter().enumerate() {
            for y in &fps[i + 1..] {
                assert_ne!(x, y);
            }
        }
        // Grants: the same union with the roles on other pairs differs.
        let q = |db: &str| Permissions::from_lists(lists(&["query_database"]), lists(&[db]));
        let one = by_grant(&[(q("x"), Some("r")), (q("y"), None)]);
        let other = by_grant(&[(q("x"), None), (q("y"), Some("r"))]);
        assert_eq!(one.permissions, other.permissions);
        assert_ne!(one.fingerprint(), other.fingerprint());
        assert_eq!(one.fingerprint(), one.clone().fingerprint());
    }
}
