//! `similarity_search`: the rows of a table nearest to a text's embedding
//! by a pgvector distance, in the same read-only transaction as every
//! other call; and the pure parts of the pgvector tools (the distance an
//! index's operator class orders by, the bounds on the arguments, a
//! vector's text form).
//!
//! The table, its vector column and the other columns asked for are looked
//! up in the catalog with bound parameters and quoted from the catalog's
//! spelling; the filter must pass [`guard::check_expression`]; the query
//! vector travels as a bound text parameter cast to the column's type
//! (tokio-postgres has no `vector` type), never in the SQL text. The
//! operator and the types are qualified with the extension's schema, so
//! nothing on the search path can stand in for them.
//!
//! The default distance is the one the column's index orders by (its
//! operator class: `vector_cosine_ops` → `<=>`, ...), cosine when no index
//! has one. With an approximate index (HNSW, IVFFlat) pgvector 0.8's
//! iterative scans are switched on for the transaction (`SET LOCAL`
//! through `set_config`), so that a filter or a `top_n` above
//! `hnsw.ef_search` still gets `top_n` rows; the results, whose order an
//! iterative scan only approximates, are sorted again by distance.

use std::fmt::Write as _;

use deadpool_postgres::{Object, Transaction};
use fleet_common::tools_file::{ParamType, Scalar};
use serde_json::Value;

use super::bind::Bound;
use super::guard::{self, StatementKind};
use super::ops::{Paging, render_rows};
use super::{Database, ToolError};

pub mod distance;
pub use distance::Distance;
use distance::VECTOR_TYPES;

/// The longest text embedded, in bytes: the embedder reads no more.
pub const MAX_TEXT_BYTES: usize = fleet_kb::embed::MAX_EMBED_BYTES;

/// The most columns a call may name in `columns`.
pub const MAX_COLUMNS: usize = 100;

/// The text to embed, trimmed: not empty, at most [`MAX_TEXT_BYTES`].
pub fn check_text(text: &str) -> Result<&str, ToolError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ToolError::InvalidArgument("text is required".into()));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ToolError::InvalidArgument(format!(
            "text is {} bytes; at most {MAX_TEXT_BYTES} are embedded",
            text.len()
        )));
    }
    Ok(text)
}

/// `top_n` (default 10) checked: at least 1; above `max_rows` it is capped
/// (the `bool` says so).
pub fn resolve_top_n(top_n: Option<i64>, max_rows: usize) -> Result<(usize, bool), ToolError> {
    match top_n {
        None => Ok((10.min(max_rows), false)),
        Some(n) if n < 1 => Err(ToolError::InvalidArgument(format!(
            "top_n must be at least 1, not {n}"
        ))),
        Some(n) if n as u64 > max_rows as u64 => Ok((max_rows, true)),
        Some(n) => Ok((n as usize, false)),
    }
}

/// pgvector's text form of `v` for a column of type `ty`: `[1,0.5]` for
/// `vector` and `halfvec`, `{1:1,2:0.5}/2` (1-based, non-zero entries)
/// for `sparsevec`. Each value is written in Rust's shortest form that
/// reads back as the same `f32`.
pub fn vector_literal(v: &[f32], ty: &str) -> String {
    let mut out = String::with_capacity(v.len() * 12 + 8);
    if ty == "sparsevec" {
        out.push('{');
        let mut first = true;
        for (i, x) in v.iter().enumerate().filter(|(_, x)| **x != 0.0) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{}:{x}", i + 1);
        }
        let _ = write!(out, "}}/{}", v.len());
        return out;
    }
    out.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out.push(']');
    out
}

/// A similarity search's arguments, checked before anything is embedded
/// or sent.
#[derive(Debug)]
pub struct Search<'a> {
    schema: Option<&'a str>,
    table: &'a str,
    column: Option<&'a str>,
    filter: Option<&'a str>,
    columns: Option<Vec<&'a str>>,
    distance: Option<Distance>,
    top_n: usize,
    capped: bool,
}

