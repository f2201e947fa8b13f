//! One target's scrapes: fetch, parse, label, append (one batch, one WAL record, with the
//! report series), staleness, status.
//!
//! A per-target cache maps each series' text as exposed (`name{a="b"}`) to its final labels and
//! storage id, so a series seen before costs one hash lookup: no label parsing, no relabeling,
//! no label set built. A series present in the previous scrape and absent now gets a staleness
//! marker at this scrape's timestamp; a failed scrape marks every series of the last one stale.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use quiver_ingest::exposition_proto::{self, HistogramOptions, ProtoEntry};
use quiver_ingest::nhcb::ClassicHistograms;
use quiver_storage::{
    Db, FloatHistogram, LabelLimits, Labels, STALE_NAN_BITS, SeriesId, WriteBatch,
};

use crate::config::file::ScrapeJob;
use quiver_ingest::exposition::{Entry, Format, MetricType, Parser, parse_series};

use super::target::Target;
use crate::relabel::{self, LabelMap};

/// What a response's body is: one of the text formats, or the protobuf format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Text(Format),
    Proto,
}

/// A fetched body, ready to parse.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Text(&'a str, Format),
    Proto(&'a [u8]),
}

/// A sample to append: a float or a native histogram.
#[derive(Debug)]
enum Staged {
    Float(f64),
    Histogram(FloatHistogram),
}

/// How a target is doing, for `/api/v1/targets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub health: Health,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
}

/// Metadata of one metric family as a target exposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
}

/// What the API reads of a running target.
#[derive(Debug)]
pub struct TargetShared {
    pub target: Target,
    pub pool: String,
    pub status: Mutex<TargetStatus>,
    pub metadata: Mutex<HashMap<String, Metadata>>,
}

impl TargetShared {
    pub fn new(target: Target, pool: String) -> Self {
        TargetShared {
            target,
            pool,
            status: Mutex::new(TargetStatus {
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape: None,
                last_duration: Duration::ZERO,
            }),
            metadata: Mutex::new(HashMap::new()),
        }
    }
}

/// How a scrape's samples are labeled and limited.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target_labels: LabelMap,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// Staleness markers also for series exposed with timestamps.
    pub track_timestamps_staleness: bool,
    pub metric_relabel: Vec<relabel::RelabelConfig>,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub storage_limits: LabelLimits,
    /// What a protobuf exposition's histograms become.
    pub histograms: HistogramOptions,
}

impl Settings {
    pub fn new(job: &ScrapeJob, target: &Target, storage_limits: LabelLimits) -> Self {
        Settings {
            target_labels: target.labels.clone(),
            honor_labels: job.cfg.honor_labels,
            honor_timestamps: job.cfg.honor_timestamps,
            track_timestamps_staleness: job.cfg.track_timestamps_staleness,
            metric_relabel: job.cfg.metric_relabel_configs.clone(),
            sample_limit: job.sample_limit,
            label_limit: job.label_limit,
            label_name_length_limit: job.label_name_length_limit,
            label_value_length_limit: job.label_value_length_limit,
            storage_limits,
            histograms: job.histograms,
        }
    }
}

#[derive(Debug)]
struct CacheEntry {
    key: Box<str>,
    /// The series text the labels come from when it is not `key`: `key` with its `le` or
    /// `quantile` value written as an OpenMetrics float ([`normalized_series`]).
    source: Option<Box<str>>,
    /// Final labels until the series has an id (then the registry holds them).
    labels: Option<Labels>,
    id: Option<SeriesId>,
    /// Metric relabeling dropped the series.
    dropped: bool,
    /// The scrape generation that last contained it.
    seen: u64,
}

/// The names of the series every scrape reports, in order.
const REPORT: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// A target's series cache and staleness state; it outlives a loop across config reloads.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    index: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    entries: Vec<CacheEntry>,
    free: Vec<u32>,
    generation: u64,
    /// Entries written by the last successful scrape and tracked for staleness.
    prev: Vec<u32>,
    /// The report series of this target.
    report: Vec<(Labels, Option<SeriesId>)>,
    /// The registry's removal count at which every cached id was known to be registered.
    ids_valid_at: Option<u64>,
}

/// The outcome of one scrape, for the report series and the status.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub scraped: u64,
    pub post_relabel: u64,
    pub series_added: u64,
    pub error: Option<String>,
}

/// Samples ready to append: (cache entry, timestamp, value), and native histograms.
#[derive(Default)]
struct Rows {
    rows: Vec<(u32, i64, f64)>,
    hists: Vec<(u32, i64, FloatHistogram)>,
}

impl Rows {
    fn len(&self) -> usize {
        self.rows.len() + self.hists.len()
    }
}

