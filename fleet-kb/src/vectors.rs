//! Vector search over one generation's chunk vectors: a quantised scan,
//! mapped from a file, not held in anonymous memory.
//!
//! At load, every vector of the KB ([`VectorSource`]: ours in
//! `kb_embeddings`, or a pgEdge provider column) is decoded, normalised and
//! written twice into an unnamed temporary file: one sign bit per dimension
//! (256 bits = 32 bytes for a 256-dimension model) and one signed byte per
//! dimension with a per-vector scale. The file is mapped; a million
//! 256-dimension vectors take 290 MB of page cache, which the kernel may
//! drop and reread, and none of the heap. The last search holding a
//! generation drops the map and the file goes with it.
//!
//! A search is exact up to quantisation in two steps: the Hamming distance
//! of every vector's bits to the query's bits (a few instructions per
//! vector with POPCNT) keeps the [`RERANK`] nearest, then those are scored
//! by the dot product of the query (f32) with their bytes times their
//! scale: the cosine to about three decimals. Product and version filters
//! are applied during the scan. A large index is scanned in blocks that
//! two threads can share ([`VectorIndex::search_beside`]: a hybrid
//! search's keyword ranking runs on one, then it helps with the scan);
//! equal distances go to the earlier vector, so the answer does not depend
//! on how the blocks were shared.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use fleet_common::kb_vectors::{self, MAX_DIMENSIONS, ModelIdentity, Provider};
use memmap2::{Mmap, MmapMut};
use rusqlite::Connection;

/// Candidates of the bit scan scored exactly (at least; `k` × 8 if larger).
pub const RERANK: usize = 512;

/// Where a generation's vectors come from, and what they must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorSource {
    /// Ours (`kb_embeddings`), which must have been made by this model.
    Local(ModelIdentity),
    /// pgEdge's column of this provider; `dimensions`, when known, is what
    /// the configured model gives and the stored vectors must have.
    Provider {
        provider: Provider,
        dimensions: Option<usize>,
    },
}

/// One scored chunk of a vector search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub chunk_id: i64,
    /// Cosine similarity (up to quantisation).
    pub score: f32,
    /// The chunk's source file, as an ordinal of this index.
    pub file: u32,
}

/// Where each array lies in the mapped file of `n` vectors of `dims`
/// dimensions: 8-byte arrays first (ids, sign bits), then 4 (scales, file
/// ordinals), 2 (product ordinals) and 1 (codes): every array aligned.
#[derive(Debug, Clone, Copy)]
struct Layout {
    n: usize,
    dims: usize,
    /// u64 words of sign bits per vector.
    words: usize,
    off_bits: usize,
    off_scale: usize,
    off_file: usize,
    off_product: usize,
    off_codes: usize,
}

impl Layout {
    fn new(n: usize, dims: usize) -> Layout {
        let words = dims.div_ceil(64);
        let off_bits = n * 8;
        let off_scale = off_bits + n * words * 8;
        let off_file = off_scale + n * 4;
        let off_product = off_file + n * 4;
        let off_codes = off_product + n * 2;
        Layout {
            n,
            dims,
            words,
            off_bits,
            off_scale,
            off_file,
            off_product,
            off_codes,
        }
    }

    /// The file's length.
    fn len(&self) -> usize {
        self.off_codes + self.n * self.dims
    }
}

/// The vectors of one generation, quantised and mapped.
pub struct VectorIndex {
    map: Mmap,
    at: Layout,
    /// (project_name, project_version) of each product ordinal.
    products: Vec<(String, String)>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("vectors", &self.at.n)
            .field("dimensions", &self.at.dims)
            .finish()
    }
}

/// What a load found: an index, or why there is none.
#[derive(Debug)]
pub enum Loaded {
    Index(VectorIndex),
    /// The KB has no vectors of this source (not an error: keyword only).
    NoVectors(String),
}

