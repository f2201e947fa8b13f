//! One writer per block store: a lease object (`lease.json`: owner and expiry) taken with a
//! conditional create, renewed and taken over with a conditional update (the ETag read), and
//! deleted by a clean shutdown. A second server on the same bucket prefix finds a live lease
//! and refuses to start, so two writers never both compact or delete; a lease whose holder
//! died is taken over once it expires.
//!
//! Object stores without conditional writes (a local folder: `object_store`'s local store has
//! no conditional update) get no lease; a local data folder is one machine's anyway.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::maintenance::now_ms;

/// The lease object, at the root of the block store (beside `manifest.json`).
pub const LEASE_FILE: &str = "lease.json";

/// Why the lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "another Quiver ({owner}) writes to this block store: its lease runs until {until} \
         (give each server a prefix of its own; a lease whose server died is taken over when it \
         expires)"
    )]
    Held { owner: String, until: String },
    #[error("the lease was taken by another writer ({0}): this server must stop writing")]
    Lost(String),
    #[error("the lease object {LEASE_FILE} is not Quiver's: {0}")]
    Foreign(String),
    #[error("the block store: {0}")]
    Store(#[from] object_store::Error),
}

#[derive(Debug, Serialize, Deserialize)]
struct Body {
    owner: String,
    expires_ms: i64,
}

/// A held lease.
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    owner: String,
    ttl: Duration,
    /// The version written last (the condition of the next renewal).
    version: parking_lot::Mutex<UpdateVersion>,
    /// When the lease was last written (taken or renewed), and whether another writer took it.
    last_written: parking_lot::Mutex<std::time::Instant>,
    lost: std::sync::atomic::AtomicBool,
}

impl Lease {
    /// Takes the lease for `owner` for `ttl`: creates it, or takes over an expired one. `None`
    /// when the store has no conditional writes (no lease is kept).
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        owner: String,
        ttl: Duration,
    ) -> Result<Option<Lease>, LeaseError> {
        let path = Path::from(LEASE_FILE);
        let create = PutOptions::from(PutMode::Create);
        let written = match store.put_opts(&path, body(&owner, ttl), create).await {
            Ok(r) => r,
            Err(object_store::Error::NotImplemented { .. }) => return Ok(None),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let got = store.get(&path).await?;
                let seen = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await?;
                let held: Body = serde_json::from_slice(&bytes)
                    .map_err(|e| LeaseError::Foreign(e.to_string()))?;
                if held.expires_ms > now_ms() {
                    return Err(LeaseError::Held {
                        owner: held.owner,
                        until: rfc3339(held.expires_ms),
                    });
                }
                tracing::warn!(
                    previous = %held.owner,
                    "taking over an expired lease of the block store"
                );
                let update = PutOptions::from(PutMode::Update(seen));
                match store.put_opts(&path, body(&owner, ttl), update).await {
                    Ok(r) => r,
                    Err(object_store::Error::Precondition { .. }) => {
                        return Err(LeaseError::Held {
                            owner: "a server that took it at the same moment".into(),
                            until: "its renewal".into(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Some(Lease {
            store,
            owner,
            ttl,
            version: parking_lot::Mutex::new(UpdateVersion {
                e_tag: written.e_tag,
                version: written.version,
            }),
            last_written: parking_lot::Mutex::new(std::time::Instant::now()),
            lost: Default::default(),
        }))
    }

    /// Whether the lease is surely still ours: not taken by another writer, and written within
    /// two thirds of its time to live (one renewal may have failed; another server can take it
    /// over only once the whole time to live has passed).
    pub fn is_fresh(&self) -> bool {
        !self.lost.load(std::sync::atomic::Ordering::Relaxed)
            && self.last_written.lock().elapsed() < self.ttl * 2 / 3
    }

    /// How often to renew: a third of the time to live, so two renewals may fail in a row.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Extends the lease; `Lost` when another writer holds it now.
    pub async fn renew(&self) -> Result<(), LeaseError> {
        let path = Path::from(LEASE_FILE);
        let seen = self.version.lock().clone();
        let update = PutOptions::from(PutMode::Update(seen));
        match self
            .store
            .put_opts(&path, body(&self.owner, self.ttl), update)
            .await
        {
            Ok(r) => {
                *self.version.lock() = UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                };
                *self.last_written.lock() = std::time::Instant::now();
                Ok(())
            }
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. }) => {
                self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(LeaseError::Lost(self.owner.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the lease up (a clean shutdown), so the next server need not wait for it to expire.
    /// Only a lease still ours is deleted: not one another writer took, nor one that may have
    /// expired since it was last written (the store has no conditional delete).
    pub async fn release(&self) -> Result<(), LeaseError> {
        if self.lost.load(std::sync::atomic::Ordering::Relaxed)
            || self.last_written.lock().elapsed() >= self.ttl
        {
            return Ok(());
        }
        self.store.delete(&Path::from(LEASE_FILE)).await?;
        Ok(())
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("owner", &self.owner)
            .field("ttl", &self.ttl)
            .field("fresh", &self.is_fresh())
            .finish()
    }
}

fn body(owner: &str, ttl: Duration) -> PutPayload {
    let b = Body {
        owner: owner.to_string(),
        expires_ms: now_ms().saturating_add(ttl.as_millis() as i64),
    };
    PutPayload::from(serde_json::to_vec(&b).expect("a lease serializes"))
}

/// `2026-12-05T10:00:00Z`, for messages.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_times_read_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_an_expired_lease_is_taken_over() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let a = Lease::acquire(store.clone(), "a".into(), Duration::from_secs(60))
            .await
            .unwrap()
            .expect("the in-memory store has conditional writes");
        let refused = Lease::acquire(store.clone(), "b".into(), Duration::from_secs(60)).await;
        assert!(matches!(refused, Err(LeaseError::Held { ref owner, .. }) if owner == "a"));
        a.renew().await.unwrap();
        assert!(a.is_fresh());
        a.release().await.unwrap();
        // Released: the next one takes it at once; with a lease already expired, a third takes
        // it over and the second's renewal finds it lost.
        let b = Lease::acquire(store.clone(), "b".into(), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        let c = Lease::acquire(store.clone(), "c".into(), Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert!(!b.is_fresh(), "a lease with no time to live is never fresh");
        assert!(matches!(b.renew().await, Err(LeaseError::Lost(_))));
        // The one that lost it does not delete the new holder's lease.
        b.release().await.unwrap();
        c.renew().await.unwrap();
    }
}
