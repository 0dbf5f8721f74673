//! `get_schema_info`: schemas, tables, views, columns and their types,
//! constraints (keys) and indexes, read from `pg_catalog` with bound
//! parameters inside the same read-only transaction as every other call.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use deadpool_postgres::Object;

use super::ops::MAX_OUTPUT_BYTES;
use super::{Database, ToolError};

/// At most this many relations are described in one answer.
pub const MAX_TABLES: usize = 500;

/// The relations a call describes: user schemas only, optionally one schema,
/// one relation name, or only relations with a pgvector `vector` column.
/// Parameters: $1 schema (text or NULL), $2 table (text or NULL), $3 vector
/// tables only (bool).
const RELS: &str = "SELECT c.oid, n.nspname::text AS nspname, c.relname::text AS relname, \
        c.relkind::text AS relkind, c.reltuples::float8 AS reltuples, \
        pg_catalog.obj_description(c.oid, 'pg_class') AS comment \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r','p','v','m','f') \
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
      AND ($1::text IS NULL OR n.nspname = $1) \
      AND ($2::text IS NULL OR c.relname = $2) \
      AND (NOT $3::bool OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute va \
            JOIN pg_catalog.pg_type vt ON vt.oid = va.atttypid \
            WHERE va.attrelid = c.oid AND va.attnum > 0 AND NOT va.attisdropped \
              AND vt.typname IN ('vector', 'halfvec', 'sparsevec')))";

struct Relation {
    schema: String,
    name: String,
    kind: String,
    rows: f64,
    comment: Option<String>,
    columns: Vec<Column>,
    constraints: Vec<(String, String, String)>,
    indexes: Vec<(String, String)>,
}

struct Column {
    name: String,
    ty: String,
    not_null: bool,
    default: Option<String>,
    comment: Option<String>,
}

fn kind_name(k: &str) -> &'static str {
    match k {
        "r" => "table",
        "p" => "partitioned table",
        "v" => "view",
        "m" => "materialized view",
        "f" => "foreign table",
        _ => "relation",
    }
}

impl Database {
    /// `get_schema_info`: describe the user schemas' relations. `schema` and
    /// `table` filter by exact name; `vector_tables_only` keeps relations with
    /// a pgvector column; `compact` gives one line per relation.
    pub async fn schema_info(
        &self,
        schema: Option<&str>,
        table: Option<&str>,
        vector_tables_only: bool,
        compact: bool,
    ) -> Result<String, ToolError> {
        let schema = schema.map(str::trim).filter(|s| !s.is_empty());
        let table = table.map(str::trim).filter(|s| !s.is_empty());
        let mut client = self.checkout().await?;
        let outcome = tokio::time::timeout(
            self.deadline(),
            self.schema_in(&mut client, schema, table, vector_tables_only),
        )
        .await;
        let (rels, schemas, more) = self.settle(client, outcome).await?;
        Ok(render(
            &rels,
            &schemas,
            more,
            schema,
            table,
            vector_tables_only,
            compact,
        ))
    }

    #[allow(clippy::type_complexity)]
    async fn schema_in(
        &self,
        client: &mut Object,
        schema: Option<&str>,
        table: Option<&str>,
        vector_only: bool,
    ) -> Result<(Vec<Relation>, Vec<(String, i64)>, bool), ToolError> {
        let tx = self.begin(client).await?;
        let err = |e| self.pg_error(e);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&schema, &table, &vector_only];

        let schema_rows = tx
            .query(
                "SELECT n.nspname::text, (SELECT count(*) FROM pg_catalog.pg_class c \
                   WHERE c.relnamespace = n.oid AND c.relkind IN ('r','p','v','m','f')) \
                 FROM pg_catalog.pg_namespace n \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
                   AND ($1::text IS NULL OR n.nspname = $1) \
                 ORDER BY 1",
                &[&schema],
            )
            .await
            .map_err(err)?;
        let schemas: Vec<(String, i64)> = schema_rows
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect();