impl VectorIndex {
    /// Read, check and quantise the vectors of `source` from `conn`; the
    /// temporary file goes in `dir` (the system's temporary directory when
    /// `None`). A KB made by another model, or holding vectors of another
    /// dimension than configured, or a malformed vector, is an error that
    /// says which.
    pub fn load(conn: &Connection, source: &VectorSource, dir: Option<&Path>) -> Result<Loaded> {
        let (count_sql, rows_sql, expected, what) = match source {
            VectorSource::Local(model) => {
                let info = fleet_common::kb_file::inspect(conn)?;
                let Some(stored) = info.embedding else {
                    return Ok(Loaded::NoVectors(
                        "this knowledge base has no vectors of a local model (build it with `kb build --embed-model`)"
                            .to_string(),
                    ));
                };
                ensure!(
                    stored.sha256 == model.sha256 && stored.dimensions == model.dimensions,
                    "the knowledge base's vectors were made by {stored}, but the server's model is {model}: \
                     rebuild the KB with this model or point the server at that one"
                );
                let t = kb_vectors::TABLE;
                (
                    format!("SELECT count(*) FROM {t}"),
                    format!(
                        "SELECT c.id, c.project_name, c.project_version, coalesce(c.file_path, ''), e.vector \
                         FROM {t} e JOIN chunks c ON c.id = e.chunk_id ORDER BY c.id"
                    ),
                    Some(model.dimensions),
                    format!("{t} ({})", model.name),
                )
            }
            VectorSource::Provider {
                provider,
                dimensions,
            } => {
                let col = provider.column();
                let has_column: i64 = conn.query_row(
                    "SELECT count(*) FROM pragma_table_info('chunks') WHERE name = ?1",
                    [col],
                    |r| r.get(0),
                )?;
                if has_column == 0 {
                    return Ok(Loaded::NoVectors(format!(
                        "this knowledge base has no {col} column"
                    )));
                }
                (
                    format!("SELECT count(*) FROM chunks WHERE {col} IS NOT NULL"),
                    format!(
                        "SELECT id, project_name, project_version, coalesce(file_path, ''), {col} \
                         FROM chunks WHERE {col} IS NOT NULL ORDER BY id"
                    ),
                    *dimensions,
                    col.to_string(),
                )
            }
        };
        let n: i64 = conn.query_row(&count_sql, [], |r| r.get(0))?;
        if n == 0 {
            return Ok(Loaded::NoVectors(format!("{what} holds no vectors")));
        }
        let n = usize::try_from(n)?;
        let mut stmt = conn.prepare(&rows_sql)?;
        let mut rows = stmt.query([])?;
        let mut builder: Option<Builder> = None;
        let mut v = Vec::new();
        let mut i = 0usize;
        while let Some(row) = rows.next()? {
            ensure!(i < n, "{what}: more vectors than counted");
            let id: i64 = row.get(0)?;
            let blob = row
                .get_ref(4)?
                .as_blob()
                .map_err(|_| anyhow::anyhow!("{what}: the vector of chunk {id} is not a BLOB"))?;
            let b = match &mut builder {
                Some(b) => b,
                None => {
                    ensure!(
                        blob.len() % 4 == 0 && (1..=MAX_DIMENSIONS).contains(&(blob.len() / 4)),
                        "{what}: the vector of chunk {id} is {} bytes, not a float32 vector of 1 to {MAX_DIMENSIONS} dimensions",
                        blob.len()
                    );
                    let dims = blob.len() / 4;
                    if let Some(want) = expected
                        && want != dims
                    {
                        bail!(
                            "{what} holds vectors of {dims} dimensions, but the configured model gives {want}"
                        );
                    }
                    builder.insert(Builder::new(n, dims, dir)?)
                }
            };
            kb_vectors::decode_into(blob, b.at.dims, &mut v)
                .map_err(|e| anyhow::anyhow!("{what}: the vector of chunk {id}: {e}"))?;
            let product = row.get_ref(1)?.as_str()?;
            let version = row.get_ref(2)?.as_str()?;
            let file = row.get_ref(3)?.as_str()?;
            b.put(i, id, &mut v, (product, version), file)?;
            i += 1;
        }
        ensure!(i == n, "{what}: fewer vectors than counted");
        let b = builder.context("no vectors")?;
        Ok(Loaded::Index(b.finish()?))
    }

