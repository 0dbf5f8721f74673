//! A real PostgreSQL 15 for the tests that need one: initdb + pg_ctl on
//! 127.0.0.1, a free port, a temp directory, as user `postgres` through
//! `runuser` when the test runs as root; a fixture schema with functions
//! the guard cannot see into; and a snapshot of everything an escape could
//! change. Shared by `pg_tools.rs` and `curated_tools.rs`.
//!
//! The tests fail when `initdb` is not on the PATH (scripts/test.sh
//! installs it): a security test that skips itself proves nothing.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_server::pg::DatabaseConfig;
use tokio_postgres::{Client, NoTls};

/// These tests need PostgreSQL; scripts/test.sh installs it. Missing, they
/// fail: a security test that skips itself proves nothing.
pub fn require_postgres() {
    let ok = Command::new("initdb")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "initdb is not on the PATH: install PostgreSQL 15 (scripts/test.sh does)"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// Run a PostgreSQL program, as `postgres` when we are root (they refuse root).
fn pg_command(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

/// Run a PostgreSQL program to its end; its failure fails the test with
/// what it printed.
fn run_pg(command: &mut Command, what: &str) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first row of `sql` on the first database of `dbs`, as JSON (`null`
/// when there is none), or the tool error's text. `query_database` answers
/// a summary line, the columns, then one JSON object per row.
pub async fn first_row(
    dbs: &mcp_server::pg::Databases,
    sql: &str,
) -> Result<serde_json::Value, String> {
    let db = dbs.get(&dbs.names()[0]).unwrap();
    let text = db.query(sql, None, None).await.map_err(|e| e.to_string())?;
    let row = text.lines().find(|l| l.starts_with('{')).unwrap_or("null");
    Ok(serde_json::from_str(row).unwrap())
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct PgServer {
    _root: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    running: bool,
}

impl PgServer {
    /// initdb a cluster for `port` (not started).
    pub fn init(port: u16) -> PgServer {
        let root = tempfile::Builder::new()
            .prefix("pg-tools-")
            .tempdir_in("/tmp")
            .unwrap();
        set_mode(root.path(), 0o755);
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        set_mode(&data, 0o700);
        if is_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
        }
        run_pg(
            pg_command("initdb").args(["-D"]).arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        );
        PgServer {
            _root: root,
            data,
            port,
            running: false,
        }
    }

    pub fn start(&mut self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=40 -c timezone=UTC",
            self.port,
            self.data.display()
        );
        let out = pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &opts, "-l"])
            .arg(self.data.join("server.log"))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
        );
        self.running = true;
    }

    pub fn stop(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output();
        self.running = false;
    }

    /// A streaming standby of `primary` (which must be running), made by
    /// `pg_basebackup -R`, for `port` (not started).
    pub fn standby_of(primary: &PgServer, port: u16) -> PgServer {
        let root = tempfile::Builder::new()
            .prefix("pg-standby-")
            .tempdir_in("/tmp")
            .unwrap();
        set_mode(root.path(), 0o755);
        if is_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = root.path().join("data");
        run_pg(
            pg_command("pg_basebackup")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .arg("-D")
                .arg(&data)
                .args(["-R", "-X", "stream", "--no-sync"]),
            "pg_basebackup",
        );
        PgServer {
            _root: root,
            data,
            port,
            running: false,
        }
    }

    /// `pg_ctl promote`: a standby becomes a primary.
    pub fn promote(&self) {
        run_pg(
            pg_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "promote"]),
            "pg_ctl promote",
        );
    }

    /// Stop at once, as a crash or a failed node would (`-m immediate`).
    pub fn kill(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        self.running = false;
    }

    /// The cluster's data directory (its files belong to `postgres`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Write a file into the data directory, owned by `postgres`, mode 0600
    /// (what the server demands of a private key).
    pub fn write_private(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.data.join(name);
        std::fs::write(&path, content).unwrap();
        set_mode(&path, 0o600);
        if is_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        path
    }

    /// The superuser over the Unix socket (which `pg_hba.conf` may trust
    /// while TCP needs TLS).
    pub async fn superuser_socket(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                self.data.display(),
                self.port
            ),
            NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        client
    }

    pub async fn superuser(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            self.stop();
        }
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub const PASSWORD: &str = "hunter2-very-secret";

pub fn db_config(name: &str, port: u16) -> DatabaseConfig {
    DatabaseConfig {
        name: name.to_string(),
        host: Some("127.0.0.1".into()),
        port: Some(port),
        user: Some("postgres".into()),
        database: Some("postgres".into()),
        // Trust auth ignores it; it must never show up in errors or Debug.
        password: Some(PASSWORD.into()),
        max_rows: Some(200),
        ..Default::default()
    }
}

