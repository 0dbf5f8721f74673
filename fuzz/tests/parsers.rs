//! Every parser that reads outside input, fuzzed with a fixed budget (see
//! the crate doc): it never panics, answers every input, keeps its
//! invariants on what it accepts, and never quotes a value in an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use fleet_fuzz::{SECRET, Shape, budget, mutate, rng, yaml_doc};

/// Run `check` on `input`; on a panic, fail with the input so it replays.
fn no_panic<T>(what: &str, input: &[u8], check: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(check)) {
        Ok(v) => v,
        Err(_) => panic!("{what} panicked on {:?}", String::from_utf8_lossy(input)),
    }
}

/// What a fuzz test reports: inputs tried and how many were accepted.
struct Tally {
    name: &'static str,
    tried: usize,
    accepted: usize,
    slowest: Duration,
}

impl Tally {
    fn new(name: &'static str) -> Tally {
        Tally {
            name,
            tried: 0,
            accepted: 0,
            slowest: Duration::ZERO,
        }
    }

    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.slowest = self.slowest.max(t.elapsed());
        self.tried += 1;
        out
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        eprintln!(
            "fuzz {}: {} inputs, {} accepted, slowest {:?}",
            self.name, self.tried, self.accepted, self.slowest
        );
        if !std::thread::panicking() {
            assert!(self.tried > 0);
            assert!(
                self.slowest < Duration::from_secs(2),
                "{}: one input took {:?}",
                self.name,
                self.slowest
            );
        }
    }
}

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const BCRYPT: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";

fn token_seeds() -> Vec<Vec<u8>> {
    vec![
        format!("tokens:\n  token-1:\n    hash: {HASH}\n    expires_at: null\n    annotation: CI\n    database: prod\n").into_bytes(),
        format!("tokens:\n  - token: {HASH}\n    name: api\n  - hash: {HASH}\n    expires_at: 2030-01-01T00:00:00Z\n").into_bytes(),
        b"tokens: {}\n".to_vec(),
        format!("tokens: {{a: {{hash: {HASH}}}, b: {{hash: {SECRET}}}}}\n").into_bytes(),
    ]
}

#[test]
fn tokens_yaml() {
    let mut rng = rng("tokens_yaml");
    let seeds = token_seeds();
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut tally = Tally::new("tokens.yaml (mutated)");
    for _ in 0..budget() {
        let input = mutate(&mut rng, &seeds);
        let parsed = tally.time(|| {
            no_panic("tokens::parse", &input, || {
                fleet_common::tokens::parse(&input)
            })
        });
        if let Ok(tokens) = parsed {
            tally.accepted += 1;
            let mut hashes: Vec<_> = tokens.iter().map(|t| t.hash).collect();
            hashes.sort();
            hashes.dedup();
            assert_eq!(
                hashes.len(),
                tokens.len(),
                "duplicate hashes accepted: {input:?}"
            );
        }
    }
    drop(tally);
    let mut tally = Tally::new("tokens.yaml (secrets)");
    for _ in 0..budget() {
        let doc = yaml_doc(&mut rng, Shape::Tokens);
        match tally.time(|| {
            no_panic("tokens::parse", doc.as_bytes(), || {
                fleet_common::tokens::parse(doc.as_bytes())
            })
        }) {
            Ok(_) => tally.accepted += 1,
            Err(e) => {
                let e = e.to_string();
                assert!(
                    !e.contains(SECRET),
                    "an error quotes a value:\n{doc}\n→ {e}"
                );
                assert!(e.starts_with("tokens.yaml: "), "{e}");
            }
        }
    }
}

