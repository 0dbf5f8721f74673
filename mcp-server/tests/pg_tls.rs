//! TLS to a real PostgreSQL 15 (`ssl=on`, certificates made here with the
//! `openssl` command, `pg_hba.conf` accepting only `hostssl`): every
//! `sslmode` as libpq means it, `verify-full` refusing a certificate for
//! another name, `require` refusing a server without TLS, and a client
//! certificate (`cert` authentication) rotated on disk: the next
//! connection uses the new one, a broken new file is refused while the last
//! good one keeps serving.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{PgServer, free_port, require_postgres};
use mcp_server::pg::{DatabaseConfig, Databases};
use serde_json::Value;

const PW: &str = "tls-test-password-9";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.crt`, `NAME.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A certificate `NAME.crt` for `cn` (with `san` when given) signed by
/// `ca`, its key `NAME.key` made with `keygen` (openssl arguments). Returns
/// its serial number (decimal, as `pg_stat_ssl.client_serial` shows it).
fn issue(dir: &Path, ca: &str, name: &str, cn: &str, san: Option<&str>, rsa: bool) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);
    let serial = NEXT
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string();
    let key = format!("{name}.key");
    if rsa {
        // PKCS#1 ("BEGIN RSA PRIVATE KEY").
        openssl(dir, &["genrsa", "-traditional", "-out", &key, "2048"]);
    } else {
        // PKCS#8 ("BEGIN PRIVATE KEY").
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &key,
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        match san {
            Some(san) => format!("subjectAltName={san}\n"),
            None => "basicConstraints=CA:FALSE\n".to_string(),
        },
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial,
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    serial
}

