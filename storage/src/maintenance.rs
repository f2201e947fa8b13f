//! Background work that rewrites the manifest: cutting the head into blocks, compacting blocks
//! into larger non-overlapping ones, and dropping blocks past retention. One at a time (the
//! manifest lock); each ends with one atomic manifest put, and only then deletes what it replaced.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::block::{
    BLOCK_FILES, BlockMeta, BlockReader, EncodedBlock, SeriesSamples, encode_block, is_block_id,
    put_block,
};
use crate::db::{Db, Run, merge_runs};
use crate::error::{Error, Result};
use crate::head::Head;
use crate::histogram::FloatHistogram;
use crate::labels::{Labels, SeriesId, Timestamp};
use crate::manifest::{MANIFEST_FILE, Manifest};

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MaintenanceReport {
    pub blocks_written: usize,
    pub blocks_compacted: usize,
    pub blocks_deleted: usize,
    pub series_forgotten: usize,
}

impl Db {
    /// Whether the head is due to be cut: it spans a block duration, holds too many samples,
    /// or an earlier cut is still unfinished.
    pub fn head_due(&self) -> bool {
        let state = self.state.read();
        let span = match (state.head.min_time(), state.head.max_time()) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        !state.frozen.is_empty()
            || span >= self.opts.block_duration_ms
            || state.head.num_samples() >= self.opts.max_head_samples
    }

