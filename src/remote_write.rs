//! `remote_write`: sending what Quiver stores to other stores (Prometheus, VictoriaMetrics,
//! Mimir…), as Prometheus does.
//!
//! Each `remote_write` entry is a queue: one reader follows the WAL from where it stood when the
//! queue started ([`quiver_storage::wal::tail::WalTail`]), gives each series its labels (the
//! global external labels where the series lacks them, then `write_relabel_configs`) and hands
//! each sample to one of `queue_config.min_shards` shards by series. A shard sends a batch of
//! up to `max_samples_per_send` samples, or what it has after `batch_send_deadline`, as remote
//! write 1.0 or 2.0 (snappy protobuf). A 5xx, a 429 (with `retry_on_http_429`) or a connection
//! error is retried with a backoff doubling from `min_backoff` to `max_backoff`, for as long as
//! it takes; any other 4xx drops the batch (counted as failed). While a shard retries, its
//! queue (`capacity` samples) fills and the reader waits: nothing is lost while the receiver is
//! down, until the WAL is truncated under the reader (a block flush), which skips what was
//! truncated and counts the segments skipped.
//!
//! The counters are Prometheus's `prometheus_remote_storage_*`, labelled with `remote_name` and
//! `url`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use quiver_storage::wal::tail::WalTail;
use quiver_storage::{Db, Labels, SeriesId};
use tokio::sync::{mpsc, watch};

use crate::config::file::{ConfigFile, REMOTE_WRITE_V2, RemoteWriteConfig};
use crate::http_client::{self, Credentials};
use crate::relabel::{self, LabelMap};

/// A series' labels as sent (sorted), shared by its samples.
type SeriesLabels = Arc<[(String, String)]>;

/// One sample on its way: its series' labels, timestamp (ms) and value.
struct Item {
    labels: SeriesLabels,
    t: i64,
    v: Value,
}

/// A sample's value: a float, or a native histogram (sent as a float histogram).
enum Value {
    Float(f64),
    Histogram(Arc<quiver_storage::FloatHistogram>),
}

/// Most series whose sent labels a queue remembers; past it the memory starts afresh.
const MAX_CACHED_SERIES: usize = 1_000_000;
/// Most WAL payload the reader takes at a time.
const READ_BYTES: usize = 4 << 20;

/// One queue's counters, as `/metrics` shows them.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    pub samples: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
    pub pending: AtomicI64,
    pub bytes: AtomicU64,
    /// Newest timestamp sent (ms), and read from the WAL.
    pub highest_sent_ms: AtomicI64,
    pub highest_read_ms: AtomicI64,
    pub skipped_segments: AtomicU64,
}

