//! The MCP tools, served through rmcp's tool router, and the prompts and
//! resources beside them.
//!
//! Names and arguments follow pgEdge Postgres MCP Server, so existing prompts
//! and clients keep working. The router is built once per process and shared
//! by every request's handler. The live `tools.yaml` ([`crate::catalog`])
//! adds curated tools and prompts and switches built-ins off: every tool,
//! prompt and resource listed, called or read passes
//! [`crate::catalog::gate`]. A search's answer is written by [`answer`].
//!
//! Lists and reads say who may cache them (`cacheScope`, protocol
//! 2026-07-28): `private` wherever answers can differ between callers (a
//! credential with permissions or a database binding is loaded, or OAuth
//! grants are configured: [`AppState::answers_vary_by_caller`]), so that a
//! gateway's shared cache never serves one caller's list to another;
//! `public` otherwise. `ttlMs` is 0 (not to be reused): `tools.yaml` and the
//! credentials may change at any reload.

pub mod answer;
mod vector;

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResultType, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use fleet_kb::search::{Kb, MAX_TOP_N, Mode, SearchQuery};

use crate::auth::Principal;
use crate::auth::client_ip::ClientIp;
use crate::catalog::gate::{self, Target};
use crate::pg::tools as pgt;
use crate::state::AppState;

/// One request's view of the server: cheap to create, shares everything.
#[derive(Clone)]
pub struct McpHandler {
    state: Arc<AppState>,
    router: Arc<ToolRouter<McpHandler>>,
}

impl McpHandler {
    /// The tool router every handler shares; build it once. The Postgres
    /// tools are offered only when a database is configured, the pgvector
    /// ones only when an embedding model is.
    pub fn router(state: &AppState) -> Arc<ToolRouter<McpHandler>> {
        let mut router = Self::tool_router() + Self::vector_router();
        vector::keep_available(&mut router, state.embedder.is_some());
        if state.databases.is_empty() {
            for name in gate::POSTGRES_TOOLS {
                router.remove_route(name);
            }
        }
        Arc::new(router)
    }

    /// Pick the database for a call of `tool` (the gate decides, from the
    /// credential's binding and permissions), run `run` there as the
    /// credential's role for that call ([`Principal::role_for`]) and turn
    /// its outcome into a tool result.
    async fn with_database<'a, F, Fut>(
        &'a self,
        tool: &'static str,
        requested: Option<&str>,
        parts: &http::request::Parts,
        run: F,
    ) -> Result<CallToolResult, ErrorData>
    where
        F: FnOnce(&'a crate::pg::Database) -> Fut,
        Fut: std::future::Future<Output = Result<String, crate::pg::ToolError>>,
    {
        let principal = parts.extensions.get::<Principal>();
        let purpose = gate::Purpose::Tool(tool);
        let db = match gate::database(&self.state.databases, principal, purpose, requested) {
            Ok(db) => db,
            Err(e) => {
                if e.is_denied() {
                    self.state.metrics.tool_denied(tool);
                }
                return Ok(tool_error(e.to_string()));
            }
        };
        let role = principal.and_then(|p| p.role_for(tool, db.name()));
        Ok(match crate::pg::role::scope(role, run(db)).await {
            Ok(text) => text_result(text),
            Err(e) => tool_error(e.to_string()),
        })
    }

    pub fn new(state: Arc<AppState>, router: Arc<ToolRouter<McpHandler>>) -> McpHandler {
        McpHandler { state, router }
    }
}

/// The credential a request came with, if any.
fn principal_of(context: &RequestContext<RoleServer>) -> Option<&Principal> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
}

pub use fleet_common::tools_file::builtins::AUTHENTICATE_USER;

/// The names of every tool this server can offer (the Postgres tools
/// included), as the tool router declares them: the metric labels a tool
/// call may carry.
pub fn names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        (McpHandler::tool_router() + McpHandler::vector_router())
            .list_all()
            .into_iter()
            .map(|tool| &*String::leak(tool.name.into_owned()))
            .collect()
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// What to look for, in natural language or keywords.
    #[serde(default)]
    pub query: Option<String>,
    /// Only these products (see list_products).
    #[serde(default)]
    pub project_names: Option<Vec<String>>,
    /// Only these product versions.
    #[serde(default)]
    pub project_versions: Option<Vec<String>>,
    /// How many results (default 5, at most 20).
    #[serde(default)]
    pub top_n: Option<u32>,
    /// List the products and versions in the knowledge base instead of searching.
    #[serde(default)]
    pub list_products: Option<bool>,
    /// How to rank: `hybrid` (keywords and meaning, fused; the default when
    /// the knowledge base has vectors), `keyword` (BM25) or `semantic`
    /// (meaning only).
    #[serde(default)]
    pub mode: Option<SearchMode>,
}

