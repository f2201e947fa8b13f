//! Scraping, side by side: many targets served from this process (each one a slice of a GPU
//! fleet as the DCGM exporter and vLLM expose it, thousands of series), scraped by Quiver and,
//! when installed, by Prometheus with the same configuration, one after the other in one run.
//! Prints CPU seconds per million scraped samples and resident memory for each.
//!
//! Run: `taskset -c 0 cargo bench --bench scrape_side_by_side` (the servers are pinned to core 1
//! with `taskset`; the exporters stay on core 0). Shape by environment: `TARGETS` (50),
//! `NODES_PER_TARGET` (20: about 1,960 series per target), `INTERVAL_MS` (1000), `DURATION` (60 seconds,
//! measured after a warm-up of `WARMUP` (10) seconds), `SYSTEMS` (quiver,prometheus).

// A report for people: it prints its figures.
#![allow(clippy::print_stdout)]

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/peers.rs"]
mod peers;

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use fleet::{FleetShape, fleet_series, values};
use peers::{Peer, env_or};

/// Renders `variants` expositions of the same series with values from successive steps, in the
/// text format with HELP and TYPE per family.
// `v` picks the step of every series (`vals[i][v]`), not one slice.
#[allow(clippy::needless_range_loop)]
fn expositions(nodes: usize, variants: usize) -> (Vec<Arc<String>>, usize) {
    let shape = FleetShape {
        nodes,
        gpus_per_node: 8,
        steps: variants,
        start_ms: 0,
    };
    let series = fleet_series(&shape);
    let vals: Vec<Vec<f64>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| values(s, i, variants))
        .collect();
    let name = |i: usize| {
        series[i]
            .labels
            .iter()
            .find(|(n, _)| n == "__name__")
            .unwrap()
            .1
            .clone()
    };
    let mut order: Vec<usize> = (0..series.len()).collect();
    order.sort_by_key(|i| name(*i));
    let mut out = Vec::new();
    for v in 0..variants {
        let mut body = String::new();
        let mut last = String::new();
        for &i in &order {
            let n = name(i);
            if n != last {
                let kind = if n.ends_with("_total")
                    || n.contains("_bucket")
                    || n.ends_with("_count")
                    || n.ends_with("_sum")
                {
                    "counter"
                } else {
                    "gauge"
                };
                let _ = writeln!(
                    body,
                    "# HELP {n} {n} as the exporter describes it.\n# TYPE {n} {kind}"
                );
                last = n.clone();
            }
            body.push_str(&n);
            body.push('{');
            let mut first = true;
            for (ln, lv) in &series[i].labels {
                if ln == "__name__" {
                    continue;
                }
                if !first {
                    body.push(',');
                }
                first = false;
                let _ = write!(body, "{ln}=\"{lv}\"");
            }
            let _ = writeln!(body, "}} {}", vals[i][v]);
        }
        out.push(Arc::new(body));
    }
    (out, series.len())
}

/// Scrapes served, by the scraper's User-Agent.
#[derive(Default)]
struct Hits {
    quiver: AtomicU64,
    prometheus: AtomicU64,
}

