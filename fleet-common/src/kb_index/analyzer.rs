//! The text pipeline of the index and of query words: one tokenizer that
//! splits, normalises and stems, with a cache of the words it has seen.
//!
//! A word is a run of alphanumeric characters (any script) and underscores.
//! A word with underscores between parts (`shared_buffers`) gives its whole
//! form, then each part; any other word gives itself. Each token is lower
//! cased, folded to ASCII where it has a form there (`café` → `cafe`) and
//! stemmed (English Snowball); tokens over [`MAX_TOKEN_BYTES`] are dropped.
//! These are FTS5's `porter unicode61 remove_diacritics 2` choices, plus
//! identifiers kept whole, which FTS5 matched as phrases instead.
//!
//! Normalising a word costs far more than looking it up, and documentation
//! repeats a small vocabulary, so each tokenizer remembers what its words
//! became (up to [`CACHE_WORDS`] of them).

use std::collections::HashMap;

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
pub fn parts(word: &str) -> Vec<&str> {
    word.split('_').filter(|p| !p.is_empty()).collect()
}

/// The tokenizer registered as [`super::ANALYZER`].
#[derive(Clone)]
pub struct KbTokenizer {
    normalize: TextAnalyzer,
    cache: HashMap<String, Option<String>>,
    tokens: Vec<Token>,
}

impl Default for KbTokenizer {
    fn default() -> Self {
        KbTokenizer {
            normalize: TextAnalyzer::builder(RawTokenizer::default())
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .filter(Stemmer::new(Language::English))
                .build(),
            cache: HashMap::new(),
            tokens: Vec::new(),
        }
    }
}

impl KbTokenizer {
    /// The normalised form of one word or part (lower case, folded,
    /// stemmed), `None` if it is dropped (too long).
    pub fn normalized(&mut self, raw: &str) -> Option<&str> {
        if !self.cache.contains_key(raw) {
            if self.cache.len() >= CACHE_WORDS {
                self.cache.clear();
            }
            let mut stream = self.normalize.token_stream(raw);
            let term = if stream.advance() {
                Some(stream.token().text.clone())
            } else {
                None
            }
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
            self.cache.insert(raw.to_string(), term);
        }
        self.cache.get(raw).and_then(|t| t.as_deref())
    }

    fn push(&mut self, raw: &str, offset: usize) {
        let position = self.tokens.len();
        if let Some(text) = self.normalized(raw).map(str::to_string) {
            self.tokens.push(Token {
                offset_from: offset,
                offset_to: offset + raw.len(),
                position,
                text,
                position_length: 1,
            });
        }
    }
}

impl Tokenizer for KbTokenizer {
    type TokenStream<'a> = KbTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> KbTokenStream<'a> {
        self.tokens.clear();
        for word in words(text) {
            let offset = word.as_ptr() as usize - text.as_ptr() as usize;
            let parts = parts(word);
            if parts.len() > 1 {
                let whole = parts.join("_");
                self.push(&whole, offset);
            }
            for part in parts {
                let at = part.as_ptr() as usize - text.as_ptr() as usize;
                self.push(part, at);
            }
        }
        KbTokenStream {
            tokens: &self.tokens,
            next: 0,
            current: Token::default(),
        }
    }
}

/// The tokens of one text, computed up front.
pub struct KbTokenStream<'a> {
    tokens: &'a [Token],
    next: usize,
    current: Token,
}

impl TokenStream for KbTokenStream<'_> {
    fn advance(&mut self) -> bool {
        match self.tokens.get(self.next) {
            Some(t) => {
                self.current.clone_from(t);
                self.next += 1;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
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
    fn words_are_split_normalised_and_identifiers_kept_whole() {
        assert_eq!(tokens("Tables, VACUUMING!"), ["tabl", "vacuum"]);
        assert_eq!(
            tokens("set shared_buffers"),
            ["set", "shared_buff", "share", "buffer"]
        );
        assert_eq!(tokens("pg_hba.conf"), ["pg_hba", "pg", "hba", "conf"]);
        assert_eq!(tokens("__init__ _x_"), ["init", "x"]);
        assert_eq!(tokens("Café naïve"), ["cafe", "naiv"]);
        assert_eq!(tokens("репликация 複製\0x"), ["репликация", "複製", "x"]);
        assert!(tokens(&"y".repeat(MAX_TOKEN_BYTES + 1)).is_empty());
        assert_eq!(tokens(&"y".repeat(MAX_TOKEN_BYTES)).len(), 1);
        assert!(tokens(" ,;\0 _ ").is_empty());
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
        assert!(t.cache.len() <= CACHE_WORDS);
        assert_eq!(tokens("running runs"), ["run", "run"]);
    }
}
