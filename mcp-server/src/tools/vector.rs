//! The pgvector tools' handlers: `generate_embedding` (a text's vector
//! from the configured embedding model; no database) and
//! `similarity_search` (a table's rows nearest to a text, on a database:
//! [`crate::pg::vector`]). Their router is merged into the main one
//! ([`McpHandler::router`]), which keeps them only when an embedding model
//! is configured ([`EMBEDDING_TOOLS`]), and `similarity_search` only when
//! a database is too (it is one of
//! [`crate::catalog::gate::POSTGRES_TOOLS`]).

use http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{McpHandler, text_result, tool_error};
use crate::pg::ToolError;
use crate::pg::tools as pgt;
use crate::pg::vector::{self, Embedding, Search};

pub const GENERATE_EMBEDDING: &str = "generate_embedding";
const GENERATE_EMBEDDING_DESCRIPTION: &str = "Turn a text into a vector with the server's \
    embedding model (the one similarity_search uses): returns the model's name, its number of \
    dimensions and the unit-length vector as a JSON array, e.g. to store in a pgvector column.";

/// The tools that need an embedding model.
pub const EMBEDDING_TOOLS: [&str; 2] = [GENERATE_EMBEDDING, pgt::SIMILARITY_SEARCH];

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GenerateEmbeddingArgs {
    /// The text to embed (at most 8 KiB).
    pub text: String,
}

/// What `generate_embedding` answers, as JSON.
#[derive(Serialize)]
struct Generated<'a> {
    model: &'a str,
    provider: &'a str,
    dimensions: usize,
    embedding: &'a [f32],
}

/// Leave out of `router` the tools this process cannot serve: the
/// pgvector tools without an embedding model.
pub(super) fn keep_available(router: &mut ToolRouter<McpHandler>, has_embedder: bool) {
    if !has_embedder {
        for name in EMBEDDING_TOOLS {
            router.remove_route(name);
        }
    }
}

#[tool_router(router = vector_router, vis = "pub(super)")]
impl McpHandler {
    #[tool(name = "generate_embedding", description = GENERATE_EMBEDDING_DESCRIPTION)]
    async fn generate_embedding(
        &self,
        Parameters(args): Parameters<GenerateEmbeddingArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(embedder) = self.state.embedder.as_ref() else {
            return Ok(tool_error(
                "no embedding model is configured on this server",
            ));
        };
        let text = match vector::check_text(&args.text) {
            Ok(t) => t,
            Err(e) => return Ok(tool_error(e.to_string())),
        };
        match embedder.embed_text(text, &self.state.metrics).await {
            // Each value in its shortest f32 form (serialised as f32,
            // not widened to f64 first).
            Ok(v) => Ok(text_result(
                serde_json::to_string(&Generated {
                    model: embedder.model_name(),
                    provider: embedder.provider(),
                    dimensions: v.len(),
                    embedding: &v,
                })
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?,
            )),
            Err(f) => Ok(tool_error(f.describe())),
        }
    }

    #[tool(name = "similarity_search", description = pgt::SIMILARITY_SEARCH_DESCRIPTION)]
    async fn similarity_search(
        &self,
        Parameters(args): Parameters<pgt::SimilaritySearchArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(embedder) = self.state.embedder.as_ref() else {
            return Ok(tool_error(
                "no embedding model is configured on this server",
            ));
        };
        let metrics = &self.state.metrics;
        let args = &args;
        self.with_database(
            pgt::SIMILARITY_SEARCH,
            args.database.as_deref(),
            &parts,
            |db| async move {
                // Everything is checked before the text goes to the model.
                let search = Search::new(args, db.limits().max_rows)?;
                let text = vector::check_text(&args.text)?;
                let v = embedder
                    .embed_text(text, metrics)
                    .await
                    .map_err(|f| ToolError::Embedding(f.describe()))?;
                let embedding = Embedding {
                    vector: &v,
                    model: embedder.model_name(),
                    provider: embedder.provider(),
                };
                db.similarity_search(&search, &embedding).await
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::gate;

    #[test]
    fn the_embedding_tools_are_the_vector_routers() {
        let mut names: Vec<String> = McpHandler::vector_router()
            .list_all()
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        names.sort();
        let mut want = EMBEDDING_TOOLS.map(str::to_string).to_vec();
        want.sort();
        assert_eq!(names, want);
        assert!(gate::POSTGRES_TOOLS.contains(&pgt::SIMILARITY_SEARCH));
        assert!(!gate::POSTGRES_TOOLS.contains(&GENERATE_EMBEDDING));
    }
}
