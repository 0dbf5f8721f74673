//! Ranking: BM25 over the search index, scored term at a time into one
//! score per chunk, and at most [`MAX_PER_FILE`] chunks of one source file
//! while other files match.
//!
//! Each chunk is one field of text in which its title counts eight times
//! and its section heading four ([`fleet_common::kb_index::TITLE_WEIGHT`]):
//! FTS5's column weights, with the same saturation (a title match cannot
//! outweigh everything else). A query is the union of its terms that occur
//! in the KB, scored BM25 (tantivy's, with the same statistics its own term
//! queries use) and summed, so a chunk holding more of the terms (or rarer
//! ones) ranks higher.
//!
//! Scoring is exhaustive and term at a time: each term's posting list is
//! decoded block by block and its BM25 added to a dense array of scores,
//! one per chunk of the segment ([`Scratch`], reused by the next search),
//! which is then scanned once for the best. Block-max WAND (tantivy's
//! union) was the engine before: it visits the same lists document at a
//! time and skips blocks whose best score cannot enter the top k, but a
//! chunk's title or section match lifts nearly every block's best close to
//! the term's maximum, so on the bench corpus it skipped little and cost
//! 3.2 times as much as this loop (565 µs against 176 µs per search at
//! 100,000 chunks, one thread). The work is bounded by the postings of at
//! most [`crate::query::MAX_TERMS`] terms.
//!
//! Selection caps each source file at [`MAX_PER_FILE`] chunks: a chunk of
//! a file already holding that many places can only displace a weaker chunk
//! of the same file. The cap keeps the selection exact (the k-th best accepted
//! score only rises, and nothing at or below it can enter). When fewer than
//! k chunks are found that way (few files match), a second pass fills the
//! rest with the best remaining chunks whatever their file.
//!
//! The best [`POOL`] chunks (or k, if more) so found are then ranked by
//! page: a page scores its best chunk's BM25 plus [`PAGE_SHARE`] of its
//! second's, pages best first, a page's chunks together. A page that
//! matches in two places usually answers better than one that matches once.
//!
//! A KB of 200,000 chunks or more has two index segments, split at a file
//! boundary; they are scored and scanned in turn, into one selection. Two
//! threads, one a segment, were tried for a search with the server to
//! itself: at 1,000,000 chunks the server's p50 was 2.0 ms that way and
//! 1.7 ms in turn, since starting and waking the second thread cost this
//! VM more than the half of the work it took.
//!
//! On the PostgreSQL manual's relevance questions (`bench/relevance`), the
//! plain union ranked better than putting chunks holding every term first
//! (an AND before the OR, as the FTS5 engine did), and page scores raised
//! hit@1 from 45 % to 52 %.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use fleet_common::kb_index::{Columns, Fields, SearchIndex};

use crate::query::Word;
use tantivy::query::{Bm25StatisticsProvider, Bm25Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, InvertedIndexReader, Score, SegmentReader, Term};

/// At most this many chunks of one source file, while other files match.
pub const MAX_PER_FILE: usize = 2;

/// Exact-match filters on the chunks' product and version (empty: any).
#[derive(Debug, Default)]
pub struct Filters<'a> {
    pub project_names: Vec<&'a str>,
    pub project_versions: Vec<&'a str>,
}

/// Chunks considered for page scores, whatever k is: at two per page,
/// enough to see the second chunk of the first five pages.
pub const POOL: usize = 10;

/// How much of a page's second-best chunk adds to its best.
pub const PAGE_SHARE: Score = 0.5;

/// One ranked chunk: its `chunks.id` and its ranking score: its page's
/// score, the best chunk's BM25 plus [`PAGE_SHARE`] of the second's (a
/// chunk placed after others because its file had its two places already
/// shows at most their score).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub chunk_id: i64,
    pub score: Score,
}

/// A search's working memory, kept for the next search so that its
/// buffers are not allocated again: one score per chunk of each index
/// segment. At 1,000,000 chunks it holds 4 MB; a caller keeps one per
/// search that may run at once.
#[derive(Debug, Default)]
pub struct Scratch {
    segments: Vec<Vec<Score>>,
}

/// The chunks that [`Filters`] allow: one bit per chunk of each index
/// segment. Made once per filter and generation and kept by the caller
/// ([`crate::search::Kb`]): the postings of a product that holds most of
/// a 1,000,000-chunk KB take longer to read than the query's terms.
#[derive(Debug)]
pub struct Allowed {
    segments: Vec<Vec<u64>>,
}

