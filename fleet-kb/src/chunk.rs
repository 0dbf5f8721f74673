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

use html5gum::{DefaultEmitter, Token, Tokenizer};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

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
        DocType::Markdown => (markdown_blocks(content), None),
        DocType::Rst => (rst_blocks(content), None),
        DocType::Html => html_blocks(content),
        DocType::Text => (text_blocks(content), None),
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
// Chunking

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
// Plain text

fn text_blocks(content: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut para = String::new();
    for line in content.lines() {
        if line.trim().is_empty() {
            push_para(&mut blocks, &mut para);
        } else {
            para.push(' ');
            para.push_str(line);
        }
    }
    push_para(&mut blocks, &mut para);
    blocks
}

/// Push the normalized prose paragraph in `buf` (if any) and clear `buf`.
fn push_para(blocks: &mut Vec<Block>, buf: &mut String) {
    let text = normalize(buf);
    buf.clear();
    if !text.is_empty() {
        blocks.push(Block::Para { text, pre: false });
    }
}

fn push_pre(blocks: &mut Vec<Block>, raw: &str) {
    let text = normalize_pre(raw);
    if !text.is_empty() {
        blocks.push(Block::Para { text, pre: true });
    }
}

// ---------------------------------------------------------------------------
// Markdown

fn heading_level(level: HeadingLevel) -> usize {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

fn markdown_blocks(content: &str) -> Vec<Block> {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS
        | Options::ENABLE_GFM;
    let mut blocks = Vec::new();
    let mut para = String::new();
    let mut heading: Option<(usize, String)> = None;
    let mut code: Option<String> = None;
    let mut html: Option<String> = None;
    let mut metadata = false;
    let mut image_depth = 0usize;

    for event in Parser::new_ext(content, options) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Heading { level, .. } => {
                    push_para(&mut blocks, &mut para);
                    heading = Some((heading_level(level), String::new()));
                }
                Tag::CodeBlock(_) => {
                    push_para(&mut blocks, &mut para);
                    code = Some(String::new());
                }
                Tag::HtmlBlock => {
                    push_para(&mut blocks, &mut para);
                    html = Some(String::new());
                }
                Tag::MetadataBlock(_) => metadata = true,
                Tag::Image { .. } => image_depth += 1,
                Tag::Paragraph
                | Tag::BlockQuote(_)
                | Tag::List(_)
                | Tag::Item
                | Tag::FootnoteDefinition(_)
                | Tag::DefinitionList
                | Tag::DefinitionListTitle
                | Tag::DefinitionListDefinition
                | Tag::Table(_)
                | Tag::TableHead
                | Tag::TableRow => push_para(&mut blocks, &mut para),
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Heading(_) => {
                    if let Some((level, text)) = heading.take() {
                        blocks.push(Block::Heading {
                            level,
                            text: normalize(&text),
                        });
                    }
                }
                TagEnd::CodeBlock => {
                    if let Some(raw) = code.take() {
                        push_pre(&mut blocks, &raw);
                    }
                }
                TagEnd::HtmlBlock => {
                    if let Some(raw) = html.take() {
                        blocks.extend(html_blocks(&raw).0);
                    }
                }
                TagEnd::MetadataBlock(_) => metadata = false,
                TagEnd::Image => image_depth = image_depth.saturating_sub(1),
                TagEnd::TableCell => para.push(' '),
                TagEnd::Paragraph
                | TagEnd::BlockQuote(_)
                | TagEnd::List(_)
                | TagEnd::Item
                | TagEnd::FootnoteDefinition
                | TagEnd::DefinitionList
                | TagEnd::DefinitionListTitle
                | TagEnd::DefinitionListDefinition
                | TagEnd::Table
                | TagEnd::TableHead
                | TagEnd::TableRow => push_para(&mut blocks, &mut para),
                _ => {}
            },
            Event::Text(text) | Event::Code(text) => {
                if metadata || image_depth > 0 {
                    continue;
                }
                if let Some(buf) = code.as_mut() {
                    buf.push_str(&text);
                } else if let Some(buf) = html.as_mut() {
                    buf.push_str(&text);
                } else if let Some((_, buf)) = heading.as_mut() {
                    buf.push_str(&text);
                } else {
                    para.push_str(&text);
                }
            }
            Event::Html(text) => {
                if let Some(buf) = html.as_mut() {
                    buf.push_str(&text);
                }
            }
            Event::InlineHtml(_) | Event::SoftBreak | Event::HardBreak => {
                if let Some((_, buf)) = heading.as_mut() {
                    buf.push(' ');
                } else {
                    para.push(' ');
                }
            }
            Event::Rule => push_para(&mut blocks, &mut para),
            _ => {}
        }
    }
    if let Some((level, text)) = heading.take() {
        blocks.push(Block::Heading {
            level,
            text: normalize(&text),
        });
    }
    if let Some(raw) = code.take() {
        push_pre(&mut blocks, &raw);
    }
    push_para(&mut blocks, &mut para);
    blocks
}