        let rel_rows = tx
            .query(
                format!("{RELS} ORDER BY 2, 3 LIMIT {}", MAX_TABLES + 1).as_str(),
                &params,
            )
            .await
            .map_err(err)?;
        let more = rel_rows.len() > MAX_TABLES;
        let mut rels: BTreeMap<u32, Relation> = BTreeMap::new();
        let mut order: Vec<u32> = Vec::new();
        for r in rel_rows.iter().take(MAX_TABLES) {
            let oid: u32 = r.try_get(0).map_err(err)?;
            order.push(oid);
            rels.insert(
                oid,
                Relation {
                    schema: r.try_get(1).map_err(err)?,
                    name: r.try_get(2).map_err(err)?,
                    kind: r.try_get(3).map_err(err)?,
                    rows: r.try_get::<_, Option<f64>>(4).map_err(err)?.unwrap_or(-1.0),
                    comment: r.try_get(5).map_err(err)?,
                    columns: Vec::new(),
                    constraints: Vec::new(),
                    indexes: Vec::new(),
                },
            );
        }

        if !rels.is_empty() {
            let cols = tx
                .query(
                    format!(
                        "WITH rels AS ({RELS} ORDER BY 2, 3 LIMIT {MAX_TABLES}) \
                         SELECT a.attrelid, a.attname::text, \
                           pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                           pg_catalog.pg_get_expr(d.adbin, d.adrelid), \
                           pg_catalog.col_description(a.attrelid, a.attnum) \
                         FROM pg_catalog.pg_attribute a \
                         LEFT JOIN pg_catalog.pg_attrdef d \
                           ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                         WHERE a.attrelid IN (SELECT oid FROM rels) \
                           AND a.attnum > 0 AND NOT a.attisdropped \
                         ORDER BY a.attrelid, a.attnum"
                    )
                    .as_str(),
                    &params,
                )
                .await
                .map_err(err)?;
            for r in &cols {
                let oid: u32 = r.try_get(0).map_err(err)?;
                if let Some(rel) = rels.get_mut(&oid) {
                    rel.columns.push(Column {
                        name: r.try_get(1).map_err(err)?,
                        ty: r.try_get(2).map_err(err)?,
                        not_null: r.try_get(3).map_err(err)?,
                        default: r.try_get(4).map_err(err)?,
                        comment: r.try_get(5).map_err(err)?,
                    });
                }
            }
            let cons = tx
                .query(
                    format!(
                        "WITH rels AS ({RELS} ORDER BY 2, 3 LIMIT {MAX_TABLES}) \
                         SELECT co.conrelid, co.conname::text, co.contype::text, \
                           pg_catalog.pg_get_constraintdef(co.oid, true) \
                         FROM pg_catalog.pg_constraint co \
                         WHERE co.conrelid IN (SELECT oid FROM rels) \
                           AND co.contype IN ('p', 'u', 'f', 'c', 'x') \
                         ORDER BY co.conrelid, \
                           array_position(ARRAY['p','u','f','c','x'], co.contype::text), co.conname"
                    )
                    .as_str(),
                    &params,
                )
                .await
                .map_err(err)?;
            for r in &cons {
                let oid: u32 = r.try_get(0).map_err(err)?;
                if let Some(rel) = rels.get_mut(&oid) {
                    rel.constraints.push((
                        r.try_get(1).map_err(err)?,
                        r.try_get(2).map_err(err)?,
                        r.try_get(3).map_err(err)?,
                    ));
                }
            }
            let idx = tx
                .query(
                    format!(
                        "WITH rels AS ({RELS} ORDER BY 2, 3 LIMIT {MAX_TABLES}) \
                         SELECT i.indrelid, ic.relname::text, \
                           pg_catalog.pg_get_indexdef(i.indexrelid) \
                         FROM pg_catalog.pg_index i \
                         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
                         WHERE i.indrelid IN (SELECT oid FROM rels) \
                         ORDER BY i.indrelid, ic.relname"
                    )
                    .as_str(),
                    &params,
                )
                .await
                .map_err(err)?;
            for r in &idx {
                let oid: u32 = r.try_get(0).map_err(err)?;
                if let Some(rel) = rels.get_mut(&oid) {
                    rel.indexes
                        .push((r.try_get(1).map_err(err)?, r.try_get(2).map_err(err)?));
                }
            }
        }
        self.end(tx).await?;
        let rels = order.into_iter().filter_map(|o| rels.remove(&o)).collect();
        Ok((rels, schemas, more))
    }
}

