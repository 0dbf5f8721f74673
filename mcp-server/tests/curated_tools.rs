//! Curated tools of `tools.yaml` against a real PostgreSQL 15 (the harness
//! of `common/`), through the same parser, gate and call path the server
//! uses, run as a superuser so that no privilege layer helps:
//!
//! - a tool with a parameter of each type gets back exactly what it sent;
//! - injection attempts through every parameter (quotes, `;`, comments,
//!   casts, dollar quotes, placeholders) arrive as plain values, or are
//!   refused by type before anything reaches the database;
//! - a writer tool is refused where the database does not allow writers,
//!   and writes (and commits, or rolls back on error) where it does;
//! - the read-only escapes of the Postgres tools, tried through curated
//!   SQL: refused when the file is verified, or stopped by the read-only
//!   transaction at run time, on a database that allows writers too;
//!
//! while a checksum of the whole database stays the same.

mod common;

use common::{FIXTURE, PgServer, db_config, free_port, require_postgres, snapshot};
use mcp_server::catalog::{Catalog, call, gate};
use mcp_server::pg::{Databases, ToolError};
use serde_json::{Value, json};

const TOOLS: &str = r#"
tools:
  echo:
    description: Every parameter type, echoed.
    database: main
    parameters:
      - {name: s, type: string}
      - {name: i, type: integer}
      - {name: n, type: number}
      - {name: b, type: boolean}
      - {name: sa, type: array, items: {type: string}}
      - {name: ia, type: array, items: {type: integer}}
      - {name: na, type: array, items: {type: number}}
      - {name: ba, type: array, items: {type: boolean}}
      - {name: opt, type: string, required: false}
      - {name: dflt, type: integer, default: 7}
    statement: >-
      SELECT :s AS s, :i AS i, :n AS n, :b AS b, :sa AS sa, :ia AS ia, :na AS na, :ba AS ba,
      :opt AS opt, :dflt AS dflt, pg_typeof(:s)::text || ',' || pg_typeof(:i)::text || ',' ||
      pg_typeof(:n)::text || ',' || pg_typeof(:b)::text || ',' || pg_typeof(:ia)::text AS types
  item_by_name:
    description: Count the items with a name.
    database: main
    parameters: [{name: name, type: string}]
    statement: SELECT count(*) AS n FROM shop.items WHERE name = :name
  add_audit_main:
    description: Writes on main, which does not allow writers.
    database: main
    writer: true
    parameters: [{name: msg, type: string}]
    statement: INSERT INTO public.audit (msg) VALUES (:msg) RETURNING msg
  add_audit:
    description: Writes on rw.
    database: rw
    writer: true
    parameters: [{name: msg, type: string}]
    statement: INSERT INTO public.audit (msg) VALUES (:msg) RETURNING msg
  clear_audit:
    description: Deletes on rw, returning nothing.
    database: rw
    writer: true
    parameters: [{name: msg, type: string}]
    statement: DELETE FROM public.audit WHERE msg = :msg
  insert_t:
    description: A write that fails on a duplicate key.
    database: rw
    writer: true
    parameters: [{name: id, type: integer}, {name: v, type: string}]
    statement: INSERT INTO public.audit (msg) VALUES (:v); INSERT INTO public.t (id, v) VALUES (:id, :v)
"#;

