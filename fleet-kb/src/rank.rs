//! Ranking: BM25 over the search index with block-max WAND top-k, and at
//! most [`MAX_PER_FILE`] chunks of one source file while other files match.
//!
//! Each chunk is one field of text in which its title counts eight times
//! and its section heading four ([`fleet_common::kb_index::TITLE_WEIGHT`]):
//! FTS5's column weights, with the same saturation (a title match cannot
//! outweigh everything else). A query is the union of its terms that occur
//! in the KB, scored BM25 and summed, so a chunk holding more of the terms
//! (or rarer ones) ranks higher. Without filters it is a flat union of term
//! queries, which tantivy runs with block-max WAND: only chunks that can
//! still enter the top k are scored.
//!
//! Collection caps each source file at [`MAX_PER_FILE`] chunks: a chunk of
//! a file already holding that many places can only displace a weaker chunk
//! of the same file. The cap keeps the pruning exact (the k-th best accepted
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
//! boundary. A search that has the server to itself runs them on two
//! threads, each pruning with the best threshold either has reached; under
//! concurrent searches they run in turn. Both ways give the same chunks in
//! the same order (a file is never in both segments, and ties go to the
//! first segment as they would in turn); should a file straddle them (a
//! pgEdge KB whose rows of one file are not contiguous) and the cap bite,
//! the stage is run again in turn.
//!
//! On the PostgreSQL manual's relevance questions (`bench/relevance`), the
//! plain union ranked better than putting chunks holding every term first
//! (an AND before the OR, as the FTS5 engine did), and page scores raised
//! hit@1 from 45 % to 52 %.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use fleet_common::kb_index::{Fields, SearchIndex};

use crate::query::Word;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, Searcher, SegmentReader, Term};

/// At most this many chunks of one source file, while other files match.
pub const MAX_PER_FILE: usize = 2;

/// Exact-match filters on the chunks' product and version (empty: any).
#[derive(Debug, Default)]
pub struct Filters<'a> {
    pub project_names: Vec<&'a str>,
    pub project_versions: Vec<&'a str>,
}

/// Chunks considered for page scores, whatever k is: at two per page,
/// enough to see the second chunk of the first five pages. (Block-max WAND
/// finds 10 for about 5 % more than 5.)
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

/// The best `k` chunks for the query `words` under `filters`. With
/// `parallel`, the index's segments are searched at once, one thread each
/// (for a server with idle cores).
pub fn rank(
    index: &SearchIndex,
    words: &[Word],
    filters: &Filters<'_>,
    k: usize,
    parallel: bool,
) -> anyhow::Result<Vec<Ranked>> {
    let searcher = index.reader.searcher();
    let f = &index.fields;
    let df = |t: &str| searcher.doc_freq(&Term::from_field_text(f.body, t));
    // Each word's terms that occur: an identifier whole, else its parts.
    let mut present: Vec<&str> = Vec::new();
    for w in words {
        if df(&w.whole)? > 0 {
            present.push(&w.whole);
            continue;
        }
        for p in &w.parts {
            if df(p)? > 0 {
                present.push(p);
            }
        }
    }
    let mut seen = HashSet::new();
    present.retain(|t| seen.insert(*t));
    if present.is_empty() || k == 0 {
        return Ok(Vec::new());
    }
    let scoring = EnableScoring::enabled_from_searcher(&searcher);
    let any = query(f, &present, filters).weight(scoring)?;
    let pool = k.max(POOL);
    let mut picks = Picks::new(pool);
    picks.collect(&searcher, any.as_ref(), MAX_PER_FILE, parallel)?;
    let capped = picks.len();
    if picks.len() < pool {
        picks.collect(&searcher, any.as_ref(), usize::MAX, parallel)?;
    }
    let mut ranked = picks.into_ranked(&searcher, capped)?;
    ranked.truncate(k);
    Ok(ranked)
}

fn term_query(field: Field, term: &str, option: IndexRecordOption) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, term), option))
}