    /// How many vectors.
    pub fn len(&self) -> usize {
        self.at.n
    }

    pub fn is_empty(&self) -> bool {
        self.at.n == 0
    }

    pub fn dimensions(&self) -> usize {
        self.at.dims
    }

    fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.map[..self.at.n * 8]
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn id_at(&self, i: usize) -> i64 {
        let b = &self.map[i * 8..i * 8 + 8];
        i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    fn file_at(&self, i: usize) -> u32 {
        let at = self.at.off_file + i * 4;
        let b = &self.map[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The source-file ordinal of chunk `chunk_id`, if it has a vector.
    pub fn file_of(&self, chunk_id: i64) -> Option<u32> {
        // Ids are stored in ascending order.
        let (mut lo, mut hi) = (0usize, self.at.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.id_at(mid).cmp(&chunk_id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.file_at(mid)),
            }
        }
        None
    }

    /// Which product ordinals pass the filters (empty lists pass all);
    /// `None` when every one does.
    pub fn allowed(&self, names: &[&str], versions: &[&str]) -> Option<Vec<bool>> {
        if names.is_empty() && versions.is_empty() {
            return None;
        }
        Some(
            self.products
                .iter()
                .map(|(n, v)| {
                    (names.is_empty() || names.contains(&n.as_str()))
                        && (versions.is_empty() || versions.contains(&v.as_str()))
                })
                .collect(),
        )
    }

    /// The `k` chunks nearest to the unit vector `q` (cosine, best first)
    /// among those whose product `allowed` passes.
    pub fn search(&self, q: &[f32], k: usize, allowed: Option<&[bool]>) -> Result<Vec<Scored>> {
        self.search_with(q, k, allowed, false)
    }

    /// [`VectorIndex::search`]; with `parallel`, a large index's bits are
    /// scanned on two threads (for a server with idle cores).
    pub fn search_with(
        &self,
        q: &[f32],
        k: usize,
        allowed: Option<&[bool]>,
        parallel: bool,
    ) -> Result<Vec<Scored>> {
        self.search_beside(q, k, allowed, parallel, || ()).0
    }

    /// [`VectorIndex::search_with`] with `beside` run meanwhile on this
    /// thread. With `parallel` and an index of at least [`PARALLEL_MIN`]
    /// vectors, the scan starts on a second thread while this one runs
    /// `beside`, then this one takes its share of the blocks left
    /// ([`BLOCK`] vectors each), so neither core idles while the other
    /// works (a hybrid search's keyword ranking is done well before the
    /// scan). Otherwise `beside` runs first and the scan after it, on this
    /// thread. The answer is the same either way.
    pub fn search_beside<T>(
        &self,
        q: &[f32],
        k: usize,
        allowed: Option<&[bool]>,
        parallel: bool,
        beside: impl FnOnce() -> T,
    ) -> (Result<Vec<Scored>>, T) {
        let (qbits, keep) = match self.prepare(q, k) {
            Ok(Some(p)) => p,
            Ok(None) => return (Ok(Vec::new()), beside()),
            Err(e) => return (Err(e), beside()),
        };
        let next = AtomicUsize::new(0);
        let mut nearest = Nearest::new(keep);
        let out = if parallel && self.at.n >= PARALLEL_MIN {
            std::thread::scope(|s| {
                let helper = s.spawn(|| {
                    let mut theirs = Nearest::new(keep);
                    self.scan_blocks(&qbits, allowed, &next, &mut theirs);
                    theirs
                });
                let out = beside();
                self.scan_blocks(&qbits, allowed, &next, &mut nearest);
                let theirs = helper
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e));
                nearest.merge(theirs);
                out
            })
        } else {
            let out = beside();
            self.scan_blocks(&qbits, allowed, &next, &mut nearest);
            out
        };
        (Ok(self.rerank(q, nearest, k)), out)
    }