fn pk_columns(rel: &Relation) -> Vec<String> {
    // From "PRIMARY KEY (a, b)".
    rel.constraints
        .iter()
        .find(|(_, t, _)| t == "p")
        .and_then(|(_, _, def)| {
            let inner = def.split_once('(')?.1.rsplit_once(')')?.0;
            Some(
                inner
                    .split(',')
                    .map(|c| c.trim().trim_matches('"').to_string())
                    .collect(),
            )
        })
        .unwrap_or_default()
}

fn render(
    rels: &[Relation],
    schemas: &[(String, i64)],
    more: bool,
    schema: Option<&str>,
    table: Option<&str>,
    vector_only: bool,
    compact: bool,
) -> String {
    let mut out = String::new();
    if rels.is_empty() {
        let mut what = String::from("No tables or views found");
        if let Some(s) = schema {
            let _ = write!(what, " in schema {s:?}");
        }
        if let Some(t) = table {
            let _ = write!(what, " named {t:?}");
        }
        if vector_only {
            what.push_str(" with vector columns");
        }
        let _ = writeln!(out, "{what}.");
        if !schemas.is_empty() {
            let list: Vec<String> = schemas
                .iter()
                .map(|(s, n)| format!("{s} ({n} relations)"))
                .collect();
            let _ = writeln!(out, "Schemas: {}", list.join(", "));
        }
        return out;
    }
    if table.is_none() {
        let list: Vec<String> = schemas
            .iter()
            .map(|(s, n)| format!("{s} ({n} relations)"))
            .collect();
        let _ = writeln!(out, "Schemas: {}", list.join(", "));
    }
    let _ = writeln!(
        out,
        "{} relation{}{}:",
        rels.len(),
        if rels.len() == 1 { "" } else { "s" },
        if more {
            format!(" (first {MAX_TABLES}; filter by schema_name or table_name for the rest)")
        } else {
            String::new()
        }
    );
    for rel in rels {
        if out.len() > MAX_OUTPUT_BYTES {
            let _ = writeln!(
                out,
                "\n... output cut at {} KiB; filter by schema_name or table_name, or use compact=true",
                MAX_OUTPUT_BYTES / 1024
            );
            break;
        }
        let pk = pk_columns(rel);
        let rows = if rel.rows >= 0.0 && matches!(rel.kind.as_str(), "r" | "m" | "p") {
            format!(", ~{} rows", rel.rows as i64)
        } else {
            String::new()
        };
        if compact {
            let cols: Vec<String> = rel
                .columns
                .iter()
                .map(|c| {
                    let key = if pk.contains(&c.name) { " PK" } else { "" };
                    format!("{} {}{key}", c.name, c.ty)
                })
                .collect();
            let _ = writeln!(
                out,
                "{}.{} ({}{rows}): {}",
                rel.schema,
                rel.name,
                kind_name(&rel.kind),
                cols.join(", ")
            );
            continue;
        }
        let _ = writeln!(
            out,
            "\n## {}.{} ({}{rows})",
            rel.schema,
            rel.name,
            kind_name(&rel.kind)
        );
        if let Some(c) = &rel.comment {
            let _ = writeln!(out, "Description: {c}");
        }
        let _ = writeln!(out, "Columns:");
        for c in &rel.columns {
            let mut line = format!("  - {} {}", c.name, c.ty);
            if pk.contains(&c.name) {
                line.push_str(" PRIMARY KEY");
            }
            if c.not_null {
                line.push_str(" NOT NULL");
            }
            if let Some(d) = &c.default {
                let _ = write!(line, " DEFAULT {d}");
            }
            if let Some(cm) = &c.comment {
                let _ = write!(line, " -- {cm}");
            }
            let _ = writeln!(out, "{line}");
        }
        if !rel.constraints.is_empty() {
            let _ = writeln!(out, "Constraints:");
            for (name, _, def) in &rel.constraints {
                let _ = writeln!(out, "  - {name}: {def}");
            }
        }
        if !rel.indexes.is_empty() {
            let _ = writeln!(out, "Indexes:");
            for (_, def) in &rel.indexes {
                let _ = writeln!(out, "  - {def}");
            }
        }
    }
    out
}
