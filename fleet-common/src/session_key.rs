//! `session.key`: the secrets that sign and verify session tokens.
//!
//! One secret per line, base64 (standard or URL-safe) or hex, each at least
//! 32 bytes once decoded. Blank lines and `#` comments are skipped. The first
//! secret signs new tokens; every secret verifies, so a key is rotated by
//! adding a new first line and removing the old one once its tokens expire.

use base64::Engine;

use crate::{Error, Result};

const FILE: &str = "session.key";
/// The shortest secret accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// Parse a whole `session.key`; the result is never empty.
pub fn parse(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::parse(FILE, e))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = decode(line).ok_or_else(|| {
            Error::invalid(FILE, format!("line {} is neither hex nor base64", n + 1))
        })?;
        if key.len() < MIN_KEY_BYTES {
            return Err(Error::invalid(
                FILE,
                format!(
                    "line {} decodes to {} bytes; at least {MIN_KEY_BYTES} are required",
                    n + 1,
                    key.len()
                ),
            ));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(Error::invalid(FILE, "no key in the file"));
    }
    Ok(keys)
}

fn decode(line: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if line.len().is_multiple_of(2) && line.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(line).ok();
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(line).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_lines_with_comments() {
        let hex_key = "ab".repeat(32);
        let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 48]);
        let text = format!("# current\n{hex_key}\n\n{b64}\n");
        let keys = parse(text.as_bytes()).unwrap();
        assert_eq!(keys, vec![vec![0xab; 32], vec![9u8; 48]]);
    }

    #[test]
    fn short_empty_and_garbage_keys_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse("abcd\n".as_bytes()).is_err());
        assert!(parse("not a key!!\n".as_bytes()).is_err());
    }
}
