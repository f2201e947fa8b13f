//! The engine: ties the WAL, the head, the registry and the blocks together.
//!
//! Write: validate -> assign series ids -> WAL (group commit, fsync) -> head -> acknowledge.
//! Read: resolve matchers in the registry, then merge each series' samples from the blocks
//! (in sequence order), the heads being flushed and the active head; where two sources hold
//! the same timestamp, the newer source wins.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use object_store::ObjectStore;
use parking_lot::RwLock;

use crate::block::BlockReader;
use crate::error::{Error, Result};
use crate::head::Head;
use crate::histogram::FloatHistogram;
use crate::labels::{LabelLimits, Labels, SeriesId, Timestamp};
use crate::manifest::Manifest;
use crate::matchers::Matchers;
use crate::registry::SeriesRegistry;
use crate::wal::{Wal, WalMetrics, WalRecord};

mod read;

pub(crate) use read::{Run, merge_runs};

/// Limits on what one write may carry.
#[derive(Debug, Clone)]
pub struct Limits {
    pub labels: LabelLimits,
    pub max_series_per_write: usize,
    pub max_samples_per_write: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            labels: LabelLimits::default(),
            max_series_per_write: 1_000_000,
            max_samples_per_write: 10_000_000,
        }
    }
}

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Local folder for the WAL.
    pub wal_dir: PathBuf,
    /// Where blocks and the manifest live.
    pub block_store: Arc<dyn ObjectStore>,
    /// The block store's root folder when it is a local file system. `object_store` writes
    /// local files without fsync, so the engine syncs the files it puts there (and their
    /// folders) itself before anything depends on them; it also clears the temporary files
    /// of interrupted puts there. `None` for remote stores, whose puts are durable when they
    /// return.
    pub local_block_dir: Option<PathBuf>,
    /// Blocks whose newest sample is older than this (ms before now) are deleted.
    pub retention_ms: i64,
    /// The head is cut into blocks once it spans this much time (ms); blocks are aligned to it.
    pub block_duration_ms: i64,
    /// ...or once it holds this many samples.
    pub max_head_samples: usize,
    /// Compaction merges blocks inside aligned windows of these sizes (ms), smallest first.
    pub compaction_ranges_ms: Vec<i64>,
    pub limits: Limits,
}

impl Options {
    pub fn new(wal_dir: PathBuf, block_store: Arc<dyn ObjectStore>) -> Self {
        const HOUR: i64 = 3_600_000;
        Options {
            wal_dir,
            block_store,
            local_block_dir: None,
            retention_ms: 15 * 24 * HOUR,
            block_duration_ms: 2 * HOUR,
            max_head_samples: 20_000_000,
            compaction_ranges_ms: vec![2 * HOUR, 24 * HOUR],
            limits: Limits::default(),
        }
    }
}

/// Counters the server exposes on `/metrics`.
#[derive(Debug, Default)]
pub struct StorageMetrics {
    pub samples_appended: AtomicU64,
    pub series_created: AtomicU64,
    pub appends_failed: AtomicU64,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub blocks_deleted: AtomicU64,
    pub wal: Arc<WalMetrics>,
}

/// A columnar batch of samples to append: series, and samples that point at them.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// The registry's removal count at which every known id was checked (see `ids_valid_at`).
    ids_valid_at: Option<u64>,
    /// Visible at once, the WAL write not awaited (see [`WriteBatch::defer_sync`]).
    deferred: bool,
    series: Vec<BatchSeries>,
    sample_series: Vec<u32>,
    timestamps: Vec<Timestamp>,
    values: Vec<f64>,
    hist_series: Vec<u32>,
    hist_timestamps: Vec<Timestamp>,
    histograms: Vec<Arc<FloatHistogram>>,
}

