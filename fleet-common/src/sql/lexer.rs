//! A small SQL lexer that agrees with PostgreSQL on where strings, quoted
//! identifiers, dollar quotes and comments begin and end.
//!
//! The guard ([`super::guard`]) and the placeholders of curated statements
//! ([`super::placeholders`]) only need tokens, not a parse tree: they must
//! know which `;`, `(`, `)` and words are *code*, and which are inside a
//! literal or a comment. Everything PostgreSQL would treat as code is a token
//! here; anything this lexer cannot classify with certainty (an unterminated
//! literal or comment, a Unicode-escaped identifier) is an error, so the guard
//! fails closed.
//!
//! The connection pins `standard_conforming_strings = on`, so a backslash is
//! an escape only inside `E'...'` strings, exactly as lexed here.

use std::fmt;

/// What a token is. Words are ASCII-lowercased, as PostgreSQL folds unquoted
/// identifiers and keywords; quoted identifiers keep their text (with `""`
/// unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An unquoted keyword or identifier, lowercased.
    Word(String),
    /// A `"quoted"` identifier, unescaped.
    QuotedIdent(String),
    /// Any string literal: '...', E'...', B'...', X'...', N'...', U&'...', $tag$...$tag$.
    Str,
    /// A numeric literal.
    Number,
    /// A positional parameter `$1`.
    Param,
    /// An operator (`=`, `<>`, `::` is [`Kind::Punct`] twice, `||`, ...).
    Op(String),
    /// One of `( ) [ ] , ; . :`.
    Punct(char),
    /// A character PostgreSQL itself would reject (e.g. `{`); kept so the
    /// server reports it.
    Other(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    /// Byte offsets into the source text.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError(pub String);

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_op_char(b: u8) -> bool {
    matches!(
        b,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

/// Split `sql` into tokens, skipping whitespace and comments.
pub(crate) fn lex(sql: &str) -> Result<Vec<Token>, LexError> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut i = 0;
    let mut out = Vec::new();
    if b.contains(&0) {
        return Err(LexError("the text contains a NUL character".into()));
    }
    while i < n {
        let c = b[i];
        if is_space(c) {
            i += 1;
            continue;
        }
        // -- comment to end of line
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < n && b[i] != b'\n' && b[i] != b'\r' {
                i += 1;
            }
            continue;
        }
        // /* nested */ comment
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i)?;
            continue;
        }
        let start = i;
        // String literals with a one-letter prefix, and U&"..." identifiers.
        if is_ident_start(c) {
            let next = b.get(i + 1).copied();
            match (c.to_ascii_lowercase(), next) {
                (b'e', Some(b'\'')) => {
                    i = scan_quoted(b, i + 1, true)?;
                    out.push(tok(Kind::Str, start, i));
                    continue;
                }
                (b'b' | b'x' | b'n', Some(b'\'')) => {
                    i = scan_quoted(b, i + 1, false)?;
                    out.push(tok(Kind::Str, start, i));
                    continue;
                }
                (b'u', Some(b'&')) => match b.get(i + 2) {
                    Some(b'\'') => {
                        i = scan_quoted(b, i + 2, false)?;
                        out.push(tok(Kind::Str, start, i));
                        continue;
                    }
                    Some(b'"') => {
                        return Err(LexError(
                            "Unicode-escaped identifiers (U&\"...\") are not allowed; \
                             write the identifier plainly"
                                .into(),
                        ));
                    }
                    _ => {}
                },
                _ => {}
            }
            while i < n && is_ident_cont(b[i]) {
                i += 1;
            }
            let word = sql[start..i].to_ascii_lowercase();
            out.push(tok(Kind::Word(word), start, i));
            continue;
        }
        match c {
            b'\'' => {
                i = scan_quoted(b, i, false)?;
                out.push(tok(Kind::Str, start, i));
            }
            b'"' => {
                let (end, text) = scan_quoted_ident(sql, i)?;
                i = end;
                out.push(tok(Kind::QuotedIdent(text), start, i));
            }
            b'$' => {
                if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                    while i < n && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    out.push(tok(Kind::Param, start, i));
                } else if let Some(tag_end) = dollar_tag(b, i) {
                    let tag = &b[i..tag_end];
                    let body = tag_end;
                    let close = find(b, body, tag)
                        .ok_or_else(|| LexError("unterminated dollar-quoted string".into()))?;
                    i = close + tag.len();
                    out.push(tok(Kind::Str, start, i));
                } else {
                    return Err(LexError("unexpected `$` in the text".into()));
                }
            }
            b'0'..=b'9' => {
                i = scan_number(b, i);
                out.push(tok(Kind::Number, start, i));
            }
            b'.' if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                i = scan_number(b, i);
                out.push(tok(Kind::Number, start, i));
            }
            b'(' | b')' | b'[' | b']' | b',' | b';' | b'.' | b':' => {
                i += 1;
                out.push(tok(Kind::Punct(c as char), start, i));
            }
            _ if is_op_char(c) => {
                // An operator never contains `--` or `/*`: those start comments.
                while i < n && is_op_char(b[i]) {
                    if i > start
                        && ((b[i] == b'-' && b.get(i + 1) == Some(&b'-'))
                            || (b[i] == b'/' && b.get(i + 1) == Some(&b'*')))
                    {
                        break;
                    }
                    i += 1;
                }
                out.push(tok(Kind::Op(sql[start..i].to_string()), start, i));
            }
            _ => {
                // Only ASCII reaches here (bytes >= 0x80 are identifier bytes).
                i += 1;
                out.push(tok(Kind::Other(c as char), start, i));
            }
        }
    }
    Ok(out)
}