    /// The query's sign bits and how many candidates to keep, once the
    /// query is checked; `None` when nothing can be found.
    fn prepare(&self, q: &[f32], k: usize) -> Result<Option<(Vec<u64>, usize)>> {
        ensure!(
            q.len() == self.at.dims,
            "the query vector has {} dimensions, the knowledge base's vectors {}",
            q.len(),
            self.at.dims
        );
        if k == 0 || self.at.n == 0 {
            return Ok(None);
        }
        let keep = RERANK.max(k.saturating_mul(8)).min(self.at.n);
        Ok(Some((sign_bits(q), keep)))
    }

    /// Scan blocks of vectors into `nearest`, taking the next block from
    /// `next` until none is left (threads sharing `next` share the scan).
    fn scan_blocks(
        &self,
        qbits: &[u64],
        allowed: Option<&[bool]>,
        next: &AtomicUsize,
        nearest: &mut Nearest,
    ) {
        while self.scan_block(
            next.fetch_add(1, Ordering::Relaxed),
            qbits,
            allowed,
            nearest,
        ) {}
    }

    /// Scan block `b` ([`BLOCK`] vectors from `b` × [`BLOCK`]) into
    /// `nearest`; `false` if the index has no such block.
    fn scan_block(
        &self,
        b: usize,
        qbits: &[u64],
        allowed: Option<&[bool]>,
        nearest: &mut Nearest,
    ) -> bool {
        let (n, stride) = (self.at.n, self.at.words * 8);
        let lo = b.saturating_mul(BLOCK);
        if lo >= n {
            return false;
        }
        let hi = (lo + BLOCK).min(n);
        let bits = &self.map[self.at.off_bits + lo * stride..self.at.off_bits + hi * stride];
        let products = &self.map[self.at.off_product + lo * 2..self.at.off_product + hi * 2];
        scan(bits, qbits, products, allowed, lo, nearest);
        true
    }

    /// Score the scan's candidates exactly (up to the codes' quantisation):
    /// the `k` best, best first, ties by chunk id.
    fn rerank(&self, q: &[f32], mut nearest: Nearest, k: usize) -> Vec<Scored> {
        nearest.shrink();
        let scales = &self.map[self.at.off_scale..self.at.off_scale + self.at.n * 4];
        let mut scored: Vec<Scored> = nearest
            .items
            .into_iter()
            .map(|(_, pos)| {
                let i = pos as usize;
                let at = self.at.off_codes + i * self.at.dims;
                let codes = &self.map[at..at + self.at.dims];
                let dot: f32 = q
                    .iter()
                    .zip(codes)
                    .map(|(a, &c)| a * f32::from(c as i8))
                    .sum();
                let s = &scales[i * 4..i * 4 + 4];
                Scored {
                    chunk_id: self.id_at(i),
                    score: dot * f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                    file: self.file_at(i),
                }
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.chunk_id.cmp(&b.chunk_id))
        });
        scored.truncate(k);
        scored
    }

    /// Every chunk id that has a vector, ascending (for tests and checks).
    pub fn chunk_ids(&self) -> Vec<i64> {
        self.ids().collect()
    }
}

/// One bit per dimension: set where the value is positive.
fn sign_bits(v: &[f32]) -> Vec<u64> {
    let mut out = vec![0u64; v.len().div_ceil(64)];
    for (j, x) in v.iter().enumerate() {
        if *x > 0.0 {
            out[j / 64] |= 1 << (j % 64);
        }
    }
    out
}

/// Vectors below this many are scanned on one thread whatever is asked.
pub const PARALLEL_MIN: usize = 100_000;

/// Vectors per block of a shared scan (512 KB of bits at 256 dimensions):
/// a million vectors make 62 blocks, so two threads finish within a block
/// of each other.
const BLOCK: usize = 16_384;

/// The nearest candidates of a scan so far: at most 2 × `keep` held, the
/// nearest `keep` kept each time it fills, and nothing farther than the
/// `keep`-th of those accepted after. Nearest means the smallest (distance,
/// position): ties go to the earlier vector, so the candidates are the same
/// however the scan was split among threads.
struct Nearest {
    keep: usize,
    /// Accept distances up to this.
    bound: u32,
    /// (distance, position).
    items: Vec<(u32, u32)>,
}

