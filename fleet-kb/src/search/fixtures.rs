//! Test KBs for the search tests (and [`crate::fts5`]'s): sample rows
//! written in our layout, pgEdge's, or with FTS5 only, and the checks every
//! layout must pass.

use std::path::Path;

use fleet_common::kb_file;
use fleet_common::kb_index;
use rusqlite::Connection;

use super::{Hit, Kb, Product, SearchQuery};

/// What a test KB carries besides pgEdge's tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Layout {
    /// FTS5 and the search index, as `kb build` writes.
    Ours,
    /// Neither.
    PgEdge,
    /// FTS5 only (a KB of the previous release).
    FtsOnly,
}

pub(crate) fn make_kb_with(path: &Path, layout: Layout, rows: &[[&str; 6]]) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(kb_file::CREATE_SCHEMA).unwrap();
    for [text, title, section, p, v, file] in rows {
        c.execute(
            "INSERT INTO chunks(text,title,section,project_name,project_version,file_path) VALUES (?1,?2,?3,?4,?5,?6)",
            [text, title, section, p, v, file],
        )
        .unwrap();
    }
    if layout != Layout::PgEdge {
        c.execute_batch(&kb_file::create_fts_sql("main", "chunks"))
            .unwrap();
        c.execute_batch("INSERT INTO chunks_fts(chunks_fts) VALUES('rebuild')")
            .unwrap();
    }
    if layout == Layout::Ours {
        let dir = path.parent().unwrap();
        kb_index::build_and_store(&c, dir, &kb_index::build::BuildOptions::deterministic())
            .unwrap();
    }
}

pub(crate) const ROWS: [[&str; 6]; 4] = [
    [
        "Routine vacuuming of tables reclaims storage",
        "Maintenance",
        "Vacuum",
        "postgres",
        "17",
        "doc.md",
    ],
    [
        "Indexes speed up lookups on large tables",
        "Indexes",
        "B-tree",
        "postgres",
        "16",
        "doc.md",
    ],
    [
        "The replication slot keeps WAL for a standby",
        "Replication",
        "Slots",
        "postgres",
        "17",
        "doc.md",
    ],
    [
        "Vacuum settings in the spock extension",
        "Spock",
        "Config",
        "spock",
        "5",
        "doc.md",
    ],
];

/// The four sample chunks with FTS5 (`with_fts`) or none of our additions.
pub(crate) fn make_kb(path: &Path, with_fts: bool) {
    let layout = if with_fts {
        Layout::FtsOnly
    } else {
        Layout::PgEdge
    };
    make_kb_with(path, layout, &ROWS);
}

pub(crate) fn row_titles(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.title.as_str()).collect()
}

pub(crate) fn q(text: &str) -> SearchQuery {
    SearchQuery {
        query: text.into(),
        ..Default::default()
    }
}

/// The searches every layout of the sample KB must answer the same.
pub(crate) fn check_search(kb: &Kb) {
    let hits = kb.search(&q("how to vacuum")).unwrap();
    assert_eq!(hits.len(), 2);
    assert!(
        hits.iter()
            .all(|h| h.text.to_lowercase().contains("vacuum"))
    );
    assert!(hits[0].score >= hits[1].score && hits[1].score > 0.0);
    let filtered = kb
        .search(&SearchQuery {
            project_names: vec!["spock".into()],
            ..q("vacuum")
        })
        .unwrap();
    assert_eq!(row_titles(&filtered), ["Spock"]);
    let by_version = kb
        .search(&SearchQuery {
            project_versions: vec!["16".into()],
            ..q("tables")
        })
        .unwrap();
    assert_eq!(row_titles(&by_version), ["Indexes"]);
    let none = kb
        .search(&SearchQuery {
            project_names: vec!["spock".into()],
            project_versions: vec!["17".into()],
            ..q("vacuum")
        })
        .unwrap();
    assert!(none.is_empty());
    let one = kb
        .search(&SearchQuery {
            top_n: Some(1),
            ..q("postgres vacuum standby indexes")
        })
        .unwrap();
    assert_eq!(one.len(), 1);
    let products = kb.products().unwrap();
    assert_eq!(products.len(), 3);
    assert_eq!(
        products[0],
        Product {
            project_name: "postgres".into(),
            project_version: "16".into(),
            chunks: 1
        }
    );
}
