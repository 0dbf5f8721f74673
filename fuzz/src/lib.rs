//! `fleet-fuzz`: the inputs for the property tests that fuzz every parser
//! reading outside input (`tokens.yaml`, `users.yaml`, `session.key`,
//! `tools.yaml`, the sync manifest, the JSON-RPC envelope); the tests are in `tests/`.
//!
//! Two sources of inputs, both seeded so that a failure replays:
//! - [`mutate`]: seed documents broken at random, byte by byte and with the
//!   syntax of YAML and JSON, for "never panics, always answers";
//! - [`yaml_doc`]: well-formed documents of a file's shape whose every value
//!   is drawn from a pool that includes [`SECRET`] in many disguises, for
//!   "an error never quotes a value".
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