impl Nearest {
    fn new(keep: usize) -> Nearest {
        let keep = keep.max(1);
        Nearest {
            keep,
            bound: u32::MAX,
            items: Vec::with_capacity(2 * keep),
        }
    }

    #[inline(always)]
    fn offer(&mut self, d: u32, pos: usize) {
        if d <= self.bound {
            self.items.push((d, pos as u32));
            if self.items.len() >= 2 * self.keep {
                self.shrink();
            }
        }
    }

    /// Keep the `keep` nearest; later offers must beat the farthest of them.
    fn shrink(&mut self) {
        if self.items.len() <= self.keep {
            return;
        }
        let k = self.keep - 1;
        self.items.select_nth_unstable(k);
        self.bound = self.items[k].0;
        self.items.truncate(self.keep);
    }

    fn merge(&mut self, other: Nearest) {
        self.items.extend(other.items);
        self.shrink();
    }
}

/// Offer the vectors in `bits` (positions from `base`) to `nearest`, with
/// POPCNT when the CPU has it.
fn scan(
    bits: &[u8],
    q: &[u64],
    products: &[u8],
    allowed: Option<&[bool]>,
    base: usize,
    nearest: &mut Nearest,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has POPCNT, checked just above.
            unsafe { hamming_popcnt(bits, q, products, allowed, base, nearest) };
            return;
        }
    }
    hamming(bits, q, products, allowed, base, nearest);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn hamming_popcnt(
    bits: &[u8],
    q: &[u64],
    products: &[u8],
    allowed: Option<&[bool]>,
    base: usize,
    nearest: &mut Nearest,
) {
    hamming(bits, q, products, allowed, base, nearest)
}

/// Offer each allowed vector's Hamming distance to `q` to `nearest`. The
/// common case, 256 bits (a 256-dimension model) and no filter, has a loop
/// of its own: four words, no per-vector length.
#[inline(always)]
fn hamming(
    bits: &[u8],
    q: &[u64],
    products: &[u8],
    allowed: Option<&[bool]>,
    base: usize,
    nearest: &mut Nearest,
) {
    if let (None, &[q0, q1, q2, q3]) = (allowed, q) {
        for (i, code) in bits.chunks_exact(32).enumerate() {
            let w = |k: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&code[k * 8..k * 8 + 8]);
                u64::from_le_bytes(b)
            };
            let d = (w(0) ^ q0).count_ones()
                + (w(1) ^ q1).count_ones()
                + (w(2) ^ q2).count_ones()
                + (w(3) ^ q3).count_ones();
            nearest.offer(d, base + i);
        }
        return;
    }
    let stride = q.len() * 8;
    for (i, code) in bits.chunks_exact(stride).enumerate() {
        if let Some(allowed) = allowed {
            let p = usize::from(u16::from_le_bytes([products[2 * i], products[2 * i + 1]]));
            if !allowed.get(p).copied().unwrap_or(false) {
                continue;
            }
        }
        let mut d = 0u32;
        for (w, qw) in code.chunks_exact(8).zip(q) {
            let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            d += (x ^ qw).count_ones();
        }
        nearest.offer(d, base + i);
    }
}

/// Writes the quantised vectors into the mapped temporary file.
struct Builder {
    map: MmapMut,
    at: Layout,
    products: HashMap<(String, String), u16>,
    files: HashMap<String, u32>,
    last_id: Option<i64>,
}

impl Builder {
    fn new(n: usize, dims: usize, dir: Option<&Path>) -> Result<Builder> {
        let at = Layout::new(n, dims);
        let len = at.len();
        let file = match dir {
            Some(d) => tempfile::tempfile_in(d)
                .with_context(|| format!("creating a vector file in {}", d.display()))?,
            None => tempfile::tempfile().context("creating a vector file")?,
        };
        file.set_len(len as u64).context("sizing the vector file")?;
        // SAFETY: an unnamed temporary file only this process can reach.
        let map = unsafe { MmapMut::map_mut(&file) }.context("mapping the vector file")?;
        Ok(Builder {
            map,
            at,
            products: HashMap::new(),
            files: HashMap::new(),
            last_id: None,
        })
    }

