//! Publishing a KB with its search index: the pack is made beside the KB
//! before the KB is renamed into place, a KB whose stored index is corrupt
//! is never published (the last good one stays), and packs of KBs no longer
//! published are removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_common::kb_file;
use fleet_common::kb_index::{self, Pack, build::BuildOptions, cache, stored};
use fleet_sync::manifest::Manifest;
use fleet_sync::progress::Quiet;
use fleet_sync::source::SourceOptions;
use fleet_sync::sync::{Outcome, SyncError, Syncer};
use rusqlite::Connection;

/// A KB of `n` chunks mentioning `word`, with a stored index unless
/// `pgedge` (then only pgEdge's tables).
fn make_kb(path: &Path, word: &str, n: usize, pgedge: bool) {
    let _ = std::fs::remove_file(path);
    let c = Connection::open(path).unwrap();
    c.execute_batch(kb_file::CREATE_SCHEMA).unwrap();
    for i in 0..n {
        c.execute(
            "INSERT INTO chunks(text,title,section,project_name,project_version,file_path) \
             VALUES (?1,'Title','Section','p','1',?2)",
            [
                format!("chunk {i} about {word} and vacuum"),
                format!("f{}.md", i / 3),
            ],
        )
        .unwrap();
    }
    if pgedge {
        c.execute_batch("DROP TABLE kb_meta").unwrap();
    } else {
        let dir = path.parent().unwrap();
        kb_index::build_and_store(&c, dir, &BuildOptions::deterministic()).unwrap();
    }
}

async fn syncer(dest: &Path, source: &Path) -> Syncer {
    let manifest = Manifest::from_flags(
        dest.to_path_buf(),
        &[format!("kb.db=file://{}", source.display())],
    )
    .unwrap();
    let opts = SourceOptions {
        timeout: Duration::from_secs(5),
        s3_path_style: false,
    };
    Syncer::new(&manifest, &opts).await.unwrap()
}

fn packs(dest: &Path) -> Vec<PathBuf> {
    let dir = dest.join(cache::PUBLISHED_DIR);
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn docs_in_pack(path: &Path) -> u64 {
    kb_index::open(Pack::open_file(path).unwrap()).unwrap().docs
}

#[tokio::test]
async fn a_kb_is_published_with_its_index_and_old_packs_go() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
    std::fs::create_dir_all(&src).unwrap();
    let source = src.join("kb.db");
    make_kb(&source, "aardvark", 7, false);
    let mut s = syncer(&dest, &source).await;
    let first = s.sync_file(0, &Quiet).await.result.unwrap();
    let Outcome::Published { sha256, .. } = first else {
        panic!("not published: {first:?}");
    };
    let pack = dest
        .join(cache::PUBLISHED_DIR)
        .join(cache::file_name(&sha256));
    assert_eq!(packs(&dest), std::slice::from_ref(&pack));
    assert_eq!(docs_in_pack(&pack), 7);

    // A pgEdge KB (no stored index) gets one built; the old pack goes.
    make_kb(&source, "bumblebee", 5, true);
    let second = s.sync_file(0, &Quiet).await.result.unwrap();
    let Outcome::Published { sha256: sha2, .. } = second else {
        panic!("not published: {second:?}");
    };
    let pack2 = dest
        .join(cache::PUBLISHED_DIR)
        .join(cache::file_name(&sha2));
    assert_eq!(packs(&dest), std::slice::from_ref(&pack2));
    assert_eq!(docs_in_pack(&pack2), 5);

    // Unchanged source, pack lost: the next cycle makes it again.
    std::fs::remove_file(&pack2).unwrap();
    let third = s.sync_file(0, &Quiet).await.result.unwrap();
    assert_eq!(third, Outcome::Unchanged);
    assert_eq!(packs(&dest), [pack2]);
}

#[tokio::test]
async fn a_corrupt_index_in_a_valid_sqlite_file_is_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
    std::fs::create_dir_all(&src).unwrap();
    let source = src.join("kb.db");
    make_kb(&source, "aardvark", 7, false);
    let mut s = syncer(&dest, &source).await;
    s.sync_file(0, &Quiet).await.result.unwrap();
    let good = std::fs::read(dest.join("kb.db")).unwrap();
    let good_packs = packs(&dest);

    // Flip one byte inside the stored index, through SQLite: the file stays
    // a valid database (quick_check passes), its index does not.
    make_kb(&source, "bumblebee", 9, false);
    let c = Connection::open(&source).unwrap();
    let table = stored::TABLE;
    let mut part: Vec<u8> = c
        .query_row(
            &format!("SELECT data FROM {table} WHERE part = 0"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let at = part.len() / 2;
    part[at] ^= 0x40;
    c.execute(
        &format!("UPDATE {table} SET data = ?1 WHERE part = 0"),
        [part],
    )
    .unwrap();
    drop(c);
    assert!(kb_file::verify_vouched(&source, &fleet_common::deadline::Deadline::none()).is_ok());
    let err = kb_file::verify(&source, &fleet_common::deadline::Deadline::none())
        .unwrap_err()
        .to_string();
    assert!(err.contains("search index"), "{err}");

    let attempt = s.sync_file(0, &Quiet).await;
    assert!(
        matches!(attempt.result, Err(SyncError::Verify(ref e)) if e.contains("search index")),
        "{:?}",
        attempt.result
    );
    assert_eq!(std::fs::read(dest.join("kb.db")).unwrap(), good);
    assert_eq!(packs(&dest), good_packs);
}
