//! The vectors a `kb.db` may carry for semantic search: where they are
//! stored, which model made them, and the check they must pass before a KB
//! is published or loaded.
//!
//! Two kinds of file carry vectors:
//! - ours, from `kb build --embed-model DIR`: one vector per chunk in
//!   [`TABLE`] (`chunk_id`, `vector`), and the model that made them in
//!   `kb_meta` ([`ModelIdentity`]: name, dimensions, sha256 of its weights);
//!   pgEdge's server ignores both;
//! - pgEdge's: one column per provider in `chunks` ([`Provider::column`]),
//!   filled by its builder with the provider's vectors; no model is recorded.
//!
//! Every vector is little-endian `f32`s, as pgEdge writes them.

use std::str::FromStr;

use rusqlite::Connection;

use crate::{Error, Result};

/// Our vectors: one row per chunk.
pub const TABLE: &str = "kb_embeddings";

/// DDL of [`TABLE`].
pub const CREATE_TABLE: &str =
    "CREATE TABLE kb_embeddings (chunk_id INTEGER PRIMARY KEY, vector BLOB NOT NULL)";

/// `kb_meta` keys naming the model of [`TABLE`]'s vectors.
pub const META_MODEL: &str = "embedding_model";
pub const META_DIMENSIONS: &str = "embedding_dimensions";
pub const META_SHA256: &str = "embedding_sha256";

/// The most dimensions a vector may have (Gemini's are 3,072).
pub const MAX_DIMENSIONS: usize = 8192;

/// The model that made a KB's vectors: what a server's model must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// A name for people (the model directory's name).
    pub name: String,
    pub dimensions: usize,
    /// sha256 of the model's weights file: what decides a match.
    pub sha256: String,
}

impl std::fmt::Display for ModelIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.sha256.get(..12).unwrap_or(&self.sha256);
        write!(
            f,
            "{} ({} dimensions, sha256 {short}…)",
            self.name, self.dimensions
        )
    }
}

/// An embedding provider whose vectors pgEdge's builder stores in `chunks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Voyage,
    Ollama,
    Gemini,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::Voyage,
        Provider::Ollama,
        Provider::Gemini,
    ];

    /// The name used in configuration, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Voyage => "voyage",
            Provider::Ollama => "ollama",
            Provider::Gemini => "gemini",
        }
    }

    /// The `chunks` column holding this provider's vectors.
    pub fn column(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai_embedding",
            Provider::Voyage => "voyage_embedding",
            Provider::Ollama => "ollama_embedding",
            Provider::Gemini => "gemini_embedding",
        }
    }
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Provider, String> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown embedding provider {s:?}"))
    }
}

/// A vector as stored: little-endian `f32`s.
pub fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector of `dims` dimensions into `out`, refused unless it has
/// exactly that many finite values and is not all zeros.
pub fn decode_into(
    blob: &[u8],
    dims: usize,
    out: &mut Vec<f32>,
) -> std::result::Result<(), String> {
    if blob.len() != dims * 4 {
        return Err(format!(
            "{} bytes, expected {} ({dims} dimensions of 4 bytes)",
            blob.len(),
            dims * 4
        ));
    }
    out.clear();
    out.extend(
        blob.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    if out.iter().any(|x| !x.is_finite()) {
        return Err("a value that is not a finite number".into());
    }
    if out.iter().all(|x| *x == 0.0) {
        return Err("all zeros".into());
    }
    Ok(())
}

/// The model recorded in `kb_meta`, if any; all three keys or none.
pub fn read_identity(meta: &[(String, String)]) -> Result<Option<ModelIdentity>> {
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    match (get(META_MODEL), get(META_DIMENSIONS), get(META_SHA256)) {
        (None, None, None) => Ok(None),
        (Some(name), Some(dims), Some(sha256)) => {
            let dimensions: usize = dims
                .parse()
                .ok()
                .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
                .ok_or_else(|| {
                    Error::invalid(
                        "kb.db",
                        format!("{META_DIMENSIONS} {dims:?} is not a dimension count (1 to {MAX_DIMENSIONS})"),
                    )
                })?;
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid(
                    "kb.db",
                    format!("{META_SHA256} is not a sha256"),
                ));
            }
            Ok(Some(ModelIdentity {
                name: name.clone(),
                dimensions,
                sha256: sha256.to_ascii_lowercase(),
            }))
        }
        _ => Err(Error::invalid(
            "kb.db",
            format!(
                "kb_meta names the embedding model only in part ({META_MODEL}, {META_DIMENSIONS}, {META_SHA256} go together)"
            ),
        )),
    }
}

/// Record `model` in `kb_meta`.
pub fn write_identity(conn: &Connection, model: &ModelIdentity) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("INSERT INTO kb_meta (key, value) VALUES (?1, ?2)")?;
    stmt.execute([META_MODEL, &model.name])?;
    stmt.execute([META_DIMENSIONS, &model.dimensions.to_string()])?;
    stmt.execute([META_SHA256, &model.sha256])?;
    Ok(())
}

