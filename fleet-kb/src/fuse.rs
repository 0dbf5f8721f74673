//! Hybrid ranking: the keyword ranking ([`crate::rank`]) and the vector
//! ranking ([`crate::vectors`]) fused by reciprocal rank at the level of
//! pages, then the diversity rule.
//!
//! The keyword ranking contributes its best [`KEYWORD_DEPTH`] chunks, the
//! vector ranking its best [`DEPTH`]. Each is read as a
//! ranking of pages, a page placed where its first chunk is (the keyword
//! ranking is already ranked by page, [`crate::rank::PAGE_SHARE`]; the
//! vector ranking's pages are ranked by their best chunk), and a page
//! scores Σ wᵢ / ([`RRF_K`] + rankᵢ) over the rankings that hold it, the
//! keyword ranking weighing [`KEYWORD_WEIGHT`] and the vector ranking 1.
//! Pages are taken best first, each page's chunks together, ordered by
//! their own reciprocal rank fusion ([`fuse`]); finally no more than
//! [`crate::rank::MAX_PER_FILE`] chunks of one source file come before every
//! other file's ([`diversify`]). A vector-only search ranks by page as the
//! keyword ranking does ([`by_page`]).
//!
//! Measured on the PostgreSQL manual's relevance questions
//! (`bench/relevance`, wordllama l2_supercat 256 d; page-level hit@1 /
//! MRR@5, 58 questions in a user's words / 25 phrased away):
//!
//! | hybrid ranking | users | away |
//! | --- | --- | --- |
//! | keyword alone (for reference) | 70.7 % / 0.770 | 8.0 % / 0.150 |
//! | chunks fused, weights 1:1, then pages | 63.8 % / 0.720 | 12.0 % / 0.199 |
//! | chunks fused, weights 2:1, then pages | 67.2 % / 0.745 | 12.0 % / 0.218 |
//! | normalised scores summed, 2:1, then pages | 67.2 % / 0.745 | 16.0 % / 0.225 |
//! | pages fused, 1:1 | 67.2 % / 0.763 | 20.0 % / 0.291 |
//! | pages fused, 2:1, 40 keyword chunks | 70.7 % / 0.784 | 20.0 % / 0.279 |
//! | pages fused, 2:1, 30 keyword chunks (this) | 72.4 % / 0.795 | 20.0 % / 0.294 |
//!
//! Fusing chunks let a page the vectors liked in many chunks crowd out
//! the keyword ranking's answer; fusing pages counts each page once per
//! ranking. [`RRF_K`] hardly mattered at page level (10, 30 and 60 within
//! 0.005 MRR@5 on either set).

use std::collections::HashMap;

use crate::rank::{MAX_PER_FILE, PAGE_SHARE};

/// The constant of reciprocal rank fusion (the usual 60).
pub const RRF_K: f32 = 60.0;

/// Chunks taken from the vector ranking (80 changed nothing).
pub const DEPTH: usize = 40;

/// Chunks taken from the keyword ranking in a hybrid search. Fewer than
/// [`DEPTH`]: past its first 30 chunks the keyword ranking added noise
/// (30 beat 40 on both question sets). At 20, users' hit@1 rose to
/// 74.1 % but away's MRR@5 fell to 0.246.
pub const KEYWORD_DEPTH: usize = 30;

/// Weight of the keyword ranking in the fusion; the vector ranking's is 1.
/// With the 16 MB static model, the keyword ranking is the better one on
/// a user's words (MRR@5 0.770 against 0.630): at 2 the fusion no longer
/// loses its first answers (users' hit@1 69.0 % at 1, 70.7 % at 2, 3 no
/// better), at a cost of 0.004 MRR@5 on questions phrased away.
pub const KEYWORD_WEIGHT: f32 = 2.0;

/// A chunk being ranked: its id, its score so far, and its source file
/// (any key equal for chunks of one file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    pub chunk_id: i64,
    pub score: f32,
    pub file: u64,
}