impl WriteBatch {
    /// Makes the batch visible as soon as its WAL record is queued, without waiting for the
    /// write, and without an fsync of its own (it is synced with the next acknowledged write,
    /// a segment roll or the close): for data the server derives itself and can derive again
    /// (rule results, as Prometheus writes them), never for data a sender is acknowledged for.
    /// The record still goes to the WAL, in order; a crash may lose the last of these batches.
    pub fn defer_sync(&mut self) {
        self.deferred = true;
    }

    /// Adds a series and answers its index for [`WriteBatch::push_sample`].
    pub fn push_series(&mut self, labels: Labels) -> u32 {
        self.series.push(BatchSeries::New(labels));
        (self.series.len() - 1) as u32
    }

    /// Adds a series already resolved in the registry ([`Db::registry`]), so the write path
    /// builds no label set for it.
    pub fn push_known(&mut self, id: SeriesId) -> u32 {
        self.series.push(BatchSeries::Known(id));
        (self.series.len() - 1) as u32
    }

    /// Declares that every [`WriteBatch::push_known`] id was registered when the registry's
    /// [`SeriesRegistry::removals`] count was `removals`: if nothing was removed since, the
    /// append trusts the ids without looking each one up (a scraper that resolved its ids
    /// earlier saves a hash lookup per sample). Otherwise every id is checked as usual.
    pub fn ids_valid_at(&mut self, removals: u64) {
        self.ids_valid_at = Some(removals);
    }

    pub fn push_sample(&mut self, series: u32, t: Timestamp, v: f64) {
        self.sample_series.push(series);
        self.timestamps.push(t);
        self.values.push(v);
    }

    /// Adds a native histogram sample (valid: see [`FloatHistogram::validate`]). A staleness
    /// marker goes in as a float sample ([`WriteBatch::push_sample`] with the staleness NaN),
    /// which ends a histogram series as it ends a float one.
    pub fn push_histogram(&mut self, series: u32, t: Timestamp, h: FloatHistogram) {
        self.hist_series.push(series);
        self.hist_timestamps.push(t);
        self.histograms.push(Arc::new(h));
    }

    /// The histogram samples, in the order pushed.
    pub fn histograms(&self) -> impl Iterator<Item = (u32, Timestamp, &FloatHistogram)> + '_ {
        self.hist_series
            .iter()
            .zip(&self.hist_timestamps)
            .zip(&self.histograms)
            .map(|((s, t), h)| (*s, *t, h.as_ref()))
    }

    pub fn num_histograms(&self) -> usize {
        self.histograms.len()
    }

    /// Whether the batch holds no sample of either kind (nothing to append).
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty() && self.histograms.is_empty()
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// The samples, in the order pushed: (series index, timestamp, value).
    pub fn samples(&self) -> impl Iterator<Item = (u32, Timestamp, f64)> + '_ {
        self.sample_series
            .iter()
            .zip(&self.timestamps)
            .zip(&self.values)
            .map(|((s, t), v)| (*s, *t, *v))
    }

    pub fn num_samples(&self) -> usize {
        self.timestamps.len()
    }

    /// Each series slot's id, `None` for a series that is new to the batch's sender.
    pub fn known_ids(&self) -> impl Iterator<Item = Option<SeriesId>> + '_ {
        self.series.iter().map(|s| match s {
            BatchSeries::Known(id) => Some(*id),
            BatchSeries::New(_) => None,
        })
    }

    /// Each series slot's label set, `None` for a series given by id.
    pub fn new_labels(&self) -> impl Iterator<Item = Option<&Labels>> + '_ {
        self.series.iter().map(|s| match s {
            BatchSeries::New(l) => Some(l),
            BatchSeries::Known(_) => None,
        })
    }

    /// Series given as label sets (not yet resolved to ids).
    pub fn num_new_series(&self) -> usize {
        self.series
            .iter()
            .filter(|s| matches!(s, BatchSeries::New(_)))
            .count()
    }
}