impl<'a> Search<'a> {
    /// Check the arguments of a call on a database whose `max_rows` is
    /// given: a table, a filter the guard accepts, a `top_n` of at least 1,
    /// at most [`MAX_COLUMNS`] column names.
    pub fn new(
        args: &'a super::tools::SimilaritySearchArgs,
        max_rows: usize,
    ) -> Result<Search<'a>, ToolError> {
        let nonempty =
            |s: &'a Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let table = args.table.trim();
        if table.is_empty() {
            return Err(ToolError::InvalidArgument("table is required".into()));
        }
        let filter = match nonempty(&args.filter) {
            None => None,
            Some(f) => Some(guard::check_expression(f).map_err(|r| ToolError::Rejected(r.0))?),
        };
        let columns = match &args.columns {
            None => None,
            Some(list) if list.len() > MAX_COLUMNS => {
                return Err(ToolError::InvalidArgument(format!(
                    "columns names {} columns; at most {MAX_COLUMNS}",
                    list.len()
                )));
            }
            Some(list) => {
                let mut names: Vec<&str> = Vec::with_capacity(list.len());
                for name in list.iter().map(|c| c.trim()) {
                    if name.is_empty() {
                        return Err(ToolError::InvalidArgument(
                            "columns holds an empty name".into(),
                        ));
                    }
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                (!names.is_empty()).then_some(names)
            }
        };
        let (top_n, capped) = resolve_top_n(args.top_n, max_rows)?;
        Ok(Search {
            schema: nonempty(&args.schema),
            table,
            column: nonempty(&args.vector_column),
            filter,
            columns,
            distance: args.distance,
            top_n,
            capped,
        })
    }
}

/// The query's embedding and the model that made it.
pub struct Embedding<'a> {
    pub vector: &'a [f32],
    /// The model's name, for the answer and the errors.
    pub model: &'a str,
    /// `local` or the provider's name.
    pub provider: &'a str,
}

/// A column of the searched table.
#[derive(Debug)]
struct Column {
    name: String,
    /// The type's name and its schema.
    ty: String,
    type_schema: String,
    /// `atttypmod`: a pgvector type's dimensions, -1 when not declared.
    typmod: i32,
}

impl Column {
    fn is_vector(&self) -> bool {
        VECTOR_TYPES.contains(&self.ty.as_str())
    }

    fn dimensions(&self) -> Option<usize> {
        usize::try_from(self.typmod).ok().filter(|d| *d > 0)
    }
}

/// An index on the vector column: name, access method, operator class.
#[derive(Debug)]
struct Index {
    name: String,
    method: String,
    opclass: String,
}

/// What the statement is built from, all of it from the catalog but the
/// filter (which the guard checked) and the numbers.
struct Plan<'a> {
    schema: &'a str,
    table: &'a str,
    column: &'a Column,
    select: Vec<&'a str>,
    distance: Distance,
    alias: &'static str,
    filter: Option<&'a str>,
    top_n: usize,
}

impl Plan<'_> {
    /// The search: the nearest `top_n` rows by the operator (an index on
    /// the column serves the inner ORDER BY ... LIMIT), materialized and
    /// sorted again by distance ($1: the query vector's text).
    fn sql(&self) -> String {
        let ts = guard::quote_ident(&self.column.type_schema);
        let col = guard::quote_ident(&self.column.name);
        let dist = format!(
            "{col} OPERATOR({ts}.{}) CAST($1::pg_catalog.text AS {ts}.{})",
            self.distance.operator(),
            guard::quote_ident(&self.column.ty)
        );
        let mut cols: Vec<String> = self.select.iter().map(|c| guard::quote_ident(c)).collect();
        cols.push(format!("({dist}) AS {}", self.alias));
        let mut sql = format!(
            "WITH __mcp_nearest AS MATERIALIZED (SELECT {} FROM {}.{} WHERE {col} IS NOT NULL",
            cols.join(", "),
            guard::quote_ident(self.schema),
            guard::quote_ident(self.table),
        );
        if let Some(f) = self.filter {
            let _ = write!(sql, " AND (\n{f}\n)");
        }
        let _ = write!(
            sql,
            " ORDER BY {dist} LIMIT {}) SELECT * FROM __mcp_nearest ORDER BY {}",
            self.top_n, self.alias
        );
        sql
    }
}

/// The name of the distance in each row: `distance`, unless a returned
/// column has it.
fn distance_alias(select: &[&str]) -> &'static str {
    ["distance", "_distance", "__mcp_distance"]
        .into_iter()
        .find(|a| !select.contains(a))
        .unwrap_or("__mcp_distance")
}

/// The distance to use, and the index that orders by it: the one asked
/// for, else that of the first index on the column that has one, else
/// cosine.
fn choose_distance(asked: Option<Distance>, indexes: &[Index]) -> (Distance, Option<&Index>) {
    let serving = |d: Distance| {
        indexes
            .iter()
            .find(|i| Distance::of_opclass(&i.opclass) == Some(d))
    };
    let distance = asked.unwrap_or_else(|| {
        indexes
            .iter()
            .find_map(|i| Distance::of_opclass(&i.opclass))
            .unwrap_or(Distance::Cosine)
    });
    (distance, serving(distance))
}

