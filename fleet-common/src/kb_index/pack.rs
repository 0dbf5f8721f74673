//! The pack: every file of a tantivy index in one byte string, checksummed.
//!
//! Layout (integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 0..8 | magic `FLEETIDX` |
//! | 8..12 | format version ([`super::FORMAT_VERSION`]) |
//! | 12..16 | CRC-32 (IEEE) of every byte from 32 to the end |
//! | 16..24 | length of the whole pack |
//! | 24..28 | length of the table of contents |
//! | 28..32 | zero |
//! | 32.. | table of contents, JSON: `{"docs": N, "files": [{"name", "offset", "len"}]}` |
//! | then | the files' bytes; offsets count from the end of the table of contents |
//!
//! A pack is checked as a stream ([`Checker`], no buffer of its size) before
//! anything trusts it, then mapped and parsed ([`Pack`]) for tantivy to read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::directory::OwnedBytes;

use super::{FORMAT_VERSION, invalid};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"FLEETIDX";
pub(crate) const HEADER: usize = 32;
/// A table of contents larger than this is not one of ours.
const MAX_TOC: usize = 16 << 20;

/// The table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toc {
    /// Documents (chunks) in the index.
    pub docs: u64,
    pub files: Vec<TocEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    pub name: String,
    pub offset: u64,
    pub len: u64,
}

/// What a checked pack holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// Bytes of the whole pack.
    pub len: u64,
    pub docs: u64,
    pub files: usize,
}

struct Header {
    crc: u32,
    len: u64,
    toc_len: usize,
}

fn parse_header(b: &[u8]) -> Result<Header> {
    if b.len() < HEADER || &b[..8] != MAGIC {
        return Err(invalid("not an index pack (bad magic)"));
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(invalid(format!(
            "pack format {version}, this build reads {FORMAT_VERSION}"
        )));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&b[16..24]);
    let header = Header {
        crc: u32_at(12),
        len: u64::from_le_bytes(len),
        toc_len: u32_at(24) as usize,
    };
    if header.toc_len > MAX_TOC || header.len < (HEADER + header.toc_len) as u64 {
        return Err(invalid("pack header is inconsistent"));
    }
    Ok(header)
}

/// Parse and bound-check a table of contents for a body of `body_len` bytes.
fn parse_toc(bytes: &[u8], body_len: u64) -> Result<Toc> {
    let toc: Toc =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("table of contents: {e}")))?;
    let mut names = std::collections::HashSet::new();
    for f in &toc.files {
        let end = f.offset.checked_add(f.len);
        if end.is_none_or(|end| end > body_len) || !names.insert(f.name.as_str()) {
            return Err(invalid(format!(
                "table of contents: bad entry {:?}",
                f.name
            )));
        }
    }
    if !names.contains("meta.json") {
        return Err(invalid("table of contents: no meta.json"));
    }
    Ok(toc)
}

/// Write `buf` to a pack file in page-sized writes. The page cache then
/// holds the file in small folios, so a search that reads a few bytes of
/// the mapped pack maps a few pages, not the up to 2 MiB folio that one
/// large write leaves around them (which would show as resident memory).
pub(crate) fn write_paged(out: &mut dyn Write, buf: &[u8]) -> io::Result<()> {
    for page in buf.chunks(4096) {
        out.write_all(page)?;
    }
    Ok(())
}