/// A series of a batch: a label set, or the id of one the registry knows.
#[derive(Debug, Clone)]
enum BatchSeries {
    New(Labels),
    Known(SeriesId),
}

/// One series' merged samples from every source.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub id: SeriesId,
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f64>,
}

/// One series' merged native histogram samples from every source.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesHistograms {
    pub id: SeriesId,
    pub timestamps: Vec<Timestamp>,
    pub histograms: Vec<Arc<FloatHistogram>>,
}

/// How a scan reads a time range ([`Db::scan_sources`]).
#[derive(Debug, Default)]
pub struct ScanSources {
    /// Blocks alone in their stretch of time: read their files directly.
    pub direct: Vec<Arc<BlockReader>>,
    /// Stretches `[lo, hi]` where sources overlap or live in memory: read with [`Db::read`].
    pub merged: Vec<(Timestamp, Timestamp)>,
}

/// What the engine holds in memory, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) registry: SeriesRegistry,
    pub(crate) head: Head,
    /// Heads being written as blocks: still read until their blocks are in the manifest.
    pub(crate) frozen: Vec<Arc<Head>>,
    /// Open blocks, by ascending sequence number.
    pub(crate) blocks: Vec<Arc<BlockReader>>,
    /// Blocks a compaction or retention replaced whose files a running scan may still read
    /// ([`crate::maintenance`] deletes them once nothing holds them).
    pub(crate) retired: Vec<Arc<BlockReader>>,
    /// Series registered for an append whose definition no written WAL record holds yet, with
    /// how many records carrying it are in flight. Every append that uses such a series carries
    /// its definition again, so whichever record is written first defines it for replay; see
    /// [`State::settle_definitions`] for what a failed write does.
    pub(crate) unconfirmed: foldhash::HashMap<SeriesId, u32>,
}

/// The storage engine.
#[derive(Debug)]
pub struct Db {
    pub(crate) opts: Options,
    pub(crate) wal: Wal,
    /// Shared with the tasks that await deferred WAL writes.
    pub(crate) state: Arc<RwLock<State>>,
    /// Appends hold it shared from id assignment to head insert; a head cut holds it
    /// exclusively, so no acknowledged sample can fall between a WAL roll and a head freeze.
    pub(crate) append_gate: tokio::sync::RwLock<()>,
    /// Serializes flush, compaction and retention (they all rewrite the manifest).
    pub(crate) maintenance: tokio::sync::Mutex<Manifest>,
    pub(crate) metrics: Arc<StorageMetrics>,
    closed: AtomicBool,
    /// The block store's lease, when it has one: no manifest is written unless it is fresh.
    pub(crate) lease: std::sync::OnceLock<Arc<crate::lease::Lease>>,
}

impl Db {
    /// Opens the engine: loads the manifest and its blocks, deletes orphaned block files, and
    /// replays the WAL into the head.
    /// Makes every manifest write depend on `lease` being fresh (one writer per block store).
    pub fn hold_lease(&self, lease: Arc<crate::lease::Lease>) {
        let _ = self.lease.set(lease);
    }

