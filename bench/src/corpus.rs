//! A deterministic synthetic documentation corpus for `gen-kb`.
//!
//! Words are drawn from a ranked vocabulary with a Zipf distribution
//! (exponent 1, like natural language): English function words take the top
//! ranks, Postgres documentation terms are spread over the next ranks (so a
//! query term matches between a fraction of a percent and about a fifth of
//! the chunks, as in real manuals), and pronounceable pseudo-words fill the
//! long tail. Everything comes from one seeded SplitMix64 generator, so a
//! seed and a chunk count always give the same corpus.

use std::collections::HashSet;

use fleet_kb::chunk::Chunk;

/// Bumped whenever the output of the generator changes, so cached KBs built
/// by an older generator are not reused.
pub const GENERATOR_VERSION: u32 = 4;

/// Words in the vocabulary.
pub const VOCAB_SIZE: usize = 5000;

/// Words per chunk: uniform in this range (inclusive).
pub const CHUNK_WORDS: (usize, usize) = (150, 250);

/// Products and versions, with the relative share of files each gets.
pub const PROJECTS: [(&str, &str, u32); 7] = [
    ("postgres", "17", 30),
    ("postgres", "16", 25),
    ("postgres", "15", 15),
    ("spock", "5.0", 10),
    ("spock", "4.0", 5),
    ("pgedge", "25.1", 10),
    ("pgbackrest", "2.54", 5),
];

/// English function words, most frequent first; they take the top ranks.
#[rustfmt::skip]
const FUNCTION_WORDS: &[&str] = &[
    "the", "of", "to", "and", "a", "in", "is", "that", "for", "it", "as", "with", "be", "on",
    "not", "this", "are", "by", "or", "at", "from", "an", "which", "can", "if", "you", "will",
    "when", "all", "has", "have", "but", "one", "each", "only", "any", "its", "these", "used",
    "no", "more", "may", "other", "there", "also", "than", "so", "into", "must", "then", "was",
    "such", "some", "does", "been", "do", "same", "new", "two", "where", "how", "what", "should",
    "would", "their", "they", "we", "both", "after", "before", "while", "because", "without",
    "between", "within", "however", "first", "given", "using", "use", "following", "example",
    "default", "set", "see", "section", "note", "case", "way", "need", "make", "order", "number",
    "point", "part", "per", "under", "over", "most", "many", "much", "about", "through", "even",
    "like", "well", "here", "still", "since", "until", "unless", "whether", "either", "neither",
];