/// The vector column to search: the one named, else the table's only one.
fn pick_column<'c>(
    columns: &'c [Column],
    asked: Option<&str>,
    relation: &str,
) -> Result<&'c Column, ToolError> {
    let vectors: Vec<&Column> = columns.iter().filter(|c| c.is_vector()).collect();
    let names = || {
        vectors
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match asked {
        Some(name) => match columns.iter().find(|c| c.name == name) {
            Some(c) if c.is_vector() => Ok(c),
            Some(c) => Err(ToolError::InvalidArgument(format!(
                "column {name:?} of {relation} is of type {}, not a pgvector type \
                 (vector, halfvec, sparsevec){}",
                c.ty,
                if vectors.is_empty() {
                    String::new()
                } else {
                    format!("; its vector columns: {}", names())
                }
            ))),
            None => Err(ToolError::InvalidArgument(format!(
                "{relation} has no column {name:?} (names are case-sensitive){}",
                if vectors.is_empty() {
                    String::new()
                } else {
                    format!("; its vector columns: {}", names())
                }
            ))),
        },
        None => match vectors.as_slice() {
            [only] => Ok(only),
            [] => Err(ToolError::InvalidArgument(format!(
                "{relation} has no vector column (vector, halfvec or sparsevec); see \
                 get_schema_info with vector_tables_only"
            ))),
            _ => Err(ToolError::InvalidArgument(format!(
                "{relation} has several vector columns ({}); give vector_column",
                names()
            ))),
        },
    }
}

/// The columns returned: those named (which must exist), else every column
/// that is not of a pgvector type.
fn pick_returned<'c>(
    columns: &'c [Column],
    asked: Option<&[&str]>,
    relation: &str,
) -> Result<Vec<&'c str>, ToolError> {
    match asked {
        None => Ok(columns
            .iter()
            .filter(|c| !c.is_vector())
            .map(|c| c.name.as_str())
            .collect()),
        Some(names) => names
            .iter()
            .map(|n| {
                columns
                    .iter()
                    .find(|c| c.name == *n)
                    .map(|c| c.name.as_str())
                    .ok_or_else(|| {
                        ToolError::InvalidArgument(format!(
                            "{relation} has no column {n:?} (names are case-sensitive)"
                        ))
                    })
            })
            .collect(),
    }
}

/// A dimension mismatch between the query's embedding and the column,
/// said with both numbers and the model.
fn check_dimensions(column: &Column, relation: &str, e: &Embedding<'_>) -> Result<(), ToolError> {
    match column.dimensions() {
        Some(d) if d != e.vector.len() => Err(ToolError::InvalidArgument(format!(
            "dimension mismatch: column {:?} of {relation} is {}({d}), but the embedding \
             model {} ({}) gives {} dimensions; search a column made by the same model",
            column.name,
            column.ty,
            e.model,
            e.provider,
            e.vector.len()
        ))),
        _ => Ok(()),
    }
}

/// The columns of a relation, in order. $1 schema, $2 relation.
const COLUMNS_SQL: &str = "SELECT a.attname::text, t.typname::text, tn.nspname::text, a.atttypmod \
    FROM pg_catalog.pg_attribute a \
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
    JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace \
    WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY a.attnum";

/// The valid indexes on one column, with their access method and operator
/// class. $1 schema, $2 relation, $3 column.
const INDEXES_SQL: &str = "SELECT ic.relname::text, am.amname::text, opc.opcname::text \
    FROM pg_catalog.pg_index i \
    JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam \
    CROSS JOIN LATERAL pg_catalog.generate_series(0, i.indnkeyatts - 1) AS k(n) \
    JOIN pg_catalog.pg_opclass opc ON opc.oid = i.indclass[k.n] \
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[k.n] \
    WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND i.indisvalid \
    ORDER BY ic.relname";

/// The statements that switch on iterative index scans (pgvector 0.8) and
/// let HNSW return `top_n` candidates, for this transaction only; loading
/// the extension's library first is what defines its settings. A setting
/// this pgvector does not have is left alone.
fn scan_settings_sql(type_schema: &str, top_n: usize) -> String {
    format!(
        "SELECT CAST('[0]' AS {}.vector) IS NULL; \
         SELECT pg_catalog.set_config(s.name, CASE s.name \
           WHEN 'hnsw.ef_search' THEN LEAST(1000, \
             GREATEST(s.setting::pg_catalog.int4, {top_n}))::pg_catalog.text \
           ELSE 'relaxed_order' END, true) \
         FROM pg_catalog.pg_settings s \
         WHERE s.name IN ('hnsw.iterative_scan', 'ivfflat.iterative_scan', 'hnsw.ef_search')",
        guard::quote_ident(type_schema)
    )
}