/// Check our stored vectors against their recorded model: [`TABLE`]
/// exists, holds exactly one vector per chunk, each of `model.dimensions`
/// finite values, not all zero. Reads every vector.
pub fn check_stored(conn: &Connection, model: &ModelIdentity, chunk_count: u64) -> Result<()> {
    let bad = |m: String| Error::invalid("kb.db", format!("{TABLE}: {m}"));
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [TABLE],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Err(bad(format!(
            "kb_meta names an embedding model ({model}) but there is no {TABLE} table"
        )));
    }
    let orphans: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {TABLE} WHERE chunk_id NOT IN (SELECT id FROM chunks)"),
        [],
        |r| r.get(0),
    )?;
    if orphans > 0 {
        return Err(bad(format!("{orphans} vector(s) of no chunk")));
    }
    let mut stmt = conn.prepare(&format!("SELECT chunk_id, vector FROM {TABLE}"))?;
    let mut rows = stmt.query([])?;
    let mut n = 0u64;
    let mut v = Vec::with_capacity(model.dimensions);
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let blob = row
            .get_ref(1)?
            .as_blob()
            .map_err(|_| bad(format!("the vector of chunk {id} is not a BLOB")))?;
        decode_into(blob, model.dimensions, &mut v)
            .map_err(|e| bad(format!("the vector of chunk {id}: {e}")))?;
        n += 1;
    }
    if n != chunk_count {
        return Err(bad(format!(
            "{n} vector(s) for {chunk_count} chunk(s): every chunk needs one"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn identity_is_all_three_keys_or_none() {
        assert_eq!(read_identity(&meta(&[("x", "y")])).unwrap(), None);
        let sha = "ab".repeat(32);
        let id = read_identity(&meta(&[
            (META_MODEL, "m"),
            (META_DIMENSIONS, "256"),
            (META_SHA256, &sha),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(id.dimensions, 256);
        assert!(
            id.to_string()
                .starts_with("m (256 dimensions, sha256 abababababab")
        );
        for bad in [
            meta(&[(META_MODEL, "m")]),
            meta(&[
                (META_MODEL, "m"),
                (META_DIMENSIONS, "0"),
                (META_SHA256, &sha),
            ]),
            meta(&[
                (META_MODEL, "m"),
                (META_DIMENSIONS, "99999"),
                (META_SHA256, &sha),
            ]),
            meta(&[
                (META_MODEL, "m"),
                (META_DIMENSIONS, "8"),
                (META_SHA256, "zz"),
            ]),
        ] {
            assert!(read_identity(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vectors_decode_only_when_whole_and_finite() {
        let mut out = Vec::new();
        decode_into(&encode(&[1.0, -2.5]), 2, &mut out).unwrap();
        assert_eq!(out, [1.0, -2.5]);
        assert!(
            decode_into(&encode(&[1.0]), 2, &mut out)
                .unwrap_err()
                .contains("4 bytes, expected 8")
        );
        assert!(decode_into(&encode(&[1.0, f32::NAN]), 2, &mut out).is_err());
        assert!(decode_into(&encode(&[0.0, 0.0]), 2, &mut out).is_err());
    }

    #[test]
    fn providers_name_pgedge_columns() {
        assert_eq!(
            "openai".parse::<Provider>().unwrap().column(),
            "openai_embedding"
        );
        assert_eq!(
            "gemini".parse::<Provider>().unwrap().column(),
            "gemini_embedding"
        );
        assert!("local".parse::<Provider>().is_err());
    }

    #[test]
    fn stored_vectors_must_cover_every_chunk_at_the_recorded_dimension() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY); INSERT INTO chunks VALUES (1), (2); {CREATE_TABLE};"
        ))
        .unwrap();
        let model = ModelIdentity {
            name: "m".into(),
            dimensions: 2,
            sha256: "00".repeat(32),
        };
        let put = |id: i64, v: &[f32]| {
            c.execute(
                "INSERT OR REPLACE INTO kb_embeddings VALUES (?1, ?2)",
                rusqlite::params![id, encode(v)],
            )
            .unwrap();
        };
        put(1, &[1.0, 0.0]);
        let err = check_stored(&c, &model, 2).unwrap_err().to_string();
        assert!(err.contains("1 vector(s) for 2 chunk(s)"), "{err}");
        put(2, &[1.0, 0.0, 0.0]);
        let err = check_stored(&c, &model, 2).unwrap_err().to_string();
        assert!(err.contains("chunk 2") && err.contains("12 bytes"), "{err}");
        put(2, &[0.5, 0.5]);
        check_stored(&c, &model, 2).unwrap();
        put(3, &[0.5, 0.5]);
        assert!(
            check_stored(&c, &model, 2)
                .unwrap_err()
                .to_string()
                .contains("of no chunk")
        );
    }
}
