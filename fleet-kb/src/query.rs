//! Untrusted query text → the words to look up, in bounded time.
//!
//! Nothing in the text is syntax: operators, quotes, parentheses, field
//! names and wildcards are punctuation or plain words. The text is cut to
//! [`MAX_QUERY_BYTES`], split into words exactly as the index splits text
//! (runs of alphanumeric characters, in any script, and underscores; NUL
//! bytes and everything else separate words), and each word is normalised
//! as the index normalises it (stop words dropped, lower case, ASCII
//! folding, English stemming). An identifier such as
//! `shared_buffers` is looked up whole, as the index also keeps it, and by
//! its parts only where the whole is not in the KB. At most [`MAX_TERMS`]
//! distinct terms are kept.

use std::collections::HashSet;

use fleet_common::kb_index::analyzer::{self, KbTokenizer};

/// Terms of a query beyond this many are ignored.
pub const MAX_TERMS: usize = 24;

/// Only this much of a query is read (cut at a character boundary): enough
/// for any question, and it bounds the work a 1 MB query can cause.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// One query word as index terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word normalised (for an identifier, the whole identifier).
    pub whole: String,
    /// An identifier's parts, normalised; empty for a plain word.
    pub parts: Vec<String>,
}

/// The distinct words of `text`, normalised, in order of first appearance.
pub fn words(text: &str) -> Vec<Word> {
    let text = head(text, MAX_QUERY_BYTES);
    let mut tok = KbTokenizer::default();
    let mut seen = HashSet::new();
    let mut out: Vec<Word> = Vec::new();
    let mut terms = 0;
    for word in analyzer::words(text) {
        let parts: Vec<&str> = analyzer::parts(word).collect();
        let normalized = |tok: &mut KbTokenizer, w: &str| tok.normalized(w).map(str::to_string);
        let word = if parts.len() > 1 {
            let Some(whole) = normalized(&mut tok, &parts.join("_")) else {
                continue;
            };
            Word {
                whole,
                parts: parts
                    .iter()
                    .filter_map(|p| normalized(&mut tok, p))
                    .collect(),
            }
        } else {
            let Some(whole) = normalized(&mut tok, word) else {
                continue;
            };
            Word {
                whole,
                parts: Vec::new(),
            }
        };
        if seen.insert(word.whole.clone()) {
            terms += 1 + word.parts.len();
            out.push(word);
            if terms >= MAX_TERMS {
                break;
            }
        }
    }
    out
}

/// The first `max` bytes of `text`, cut back to a character boundary.
pub fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wholes(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.whole).collect()
    }

    #[test]
    fn words_are_normalised_like_the_index_and_syntax_is_inert() {
        assert_eq!(wholes("How do I VACUUM tables?"), ["vacuum", "tabl"]);
        assert_eq!(
            wholes("title:x NEAR(\"a\" b) * AND OR -y"),
            ["titl", "x", "near", "b", "y"]
        );
        assert_eq!(
            words("set shared_buffers"),
            [
                Word {
                    whole: "set".into(),
                    parts: vec![]
                },
                Word {
                    whole: "shared_buff".into(),
                    parts: vec!["share".into(), "buffer".into()]
                }
            ]
        );
        assert_eq!(wholes("Café naïve"), ["cafe", "naiv"]);
        // Stop words are not indexed, so not searched either.
        assert!(wholes("what is the").is_empty());
        assert!(words("  ?! \0 _ ").is_empty());
        assert_eq!(wholes("a\0b\0vacuum"), ["b", "vacuum"]);
        // Other scripts pass through as words of their own.
        assert_eq!(wholes("репликация 複製"), ["репликация", "複製"]);
        // Tokens longer than the index keeps are not looked up.
        assert!(words(&"x".repeat(100)).is_empty());
    }

    #[test]
    fn huge_queries_are_cut_and_capped() {
        let many: String = (0..5000).map(|i| format!("w{i} ")).collect();
        let w = words(&many);
        assert_eq!(w.len(), MAX_TERMS);
        assert_eq!(w[0].whole, "w0");
        let ids: String = (0..5000).map(|i| format!("a{i}_b{i}_c{i} ")).collect();
        let n: usize = words(&ids).iter().map(|w| 1 + w.parts.len()).sum();
        assert!(n <= MAX_TERMS + 3, "{n} terms");
        // A multi-byte character straddling the cut is not split.
        let text = format!("{}é tail", "a".repeat(MAX_QUERY_BYTES - 1));
        assert_eq!(head(&text, MAX_QUERY_BYTES).len(), MAX_QUERY_BYTES - 1);
        assert_eq!(head("héllo", 2), "h");
        assert_eq!(head("héllo", 3), "hé");
        assert_eq!(head("abc", 8), "abc");
        let big = "é".repeat(1 << 20);
        assert!(words(&big).is_empty());
    }
}
