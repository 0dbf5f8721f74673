//! The Postgres tools against a real PostgreSQL 15 that the test starts
//! (initdb + pg_ctl on 127.0.0.1, a free port, a temp directory; as user
//! `postgres` through `runuser` when the test runs as root).
//!
//! - every tool's happy path, including the values a naive guard would
//!   wrongly refuse;
//! - escape attempts, each of which must fail with a clear error while a
//!   checksum of the whole database (user tables, sequences, relations,
//!   functions, roles, role settings, large objects, advisory locks,
//!   prepared transactions) stays the same, run as a superuser so that no
//!   privilege layer helps;
//! - a database that is down at start, then comes up, goes down and comes
//!   back: health reports it quickly and the same `Databases` recovers.
//!
//! They fail when `initdb` is not on the PATH (scripts/test.sh installs it).

mod common;

use mcp_server::pg;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    FIXTURE, PASSWORD, PgServer, db_config, digest, free_port, require_postgres, snapshot,
};
use pg::{Databases, ToolError};

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_work_and_escapes_fail() {
    require_postgres();
    let port = free_port();
    let mut server = PgServer::init(port);
    server.start();
    let admin = server.superuser().await;
    admin.batch_execute(FIXTURE).await.unwrap();

    let mut slow = db_config("slow", port);
    slow.statement_timeout = Some(Duration::from_secs(1));
    let dbs = Databases::new(vec![db_config("main", port), slow]).unwrap();

    // No secret in Debug output.
    let dbg = format!("{dbs:?} {:?}", db_config("x", 1));
    assert!(!dbg.contains(PASSWORD), "{dbg}");

    check_pick(&dbs);
    let db = dbs.pick(None, None).unwrap();
    assert_eq!(db.name(), "main");

    // --- health
    let h = dbs.health().await;
    assert_eq!(h[0]["name"], "main");
    assert_eq!(h[0]["up"], true, "{h}");
    assert!(h[0]["error"].is_null());
    assert_eq!(h[1]["up"], true);

    // --- query_database
    let out = db
        .query(
            "SELECT id, name, price, note, update_count, created_at FROM shop.items ORDER BY id",
            None,
            None,
        )
        .await
        .unwrap();
    assert!(out.starts_with("3 rows (offset 0, limit 100)."), "{out}");
    assert!(
        out.contains("Columns: id int4, name text, price numeric"),
        "{out}"
    );
    assert!(
        out.contains(r#"{"id":1,"name":"apple","price":1.50,"note":"drop table","update_count":3,"created_at":"2024-01-01T00:00:00+00:00"}"#),
        "{out}"
    );
    // Types a naive text conversion gets wrong.
    let out = db
        .query(
            "SELECT 1.5::numeric AS n, ARRAY[1,2] AS a, '{\"k\": [1, null]}'::jsonb AS j, \
             '\\x01ff'::bytea AS b, NULL::int AS nothing, true AS t, interval '1 day' AS i, \
             'NaN'::float8 AS nan, '2024-02-03'::date AS d, 'a\"b'::text AS quote",
            None,
            None,
        )
        .await
        .unwrap();
    assert!(
        out.contains(r#"{"n":1.5,"a":[1,2],"j":{"k": [1, null]},"b":"\\x01ff","nothing":null,"t":true,"i":"1 day","nan":"NaN","d":"2024-02-03","quote":"a\"b"}"#),
        "{out}"
    );
    // A huge value is cut on the server, and the output stays bounded.
    let out = db
        .query("SELECT 1 AS id, repeat('x', 100000) AS big", None, None)
        .await
        .unwrap();
    assert!(
        out.contains(r#"","_prefix":"{\"id\":1,\"big\":\"xxx"#),
        "{}",
        &out[..300]
    );
    assert!(
        out.contains(
            r#"{"_row_truncated":"this row is 100017 characters of JSON; showing the first 32768"#
        ),
        "{}",
        &out[..300]
    );
    assert!(out.len() < 40_000);
    let out = db
        .query(
            "SELECT repeat('y', 30000) AS v FROM generate_series(1, 50)",
            None,
            None,
        )
        .await
        .unwrap();
    assert!(out.len() <= 256 * 1024 + 1024, "{}", out.len());
    assert!(
        out.contains("output cut at 256 KiB: more rows exist, continue with offset="),
        "{}",
        &out[..200]
    );
    // Things a naive guard would refuse.
    for (sql, expect) in [
        (
            "SELECT 'a; DELETE FROM t' AS s",
            r#""s":"a; DELETE FROM t""#,
        ),
        (
            "SELECT name FROM shop.items WHERE note = 'drop table'",
            r#""name":"apple""#,
        ),
        (
            "SELECT $body$ BEGIN; DELETE FROM t; COMMIT; $body$ AS txt",
            "BEGIN; DELETE FROM t; COMMIT;",
        ),
        (
            "SELECT update_count, created_at FROM shop.items WHERE id = 2",
            r#""update_count":0"#,
        ),
        (
            "SELECT \"update\" FROM (SELECT 7 AS \"update\") x",
            r#""update":7"#,
        ),
        ("SELECT 1 AS one; -- trailing", r#""one":1"#),
        ("SELECT 1 AS one -- no newline at the end", r#""one":1"#),
        ("/* leading */ SELECT 2 AS two", r#""two":2"#),
        ("VALUES (1, 'x')", r#""column1":1"#),
        ("TABLE shop.orders", r#""qty":5"#),
        (
            "WITH o AS (SELECT * FROM shop.orders) SELECT count(*) AS n FROM o",
            r#""n":2"#,
        ),
        ("SELECT last_value AS c FROM shop.counter", r#""c":1"#),
        (
            "SHOW transaction_read_only",
            r#""transaction_read_only":"on""#,
        ),
        ("SHOW statement_timeout", r#""statement_timeout":"30s""#),
        (
            "SELECT current_setting('transaction_read_only') AS ro",
            r#""ro":"on""#,
        ),
    ] {
        let out = db
            .query(sql, None, None)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(out.contains(expect), "{sql}: {out}");
    }
    // Limits and paging.
    let out = db
        .query("SELECT id FROM t ORDER BY id", None, None)
        .await
        .unwrap();
    assert!(
        out.starts_with(
            "100 rows (offset 0, limit 100); more rows exist: continue with offset=100."
        ),
        "{out}"
    );
    let out = db
        .query("SELECT id FROM t ORDER BY id", Some(10), Some(245))
        .await
        .unwrap();
    assert!(out.starts_with("5 rows (offset 245, limit 10)."), "{out}");
    assert!(
        out.contains(r#"{"id":250}"#) && !out.contains(r#"{"id":245}"#),
        "{out}"
    );
    let out = db
        .query("SELECT id FROM t", Some(100_000), None)
        .await
        .unwrap();
    assert!(out.contains("limit capped at max_rows=200"), "{out}");
    assert!(out.starts_with("200 rows"), "{out}");
    let out = db.query("SELECT 1 WHERE false", None, None).await.unwrap();
    assert!(out.starts_with("0 rows") && out.ends_with("[]"), "{out}");
    assert!(matches!(
        db.query("SELECT 1", Some(0), None).await,
        Err(ToolError::InvalidArgument(_))
    ));
    assert!(matches!(
        db.query("SELECT 1", None, Some(-1)).await,
        Err(ToolError::InvalidArgument(_))
    ));
    // A server error is clear and keeps its SQLSTATE.
    let e = db
        .query("SELECT * FROM nope", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("42P01"), "{e}");
    assert!(
        e.to_string().contains("relation \"nope\" does not exist"),
        "{e}"
    );

    // --- get_schema_info
    let full = db.schema_info(None, None, false, false).await.unwrap();
    for needle in [
        "Schemas: public",
        "shop (",
        "## shop.items (table",
        "Description: Things we sell",
        "id integer PRIMARY KEY NOT NULL DEFAULT nextval('shop.items_id_seq'::regclass)",
        "price numeric(10,2) -- in euros",
        "items_pkey: PRIMARY KEY (id)",
        "orders_item_id_fkey: FOREIGN KEY (item_id) REFERENCES shop.items(id)",
        "CHECK (qty > 0)",
        "CREATE INDEX items_name_idx ON shop.items USING btree (name)",
        "## shop.cheap (view)",
        "## public.t (table",
    ] {
        assert!(full.contains(needle), "missing {needle:?} in:\n{full}");
    }
    let shop_only = db
        .schema_info(Some("shop"), None, false, true)
        .await
        .unwrap();
    assert!(shop_only.contains("shop.items (table"), "{shop_only}");
    assert!(
        shop_only.contains("id int4") || shop_only.contains("id integer PK"),
        "{shop_only}"
    );
    assert!(!shop_only.contains("public.t "), "{shop_only}");
    let one = db
        .schema_info(Some("shop"), Some("orders"), false, false)
        .await
        .unwrap();
    assert!(one.starts_with("1 relation:"), "{one}");
    let vec_only = db.schema_info(None, None, true, true).await.unwrap();
    assert!(vec_only.contains("shop.docs (table"), "{vec_only}");
    assert!(vec_only.contains("embedding vector"), "{vec_only}");
    assert!(!vec_only.contains("shop.items"), "{vec_only}");
    let none = db
        .schema_info(Some("nope"), None, false, false)
        .await
        .unwrap();
    assert!(
        none.starts_with("No tables or views found in schema \"nope\""),
        "{none}"
    );

    // --- execute_explain
    let plan = db
        .explain("SELECT * FROM shop.items WHERE id = 1", true, true)
        .await
        .unwrap();
    assert!(plan.contains("actual time="), "{plan}");
    assert!(plan.contains("rolled back"), "{plan}");
    let plan = db.explain("SELECT * FROM t", false, false).await.unwrap();
    assert!(
        plan.contains("cost=") && !plan.contains("actual time"),
        "{plan}"
    );

    // --- count_rows
    assert_eq!(
        db.count_rows(None, "t", None).await.unwrap(),
        "public.t: 250 rows"
    );
    assert_eq!(
        db.count_rows(Some("shop"), "items", Some("price > 2"))
            .await
            .unwrap(),
        "shop.items: 2 rows where price > 2"
    );
    assert_eq!(
        db.count_rows(None, "shop.items", Some("note = 'big; DELETE FROM t'"))
            .await
            .unwrap(),
        "shop.items: 1 rows where note = 'big; DELETE FROM t'"
    );
    assert_eq!(
        db.count_rows(
            Some("shop"),
            "cheap",
            Some("id IN (SELECT item_id FROM shop.orders)")
        )
        .await
        .unwrap(),
        "shop.cheap: 1 rows where id IN (SELECT item_id FROM shop.orders)"
    );
    // A trailing comment cannot swallow the closing parenthesis.
    assert_eq!(
        db.count_rows(None, "t", Some("id <= 10 -- ten"))
            .await
            .unwrap(),
        "public.t: 10 rows where id <= 10"
    );
    let e = db.count_rows(None, "Items", None).await.unwrap_err();
    assert!(
        e.to_string().contains("no table or view named \"Items\""),
        "{e}"
    );

    // --- pg://system_info
    let info = db.system_info().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert!(
        v["version"].as_str().unwrap().starts_with("PostgreSQL 15"),
        "{info}"
    );
    assert_eq!(v["database"], "postgres");
    assert_eq!(v["user_is_superuser"], true);
    assert!(v["warning"].is_string());
    assert_eq!(v["settings"]["default_transaction_read_only"], "on");

    // --- statement timeout, and the pool recovers afterwards
    let slow_db = dbs.pick(Some("slow"), None).unwrap();
    let t0 = Instant::now();
    let e = slow_db
        .query("SELECT pg_sleep(5)", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("statement timeout"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(slow_db.query("SELECT 1", None, None).await.is_ok());

    // --- the protocol layer on its own: PostgreSQL refuses two statements
    // in one Parse message, which is how every user statement is sent.
    let e = admin
        .query("SELECT 1; DELETE FROM t", &[])
        .await
        .unwrap_err();
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("cannot insert multiple commands into a prepared statement"),
        "{e}"
    );

    // --- escape attempts
    let before = snapshot(&admin).await;
    let pwned = format!("/tmp/pwned-{port}");
    let _ = std::fs::remove_file(&pwned);
    let attempts = escape_attempts(&pwned);
    assert!(attempts.len() >= 25);
    let mut report = Vec::new();
    let mut contained = Vec::new();
    for a in &attempts {
        let result = match &a.call {
            Call::Query(sql) => db.query(sql, None, None).await,
            Call::Explain(sql, analyze) => db.explain(sql, *analyze, false).await,
            Call::Count(schema, table, where_) => db.count_rows(*schema, table, *where_).await,
        };
        let e = match result {
            Ok(out) if a.kind == CONTAINED => {
                let after = snapshot(&admin).await;
                assert_eq!(before, after, "{}: the database changed", a.label);
                contained.push(format!(
                    "  contained (ran, left nothing) {} -> {}",
                    a.label,
                    out.lines().next().unwrap_or_default()
                ));
                continue;
            }
            Ok(out) => panic!("ESCAPE SUCCEEDED: {} -> {out}", a.label),
            Err(e) => e,
        };
        let msg = e.to_string();
        if a.kind == CONTAINED {
            let after = snapshot(&admin).await;
            assert_eq!(before, after, "{}: the database changed", a.label);
            contained.push(format!("  contained (refused) {} -> {msg}", a.label));
            continue;
        }
        assert_eq!(e.kind(), a.kind, "{}: wrong kind of error: {msg}", a.label);
        assert!(
            msg.to_lowercase().contains(&a.expect.to_lowercase()),
            "{}: unclear error, expected {:?} in: {msg}",
            a.label,
            a.expect
        );
        assert!(!msg.contains(PASSWORD));
        let after = snapshot(&admin).await;
        assert_eq!(before, after, "{}: the database changed", a.label);
        report.push(format!("  refused [{}] {} -> {msg}", e.kind(), a.label));
    }
    assert!(!Path::new(&pwned).exists(), "COPY TO PROGRAM ran");
    // The tools still work, and their sessions are still read-only.
    let out = db
        .query(
            "SELECT current_setting('default_transaction_read_only') AS d, \
             current_setting('transaction_read_only') AS t, current_user AS u",
            None,
            None,
        )
        .await
        .unwrap();
    assert!(
        out.contains(r#"{"d":"on","t":"on","u":"postgres"}"#),
        "{out}"
    );
    assert!(report.len() >= 25, "only {} refusals", report.len());
    eprintln!(
        "{} escape attempts refused with a clear error, {} contained; database checksum \
         unchanged ({})\n{}\n{}",
        report.len(),
        contained.len(),
        &digest(&before)[..16],
        report.join("\n"),
        contained.join("\n")
    );
    drop(admin);
    server.stop();
}

fn check_pick(dbs: &Databases) {
    assert_eq!(dbs.names(), vec!["main", "slow"]);
    assert!(!dbs.is_empty());
    assert_eq!(dbs.pick(None, None).unwrap().name(), "main");
    assert_eq!(dbs.pick(Some("slow"), None).unwrap().name(), "slow");
    assert_eq!(dbs.pick(None, Some("slow")).unwrap().name(), "slow");
    assert_eq!(dbs.pick(Some("slow"), Some("slow")).unwrap().name(), "slow");
    let e = dbs.pick(Some("main"), Some("slow")).unwrap_err();
    assert!(matches!(e, ToolError::Forbidden { .. }), "{e}");
    assert!(e.to_string().contains("bound to database \"slow\""), "{e}");
    let e = dbs.pick(Some("nope"), None).unwrap_err();
    assert!(
        e.to_string().contains("configured databases: main, slow"),
        "{e}"
    );
    let e = dbs.pick(None, Some("gone")).unwrap_err();
    assert!(matches!(e, ToolError::BoundDatabaseMissing { .. }), "{e}");
    assert!(!e.to_string().contains("main"), "{e}");
    let empty = Databases::new(vec![]).unwrap();
    assert!(empty.is_empty());
    assert!(matches!(empty.pick(None, None), Err(ToolError::NoDatabase)));
    assert!(Databases::new(vec![db_config("a", 1), db_config("a", 2)]).is_err());
}

enum Call {
    Query(String),
    Explain(String, bool),
    Count(Option<&'static str>, &'static str, Option<&'static str>),
}

/// An attempt PostgreSQL itself allows in a read-only transaction (it runs
/// through a function the guard cannot see into): it may succeed, but must
/// leave the database and the pooled sessions unchanged.
const CONTAINED: &str = "contained";

struct Attempt {
    label: String,
    call: Call,
    /// `ToolError::kind()`: which layer must refuse.
    kind: &'static str,
    /// A phrase the error must contain.
    expect: &'static str,
}

fn escape_attempts(pwned: &str) -> Vec<Attempt> {
    let q = |sql: &str, kind: &'static str, expect: &'static str| Attempt {
        label: format!("query_database {sql:?}"),
        call: Call::Query(sql.to_string()),
        kind,
        expect,
    };
    let x = |sql: &str, expect: &'static str| q(sql, "rejected", expect);
    let mut v = vec![
        // Stacked statements and comment / quoting tricks.
        x("SELECT 1; DELETE FROM t", "only one statement"),
        x("SELECT 1 /* ; */ ; DELETE FROM t", "only one statement"),
        x("SELECT 1 -- hidden?\n; DELETE FROM t", "only one statement"),
        x("SELECT $$;$$; DELETE FROM t", "only one statement"),
        x("SELECT 'x'';'; DELETE FROM t", "only one statement"),
        x("SELECT E'\\';'; DELETE FROM t --'", "only one statement"),
        x(
            "SELECT 1) AS __mcp_q; DELETE FROM t; SELECT (1",
            "only one statement",
        ),
        x(
            "SELECT 1) AS q UNION ALL SELECT nextval('shop.counter') FROM (SELECT 1",
            "unbalanced parentheses",
        ),
        // Transaction escapes.
        x(
            "COMMIT; BEGIN READ WRITE; DELETE FROM t",
            "only one statement",
        ),
        x("COMMIT", "transaction control"),
        x("END; INSERT INTO audit VALUES ('x')", "only one statement"),
        x("ROLLBACK", "transaction control"),
        x("BEGIN READ WRITE", "transaction control"),
        x("PREPARE TRANSACTION 'x'", "transaction control"),
        x("COMMIT PREPARED 'x'", "transaction control"),
        x("SAVEPOINT s", "transaction control"),
        // Writable CTEs, DML, DDL.
        x(
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "writable",
        ),
        x(
            "WITH u AS MATERIALIZED (UPDATE t SET v = 'x' RETURNING 1) SELECT count(*) FROM u",
            "writable",
        ),
        x(
            "WITH i AS (INSERT INTO audit VALUES ('x') RETURNING *) TABLE i",
            "writable",
        ),
        x(
            "INSERT INTO t VALUES (999, 'x')",
            "INSERT statements are not allowed",
        ),
        x(
            "MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "MERGE statements are not allowed",
        ),
        x("DROP TABLE t", "DROP statements are not allowed"),
        x("TRUNCATE t", "TRUNCATE statements are not allowed"),
        x(
            "CREATE TEMP TABLE x AS SELECT 1",
            "CREATE statements are not allowed",
        ),
        x("SELECT * INTO TEMP stolen FROM t", "INTO is not allowed"),
        x(
            "GRANT ALL ON t TO PUBLIC",
            "GRANT statements are not allowed",
        ),
        // Sequences and settings.
        x("SELECT nextval('shop.counter')", "nextval() is not allowed"),
        x(
            "SELECT setval('shop.counter', 100)",
            "setval() is not allowed",
        ),
        x(
            "SELECT \"nextval\"('shop.counter')",
            "nextval() is not allowed",
        ),
        x(
            "SELECT pg_catalog.NEXTVAL('shop.counter')",
            "nextval() is not allowed",
        ),
        x(
            "SELECT nextval /* gap */ ('shop.counter')",
            "nextval() is not allowed",
        ),
        x(
            "SELECT U&\"\\006Eextval\"('shop.counter')",
            "Unicode-escaped identifiers",
        ),
        x(
            "SELECT set_config('transaction_read_only', 'off', true)",
            "set_config() is not allowed",
        ),
        x("SET transaction_read_only = off", "changing settings"),
        x("RESET ALL", "changing settings"),
        x("SET ROLE postgres", "changing the role"),
        x("SET SESSION AUTHORIZATION postgres", "changing the role"),
        // Procedural code, COPY, server files, large objects.
        x("DO $$ BEGIN DELETE FROM t; END $$", "DO is not allowed"),
        x("CALL proc()", "CALL is not allowed"),
        x(
            &format!("COPY t TO PROGRAM 'touch {pwned}'"),
            "COPY is not allowed",
        ),
        x(
            &format!("COPY (SELECT 1) TO PROGRAM 'touch {pwned}'"),
            "COPY is not allowed",
        ),
        x(
            "SELECT lo_import('/etc/passwd')",
            "lo_import() is not allowed",
        ),
        x(
            "SELECT lo_from_bytea(0, 'x')",
            "lo_from_bytea() is not allowed",
        ),
        x(
            "SELECT pg_read_file('/etc/passwd')",
            "pg_read_file() is not allowed",
        ),
        x("SELECT * FROM pg_ls_dir('.')", "pg_ls_dir() is not allowed"),
        x(
            "SELECT query_to_xml('select nextval(''shop.counter'')', true, false, '')",
            "query_to_xml() is not allowed",
        ),
        // Locks, notifications, maintenance, prepared statements.
        x("SELECT * FROM t FOR UPDATE", "row locks"),
        x("SELECT * FROM t FOR NO KEY UPDATE", "row locks"),
        x(
            "SELECT pg_advisory_lock(42)",
            "pg_advisory_lock() is not allowed",
        ),
        x("LOCK TABLE t", "LOCK statements are not allowed"),
        x("LISTEN ch", "LISTEN statements are not allowed"),
        x("NOTIFY ch, 'x'", "NOTIFY statements are not allowed"),
        x("SELECT pg_notify('ch', 'x')", "pg_notify() is not allowed"),
        x("VACUUM t", "VACUUM statements are not allowed"),
        x("ANALYZE t", "ANALYZE statements are not allowed"),
        x(
            "PREPARE x AS DELETE FROM t",
            "PREPARE statements are not allowed",
        ),
        x("EXECUTE x", "EXECUTE statements are not allowed"),
        x("SELECT txid_current()", "txid_current() is not allowed"),
        x(
            "SELECT pg_terminate_backend(pg_backend_pid())",
            "pg_terminate_backend() is not allowed",
        ),
        x("SELECT $1", "query parameters"),
        x(
            "EXPLAIN ANALYZE DELETE FROM t",
            "use the execute_explain tool",
        ),
        // Functions the guard cannot know: the read-only transaction stops them.
        q(
            "SELECT evil()",
            "postgres",
            "cannot execute INSERT in a read-only transaction",
        ),
        q(
            "SELECT evil_rw()",
            "postgres",
            "transaction read-write mode must be set before any query",
        ),
        q(
            "SELECT evil_seq()",
            "postgres",
            "cannot execute nextval() in a read-only transaction",
        ),
        // PostgreSQL 15 lets these run in a read-only transaction: they may
        // succeed, but the rollback and the session cleanup leave nothing.
        q("SELECT evil_lo()", CONTAINED, ""),
        q("SELECT evil_lock()", CONTAINED, ""),
        q("SELECT evil_xact_lock()", CONTAINED, ""),
        q(
            "SELECT * FROM t WHERE id = (SELECT evil())",
            "postgres",
            "read-only transaction",
        ),
    ];
    // execute_explain: the guard checks the inner query; ANALYZE runs it in
    // the read-only transaction.
    for (sql, analyze, kind, expect) in [
        (
            "DELETE FROM t",
            true,
            "rejected",
            "DELETE statements are not allowed",
        ),
        (
            "EXPLAIN ANALYZE DELETE FROM t",
            true,
            "rejected",
            "without EXPLAIN",
        ),
        (
            "WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d",
            true,
            "rejected",
            "writable",
        ),
        (
            "SELECT 1; DELETE FROM t",
            true,
            "rejected",
            "only one statement",
        ),
        (
            "SELECT * INTO TEMP x FROM t",
            true,
            "rejected",
            "INTO is not allowed",
        ),
        (
            "SELECT evil()",
            true,
            "postgres",
            "cannot execute INSERT in a read-only transaction",
        ),
        (
            "SELECT nextval('shop.counter')",
            false,
            "rejected",
            "nextval()",
        ),
    ] {
        v.push(Attempt {
            label: format!("execute_explain analyze={analyze} {sql:?}"),
            call: Call::Explain(sql.to_string(), analyze),
            kind,
            expect,
        });
    }
    // count_rows: injection through where, table and schema.
    for (schema, table, where_, kind, expect) in [
        (
            None,
            "t",
            Some("1=1); DROP TABLE t; --"),
            "rejected",
            "`;` is not allowed",
        ),
        (
            None,
            "t",
            Some("true) OR (SELECT setval('shop.counter', 99)) > 0 OR (true"),
            "rejected",
            "unbalanced parentheses",
        ),
        (
            None,
            "t",
            Some("1=1) OR (SELECT nextval('shop.counter')) > 0 OR (1=1"),
            "rejected",
            "unbalanced parentheses",
        ),
        (
            None,
            "t",
            Some("(SELECT nextval('shop.counter')) > 0"),
            "rejected",
            "nextval() is not allowed",
        ),
        (
            None,
            "t",
            Some("id IN (WITH d AS (DELETE FROM t RETURNING id) SELECT id FROM d)"),
            "rejected",
            "writable",
        ),
        (
            None,
            "t",
            Some("id = (SELECT evil())"),
            "postgres",
            "read-only transaction",
        ),
        (
            None,
            "t; DROP TABLE t",
            None,
            "invalid_argument",
            "no table or view named",
        ),
        (
            None,
            "t\" ; --",
            None,
            "invalid_argument",
            "no table or view named",
        ),
        (
            Some("public\"; DROP TABLE t; --"),
            "t",
            None,
            "invalid_argument",
            "no table or view named",
        ),
    ] {
        v.push(Attempt {
            label: format!("count_rows schema={schema:?} table={table:?} where={where_:?}"),
            call: Call::Count(schema, table, where_),
            kind,
            expect,
        });
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_start_is_reported_and_recovers_without_restart() {
    require_postgres();
    let port = free_port();
    // Configured while nothing listens: creation must not connect or fail.
    let dbs = Databases::new(vec![db_config("main", port)]).unwrap();
    let db = dbs.pick(None, None).unwrap();

    let t0 = Instant::now();
    let h = dbs.health().await;
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(h[0]["up"], false, "{h}");
    assert_eq!(h[0]["error"], "connection refused", "{h}");
    assert!(!dbs.all_up().await);

    let t0 = Instant::now();
    let e = db.query("SELECT 1", None, None).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(e.kind(), "unavailable");
    assert_eq!(
        e.to_string(),
        "database main is unavailable: connection refused"
    );
    assert!(db.schema_info(None, None, false, true).await.is_err());
    assert!(db.system_info().await.is_err());

    // The database comes up: the same object works, no restart.
    let mut server = PgServer::init(port);
    server.start();
    wait_up(&dbs).await;
    let out = db
        .query("SELECT 41 + 1 AS answer", None, None)
        .await
        .unwrap();
    assert!(out.contains(r#"{"answer":42}"#), "{out}");
    assert!(
        db.count_rows(Some("pg_catalog"), "pg_class", None)
            .await
            .is_ok()
    );

    // Down again (pooled connections die), then back: still recovers.
    server.stop();
    let t0 = Instant::now();
    let e = db.query("SELECT 1", None, None).await.unwrap_err();
    assert_eq!(e.kind(), "unavailable", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(4));
    tokio::time::sleep(pg::HEALTH_CACHE).await;
    let h = dbs.health().await;
    assert_eq!(h[0]["up"], false, "{h}");
    server.start();
    wait_up(&dbs).await;
    let out = db
        .query("SELECT 'back' AS state", None, None)
        .await
        .unwrap();
    assert!(out.contains(r#"{"state":"back"}"#), "{out}");
    server.stop();
}

async fn wait_up(dbs: &Databases) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = dbs.health().await;
        if h[0]["up"] == true {
            assert!(h[0]["latency_ms"].as_f64().unwrap() < 1000.0);
            return;
        }
        assert!(Instant::now() < deadline, "database never came up: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
