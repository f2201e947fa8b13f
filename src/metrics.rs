//! Quiver's own metrics, rendered in the Prometheus text format on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use quiver_storage::Db;

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters the server keeps itself (the storage keeps its own).
#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub remote_write_samples: AtomicU64,
    /// Samples stored from OTLP, and data points refused.
    pub otlp_samples: AtomicU64,
    pub otlp_rejected_points: AtomicU64,
    /// Scrape counters, shared with the scrape loops.
    pub scrape: std::sync::Arc<crate::scrape::scraper::ScrapeMetrics>,
    /// 1 when the last configuration (re)load succeeded.
    pub config_reload_failed: std::sync::atomic::AtomicBool,
    /// When the configuration was last loaded successfully (seconds since the epoch).
    pub config_last_success: AtomicU64,
    requests: Mutex<BTreeMap<(String, u16), Histogram>>,
}

impl ServerMetrics {
    pub fn observe_request(&self, route: &str, code: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut requests = self.requests.lock();
        let h = requests.entry((route.to_string(), code)).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The text exposition of every metric.
    pub fn render(&self, db: Option<&Db>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "quiver_ready",
            "gauge",
            "Whether WAL replay is done and the storage serves.",
            db.is_some() as u8 as f64,
        );
        metric(
            "quiver_remote_write_samples_total",
            "counter",
            "Samples received over remote write.",
            self.remote_write_samples.load(Ordering::Relaxed) as f64,
        );
        metric(
            "quiver_otlp_samples_total",
            "counter",
            "Samples stored from OTLP metrics.",
            self.otlp_samples.load(Ordering::Relaxed) as f64,
        );
        metric(
            "quiver_otlp_rejected_data_points_total",
            "counter",
            "OTLP data points refused (answered as a partial success).",
            self.otlp_rejected_points.load(Ordering::Relaxed) as f64,
        );
        let sc = &self.scrape;
        metric(
            "quiver_scrapes_total",
            "counter",
            "Scrapes attempted, over every target.",
            sc.scrapes.load(Ordering::Relaxed) as f64,
        );
        metric(
            "quiver_scrape_failures_total",
            "counter",
            "Scrapes that failed (up = 0).",
            sc.failures.load(Ordering::Relaxed) as f64,
        );
        metric(
            "quiver_scrape_samples_total",
            "counter",
            "Scraped samples appended.",
            sc.samples.load(Ordering::Relaxed) as f64,
        );
        metric(
            "quiver_config_last_reload_successful",
            "gauge",
            "Whether the last configuration reload succeeded.",
            if self.config_reload_failed.load(Ordering::Relaxed) {
                0.0
            } else {
                1.0
            },
        );
        metric(
            "quiver_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the configuration was last loaded successfully.",
            self.config_last_success.load(Ordering::Relaxed) as f64,
        );
        if let Some(db) = db {
            let m = db.metrics();
            let c = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
            metric(
                "quiver_ingested_samples_total",
                "counter",
                "Samples appended (in the WAL and the head).",
                c(&m.samples_appended),
            );
            metric(
                "quiver_series_created_total",
                "counter",
                "Series created.",
                c(&m.series_created),
            );
            metric(
                "quiver_appends_failed_total",
                "counter",
                "Appends that failed to reach the WAL.",
                c(&m.appends_failed),
            );
            metric(
                "quiver_wal_fsyncs_total",
                "counter",
                "WAL fsyncs (one per group commit).",
                c(&m.wal.fsyncs),
            );
            metric(
                "quiver_wal_records_total",
                "counter",
                "WAL records written.",
                c(&m.wal.records),
            );
            metric(
                "quiver_wal_written_bytes_total",
                "counter",
                "Bytes written to the WAL.",
                c(&m.wal.bytes),
            );
            metric(
                "quiver_wal_truncations_total",
                "counter",
                "Torn WAL tails (a crash in the middle of a write) cut at replay.",
                c(&m.wal.truncations),
            );
            metric(
                "quiver_wal_corrupt_segments_total",
                "counter",
                "Damaged WAL segments moved aside at replay (their good records kept).",
                c(&m.wal.corrupt_segments),
            );
            metric(
                "quiver_wal_write_failures_total",
                "counter",
                "WAL writes or fsyncs that failed; each refused the appends it carried.",
                c(&m.wal.write_failures),
            );
            metric(
                "quiver_head_flushes_total",
                "counter",
                "Head cuts into blocks.",
                c(&m.flushes),
            );
            metric(
                "quiver_compactions_total",
                "counter",
                "Block compactions.",
                c(&m.compactions),
            );
            metric(
                "quiver_blocks_deleted_total",
                "counter",
                "Blocks deleted by retention.",
                c(&m.blocks_deleted),
            );
            let head = db.head_stats();
            metric(
                "quiver_head_series",
                "gauge",
                "Series with samples in the head.",
                head.num_series as f64,
            );
            metric(
                "quiver_head_samples",
                "gauge",
                "Samples in the head.",
                head.num_samples as f64,
            );
            metric(
                "quiver_known_series",
                "gauge",
                "Series in the registry (head and blocks).",
                head.known_series as f64,
            );
            let blocks = db.block_stats();
            metric(
                "quiver_blocks",
                "gauge",
                "Blocks in the manifest.",
                blocks.len() as f64,
            );
            metric(
                "quiver_block_bytes",
                "gauge",
                "Bytes of block files.",
                blocks
                    .iter()
                    .map(|b| b.samples_bytes + b.series_bytes)
                    .sum::<u64>() as f64,
            );
            metric(
                "quiver_wal_bytes",
                "gauge",
                "Bytes of WAL segments on disk.",
                db.wal_bytes() as f64,
            );
        }
        let requests = self.requests.lock().clone();
        if !requests.is_empty() {
            let name = "quiver_http_request_duration_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} HTTP request latency by route and status code.\n# TYPE {name} histogram"
            );
            for ((route, code), h) in &requests {
                let labels = format!(
                    "handler=\"{}\",code=\"{code}\"",
                    route.replace('\\', "\\\\").replace('"', "\\\"")
                );
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {}", h.counts[i]);
                }
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_parse_as_the_text_format() {
        let m = ServerMetrics::default();
        m.observe_request("/api/v1/write", 204, Duration::from_millis(3));
        let text = m.render(None);
        let samples = quiver_ingest::text::parse(&text).unwrap();
        let bucket = samples
            .iter()
            .find(|s| s.labels.iter().any(|(n, v)| n == "le" && v == "0.005"))
            .expect("a 5 ms bucket");
        assert_eq!(bucket.value, 1.0);
        let below = samples
            .iter()
            .find(|s| s.labels.iter().any(|(n, v)| n == "le" && v == "0.0025"))
            .unwrap();
        assert_eq!(below.value, 0.0);
    }
}
