//! Relevance of a ranked search, measured at the level of pages: a question
//! file (`bench/relevance/questions.yaml`) names, for each question, the
//! documentation pages that answer it; a search engine is any function from
//! a question to its ranked chunks' `file_path`s.
//!
//! The chunks are collapsed to pages in first-seen order (a page's rank is
//! that of its best chunk), and a question scores by the rank of the first
//! answering page among the first [`CUTOFF`] pages: hit@1 (it is first),
//! hit@5 (it is in the first five) and MRR@5 (the mean of 1/rank, 0 past
//! five). Figures are given per question set (`users`: a user's words;
//! `away`: phrased away from the documentation's vocabulary) and overall.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use fleet_kb::build::{BuildOptions, BuildReport, build_from_dir};
use fleet_kb::fts5::Fts5Kb;
use fleet_kb::search::{Kb, Mode, SearchQuery};
use serde::Deserialize;

/// Pages of a ranking that count: hit@5 and MRR@5.
pub const CUTOFF: usize = 5;
/// The most answer pages one question may list.
pub const MAX_PAGES: usize = 3;
/// The question file of this crate, relative to its manifest directory.
pub const QUESTIONS_FILE: &str = "relevance/questions.yaml";
/// Chunks asked of an engine per question: enough to fill [`CUTOFF`] pages
/// even when a page contributes several chunks (and the most one search
/// returns, [`fleet_kb::search::MAX_TOP_N`]).
pub const CHUNKS_PER_QUESTION: usize = fleet_kb::search::MAX_TOP_N;

/// The question file shipped with this crate.
pub fn default_questions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(QUESTIONS_FILE)
}

/// A question file: the corpus its pages belong to, and the questions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionSet {
    /// The directory the KB is built from; pages are relative to it.
    pub corpus: PathBuf,
    pub questions: Vec<Question>,
}

/// One question and the pages that answer it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub q: String,
    /// File names relative to the corpus directory, any of which answers.
    pub pages: Vec<String>,
    /// The set it belongs to, e.g. `users` or `away`.
    pub set: String,
}

impl QuestionSet {
    /// Read and check a question file.
    pub fn load(path: &Path) -> Result<QuestionSet> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading questions {}", path.display()))?;
        let set: QuestionSet = serde_norway::from_str(&text)
            .with_context(|| format!("parsing questions {}", path.display()))?;
        set.check()
            .with_context(|| format!("checking questions {}", path.display()))?;
        Ok(set)
    }

    /// Every question has text, a set, 1 to [`MAX_PAGES`] distinct pages,
    /// and no question appears twice.
    pub fn check(&self) -> Result<()> {
        ensure!(!self.questions.is_empty(), "no questions");
        let mut seen = HashSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            let at = || format!("question {} ({:?})", i + 1, q.q);
            ensure!(!q.q.trim().is_empty(), "{}: empty question", at());
            ensure!(!q.set.trim().is_empty(), "{}: no set", at());
            ensure!(
                (1..=MAX_PAGES).contains(&q.pages.len()),
                "{}: {} pages listed, expected 1 to {MAX_PAGES}",
                at(),
                q.pages.len()
            );
            let distinct: HashSet<&str> = q.pages.iter().map(String::as_str).collect();
            ensure!(distinct.len() == q.pages.len(), "{}: a page twice", at());
            ensure!(
                q.pages.iter().all(|p| !p.trim().is_empty()),
                "{}: an empty page name",
                at()
            );
            ensure!(
                seen.insert(q.q.trim().to_lowercase()),
                "{}: asked twice",
                at()
            );
        }
        Ok(())
    }

    /// Fail unless every listed page is a file under `corpus`.
    pub fn check_pages_exist(&self, corpus: &Path) -> Result<()> {
        let missing: Vec<&str> = self
            .questions
            .iter()
            .flat_map(|q| q.pages.iter())
            .filter(|p| !corpus.join(p).is_file())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            bail!(
                "pages not found in {}: {}",
                corpus.display(),
                missing.join(", ")
            );
        }
        Ok(())
    }

    /// How many questions each set has, by set name.
    pub fn set_sizes(&self) -> BTreeMap<&str, usize> {
        let mut sizes = BTreeMap::new();
        for q in &self.questions {
            *sizes.entry(q.set.as_str()).or_insert(0) += 1;
        }
        sizes
    }
}

