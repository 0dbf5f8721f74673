//! `fleet-fuzz`: the inputs for the property tests that fuzz every parser
//! reading outside input (`tokens.yaml`, `users.yaml`, `session.key`,
//! `tools.yaml`, the sync manifest, the JSON-RPC envelope) and every reader
//! of a `kb.db` from outside; the tests are in `tests/`.
//!
//! Four sources of inputs, all seeded so that a failure replays:
//! - [`mutate`]: seed documents broken at random, byte by byte and with the
//!   syntax of YAML and JSON, for "never panics, always answers";
//! - [`yaml_doc`]: well-formed documents of a file's shape whose every value
//!   is drawn from a pool that includes [`SECRET`] in many disguises, for
//!   "an error never quotes a value";
//! - [`nested_yaml`]: documents nested [`nesting_depth`] deep in every
//!   style YAML has, for "deep nesting is refused at once, never parsed";
//! - [`kb_schema`]: `kb.db` files whose tables are views (endless ones
//!   too), virtual tables, tables computing columns as they are read, with
//!   triggers and expression indexes, for "a hostile KB is refused or
//!   loaded, never hangs a reader".
//!
//! `FUZZ_ITERS` sets how many inputs each test tries (default
//! [`DEFAULT_ITERS`]); `FUZZ_SEED` picks another sequence.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Inputs per test when `FUZZ_ITERS` is not set.
pub const DEFAULT_ITERS: usize = 20_000;

/// What no error message may contain.
pub const SECRET: &str = "S3CR3T-VALUE";

/// The number of inputs to try.
pub fn budget() -> usize {
    std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERS)
}

/// A generator seeded from `FUZZ_SEED` (default 0) and the test's name.
pub fn rng(test: &str) -> StdRng {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let name = test.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    StdRng::seed_from_u64(seed ^ name)
}

/// Fragments of YAML and JSON syntax, and values that parsers treat
/// specially, spliced into inputs by [`mutate`].
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    "\r\n",
    "  ",
    "\t",
    "#",
    "&a ",
    "*a",
    "!!binary ",
    "!!str ",
    "!tag ",
    "'",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "? ",
    "|",
    ">",
    "|-\n  ",
    "~",
    "null",
    "true",
    "<<: ",
    "<<: *a",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "\u{0}",
    "\u{feff}",
    "\u{2028}",
    "1e999",
    "-0",
    "0x1F",
    ".inf",
    "9223372036854775808",
    "\"\\x\"",
    "tokens:",
    "users:",
    "hash: ",
    "token: ",
    "expires_at: ",
    "password_hash: ",
    "enabled: ",
    "username: ",
    "dest_dir: ",
    "files:",
    "name: ",
    "source: ",
    "kind: ",
    "sha256: ",
    "max_bytes: ",
    "{\"jsonrpc\":\"2.0\"",
    "\"method\":",
    "\"params\":",
    "\"id\":",
    "\"name\":",
    "\"arguments\":",
    "\"tools/call\"",
    "[[[[[[[[[[[[[[[[",
    "{{{{{{{{{{{{{{{{",
];

