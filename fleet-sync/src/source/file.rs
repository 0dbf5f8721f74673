//! `file:///abs/path` sources: a local file (or a mounted volume), identified
//! by device, inode, size and modification time, so an unchanged file is
//! neither re-read nor re-published.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::{Body, Download, Fetch, SourceError, Validators};

/// How much one [`next_chunk`] reads at most.
const CHUNK: usize = 256 * 1024;

/// A local file named by a `file://` URL with an absolute path.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// Parse `file:///abs/path` (percent-escapes are decoded; a host other
    /// than `localhost`, or a relative path, is refused).
    pub fn new(url: &str) -> Result<FileSource, SourceError> {
        let bad = |why: &str| SourceError::Permanent(format!("bad file source {url:?}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
        if !scheme.eq_ignore_ascii_case("file") {
            return Err(bad("not a file:// URL"));
        }
        if !rest.starts_with('/') && !rest.to_ascii_lowercase().starts_with("localhost/") {
            return Err(bad("the path must be absolute: file:///abs/path"));
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(
                "a file URL takes no query or fragment (escape '?' as %3F, '#' as %23)",
            ));
        }
        let path = parsed
            .to_file_path()
            .map_err(|()| bad("the path must be absolute: file:///abs/path"))?;
        if !path.is_absolute() || path.parent().is_none() {
            return Err(bad("the path must name a file: file:///abs/path"));
        }
        Ok(FileSource { path })
    }

    /// The local path this source reads.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Open the file and compare its identity with `have`. The identity is
    /// taken from the opened handle, so the validators always describe the
    /// bytes that are read, even if the path is replaced meanwhile.
    pub async fn fetch(&self, have: &Validators) -> Result<Fetch, SourceError> {
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| self.io_error("open", e))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| self.io_error("stat", e))?;
        if !meta.is_file() {
            return Err(SourceError::Permanent(format!(
                "{}: not a regular file",
                self.describe()
            )));
        }
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let etag = format!("{}-{}-{}-{}", meta.dev(), meta.ino(), meta.size(), mtime_ns);
        if have.etag.as_deref() == Some(etag.as_str()) {
            return Ok(Fetch::NotModified);
        }
        let last_modified = meta
            .modified()
            .ok()
            .map(|t| humantime::format_rfc3339_nanos(t).to_string());
        Ok(Fetch::Changed(Download {
            validators: Validators {
                etag: Some(etag),
                last_modified,
                version: None,
            },
            sha256_meta: None,
            size: Some(meta.size()),
            body: Body::File(file),
        }))
    }

    /// `file:///abs/path`.
    pub fn describe(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> SourceError {
        let msg = format!("{}: {what}: {e}", self.describe());
        match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound(msg),
            std::io::ErrorKind::PermissionDenied => SourceError::Permanent(msg),
            _ => SourceError::Transient(msg),
        }
    }
}

/// Read up to 256 KiB; `None` at the end of the file.
pub(crate) async fn next_chunk(f: &mut tokio::fs::File) -> Result<Option<Bytes>, SourceError> {
    let mut buf = BytesMut::with_capacity(CHUNK);
    loop {
        match f.read_buf(&mut buf).await {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(buf.freeze())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SourceError::Transient(format!("reading a file: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(dl: &mut Download) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = dl.next_chunk().await.unwrap() {
            assert!(!c.is_empty() && c.len() <= CHUNK);
            out.extend_from_slice(&c);
        }
        out
    }

    fn url_of(p: &std::path::Path) -> String {
        reqwest::Url::from_file_path(p).unwrap().to_string()
    }

    #[test]
    fn parses_urls() {
        let s = FileSource::new("file:///data/kb.db").unwrap();
        assert_eq!(s.path(), std::path::Path::new("/data/kb.db"));
        assert_eq!(s.describe(), "file:///data/kb.db");
        let s = FileSource::new("FILE:///data/my%20file.yaml").unwrap();
        assert_eq!(s.path(), std::path::Path::new("/data/my file.yaml"));
        let s = FileSource::new("file://localhost/etc/x").unwrap();
        assert_eq!(s.path(), std::path::Path::new("/etc/x"));
        for bad in [
            "file://relative/path",
            "file://data/kb.db",
            "file:relative",
            "file:///",
            "file:///a?b",
            "http:///a",
            "/abs/path",
        ] {
            assert!(
                matches!(FileSource::new(bad), Err(SourceError::Permanent(_))),
                "{bad} should be refused"
            );
        }
    }

    #[tokio::test]
    async fn fetch_not_modified_changed_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let src = FileSource::new(&url_of(&path)).unwrap();

        let Fetch::Changed(mut dl) = src.fetch(&Validators::default()).await.unwrap() else {
            panic!("expected Changed");
        };
        assert_eq!(dl.size, Some(data.len() as u64));
        assert!(dl.sha256_meta.is_none());
        assert!(dl.validators.etag.is_some() && dl.validators.last_modified.is_some());
        assert_eq!(read_all(&mut dl).await, data);
        let have = dl.validators.clone();

        assert!(matches!(
            src.fetch(&have).await.unwrap(),
            Fetch::NotModified
        ));

        // Replaced by rename (a new inode), as a publisher would.
        let tmp = dir.path().join("f.tmp");
        std::fs::write(&tmp, b"new contents").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let Fetch::Changed(mut dl) = src.fetch(&have).await.unwrap() else {
            panic!("expected Changed after replace");
        };
        assert_ne!(dl.validators, have);
        assert_eq!(read_all(&mut dl).await, b"new contents");

        // Through a symlink: the target's identity.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let via_link = FileSource::new(&url_of(&link)).unwrap();
        let Fetch::Changed(dl2) = via_link.fetch(&Validators::default()).await.unwrap() else {
            panic!("expected Changed");
        };
        assert_eq!(
            Some(dl2.validators.etag.clone().unwrap()),
            dl.validators.etag
        );

        let missing = FileSource::new(&url_of(&dir.path().join("nope"))).unwrap();
        assert!(matches!(
            missing.fetch(&Validators::default()).await,
            Err(SourceError::NotFound(_))
        ));

        let as_dir = FileSource::new(&url_of(dir.path())).unwrap();
        assert!(matches!(
            as_dir.fetch(&Validators::default()).await,
            Err(SourceError::Permanent(_))
        ));
    }

    #[tokio::test]
    async fn empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let src = FileSource::new(&url_of(&path)).unwrap();
        let Fetch::Changed(mut dl) = src.fetch(&Validators::default()).await.unwrap() else {
            panic!("expected Changed");
        };
        assert_eq!(dl.size, Some(0));
        assert!(dl.next_chunk().await.unwrap().is_none());
    }
}
