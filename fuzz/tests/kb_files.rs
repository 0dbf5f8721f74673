//! Issue 29, finding 3: every reader of a `kb.db` from outside (the sync
//! tools' verification, the server's load) fuzzed with files whose tables
//! are something else ([`fleet_fuzz::kb_schema`]): views, endless ones too,
//! virtual tables, read-time generated columns, triggers, expression
//! indexes. A file in which an object a reader reads is not what it must
//! be is refused; every file is refused or loaded well within its deadline,
//! and the server's loader answers searches on what it loads.

use std::time::{Duration, Instant};

use fleet_common::deadline::Deadline;
use fleet_common::kind::{self, FileKind};
use fleet_fuzz::{budget, kb_schema, rng};
use rusqlite::Connection;

/// The rows every file starts from, in `real_chunks`.
const ROWS: &str = "CREATE TABLE real_chunks (id INTEGER PRIMARY KEY, text TEXT NOT NULL, title TEXT, \
    section TEXT, project_name TEXT NOT NULL, project_version TEXT NOT NULL, file_path TEXT); \
    INSERT INTO real_chunks VALUES \
      (1, 'vacuum reclaims storage', 'VACUUM', 'Notes', 'pg', '17', 'vacuum.md'), \
      (2, 'replication slots retain WAL', 'Replication', 'Slots', 'pg', '17', 'repl.md'), \
      (3, 'indexes speed up queries', 'Indexes', 'Intro', 'pg', '16', 'idx.md');";

#[test]
fn hostile_kb_shapes() {
    let mut rng = rng("hostile_kb_shapes");
    let dir = tempfile::tempdir().unwrap();
    let (mut tried, mut refused, mut loaded) = (0usize, 0usize, 0usize);
    let mut slowest = Duration::ZERO;
    // An eightieth of the budget: each input is a new SQLite file, checked,
    // and loaded with its search index when it verifies.
    for i in 0..(budget() / 80).max(1) {
        let schema = kb_schema(&mut rng);
        let path = dir.path().join(format!("kb-{i}.db"));
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("PRAGMA journal_mode = DELETE;").unwrap();
            c.execute_batch(ROWS).unwrap();
            c.execute_batch(&schema.sql)
                .unwrap_or_else(|e| panic!("{:?}: {e}", schema.what));
        }
        tried += 1;
        let deadline = Deadline::after(Duration::from_secs(10), "the fuzz deadline of");
        let t = Instant::now();
        let verdict = kind::verify(FileKind::Kb, &path, &deadline);
        let mut took = t.elapsed();
        match &verdict {
            Ok(_) => assert!(
                schema.well_shaped,
                "{:?} verified: {verdict:?}",
                schema.what
            ),
            Err(e) => {
                refused += 1;
                assert!(
                    !e.to_string().starts_with("gave up"),
                    "{:?}: the check ran to its deadline: {e}",
                    schema.what
                );
            }
        }
        if verdict.is_ok() {
            // What the server does with it: the same check, its search
            // index built from the chunks, a search.
            let opts = fleet_kb::search::OpenOptions {
                deadline: deadline.clone(),
                ..Default::default()
            };
            let t = Instant::now();
            if let Ok(kb) = fleet_kb::search::Kb::open_with(&path, &opts) {
                loaded += 1;
                let q = fleet_kb::search::SearchQuery {
                    query: "replication slots".into(),
                    ..Default::default()
                };
                kb.search(&q)
                    .unwrap_or_else(|e| panic!("{:?}: {e:#}", schema.what));
            }
            took += t.elapsed();
        }
        slowest = slowest.max(took);
        assert!(
            took < Duration::from_secs(5),
            "{:?} took {took:?}",
            schema.what
        );
        let _ = std::fs::remove_file(&path);
    }
    eprintln!(
        "fuzz kb.db shapes: {tried} files, {refused} refused, {loaded} loaded and searched, \
         slowest {slowest:?}"
    );
    assert!(refused > 0 && loaded > 0, "{tried} {refused} {loaded}");
}
