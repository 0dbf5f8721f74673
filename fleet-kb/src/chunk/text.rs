//! Plain text → blocks: paragraphs separated by blank lines, no headings.

use super::{Block, push_para};

pub(super) fn text_blocks(content: &str) -> Vec<Block> {
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

#[cfg(test)]
mod tests {
    use crate::chunk::{DocType, chunk_document};

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
}