impl Database {
    /// `similarity_search`: the `top_n` rows of a table nearest to the
    /// query's `embedding`, each with its distance, as JSON objects.
    pub async fn similarity_search(
        &self,
        search: &Search<'_>,
        embedding: &Embedding<'_>,
    ) -> Result<String, ToolError> {
        let mut client = self.checkout().await?;
        let outcome = tokio::time::timeout(
            self.deadline(),
            self.similarity_in(&mut client, search, embedding),
        )
        .await;
        self.settle(client, outcome).await
    }

    async fn similarity_in(
        &self,
        client: &mut Object,
        search: &Search<'_>,
        embedding: &Embedding<'_>,
    ) -> Result<String, ToolError> {
        let tx = self.begin(client).await?;
        let (schema, table) = self
            .locate(&tx, search.schema, search.table)
            .await?
            .ok_or_else(|| super::ops::not_found(search.schema, search.table))?;
        let relation = format!("{schema}.{table}");
        let err = |e| self.pg_error(e);
        let columns: Vec<Column> = tx
            .query(COLUMNS_SQL, &[&schema, &table])
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                Ok(Column {
                    name: r.try_get(0)?,
                    ty: r.try_get(1)?,
                    type_schema: r.try_get(2)?,
                    typmod: r.try_get(3)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(err)?;
        let column = pick_column(&columns, search.column, &relation)?;
        let select = pick_returned(&columns, search.columns.as_deref(), &relation)?;
        check_dimensions(column, &relation, embedding)?;
        let indexes: Vec<Index> = tx
            .query(INDEXES_SQL, &[&schema, &table, &column.name])
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                Ok(Index {
                    name: r.try_get(0)?,
                    method: r.try_get(1)?,
                    opclass: r.try_get(2)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(err)?;
        let (distance, index) = choose_distance(search.distance, &indexes);
        if index.is_some_and(|i| matches!(i.method.as_str(), "hnsw" | "ivfflat")) {
            tx.batch_execute(&scan_settings_sql(&column.type_schema, search.top_n))
                .await
                .map_err(err)?;
        }
        let plan = Plan {
            schema: &schema,
            table: &table,
            column,
            alias: distance_alias(&select),
            select,
            distance,
            filter: search.filter,
            top_n: search.top_n,
        };
        let literal = Value::String(vector_literal(embedding.vector, &column.ty));
        let param = Bound::new(ParamType::Scalar(Scalar::String), Some(&literal))
            .map_err(ToolError::InvalidArgument)?;
        let rows = self
            .rows_in(
                &tx,
                &plan.sql(),
                StatementKind::Query,
                search.top_n,
                0,
                &[param],
            )
            .await?;
        self.end(tx).await?;
        let mut out = format!(
            "Nearest rows of {relation}: ORDER BY {} {} the text's embedding ({}",
            guard::quote_ident(&column.name),
            distance.operator(),
            distance.describe()
        );
        match index {
            Some(i) => {
                let _ = write!(
                    out,
                    ", the operator of index {}: {} {}",
                    i.name, i.method, i.opclass
                );
            }
            None if search.distance.is_some() => out.push_str(", as asked; no index serves it"),
            None => out.push_str(", the default: no index on the column names one"),
        }
        let _ = write!(
            out,
            "); smaller is nearer. Embedding model: {} ({}, {} dimensions).",
            embedding.model,
            embedding.provider,
            embedding.vector.len()
        );
        if search.capped {
            let _ = write!(out, " top_n capped at max_rows={}.", self.limits.max_rows);
        }
        out.push('\n');
        out.push_str(&render_rows(rows, search.top_n, Paging::None));
        Ok(out)
    }

    /// The catalog's (schema, name) of the relation, as `count_rows` finds
    /// it: `table` in `schema`, else on the search path, else the only
    /// match; `schema.table` given as the table's name also works.
    async fn locate(
        &self,
        tx: &Transaction<'_>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Option<(String, String)>, ToolError> {
        if let Some(found) = self.find_relation(tx, schema, table).await? {
            return Ok(Some(found));
        }
        match (schema, table.split_once('.')) {
            (None, Some((s, t))) if !s.is_empty() && !t.is_empty() => {
                self.find_relation(tx, Some(s), t).await
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
