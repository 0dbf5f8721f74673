//! The pack inside `kb.db`: table `kb_search_index(part, data)`, the pack's
//! bytes in order, [`PART_BYTES`] per row (the last row shorter), and
//! `kb_meta.search_index_version`. Extra tables are invisible to pgEdge's
//! server, so the file stays one `kb.db` that both servers read.

use std::io::{Read, Write};
use std::path::Path;

use rusqlite::Connection;

use super::pack::{Checker, PackInfo};
use super::{FORMAT_VERSION, META_KEY, invalid};
use crate::{Error, Result};

/// The table holding the pack.
pub const TABLE: &str = "kb_search_index";

/// Bytes per row: big enough that a 1,000,000-chunk index is a few hundred
/// rows, small enough to stream.
pub const PART_BYTES: usize = 1 << 20;

/// Store the pack in the file `pack` (read from its start) in `conn`'s main
/// database, with the `kb_meta` record (the caller holds the transaction).
pub fn store(conn: &Connection, pack: &mut std::fs::File) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let name = Path::new("index pack");
    pack.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(name, e))?;
    conn.execute_batch(&format!(
        "CREATE TABLE {TABLE} (part INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    ))?;
    let mut insert = conn.prepare(&format!("INSERT INTO {TABLE} (part, data) VALUES (?1, ?2)"))?;
    let mut buf = vec![0u8; PART_BYTES];
    let mut part = 0i64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            let got = pack.read(&mut buf[n..]).map_err(|e| Error::io(name, e))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        if n == 0 {
            break;
        }
        insert.execute(rusqlite::params![part, &buf[..n]])?;
        part += 1;
    }
    conn.execute(
        "INSERT OR REPLACE INTO kb_meta (key, value) VALUES (?1, ?2)",
        rusqlite::params![META_KEY, FORMAT_VERSION.to_string()],
    )?;
    Ok(())
}

/// Stream the stored pack, in order, into `out`; returns its length.
pub fn copy_to(conn: &Connection, out: &mut dyn Write) -> Result<u64> {
    let mut stmt = conn.prepare(&format!("SELECT part, data FROM {TABLE} ORDER BY part"))?;
    let mut rows = stmt.query([])?;
    let mut expected = 0i64;
    let mut len = 0u64;
    while let Some(row) = rows.next()? {
        let part: i64 = row.get(0)?;
        if part != expected {
            return Err(invalid(format!("part {expected} is missing")));
        }
        let data = row
            .get_ref(1)?
            .as_blob()
            .map_err(|_| invalid(format!("part {part} is not a blob")))?;
        out.write_all(data)
            .map_err(|e| match e.downcast::<Error>() {
                Ok(err) => err,
                Err(e) => Error::io(Path::new("index pack"), e),
            })?;
        len += data.len() as u64;
        expected += 1;
    }
    Ok(len)
}

/// The first bytes of the stored pack (its header: magic, version, CRC,
/// length), to tell whether a pack file is a copy of it; `None` if there is
/// no stored pack.
pub fn header(conn: &Connection) -> Result<Option<Vec<u8>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT substr(data, 1, {}) FROM {TABLE} WHERE part = 0",
        super::pack::HEADER
    ))?;
    let mut rows = stmt.query([])?;
    Ok(match rows.next()? {
        Some(row) => row.get_ref(0)?.as_blob().ok().map(<[u8]>::to_vec),
        None => None,
    })
}

/// Check the stored pack without keeping it: length, CRC, table of contents.
pub fn check(conn: &Connection) -> Result<PackInfo> {
    let mut checker = Checker::new();
    copy_to(conn, &mut checker)?;
    checker.finish()
}
