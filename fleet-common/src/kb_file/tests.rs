use super::*;

fn pgedge_kb(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(CREATE_SCHEMA).unwrap();
    c.execute_batch("DROP TABLE kb_meta; INSERT INTO chunks(text,title,section,project_name,project_version,file_path) VALUES ('hello world','T','S','pg','17','a.md');").unwrap();
}

#[test]
fn pgedge_schema_verifies_without_our_additions() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kb?#.db");
    pgedge_kb(&p);
    let info = verify(&p, &Deadline::none()).unwrap();
    assert_eq!(info.chunk_count, 1);
    assert!(!info.has_fts);
    assert_eq!(info.build_id, None);
}

#[test]
fn stored_vectors_are_verified_before_publishing() {
    use crate::kb_vectors::{self, ModelIdentity};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kb.db");
    pgedge_kb(&p);
    let c = Connection::open(&p).unwrap();
    c.execute_batch("CREATE TABLE kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
        .unwrap();
    c.execute_batch(kb_vectors::CREATE_TABLE).unwrap();
    let model = ModelIdentity {
        name: "m".into(),
        dimensions: 3,
        sha256: "ab".repeat(32),
    };
    kb_vectors::write_identity(&c, &model).unwrap();
    c.execute(
        "INSERT INTO kb_embeddings VALUES (1, ?1)",
        [kb_vectors::encode(&[0.6, 0.8, 0.0])],
    )
    .unwrap();
    assert_eq!(
        verify(&p, &Deadline::none()).unwrap().embedding,
        Some(model)
    );
    c.execute(
        "UPDATE kb_embeddings SET vector = ?1",
        [kb_vectors::encode(&[0.6, 0.8])],
    )
    .unwrap();
    let err = verify(&p, &Deadline::none()).unwrap_err().to_string();
    assert!(
        err.contains("kb_embeddings") && err.contains("chunk 1"),
        "{err}"
    );
    // Vouched (verified before it was published): the schema only.
    assert!(verify_vouched(&p, &Deadline::none()).is_ok());
    c.execute("DELETE FROM kb_meta WHERE key = 'embedding_sha256'", [])
        .unwrap();
    let err = verify_vouched(&p, &Deadline::none())
        .unwrap_err()
        .to_string();
    assert!(err.contains("only in part"), "{err}");
}

#[test]
fn garbage_and_wrong_schema_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"definitely not sqlite").unwrap();
    assert!(
        verify(&junk, &Deadline::none())
            .unwrap_err()
            .to_string()
            .contains("not an SQLite database")
    );
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE chunks(id INTEGER, text TEXT);")
        .unwrap();
    let err = verify(&other, &Deadline::none()).unwrap_err().to_string();
    assert!(err.contains("lacks column"), "{err}");
}

#[test]
fn truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kb.db");
    pgedge_kb(&p);
    let c = Connection::open(&p).unwrap();
    for i in 0..2000 {
        c.execute(
            "INSERT INTO chunks(text,project_name,project_version) VALUES (?1,'p','1')",
            [format!("chunk number {i} with some words")],
        )
        .unwrap();
    }
    drop(c);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(verify(&p, &Deadline::none()).is_err());
}

/// A pgEdge-shaped file whose `chunks` is `shape` instead of the table.
fn with_chunks_as(path: &Path, shape: &str) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(CREATE_SCHEMA).unwrap();
    c.execute_batch("DROP TABLE kb_meta; ALTER TABLE chunks RENAME TO real_chunks;")
        .unwrap();
    c.execute_batch(shape).unwrap();
}

/// Issue 29, finding 3: a `chunks` that is a view over an endless
/// recursive query hung every verifier for good. Every shape other than an
/// ordinary table is refused at once, by name, with the same check the
/// server's load and the sync tools run.
#[test]
fn chunks_that_are_not_a_table_are_refused_at_once() {
    const COLUMNS: &str = "id, text, title, section, project_name, project_version, file_path";
    let endless = String::from(
        "CREATE VIEW chunks AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
         SELECT n AS id, 'x' AS text, 't' AS title, 's' AS section, 'p' AS project_name, \
         '1' AS project_version, 'f' AS file_path FROM r;",
    );
    let cases = [
        (endless.clone(), "`chunks` is a view, not an ordinary table"),
        (
            endless.replace("VIEW chunks", "VIEW CHUNKS"),
            "`chunks` is a view, not an ordinary table",
        ),
        (
            format!("CREATE VIRTUAL TABLE chunks USING fts5({COLUMNS});"),
            "`chunks` is an FTS5 index, not an ordinary table",
        ),
        (
            "CREATE VIRTUAL TABLE chunks USING rtree(id, a, b);".to_string(),
            "`chunks` is a virtual table, not an ordinary table",
        ),
        (
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY, title TEXT, section TEXT, \
             project_name TEXT, project_version TEXT, file_path TEXT, \
             text TEXT GENERATED ALWAYS AS (printf('%.*c', 100000000, 'x')) VIRTUAL);"
                .to_string(),
            "`chunks` has a column computed when it is read",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (shape, why)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("kb{i}.db"));
        with_chunks_as(&p, shape);
        let t = std::time::Instant::now();
        let deadline = Deadline::after(std::time::Duration::from_secs(60), "test");
        for err in [
            verify(&p, &deadline).unwrap_err(),
            verify_vouched(&p, &deadline).unwrap_err(),
        ] {
            assert!(err.to_string().contains(why), "{shape}: {err}");
        }
        assert!(t.elapsed().as_secs() < 5, "{shape}: {:?}", t.elapsed());
    }
    // The other tables a reader reads, too; and chunks_fts must be FTS5.
    let p = dir.path().join("meta.db");
    pgedge_kb(&p);
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "CREATE VIEW kb_meta AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 \
             FROM r) SELECT 'k' AS key, n AS value FROM r;",
        )
        .unwrap();
    let err = verify(&p, &Deadline::none()).unwrap_err().to_string();
    assert!(err.contains("`kb_meta` is a view"), "{err}");
    let p = dir.path().join("sources.db");
    pgedge_kb(&p);
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "DROP TABLE source_files; CREATE VIRTUAL TABLE source_files USING fts5(file_path);",
        )
        .unwrap();
    let err = verify(&p, &Deadline::none()).unwrap_err().to_string();
    assert!(
        err.contains("`source_files` is an FTS5 index, not an ordinary table"),
        "{err}"
    );
    let p = dir.path().join("fts.db");
    pgedge_kb(&p);
    Connection::open(&p)
        .unwrap()
        .execute_batch("CREATE TABLE chunks_fts (x);")
        .unwrap();
    let err = verify(&p, &Deadline::none()).unwrap_err().to_string();
    assert!(
        err.contains("`chunks_fts` is an ordinary table, not an FTS5 index"),
        "{err}"
    );
}

/// A check that runs past its deadline stops with the reason, whatever
/// statement it is in.
#[test]
fn a_check_past_its_deadline_gives_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kb.db");
    pgedge_kb(&p);
    let gone = Deadline::after(std::time::Duration::ZERO, "--timeout");
    let err = verify(&p, &gone).unwrap_err();
    assert!(matches!(err, Error::Interrupted(_)), "{err:?}");
    assert_eq!(err.to_string(), "gave up: --timeout 0s passed");
}
