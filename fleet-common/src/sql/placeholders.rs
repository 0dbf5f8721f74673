//! The placeholders of a curated statement, matched with its declared
//! parameters.
//!
//! A statement refers to its parameters either by position (`$1`, `$2`, in
//! declaration order, as PostgreSQL, pgEdge and Google's MCP Toolbox write
//! them) or by name (`:name`), never both. Named ones are rewritten to
//! positions, so that the server always sends `$1`..`$n` with the values
//! bound through the extended protocol: a value never becomes SQL text.
//!
//! `:name` is a placeholder only as code (not in a literal, a quoted
//! identifier or a comment), outside array brackets (`a[lo:hi]` is a slice)
//! and not as part of a cast (`x::int`). PostgreSQL has no other use for a
//! `:` there, so a stray one is refused as SQL that cannot parse.

use super::lexer::{Kind, Token, lex};

/// `sql` with its placeholders checked against `names` (the declared
/// parameters, in order) and named ones rewritten to `$n`. Refused: a
/// placeholder naming no parameter, a parameter never used, positional and
/// named placeholders mixed, and text the lexer cannot read. Errors locate
/// by line and column within the statement; they never quote it.
pub fn positional(sql: &str, names: &[&str]) -> Result<String, String> {
    let tokens = lex(sql).map_err(|e| e.0)?;
    let mut used = vec![false; names.len()];
    let mut positional = false;
    // Byte ranges to replace, with the parameter's position (1-based).
    let mut named: Vec<(usize, usize, usize)> = Vec::new();
    let mut brackets = 0i64;
    for (i, t) in tokens.iter().enumerate() {
        match &t.kind {
            Kind::Punct('[') => brackets += 1,
            Kind::Punct(']') => brackets -= 1,
            Kind::Param => {
                positional = true;
                let n: usize = sql[t.start + 1..t.end].parse().unwrap_or(0);
                if n == 0 || n > names.len() {
                    return Err(format!(
                        "{} refers to no parameter: the tool declares {}",
                        at(sql, t, &format!("${n}")),
                        count(names.len())
                    ));
                }
                used[n - 1] = true;
            }
            Kind::Punct(':') if brackets <= 0 => {
                let prev = i.checked_sub(1).map(|p| &tokens[p]);
                let next = tokens.get(i + 1);
                let in_cast = |o: Option<&Token>| {
                    o.is_some_and(|o| {
                        o.kind == Kind::Punct(':') && (o.end == t.start || o.start == t.end)
                    })
                };
                if in_cast(prev) || in_cast(next) {
                    continue;
                }
                let Some(word) =
                    next.filter(|n| n.start == t.end && matches!(n.kind, Kind::Word(_)))
                else {
                    return Err(format!(
                        "{}: a `:` that is neither a cast (`::`) nor a placeholder (`:name`)",
                        at(sql, t, "")
                    ));
                };
                // The name as written: the lexer folds words to lower case.
                let name = &sql[word.start..word.end];
                let Some(pos) = names.iter().position(|n| *n == name) else {
                    return Err(format!(
                        "{} names no declared parameter (declared: {})",
                        at(sql, t, &format!(":{name}")),
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ));
                };
                used[pos] = true;
                named.push((t.start, word.end, pos + 1));
            }
            _ => {}
        }
    }
    if positional && !named.is_empty() {
        return Err(
            "the statement mixes positional ($1) and named (:name) placeholders: use one kind"
                .to_string(),
        );
    }
    if let Some(unused) = used.iter().position(|u| !u) {
        return Err(format!(
            "parameter {} is declared but the statement never uses it (as :{} or ${})",
            names[unused],
            names[unused],
            unused + 1
        ));
    }
    let mut out = String::with_capacity(sql.len());
    let mut from = 0;
    for (start, end, pos) in named {
        out.push_str(&sql[from..start]);
        out.push_str(&format!("${pos}"));
        from = end;
    }
    out.push_str(&sql[from..]);
    Ok(out)
}

/// `line L column C` of a token (and what it is, if given), for messages.
fn at(sql: &str, t: &Token, what: &str) -> String {
    let before = &sql[..t.start];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    if what.is_empty() {
        format!("line {line} column {column}")
    } else {
        format!("{what} at line {line} column {column}")
    }
}

fn count(n: usize) -> String {
    match n {
        0 => "no parameters".to_string(),
        1 => "1 parameter".to_string(),
        n => format!("{n} parameters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_placeholders_become_positions_and_nothing_else_moves() {
        let sql = "SELECT a[1:2], b::int, ':x' AS \":y\" -- :z\nFROM t WHERE c = :first AND d = ANY(:second) AND e = :first";
        assert_eq!(
            positional(sql, &["first", "second"]).unwrap(),
            "SELECT a[1:2], b::int, ':x' AS \":y\" -- :z\nFROM t WHERE c = $1 AND d = ANY($2) AND e = $1"
        );
        // Names keep their case.
        assert_eq!(
            positional("SELECT :flightNo::text", &["flightNo"]).unwrap(),
            "SELECT $1::text"
        );
        assert_eq!(
            positional("SELECT $2, $1", &["a", "b"]).unwrap(),
            "SELECT $2, $1"
        );
        assert_eq!(positional("SELECT 1", &[]).unwrap(), "SELECT 1");
        assert_eq!(
            positional("SELECT x[:n] FROM t WHERE y = :n", &["n"]).unwrap(),
            "SELECT x[:n] FROM t WHERE y = $1"
        );
    }

    #[test]
    fn mismatches_are_refused_with_a_location() {
        let e = positional("SELECT 1\nWHERE x = $3", &["a", "b"]).unwrap_err();
        assert!(
            e.contains("$3 at line 2 column 11") && e.contains("2 parameters"),
            "{e}"
        );
        let e = positional("SELECT :nope", &["a"]).unwrap_err();
        assert!(e.contains(":nope") && e.contains("declared: a"), "{e}");
        let e = positional("SELECT :a, $1", &["a"]).unwrap_err();
        assert!(e.contains("mixes"), "{e}");
        let e = positional("SELECT :a", &["a", "b"]).unwrap_err();
        assert!(e.contains("parameter b is declared but"), "{e}");
        let e = positional("SELECT 1 : 2", &[]).unwrap_err();
        assert!(e.contains("neither a cast"), "{e}");
        assert!(positional("SELECT $0", &["a"]).is_err());
        assert!(positional("SELECT 'unterminated", &[]).is_err());
    }
}
