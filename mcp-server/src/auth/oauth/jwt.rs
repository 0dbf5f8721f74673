//! Checking one OAuth access token (a JWS-signed JWT) against one issuer's
//! keys: the algorithm is one of the asymmetric ones and fits the key's
//! family (never `none`, never an HMAC keyed with a public key), the
//! signature holds, `iss` is the issuer, `aud` this server, `exp` and `nbf`
//! hold within the configured skew, and every required scope is granted.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys::Key;
use super::settings::IssuerSettings;

/// Longest token read: a real access token is a few KiB at most.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The algorithms a token may be signed with.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why an access token was refused; the label is used in logs and
/// metrics, and says nothing of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtFailure {
    /// Not three base64url parts with JSON in them.
    Malformed,
    /// `none`, an HMAC, or an algorithm the key is not for.
    Algorithm,
    /// No configured issuer has this `iss`.
    Issuer,
    /// No key of the issuer has this `kid`, even after fetching them again.
    UnknownKey,
    Signature,
    Expired,
    NotYetValid,
    Audience,
    /// A registered claim missing or of the wrong type.
    Claims,
}

impl JwtFailure {
    pub fn label(self) -> &'static str {
        match self {
            JwtFailure::Malformed => "jwt_malformed",
            JwtFailure::Algorithm => "jwt_algorithm",
            JwtFailure::Issuer => "jwt_issuer",
            JwtFailure::UnknownKey => "jwt_unknown_key",
            JwtFailure::Signature => "jwt_signature",
            JwtFailure::Expired => "jwt_expired",
            JwtFailure::NotYetValid => "jwt_not_yet_valid",
            JwtFailure::Audience => "jwt_audience",
            JwtFailure::Claims => "jwt_claims",
        }
    }
}

/// What the unverified header and `iss` say: enough to pick the issuer and
/// the key. Nothing of it is trusted until the signature is checked.
#[derive(Debug)]
pub struct Peek {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub iss: String,
}

/// Whether `token` has the shape of a JWT: three base64url parts, the
/// first of which would decode to a JSON object (`eyJ`).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ")
        && token.bytes().filter(|b| *b == b'.').count() == 2
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Read the header's `alg` and `kid` and the payload's `iss`.
pub fn peek(token: &str) -> Result<Peek, JwtFailure> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtFailure::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtFailure::Malformed);
    };
    let header: Header = json_part(header)?;
    let alg = header
        .alg
        .parse::<Algorithm>()
        .ok()
        .filter(|a| ALGORITHMS.contains(a))
        .ok_or(JwtFailure::Algorithm)?;
    let iss: Iss = json_part(payload)?;
    Ok(Peek {
        alg,
        kid: header.kid,
        iss: iss.iss.ok_or(JwtFailure::Claims)?,
    })
}

fn json_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, JwtFailure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtFailure::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtFailure::Malformed)
}

/// A token whose signature and registered claims held.
#[derive(Debug)]
pub struct Verified {
    pub claims: Map<String, Value>,
}

impl Verified {
    /// The scopes granted: `scope` (space-separated, RFC 9068) or `scp`
    /// (a list or a string, as Entra ID and Okta write it).
    pub fn scopes(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        for name in ["scope", "scp"] {
            match self.claims.get(name) {
                Some(Value::String(s)) => out.extend(s.split_ascii_whitespace()),
                Some(Value::Array(items)) => {
                    out.extend(items.iter().filter_map(Value::as_str));
                }
                _ => {}
            }
        }
        out
    }

    /// Whether claim `name` is `value`, or an array holding it.
    pub fn claim_has(&self, name: &str, value: &str) -> bool {
        match self.claims.get(name) {
            Some(Value::String(s)) => s == value,
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
            Some(Value::Bool(b)) => value == if *b { "true" } else { "false" },
            Some(Value::Number(n)) => n.to_string() == value,
            _ => false,
        }
    }

    /// `exp`, in Unix seconds (checked present by [`verify`]).
    pub fn expires(&self) -> Option<u64> {
        self.claims.get("exp").and_then(Value::as_u64)
    }

    /// Who the token speaks for: `sub`, else `client_id`.
    pub fn subject(&self) -> &str {
        ["sub", "client_id"]
            .iter()
            .find_map(|c| self.claims.get(*c).and_then(Value::as_str))
            .unwrap_or("")
    }
}

/// Check the signature and registered claims of `token` with `key`.
pub fn verify(
    token: &str,
    peek: &Peek,
    key: &Key,
    issuer: &IssuerSettings,
    skew: Duration,
) -> Result<Verified, JwtFailure> {
    if key.family != peek.alg.family() || key.alg.is_some_and(|a| a != peek.alg) {
        return Err(JwtFailure::Algorithm);
    }
    let mut v = Validation::new(peek.alg);
    v.leeway = skew.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_audience(&[issuer.audience.as_str()]);
    v.set_issuer(&[issuer.issuer.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_) => JwtFailure::Signature,
                ErrorKind::ExpiredSignature => JwtFailure::Expired,
                ErrorKind::ImmatureSignature => JwtFailure::NotYetValid,
                ErrorKind::InvalidAudience => JwtFailure::Audience,
                ErrorKind::InvalidIssuer => JwtFailure::Issuer,
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    JwtFailure::Claims
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => JwtFailure::Algorithm,
                _ => JwtFailure::Malformed,
            }
        })?;
    Ok(Verified {
        claims: data.claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn peek_refuses_none_hmac_and_junk() {
        let payload = b64(r#"{"iss":"https://idp"}"#);
        let none = format!("{}.{payload}.", b64(r#"{"alg":"none"}"#));
        assert_eq!(peek(&none).unwrap_err(), JwtFailure::Algorithm);
        let hs = format!("{}.{payload}.sig", b64(r#"{"alg":"HS256","kid":"k"}"#));
        assert_eq!(peek(&hs).unwrap_err(), JwtFailure::Algorithm);
        let rs = format!("{}.{payload}.sig", b64(r#"{"alg":"RS256","kid":"k"}"#));
        let p = peek(&rs).unwrap();
        assert_eq!(
            (p.alg, p.kid.as_deref(), p.iss.as_str()),
            (Algorithm::RS256, Some("k"), "https://idp")
        );
        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "eyJ!.x.y",
            &format!("{}.e30.x", b64("[1]")),
        ] {
            assert!(peek(junk).is_err(), "{junk}");
        }
        let no_iss = format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert_eq!(peek(&no_iss).unwrap_err(), JwtFailure::Claims);
        assert_eq!(
            peek(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
            JwtFailure::Malformed
        );
    }

    #[test]
    fn jwt_shape_is_told_from_api_and_session_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("mcp_abcdef"));
        assert!(!looks_like_jwt("eyJ.a"));
        assert!(!looks_like_jwt("eyJ.a.b c"));
    }

    #[test]
    fn scopes_and_claims_are_read_in_both_forms() {
        let v = Verified {
            claims: serde_json::from_str(
                r#"{"scope":"mcp kb","scp":["sql"],"groups":["dba","ops"],"sub":"alice","admin":true}"#,
            )
            .unwrap(),
        };
        assert_eq!(
            v.scopes().into_iter().collect::<Vec<_>>(),
            ["kb", "mcp", "sql"]
        );
        assert!(v.claim_has("groups", "dba") && !v.claim_has("groups", "x"));
        assert!(v.claim_has("admin", "true"));
        assert_eq!(v.subject(), "alice");
    }
}
