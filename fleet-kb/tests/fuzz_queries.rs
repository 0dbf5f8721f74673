//! Untrusted queries: 12,000 random query strings (operators, quotes,
//! unbalanced parentheses, NUL bytes, every Unicode plane, identifiers,
//! long strings) thrown at the engine over a KB built from documentation
//! with `kb build`'s builder. Every search must return (results or none),
//! never panic or fail, honour top_n and the filters, and rank best first;
//! the terms a query turns into stay bounded whatever its length.
//!
//! With the local model the test command installs (`PG_MCP_EMBED_MODEL_DIR`),
//! the KB carries vectors and the queries rotate through the keyword,
//! semantic and hybrid modes, each query embedded by the model as the
//! server does: the tokenizer and the vector scan get the same strings.

use fleet_kb::build::{BuildOptions, SourceDoc, build};
use fleet_kb::embed::StaticModel;
use fleet_kb::query::{MAX_QUERY_BYTES, MAX_TERMS, words};
use fleet_kb::search::{Kb, MAX_TOP_N, Mode, OpenOptions, SearchQuery};
use fleet_kb::vectors::VectorSource;

/// The local model, when the test command installed it.
fn model() -> Option<StaticModel> {
    let dir = std::env::var_os("PG_MCP_EMBED_MODEL_DIR")?;
    Some(
        StaticModel::load(std::path::Path::new(&dir)).expect("the model in PG_MCP_EMBED_MODEL_DIR"),
    )
}

/// xorshift64*: a fixed seed, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: [&str; 24] = [
    "vacuum",
    "autovacuum",
    "replication",
    "slot",
    "wal",
    "checkpoint",
    "index",
    "btree",
    "shared_buffers",
    "work_mem",
    "pg_hba",
    "ssl",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "title:",
    "*",
    "\"",
    "(",
    ")",
    "-",
    "^",
    "the",
];

/// One random query string, of one of several shapes.
fn query(rng: &mut Rng) -> String {
    match rng.below(8) {
        // Words and operators of the docs' vocabulary, spaced or glued.
        0 | 1 => {
            let n = 1 + rng.below(12);
            let sep = if rng.below(2) == 0 { " " } else { "" };
            (0..n)
                .map(|_| WORDS[rng.below(WORDS.len())])
                .collect::<Vec<_>>()
                .join(sep)
        }
        // Any Unicode scalar values, any plane.
        2 => (0..rng.below(40))
            .filter_map(|_| char::from_u32(rng.next() as u32 % 0x11_0000))
            .collect(),
        // ASCII punctuation and control bytes, NUL included.
        3 => (0..rng.below(60))
            .map(|_| char::from(rng.below(128) as u8))
            .collect(),
        // Letters of many scripts, combining marks and emoji between spaces.
        4 => {
            let letters = [
                'a', 'é', 'ж', 'λ', 'ע', 'ب', 'क', '漢', 'か', '한', '😀', '\u{0301}',
            ];
            (0..rng.below(30))
                .map(|i| {
                    if i % 5 == 4 {
                        ' '
                    } else {
                        letters[rng.below(letters.len())]
                    }
                })
                .collect()
        }
        // Identifiers, underscores in odd places.
        5 => (0..1 + rng.below(6))
            .map(|_| {
                let (a, b) = (WORDS[rng.below(12)], WORDS[rng.below(12)]);
                format!("{}{a}_{b}", ["_", "__", "_x_", ""][rng.below(4)])
            })
            .collect::<Vec<_>>()
            .join(" "),
        // Long: a word repeated, or one very long token.
        6 => {
            let n = 1 + rng.below(20_000);
            if rng.below(2) == 0 {
                "vacuum ".repeat(n)
            } else {
                "x".repeat(n)
            }
        }
        // Empty or blank.
        _ => [" ", "", "\t\n", "\0"][rng.below(4)].to_string(),
    }
}

fn kb() -> (tempfile::TempDir, Kb) {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    for (i, topic) in ["vacuum", "replication", "indexes", "security", "wal"]
        .iter()
        .enumerate()
    {
        for j in 0..8 {
            docs.push(SourceDoc {
                path: format!("{topic}/page{j}.md"),
                content: format!(
                    "# {topic} page {j}\n\n## Overview\n\nThe {topic} chapter, part {j}. \
                     Set shared_buffers and work_mem; edit pg_hba.conf for ssl. \
                     Autovacuum and checkpoint and WAL and btree index {i}.\n\n\
                     ## Details\n\nMore about {topic}: replication slot, vacuum freeze.\n"
                ),
            });
        }
    }
    let out = dir.path().join("kb.db");
    let opts = BuildOptions {
        project: "postgres".into(),
        version: "15".into(),
        built_at: None,
        embed_model: std::env::var_os("PG_MCP_EMBED_MODEL_DIR").map(Into::into),
    };
    build(&docs, &out, &opts).unwrap();
    let open = OpenOptions {
        vectors: model().map(|m| VectorSource::Local(m.identity().clone())),
        ..OpenOptions::default()
    };
    let kb = Kb::open_with(&out, &open).unwrap();
    (dir, kb)
}

#[test]
fn twelve_thousand_random_queries_never_panic_or_fail() {
    let (_dir, kb) = kb();
    let model = model();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut found, mut empty) = (0, 0);
    for i in 0..12_000 {
        let text = query(&mut rng);
        let top_n = 1 + rng.below(MAX_TOP_N);
        let q = SearchQuery {
            query: text.clone(),
            project_names: if i % 3 == 0 {
                vec!["postgres".into()]
            } else {
                vec![]
            },
            project_versions: if i % 6 == 0 {
                vec!["15".into(), "".into()]
            } else {
                vec![]
            },
            top_n: Some(top_n),
            mode: Mode::ALL[i % 3],
            vector: match Mode::ALL[i % 3] {
                Mode::Keyword => None,
                _ => model.as_ref().and_then(|m| m.embed(&text)),
            },
        };
        if model.is_some() && q.vector.is_some() {
            assert_eq!(kb.mode_for(&q), q.mode, "query {i}");
        }
        let hits = kb
            .search(&q)
            .unwrap_or_else(|e| panic!("query {i} {text:?}: {e:#}"));
        assert!(hits.len() <= top_n, "query {i} {text:?}");
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "query {i} {text:?}: not best first"
        );
        assert!(hits.iter().all(|h| h.project_name == "postgres"));
        // The work a query can cause is bounded whatever its length.
        let terms: usize = words(&text).iter().map(|w| 1 + w.parts.len()).sum();
        assert!(terms < MAX_TERMS + 16, "query {i}: {terms} terms");
        if hits.is_empty() {
            empty += 1;
        } else {
            found += 1;
        }
    }
    // Many queries hold real words: the engine did find things.
    assert!(found > 3_000, "only {found} queries found anything");
    assert!(empty > 1_000, "only {empty} queries found nothing");
}

#[test]
fn a_megabyte_query_is_answered_from_its_head() {
    let (_dir, kb) = kb();
    let big = format!("replication {}", "zz ".repeat(400_000));
    assert!(big.len() > 1_000_000);
    let q = |query: String| SearchQuery {
        query,
        ..Default::default()
    };
    let hits = kb.search(&q(big)).unwrap();
    assert!(
        !hits.is_empty(),
        "the word in its first {MAX_QUERY_BYTES} bytes is searched"
    );
    assert!(kb.search(&q("\0".repeat(1 << 20))).unwrap().is_empty());
    assert!(kb.search(&q("(".repeat(1 << 20))).unwrap().is_empty());
}
