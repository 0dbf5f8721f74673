//! The PostgreSQL role a credential's tool calls run as: the `role:` of an
//! entry of `tokens.yaml` or `users.yaml` (and of an `oauth_permissions`
//! grant in the server's configuration).
//!
//! ```yaml
//! tokens:
//!   analyst-token:
//!     hash: 9f86d0...
//!     role: analyst        # each tool call runs with SET LOCAL ROLE analyst
//! ```
//! Absent (or null), calls run as the server's own login role, as before.
//! A name that PostgreSQL could not take as a role (empty, longer than 63
//! bytes, a control character) refuses the whole file, like any other bad
//! field: an empty `role: ""` is refused rather than read as "no role",
//! which would run the credential with the login role's rights. Whether the
//! role exists, and whether the login role may take it, only the database
//! can say: that is a tool error at call time.

use std::sync::Arc;

use crate::yaml::checked_text;

/// Longest role name PostgreSQL keeps (NAMEDATALEN - 1), in bytes.
pub const MAX_LEN: usize = 63;

/// Whether `name` can be a PostgreSQL role name: 1 to 63 bytes, no NUL or
/// other control character. (It is always quoted as an identifier when
/// used, so any other character is fine.)
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_LEN && !name.chars().any(char::is_control)
}

/// What a bad name is told (never the name itself: values of the
/// credential files are not quoted).
pub const INVALID: &str = "expected a PostgreSQL role name (1 to 63 bytes, no control characters)";

/// An entry's `role:` field, checked as it is read so that a bad one is
/// reported at its own line and column.
pub(crate) struct RoleName(pub Arc<str>);

impl<'de> serde::Deserialize<'de> for RoleName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_text(d, |s| {
            if valid_name(&s) {
                Ok(RoleName(Arc::from(s)))
            } else {
                Err(INVALID)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("analyst") && valid_name("Mixed Case-1") && valid_name("ünïcode"));
        assert!(valid_name(&"x".repeat(63)));
        assert!(!valid_name("") && !valid_name(&"x".repeat(64)));
        assert!(!valid_name("a\0b") && !valid_name("a\nb") && !valid_name("\u{7f}"));
        // 63 bytes, not characters.
        assert!(!valid_name(&"é".repeat(32)));
    }
}