/// Ranked chunk file paths → pages, each once, in first-seen order.
pub fn pages_in_order<I, S>(file_paths: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut seen = HashSet::new();
    let mut pages = Vec::new();
    for p in file_paths {
        let p = p.as_ref();
        if seen.insert(p.to_string()) {
            pages.push(p.to_string());
        }
    }
    pages
}

/// The 1-based rank of the first page in `ranked` that is one of `answers`,
/// counting the first [`CUTOFF`] pages only.
pub fn answer_rank(ranked: &[String], answers: &[String]) -> Option<usize> {
    ranked
        .iter()
        .take(CUTOFF)
        .position(|p| answers.contains(p))
        .map(|i| i + 1)
}

/// One question's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub q: String,
    pub set: String,
    pub answers: Vec<String>,
    /// The first [`CUTOFF`] pages returned.
    pub top: Vec<String>,
    /// Rank of the first answering page within [`CUTOFF`], if any.
    pub rank: Option<usize>,
}

/// Aggregate figures over some outcomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub questions: usize,
    /// Fraction of questions whose first page answers them.
    pub hit1: f64,
    /// Fraction with an answering page among the first five.
    pub hit5: f64,
    /// Mean reciprocal rank, counting ranks up to five.
    pub mrr5: f64,
}

impl Metrics {
    /// Figures over `outcomes`; all zero for none.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Metrics {
        let (mut n, mut hit1, mut hit5, mut rr) = (0usize, 0usize, 0usize, 0.0f64);
        for o in outcomes {
            n += 1;
            if let Some(rank) = o.rank {
                hit1 += usize::from(rank == 1);
                hit5 += 1;
                rr += 1.0 / rank as f64;
            }
        }
        if n == 0 {
            return Metrics {
                questions: 0,
                hit1: 0.0,
                hit5: 0.0,
                mrr5: 0.0,
            };
        }
        let n_f = n as f64;
        Metrics {
            questions: n,
            hit1: hit1 as f64 / n_f,
            hit5: hit5 as f64 / n_f,
            mrr5: rr / n_f,
        }
    }
}

/// Every question's outcome for one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// The set names, in the order they first appear.
    pub fn sets(&self) -> Vec<&str> {
        let mut sets: Vec<&str> = Vec::new();
        for o in &self.outcomes {
            if !sets.contains(&o.set.as_str()) {
                sets.push(&o.set);
            }
        }
        sets
    }

    /// Figures for one set.
    pub fn set(&self, name: &str) -> Metrics {
        Metrics::of(self.outcomes.iter().filter(|o| o.set == name))
    }

    /// Figures over every question.
    pub fn overall(&self) -> Metrics {
        Metrics::of(&self.outcomes)
    }

    /// Questions with no answering page among the first five.
    pub fn misses(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.rank.is_none())
    }

    /// The misses as text: each question, its set, the pages expected and
    /// the pages returned.
    pub fn misses_text(&self) -> String {
        let mut out = String::new();
        for o in self.misses() {
            let _ = writeln!(
                out,
                "  miss [{}] {:?}\n    expected {}\n    got      {}",
                o.set,
                o.q,
                o.answers.join(", "),
                if o.top.is_empty() {
                    "(nothing)".to_string()
                } else {
                    o.top.join(", ")
                }
            );
        }
        out
    }
}

/// Run every question through `search` (ranked chunk `file_path`s, best
/// first) and score it.
pub fn evaluate<F>(set: &QuestionSet, search: F) -> Result<Report>
where
    F: Fn(&str) -> Result<Vec<String>>,
{
    let mut outcomes = Vec::with_capacity(set.questions.len());
    for q in &set.questions {
        let ranked = search(&q.q).with_context(|| format!("searching {:?}", q.q))?;
        let mut pages = pages_in_order(ranked);
        pages.truncate(CUTOFF);
        outcomes.push(Outcome {
            q: q.q.clone(),
            set: q.set.clone(),
            answers: q.pages.clone(),
            rank: answer_rank(&pages, &q.pages),
            top: pages,
        });
    }
    Ok(Report { outcomes })
}