    /// Vector `i`: chunk `id` (ascending), `v` (normalised here).
    fn put(
        &mut self,
        i: usize,
        id: i64,
        v: &mut [f32],
        product: (&str, &str),
        file: &str,
    ) -> Result<()> {
        ensure!(
            self.last_id.is_none_or(|last| last < id),
            "chunk ids out of order"
        );
        self.last_id = Some(id);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = max / 127.0;
        self.map[i * 8..i * 8 + 8].copy_from_slice(&id.to_le_bytes());
        for (w, word) in sign_bits(v).iter().enumerate() {
            let at = self.at.off_bits + (i * self.at.words + w) * 8;
            self.map[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
        let at = self.at.off_scale + i * 4;
        self.map[at..at + 4].copy_from_slice(&scale.to_le_bytes());
        let next_file = self.files.len() as u32;
        let f = *self.files.entry(file.to_string()).or_insert(next_file);
        let at = self.at.off_file + i * 4;
        self.map[at..at + 4].copy_from_slice(&f.to_le_bytes());
        let next = self.products.len();
        let key = (product.0.to_string(), product.1.to_string());
        let p = match self.products.get(&key) {
            Some(p) => *p,
            None => {
                let p = u16::try_from(next).context("more than 65,535 products and versions")?;
                self.products.insert(key, p);
                p
            }
        };
        let at = self.at.off_product + i * 2;
        self.map[at..at + 2].copy_from_slice(&p.to_le_bytes());
        let at = self.at.off_codes + i * self.at.dims;
        for (c, x) in self.map[at..at + self.at.dims].iter_mut().zip(v.iter()) {
            *c = ((x / scale).round().clamp(-127.0, 127.0) as i8) as u8;
        }
        Ok(())
    }

    fn finish(self) -> Result<VectorIndex> {
        let mut products = vec![(String::new(), String::new()); self.products.len()];
        for (key, p) in self.products {
            products[usize::from(p)] = key;
        }
        Ok(VectorIndex {
            map: self
                .map
                .make_read_only()
                .context("sealing the vector file")?,
            at: self.at,
            products,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KB of `vectors` (one chunk and file each, product p/1 or q/1 by
    /// parity) in `column`.
    fn kb(vectors: &[Vec<f32>]) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY, text TEXT, title TEXT, section TEXT, project_name TEXT, \
             project_version TEXT, file_path TEXT, openai_embedding BLOB);",
        )
        .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        {
            let mut insert = tx
                .prepare("INSERT INTO chunks VALUES (?1, 't', 't', 's', ?2, '1', ?3, ?4)")
                .unwrap();
            for (i, v) in vectors.iter().enumerate() {
                insert
                    .execute(rusqlite::params![
                        (i + 1) as i64,
                        if i % 2 == 0 { "p" } else { "q" },
                        format!("f{i}.md"),
                        kb_vectors::encode(v)
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        c
    }

    fn openai(dimensions: Option<usize>) -> VectorSource {
        VectorSource::Provider {
            provider: Provider::OpenAi,
            dimensions,
        }
    }

    fn loaded(c: &Connection, s: &VectorSource) -> VectorIndex {
        match VectorIndex::load(c, s, None).unwrap() {
            Loaded::Index(i) => i,
            Loaded::NoVectors(why) => panic!("no vectors: {why}"),
        }
    }

    /// A deterministic pseudo-random vector.
    fn vector(seed: u64, dims: usize) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    }

    #[test]
    fn finds_what_brute_force_cosine_finds() {
        // Like embeddings: 40 topics, 50 chunks each near their topic.
        let dims = 96;
        let topics: Vec<Vec<f32>> = (0..40).map(|t| vector(t + 5_000, dims)).collect();
        let near = |t: &[f32], seed: u64, spread: f32| -> Vec<f32> {
            t.iter()
                .zip(vector(seed, dims))
                .map(|(a, b)| a + spread * b)
                .collect()
        };
        let vectors: Vec<Vec<f32>> = (0..2000)
            .map(|i| near(&topics[(i % 40) as usize], i, 0.8))
            .collect();
        let c = kb(&vectors);
        let index = loaded(&c, &openai(Some(dims)));
        assert_eq!((index.len(), index.dimensions()), (2000, dims));
        for seed in 10_000..10_020 {
            let mut q = near(&topics[(seed % 40) as usize], seed, 1.0);
            let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            q.iter_mut().for_each(|x| *x /= norm);
            let mut exact: Vec<(i64, f32)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as i64, cosine(&q, v)))
                .collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let got = index.search(&q, 10, None).unwrap();
            assert_eq!(got.len(), 10);
            for (g, e) in got.iter().zip(&exact) {
                assert!((g.score - e.1).abs() < 0.01, "{} vs {}", g.score, e.1);
            }
            // The same chunks, but where two cosines are closer than the
            // quantisation's error.
            for (g, e) in got.iter().zip(&exact) {
                if g.chunk_id != e.0 {
                    let true_score = exact.iter().find(|x| x.0 == g.chunk_id).unwrap().1;
                    assert!((true_score - e.1).abs() < 0.01, "{g:?} in place of {e:?}");
                }
            }
        }
    }

    #[test]
    fn a_scan_shared_by_two_threads_finds_what_one_finds() {
        // Large enough to be shared, not a whole number of blocks, and with
        // 8 dimensions only 256 bit patterns: ties everywhere, so the
        // candidates kept depend on how ties are broken, not on who
        // scanned which block.
        let n = PARALLEL_MIN + 3 * BLOCK + 17;
        let vectors: Vec<Vec<f32>> = (0..n as u64).map(|i| vector(i, 8)).collect();
        let c = kb(&vectors);
        let index = loaded(&c, &openai(None));
        let only_q = index.allowed(&["q"], &[]).unwrap();
        for seed in [3u64, 77, 4_000, 99_999] {
            let q = &vectors[seed as usize];
            for allowed in [None, Some(only_q.as_slice())] {
                let one = index.search(q, 40, allowed).unwrap();
                assert_eq!(one.len(), 40);
                let (two, beside) = index.search_beside(q, 40, allowed, true, || seed * 2);
                assert_eq!(
                    beside,
                    seed * 2,
                    "the work beside ran once, its answer kept"
                );
                assert_eq!(two.unwrap(), one);
                assert_eq!(index.search_with(q, 40, allowed, true).unwrap(), one);
            }
        }
        // The candidates themselves, whatever order the blocks come in:
        // forward, backward, or split between two scans and merged.
        let (qbits, keep) = index.prepare(&vectors[5], 40).unwrap().unwrap();
        let blocks: Vec<usize> = (0..n.div_ceil(BLOCK)).collect();
        let scanned = |order: &mut dyn Iterator<Item = &usize>, nearest: &mut Nearest| {
            for &b in order {
                assert!(
                    index.scan_block(b, &qbits, None, nearest),
                    "block {b} exists"
                );
            }
        };
        let candidates = |mut nearest: Nearest| {
            nearest.shrink();
            let mut items = nearest.items;
            items.sort_unstable();
            items
        };
        let mut forward = Nearest::new(keep);
        scanned(&mut blocks.iter(), &mut forward);
        let mut backward = Nearest::new(keep);
        scanned(&mut blocks.iter().rev(), &mut backward);
        let (mut odd, mut even) = (Nearest::new(keep), Nearest::new(keep));
        scanned(&mut blocks.iter().skip(1).step_by(2), &mut odd);
        scanned(&mut blocks.iter().step_by(2), &mut even);
        odd.merge(even);
        let forward = candidates(forward);
        assert_eq!(forward.len(), keep);
        assert_eq!(candidates(backward), forward);
        assert_eq!(candidates(odd), forward);

        assert!(!index.scan_block(blocks.len(), &qbits, None, &mut Nearest::new(keep)));
        let (err, beside) = index.search_beside(&[1.0; 3], 40, None, true, || "ran");
        assert!(err.is_err(), "wrong dimensions refused");
        assert_eq!(beside, "ran", "and the work beside still done");
    }

    #[test]
    fn filters_apply_during_the_scan_and_files_are_known() {
        let vectors: Vec<Vec<f32>> = (0..50).map(|i| vector(i, 64)).collect();
        let c = kb(&vectors);
        let index = loaded(&c, &openai(None));
        let only_q = index.allowed(&["q"], &[]).unwrap();
        let got = index.search(&vectors[3], 50, Some(&only_q)).unwrap();
        assert_eq!(got.len(), 25);
        assert!(
            got.iter().all(|s| s.chunk_id % 2 == 0),
            "only odd rows (ids even) are q"
        );
        assert_eq!(got[0].chunk_id, 4, "itself first");
        assert!(index.allowed(&[], &[]).is_none());
        assert_eq!(index.file_of(4), Some(got[0].file));
        assert_eq!(index.file_of(999), None);
        assert_eq!(index.chunk_ids().len(), 50);
    }

    #[test]
    fn wrong_dimensions_and_bad_vectors_are_refused_with_the_reason() {
        let c = kb(&[vector(1, 8), vector(2, 8)]);
        let err = VectorIndex::load(&c, &openai(Some(16)), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("8 dimensions") && err.contains("gives 16"),
            "{err}"
        );
        c.execute(
            "UPDATE chunks SET openai_embedding = x'00000000' WHERE id = 2",
            [],
        )
        .unwrap();
        let err = VectorIndex::load(&c, &openai(None), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chunk 2"), "{err}");
        let index = loaded(&kb(&[vector(1, 8)]), &openai(None));
        assert!(
            index.search(&[1.0; 4], 1, None).is_err(),
            "a query of the wrong dimension"
        );
    }

    #[test]
    fn a_kb_without_vectors_is_keyword_only_not_an_error() {
        let c = kb(&[]);
        assert!(matches!(
            VectorIndex::load(&c, &openai(None), None).unwrap(),
            Loaded::NoVectors(_)
        ));
        let voyage = VectorSource::Provider {
            provider: Provider::Voyage,
            dimensions: None,
        };
        match VectorIndex::load(&c, &voyage, None).unwrap() {
            Loaded::NoVectors(why) => assert!(why.contains("voyage_embedding"), "{why}"),
            Loaded::Index(_) => panic!("vectors from nowhere"),
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p fleet-kb --lib vectors::timing -- --ignored --nocapture`
    #[test]
    #[ignore = "a timing, not a check"]
    fn scan_a_million() {
        let n = 1_000_000usize;
        let dims = 256;
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY, project_name TEXT, project_version TEXT, file_path TEXT, openai_embedding BLOB);",
        )
        .unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let tx = c.unchecked_transaction().unwrap();
        {
            let mut st = tx
                .prepare("INSERT INTO chunks VALUES (?1, 'p', '1', ?2, ?3)")
                .unwrap();
            for i in 0..n {
                let v: Vec<f32> = (0..dims)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % 2001) as f32 / 1000.0 - 1.0
                    })
                    .collect();
                st.execute(rusqlite::params![
                    i as i64 + 1,
                    format!("f{}", i / 10),
                    kb_vectors::encode(&v)
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        let t = std::time::Instant::now();
        let Loaded::Index(index) = VectorIndex::load(
            &c,
            &VectorSource::Provider {
                provider: Provider::OpenAi,
                dimensions: None,
            },
            None,
        )
        .unwrap() else {
            panic!()
        };
        eprintln!("load {:?}", t.elapsed());
        let q: Vec<f32> = (0..dims).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        let q: Vec<f32> = q.iter().map(|x| x / norm).collect();
        for parallel in [false, true] {
            let mut times = Vec::new();
            for _ in 0..50 {
                let t = std::time::Instant::now();
                let r = index.search_with(&q, 40, None, parallel).unwrap();
                times.push(t.elapsed());
                assert_eq!(r.len(), 40);
            }
            times.sort();
            eprintln!(
                "parallel={parallel}: p50 {:?} p90 {:?}",
                times[25], times[45]
            );
        }
    }
}
