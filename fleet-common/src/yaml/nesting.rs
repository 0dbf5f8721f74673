//! How deep a YAML document nests, found before it is parsed.
//!
//! YAML parsers take time that grows faster than the nesting depth: the
//! scanner looks over every open flow level for each token, so
//! `tokens: [[[[…]]]]` of a few hundred kilobytes (200,000 levels) costs
//! minutes of CPU, and the 32 MiB limit of an auth file allows millions.
//! No file of the fleet needs more than a handful of levels. [`check`]
//! reads the document's events one at a time with the same parser that
//! `serde_norway` uses (libyaml, as `unsafe-libyaml-norway`) and stops at
//! the first list or mapping more than [`MAX_DEPTH`] deep, so a hostile
//! document is refused in about the time it takes to reach that level,
//! never parsed whole. A document that is not valid YAML is left to the
//! real parse, which says why.

use std::mem::MaybeUninit;

use unsafe_libyaml_norway as unsafe_sys;

/// The deepest nesting of lists and mappings a fleet file may have. The
/// deepest real ones (a curated tool's `input_schema` in `tools.yaml`) use
/// about a dozen.
pub const MAX_DEPTH: usize = 64;

/// Where a document first nests deeper than the limit: 1-based line and
/// column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: u64,
    pub column: u64,
}

/// `Err` at the first list or mapping deeper than `max`; `Ok` for anything
/// else, valid YAML or not.
pub fn check(text: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut parser = Parser::new(text);
    let mut depth = 0usize;
    while let Some(event) = parser.next() {
        match event.kind {
            unsafe_sys::YAML_SEQUENCE_START_EVENT | unsafe_sys::YAML_MAPPING_START_EVENT => {
                depth += 1;
                if depth > max {
                    return Err(TooDeep {
                        line: event.line + 1,
                        column: event.column + 1,
                    });
                }
            }
            unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                depth = depth.saturating_sub(1);
            }
            unsafe_sys::YAML_STREAM_END_EVENT => break,
            _ => {}
        }
    }
    Ok(())
}

/// One event's kind and where it starts (0-based).
struct Event {
    kind: unsafe_sys::yaml_event_type_t,
    line: u64,
    column: u64,
}

/// A libyaml parser over borrowed input. Boxed: libyaml keeps a pointer to
/// the parser itself for string input, so it must not move.
struct Parser<'input> {
    sys: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
    /// Whether `sys` was initialised (and so must be deleted).
    live: bool,
    /// The input libyaml reads; borrowed for as long as the parser lives.
    _input: &'input [u8],
}

impl<'input> Parser<'input> {
    fn new(input: &'input [u8]) -> Parser<'input> {
        let mut sys = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
        let p = sys.as_mut_ptr();
        // SAFETY: `p` points to memory that lives (and does not move) as
        // long as `Parser`; it is initialised by `yaml_parser_initialize`
        // before any other use, and `input` outlives the parser (`'input`).
        let live = unsafe {
            if unsafe_sys::yaml_parser_initialize(p).fail {
                false
            } else {
                unsafe_sys::yaml_parser_set_encoding(p, unsafe_sys::YAML_UTF8_ENCODING);
                unsafe_sys::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
                true
            }
        };
        Parser {
            sys,
            live,
            _input: input,
        }
    }

    /// The next event, or `None` at an error (or when the parser could not
    /// start).
    fn next(&mut self) -> Option<Event> {
        if !self.live {
            return None;
        }
        let mut raw = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        // SAFETY: the parser is initialised; `raw` is written by a parse
        // that succeeds, and only then read and deleted.
        unsafe {
            let p = self.sys.as_mut_ptr();
            if unsafe_sys::yaml_parser_parse(p, raw.as_mut_ptr()).fail {
                self.live = false;
                unsafe_sys::yaml_parser_delete(p);
                return None;
            }
            let e = raw.as_mut_ptr();
            let event = Event {
                kind: (*e).type_,
                line: (*e).start_mark.line,
                column: (*e).start_mark.column,
            };
            unsafe_sys::yaml_event_delete(e);
            Some(event)
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        if self.live {
            // SAFETY: initialised and not yet deleted.
            unsafe { unsafe_sys::yaml_parser_delete(self.sys.as_mut_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("tokens: {}{}\n", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn shallow_documents_pass_and_deep_ones_are_found() {
        assert_eq!(check(b"tokens:\n  a:\n    hash: x\n", 3), Ok(()));
        assert_eq!(check(nested(63).as_bytes(), MAX_DEPTH), Ok(()));
        assert_eq!(
            check(nested(64).as_bytes(), MAX_DEPTH),
            Err(TooDeep {
                line: 1,
                column: 72
            })
        );
        let block = "a:\n b:\n  c:\n   - - - x\n";
        assert_eq!(check(block.as_bytes(), 6), Ok(()));
        assert_eq!(
            check(block.as_bytes(), 5),
            Err(TooDeep { line: 4, column: 8 })
        );
        // Not YAML at all: for the real parser to explain.
        assert_eq!(check(b"a: [b\n  - : : {", 8), Ok(()));
        assert_eq!(check(b"", 8), Ok(()));
    }

    /// Issue 29, finding 2: 200,000 levels took 175 s to parse. Refused in
    /// a fraction of a second, even in a debug build.
    #[test]
    fn a_document_of_200000_levels_is_refused_at_once() {
        for doc in [
            nested(200_000),
            format!("tokens:\n{}x\n", "- ".repeat(200_000)),
            format!("tokens: {}\n", "{a: ".repeat(200_000)),
        ] {
            let t = std::time::Instant::now();
            assert!(check(doc.as_bytes(), MAX_DEPTH).is_err());
            assert!(t.elapsed().as_millis() < 500, "{:?}", t.elapsed());
        }
    }
}
