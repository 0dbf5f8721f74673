//! The token cache's rules: refresh margin, single flight, a valid token
//! kept through an endpoint's outage; token answers and their errors.

use super::*;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

#[test]
fn refresh_margin_is_a_quarter_of_the_lifetime_and_at_least_a_minute() {
    assert!(!Token::new("t".into(), secs(3600)).needs_refresh());
    assert!(!Token::new("t".into(), secs(900)).needs_refresh());
    // 120 s: a quarter is 30 s, the minimum 60 s: not yet.
    assert!(!Token::new("t".into(), secs(120)).needs_refresh());
    assert!(Token::new("t".into(), secs(60)).needs_refresh());
    assert!(Token::new("t".into(), secs(30)).usable());
    assert!(!Token::new("t".into(), secs(3)).usable());
    let t = Token::new("t".into(), secs(900));
    assert_eq!(t.lifetime(), Duration::from_secs(900));
    assert!(t.expires_in() <= Duration::from_secs(900));
}

#[tokio::test]
async fn cached_while_fresh_refetched_near_expiry() {
    let cache = TokenCache::default();
    let fetches = AtomicUsize::new(0);
    let fetch = |lifetime: u64| {
        let n = fetches.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Token::new(format!("t{n}"), secs(lifetime))) }
    };
    assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t0");
    assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t0");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // A token inside the refresh margin is replaced on next use.
    let cache = TokenCache::default();
    assert_eq!(cache.get(|| fetch(30)).await.unwrap().secret(), "t1");
    assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t2");
    // A failed fetch with nothing cached is reported and nothing is kept;
    // the next caller tries again at once.
    let cache = TokenCache::default();
    let err = cache
        .get(|| async { Err(CloudError::transient("down")) })
        .await;
    assert_eq!(err.unwrap_err(), CloudError::transient("down"));
    assert_eq!(cache.get(|| fetch(3600)).await.unwrap().secret(), "t3");
    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.failures), (2, 1));
    assert_eq!(stats.last_fetch_ok, Some(true));
    assert_eq!(stats.last_error.as_deref(), Some("down"));
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_valid_token_and_says_so() {
    let cache = TokenCache::default();
    // Valid 30 s more: due for a refresh, still usable.
    let t = cache
        .get(|| async { Ok(Token::new("old".into(), secs(30))) })
        .await
        .unwrap();
    assert_eq!(t.secret(), "old");
    let attempts = AtomicUsize::new(0);
    let failing = || {
        attempts.fetch_add(1, Ordering::SeqCst);
        async { Err(CloudError::transient("token endpoint: HTTP 503")) }
    };
    assert_eq!(cache.get(failing).await.unwrap().secret(), "old");
    let stats = cache.stats();
    assert_eq!(stats.last_fetch_ok, Some(false));
    assert_eq!(stats.failures, 1);
    assert_eq!(
        stats.last_error.as_deref(),
        Some("token endpoint: HTTP 503")
    );
    // Within RETRY_AFTER, the endpoint is not asked again.
    assert_eq!(cache.get(failing).await.unwrap().secret(), "old");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    // An expired (unusable) token is not handed out: the error is.
    let cache = TokenCache::default();
    cache
        .get(|| async { Ok(Token::new("old".into(), secs(2))) })
        .await
        .unwrap();
    let err = cache
        .get(|| async { Err(CloudError::permanent("refused")) })
        .await
        .unwrap_err();
    assert_eq!(err, CloudError::permanent("refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_fetch() {
    let cache = Arc::new(TokenCache::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (cache, fetches, gate) = (cache.clone(), fetches.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get(|| async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    // Held until every caller is waiting.
                    gate.notified().await;
                    Ok(Token::new("shared".into(), secs(3600)))
                })
                .await
        }));
    }
    while fetches.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.notify_one();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().secret(), "shared");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // A failure is shared the same way: callers that waited for it get
    // its error rather than trying again one after the other.
    let cache = Arc::new(TokenCache::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (cache, fetches, gate) = (cache.clone(), fetches.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get(|| async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Err(CloudError::transient("down"))
                })
                .await
        }));
    }
    while fetches.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.notify_one();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), CloudError::transient("down"));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[test]
fn answers_and_debug() {
    let t = TokenAnswer::parse(br#"{"access_token":"s3cret","expires_in":"3599"}"#, "x").unwrap();
    assert_eq!(t.secret(), "s3cret");
    assert!(!format!("{t:?}").contains("s3cret"));
    let t = TokenAnswer::parse(
        br#"{"access_token":"a","expires_in":50,"token_type":"Bearer"}"#,
        "x",
    )
    .unwrap();
    assert!(t.needs_refresh());
    let e = TokenAnswer::parse(
        br#"{"error":"invalid_grant","access":"s3cret"}"#,
        "endpoint",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("endpoint") && !e.contains("s3cret"), "{e}");
    let e = TokenAnswer::parse(br#"{"access_token":""}"#, "endpoint").unwrap_err();
    assert!(e.is_transient());
}

#[tokio::test]
async fn cache_debug_shows_no_token() {
    let cache = TokenCache::default();
    cache
        .get(|| async { Ok(Token::new("s3cret-token".into(), secs(3600))) })
        .await
        .unwrap();
    let d = format!("{cache:?}");
    assert!(d.contains("fetches: 1") && !d.contains("s3cret"), "{d}");
}