/// The `mode` argument of search_knowledgebase.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    Hybrid,
    Keyword,
    Semantic,
}

impl From<SearchMode> for Mode {
    fn from(m: SearchMode) -> Mode {
        match m {
            SearchMode::Hybrid => Mode::Hybrid,
            SearchMode::Keyword => Mode::Keyword,
            SearchMode::Semantic => Mode::Semantic,
        }
    }
}

fn text_result(text: String) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AuthenticateArgs {
    pub username: String,
    pub password: String,
}

#[tool_router]
impl McpHandler {
    #[tool(name = "query_database", description = pgt::QUERY_DATABASE_DESCRIPTION)]
    async fn query_database(
        &self,
        Parameters(args): Parameters<pgt::QueryDatabaseArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_database(
            pgt::QUERY_DATABASE,
            args.database.as_deref(),
            &parts,
            |db| db.query(&args.query, args.limit, args.offset),
        )
        .await
    }

    #[tool(name = "get_schema_info", description = pgt::GET_SCHEMA_INFO_DESCRIPTION)]
    async fn get_schema_info(
        &self,
        Parameters(args): Parameters<pgt::GetSchemaInfoArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_database(
            pgt::GET_SCHEMA_INFO,
            args.database.as_deref(),
            &parts,
            |db| {
                db.schema_info(
                    args.schema_name.as_deref(),
                    args.table_name.as_deref(),
                    args.vector_tables_only.unwrap_or(false),
                    args.compact.unwrap_or(false),
                )
            },
        )
        .await
    }

    #[tool(name = "execute_explain", description = pgt::EXECUTE_EXPLAIN_DESCRIPTION)]
    async fn execute_explain(
        &self,
        Parameters(args): Parameters<pgt::ExecuteExplainArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_database(
            pgt::EXECUTE_EXPLAIN,
            args.database.as_deref(),
            &parts,
            |db| {
                db.explain(
                    &args.query,
                    args.analyze.unwrap_or(true),
                    args.buffers.unwrap_or(false),
                )
            },
        )
        .await
    }

    #[tool(name = "count_rows", description = pgt::COUNT_ROWS_DESCRIPTION)]
    async fn count_rows(
        &self,
        Parameters(args): Parameters<pgt::CountRowsArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        self.with_database(pgt::COUNT_ROWS, args.database.as_deref(), &parts, |db| {
            db.count_rows(args.schema.as_deref(), &args.table, args.where_.as_deref())
        })
        .await
    }

