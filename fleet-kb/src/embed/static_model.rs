//! A static embedding model read from local files: a Hugging Face
//! tokenizer and one table of token vectors (model2vec / WordLlama style).
//! A text's vector is the mean of its tokens' rows, L2-normalised:
//! microseconds per query, no network, no runtime.
//!
//! A model directory holds exactly one `*.safetensors` file whose one
//! two-dimensional tensor (F32, F16 or BF16; `[vocabulary, dimensions]`) is
//! the table, and a tokenizer: `tokenizer.json`, or the one `*tokenizer*.json`
//! file. The wordllama wheel's `weights/*.safetensors` and
//! `tokenizers/*_tokenizer_config.json`, copied into one directory, are such
//! a model; so is a model2vec model directory. The table is mapped, not
//! copied: it stays in the page cache, shared by every process.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use fleet_common::kb_vectors::{MAX_DIMENSIONS, ModelIdentity};
use memmap2::Mmap;
use sha2::{Digest, Sha256};

/// The most characters of a text that are embedded: a query or chunk is
/// cut at a character boundary below this. Bounds the cost of an untrusted
/// query (a mean over more tokens hardly moves).
pub const MAX_EMBED_BYTES: usize = 8 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DType {
    F32,
    F16,
    Bf16,
}

impl DType {
    fn width(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }
}

/// A loaded static model.
pub struct StaticModel {
    identity: ModelIdentity,
    tokenizer: tokenizers::Tokenizer,
    map: Mmap,
    /// Where the table starts in `map`.
    offset: usize,
    rows: usize,
    dtype: DType,
}

impl std::fmt::Debug for StaticModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticModel")
            .field("identity", &self.identity)
            .field("rows", &self.rows)
            .finish()
    }
}

impl StaticModel {
    /// Load the model in `dir`; every error names the path at fault.
    pub fn load(dir: &Path) -> Result<StaticModel> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading the model directory {}", dir.display()))?;
        let mut weights: Vec<PathBuf> = Vec::new();
        let mut tokenizers: Vec<PathBuf> = Vec::new();
        for e in entries {
            let path = e
                .with_context(|| format!("reading the model directory {}", dir.display()))?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".safetensors") {
                weights.push(path);
            } else if name.ends_with(".json") && name.contains("tokenizer") {
                tokenizers.push(path);
            }
        }
        let weights = match weights.as_slice() {
            [one] => one.clone(),
            [] => bail!(
                "{}: no *.safetensors file (the token vectors)",
                dir.display()
            ),
            _ => bail!("{}: more than one *.safetensors file", dir.display()),
        };
        tokenizers.sort();
        let tokenizer_path = match tokenizers.iter().find(|p| p.ends_with("tokenizer.json")) {
            Some(p) => p.clone(),
            None => match tokenizers.as_slice() {
                [one] => one.clone(),
                [] => bail!("{}: no tokenizer.json", dir.display()),
                _ => bail!(
                    "{}: several *tokenizer*.json files and no tokenizer.json",
                    dir.display()
                ),
            },
        };
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow::anyhow!("{}: not a tokenizer: {e}", tokenizer_path.display()))?;

        let file = std::fs::File::open(&weights)
            .with_context(|| format!("opening {}", weights.display()))?;
        // SAFETY: the model files are read-only inputs; like every mapped
        // file, they must not be truncated while the server runs (a model is
        // replaced by pointing the server at a new directory).
        let map = unsafe { Mmap::map(&file) }
            .with_context(|| format!("mapping {}", weights.display()))?;
        let (offset, rows, dims, dtype) = table_of(&map)
            .with_context(|| format!("{}: not a usable embedding table", weights.display()))?;
        let sha256 = hex::encode(Sha256::digest(&map[..]));
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("model")
            .to_string();
        Ok(StaticModel {
            identity: ModelIdentity {
                name,
                dimensions: dims,
                sha256,
            },
            tokenizer,
            map,
            offset,
            rows,
            dtype,
        })
    }

    /// Name, dimensions and weights' sha256.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    pub fn dimensions(&self) -> usize {
        self.identity.dimensions
    }

    /// The unit vector of `text` (its first [`MAX_EMBED_BYTES`]), or `None`
    /// when it has no token the model knows.
    pub fn embed(&self, text: &str) -> Option<Vec<f32>> {
        let text = crate::query::head(text, MAX_EMBED_BYTES);
        let encoding = self.tokenizer.encode(text, false).ok()?;
        let dims = self.dimensions();
        let mut sum = vec![0f32; dims];
        let mut n = 0usize;
        for &id in encoding.get_ids() {
            if self.add_row(id as usize, &mut sum) {
                n += 1;
            }
        }
        if n == 0 {
            return None;
        }
        // The mean's direction is the sum's: normalising is enough.
        let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return None;
        }
        sum.iter_mut().for_each(|x| *x /= norm);
        Some(sum)
    }

    /// Add row `id` of the table to `acc`; false for an id past the table.
    fn add_row(&self, id: usize, acc: &mut [f32]) -> bool {
        if id >= self.rows {
            return false;
        }
        let dims = acc.len();
        let w = self.dtype.width();
        let start = self.offset + id * dims * w;
        let row = &self.map[start..start + dims * w];
        match self.dtype {
            DType::F32 => {
                for (a, b) in acc.iter_mut().zip(row.chunks_exact(4)) {
                    *a += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            DType::F16 => {
                let f16 = f16_table();
                for (a, b) in acc.iter_mut().zip(row.chunks_exact(2)) {
                    *a += f16[usize::from(u16::from_le_bytes([b[0], b[1]]))];
                }
            }
            DType::Bf16 => {
                for (a, b) in acc.iter_mut().zip(row.chunks_exact(2)) {
                    // bf16 is the top half of an f32.
                    *a += f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
                }
            }
        }
        true
    }
}

/// Every f16 as an f32, by its bits (256 KiB, made once): a lookup per
/// value instead of a conversion.
fn f16_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| half::f16::from_bits(b).to_f32())
            .collect()
    })
}

