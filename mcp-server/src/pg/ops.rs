//! The read-only operations: `query_database`, `execute_explain`,
//! `count_rows` and `pg://system_info`.
//!
//! Each call checks its input with the guard, takes a pooled connection,
//! opens the read-only transaction ([`Database::begin`]), runs exactly one
//! statement through the extended protocol, and rolls back. The rows of a
//! statement become JSON on the server ([`Database::rows_in`]), for these
//! tools and for the curated ones ([`super::statement`]).

use deadpool_postgres::Object;
use serde_json::json;

use super::bind::Bound;
use super::guard::{self, StatementKind};
use super::{Database, ToolError};

/// Upper bound on the text one call returns, so a wide result cannot flood
/// the model's context.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// Upper bound on one row's JSON, in characters.
pub const MAX_ROW_CHARS: usize = 32 * 1024;

/// The relation kinds `count_rows` accepts: tables, partitioned tables,
/// views, materialized views, foreign tables.
const COUNTABLE_KINDS: &str = "('r','p','v','m','f')";

pub(super) struct Rows {
    columns: Vec<(String, String)>,
    /// One JSON object per row, columns in order.
    rows: Vec<String>,
}

impl Database {
    /// `query_database`: run one read-only statement and return up to `limit`
    /// rows (default 100, at most `max_rows`) after skipping `offset`, as JSON
    /// objects, with the column types and whether more rows exist.
    pub async fn query(
        &self,
        sql: &str,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<String, ToolError> {
        let checked = guard::check_statement(sql, true).map_err(|r| ToolError::Rejected(r.0))?;
        let (limit, capped) = self.resolve_limit(limit)?;
        let offset = match offset {
            None => 0,
            Some(o) if o >= 0 => o as u64,
            Some(o) => {
                return Err(ToolError::InvalidArgument(format!(
                    "offset must be 0 or more, not {o}"
                )));
            }
        };
        let mut client = self.checkout().await?;
        let outcome = tokio::time::timeout(
            self.deadline(),
            self.query_in(&mut client, checked.body, checked.kind, limit, offset),
        )
        .await;
        let rows = self.settle(client, outcome).await?;
        Ok(render_rows(
            rows,
            limit,
            Paging::Offset {
                offset,
                capped,
                max_rows: self.limits.max_rows,
            },
        ))
    }

    fn resolve_limit(&self, limit: Option<i64>) -> Result<(usize, bool), ToolError> {
        match limit {
            None => Ok((self.limits.default_limit, false)),
            Some(l) if l < 1 => Err(ToolError::InvalidArgument(format!(
                "limit must be at least 1, not {l}"
            ))),
            Some(l) if l as u64 > self.limits.max_rows as u64 => Ok((self.limits.max_rows, true)),
            Some(l) => Ok((l as usize, false)),
        }
    }

    async fn query_in(
        &self,
        client: &mut Object,
        body: &str,
        kind: StatementKind,
        limit: usize,
        offset: u64,
    ) -> Result<Rows, ToolError> {
        let tx = self.begin(client).await?;
        let rows = self.rows_in(&tx, body, kind, limit, offset, &[]).await?;
        self.end(tx).await?;
        Ok(rows)
    }

    /// Run one statement the guard accepted in `tx`, with `params` bound by
    /// their declared types, and take up to `limit` + 1 of its rows after
    /// `offset` as JSON objects. A query is wrapped as a subquery and an
    /// `INSERT`/`UPDATE`/`DELETE ... RETURNING` as a CTE, in fixed text, so
    /// that every type becomes JSON on the server.
    pub(super) async fn rows_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        body: &str,
        kind: StatementKind,
        limit: usize,
        offset: u64,
        params: &[Bound],
    ) -> Result<Rows, ToolError> {
        let (types, values) = (Bound::types(params), Bound::values(params));
        let typed: Vec<(
            &(dyn tokio_postgres::types::ToSql + Sync),
            tokio_postgres::types::Type,
        )> = values.iter().copied().zip(types.iter().cloned()).collect();
        // Fixed text around a statement the guard accepted, which the
        // server parses as one statement: every type becomes JSON, in
        // column order, and only limit+1 rows come back. A row longer than
        // MAX_ROW_CHARS is cut on the server, so a huge value never crosses
        // the wire whole.
        let wrapped = match kind {
            StatementKind::Query | StatementKind::Write => {
                let (with, from) = match kind {
                    StatementKind::Write => (
                        format!("WITH __mcp_q AS (\n{body}\n) "),
                        "__mcp_q".to_string(),
                    ),
                    _ => (String::new(), format!("(\n{body}\n) AS __mcp_q")),
                };
                Some(format!(
                    "{with}SELECT pg_catalog.left(__mcp_r.j, {MAX_ROW_CHARS}), pg_catalog.length(__mcp_r.j) \
                     FROM (SELECT pg_catalog.row_to_json(__mcp_q.*)::text AS j FROM {from} \
                     LIMIT {} OFFSET {offset}) AS __mcp_r",
                    limit + 1
                ))
            }
            StatementKind::Show => None,
        };
        // One round trip: the statement is described (its columns, and
        // PostgreSQL's own refusal of several commands in one Parse) and
        // the wrapped statement runs, pipelined in that order. If the
        // first fails, the transaction is aborted and the second runs
        // nothing; the first one's error is the one to report (both are
        // awaited: the second's, "transaction is aborted", may be seen
        // first).
        let (stmt, wrapped_rows) = match &wrapped {
            Some(w) => {
                let (stmt, rows) =
                    tokio::join!(tx.prepare_typed(body, &types), tx.query_typed(w, &typed));
                let stmt = stmt.map_err(|e| self.pg_error(e))?;
                (stmt, Some(rows.map_err(|e| self.pg_error(e))?))
            }
            None => (
                tx.prepare_typed(body, &types)
                    .await
                    .map_err(|e| self.pg_error(e))?,
                None,
            ),
        };
        let columns: Vec<(String, String)> = stmt
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().name().to_string()))
            .collect();
        let rows = match wrapped_rows {
            Some(rows) => rows
                .iter()
                .map(|r| {
                    let text = r.try_get::<_, Option<String>>(0).ok().flatten();
                    let len = r.try_get::<_, Option<i32>>(1).ok().flatten().unwrap_or(0);
                    match text {
                        None => "null".to_string(),
                        Some(t) if len as usize > MAX_ROW_CHARS => format!(
                            "{{\"_row_truncated\":{},\"_prefix\":{}}}",
                            json!(format!(
                                "this row is {len} characters of JSON; showing the first \
                                 {MAX_ROW_CHARS}: select fewer or shorter columns"
                            )),
                            json!(t)
                        ),
                        Some(t) => t,
                    }
                })
                .collect(),
            None => {
                let rows = tx
                    .query(&stmt, &values)
                    .await
                    .map_err(|e| self.pg_error(e))?;
                rows.iter()
                    .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                    .take(limit + 1)
                    .map(|r| {
                        let fields: Vec<String> = columns
                            .iter()
                            .enumerate()
                            .map(|(i, (name, _))| {
                                let v = r.try_get::<_, Option<String>>(i).ok().flatten();
                                format!("{}:{}", json!(name), json!(v))
                            })
                            .collect();
                        format!("{{{}}}", fields.join(","))
                    })
                    .collect()
            }
        };
        Ok(Rows { columns, rows })
    }

    /// `execute_explain`: `EXPLAIN` (with `ANALYZE` and `BUFFERS` when asked)
    /// of one read-only query, in a read-only transaction that is rolled
    /// back, so `ANALYZE` cannot keep any effect.
    pub async fn explain(
        &self,
        sql: &str,
        analyze: bool,
        buffers: bool,
    ) -> Result<String, ToolError> {
        let checked = guard::check_statement(sql, false).map_err(|r| ToolError::Rejected(r.0))?;
        let buffers = buffers && analyze;
        let explain = format!(
            "EXPLAIN (ANALYZE {analyze}, BUFFERS {buffers}, FORMAT TEXT)\n{}",
            checked.body
        );
        let mut client = self.checkout().await?;
        let outcome =
            tokio::time::timeout(self.deadline(), self.lines_in(&mut client, &explain)).await;
        let lines = self.settle(client, outcome).await?;
        let mut out = String::from(match (analyze, buffers) {
            (true, true) => "EXPLAIN (ANALYZE, BUFFERS)",
            (true, false) => "EXPLAIN ANALYZE",
            _ => "EXPLAIN",
        });
        if analyze {
            out.push_str(" — executed in a read-only transaction that was rolled back");
        }
        out.push_str(":\n\n");
        out.push_str(&lines.join("\n"));
        Ok(out)
    }

    /// Run fixed-shape SQL returning one text column per row.
    async fn lines_in(&self, client: &mut Object, sql: &str) -> Result<Vec<String>, ToolError> {
        let tx = self.begin(client).await?;
        let rows = tx.query(sql, &[]).await.map_err(|e| self.pg_error(e))?;
        self.end(tx).await?;
        Ok(rows
            .iter()
            .map(|r| {
                r.try_get::<_, Option<String>>(0)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            })
            .collect())
    }

    /// `count_rows`: `SELECT count(*)` of one table, view or materialized
    /// view, optionally filtered. `schema` and `table` are looked up in the
    /// catalog with bound parameters and quoted from the catalog's spelling;
    /// `where_` must pass [`guard::check_expression`].
    pub async fn count_rows(
        &self,
        schema: Option<&str>,
        table: &str,
        where_: Option<&str>,
    ) -> Result<String, ToolError> {
        let table = table.trim();
        if table.is_empty() {
            return Err(ToolError::InvalidArgument("table is required".into()));
        }
        let schema = schema.map(str::trim).filter(|s| !s.is_empty());
        let condition = match where_.map(str::trim).filter(|w| !w.is_empty()) {
            None => None,
            Some(w) => Some(guard::check_expression(w).map_err(|r| ToolError::Rejected(r.0))?),
        };
        let mut client = self.checkout().await?;
        let outcome = tokio::time::timeout(
            self.deadline(),
            self.count_in(&mut client, schema, table, condition),
        )
        .await;
        let (s, t, n) = self.settle(client, outcome).await?;
        Ok(match condition {
            None => format!("{s}.{t}: {n} rows"),
            Some(c) => format!("{s}.{t}: {n} rows where {c}"),
        })
    }

    async fn count_in(
        &self,
        client: &mut Object,
        schema: Option<&str>,
        table: &str,
        condition: Option<&str>,
    ) -> Result<(String, String, i64), ToolError> {
        let tx = self.begin(client).await?;
        let (s, t) = match self.find_relation(&tx, schema, table).await? {
            Some(found) => found,
            None => match (schema, table.split_once('.')) {
                // `schema.table` given as the table name.
                (None, Some((s, t))) if !s.is_empty() && !t.is_empty() => {
                    match self.find_relation(&tx, Some(s), t).await? {
                        Some(found) => found,
                        None => return Err(not_found(schema, table)),
                    }
                }
                _ => return Err(not_found(schema, table)),
            },
        };
        let mut sql = format!(
            "SELECT pg_catalog.count(*) FROM {}.{}",
            guard::quote_ident(&s),
            guard::quote_ident(&t)
        );
        if let Some(c) = condition {
            sql.push_str(&format!(" WHERE (\n{c}\n)"));
        }
        let row = tx
            .query_one(sql.as_str(), &[])
            .await
            .map_err(|e| self.pg_error(e))?;
        let n: i64 = row.try_get(0).map_err(|e| self.pg_error(e))?;
        self.end(tx).await?;
        Ok((s, t, n))
    }

    /// The catalog's (schema, name) of a countable relation. Without a
    /// schema: the one visible on the search path, else the only match.
    pub(super) async fn find_relation(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Option<(String, String)>, ToolError> {
        let sql = format!(
            "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_table_is_visible(c.oid) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = $1 AND ($2::text IS NULL OR n.nspname = $2) \
             AND c.relkind IN {COUNTABLE_KINDS} \
             ORDER BY 3 DESC, 1"
        );
        let rows = tx
            .query(sql.as_str(), &[&table, &schema])
            .await
            .map_err(|e| self.pg_error(e))?;
        let found: Vec<(String, String, bool)> = rows
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?, r.try_get(2).ok()?)))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [(s, t, _)] => Ok(Some((s.clone(), t.clone()))),
            [(s, t, true), ..] => Ok(Some((s.clone(), t.clone()))),
            many => Err(ToolError::InvalidArgument(format!(
                "table {table:?} exists in several schemas ({}); give `schema`",
                many.iter()
                    .map(|(s, _, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// `pg://system_info`: server version, database, size, uptime, role and
    /// settings of interest, as JSON text.
    pub async fn system_info(&self) -> Result<String, ToolError> {
        const SQL: &str = "SELECT pg_catalog.version(), \
            pg_catalog.current_database()::text, \
            current_user::text, \
            pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(pg_catalog.current_database())), \
            pg_catalog.pg_postmaster_start_time()::text, \
            pg_catalog.date_trunc('second', pg_catalog.now() - pg_catalog.pg_postmaster_start_time())::text, \
            pg_catalog.pg_is_in_recovery(), \
            pg_catalog.current_setting('server_version'), \
            pg_catalog.current_setting('server_encoding'), \
            pg_catalog.current_setting('TimeZone'), \
            pg_catalog.current_setting('max_connections'), \
            pg_catalog.current_setting('shared_buffers'), \
            pg_catalog.current_setting('work_mem'), \
            pg_catalog.current_setting('default_transaction_read_only'), \
            pg_catalog.current_setting('statement_timeout'), \
            (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), \
            (SELECT pg_catalog.string_agg(e.extname || ' ' || e.extversion, ', ' ORDER BY e.extname) \
               FROM pg_catalog.pg_extension e)";
        let mut client = self.checkout().await?;
        let outcome = tokio::time::timeout(self.deadline(), async {
            let tx = self.begin(&mut client).await?;
            let row = tx.query_one(SQL, &[]).await.map_err(|e| self.pg_error(e))?;
            self.end(tx).await?;
            Ok(row)
        })
        .await;
        let row = self.settle(client, outcome).await?;
        let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
        let flag = |i: usize| row.try_get::<_, Option<bool>>(i).ok().flatten();
        let superuser = flag(15);
        let info = json!({
            "database_name": self.name,
            "version": text(0),
            "server_version": text(7),
            "database": text(1),
            "user": text(2),
            "user_is_superuser": superuser,
            "database_size": text(3),
            "started_at": text(4),
            "uptime": text(5),
            "in_recovery": flag(6),
            "settings": {
                "server_encoding": text(8),
                "TimeZone": text(9),
                "max_connections": text(10),
                "shared_buffers": text(11),
                "work_mem": text(12),
                "default_transaction_read_only": text(13),
                "statement_timeout": text(14),
            },
            "extensions": text(16),
            "mcp_limits": {
                "statement_timeout_ms": self.limits.statement_timeout.as_millis() as u64,
                "default_limit": self.limits.default_limit,
                "max_rows": self.limits.max_rows,
            },
            "warning": (superuser == Some(true)).then_some(
                "connected as a superuser: use a read-only role (see the server documentation)"
            ),
        });
        Ok(serde_json::to_string_pretty(&info).unwrap_or_else(|_| info.to_string()))
    }
}

pub(super) fn not_found(schema: Option<&str>, table: &str) -> ToolError {
    match schema {
        Some(s) => ToolError::InvalidArgument(format!(
            "no table or view named {table:?} in schema {s:?} (names are case-sensitive; \
             see get_schema_info)"
        )),
        None => ToolError::InvalidArgument(format!(
            "no table or view named {table:?} (names are case-sensitive; see get_schema_info)"
        )),
    }
}

/// How a caller pages through rows: `query_database` with `offset`, a
/// curated tool not at all (its statement decides what it returns).
pub(super) enum Paging {
    Offset {
        offset: u64,
        capped: bool,
        max_rows: usize,
    },
    None,
}

pub(super) fn render_rows(rows: Rows, limit: usize, paging: Paging) -> String {
    let Rows { columns, rows } = rows;
    let (offset, capped, max_rows) = match paging {
        Paging::Offset {
            offset,
            capped,
            max_rows,
        } => (Some(offset), capped, max_rows),
        Paging::None => (None, false, limit),
    };
    let more = rows.len() > limit;
    let mut body = String::from("[");
    let mut shown = 0usize;
    let mut cut_for_size = false;
    for r in rows.iter().take(limit) {
        if body.len() + r.len() + 3 > MAX_OUTPUT_BYTES && shown > 0 {
            cut_for_size = true;
            break;
        }
        body.push_str(if shown == 0 { "\n" } else { ",\n" });
        body.push_str(r);
        shown += 1;
    }
    body.push_str(if shown == 0 { "]" } else { "\n]" });
    let mut out = format!("{shown} row{}", if shown == 1 { "" } else { "s" });
    match offset {
        Some(offset) => {
            out.push_str(&format!(" (offset {offset}, limit {limit})"));
            if cut_for_size {
                out.push_str(&format!(
                    "; output cut at {} KiB: more rows exist, continue with offset={} or select \
                     fewer columns",
                    MAX_OUTPUT_BYTES / 1024,
                    offset + shown as u64
                ));
            } else if more {
                out.push_str(&format!(
                    "; more rows exist: continue with offset={}",
                    offset + shown as u64
                ));
            }
        }
        None if cut_for_size => out.push_str(&format!(
            "; output cut at {} KiB: more rows exist",
            MAX_OUTPUT_BYTES / 1024
        )),
        None if more => out.push_str(&format!(
            "; more rows exist: only the first {limit} (max_rows) are shown"
        )),
        None => {}
    }
    if capped {
        out.push_str(&format!("; limit capped at max_rows={max_rows}"));
    }
    out.push_str(".\n");
    if !columns.is_empty() {
        let cols: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
        out.push_str(&format!("Columns: {}\n", cols.join(", ")));
    }
    out.push_str(&body);
    out
}
