//! Permissions per credential through the real HTTP app (guard, replay
//! cache, rmcp, gate), in process: tokens from a `tokens.yaml` text, two
//! configured databases that are never reached (a refusal by permissions
//! comes before any connection).
//!
//! - a token limited to `search_knowledgebase` sees only it in `tools/list`
//!   and gets a tool error calling `query_database`, counted;
//! - `tools/list` answers are replayed per permissions: the unrestricted
//!   token's list stays whole after the limited token listed, both times;
//! - a token limited to one database is refused on the other, by name, and
//!   its calls without a database go to its own;
//! - issue 29: the `system_info` resource is neither listed nor read for a
//!   credential whose tools leave out the Postgres tools (finding 4); a
//!   prompt naming a tool the credential does not see is neither listed
//!   nor given (5); lists say `cacheScope: private` once answers differ
//!   between callers, `public` while they cannot (8).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use mcp_server::auth::tokens::TokenStore;
use mcp_server::config::Config;
use mcp_server::http::App;
use mcp_server::pg::DatabaseConfig;
use mcp_server::state::AppState;
use serde_json::{Value, json};

const ALL: &str = "token-unrestricted-0123456789";
const KB: &str = "token-kb-only-0123456789";
const ONLY_A: &str = "token-database-a-0123456789";

fn hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn app() -> (App, Arc<AppState>) {
    let mut config = Config::resolve(mcp_server::cli::ServeArgs::default()).unwrap();
    let db = |name: &str| DatabaseConfig {
        name: name.into(),
        host: Some("127.0.0.1".into()),
        // Nothing listens there: a call that got through would say
        // "database ... is unavailable".
        port: Some(1),
        user: Some("nobody".into()),
        database: Some("nothing".into()),
        ..Default::default()
    };
    config.databases = vec![db("a"), db("b")];
    let state = AppState::new(config).unwrap();
    let tokens = format!(
        "tokens:\n  all:\n    hash: {}\n  kb:\n    hash: {}\n    tools: [search_knowledgebase]\n  only-a:\n    hash: {}\n    databases: [a]\n",
        hash(ALL),
        hash(KB),
        hash(ONLY_A)
    );
    let entries = fleet_common::tokens::parse(tokens.as_bytes()).unwrap();
    state
        .credentials
        .tokens
        .store(Arc::new(TokenStore::new(entries)));
    state.start_serving();
    (App::new(state.clone()), state)
}

/// POST one JSON-RPC message with `token`; the decoded answer.
async fn rpc(app: &App, token: &str, method: &str, params: Value) -> Value {
    rpc_with(app, token, method, params, &[]).await
}

/// [`rpc`] with more request headers.
async fn rpc_with(
    app: &App,
    token: &str,
    method: &str,
    params: Value,
    headers: &[(&str, &str)],
) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut req = Request::post("/mcp")
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let response = app.call(req, peer).await;
    assert_eq!(response.status(), 200, "{method} with {token}");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {bytes:?}"))
}

