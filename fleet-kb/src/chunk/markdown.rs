//! Markdown → blocks, with pulldown-cmark (GFM, tables, footnotes, front
//! matter skipped); HTML blocks inside Markdown go through the HTML parser.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::html::html_blocks;
use super::{Block, normalize, push_para, push_pre};

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

pub(super) fn markdown_blocks(content: &str) -> Vec<Block> {
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

#[cfg(test)]
mod tests {
    use crate::chunk::tests::sections;
    use crate::chunk::{DocType, chunk_document};

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
}
