//! HTML → blocks and the `<title>`, with html5gum's tokenizer: `<head>`,
//! scripts, styles and navigation chrome (`<nav>`, `role="navigation"`,
//! DocBook's navigation bars, tables of contents and book index) skipped.

use html5gum::{DefaultEmitter, Token, Tokenizer};

use super::{Block, normalize, push_para, push_pre};

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
pub(super) fn html_blocks(content: &str) -> (Vec<Block>, Option<String>) {
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

#[cfg(test)]
mod tests {
    use crate::chunk::{Chunk, DocType, chunk_document};

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
    const PG_CHAPTER: &str = include_str!("../../testdata/postgresql-15/diskusage.html");
    const PG_SECTION: &str = include_str!("../../testdata/postgresql-15/disk-full.html");
    const PG_BOOK_INDEX: &str = include_str!("../../testdata/postgresql-15/bookindex-excerpt.html");

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
}