    #[tool(
        name = "authenticate_user",
        description = "Log in with a username and password from users.yaml; returns a session \
                       token to send as `Authorization: Bearer <token>`. Callable without a token."
    )]
    async fn authenticate_user(
        &self,
        Parameters(args): Parameters<AuthenticateArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let state = self.state.clone();
        let username = args.username.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            state.credentials.login(
                &args.username,
                &args.password,
                state.config.auth.session_ttl,
            )
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let client_ip = parts.extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip);
        // A client pushed over the failed-auth limit while this login ran
        // (by a concurrent wrong guess) gets no session from it.
        let over_limit = || client_ip.is_some_and(|ip| self.state.limiter.check(ip).is_err());
        match outcome {
            Some(_) if over_limit() => {
                self.state.metrics.rate_limited.inc();
                tracing::info!(user = %username, "login refused: client over the failed-auth limit");
                let body = serde_json::json!({"success": false, "error": "too many failed authentications; retry later"});
                Ok(tool_error(body.to_string()))
            }
            Some((token, expires_at)) => {
                tracing::info!(user = %username, "user authenticated");
                let body = serde_json::json!({
                    "success": true,
                    "session_token": token,
                    "expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                });
                Ok(text_result(body.to_string()))
            }
            None => {
                // Counted, or refused as over the limit: the answer is the
                // same refusal either way.
                if let Some(ip) = client_ip {
                    let _ = self.state.limiter.record_failure(ip);
                }
                self.state.metrics.auth_failure("bad_password");
                if self.state.credentials.session_keys.load().is_empty() {
                    tracing::warn!("authenticate_user called but no session.key is loaded");
                }
                tracing::info!(user = %username, "login refused");
                let body =
                    serde_json::json!({"success": false, "error": "invalid username or password"});
                Ok(tool_error(body.to_string()))
            }
        }
    }

    #[tool(
        name = "search_knowledgebase",
        description = "Search the documentation knowledge base. Ranks by keywords (BM25) and, \
                       when the knowledge base has vectors, by meaning too (mode: hybrid, the \
                       default then; keyword; semantic). Filter with project_names / \
                       project_versions; set list_products=true to see which products and \
                       versions are available."
    )]
    async fn search_knowledgebase(
        &self,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(kb) = self.state.kb.load_full() else {
            return Ok(tool_error(
                "The knowledge base is not loaded yet; try again shortly.",
            ));
        };
        if args.list_products.unwrap_or(false) {
            let products = tokio::task::spawn_blocking(move || kb.products())
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
                .map_err(|e| ErrorData::internal_error(format!("{e:#}"), None))?;
            let mut out = format!("{} products in the knowledge base:\n", products.len());
            for p in products {
                out.push_str(&format!(
                    "- {} {} ({} chunks)\n",
                    p.project_name, p.project_version, p.chunks
                ));
            }
            return Ok(text_result(out));
        }
        let query = args.query.unwrap_or_default();
        if query.trim().is_empty() {
            return Ok(tool_error(
                "`query` is required unless list_products is true.",
            ));
        }
        if let Some(n) = args.top_n
            && (n == 0 || n as usize > MAX_TOP_N)
        {
            return Ok(tool_error(format!(
                "top_n must be between 1 and {MAX_TOP_N}."
            )));
        }
        let (mode, vector, label) = self.query_vector(&kb, &query, args.mode).await;
        self.state.metrics.kb_search(match &label {
            Label::Ran(m) => m.as_str(),
            Label::KeywordOnly(_) => "keyword_only",
        });
        let q = SearchQuery {
            query: query.clone(),
            project_names: args.project_names.unwrap_or_default(),
            project_versions: args.project_versions.unwrap_or_default(),
            top_n: args.top_n.map(|n| n as usize),
            mode,
            vector,
        };
        // Any query text is searchable; should the engine still fail, the
        // caller gets a tool error, not a protocol error. The semaphore is
        // never closed.
        let _turn = self.state.searches.acquire().await.ok();
        let hits = match tokio::task::spawn_blocking(move || kb.search(&q)).await {
            Ok(Ok(hits)) => hits,
            Ok(Err(e)) => return Ok(tool_error(format!("search failed: {e:#}"))),
            Err(_) => return Ok(tool_error("search failed on this query")),
        };
        let label = match &label {
            Label::Ran(m) => format!("[mode: {}]", m.as_str()),
            Label::KeywordOnly(why) => format!("[mode: keyword-only, {why}]"),
        };
        if hits.is_empty() {
            return Ok(text_result(format!("No results for {query:?}. {label}")));
        }
        Ok(text_result(answer::render(&query, &label, &hits)))
    }
}

/// How a search's ranking is labelled in its answer.
enum Label {
    /// It ran in the mode asked (or the default).
    Ran(Mode),
    /// Meaning was wanted but no query vector could be had: why.
    KeywordOnly(String),
}

impl McpHandler {
    /// The mode to search `kb` in for a call asking `asked`, with the
    /// query's vector when that mode needs one, and the answer's label.
    /// The default is hybrid when the KB has vectors and an embedder is
    /// configured, keyword otherwise. Without a vector (no vectors, no
    /// embedder, the provider failed) it is keyword, labelled keyword-only
    /// with the reason when meaning was asked for.
    async fn query_vector(
        &self,
        kb: &Kb,
        query: &str,
        asked: Option<SearchMode>,
    ) -> (Mode, Option<Vec<f32>>, Label) {
        let embedder = self.state.embedder.as_ref();
        let can = kb.vectors().is_some() && embedder.is_some();
        let mode = match asked {
            Some(m) => Mode::from(m),
            None if can => Mode::Hybrid,
            None => Mode::Keyword,
        };
        if mode == Mode::Keyword {
            return (mode, None, Label::Ran(mode));
        }
        let (Some(vectors), Some(embedder)) = (kb.vectors(), embedder) else {
            let why = match (kb.no_vectors(), embedder) {
                (_, None) => "no embedding model is configured".to_string(),
                (Some(why), _) => format!("no vectors: {why}"),
                (None, Some(_)) => "no vectors".to_string(),
            };
            return (Mode::Keyword, None, Label::KeywordOnly(why));
        };
        match embedder
            .embed(query, vectors.dimensions(), &self.state.metrics)
            .await
        {
            Ok(v) => (mode, Some(v), Label::Ran(mode)),
            Err(f) => (Mode::Keyword, None, Label::KeywordOnly(f.describe())),
        }
    }
}