pub const FIXTURE: &str = r#"
CREATE SCHEMA shop;
CREATE DOMAIN public.vector AS real[];
CREATE TABLE shop.items (
    id serial PRIMARY KEY,
    name text NOT NULL,
    price numeric(10,2),
    note text,
    update_count int DEFAULT 0,
    created_at timestamptz DEFAULT '2024-01-01 00:00:00+00'
);
COMMENT ON TABLE shop.items IS 'Things we sell';
COMMENT ON COLUMN shop.items.price IS 'in euros';
CREATE INDEX items_name_idx ON shop.items (name);
CREATE TABLE shop.orders (
    id int PRIMARY KEY,
    item_id int NOT NULL REFERENCES shop.items (id),
    qty int CHECK (qty > 0)
);
CREATE TABLE shop.docs (id int PRIMARY KEY, body text, embedding vector);
CREATE SEQUENCE shop.counter;
SELECT nextval('shop.counter');
CREATE VIEW shop.cheap AS SELECT * FROM shop.items WHERE price < 10;
CREATE TABLE public.t (id int PRIMARY KEY, v text);
CREATE TABLE public.audit (msg text);
INSERT INTO shop.items (name, price, note, update_count) VALUES
    ('apple', 1.50, 'drop table', 3),
    ('pear', 2.25, NULL, 0),
    ('melon', 12.00, 'big; DELETE FROM t', 1);
INSERT INTO shop.orders VALUES (1, 1, 5), (2, 3, 1);
INSERT INTO shop.docs VALUES (1, 'hello', '{0.1,0.2}');
INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 250) g;
CREATE FUNCTION public.evil() RETURNS int LANGUAGE sql
    AS $$ INSERT INTO public.audit VALUES ('pwned') RETURNING 1 $$;
CREATE FUNCTION public.evil_rw() RETURNS int LANGUAGE plpgsql
    AS $$ BEGIN SET LOCAL transaction_read_only = off; INSERT INTO public.audit VALUES ('rw'); RETURN 1; END $$;
CREATE FUNCTION public.evil_seq() RETURNS bigint LANGUAGE sql
    AS $$ SELECT nextval('shop.counter') $$;
CREATE FUNCTION public.evil_lo() RETURNS oid LANGUAGE sql
    AS $$ SELECT lo_from_bytea(0, '\x00'::bytea) $$;
CREATE FUNCTION public.evil_lock() RETURNS void LANGUAGE sql
    AS $$ SELECT pg_advisory_lock(42) $$;
CREATE FUNCTION public.evil_xact_lock() RETURNS void LANGUAGE sql
    AS $$ SELECT pg_advisory_xact_lock(43) $$;
CREATE PROCEDURE public.proc() LANGUAGE sql AS $$ INSERT INTO public.audit VALUES ('proc') $$;
"#;

/// Everything a successful escape could change, as text (compared whole, so
/// a failure shows what changed).
pub async fn snapshot(c: &Client) -> String {
    let mut parts = Vec::new();
    let rels = c
        .query(
            "SELECT c.oid::regclass::text, c.relkind::text, c.relpersistence::text \
             FROM pg_class c WHERE c.oid >= 16384 ORDER BY c.oid",
            &[],
        )
        .await
        .unwrap();
    for r in &rels {
        let name: String = r.get(0);
        let kind: String = r.get(1);
        let persistence: String = r.get(2);
        parts.push(format!("rel {name} {kind}{persistence}"));
        if persistence == "t" {
            continue;
        }
        if kind == "r" {
            let row = c
                .query_one(
                    &format!(
                        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' \
                         ORDER BY x::text)), '') FROM {name} x"
                    ),
                    &[],
                )
                .await
                .unwrap();
            parts.push(format!("  data {}", row.get::<_, String>(0)));
        } else if kind == "S" {
            let row = c
                .query_one(
                    &format!("SELECT last_value::text || ',' || is_called::text FROM {name}"),
                    &[],
                )
                .await
                .unwrap();
            parts.push(format!("  seq {}", row.get::<_, String>(0)));
        }
    }
    for (label, sql) in [
        (
            "functions",
            "SELECT coalesce(string_agg(p.oid::regprocedure::text, ',' ORDER BY p.oid), '') \
             FROM pg_proc p WHERE p.oid >= 16384",
        ),
        (
            "roles",
            "SELECT string_agg(rolname || ':' || rolsuper || rolcanlogin, ',' ORDER BY rolname) \
             FROM pg_authid",
        ),
        (
            "role settings",
            "SELECT coalesce(string_agg(setdatabase || ':' || setrole || ':' || \
             array_to_string(setconfig, ';'), ','), '') FROM pg_db_role_setting",
        ),
        (
            "large objects",
            "SELECT count(*)::text FROM pg_largeobject_metadata",
        ),
        (
            "advisory locks",
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory'",
        ),
        (
            "prepared xacts",
            "SELECT count(*)::text FROM pg_prepared_xacts",
        ),
        (
            "open transactions of the tools",
            "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'pg-mcp-fleet' \
             AND state LIKE 'idle in transaction%'",
        ),
    ] {
        let row = c.query_one(sql, &[]).await.unwrap();
        parts.push(format!("{label} {}", row.get::<_, String>(0)));
    }
    parts.join("\n")
}

pub fn digest(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}
