//! Tool arguments and descriptions, with pgEdge's names, for the rmcp tool
//! router to use. Each struct also takes an optional `database` (a configured
//! database's name); a token bound to a database may only use that one, and
//! a credential only the databases its permissions allow
//! ([`crate::catalog::gate::database`] decides).

use schemars::JsonSchema;
use serde::Deserialize;

pub const QUERY_DATABASE: &str = "query_database";
pub const QUERY_DATABASE_DESCRIPTION: &str = "Run one read-only SQL query (SELECT, WITH, VALUES, \
    TABLE or SHOW) and get the rows as JSON. Runs in a read-only transaction that is rolled back, \
    with a statement timeout; writes, stacked statements, transaction control and side-effecting \
    functions are refused. Use limit/offset to page (default limit 100).";

pub const GET_SCHEMA_INFO: &str = "get_schema_info";
pub const GET_SCHEMA_INFO_DESCRIPTION: &str = "Describe the database: schemas, tables and views \
    with their columns and types, primary/unique/foreign keys, check constraints and indexes. \
    Filter with schema_name / table_name; vector_tables_only lists tables with pgvector columns; \
    compact gives one line per table.";

pub const EXECUTE_EXPLAIN: &str = "execute_explain";
pub const EXECUTE_EXPLAIN_DESCRIPTION: &str = "Show the execution plan of one read-only query \
    (give the query without EXPLAIN). analyze (default true) runs it, inside a read-only \
    transaction that is rolled back; buffers adds buffer usage.";

pub const COUNT_ROWS: &str = "count_rows";
pub const COUNT_ROWS_DESCRIPTION: &str = "Count the rows of a table or view, optionally only \
    those matching a condition (`where`: one boolean SQL expression, e.g. \"status = 'open'\").";

pub const SYSTEM_INFO_URI: &str = "pg://system_info";
pub const SYSTEM_INFO_DESCRIPTION: &str = "PostgreSQL server version, database, size, uptime, \
    current role and settings of interest (JSON).";

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryDatabaseArgs {
    /// One read-only SQL statement.
    pub query: String,
    /// Rows to return (default 100; capped by the server's max_rows).
    #[serde(default)]
    pub limit: Option<i64>,
    /// Rows to skip first, for paging (default 0).
    #[serde(default)]
    pub offset: Option<i64>,
    /// Which configured database (default: the token's or the first).
    #[serde(default)]
    pub database: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetSchemaInfoArgs {
    /// Only this schema.
    #[serde(default)]
    pub schema_name: Option<String>,
    /// Only this table or view.
    #[serde(default)]
    pub table_name: Option<String>,
    /// Only tables with pgvector columns.
    #[serde(default)]
    pub vector_tables_only: Option<bool>,
    /// One line per table instead of full details.
    #[serde(default)]
    pub compact: Option<bool>,
    /// Which configured database (default: the token's or the first).
    #[serde(default)]
    pub database: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExecuteExplainArgs {
    /// The query to explain, without EXPLAIN.
    pub query: String,
    /// Run the query to get actual times and row counts (default true).
    #[serde(default)]
    pub analyze: Option<bool>,
    /// Include buffer usage (with analyze).
    #[serde(default)]
    pub buffers: Option<bool>,
    /// Which configured database (default: the token's or the first).
    #[serde(default)]
    pub database: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CountRowsArgs {
    /// Table or view name (exact, case-sensitive); `schema.table` also works.
    pub table: String,
    /// Schema (default: the one on the search path).
    #[serde(default)]
    pub schema: Option<String>,
    /// Optional condition: one boolean SQL expression.
    #[serde(default, rename = "where")]
    pub where_: Option<String>,
    /// Which configured database (default: the token's or the first).
    #[serde(default)]
    pub database: Option<String>,
}

pub const SIMILARITY_SEARCH: &str = "similarity_search";
pub const SIMILARITY_SEARCH_DESCRIPTION: &str = "Find the rows of a table whose pgvector column is \
    nearest in meaning to a text: the text is embedded with the server's embedding model, and the \
    rows come back nearest first, each with its distance (smaller is nearer). The distance is the \
    one the column's index uses (vector_cosine_ops: cosine <=>, vector_l2_ops: L2 <->, \
    vector_ip_ops: negative inner product <#>, vector_l1_ops: L1 <+>), cosine without an index, \
    or the one asked for. Narrow with filter (one boolean SQL expression on the table's columns, \
    e.g. \"lang = 'en'\"); columns picks the columns returned (default: all but vector columns). \
    Read-only; see get_schema_info with vector_tables_only for the tables.";

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SimilaritySearchArgs {
    /// Table or view with a vector column (exact, case-sensitive);
    /// `schema.table` also works.
    // pgEdge's argument names are taken too, so an assistant that learnt
    // pgEdge's tool calls this one unchanged.
    #[serde(alias = "table_name")]
    pub table: String,
    /// The text to search for (embedded with the server's model; at most 8 KiB).
    #[serde(alias = "query_text")]
    pub text: String,
    /// Schema (default: the one on the search path).
    #[serde(default)]
    pub schema: Option<String>,
    /// The vector, halfvec or sparsevec column (default: the table's only one).
    #[serde(default)]
    pub vector_column: Option<String>,
    /// How many rows (default 10; capped by the server's max_rows).
    #[serde(default)]
    pub top_n: Option<i64>,
    /// Optional condition on the table's columns: one boolean SQL expression.
    #[serde(default)]
    pub filter: Option<String>,
    /// The columns to return (default: every column but the vector ones).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The distance: cosine (<=>), l2 (<->), inner_product (<#>) or l1 (<+>);
    /// default: the one the column's index uses, else cosine.
    #[serde(default, alias = "distance_metric")]
    pub distance: Option<super::vector::distance::Distance>,
    /// Which configured database (default: the token's or the first).
    #[serde(default)]
    pub database: Option<String>,
}