impl McpHandler {
    /// `ttlMs` and `cacheScope` of a list or read answered for `context`,
    /// for clients of protocol 2026-07-28 and later (see the module doc).
    fn cache_hints(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> (Option<u64>, Option<CacheScope>) {
        let hints = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        if !hints {
            return (None, None);
        }
        let scope = if self.state.answers_vary_by_caller() {
            CacheScope::Private
        } else {
            CacheScope::Public
        };
        (Some(0), Some(scope))
    }

    /// The names of the prompts the caller may see: those whose every named
    /// tool it sees in `tools/list`.
    fn visible_prompts(
        &self,
        catalog: &crate::catalog::Catalog,
        context: &RequestContext<RoleServer>,
    ) -> Vec<String> {
        let tools = gate::listed(
            catalog,
            &self.state.databases,
            principal_of(context),
            self.router.list_all(),
        );
        let tools: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        gate::visible_prompts(catalog, &tools)
    }
}

#[tool_handler(router = self.router)]
impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.state.databases.is_empty() {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build()
        } else {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                "pg-mcp-fleet",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Postgres MCP server. search_knowledgebase answers questions from the \
                 documentation knowledge base.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let catalog = self.state.catalog.load();
        let tools = gate::listed(
            &catalog,
            &self.state.databases,
            principal_of(&context),
            self.router.list_all(),
        );
        let mut result = ListToolsResult::with_all_items(tools);
        result.result_type = Some(ResultType::COMPLETE);
        (result.ttl_ms, result.cache_scope) = self.cache_hints(&context);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let catalog = self.state.catalog.load_full();
        let principal = principal_of(&context);
        let metrics = &self.state.metrics;
        match gate::admit(
            &catalog,
            &self.state.databases,
            principal,
            &request.name,
            metrics,
        ) {
            Err(refusal) => Ok(tool_error(refusal).into()),
            Ok(Target::Router) => {
                let call = ToolCallContext::new(self, request, context);
                self.router.call(call).await
            }
            Ok(Target::Curated(tool)) => {
                let outcome = crate::catalog::call::run(
                    tool,
                    request.arguments.as_ref(),
                    &self.state.databases,
                    principal,
                )
                .await;
                Ok(match outcome {
                    Ok(text) => text_result(text),
                    Err(e) => {
                        if e.is_denied() {
                            gate::denied(metrics, &catalog, &tool.name);
                        }
                        tool_error(e.to_string())
                    }
                }
                .into())
            }
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        gate::descriptor(&self.state.catalog.load(), name)
            .or_else(|| self.router.get(name).cloned())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let catalog = self.state.catalog.load();
        let shown = self.visible_prompts(&catalog, &context);
        let mut result =
            ListPromptsResult::with_all_items(crate::catalog::prompts::list(&catalog, &shown));
        (result.ttl_ms, result.cache_scope) = self.cache_hints(&context);
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let catalog = self.state.catalog.load();
        let shown = self.visible_prompts(&catalog, &context);
        crate::catalog::prompts::get(&catalog, &shown, &request.name, request.arguments.as_ref())
            .map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let system_info_on = gate::resource_on(&self.state.catalog.load(), "system_info")
            && gate::reaches(
                &self.state.databases,
                principal_of(&context),
                gate::Purpose::SystemInfo,
            );
        let resources = if self.state.databases.is_empty() || !system_info_on {
            Vec::new()
        } else {
            vec![
                Resource::new(pgt::SYSTEM_INFO_URI, "system_info")
                    .with_description(pgt::SYSTEM_INFO_DESCRIPTION),
            ]
        };
        let mut result = ListResourcesResult::with_all_items(resources);
        (result.ttl_ms, result.cache_scope) = self.cache_hints(&context);
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != pgt::SYSTEM_INFO_URI
            || self.state.databases.is_empty()
            || !gate::resource_on(&self.state.catalog.load(), "system_info")
        {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        }
        let principal = principal_of(&context);
        let db = gate::database(
            &self.state.databases,
            principal,
            gate::Purpose::SystemInfo,
            None,
        )
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let role = principal.and_then(|p| p.role_for_any(&gate::POSTGRES_TOOLS, db.name()));
        let text = crate::pg::role::scope(role, db.system_info())
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let mut result =
            ReadResourceResult::new(vec![ResourceContents::text(text, pgt::SYSTEM_INFO_URI)]);
        (result.ttl_ms, result.cache_scope) = self.cache_hints(&context);
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_names_of_tools_yaml_are_the_routers() {
        let mut names = names().to_vec();
        names.sort_unstable();
        assert_eq!(names, fleet_common::tools_file::builtins::TOOLS);
    }

    #[test]
    fn the_tool_names_are_the_routers() {
        let mut names = names().to_vec();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                AUTHENTICATE_USER,
                pgt::COUNT_ROWS,
                pgt::EXECUTE_EXPLAIN,
                vector::GENERATE_EMBEDDING,
                pgt::GET_SCHEMA_INFO,
                pgt::QUERY_DATABASE,
                "search_knowledgebase",
                pgt::SIMILARITY_SEARCH,
            ]
        );
    }
}