/// Build a KB of `corpus` at `out` with the project's own builder, as
/// `mcp-server kb build --project postgres --project-version 15
/// [--embed-model DIR]` would.
pub fn build_kb(corpus: &Path, out: &Path, embed_model: Option<&Path>) -> Result<BuildReport> {
    let opts = BuildOptions {
        project: "postgres".to_string(),
        version: "15".to_string(),
        built_at: None,
        embed_model: embed_model.map(Path::to_path_buf),
    };
    build_from_dir(corpus, out, &opts)
        .with_context(|| format!("building a KB of {} at {}", corpus.display(), out.display()))
}

/// The request every engine receives for a question: no filter,
/// [`CHUNKS_PER_QUESTION`] results.
pub fn search_query(question: &str) -> SearchQuery {
    SearchQuery {
        query: question.to_string(),
        top_n: Some(CHUNKS_PER_QUESTION),
        ..SearchQuery::default()
    }
}

/// The current engine ([`Kb::search`]) as a ranking of chunk file paths.
pub fn kb_engine(kb: &Kb) -> impl Fn(&str) -> Result<Vec<String>> + '_ {
    kb_engine_in(kb, |_| None, Mode::Keyword)
}

/// The current engine in `mode`, each question embedded by `embed` with
/// the model the KB's vectors were made with (a local model as the server
/// runs it, or vectors a provider's model made beforehand). Fails when the
/// search would not run in that mode (no vectors, no question vector).
pub fn kb_engine_in<'a>(
    kb: &'a Kb,
    embed: impl Fn(&str) -> Option<Vec<f32>> + 'a,
    mode: Mode,
) -> impl Fn(&str) -> Result<Vec<String>> + 'a {
    move |question| {
        let q = SearchQuery {
            mode,
            vector: embed(question),
            ..search_query(question)
        };
        ensure!(
            kb.mode_for(&q) == mode,
            "the KB cannot search {question:?} in {} mode",
            mode.as_str()
        );
        Ok(kb.search(&q)?.into_iter().map(|h| h.file_path).collect())
    }
}

/// Question vectors made beforehand by a provider's model (a JSON object,
/// question → array of numbers, as `bench/transformer_vectors.py` writes),
/// checked to hold every question of `set`.
pub fn load_question_vectors(path: &Path, set: &QuestionSet) -> Result<HashMap<String, Vec<f32>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading question vectors {}", path.display()))?;
    let vectors: HashMap<String, Vec<f32>> = serde_json::from_str(&text)
        .with_context(|| format!("parsing question vectors {}", path.display()))?;
    for q in &set.questions {
        ensure!(
            vectors.contains_key(&q.q),
            "{} has no vector for the question {:?}",
            path.display(),
            q.q
        );
    }
    Ok(vectors)
}

/// The previous engine (SQLite FTS5, [`Fts5Kb::search`]) over the same KB
/// file, as a ranking of chunk file paths.
pub fn fts5_engine(kb: &Fts5Kb) -> impl Fn(&str) -> Result<Vec<String>> + '_ {
    move |question| {
        Ok(kb
            .search(&search_query(question))?
            .into_iter()
            .map(|h| h.file_path)
            .collect())
    }
}

