//! Native histograms against classic buckets, side by side: the same request latencies
//! (vLLM-style time to first token, a lognormal per series) recorded both as native histograms
//! (schema 3, integer counts) and as classic buckets (`_bucket{le}` for 12 bounds, `_sum`,
//! `_count`), remote-written into Quiver and into Prometheus 2.42 (started with
//! `--enable-feature=native-histograms`). Then the dashboard queries over each form, and the
//! bytes a native histogram sample takes at rest.
//!
//! Run: `taskset -c 0 cargo bench --bench histogram_side_by_side` (servers pinned to core 1).
//! Shape by environment: `SERIES` (192), `HOURS` (2), `RUNS` (5 per query); `SYSTEMS=quiver`
//! narrows a run. VictoriaMetrics 1.79 has no native histograms and is not run.

// A report for people: it prints its figures.
#![allow(clippy::print_stdout)]

#[path = "common/peers.rs"]
mod peers;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use peers::{Peer, env_or};
use quiver_ingest::histogram::proto::{BucketSpan, Count, Histogram, ZeroCount};
use quiver_ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

const STEP_MS: i64 = 15_000;
/// Classic bucket bounds (seconds), as vLLM's `time_to_first_token_seconds` has them.
const BOUNDS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
];
const SCHEMA: i32 = 3;

/// (name, query over native histograms, query over classic buckets)
const QUERIES: &[(&str, &str, &str)] = &[
    (
        "p99 by model",
        "histogram_quantile(0.99, sum by (model) (rate(ttft_seconds[5m])))",
        "histogram_quantile(0.99, sum by (model, le) (rate(ttft_seconds_bucket[5m])))",
    ),
    (
        "p50 overall",
        "histogram_quantile(0.5, sum(rate(ttft_seconds[5m])))",
        "histogram_quantile(0.5, sum by (le) (rate(ttft_seconds_bucket[5m])))",
    ),
    (
        "request rate",
        "sum by (model) (histogram_count(rate(ttft_seconds[5m])))",
        "sum by (model) (rate(ttft_seconds_count[5m]))",
    ),
    (
        "mean latency",
        "sum(histogram_sum(rate(ttft_seconds[5m]))) / sum(histogram_count(rate(ttft_seconds[5m])))",
        "sum(rate(ttft_seconds_sum[5m])) / sum(rate(ttft_seconds_count[5m]))",
    ),
    (
        "share under 100 ms",
        "histogram_fraction(0, 0.1, sum(rate(ttft_seconds[5m])))",
        "sum(rate(ttft_seconds_bucket{le=\"0.1\"}[5m])) / sum(rate(ttft_seconds_count[5m]))",
    ),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// One series' running state: cumulative native buckets (index -> count), classic
/// cumulative counts per bound, count and sum.
#[derive(Default)]
struct Running {
    native: BTreeMap<i32, u64>,
    zero: u64,
    classic: [u64; BOUNDS.len()],
    count: u64,
    sum: f64,
}

impl Running {
    fn observe(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        if v <= 1e-128 {
            self.zero += 1;
        } else {
            // Bucket i of schema s covers (2^((i-1)/2^s), 2^(i/2^s)].
            let i = (v.log2() * f64::from(1 << SCHEMA)).ceil() as i32;
            *self.native.entry(i).or_default() += 1;
        }
        for (k, b) in BOUNDS.iter().enumerate() {
            if v <= *b {
                self.classic[k] += 1;
            }
        }
    }

    /// The native histogram now: spans over runs of consecutive indexes, delta-encoded counts.
    fn native(&self, t: i64) -> Histogram {
        let (mut spans, mut deltas) = (Vec::new(), Vec::new());
        let (mut prev_idx, mut prev_count) = (None::<i32>, 0i64);
        for (&i, &c) in &self.native {
            match prev_idx {
                Some(p) if i == p + 1 => {
                    let s: &mut BucketSpan = spans.last_mut().unwrap();
                    s.length += 1;
                }
                Some(p) => spans.push(BucketSpan {
                    offset: i - p - 1,
                    length: 1,
                }),
                None => spans.push(BucketSpan {
                    offset: i,
                    length: 1,
                }),
            }
            deltas.push(c as i64 - prev_count);
            prev_count = c as i64;
            prev_idx = Some(i);
        }
        Histogram {
            count: Some(Count::CountInt(self.count)),
            sum: self.sum,
            schema: SCHEMA,
            zero_threshold: 1e-128,
            zero_count: Some(ZeroCount::ZeroCountInt(self.zero)),
            positive_spans: spans,
            positive_deltas: deltas,
            timestamp: t,
            ..Default::default()
        }
    }
}

/// Bodies in time order (a few steps of every series each) and the counts of native
/// histogram samples and classic float samples.
fn requests(series: usize, steps: usize, start_ms: i64) -> (Vec<Vec<u8>>, usize, usize) {
    let models = ["llama-70b", "mistral-7b", "qwen-32b", "gemma-9b"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut state: Vec<Running> = (0..series).map(|_| Running::default()).collect();
    // Each series' median latency (log scale) and request rate per step.
    let params: Vec<(f64, f64)> = (0..series)
        .map(|i| ((-3.5 + (i % 7) as f64 * 0.3), 10.0 + (i % 5) as f64 * 8.0))
        .collect();
    let labels = |i: usize, name: &str, le: Option<&str>| {
        let mut l = vec![
            Label {
                name: "__name__".into(),
                value: name.into(),
            },
            Label {
                name: "model".into(),
                value: models[i % models.len()].into(),
            },
            Label {
                name: "pod".into(),
                value: format!("vllm-{i}"),
            },
        ];
        if let Some(le) = le {
            l.push(Label {
                name: "le".into(),
                value: le.into(),
            });
        }
        l
    };
    const STEPS_PER_BODY: usize = 8;
    let (mut out, mut hists, mut floats) = (Vec::new(), 0, 0);
    for first in (0..steps).step_by(STEPS_PER_BODY) {
        let mut ts = Vec::new();
        let mut natives: Vec<Vec<Histogram>> = vec![Vec::new(); series];
        let mut classic: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); BOUNDS.len() + 3]; series];
        for step in first..(first + STEPS_PER_BODY).min(steps) {
            let t = start_ms + step as i64 * STEP_MS;
            for (i, s) in state.iter_mut().enumerate() {
                let (mu, rate) = params[i];
                let n = (rate * (0.5 + rng.next())) as usize;
                for _ in 0..n {
                    s.observe((mu + 0.6 * rng.normal()).exp());
                }
                natives[i].push(s.native(t));
                for (k, c) in s.classic.iter().enumerate() {
                    classic[i][k].push(Sample {
                        value: *c as f64,
                        timestamp: t,
                    });
                }
                for (k, v) in [s.count as f64, s.count as f64, s.sum]
                    .into_iter()
                    .enumerate()
                {
                    classic[i][BOUNDS.len() + k].push(Sample {
                        value: v,
                        timestamp: t,
                    });
                }
            }
        }
        for i in 0..series {
            hists += natives[i].len();
            ts.push(TimeSeries {
                labels: labels(i, "ttft_seconds", None),
                samples: Vec::new(),
                histograms: std::mem::take(&mut natives[i]),
            });
            for (k, samples) in classic[i].iter_mut().enumerate() {
                let bound = BOUNDS.get(k).map(|b| format!("{b}"));
                let (name, le) = match k {
                    k if k < BOUNDS.len() => ("ttft_seconds_bucket", bound.as_deref()),
                    k if k == BOUNDS.len() => ("ttft_seconds_bucket", Some("+Inf")),
                    k if k == BOUNDS.len() + 1 => ("ttft_seconds_count", None),
                    _ => ("ttft_seconds_sum", None),
                };
                floats += samples.len();
                ts.push(TimeSeries {
                    labels: labels(i, name, le),
                    samples: std::mem::take(samples),
                    histograms: Vec::new(),
                });
            }
        }
        out.push(encode(&WriteRequest { timeseries: ts }));
    }
    (out, hists, floats)
}

