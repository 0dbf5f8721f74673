//! The text of a `search_knowledgebase` answer, bounded like
//! `query_database`'s: each hit carries at most
//! [`fleet_kb::search::MAX_HIT_TEXT_BYTES`] of its chunk (cut when the KB
//! is read), and the whole answer at most [`MAX_ANSWER_BYTES`]. A cut is
//! said in the answer, never silent: an assistant that sees a cut passage
//! knows there is more, and where to read it.

use fleet_kb::search::Hit;

/// The longest answer one search gives, in bytes (a chunk's heading and
/// product lines included). Twenty hits of ordinary chunks (a few KiB
/// each) fit many times over.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The answer to `query` with `hits` (at least one), labelled `label`.
pub fn render(query: &str, label: &str, hits: &[Hit]) -> String {
    let mut out = format!("{} results for {query:?}: {label}\n", hits.len());
    for (i, h) in hits.iter().enumerate() {
        let heading = if h.section.is_empty() {
            h.title.clone()
        } else {
            format!("{} › {}", h.title, h.section)
        };
        let head = format!(
            "\n## {}. {heading}\nProduct: {} {} | Source: {} | Score: {:.2}\n\n",
            i + 1,
            h.project_name,
            h.project_version,
            h.file_path,
            h.score,
        );
        let note = |shown: usize| {
            format!(
                "\n[passage cut: {} shown of {}; read the source for the rest]\n",
                size(shown as u64),
                size(h.text_bytes)
            )
        };
        // Room for this hit's head, its note and the answer's own last line.
        let room = MAX_ANSWER_BYTES
            .saturating_sub(out.len() + head.len() + note(h.text.len()).len() + 160);
        if room == 0 || (room < h.text.len() && i > 0 && room < 1024) {
            out.push_str(&format!(
                "\n[answer cut at {}: {i} of {} results shown; ask for fewer (top_n) or a \
                 narrower query]\n",
                size(MAX_ANSWER_BYTES as u64),
                hits.len()
            ));
            break;
        }
        out.push_str(&head);
        let text = fleet_kb::query::head(&h.text, room);
        out.push_str(text);
        out.push('\n');
        if text.len() < h.text.len() || h.is_cut() {
            out.push_str(&note(text.len()));
        }
    }
    out
}

/// A size for people: bytes, KiB or MB.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} bytes"),
        b if b < 1024 * 1024 => format!("{} KiB", b / 1024),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_kb::search::MAX_HIT_TEXT_BYTES;

    fn hit(text: String, text_bytes: u64) -> Hit {
        Hit {
            id: 1,
            title: "T".into(),
            section: "S".into(),
            project_name: "pg".into(),
            project_version: "17".into(),
            file_path: "a.md".into(),
            text,
            text_bytes,
            score: 1.0,
        }
    }

    #[test]
    fn ordinary_hits_are_whole_and_say_nothing_of_cuts() {
        let out = render("q", "[mode: keyword]", &[hit("hello".into(), 5)]);
        assert!(
            out.starts_with("1 results for \"q\": [mode: keyword]\n"),
            "{out}"
        );
        assert!(
            out.contains("## 1. T › S\nProduct: pg 17 | Source: a.md | Score: 1.00\n\nhello\n")
        );
        assert!(!out.contains("cut"), "{out}");
    }

    /// Issue 29, finding 6: a 29.5 MB chunk was returned whole on every
    /// hit. A cut hit says so, and twenty hits at the cap stay within the
    /// answer's bound, saying how many were shown.
    #[test]
    fn a_huge_chunk_is_cut_and_the_answer_is_bounded() {
        let big = hit("x".repeat(MAX_HIT_TEXT_BYTES), 29_500_000);
        let out = render("q", "[mode: keyword]", std::slice::from_ref(&big));
        assert!(out.len() < MAX_HIT_TEXT_BYTES + 1024, "{}", out.len());
        assert!(
            out.contains("[passage cut: 8 KiB shown of 29.5 MB; read the source"),
            "{out}"
        );
        let many = vec![big; 20];
        let out = render("q", "[mode: keyword]", &many);
        assert!(out.len() <= MAX_ANSWER_BYTES, "{}", out.len());
        assert!(
            out.contains("results shown; ask for fewer (top_n)"),
            "{out}"
        );
        let shown = out.matches("\n## ").count();
        assert!((5..20).contains(&shown), "{shown}");
        assert!(
            out.contains(&format!("{shown} of 20 results shown")),
            "{out}"
        );
    }
}
