//! The statement guard: the first layer, which refuses before anything is
//! sent to the server.
//!
//! It works on tokens from a small lexer (`lexer.rs`), so a keyword inside a
//! string literal, a quoted identifier, a dollar quote or a comment is never
//! mistaken for code, and code is never hidden from it. It rejects:
//!
//! - more than one statement (a `;` followed by anything but comments);
//! - unbalanced parentheses (which could close the wrapper the tools add);
//! - any statement that does not start with `SELECT`, `WITH`, `VALUES`,
//!   `TABLE` (or `SHOW`, for `query_database`), with a specific message for
//!   transaction control, `SET`/`RESET`/`SET ROLE`, `DO`, `CALL`, `COPY`,
//!   `EXPLAIN` and the DDL/DML statements;
//! - data-modifying keywords anywhere (`INSERT`, `UPDATE`, `DELETE`,
//!   `MERGE`: writable CTEs), `SELECT ... INTO` and row locks (`FOR UPDATE`,
//!   `FOR SHARE`, ...);
//! - positional parameters (`$1`);
//! - calls of side-effecting or server-file functions ([`DANGEROUS_FUNCTIONS`],
//!   [`DANGEROUS_PREFIXES`]), whether written plainly, schema-qualified or as a
//!   quoted identifier, in any letter case.
//!
//! The guard is one layer of several: what it lets through still runs as one
//! prepared statement in a read-only transaction that is rolled back.
//!
//! A curated statement (a tool of `tools.yaml`, written by the operator and
//! checked when the file is verified) goes through the same checks with
//! [`check_curated`]: its parameters (`$1`...) are allowed, and a writer
//! tool's statement may also be `INSERT`, `UPDATE`, `DELETE` or `MERGE`;
//! everything else (one statement, no transaction control, no settings or
//! role changes, no `DO`/`CALL`/`COPY`, no side-effecting functions) holds
//! for both.

use super::lexer::{Kind, Token, lex};

/// Functions that change state, escape the transaction, touch server files or
/// run SQL text the guard never saw. Matched anywhere as a word or a quoted
/// identifier.
pub const DANGEROUS_FUNCTIONS: &[&str] = &[
    "nextval",
    "setval",
    "set_config",
    "txid_current",
    "pg_current_xact_id",
    "pg_notify",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_promote",
    "pg_stat_file",
    "pg_export_snapshot",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_stat_statements_reset",
    "pg_truncate_visibility_map",
    "gin_clean_pending_list",
    "pg_nextoid",
    "loread",
    "lowrite",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "ts_stat",
    "ts_rewrite",
];

/// Function families matched by prefix when followed by `(`.
pub const DANGEROUS_PREFIXES: &[&str] = &[
    "pg_advisory",
    "pg_try_advisory",
    "lo_",
    "dblink",
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_create_",
    "pg_drop_replication",
    "pg_replication_",
    "pg_copy_",
    "pg_logical_",
    "pg_wal_replay",
    "pg_backup_",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_stat_reset",
    "brin_summarize",
    "brin_desummarize",
    "binary_upgrade_",
];

/// What kind of statement passed the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// `SELECT`, `WITH`, `VALUES`, `TABLE` (possibly parenthesised): can be
    /// wrapped as a subquery.
    Query,
    /// `SHOW name`: run as is.
    Show,
    /// `INSERT`, `UPDATE`, `DELETE` or `MERGE` (writer tools only).
    Write,
}

/// A statement the guard accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<'a> {
    /// The statement text from its first token to its last, without a
    /// trailing `;` or trailing comments.
    pub body: &'a str,
    pub kind: StatementKind,
}

/// Why the guard refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn reject<T>(msg: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(msg.into()))
}

/// What a statement may be, beyond a read-only query.
#[derive(Debug, Clone, Copy, Default)]
struct Rules {
    /// `SHOW name` (query_database).
    show: bool,
    /// Positional parameters `$1`... (curated statements, bound by the server).
    params: bool,
    /// `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `INTO` and row locks (writer tools).
    writes: bool,
}

/// Who a curated statement runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A read-only tool: checked like `query_database`'s statement.
    Reader,
    /// A tool marked `writer: true`: it may also insert, update, delete or merge.
    Writer,
}

/// Check a statement for `query_database` (`allow_show`) or for
/// `execute_explain` (no `SHOW`, no `EXPLAIN` prefix).
pub fn check_statement(sql: &str, allow_show: bool) -> Result<Checked<'_>, Rejection> {
    check(
        sql,
        Rules {
            show: allow_show,
            ..Rules::default()
        },
    )
}

/// Check a curated statement of `tools.yaml`, whose parameters are
/// `$1`..`$n`.
pub fn check_curated(sql: &str, access: Access) -> Result<Checked<'_>, Rejection> {
    let rules = Rules {
        show: false,
        params: true,
        writes: access == Access::Writer,
    };
    check(sql, rules)
}

