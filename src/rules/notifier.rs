//! Sends alerts to Alertmanager (`POST /api/v2/alerts`), as Prometheus's notifier does: external
//! labels added (the alert's own win), `alert_relabel_configs` applied, batches of 64 to every
//! discovered Alertmanager, a batch delivered once any of them takes it.
//!
//! Unlike Prometheus, a batch no Alertmanager took stays queued and is retried (backing off up
//! to 10 s) until one comes back: the queue is bounded (`--alertmanager.notification-queue-capacity`),
//! the oldest alerts dropped (and counted) past it, and a newer state of the same alert replaces
//! a queued one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::alerting::Notification;
use crate::config::file::{AlertingConfig, AlertmanagerConfig};
use crate::discovery::{FILE_POLL, FileSd, TargetGroup, static_groups};
use crate::http_client::{self, Credentials};
use crate::relabel::{LabelMap, process};

/// Alerts per request.
const BATCH: usize = 64;
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The notifier.
pub struct Notifier {
    capacity: usize,
    config: RwLock<(BTreeMap<String, String>, AlertingConfig)>,
    sets: RwLock<Vec<Arc<AmSet>>>,
    queue: Mutex<VecDeque<Notification>>,
    wake: Notify,
    pub metrics: NotifierMetrics,
}

/// Counters for Quiver's `/metrics`.
#[derive(Debug, Default)]
pub struct NotifierMetrics {
    /// Alerts delivered (to at least one Alertmanager).
    pub sent: AtomicU64,
    /// Requests that failed, per attempt and Alertmanager.
    pub errors: AtomicU64,
    /// Alerts dropped: relabeled away, no Alertmanager configured, or the queue full.
    pub dropped: AtomicU64,
}

/// One `alertmanagers` entry: its client and the Alertmanagers it found.
pub struct AmSet {
    config: AlertmanagerConfig,
    client: reqwest::Client,
    file_sd: Mutex<FileSd>,
    /// (active URLs, URLs dropped by relabeling)
    found: RwLock<(Vec<String>, Vec<String>)>,
}