fn tok(kind: Kind, start: usize, end: usize) -> Token {
    Token { kind, start, end }
}

fn skip_block_comment(b: &[u8], mut i: usize) -> Result<usize, LexError> {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Ok(i);
            }
        } else {
            i += 1;
        }
    }
    Err(LexError("unterminated /* comment".into()))
}

/// `b[i]` is the opening quote. Returns the index after the closing quote.
fn scan_quoted(b: &[u8], mut i: usize, backslash_escapes: bool) -> Result<usize, LexError> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash_escapes => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(LexError("unterminated string literal".into()))
}

fn scan_quoted_ident(sql: &str, start: usize) -> Result<(usize, String), LexError> {
    let b = sql.as_bytes();
    let mut i = start + 1;
    let mut text = String::new();
    let mut seg = i;
    while i < b.len() {
        if b[i] == b'"' {
            if b.get(i + 1) == Some(&b'"') {
                text.push_str(&sql[seg..=i]);
                i += 2;
                seg = i;
                continue;
            }
            text.push_str(&sql[seg..i]);
            return Ok((i + 1, text));
        }
        i += 1;
    }
    Err(LexError("unterminated quoted identifier".into()))
}

/// If a dollar-quote delimiter (`$$` or `$tag$`) starts at `i`, the index
/// after it.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && b[j] == b'$' {
        return Some(j + 1);
    }
    if j >= b.len() || !is_ident_start(b[j]) {
        return None;
    }
    while j < b.len() && (is_ident_start(b[j]) || b[j].is_ascii_digit()) {
        j += 1;
    }
    (j < b.len() && b[j] == b'$').then_some(j + 1)
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn scan_number(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    // A fraction, but not the `..` of an array slice.
    if i < b.len() && b[i] == b'.' && b.get(i + 1) != Some(&b'.') {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<Kind> {
        lex(sql).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn strings_comments_and_quotes_hide_their_contents() {
        let k = kinds(
            "SELECT 'a;b' /* ; /* nested ; */ */ , \"x;\"\"y\" -- ; tail\n, $q$ ; $q$, E'\\' ;'",
        );
        assert!(!k.contains(&Kind::Punct(';')), "{k:?}");
        assert!(k.contains(&Kind::QuotedIdent("x;\"y".into())));
        assert_eq!(k.iter().filter(|t| **t == Kind::Str).count(), 3);
    }

    #[test]
    fn code_after_literals_is_seen() {
        let k = kinds("SELECT 'it''s'; DELETE");
        assert_eq!(k[2], Kind::Punct(';'));
        assert_eq!(k[3], Kind::Word("delete".into()));
        let k = kinds("SELECT $$x$$;$a$ $$ $a$");
        assert_eq!(k[2], Kind::Punct(';'));
        assert_eq!(k[3], Kind::Str);
    }

    #[test]
    fn words_params_numbers_and_operators() {
        assert_eq!(
            kinds("a$b $1 1.5e-3 .5 x::int <> 1--c"),
            vec![
                Kind::Word("a$b".into()),
                Kind::Param,
                Kind::Number,
                Kind::Number,
                Kind::Word("x".into()),
                Kind::Punct(':'),
                Kind::Punct(':'),
                Kind::Word("int".into()),
                Kind::Op("<>".into()),
                Kind::Number,
            ]
        );
        assert_eq!(
            kinds("1+/*c*/2"),
            vec![Kind::Number, Kind::Op("+".into()), Kind::Number]
        );
    }

    #[test]
    fn unterminated_things_fail_closed() {
        for bad in [
            "SELECT 'x",
            "SELECT \"x",
            "SELECT /* x",
            "SELECT /* /* */",
            "SELECT $a$ x $b$",
            "SELECT E'\\'",
            "SELECT U&\"\\0061\"",
            "SELECT $",
            "SELECT 1\0",
        ] {
            assert!(lex(bad).is_err(), "{bad}");
        }
    }
}