/// Any of the terms, each clause a plain term query, restricted to the
/// filters' products and versions (which do not score).
fn query(f: &Fields, terms: &[&str], filters: &Filters<'_>) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .iter()
        .map(|t| {
            (
                Occur::Should,
                term_query(f.body, t, IndexRecordOption::WithFreqs),
            )
        })
        .collect();
    if clauses.len() == 1 && filters.project_names.is_empty() && filters.project_versions.is_empty()
    {
        // A lone term query prunes by itself; inside a boolean query it would not.
        return clauses.remove(0).1;
    }
    for (field, values) in [
        (f.project_name, &filters.project_names),
        (f.project_version, &filters.project_versions),
    ] {
        if values.is_empty() {
            continue;
        }
        let any: Box<dyn Query> = Box::new(BooleanQuery::new(
            values
                .iter()
                .map(|v| {
                    (
                        Occur::Should,
                        term_query(field, v, IndexRecordOption::Basic),
                    )
                })
                .collect(),
        ));
        clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(any, 0.0))));
    }
    // Beside a filter (a must clause) the terms become optional: one of
    // them is still required.
    Box::new(BooleanQuery::with_minimum_required_clauses(clauses, 1))
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

    /// Run one stage: add its best chunks (at most `cap` per file, counting
    /// earlier picks) until there are k. With `parallel`, each segment is
    /// searched on its own thread, all pruning with the best threshold any
    /// of them has reached.
    fn collect(
        &mut self,
        searcher: &Searcher,
        weight: &dyn Weight,
        cap: usize,
        parallel: bool,
    ) -> anyhow::Result<()> {
        let need = self.k - self.picked.len();
        let segments = searcher.segment_readers();
        let stage = if parallel && segments.len() > 1 {
            match self.collect_parallel(segments, weight, need, cap)? {
                Some(stage) => stage,
                None => self.collect_sequential(segments, weight, need, cap)?,
            }
        } else {
            self.collect_sequential(segments, weight, need, cap)?
        };
        for p in stage {
            self.taken.insert((p.segment, p.doc));
            *self.per_group.entry(p.group).or_insert(0) += 1;
            self.picked.push(p);
        }
        Ok(())
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

    /// Every segment in turn, into one heap: exact.
    fn collect_sequential(
        &self,
        segments: &[SegmentReader],
        weight: &dyn Weight,
        need: usize,
        cap: usize,
    ) -> anyhow::Result<Vec<Pick>> {
        let mut heap = self.heap(need, cap);
        let shared = SharedThreshold::default();
        for (ord, segment) in segments.iter().enumerate() {
            scan(&mut heap, ord as u32, segment, weight, &shared)?;
        }
        Ok(heap.into_sorted())
    }

    /// One heap per segment, searched at once, then merged. Exact when no
    /// file has chunks in two segments (the builder splits at a file
    /// boundary); `None` if one does and the cap had to drop a chunk, so that
    /// the caller searches again in turn.
    fn collect_parallel(
        &self,
        segments: &[SegmentReader],
        weight: &dyn Weight,
        need: usize,
        cap: usize,
    ) -> anyhow::Result<Option<Vec<Pick>>> {
        let shared = SharedThreshold::default();
        let results: Vec<anyhow::Result<Vec<Pick>>> = std::thread::scope(|scope| {
            let run = |ord: usize| {
                let mut heap = self.heap(need, cap);
                scan(&mut heap, ord as u32, &segments[ord], weight, &shared)?;
                Ok(heap.picks)
            };
            let others: Vec<_> = (1..segments.len())
                .map(|ord| scope.spawn(move || run(ord)))
                .collect();
            let mut results = vec![run(0)];
            for handle in others {
                results.push(
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a search thread panicked"))),
                );
            }
            results
        });
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        sort_by_rank(&mut all);
        let mut counts: HashMap<u64, usize> = HashMap::new();
        let mut stage = Vec::with_capacity(need);
        for p in all {
            if stage.len() == need {
                break;
            }
            let used = counts.entry(p.group).or_insert(0);
            if self.per_group.get(&p.group).copied().unwrap_or(0) + *used < cap {
                *used += 1;
                stage.push(p);
            } else {
                return Ok(None);
            }
        }
        Ok(Some(stage))
    }

    /// The picks as chunk ids and scores.
    /// The picks in rank order, as chunk ids and ranking scores. The first
    /// `capped` (those collected within the per-file cap) are ordered by
    /// their page's score, then their own; the rest follow as found.
    fn into_ranked(mut self, searcher: &Searcher, capped: usize) -> anyhow::Result<Vec<Ranked>> {
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
        let mut ids = Vec::new();
        for segment in searcher.segment_readers() {
            ids.push(
                segment
                    .fast_fields()
                    .i64("chunk_id")
                    .context("reading the chunk id fast field")?,
            );
        }
        ranked_picks
            .into_iter()
            .map(|(score, p)| {
                let id = ids
                    .get(p.segment as usize)
                    .and_then(|c| c.first(p.doc))
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

/// The best threshold any thread of a search has reached. Scores are
/// positive, and positive floats order as their bits do.
#[derive(Default)]
struct SharedThreshold(AtomicU32);

impl SharedThreshold {
    /// A threshold another thread may prune with: just below the best
    /// reached, so that a chunk tying with another segment's still reaches
    /// the merge, where ties go to the earlier segment as they would in turn.
    fn get(&self) -> Score {
        let t = Score::from_bits(self.0.load(Ordering::Relaxed));
        if t > 0.0 { t.next_down() } else { 0.0 }
    }

    fn raise(&self, to: Score) {
        self.0.fetch_max(to.max(0.0).to_bits(), Ordering::Relaxed);
    }
}

/// Offer every chunk of `segment` matching `weight` to `heap`, pruning with
/// block-max WAND below the heap's threshold or the shared one.
fn scan(
    heap: &mut Heap<'_>,
    ord: u32,
    segment: &SegmentReader,
    weight: &dyn Weight,
    shared: &SharedThreshold,
) -> anyhow::Result<()> {
    let groups = segment
        .fast_fields()
        .u64("group")
        .context("reading the group fast field")?;
    let start = heap.threshold().unwrap_or(0.0).max(shared.get());
    weight.for_each_pruning(start, segment, &mut |doc, score| {
        // A chunk without a group (never written so) is its own file.
        let group = groups.first(doc).unwrap_or(u64::MAX - u64::from(doc));
        heap.offer(Pick {
            segment: ord,
            doc,
            group,
            score,
        });
        match heap.threshold() {
            Some(t) => {
                shared.raise(t);
                t.max(shared.get())
            }
            None => shared.get(),
        }
    })?;
    Ok(())
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

    #[test]
    fn parallel_segments_rank_exactly_as_one_thread_does() {
        for interleaved in [false, true] {
            let index = index(30, 8, interleaved);
            let queries = [
                "vacuum",
                "vacuum index",
                "replication slot wal checkpoint",
                "autovacuum lock query plan backup restore",
                "index index nothing",
            ];
            for q in queries {
                for k in [1, 3, 5, 20] {
                    for filters in [
                        Filters::default(),
                        Filters {
                            project_names: vec!["spock"],
                            project_versions: vec![],
                        },
                    ] {
                        let w = words(q);
                        let one = rank(&index, &w, &filters, k, false).unwrap();
                        let two = rank(&index, &w, &filters, k, true).unwrap();
                        assert_eq!(one, two, "{q:?} k={k} interleaved={interleaved}");
                        assert_eq!(one.len(), k, "{q:?}");
                        assert!(one.windows(2).all(|p| p[0].score >= p[1].score));
                        // Each file at most twice: 30 files match.
                        let files = files_of(&index, &one);
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
}