impl ScrapeCache {
    fn entry(
        &mut self,
        key: &str,
        float_label: Option<&str>,
        settings: &Settings,
    ) -> Result<(u32, bool), String> {
        if let Some(i) = self.index.get(key) {
            return Ok((*i, false));
        }
        let source = float_label.and_then(|l| normalized_series(key, l));
        let labels = label_sample(source.as_deref().unwrap_or(key), settings)?;
        let e = CacheEntry {
            key: key.into(),
            source: source.map(Into::into),
            dropped: labels.is_none(),
            labels,
            id: None,
            seen: 0,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = e;
                i
            }
            None => {
                self.entries.push(e);
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(key.into(), i);
        Ok((i, true))
    }

    /// Parses a body and stages its samples; metadata goes into `meta`.
    fn stage(
        &mut self,
        body: Body<'_>,
        ts: i64,
        settings: &Settings,
        meta: &mut HashMap<String, Metadata>,
        rows: &mut Rows,
        outcome: &mut Outcome,
    ) -> Result<Vec<u32>, String> {
        let mut tracked = Vec::with_capacity(self.prev.len());
        let mut at = Stage {
            ts,
            settings,
            rows,
            outcome,
            tracked: &mut tracked,
        };
        match body {
            Body::Text(text, format) => {
                // `convert_classic_histograms_to_nhcb`: classic histograms are gathered and
                // converted at the end (their series kept too with
                // `always_scrape_classic_histograms`).
                let convert = settings.histograms.convert_to_nhcb;
                let mut classic = ClassicHistograms::default();
                // Prometheus 3 writes a classic histogram's `le` and a summary's `quantile` as
                // OpenMetrics floats (`1` becomes `1.0`) whatever the format, so a target's
                // series are the same scraped as text or as protobuf.
                let mut float_label = None;
                for entry in Parser::new(text, format) {
                    let s = match entry.map_err(|e| e.to_string())? {
                        Entry::Sample(s) => s,
                        Entry::Type(name, kind) => {
                            float_label = match kind {
                                MetricType::Histogram => Some("le"),
                                MetricType::Summary => Some("quantile"),
                                _ => None,
                            };
                            family(meta, name).kind = kind;
                            if convert {
                                classic.on_type(name, kind);
                            }
                            continue;
                        }
                        Entry::Help(name, help) => {
                            set_help(meta, name, help);
                            continue;
                        }
                        Entry::Unit(name, unit) => {
                            set_unit(meta, name, unit);
                            continue;
                        }
                    };
                    if convert
                        && classic.offer(s.series, s.timestamp_ms, s.value)
                        && !settings.histograms.always_classic
                    {
                        continue;
                    }
                    let v = Staged::Float(s.value);
                    self.stage_sample(s.series, float_label, s.timestamp_ms, v, &mut at)?;
                }
                for (series, t, h) in classic.finish() {
                    self.stage_sample(&series, None, t, Staged::Histogram(h), &mut at)?;
                }
            }
            Body::Proto(bytes) => {
                for entry in exposition_proto::parse(bytes, settings.histograms)? {
                    let (series, t, v) = match entry {
                        ProtoEntry::Float(series, t, v) => (series, t, Staged::Float(v)),
                        ProtoEntry::Histogram(series, t, h) => (series, t, Staged::Histogram(h)),
                        ProtoEntry::Type(name, kind) => {
                            family(meta, &name).kind = kind;
                            continue;
                        }
                        ProtoEntry::Help(name, help) => {
                            set_help(meta, &name, help);
                            continue;
                        }
                        ProtoEntry::Unit(name, unit) => {
                            set_unit(meta, &name, &unit);
                            continue;
                        }
                    };
                    self.stage_sample(&series, None, t, v, &mut at)?;
                }
            }
        }
        Ok(tracked)
    }

    /// Stages one exposed sample: labeled (through the cache), limited, timestamped.
    /// `float_label` names the label whose value is normalized (`le`, `quantile`).
    fn stage_sample(
        &mut self,
        series: &str,
        float_label: Option<&str>,
        timestamp_ms: Option<i64>,
        value: Staged,
        at: &mut Stage<'_>,
    ) -> Result<(), String> {
        let generation = self.generation;
        at.outcome.scraped += 1;
        let (i, new) = self.entry(series, float_label, at.settings)?;
        let e = &mut self.entries[i as usize];
        if e.dropped {
            e.seen = generation;
            return Ok(());
        }
        if e.seen == generation && !new {
            // The same series twice in one exposition: Prometheus drops the second.
            return Ok(());
        }
        e.seen = generation;
        at.outcome.post_relabel += 1;
        if new {
            at.outcome.series_added += 1;
        }
        if at.settings.sample_limit > 0 && at.outcome.post_relabel > at.settings.sample_limit {
            return Err(format!(
                "sample_limit exceeded: the target exposes more than {} samples",
                at.settings.sample_limit
            ));
        }
        let t = match timestamp_ms {
            Some(t) if at.settings.honor_timestamps => {
                if at.settings.track_timestamps_staleness {
                    at.tracked.push(i);
                }
                t
            }
            _ => {
                at.tracked.push(i);
                at.ts
            }
        };
        match value {
            Staged::Float(v) => at.rows.rows.push((i, t, v)),
            Staged::Histogram(h) => at.rows.hists.push((i, t, h)),
        }
        Ok(())
    }

    /// Scrapes `body` into `batch`-ready rows; on error nothing of the body is kept.
    fn process(
        &mut self,
        body: Result<Body<'_>, String>,
        ts: i64,
        settings: &Settings,
        meta: &mut HashMap<String, Metadata>,
    ) -> (Rows, Vec<u32>, Outcome) {
        self.generation += 1;
        let mut rows = Rows::default();
        let mut outcome = Outcome {
            scraped: 0,
            post_relabel: 0,
            series_added: 0,
            error: None,
        };
        let staged =
            body.and_then(|body| self.stage(body, ts, settings, meta, &mut rows, &mut outcome));
        let generation = self.generation;
        let stale: Vec<u32> = match staged {
            Ok(tracked) => {
                let stale = self
                    .prev
                    .iter()
                    .copied()
                    .filter(|i| self.entries[*i as usize].seen != generation)
                    .collect();
                self.prev = tracked;
                stale
            }
            Err(e) => {
                rows = Rows::default();
                outcome.error = Some(e);
                std::mem::take(&mut self.prev)
            }
        };
        (rows, stale, outcome)
    }

    /// Forgets series not seen for a while (they are re-parsed if they come back).
    fn evict(&mut self) {
        let generation = self.generation;
        if !generation.is_multiple_of(16) {
            return;
        }
        for (i, e) in self.entries.iter_mut().enumerate() {
            if !e.key.is_empty() && e.seen + 10 < generation {
                self.index.remove(&e.key);
                e.key = Box::from("");
                e.source = None;
                e.labels = None;
                e.id = None;
                e.dropped = true;
                self.free.push(i as u32);
            }
        }
    }

    /// Every series of the last successful scrape, for end-of-run staleness.
    fn take_all_stale(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.prev)
    }