impl Allowed {
    /// The chunks `filters` allow in `index`: those of one of the products
    /// and one of the versions asked (either list empty: any); `None`
    /// without filters.
    pub fn of(index: &SearchIndex, filters: &Filters<'_>) -> anyhow::Result<Option<Allowed>> {
        if filters.project_names.is_empty() && filters.project_versions.is_empty() {
            return Ok(None);
        }
        let searcher = index.reader.searcher();
        let segments = searcher
            .segment_readers()
            .iter()
            .map(|segment| allow(segment, &index.fields, filters))
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(Allowed { segments }))
    }
}

/// One segment's scores for a query, and the chunks the filters allow
/// there (`None`: all).
struct Scored<'a> {
    scores: &'a [Score],
    allowed: Option<&'a [u64]>,
    columns: &'a Columns,
}

impl<'a> Scored<'a> {
    /// Segment `ord`'s view of a search.
    fn of(
        ord: usize,
        scores: &'a [Score],
        allowed: Option<&'a Allowed>,
        columns: &'a [Columns],
    ) -> Scored<'a> {
        Scored {
            scores,
            allowed: allowed.map(|a| &a.segments[ord][..]),
            columns: &columns[ord],
        }
    }

    #[inline]
    fn allows(&self, doc: usize) -> bool {
        self.allowed
            .is_none_or(|bits| bits[doc / 64] >> (doc % 64) & 1 == 1)
    }
}

/// The best `k` chunks for the query `words` among those `allowed` (`None`:
/// all). `scratch` is working memory, left for the next search.
pub fn rank(
    index: &SearchIndex,
    words: &[Word],
    allowed: Option<&Allowed>,
    k: usize,
    scratch: &mut Scratch,
) -> anyhow::Result<Vec<Ranked>> {
    let searcher = index.reader.searcher();
    let f = &index.fields;
    let df = |t: &str| searcher.doc_freq(&Term::from_field_text(f.body, t));
    // Each word's terms that occur, with their document frequencies: an
    // identifier whole, else its parts.
    let mut present: Vec<(&str, u64)> = Vec::new();
    for w in words {
        let n = df(&w.whole)?;
        if n > 0 {
            present.push((&w.whole, n));
            continue;
        }
        for p in &w.parts {
            let n = df(p)?;
            if n > 0 {
                present.push((p, n));
            }
        }
    }
    let mut seen = HashSet::new();
    present.retain(|(t, _)| seen.insert(*t));
    if present.is_empty() || k == 0 {
        return Ok(Vec::new());
    }
    // Each term's BM25 with the statistics tantivy's term queries use
    // (`Bm25Weight::for_terms`), from the frequencies just read.
    let docs = Bm25StatisticsProvider::total_num_docs(&searcher)?;
    let average = searcher.total_num_tokens(f.body)? as Score / docs.max(1) as Score;
    let terms: Vec<(Term, Bm25Weight)> = present
        .iter()
        .map(|&(t, n)| {
            let weight = Bm25Weight::for_one_term_without_explain(n, docs, average);
            (Term::from_field_text(f.body, t), weight)
        })
        .collect();
    let segments = searcher.segment_readers();
    if allowed.is_some_and(|a| a.segments.len() != segments.len())
        || index.columns.len() != segments.len()
    {
        anyhow::bail!("filters or fast fields of another index");
    }
    scratch.segments.resize_with(segments.len(), Vec::new);
    let pool = k.max(POOL);
    let mut picks = Picks::new(pool);
    for (segment, scores) in segments.iter().zip(scratch.segments.iter_mut()) {
        accumulate(segment, f.body, &terms, scores)?;
    }
    let scored: Vec<Scored<'_>> = scratch
        .segments
        .iter()
        .enumerate()
        .map(|(ord, scores)| Scored::of(ord, scores, allowed, &index.columns))
        .collect();
    picks.collect(&scored, MAX_PER_FILE);
    let capped = picks.len();
    if picks.len() < pool {
        picks.collect(&scored, usize::MAX);
    }
    let mut ranked = picks.into_ranked(&index.columns, capped)?;
    ranked.truncate(k);
    Ok(ranked)
}