async fn listed(app: &App, token: &str) -> Vec<String> {
    let answer = rpc(app, token, "tools/list", json!({})).await;
    let mut names: Vec<String> = answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// The text of a `tools/call` answer, and whether it is a tool error.
async fn call(app: &App, token: &str, tool: &str, args: Value) -> (String, bool) {
    let answer = rpc(
        app,
        token,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await;
    let result = &answer["result"];
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(!text.is_empty(), "{answer}");
    (text.to_string(), result["isError"] == json!(true))
}

fn denied(state: &AppState, tool: &str) -> String {
    let prefix = format!("mcp_tool_calls_denied_total{{tool=\"{tool}\"}} ");
    state
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| "0".into())
}

#[tokio::test]
async fn a_tool_limited_token_sees_and_calls_only_its_tools() {
    let (app, state) = app();
    assert_eq!(listed(&app, KB).await, ["search_knowledgebase"]);
    let (text, is_error) = call(&app, KB, "query_database", json!({"query": "SELECT 1"})).await;
    assert!(is_error);
    assert_eq!(text, "this credential may not call the tool query_database");
    assert_eq!(denied(&state, "query_database"), "1");
    // A name that is no tool is refused too, counted as unknown.
    let (text, is_error) = call(&app, KB, "drop_everything", json!({})).await;
    assert!(is_error && text.contains("may not call the tool"), "{text}");
    assert_eq!(denied(&state, "unknown"), "1");
    assert!(!state.metrics.encode().contains("drop_everything"));
    // Its own tool is called (the KB is not loaded here: that is its answer).
    let (text, _) = call(&app, KB, "search_knowledgebase", json!({"query": "x"})).await;
    assert!(text.contains("knowledge base is not loaded"), "{text}");
}

#[tokio::test]
async fn replayed_lists_follow_the_callers_permissions() {
    let (app, state) = app();
    let everything = listed(&app, ALL).await;
    assert!(
        everything.contains(&"query_database".to_string()) && everything.len() > 2,
        "{everything:?}"
    );
    assert_eq!(listed(&app, KB).await, ["search_knowledgebase"]);
    assert_eq!(state.metrics.replayed.get(), 0);
    // Asked again: both answered from the replay table, each its own list.
    assert_eq!(listed(&app, ALL).await, everything);
    assert_eq!(listed(&app, KB).await, ["search_knowledgebase"]);
    assert_eq!(state.metrics.replayed.get(), 2);
    // A database-limited token may use every tool: it lists them all.
    assert_eq!(listed(&app, ONLY_A).await, everything);
}

#[tokio::test]
async fn a_database_limited_token_is_refused_on_another_database() {
    let (app, state) = app();
    for tool in ["query_database", "count_rows"] {
        let args = match tool {
            "count_rows" => json!({"table": "t", "database": "b"}),
            _ => json!({"query": "SELECT 1", "database": "b"}),
        };
        let (text, is_error) = call(&app, ONLY_A, tool, args).await;
        assert!(is_error);
        assert_eq!(text, "this credential may not use the database \"b\"");
        assert_eq!(denied(&state, tool), "1");
    }
    // Without a database, or naming its own: the call goes to a (which is
    // down here), never to b.
    for args in [
        json!({"query": "SELECT 1"}),
        json!({"query": "SELECT 1", "database": "a"}),
    ] {
        let (text, is_error) = call(&app, ONLY_A, "query_database", args).await;
        assert!(is_error);
        assert!(text.starts_with("database a is unavailable"), "{text}");
    }
    // The unrestricted token still reaches b (down too).
    let (text, _) = call(
        &app,
        ALL,
        "query_database",
        json!({"query": "SELECT 1", "database": "b"}),
    )
    .await;
    assert!(text.starts_with("database b is unavailable"), "{text}");
    assert_eq!(denied(&state, "query_database"), "1");
}

/// Issue 29, finding 4: a search-only credential listed and read
/// `pg://system_info`, which runs SQL on the first database.
#[tokio::test]
async fn a_search_only_token_reaches_no_database_through_system_info() {
    let (app, _) = app();
    let listed = rpc(&app, KB, "resources/list", json!({})).await;
    assert_eq!(listed["result"]["resources"], json!([]), "{listed}");
    let read = rpc(
        &app,
        KB,
        "resources/read",
        json!({"uri": "pg://system_info"}),
    )
    .await;
    let message = read["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("may use none of the databases"), "{read}");
    assert!(
        !read.to_string().contains("unavailable"),
        "it went to a database: {read}"
    );
    // The unrestricted token lists it, and its read goes to a (down here).
    let listed = rpc(&app, ALL, "resources/list", json!({})).await;
    assert_eq!(
        listed["result"]["resources"][0]["uri"], "pg://system_info",
        "{listed}"
    );
    let read = rpc(
        &app,
        ALL,
        "resources/read",
        json!({"uri": "pg://system_info"}),
    )
    .await;
    assert!(
        read.to_string().contains("database a is unavailable"),
        "{read}"
    );
}

/// Issue 29, finding 5: a KB-only token listed and got every prompt,
/// including a curated one that names a tool it may not call.
#[tokio::test]
async fn prompts_naming_a_hidden_tool_are_neither_listed_nor_given() {
    let (app, state) = app();
    let tools = b"tools:\n  orders_by_day:\n    description: Orders per day\n    database: a\n    statement: SELECT 1\nprompts:\n  orders:\n    template: Call orders_by_day and plot the result.\n  ask:\n    template: Answer with search_knowledgebase.\n";
    let catalog =
        mcp_server::catalog::Catalog::new(fleet_common::tools_file::parse(tools).unwrap());
    state.catalog.store(Arc::new(catalog));
    let names = |answer: &Value| -> Vec<String> {
        let mut n: Vec<String> = answer["result"]["prompts"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .collect();
        n.sort();
        n
    };
    let kb = names(&rpc(&app, KB, "prompts/list", json!({})).await);
    // design-schema names only search_knowledgebase; explore-database
    // names the Postgres tools.
    assert_eq!(kb, ["ask", "design-schema"], "{kb:?}");
    let got = rpc(&app, KB, "prompts/get", json!({"name": "orders"})).await;
    let message = got["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("may not use the prompt orders"), "{got}");
    let all = names(&rpc(&app, ALL, "prompts/list", json!({})).await);
    assert!(
        all.contains(&"orders".to_string()) && all.contains(&"explore-database".to_string()),
        "{all:?}"
    );
    let got = rpc(&app, ALL, "prompts/get", json!({"name": "orders"})).await;
    assert!(
        got["result"]["messages"][0]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("orders_by_day")),
        "{got}"
    );
}

/// Issue 29, finding 8: a `tools/list` filtered per credential said
/// `cacheScope: "public"`, which lets a gateway serve one caller's list to
/// another.
#[tokio::test]
async fn lists_that_differ_between_callers_are_private() {
    let meta = json!({"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    }});
    let list = |app: &App, token: &'static str, method: &'static str| {
        let (app, meta) = (app.clone(), meta.clone());
        async move {
            let headers = [
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", method),
            ];
            let answer = rpc_with(&app, token, method, meta, &headers).await;
            let result = &answer["result"];
            assert_eq!(result["ttlMs"], json!(0), "{answer}");
            result["cacheScope"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    // Limited tokens are loaded: every list is private, for every caller.
    let (app, state) = app();
    for method in ["tools/list", "prompts/list", "resources/list"] {
        for token in [ALL, KB, ALL] {
            assert_eq!(
                list(&app, token, method).await,
                "private",
                "{method} for {token}"
            );
        }
    }
    // Only unrestricted tokens: the lists cannot differ, public; and a
    // list replayed from before says what holds now.
    let everyone = format!("tokens:\n  all:\n    hash: {}\n", hash(ALL));
    let entries = fleet_common::tokens::parse(everyone.as_bytes()).unwrap();
    state
        .credentials
        .tokens
        .store(Arc::new(TokenStore::new(entries)));
    for method in ["tools/list", "prompts/list", "resources/list"] {
        assert_eq!(list(&app, ALL, method).await, "public", "{method}");
    }
}