/// Fuse two rankings (best first each) by page ([module doc](self)): pages
/// by the weighted reciprocal rank of their places in each ranking, each
/// page's chunks together in [`fuse`]'s order. Every chunk carries its
/// page's score. Ties: the order [`fuse`] gives.
pub fn fuse_pages(keyword: &[Item], semantic: &[Item]) -> Vec<Item> {
    let mut score: HashMap<u64, f32> = HashMap::new();
    for (weight, list) in [(KEYWORD_WEIGHT, keyword), (1.0, semantic)] {
        for (rank, (file, _)) in pages_of(list).iter().enumerate() {
            *score.entry(*file).or_insert(0.0) += weight / (RRF_K + (rank + 1) as f32);
        }
    }
    let mut pages = pages_of(&fuse(keyword, semantic));
    // Stable: equal scores keep the chunk fusion's order.
    pages.sort_by(|a, b| score[&b.0].total_cmp(&score[&a.0]));
    pages
        .into_iter()
        .flat_map(|(file, chunks)| {
            let s = score[&file];
            chunks.into_iter().map(move |c| Item { score: s, ..c })
        })
        .collect()
}

/// The pages of a ranking (best first) in first-seen order, each with its
/// chunks in their order.
fn pages_of(items: &[Item]) -> Vec<(u64, Vec<Item>)> {
    let mut pages: Vec<(u64, Vec<Item>)> = Vec::new();
    let mut page_of: HashMap<u64, usize> = HashMap::new();
    for item in items {
        match page_of.get(&item.file) {
            Some(&p) => pages[p].1.push(*item),
            None => {
                page_of.insert(item.file, pages.len());
                pages.push((item.file, vec![*item]));
            }
        }
    }
    pages
}

/// Fuse two rankings (best first each) by reciprocal rank of their chunks:
/// the union of their chunks, best fused score first (ties: the keyword
/// ranking's order, then the vector ranking's).
pub fn fuse(keyword: &[Item], semantic: &[Item]) -> Vec<Item> {
    let mut fused: Vec<Item> = Vec::with_capacity(keyword.len() + semantic.len());
    let mut at: HashMap<i64, usize> = HashMap::with_capacity(fused.capacity());
    for (weight, list) in [(KEYWORD_WEIGHT, keyword), (1.0, semantic)] {
        for (rank, item) in list.iter().enumerate() {
            let add = weight / (RRF_K + (rank + 1) as f32);
            match at.get(&item.chunk_id) {
                Some(&i) => fused[i].score += add,
                None => {
                    at.insert(item.chunk_id, fused.len());
                    fused.push(Item {
                        score: add,
                        ..*item
                    });
                }
            }
        }
    }
    // Stable: equal scores keep first-seen order.
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused
}

/// Rank `items` (best first) by page: a page scores its best chunk plus
/// [`PAGE_SHARE`] of its second; pages best first, each page's chunks
/// together in their order. Every chunk carries its page's score.
pub fn by_page(items: &[Item]) -> Vec<Item> {
    let mut pages: Vec<(u64, f32, Vec<Item>)> = pages_of(items)
        .into_iter()
        .map(|(file, chunks)| {
            let best = chunks[0].score;
            let second = chunks.get(1).map_or(0.0, |i| i.score);
            (file, best + PAGE_SHARE * second, chunks)
        })
        .collect();
    pages.sort_by(|a, b| b.1.total_cmp(&a.1));
    pages
        .into_iter()
        .flat_map(|(_, score, chunks)| chunks.into_iter().map(move |c| Item { score, ..c }))
        .collect()
}