/// Write the files (name, path) as a pack into `out`, from its current
/// position (which must be 0).
pub fn write(files: &[(String, PathBuf)], docs: u64, out: &mut File) -> Result<PackInfo> {
    let io = |p: &Path, e: io::Error| Error::io(p, e);
    let mut entries = Vec::with_capacity(files.len());
    let mut offset = 0u64;
    for (name, path) in files {
        let len = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
        entries.push(TocEntry {
            name: name.clone(),
            offset,
            len,
        });
        offset += len;
    }
    let toc = serde_json::to_vec(&Toc {
        docs,
        files: entries,
    })
    .map_err(invalid)?;
    let len = (HEADER + toc.len()) as u64 + offset;
    let out_path = Path::new("index pack");
    out.write_all(&[0u8; HEADER]).map_err(|e| io(out_path, e))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&toc);
    write_paged(out, &toc).map_err(|e| io(out_path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    for (_, path) in files {
        let mut f = File::open(path).map_err(|e| io(path, e))?;
        loop {
            let n = f.read(&mut buf).map_err(|e| io(path, e))?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            write_paged(out, &buf[..n]).map_err(|e| io(out_path, e))?;
        }
    }
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&crc.finalize().to_le_bytes());
    header[16..24].copy_from_slice(&len.to_le_bytes());
    header[24..28].copy_from_slice(&(toc.len() as u32).to_le_bytes());
    out.seek(SeekFrom::Start(0))
        .and_then(|_| out.write_all(&header))
        .and_then(|()| out.seek(SeekFrom::End(0)).map(|_| ()))
        .map_err(|e| io(out_path, e))?;
    Ok(PackInfo {
        len,
        docs,
        files: files.len(),
    })
}

/// Checks a pack streamed through it (`io::copy` into it, then
/// [`Checker::finish`]): header, length, CRC and table of contents.
#[derive(Default)]
pub struct Checker {
    head: Vec<u8>,
    header: Option<Header>,
    toc: Vec<u8>,
    crc: crc32fast::Hasher,
    seen: u64,
}

impl Write for Checker {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        if self.header.is_none() {
            let take = (HEADER - self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            self.seen += take as u64;
            if self.head.len() == HEADER {
                let header = parse_header(&self.head).map_err(io::Error::other)?;
                self.header = Some(header);
            }
        }
        if let Some(h) = &self.header
            && !buf.is_empty()
        {
            self.seen += buf.len() as u64;
            if self.seen > h.len {
                return Err(io::Error::other(invalid("longer than its header says")));
            }
            self.crc.update(buf);
            let take = (h.toc_len - self.toc.len()).min(buf.len());
            self.toc.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Checker {
    pub fn new() -> Checker {
        Checker::default()
    }

    /// The verdict on everything written so far.
    pub fn finish(self) -> Result<PackInfo> {
        let Some(h) = self.header else {
            return Err(invalid("truncated pack (no header)"));
        };
        if self.seen != h.len {
            return Err(invalid(format!(
                "truncated pack: {} of {} bytes",
                self.seen, h.len
            )));
        }
        if self.crc.finalize() != h.crc {
            return Err(invalid("checksum mismatch (corrupt index)"));
        }
        let toc = parse_toc(&self.toc, h.len - (HEADER + h.toc_len) as u64)?;
        Ok(PackInfo {
            len: h.len,
            docs: toc.docs,
            files: toc.files.len(),
        })
    }
}

/// Check the pack in a file from its start, reading it (not mapping it:
/// pages read here stay out of the process's resident memory).
pub fn check_file(file: &File, path: &Path) -> Result<PackInfo> {
    let mut checker = Checker::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf, offset)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        checker
            .write_all(&buf[..n])
            .map_err(|e| match e.downcast::<Error>() {
                Ok(err) => err,
                Err(e) => Error::io(path, e),
            })?;
    }
    checker.finish()
}

/// A checked pack, in memory or mapped, parsed for reading.
#[derive(Clone)]
pub struct Pack {
    bytes: OwnedBytes,
    toc: Toc,
    files: HashMap<PathBuf, Range<usize>>,
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack")
            .field("len", &self.bytes.len())
            .field("toc", &self.toc)
            .finish()
    }
}

/// A read-only memory map as tantivy's byte holder.
struct Mapped(memmap2::Mmap);

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

// SAFETY: the bytes of a mapping do not move while it lives; `Mapped` owns
// the mapping and only gives out shared slices of it.
unsafe impl stable_deref_trait::StableDeref for Mapped {}

