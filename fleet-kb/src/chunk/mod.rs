//! Documentation → chunks: this module owns reading Markdown, reStructuredText,
//! HTML and plain text into a flat list of headings and paragraphs, and
//! cutting those into search-sized [`Chunk`]s of about 250 words that follow
//! the document's headings.
//!
//! Every heading starts a new chunk; a long section is split at paragraph
//! boundaries (a very long paragraph at sentence boundaries, then at word
//! boundaries), and a tiny remainder is merged into the chunk before it. The
//! output depends only on the input: the same document always gives the same
//! chunks.
//!
//! Navigation is not content: HTML's `<nav>`, `role="navigation"`, and the
//! chrome classes of DocBook's output (Prev / Up / Home / Next bars, tables
//! of contents, the book index) are skipped, so a search for a topic finds
//! the page about it rather than every page that links to it.
//!
//! Layout: this file holds [`Chunk`], [`DocType`], the dispatch by file type
//! ([`chunk_document`]), the parsers' common output (`Block`) and the
//! splitting and size logic that turns blocks into chunks. Each format has
//! its parser: `markdown.rs`, `html.rs`, `rst.rs` (with its inline markup in
//! `rst_inline.rs`) and `text.rs`.

mod html;
mod markdown;
mod rst;
mod rst_inline;
mod text;

/// Words a chunk aims for.
const TARGET_WORDS: usize = 250;
/// A paragraph longer than this is split at sentence boundaries.
const MAX_PARAGRAPH_WORDS: usize = 375;
/// A trailing remainder shorter than this is merged into the chunk before it.
const MIN_TAIL_WORDS: usize = 50;

/// One piece of a document, ready to be indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The document's title: its first level-1 heading, else the file stem.
    pub title: String,
    /// The heading path of the chunk, e.g. `"Install > Docker"`; empty before
    /// the first sub-heading.
    pub section: String,
    /// Paragraphs with normalized whitespace, joined by `"\n\n"`.
    pub text: String,
}

/// The kinds of documentation file that can be chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocType {
    Markdown,
    Rst,
    Html,
    Text,
}

impl DocType {
    /// The type of a file from its extension (case-insensitive), `None` when
    /// the file is not documentation this module reads.
    pub fn from_path(path: &str) -> Option<DocType> {
        let name = file_name(path);
        let (stem, ext) = name.rsplit_once('.')?;
        if stem.is_empty() {
            return None;
        }
        match ext.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(DocType::Markdown),
            "rst" => Some(DocType::Rst),
            "html" | "htm" => Some(DocType::Html),
            "txt" | "text" => Some(DocType::Text),
            _ => None,
        }
    }

    /// The name stored in `source_files.doc_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Markdown => "markdown",
            DocType::Rst => "rst",
            DocType::Html => "html",
            DocType::Text => "text",
        }
    }
}

/// Cut one document into chunks. `path` gives the title when the document has
/// no level-1 heading (its file stem).
pub fn chunk_document(path: &str, content: &str, doc_type: DocType) -> Vec<Chunk> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let (blocks, title_hint) = match doc_type {
        DocType::Markdown => (markdown::markdown_blocks(content), None),
        DocType::Rst => (rst::rst_blocks(content), None),
        DocType::Html => html::html_blocks(content),
        DocType::Text => (text::text_blocks(content), None),
    };
    assemble(blocks, title_hint, path)
}

/// What every parser produces: headings and paragraphs in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Heading {
        level: usize,
        text: String,
    },
    /// `pre` paragraphs (code) keep their lines.
    Para {
        text: String,
        pre: bool,
    },
}

