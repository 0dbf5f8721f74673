//! The `oauth_*` settings of `serve`, resolved: this server's canonical
//! resource URL, the issuers it trusts, and what scopes or claims grant,
//! including the PostgreSQL role a grant's calls run as (`role:`, or
//! `role_claim:` within `oauth_role_claim_allowed`).
//! A mistake here (a relative URL, plain http to a remote host, a grant
//! naming neither a scope nor a claim, both `role:` and `role_claim:`, a
//! `role_claim:` with no allow-list) fails start-up with the setting named.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use fleet_common::permissions::Permissions;
use reqwest::Url;
use serde::Deserialize;

/// How often each issuer's keys are fetched again, unless configured.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(600);
/// Clock skew tolerated on `exp` and `nbf`, unless configured.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Longest clock skew accepted: more would keep expired tokens alive.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// One trusted issuer as written in the config file (`oauth_issuers:`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer identifier, exactly as its tokens' `iss` says.
    pub issuer: String,
    /// The `aud` its tokens must carry [default: `oauth_resource`].
    #[serde(default)]
    pub audience: Option<String>,
    /// Scopes every token of this issuer must carry, all of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Where its keys are, if not in its discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// One grant as written in the config file (`oauth_permissions:`): a
/// scope, or a claim with a value, what a token carrying it may use, and
/// the PostgreSQL role those calls run as.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// The role the grant's calls run as.
    #[serde(default)]
    pub role: Option<String>,
    /// The token claim naming the role (a string listed in
    /// `oauth_role_claim_allowed`); instead of `role:`.
    #[serde(default)]
    pub role_claim: Option<String>,
}

/// What the settings say, as given.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub resource: Option<String>,
    pub issuer: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub issuers: Option<Vec<IssuerConfig>>,
    pub permissions: Option<Vec<GrantConfig>>,
    pub role_claim_allowed: Option<Vec<String>>,
    pub jwks_refresh: Option<Duration>,
    pub clock_skew: Option<Duration>,
}

/// A trusted issuer, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    pub issuer: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub jwks_uri: Option<Url>,
}

/// What matches a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Scope(String),
    /// A claim holding this string, or an array holding it.
    Claim {
        name: String,
        value: String,
    },
}

/// The PostgreSQL role a grant's calls run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantRole {
    /// `role:` this one.
    Fixed(Arc<str>),
    /// `role_claim:` the string this claim of the token holds, which must
    /// be one of `allowed` (`oauth_role_claim_allowed`); otherwise the
    /// grant does not match at all.
    Claim {
        name: String,
        allowed: Arc<BTreeSet<String>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub matches: Match,
    pub permissions: Permissions,
    /// `None`: the server's login role.
    pub role: Option<GrantRole>,
}

/// The resource server's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The canonical URL of `/mcp` as clients reach it (RFC 8707).
    pub resource: Url,
    pub issuers: Vec<IssuerSettings>,
    /// None configured: a valid token may use everything.
    pub grants: Vec<Grant>,
    pub jwks_refresh: Duration,
    pub clock_skew: Duration,
}