    fn report_labels(&mut self, settings: &Settings) -> Result<(), String> {
        if !self.report.is_empty() {
            return Ok(());
        }
        for name in REPORT {
            let mut pairs: Vec<(String, String)> = settings
                .target_labels
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            pairs.push(("__name__".into(), name.into()));
            let labels = Labels::try_from_pairs(pairs, &settings.storage_limits)
                .map_err(|e| e.to_string())?;
            self.report.push((labels, None));
        }
        Ok(())
    }
}

/// A family's metadata entry (untyped until a TYPE line says otherwise).
/// `series` with the value of `label` written as an OpenMetrics float (`le="1"` as
/// `le="1.0"`), in the quoted series syntax; `None` when there is nothing to change (no such
/// label, not a number, already so written).
fn normalized_series(series: &str, label: &str) -> Option<String> {
    let mut pairs = parse_series(series).ok()?;
    let (_, value) = pairs.iter_mut().find(|(n, _)| n == label)?;
    let f = quiver_storage::histogram::nhcb::parse_go_float(value)?;
    let formatted = quiver_storage::histogram::format_openmetrics_float(f);
    if *value == formatted {
        return None;
    }
    *value = formatted;
    let name = pairs
        .iter()
        .position(|(n, _)| n == "__name__")
        .map(|i| pairs.remove(i).1)
        .unwrap_or_default();
    let rest: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    Some(exposition_proto::series_text(&name, "", &rest, None))
}

/// Where [`ScrapeCache::stage`] puts what it stages.
struct Stage<'a> {
    ts: i64,
    settings: &'a Settings,
    rows: &'a mut Rows,
    outcome: &'a mut Outcome,
    tracked: &'a mut Vec<u32>,
}

fn set_help(meta: &mut HashMap<String, Metadata>, name: &str, help: String) {
    let m = family(meta, name);
    if m.help != help {
        m.help = help;
    }
}

fn set_unit(meta: &mut HashMap<String, Metadata>, name: &str, unit: &str) {
    let m = family(meta, name);
    if m.unit != unit {
        m.unit = unit.to_string();
    }
}

fn family<'m>(meta: &'m mut HashMap<String, Metadata>, name: &str) -> &'m mut Metadata {
    if !meta.contains_key(name) {
        meta.insert(
            name.to_string(),
            Metadata {
                kind: MetricType::Unknown,
                help: String::new(),
                unit: String::new(),
            },
        );
    }
    meta.get_mut(name).expect("just inserted")
}