struct Fixture {
    pg: PgServer,
    plain: PgServer,
    dir: tempfile::TempDir,
    port: u16,
    plain_port: u16,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

async fn fixture() -> Fixture {
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca(d, "ca");
    ca(d, "other-ca");
    issue(d, "ca", "server", "localhost", Some("DNS:localhost"), false);
    let port = free_port();
    let mut pg = PgServer::init(port);
    let read = |n: &str| std::fs::read(d.join(n)).unwrap();
    pg.write_private("server.crt", &read("server.crt"));
    pg.write_private("server.key", &read("server.key"));
    pg.write_private("root.crt", &read("ca.crt"));
    pg.write_private(
        "pg_hba.conf",
        b"local all all trust\n\
          hostssl all pwuser 127.0.0.1/32 scram-sha-256\n\
          hostssl all certuser 127.0.0.1/32 cert\n",
    );
    let mut conf = std::fs::read_to_string(pg.data_dir().join("postgresql.conf")).unwrap();
    conf.push_str(
        "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
         ssl_ca_file = 'root.crt'\npassword_encryption = 'scram-sha-256'\n",
    );
    pg.write_private("postgresql.conf", conf.as_bytes());
    pg.start();
    let su = pg.superuser_socket().await;
    su.batch_execute(&format!(
        "CREATE ROLE pwuser LOGIN PASSWORD '{PW}'; CREATE ROLE certuser LOGIN;"
    ))
    .await
    .unwrap();
    let plain_port = free_port();
    let mut plain = PgServer::init(plain_port);
    plain.start();
    Fixture {
        pg,
        plain,
        dir,
        port,
        plain_port,
    }
}

fn entry(name: &str, host: &str, port: u16, user: &str) -> DatabaseConfig {
    DatabaseConfig {
        name: name.into(),
        host: Some(host.into()),
        port: Some(port),
        user: Some(user.into()),
        database: Some("postgres".into()),
        password: (user == "pwuser").then(|| PW.to_string()),
        connect_timeout: Some(Duration::from_secs(3)),
        pool_size: Some(1),
        ..Default::default()
    }
}

const WHO: &str = "SELECT current_user::text AS who, s.ssl, s.client_serial::text AS serial \
                   FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()";

/// Run WHO on a database made of `cfg`: the first row, or the error text.
async fn who(cfg: DatabaseConfig) -> Result<Value, String> {
    let dbs = Databases::new(vec![cfg]).map_err(|e| format!("{e:#}"))?;
    who_on(&dbs).await
}

async fn who_on(dbs: &Databases) -> Result<Value, String> {
    common::first_row(dbs, WHO).await
}

fn with_tls(mut c: DatabaseConfig, mode: &str, root: Option<&Path>) -> DatabaseConfig {
    c.sslmode = Some(mode.into());
    c.sslrootcert = root.map(|p| p.display().to_string());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_means_what_libpq_means() {
    let f = fixture().await;
    let ca = f.path("ca.crt");
    let other = f.path("other-ca.crt");
    let ip = entry("tls", "127.0.0.1", f.port, "pwuser");
    let name = entry("tls", "localhost", f.port, "pwuser");

    // The server takes TLS only: disable is refused by pg_hba.conf ...
    let e = who(with_tls(ip.clone(), "disable", None))
        .await
        .unwrap_err();
    assert!(e.contains("no encryption") || e.contains("pg_hba"), "{e}");
    assert!(!e.contains(PW), "{e}");
    // ... allow tries plain text, is refused, and then encrypts.
    for mode in ["allow", "prefer", "require"] {
        let row = who(with_tls(ip.clone(), mode, None)).await.unwrap();
        assert_eq!(row["ssl"], true, "{mode}: {row}");
        assert_eq!(row["who"], "pwuser");
    }
    // prefer with a root the server's certificate does not chain to: the
    // handshake fails, plain text is tried (as libpq does), and pg_hba.conf
    // refuses it.
    let e = who(with_tls(ip.clone(), "prefer", Some(&other)))
        .await
        .unwrap_err();
    assert!(e.contains("no encryption"), "{e}");
    // With a root certificate, require checks the chain (as libpq does).
    let e = who(with_tls(ip.clone(), "require", Some(&other)))
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(
        who(with_tls(ip.clone(), "require", Some(&ca)))
            .await
            .unwrap()["ssl"],
        true
    );
    // verify-ca: the chain, not the name (the certificate is for localhost).
    assert_eq!(
        who(with_tls(ip.clone(), "verify-ca", Some(&ca)))
            .await
            .unwrap()["ssl"],
        true
    );
    let e = who(with_tls(ip.clone(), "verify-ca", Some(&other)))
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // verify-full: the name too.
    let e = who(with_tls(ip.clone(), "verify-full", Some(&ca)))
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(
        who(with_tls(name.clone(), "verify-full", Some(&ca)))
            .await
            .unwrap()["ssl"],
        true
    );
    // The same through a libpq URL, as users paste them.
    let url = DatabaseConfig {
        name: "url".into(),
        url: Some(format!(
            "postgresql://pwuser:{PW}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
            f.port,
            ca.display()
        )),
        ..Default::default()
    };
    assert_eq!(who(url).await.unwrap()["ssl"], true);

    // A server that does not speak TLS: require refuses it, prefer and
    // allow use plain text.
    let plain = entry("plain", "127.0.0.1", f.plain_port, "postgres");
    let e = who(with_tls(plain.clone(), "require", None))
        .await
        .unwrap_err();
    assert!(e.contains("does not support TLS"), "{e}");
    for mode in ["prefer", "allow", "disable"] {
        let row = who(with_tls(plain.clone(), mode, None)).await.unwrap();
        assert_eq!(row["ssl"], false, "{mode}: {row}");
    }
    drop(f.plain);
    drop(f.pg);
}

/// Replace `dst` with `src` the way a Secret update does: a new file renamed
/// into place.
fn rotate(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("new");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_rotated_on_disk_is_used_by_the_next_connection() {
    let f = fixture().await;
    let d = f.dir.path();
    let a = issue(d, "ca", "client-a", "certuser", None, true);
    let b = issue(d, "ca", "client-b", "certuser", None, false);
    let live_cert = f.path("tls.crt");
    let live_key = f.path("tls.key");
    rotate(&f.path("client-a.crt"), &live_cert);
    rotate(&f.path("client-a.key"), &live_key);
    let mut cfg = with_tls(
        entry("cert", "localhost", f.port, "certuser"),
        "verify-full",
        Some(&f.path("ca.crt")),
    );
    cfg.sslcert = Some(live_cert.clone());
    cfg.sslkey = Some(live_key.clone());
    let dbs = Databases::new(vec![cfg]).unwrap();
    let row = who_on(&dbs).await.unwrap();
    assert_eq!(row["who"], "certuser");
    assert_eq!(row["serial"], a, "{row}");

    // The next connection: end the pooled one from the server side.
    let su = f.pg.superuser_socket().await;
    let reconnect = || async {
        su.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'certuser'",
        )
        .await
        .unwrap();
    };
    rotate(&f.path("client-b.crt"), &live_cert);
    rotate(&f.path("client-b.key"), &live_key);
    reconnect().await;
    let row = who_on(&dbs).await.unwrap();
    assert_eq!(row["serial"], b, "rotated certificate used: {row}");

    // A broken new file is refused; the last good one keeps serving.
    std::fs::write(
        f.path("broken.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    rotate(&f.path("broken.crt"), &live_cert);
    reconnect().await;
    let row = who_on(&dbs).await.unwrap();
    assert_eq!(row["serial"], b, "last good kept: {row}");
    let health = dbs.health().await;
    let tls = &health[0]["tls"];
    assert!(
        tls["error"].as_str().unwrap_or("").contains("sslcert"),
        "{health}"
    );
    assert!(!health.to_string().contains("not base64"));

    // A good file again: loaded, and the error clears.
    let c = issue(d, "ca", "client-c", "certuser", None, true);
    rotate(&f.path("client-c.key"), &live_key);
    rotate(&f.path("client-c.crt"), &live_cert);
    reconnect().await;
    let row = who_on(&dbs).await.unwrap();
    assert_eq!(row["serial"], c, "{row}");
    // /health answers from a cache for half a second: wait for a fresh one.
    let mut health = dbs.health().await;
    for _ in 0..40 {
        if health[0]["tls"]["error"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = dbs.health().await;
    }
    assert_eq!(health[0]["tls"]["error"], Value::Null, "{health}");
    assert_eq!(health[0]["tls"]["reloads"], 2, "{health}");
    assert_eq!(health[0]["tls"]["client_cert"], true);
    // A certificate from a CA the server does not trust is refused by the
    // server: the new file really is what the connection presents.
    issue(d, "other-ca", "client-x", "certuser", None, false);
    rotate(&f.path("client-x.key"), &live_key);
    rotate(&f.path("client-x.crt"), &live_cert);
    reconnect().await;
    let e = who_on(&dbs).await.unwrap_err();
    assert!(
        e.contains("unavailable") || e.contains("certificate"),
        "{e}"
    );
    drop(f.plain);
}
