//! What a tokenizer remembers of the words it has normalised: normalising
//! a word (lower case, fold, stem) costs far more than looking it up, and
//! documentation repeats a small vocabulary. Words of up to 16 bytes, nearly
//! all, are keyed by their bytes as two integers, with their form beside
//! them: a lookup follows no pointer and compares no string.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Words a tokenizer remembers before it starts over.
pub const CACHE_WORDS: usize = 200_000;

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

/// Bytes of a word or form kept inline in [`Cache::short`].
const INLINE: usize = 16;

/// What each word seen became. Most words are short: they are keyed by
/// their bytes as two integers ([`short_key`]) and their
/// forms kept beside them, so a lookup follows no pointer and compares no
/// string. Longer words, or words whose form is longer, are in `long`.
#[derive(Clone, Default)]
pub struct Cache {
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
    /// Words remembered.
    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// Whether `raw` is remembered among the long words (or the short words
    /// with long forms).
    #[cfg(test)]
    pub fn holds_long(&self, raw: &str) -> bool {
        self.long.contains_key(raw)
    }

    /// Put what `raw` becomes into `out`; `false` if it is dropped. One
    /// lookup when cached; `normalize` makes the form of a word not seen.
    pub fn write_form(
        &mut self,
        raw: &str,
        out: &mut String,
        normalize: impl FnOnce(&str) -> Option<String>,
    ) -> bool {
        let key = short_key(raw);
        if let Some(k) = key
            && let Some(inline) = self.short.get(&k)
        {
            return put(out, inline.as_str());
        }
        if let Some(form) = self.long.get(raw) {
            return put(out, form.as_deref());
        }
        if self.len() >= CACHE_WORDS {
            self.short.clear();
            self.long.clear();
        }
        let form = normalize(raw);
        let kept = put(out, form.as_deref());
        let inline = match form.as_deref() {
            None => Some(Inline::DROPPED),
            Some(f) => Inline::of(f),
        };
        match (key, inline) {
            (Some(k), Some(inline)) => {
                self.short.insert(k, inline);
            }
            _ => {
                self.long
                    .insert(raw.into(), form.map(String::into_boxed_str));
            }
        }
        kept
    }
}

/// `form` into `out`; whether there is one.
fn put(out: &mut String, form: Option<&str>) -> bool {
    out.clear();
    form.map(|f| out.push_str(f)).is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