/// The first `k` of `items` (best first) with at most [`MAX_PER_FILE`]
/// chunks of one file while other files' chunks remain; when those run
/// out, the skipped chunks fill the rest in their order.
pub fn diversify(items: &[Item], k: usize) -> Vec<Item> {
    let mut out = Vec::with_capacity(k.min(items.len()));
    let mut skipped = Vec::new();
    let mut per_file: HashMap<u64, usize> = HashMap::new();
    for item in items {
        if out.len() == k {
            break;
        }
        let n = per_file.entry(item.file).or_insert(0);
        if *n < MAX_PER_FILE {
            *n += 1;
            out.push(*item);
        } else {
            skipped.push(*item);
        }
    }
    for item in skipped {
        if out.len() == k {
            break;
        }
        out.push(item);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(chunk_id: i64, file: u64) -> Item {
        Item {
            chunk_id,
            score: 0.0,
            file,
        }
    }

    fn ids(items: &[Item]) -> Vec<i64> {
        items.iter().map(|i| i.chunk_id).collect()
    }

    #[test]
    fn a_chunk_both_rankings_hold_beats_one_that_tops_only_one() {
        let keyword = [item(1, 1), item(2, 2), item(3, 3)];
        let semantic = [item(4, 4), item(2, 2), item(5, 5)];
        let fused = fuse(&keyword, &semantic);
        // The keyword ranking weighs more: its third beats the vectors' first.
        assert_eq!(ids(&fused), [2, 1, 3, 4, 5]);
        let two = KEYWORD_WEIGHT / 62.0 + 1.0 / 62.0;
        assert!((fused[0].score - two).abs() < 1e-6);
        assert!(fuse(&[], &[]).is_empty());
        assert_eq!(ids(&fuse(&keyword, &[])), [1, 2, 3]);
    }

    #[test]
    fn pages_fuse_once_per_ranking_and_keep_their_chunks_together() {
        // Keyword: pages 1, 2. Vectors: page 3 in three chunks, then page 2.
        let keyword = [item(10, 1), item(11, 1), item(20, 2)];
        let semantic = [item(30, 3), item(31, 3), item(32, 3), item(21, 2)];
        let fused = fuse_pages(&keyword, &semantic);
        // Page 2 is in both; page 1 first in the heavier keyword ranking.
        assert_eq!(ids(&fused), [20, 21, 10, 11, 30, 31, 32]);
        let w = KEYWORD_WEIGHT;
        let page2 = w / (RRF_K + 2.0) + 1.0 / (RRF_K + 2.0);
        assert!((fused[0].score - page2).abs() < 1e-6 && fused[1].score == fused[0].score);
        assert!((fused[2].score - w / (RRF_K + 1.0)).abs() < 1e-6);
        assert!((fused[4].score - 1.0 / (RRF_K + 1.0)).abs() < 1e-6);
        assert!(fuse_pages(&[], &[]).is_empty());
        assert_eq!(ids(&fuse_pages(&[], &semantic)), [30, 31, 32, 21]);
    }

    #[test]
    fn pages_rank_by_their_best_two_chunks_and_keep_them_together() {
        let s = |chunk_id, file, score| Item {
            chunk_id,
            score,
            file,
        };
        // Page 7 has the best chunk alone; page 8 two good ones.
        let items = [s(1, 7, 1.0), s(2, 8, 0.9), s(3, 9, 0.5), s(4, 8, 0.8)];
        let paged = by_page(&items);
        assert_eq!(ids(&paged), [2, 4, 1, 3]);
        assert!((paged[0].score - 1.3).abs() < 1e-6 && paged[1].score == paged[0].score);
    }

    #[test]
    fn at_most_two_of_a_file_while_others_remain() {
        let items = [item(1, 1), item(2, 1), item(3, 1), item(4, 2), item(5, 1)];
        assert_eq!(ids(&diversify(&items, 3)), [1, 2, 4]);
        assert_eq!(ids(&diversify(&items, 5)), [1, 2, 4, 3, 5]);
        assert_eq!(ids(&diversify(&items, 10)), [1, 2, 4, 3, 5]);
        assert!(diversify(&items, 0).is_empty());
    }
}
