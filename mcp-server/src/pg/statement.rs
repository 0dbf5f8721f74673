//! Curated statements: the SQL of a `tools.yaml` tool, run with its
//! arguments bound by declared type ([`super::bind`]).
//!
//! A reader tool runs exactly like `query_database`: the statement passes
//! the guard again (the file was checked when it was published; the server
//! checks before it sends), in the read-only transaction that is always
//! rolled back, with the same timeouts and row caps, whatever the database
//! allows. A writer tool runs only on a database whose configuration says
//! `allow_writers: true`: one statement, which the guard accepts as a
//! writer's (no transaction control, no settings or role changes, no
//! `DO`/`COPY`, no side-effecting functions), in an explicit `READ WRITE`
//! transaction with the same statement and lock timeouts, committed only
//! when it succeeded.

use deadpool_postgres::Object;

use super::bind::Bound;
use super::guard::{self, Access, StatementKind};
use super::ops::{Paging, Rows, render_rows};
use super::{Database, ToolError};

/// What a statement gave back.
enum Outcome {
    Rows(Rows),
    /// Rows written (or returned, for a writer whose rows cannot be shown).
    Count(u64, &'static str),
}

impl Database {
    /// Run a curated statement (`$1`..`$n` for `params`, in order) and
    /// describe its result: rows as JSON, at most `max_rows`, or for a
    /// writer without `RETURNING` the number of rows it wrote.
    pub async fn run_statement(
        &self,
        sql: &str,
        params: &[Bound],
        writer: bool,
    ) -> Result<String, ToolError> {
        let access = if writer {
            Access::Writer
        } else {
            Access::Reader
        };
        let checked = guard::check_curated(sql, access).map_err(|r| ToolError::Rejected(r.0))?;
        if writer && !self.allow_writers {
            return Err(ToolError::WritersOff {
                database: self.name.clone(),
            });
        }
        let limit = self.limits.max_rows;
        let mut client = self.checkout().await?;
        let outcome = tokio::time::timeout(self.deadline(), async {
            if writer {
                self.write_in(&mut client, checked.body, checked.kind, params, limit)
                    .await
            } else {
                let tx = self.begin(&mut client).await?;
                let rows = self
                    .rows_in(&tx, checked.body, checked.kind, limit, 0, params)
                    .await?;
                self.end(tx).await?;
                Ok(Outcome::Rows(rows))
            }
        })
        .await;
        Ok(match self.settle(client, outcome).await? {
            Outcome::Rows(rows) => {
                let mut out = render_rows(rows, limit, Paging::None);
                if writer {
                    out.insert_str(0, "Committed. ");
                }
                out
            }
            Outcome::Count(n, note) => format!(
                "Committed. {n} row{} {note}.",
                if n == 1 { "" } else { "s" }
            ),
        })
    }

    async fn write_in(
        &self,
        client: &mut Object,
        body: &str,
        kind: StatementKind,
        params: &[Bound],
        limit: usize,
    ) -> Result<Outcome, ToolError> {
        let tx = self.begin_writer(client).await?;
        let types = Bound::types(params);
        let stmt = tx
            .prepare_typed(body, &types)
            .await
            .map_err(|e| self.pg_error(e))?;
        // A WITH whose CTEs write cannot be wrapped to show its rows
        // (PostgreSQL keeps data-modifying WITH at the top level).
        let with = body
            .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
            .get(..4)
            .is_some_and(|w| w.eq_ignore_ascii_case("with"));
        let outcome = if stmt.columns().is_empty() {
            let n = tx
                .execute(&stmt, &Bound::values(params))
                .await
                .map_err(|e| self.pg_error(e))?;
            Outcome::Count(n, "written")
        } else if with {
            let n = tx
                .execute(&stmt, &Bound::values(params))
                .await
                .map_err(|e| self.pg_error(e))?;
            Outcome::Count(n, "returned (not shown: the statement starts with WITH)")
        } else {
            Outcome::Rows(self.rows_in(&tx, body, kind, limit, 0, params).await?)
        };
        drop(stmt);
        self.commit(tx).await?;
        Ok(outcome)
    }
}