/// A seed broken at random: up to eight edits (byte flips, inserted bytes
/// and syntax, deletions, duplications, splices with another seed).
pub fn mutate(rng: &mut impl Rng, seeds: &[&[u8]]) -> Vec<u8> {
    let mut out = seeds[rng.random_range(0..seeds.len())].to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..8) {
            0 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 => out.insert(at, rng.random()),
            2 | 3 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                out.splice(at..at, t.iter().copied());
            }
            4 if at < out.len() => {
                let end = rng.random_range(at..=out.len().min(at + 32));
                out.drain(at..end);
            }
            5 if at < out.len() => {
                let end = rng.random_range(at..=out.len().min(at + 64));
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            6 => {
                let other = seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..=other.len());
                let to = rng.random_range(from..=other.len());
                out.splice(at..at, other[from..to].iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Which file [`yaml_doc`] writes.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Tokens,
    Users,
    Manifest,
}

/// A well-formed YAML document of `shape`, with random structure (map or
/// list entries, block or flow style, missing and unknown fields) and every
/// value drawn from [`value`], so that many of them hide [`SECRET`]. Keys
/// come from a fixed vocabulary: keys name things, and messages may quote
/// them.
pub fn yaml_doc(rng: &mut impl Rng, shape: Shape) -> String {
    let (top, fields): (&str, &[&str]) = match shape {
        Shape::Tokens => (
            "tokens",
            &[
                "hash",
                "token",
                "name",
                "expires_at",
                "annotation",
                "database",
                "created_at",
                "other",
            ],
        ),
        Shape::Users => (
            "users",
            &[
                "username",
                "password_hash",
                "enabled",
                "annotation",
                "last_login",
                "failed_attempts",
                "other",
            ],
        ),
        Shape::Manifest => ("files", &["name", "source", "kind", "sha256"]),
    };
    let mut doc = String::new();
    if let Shape::Manifest = shape {
        doc.push_str(&format!("dest_dir: {}\n", value(rng, "/data")));
        if rng.random_bool(0.3) {
            doc.push_str(&format!("max_bytes: {}\n", value(rng, "4GiB")));
        }
    }
    match rng.random_range(0..10) {
        0 => doc.push_str(&format!("{top}: {}\n", value(rng, "{}"))),
        1 => doc.push_str(&format!("other: {}\n", value(rng, "x"))),
        _ => {
            doc.push_str(&format!("{top}:\n"));
            let as_list = matches!(shape, Shape::Manifest) || rng.random_bool(0.4);
            for i in 0..rng.random_range(0..4) {
                let mut entry: Vec<(String, String)> = Vec::new();
                for f in fields {
                    if rng.random_bool(0.6) {
                        // A manifest's file names are paths the operator
                        // must be told, not values that could be secret.
                        let v = match (shape, *f) {
                            (Shape::Manifest, "name") => good_value(f).to_string(),
                            _ => value(rng, good_value(f)),
                        };
                        entry.push((f.to_string(), v));
                    }
                }
                let body = if rng.random_bool(0.2) {
                    // The entry itself is a bare value.
                    value(rng, "x")
                } else if rng.random_bool(0.3) {
                    let inner: Vec<String> =
                        entry.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    format!("{{{}}}", inner.join(", "))
                } else {
                    let lines: Vec<String> =
                        entry.iter().map(|(k, v)| format!("    {k}: {v}")).collect();
                    if lines.is_empty() {
                        "{}".to_string()
                    } else {
                        format!("\n{}", lines.join("\n"))
                    }
                };
                if as_list {
                    // `  - first: v` then the other fields under it.
                    let body = body
                        .strip_prefix("\n    ")
                        .map(str::to_string)
                        .unwrap_or(body);
                    doc.push_str(&format!("  - {body}\n"));
                } else {
                    doc.push_str(&format!("  entry{i}: {body}\n"));
                }
            }
        }
    }
    doc
}

/// A plausible good value of a field, so that documents get past the
/// fields they do not break.
fn good_value(field: &str) -> &'static str {
    match field {
        "hash" | "token" | "sha256" => {
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        }
        "password_hash" => "\"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW\"",
        "expires_at" | "created_at" | "last_login" => "2030-01-01T00:00:00Z",
        "enabled" => "true",
        "failed_attempts" => "0",
        "source" => "file:///x",
        "kind" => "tokens",
        "name" => "tokens.yaml",
        _ => "x",
    }
}

/// A value for a field: its good value, or one of many shapes that hide
/// [`SECRET`] (plain, quoted, escaped, in a list or map, as a block scalar,
/// tagged, or dressed as serde's own message).
pub fn value(rng: &mut impl Rng, good: &str) -> String {
    let s = SECRET;
    let pool = [
        good.to_string(),
        good.to_string(),
        s.to_string(),
        format!("x {s} y"),
        format!("\"{s}\""),
        format!("'{s}'"),
        format!("\"{s}\\\", expected struct X\""),
        format!("\"{s}`, expected \""),
        format!("[{s}]"),
        format!("[1, {s}]"),
        format!("{{a: {s}}}"),
        format!("|\n      {s}"),
        format!("!!str {s}"),
        format!("!custom {s}"),
        format!("\"{s}\\u0041\""),
        "42".to_string(),
        "-1.5".to_string(),
        "true".to_string(),
        "null".to_string(),
        "~".to_string(),
        "[]".to_string(),
        "{}".to_string(),
    ];
    pool[rng.random_range(0..pool.len())].clone()
}