// ---------------------------------------------------------------------------
// HTML

/// Elements whose content is never indexed.
const HTML_SKIP: &[&str] = &["script", "style", "nav", "noscript", "template", "svg"];
/// Classes of navigation chrome: an element carrying one is skipped with
/// everything inside it, like `<nav>`. These are DocBook XSL's (the
/// PostgreSQL manual's): the Prev / Up / Home / Next bars above and below
/// every page, the tables of contents of chapters and sections (titles of
/// other pages, or headings the page repeats), and the entries and letter
/// links of the book index (`bookindex.html`, 15,000 words of "term,
/// page title" lines).
const HTML_CHROME_CLASSES: &[&str] = &[
    "navheader",
    "navfooter",
    "toc",
    "indexdiv",
    "indexdiv-quicklinks",
];
/// Elements that have no content (and no end tag) in HTML.
const HTML_VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];
/// Elements that may appear in `<head>`; any other start tag ends it.
const HTML_HEAD: &[&str] = &[
    "title", "meta", "link", "style", "script", "base", "noscript", "template",
];
/// Elements that break paragraphs.
const HTML_BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "caption",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "hr",
    "figure",
    "figcaption",
    "details",
    "summary",
    "form",
    "fieldset",
    "address",
    "body",
    "html",
];

#[derive(Default)]
struct HtmlState {
    blocks: Vec<Block>,
    para: String,
    heading: Option<(usize, String)>,
    pre: Option<String>,
    pre_depth: usize,
    skip_depth: usize,
    /// Inside navigation chrome: the element that started it and how many
    /// elements of that name are open (the chrome ends when it reaches 0).
    chrome: Option<(String, usize)>,
    in_head: bool,
    title: Option<String>,
    title_buf: Option<String>,
}

impl HtmlState {
    fn break_para(&mut self) {
        if let Some((_, buf)) = self.heading.as_mut() {
            buf.push(' ');
        } else if let Some(buf) = self.pre.as_mut() {
            buf.push('\n');
        } else {
            push_para(&mut self.blocks, &mut self.para);
        }
    }

    fn space(&mut self) {
        if let Some((_, buf)) = self.heading.as_mut() {
            buf.push(' ');
        } else if let Some(buf) = self.pre.as_mut() {
            buf.push(' ');
        } else {
            self.para.push(' ');
        }
    }

    /// A start tag; `chrome` tells whether its attributes mark it as
    /// navigation chrome ([`is_chrome`]).
    fn start(&mut self, name: &str, self_closing: bool, chrome: bool) {
        if let Some((tag, open)) = self.chrome.as_mut() {
            if name == tag && !self_closing {
                *open += 1;
            }
            return;
        }
        if name == "title" {
            if self.skip_depth == 0 && !self_closing {
                self.title_buf = Some(String::new());
            }
            return;
        }
        match name {
            "head" => {
                self.in_head = !self_closing;
                return;
            }
            "body" => self.in_head = false,
            _ => {}
        }
        if self.in_head {
            if HTML_HEAD.contains(&name) {
                return;
            }
            self.in_head = false;
        }
        if HTML_SKIP.contains(&name) {
            if !self_closing {
                self.skip_depth += 1;
            }
            return;
        }
        if self.skip_depth > 0 {
            return;
        }
        if chrome && !self_closing && !HTML_VOID.contains(&name) {
            self.break_para();
            self.chrome = Some((name.to_string(), 1));
            return;
        }
        if let Some(level) = html_heading_level(name) {
            if self.heading.is_none() && self.pre.is_none() {
                push_para(&mut self.blocks, &mut self.para);
                self.heading = Some((level, String::new()));
            }
        } else if name == "pre" {
            if self.pre.is_none() {
                push_para(&mut self.blocks, &mut self.para);
                self.pre = Some(String::new());
            }
            self.pre_depth += 1;
        } else if name == "td" || name == "th" {
            self.space();
        } else if HTML_BLOCK.contains(&name) {
            self.break_para();
        }
    }