/// `None` when no issuer is configured (OAuth off).
pub fn resolve(given: Given) -> anyhow::Result<Option<OAuthSettings>> {
    let mut written: Vec<IssuerConfig> = given.issuers.unwrap_or_default();
    if let Some(issuer) = given.issuer.filter(|i| !i.trim().is_empty()) {
        written.push(IssuerConfig {
            issuer,
            scopes: given.scopes.clone().unwrap_or_default(),
            ..IssuerConfig::default()
        });
    } else if given.scopes.as_ref().is_some_and(|s| !s.is_empty()) {
        bail!("oauth_scopes is set but oauth_issuer is not: the scopes apply to that issuer");
    }
    if written.is_empty() {
        ensure!(
            given.resource.is_none()
                && given.permissions.as_ref().is_none_or(Vec::is_empty)
                && given.role_claim_allowed.as_ref().is_none_or(Vec::is_empty),
            "oauth_resource, oauth_permissions or oauth_role_claim_allowed is set but no issuer \
             is: set oauth_issuer (or oauth_issuers in the config file)"
        );
        return Ok(None);
    }
    let resource_text = given.resource.context(
        "oauth_issuer is set but oauth_resource is not: set it to the URL clients use for \
         /mcp, e.g. https://mcp.example.com/mcp (the audience tokens must carry)",
    )?;
    let resource = web_url("oauth_resource", &resource_text)?;
    ensure!(
        resource.fragment().is_none() && resource.query().is_none(),
        "oauth_resource {} must not have a query or fragment (RFC 8707)",
        shown(&resource_text)
    );
    let mut issuers = Vec::with_capacity(written.len());
    let mut seen = BTreeSet::new();
    for w in written {
        let issuer = web_url("oauth_issuers[].issuer", &w.issuer)?;
        // An issuer identifier has no query or fragment (OpenID Connect
        // Discovery 1.0, section 3): it is named in logs, metrics and
        // /health, where none may appear.
        ensure!(
            issuer.fragment().is_none() && issuer.query().is_none(),
            "issuer {} must not have a query or fragment",
            shown(&w.issuer)
        );
        ensure!(
            seen.insert(w.issuer.clone()),
            "issuer {} is configured twice",
            shown(&w.issuer)
        );
        let jwks_uri = w
            .jwks_uri
            .as_deref()
            .map(|u| web_url("oauth_issuers[].jwks_uri", u))
            .transpose()?;
        let scopes: Vec<String> = w
            .scopes
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for s in &scopes {
            ensure!(
                s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
                "scope {s:?} of issuer {} has a character a scope cannot have",
                shown(&w.issuer)
            );
        }
        issuers.push(IssuerSettings {
            audience: w
                .audience
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| resource_text.clone()),
            issuer: w.issuer,
            scopes,
            jwks_uri,
        });
    }
    let allowed = Arc::new(role_claim_allowed(given.role_claim_allowed)?);
    let mut grants = Vec::new();
    for (i, g) in given
        .permissions
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let n = i + 1;
        let matches = match (g.scope, g.claim, g.value) {
            (Some(scope), None, None) if !scope.is_empty() => Match::Scope(scope),
            (None, Some(name), Some(value)) if !name.is_empty() => Match::Claim { name, value },
            _ => bail!(
                "oauth_permissions entry {n} must name either `scope:` or both `claim:` and \
                 `value:`"
            ),
        };
        let role = match (g.role, g.role_claim) {
            (Some(_), Some(_)) => bail!(
                "oauth_permissions entry {n} names both `role:` and `role_claim:`: one or the other"
            ),
            (Some(role), None) => {
                ensure!(
                    fleet_common::role::valid_name(&role),
                    "oauth_permissions entry {n}: `role:` {}",
                    fleet_common::role::INVALID
                );
                Some(GrantRole::Fixed(role.into()))
            }
            (None, Some(name)) => {
                ensure!(
                    !name.trim().is_empty(),
                    "oauth_permissions entry {n}: `role_claim:` is empty: name the token claim \
                     that holds the role"
                );
                ensure!(
                    !allowed.is_empty(),
                    "oauth_permissions entry {n} takes its role from claim {name:?}, but \
                     oauth_role_claim_allowed is empty: list the roles a claim may name"
                );
                Some(GrantRole::Claim {
                    name,
                    allowed: allowed.clone(),
                })
            }
            (None, None) => None,
        };
        grants.push(Grant {
            matches,
            permissions: Permissions::from_lists(g.tools, g.databases),
            role,
        });
    }
    let clock_skew = given.clock_skew.unwrap_or(DEFAULT_CLOCK_SKEW);
    ensure!(
        clock_skew <= MAX_CLOCK_SKEW,
        "oauth_clock_skew is at most {}s",
        MAX_CLOCK_SKEW.as_secs()
    );
    Ok(Some(OAuthSettings {
        resource,
        issuers,
        grants,
        jwks_refresh: given
            .jwks_refresh
            .unwrap_or(DEFAULT_JWKS_REFRESH)
            .max(Duration::from_secs(1)),
        clock_skew,
    }))
}

/// `oauth_role_claim_allowed`: the roles a `role_claim:` may name, each a
/// valid role name.
fn role_claim_allowed(list: Option<Vec<String>>) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for (i, role) in list.unwrap_or_default().into_iter().enumerate() {
        ensure!(
            fleet_common::role::valid_name(&role),
            "oauth_role_claim_allowed entry {}: {}",
            i + 1,
            fleet_common::role::INVALID
        );
        out.insert(role);
    }
    Ok(out)
}

