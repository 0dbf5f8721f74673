//! The OAuth resource server against a real issuer on 127.0.0.1: a small
//! HTTP server publishing a discovery document and a JWKS of keys made on
//! the spot (RSA 2048, P-256, Ed25519), and tokens signed with them by
//! `jsonwebtoken` (and by hand, for the forgeries it refuses to make).
//! The end-to-end tests (tests/e2e/test_oauth.py) do the same against
//! `oidc-provider`, a certified OpenID provider, and the MCP client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_server::auth::AuthFailure;
use mcp_server::auth::oauth::jwt::JwtFailure;
use mcp_server::auth::oauth::keys::KeyState;
use mcp_server::auth::oauth::settings::{self, Given, GrantConfig, IssuerConfig};
use mcp_server::auth::oauth::{OAuthFailure, ResourceServer};
use mcp_server::metrics::{IssuerFetchLabels, IssuerLabel, OAuthMetrics};
use serde_json::{Value, json};

const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A signing key and its public JWK.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// The RSA public key as DER, for the RS/HS confusion forgery.
    public_der: Vec<u8>,
}

fn rsa_key(kid: &str) -> SigningKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
    let public = pair.public_key();
    let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(public);
    SigningKey {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(pkcs1_of(pkcs8.as_ref())),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": B64.encode(&c.n), "e": B64.encode(&c.e)}),
        public_der: public.as_ref().to_vec(),
    }
}

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (`SEQUENCE { INTEGER,
/// SEQUENCE, OCTET STRING }`): what jsonwebtoken signs RS256 with.
fn pkcs1_of(pkcs8: &[u8]) -> &[u8] {
    fn tlv(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, skip) = match d[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (d[2] as usize, 3),
            0x82 => ((d[2] as usize) << 8 | d[3] as usize, 4),
            n => panic!("DER length form {n:#x}"),
        };
        (d[0], &d[skip..skip + len], &d[skip + len..])
    }
    let (_, info, _) = tlv(pkcs8);
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key
}

fn ec_key(kid: &str) -> SigningKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    SigningKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                    "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}),
        public_der: Vec::new(),
    }
}

fn ed_key(kid: &str) -> SigningKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    SigningKey {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                    "x": B64.encode(pair.public_key().as_ref())}),
        public_der: Vec::new(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a good token from `issuer`, to be changed by each case.
fn claims(issuer: &str) -> Value {
    json!({"iss": issuer, "aud": RESOURCE, "sub": "client-1", "client_id": "client-1",
           "scope": "mcp kb", "iat": now(), "exp": now() + 300})
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(key.kid.clone());
    h.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&h, claims, &key.encoding).unwrap()
}

/// An issuer on 127.0.0.1: discovery and JWKS, which can be changed, taken
/// down, and counted.
#[derive(Clone)]
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    down: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(keys: &[&SigningKey]) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let issuer = Issuer {
            url: format!("http://{addr}"),
            jwks: Arc::new(Mutex::new(json!({}))),
            down: Arc::default(),
            fetches: Arc::default(),
        };
        issuer.publish(keys);
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(issuer.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    fn publish(&self, keys: &[&SigningKey]) {
        let list: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        *self.jwks.lock().unwrap() = json!({ "keys": list });
    }
}

async fn discovery(State(i): State<Issuer>) -> axum::response::Response {
    if i.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(json!({"issuer": i.url, "jwks_uri": format!("{}/jwks", i.url)})).into_response()
}

async fn jwks(State(i): State<Issuer>) -> axum::response::Response {
    if i.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    i.fetches.fetch_add(1, Ordering::SeqCst);
    let body = i.jwks.lock().unwrap().clone();
    axum::Json(body).into_response()
}

fn server(issuer: &Issuer, grants: Vec<GrantConfig>, refresh: Duration) -> Arc<ResourceServer> {
    server_counted(issuer, grants, refresh, OAuthMetrics::default())
}

fn server_counted(
    issuer: &Issuer,
    grants: Vec<GrantConfig>,
    refresh: Duration,
    metrics: OAuthMetrics,
) -> Arc<ResourceServer> {
    let s = settings::resolve(Given {
        resource: Some(RESOURCE.into()),
        issuers: Some(vec![IssuerConfig {
            issuer: issuer.url.clone(),
            scopes: vec!["mcp".into()],
            ..IssuerConfig::default()
        }]),
        permissions: Some(grants),
        jwks_refresh: Some(refresh),
        ..Given::default()
    })
    .unwrap()
    .unwrap();
    let rs = Arc::new(ResourceServer::new(s, metrics).unwrap());
    rs.start();
    rs
}