#[test]
fn users_yaml() {
    let mut rng = rng("users_yaml");
    let seeds = [
        format!("users:\n  alice:\n    username: alice\n    password_hash: \"{BCRYPT}\"\n    enabled: true\n    annotation: dba\n    last_login: null\n").into_bytes(),
        b"users:\n  - username: bob\n    password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n    enabled: false\n".to_vec(),
        b"users: {}\n".to_vec(),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut tally = Tally::new("users.yaml (mutated)");
    for _ in 0..budget() {
        let input = mutate(&mut rng, &seeds);
        if let Ok(users) = tally.time(|| {
            no_panic("users::parse", &input, || {
                fleet_common::users::parse(&input)
            })
        }) {
            tally.accepted += 1;
            for u in &users {
                assert!(
                    fleet_common::users::hash_scheme(&u.password_hash).is_some(),
                    "{input:?}"
                );
                assert!(!u.username.is_empty());
            }
            let mut names: Vec<_> = users.iter().map(|u| &u.username).collect();
            names.sort();
            names.dedup();
            assert_eq!(
                names.len(),
                users.len(),
                "duplicate users accepted: {input:?}"
            );
        }
    }
    drop(tally);
    let mut tally = Tally::new("users.yaml (secrets)");
    for _ in 0..budget() {
        let doc = yaml_doc(&mut rng, Shape::Users);
        match tally.time(|| {
            no_panic("users::parse", doc.as_bytes(), || {
                fleet_common::users::parse(doc.as_bytes())
            })
        }) {
            Ok(_) => tally.accepted += 1,
            Err(e) => {
                let e = e.to_string();
                assert!(
                    !e.contains(SECRET),
                    "an error quotes a value:\n{doc}\n→ {e}"
                );
            }
        }
    }
}

#[test]
fn session_key() {
    use base64::Engine;
    let mut rng = rng("session_key");
    let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 48]);
    let seeds = [
        format!("# current\n{}\n\n{b64}\n", "ab".repeat(32)).into_bytes(),
        format!("{}\n", "0f".repeat(40)).into_bytes(),
        format!("{SECRET}{SECRET}{SECRET}\n").into_bytes(),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut tally = Tally::new("session.key");
    for _ in 0..budget() {
        let input = mutate(&mut rng, &seeds);
        match tally.time(|| {
            no_panic("session_key::parse", &input, || {
                fleet_common::session_key::parse(&input)
            })
        }) {
            Ok(keys) => {
                tally.accepted += 1;
                assert!(!keys.is_empty());
                assert!(
                    keys.iter()
                        .all(|k| k.len() >= fleet_common::session_key::MIN_KEY_BYTES)
                );
            }
            Err(e) => {
                // A key line is a secret: no error may quote one.
                let e = e.to_string();
                let text = String::from_utf8_lossy(&input);
                for line in text.lines().map(str::trim).filter(|l| l.len() >= 12) {
                    assert!(!e.contains(line), "an error quotes a key line: {e}");
                }
            }
        }
    }
}