struct Queue {
    /// The entry and the external labels it was started with: a reload that leaves both alone
    /// keeps the queue running (and its place in the WAL).
    key: String,
    name: String,
    url: String,
    shards: usize,
    capacity: usize,
    metrics: Arc<QueueMetrics>,
    stop: watch::Sender<bool>,
    /// Set when the flush deadline has passed: sends in flight are dropped.
    abort: Arc<watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Every queue of the configuration in force.
#[derive(Default)]
pub struct RemoteWriter {
    /// How long stopping queues may go on sending what they hold (`--storage.remote.flush-deadline`).
    flush_deadline: Duration,
    queues: Mutex<Vec<Queue>>,
    /// Serializes apply and stop.
    applying: tokio::sync::Mutex<()>,
}

/// What a shard needs to send.
struct Sender {
    client: reqwest::Client,
    cfg: RemoteWriteConfig,
    v2: bool,
    metrics: Arc<QueueMetrics>,
    name: String,
}

/// A queue's name: the configured one, or a short hash of the entry, as Prometheus names them
/// (so reordering the entries keeps each queue).
fn queue_name(cfg: &RemoteWriteConfig) -> String {
    match &cfg.name {
        Some(n) => n.clone(),
        None => {
            use md5::Digest;
            let digest = md5::Md5::digest(format!("{cfg:?}").as_bytes());
            digest[..3].iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

impl RemoteWriter {
    pub fn new(flush_deadline: Duration) -> Arc<Self> {
        Arc::new(RemoteWriter {
            flush_deadline,
            ..RemoteWriter::default()
        })
    }

    /// Replaces the queues with the configuration's. Every client is built first: a
    /// configuration that cannot be (a missing CA file) changes nothing.
    pub async fn apply(&self, db: &Arc<Db>, file: &ConfigFile) -> Result<(), String> {
        let _guard = self.applying.lock().await;
        let external = &file.global.external_labels;
        let key = |cfg: &RemoteWriteConfig| format!("{cfg:?}|{external:?}");
        let mut senders = Vec::with_capacity(file.remote_write.len());
        for (i, cfg) in file.remote_write.iter().enumerate() {
            let client = http_client::build_client(
                cfg.tls_config.as_ref(),
                cfg.follow_redirects,
                false,
                None,
            )
            .map_err(|e| format!("remote_write[{i}]: {e}"))?;
            senders.push(Sender {
                client,
                cfg: cfg.clone(),
                v2: cfg.protobuf_message.as_deref() == Some(REMOTE_WRITE_V2),
                metrics: Arc::new(QueueMetrics::default()),
                name: queue_name(cfg),
            });
        }
        // The new list is in place (kept queues and new ones) before the old queues stop, so
        // the metrics never go missing during a reload.
        let mut old = std::mem::take(&mut *self.queues.lock());
        let mut started = 0;
        {
            let mut queues = self.queues.lock();
            for sender in senders {
                let k = key(&sender.cfg);
                if let Some(i) = old.iter().position(|q| q.key == k && q.name == sender.name) {
                    queues.push(old.swap_remove(i));
                    continue;
                }
                queues.push(start(
                    db.clone(),
                    db.wal_tail(),
                    sender,
                    external.clone(),
                    k,
                ));
                started += 1;
            }
        }
        stop_all(old, self.flush_deadline).await;
        if started > 0 {
            tracing::info!(started, "remote write queues started");
        }
        Ok(())
    }

    /// Stops every queue (at shutdown): what the shards hold is sent until the flush deadline,
    /// then dropped.
    pub async fn stop(&self) {
        let _guard = self.applying.lock().await;
        let old = std::mem::take(&mut *self.queues.lock());
        stop_all(old, self.flush_deadline).await;
    }

    /// Prometheus's `prometheus_remote_storage_*` metrics of every queue.
    pub fn render_metrics(&self, out: &mut String) {
        let queues = self.queues.lock();
        if queues.is_empty() {
            return;
        }
        type Read = fn(&Queue) -> f64;
        let families: &[(&str, &str, &str, Read)] = &[
            (
                "prometheus_remote_storage_samples_total",
                "counter",
                "Samples sent to remote storage.",
                |q| q.metrics.samples.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_failed_total",
                "counter",
                "Samples that failed to be sent (not retried).",
                |q| q.metrics.failed.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_retried_total",
                "counter",
                "Samples sent again after a recoverable error.",
                |q| q.metrics.retried.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_dropped_total",
                "counter",
                "Samples read from the WAL and not sent: dropped by write relabeling, older than sample_age_limit, or of an unknown series.",
                |q| q.metrics.dropped.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_pending",
                "gauge",
                "Samples waiting in the shards to be sent.",
                |q| q.metrics.pending.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_bytes_total",
                "counter",
                "Bytes of compressed requests sent.",
                |q| q.metrics.bytes.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                "gauge",
                "Newest timestamp successfully sent.",
                |q| q.metrics.highest_sent_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            ),
            (
                "prometheus_remote_storage_queue_highest_read_timestamp_seconds",
                "gauge",
                "Newest timestamp read from the WAL.",
                |q| q.metrics.highest_read_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            ),
            (
                "prometheus_remote_storage_shards",
                "gauge",
                "Shards sending in parallel.",
                |q| q.shards as f64,
            ),
            (
                "prometheus_remote_storage_shard_capacity",
                "gauge",
                "Samples each shard queues.",
                |q| q.capacity as f64,
            ),
            (
                "quiver_remote_storage_wal_segments_skipped_total",
                "counter",
                "WAL segments truncated before the queue read them (their samples were not sent).",
                |q| q.metrics.skipped_segments.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, kind, help, read) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for q in queues.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{remote_name={:?},url={:?}}} {}",
                    q.name,
                    q.url,
                    read(q)
                );
            }
        }
    }
}

/// Stops queues: their readers at once, their shards once they have sent what they hold or
/// `flush_deadline` has passed (then what is left is dropped).
async fn stop_all(queues: Vec<Queue>, flush_deadline: Duration) {
    if queues.is_empty() {
        return;
    }
    for q in &queues {
        let _ = q.stop.send(true);
    }
    let aborts: Vec<Arc<watch::Sender<bool>>> = queues.iter().map(|q| q.abort.clone()).collect();
    let tasks: Vec<_> = queues.into_iter().flat_map(|q| q.tasks).collect();
    let mut joined = Box::pin(futures::future::join_all(tasks));
    if tokio::time::timeout(flush_deadline, &mut joined)
        .await
        .is_err()
    {
        tracing::warn!("remote write: the flush deadline passed; samples not sent are dropped");
        for a in &aborts {
            let _ = a.send(true);
        }
        joined.await;
    }
}

fn start(
    db: Arc<Db>,
    tail: WalTail,
    sender: Sender,
    external: std::collections::BTreeMap<String, String>,
    key: String,
) -> Queue {
    let (stop, stop_rx) = watch::channel(false);
    let (abort, abort_rx) = watch::channel(false);
    let abort = Arc::new(abort);
    let q = sender.cfg.queue_config.clone();
    let shards = q.min_shards.max(1);
    let sender = Arc::new(sender);
    let mut txs = Vec::with_capacity(shards);
    let mut tasks = Vec::with_capacity(shards + 1);
    for _ in 0..shards {
        let (tx, rx) = mpsc::channel(q.capacity.max(1));
        txs.push(tx);
        tasks.push(tokio::spawn(run_shard(
            rx,
            sender.clone(),
            stop_rx.clone(),
            abort_rx.clone(),
        )));
    }
    let metrics = sender.metrics.clone();
    let queue = Queue {
        key,
        name: sender.name.clone(),
        url: sender.cfg.url.clone(),
        shards,
        capacity: q.capacity,
        metrics: metrics.clone(),
        stop,
        abort,
        tasks: Vec::new(),
    };
    let reader = Reader {
        db,
        relabel: sender.cfg.write_relabel_configs.clone(),
        external,
        age_limit_ms: q.sample_age_limit.0.as_millis() as i64,
        send_histograms: sender.v2 || sender.cfg.send_native_histograms,
        cache: HashMap::new(),
        metrics,
    };
    tasks.insert(0, tokio::spawn(reader.run(tail, txs, stop_rx)));
    Queue { tasks, ..queue }
}

struct Reader {
    db: Arc<Db>,
    relabel: Vec<crate::relabel::RelabelConfig>,
    external: std::collections::BTreeMap<String, String>,
    age_limit_ms: i64,
    /// Native histograms are sent: always in 2.0, with `send_native_histograms` in 1.0 (as
    /// Prometheus; otherwise they are left out, not counted as failed).
    send_histograms: bool,
    /// Each series' labels as sent; `None` when write relabeling drops it.
    cache: HashMap<SeriesId, Option<SeriesLabels>>,
    metrics: Arc<QueueMetrics>,
}

impl Reader {
    /// The labels a series is sent with, or `None` when it is not sent.
    fn labels_for(&self, labels: &Labels) -> Option<SeriesLabels> {
        let mut map: LabelMap = labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        for (k, v) in &self.external {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if !relabel::process(&mut map, &self.relabel) || map.is_empty() {
            return None;
        }
        Some(map.into_iter().collect::<Vec<_>>().into())
    }

    async fn run(
        mut self,
        mut tail: WalTail,
        shards: Vec<mpsc::Sender<Item>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut idle = Duration::from_millis(50);
        loop {
            if *stop.borrow() {
                return;
            }
            let skipped_before = tail.skipped_segments;
            let (back, read) = match tokio::task::spawn_blocking(move || {
                let r = tail.read(READ_BYTES);
                (tail, r)
            })
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("remote write: the WAL reader failed: {e}");
                    return;
                }
            };
            tail = back;
            let skipped = tail.skipped_segments - skipped_before;
            if skipped > 0 {
                self.metrics
                    .skipped_segments
                    .fetch_add(skipped, Ordering::Relaxed);
                tracing::warn!(
                    segments = skipped,
                    "remote write fell behind the WAL: segments truncated before they were sent are skipped"
                );
            }
            let records = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("remote write: reading the WAL: {e}");
                    Vec::new()
                }
            };
            if records.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                idle = (idle * 2).min(Duration::from_millis(500));
                continue;
            }
            idle = Duration::from_millis(50);
            let now = quiver_storage::maintenance::now_ms();
            for rec in records {
                if self.cache.len() > MAX_CACHED_SERIES {
                    self.cache.clear();
                }
                for (id, labels) in &rec.new_series {
                    let sent = self.labels_for(labels);
                    self.cache.insert(*id, sent);
                }
                let floats = rec
                    .series_ids
                    .iter()
                    .zip(&rec.timestamps)
                    .zip(&rec.values)
                    .map(|((id, t), v)| (id, t, Value::Float(*v)));
                let histograms = rec
                    .hist_ids
                    .iter()
                    .zip(&rec.hist_timestamps)
                    .zip(&rec.histograms)
                    .filter(|_| self.send_histograms)
                    .map(|((id, t), h)| (id, t, Value::Histogram(h.clone())));
                for (id, t, v) in floats.chain(histograms) {
                    self.metrics
                        .highest_read_ms
                        .fetch_max(*t, Ordering::Relaxed);
                    let labels = match self.cache.get(id) {
                        Some(l) => l.clone(),
                        None => {
                            let l = self.db.labels(*id).and_then(|l| self.labels_for(&l));
                            self.cache.insert(*id, l.clone());
                            l
                        }
                    };
                    let Some(labels) = labels else {
                        self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if self.age_limit_ms > 0 && *t < now - self.age_limit_ms {
                        self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let shard = &shards[(id.0 as usize) % shards.len()];
                    self.metrics.pending.fetch_add(1, Ordering::Relaxed);
                    let item = Item { labels, t: *t, v };
                    // Waits while the shard is full: the WAL holds the rest meanwhile.
                    let sent = tokio::select! {
                        r = shard.send(item) => r.is_ok(),
                        _ = stop.wait_for(|s| *s) => false,
                    };
                    if !sent {
                        self.metrics.pending.fetch_sub(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }
    }
}

async fn run_shard(
    mut rx: mpsc::Receiver<Item>,
    sender: Arc<Sender>,
    mut stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
) {
    let q = &sender.cfg.queue_config;
    let max = q.max_samples_per_send;
    let mut batch: Vec<Item> = Vec::with_capacity(max.min(10_000));
    let mut stopping = false;
    loop {
        let deadline = tokio::time::sleep(q.batch_send_deadline.0);
        tokio::pin!(deadline);
        // Fill the batch until it is full or the deadline passes; once stopping, take what
        // is queued without waiting.
        while batch.len() < max {
            if stopping {
                match rx.try_recv() {
                    Ok(i) => batch.push(i),
                    Err(_) => break,
                }
                continue;
            }
            tokio::select! {
                item = rx.recv() => match item {
                    Some(i) => batch.push(i),
                    None => {
                        stopping = true;
                    }
                },
                _ = &mut deadline => break,
                _ = stop.wait_for(|s| *s) => {
                    // Flush what is queued, until the flush deadline aborts it.
                    stopping = true;
                }
            }
        }
        if batch.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let sent = std::mem::take(&mut batch);
        if !sender.send(sent, &mut abort).await {
            drop_pending(&sender, rx.len());
            return;
        }
    }
}

fn drop_pending(sender: &Sender, n: usize) {
    sender
        .metrics
        .pending
        .fetch_sub(n as i64, Ordering::Relaxed);
}

impl Sender {
    /// Encodes a batch: samples grouped by series, in order.
    fn encode(&self, batch: &[Item]) -> Vec<u8> {
        use quiver_ingest::histogram::proto::Histogram;
        type Samples = (Vec<(i64, f64)>, Vec<Histogram>);
        let mut order: Vec<&SeriesLabels> = Vec::new();
        let mut by_series: HashMap<*const (String, String), Samples> = HashMap::new();
        for i in batch {
            let key = i.labels.as_ptr();
            let entry = by_series.entry(key).or_insert_with(|| {
                order.push(&i.labels);
                Samples::default()
            });
            match &i.v {
                Value::Float(v) => entry.0.push((i.t, *v)),
                Value::Histogram(h) => entry.1.push(Histogram::from_float(i.t, h)),
            }
        }
        type Series<'a> = (Vec<(&'a str, &'a str)>, &'a Samples);
        let series: Vec<Series<'_>> = order
            .iter()
            .map(|l| {
                (
                    l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
                    &by_series[&l.as_ptr()],
                )
            })
            .collect();
        if self.v2 {
            use quiver_ingest::remote_write2::proto;
            let specs: Vec<proto::SeriesSpec<'_>> = series
                .iter()
                .map(|(l, s)| (l.clone(), s.0.clone(), None))
                .collect();
            let mut req = proto::request(&specs);
            for (ts, (_, s)) in req.timeseries.iter_mut().zip(&series) {
                ts.histograms = s.1.clone();
            }
            proto::compress(&req)
        } else {
            use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
            encode(&WriteRequest {
                timeseries: series
                    .iter()
                    .map(|(l, s)| {
                        let mut ts = TimeSeries::from_pairs(l, &s.0);
                        ts.histograms = s.1.clone();
                        ts
                    })
                    .collect(),
            })
        }
    }

    /// Sends a batch until it is taken, refused for good, or the queue stops (false).
    async fn send(&self, mut batch: Vec<Item>, abort: &mut watch::Receiver<bool>) -> bool {
        let q = &self.cfg.queue_config;
        let mut body = self.encode(&batch);
        let mut backoff = q.min_backoff.0;
        loop {
            let n = batch.len();
            let outcome = tokio::select! {
                o = self.post(body.clone()) => o,
                _ = abort.wait_for(|s| *s) => {
                    self.metrics.pending.fetch_sub(n as i64, Ordering::Relaxed);
                    return false;
                }
            };
            let retry = match outcome {
                Ok(()) => {
                    let m = &self.metrics;
                    m.samples.fetch_add(n as u64, Ordering::Relaxed);
                    m.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    if let Some(t) = batch.iter().map(|i| i.t).max() {
                        m.highest_sent_ms.fetch_max(t, Ordering::Relaxed);
                    }
                    false
                }
                Err(Failure::Retry(e, after)) => {
                    // The receiver's Retry-After, when it gives one (at most five minutes).
                    if let Some(after) = after {
                        backoff = after.min(Duration::from_secs(300));
                    }
                    tracing::warn!(remote_name = %self.name, url = %self.cfg.url, "remote write failed, retrying in {backoff:?}: {e}");
                    true
                }
                Err(Failure::Drop(e)) => {
                    tracing::error!(remote_name = %self.name, url = %self.cfg.url, samples = n, "remote write refused, dropping the batch: {e}");
                    self.metrics.failed.fetch_add(n as u64, Ordering::Relaxed);
                    false
                }
            };
            if !retry {
                self.metrics.pending.fetch_sub(n as i64, Ordering::Relaxed);
                return true;
            }
            self.metrics.retried.fetch_add(n as u64, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = abort.wait_for(|s| *s) => {
                    self.metrics.pending.fetch_sub(n as i64, Ordering::Relaxed);
                    return false;
                }
            }
            backoff = (backoff * 2).min(q.max_backoff.0);
            // Samples that grew older than sample_age_limit while retrying are dropped.
            let limit = q.sample_age_limit.0.as_millis() as i64;
            if limit > 0 {
                let oldest = quiver_storage::maintenance::now_ms() - limit;
                batch.retain(|i| i.t >= oldest);
                let dropped = n - batch.len();
                if dropped > 0 {
                    self.metrics
                        .dropped
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                    self.metrics
                        .pending
                        .fetch_sub(dropped as i64, Ordering::Relaxed);
                    if batch.is_empty() {
                        return true;
                    }
                    body = self.encode(&batch);
                }
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), Failure> {
        let cfg = &self.cfg;
        let (content_type, version) = if self.v2 {
            (
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                "2.0.0",
            )
        } else {
            ("application/x-protobuf", "0.1.0")
        };
        let mut req = self
            .client
            .post(&cfg.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", version)
            .timeout(cfg.remote_timeout.0)
            .body(body);
        for (k, v) in &cfg.headers {
            req = req.header(k, v);
        }
        let req = http_client::authorize(
            req,
            Credentials {
                basic_auth: cfg.basic_auth.as_ref(),
                authorization: cfg.authorization.as_ref(),
                bearer_token: cfg.bearer_token.as_ref(),
                bearer_token_file: cfg.bearer_token_file.as_ref(),
            },
        )
        .map_err(|e| Failure::Retry(e, None))?;
        let mut resp = req.send().await.map_err(|e| {
            // A request that cannot even be built will not build next time either.
            if e.is_builder() {
                Failure::Drop(crate::error::error_chain(&e))
            } else {
                Failure::Retry(crate::error::error_chain(&e), None)
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // At most 1 KiB of the answer, as Prometheus reads.
        let mut text = Vec::new();
        while text.len() < 1024 {
            match resp.chunk().await {
                Ok(Some(c)) => text.extend_from_slice(&c[..c.len().min(1024 - text.len())]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&text);
        let message = format!("HTTP {status}: {}", text.trim());
        if status.is_server_error()
            || (status == reqwest::StatusCode::TOO_MANY_REQUESTS
                && cfg.queue_config.retry_on_http_429)
        {
            Err(Failure::Retry(message, after))
        } else {
            Err(Failure::Drop(message))
        }
    }
}

enum Failure {
    /// A 5xx, a 429, or no answer: send again (after the receiver's Retry-After, if any).
    Retry(String, Option<Duration>),
    /// Any other refusal: sending again would be refused again.
    Drop(String),
}
