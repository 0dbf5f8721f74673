//! Where the words of a text are: runs of alphanumeric characters (any
//! script) and underscores, found a byte at a time for ASCII (a table says
//! what each byte is) and by decoding for the rest; and the parts of a word
//! between its underscores.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