/// The one two-dimensional tensor of a safetensors file: (offset of its
/// data in the file, rows, columns, dtype). The format: an 8-byte
/// little-endian header length, a JSON header naming each tensor's dtype,
/// shape and data offsets (relative to the end of the header), the data.
fn table_of(bytes: &[u8]) -> Result<(usize, usize, usize, DType)> {
    ensure!(bytes.len() >= 8, "shorter than a safetensors header");
    let header_len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    ensure!(
        header_len <= 100 << 20 && 8 + header_len <= bytes.len(),
        "the header length {header_len} does not fit the file"
    );
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).context("the header is not JSON")?;
    let data_start = 8 + header_len;
    let mut found = None;
    for (name, t) in &header {
        if name == "__metadata__" {
            continue;
        }
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone())
            .with_context(|| format!("tensor {name}: shape"))?;
        if shape.len() != 2 {
            continue;
        }
        ensure!(found.is_none(), "more than one two-dimensional tensor");
        let dtype = match t["dtype"].as_str() {
            Some("F32") => DType::F32,
            Some("F16") => DType::F16,
            Some("BF16") => DType::Bf16,
            other => bail!("tensor {name}: dtype {other:?} (F32, F16 or BF16 expected)"),
        };
        let offsets: [usize; 2] = serde_json::from_value(t["data_offsets"].clone())
            .with_context(|| format!("tensor {name}: data_offsets"))?;
        let (rows, dims) = (shape[0], shape[1]);
        ensure!(
            rows > 0 && (1..=MAX_DIMENSIONS).contains(&dims),
            "tensor {name}: shape [{rows}, {dims}]"
        );
        let len = rows
            .checked_mul(dims)
            .and_then(|x| x.checked_mul(dtype.width()))
            .context("tensor too large")?;
        ensure!(
            offsets[1].checked_sub(offsets[0]) == Some(len)
                && data_start + offsets[1] <= bytes.len(),
            "tensor {name}: its data does not fit the file"
        );
        found = Some((data_start + offsets[0], rows, dims, dtype));
    }
    found.context("no two-dimensional tensor")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file of one F16 table.
    fn safetensors(rows: usize, dims: usize, value: impl Fn(usize, usize) -> f32) -> Vec<u8> {
        let mut data = Vec::new();
        for r in 0..rows {
            for d in 0..dims {
                data.extend(half::f16::from_f32(value(r, d)).to_le_bytes());
            }
        }
        let header = serde_json::json!({
            "__metadata__": {"format": "pt"},
            "embedding.weight": {"dtype": "F16", "shape": [rows, dims], "data_offsets": [0, data.len()]}
        })
        .to_string();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    /// A word-level tokenizer over `words` (ids in order).
    fn tokenizer_json(words: &[&str]) -> String {
        let vocab: serde_json::Map<String, serde_json::Value> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
            .collect();
        serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        })
        .to_string()
    }

    fn model_dir(words: &[&str], table: Vec<u8>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), table).unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), tokenizer_json(words)).unwrap();
        dir
    }

    #[test]
    fn a_text_is_the_normalised_mean_of_its_token_rows() {
        // Row i is e_i (unit along axis i), [UNK] is row 3 = (1, 1, 0).
        let dir = model_dir(
            &["vacuum", "index", "wal", "[UNK]"],
            safetensors(4, 3, |r, d| match r {
                3 => [1.0, 1.0, 0.0][d],
                _ => f32::from(u8::from(r == d)),
            }),
        );
        let m = StaticModel::load(dir.path()).unwrap();
        assert_eq!(m.dimensions(), 3);
        assert_eq!(m.identity().sha256.len(), 64);
        let v = m.embed("vacuum index").unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (v[0] - h).abs() < 1e-3 && (v[1] - h).abs() < 1e-3 && v[2].abs() < 1e-6,
            "{v:?}"
        );
        let w = m.embed("wal wal wal").unwrap();
        assert!((w[2] - 1.0).abs() < 1e-6);
        assert!(m.embed("").is_none());
    }

    #[test]
    fn a_model_directory_is_checked_and_errors_name_the_file() {
        let words = ["a", "[UNK]"];
        let empty = tempfile::tempdir().unwrap();
        let err = format!("{:#}", StaticModel::load(empty.path()).unwrap_err());
        assert!(err.contains("no *.safetensors"), "{err}");

        let truncated = {
            let mut t = safetensors(2, 4, |_, _| 1.0);
            t.truncate(t.len() - 3);
            t
        };
        let dir = model_dir(&words, truncated);
        let err = format!("{:#}", StaticModel::load(dir.path()).unwrap_err());
        assert!(
            err.contains("model.safetensors") && err.contains("does not fit"),
            "{err}"
        );

        let dir = model_dir(&words, b"junk".to_vec());
        assert!(StaticModel::load(dir.path()).is_err());

        let dir = model_dir(&words, safetensors(2, 4, |_, _| 1.0));
        std::fs::write(dir.path().join("tokenizer.json"), "{").unwrap();
        let err = format!("{:#}", StaticModel::load(dir.path()).unwrap_err());
        assert!(
            err.contains("tokenizer.json") && err.contains("not a tokenizer"),
            "{err}"
        );
    }
}