/// The labels a scraped series gets: target labels merged (with `exported_` renames unless
/// `honor_labels`), then metric relabeling, then the limits. `None`: dropped by relabeling.
pub fn label_sample(series: &str, settings: &Settings) -> Result<Option<Labels>, String> {
    let pairs = parse_series(series).map_err(|e| format!("{series}: {e}"))?;
    let mut lset: LabelMap = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if settings.honor_labels {
        for (n, v) in &settings.target_labels {
            lset.entry(n.clone()).or_insert_with(|| v.clone());
        }
    } else {
        let mut conflicts = Vec::new();
        for (n, v) in &settings.target_labels {
            // Any exposed value conflicts, even an equal one (as Prometheus does).
            if let Some(old) = lset.insert(n.clone(), v.clone()) {
                conflicts.push((n.clone(), old));
            }
        }
        for (n, v) in conflicts {
            let mut name = format!("exported_{n}");
            while lset.contains_key(&name) {
                name = format!("exported_{name}");
            }
            lset.insert(name, v);
        }
    }
    if !relabel::process(&mut lset, &settings.metric_relabel) {
        return Ok(None);
    }
    if settings.label_limit > 0 && lset.len() as u64 > settings.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {series}, number of labels: {}, limit: {})",
            lset.len(),
            settings.label_limit
        ));
    }
    for (n, v) in &lset {
        if settings.label_name_length_limit > 0 && n.len() as u64 > settings.label_name_length_limit
        {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {series}, label name: {n}, limit: {})",
                settings.label_name_length_limit
            ));
        }
        if settings.label_value_length_limit > 0
            && v.len() as u64 > settings.label_value_length_limit
        {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {series}, label name: {n}, limit: {})",
                settings.label_value_length_limit
            ));
        }
    }
    Labels::try_from_pairs(lset, &settings.storage_limits)
        .map(Some)
        .map_err(|e| format!("{series}: {e}"))
}

/// A target's scraping state: the cache, reused across reloads of its pool.
#[derive(Debug, Default)]
pub struct LoopState {
    pub cache: ScrapeCache,
    /// The last response body: its buffer is reused, so a scrape does not fault in new pages.
    body: Vec<u8>,
}

/// Appends staged rows, stale markers and (when `report` is given) the report series as one
/// batch, then learns the ids of new series. Retries once with labels when a cached id was
/// dropped by retention meanwhile.
async fn commit(
    db: &Db,
    settings: &Settings,
    cache: &mut ScrapeCache,
    rows: &Rows,
    stale: &[u32],
    stale_ts: i64,
    report: Option<(i64, [f64; 5])>,
) -> Result<(), quiver_storage::Error> {
    for attempt in 0..2 {
        let removals_before = db.series_removals();
        let mut batch = WriteBatch::default();
        if let Some(r) = cache.ids_valid_at {
            batch.ids_valid_at(r);
        }
        let mut new_entries: Vec<u32> = Vec::new();
        let mut slot_of = |cache: &ScrapeCache, batch: &mut WriteBatch, i: u32| -> Option<u32> {
            let e = &cache.entries[i as usize];
            match (e.id, &e.labels) {
                (Some(id), _) => Some(batch.push_known(id)),
                (None, Some(l)) => {
                    new_entries.push(i);
                    Some(batch.push_series(l.clone()))
                }
                (None, None) => None,
            }
        };
        for (i, t, v) in &rows.rows {
            if let Some(slot) = slot_of(cache, &mut batch, *i) {
                batch.push_sample(slot, *t, *v);
            }
        }
        for (i, t, h) in &rows.hists {
            if let Some(slot) = slot_of(cache, &mut batch, *i) {
                batch.push_histogram(slot, *t, h.clone());
            }
        }
        let stale_v = f64::from_bits(STALE_NAN_BITS);
        for i in stale {
            if let Some(slot) = slot_of(cache, &mut batch, *i) {
                batch.push_sample(slot, stale_ts, stale_v);
            }
        }
        let mut new_report = Vec::new();
        if let Some((ts, values)) = report {
            for (k, v) in values.iter().enumerate() {
                let (labels, id) = &cache.report[k];
                let slot = match id {
                    Some(id) => batch.push_known(*id),
                    None => {
                        new_report.push(k);
                        batch.push_series(labels.clone())
                    }
                };
                batch.push_sample(slot, ts, *v);
            }
        }
        match db.append(batch).await {
            Ok(()) => {
                cache.ids_valid_at = Some(removals_before);
                let reg = db.registry();
                for i in new_entries {
                    let e = &mut cache.entries[i as usize];
                    if let Some(l) = &e.labels {
                        e.id = reg.get(l);
                    }
                    if e.id.is_some() {
                        e.labels = None;
                    }
                }
                for k in new_report {
                    let id = reg.get(&cache.report[k].0);
                    cache.report[k].1 = id;
                }
                return Ok(());
            }
            Err(quiver_storage::Error::Retry(_)) if attempt == 0 => {
                cache.ids_valid_at = None;
                for e in &mut cache.entries {
                    if e.id.take().is_some() {
                        // The labels come back from the exposed text.
                        let text = e.source.as_deref().unwrap_or(&e.key);
                        e.labels = label_sample(text, settings).ok().flatten();
                    }
                }
                for r in &mut cache.report {
                    r.1 = None;
                }
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns on its second attempt")
}

/// Fetches a target's exposition: the body and its format.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    job: &ScrapeJob,
    target: &Target,
    body: &mut Vec<u8>,
) -> Result<BodyFormat, String> {
    let cfg = &job.cfg;
    let req = client
        .get(url)
        .header(reqwest::header::ACCEPT, &job.accept)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        );
    let req = crate::http_client::authorize(
        req,
        crate::http_client::Credentials {
            basic_auth: cfg.basic_auth.as_ref(),
            authorization: cfg.authorization.as_ref(),
            bearer_token: cfg.bearer_token.as_ref(),
            bearer_token_file: cfg.bearer_token_file.as_ref(),
        },
    )?;
    let run = async {
        let mut resp = req
            .send()
            .await
            .map_err(|e| format!("Get {:?}: {}", target.url, crate::error::error_chain(&e)))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("server returned HTTP status {}", resp.status()));
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let format = match ct {
            Some(ct) if exposition_proto::is_content_type(ct) => BodyFormat::Proto,
            _ => BodyFormat::Text(Format::from_content_type(ct)),
        };
        body.clear();
        body.reserve(resp.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the body: {}", crate::error::error_chain(&e)))?
        {
            body.extend_from_slice(&chunk);
            if job.body_size_limit > 0 && body.len() as u64 > job.body_size_limit {
                return Err(format!(
                    "body size limit exceeded: more than {} bytes",
                    job.body_size_limit
                ));
            }
        }
        Ok(format)
    };
    match tokio::time::timeout(target.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Get {:?}: context deadline exceeded (scrape timeout {:?})",
            target.url, target.timeout
        )),
    }
}

