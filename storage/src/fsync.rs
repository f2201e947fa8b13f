//! Making files and directory entries durable. A rename or a new file is only on disk once its
//! directory is synced, and a file's bytes once the file is; `object_store`'s local file system
//! does neither, so the engine does it for the files it writes there (blocks, the manifest) as
//! well as for the WAL.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Every path synced, in order (tests only; tests run in parallel, so each looks only at the
/// paths under its own folder).
#[cfg(test)]
pub(crate) static SYNCED: parking_lot::Mutex<Vec<PathBuf>> = parking_lot::const_mutex(Vec::new());

/// Syncs a file's contents and metadata.
pub fn sync_file(path: &Path) -> Result<()> {
    #[cfg(test)]
    SYNCED.lock().push(path.to_path_buf());
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    // A folder is synced as a file is: opened (read-only) and fsynced.
    sync_file(dir)
}

/// Makes files just put into a local block store durable: each file, then each folder it
/// created or renamed it into, deepest first, up to the store's `root` (so a folder is on disk
/// before the folder that names it). One fsync per file and per folder, however many files
/// share a folder.
pub async fn sync_put(root: &Path, files: &[object_store::path::Path]) -> Result<()> {
    let root = root.to_path_buf();
    let files: Vec<PathBuf> = files.iter().map(|f| root.join(f.as_ref())).collect();
    tokio::task::spawn_blocking(move || {
        let mut dirs = BTreeSet::new();
        for file in &files {
            sync_file(file)?;
            for dir in file.ancestors().skip(1) {
                if !dir.starts_with(&root) {
                    break;
                }
                dirs.insert(dir.to_path_buf());
            }
        }
        // In reverse order a folder comes before its parent.
        for dir in dirs.iter().rev() {
            sync_dir(dir)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Internal(format!("fsync task failed: {e}")))?
}