/// How a [`nested_yaml`] document nests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// `[[[x]]]`
    FlowLists,
    /// `{a: {a: x}}`
    FlowMaps,
    /// `[{a: [{a: x}]}]`
    FlowMixed,
    /// `- - - x` on one line (compact block sequences)
    CompactLists,
    /// `a:\n a:\n  a: x`, one more space a level
    BlockMaps,
    /// `- a:\n   - a:` and so on
    BlockMixed,
}

impl Nesting {
    pub const ALL: [Nesting; 6] = [
        Nesting::FlowLists,
        Nesting::FlowMaps,
        Nesting::FlowMixed,
        Nesting::CompactLists,
        Nesting::BlockMaps,
        Nesting::BlockMixed,
    ];
}

/// A well-formed YAML document `top: <value>` whose value nests `depth`
/// lists and mappings inside each other in `style` (so the document's
/// depth is `depth + 1`), with an anchor and an alias now and then, and a
/// random line of text before and after.
pub fn nested_yaml(rng: &mut impl Rng, top: &str, style: Nesting, depth: usize) -> String {
    let leaf = match rng.random_range(0..4) {
        0 => "x".to_string(),
        1 => "*anchor".to_string(),
        2 => format!("\"{SECRET}\""),
        _ => "null".to_string(),
    };
    let anchor = if leaf == "*anchor" {
        "anchor_source: &anchor [1, 2]\n"
    } else {
        ""
    };
    let body = match style {
        Nesting::FlowLists => format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth)),
        Nesting::FlowMaps => format!("{}{leaf}{}", "{a: ".repeat(depth), "}".repeat(depth)),
        Nesting::FlowMixed => {
            let mut open = String::new();
            let mut close = Vec::with_capacity(depth);
            for i in 0..depth {
                if i % 2 == 0 {
                    open.push('[');
                    close.push(']');
                } else {
                    open.push_str("{a: ");
                    close.push('}');
                }
            }
            let close: String = close.into_iter().rev().collect();
            format!("{open}{leaf}{close}")
        }
        Nesting::CompactLists => format!("\n{}{leaf}", "- ".repeat(depth)),
        Nesting::BlockMaps => {
            let mut out = String::new();
            for i in 0..depth {
                out.push('\n');
                out.push_str(&" ".repeat(i + 1));
                out.push_str(if i + 1 == depth { "a: " } else { "a:" });
            }
            if depth == 0 {
                return format!("{anchor}{top}: {leaf}\n");
            }
            out.push_str(&leaf);
            out
        }
        Nesting::BlockMixed => {
            // Each level is a list item holding a mapping: two levels for
            // every "- a:".
            let mut out = String::new();
            let pairs = depth / 2;
            for i in 0..pairs {
                out.push('\n');
                out.push_str(&" ".repeat(2 * i + 1));
                out.push_str("- a:");
            }
            if depth % 2 == 1 {
                out.push('\n');
                out.push_str(&" ".repeat(2 * pairs + 1));
                out.push_str("- ");
                out.push_str(&leaf);
            } else {
                out.push(' ');
                out.push_str(&leaf);
            }
            out
        }
    };
    format!("# before\n{anchor}{top}: {body}\nafter: 1\n")
}

/// A nesting depth for [`nested_yaml`]: mostly around the limit of 64
/// (documents of depth 63 to 66 often), sometimes hundreds of thousands
/// deep, which is what the adversary sent. Block mappings grow with the
/// square of their depth, so they stay below a few thousand.
pub fn nesting_depth(rng: &mut impl Rng, style: Nesting) -> usize {
    let depth = match rng.random_range(0..10) {
        0..=3 => rng.random_range(60..=68),
        4..=6 => rng.random_range(0..60),
        7 | 8 => rng.random_range(68..5_000),
        _ => rng.random_range(5_000..200_000),
    };
    match style {
        Nesting::BlockMaps | Nesting::BlockMixed => depth.min(3_000),
        _ => depth,
    }
}

/// What a `kb.db` object is replaced with in [`kb_schema`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbSchema {
    /// SQL that makes the file, after the real rows are in `real_chunks`.
    pub sql: String,
    /// Whether every object a reader reads is what it must be (so the file
    /// may verify); `false`: it must be refused.
    pub well_shaped: bool,
    /// What was done, for a failure's message.
    pub what: Vec<String>,
}