/// Documentation terms, most frequent first; spread over the ranks after
/// the function words.
#[rustfmt::skip]
const TERMS: &[&str] = &[
    "table", "column", "value", "server", "query", "index", "function", "data", "type", "database",
    "command", "row", "name", "file", "parameter", "statement", "transaction", "user", "key",
    "option", "system", "schema", "string", "time", "operator", "object", "result", "error",
    "configuration", "connection", "client", "select", "insert", "update", "delete", "create",
    "alter", "drop", "constraint", "trigger", "view", "role", "privilege", "lock", "replication",
    "backup", "restore", "standby", "primary", "wal", "checkpoint", "vacuum", "autovacuum",
    "analyze", "statistics", "planner", "plan", "scan", "join", "sort", "hash", "btree", "gin",
    "gist", "brin", "partition", "inheritance", "extension", "sequence", "array", "json", "jsonb",
    "text", "integer", "timestamp", "interval", "timezone", "encoding", "locale", "collation",
    "memory", "buffer", "cache", "disk", "page", "tuple", "heap", "toast", "visibility",
    "snapshot", "isolation", "serializable", "commit", "rollback", "savepoint", "deadlock",
    "concurrency", "mvcc", "freeze", "wraparound", "xid", "logical", "physical", "streaming",
    "slot", "subscription", "publication", "conflict", "node", "cluster", "spock", "pgbackrest",
    "archive", "recovery", "restore_command", "archive_command", "max_connections",
    "shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size", "wal_level",
    "max_wal_senders", "hot_standby", "synchronous_commit", "pg_stat_activity",
    "pg_stat_replication", "pg_dump", "pg_restore", "pg_basebackup", "psql", "postgresql",
    "postgres", "authentication", "password", "scram", "ssl", "certificate", "pg_hba", "host",
    "port", "socket", "listen_addresses", "timeout", "log", "logging", "monitoring", "metrics",
    "performance", "tuning", "latency", "throughput", "workload", "upgrade", "pg_upgrade",
    "version", "release", "migration", "install", "package", "directory", "tablespace", "storage",
    "filesystem", "permission", "grant", "revoke", "owner", "policy", "security", "procedure",
    "plpgsql", "language", "cursor", "loop", "exception", "raise", "return", "argument",
    "variable", "aggregate", "window", "group", "having", "distinct", "limit", "offset", "union",
    "subquery", "cte", "recursive", "lateral", "explain", "cost", "estimate", "selectivity",
    "histogram", "parallel", "worker", "background", "process", "postmaster", "signal", "shutdown",
    "startup", "crash", "corruption", "checksum", "fsync", "durability", "consistency",
    "availability", "failover", "switchover", "promote", "rewind", "pg_rewind", "timeline", "lsn",
    "segment", "retention", "compression", "encryption", "audit", "pgaudit", "foreign", "fdw",
    "postgres_fdw", "dblink", "event", "notify", "listen", "channel", "copy", "csv", "import",
    "export", "bulk", "load", "batch", "prepared", "bind", "protocol", "libpq", "jdbc", "driver",
    "pool", "pgbouncer", "pooling", "session", "idle", "keepalive", "retry", "resolution", "delta",
    "apply", "origin", "multimaster", "bidirectional", "repset", "catalog", "pg_class",
    "pg_attribute", "oid", "relation", "attribute", "domain", "enum", "composite", "range",
    "multirange", "geometric", "network", "inet", "cidr", "uuid", "xml", "bytea", "boolean",
    "numeric", "decimal", "precision", "float", "serial", "identity", "generated", "default_value",
    "nullable", "unique", "foreign_key", "references", "cascade", "deferrable", "exclusion",
    "check_constraint", "materialized", "refresh", "rule", "cluster_cmd", "reindex",
    "concurrently", "bloat", "fillfactor", "hot_update", "prune", "dead", "live", "tuples",
    "estimate_rows", "sampling", "extended_statistics", "jit", "inline", "genetic", "geqo",
    "hashagg", "spill", "temp_files", "sorting", "merge", "nested", "bitmap", "index_only",
    "covering", "include", "expression_index", "partial_index", "operator_class", "tsvector",
    "tsquery", "fulltext", "dictionary", "stemming", "ranking", "trigram", "pg_trgm", "postgis",
    "geometry", "spatial", "vector", "pgvector", "embedding", "similarity", "cron", "pg_cron",
    "scheduler", "job", "hook", "module", "shared_preload_libraries", "guc", "reload",
    "pg_reload_conf", "postgresql_conf", "include_dir", "superuser", "login", "membership",
    "inherit", "bypassrls", "row_security", "sepgsql", "ldap", "kerberos", "gssapi", "radius",
    "peer", "ident", "trust", "md5", "ciphers", "tls", "crl", "hostssl",
];

/// Section headings' leading words.
#[rustfmt::skip]
const SECTION_WORDS: &[&str] = &[
    "Overview", "Configuring", "Using", "Monitoring", "Tuning", "Troubleshooting", "Managing",
    "Understanding", "Examples of", "Limitations of", "Setting up", "Upgrading",
];