/// `scores` := each chunk of `segment` scored for `terms` (BM25 in
/// `field`, summed; 0 for a chunk holding none of them).
fn accumulate(
    segment: &SegmentReader,
    field: Field,
    terms: &[(Term, Bm25Weight)],
    scores: &mut Vec<Score>,
) -> anyhow::Result<()> {
    scores.clear();
    scores.resize(segment.max_doc() as usize, 0.0);
    let inverted = segment.inverted_index(field)?;
    let norms = segment.get_fieldnorms_reader(field)?;
    for (term, weight) in terms {
        postings(
            &inverted,
            term,
            IndexRecordOption::WithFreqs,
            |docs, freqs| {
                for (&doc, &tf) in docs.iter().zip(freqs) {
                    let s = weight.score(norms.fieldnorm_id(doc), tf);
                    // Doc ids come from the segment's own postings: in range.
                    if let Some(slot) = scores.get_mut(doc as usize) {
                        *slot += s;
                    }
                }
            },
        )?;
    }
    Ok(())
}

/// Each block of `term`'s posting list in `inverted` (nothing if the term
/// is absent): its documents and, with `option` recording them, their term
/// frequencies.
fn postings(
    inverted: &InvertedIndexReader,
    term: &Term,
    option: IndexRecordOption,
    mut each: impl FnMut(&[DocId], &[u32]),
) -> std::io::Result<()> {
    let Some(mut block) = inverted.read_block_postings(term, option)? else {
        return Ok(());
    };
    loop {
        let docs = block.docs();
        if docs.is_empty() {
            return Ok(());
        }
        each(docs, block.freqs());
        block.advance();
    }
}

/// One bit per chunk of `segment` that `filters` allow.
fn allow(segment: &SegmentReader, f: &Fields, filters: &Filters<'_>) -> anyhow::Result<Vec<u64>> {
    let words = (segment.max_doc() as usize).div_ceil(64);
    let mut bits = vec![u64::MAX; words];
    let mut any = vec![0u64; words];
    for (field, values) in [
        (f.project_name, &filters.project_names),
        (f.project_version, &filters.project_versions),
    ] {
        if values.is_empty() {
            continue;
        }
        any.fill(0);
        let inverted = segment.inverted_index(field)?;
        for v in values.iter() {
            let term = Term::from_field_text(field, v);
            postings(&inverted, &term, IndexRecordOption::Basic, |docs, _| {
                for &doc in docs {
                    if let Some(w) = any.get_mut(doc as usize / 64) {
                        *w |= 1 << (doc % 64);
                    }
                }
            })?;
        }
        for (b, a) in bits.iter_mut().zip(&any) {
            *b &= a;
        }
    }
    Ok(bits)
}

/// A chunk picked by a stage: its place in the index and its file.
#[derive(Debug, Clone, Copy)]
struct Pick {
    segment: u32,
    doc: DocId,
    group: u64,
    score: Score,
}

/// The chunks picked so far, in rank order, and how many per file.
struct Picks {
    k: usize,
    picked: Vec<Pick>,
    per_group: HashMap<u64, usize>,
    taken: HashSet<(u32, DocId)>,
}

impl Picks {
    fn new(k: usize) -> Picks {
        Picks {
            k,
            picked: Vec::with_capacity(k),
            per_group: HashMap::new(),
            taken: HashSet::new(),
        }
    }

    fn len(&self) -> usize {
        self.picked.len()
    }

    /// Run one stage: add the best chunks of every segment in turn (at most
    /// `cap` per file, counting earlier picks) until there are k. Exact.
    fn collect(&mut self, scored: &[Scored<'_>], cap: usize) {
        let need = self.k - self.picked.len();
        let mut heap = self.heap(need, cap);
        for (ord, segment) in scored.iter().enumerate() {
            scan(&mut heap, ord as u32, segment);
        }
        for p in heap.into_sorted() {
            self.taken.insert((p.segment, p.doc));
            *self.per_group.entry(p.group).or_insert(0) += 1;
            self.picked.push(p);
        }
    }

    fn heap(&self, need: usize, cap: usize) -> Heap<'_> {
        Heap {
            need,
            cap,
            prior: &self.per_group,
            taken: &self.taken,
            picks: Vec::with_capacity(need + 1),
        }
    }

