use super::*;

#[test]
fn yaml_with_aliases_and_durations() {
    let c: Vec<DatabaseConfig> = serde_norway::from_str(
        "- name: prod\n  host: db\n  dbname: app\n  username: r\n  password: s3cret\n  \
         statement_timeout: 5s\n  pool_max_conns: 2\n  unknown_pgedge_field: 1\n\
         - name: b\n  url: postgres://u:pw@h:6000/x\n  statement_timeout: 7\n",
    )
    .unwrap();
    assert_eq!(c[0].database.as_deref(), Some("app"));
    assert_eq!(c[0].pool_size, Some(2));
    assert_eq!(c[0].statement_timeout, Some(Duration::from_secs(5)));
    assert_eq!(c[1].statement_timeout, Some(Duration::from_secs(7)));
    let dbg = format!("{:?}", c);
    assert!(!dbg.contains("s3cret") && !dbg.contains("pw@"), "{dbg}");
    let r = c[1].resolve().unwrap();
    assert_eq!(r.target, "h:6000/x");
    assert!(!format!("{:?}", r.pg).contains("pw"));
}

#[test]
fn env_vars() {
    let vars = |k: &str| match k {
        "PGHOST" => Some("10.0.0.1".to_string()),
        "PGPORT" => Some("6543".to_string()),
        "PGUSER" => Some("u".to_string()),
        "PGPASSWORD" => Some("pw".to_string()),
        "PGSSLMODE" => Some("verify-full".to_string()),
        "PGSSLROOTCERT" => Some("/etc/ca.pem".to_string()),
        "PGSSLCERT" => Some("/etc/c.pem".to_string()),
        "PGSSLKEY" => Some("/etc/k.pem".to_string()),
        "PGTARGETSESSIONATTRS" => Some("read-write".to_string()),
        _ => None,
    };
    let c = config_from_vars(vars).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.port, Some(6543));
    let r = c.resolve().unwrap();
    assert_eq!(r.tls.mode, SslMode::VerifyFull);
    assert_eq!(r.tls.root, Some(RootCert::File("/etc/ca.pem".into())));
    assert_eq!(r.tls.key, Some(PathBuf::from("/etc/k.pem")));
    assert_eq!(r.attrs, SessionAttrs::Primary);
    assert!(config_from_vars(|_| None).is_none());
}

#[test]
fn bad_configs_are_refused_without_secrets() {
    let refused = |c: &DatabaseConfig| format!("{:#}", c.resolve().err().expect("refused"));
    let mut c = DatabaseConfig {
        name: "x".into(),
        url: Some("postgres://u:topsecret@h/db?sslmode=verify-full".into()),
        ..Default::default()
    };
    let e = refused(&c);
    assert!(e.contains("sslrootcert") && !e.contains("topsecret"), "{e}");
    c.url = Some("postgres://u:topsecret@h/db?bogus=1".into());
    assert!(!refused(&c).contains("topsecret"));
    c.url = Some("postgres://u:topsecret@h/db?sslmode=sometimes".into());
    let e = refused(&c);
    assert!(e.contains("sometimes") && !e.contains("topsecret"), "{e}");
    c.url = Some("postgres://u:topsecret@h/db?sslmode=require".into());
    c.auth = Some("gcp-iam".into());
    let e = refused(&c);
    assert!(
        e.contains("remove it from the url") && !e.contains("topsecret"),
        "{e}"
    );
    c.url = None;
    c.name = "bad name".into();
    assert!(c.resolve().is_err());
}

#[test]
fn tls_settings_come_from_the_entry_then_the_url() {
    let c = DatabaseConfig {
        name: "x".into(),
        user: Some("u".into()),
        url: Some(
            "host=db sslmode=verify-ca sslrootcert=/url/ca.pem sslcert=/url/c.pem \
             sslkey=/url/k.pem target_session_attrs=prefer-standby"
                .into(),
        ),
        sslrootcert: Some("/entry/ca.pem".into()),
        ..Default::default()
    };
    let r = c.resolve().unwrap();
    assert_eq!(r.tls.mode, SslMode::VerifyCa);
    assert_eq!(r.tls.root, Some(RootCert::File("/entry/ca.pem".into())));
    assert_eq!(r.tls.cert, Some(PathBuf::from("/url/c.pem")));
    assert_eq!(r.attrs, SessionAttrs::PreferStandby);
    assert_eq!(
        r.pg.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    );
    // The default is libpq's: prefer.
    let plain = DatabaseConfig {
        name: "p".into(),
        user: Some("u".into()),
        ..Default::default()
    };
    let r = plain.resolve().unwrap();
    assert_eq!(r.tls.mode, SslMode::Prefer);
    assert_eq!(r.pg.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
    // `system` makes verify-full the default.
    let sys = DatabaseConfig {
        sslrootcert: Some("system".into()),
        ..plain.clone()
    };
    assert_eq!(sys.resolve().unwrap().tls.mode, SslMode::VerifyFull);
    // A token as the password travels only over TLS.
    let cloud = DatabaseConfig {
        auth: Some("azure-entra".into()),
        sslmode: Some("prefer".into()),
        ..plain
    };
    assert!(format!("{:#}", cloud.resolve().err().unwrap()).contains("sslmode=require"));
}

#[test]
fn hosts_with_ports_in_order() {
    let c = DatabaseConfig {
        name: "x".into(),
        user: Some("u".into()),
        hosts: Some(vec!["pg-0:6432".into(), "[::1]:6433".into(), "pg-2".into()]),
        ..Default::default()
    };
    let r = c.resolve().unwrap();
    assert_eq!(r.pg.get_hosts().len(), 3);
    assert_eq!(r.pg.get_ports(), &[6432, 6433, 5432]);
    // pgEdge writes them as mappings.
    let pgedge: DatabaseConfig = serde_norway::from_str(
        "name: p\nuser: u\nhosts:\n  - host: pg-0\n    port: 6432\n  - pg-1:6433\n  - host: pg-2\n",
    )
    .unwrap();
    let r = pgedge.resolve().unwrap();
    assert_eq!(r.pg.get_ports(), &[6432, 6433, 5432]);
    let both = DatabaseConfig {
        host: Some("a".into()),
        ..c.clone()
    };
    assert!(both.resolve().is_err());
    let bad = DatabaseConfig {
        hosts: Some(vec!["pg-0:http".into()]),
        ..c
    };
    assert!(format!("{:#}", bad.resolve().err().unwrap()).contains("pg-0:http"));
    let mismatch = DatabaseConfig {
        name: "m".into(),
        user: Some("u".into()),
        url: Some("host=a,b,c port=1,2".into()),
        ..Default::default()
    };
    assert!(mismatch.resolve().is_err());
}
