//! The text pipeline of the index and of query words: one tokenizer that
//! splits, drops stop words, normalises and stems, with a cache of the
//! words it has seen.
//!
//! A word is a run of alphanumeric characters (any script) and underscores.
//! A word with underscores between parts (`shared_buffers`) gives its whole
//! form, then each part; any other word gives itself. Stop words
//! ([`is_stop_word`]) are dropped: no query ranks by them, and they are a
//! third of a text's words. Each remaining token is lower cased, folded to
//! ASCII where it has a form there (`café` → `cafe`) and stemmed (English
//! Snowball); tokens over [`MAX_TOKEN_BYTES`] are dropped. These are FTS5's
//! `porter unicode61 remove_diacritics 2` choices, plus identifiers kept
//! whole, which FTS5 matched as phrases instead.
//!
//! Normalising a word costs far more than looking it up, and documentation
//! repeats a small vocabulary, so each tokenizer remembers what its words
//! became (up to [`CACHE_WORDS`] of them).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, Stemmer, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};

/// Longest token indexed, in bytes; longer ones are dropped (at index and
/// query time alike).
pub const MAX_TOKEN_BYTES: usize = 40;

/// Words a tokenizer remembers before it starts over.
pub const CACHE_WORDS: usize = 200_000;

/// The words of `text` as the index sees them (before normalising): runs
/// of alphanumeric characters and underscores.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.chars().any(char::is_alphanumeric))
}

/// The parts of a word between underscores (one part for a plain word).
pub fn parts(word: &str) -> impl Iterator<Item = &str> {
    word.split('_').filter(|p| !p.is_empty())
}

/// Words too common to rank by, in lower case: not indexed, not searched.
pub fn is_stop_word(lower: &str) -> bool {
    const STOP: [&str; 48] = [
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
        "i", "if", "in", "is", "it", "its", "me", "my", "not", "of", "on", "or", "should", "so",
        "that", "the", "their", "then", "there", "these", "this", "to", "use", "was", "we", "what",
        "when", "where", "which", "who", "why", "will", "with", "you",
    ];
    STOP.binary_search(&lower).is_ok()
}

/// FxHash (rustc's): eight bytes per step, so short words hash several
/// times faster than with SipHash. The cache's keys are the tokenizer's own
/// input: colliding keys only slow down the build of the text that holds
/// them.
#[derive(Default)]
pub struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// The tokenizer registered as [`super::ANALYZER`].
#[derive(Clone)]
pub struct KbTokenizer {
    normalize: TextAnalyzer,
    cache: Cache,
    forms: Vec<Option<Box<str>>>,
    /// The tokens of the current text: the first `len`; the rest keep their
    /// buffers for the next text.
    tokens: Vec<Token>,
    len: usize,
}

impl Default for KbTokenizer {
    fn default() -> Self {
        KbTokenizer {
            normalize: TextAnalyzer::builder(RawTokenizer::default())
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .filter(Stemmer::new(Language::English))
                .build(),
            cache: HashMap::default(),
            forms: Vec::new(),
            tokens: Vec::new(),
            len: 0,
        }
    }
}

/// Word → index into [`KbTokenizer::forms`].
type Cache = HashMap<Box<str>, u32, BuildHasherDefault<FxHasher>>;

/// `raw` normalised, through `cache` and `forms` (one lookup when cached).
fn normalize_cached<'c>(
    cache: &mut Cache,
    forms: &'c mut Vec<Option<Box<str>>>,
    normalize: &mut TextAnalyzer,
    raw: &str,
) -> Option<&'c str> {
    let i = match cache.get(raw) {
        Some(&i) => i as usize,
        None => {
            if forms.len() >= CACHE_WORDS {
                cache.clear();
                forms.clear();
            }
            let term = if is_stop_word(&raw.to_lowercase()) {
                None
            } else {
                let mut stream = normalize.token_stream(raw);
                if stream.advance() {
                    Some(stream.token().text.clone())
                } else {
                    None
                }
            }
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
            forms.push(term.map(String::into_boxed_str));
            cache.insert(raw.into(), (forms.len() - 1) as u32);
            forms.len() - 1
        }
    };
    forms[i].as_deref()
}

