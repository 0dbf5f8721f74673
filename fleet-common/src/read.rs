//! Reading a data file without trusting what is at its path.
//!
//! Whatever names a data file (a symlink into Kubernetes' `..data` layout, a
//! bind mount, a careless `ln -s /dev/zero kb.db`) is opened without
//! blocking, checked with `fstat` on the opened descriptor to be a regular
//! file after following symlinks, and read no further than its kind's size
//! limit. A FIFO, a socket or a device is refused at once instead of
//! blocking a reader forever or feeding it endless bytes, and a file that
//! grows past its limit while being read is refused too.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::{Error, Result};

/// Open `path` for reading if, once symlinks are followed, it is a regular
/// file of at most `max_bytes`. Never blocks on a FIFO (it is opened
/// non-blocking and refused by `fstat`).
pub fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::NotRegular {
            path: path.to_path_buf(),
            what: describe(&meta),
        });
    }
    if meta.len() > max_bytes {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            max_bytes,
        });
    }
    Ok((file, meta))
}

/// The whole content of the regular file at `path`, at most `max_bytes`.
pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path, max_bytes)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            max_bytes,
        });
    }
    Ok(bytes)
}

/// Hex SHA-256 of the regular file at `path`, read in chunks, refusing a
/// file over `max_bytes` (also one that grows past it while being read).
pub fn sha256_capped(path: &Path, max_bytes: u64) -> Result<String> {
    use sha2::Digest;
    let (file, _) = open_regular(path, max_bytes)?;
    let mut reader = file.take(max_bytes.saturating_add(1));
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    if total > max_bytes {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            max_bytes,
        });
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What a non-regular file is, for an error message.
fn describe(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_files_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens.yaml");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_capped(&f, 10).unwrap(), b"0123456789");
        let err = read_capped(&f, 9).unwrap_err().to_string();
        assert!(
            err.contains("tokens.yaml") && err.contains("9 bytes"),
            "{err}"
        );
        assert_eq!(
            sha256_capped(&f, 10).unwrap(),
            crate::sha256_hex(b"0123456789")
        );
        assert!(sha256_capped(&f, 9).is_err());
        // A symlink to a regular file is followed (Kubernetes' ..data layout).
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(read_capped(&link, 10).unwrap(), b"0123456789");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let zero = dir.path().join("kb.db");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let started = Instant::now();
        let err = sha256_capped(&zero, u64::MAX).unwrap_err().to_string();
        assert!(err.contains("character device"), "{err}");
        let err = read_capped(&zero, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("character device"), "{err}");

        let fifo = dir.path().join("tokens.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path and nothing else.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_capped(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = read_capped(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "nothing may block"
        );
    }
}
