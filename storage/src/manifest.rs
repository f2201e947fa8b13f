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

use crate::block::BlockMeta;
use crate::error::{Error, Result};

pub const MANIFEST_FILE: &str = "manifest.json";
const TYPE: &str = "quiver-manifest";
const VERSION: u32 = 1;

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
    /// Reads the manifest; a store without one is empty.
    pub async fn load(store: &Arc<dyn ObjectStore>) -> Result<Self> {
        let bytes = match store.get(&Path::from(MANIFEST_FILE)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok(Manifest {
                    next_seq: 1,
                    ..Default::default()
                });
            }
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
        if env.version != VERSION {
            return Err(corrupt(format!("unsupported version {}", env.version)));
        }
        let body = serde_json::to_vec(&env.body).map_err(json)?;
        if crc32c::crc32c(&body) != env.crc32c {
            return Err(corrupt("checksum mismatch".into()));
        }
        serde_json::from_value(env.body).map_err(json)
    }

    /// Replaces the manifest in one put (atomic on every `object_store` backend).
    pub async fn store(&self, store: &Arc<dyn ObjectStore>) -> Result<()> {
        let json = |e| Error::Json {
            what: MANIFEST_FILE.into(),
            source: e,
        };
        let body = serde_json::to_value(self).map_err(json)?;
        let crc32c = crc32c::crc32c(&serde_json::to_vec(&body).map_err(json)?);
        let env = Envelope {
            ty: TYPE.into(),
            version: VERSION,
            crc32c,
            body,
        };
        let bytes = serde_json::to_vec_pretty(&env).map_err(json)?;
        store
            .put(&Path::from(MANIFEST_FILE), PutPayload::from(bytes))
            .await?;
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
        assert_eq!(Manifest::load(&store).await.unwrap().blocks.len(), 0);
        let m = Manifest {
            next_seq: 3,
            next_series_id: 10,
            blocks: vec![],
        };
        m.store(&store).await.unwrap();
        assert_eq!(Manifest::load(&store).await.unwrap(), m);

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