/// Serves `targets` exporters on their own ports; answers their addresses.
fn serve(
    rt: &tokio::runtime::Runtime,
    targets: usize,
    bodies: Arc<Vec<Arc<String>>>,
    hits: Arc<Hits>,
) -> Vec<String> {
    rt.block_on(async {
        let mut addrs = Vec::new();
        for _ in 0..targets {
            let (bodies, hits) = (bodies.clone(), hits.clone());
            let next = Arc::new(AtomicUsize::new(0));
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move |headers: axum::http::HeaderMap| {
                    let (bodies, hits, next) = (bodies.clone(), hits.clone(), next.clone());
                    async move {
                        let ua = headers
                            .get("user-agent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if ua.starts_with("Quiver") {
                            hits.quiver.fetch_add(1, Ordering::Relaxed);
                        } else if ua.starts_with("Prometheus") {
                            hits.prometheus.fetch_add(1, Ordering::Relaxed);
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4",
                            )],
                            bodies[i].as_str().to_string(),
                        )
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(listener.local_addr().unwrap().to_string());
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        addrs
    })
}

struct Outcome {
    name: &'static str,
    cpu_per_million: f64,
    samples: f64,
    rss_mib: f64,
    peak_mib: f64,
    /// Resident memory per million samples scraped since the start.
    rss_mib_per_million: f64,
}

fn rss_mib(peer: &Peer) -> f64 {
    peer.rss_bytes() as f64 / (1 << 20) as f64
}

fn measure(peer: &Peer, hits: &AtomicU64, series: usize, warmup: u64, seconds: u64) -> Outcome {
    std::thread::sleep(Duration::from_secs(warmup));
    let (cpu0, hits0) = (peer.cpu_seconds(), hits.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, hits1) = (peer.cpu_seconds(), hits.load(Ordering::Relaxed));
    let samples = ((hits1 - hits0) as usize * series) as f64;
    let rss_mib = rss_mib(peer);
    Outcome {
        name: peer.name,
        cpu_per_million: (cpu1 - cpu0) / (samples / 1e6),
        samples,
        rss_mib,
        peak_mib: peer.peak_rss_bytes() as f64 / (1 << 20) as f64,
        rss_mib_per_million: rss_mib / ((hits1 as usize * series) as f64 / 1e6),
    }
}

fn main() {
    let targets = env_or("TARGETS", 50);
    let nodes = env_or("NODES_PER_TARGET", 20);
    let interval_ms = env_or("INTERVAL_MS", 1000);
    let seconds = env_or("DURATION", 60) as u64;
    let warmup = env_or("WARMUP", 10) as u64;
    let systems = std::env::var("SYSTEMS").unwrap_or_else(|_| "quiver,prometheus".into());
    let (bodies, series) = expositions(nodes, 4);
    println!(
        "{targets} targets x {series} series ({:.0} KiB each), every {interval_ms} ms: {:.0} samples/s offered",
        bodies[0].len() as f64 / 1024.0,
        (targets * series) as f64 * 1000.0 / interval_ms as f64
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hits = Arc::new(Hits::default());
    let addrs = serve(&rt, targets, Arc::new(bodies), hits.clone());
    let list: Vec<String> = addrs.iter().map(|a| format!("'{a}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: {interval_ms}ms\n  scrape_timeout: {interval_ms}ms\nscrape_configs:\n- job_name: fleet\n  static_configs:\n  - targets: [{}]\n",
        list.join(", ")
    );
    let quiver_bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let core = peers::server_core();
    let mut results = Vec::new();
    for which in systems.split(',') {
        let dir = tempfile::tempdir().unwrap();
        let (peer, counter) = match which {
            "quiver" => {
                let path = dir.path().join("quiver.yml");
                std::fs::write(&path, &config).unwrap();
                let peer = peers::start_quiver_args(
                    quiver_bin,
                    dir.path(),
                    core,
                    &[format!("--config.file={}", path.display())],
                );
                (Some(peer), &hits.quiver)
            }
            "prometheus" => (
                peers::start_prometheus_config(dir.path(), core, &config),
                &hits.prometheus,
            ),
            other => panic!("unknown system {other}"),
        };
        let Some(peer) = peer else {
            println!("{which}: not installed, skipped");
            continue;
        };
        results.push(measure(&peer, counter, series, warmup, seconds));
    }
    println!(
        "\n{:<12} {:>16} {:>14} {:>10} {:>10} {:>14}",
        "system", "cpu s / 1M smp", "samples", "RSS MiB", "peak MiB", "RSS MiB / 1M"
    );
    for o in &results {
        println!(
            "{:<12} {:>16.3} {:>14.0} {:>10.1} {:>10.1} {:>14.1}",
            o.name, o.cpu_per_million, o.samples, o.rss_mib, o.peak_mib, o.rss_mib_per_million
        );
    }
    if let (Some(q), Some(p)) = (
        results.iter().find(|o| o.name == "quiver"),
        results.iter().find(|o| o.name == "prometheus"),
    ) {
        println!(
            "quiver vs prometheus: cpu per sample {:.2}x (target <= 0.5x), RSS {:.2}x",
            q.cpu_per_million / p.cpu_per_million,
            q.rss_mib / p.rss_mib
        );
    }
}