impl Notifier {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Notifier {
            capacity: capacity.max(1),
            config: RwLock::new(Default::default()),
            sets: RwLock::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            metrics: NotifierMetrics::default(),
        })
    }

    /// Takes a (re)loaded configuration: external labels, relabeling, Alertmanagers. The queue
    /// is kept.
    pub fn apply(
        &self,
        external_labels: BTreeMap<String, String>,
        alerting: &AlertingConfig,
    ) -> Result<(), String> {
        let sets = Self::prepare(alerting)?;
        self.install(external_labels, alerting, sets);
        Ok(())
    }

    /// Builds the Alertmanager sets of a configuration (their clients and discovery) without
    /// changing the running ones.
    pub fn prepare(alerting: &AlertingConfig) -> Result<Vec<Arc<AmSet>>, String> {
        let mut sets = Vec::new();
        for (i, am) in alerting.alertmanagers.iter().enumerate() {
            let client =
                http_client::build_client(am.tls_config.as_ref(), am.follow_redirects, false, None)
                    .map_err(|e| format!("alerting.alertmanagers[{i}]: {e}"))?;
            let set = AmSet {
                config: am.clone(),
                client,
                file_sd: Mutex::new(FileSd::new(am.file_sd_configs.clone())),
                found: RwLock::new((Vec::new(), Vec::new())),
            };
            set.refresh(true);
            sets.push(Arc::new(set));
        }
        Ok(sets)
    }

    /// Puts prepared sets in force.
    pub fn install(
        &self,
        external_labels: BTreeMap<String, String>,
        alerting: &AlertingConfig,
        sets: Vec<Arc<AmSet>>,
    ) {
        *self.config.write() = (external_labels, alerting.clone());
        *self.sets.write() = sets;
        self.wake.notify_one();
    }

    /// Queues alerts for sending.
    pub fn send(&self, alerts: Vec<Notification>) {
        let (external, cfg) = self.config.read().clone();
        let mut queue = self.queue.lock();
        for mut a in alerts {
            for (k, v) in &external {
                a.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if !cfg.alert_relabel_configs.is_empty() {
                let mut l: LabelMap = a.labels.clone();
                if !process(&mut l, &cfg.alert_relabel_configs) {
                    self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                a.labels = l;
            }
            match queue.iter_mut().find(|q| q.labels == a.labels) {
                Some(q) => *q = a,
                None => queue.push_back(a),
            }
        }
        while queue.len() > self.capacity {
            queue.pop_front();
            self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// Alerts waiting to be delivered.
    pub fn queue_length(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The Alertmanagers in use and those relabeling dropped (their alert URLs).
    pub fn alertmanagers(&self) -> (Vec<String>, Vec<String>) {
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for s in self.sets.read().iter() {
            let f = s.found.read();
            active.extend(f.0.iter().cloned());
            dropped.extend(f.1.iter().cloned());
        }
        (active, dropped)
    }

    /// Delivers the queue until `stop` turns true, and follows file SD.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(250);
        let mut next_poll = tokio::time::Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            if tokio::time::Instant::now() >= next_poll {
                let sets = self.sets.read().clone();
                for s in &sets {
                    s.refresh(false);
                }
                next_poll = tokio::time::Instant::now() + FILE_POLL;
            }
            let batch: Vec<Notification> = {
                let q = self.queue.lock();
                q.iter().take(BATCH).cloned().collect()
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep_until(next_poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let outcome = self.deliver(&batch).await;
            if let Delivery::Failed = outcome {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            // Drop what was sent, unless a newer state replaced it meanwhile.
            self.queue.lock().retain(|a| !batch.contains(a));
            let counter = match outcome {
                Delivery::NoAlertmanagers => &self.metrics.dropped,
                _ => &self.metrics.sent,
            };
            counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
            backoff = Duration::from_millis(250);
        }
    }

    /// Posts one batch to every Alertmanager.
    async fn deliver(&self, batch: &[Notification]) -> Delivery {
        let body = Value::Array(batch.iter().map(alert_json).collect()).to_string();
        let sets = self.sets.read().clone();
        let mut attempts = Vec::new();
        for s in &sets {
            for url in s.found.read().0.clone() {
                let set = s.clone();
                let body = body.clone();
                attempts.push(async move { set.post(&url, body).await.map_err(|e| (url, e)) });
            }
        }
        if attempts.is_empty() {
            return Delivery::NoAlertmanagers;
        }
        let mut any = false;
        for r in futures::future::join_all(attempts).await {
            match r {
                Ok(()) => any = true,
                Err((url, e)) => {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(alertmanager = %url, "sending alerts failed: {e}");
                }
            }
        }
        if any {
            Delivery::Done
        } else {
            Delivery::Failed
        }
    }
}

enum Delivery {
    Done,
    NoAlertmanagers,
    Failed,
}

impl AmSet {
    /// Re-reads file SD (when it changed, or always with `force`) and relabels the targets into
    /// alert URLs.
    fn refresh(&self, force: bool) {
        let mut groups: Vec<TargetGroup> = static_groups(&self.config.static_configs);
        {
            let mut sd = self.file_sd.lock();
            if sd.is_empty() {
                if !force {
                    return;
                }
            } else {
                let (changed, errors) = sd.poll(force);
                for e in errors {
                    tracing::warn!("alertmanager discovery: {e}");
                }
                if changed.is_none() && !force {
                    return;
                }
                groups.extend(sd.current());
            }
        }
        let cfg = &self.config;
        let path = format!("{}/api/v2/alerts", cfg.path_prefix.trim_end_matches('/'));
        let (mut active, mut dropped) = (Vec::new(), Vec::new());
        for g in groups {
            for t in &g.targets {
                let mut l: LabelMap = g.labels.clone().into_iter().collect();
                l.extend(t.clone());
                l.insert("__scheme__".into(), cfg.scheme.as_str().into());
                l.insert("__alerts_path__".into(), path.clone());
                let url_of = |l: &LabelMap| {
                    format!(
                        "{}://{}{}",
                        l.get("__scheme__").map(String::as_str).unwrap_or("http"),
                        l.get("__address__").map(String::as_str).unwrap_or_default(),
                        l.get("__alerts_path__")
                            .map(String::as_str)
                            .unwrap_or_default()
                    )
                };
                let before = url_of(&l);
                if process(&mut l, &cfg.relabel_configs) {
                    let u = url_of(&l);
                    if !active.contains(&u) {
                        active.push(u);
                    }
                } else {
                    dropped.push(before);
                }
            }
        }
        *self.found.write() = (active, dropped);
    }

    async fn post(&self, url: &str, body: String) -> Result<(), String> {
        let cfg = &self.config;
        let req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(cfg.timeout.0)
            .body(body);
        let req = http_client::authorize(
            req,
            Credentials {
                basic_auth: cfg.basic_auth.as_ref(),
                authorization: cfg.authorization.as_ref(),
                bearer_token: cfg.bearer_token.as_ref(),
                bearer_token_file: cfg.bearer_token_file.as_ref(),
            },
        )?;
        let resp = req
            .send()
            .await
            .map_err(|e| crate::error::error_chain(&e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            Err(format!("HTTP {status}: {}", text.trim()))
        }
    }
}

/// An alert in Alertmanager's API v2 shape.
pub fn alert_json(a: &Notification) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339_ms(a.starts_at),
        "endsAt": rfc3339_ms(a.ends_at),
        "generatorURL": a.generator_url,
    })
}

/// `2026-11-25T05:31:43.114Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