fn main() {
    let hours = env_or("HOURS", 2);
    let runs = env_or("RUNS", 5).max(1);
    let series = env_or("SERIES", 192);
    let steps = hours * 3600 * 1000 / STEP_MS as usize;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Ending two minutes ago, off the step boundaries.
    let start_ms = (now - steps as i64 * STEP_MS - 120_000) / STEP_MS * STEP_MS + 1_234;
    let (bodies, hists, floats) = requests(series, steps, start_ms);
    println!(
        "data: {series} series of native histograms and the same as {} classic series, {steps} steps of 15 s ({hours} h): {hists} histogram samples, {floats} float samples",
        series * (BOUNDS.len() + 3)
    );
    let end_s = (start_ms + steps as i64 * STEP_MS) / 1000 - 30;
    let start_s = start_ms / 1000 + 600;
    let quiver_bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let server_core = peers::server_core();
    let rt = peers::client_runtime();
    let systems = std::env::var("SYSTEMS").unwrap_or("quiver,prometheus".into());
    // Per system: (native, classic) median seconds per query, and the answers' first values.
    let mut table: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for which in ["quiver", "prometheus"] {
        if !systems.split(',').any(|s| s == which) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let peer = match which {
            "quiver" => Some(peers::start_quiver(quiver_bin, dir.path(), server_core)),
            _ => peers::start_prometheus_args(
                dir.path(),
                server_core,
                "global:\n  scrape_interval: 1h\n",
                &["--enable-feature=native-histograms".into()],
            ),
        };
        let Some(peer) = peer else {
            println!("{which}: not installed, skipped");
            continue;
        };
        rt.block_on(load(&peer, &bodies));
        println!("{which}:");
        let mut times = Vec::new();
        for (name, native, classic) in QUERIES {
            let (n, nv) = rt.block_on(median(&peer, native, start_s, end_s, runs));
            let (c, cv) = rt.block_on(median(&peer, classic, start_s, end_s, runs));
            println!(
                "  {name:<20} native {:>8.1} ms   classic {:>8.1} ms   (last value {nv} / {cv})",
                n * 1e3,
                c * 1e3
            );
            times.push((n, c));
        }
        if which == "quiver" {
            let bytes = files_named(&peer.data, "histograms.parquet");
            println!(
                "  at rest: {:.1} bytes per native histogram sample ({bytes} bytes of histograms.parquet); {:.1} bytes per classic float sample (samples.parquet)",
                bytes as f64 / hists as f64,
                files_named(&peer.data, "samples.parquet") as f64 / floats as f64
            );
        }
        table.push((peer.name, times));
    }
    if which_ran(&table, "prometheus") {
        // Prometheus keeps two hours in its head: a second instance holding only the native
        // histograms, snapshotted into a block, gives its bytes per histogram sample.
        let dir = tempfile::tempdir().unwrap();
        if let Some(peer) = peers::start_prometheus_args(
            dir.path(),
            server_core,
            "global:\n  scrape_interval: 1h\n",
            &["--enable-feature=native-histograms".into()],
        ) {
            let (only, n, _) = native_only(series, steps, start_ms);
            rt.block_on(peers::remote_write_all(&peer.base, &[only]));
            let chunks = rt.block_on(snapshot_chunk_bytes(&peer));
            println!(
                "prometheus at rest: {:.1} bytes per native histogram sample ({chunks} bytes of chunks in a snapshot block of {n} samples)",
                chunks as f64 / n as f64
            );
        }
    }
    println!("\nmedian of {runs}; range queries over {hours} h at 60 s steps");
    println!(
        "{:<20} {:>12} {:>12} {:>16} {:>16}",
        "query", "quiver nh ms", "quiver cl ms", "prometheus nh", "prometheus cl"
    );
    let q = &table[0].1;
    for (i, (name, _, _)) in QUERIES.iter().enumerate() {
        let p = table.iter().find(|t| t.0 == "prometheus").map(|t| t.1[i]);
        let fmt =
            |v: Option<f64>, base: f64| v.map_or("-".to_string(), |v| format!("{:.2}x", v / base));
        println!(
            "{name:<20} {:>12.1} {:>12.1} {:>16} {:>16}",
            q[i].0 * 1e3,
            q[i].1 * 1e3,
            fmt(p.map(|p| p.0), q[i].0),
            fmt(p.map(|p| p.1), q[i].1),
        );
    }
    println!("(peers as the ratio of their time to Quiver's on the same form: > 1, Quiver faster)");
}

