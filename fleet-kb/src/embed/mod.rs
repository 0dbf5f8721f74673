//! Embeddings made in-process: the local static model
//! ([`StaticModel`], `static_model.rs`) and what text of a chunk is
//! embedded ([`chunk_text`]), the same at build time and in every test.
//! Provider embeddings (OpenAI, Voyage, Ollama, Gemini) are asked over HTTP
//! by the server (`mcp-server/src/embedding/`); their vectors come from
//! pgEdge's builder.

mod static_model;

pub use static_model::{MAX_EMBED_BYTES, StaticModel};

/// The text of a chunk that `kb build --embed-model` embeds: its title,
/// section heading and text, one per line. Headings carry much of what a
/// chunk is about, as the keyword ranking's title and section boosts do.
pub fn chunk_text(title: &str, section: &str, text: &str) -> String {
    format!("{title}\n{section}\n{text}")
}