/// A small, fast, deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_F00D)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf sampler over ranks `0..n`: P(rank r) ∝ 1 / (r + 1)^s.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for r in 0..n {
            total += 1.0 / ((r + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// The ranked vocabulary: `words()[0]` is the most frequent word.
pub fn vocabulary() -> Vec<String> {
    let mut taken: HashSet<&str> = HashSet::new();
    let mut function: Vec<&str> = Vec::new();
    for w in FUNCTION_WORDS {
        if taken.insert(w) {
            function.push(w);
        }
    }
    let mut terms: Vec<&str> = Vec::new();
    for w in TERMS {
        if taken.insert(w) {
            terms.push(w);
        }
    }
    let mut pseudo = pseudo_words(&taken);
    let mut words: Vec<String> = function.iter().map(|w| w.to_string()).collect();
    // Terms every few ranks, pseudo-words in between, then the tail.
    let stride = 4;
    for t in terms {
        words.push(t.to_string());
        for _ in 1..stride {
            if let Some(p) = pseudo.next() {
                words.push(p);
            }
        }
    }
    while words.len() < VOCAB_SIZE {
        match pseudo.next() {
            Some(p) => words.push(p),
            None => break,
        }
    }
    words.truncate(VOCAB_SIZE);
    words
}

/// Pronounceable, unique pseudo-words (consonant-vowel pairs plus an
/// ending) that are not real words of the lists above.
fn pseudo_words(taken: &HashSet<&str>) -> impl Iterator<Item = String> {
    const C: &[u8] = b"bdfgklmnprstvz";
    const V: &[u8] = b"aeiou";
    const END: &[&str] = &["", "n", "r", "l", "x", "m", "t"];
    let syllables: Vec<String> = C
        .iter()
        .flat_map(|&c| {
            V.iter()
                .map(move |&v| format!("{}{}", c as char, v as char))
        })
        .collect();
    let s = syllables.len();
    let taken: HashSet<String> = taken.iter().map(|w| w.to_string()).collect();
    (0..s * s * END.len()).filter_map(move |i| {
        // Spread consecutive indices over different first syllables.
        let j = (i * 7919) % (s * s * END.len());
        let word = format!(
            "{}{}{}",
            syllables[j % s],
            syllables[(j / s) % s],
            END[j / (s * s)]
        );
        (!taken.contains(&word)).then_some(word)
    })
}

/// One generated source file and its chunks.
#[derive(Debug, Clone)]
pub struct SynthFile {
    pub path: String,
    pub project_name: &'static str,
    pub project_version: &'static str,
    pub checksum: String,
    pub chunks: Vec<Chunk>,
}

/// Generates files of chunks, deterministically from a seed.
pub struct Generator {
    rng: Rng,
    words: Vec<String>,
    zipf: Zipf,
    /// Index of the first documentation term in `words`.
    terms_from: usize,
    files: usize,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let words = vocabulary();
        let zipf = Zipf::new(words.len(), 1.0);
        Generator {
            rng: Rng::new(seed),
            words,
            zipf,
            terms_from: FUNCTION_WORDS.len(),
            files: 0,
        }
    }

    pub fn vocabulary(&self) -> &[String] {
        &self.words
    }

    /// A documentation term of rank below ~200 (for titles).
    fn term(&mut self) -> &str {
        let i = self.terms_from + 4 * self.rng.below(200);
        &self.words[i.min(self.words.len() - 1)]
    }

    fn heading_words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| {
                self.term()
                    .split('_')
                    .map(capitalize)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn project(&mut self) -> (&'static str, &'static str) {
        let total: u32 = PROJECTS.iter().map(|p| p.2).sum();
        let mut pick = self.rng.below(total as usize) as u32;
        for (name, version, weight) in PROJECTS {
            if pick < weight {
                return (name, version);
            }
            pick -= weight;
        }
        (PROJECTS[0].0, PROJECTS[0].1)
    }

    fn text(&mut self, words: usize) -> String {
        let mut out = String::with_capacity(words * 8);
        let mut left_in_sentence = 0;
        for i in 0..words {
            if left_in_sentence == 0 {
                if i > 0 {
                    out.push_str(". ");
                }
                left_in_sentence = self.rng.between(6, 20);
                let w = self.zipf.sample(&mut self.rng);
                out.push_str(&capitalize(&self.words[w]));
            } else {
                out.push(' ');
                let w = self.zipf.sample(&mut self.rng);
                out.push_str(&self.words[w]);
            }
            left_in_sentence -= 1;
        }
        out.push('.');
        out
    }

    /// The next file, with between 1 and `max_chunks` chunks.
    pub fn file(&mut self, max_chunks: usize) -> SynthFile {
        self.files += 1;
        let (project_name, project_version) = self.project();
        let title_len = self.rng.between(1, 3);
        let title = self.heading_words(title_len);
        let slug = title.to_lowercase().replace(' ', "-");
        let path = format!(
            "{project_name}-{project_version}/docs/{slug}-{:05}.md",
            self.files
        );
        let n = self.rng.between(4, 40).min(max_chunks.max(1));
        let mut chunks = Vec::with_capacity(n);
        let mut section = String::new();
        let mut section_no = 0;
        for i in 0..n {
            if i == 0 || self.rng.below(3) == 0 {
                section_no += 1;
                let lead = SECTION_WORDS[self.rng.below(SECTION_WORDS.len())];
                let len = self.rng.between(1, 2);
                let words = self.heading_words(len);
                section = format!("{section_no}. {lead} {words}");
            }
            let len = self.rng.between(CHUNK_WORDS.0, CHUNK_WORDS.1);
            chunks.push(Chunk {
                title: title.clone(),
                section: section.clone(),
                text: self.text(len),
            });
        }
        let checksum = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.rng.next_u64(),
            self.rng.next_u64(),
            self.rng.next_u64(),
            self.rng.next_u64()
        );
        SynthFile {
            path,
            project_name,
            project_version,
            checksum,
            chunks,
        }
    }
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_full_unique_and_ranked() {
        let v = vocabulary();
        assert_eq!(v.len(), VOCAB_SIZE);
        let set: HashSet<&String> = v.iter().collect();
        assert_eq!(set.len(), v.len());
        assert_eq!(v[0], "the");
        assert_eq!(v[FUNCTION_WORDS.len()], TERMS[0]);
    }

    #[test]
    fn zipf_prefers_low_ranks() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 1000];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[500]);
    }

    #[test]
    fn generation_is_deterministic() {
        let a = Generator::new(7).file(10);
        let b = Generator::new(7).file(10);
        assert_eq!(a.path, b.path);
        assert_eq!(a.chunks[0].text, b.chunks[0].text);
        assert!(a.chunks.len() <= 10);
        let words = a.chunks[0].text.split_whitespace().count();
        assert!((CHUNK_WORDS.0..=CHUNK_WORDS.1).contains(&words));
    }
}