fn check(sql: &str, rules: Rules) -> Result<Checked<'_>, Rejection> {
    let tokens = lex(sql).map_err(|e| Rejection(e.0))?;
    if tokens.is_empty() {
        return reject("the query is empty");
    }
    // One statement: a `;` may only be the last token.
    let mut end = tokens.len();
    if let Some(pos) = tokens.iter().position(|t| t.kind == Kind::Punct(';')) {
        if pos + 1 != tokens.len() {
            return reject(
                "only one statement is allowed: remove the `;` and everything after it \
                 (stacked statements are refused)",
            );
        }
        end = pos;
    }
    let tokens = &tokens[..end];
    if tokens.is_empty() {
        return reject("the query is empty");
    }
    check_parens(tokens)?;
    let kind = check_head(tokens, rules)?;
    check_tokens(tokens, rules)?;
    let body = &sql[tokens[0].start..tokens[tokens.len() - 1].end];
    Ok(Checked { body, kind })
}

/// Check a `count_rows` condition: one boolean expression that cannot end the
/// `WHERE ( ... )` it is placed in.
pub fn check_expression(expr: &str) -> Result<&str, Rejection> {
    let tokens = lex(expr).map_err(|e| Rejection(e.0))?;
    if tokens.is_empty() {
        return reject("the condition is empty");
    }
    if tokens.iter().any(|t| t.kind == Kind::Punct(';')) {
        return reject("`;` is not allowed in a condition: give one boolean expression");
    }
    check_parens(&tokens)?;
    check_tokens(&tokens, Rules::default())?;
    for t in &tokens {
        if let Kind::Word(w) = &t.kind
            && EXPRESSION_FORBIDDEN_WORDS.contains(&w.as_str())
        {
            return reject(format!(
                "the keyword {} is not allowed in a condition (if it is a column name, \
                 double-quote it)",
                w.to_uppercase()
            ));
        }
    }
    Ok(&expr[tokens[0].start..tokens[tokens.len() - 1].end])
}

/// Statement keywords that have no place in a boolean expression.
const EXPRESSION_FORBIDDEN_WORDS: &[&str] = &[
    "drop",
    "create",
    "alter",
    "truncate",
    "grant",
    "revoke",
    "copy",
    "call",
    "do",
    "execute",
    "prepare",
    "deallocate",
    "begin",
    "commit",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "set",
    "reset",
    "listen",
    "unlisten",
    "notify",
    "vacuum",
    "lock",
    "returning",
];