    pub async fn open(opts: Options) -> Result<Arc<Self>> {
        let store = opts.block_store.clone();
        let local = opts.local_block_dir.as_deref();
        let manifest = Manifest::open(&store, local).await?;
        crate::maintenance::delete_orphans(&store, local, &manifest).await?;
        let mut state = State::default();
        for meta in &manifest.blocks {
            let (reader, series) = BlockReader::open(store.clone(), meta.clone()).await?;
            for (id, labels) in series {
                state.registry.insert_known(id, labels);
            }
            state.blocks.push(Arc::new(reader));
        }
        state.blocks.sort_by_key(|b| b.meta().seq);
        state.registry.reserve_ids(manifest.next_series_id);
        let metrics = Arc::new(StorageMetrics::default());
        let wal_dir = opts.wal_dir.clone();
        let (wal, state) = tokio::task::spawn_blocking({
            let metrics = metrics.clone();
            move || -> Result<(Wal, State)> {
                let mut state = state;
                let mut unknown = 0usize;
                let wal = Wal::open(&wal_dir, metrics.wal.clone(), |rec| {
                    for (id, labels) in rec.new_series {
                        state.registry.insert_known(id, labels);
                    }
                    let known: Vec<bool> = rec
                        .series_ids
                        .iter()
                        .map(|id| state.registry.labels(*id).is_some())
                        .collect();
                    for ((id, t), h) in rec
                        .hist_ids
                        .iter()
                        .zip(&rec.hist_timestamps)
                        .zip(&rec.histograms)
                    {
                        if state.registry.labels(*id).is_some() {
                            state.head.append_histograms(
                                std::slice::from_ref(id),
                                std::slice::from_ref(t),
                                std::slice::from_ref(h),
                            );
                        } else {
                            unknown += 1;
                        }
                    }
                    if known.iter().all(|k| *k) {
                        state
                            .head
                            .append(&rec.series_ids, &rec.timestamps, &rec.values);
                    } else {
                        for (i, k) in known.iter().enumerate() {
                            if *k {
                                state.head.append(
                                    &rec.series_ids[i..=i],
                                    &rec.timestamps[i..=i],
                                    &rec.values[i..=i],
                                );
                            } else {
                                unknown += 1;
                            }
                        }
                    }
                })?;
                if unknown > 0 {
                    tracing::warn!(
                        samples = unknown,
                        "WAL samples of unknown series were skipped"
                    );
                }
                Ok((wal, state))
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("WAL replay task failed: {e}")))??;
        tracing::info!(
            blocks = state.blocks.len(),
            series = state.registry.len(),
            head_samples = state.head.num_samples(),
            "storage opened"
        );
        Ok(Arc::new(Db {
            opts,
            wal,
            state: Arc::new(RwLock::new(state)),
            append_gate: tokio::sync::RwLock::new(()),
            maintenance: tokio::sync::Mutex::new(manifest),
            metrics,
            closed: AtomicBool::new(false),
            lease: std::sync::OnceLock::new(),
        }))
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn limits(&self) -> &Limits {
        &self.opts.limits
    }

    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.metrics
    }

    /// Appends a batch: returns once it is durable in the WAL and visible in the head.
    /// Series are validated when the batch is built ([`Labels::try_from_pairs`]).
    pub async fn append(&self, batch: WriteBatch) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let limits = &self.opts.limits;
        if batch.series.len() > limits.max_series_per_write {
            return Err(Error::LimitExceeded(format!(
                "{} series in one write, more than the limit of {}",
                batch.series.len(),
                limits.max_series_per_write
            )));
        }
        let n_samples = batch.timestamps.len() + batch.histograms.len();
        if n_samples > limits.max_samples_per_write {
            return Err(Error::LimitExceeded(format!(
                "{n_samples} samples in one write, more than the limit of {}",
                limits.max_samples_per_write
            )));
        }
        if n_samples == 0 {
            return Ok(());
        }
        let WriteBatch {
            ids_valid_at,
            deferred,
            series,
            sample_series,
            timestamps,
            values,
            hist_series,
            hist_timestamps,
            histograms,
        } = batch;
        let _gate = self.append_gate.read().await;
        let (record, ack, created) = {
            let mut used = vec![false; series.len()];
            for s in sample_series.iter().chain(&hist_series) {
                used[*s as usize] = true;
            }
            let mut guard = self.state.write();
            let state = &mut *guard;
            let trusted = ids_valid_at == Some(state.registry.removals());
            let mut slot_ids = Vec::with_capacity(series.len());
            let mut new_series = Vec::new();
            for (series, used) in series.into_iter().zip(used) {
                if !used {
                    slot_ids.push(SeriesId(u64::MAX));
                    continue;
                }
                let labels = match series {
                    BatchSeries::Known(id) if trusted || state.registry.contains(id) => {
                        slot_ids.push(id);
                        continue;
                    }
                    // Forgotten by retention since it was resolved: the sender retries.
                    BatchSeries::Known(id) => {
                        return Err(Error::Retry(format!(
                            "series {id} was dropped by retention meanwhile"
                        )));
                    }
                    BatchSeries::New(labels) => labels,
                };
                let (id, created) = state.registry.get_or_create(labels);
                if created {
                    new_series.push((id, state.registry.labels(id).expect("just created").clone()));
                }
                slot_ids.push(id);
            }
            let created = new_series.len();
            if !state.unconfirmed.is_empty() {
                let mut carried: foldhash::HashSet<SeriesId> = foldhash::HashSet::default();
                for id in &slot_ids {
                    if let Some(n) = state.unconfirmed.get_mut(id)
                        && carried.insert(*id)
                    {
                        *n += 1;
                        let labels = state.registry.labels(*id).expect("registered").clone();
                        new_series.push((*id, labels));
                    }
                }
            }
            for (id, _) in &new_series[..created] {
                state.unconfirmed.insert(*id, 1);
            }
            let ids: Vec<SeriesId> = sample_series
                .iter()
                .map(|s| slot_ids[*s as usize])
                .collect();
            let hist_ids: Vec<SeriesId> =
                hist_series.iter().map(|s| slot_ids[*s as usize]).collect();
            let record = WalRecord {
                new_series,
                series_ids: ids,
                timestamps,
                values,
                hist_ids,
                hist_timestamps,
                histograms,
            };
            let ack = if deferred {
                self.wal.submit_unsynced(&record)
            } else {
                self.wal.submit(&record)
            };
            if deferred {
                state.head_append(&record);
            }
            (record, ack, created)
        };
        let defined: Vec<SeriesId> = record.new_series.iter().map(|(id, _)| *id).collect();
        if deferred {
            let metrics = self.metrics.clone();
            let state = self.state.clone();
            tokio::spawn(async move {
                let result = ack.await;
                if !defined.is_empty() {
                    let written = matches!(result, Ok(Ok(())));
                    state.write().settle_definitions(&defined, written);
                }
                if let Ok(Err(e)) = result {
                    metrics.appends_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("a deferred WAL write failed: {e}");
                }
            });
        } else {
            let written = ack.await.map_err(|_| Error::ShuttingDown).and_then(|r| r);
            let mut state = self.state.write();
            state.settle_definitions(&defined, written.is_ok());
            if let Err(e) = written {
                drop(state);
                self.metrics.appends_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            state.head_append(&record);
        }
        self.metrics
            .samples_appended
            .fetch_add(record.num_samples() as u64, Ordering::Relaxed);
        self.metrics
            .series_created
            .fetch_add(created as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The series the matchers select that have samples in `[mint, maxt]`, with their labels,
    /// in label order.
    pub fn series(
        &self,
        matchers: &Matchers,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<(SeriesId, Labels)> {
        let state = self.state.read();
        let mut out: Vec<(SeriesId, Labels)> = state
            .registry
            .select(matchers)
            .into_iter()
            .filter(|id| state.has_samples(*id, mint, maxt))
            .filter_map(|id| state.registry.labels(id).map(|l| (id, l.clone())))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    /// Every series the matchers select, samples or not, in id order.
    pub fn select(&self, matchers: &Matchers) -> Vec<(SeriesId, Labels)> {
        let state = self.state.read();
        state
            .registry
            .select(matchers)
            .into_iter()
            .filter_map(|id| state.registry.labels(id).map(|l| (id, l.clone())))
            .collect()
    }

    /// The generation of metric `name`'s series (see
    /// [`crate::registry::SeriesRegistry::generation_of`]), or without a name of all series
    /// ([`crate::registry::SeriesRegistry::generation`]): a selection made while it is
    /// unchanged still holds.
    pub fn series_generation_of(&self, name: Option<&str>) -> u64 {
        let state = self.state.read();
        match name {
            Some(n) => state.registry.generation_of(n),
            None => state.registry.generation(),
        }
    }

    /// The ids among `ids` whose series have samples in `[mint, maxt]`, in the order given.
    pub fn with_samples(
        &self,
        ids: impl IntoIterator<Item = SeriesId>,
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<SeriesId> {
        let state = self.state.read();
        ids.into_iter()
            .filter(|id| state.has_samples(*id, mint, maxt))
            .collect()
    }

    /// The registry's removal count now (see [`WriteBatch::ids_valid_at`]).
    pub fn series_removals(&self) -> u64 {
        self.state.read().registry.removals()
    }

    /// Read access to the series registry (hold it briefly: appends wait for it).
    pub fn registry(&self) -> parking_lot::MappedRwLockReadGuard<'_, SeriesRegistry> {
        parking_lot::RwLockReadGuard::map(self.state.read(), |s| &s.registry)
    }

    /// A reader of the WAL from its current end: what is appended from now on, in order
    /// (remote write sends from it).
    pub fn wal_tail(&self) -> crate::wal::tail::WalTail {
        crate::wal::tail::WalTail::at_end(self.wal.dir(), self.wal.committed())
    }

    /// Labels of a known series.
    pub fn labels(&self, id: SeriesId) -> Option<Labels> {
        self.state.read().registry.labels(id).cloned()
    }

    /// Every label name of series that the matchers (any of the sets; all series when empty)
    /// select in `[mint, maxt]`, sorted.
    pub fn label_names(
        &self,
        selectors: &[Matchers],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        self.for_each_selected(selectors, mint, maxt, |labels| {
            names.extend(labels.iter().map(|l| l.name.to_string()));
        });
        names.into_iter().collect()
    }

    /// Every value of label `name` among the selected series, sorted.
    pub fn label_values(
        &self,
        name: &str,
        selectors: &[Matchers],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String> {
        let mut values = std::collections::BTreeSet::new();
        self.for_each_selected(selectors, mint, maxt, |labels| {
            if let Some(v) = labels.get(name) {
                values.insert(v.to_string());
            }
        });
        values.into_iter().collect()
    }

    fn for_each_selected(
        &self,
        selectors: &[Matchers],
        mint: Timestamp,
        maxt: Timestamp,
        mut f: impl FnMut(&Labels),
    ) {
        let state = self.state.read();
        let mut ids: Vec<SeriesId> = if selectors.is_empty() {
            state.registry.ids().collect()
        } else {
            selectors
                .iter()
                .flat_map(|m| state.registry.select(m))
                .collect()
        };
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if state.has_samples(id, mint, maxt)
                && let Some(l) = state.registry.labels(id)
            {
                f(l);
            }
        }
    }

    /// Head statistics for `/api/v1/status/tsdb`.
    pub fn head_stats(&self) -> HeadStats {
        let state = self.state.read();
        let frozen_samples: usize = state.frozen.iter().map(|f| f.num_samples()).sum();
        HeadStats {
            num_series: state.head.num_series(),
            num_samples: state.head.num_samples() + frozen_samples,
            min_time: state.head.min_time(),
            max_time: state.head.max_time(),
            sample_bytes: state.head.sample_bytes(),
            known_series: state.registry.len(),
        }
    }

    /// Cardinality statistics: the `top` metric names by series, label names by distinct
    /// values, and label pairs by series.
    pub fn cardinality(&self, top: usize) -> Cardinality {
        let state = self.state.read();
        let index = state.registry.index();
        let mut by_metric: Vec<(String, usize)> = index
            .label_values(crate::labels::METRIC_NAME)
            .iter()
            .map(|v| {
                (
                    v.to_string(),
                    index.postings(crate::labels::METRIC_NAME, v).len(),
                )
            })
            .collect();
        let mut values_by_name = Vec::new();
        let mut pairs = Vec::new();
        let mut bytes_by_name = Vec::new();
        let mut num_label_pairs = 0;
        for name in index.label_names() {
            let values = index.label_values(&name);
            num_label_pairs += values.len();
            values_by_name.push((name.to_string(), values.len()));
            bytes_by_name.push((
                name.to_string(),
                values.iter().map(|v| v.len()).sum::<usize>(),
            ));
            for v in values {
                pairs.push((format!("{name}={v}"), index.postings(&name, &v).len()));
            }
        }
        let top_n = |v: &mut Vec<(String, usize)>| {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(top);
        };
        top_n(&mut by_metric);
        top_n(&mut values_by_name);
        top_n(&mut pairs);
        top_n(&mut bytes_by_name);
        Cardinality {
            num_label_pairs,
            series_count_by_metric_name: by_metric,
            label_value_count_by_label_name: values_by_name,
            memory_in_bytes_by_label_name: bytes_by_name,
            series_count_by_label_value_pair: pairs,
        }
    }

    /// Stats of the blocks in the manifest.
    pub fn block_stats(&self) -> Vec<crate::block::BlockMeta> {
        self.state
            .read()
            .blocks
            .iter()
            .map(|b| b.meta().clone())
            .collect()
    }

    /// Bytes of the WAL on disk.
    pub fn wal_bytes(&self) -> u64 {
        self.wal.disk_bytes()
    }

    /// Stops taking writes and closes the WAL (everything acknowledged is already durable).
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _gate = self.append_gate.write().await;
        self.wal.close().await;
    }
}

impl State {
    /// Puts an appended record's samples of both kinds into the head.
    fn head_append(&mut self, record: &WalRecord) {
        self.head
            .append(&record.series_ids, &record.timestamps, &record.values);
        if !record.histograms.is_empty() {
            self.head.append_histograms(
                &record.hist_ids,
                &record.hist_timestamps,
                &record.histograms,
            );
        }
    }

    /// Settles the series whose definitions a WAL record carried, once the record is written
    /// (`written`) or refused. Written: the definition is in the log ahead of every later
    /// record, so later appends need not carry it. Refused: nothing of the append was
    /// acknowledged; a series that no other record in flight carries and that holds no
    /// sample is forgotten again, so no series stays registered without a definition in the
    /// WAL (a later append that referred to it without carrying it would be lost at replay).
    /// One that holds samples (of a deferred append, visible before its write) stays, and
    /// later appends keep carrying its definition.
    pub(crate) fn settle_definitions(&mut self, ids: &[SeriesId], written: bool) {
        for id in ids {
            if written {
                self.unconfirmed.remove(id);
                continue;
            }
            let Some(in_flight) = self.unconfirmed.get_mut(id) else {
                continue;
            };
            *in_flight = in_flight.saturating_sub(1);
            if *in_flight == 0 && !self.has_samples(*id, Timestamp::MIN, Timestamp::MAX) {
                self.unconfirmed.remove(id);
                self.registry.remove(*id);
            }
        }
    }

    pub(crate) fn has_samples(&self, id: SeriesId, mint: Timestamp, maxt: Timestamp) -> bool {
        let in_head = |h: &Head| h.get(id).is_some_and(|s| s.has_samples_in(mint, maxt));
        in_head(&self.head)
            || self.frozen.iter().any(|f| in_head(f))
            || self.blocks.iter().any(|b| b.has(id, mint, maxt))
    }
}

/// Head statistics.
#[derive(Debug, Clone)]
pub struct HeadStats {
    pub num_series: usize,
    pub num_samples: usize,
    pub min_time: Option<Timestamp>,
    pub max_time: Option<Timestamp>,
    pub sample_bytes: usize,
    pub known_series: usize,
}

/// Cardinality statistics, each list most first.
#[derive(Debug, Clone)]
pub struct Cardinality {
    pub num_label_pairs: usize,
    pub series_count_by_metric_name: Vec<(String, usize)>,
    pub label_value_count_by_label_name: Vec<(String, usize)>,
    pub memory_in_bytes_by_label_name: Vec<(String, usize)>,
    pub series_count_by_label_value_pair: Vec<(String, usize)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelLimits;
    use crate::matchers::Matcher;
    use crate::wal::Fault;

    fn options(dir: &std::path::Path, store: &Arc<dyn ObjectStore>) -> Options {
        Options::new(dir.join("wal"), store.clone())
    }

    /// One sample of series `{__name__="x"}` at `t`.
    fn sample_of_x(t: i64) -> WriteBatch {
        let mut b = WriteBatch::default();
        let labels = Labels::try_from_pairs([("__name__", "x")], &LabelLimits::default()).unwrap();
        let s = b.push_series(labels);
        b.push_sample(s, t, t as f64);
        b
    }

    /// The timestamps of series `x`, or `None` when it is not registered.
    async fn samples_of_x(db: &Db) -> Option<Vec<i64>> {
        let (id, _) = db
            .select(&Matchers(vec![Matcher::equal("__name__", "x")]))
            .pop()?;
        let read = db
            .read(&[id], Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap();
        Some(read.into_iter().flat_map(|s| s.timestamps).collect())
    }

    #[tokio::test]
    async fn nothing_is_written_to_the_block_store_without_a_fresh_lease() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let db = Db::open(options(dir.path(), &store)).await.unwrap();
        db.append(sample_of_x(1)).await.unwrap();
        // A lease with no time to live is never fresh: as one whose renewals kept failing.
        let stale =
            crate::lease::Lease::acquire(store.clone(), "me".into(), std::time::Duration::ZERO)
                .await
                .unwrap()
                .unwrap();
        db.hold_lease(Arc::new(stale));
        let err = db.maintain(true).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("lease"), "{err}");
        assert!(db.state.read().blocks.is_empty(), "a block was written");
        // The samples are still served from the head.
        assert_eq!(samples_of_x(&db).await, Some(vec![1]));
    }

    #[tokio::test]
    async fn a_series_created_by_a_refused_append_is_forgotten_and_defined_again_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let db = Db::open(options(dir.path(), &store)).await.unwrap();
        db.wal.inject(Fault::ShortWrite);
        let err = db.append(sample_of_x(1)).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable, "{err}");
        assert_eq!(
            samples_of_x(&db).await,
            None,
            "no series stays registered for a refused append"
        );
        db.append(sample_of_x(2)).await.unwrap();
        db.close().await;
        drop(db);
        // Had the series stayed registered, the second record would not define it and replay
        // would skip its sample as one of an unknown series.
        let db = Db::open(options(dir.path(), &store)).await.unwrap();
        assert_eq!(samples_of_x(&db).await, Some(vec![2]));
    }

    #[tokio::test]
    async fn a_series_held_by_refused_deferred_samples_is_defined_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let db = Db::open(options(dir.path(), &store)).await.unwrap();
        db.wal.inject(Fault::ShortWrite);
        let mut derived = sample_of_x(1);
        derived.defer_sync();
        db.append(derived).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while db.metrics.appends_failed.load(Ordering::Relaxed) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the deferred write never failed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Its sample is visible (deferred samples are, before their write), so it stays.
        assert_eq!(samples_of_x(&db).await, Some(vec![1]));
        db.append(sample_of_x(2)).await.unwrap();
        db.close().await;
        drop(db);
        // The deferred sample is lost with its write, as documented; the acknowledged one is not.
        let db = Db::open(options(dir.path(), &store)).await.unwrap();
        assert_eq!(samples_of_x(&db).await, Some(vec![2]));
    }
}
