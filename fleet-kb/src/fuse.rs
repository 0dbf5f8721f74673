//! Hybrid ranking: the keyword ranking ([`crate::rank`]) and the vector
//! ranking ([`crate::vectors`]) fused by reciprocal rank, then ranked by
//! page, then the diversity rule.
//!
//! Reciprocal rank fusion scores a chunk Σ wᵢ / ([`RRF_K`] + rankᵢ) over the
//! rankings that hold it (rank 1 first): it needs no common scale between
//! BM25 and cosine, and a chunk both rankings like beats one only one of
//! them loves. Each ranking contributes its best [`DEPTH`] chunks.
//!
//! A page then scores its best chunk plus [`crate::rank::PAGE_SHARE`] of
//! its second, as the keyword ranking does, and pages are taken best
//! first; finally no more than [`crate::rank::MAX_PER_FILE`] chunks of one
//! source file come before every other file's ([`diversify`]).

use std::collections::HashMap;

use crate::rank::{MAX_PER_FILE, PAGE_SHARE};

/// The constant of reciprocal rank fusion (the usual 60).
pub const RRF_K: f32 = 60.0;

/// Chunks taken from each ranking.
pub const DEPTH: usize = 40;

/// Weight of the keyword ranking in the fusion; the vector ranking's is 1.
pub const KEYWORD_WEIGHT: f32 = 1.0;

/// A chunk being ranked: its id, its score so far, and its source file
/// (any key equal for chunks of one file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    pub chunk_id: i64,
    pub score: f32,
    pub file: u64,
}

/// Fuse two rankings (best first each) by reciprocal rank: the union of
/// their chunks, best fused score first (ties: the keyword ranking's
/// order, then the vector ranking's).
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
    let mut pages: Vec<(u64, f32, Vec<Item>)> = Vec::new();
    let mut page_of: HashMap<u64, usize> = HashMap::new();
    for item in items {
        match page_of.get(&item.file) {
            Some(&p) => pages[p].2.push(*item),
            None => {
                page_of.insert(item.file, pages.len());
                pages.push((item.file, 0.0, vec![*item]));
            }
        }
    }
    for page in &mut pages {
        let best = page.2[0].score;
        let second = page.2.get(1).map_or(0.0, |i| i.score);
        page.1 = best + PAGE_SHARE * second;
    }
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
        assert_eq!(ids(&fused), [2, 1, 4, 3, 5]);
        let two = 1.0 / 62.0 + 1.0 / 62.0;
        assert!((fused[0].score - two).abs() < 1e-6);
        assert!(fuse(&[], &[]).is_empty());
        assert_eq!(ids(&fuse(&keyword, &[])), [1, 2, 3]);
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