#[test]
fn tools_yaml() {
    let mut rng = rng("tools_yaml");
    let seeds = [
        b"tools:\n  find:\n    description: d\n    database: main\n    parameters:\n      - {name: a, type: string, enum: [x, y]}\n      - {name: n, type: integer, default: 5, minimum: 1, maximum: 9}\n      - {name: l, type: array, items: {type: number}, required: false}\n    statement: SELECT * FROM t WHERE a = :a AND b[1:2] = x::int LIMIT :n -- :l\n      OR c = ANY(:l) AND d = 'it''s :a' AND e = $$ :n $$\n  w:\n    description: d\n    writer: true\n    statement: DELETE FROM t WHERE id = 1\nprompts:\n  - name: p\n    arguments: [{name: x, required: true}]\n    template: 'Hello {{x}} {{ y'\nbuiltins:\n  tools: {query_database: false}\n  prompts: {design_schema: false}\n".to_vec(),
        b"tools:\n  - name: t\n    type: sql\n    description: d\n    input_schema: {type: object, properties: {limit: {type: integer}}, required: [limit]}\n    sql: SELECT $1\n".to_vec(),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut tally = Tally::new("tools.yaml");
    for _ in 0..budget() {
        let input = mutate(&mut rng, &seeds);
        let parsed = tally.time(|| {
            no_panic("tools_file::parse", &input, || {
                fleet_common::tools_file::parse(&input)
            })
        });
        if let Ok(file) = parsed {
            tally.accepted += 1;
            // What is accepted keeps the file's invariants: every statement
            // passes the guard again, with $1..$n for its parameters.
            for t in &file.tools {
                let access = if t.writer {
                    fleet_common::sql::guard::Access::Writer
                } else {
                    fleet_common::sql::guard::Access::Reader
                };
                assert!(
                    fleet_common::sql::guard::check_curated(&t.sql, access).is_ok(),
                    "{}",
                    t.sql
                );
                let names: Vec<String> = (1..=t.params.len()).map(|i| format!("p{i}")).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                assert!(
                    fleet_common::sql::placeholders::positional(&t.sql, &names).is_ok(),
                    "{}",
                    t.sql
                );
            }
        }
    }
}

#[test]
fn sync_manifest() {
    use std::path::Component;
    let mut rng = rng("sync_manifest");
    let seeds = [
        format!("dest_dir: /data\nmax_bytes: 100MiB\nfiles:\n  - name: kb.db\n    source: s3://b/k/kb.db\n  - name: tokens.yaml\n    source: https://h/t.yaml?sig={SECRET}\n    sha256: {HASH}\n  - name: notes.bin\n    source: file:///x\n    kind: raw\n").into_bytes(),
        b"dest_dir: /d\nfiles:\n  - {name: sub/kb.db, source: file:///x, kind: kb}\n".to_vec(),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut tally = Tally::new("sync manifest (mutated)");
    for _ in 0..budget() {
        let input = mutate(&mut rng, &seeds);
        let Ok(text) = std::str::from_utf8(&input) else {
            continue;
        };
        let parsed = tally.time(|| {
            no_panic("Manifest::from_yaml", &input, || {
                fleet_sync::manifest::Manifest::from_yaml(text)
            })
        });
        if let Ok(m) = parsed {
            tally.accepted += 1;
            for f in &m.files {
                let p = std::path::Path::new(&f.name);
                assert!(
                    p.components().all(|c| matches!(c, Component::Normal(_))),
                    "{text}"
                );
                assert!(f.sha256.as_ref().is_none_or(|s| s.len() == 64));
            }
        }
    }
    drop(tally);
    let mut tally = Tally::new("sync manifest (secrets)");
    for _ in 0..budget() {
        let doc = yaml_doc(&mut rng, Shape::Manifest);
        match tally.time(|| {
            no_panic("Manifest::from_yaml", doc.as_bytes(), || {
                fleet_sync::manifest::Manifest::from_yaml(&doc)
            })
        }) {
            Ok(_) => tally.accepted += 1,
            Err(e) => {
                let e = format!("{e:#}");
                assert!(
                    !e.contains(SECRET),
                    "an error quotes a value:\n{doc}\n→ {e}"
                );
            }
        }
    }
}

/// Whether serde_json refuses `input` only for what is inside a value
/// (an escape that is no character, a number out of range), not its shape.
fn value_level_only(input: &[u8]) -> bool {
    let Err(e) = serde_json::from_slice::<serde_json::Value>(input) else {
        return false;
    };
    let e = e.to_string();
    [
        "surrogate",
        "unicode code point",
        "hex escape",
        "number out of range",
        "invalid escape",
    ]
    .iter()
    .any(|m| e.contains(m))
}

#[test]
fn json_rpc_envelope() {
    use mcp_server::http::envelope::Body;
    let mut rng = rng("json_rpc_envelope");
    let seeds = [
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_knowledgebase","arguments":{"query":"vacuum","top_n":3}}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/list","params":{"_meta":{"progressToken":1}}}"#.to_vec(),
        br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":3,"result":{}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"pg://system_info"}}"#.to_vec(),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut tally = Tally::new("JSON-RPC envelope");
    for _ in 0..budget() {
        let input = mutate(&mut rng, &seeds);
        let (ours, checked) = tally.time(|| {
            no_panic("envelope", &input, || {
                let body = Body::parse(&input);
                let checked = match &body {
                    Body::One(e) => {
                        let _ = e.tool();
                        Some(e.check_params().is_ok())
                    }
                    Body::Batch(b) => {
                        b.iter().for_each(|e| drop(e.check_params()));
                        None
                    }
                    Body::Invalid => None,
                };
                (format!("{body:?}"), checked)
            })
        });
        // Differential: serde_json's own reading agrees on what the message is.
        let theirs: Option<serde_json::Value> = serde_json::from_slice(&input).ok();
        match (Body::parse(&input), theirs) {
            (Body::One(e), Some(serde_json::Value::Object(map))) => {
                tally.accepted += 1;
                let method = map.get("method").and_then(|m| m.as_str());
                assert_eq!(e.method.as_deref(), method, "{ours}");
                if checked == Some(true) && method == Some("tools/call") {
                    let params = map.get("params").and_then(|p| p.as_object());
                    let name = params.and_then(|p| p.get("name"));
                    assert!(
                        name.is_some_and(|n| n.is_string()),
                        "tools/call passed without a name: {ours}"
                    );
                }
            }
            // The one laxity: values the envelope keeps raw (id, params) or
            // skips are not decoded, so a lone surrogate escape or a number
            // out of range there passes it. rmcp refuses such a body, and
            // the guard answers that refusal with -32700
            // (tests/e2e/test_hardening.py).
            (Body::One(_) | Body::Batch(_), None) if value_level_only(&input) => {}
            (Body::One(_), other) => panic!(
                "we read one message where serde_json reads {other:?}: {ours}\ninput: {:?}",
                String::from_utf8_lossy(&input)
            ),
            (Body::Batch(b), Some(serde_json::Value::Array(a))) => assert_eq!(b.len(), a.len()),
            (Body::Batch(_), other) => panic!("we read a batch where serde_json reads {other:?}"),
            (Body::Invalid, _) => {}
        }
    }
}

/// A parser of one of the fleet's YAML files: its error, if any.
type Parser = dyn Fn(&str) -> Option<String>;

/// Issue 29, finding 2: deep nesting cost every parser time that grows
/// faster than the depth. Documents of every style, around the limit and
/// far past it: a document deeper than 64 is refused as too deep by every
/// parser of the fleet's YAML files (tokens, users, tools, the sync
/// manifest), one within it never is, and none takes long.
#[test]
fn nesting_depth() {
    use fleet_common::yaml::nesting::{MAX_DEPTH, check};
    use fleet_fuzz::{Nesting, nested_yaml, nesting_depth};
    let mut rng = rng("nesting_depth");
    let mut tally = Tally::new("YAML nesting (every parser)");
    let mut deep = 0usize;
    // A tenth of the budget: these documents are up to 400 KB each.
    for i in 0..budget() / 10 {
        let style = Nesting::ALL[i % Nesting::ALL.len()];
        let depth = nesting_depth(&mut rng, style);
        let (top, parse): (&str, &Parser) = match i % 4 {
            0 => ("tokens", &|t: &str| {
                fleet_common::tokens::parse(t.as_bytes())
                    .err()
                    .map(|e| e.to_string())
            }),
            1 => ("users", &|t: &str| {
                fleet_common::users::parse(t.as_bytes())
                    .err()
                    .map(|e| e.to_string())
            }),
            2 => ("tools", &|t: &str| {
                fleet_common::tools_file::parse(t.as_bytes())
                    .err()
                    .map(|e| e.to_string())
            }),
            _ => ("files", &|t: &str| {
                fleet_sync::manifest::Manifest::from_yaml(&format!("dest_dir: /d\n{t}"))
                    .err()
                    .map(|e| format!("{e:#}"))
            }),
        };
        let doc = nested_yaml(&mut rng, top, style, depth);
        let too_deep = depth + 1 > MAX_DEPTH;
        let error = tally.time(|| no_panic("nested YAML", doc.as_bytes(), || parse(&doc)));
        assert_eq!(
            check(doc.as_bytes(), MAX_DEPTH).is_err(),
            too_deep,
            "{style:?} at depth {depth}"
        );
        let said_too_deep = error
            .as_deref()
            .is_some_and(|e| e.contains("nested more than"));
        deep += usize::from(said_too_deep);
        assert_eq!(
            said_too_deep, too_deep,
            "{style:?} at depth {depth}: {error:?}"
        );
        if let Some(e) = &error {
            assert!(!e.contains(SECRET), "{e}");
        }
        if error.is_none() {
            tally.accepted += 1;
        }
    }
    eprintln!(
        "fuzz YAML nesting: {deep} of {} inputs deeper than {MAX_DEPTH}, each refused as such",
        tally.tried
    );
}