/// A table of several engines' reports: one line per engine and set, then
/// one for all questions.
pub fn table(reports: &[(&str, &Report)]) -> String {
    let mut out = String::from("| engine | questions | n | hit@1 | hit@5 | MRR@5 |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
    for (engine, report) in reports {
        let mut rows: Vec<(String, Metrics)> = report
            .sets()
            .into_iter()
            .map(|s| (s.to_string(), report.set(s)))
            .collect();
        rows.push(("all".to_string(), report.overall()));
        for (set, m) in rows {
            let _ = writeln!(
                out,
                "| {engine} | {set} | {} | {:.1} % | {:.1} % | {:.3} |",
                m.questions,
                m.hit1 * 100.0,
                m.hit5 * 100.0,
                m.mrr5
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn question(q: &str, pages: &[&str], set: &str) -> Question {
        Question {
            q: q.to_string(),
            pages: s(pages),
            set: set.to_string(),
        }
    }

    #[test]
    fn question_vectors_must_cover_every_question() {
        let set = QuestionSet {
            corpus: PathBuf::from("/nowhere"),
            questions: vec![
                question("turn off jit", &["jit.html"], "users"),
                question("empty a big table", &["sql-truncate.html"], "away"),
            ],
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("q.json");
        std::fs::write(&path, r#"{"turn off jit": [0.6, 0.8]}"#).expect("write");
        let err = load_question_vectors(&path, &set).expect_err("one question has no vector");
        assert!(format!("{err:#}").contains("empty a big table"), "{err:#}");

        let both = r#"{"turn off jit": [0.6, 0.8], "empty a big table": [1, 0]}"#;
        std::fs::write(&path, both).expect("write");
        let vectors = load_question_vectors(&path, &set).expect("complete");
        assert_eq!(vectors["turn off jit"], vec![0.6, 0.8]);
        assert_eq!(vectors["empty a big table"], vec![1.0, 0.0]);

        std::fs::write(&path, r#"{"turn off jit": "no"}"#).expect("write");
        assert!(load_question_vectors(&path, &set).is_err());
    }

    #[test]
    fn chunks_collapse_to_pages_in_first_seen_order() {
        let pages = pages_in_order(["b.html", "b.html", "a.html", "b.html", "c.html", "a.html"]);
        assert_eq!(pages, s(&["b.html", "a.html", "c.html"]));
        assert!(pages_in_order(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn rank_is_the_first_answering_page_within_five() {
        let ranked = s(&["a", "b", "c", "d", "e", "f"]);
        assert_eq!(answer_rank(&ranked, &s(&["a"])), Some(1));
        assert_eq!(answer_rank(&ranked, &s(&["d", "b"])), Some(2));
        assert_eq!(answer_rank(&ranked, &s(&["e"])), Some(5));
        assert_eq!(
            answer_rank(&ranked, &s(&["f"])),
            None,
            "sixth is past the cutoff"
        );
        assert_eq!(answer_rank(&ranked, &s(&["z"])), None);
        assert_eq!(answer_rank(&[], &s(&["a"])), None);
    }

    #[test]
    fn metrics_arithmetic() {
        let o = |set: &str, rank: Option<usize>| Outcome {
            q: String::new(),
            set: set.to_string(),
            answers: Vec::new(),
            top: Vec::new(),
            rank,
        };
        // Ranks 1, 2, 5, miss: hit@1 1/4, hit@5 3/4, MRR (1 + 1/2 + 1/5) / 4.
        let outcomes = [
            o("u", Some(1)),
            o("u", Some(2)),
            o("a", Some(5)),
            o("a", None),
        ];
        let m = Metrics::of(&outcomes);
        assert_eq!(m.questions, 4);
        assert_eq!(m.hit1, 0.25);
        assert_eq!(m.hit5, 0.75);
        assert!((m.mrr5 - 1.7 / 4.0).abs() < 1e-12, "{}", m.mrr5);

        let report = Report {
            outcomes: outcomes.to_vec(),
        };
        assert_eq!(report.sets(), ["u", "a"]);
        let u = report.set("u");
        assert_eq!((u.questions, u.hit1, u.hit5), (2, 0.5, 1.0));
        assert!((u.mrr5 - 0.75).abs() < 1e-12);
        let a = report.set("a");
        assert_eq!((a.questions, a.hit1, a.hit5), (2, 0.0, 0.5));
        assert!((a.mrr5 - 0.1).abs() < 1e-12);
        assert_eq!(report.overall(), m);
        assert_eq!(report.misses().count(), 1);
        assert_eq!(Metrics::of(&[]).questions, 0);
        assert_eq!(Metrics::of(&[]).mrr5, 0.0);
    }

    #[test]
    fn evaluate_collapses_chunks_and_scores_each_question() {
        let set = QuestionSet {
            corpus: PathBuf::from("/nowhere"),
            questions: vec![
                question("first", &["a.html"], "users"),
                question("second", &["c.html", "x.html"], "users"),
                question("third", &["z.html"], "away"),
            ],
        };
        // Six chunks but only four pages; "c.html" is the third page even
        // though it is the fifth chunk.
        let report = evaluate(&set, |q| {
            Ok(match q {
                "first" | "second" => {
                    s(&["a.html", "a.html", "b.html", "a.html", "c.html", "d.html"])
                }
                _ => s(&["a.html", "b.html", "c.html", "d.html", "e.html", "z.html"]),
            })
        })
        .unwrap();
        let ranks: Vec<Option<usize>> = report.outcomes.iter().map(|o| o.rank).collect();
        assert_eq!(ranks, [Some(1), Some(3), None]);
        assert_eq!(
            report.outcomes[2].top.len(),
            CUTOFF,
            "the sixth page is cut"
        );
        let text = report.misses_text();
        assert!(
            text.contains("\"third\"") && text.contains("expected z.html"),
            "{text}"
        );
        assert!(!text.contains("\"first\""), "{text}");
        let table = table(&[("e", &report)]);
        assert!(
            table.contains("| e | users | 2 | 50.0 % | 100.0 % | 0.667 |"),
            "{table}"
        );
        assert!(
            table.contains("| e | away | 1 | 0.0 % | 0.0 % | 0.000 |"),
            "{table}"
        );
        assert!(
            table.contains("| e | all | 3 | 33.3 % | 66.7 % | 0.444 |"),
            "{table}"
        );

        let failing = evaluate(&set, |_| anyhow::bail!("engine down"));
        assert!(format!("{:#}", failing.unwrap_err()).contains("engine down"));
    }

    #[test]
    fn question_files_are_checked() {
        let parse = |yaml: &str| -> Result<QuestionSet> {
            let set: QuestionSet = serde_norway::from_str(yaml)?;
            set.check()?;
            Ok(set)
        };
        let ok = parse(
            "corpus: /d\nquestions:\n  - q: how\n    pages: [a.html]\n    set: users\n  - q: why\n    pages: [a.html, b.html]\n    set: away\n",
        )
        .unwrap();
        assert_eq!(
            ok.set_sizes().into_iter().collect::<Vec<_>>(),
            [("away", 1), ("users", 1)]
        );
        for bad in [
            "corpus: /d\nquestions: []\n",
            "corpus: /d\nquestions:\n  - q: how\n    pages: []\n    set: users\n",
            "corpus: /d\nquestions:\n  - q: how\n    pages: [a, b, c, d]\n    set: users\n",
            "corpus: /d\nquestions:\n  - q: how\n    pages: [a, a]\n    set: users\n",
            "corpus: /d\nquestions:\n  - q: ' '\n    pages: [a]\n    set: users\n",
            "corpus: /d\nquestions:\n  - q: how\n    pages: [a]\n    set: ''\n",
            "corpus: /d\nquestions:\n  - q: how\n    pages: [a]\n    set: u\n  - q: How\n    pages: [b]\n    set: u\n",
            "corpus: /d\nquestions:\n  - q: how\n    pages: [a]\n    set: u\n    extra: 1\n",
            "questions:\n  - q: how\n    pages: [a]\n    set: u\n",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn listed_pages_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.html"), "<p>x</p>").unwrap();
        let mut set = QuestionSet {
            corpus: dir.path().to_path_buf(),
            questions: vec![question("q", &["a.html"], "users")],
        };
        set.check_pages_exist(dir.path()).unwrap();
        set.questions.push(question("r", &["gone.html"], "users"));
        let err = set.check_pages_exist(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("gone.html") && !err.contains("a.html,"),
            "{err}"
        );
    }
}
