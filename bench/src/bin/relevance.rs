//! `relevance`: page-level hit@1, hit@5 and MRR@5 of each search engine on
//! the question file (`bench/relevance/questions.yaml`), over a KB of the
//! real documentation corpus that file names.
//!
//! The KB is built with `fleet_kb`'s builder into a temporary directory
//! (or taken from `--kb`), then every engine in [`engines`] answers every
//! question with [`relevance::CHUNKS_PER_QUESTION`] chunks, and one table
//! compares them. `--json` prints the same figures as one JSON line for
//! `bench/run.py`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use bench::relevance::{self, QuestionSet, Report};
use clap::Parser;
use fleet_common::kb_vectors::Provider;
use fleet_kb::embed::StaticModel;
use fleet_kb::fts5::Fts5Kb;
use fleet_kb::search::{Kb, Mode, OpenOptions};
use fleet_kb::vectors::VectorSource;

#[derive(Debug, Parser)]
#[command(
    name = "relevance",
    about = "Page-level relevance (hit@1, hit@5, MRR@5) of the search engines on a real corpus"
)]
struct Args {
    /// Question file [default: the bench crate's relevance/questions.yaml].
    #[arg(long)]
    questions: Option<PathBuf>,
    /// Corpus to build the KB from [default: the question file's `corpus`].
    #[arg(long, conflicts_with = "kb")]
    corpus: Option<PathBuf>,
    /// Use this KB (built from the same corpus) instead of building one.
    #[arg(long)]
    kb: Option<PathBuf>,
    /// Embed the chunks and questions with the local static model in this
    /// directory, and compare the semantic and hybrid modes too
    /// [default: $PG_MCP_EMBED_MODEL_DIR when set].
    #[arg(long, env = "PG_MCP_EMBED_MODEL_DIR")]
    embed_model: Option<PathBuf>,
    /// Compare the semantic and hybrid modes with a provider's vectors
    /// instead of a local model's: the KB's pgEdge column of this provider
    /// (openai, voyage, ollama or gemini), every question embedded by the
    /// same model beforehand (`--question-vectors`). Needs `--kb`;
    /// `bench/transformer_vectors.py` makes both for a small transformer.
    #[arg(
        long,
        requires_all = ["question_vectors", "kb"],
        conflicts_with = "embed_model"
    )]
    provider: Option<Provider>,
    /// The question vectors of `--provider`: a JSON object, question → array.
    #[arg(long, requires = "provider")]
    question_vectors: Option<PathBuf>,
    /// List the questions each engine missed (no answer in the first 5 pages).
    #[arg(long)]
    misses: bool,
    /// Print one JSON line with every figure instead of the table.
    #[arg(long)]
    json: bool,
}

/// A search engine as the harness sees it: a question → ranked chunk
/// `file_path`s, best first.
type Engine<'a> = Box<dyn Fn(&str) -> Result<Vec<String>> + 'a>;

/// How the questions are embedded for the semantic and hybrid modes: by
/// the local model as the server does, or from vectors a provider's model
/// made beforehand.
enum Embedder {
    Local(Box<StaticModel>),
    Given(HashMap<String, Vec<f32>>),
}

impl Embedder {
    fn embed(&self, question: &str) -> Option<Vec<f32>> {
        match self {
            Embedder::Local(model) => model.embed(question),
            Embedder::Given(vectors) => vectors.get(question).cloned(),
        }
    }
}

/// The engines to compare, by name, over the same KB file: `current`, the
/// search index (`Kb::search`, keywords), `fts5`, the previous engine
/// (`fleet_kb::fts5`), and with an embedder, `semantic` and `hybrid`.
/// `bench/run.py` reports `current`, `semantic` and `hybrid` against
/// `fts5`.
fn engines<'a>(
    kb: &'a Kb,
    fts5: &'a Fts5Kb,
    embedder: Option<&'a Embedder>,
) -> Vec<(&'static str, Engine<'a>)> {
    let mut engines: Vec<(&'static str, Engine<'a>)> = vec![
        ("current", Box::new(relevance::kb_engine(kb))),
        ("fts5", Box::new(relevance::fts5_engine(fts5))),
    ];
    if let Some(e) = embedder {
        for (name, mode) in [("semantic", Mode::Semantic), ("hybrid", Mode::Hybrid)] {
            engines.push((
                name,
                Box::new(relevance::kb_engine_in(kb, |q| e.embed(q), mode)),
            ));
        }
    }
    engines
}

