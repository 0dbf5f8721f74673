//! reStructuredText → blocks: section titles (levels in order of first
//! appearance of their adornment style), paragraphs, lists, literal blocks,
//! and directives (code kept, prose directives' bodies parsed again, the
//! rest skipped). Inline markup is [`super::rst_inline`].

use super::rst_inline::strip_rst_inline;
use super::{Block, normalize, push_pre};

/// Directives whose content is not prose worth indexing.
const RST_SKIP_DIRECTIVES: &[&str] = &[
    "toctree",
    "image",
    "include",
    "literalinclude",
    "raw",
    "contents",
    "index",
    "meta",
    "highlight",
    "sectnum",
    "section-numbering",
    "target-notes",
    "default-role",
    "role",
    "title",
    "autosummary",
];
const RST_CODE_DIRECTIVES: &[&str] = &["code-block", "code", "sourcecode"];

fn indent_of(line: &str) -> usize {
    let mut n = 0;
    for c in line.chars() {
        match c {
            ' ' => n += 1,
            '\t' => n = (n / 8 + 1) * 8,
            _ => break,
        }
    }
    n
}

/// A line made of one repeated punctuation character (section adornment or
/// transition).
fn adornment_char(line: &str) -> Option<char> {
    let t = line.trim_end();
    let mut chars = t.chars();
    let first = chars.next()?;
    if !first.is_ascii_punctuation() || t == "::" || t == ".." {
        return None;
    }
    chars.all(|c| c == first).then_some(first)
}

/// `- item`, `* item`, `+ item`, `1. item`, `#. item`, `a) item`, `(1) item`:
/// the text after the marker.
fn strip_list_marker(t: &str) -> Option<&str> {
    for bullet in ["- ", "* ", "+ ", "\u{2022} "] {
        if let Some(rest) = t.strip_prefix(bullet) {
            return Some(rest);
        }
    }
    let (marker, rest) = t.split_once(' ')?;
    let inner = marker
        .strip_prefix('(')
        .and_then(|m| m.strip_suffix(')'))
        .or_else(|| marker.strip_suffix('.'))
        .or_else(|| marker.strip_suffix(')'))?;
    let enumerator = inner == "#"
        || (!inner.is_empty() && inner.len() <= 3 && inner.chars().all(|c| c.is_ascii_digit()))
        || (inner.len() == 1 && inner.chars().all(|c| c.is_ascii_alphabetic()));
    enumerator.then_some(rest)
}

/// Table borders: `+----+----+`, `===== =====`.
fn is_table_border(t: &str) -> bool {
    (t.starts_with('+') && t.len() >= 3 && t.chars().all(|c| matches!(c, '+' | '-' | '=' | ':')))
        || (t.contains(' ') && t.starts_with('=') && t.chars().all(|c| c == '=' || c == ' '))
}

struct RstParser<'a> {
    lines: Vec<&'a str>,
    blocks: Vec<Block>,
    /// Heading styles (adornment character, has overline) in order of first
    /// appearance; the index + 1 is the level.
    styles: Vec<(char, bool)>,
    para: Vec<String>,
    para_indent: usize,
    /// The paragraph just flushed ended with `::`: an indented literal block
    /// may follow, more indented than this.
    literal_after: Option<usize>,
    depth: usize,
}

pub(super) fn rst_blocks(content: &str) -> Vec<Block> {
    let mut parser = RstParser::new(content, 0);
    parser.run();
    parser.blocks
}

