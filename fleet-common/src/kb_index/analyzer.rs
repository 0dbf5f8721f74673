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
//! - normalising a word costs far more than looking it up, and
//!   documentation repeats a small vocabulary, so each tokenizer remembers
//!   what its words became (up to [`CACHE_WORDS`] of them), short words
//!   keyed by their bytes as integers;
//! - words are found a byte at a time for ASCII;
//! - a short text given again at once (a chunk's title, indexed eight
//!   times) is analysed once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

/// Words a tokenizer remembers before it starts over.
pub const CACHE_WORDS: usize = 200_000;

/// The words of `text` as the index sees them (before normalising): runs
/// of alphanumeric characters and underscores with at least one
/// alphanumeric character. ASCII is classified a byte at a time; other
/// characters are decoded.
pub fn words(text: &str) -> Words<'_> {
    Words { text, at: 0 }
}

/// The iterator of [`words`].
pub struct Words<'a> {
    text: &'a str,
    at: usize,
}

/// What an ASCII byte is to [`words`]; bytes from 0x80 on start a
/// character that is decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Separator,
    Underscore,
    Alphanumeric,
    NonAscii,
}

const CLASSES: [Class; 256] = {
    let mut c = [Class::NonAscii; 256];
    let mut b = 0;
    while b < 128 {
        c[b] = if (b as u8).is_ascii_alphanumeric() {
            Class::Alphanumeric
        } else if b == b'_' as usize {
            Class::Underscore
        } else {
            Class::Separator
        };
        b += 1;
    }
    c
};

