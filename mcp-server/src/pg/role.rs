//! The caller's PostgreSQL role for one tool call.
//!
//! A credential may name a role (`role:` in `tokens.yaml`, `users.yaml` or
//! an `oauth_permissions` grant); the tool dispatcher runs each call of that
//! credential inside [`scope`], and [`super::Database::begin`] (and the
//! writer's `begin_writer`) then opens the call's transaction with
//! `SET LOCAL ROLE`, so row-level security and grants apply to the real
//! caller. `SET LOCAL` ends with the transaction, which always ends (rolled
//! back, or committed by a writer tool), and a pooled connection is reset
//! at checkout (`SET SESSION AUTHORIZATION DEFAULT`, `RESET ALL`): no role
//! outlives its call. Outside a scope, or with `None`, calls run as the
//! connection's own login role, as before.
//!
//! The statement guard refuses `SET ROLE`, `RESET ROLE`, `SET SESSION
//! AUTHORIZATION` and `set_config`, so a caller's SQL cannot leave the role.

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static ROLE: Option<Arc<str>>;
}

/// Run `call` (one tool call) as `role`; `None` keeps the login role.
pub async fn scope<F: Future>(role: Option<Arc<str>>, call: F) -> F::Output {
    ROLE.scope(role, call).await
}

/// The role of the tool call running on this task, if any.
pub(super) fn current() -> Option<Arc<str>> {
    ROLE.try_with(|r| r.clone()).ok().flatten()
}

/// `SET LOCAL ROLE "name"`: the name quoted as an identifier (`"` doubled),
/// so any spelling is one identifier and nothing else.
pub(super) fn set_local(role: &str) -> String {
    format!("SET LOCAL ROLE \"{}\"", role.replace('"', "\"\""))
}

/// Whether `name` can be a PostgreSQL role name: 1–63 bytes, no NUL or
/// control character. What the credential files accept (the one rule,
/// [`fleet_common::role::valid_name`]).
pub fn valid_name(name: &str) -> bool {
    fleet_common::role::valid_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_makes_one_identifier() {
        assert_eq!(set_local("analyst"), "SET LOCAL ROLE \"analyst\"");
        assert_eq!(
            set_local("a\"; RESET ROLE; --"),
            "SET LOCAL ROLE \"a\"\"; RESET ROLE; --\""
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("analyst") && valid_name("Mixed Case-1"));
        assert!(!valid_name("") && !valid_name(&"x".repeat(64)) && !valid_name("a\0b"));
    }

    #[tokio::test]
    async fn the_role_lives_only_inside_its_scope() {
        assert!(current().is_none());
        let inner = scope(Some(Arc::from("r1")), async { current() }).await;
        assert_eq!(inner.as_deref(), Some("r1"));
        assert!(scope(None, async { current() }).await.is_none());
        assert!(current().is_none());
    }
}
