//! What a search asks and answers: [`SearchQuery`] in, [`Hit`]s out, and
//! the [`Product`] list; the bounds on results per search.

use serde::Serialize;

/// Results per search when the caller does not say.
pub const DEFAULT_TOP_N: usize = 5;
/// The most results one search returns.
pub const MAX_TOP_N: usize = 20;
/// The most of a chunk's text a hit carries, in bytes: a chunk far larger
/// than any a builder writes (a hostile or broken `kb.db` can hold one of
/// megabytes) is cut, and [`Hit::text_bytes`] says how long it was.
pub const MAX_HIT_TEXT_BYTES: usize = 8 * 1024;

/// A search request, as `search_knowledgebase` receives it.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub query: String,
    pub project_names: Vec<String>,
    pub project_versions: Vec<String>,
    pub top_n: Option<usize>,
    /// How to rank ([`Mode::Keyword`] unless asked).
    pub mode: Mode,
    /// The query's unit vector, from the model that made the KB's vectors:
    /// needed by [`Mode::Semantic`] and [`Mode::Hybrid`]; without it (or
    /// without vectors in the KB) a search ranks by keywords.
    pub vector: Option<Vec<f32>>,
}

/// How a search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Mode {
    /// BM25 over the search index ([`crate::rank`]).
    #[default]
    Keyword,
    /// Cosine similarity of the query's vector to the chunks'
    /// ([`crate::vectors`]).
    Semantic,
    /// Both, fused by reciprocal rank ([`crate::fuse`]).
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Keyword, Mode::Semantic, Mode::Hybrid];

    /// The name used in the tool's `mode` argument, results and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Keyword => "keyword",
            Mode::Semantic => "semantic",
            Mode::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode {s:?}: expected keyword, semantic or hybrid"))
    }
}

/// One ranked chunk.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub id: i64,
    pub title: String,
    pub section: String,
    pub project_name: String,
    pub project_version: String,
    pub file_path: String,
    /// The chunk's text, or its first [`MAX_HIT_TEXT_BYTES`] (cut at a
    /// character boundary by [`crate::query::head`]) when it is longer.
    pub text: String,
    /// The length of the chunk's whole text in bytes: more than
    /// `text.len()` when it was cut.
    pub text_bytes: u64,
    /// BM25 score, higher is better.
    pub score: f64,
}

/// A product and version present in the knowledge base.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Product {
    pub project_name: String,
    pub project_version: String,
    pub chunks: u64,
}

/// A hit's row: its chunk by id (`?1`), in the columns [`Hit::from_row`]
/// reads. Both engines ([`super::Kb::search`], [`crate::fts5`]) read hits
/// with it. The text is read only as far as a hit may carry it (`substr`
/// counts characters, each at least a byte), its whole length by
/// `octet_length`, which SQLite answers from the record header without
/// reading the value.
pub(crate) const HIT_ROW_SQL: &str = "SELECT coalesce(title,''), coalesce(section,''), project_name, project_version, \
     coalesce(file_path,''), substr(text, 1, 8193), octet_length(text) FROM main.chunks WHERE id = ?1";

impl Hit {
    /// The hit of chunk `id` scored `score`, from a row of [`HIT_ROW_SQL`].
    pub(crate) fn from_row(row: &rusqlite::Row<'_>, id: i64, score: f64) -> rusqlite::Result<Hit> {
        Ok(Hit {
            id,
            title: row.get(0)?,
            section: row.get(1)?,
            project_name: row.get(2)?,
            project_version: row.get(3)?,
            file_path: row.get(4)?,
            text: {
                let mut text: String = row.get(5)?;
                text.truncate(crate::query::head(&text, MAX_HIT_TEXT_BYTES).len());
                text
            },
            text_bytes: row.get::<_, Option<i64>>(6)?.unwrap_or(0).max(0) as u64,
            score,
        })
    }

    /// Whether [`Hit::text`] is only the start of the chunk's text.
    pub fn is_cut(&self) -> bool {
        self.text_bytes > self.text.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_query_reads_one_character_past_the_cap() {
        assert!(HIT_ROW_SQL.contains(&format!("substr(text, 1, {})", MAX_HIT_TEXT_BYTES + 1)));
    }
}