impl Words<'_> {
    /// Whether the character at byte `i` (a character boundary, not ASCII)
    /// is alphanumeric, and its length in bytes.
    fn decode_at(&self, i: usize) -> (bool, usize) {
        match self.text.get(i..).and_then(|s| s.chars().next()) {
            Some(c) => (c.is_alphanumeric(), c.len_utf8()),
            None => (false, 1),
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let b = self.text.as_bytes();
        let n = b.len();
        let mut i = self.at;
        loop {
            // To the first character of a word.
            let start = loop {
                let &byte = b.get(i)?;
                match CLASSES[usize::from(byte)] {
                    Class::Separator => i += 1,
                    Class::NonAscii => match self.decode_at(i) {
                        (true, _) => break i,
                        (false, len) => i += len,
                    },
                    Class::Underscore | Class::Alphanumeric => break i,
                };
            };
            // To its end.
            let mut any_alphanumeric = false;
            while i < n {
                match CLASSES[usize::from(b[i])] {
                    Class::Alphanumeric => {
                        any_alphanumeric = true;
                        i += 1;
                    }
                    Class::Underscore => i += 1,
                    Class::Separator => break,
                    Class::NonAscii => match self.decode_at(i) {
                        (true, len) => {
                            any_alphanumeric = true;
                            i += len;
                        }
                        (false, _) => break,
                    },
                }
            }
            self.at = i;
            if any_alphanumeric {
                return self.text.get(start..i);
            }
        }
    }
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

    fn write_u64(&mut self, i: u64) {
        self.add(i);
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

/// Bytes of a word or form kept inline in [`Cache::short`].
const INLINE: usize = 16;

/// What each word seen became. Most words are short: they are keyed by
/// their bytes as two integers ([`short_key`]) and their
/// forms kept beside them, so a lookup follows no pointer and compares no
/// string. Longer words, or words whose form is longer, are in `long`.
#[derive(Clone, Default)]
struct Cache {
    short: HashMap<(u64, u64), Inline, BuildHasherDefault<FxHasher>>,
    long: HashMap<Box<str>, Option<Box<str>>, BuildHasherDefault<FxHasher>>,
}

/// A form of at most [`INLINE`] bytes; `len` 0 is a dropped word.
#[derive(Clone, Copy)]
struct Inline {
    len: u8,
    bytes: [u8; INLINE],
}

impl Inline {
    const DROPPED: Inline = Inline {
        len: 0,
        bytes: [0; INLINE],
    };

    fn of(text: &str) -> Option<Inline> {
        let b = text.as_bytes();
        let mut bytes = [0u8; INLINE];
        bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(Inline {
            len: b.len() as u8,
            bytes,
        })
    }

    fn as_str(&self) -> Option<&str> {
        match self.len {
            0 => None,
            n => std::str::from_utf8(&self.bytes[..usize::from(n)]).ok(),
        }
    }
}

impl Cache {
    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// Put what `raw` becomes into `out`; `false` if it is dropped. One
    /// lookup when cached.
    fn write_form(&mut self, normalize: &mut TextAnalyzer, raw: &str, out: &mut String) -> bool {
        let key = short_key(raw);
        let hit = match key {
            Some(k) => self.short.get(&k).copied(),
            None => None,
        };
        let form = match &hit {
            Some(inline) => inline.as_str(),
            None => {
                if !self.long.contains_key(raw) {
                    if self.len() >= CACHE_WORDS {
                        self.short.clear();
                        self.long.clear();
                    }
                    let form = normalize_word(normalize, raw);
                    let inline = match form.as_deref() {
                        None => Some(Inline::DROPPED),
                        Some(f) => Inline::of(f),
                    };
                    if let (Some(k), Some(inline)) = (key, inline) {
                        self.short.insert(k, inline);
                        out.clear();
                        return inline.as_str().map(|f| out.push_str(f)).is_some();
                    }
                    self.long
                        .insert(raw.into(), form.map(String::into_boxed_str));
                }
                self.long.get(raw).and_then(|f| f.as_deref())
            }
        };
        out.clear();
        form.map(|f| out.push_str(f)).is_some()
    }
}

/// The bytes of a word of up to [`INLINE`] bytes as two little-endian
/// integers, padded with 0xFF, read with whole loads (bytes copied into a buffer
/// and read back as integers stall the processor); `None` if longer.
fn short_key(raw: &str) -> Option<(u64, u64)> {
    let b = raw.as_bytes();
    let n = b.len();
    let u64_at = |i: usize| {
        b.get(i..i + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    let (lo, hi) = match n {
        0..=3 => (
            b.iter()
                .enumerate()
                .fold(0, |k, (i, &c)| k | u64::from(c) << (8 * i)),
            0,
        ),
        // The two loads overlap on equal bytes.
        4..=7 => (
            u64::from(u32_at(0)) | u64::from(u32_at(n - 4)) << (8 * (n - 4)),
            0,
        ),
        8 => (u64_at(0), 0),
        9..=INLINE => (u64_at(0), u64_at(n - 8) >> (8 * (INLINE - n))),
        _ => return None,
    };
    // Bytes past the end are 0xFF, which UTF-8 never holds: no two strings
    // share a key, whatever bytes they hold.
    let pad = |n: usize| if n >= 8 { 0 } else { u64::MAX << (8 * n) };
    Some((lo | pad(n), hi | pad(n.saturating_sub(8))))
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
        let mut word = std::mem::take(&mut self.word);
        let kept = self.cache.write_form(&mut self.normalize, raw, &mut word);
        self.word = word;
        kept.then_some(self.word.as_str())
    }

    fn push(&mut self, raw: &str, offset: usize) {
        if self.len == self.tokens.len() {
            self.tokens.push(Token::default());
        }
        let token = &mut self.tokens[self.len];
        if !self
            .cache
            .write_form(&mut self.normalize, raw, &mut token.text)
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
    fn words_are_runs_of_alphanumerics_and_underscores() {
        // The definition, written plainly, against the byte-at-a-time scan.
        fn reference(text: &str) -> Vec<&str> {
            text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| w.chars().any(char::is_alphanumeric))
                .collect()
        }
        let alphabet: Vec<char> = "aZ9_ -.\0\té€ß日🙂٣Ⅻ\u{301}".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let text: String = (0..len)
                .map(|i| alphabet[((seed >> (4 * i)) % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(
                words(&text).collect::<Vec<_>>(),
                reference(&text),
                "{text:?}"
            );
        }
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
    fn short_keys_are_the_padded_bytes_and_differ_for_every_string() {
        let word = "abcdefghijklmnopq";
        for n in 0..=INLINE {
            let mut bytes = [0xFFu8; 16];
            bytes[..n].copy_from_slice(&word.as_bytes()[..n]);
            let (lo, hi) = bytes.split_at(8);
            let expected = (
                u64::from_le_bytes(lo.try_into().unwrap()),
                u64::from_le_bytes(hi.try_into().unwrap()),
            );
            assert_eq!(short_key(&word[..n]), Some(expected), "{n} bytes");
        }
        assert_eq!(short_key(word), None);
        // Strings that zero padding would confuse.
        let keys: Vec<_> = ["", "\0", "\0\0", "ab", "ab\0", "abcdefgh", "abcdefgh\0"]
            .into_iter()
            .map(short_key)
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
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
        assert!(t.cache.long.contains_key("⑽⑽⑽⑽⑽"));
        assert_eq!(tokens("Running the tables"), ["run", "tabl"]);
    }
}