// ---------------------------------------------------------------------------
// Splitting: blocks → chunks of about [`TARGET_WORDS`]

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn file_stem(path: &str) -> String {
    let name = file_name(path);
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => name.to_string(),
    }
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Preformatted text: trailing whitespace and blank lines removed, lines kept
/// (so that `"\n\n"` still separates paragraphs in a chunk).
fn normalize_pre(s: &str) -> String {
    s.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// A piece of text that is never cut by packing.
#[derive(Debug)]
struct Unit {
    text: String,
    words: usize,
}

impl Unit {
    fn new(text: String) -> Unit {
        let words = word_count(&text);
        Unit { text, words }
    }
}

/// Group units into pieces of about [`TARGET_WORDS`], joined by `sep`. A
/// small group may grow up to [`MAX_PARAGRAPH_WORDS`] rather than stand alone,
/// and a final group under [`MIN_TAIL_WORDS`] joins the one before it.
fn pack(units: Vec<Unit>, sep: &str) -> Vec<Unit> {
    let mut groups: Vec<(Vec<String>, usize)> = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_words = 0;
    for unit in units {
        if unit.words == 0 {
            continue;
        }
        let total = cur_words + unit.words;
        let small_enough = cur_words < TARGET_WORDS / 2 && total <= MAX_PARAGRAPH_WORDS;
        if !cur.is_empty() && total > TARGET_WORDS && !small_enough {
            groups.push((std::mem::take(&mut cur), cur_words));
            cur_words = 0;
        }
        cur.push(unit.text);
        cur_words += unit.words;
    }
    if !cur.is_empty() {
        groups.push((cur, cur_words));
    }
    if groups.len() >= 2
        && groups.last().is_some_and(|(_, w)| *w < MIN_TAIL_WORDS)
        && let Some((tail, tail_words)) = groups.pop()
        && let Some((prev, prev_words)) = groups.last_mut()
    {
        prev.extend(tail);
        *prev_words += tail_words;
    }
    groups
        .into_iter()
        .map(|(parts, words)| Unit {
            text: parts.join(sep),
            words,
        })
        .collect()
}

/// Split prose after words ending a sentence (`.`, `!`, `?`, possibly
/// followed by closing quotes or brackets).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
        let core = word.trim_end_matches(['"', '\'', ')', ']', '\u{201d}', '\u{2019}', '\u{bb}']);
        if core.ends_with(['.', '!', '?', '\u{3002}', '\u{ff01}', '\u{ff1f}']) {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The last resort: pieces of [`TARGET_WORDS`] words.
fn split_words(text: &str) -> Vec<Unit> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .chunks(TARGET_WORDS)
        .map(|w| Unit {
            text: w.join(" "),
            words: w.len(),
        })
        .collect()
}

/// A paragraph as units of at most about [`MAX_PARAGRAPH_WORDS`] words.
fn split_paragraph(text: String, pre: bool) -> Vec<Unit> {
    let unit = Unit::new(text);
    if unit.words <= MAX_PARAGRAPH_WORDS {
        return vec![unit];
    }
    let segments: Vec<String> = if pre {
        unit.text.lines().map(str::to_string).collect()
    } else {
        sentences(&unit.text)
    };
    let mut units = Vec::new();
    for segment in segments {
        let seg = Unit::new(segment);
        if seg.words > MAX_PARAGRAPH_WORDS {
            units.extend(split_words(&seg.text));
        } else {
            units.push(seg);
        }
    }
    pack(units, if pre { "\n" } else { " " })
}

fn emit_section(title: &str, section: &str, paras: &mut Vec<(String, bool)>, out: &mut Vec<Chunk>) {
    let units: Vec<Unit> = paras
        .drain(..)
        .flat_map(|(text, pre)| split_paragraph(text, pre))
        .collect();
    for group in pack(units, "\n\n") {
        out.push(Chunk {
            title: title.to_string(),
            section: section.to_string(),
            text: group.text,
        });
    }
}

/// Turn blocks into chunks: the title, the heading path of each section, and
/// the sections' paragraphs packed into chunks.
fn assemble(blocks: Vec<Block>, title_hint: Option<String>, path: &str) -> Vec<Chunk> {
    let first_h1 = blocks
        .iter()
        .position(|b| matches!(b, Block::Heading { level: 1, text } if !text.is_empty()));
    let h1_title = first_h1.and_then(|i| match &blocks[i] {
        Block::Heading { text, .. } => Some(text.clone()),
        Block::Para { .. } => None,
    });
    let title = title_hint
        .filter(|t| !t.is_empty())
        .or(h1_title)
        .unwrap_or_else(|| file_stem(path));

    let mut chunks = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut section = String::new();
    let mut paras: Vec<(String, bool)> = Vec::new();
    for (i, block) in blocks.into_iter().enumerate() {
        match block {
            Block::Heading { level, text } => {
                emit_section(&title, &section, &mut paras, &mut chunks);
                while stack.last().is_some_and(|(l, _)| *l >= level) {
                    stack.pop();
                }
                if Some(i) != first_h1 && !text.is_empty() {
                    stack.push((level, text));
                }
                section = stack
                    .iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" > ");
            }
            Block::Para { text, pre } => {
                if !text.is_empty() {
                    paras.push((text, pre));
                }
            }
        }
    }
    emit_section(&title, &section, &mut paras, &mut chunks);
    chunks
}

// ---------------------------------------------------------------------------
// Helpers shared by the parsers

/// Push the normalized prose paragraph in `buf` (if any) and clear `buf`.
fn push_para(blocks: &mut Vec<Block>, buf: &mut String) {
    let text = normalize(buf);
    buf.clear();
    if !text.is_empty() {
        blocks.push(Block::Para { text, pre: false });
    }
}