/// Counters over every target, for `/metrics`.
#[derive(Debug, Default)]
pub struct ScrapeMetrics {
    pub scrapes: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    pub samples: std::sync::atomic::AtomicU64,
    pub append_failures: std::sync::atomic::AtomicU64,
}

/// Why a loop stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// Shutdown or a reload that keeps the target: no staleness markers.
    Quiet,
    /// The target went away: staleness markers after about two intervals.
    Stale,
}

/// Everything a loop needs.
pub struct LoopCtx {
    pub db: Arc<Db>,
    pub client: reqwest::Client,
    /// The URL requested: the target's, with the host replaced by `tls_config.server_name`
    /// when that is set (the client resolves that name to the target's address).
    pub url: String,
    pub job: Arc<ScrapeJob>,
    pub shared: Arc<TargetShared>,
    pub settings: Settings,
    pub metrics: Arc<ScrapeMetrics>,
    /// Set when the pool has more targets than `target_limit`.
    pub over_limit: Arc<Mutex<Option<String>>>,
}

/// Scrapes one target on its schedule until told to stop; gives its state back.
pub async fn run_loop(
    ctx: LoopCtx,
    mut state: LoopState,
    mut stop: tokio::sync::watch::Receiver<Stop>,
) -> LoopState {
    let interval = ctx.shared.target.interval;
    let interval_ms = interval.as_millis().max(1) as u64;
    let phase = ctx.shared.target.key() % interval_ms;
    let now = now_ms() as u64;
    let mut first = now - now % interval_ms + phase;
    if first < now {
        first += interval_ms;
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(first - now);
    let mut tick = tokio::time::interval_at(start, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s != Stop::Running) => break,
        }
        scrape_once(&ctx, &mut state).await;
    }
    // A target that was ever scraped (by this loop or by the one it took over from) has report
    // series to mark.
    if *stop.borrow() == Stop::Stale && !state.cache.report.is_empty() {
        // Prometheus's end-of-run staleness: wait for the next scrape time (the markers'
        // timestamp), then one more interval and a tenth, in case the target comes back. If it
        // does (the pool restarts it), the pool switches this loop to `Quiet`: no markers.
        let wait = async {
            tick.tick().await;
            let stale_ts = now_ms();
            tick.tick().await;
            tokio::time::sleep(interval / 10).await;
            stale_ts
        };
        // A dropped sender (a removed pool lets its loops finish alone) is no cancellation.
        let cancelled = async {
            if stop.wait_for(|s| *s == Stop::Quiet).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let stale_ts = tokio::select! {
            t = wait => t,
            _ = cancelled => return state,
        };
        let stale = state.cache.take_all_stale();
        let _ = state.cache.report_labels(&ctx.settings);
        let values = [f64::from_bits(STALE_NAN_BITS); 5];
        let empty = Rows::default();
        if let Err(e) = commit(
            &ctx.db,
            &ctx.settings,
            &mut state.cache,
            &empty,
            &stale,
            stale_ts,
            Some((stale_ts, values)),
        )
        .await
        {
            tracing::warn!(target = %ctx.shared.target.url, "writing staleness markers failed: {e}");
        }
    }
    state
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    quiver_storage::maintenance::now_ms()
}