/// The columns of pgEdge's `chunks`, as a reader needs them.
const CHUNK_COLUMNS: &str = "id INTEGER PRIMARY KEY, text TEXT NOT NULL, title TEXT, section TEXT, \
     project_name TEXT NOT NULL, project_version TEXT NOT NULL, file_path TEXT";
const CHUNK_NAMES: &str = "id, text, title, section, project_name, project_version, file_path";
/// A query that never ends.
const ENDLESS: &str = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)";

/// The schema of a hostile or odd `kb.db`: its rows are in `real_chunks`
/// (made by the caller), and each object a reader reads (`chunks`,
/// `source_files`, `kb_meta`, `kb_search_index`, `kb_embeddings`,
/// `chunks_fts`) is, at
/// random, absent, what it should be, or something else in its place:
/// views (finite, huge or endless), virtual tables (FTS5, R*Tree), tables
/// with read-time generated columns, triggers, expression indexes, `WITHOUT
/// ROWID`, names in other cases.
pub fn kb_schema(rng: &mut impl Rng) -> KbSchema {
    let mut sql = Vec::new();
    let mut what = Vec::new();
    let mut well = true;
    let name = |rng: &mut _, n: &str| -> String {
        if Rng::random_bool(rng, 0.2) {
            n.to_ascii_uppercase()
        } else {
            n.to_string()
        }
    };
    // chunks
    let chunks = name(rng, "chunks");
    match rng.random_range(0..11) {
        0..=2 => {
            sql.push(format!(
                "CREATE TABLE {chunks} ({CHUNK_COLUMNS}); \
                 INSERT INTO {chunks} SELECT {CHUNK_NAMES} FROM real_chunks;"
            ));
            what.push("chunks: table".into());
        }
        3 => {
            sql.push(format!(
                "CREATE TABLE {chunks} ({CHUNK_COLUMNS}) ; \
                 INSERT INTO {chunks} SELECT {CHUNK_NAMES} FROM real_chunks; \
                 CREATE TABLE log(x); \
                 CREATE TRIGGER t AFTER INSERT ON {chunks} BEGIN INSERT INTO log VALUES (1); END; \
                 CREATE INDEX ix ON {chunks}(length(text) * 2);"
            ));
            what.push("chunks: table with a trigger and an expression index".into());
        }
        4 => {
            sql.push(format!(
                "CREATE TABLE {chunks} (id INTEGER, text TEXT NOT NULL, title TEXT, section TEXT, \
                 project_name TEXT NOT NULL, project_version TEXT NOT NULL, file_path TEXT, \
                 PRIMARY KEY (id)) WITHOUT ROWID; \
                 INSERT INTO {chunks} SELECT {CHUNK_NAMES} FROM real_chunks;"
            ));
            what.push("chunks: WITHOUT ROWID table".into());
        }
        5 => {
            sql.push(format!(
                "CREATE VIEW {chunks} AS SELECT {CHUNK_NAMES} FROM real_chunks;"
            ));
            well = false;
            what.push("chunks: plain view".into());
        }
        6 => {
            sql.push(format!(
                "CREATE VIEW {chunks} AS {ENDLESS} SELECT n AS id, 'x' AS text, 't' AS title, \
                 's' AS section, 'p' AS project_name, '1' AS project_version, 'f' AS file_path FROM r;"
            ));
            well = false;
            what.push("chunks: endless view".into());
        }
        7 => {
            sql.push(format!(
                "CREATE VIEW {chunks} AS SELECT a.id * 1000000 + b.id * 1000 + c.id AS id, a.text, \
                 a.title, a.section, a.project_name, a.project_version, a.file_path \
                 FROM real_chunks a, real_chunks b, real_chunks c, real_chunks d;"
            ));
            well = false;
            what.push("chunks: view over a cartesian product".into());
        }
        8 => {
            sql.push(format!(
                "CREATE VIRTUAL TABLE {chunks} USING fts5(id, text, title, section, project_name, \
                 project_version, file_path); \
                 INSERT INTO {chunks} SELECT {CHUNK_NAMES} FROM real_chunks;"
            ));
            well = false;
            what.push("chunks: FTS5 virtual table".into());
        }
        9 => {
            sql.push(format!(
                "CREATE VIRTUAL TABLE {chunks} USING rtree(id, a, b);"
            ));
            well = false;
            what.push("chunks: R*Tree virtual table".into());
        }
        _ => {
            let stored = rng.random_bool(0.5);
            let kind = if stored { "STORED" } else { "VIRTUAL" };
            sql.push(format!(
                "CREATE TABLE {chunks} (id INTEGER PRIMARY KEY, raw TEXT, title TEXT, section TEXT, \
                 project_name TEXT NOT NULL, project_version TEXT NOT NULL, file_path TEXT, \
                 text TEXT GENERATED ALWAYS AS (raw || printf('%.*c', 2000, 'x')) {kind}); \
                 INSERT INTO {chunks}(id, raw, title, section, project_name, project_version, file_path) \
                 SELECT id, text, title, section, project_name, project_version, file_path FROM real_chunks;"
            ));
            if !stored {
                well = false;
            }
            what.push(format!("chunks: generated {kind} text"));
        }
    }
    // kb_meta
    let meta = name(rng, "kb_meta");
    match rng.random_range(0..6) {
        0 | 1 => what.push("kb_meta: absent".into()),
        2 => {
            sql.push(format!(
                "CREATE TABLE {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
                 INSERT INTO {meta} VALUES ('schema_version', '1'), ('build_id', 'b');"
            ));
            what.push("kb_meta: table".into());
        }
        3 => {
            sql.push(format!(
                "CREATE VIEW {meta} AS {ENDLESS} SELECT 'k' || n AS key, 'v' AS value FROM r;"
            ));
            well = false;
            what.push("kb_meta: endless view".into());
        }
        4 => {
            sql.push(format!(
                "CREATE VIRTUAL TABLE {meta} USING fts5(key, value);"
            ));
            well = false;
            what.push("kb_meta: FTS5 virtual table".into());
        }
        _ => {
            sql.push(format!(
                "CREATE TABLE {meta} (key TEXT PRIMARY KEY, v TEXT, \
                 value TEXT GENERATED ALWAYS AS (v || 'x') VIRTUAL);"
            ));
            well = false;
            what.push("kb_meta: generated VIRTUAL value".into());
        }
    }
    // kb_search_index, kb_embeddings, source_files: absent, or a view in
    // their place.
    for (table, columns) in [
        ("kb_search_index", "1 AS part, x'00' AS data"),
        ("kb_embeddings", "1 AS chunk_id, x'00' AS vector"),
        (
            "source_files",
            "'c' || n AS checksum, 'f' AS file_path, 'p' AS project_name, '1' AS project_version",
        ),
    ] {
        if rng.random_bool(0.15) {
            let t = name(rng, table);
            sql.push(format!(
                "CREATE VIEW {t} AS {ENDLESS} SELECT {columns} FROM r;"
            ));
            well = false;
            what.push(format!("{table}: endless view"));
        }
    }
    // chunks_fts
    let fts = name(rng, "chunks_fts");
    match rng.random_range(0..6) {
        0..=2 => what.push("chunks_fts: absent".into()),
        3 => {
            sql.push(format!(
                "CREATE VIRTUAL TABLE {fts} USING fts5(title, section, text, content='real_chunks', \
                 content_rowid='id'); INSERT INTO {fts}({fts}) VALUES ('rebuild');"
            ));
            what.push("chunks_fts: FTS5 index".into());
        }
        4 => {
            sql.push(format!(
                "CREATE VIEW endless_content AS {ENDLESS} SELECT n AS id, 'x' AS title, 'x' AS section, \
                 'x' AS text FROM r; \
                 CREATE VIRTUAL TABLE {fts} USING fts5(title, section, text, content='endless_content', \
                 content_rowid='id');"
            ));
            what.push("chunks_fts: FTS5 index over an endless view".into());
        }
        _ => {
            sql.push(format!("CREATE TABLE {fts} (title, section, text);"));
            well = false;
            what.push("chunks_fts: ordinary table".into());
        }
    }
    sql.push("DROP TABLE IF EXISTS real_chunks_keep;".into());
    KbSchema {
        sql: sql.join("\n"),
        well_shaped: well,
        what,
    }
}
