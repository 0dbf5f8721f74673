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
//! Building an index is mostly this tokenizer and tantivy's postings
//! writer, so it is written for speed without changing what it gives
//! (the unit tests hold it to the plain definitions):
//! - `words.rs` finds the words, a byte at a time for ASCII;
//! - `cache.rs` remembers what each word became (up to [`CACHE_WORDS`]
//!   words), short words keyed by their bytes as integers;
//! - a short text given again at once (a chunk's title, indexed eight
//!   times) is analysed once.

mod cache;
mod words;

pub use cache::CACHE_WORDS;
pub use words::{Words, parts, words};

use cache::Cache;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, Stemmer, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};

/// Longest token indexed, in bytes; longer ones are dropped (at index and
/// query time alike).
pub const MAX_TOKEN_BYTES: usize = 40;

/// Texts up to this long are remembered with their tokens, for the same
/// text again at once.
const MEMO_BYTES: usize = 256;

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

/// The tokenizer registered as [`super::ANALYZER`].
#[derive(Clone)]
pub struct KbTokenizer {
    normalize: TextAnalyzer,
    cache: Cache,
    /// The tokens of the current text: the first `len`; the rest keep their
    /// buffers for the next text.
    tokens: Vec<Token>,
    len: usize,
    /// The short text those tokens are of, if it was short: a chunk's
    /// title and section are indexed several times in a row
    /// (`TITLE_WEIGHT`, `SECTION_WEIGHT`), and are analysed once.
    memo: Option<String>,
    /// The form [`KbTokenizer::normalized`] returns.
    word: String,
}

impl Default for KbTokenizer {
    fn default() -> Self {
        KbTokenizer {
            normalize: TextAnalyzer::builder(RawTokenizer::default())
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .filter(Stemmer::new(Language::English))
                .build(),
            cache: Cache::default(),
            tokens: Vec::new(),
            len: 0,
            memo: None,
            word: String::new(),
        }
    }
}

/// Lower case, fold and stem one word or part; `None` if it is dropped (a
/// stop word, or too long).
fn normalize_word(normalize: &mut TextAnalyzer, raw: &str) -> Option<String> {
    if is_stop_word(&raw.to_lowercase()) {
        return None;
    }
    let mut stream = normalize.token_stream(raw);
    if !stream.advance() {
        return None;
    }
    Some(stream.token().text.clone()).filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES)
}

impl KbTokenizer {
    /// The normalised form of one word or part (lower case, folded,
    /// stemmed), `None` if it is dropped (a stop word, or too long).
    pub fn normalized(&mut self, raw: &str) -> Option<&str> {
        let normalize = &mut self.normalize;
        let kept = self
            .cache
            .write_form(raw, &mut self.word, |w| normalize_word(normalize, w));
        kept.then_some(self.word.as_str())
    }

    fn push(&mut self, raw: &str, offset: usize) {
        if self.len == self.tokens.len() {
            self.tokens.push(Token::default());
        }
        let token = &mut self.tokens[self.len];
        let normalize = &mut self.normalize;
        if !self
            .cache
            .write_form(raw, &mut token.text, |w| normalize_word(normalize, w))
        {
            return;
        }
        token.offset_from = offset;
        token.offset_to = offset + raw.len();
        token.position = self.len;
        token.position_length = 1;
        self.len += 1;
    }
}

impl Tokenizer for KbTokenizer {
    type TokenStream<'a> = KbTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> KbTokenStream<'a> {
        if self.memo.as_deref() != Some(text) {
            self.analyse(text);
        }
        KbTokenStream {
            tokens: &mut self.tokens[..self.len],
            next: 0,
            none: Token::default(),
        }
    }
}

impl KbTokenizer {
    /// Fill `tokens[..len]` with the tokens of `text`.
    fn analyse(&mut self, text: &str) {
        self.len = 0;
        self.memo = None;
        for word in words(text) {
            let offset = word.as_ptr() as usize - text.as_ptr() as usize;
            if !word.as_bytes().contains(&b'_') {
                self.push(word, offset);
                continue;
            }
            if parts(word).nth(1).is_some() {
                let whole: Vec<&str> = parts(word).collect();
                self.push(&whole.join("_"), offset);
            }
            for part in parts(word) {
                let at = part.as_ptr() as usize - text.as_ptr() as usize;
                self.push(part, at);
            }
        }
        if text.len() <= MEMO_BYTES {
            self.memo = Some(text.to_owned());
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
        assert!(t.cache.len() <= CACHE_WORDS);
        // A short text after a long one: only its own tokens.
        let mut s = t.token_stream("running runs");
        let mut got = Vec::new();
        while s.advance() {
            got.push(s.token().text.clone());
        }
        assert_eq!(got, ["run", "run"]);
    }

    #[test]
    fn short_and_long_words_and_forms_are_cached_alike() {
        let words = [
            "Running",
            "the",
            "internationalizations_everywhere",
            "ßßßßßßßß",                                  // 16 bytes in, 16 out
            "ßßßßßßßßa",                                 // 17 in
            "⑽⑽⑽⑽⑽", // 15 in, 20 out: a short word with a long form
            "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", // dropped: too long
        ];
        let fresh = |w: &str| KbTokenizer::default().normalized(w).map(str::to_string);
        let mut t = KbTokenizer::default();
        for _ in 0..2 {
            for w in words {
                assert_eq!(t.normalized(w).map(str::to_string), fresh(w), "{w}");
            }
        }
        assert_eq!(fresh("Running").as_deref(), Some("run"));
        assert_eq!(fresh("the"), None);
        assert_eq!(fresh("⑽⑽⑽⑽⑽").as_deref(), Some("(10)(10)(10)(10)(10)"));
        assert_eq!(fresh(words[6]), None);
        assert!(t.cache.holds_long("⑽⑽⑽⑽⑽"));
        assert_eq!(tokens("Running the tables"), ["run", "tabl"]);
    }
}