async fn wait_for_keys(rs: &ResourceServer) {
    for _ in 0..200 {
        if rs.health()[0].state == KeyState::Ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("keys not fetched: {:?}", rs.health());
}

fn refused(r: Result<mcp_server::auth::Principal, OAuthFailure>) -> JwtFailure {
    match r {
        Err(OAuthFailure::Invalid(j)) => j,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_tokens_of_each_family_pass_and_every_forgery_is_refused() {
    let (rsa, ec, ed) = (rsa_key("r1"), ec_key("e1"), ed_key("d1"));
    let issuer = Issuer::start(&[&rsa, &ec, &ed]).await;
    let rs = server(&issuer, Vec::new(), Duration::from_secs(600));
    wait_for_keys(&rs).await;
    assert_eq!(rs.health()[0].keys, 3);
    let good = claims(&issuer.url);

    for key in [&rsa, &ec, &ed] {
        let p = rs.authenticate(&sign(key, &good)).await.unwrap();
        assert!(p.subject.starts_with("oauth:") && !p.subject.contains("client-1"));
        assert!(p.permissions.is_unrestricted());
    }

    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    // Expired beyond the 60 s skew; not yet valid; within the skew is fine.
    assert_eq!(
        refused(
            rs.authenticate(&sign(&rsa, &with("exp", json!(now() - 120))))
                .await
        ),
        JwtFailure::Expired
    );
    assert!(
        rs.authenticate(&sign(&rsa, &with("exp", json!(now() - 5))))
            .await
            .is_ok()
    );
    assert_eq!(
        refused(
            rs.authenticate(&sign(&rsa, &with("nbf", json!(now() + 600))))
                .await
        ),
        JwtFailure::NotYetValid
    );
    // Another audience (a token for another resource server).
    assert_eq!(
        refused(
            rs.authenticate(&sign(&rsa, &with("aud", json!("https://other/mcp"))))
                .await
        ),
        JwtFailure::Audience
    );
    // No exp at all.
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        refused(rs.authenticate(&sign(&ec, &no_exp)).await),
        JwtFailure::Claims
    );
    // An issuer not trusted, even signed with a trusted key.
    assert_eq!(
        refused(
            rs.authenticate(&sign(&rsa, &with("iss", json!("https://evil.example"))))
                .await
        ),
        JwtFailure::Issuer
    );
    // alg: none, with and without a signature.
    let header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = B64.encode(good.to_string());
    for sig in ["", "AAAA"] {
        let t = format!("{header}.{payload}.{sig}");
        assert_eq!(
            refused(rs.authenticate(&t).await),
            JwtFailure::Algorithm,
            "{sig}"
        );
    }
    // RS/HS confusion: HS256 keyed with the RSA public key, claiming kid r1.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("r1".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &good,
        &EncodingKey::from_secret(&rsa.public_der).unwrap(),
    )
    .unwrap();
    assert_eq!(
        refused(rs.authenticate(&confused).await),
        JwtFailure::Algorithm
    );
    // A key of one family named for another algorithm (kid of the EC key, RS256).
    let mut wrong = Header::new(Algorithm::RS256);
    wrong.kid = Some("e1".into());
    let t = jsonwebtoken::encode(&wrong, &good, &rsa.encoding).unwrap();
    assert_eq!(refused(rs.authenticate(&t).await), JwtFailure::UnknownKey);
    // Tampered payload: more scope, same signature.
    let real = sign(&rsa, &good);
    let parts: Vec<&str> = real.split('.').collect();
    let forged_payload = B64.encode(with("sub", json!("admin")).to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        refused(rs.authenticate(&tampered).await),
        JwtFailure::Signature
    );
    // A signature of another key under a known kid.
    let mut other = rsa_key("r1");
    other.kid = "r1".into();
    assert_eq!(
        refused(rs.authenticate(&sign(&other, &good)).await),
        JwtFailure::Signature
    );
    // Missing the required scope: 403, not 401.
    assert_eq!(
        rs.authenticate(&sign(&rsa, &with("scope", json!("kb"))))
            .await
            .unwrap_err(),
        OAuthFailure::InsufficientScope
    );
    // `scp` as a list also grants (Entra ID, Okta).
    let mut scp = with("scope", Value::Null);
    scp["scp"] = json!(["mcp"]);
    assert!(rs.authenticate(&sign(&ec, &scp)).await.is_ok());
    // Junk of a JWT's shape.
    assert_eq!(
        refused(rs.authenticate("eyJ.eyJ.x").await),
        JwtFailure::Malformed
    );

    // The labels the metrics count them under say what failed, not what was sent.
    assert_eq!(
        AuthFailure::OAuth(OAuthFailure::Invalid(JwtFailure::Audience)).label(),
        "jwt_audience"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_once_and_unknown_kids_cannot_hammer_the_issuer() {
    let (old, new) = (rsa_key("old"), rsa_key("new"));
    let issuer = Issuer::start(&[&old]).await;
    let rs = server(&issuer, Vec::new(), Duration::from_secs(600));
    wait_for_keys(&rs).await;
    let good = claims(&issuer.url);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates: tokens signed by the new key work at once.
    issuer.publish(&[&new, &old]);
    let p = rs.authenticate(&sign(&new, &good)).await;
    assert!(p.is_ok(), "{p:?}");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);

    // Forged kids: the first fetches again (one fetch), the rest within
    // ten seconds are refused without asking the issuer.
    let stranger = rsa_key("stranger");
    for _ in 0..20 {
        let r = rs.authenticate(&sign(&stranger, &good)).await;
        assert_eq!(refused(r), JwtFailure::UnknownKey);
    }
    let fetched = issuer.fetches.load(Ordering::SeqCst);
    assert!(fetched <= 3, "{fetched} fetches for 20 unknown kids");
    // And good tokens never wait for it.
    assert!(rs.authenticate(&sign(&old, &good)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_that_goes_down_leaves_its_keys_serving() {
    let key = ec_key("k");
    let issuer = Issuer::start(&[&key]).await;
    let metrics = OAuthMetrics::default();
    let rs = server_counted(&issuer, Vec::new(), Duration::from_secs(1), metrics.clone());
    wait_for_keys(&rs).await;
    issuer.down.store(true, Ordering::SeqCst);
    let good = claims(&issuer.url);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rs.health()[0].state != KeyState::Stale {
        assert!(std::time::Instant::now() < deadline, "{:?}", rs.health());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = &rs.health()[0];
    assert_eq!(h.keys, 1);
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 503")),
        "{h:?}"
    );
    for _ in 0..50 {
        assert!(rs.authenticate(&sign(&key, &good)).await.is_ok());
    }
    let fetches = |outcome| {
        metrics
            .key_fetches
            .get_or_create(&IssuerFetchLabels {
                issuer: issuer.url.clone(),
                outcome,
            })
            .get()
    };
    assert!(fetches("ok") >= 1 && fetches("error") >= 1);
    let held = IssuerLabel {
        issuer: issuer.url.clone(),
    };
    assert_eq!(metrics.keys.get_or_create(&held).get(), 1);
    // Back up: the next timer fetch clears the error.
    issuer.down.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rs.health()[0].state != KeyState::Ok {
        assert!(std::time::Instant::now() < deadline, "{:?}", rs.health());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symmetric_key_in_the_jwks_is_never_used() {
    let ec = ec_key("e");
    let issuer = Issuer::start(&[&ec]).await;
    // The JWKS also publishes an HMAC secret (a misconfigured issuer).
    let secret = b"published-secret-0123456789abcdef";
    issuer.jwks.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "oct", "kid": "h", "k": B64.encode(secret)}));
    let rs = server(&issuer, Vec::new(), Duration::from_secs(600));
    wait_for_keys(&rs).await;
    assert_eq!(rs.health()[0].keys, 1);
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("h".into());
    let t = jsonwebtoken::encode(
        &h,
        &claims(&issuer.url),
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap();
    assert_eq!(refused(rs.authenticate(&t).await), JwtFailure::Algorithm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_claims_grant_tools_and_databases() {
    let key = ed_key("k");
    let issuer = Issuer::start(&[&key]).await;
    let grants = vec![
        GrantConfig {
            scope: Some("kb".into()),
            tools: Some(vec!["search_knowledgebase".into(), "list_products".into()]),
            databases: Some(vec![]),
            ..GrantConfig::default()
        },
        GrantConfig {
            claim: Some("groups".into()),
            value: Some("dba".into()),
            tools: Some(vec!["*".into()]),
            databases: Some(vec!["prod".into()]),
            ..GrantConfig::default()
        },
    ];
    let rs = server(&issuer, grants, Duration::from_secs(600));
    wait_for_keys(&rs).await;
    let mut c = claims(&issuer.url);
    let kb = rs.authenticate(&sign(&key, &c)).await.unwrap();
    assert!(kb.permissions.allows_tool("search_knowledgebase"));
    assert!(!kb.permissions.allows_tool("query_database"));
    c["groups"] = json!(["dba"]);
    let dba = rs.authenticate(&sign(&key, &c)).await.unwrap();
    assert!(dba.permissions.allows_tool("query_database"));
    assert!(dba.permissions.allows("query_database", "prod"));
    assert!(!dba.permissions.allows("query_database", "staging"));
    c["scope"] = json!("mcp");
    c["groups"] = json!(["ops"]);
    let nothing = rs.authenticate(&sign(&key, &c)).await.unwrap();
    assert!(!nothing.permissions.allows_tool("search_knowledgebase"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_challenges_come_from_the_configured_resource() {
    let key = ec_key("k");
    let issuer = Issuer::start(&[&key]).await;
    let rs = server(&issuer, Vec::new(), Duration::from_secs(600));
    let doc: Value = serde_json::from_slice(
        &rs.metadata_at("/.well-known/oauth-protected-resource/mcp")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["authorization_servers"], json!([issuer.url]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert!(
        rs.metadata_at("/.well-known/oauth-protected-resource")
            .is_some()
    );
    assert!(
        rs.metadata_at("/.well-known/oauth-protected-resource/other")
            .is_none()
    );
    let c = rs.challenge(Some("invalid_token"));
    assert_eq!(
        c.to_str().unwrap(),
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", \
         scope=\"mcp\", error=\"invalid_token\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_withdrawn_by_the_issuer_stops_its_tokens_even_when_verified_before() {
    let (old, new) = (ec_key("old"), ec_key("new"));
    let issuer = Issuer::start(&[&old, &new]).await;
    let rs = server(&issuer, Vec::new(), Duration::from_secs(1));
    wait_for_keys(&rs).await;
    let token = sign(&old, &claims(&issuer.url));
    // Verified once, then answered from the cache.
    for _ in 0..3 {
        assert!(rs.authenticate(&token).await.is_ok());
    }
    issuer.publish(&[&new]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rs.health()[0].keys != 1 {
        assert!(std::time::Instant::now() < deadline, "{:?}", rs.health());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        refused(rs.authenticate(&token).await),
        JwtFailure::UnknownKey
    );
    assert!(
        rs.authenticate(&sign(&new, &claims(&issuer.url)))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mangled_tokens_are_refused_without_a_panic() {
    let key = rsa_key("k");
    let issuer = Issuer::start(&[&key]).await;
    let rs = server(&issuer, Vec::new(), Duration::from_secs(600));
    wait_for_keys(&rs).await;
    let good = sign(&key, &claims(&issuer.url));
    let alphabet = b"ABCxyz019-_.=+/ \"\\{}\0\xff";
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut accepted = 0;
    for _ in 0..5_000 {
        let mut bytes = good.clone().into_bytes();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                1 => bytes.truncate(at.max(1)),
                2 => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                bytes.push(b'e');
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if rs.authenticate(&text).await.is_ok() {
            // Only a change the signature does not cover can pass: none
            // exists, but base64url's last character may carry unused bits.
            accepted += 1;
            assert_eq!(
                text.split('.').take(2).collect::<Vec<_>>(),
                good.split('.').take(2).collect::<Vec<_>>()
            );
        }
    }
    assert!(accepted < 50, "{accepted} mangled tokens accepted");
}

/// How long one check takes, per key family (the bench measures it on the
/// request path): `cargo test --release --test oauth_tokens -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn cost_of_one_check() {
    let (rsa, ec, ed) = (rsa_key("r1"), ec_key("e1"), ed_key("d1"));
    let issuer = Issuer::start(&[&rsa, &ec, &ed]).await;
    let rs = server(&issuer, Vec::new(), Duration::from_secs(600));
    wait_for_keys(&rs).await;
    for key in [&rsa, &ec, &ed] {
        let n = 2000;
        // Distinct tokens (a `jti` each): every one is verified.
        let fresh: Vec<String> = (0..n)
            .map(|i| {
                let mut c = claims(&issuer.url);
                c["jti"] = json!(i);
                sign(key, &c)
            })
            .collect();
        let start = std::time::Instant::now();
        for t in &fresh {
            assert!(rs.authenticate(t).await.is_ok());
        }
        let cold = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        // The same token again and again, as a client sends it.
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(rs.authenticate(&fresh[0]).await.is_ok());
        }
        let warm = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!(
            "{:?}: {cold:.1} µs per new token, {warm:.2} µs per repeated token",
            key.alg
        );
    }
}