    /// The picks in rank order, as chunk ids and ranking scores. The first
    /// `capped` (those collected within the per-file cap) are ordered by
    /// their page's score, then their own; the rest follow as found.
    fn into_ranked(mut self, columns: &[Columns], capped: usize) -> anyhow::Result<Vec<Ranked>> {
        let mut page: HashMap<u64, (Score, usize)> = HashMap::new();
        for (i, p) in self.picked[..capped].iter().enumerate() {
            page.entry(p.group)
                .and_modify(|(score, _)| *score += PAGE_SHARE * p.score)
                .or_insert((p.score, i));
        }
        let key = |p: &Pick| page.get(&p.group).copied().unwrap_or((p.score, usize::MAX));
        let mut order: Vec<(Score, usize, Pick)> = self.picked[..capped]
            .iter()
            .map(|p| {
                let (score, first) = key(p);
                (score, first, *p)
            })
            .collect();
        // Best page first; its chunks together, best first (picks within a
        // stage are already best first).
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut ranked_picks: Vec<(Score, Pick)> =
            order.into_iter().map(|(score, _, p)| (score, p)).collect();
        let mut floor = ranked_picks.last().map_or(Score::MAX, |(s, _)| *s);
        for p in self.picked.drain(capped..) {
            floor = floor.min(p.score);
            ranked_picks.push((floor, p));
        }
        ranked_picks
            .into_iter()
            .map(|(score, p)| {
                let id = columns
                    .get(p.segment as usize)
                    .and_then(|c| c.chunk_id.first(p.doc))
                    .context("a hit without a chunk id")?;
                Ok(Ranked {
                    chunk_id: id,
                    score,
                })
            })
            .collect()
    }
}

/// The best `need` chunks of a stage so far, at most `cap` per file
/// counting the picks of earlier stages (`prior`), none of those (`taken`).
struct Heap<'a> {
    need: usize,
    cap: usize,
    prior: &'a HashMap<u64, usize>,
    taken: &'a HashSet<(u32, DocId)>,
    picks: Vec<Pick>,
}

impl Heap<'_> {
    /// Keep `pick` if it is among the best while its file has room, or
    /// better than its file's weakest kept chunk.
    fn offer(&mut self, pick: Pick) {
        if self.taken.contains(&(pick.segment, pick.doc))
            || self
                .picks
                .iter()
                .any(|p| (p.segment, p.doc) == (pick.segment, pick.doc))
        {
            return;
        }
        let in_stage = self.picks.iter().filter(|p| p.group == pick.group).count();
        let used = self.prior.get(&pick.group).copied().unwrap_or(0) + in_stage;
        if used < self.cap {
            self.picks.push(pick);
            if self.picks.len() > self.need
                && let Some(i) = weakest(&self.picks, |_| true)
            {
                self.picks.swap_remove(i);
            }
        } else if in_stage > 0
            && let Some(i) = weakest(&self.picks, |p| p.group == pick.group)
            && self.picks[i].score < pick.score
        {
            self.picks[i] = pick;
        }
    }

    /// The score a chunk must beat to enter: the weakest kept once full.
    fn threshold(&self) -> Option<Score> {
        (self.picks.len() == self.need).then(|| {
            self.picks
                .iter()
                .map(|p| p.score)
                .fold(Score::MAX, Score::min)
        })
    }

    fn into_sorted(mut self) -> Vec<Pick> {
        sort_by_rank(&mut self.picks);
        self.picks
    }
}

/// Scores compared at once by [`scan`] before it looks at any one.
const SCAN_RUN: usize = 32;

/// Offer every chunk of a segment scoring above the heap's threshold to
/// `heap`, in index order.
fn scan(heap: &mut Heap<'_>, ord: u32, scored: &Scored<'_>) {
    let groups = &scored.columns.group;
    let mut threshold = heap.threshold().unwrap_or(0.0);
    // Scores are 0 or positive, and positive floats order as their bits do:
    // a run of scores is skipped on its greatest bits, which vectorises.
    for (run, scores) in scored.scores.chunks(SCAN_RUN).enumerate() {
        let best = scores.iter().fold(0u32, |m, s| m.max(s.to_bits()));
        if best <= threshold.to_bits() {
            continue;
        }
        for (i, &score) in scores.iter().enumerate() {
            let doc = run * SCAN_RUN + i;
            if score <= threshold || !scored.allows(doc) {
                continue;
            }
            let doc = doc as DocId;
            // A chunk without a group (never written so) is its own file.
            let group = groups.first(doc).unwrap_or(u64::MAX - u64::from(doc));
            heap.offer(Pick {
                segment: ord,
                doc,
                group,
                score,
            });
            threshold = heap.threshold().unwrap_or(0.0);
        }
    }
}

