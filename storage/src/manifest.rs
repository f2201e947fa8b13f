//! The manifest: the list of live blocks, replaced as a whole by one atomic put. A block that
//! is written but not (yet) named here does not exist for readers, so a crash between the block
//! write and the manifest update leaves no half state; such orphans are deleted at open.
//!
//! On disk (`manifest.json` at the root of the block store):
//! `{"type":"quiver-manifest","version":1,"crc32c":<crc of body's JSON>,"body":{...}}`.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::block::{BlockMeta, is_block_id};
use crate::error::{Error, Result};

pub const MANIFEST_FILE: &str = "manifest.json";
const TYPE: &str = "quiver-manifest";
/// Version 2 is written while a live block holds native histograms (an older reader would
/// miss them), version 1 otherwise; both are read.
const VERSION: u32 = 1;
const VERSION_HISTOGRAMS: u32 = 2;

/// What the manifest says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The next block sequence number to hand out.
    pub next_seq: u64,
    /// Series ids below this were handed out once and are never handed out again.
    pub next_series_id: u64,
    pub blocks: Vec<BlockMeta>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    ty: String,
    version: u32,
    crc32c: u32,
    body: serde_json::Value,
}

impl Manifest {
    /// Reads the manifest at open. A store without one is a fresh database only if it holds no
    /// block folders either; then an empty manifest is written at once, so that from now on a
    /// missing manifest always means damage. A missing manifest next to blocks, or one that
    /// cannot be read, refuses the open: reading it as empty would delete every block as an
    /// orphan. `local` is the store's folder when it is a local file system.
    pub async fn open(
        store: &Arc<dyn ObjectStore>,
        local: Option<&std::path::Path>,
    ) -> Result<Self> {
        let location = match local {
            Some(dir) => dir.join(MANIFEST_FILE).display().to_string(),
            None => format!("{MANIFEST_FILE} in {store}"),
        };
        match Self::load(store).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => {
                let listing = store.list_with_delimiter(None).await?;
                let blocks: Vec<String> = listing
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename())
                    .filter(|n| is_block_id(n))
                    .map(str::to_string)
                    .collect();
                if let Some(first) = blocks.first() {
                    return Err(Error::Manifest(format!(
                        "the manifest {location} is missing, but the block store holds {} \
                         block folder(s) ({first}, ...). Quiver will not start: without the \
                         manifest every block would be deleted as an orphan. Restore \
                         {MANIFEST_FILE} from a backup, or move the block folders out of the \
                         store to start an empty database.",
                        blocks.len()
                    )));
                }
                let fresh = Manifest {
                    next_seq: 1,
                    ..Default::default()
                };
                fresh.store(store, local).await?;
                Ok(fresh)
            }
            Err(e) => Err(Error::Manifest(format!(
                "the manifest {location} cannot be read: {}. Quiver will not start: without \
                 the manifest every block would be deleted as an orphan. Restore \
                 {MANIFEST_FILE} from a backup (or fix what keeps it from being read) and start \
                 again.",
                crate::error::chain(&e)
            ))),
        }
    }

    /// Reads the manifest; `None` when the store has none.
    pub async fn load(store: &Arc<dyn ObjectStore>) -> Result<Option<Self>> {
        let bytes = match store.get(&Path::from(MANIFEST_FILE)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let json = |e| Error::Json {
            what: MANIFEST_FILE.into(),
            source: e,
        };
        let env: Envelope = serde_json::from_slice(&bytes).map_err(json)?;
        let corrupt = |detail: String| Error::Corrupt {
            what: MANIFEST_FILE.into(),
            detail,
        };
        if env.ty != TYPE {
            return Err(corrupt(format!("type is {:?}, not {TYPE:?}", env.ty)));
        }
        if env.version != VERSION && env.version != VERSION_HISTOGRAMS {
            return Err(corrupt(format!("unsupported version {}", env.version)));
        }
        let body = serde_json::to_vec(&env.body).map_err(json)?;
        if crc32c::crc32c(&body) != env.crc32c {
            return Err(corrupt("checksum mismatch".into()));
        }
        serde_json::from_value(env.body).map_err(json).map(Some)
    }

    /// Replaces the manifest in one put (atomic on every `object_store` backend); in a local
    /// store (`local`), the file and its folder are synced before this returns, so nothing
    /// that depends on the new manifest (deleting WAL segments, replaced blocks) runs ahead
    /// of it.
    pub async fn store(
        &self,
        store: &Arc<dyn ObjectStore>,
        local: Option<&std::path::Path>,
    ) -> Result<()> {
        let json = |e| Error::Json {
            what: MANIFEST_FILE.into(),
            source: e,
        };
        let body = serde_json::to_value(self).map_err(json)?;
        let crc32c = crc32c::crc32c(&serde_json::to_vec(&body).map_err(json)?);
        let env = Envelope {
            ty: TYPE.into(),
            version: if self.blocks.iter().any(|b| b.num_histograms > 0) {
                VERSION_HISTOGRAMS
            } else {
                VERSION
            },
            crc32c,
            body,
        };
        let bytes = serde_json::to_vec_pretty(&env).map_err(json)?;
        let path = Path::from(MANIFEST_FILE);
        store.put(&path, PutPayload::from(bytes)).await?;
        if let Some(root) = local {
            crate::fsync::sync_put(root, &[path]).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn manifest_round_trips_and_detects_tampering() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        assert_eq!(Manifest::load(&store).await.unwrap(), None);
        let m = Manifest {
            next_seq: 3,
            next_series_id: 10,
            blocks: vec![],
        };
        m.store(&store, None).await.unwrap();
        assert_eq!(Manifest::load(&store).await.unwrap(), Some(m));

        let raw = store
            .get(&Path::from(MANIFEST_FILE))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let tampered = String::from_utf8(raw.to_vec())
            .unwrap()
            .replace("\"next_seq\": 3", "\"next_seq\": 4");
        store
            .put(
                &Path::from(MANIFEST_FILE),
                PutPayload::from(tampered.into_bytes()),
            )
            .await
            .unwrap();
        let err = Manifest::load(&store).await.unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
