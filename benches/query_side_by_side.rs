//! PromQL queries, side by side: the same GPU-fleet data (DCGM gauges and counters, vLLM
//! histograms) remote-written into Quiver and, when installed, Prometheus and
//! VictoriaMetrics; then the same instant and range queries against each, in one run.
//! Prints the median latency per query and system, the ratios, the geometric mean over the
//! heavy aggregations, and each server's peak resident memory.
//!
//! Run: `taskset -c 0 cargo bench --bench query_side_by_side` (servers pinned to core 1).
//! Shape by environment: `NODES` (24), `GPUS` (8), `HOURS` (4), `RUNS` (5 per query);
//! `SYSTEMS=quiver` and `ONLY="binary op"` narrow a run (for profiling).

// A report for people: it prints its figures.
#![allow(clippy::print_stdout)]

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/peers.rs"]
mod peers;

use std::path::Path;
use std::time::{Duration, Instant};

use fleet::{FleetShape, STEP_MS, encoded_requests};
use peers::{Peer, env_or};

/// (name, query, heavy aggregation?)
const QUERIES: &[(&str, &str, bool)] = &[
    (
        "rate",
        "rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5m])",
        false,
    ),
    (
        "sum by rate",
        "sum by (Hostname) (rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m]))",
        true,
    ),
    (
        "histogram_quantile",
        "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))",
        true,
    ),
    ("topk", "topk(5, DCGM_FI_DEV_GPU_TEMP)", true),
    (
        "avg_over_time 1h",
        "avg_over_time(DCGM_FI_DEV_GPU_UTIL[1h])",
        true,
    ),
    ("selector (all DCGM)", "{job=\"dcgm-exporter\"}", false),
    (
        "binary op",
        "DCGM_FI_DEV_POWER_USAGE / DCGM_FI_DEV_GPU_TEMP",
        false,
    ),
];

fn main() {
    let hours = env_or("HOURS", 4);
    let runs = env_or("RUNS", 5).max(1);
    let shape = FleetShape::ending_now(env_or("NODES", 24), env_or("GPUS", 8), hours, 120_000);
    let steps = shape.steps;
    let (bodies, total, n_series) = encoded_requests(&shape, 2);
    println!(
        "data: {n_series} series, {} steps of 15 s ({hours} h), {total} samples",
        shape.steps
    );
    let end_s = (shape.start_ms + steps as i64 * STEP_MS) / 1000 - 30;
    let start_s = shape.start_ms / 1000 + 60;
    let quiver_bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let server_core = peers::server_core();
    let rt = peers::client_runtime();

    // Per system: its name, (range, instant) median seconds per query, peak RSS.
    type Row = (&'static str, Vec<(f64, f64)>, u64);
    let mut table: Vec<Row> = Vec::new();
    let systems = std::env::var("SYSTEMS").unwrap_or("quiver,prometheus,victoria-metrics".into());
    let only = std::env::var("ONLY").ok();
    for which in ["quiver", "prometheus", "victoria-metrics"] {
        if !systems.split(',').any(|s| s == which) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let peer = match which {
            "quiver" => Some(peers::start_quiver(quiver_bin, dir.path(), server_core)),
            "prometheus" => peers::start_prometheus(dir.path(), server_core),
            _ => peers::start_victoria_metrics(dir.path(), server_core),
        };
        let Some(peer) = peer else {
            println!("{which}: not installed, skipped");
            continue;
        };
        rt.block_on(load(&peer, &bodies));
        let mut times = Vec::new();
        println!("{which}:");
        for (name, q, _) in QUERIES {
            if only.as_deref().is_some_and(|o| o != *name) {
                times.push((f64::NAN, f64::NAN));
                continue;
            }
            let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let range = format!(
                "{}/api/v1/query_range?query={enc}&start={start_s}&end={end_s}&step=60",
                peer.base
            );
            let instant = format!("{}/api/v1/query?query={enc}&time={end_s}", peer.base);
            let (r, rn) = rt.block_on(median(&range, runs));
            let (i, _) = rt.block_on(median(&instant, runs));
            println!(
                "  {name:<22} range {:>9.1} ms ({rn} series)   instant {:>8.1} ms",
                r * 1e3,
                i * 1e3
            );
            times.push((r, i));
        }
        table.push((peer.name, times, peer.peak_rss_bytes()));
    }

    println!(
        "\nmedian of {runs}; range queries over {hours} h at 60 s steps; ratios are peer / Quiver (> 1: Quiver faster)"
    );
    println!(
        "{:<22} {:>10} {:>12} {:>12}",
        "query (range)", "quiver ms", "prometheus", "victoria"
    );
    let q = &table[0].1;
    let ratio = |peer: &str, i: usize| -> Option<f64> {
        table
            .iter()
            .find(|t| t.0 == peer)
            .map(|t| t.1[i].0 / q[i].0)
    };
    for (i, (name, _, _)) in QUERIES.iter().enumerate() {
        let fmt = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
        println!(
            "{name:<22} {:>10.1} {:>12} {:>12}",
            q[i].0 * 1e3,
            fmt(ratio("prometheus", i)),
            fmt(ratio("victoria-metrics", i))
        );
    }
    for peer in ["prometheus", "victoria-metrics"] {
        let heavy: Vec<f64> = QUERIES
            .iter()
            .enumerate()
            .filter(|(_, q)| q.2)
            .filter_map(|(i, _)| ratio(peer, i))
            .collect();
        if !heavy.is_empty() {
            let g = heavy.iter().map(|r| r.ln()).sum::<f64>() / heavy.len() as f64;
            println!(
                "geometric mean over heavy aggregations, {peer} / quiver: {:.2}x",
                g.exp()
            );
        }
    }
    for (name, _, peak) in &table {
        println!(
            "peak RSS {name:<18} {:>8.1} MiB",
            *peak as f64 / (1 << 20) as f64
        );
    }
}

/// Remote-writes the data, then lets each system settle: Quiver writes its blocks, VictoriaMetrics
/// flushes, so the queries read each one's long-term format.
async fn load(peer: &Peer, bodies: &[Vec<Vec<u8>>]) {
    peers::remote_write_all(&peer.base, bodies).await;
    let client = reqwest::Client::new();
    match peer.name {
        "quiver" => {
            let r = client
                .post(format!("{}/api/v1/admin/flush", peer.base))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        "victoria-metrics" => {
            client
                .get(format!("{}/internal/force_flush", peer.base))
                .send()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        _ => {}
    }
}

/// Median seconds of `runs` GETs (after one warm-up), and the number of series answered.
async fn median(url: &str, runs: usize) -> (f64, usize) {
    let client = reqwest::Client::new();
    let get = || async {
        let r = client.get(url).send().await.expect("query sent");
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {text}");
        text
    };
    let body: serde_json::Value = serde_json::from_str(&get().await).unwrap();
    let n = body["data"]["result"].as_array().map_or(0, |a| a.len());
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        get().await;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times[runs / 2], n)
}
