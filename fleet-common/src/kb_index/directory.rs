//! A read-only tantivy `Directory` over one [`Pack`]: each file is a slice
//! of the pack's bytes (of its memory map, for a pack file), handed to
//! tantivy without a copy. Writes, deletes and locks are refused or no-ops:
//! a reader never changes an index, and nothing else writes a pack.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::Directory;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{DirectoryLock, FileHandle, Lock, WatchCallback, WatchHandle, WritePtr};

use super::Pack;

#[derive(Debug, Clone)]
pub struct PackDirectory {
    pack: Arc<Pack>,
}

impl PackDirectory {
    pub fn new(pack: Pack) -> PackDirectory {
        PackDirectory {
            pack: Arc::new(pack),
        }
    }
}

fn read_only() -> Arc<io::Error> {
    Arc::new(io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the index is read-only",
    ))
}

impl Directory for PackDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        match self.pack.file(path) {
            Some(bytes) => Ok(Arc::new(bytes)),
            None => Err(OpenReadError::FileDoesNotExist(path.to_path_buf())),
        }
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError {
            io_error: read_only(),
            filepath: path.to_path_buf(),
        })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.pack.file(path).is_some())
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::IoError {
            io_error: read_only(),
            filepath: path.to_path_buf(),
        })
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.pack
            .file(path)
            .map(|b| b.as_slice().to_vec())
            .ok_or_else(|| OpenReadError::FileDoesNotExist(PathBuf::from(path)))
    }

    fn atomic_write(&self, _path: &Path, _data: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the index is read-only",
        ))
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    /// Readers take tantivy's meta lock while they open segments, to keep a
    /// writer from deleting files under them; a pack has no writer.
    fn acquire_lock(&self, _lock: &Lock) -> Result<DirectoryLock, LockError> {
        Ok(DirectoryLock::from(Box::new(())))
    }

    fn watch(&self, _watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}