fn main() -> ExitCode {
    bench::exit_with(real_main())
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    let questions_path = args
        .questions
        .clone()
        .unwrap_or_else(relevance::default_questions);
    let set = QuestionSet::load(&questions_path)?;
    let corpus = args.corpus.clone().unwrap_or_else(|| set.corpus.clone());

    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let (kb_path, build_s) = match &args.kb {
        Some(path) => (path.clone(), None),
        None => {
            set.check_pages_exist(&corpus)?;
            let path = tmp.path().join("kb.db");
            let t0 = Instant::now();
            relevance::build_kb(&corpus, &path, args.embed_model.as_deref())?;
            (path, Some(t0.elapsed().as_secs_f64()))
        }
    };
    let (embedder, vectors) = match (&args.embed_model, args.provider) {
        (Some(dir), _) => {
            let model = StaticModel::load(dir)?;
            let source = VectorSource::Local(model.identity().clone());
            (Some(Embedder::Local(Box::new(model))), Some(source))
        }
        (None, Some(provider)) => {
            let path = args
                .question_vectors
                .as_deref()
                .context("--provider needs --question-vectors")?;
            let given = relevance::load_question_vectors(path, &set)?;
            let dimensions = given.values().next().map(Vec::len);
            let source = VectorSource::Provider {
                provider,
                dimensions,
            };
            (Some(Embedder::Given(given)), Some(source))
        }
        (None, None) => (None, None),
    };
    let opts = OpenOptions {
        vectors,
        ..OpenOptions::default()
    };
    let kb =
        Kb::open_with(&kb_path, &opts).with_context(|| format!("opening {}", kb_path.display()))?;
    if let Some(provider) = args.provider {
        ensure!(
            kb.vectors().is_some(),
            "{} holds no {} vectors (column {})",
            kb_path.display(),
            provider.as_str(),
            provider.column()
        );
    }
    let chunks = kb.info().chunk_count;

    let mut reports: Vec<(&str, Report, f64)> = Vec::new();
    let fts5 = Fts5Kb::open(&kb_path).with_context(|| format!("opening {}", kb_path.display()))?;
    for (name, engine) in engines(&kb, &fts5, embedder.as_ref()) {
        let t0 = Instant::now();
        let report = relevance::evaluate(&set, engine)?;
        let per_question_ms = t0.elapsed().as_secs_f64() * 1000.0 / set.questions.len() as f64;
        reports.push((name, report, per_question_ms));
    }

    if args.json {
        let engines: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(name, report, ms)| {
                let mut sets = serde_json::Map::new();
                let all = report.sets().into_iter().map(|s| (s, report.set(s)));
                for (set, m) in all.chain([("all", report.overall())]) {
                    sets.insert(
                        set.to_string(),
                        serde_json::json!({
                            "questions": m.questions,
                            "hit1": m.hit1,
                            "hit5": m.hit5,
                            "mrr5": m.mrr5,
                        }),
                    );
                }
                sets.insert("ms_per_question".to_string(), serde_json::json!(ms));
                (name.to_string(), serde_json::Value::Object(sets))
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "corpus": corpus,
                "chunks": chunks,
                "build_s": build_s,
                "questions": set.questions.len(),
                "engines": engines,
            })
        );
        return Ok(());
    }

    let sizes = set.set_sizes();
    println!(
        "questions: {} ({}) from {}",
        set.questions.len(),
        sizes
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", "),
        questions_path.display()
    );
    match build_s {
        Some(s) => println!(
            "KB: {chunks} chunks of {} (built in {s:.2} s)",
            corpus.display()
        ),
        None => println!("KB: {chunks} chunks ({})", kb_path.display()),
    }
    println!(
        "pages: the first {} distinct pages of the top {} chunks\n",
        relevance::CUTOFF,
        relevance::CHUNKS_PER_QUESTION
    );
    let rows: Vec<(&str, &Report)> = reports.iter().map(|(n, r, _)| (*n, r)).collect();
    print!("{}", relevance::table(&rows));
    for (name, _, ms) in &reports {
        println!("{name}: {ms:.1} ms per question");
    }
    if args.misses {
        for (name, report, _) in &reports {
            println!("\n{name}: {} misses", report.misses().count());
            print!("{}", report.misses_text());
        }
    }
    Ok(())
}