fn which_ran(table: &[(&str, Vec<(f64, f64)>)], name: &str) -> bool {
    table.iter().any(|t| t.0 == name)
}

/// The same native histograms alone.
fn native_only(series: usize, steps: usize, start_ms: i64) -> (Vec<Vec<u8>>, usize, usize) {
    let (bodies, hists, _) = requests(series, steps, start_ms);
    let only = bodies
        .into_iter()
        .map(|b| {
            let raw = snap::raw::Decoder::new().decompress_vec(&b).unwrap();
            let mut req: WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
            req.timeseries.retain(|t| !t.histograms.is_empty());
            encode(&req)
        })
        .collect();
    (only, hists, 0)
}

/// Snapshots Prometheus's head into a block and answers the bytes of its chunk files.
async fn snapshot_chunk_bytes(peer: &Peer) -> u64 {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/tsdb/snapshot", peer.base))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let name = v["data"]["name"].as_str().unwrap_or_default().to_string();
    let snap = peer.data.join("snapshots").join(name);
    let mut total = 0;
    for block in std::fs::read_dir(&snap).into_iter().flatten().flatten() {
        total += peers::dir_bytes(&block.path().join("chunks"));
    }
    total
}

/// Bytes of every file called `name` below `dir`.
fn files_named(dir: &Path, name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_named(&e.path(), name),
            Ok(_) if e.file_name() == name => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Remote-writes the data, then Quiver writes its blocks so queries read Parquet.
async fn load(peer: &Peer, bodies: &[Vec<u8>]) {
    peers::remote_write_all(&peer.base, &[bodies.to_vec()]).await;
    if peer.name == "quiver" {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/admin/flush", peer.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Median seconds of `runs` range queries (after one warm-up), and the last value of the
/// first series answered (a check that both forms agree).
async fn median(peer: &Peer, q: &str, start_s: i64, end_s: i64, runs: usize) -> (f64, String) {
    let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
    let url = format!(
        "{}/api/v1/query_range?query={enc}&start={start_s}&end={end_s}&step=60",
        peer.base
    );
    let client = reqwest::Client::new();
    let get = || async {
        let r = client.get(&url).send().await.expect("query sent");
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {text}");
        text
    };
    let body: serde_json::Value = serde_json::from_str(&get().await).unwrap();
    let last = body["data"]["result"][0]["values"]
        .as_array()
        .and_then(|v| v.last())
        .and_then(|p| p[1].as_str())
        .map(|v| {
            v.parse::<f64>()
                .map_or(v.to_string(), |f| format!("{f:.4}"))
        })
        .unwrap_or_else(|| "none".into());
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        get().await;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times[runs / 2], last)
}