/// One scrape: fetch, stage, commit, status.
pub async fn scrape_once(ctx: &LoopCtx, state: &mut LoopState) {
    let started = Instant::now();
    let ts = now_ms();
    let limit_error = ctx.over_limit.lock().clone();
    let fetched = match limit_error {
        Some(e) => Err(e),
        None => {
            fetch(
                &ctx.client,
                &ctx.url,
                &ctx.job,
                &ctx.shared.target,
                &mut state.body,
            )
            .await
        }
    };
    let fetch_failed = fetched.is_err();
    let body = fetched.and_then(|format| match format {
        BodyFormat::Proto => Ok(Body::Proto(&state.body)),
        BodyFormat::Text(format) => std::str::from_utf8(&state.body)
            .map(|b| Body::Text(b, format))
            .map_err(|_| "the body is not valid UTF-8".to_string()),
    });
    let cache = &mut state.cache;
    let (rows, stale, mut outcome) = {
        let mut meta = ctx.shared.metadata.lock();
        cache.process(body, ts, &ctx.settings, &mut meta)
    };
    if fetch_failed {
        outcome.scraped = 0;
        outcome.post_relabel = 0;
        outcome.series_added = 0;
    }
    if let Err(e) = cache.report_labels(&ctx.settings) {
        outcome.error.get_or_insert(e);
    }
    let duration = started.elapsed();
    let up = if outcome.error.is_none() { 1.0 } else { 0.0 };
    let values = [
        up,
        duration.as_secs_f64(),
        outcome.scraped as f64,
        outcome.post_relabel as f64,
        outcome.series_added as f64,
    ];
    let report = (cache.report.len() == REPORT.len()).then_some((ts, values));
    let appended = rows.len() as u64;
    if let Err(e) = commit(&ctx.db, &ctx.settings, cache, &rows, &stale, ts, report).await {
        ctx.metrics
            .append_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        outcome
            .error
            .get_or_insert(format!("appending the scrape failed: {e}"));
    } else {
        ctx.metrics
            .samples
            .fetch_add(appended, std::sync::atomic::Ordering::Relaxed);
    }
    cache.evict();
    ctx.metrics
        .scrapes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if outcome.error.is_some() {
        ctx.metrics
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut status = ctx.shared.status.lock();
    status.health = if outcome.error.is_none() {
        Health::Up
    } else {
        Health::Down
    };
    status.last_error = outcome.error.unwrap_or_default();
    status.last_scrape = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ts as u64));
    status.last_duration = duration;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(target: &[(&str, &str)], honor: bool) -> Settings {
        Settings {
            target_labels: target
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            honor_labels: honor,
            honor_timestamps: true,
            track_timestamps_staleness: false,
            metric_relabel: vec![],
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            storage_limits: LabelLimits::default(),
            histograms: HistogramOptions::default(),
        }
    }

    fn get(l: &Labels, n: &str) -> Option<String> {
        l.get(n).map(str::to_string)
    }

    #[test]
    fn protobuf_bodies_stage_native_histograms_and_their_staleness() {
        use quiver_ingest::exposition_proto::proto::{self, Histogram, Metric, MetricFamily};
        use quiver_ingest::histogram::proto::BucketSpan;
        let family = |name: &str| MetricFamily {
            name: name.into(),
            r#type: 4,
            metric: vec![Metric {
                histogram: Some(Histogram {
                    sample_count: 2,
                    sample_sum: 3.0,
                    schema: 1,
                    positive_span: vec![BucketSpan {
                        offset: 0,
                        length: 1,
                    }],
                    positive_delta: vec![2],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut s = settings(&[("job", "j")], false);
        s.histograms.native = true;
        let mut c = ScrapeCache::default();
        let mut meta = HashMap::new();
        let body = proto::encode(&[family("a"), family("b")]);
        let (rows, _, out) = c.process(Ok(Body::Proto(&body)), 1000, &s, &mut meta);
        assert_eq!(out.error, None);
        assert_eq!((rows.rows.len(), rows.hists.len()), (0, 2));
        assert_eq!(rows.hists[0].2.count, 2.0);
        assert_eq!(
            meta["a"].kind,
            quiver_ingest::exposition::MetricType::Histogram
        );
        // `b` goes away: it is marked stale (a float marker ends a histogram series too).
        let body = proto::encode(&[family("a")]);
        let (rows, stale, _) = c.process(Ok(Body::Proto(&body)), 2000, &s, &mut meta);
        assert_eq!((rows.hists.len(), stale.len()), (1, 1));
        assert_eq!(&*c.entries[stale[0] as usize].key, "{\"b\"}");
        // Without native histograms the same body is classic series.
        s.histograms.native = false;
        let mut c = ScrapeCache::default();
        let (rows, _, _) = c.process(Ok(Body::Proto(&body)), 3000, &s, &mut meta);
        assert_eq!((rows.rows.len(), rows.hists.len()), (3, 0));
        // A malformed body keeps nothing.
        let (rows, _, out) = c.process(Ok(Body::Proto(&[9, 9])), 4000, &s, &mut meta);
        assert!(out.error.is_some());
        assert_eq!(rows.len(), 0);
    }

    #[test]
    fn le_and_quantile_values_are_written_as_openmetrics_floats_as_prometheus_3_does() {
        let s = settings(&[("job", "j")], false);
        let mut c = ScrapeCache::default();
        let mut meta = HashMap::new();
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
                    # TYPE s summary\ns{quantile=\"0.5\"} 3\ns{quantile=\"1\"} 4\n\
                    # TYPE g gauge\ng{le=\"1\"} 5\n";
        let (rows, _, out) = c.process(Ok(Body::Text(body, Format::Text)), 1000, &s, &mut meta);
        assert_eq!((out.error, rows.rows.len()), (None, 5));
        let value = |i: usize, n: &str| {
            c.entries[rows.rows[i].0 as usize]
                .labels
                .as_ref()
                .and_then(|l| l.get(n).map(str::to_string))
        };
        assert_eq!(value(0, "le").as_deref(), Some("1.0"));
        assert_eq!(value(1, "le").as_deref(), Some("+Inf"));
        assert_eq!(value(2, "quantile").as_deref(), Some("0.5"));
        assert_eq!(value(3, "quantile").as_deref(), Some("1.0"));
        // Only in histograms and summaries.
        assert_eq!(value(4, "le").as_deref(), Some("1"));
        assert_eq!(value(0, "job").as_deref(), Some("j"));
    }

    #[test]
    fn target_labels_win_and_conflicts_are_exported() {
        let s = settings(&[("job", "j"), ("instance", "i")], false);
        let l = label_sample("m{instance=\"exposed\",job=\"x\",exported_job=\"y\"}", &s)
            .unwrap()
            .unwrap();
        assert_eq!(get(&l, "instance").as_deref(), Some("i"));
        assert_eq!(get(&l, "exported_instance").as_deref(), Some("exposed"));
        assert_eq!(get(&l, "job").as_deref(), Some("j"));
        assert_eq!(get(&l, "exported_exported_job").as_deref(), Some("x"));
        assert_eq!(get(&l, "exported_job").as_deref(), Some("y"));
    }

    #[test]
    fn honor_labels_keeps_exposed_values() {
        let s = settings(&[("job", "j"), ("instance", "i")], true);
        let l = label_sample("m{instance=\"exposed\"}", &s)
            .unwrap()
            .unwrap();
        assert_eq!(get(&l, "instance").as_deref(), Some("exposed"));
        assert_eq!(get(&l, "job").as_deref(), Some("j"));
        assert_eq!(get(&l, "exported_instance"), None);
    }

    #[test]
    fn metric_relabel_drop_and_limits() {
        let mut s = settings(&[("job", "j")], false);
        s.metric_relabel = vec![
            serde_yaml_ng::from_str("{source_labels: [__name__], regex: 'go_.*', action: drop}")
                .unwrap(),
        ];
        assert_eq!(label_sample("go_gc", &s).unwrap(), None);
        s.label_limit = 2;
        assert!(
            label_sample("m{a=\"1\",b=\"2\"}", &s)
                .unwrap_err()
                .contains("label_limit")
        );
    }

    fn stage(
        cache: &mut ScrapeCache,
        body: &str,
        ts: i64,
        s: &Settings,
    ) -> (Vec<(u32, i64, f64)>, Vec<u32>, Outcome) {
        let mut meta = HashMap::new();
        let (rows, stale, out) =
            cache.process(Ok(Body::Text(body, Format::Text)), ts, s, &mut meta);
        // Pretend the append gave every series an id so the next scrape hits the cache.
        for e in &mut cache.entries {
            if !e.dropped && e.id.is_none() {
                e.id = Some(SeriesId(1));
                e.labels = None;
            }
        }
        (rows.rows, stale, out)
    }

    #[test]
    fn disappearing_series_go_stale_and_failures_stale_everything() {
        let s = settings(&[("job", "j")], false);
        let mut c = ScrapeCache::default();
        let (rows, stale, out) = stage(&mut c, "a 1\nb 2\nc 3 1000\n", 5000, &s);
        assert_eq!(rows.len(), 3);
        assert!(stale.is_empty());
        assert_eq!((out.scraped, out.post_relabel, out.series_added), (3, 3, 3));
        assert_eq!(rows[2].1, 1000, "an exposed timestamp is honored");
        let (_, stale, out) = stage(&mut c, "a 1\nc 3 2000\n", 6000, &s);
        assert_eq!(out.series_added, 0);
        let names: Vec<&str> = stale.iter().map(|i| &*c.entries[*i as usize].key).collect();
        assert_eq!(
            names,
            ["b"],
            "series with exposed timestamps get no staleness markers"
        );
        let mut meta = HashMap::new();
        let (rows, stale, out) = c.process(Err("down".into()), 7000, &s, &mut meta);
        assert!(rows.rows.is_empty() && out.error.is_some());
        let names: Vec<&str> = stale.iter().map(|i| &*c.entries[*i as usize].key).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn track_timestamps_staleness_marks_timestamped_series_too() {
        let mut s = settings(&[("job", "j")], false);
        s.track_timestamps_staleness = true;
        let mut c = ScrapeCache::default();
        stage(&mut c, "a 1 1000\nb 2\n", 5000, &s);
        let (_, stale, _) = stage(&mut c, "b 2\n", 6000, &s);
        assert_eq!(stale.len(), 1, "the timestamped series a goes stale");
    }

    /// A loop told to stop with staleness markers writes them about two intervals later,
    /// unless the pool switches it to a quiet stop first (its target came back).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn end_of_run_staleness_is_written_unless_cancelled() {
        use crate::config::file::ConfigFile;
        use crate::scrape::target::{Populated, populate};
        let dir = tempfile::tempdir().unwrap();
        let blocks = dir.path().join("blocks");
        std::fs::create_dir_all(&blocks).unwrap();
        let store =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&blocks).unwrap());
        let db = Db::open(quiver_storage::Options::new(dir.path().join("wal"), store))
            .await
            .unwrap();
        let cfg = ConfigFile::parse(
            "t.yml",
            "scrape_configs: [{job_name: a, scrape_interval: 1s, static_configs: [{targets: ['127.0.0.1:1']}]}]",
        )
        .unwrap();
        let job = cfg.jobs().remove(0);
        let run = |how: Stop, cancel: bool| {
            let (db, job) = (db.clone(), job.clone());
            async move {
                let Populated::Active(target) = populate(
                    &job,
                    LabelMap::from([("__address__".into(), "127.0.0.1:1".into())]),
                )
                .unwrap() else {
                    panic!()
                };
                let settings = Settings::new(&job, &target, LabelLimits::default());
                let ctx = LoopCtx {
                    db: db.clone(),
                    client: reqwest::Client::new(),
                    url: target.url.clone(),
                    job: Arc::new(job),
                    shared: Arc::new(TargetShared::new(target, "a".into())),
                    settings,
                    metrics: Default::default(),
                    over_limit: Default::default(),
                };
                let before = db.head_stats().num_samples;
                let mut state = LoopState::default();
                // One scrape of a port nothing listens on: the five report series.
                scrape_once(&ctx, &mut state).await;
                assert_eq!(db.head_stats().num_samples, before + 5);
                let (tx, rx) = tokio::sync::watch::channel(how);
                let task = tokio::spawn(run_loop(ctx, state, rx));
                if cancel {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    tx.send(Stop::Quiet).unwrap();
                }
                tokio::time::timeout(Duration::from_secs(5), task)
                    .await
                    .unwrap()
                    .unwrap();
                db.head_stats().num_samples - before
            }
        };
        assert_eq!(
            run(Stop::Stale, false).await,
            10,
            "five samples and five markers"
        );
        assert_eq!(run(Stop::Stale, true).await, 5, "cancelled: no markers");
        db.close().await;
    }

    #[test]
    fn a_malformed_body_keeps_nothing() {
        let s = settings(&[("job", "j")], false);
        let mut c = ScrapeCache::default();
        stage(&mut c, "a 1\n", 1000, &s);
        let (rows, stale, out) = stage(&mut c, "a 2\nb{ 3\n", 2000, &s);
        assert!(rows.is_empty());
        assert!(out.error.unwrap().contains("line 2"));
        assert_eq!(stale.len(), 1);
    }

    #[test]
    fn sample_limit_fails_the_scrape() {
        let mut s = settings(&[("job", "j")], false);
        s.sample_limit = 2;
        let mut c = ScrapeCache::default();
        let (rows, _, out) = stage(&mut c, "a 1\nb 2\nc 3\n", 1000, &s);
        assert!(rows.is_empty());
        assert!(out.error.unwrap().contains("sample_limit"));
    }

    #[test]
    fn duplicates_in_one_scrape_count_once() {
        let s = settings(&[("job", "j")], false);
        let mut c = ScrapeCache::default();
        let (rows, _, out) = stage(&mut c, "a 1\na 2\n", 1000, &s);
        assert_eq!(rows.len(), 1);
        assert_eq!((out.scraped, out.post_relabel), (2, 1));
    }
}