/// Push the preformatted text `raw` (if any) as a `pre` paragraph.
fn push_pre(blocks: &mut Vec<Block>, raw: &str) {
    let text = normalize_pre(raw);
    if !text.is_empty() {
        blocks.push(Block::Para { text, pre: true });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, word: &str) -> String {
        (0..n)
            .map(|i| format!("{word}{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The heading path of every chunk (shared with the parsers' tests).
    pub(super) fn sections(chunks: &[Chunk]) -> Vec<&str> {
        chunks.iter().map(|c| c.section.as_str()).collect()
    }

    #[test]
    fn doc_type_from_path() {
        assert_eq!(DocType::from_path("a/b/Guide.MD"), Some(DocType::Markdown));
        assert_eq!(DocType::from_path("x.markdown"), Some(DocType::Markdown));
        assert_eq!(DocType::from_path("x.rst"), Some(DocType::Rst));
        assert_eq!(DocType::from_path("x.htm"), Some(DocType::Html));
        assert_eq!(DocType::from_path("x.html"), Some(DocType::Html));
        assert_eq!(DocType::from_path("x.txt"), Some(DocType::Text));
        assert_eq!(DocType::from_path("x.text"), Some(DocType::Text));
        assert_eq!(DocType::from_path("x.png"), None);
        assert_eq!(DocType::from_path("Makefile"), None);
        assert_eq!(DocType::from_path("dir.md/file"), None);
        assert_eq!(DocType::Rst.as_str(), "rst");
        assert_eq!(DocType::Markdown.as_str(), "markdown");
        assert_eq!(DocType::Html.as_str(), "html");
        assert_eq!(DocType::Text.as_str(), "text");
    }

    #[test]
    fn title_falls_back_to_file_stem() {
        let chunks = chunk_document(
            "guides/getting-started.md",
            "## Setup\n\nDo it.\n",
            DocType::Markdown,
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].title, "getting-started");
        assert_eq!(chunks[0].section, "Setup");
        let chunks = chunk_document("x/plain.rst", "Just text here.\n", DocType::Rst);
        assert_eq!(chunks[0].title, "plain");
    }

    #[test]
    fn long_section_is_split_at_paragraphs() {
        // 1000 words in 20 paragraphs of 50.
        let body: Vec<String> = (0..20).map(|p| words(50, &format!("p{p}w"))).collect();
        let md = format!(
            "# T\n\n## Big\n\n{}\n\n## Next\n\nsmall\n",
            body.join("\n\n")
        );
        let chunks = chunk_document("t.md", &md, DocType::Markdown);
        let big: Vec<&Chunk> = chunks.iter().filter(|c| c.section == "Big").collect();
        assert!((3..=5).contains(&big.len()), "{} chunks", big.len());
        for c in &big {
            let n = word_count(&c.text);
            assert!((150..=400).contains(&n), "chunk of {n} words");
            // Split at paragraph boundaries: every paragraph whole.
            for para in c.text.split("\n\n") {
                assert_eq!(word_count(para), 50);
            }
        }
        let total: usize = big.iter().map(|c| word_count(&c.text)).sum();
        assert_eq!(total, 1000);
        assert_eq!(chunks.last().map(|c| c.text.as_str()), Some("small"));
    }

    #[test]
    fn long_paragraph_split_at_sentences_then_words() {
        let sentence = |i: usize| format!("{}.", words(10, &format!("s{i}w")));
        let para: Vec<String> = (0..100).map(sentence).collect();
        let chunks = chunk_document("t.txt", &para.join(" "), DocType::Text);
        assert!((3..=5).contains(&chunks.len()), "{} chunks", chunks.len());
        for c in &chunks {
            let n = word_count(&c.text);
            assert!((150..=400).contains(&n), "chunk of {n} words");
            assert!(c.text.ends_with('.'), "cut inside a sentence: {}", c.text);
        }

        let run_on = words(1000, "w");
        let chunks = chunk_document("t.txt", &run_on, DocType::Text);
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| word_count(&c.text) == 250));
        let joined: Vec<&str> = chunks
            .iter()
            .flat_map(|c| c.text.split_whitespace())
            .collect();
        assert_eq!(joined.join(" "), run_on);
    }

    #[test]
    fn tiny_tail_merges_into_previous_chunk() {
        // 250 words then 20: the 20 must not stand alone.
        let txt = format!("{}\n\n{}", words(250, "a"), words(20, "c"));
        let chunks = chunk_document("t.txt", &txt, DocType::Text);
        assert_eq!(chunks.len(), 1, "{chunks:?}");
        assert_eq!(word_count(&chunks[0].text), 270);
        // A remainder of 60 words stands alone.
        let txt = format!("{}\n\n{}", words(250, "a"), words(60, "c"));
        assert_eq!(chunk_document("t.txt", &txt, DocType::Text).len(), 2);
        // And no chunk anywhere over ~400 words.
        let mixed = format!(
            "{}\n\n{}\n\n{}",
            words(370, "x"),
            words(300, "y"),
            words(49, "z")
        );
        for c in chunk_document("m.txt", &mixed, DocType::Text) {
            assert!(word_count(&c.text) <= 425);
        }
    }

    #[test]
    fn chunking_is_deterministic() {
        let md = format!("# A\n\n{}\n\n## B\n\n{}", words(600, "q"), words(90, "r"));
        let a = chunk_document("a.md", &md, DocType::Markdown);
        let b = chunk_document("a.md", &md, DocType::Markdown);
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }

    #[test]
    fn empty_documents_give_no_chunks() {
        assert!(chunk_document("e.md", "# Only\n\n## Headings\n", DocType::Markdown).is_empty());
        assert!(chunk_document("e.txt", "  \n\n ", DocType::Text).is_empty());
        assert!(
            chunk_document(
                "e.html",
                "<html><head><title>t</title></head></html>",
                DocType::Html
            )
            .is_empty()
        );
    }
}