/// An absolute https URL, or http to a loopback host (a test or a sidecar
/// issuer on the same machine): keys fetched over plain http from anywhere
/// else could be swapped on the way.
pub fn web_url(setting: &str, text: &str) -> anyhow::Result<Url> {
    // Errors name the URL without userinfo, query or fragment: a secret in
    // the wrong place must not reach the start-up error or a log.
    let shown = shown(text);
    let url =
        Url::parse(text).with_context(|| format!("{setting} {shown:?} is not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            bail!("{setting} {shown} uses plain http to a host that is not loopback: use https")
        }
        other => bail!("{setting} {shown} has scheme {other}: use https"),
    }
    ensure!(url.host().is_some(), "{setting} {shown} has no host");
    ensure!(
        url.username().is_empty() && url.password().is_none(),
        "{setting} must not carry credentials"
    );
    Ok(url)
}

/// A URL as an error may show it ([`fleet_common::redact::url`]).
fn shown(text: &str) -> String {
    fleet_common::redact::url(text)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(issuer: &str, resource: &str) -> Given {
        Given {
            resource: Some(resource.into()),
            issuer: Some(issuer.into()),
            scopes: Some(vec!["mcp".into()]),
            ..Given::default()
        }
    }

    #[test]
    fn off_without_an_issuer_and_refused_half_configured() {
        assert_eq!(resolve(Given::default()).unwrap(), None);
        let e = resolve(Given {
            resource: Some("https://mcp.example.com/mcp".into()),
            ..Given::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("no issuer"), "{e}");
        let e = resolve(Given {
            issuer: Some("https://idp.example.com".into()),
            ..Given::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("oauth_resource"), "{e}");
    }

    #[test]
    fn one_issuer_from_flags_defaults_its_audience_to_the_resource() {
        let s = resolve(given(
            "https://idp.example.com/realms/x",
            "https://mcp.example.com/mcp",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(s.issuers.len(), 1);
        assert_eq!(s.issuers[0].audience, "https://mcp.example.com/mcp");
        assert_eq!(s.issuers[0].scopes, ["mcp"]);
        assert_eq!(s.clock_skew, DEFAULT_CLOCK_SKEW);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(resolve(given("http://127.0.0.1:9000", "http://127.0.0.1:8080/mcp")).is_ok());
        assert!(
            resolve(given(
                "http://localhost:9000",
                "https://mcp.example.com/mcp"
            ))
            .is_ok()
        );
        let e = resolve(given(
            "http://idp.example.com",
            "https://mcp.example.com/mcp",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("use https"), "{e}");
        assert!(resolve(given("idp.example.com", "https://mcp.example.com/mcp")).is_err());
        assert!(
            resolve(given(
                "https://idp.example.com",
                "https://mcp.example.com/mcp#x"
            ))
            .is_err()
        );
    }

    /// Issue 29, finding 7: the start-up error echoed a URL's secrets.
    #[test]
    fn errors_never_show_a_urls_userinfo_query_or_fragment() {
        let cases = [
            (
                "http://user:SECRET@idp.example.com/",
                "https://mcp.example.com/mcp",
            ),
            (
                "https://user:SECRET@idp.example.com/",
                "https://mcp.example.com/mcp",
            ),
            (
                "https://idp.example.com/?t=SECRET",
                "https://mcp.example.com/mcp",
            ),
            ("idp.example.com/?t=SECRET", "https://mcp.example.com/mcp"),
            (
                "https://idp.example.com/",
                "https://mcp.example.com/mcp?token=SECRET",
            ),
            (
                "https://idp.example.com/",
                "https://mcp.example.com/mcp#SECRET",
            ),
            (
                "https://idp.example.com/",
                "http://u:SECRET@mcp.example.com/mcp",
            ),
            (
                "https://idp.example.com/",
                "ftp://SECRET@mcp.example.com/mcp",
            ),
        ];
        for (issuer, resource) in cases {
            let e = resolve(given(issuer, resource)).unwrap_err();
            let text = format!("{e:#}");
            assert!(!text.contains("SECRET"), "{text}");
        }
        let mut g = given("https://idp.example.com/", "https://mcp.example.com/mcp");
        g.issuers = Some(vec![IssuerConfig {
            issuer: "https://idp.example.com/".into(),
            jwks_uri: Some("http://idp.example.com/jwks?sig=SECRET".into()),
            ..IssuerConfig::default()
        }]);
        let text = format!("{:#}", resolve(g).unwrap_err());
        assert!(
            !text.contains("SECRET") && text.contains("idp.example.com"),
            "{text}"
        );
    }

    #[test]
    fn grants_name_a_scope_or_a_claim_with_a_value() {
        let mut g = given("https://idp.example.com", "https://mcp.example.com/mcp");
        g.permissions = Some(vec![
            GrantConfig {
                scope: Some("kb".into()),
                tools: Some(vec!["search_knowledgebase".into()]),
                ..GrantConfig::default()
            },
            GrantConfig {
                claim: Some("groups".into()),
                value: Some("dba".into()),
                databases: Some(vec!["prod".into()]),
                ..GrantConfig::default()
            },
        ]);
        let s = resolve(g.clone()).unwrap().unwrap();
        assert_eq!(s.grants.len(), 2);
        assert_eq!(s.grants[0].matches, Match::Scope("kb".into()));
        assert!(!s.grants[0].permissions.allows_tool("query_database"));
        g.permissions = Some(vec![GrantConfig {
            claim: Some("groups".into()),
            ..GrantConfig::default()
        }]);
        let e = resolve(g).unwrap_err();
        assert!(e.to_string().contains("entry 1"), "{e}");
    }

    #[test]
    fn a_grant_names_a_role_or_a_claim_within_the_allow_list() {
        let mut g = given("https://idp.example.com", "https://mcp.example.com/mcp");
        let grant = |role: Option<&str>, role_claim: Option<&str>| GrantConfig {
            scope: Some("sql".into()),
            role: role.map(Into::into),
            role_claim: role_claim.map(Into::into),
            ..GrantConfig::default()
        };
        g.role_claim_allowed = Some(vec!["analyst".into(), "viewer".into()]);
        g.permissions = Some(vec![
            grant(Some("auditor"), None),
            grant(None, Some("pg_role")),
            grant(None, None),
        ]);
        let s = resolve(g.clone()).unwrap().unwrap();
        assert_eq!(s.grants[0].role, Some(GrantRole::Fixed("auditor".into())));
        let Some(GrantRole::Claim { name, allowed }) = &s.grants[1].role else {
            panic!("{:?}", s.grants[1].role);
        };
        assert_eq!(name, "pg_role");
        assert_eq!(allowed.iter().collect::<Vec<_>>(), ["analyst", "viewer"]);
        assert_eq!(s.grants[2].role, None);
        for (bad, says) in [
            (
                grant(Some("a"), Some("pg_role")),
                "both `role:` and `role_claim:`",
            ),
            (
                grant(Some(""), None),
                "entry 1: `role:` expected a PostgreSQL role name",
            ),
            (grant(Some(&"x".repeat(64)), None), "role name"),
            (grant(None, Some(" ")), "`role_claim:` is empty"),
        ] {
            let mut g = g.clone();
            g.permissions = Some(vec![bad]);
            let e = resolve(g).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        // A claim without an allow-list, and a bad name in the list.
        let mut no_list = g.clone();
        no_list.role_claim_allowed = None;
        let e = resolve(no_list).unwrap_err().to_string();
        assert!(e.contains("oauth_role_claim_allowed is empty"), "{e}");
        let mut bad_list = g.clone();
        bad_list.role_claim_allowed = Some(vec!["ok".into(), "a\nb".into()]);
        let e = resolve(bad_list).unwrap_err().to_string();
        assert!(e.contains("oauth_role_claim_allowed entry 2"), "{e}");
        // The allow-list alone, without OAuth, is a half configuration.
        let e = resolve(Given {
            role_claim_allowed: Some(vec!["analyst".into()]),
            ..Given::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("no issuer"), "{e}");
        // As written in the config file.
        let parsed: GrantConfig =
            serde_norway::from_str("scope: sql\nrole_claim: pg_role\n").unwrap();
        assert_eq!(parsed.role_claim.as_deref(), Some("pg_role"));
        assert!(serde_norway::from_str::<GrantConfig>("scope: sql\nrole_claims: x\n").is_err());
    }
}