fn check_parens(tokens: &[Token]) -> Result<(), Rejection> {
    let mut depth: i64 = 0;
    for t in tokens {
        match t.kind {
            Kind::Punct('(') => depth += 1,
            Kind::Punct(')') => {
                depth -= 1;
                if depth < 0 {
                    return reject("unbalanced parentheses: a `)` closes nothing");
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return reject("unbalanced parentheses: a `(` is never closed");
    }
    Ok(())
}

fn check_head(tokens: &[Token], rules: Rules) -> Result<StatementKind, Rejection> {
    let allow_show = rules.show;
    let first = tokens
        .iter()
        .find(|t| t.kind != Kind::Punct('('))
        .map(|t| &t.kind);
    let parenthesised = tokens[0].kind == Kind::Punct('(');
    let word = match first {
        Some(Kind::Word(w)) => w.as_str(),
        _ => {
            return reject(
                "a query must start with SELECT, WITH, VALUES, TABLE or SHOW".to_string(),
            );
        }
    };
    let second = tokens
        .iter()
        .skip_while(|t| t.kind == Kind::Punct('('))
        .nth(1)
        .map(|t| &t.kind);
    let second_word = match second {
        Some(Kind::Word(w)) => w.as_str(),
        _ => "",
    };
    match word {
        "select" | "with" | "values" | "table" => Ok(StatementKind::Query),
        "insert" | "update" | "delete" | "merge" if rules.writes => Ok(StatementKind::Write),
        "show" if allow_show && !parenthesised => Ok(StatementKind::Show),
        "show" => reject("SHOW cannot be explained; run it with query_database"),
        "explain" if allow_show => {
            reject("EXPLAIN is not run by query_database: use the execute_explain tool")
        }
        "explain" => reject("give the query without EXPLAIN: execute_explain adds it"),
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release" => {
            reject(format!(
                "transaction control ({}) is not allowed: every query runs in a read-only \
                 transaction that is always rolled back",
                word.to_uppercase()
            ))
        }
        "prepare" if second_word == "transaction" => reject(
            "transaction control (PREPARE TRANSACTION) is not allowed: every query runs in a \
             read-only transaction that is always rolled back",
        ),
        "set" | "reset" => {
            if second_word == "role" || second_word == "session" {
                reject("changing the role (SET ROLE / SET SESSION AUTHORIZATION) is not allowed")
            } else {
                reject(format!(
                    "changing settings ({}) is not allowed",
                    word.to_uppercase()
                ))
            }
        }
        "do" | "call" => reject(format!(
            "{} is not allowed: procedural code cannot run through this tool",
            word.to_uppercase()
        )),
        "copy" => reject("COPY is not allowed: read data with SELECT"),
        "insert" | "update" | "delete" | "merge" | "create" | "alter" | "drop" | "truncate"
        | "grant" | "revoke" | "comment" | "security" | "refresh" | "import" | "reindex"
        | "cluster" | "vacuum" | "analyze" | "analyse" | "lock" | "discard" | "load"
        | "checkpoint" | "prepare" | "execute" | "deallocate" | "declare" | "fetch" | "move"
        | "close" | "listen" | "unlisten" | "notify" | "reassign" => reject(format!(
            "{} statements are not allowed: this tool runs read-only queries only \
             (SELECT, WITH, VALUES, TABLE{})",
            word.to_uppercase(),
            if allow_show { ", SHOW" } else { "" }
        )),
        other => reject(format!(
            "statements starting with {} are not allowed: use SELECT, WITH, VALUES, TABLE{}",
            other.to_uppercase(),
            if allow_show { " or SHOW" } else { "" }
        )),
    }
}

/// Token checks shared by statements and expressions.
fn check_tokens(tokens: &[Token], rules: Rules) -> Result<(), Rejection> {
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).map(|t| &t.kind);
        match &t.kind {
            Kind::Param if rules.params => {}
            Kind::Param => {
                return reject(
                    "query parameters ($1, $2, ...) are not supported: write the values inline",
                );
            }
            Kind::Word(w) => {
                check_name(w, next)?;
                if rules.writes && matches!(w.as_str(), "for" | "into") {
                    continue;
                }
                match w.as_str() {
                    "for" => {
                        if let Some(Kind::Word(n)) = next
                            && matches!(n.as_str(), "update" | "share" | "no" | "key")
                        {
                            return reject(
                                "row locks (FOR UPDATE / FOR SHARE) are not allowed in \
                                 read-only queries",
                            );
                        }
                    }
                    "insert" | "update" | "delete" | "merge" if !rules.writes => {
                        return reject(format!(
                            "data-modifying keyword {} is not allowed (this includes writable \
                             CTEs such as WITH x AS (DELETE ...)); if it is a column name, \
                             double-quote it",
                            w.to_uppercase()
                        ));
                    }
                    "into" => {
                        return reject(
                            "INTO is not allowed: SELECT ... INTO creates a table; \
                             read-only queries only",
                        );
                    }
                    _ => {}
                }
            }
            Kind::QuotedIdent(name) => check_name(&name.to_ascii_lowercase(), next)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_name(name: &str, next: Option<&Kind>) -> Result<(), Rejection> {
    let called = next == Some(&Kind::Punct('('));
    if DANGEROUS_FUNCTIONS.contains(&name)
        || (called && DANGEROUS_PREFIXES.iter().any(|p| name.starts_with(p)))
    {
        return reject(format!(
            "the function {name}() is not allowed: it has side effects, escapes the \
             read-only transaction or reads server files"
        ));
    }
    Ok(())
}

/// Quote an identifier for PostgreSQL: `"` + the name with `"` doubled + `"`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> Checked<'_> {
        check_statement(sql, true).unwrap_or_else(|e| panic!("{sql:?} rejected: {e}"))
    }

    fn bad(sql: &str) -> String {
        match check_statement(sql, true) {
            Ok(c) => panic!("{sql:?} accepted as {c:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn legitimate_queries_pass() {
        for sql in [
            "SELECT 1",
            "select 'a; DELETE FROM t'",
            "SELECT update_count, created_at FROM t WHERE note = 'drop table'",
            "SELECT $$ ; DELETE FROM t; COMMIT $$ AS x",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "VALUES (1), (2)",
            "TABLE t",
            "(SELECT 1) UNION (SELECT 2)",
            "SELECT \"update\" FROM t -- trailing comment ;",
            "SELECT 1;",
            "SELECT 1 ; -- done",
            "SELECT substring('abc' FROM 1 FOR 2)",
            "SELECT currval('s'), pg_sleep(0)",
            "SELECT e'\\n', E'it\\'s'",
        ] {
            ok(sql);
        }
        assert_eq!(ok("  SELECT 1 ; -- x").body, "SELECT 1");
        assert_eq!(ok("SHOW work_mem").kind, StatementKind::Show);
    }

    #[test]
    fn escapes_are_refused() {
        for sql in [
            "SELECT 1; DELETE FROM t",
            "COMMIT; BEGIN READ WRITE; DELETE FROM t",
            "END; INSERT INTO t VALUES (1)",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT nextval('s')",
            "SELECT pg_catalog.setval('s', 1)",
            "SELECT \"nextval\"('s')",
            "SELECT \"NEXTVAL\"('s')",
            "SELECT set_config('transaction_read_only','off',true)",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "DO $$ BEGIN DELETE FROM t; END $$",
            "COPY t TO PROGRAM 'touch /tmp/x'",
            "SELECT lo_import('/etc/passwd')",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT 1 /* ; */ ; DELETE FROM t",
            "SELECT 1 -- x\n; DELETE FROM t",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * INTO TEMP x FROM t",
            "PREPARE x AS DELETE FROM t",
            "CALL p()",
            "LISTEN c",
            "NOTIFY c",
            "VACUUM t",
            "LOCK TABLE t",
            "SELECT pg_advisory_lock(1)",
            "SELECT * FROM dblink('x', 'y') AS t(a int)",
            "SELECT query_to_xml('select nextval(''s'')', true, true, '')",
            "SELECT 1) AS q, (SELECT 2",
            "SELECT $1",
            "EXPLAIN ANALYZE DELETE FROM t",
            "SELECT pg_terminate_backend(1)",
            "SELECT txid_current()",
            "SELECT U&\"\\006Eextval\"('s')",
            "",
            "  -- only a comment",
        ] {
            bad(sql);
        }
        assert!(bad("SELECT 1; DELETE FROM t").contains("one statement"));
        assert!(bad("BEGIN").contains("transaction control"));
        assert!(bad("SET ROLE x").contains("role"));
        assert!(bad("WITH d AS (DELETE FROM t) SELECT 1").contains("writable"));
    }

    #[test]
    fn explain_refuses_show_and_nested_explain() {
        assert!(check_statement("SHOW work_mem", false).is_err());
        assert!(check_statement("EXPLAIN SELECT 1", false).is_err());
        assert!(check_statement("SELECT 1", false).is_ok());
    }

    #[test]
    fn expressions() {
        for e in [
            "id > 1",
            "note = 'x; DROP TABLE t'",
            "id IN (SELECT id FROM t WHERE flag)",
            "created_at > now() - interval '1 day'",
            "\"set\" = 1",
        ] {
            check_expression(e).unwrap_or_else(|r| panic!("{e}: {r}"));
        }
        for e in [
            "1=1); DROP TABLE t; --",
            "true) OR (SELECT setval('s', 1)) > 0 OR (true",
            "1=1) OR (SELECT nextval('s')) > 0 OR (1=1",
            "id = 1; DELETE FROM t",
            "(id = 1",
            "x IN (WITH d AS (DELETE FROM t RETURNING id) SELECT id FROM d)",
            "",
        ] {
            assert!(check_expression(e).is_err(), "{e}");
        }
    }

    #[test]
    fn curated_statements_take_parameters_and_writers_may_write() {
        assert_eq!(
            check_curated("SELECT * FROM t WHERE id = $1;", Access::Reader).map(|c| c.body),
            Ok("SELECT * FROM t WHERE id = $1")
        );
        assert_eq!(
            check_curated("DELETE FROM t", Access::Writer).map(|c| c.kind),
            Ok(StatementKind::Write)
        );
        for writes in [
            "INSERT INTO t (v) VALUES ($1) RETURNING id",
            "UPDATE t SET v = $2 WHERE id = $1",
            "DELETE FROM t WHERE id = $1",
            "WITH d AS (DELETE FROM t WHERE id = $1 RETURNING *) SELECT count(*) FROM d",
            "SELECT * FROM t WHERE id = $1 FOR UPDATE",
        ] {
            assert!(check_curated(writes, Access::Reader).is_err(), "{writes}");
            check_curated(writes, Access::Writer).unwrap_or_else(|e| panic!("{writes}: {e}"));
        }
        // A writer is still one statement in the server's transaction.
        for escape in [
            "INSERT INTO t VALUES ($1); COMMIT",
            "COMMIT",
            "SET ROLE postgres",
            "DO $$ BEGIN DELETE FROM t; END $$",
            "COPY t FROM PROGRAM 'x'",
            "SELECT set_config('role', $1, false)",
            "SELECT pg_advisory_lock($1)",
            "CREATE TABLE x (a int)",
            "TRUNCATE t",
            "CALL p($1)",
            "SELECT 1) AS q; DELETE FROM t; SELECT (1",
        ] {
            for access in [Access::Reader, Access::Writer] {
                assert!(
                    check_curated(escape, access).is_err(),
                    "{escape} {access:?}"
                );
            }
        }
        // query_database still refuses parameters and writes.
        assert!(check_statement("SELECT $1", true).is_err());
        assert!(check_statement("INSERT INTO t VALUES (1)", true).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("t"), "\"t\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