/// The rows of a tool's answer, as JSON.
fn rows(out: &str) -> Vec<Value> {
    let start = out.find('[').unwrap_or_else(|| panic!("no rows in {out}"));
    serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn run(
    catalog: &Catalog,
    dbs: &Databases,
    name: &str,
    args: Value,
) -> Result<String, ToolError> {
    let (tool, _) = catalog
        .tool(name)
        .unwrap_or_else(|| panic!("no tool {name}"));
    call::run(tool, args.as_object(), dbs, None).await
}

fn reader(statement: &str, database: &str) -> String {
    format!(
        "tools:\n  t:\n    description: d\n    database: {database}\n    statement: {}\n",
        json!(statement)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curated_tools_bind_values_gate_writers_and_stay_read_only() {
    require_postgres();
    let port = free_port();
    let mut server = PgServer::init(port);
    server.start();
    let admin = server.superuser().await;
    admin.batch_execute(FIXTURE).await.unwrap();
    let mut rw = db_config("rw", port);
    rw.allow_writers = true;
    let dbs = Databases::new(vec![db_config("main", port), rw]).unwrap();
    // The file with one tool that would write in one statement and fail in
    // the next is refused: one statement only.
    let e = fleet_common::tools_file::parse(TOOLS.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tool insert_t: statement: only one statement"),
        "{e}"
    );
    let tools = TOOLS.replace(
        "INSERT INTO public.audit (msg) VALUES (:v); INSERT INTO public.t (id, v) VALUES (:id, :v)",
        "WITH a AS (INSERT INTO public.audit (msg) VALUES (:v)) INSERT INTO public.t (id, v) VALUES (:id, :v)",
    );
    let catalog = Catalog::new(fleet_common::tools_file::parse(tools.as_bytes()).unwrap());
    let before = snapshot(&admin).await;

    // --- every parameter type comes back as sent, with its declared type.
    let sent = json!({
        "s": "plain", "i": -9007199254740993i64, "n": 3.25, "b": true,
        "sa": ["a", "b c"], "ia": [1, -2], "na": [1.5, -0.25], "ba": [true, false],
    });
    let out = run(&catalog, &dbs, "echo", sent.clone()).await.unwrap();
    let row = &rows(&out)[0];
    for k in ["s", "i", "n", "b", "sa", "ia", "na", "ba"] {
        assert_eq!(row[k], sent[k], "{k}: {out}");
    }
    assert_eq!(
        row["opt"],
        Value::Null,
        "an optional argument left out is NULL"
    );
    assert_eq!(row["dflt"], json!(7), "a default is used");
    assert_eq!(
        row["types"],
        json!("text,bigint,double precision,boolean,bigint[]")
    );

    // --- injection through every parameter: strings arrive as plain values.
    let payloads = [
        "'; DROP TABLE public.t; --",
        "apple' OR '1'='1",
        "1); DELETE FROM public.t; --",
        "$$; DELETE FROM public.t; $$",
        "x /* */ ; DELETE FROM public.t -- ",
        "1::int; SELECT pg_sleep(0)",
        "\\'; DELETE FROM public.t; --",
        "' || (SELECT pg_read_file('/etc/passwd')) || '",
        "$1",
        ":s",
        "\n;\nCOMMIT; BEGIN READ WRITE; DELETE FROM public.t;",
        "é\u{2028}\"; --",
    ];
    for p in payloads {
        let args = json!({"s": p, "i": 1, "n": 1.5, "b": false, "sa": [p, "x"], "ia": [], "na": [], "ba": [], "opt": p});
        let out = run(&catalog, &dbs, "echo", args)
            .await
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let row = &rows(&out)[0];
        assert_eq!(row["s"], json!(p), "{out}");
        assert_eq!(row["opt"], json!(p), "{out}");
        assert_eq!(row["sa"], json!([p, "x"]), "{out}");
        let out = run(&catalog, &dbs, "item_by_name", json!({"name": p}))
            .await
            .unwrap();
        assert_eq!(rows(&out)[0]["n"], json!(0), "{p:?} matched rows: {out}");
        // Through the other types, the same text is refused by type, naming
        // the parameter, before anything is sent.
        for (param, value) in [
            ("i", json!(p)),
            ("n", json!(p)),
            ("b", json!(p)),
            ("ia", json!([1, p])),
            ("na", json!([p])),
            ("ba", json!([true, p])),
        ] {
            let mut args = json!({"s": "x", "i": 1, "n": 1.5, "b": true, "sa": [], "ia": [], "na": [], "ba": []});
            args[param] = value;
            let e = run(&catalog, &dbs, "echo", args).await.unwrap_err();
            assert_eq!(e.kind(), "invalid_argument", "{param} {p:?}: {e}");
            assert!(e.to_string().contains(&format!("argument {param}")), "{e}");
        }
    }
    let out = run(&catalog, &dbs, "item_by_name", json!({"name": "apple"}))
        .await
        .unwrap();
    assert_eq!(rows(&out)[0]["n"], json!(1), "a real value still matches");
    assert_eq!(
        snapshot(&admin).await,
        before,
        "an injection changed the database"
    );

    // --- a writer where writers are off: not offered, and refused.
    let metrics = mcp_server::metrics::Metrics::new("test");
    let e = match gate::admit(&catalog, &dbs, None, "add_audit_main", &metrics) {
        Err(e) => e,
        Ok(_) => panic!("a writer tool was admitted on a database without writers"),
    };
    assert!(e.contains("does not run writer tools"), "{e}");
    let listed: Vec<String> = gate::listed(&catalog, &dbs, None, Vec::new())
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        listed.contains(&"add_audit".to_string())
            && !listed.contains(&"add_audit_main".to_string()),
        "{listed:?}"
    );
    let e = run(&catalog, &dbs, "add_audit_main", json!({"msg": "no"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "writers_off", "{e}");
    assert_eq!(
        snapshot(&admin).await,
        before,
        "a refused writer changed the database"
    );

    // --- where writers are on: writes, commits, and rolls back on error.
    let out = run(
        &catalog,
        &dbs,
        "add_audit",
        json!({"msg": "hello'); DROP TABLE public.t; --"}),
    )
    .await
    .unwrap();
    assert!(out.starts_with("Committed. 1 row."), "{out}");
    assert_eq!(
        rows(&out)[0]["msg"],
        json!("hello'); DROP TABLE public.t; --")
    );
    let count = |msg: &'static str| {
        let admin = &admin;
        async move {
            let r = admin
                .query_one("SELECT count(*) FROM public.audit WHERE msg = $1", &[&msg])
                .await
                .unwrap();
            r.get::<_, i64>(0)
        }
    };
    assert_eq!(count("hello'); DROP TABLE public.t; --").await, 1);
    let e = run(&catalog, &dbs, "insert_t", json!({"id": 1, "v": "dup"}))
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("23505"), "{e}");
    assert_eq!(
        count("dup").await,
        0,
        "a failed writer left a partial write"
    );
    let out = run(
        &catalog,
        &dbs,
        "clear_audit",
        json!({"msg": "hello'); DROP TABLE public.t; --"}),
    )
    .await
    .unwrap();
    assert_eq!(out, "Committed. 1 row written.", "{out}");
    assert_eq!(snapshot(&admin).await, before, "the writes were not undone");

    // --- the read-only escapes through curated SQL. Refused when the file
    // is checked, as a reader and (but for plain writes) as a writer:
    for sql in [
        "SELECT 1; DELETE FROM public.t",
        "COMMIT; BEGIN READ WRITE; DELETE FROM public.t",
        "WITH d AS (DELETE FROM public.t RETURNING *) SELECT * FROM d",
        "SELECT nextval('shop.counter')",
        "SELECT set_config('transaction_read_only', 'off', true)",
        "SET transaction_read_only = off",
        "SET ROLE postgres",
        "DO $$ BEGIN DELETE FROM public.t; END $$",
        "CALL proc()",
        "COPY public.t TO PROGRAM 'true'",
        "SELECT lo_from_bytea(0, 'x')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT * FROM public.t FOR UPDATE",
        "SELECT * INTO TEMP stolen FROM public.t",
        "SELECT pg_advisory_lock(42)",
        "LOCK TABLE public.t",
        "PREPARE x AS DELETE FROM public.t",
        "SELECT query_to_xml('select 1', true, false, '')",
        "SELECT 1) AS q; DELETE FROM public.t; SELECT (1",
        "SELECT U&\"\\006Eextval\"('shop.counter')",
    ] {
        let e = fleet_common::tools_file::parse(reader(sql, "main").as_bytes());
        assert!(e.is_err(), "accepted as a reader: {sql}");
    }
    // ... and functions the guard cannot see into are stopped by the
    // read-only transaction, on a database that allows writers too.
    for database in ["main", "rw"] {
        for (sql, says) in [
            (
                "SELECT evil() AS x",
                "cannot execute INSERT in a read-only transaction",
            ),
            (
                "SELECT evil_rw() AS x",
                "transaction read-write mode must be set before any query",
            ),
            (
                "SELECT evil_seq() AS x",
                "cannot execute nextval() in a read-only transaction",
            ),
            (
                "SELECT * FROM public.t WHERE id = (SELECT evil())",
                "read-only transaction",
            ),
        ] {
            let file = fleet_common::tools_file::parse(reader(sql, database).as_bytes()).unwrap();
            let catalog = Catalog::new(file);
            let e = run(&catalog, &dbs, "t", json!({})).await.unwrap_err();
            assert!(e.to_string().contains(says), "{database} {sql}: {e}");
        }
        for contained in [
            "SELECT evil_lo() AS x",
            "SELECT evil_lock() AS x",
            "SELECT evil_xact_lock() AS x",
        ] {
            let file =
                fleet_common::tools_file::parse(reader(contained, database).as_bytes()).unwrap();
            let _ = run(&Catalog::new(file), &dbs, "t", json!({})).await;
        }
        let file = fleet_common::tools_file::parse(
            reader(
                "SELECT current_setting('transaction_read_only') AS ro",
                database,
            )
            .as_bytes(),
        )
        .unwrap();
        let out = run(&Catalog::new(file), &dbs, "t", json!({}))
            .await
            .unwrap();
        assert_eq!(rows(&out)[0]["ro"], json!("on"), "{database}: {out}");
    }
    // SQL that lexes but PostgreSQL refuses: a clear error at call time.
    let file =
        fleet_common::tools_file::parse(reader("SELECT * FROM nope", "main").as_bytes()).unwrap();
    let e = run(&Catalog::new(file), &dbs, "t", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("42P01"), "{e}");
    assert_eq!(
        snapshot(&admin).await,
        before,
        "an escape changed the database"
    );
    drop(admin);
    server.stop();
}
