//! The libpq connection options this server reads itself, taken out of a
//! URL (`postgres://…?sslmode=verify-full&sslrootcert=…`) or a `key=value`
//! conninfo string before the rest goes to `tokio_postgres::Config`.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require` and
//! `target_session_attrs=any|read-write|read-only`, and refuses `allow`,
//! `verify-ca`, `verify-full`, `sslrootcert`, `sslcert`, `sslkey` and
//! `prefer-standby`. libpq accepts all of them, and users copy their
//! connection strings from libpq tools and cloud consoles, so they are split
//! off here ([`split`]) and applied by [`super::config`]. Values are never
//! logged or put in an error: a connection string may carry a password.

/// The options [`split`] takes out, as written (not yet validated).
pub const OWN_KEYS: [&str; 6] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslnegotiation",
    "target_session_attrs",
];

/// A connection string without the options this server reads itself, and
/// those options in the order they were written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub rest: String,
    pub own: Vec<(String, String)>,
}

impl Split {
    /// The last value given for `key` (libpq: a later setting wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.own
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Split a URL or a `key=value` string. The error names what is wrong,
/// never a value.
pub fn split(conninfo: &str) -> Result<Split, String> {
    let s = conninfo.trim();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        split_url(s)
    } else {
        split_keywords(s)
    }
}

fn split_url(s: &str) -> Result<Split, String> {
    // The query starts at the first `?` after the user info (a password
    // may hold `?` only percent-encoded, but be lenient as libpq is).
    let after_at = s.rfind('@').map_or(0, |i| i + 1);
    let Some(q) = s[after_at..].find('?').map(|i| i + after_at) else {
        return Ok(Split {
            rest: s.to_string(),
            own: Vec::new(),
        });
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut own = Vec::new();
    for pair in s[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or("a URL parameter has no `=`")?;
        let key = decode(key)?;
        if OWN_KEYS.contains(&key.as_str()) {
            own.push((key, decode(value)?));
        } else {
            kept.push(pair);
        }
    }
    let mut rest = s[..q].to_string();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok(Split { rest, own })
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a URL parameter has a bad %-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a URL parameter is not UTF-8".to_string())
}

/// libpq's `key = value` syntax: values bare or in single quotes, `\`
/// escaping the next character.
fn split_keywords(s: &str) -> Result<Split, String> {
    let mut chars = s.chars().peekable();
    let mut rest: Vec<String> = Vec::new();
    let mut own = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            if chars.peek().is_some() {
                return Err("a conninfo parameter has no name".into());
            }
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("conninfo parameter {key:?} has no `=`"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("conninfo parameter {key:?}: unterminated quote")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if OWN_KEYS.contains(&key.as_str()) {
            own.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            rest.push(format!("{key}='{quoted}'"));
        }
    }
    Ok(Split {
        rest: rest.join(" "),
        own,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_options_are_taken_out_and_the_rest_kept_as_written() {
        let s = split(
            "postgres://u:p%3Fw@db.example.com:6432/app?sslmode=verify-full&application_name=x\
             &sslrootcert=%2Fetc%2Fca.pem&target_session_attrs=prefer-standby",
        )
        .unwrap();
        assert_eq!(
            s.rest,
            "postgres://u:p%3Fw@db.example.com:6432/app?application_name=x"
        );
        assert_eq!(s.get("sslmode"), Some("verify-full"));
        assert_eq!(s.get("sslrootcert"), Some("/etc/ca.pem"));
        assert_eq!(s.get("target_session_attrs"), Some("prefer-standby"));
        assert!(s.rest.parse::<tokio_postgres::Config>().is_ok());
        let plain = split("postgresql://h/db").unwrap();
        assert_eq!(plain.rest, "postgresql://h/db");
        assert!(plain.own.is_empty());
        assert_eq!(
            split("postgres://h/db?sslmode=require").unwrap().rest,
            "postgres://h/db"
        );
    }

    #[test]
    fn keyword_strings_keep_quoting_and_escapes() {
        let s = split(
            "host=a,b password='it\\'s' sslmode = verify-ca sslcert='/run/my certs/c.pem' user=x\\ y",
        )
        .unwrap();
        assert_eq!(s.get("sslmode"), Some("verify-ca"));
        assert_eq!(s.get("sslcert"), Some("/run/my certs/c.pem"));
        let cfg: tokio_postgres::Config = s.rest.parse().unwrap();
        assert_eq!(cfg.get_password(), Some(&b"it's"[..]));
        assert_eq!(cfg.get_user(), Some("x y"));
        assert_eq!(cfg.get_hosts().len(), 2);
    }

    #[test]
    fn later_settings_win_and_errors_name_no_value() {
        let s = split("sslmode=disable sslmode=require").unwrap();
        assert_eq!(s.get("sslmode"), Some("require"));
        let e = split("password='s3cret").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        let e = split("postgres://h/db?sslmode=%zz").unwrap_err();
        assert!(!e.contains("zz"), "{e}");
    }
}