impl<'a> RstParser<'a> {
    fn new(content: &'a str, depth: usize) -> RstParser<'a> {
        RstParser {
            lines: content.lines().collect(),
            blocks: Vec::new(),
            styles: Vec::new(),
            para: Vec::new(),
            para_indent: 0,
            literal_after: None,
            depth,
        }
    }

    fn flush(&mut self) {
        if self.para.is_empty() {
            return;
        }
        let mut raw = self.para.join(" ");
        self.para.clear();
        if raw.ends_with("::") {
            self.literal_after = Some(self.para_indent);
            raw.truncate(raw.len() - 2);
            let trimmed = raw.trim_end().len();
            if trimmed < raw.len() || raw.is_empty() {
                raw.truncate(trimmed);
            } else {
                raw.push(':');
            }
        }
        let text = normalize(&strip_rst_inline(&raw));
        if !text.is_empty() {
            self.blocks.push(Block::Para { text, pre: false });
        }
    }

    fn heading(&mut self, text: &str, style: (char, bool)) {
        self.flush();
        self.literal_after = None;
        let level = match self.styles.iter().position(|s| *s == style) {
            Some(i) => i + 1,
            None => {
                self.styles.push(style);
                self.styles.len()
            }
        };
        let text = normalize(&strip_rst_inline(text));
        if self.depth > 0 {
            // Headings cannot appear inside directives; keep the words.
            if !text.is_empty() {
                self.blocks.push(Block::Para { text, pre: false });
            }
        } else {
            self.blocks.push(Block::Heading { level, text });
        }
    }

    /// The end of the block of lines after `start` that are blank or indented
    /// more than `indent`, trailing blank lines excluded.
    fn block_end(&self, start: usize, indent: usize) -> usize {
        let mut end = start;
        let mut j = start;
        while j < self.lines.len() {
            let line = self.lines[j];
            if line.trim().is_empty() {
                j += 1;
                continue;
            }
            if indent_of(line) <= indent {
                break;
            }
            j += 1;
            end = j;
        }
        end
    }

    /// Lines `start..end`, with their common indentation removed.
    fn dedent(&self, start: usize, end: usize) -> String {
        let lines = &self.lines[start.min(end)..end];
        let common = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| indent_of(l))
            .min()
            .unwrap_or(0);
        lines
            .iter()
            .map(|l| {
                let expanded = l.replace('\t', "        ");
                expanded.chars().skip(common).collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Try a section title at line `i`; returns the number of lines used.
    fn try_heading(&mut self, i: usize) -> Option<usize> {
        let line = self.lines[i];
        let next = self.lines.get(i + 1).copied()?;
        if let Some(c) = adornment_char(line) {
            // Overline, title, underline.
            let under = self.lines.get(i + 2).copied()?;
            let text = next.trim();
            if indent_of(line) == 0
                && !text.is_empty()
                && adornment_char(text).is_none()
                && adornment_char(under) == Some(c)
                && line.trim_end().chars().count() >= text.chars().count()
            {
                self.heading(text, (c, true));
                return Some(3);
            }
            return None;
        }
        let text = line.trim();
        if indent_of(line) == 0
            && !text.starts_with("..")
            && indent_of(next) == 0
            && adornment_char(next)
                .is_some_and(|_| next.trim_end().chars().count() >= text.chars().count())
        {
            let c = adornment_char(next)?;
            self.heading(text, (c, false));
            return Some(2);
        }
        None
    }

    /// A directive, comment, target or footnote starting at line `i`; returns
    /// the index of the line after it.
    fn directive(&mut self, i: usize) -> usize {
        let line = self.lines[i];
        let indent = indent_of(line);
        let rest = line.trim()[2..].trim();
        let end = self.block_end(i + 1, indent);
        self.flush();
        self.literal_after = None;
        // Skip option lines (`:name: value`) at the start of the body.
        let mut body_start = i + 1;
        while body_start < end && self.lines[body_start].trim().starts_with(':') {
            body_start += 1;
        }

        if let Some((name, arg)) = rest.split_once("::") {
            let name = name.trim().to_ascii_lowercase();
            let is_directive = !name.is_empty()
                && !name.contains(char::is_whitespace)
                && !name.starts_with(['_', '|', '[']);
            if is_directive {
                if RST_CODE_DIRECTIVES.contains(&name.as_str()) {
                    let body = self.dedent(body_start, end);
                    push_pre(&mut self.blocks, &body);
                } else if RST_SKIP_DIRECTIVES.contains(&name.as_str()) || name.starts_with("auto") {
                    // Not prose.
                } else {
                    if name != "figure" {
                        let text = normalize(&strip_rst_inline(arg));
                        if !text.is_empty() {
                            self.blocks.push(Block::Para { text, pre: false });
                        }
                    }
                    self.nested(body_start, end);
                }
                return end.max(i + 1);
            }
        }
        if let Some(after) = rest.strip_prefix('[') {
            // Footnote or citation: `.. [1] text`.
            if let Some((_, text)) = after.split_once(']') {
                let text = normalize(&strip_rst_inline(text));
                if !text.is_empty() {
                    self.blocks.push(Block::Para { text, pre: false });
                }
                self.nested(i + 1, end);
            }
        }
        // Comments, hyperlink targets, substitution definitions: skipped.
        end.max(i + 1)
    }

    /// Parse lines `start..end` as the body of a directive.
    fn nested(&mut self, start: usize, end: usize) {
        if start >= end || self.depth >= 8 {
            return;
        }
        let body = self.dedent(start, end);
        let mut inner = RstParser::new(&body, self.depth + 1);
        inner.run();
        self.blocks.append(&mut inner.blocks);
    }

    fn run(&mut self) {
        let mut i = 0;
        while i < self.lines.len() {
            let line = self.lines[i];
            let t = line.trim();
            if t.is_empty() {
                self.flush();
                i += 1;
                continue;
            }
            let indent = indent_of(line);
            if let Some(base) = self.literal_after.take()
                && self.para.is_empty()
                && indent > base
            {
                let end = self.block_end(i, base);
                let body = self.dedent(i, end);
                push_pre(&mut self.blocks, &body);
                i = end.max(i + 1);
                continue;
            }
            if let Some(used) = self.try_heading(i) {
                i += used;
                continue;
            }
            if adornment_char(t).is_some() && t.len() >= 4 {
                // A transition.
                self.flush();
                i += 1;
                continue;
            }
            if t == ".." || t.starts_with(".. ") {
                i = self.directive(i);
                continue;
            }
            if is_table_border(t) {
                i += 1;
                continue;
            }
            let mut text = t;
            if let Some(rest) = strip_list_marker(t) {
                self.flush();
                text = rest;
            } else if t.starts_with(':') && t[1..].contains(": ") {
                // Field list item.
                self.flush();
            }
            let owned;
            if text.starts_with('|') {
                // Grid table row or line block.
                owned = text.replace('|', " ");
                text = &owned;
            }
            if self.para.is_empty() {
                self.para_indent = indent;
            }
            self.para.push(text.to_string());
            i += 1;
        }
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use crate::chunk::tests::sections;
    use crate::chunk::{DocType, chunk_document};

    #[test]
    fn rst_headings_and_inline_markup() {
        let rst = "\
=========
 The Doc
=========

Intro with ``literal`` and *emph* and **strong**.

Install
=======

See :ref:`the guide <guide>` and `Python <https://python.org>`_ now [1]_.

Docker
------

Run it::

    docker run x
    # comment

Config
======

.. note:: Be careful.

.. toctree::

   hidden/page
";
        let chunks = chunk_document("doc.rst", rst, DocType::Rst);
        assert!(chunks.iter().all(|c| c.title == "The Doc"), "{chunks:#?}");
        assert_eq!(
            sections(&chunks),
            ["", "Install", "Install > Docker", "Config"]
        );
        assert_eq!(chunks[0].text, "Intro with literal and emph and strong.");
        assert_eq!(chunks[1].text, "See the guide and Python now.");
        assert_eq!(chunks[2].text, "Run it:\n\ndocker run x\n# comment");
        assert_eq!(chunks[3].text, "Be careful.");
    }

    #[test]
    fn rst_first_style_is_title_and_roles_are_stripped() {
        let rst = "Title\n*****\n\nA\n=\n\nUse :func:`~pkg.mod.run` and :class:`Thing`.\n\n2 * 3 * 4 stays.\n";
        let chunks = chunk_document("t.rst", rst, DocType::Rst);
        assert_eq!(chunks.len(), 1, "{chunks:#?}");
        assert_eq!(chunks[0].title, "Title");
        assert_eq!(chunks[0].section, "A");
        assert_eq!(chunks[0].text, "Use run and Thing.\n\n2 * 3 * 4 stays.");
    }
}