    /// One pass: cut the head if due (or if `force`), compact, apply retention.
    pub async fn maintain(self: &Arc<Self>, force_flush: bool) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        if force_flush || self.head_due() {
            report.blocks_written = self.flush().await?;
        }
        report.blocks_compacted = self.compact(now_ms()).await?;
        let (deleted, forgotten) = self.apply_retention(now_ms()).await?;
        report.blocks_deleted = deleted;
        report.series_forgotten = forgotten;
        self.delete_retired().await?;
        Ok(report)
    }

    /// Cuts the whole head into blocks (one per aligned block-duration window it touches),
    /// puts them, names them in the manifest, then drops the WAL segments they cover.
    /// Answers how many blocks were written.
    pub async fn flush(self: &Arc<Self>) -> Result<usize> {
        let mut manifest = self.maintenance.lock().await;
        let wal_seq = {
            let _gate = self.append_gate.write().await;
            let wal_seq = self.wal.roll().await.map_err(|_| Error::ShuttingDown)??;
            let mut state = self.state.write();
            if !state.head.is_empty() {
                let head = std::mem::take(&mut state.head);
                state.frozen.push(Arc::new(head));
            }
            wal_seq
        };
        let frozen: Vec<Arc<Head>> = self.state.read().frozen.clone();
        let mut written = 0;
        for head in frozen {
            written += self.persist_head(&mut manifest, head).await?;
        }
        {
            // Series kept without a written definition (deferred samples held them) are in
            // blocks now, which define them at open: appends need not carry them any more.
            let mut guard = self.state.write();
            let state = &mut *guard;
            state.unconfirmed.retain(|id, in_flight| {
                *in_flight > 0
                    || !state
                        .blocks
                        .iter()
                        .any(|b| b.has(*id, Timestamp::MIN, Timestamp::MAX))
            });
        }
        self.wal.delete_before(wal_seq)?;
        Ok(written)
    }

    async fn persist_head(
        self: &Arc<Self>,
        manifest: &mut Manifest,
        head: Arc<Head>,
    ) -> Result<usize> {
        let labels = self.labels_of(head.series().map(|(id, _)| *id));
        let duration = self.opts.block_duration_ms;
        let first_seq = manifest.next_seq;
        let to_encode = head.clone();
        let blocks = run_blocking(move || {
            let decoded: Vec<Decoded> = to_encode
                .series()
                .map(|(id, s)| {
                    let (t, v) = s.samples();
                    let (mut ht, mut hs) = (Vec::new(), Vec::new());
                    s.histograms_into(Timestamp::MIN, Timestamp::MAX, &mut ht, &mut hs);
                    (*id, t, v, ht, hs)
                })
                .collect();
            // Each series' samples split by aligned window.
            let mut windows: BTreeMap<i64, Vec<SeriesSamples<'_>>> = BTreeMap::new();
            for (id, ts, vs, hts, hs) in &decoded {
                let Some(labels) = labels.get(id) else {
                    continue;
                };
                let float_windows = split_windows(ts, duration);
                let hist_windows = split_windows(hts, duration);
                let mut all: Vec<i64> = float_windows
                    .keys()
                    .chain(hist_windows.keys())
                    .copied()
                    .collect();
                all.sort_unstable();
                all.dedup();
                for w in all {
                    let f = float_windows.get(&w).cloned().unwrap_or(0..0);
                    let h = hist_windows.get(&w).cloned().unwrap_or(0..0);
                    windows.entry(w).or_default().push(SeriesSamples {
                        id: *id,
                        labels,
                        timestamps: &ts[f.clone()],
                        values: &vs[f],
                        hist_timestamps: &hts[h.clone()],
                        histograms: &hs[h],
                    });
                }
            }
            let mut out = Vec::new();
            for (i, series) in windows.into_values().enumerate() {
                out.extend(encode_block(first_seq + i as u64, 0, series)?);
            }
            Ok(out)
        })
        .await?;
        manifest.next_seq = first_seq + blocks.len() as u64;
        let n = blocks.len();
        self.commit(manifest, blocks, &[], Some(&head)).await?;
        self.metrics.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Puts new blocks, then replaces the manifest (adding `new`, removing `replaced`), then
    /// swaps the open blocks (and drops the frozen head they came from), then deletes the
    /// replaced blocks' files. A crash before the manifest put leaves orphans that the next
    /// open deletes; a crash after it leaves replaced files that the next open deletes too.
    async fn commit(
        &self,
        manifest: &mut Manifest,
        new: Vec<EncodedBlock>,
        replaced: &[BlockMeta],
        from_head: Option<&Arc<Head>>,
    ) -> Result<()> {
        let store = &self.opts.block_store;
        let local = self.opts.local_block_dir.as_deref();
        self.check_lease()?;
        for b in &new {
            put_block(store, b).await?;
        }
        if let Some(root) = local
            && !new.is_empty()
        {
            // On disk before the manifest names them (`object_store` does not sync local puts).
            let files: Vec<_> = new.iter().flat_map(|b| b.meta.paths()).collect();
            crate::fsync::sync_put(root, &files).await?;
        }
        // Checked again right before the manifest is replaced: the blocks' puts took time.
        self.check_lease()?;
        let mut next = manifest.clone();
        next.blocks
            .retain(|b| !replaced.iter().any(|r| r.id == b.id));
        next.blocks.extend(new.iter().map(|b| b.meta.clone()));
        next.blocks.sort_by_key(|b| b.seq);
        next.next_series_id = self.state.read().registry.next_id();
        next.store(store, local).await?;
        *manifest = next;
        let mut readers = Vec::with_capacity(new.len());
        for b in new {
            readers.push(Arc::new(BlockReader::open(store.clone(), b.meta).await?.0));
        }
        {
            let mut state = self.state.write();
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.blocks)
                .into_iter()
                .partition(|b| replaced.iter().any(|r| r.id == b.meta().id));
            state.blocks = kept;
            state.retired.extend(gone);
            state.blocks.extend(readers);
            state.blocks.sort_by_key(|b| b.meta().seq);
            if let Some(head) = from_head {
                state.frozen.retain(|f| !Arc::ptr_eq(f, head));
            }
        }
        self.delete_retired().await
    }

    /// Refuses to write the block store unless this server's lease (if it has one) is fresh:
    /// a server whose renewals failed for a while may have lost it to another writer.
    fn check_lease(&self) -> Result<()> {
        match self.lease.get() {
            Some(lease) if !lease.is_fresh() => Err(Error::Retry(
                "the block store's lease was not renewed lately (another writer may hold it); \
                 nothing is written until it is"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// Deletes the files of replaced blocks that no scan reads any more (a scan streaming a
    /// block's file holds its reader; the next maintenance run deletes what it left).
    pub(crate) async fn delete_retired(&self) -> Result<()> {
        let unused: Vec<Arc<BlockReader>> = {
            let mut state = self.state.write();
            let (unused, busy) = std::mem::take(&mut state.retired)
                .into_iter()
                .partition(|b| Arc::strong_count(b) == 1);
            state.retired = busy;
            unused
        };
        for b in unused {
            delete_block(
                &self.opts.block_store,
                self.opts.local_block_dir.as_deref(),
                &b.meta().id,
            )
            .await?;
        }
        Ok(())
    }

    /// Merges, for each compaction range (smallest first), every aligned window holding two or
    /// more blocks into one block. Windows larger than the block duration wait until they are
    /// over. Every block inside a window takes part, so a merged block never hides newer data.
    /// Answers how many blocks were merged away.
    pub async fn compact(self: &Arc<Self>, now: Timestamp) -> Result<usize> {
        let mut manifest = self.maintenance.lock().await;
        let mut merged = 0;
        for (level, range) in self
            .opts
            .compaction_ranges_ms
            .clone()
            .into_iter()
            .enumerate()
        {
            let mut windows: BTreeMap<i64, Vec<BlockMeta>> = BTreeMap::new();
            for b in &manifest.blocks {
                let w = b.min_time.div_euclid(range);
                if b.max_time.div_euclid(range) == w {
                    windows.entry(w).or_default().push(b.clone());
                }
            }
            for (w, group) in windows {
                let window_end = (w + 1) * range;
                let over = range <= self.opts.block_duration_ms
                    || window_end + self.opts.block_duration_ms <= now;
                if group.len() < 2 || !over {
                    continue;
                }
                self.merge_blocks(&mut manifest, &group, level as u32 + 1)
                    .await?;
                merged += group.len();
            }
        }
        Ok(merged)
    }

    async fn merge_blocks(
        self: &Arc<Self>,
        manifest: &mut Manifest,
        group: &[BlockMeta],
        level: u32,
    ) -> Result<()> {
        let readers: Vec<Arc<BlockReader>> = {
            let state = self.state.read();
            let mut rs: Vec<_> = state
                .blocks
                .iter()
                .filter(|b| group.iter().any(|g| g.id == b.meta().id))
                .cloned()
                .collect();
            rs.sort_by_key(|b| b.meta().seq);
            rs
        };
        let mut ids: Vec<SeriesId> = readers.iter().flat_map(|r| r.series_ids()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut reads = Vec::with_capacity(readers.len());
        let mut hist_reads = Vec::with_capacity(readers.len());
        for r in &readers {
            reads.push(r.read(&ids, Timestamp::MIN, Timestamp::MAX).await?);
            hist_reads.push(
                r.read_histograms(&ids, Timestamp::MIN, Timestamp::MAX)
                    .await?,
            );
        }
        let labels = self.labels_of(ids.iter().copied());
        let seq = manifest.next_seq;
        let block = run_blocking(move || {
            let mut per_series: HashMap<SeriesId, Vec<Run<'_>>> = HashMap::new();
            for r in &reads {
                for (id, range) in &r.runs {
                    per_series.entry(*id).or_default().push((
                        &r.timestamps.values()[range.clone()],
                        &r.values.values()[range.clone()],
                    ));
                }
            }
            let mut hist_series: HashMap<SeriesId, Vec<Run<'_, Arc<FloatHistogram>>>> =
                HashMap::new();
            for r in &hist_reads {
                for (id, range) in &r.runs {
                    hist_series
                        .entry(*id)
                        .or_default()
                        .push((&r.timestamps[range.clone()], &r.histograms[range.clone()]));
                }
            }
            let mut all_ids: Vec<SeriesId> = per_series
                .keys()
                .chain(hist_series.keys())
                .copied()
                .collect();
            all_ids.sort_unstable();
            all_ids.dedup();
            let merged: Vec<Decoded> = all_ids
                .into_iter()
                .map(|id| {
                    let (t, v) = per_series
                        .get(&id)
                        .map(|r| merge_runs(r))
                        .unwrap_or_default();
                    let (ht, hs) = hist_series
                        .get(&id)
                        .map(|r| merge_runs(r))
                        .unwrap_or_default();
                    (id, t, v, ht, hs)
                })
                .collect();
            let series = merged
                .iter()
                .filter_map(|(id, t, v, ht, hs)| {
                    labels.get(id).map(|l| SeriesSamples {
                        id: *id,
                        labels: l,
                        timestamps: t,
                        values: v,
                        hist_timestamps: ht,
                        histograms: hs,
                    })
                })
                .collect();
            encode_block(seq, level, series)
        })
        .await?;
        manifest.next_seq = seq + 1;
        self.commit(manifest, block.into_iter().collect(), group, None)
            .await?;
        self.metrics.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Drops blocks whose newest sample is older than the retention, then forgets series that no
    /// block and no head holds any more. Answers (blocks deleted, series forgotten).
    pub async fn apply_retention(self: &Arc<Self>, now: Timestamp) -> Result<(usize, usize)> {
        let mut manifest = self.maintenance.lock().await;
        let cutoff = now - self.opts.retention_ms;
        let expired: Vec<BlockMeta> = manifest
            .blocks
            .iter()
            .filter(|b| b.max_time < cutoff)
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok((0, 0));
        }
        self.commit(&mut manifest, Vec::new(), &expired, None)
            .await?;
        self.metrics
            .blocks_deleted
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        // Forget series with no samples left, while no append is between id lookup and head insert.
        let _gate = self.append_gate.write().await;
        let mut state = self.state.write();
        let mut live: HashSet<SeriesId> =
            state.blocks.iter().flat_map(|b| b.series_ids()).collect();
        live.extend(state.head.series().map(|(id, _)| *id));
        for f in &state.frozen {
            live.extend(f.series().map(|(id, _)| *id));
        }
        let dead: Vec<SeriesId> = state
            .registry
            .ids()
            .filter(|id| !live.contains(id))
            .collect();
        for id in &dead {
            state.registry.remove(*id);
            state.unconfirmed.remove(id);
        }
        state.registry.collect_garbage();
        Ok((expired.len(), dead.len()))
    }

    fn labels_of(&self, ids: impl Iterator<Item = SeriesId>) -> HashMap<SeriesId, Labels> {
        let state = self.state.read();
        ids.filter_map(|id| state.registry.labels(id).map(|l| (id, l.clone())))
            .collect()
    }
}

/// One series' samples of both kinds, decoded for a block write.
type Decoded = (
    SeriesId,
    Vec<i64>,
    Vec<f64>,
    Vec<i64>,
    Vec<Arc<FloatHistogram>>,
);

/// The ranges of sorted `ts` falling in each aligned window of `duration`.
fn split_windows(ts: &[i64], duration: i64) -> BTreeMap<i64, std::ops::Range<usize>> {
    let mut out = BTreeMap::new();
    let mut start = 0;
    while start < ts.len() {
        let w = ts[start].div_euclid(duration);
        let end = start + ts[start..].partition_point(|t| t.div_euclid(duration) == w);
        out.insert(w, start..end);
        start = end;
    }
    out
}

pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as Timestamp
}

/// Runs CPU-bound work on the blocking pool.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("background task failed: {e}")))?
}

/// Deletes what an interrupted write, compaction or retention left behind, and nothing else:
/// block folders (named as [`crate::block::block_id`] names them) the manifest does not name,
/// and in a local store (`local`) the temporary file of an interrupted manifest put. Other
/// folders and files in the store are not Quiver's and are left alone.
pub(crate) async fn delete_orphans(
    store: &Arc<dyn ObjectStore>,
    local: Option<&Path>,
    manifest: &Manifest,
) -> Result<()> {
    let live: HashSet<&str> = manifest.blocks.iter().map(|b| b.id.as_str()).collect();
    let listing = store.list_with_delimiter(None).await?;
    for prefix in listing.common_prefixes {
        let name = prefix.filename().unwrap_or_default();
        if is_block_id(name) && !live.contains(name) {
            tracing::warn!(block = %name, "deleting a block folder the manifest does not name (left by an interrupted write, compaction or retention)");
            delete_block(store, local, name).await?;
        }
    }
    if let Some(root) = local {
        for path in staged_files(root, MANIFEST_FILE)? {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Deletes a block's files: the two Quiver writes, and in a local store the temporary files of
/// interrupted puts of them, then the folder if that leaves it empty. Anything else someone
/// put into the folder stays (and so does the folder).
async fn delete_block(store: &Arc<dyn ObjectStore>, local: Option<&Path>, id: &str) -> Result<()> {
    let prefix = object_store::path::Path::from(id);
    let mut objects = store.list(Some(&prefix));
    while let Some(meta) = objects.next().await {
        let location = meta?.location;
        if location
            .filename()
            .is_some_and(|f| BLOCK_FILES.contains(&f))
        {
            store.delete(&location).await?;
        }
    }
    if let Some(root) = local {
        let dir = root.join(id);
        for file in BLOCK_FILES {
            for path in staged_files(&dir, file)? {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        // Fails, as it should, when the folder holds something else or is gone already.
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(())
}

/// The temporary files `object_store`'s local file system stages a put of `name` in
/// (`<name>#<digits>`, renamed over `name` when complete), left in `dir` by an interrupted put.
fn staged_files(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let file_name = entry.file_name();
        let staged = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(name))
            .and_then(|rest| rest.strip_prefix('#'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if staged {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use object_store::local::LocalFileSystem;

    use super::*;
    use crate::block::block_id;
    use crate::db::{Options, WriteBatch};
    use crate::fsync::SYNCED;
    use crate::labels::LabelLimits;

    /// The paths synced under `root`, in order.
    fn synced_under(root: &Path) -> Vec<PathBuf> {
        SYNCED
            .lock()
            .iter()
            .filter(|p| p.starts_with(root))
            .cloned()
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_syncs_block_files_and_folders_before_the_manifest_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blocks");
        std::fs::create_dir_all(&root).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .unwrap()
                .with_automatic_cleanup(true),
        );
        let mut opts = Options::new(dir.path().join("wal"), store);
        opts.local_block_dir = Some(root.clone());
        let db = Db::open(opts).await.unwrap();
        let mut batch = WriteBatch::default();
        let labels = Labels::try_from_pairs([("__name__", "m")], &LabelLimits::default()).unwrap();
        let s = batch.push_series(labels);
        batch.push_sample(s, 1_000, 1.0);
        db.append(batch).await.unwrap();
        let before = synced_under(&root).len();
        assert_eq!(db.flush().await.unwrap(), 1);
        let synced = synced_under(&root).split_off(before);

        let block = root.join(block_id(1));
        let manifest = root.join(MANIFEST_FILE);
        let at = |p: &Path| {
            synced
                .iter()
                .position(|x| x == p)
                .unwrap_or_else(|| panic!("{} was not synced: {synced:?}", p.display()))
        };
        let named = at(&manifest);
        for file in [crate::block::SAMPLES_FILE, crate::block::SERIES_FILE] {
            assert!(at(&block.join(file)) < at(&block), "{synced:?}");
        }
        // The root names the block folder: synced after it, before the manifest names it.
        let root_syncs: Vec<usize> = (0..synced.len()).filter(|i| synced[*i] == root).collect();
        assert_eq!(
            root_syncs.len(),
            2,
            "once for the blocks, once for the manifest: {synced:?}"
        );
        assert!(
            at(&block) < root_syncs[0] && root_syncs[0] < named,
            "{synced:?}"
        );
        // The manifest's rename is durable before the flush returns (and deletes WAL segments).
        assert!(named < root_syncs[1], "{synced:?}");
        assert_eq!(synced.len(), 6, "one fsync per file and folder: {synced:?}");
    }
}