    fn end(&mut self, name: &str) {
        if let Some((tag, open)) = self.chrome.as_mut() {
            if name == tag {
                *open -= 1;
            }
            // An unbalanced page must not lose everything after its chrome.
            if *open == 0 || name == "body" || name == "html" {
                self.chrome = None;
                self.break_para();
            }
            return;
        }
        if name == "title" {
            if let Some(buf) = self.title_buf.take() {
                let text = normalize(&buf);
                if self.title.is_none() && !text.is_empty() {
                    self.title = Some(text);
                }
            }
            return;
        }
        if name == "head" {
            self.in_head = false;
            return;
        }
        if self.in_head {
            return;
        }
        if HTML_SKIP.contains(&name) {
            self.skip_depth = self.skip_depth.saturating_sub(1);
            return;
        }
        if self.skip_depth > 0 {
            return;
        }
        if let Some(level) = html_heading_level(name) {
            if self.heading.as_ref().is_some_and(|(l, _)| *l == level)
                && let Some((level, text)) = self.heading.take()
            {
                self.blocks.push(Block::Heading {
                    level,
                    text: normalize(&text),
                });
            }
        } else if name == "pre" {
            self.pre_depth = self.pre_depth.saturating_sub(1);
            if self.pre_depth == 0
                && let Some(raw) = self.pre.take()
            {
                push_pre(&mut self.blocks, &raw);
            }
        } else if name == "td" || name == "th" {
            self.space();
        } else if HTML_BLOCK.contains(&name) {
            self.break_para();
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(buf) = self.title_buf.as_mut() {
            buf.push_str(text);
        } else if self.in_head || self.skip_depth > 0 || self.chrome.is_some() {
        } else if let Some((_, buf)) = self.heading.as_mut() {
            buf.push_str(text);
        } else if let Some(buf) = self.pre.as_mut() {
            buf.push_str(text);
        } else {
            self.para.push_str(text);
        }
    }

    fn finish(mut self) -> (Vec<Block>, Option<String>) {
        if let Some((level, text)) = self.heading.take() {
            self.blocks.push(Block::Heading {
                level,
                text: normalize(&text),
            });
        }
        if let Some(raw) = self.pre.take() {
            push_pre(&mut self.blocks, &raw);
        }
        push_para(&mut self.blocks, &mut self.para);
        (self.blocks, self.title)
    }
}

fn html_heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Whether an element with these `class` and `role` attributes is
/// navigation chrome: one of [`HTML_CHROME_CLASSES`], or ARIA's
/// `role="navigation"` (what `<nav>` means, e.g. Sphinx's bars).
fn is_chrome(class: Option<&str>, role: Option<&str>) -> bool {
    class.is_some_and(|c| {
        c.split_ascii_whitespace()
            .any(|c| HTML_CHROME_CLASSES.contains(&c))
    }) || role.is_some_and(|r| r.trim().eq_ignore_ascii_case("navigation"))
}

/// Blocks of an HTML document (or fragment) and its `<title>`, if any.
fn html_blocks(content: &str) -> (Vec<Block>, Option<String>) {
    let mut emitter = DefaultEmitter::default();
    // Raw-text elements (script, style, title, textarea) are tokenized as text.
    emitter.naively_switch_states(true);
    let mut state = HtmlState::default();
    for token in Tokenizer::new_with_emitter(content, emitter) {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                let attr = |key: &[u8]| {
                    tag.attributes
                        .get(key)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                let chrome = is_chrome(attr(b"class").as_deref(), attr(b"role").as_deref());
                state.start(&name, tag.self_closing, chrome);
            }
            Token::EndTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                state.end(&name);
            }
            Token::String(text) => state.text(&String::from_utf8_lossy(&text.value)),
            _ => {}
        }
    }
    state.finish()
}

// ---------------------------------------------------------------------------
// reStructuredText

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