impl KbTokenizer {
    /// The normalised form of one word or part (lower case, folded,
    /// stemmed), `None` if it is dropped (a stop word, or too long).
    pub fn normalized(&mut self, raw: &str) -> Option<&str> {
        normalize_cached(&mut self.cache, &mut self.forms, &mut self.normalize, raw)
    }

    fn push(&mut self, raw: &str, offset: usize) {
        let Some(text) =
            normalize_cached(&mut self.cache, &mut self.forms, &mut self.normalize, raw)
        else {
            return;
        };
        if self.len == self.tokens.len() {
            self.tokens.push(Token::default());
        }
        let token = &mut self.tokens[self.len];
        token.offset_from = offset;
        token.offset_to = offset + raw.len();
        token.position = self.len;
        token.position_length = 1;
        token.text.clear();
        token.text.push_str(text);
        self.len += 1;
    }
}

impl Tokenizer for KbTokenizer {
    type TokenStream<'a> = KbTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> KbTokenStream<'a> {
        self.len = 0;
        for word in words(text) {
            let offset = word.as_ptr() as usize - text.as_ptr() as usize;
            if parts(word).nth(1).is_some() {
                let whole: Vec<&str> = parts(word).collect();
                self.push(&whole.join("_"), offset);
            }
            for part in parts(word) {
                let at = part.as_ptr() as usize - text.as_ptr() as usize;
                self.push(part, at);
            }
        }
        KbTokenStream {
            tokens: &mut self.tokens[..self.len],
            next: 0,
            none: Token::default(),
        }
    }
}

/// The tokens of one text, computed up front.
pub struct KbTokenStream<'a> {
    tokens: &'a mut [Token],
    /// One past the current token (0: before the first).
    next: usize,
    /// What `token()` shows before the first `advance()` or of no tokens.
    none: Token,
}

impl TokenStream for KbTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        match self.next.checked_sub(1) {
            Some(i) => &self.tokens[i],
            None => &self.none,
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        match self.next.checked_sub(1) {
            Some(i) => &mut self.tokens[i],
            None => &mut self.none,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut t = KbTokenizer::default();
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push(s.token().text.clone());
        }
        out
    }

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(is_stop_word("the") && is_stop_word("you") && is_stop_word("a"));
        assert!(!is_stop_word("vacuum"));
    }

    #[test]
    fn words_are_split_normalised_and_identifiers_kept_whole() {
        assert_eq!(tokens("Tables, VACUUMING!"), ["tabl", "vacuum"]);
        assert_eq!(
            tokens("set the shared_buffers"),
            ["set", "shared_buff", "share", "buffer"]
        );
        assert_eq!(tokens("pg_hba.conf"), ["pg_hba", "pg", "hba", "conf"]);
        assert_eq!(tokens("to_char"), ["to_char", "char"]);
        assert_eq!(tokens("__init__ _x_"), ["init", "x"]);
        assert_eq!(tokens("Café naïve"), ["cafe", "naiv"]);
        assert_eq!(tokens("репликация 複製\0x"), ["репликация", "複製", "x"]);
        assert!(tokens(&"y".repeat(MAX_TOKEN_BYTES + 1)).is_empty());
        assert_eq!(tokens(&"y".repeat(MAX_TOKEN_BYTES)).len(), 1);
        assert!(tokens(" ,;\0 _ The AND of it ").is_empty());
    }

    #[test]
    fn the_cache_gives_the_same_answers_and_stays_bounded() {
        let mut t = KbTokenizer::default();
        let text: String = (0..CACHE_WORDS + 10).map(|i| format!("w{i} ")).collect();
        let mut n = 0;
        let mut s = t.token_stream(&text);
        while s.advance() {
            n += 1;
        }
        assert_eq!(n, CACHE_WORDS + 10);
        assert!(t.cache.len() <= CACHE_WORDS && t.forms.len() == t.cache.len());
        // A short text after a long one: only its own tokens.
        let mut s = t.token_stream("running runs");
        let mut got = Vec::new();
        while s.advance() {
            got.push(s.token().text.clone());
        }
        assert_eq!(got, ["run", "run"]);
    }
}