/// Best first; on equal scores, index order.
fn sort_by_rank(picks: &mut [Pick]) {
    picks.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((a.segment, a.doc).cmp(&(b.segment, b.doc)))
    });
}

/// Index of the lowest-scored pick satisfying `keep` (the later one on ties,
/// which ranked lower).
fn weakest(stage: &[Pick], keep: impl Fn(&Pick) -> bool) -> Option<usize> {
    stage
        .iter()
        .enumerate()
        .filter(|(_, p)| keep(p))
        .min_by(|(_, a), (_, b)| {
            a.score
                .total_cmp(&b.score)
                .then((b.segment, b.doc).cmp(&(a.segment, a.doc)))
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::words;
    use fleet_common::kb_index::{self, build::BuildOptions};
    use rusqlite::Connection;

    /// An index of `files` × `per_file` chunks over a small vocabulary, in
    /// two segments; `interleaved` spreads each file's chunks over the whole
    /// id range (so files straddle the segments).
    fn index(files: usize, per_file: usize, interleaved: bool) -> SearchIndex {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(fleet_common::kb_file::CREATE_SCHEMA)
            .unwrap();
        let vocab = [
            "vacuum",
            "index",
            "replication",
            "slot",
            "wal",
            "checkpoint",
            "autovacuum",
            "lock",
            "query",
            "plan",
            "backup",
            "restore",
        ];
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let n = files * per_file;
        for i in 0..n {
            let file = if interleaved { i % files } else { i / per_file };
            let words: Vec<&str> = (0..12).map(|_| vocab[(next() % 12) as usize]).collect();
            let title = vocab[(next() % 12) as usize];
            let product = if next() % 3 == 0 { "spock" } else { "postgres" };
            conn.execute(
                "INSERT INTO chunks(id,text,title,section,project_name,project_version,file_path) \
                 VALUES (?1,?2,?3,'',?4,'1',?5)",
                rusqlite::params![
                    i as i64 + 1,
                    words.join(" "),
                    title,
                    product,
                    format!("f{file}.md")
                ],
            )
            .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions {
            split_min_chunks: 10,
            ..BuildOptions::deterministic()
        };
        let mut file = tempfile::tempfile_in(dir.path()).unwrap();
        kb_index::build::build_pack(&conn, "main.chunks", dir.path(), &opts, &mut file).unwrap();
        let pack = kb_index::Pack::open(&file, dir.path()).unwrap();
        let index = kb_index::open(pack).unwrap();
        assert_eq!(index.reader.searcher().segment_readers().len(), 2);
        index
    }

    fn files_of(index: &SearchIndex, ranked: &[Ranked]) -> Vec<u64> {
        let searcher = index.reader.searcher();
        let mut by_id = HashMap::new();
        for seg in searcher.segment_readers() {
            let ids = seg.fast_fields().i64("chunk_id").unwrap();
            let groups = seg.fast_fields().u64("group").unwrap();
            for doc in 0..seg.max_doc() {
                by_id.insert(ids.first(doc).unwrap(), groups.first(doc).unwrap());
            }
        }
        ranked.iter().map(|r| by_id[&r.chunk_id]).collect()
    }

    /// Every matching chunk's score by tantivy's own BM25 (a union of term
    /// queries, as the engine before this one ran), by (segment, doc).
    fn reference(
        index: &SearchIndex,
        terms: &[&str],
        field: Field,
    ) -> HashMap<(u32, DocId), Score> {
        use tantivy::collector::TopDocs;
        use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
        let searcher = index.reader.searcher();
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        searcher
            .search(
                &BooleanQuery::new(clauses),
                &TopDocs::with_limit(10_000).order_by_score(),
            )
            .unwrap()
            .into_iter()
            .map(|(score, a)| ((a.segment_ord, a.doc_id), score))
            .collect()
    }

    #[test]
    fn scores_are_tantivys_bm25_and_the_selection_is_exact() {
        // Many files (the cap rarely bites), six (it bites), three (it
        // bites, and the rest of the pool is filled whatever the file).
        for (files, per_file, interleaved) in [
            (30, 8, false),
            (30, 8, true),
            (6, 40, false),
            (6, 40, true),
            (3, 60, false),
        ] {
            let index = index(files, per_file, interleaved);
            let searcher = index.reader.searcher();
            let f = &index.fields;
            let queries = [
                "vacuum",
                "vacuum index",
                "replication slot wal checkpoint",
                "autovacuum lock query plan backup restore",
                "index index nothing",
            ];
            let spock = reference(&index, &["spock"], f.project_name);
            for q in queries {
                let w = words(q);
                let terms: Vec<&str> = w
                    .iter()
                    .map(|w| w.whole.as_str())
                    .filter(|t| *t != "noth")
                    .collect();
                let expected = reference(&index, &terms, f.body);
                assert!(!expected.is_empty(), "{q:?}");
                // Term at a time gives every chunk tantivy's score.
                let weights: Vec<(Term, Bm25Weight)> = terms
                    .iter()
                    .map(|t| {
                        let term = Term::from_field_text(f.body, t);
                        let w =
                            Bm25Weight::for_terms(&searcher, std::slice::from_ref(&term)).unwrap();
                        (term, w)
                    })
                    .collect();
                for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                    let mut scores = Vec::new();
                    accumulate(segment, f.body, &weights, &mut scores).unwrap();
                    for (doc, &s) in scores.iter().enumerate() {
                        match expected.get(&(ord as u32, doc as DocId)) {
                            Some(&e) => assert!((s - e).abs() <= 1e-4 * e, "{q:?} {s} vs {e}"),
                            None => assert_eq!(s, 0.0, "{q:?}"),
                        }
                    }
                }
                for only_spock in [false, true] {
                    let filters = Filters {
                        project_names: if only_spock { vec!["spock"] } else { vec![] },
                        project_versions: vec![],
                    };
                    let allowed = Allowed::of(&index, &filters).unwrap();
                    let mut scratch = Scratch::default();
                    // k = POOL: the selection itself, before page order.
                    let ranked = rank(&index, &w, allowed.as_ref(), POOL, &mut scratch).unwrap();
                    // By brute force: every match, best first, two per file.
                    let mut all: Vec<((u32, DocId), Score)> = expected
                        .iter()
                        .filter(|(at, _)| !only_spock || spock.contains_key(at))
                        .map(|(at, s)| (*at, *s))
                        .collect();
                    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    let group_of = |at: (u32, DocId)| {
                        let segment = &searcher.segment_readers()[at.0 as usize];
                        segment
                            .fast_fields()
                            .u64("group")
                            .unwrap()
                            .first(at.1)
                            .unwrap()
                    };
                    let mut per_file: HashMap<u64, usize> = HashMap::new();
                    let mut want: Vec<Score> = Vec::new();
                    let mut rest: Vec<Score> = Vec::new();
                    for (at, s) in &all {
                        let n = per_file.entry(group_of(*at)).or_insert(0);
                        if *n < MAX_PER_FILE && want.len() < POOL {
                            *n += 1;
                            want.push(*s);
                        } else {
                            rest.push(*s);
                        }
                    }
                    let capped = want.len();
                    want.extend(rest.iter().take(POOL - capped));
                    want.sort_by(|a, b| b.total_cmp(a));
                    // The chunks picked score what the brute force's do
                    // (equal scores may swap chunks, not scores).
                    let id_score: HashMap<i64, Score> = expected
                        .iter()
                        .map(|(at, s)| {
                            let segment = &searcher.segment_readers()[at.0 as usize];
                            let id = segment
                                .fast_fields()
                                .i64("chunk_id")
                                .unwrap()
                                .first(at.1)
                                .unwrap();
                            (id, *s)
                        })
                        .collect();
                    let mut got: Vec<Score> =
                        ranked.iter().map(|r| id_score[&r.chunk_id]).collect();
                    got.sort_by(|a, b| b.total_cmp(a));
                    assert_eq!(got.len(), want.len(), "{q:?} spock={only_spock}");
                    for (g, e) in got.iter().zip(&want) {
                        assert!(
                            (g - e).abs() <= 1e-4 * e,
                            "{q:?} spock={only_spock}: {got:?} vs {want:?}"
                        );
                    }
                    // Page order: best page first, scores never rising; the
                    // cap holds over the chunks found within it.
                    assert!(ranked.windows(2).all(|p| p[0].score >= p[1].score));
                    let files = files_of(&index, &ranked[..capped.min(ranked.len())]);
                    let mut counts = HashMap::new();
                    for f in files {
                        *counts.entry(f).or_insert(0) += 1;
                    }
                    assert!(
                        counts.values().all(|&c| c <= MAX_PER_FILE),
                        "{q:?} {counts:?}"
                    );
                }
            }
        }
    }
}