fn rst_blocks(content: &str) -> Vec<Block> {
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

/// Characters after which inline markup may start.
fn markup_may_start(prev: Option<char>) -> bool {
    prev.is_none_or(|p| p.is_whitespace() || "'\"([{<-/:\u{2018}\u{201c}".contains(p))
}

fn find_from(chars: &[char], from: usize, pat: &[char]) -> Option<usize> {
    if pat.is_empty() || chars.len() < pat.len() {
        return None;
    }
    (from..=chars.len() - pat.len()).find(|&k| chars[k..k + pat.len()] == *pat)
}

/// Remove common reStructuredText inline markup: ``` ``literal`` ```,
/// `*emphasis*`, `**strong**`, `` :role:`text` ``, `` `link <url>`_ ``,
/// `|substitution|`, footnote references `[1]_` and backslash escapes.
fn strip_rst_inline(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let may_start = markup_may_start(prev);
        match c {
            '\\' => {
                if let Some(n) = next.filter(|n| !n.is_whitespace()) {
                    out.push(n);
                }
                i += 2;
                continue;
            }
            '`' if next == Some('`') => {
                if let Some(j) = find_from(&chars, i + 2, &['`', '`']) {
                    out.extend(&chars[i + 2..j]);
                    i = j + 2;
                    continue;
                }
            }
            '`' if next.is_some_and(|n| !n.is_whitespace()) => {
                if let Some(j) = find_from(&chars, i + 1, &['`']) {
                    let inner: String = chars[i + 1..j].iter().collect();
                    out.push_str(&interpreted_text(&inner));
                    i = j + 1;
                    // `text`_ / `text`__ / `text`:role:
                    while chars.get(i) == Some(&'_') {
                        i += 1;
                    }
                    if chars.get(i) == Some(&':')
                        && let Some(k) = role_end(&chars, i)
                    {
                        i = k;
                    }
                    continue;
                }
            }
            ':' if may_start => {
                if let Some(k) = role_end(&chars, i)
                    && chars.get(k) == Some(&'`')
                {
                    i = k;
                    continue;
                }
            }
            '*' if may_start => {
                let (marker, len): (&[char], usize) = if next == Some('*') {
                    (&['*', '*'], 2)
                } else {
                    (&['*'], 1)
                };
                let body_start = i + len;
                if chars
                    .get(body_start)
                    .is_some_and(|n| !n.is_whitespace() && *n != '*')
                    && let Some(j) = find_from(&chars, body_start + 1, marker)
                        .filter(|&j| !chars[j - 1].is_whitespace())
                {
                    out.extend(&chars[body_start..j]);
                    i = j + len;
                    continue;
                }
            }
            '|' if may_start && next.is_some_and(|n| !n.is_whitespace() && n != '|') => {
                if let Some(j) = find_from(&chars, i + 1, &['|']).filter(|&j| {
                    !chars[j - 1].is_whitespace()
                        && chars
                            .get(j + 1)
                            .is_none_or(|a| a.is_whitespace() || a.is_ascii_punctuation())
                }) {
                    out.extend(&chars[i + 1..j]);
                    i = j + 1;
                    while chars.get(i) == Some(&'_') {
                        i += 1;
                    }
                    continue;
                }
            }
            '[' if may_start => {
                // Footnote / citation reference: [1]_, [#]_, [#note]_, [CIT2002]_.
                if let Some(j) = find_from(&chars, i + 1, &[']', '_'])
                    && j > i + 1
                    && chars[i + 1..j]
                        .iter()
                        .all(|c| !c.is_whitespace() && *c != '[')
                {
                    while out.ends_with(' ') {
                        out.pop();
                    }
                    i = j + 2;
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// At `chars[i] == ':'`, the index just after a role name `:name:` (names may
/// contain `:`, as in `:py:func:`), if there is one.
fn role_end(chars: &[char], i: usize) -> Option<usize> {
    let mut k = i + 1;
    while k < chars.len() && (chars[k].is_ascii_alphanumeric() || "-_.+:".contains(chars[k])) {
        k += 1;
    }
    (k > i + 2 && chars[k - 1] == ':').then_some(k)
}

/// The readable part of interpreted text: `title <target>` gives the title,
/// `~mod.func` gives `func`.
fn interpreted_text(inner: &str) -> String {
    let inner = inner.trim();
    if let Some(stripped) = inner.strip_suffix('>')
        && let Some((title, target)) = stripped.rsplit_once('<')
    {
        let title = title.trim();
        return if title.is_empty() {
            target.trim()
        } else {
            title
        }
        .to_string();
    }
    if let Some(path) = inner.strip_prefix('~') {
        return path.rsplit('.').next().unwrap_or(path).to_string();
    }
    inner.trim_start_matches('!').to_string()
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

    fn sections(chunks: &[Chunk]) -> Vec<&str> {
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
    fn markdown_headings_and_sections() {
        let md = "# Guide\n\nIntro   text\nwrapped.\n\n## Install\n\nInstall text.\n\n### Docker\n\nDocker *text* with `code`.\n\n## Empty\n\n## Use\n\n- one\n- two\n";
        let chunks = chunk_document("docs/guide.md", md, DocType::Markdown);
        assert_eq!(
            sections(&chunks),
            ["", "Install", "Install > Docker", "Use"]
        );
        assert!(chunks.iter().all(|c| c.title == "Guide"));
        assert_eq!(chunks[0].text, "Intro text wrapped.");
        assert_eq!(chunks[2].text, "Docker text with code.");
        assert_eq!(chunks[3].text, "one\n\ntwo");
    }

    #[test]
    fn markdown_setext_and_code_fence_with_hash() {
        let md = "Title Here\n==========\n\nSome text.\n\nPart Two\n--------\n\n```sh\n# not a heading\necho hi\n```\n\nAfter code.\n";
        let chunks = chunk_document("x.md", md, DocType::Markdown);
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert_eq!(chunks[0].title, "Title Here");
        assert_eq!(chunks[0].section, "");
        assert_eq!(chunks[1].section, "Part Two");
        assert_eq!(chunks[1].text, "# not a heading\necho hi\n\nAfter code.");
    }

    #[test]
    fn markdown_front_matter_and_html_block() {
        let md =
            "---\ntitle: meta\n---\n\n<h1 align=\"center\">Proj &amp; Co</h1>\n\n## A\n\ntext a\n";
        let chunks = chunk_document("p.md", md, DocType::Markdown);
        assert_eq!(chunks.len(), 1, "{chunks:#?}");
        assert_eq!(chunks[0].title, "Proj & Co");
        assert_eq!(chunks[0].section, "A");
        assert_eq!(chunks[0].text, "text a");
    }

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

    #[test]
    fn html_headings_script_skipped_entities_decoded() {
        let html = "<!DOCTYPE html><html><head><title>Page &amp; Title</title>\
            <style>h1 { color: red }</style><script>var x = '<h2>hidden-heading</h2>';</script></head>\
            <body><nav><a href=/>Home nav</a></nav>\
            <h1>Main</h1><p>Caf&eacute; &lt;b&gt; is    here.</p><p>Second<br>line</p>\
            <h2>Sub <code>part</code></h2><ul><li>one</li><li>two &#x41;</li></ul>\
            <script>alert('secret')</script>\
            <pre>fn main() {\n    println!(\"&lt;hi&gt;\");\n}</pre></body></html>";
        let chunks = chunk_document("p.html", html, DocType::Html);
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert!(chunks.iter().all(|c| c.title == "Page & Title"));
        assert_eq!(chunks[0].section, "");
        assert_eq!(chunks[0].text, "Café <b> is here.\n\nSecond\n\nline");
        assert_eq!(chunks[1].section, "Sub part");
        assert_eq!(
            chunks[1].text,
            "one\n\ntwo A\n\nfn main() {\n    println!(\"<hi>\");\n}"
        );
        let all: String = chunks.iter().map(|c| c.text.clone()).collect();
        for hidden in ["secret", "color", "Home nav", "hidden-heading"] {
            assert!(!all.contains(hidden), "{hidden} leaked: {all}");
        }
    }

    /// Pages of the PostgreSQL 15 manual (Debian's postgresql-doc-15), as
    /// shipped: DocBook XSL output with navigation bars, a table of
    /// contents, and the book index.
    const PG_CHAPTER: &str = include_str!("../testdata/postgresql-15/diskusage.html");
    const PG_SECTION: &str = include_str!("../testdata/postgresql-15/disk-full.html");
    const PG_BOOK_INDEX: &str = include_str!("../testdata/postgresql-15/bookindex-excerpt.html");

    fn all_text(chunks: &[Chunk]) -> String {
        chunks
            .iter()
            .map(|c| format!("{} | {}\n", c.section, c.text))
            .collect()
    }

    #[test]
    fn docbook_navigation_bars_are_not_indexed() {
        // The bars' words are there to be skipped.
        for bar in [
            "Prev",
            "Up",
            "Home",
            "Next",
            "Reliability and the Write-Ahead Log",
        ] {
            assert!(PG_SECTION.contains(bar), "fixture lacks {bar}");
        }
        let chunks = chunk_document("disk-full.html", PG_SECTION, DocType::Html);
        let text = all_text(&chunks);
        assert!(chunks.iter().all(|c| c.title == "29.2. Disk Full Failure"));
        // Before: a first chunk of the header bar alone ("29.2. Disk Full
        // Failure Prev Up Chapter 29. Monitoring Disk Usage Home Next") and
        // the footer's neighbour titles glued to the last paragraph.
        assert!(
            chunks[0]
                .text
                .starts_with("The most important disk monitoring task"),
            "{text}"
        );
        assert!(text.contains("by making use of tablespaces"), "{text}");
        assert!(
            chunks
                .last()
                .is_some_and(|c| c.text.ends_with("running out of disk space entirely.")),
            "{text}"
        );
        for chrome in [
            "Prev",
            "Home",
            "Next",
            "Monitoring Disk Usage",
            "Determining Disk Usage",
            "Reliability and the Write-Ahead Log",
        ] {
            assert!(!text.contains(chrome), "{chrome} indexed:\n{text}");
        }
    }

    #[test]
    fn docbook_table_of_contents_is_not_indexed() {
        let chunks = chunk_document("diskusage.html", PG_CHAPTER, DocType::Html);
        // What is left of a chapter page is its own introduction.
        assert_eq!(chunks.len(), 1, "{chunks:#?}");
        assert_eq!(chunks[0].title, "Chapter 29. Monitoring Disk Usage");
        assert_eq!(
            chunks[0].text,
            "This chapter discusses how to monitor the disk usage of a PostgreSQL database system."
        );
        assert!(PG_CHAPTER.contains("29.2. Disk Full Failure</a>"));
    }

    #[test]
    fn docbook_book_index_gives_no_chunks() {
        assert!(PG_BOOK_INDEX.contains("zero_damaged_pages configuration parameter"));
        let chunks = chunk_document("bookindex.html", PG_BOOK_INDEX, DocType::Html);
        assert!(chunks.is_empty(), "{chunks:#?}");
    }

    #[test]
    fn chrome_by_class_or_role_ends_with_its_element() {
        let html = "<html><body>\
            <div class='page navheader'><div><p>bar one</p></div><p>bar two</p></div>\
            <p>kept one</p>\
            <div role='Navigation'><div>crumbs</div></div>\
            <hr class='toc'><p>kept two</p>\
            <ul class='toc'><li>entry<ul><li>nested</li></ul></li></ul>\
            <p>kept three</p>\
            <div class='navfooter'><div>never closed\
            </body></html>";
        let chunks = chunk_document("x.html", html, DocType::Html);
        assert_eq!(chunks.len(), 1, "{chunks:#?}");
        assert_eq!(chunks[0].text, "kept one\n\nkept two\n\nkept three");
        // Content after an unclosed chrome element in a later document is
        // unaffected: each document starts clean.
        let after = chunk_document("y.html", "<p>next doc</p>", DocType::Html);
        assert_eq!(after[0].text, "next doc");
        // Classes that merely contain a chrome class name are content.
        let similar = "<div class='tocify navheaderish'><p>content</p></div>";
        let chunks = chunk_document("z.html", similar, DocType::Html);
        assert_eq!(chunks[0].text, "content");
    }

    #[test]
    fn html_title_falls_back_to_h1_then_stem() {
        let c = chunk_document("a/b.htm", "<h1>Head</h1><p>x y</p>", DocType::Html);
        assert_eq!(c[0].title, "Head");
        let c = chunk_document("a/b.htm", "<h2>Sub</h2><p>x y</p>", DocType::Html);
        assert_eq!(c[0].title, "b");
        assert_eq!(c[0].section, "Sub");
    }

    #[test]
    fn text_paragraphs() {
        let txt = "First   para\nline two.\n\n  \n\nSecond para.\n\n\n# not a heading\n";
        let chunks = chunk_document("notes/readme.txt", txt, DocType::Text);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].title, "readme");
        assert_eq!(chunks[0].section, "");
        assert_eq!(
            chunks[0].text,
            "First para line two.\n\nSecond para.\n\n# not a heading"
        );
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