impl Pack {
    /// Check the pack file at `path` ([`check_file`]), then map it. The file
    /// must never be written in place (packs are only ever renamed into
    /// place), or readers of the mapping could see it change.
    pub fn open_file(path: &Path) -> Result<Pack> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Pack::open(&file, path)
    }

    /// [`Pack::open_file`] of a file already open (`path` names it in errors).
    pub fn open(file: &File, path: &Path) -> Result<Pack> {
        check_file(file, path)?;
        // SAFETY: see above; a pack file is immutable once published.
        let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| Error::io(path, e))?;
        // Searches touch few, scattered pages: no read-ahead, no fault-around.
        let _ = map.advise(memmap2::Advice::Random);
        Pack::parse(OwnedBytes::new(Mapped(map)))
    }

    /// A pack held in memory, checked.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Pack> {
        let mut checker = Checker::new();
        checker
            .write_all(&bytes)
            .map_err(|e| match e.downcast::<Error>() {
                Ok(err) => err,
                Err(e) => invalid(e),
            })?;
        checker.finish()?;
        Pack::parse(OwnedBytes::new(bytes))
    }

    fn parse(bytes: OwnedBytes) -> Result<Pack> {
        let h = parse_header(bytes.as_slice())?;
        if bytes.len() as u64 != h.len {
            return Err(invalid("pack length does not match its header"));
        }
        let body = HEADER + h.toc_len;
        let toc = parse_toc(&bytes.as_slice()[HEADER..body], h.len - body as u64)?;
        let files = toc
            .files
            .iter()
            .map(|f| {
                let start = body + f.offset as usize;
                (PathBuf::from(&f.name), start..start + f.len as usize)
            })
            .collect();
        Ok(Pack { bytes, toc, files })
    }

    /// The pack's header (magic, version, CRC, lengths): equal headers mean
    /// the same pack.
    pub fn header(&self) -> &[u8] {
        &self.bytes.as_slice()[..HEADER]
    }

    /// Documents in the index, as the table of contents says.
    pub fn docs(&self) -> u64 {
        self.toc.docs
    }

    /// One file of the index, without copying.
    pub fn file(&self, name: &Path) -> Option<OwnedBytes> {
        self.files.get(name).map(|r| self.bytes.slice(r.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> Vec<u8> {
        let a = dir.join("meta.json");
        let b = dir.join("x.idx");
        std::fs::write(&a, b"{\"meta\":1}").unwrap();
        std::fs::write(&b, vec![7u8; 3000]).unwrap();
        let out = dir.join("p");
        let mut f = File::create(&out).unwrap();
        let files = vec![("meta.json".to_string(), a), ("x.idx".to_string(), b)];
        let info = write(&files, 42, &mut f).unwrap();
        drop(f);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(info.len, bytes.len() as u64);
        bytes
    }

    #[test]
    fn a_pack_round_trips_and_any_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample(dir.path());
        let pack = Pack::from_vec(bytes.clone()).unwrap();
        assert_eq!(pack.docs(), 42);
        assert_eq!(
            pack.file(Path::new("meta.json")).unwrap().as_slice(),
            b"{\"meta\":1}"
        );
        assert_eq!(pack.file(Path::new("x.idx")).unwrap().len(), 3000);
        assert!(pack.file(Path::new("nope")).is_none());
        let path = dir.path().join("p");
        assert_eq!(Pack::open_file(&path).unwrap().docs(), 42);

        // Every single-byte change is caught, header or body.
        for i in (0..bytes.len())
            .step_by(97)
            .chain([0, 9, 13, 17, 25, bytes.len() - 1])
        {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(Pack::from_vec(bad).is_err(), "flip at {i} accepted");
        }
        // Truncated, extended, empty.
        assert!(Pack::from_vec(bytes[..bytes.len() - 1].to_vec()).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Pack::from_vec(longer).is_err());
        assert!(Pack::from_vec(Vec::new()).is_err());
        std::fs::write(&path, &bytes[..100]).unwrap();
        let err = Pack::open_file(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
