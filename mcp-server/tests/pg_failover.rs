//! The database going away, with real PostgreSQL 15 servers: a restart
//! under load costs only the calls made while it is down (the next call
//! reconnects, no server restart), and a primary with a streaming standby
//! made by `pg_basebackup`: a `target_session_attrs=read-write` entry
//! finds the primary among its hosts, reports a clear error while only a
//! standby answers, and follows a promotion.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{PgServer, db_config, first_row, free_port, require_postgres};
use mcp_server::pg::{DatabaseConfig, Databases};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_fails_only_the_calls_made_while_it_is_down() {
    require_postgres();
    let port = free_port();
    let mut pg = PgServer::init(port);
    pg.start();
    let mut cfg = db_config("main", port);
    cfg.pool_size = Some(4);
    cfg.connect_timeout = Some(Duration::from_secs(1));
    let dbs = Databases::new(vec![cfg]).unwrap();
    first_row(&dbs, "SELECT 1 AS one").await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (dbs, stop) = (dbs.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut calls: Vec<(Instant, Instant, Result<(), String>)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = first_row(&dbs, "SELECT 1 AS one").await.map(|_| ());
                if outcome.is_err() {
                    // A down database answers at once: do not spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                calls.push((started, Instant::now(), outcome));
            }
            calls
        }));
    }
    // Under load for a moment, then a restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let down = Instant::now();
    pg.stop();
    pg.start();
    let up = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut calls = Vec::new();
    for w in workers {
        calls.extend(w.await.unwrap());
    }
    // Calls done before the stop began, calls begun once it was back, and
    // the rest: those in flight at the stop or made during the outage.
    let before: Vec<_> = calls.iter().filter(|(_, end, _)| *end < down).collect();
    let failed_before = before.iter().filter(|(_, _, o)| o.is_err()).count();
    let before = before.len();
    let after: Vec<_> = calls.iter().filter(|(t, _, _)| *t >= up).collect();
    let failed_after: Vec<_> = after.iter().filter(|(_, _, o)| o.is_err()).collect();
    let failed_during: Vec<&String> = calls
        .iter()
        .filter(|(t, end, _)| *end >= down && *t < up)
        .filter_map(|(_, _, o)| o.as_ref().err())
        .collect();
    assert!(
        before > 10 && failed_before == 0,
        "{before} calls before, {failed_before} failed"
    );
    assert!(
        after.len() > 10,
        "only {} calls after the restart",
        after.len()
    );
    assert!(
        failed_after.is_empty(),
        "{} of {} calls after the restart failed: {:?}",
        failed_after.len(),
        after.len(),
        failed_after.first()
    );
    assert!(!failed_during.is_empty(), "the restart was not noticed");
    for e in &failed_during {
        assert!(e.contains("database main"), "{e}");
        assert!(!e.contains(common::PASSWORD), "{e}");
    }
}

fn two_hosts(name: &str, ports: [u16; 2], attrs: &str) -> DatabaseConfig {
    DatabaseConfig {
        name: name.into(),
        hosts: Some(
            ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}").into())
                .collect(),
        ),
        user: Some("postgres".into()),
        database: Some("postgres".into()),
        target_session_attrs: Some(attrs.into()),
        connect_timeout: Some(Duration::from_secs(1)),
        pool_size: Some(2),
        ..Default::default()
    }
}

const WHERE: &str = "SELECT pg_is_in_recovery() AS standby, current_setting('port')::int AS port, count(*) AS n \
     FROM public.marks";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_session_attrs_finds_the_primary_and_follows_a_promotion() {
    require_postgres();
    let (p1, p2) = (free_port(), free_port());
    let mut primary = PgServer::init(p1);
    primary.start();
    primary
        .superuser()
        .await
        .batch_execute("CREATE TABLE public.marks (x int); INSERT INTO public.marks VALUES (1)")
        .await
        .unwrap();
    let mut standby = PgServer::standby_of(&primary, p2);
    standby.start();

    // The standby is listed first: read-write must skip it.
    let rw = Databases::new(vec![two_hosts("rw", [p2, p1], "read-write")]).unwrap();
    let ro = Databases::new(vec![two_hosts("ro", [p1, p2], "read-only")]).unwrap();
    let prefer = Databases::new(vec![two_hosts("ps", [p1, p2], "prefer-standby")]).unwrap();
    let row = first_row(&rw, WHERE).await.unwrap();
    assert_eq!(
        (row["standby"].clone(), row["port"].clone()),
        (false.into(), p1.into())
    );
    // The standby has the row once it has replayed it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match first_row(&ro, WHERE).await {
            Ok(row) if row["n"] == 1 => {
                assert_eq!(
                    (row["standby"].clone(), row["port"].clone()),
                    (true.into(), p2.into())
                );
                break;
            }
            other => assert!(Instant::now() < deadline, "standby not ready: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first_row(&prefer, WHERE).await.unwrap()["port"], p2);

    // The primary fails: only a standby answers, and the error says so.
    primary.kill();
    let e = first_row(&rw, WHERE).await.unwrap_err();
    assert!(
        e.contains("target_session_attrs=read-write") && e.contains("standby"),
        "{e}"
    );
    assert!(!e.contains("127.0.0.1"), "hosts are named by position: {e}");
    // prefer-standby still has its standby; read-only too.
    assert_eq!(first_row(&prefer, WHERE).await.unwrap()["port"], p2);

    // Promotion: the next call finds the new primary, without a restart.
    standby.promote();
    let row = first_row(&rw, WHERE).await.unwrap();
    assert_eq!(
        (row["standby"].clone(), row["port"].clone()),
        (false.into(), p2.into())
    );
    let health = rw.health().await;
    assert_eq!(health[0]["connection"]["current_host"], 1, "{health}");
    assert_eq!(health[0]["up"], true, "{health}");
    // The failure is still on record for an operator.
    assert!(health[0]["last_error"]["reason"].is_string(), "{health}");
}
