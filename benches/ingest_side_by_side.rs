//! End-to-end ingest, side by side: the same pre-encoded remote-write payloads (a GPU fleet:
//! DCGM gauges and counters with resets, vLLM histograms) sent to Quiver and, when installed,
//! to Prometheus and VictoriaMetrics, in one run. Prints samples/s, CPU seconds, resident
//! memory per active series, and bytes per sample on disk after compaction.
//!
//! Run: `taskset -c 0 cargo bench --bench ingest_side_by_side` (the servers are pinned to
//! core 1 with `taskset`, the load generator stays on core 0). Shape by environment:
//! `NODES` (64), `GPUS` (8), `HOURS` (3), `WORKERS` (4), `RUNS` (3, the median is reported);
//! `SYSTEMS=quiver` runs one system (for profiling).

// A report for people: it prints its figures.
#![allow(clippy::print_stdout)]

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/peers.rs"]
mod peers;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet::{FleetShape, encoded_requests};
use peers::{Peer, env_or};

struct Outcome {
    name: &'static str,
    samples_per_sec: f64,
    cpu_seconds: f64,
    rss_per_series: f64,
    bytes_per_sample: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let hours = env_or("HOURS", 3);
    let shape = FleetShape::ending_now(env_or("NODES", 64), env_or("GPUS", 8), hours, 60_000);
    let workers = env_or("WORKERS", 4);
    let runs = env_or("RUNS", 3).max(1);
    let (bodies, total, n_series) = encoded_requests(&shape, workers);
    let bodies = Arc::new(bodies);
    let payload: usize = bodies.iter().flatten().map(|b| b.len()).sum();
    println!(
        "payload: {n_series} series, {} steps of 15 s ({hours} h), {total} samples, {} requests, {:.1} MiB snappy",
        shape.steps,
        bodies.iter().map(|b| b.len()).sum::<usize>(),
        payload as f64 / (1 << 20) as f64
    );
    let quiver_bin = Path::new(env!("CARGO_BIN_EXE_quiver"));
    let server_core = peers::server_core();

    let systems = std::env::var("SYSTEMS").unwrap_or("quiver,prometheus,victoria-metrics".into());
    let mut results: Vec<Vec<Outcome>> = Vec::new();
    for run in 0..runs {
        let mut this_run = Vec::new();
        for which in ["quiver", "prometheus", "victoria-metrics"] {
            if !systems.split(',').any(|s| s.trim() == which) {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let peer = match which {
                "quiver" => Some(peers::start_quiver(quiver_bin, dir.path(), server_core)),
                "prometheus" => peers::start_prometheus(dir.path(), server_core),
                _ => peers::start_victoria_metrics(dir.path(), server_core),
            };
            let Some(peer) = peer else {
                if run == 0 {
                    println!("{which}: not installed, skipped");
                }
                continue;
            };
            this_run.push(measure(&peer, &bodies, total, n_series));
        }
        results.push(this_run);
    }

    println!("\nmedian of {runs} run(s):");
    println!(
        "{:<18} {:>14} {:>10} {:>16} {:>14}",
        "system", "samples/s", "cpu s", "RSS B/series", "B/sample"
    );
    let names: Vec<&str> = results[0].iter().map(|o| o.name).collect();
    let mut medians = Vec::new();
    for name in names {
        let pick = |f: &dyn Fn(&Outcome) -> f64| {
            let mut v: Vec<f64> = results
                .iter()
                .flatten()
                .filter(|o| o.name == name)
                .map(f)
                .collect();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let m = (
            pick(&|o| o.samples_per_sec),
            pick(&|o| o.cpu_seconds),
            pick(&|o| o.rss_per_series),
            pick(&|o| o.bytes_per_sample),
        );
        println!(
            "{name:<18} {:>14.0} {:>10.2} {:>16.0} {:>14.3}",
            m.0, m.1, m.2, m.3
        );
        medians.push((name, m));
    }
    if let Some((_, q)) = medians.iter().find(|(n, _)| *n == "quiver") {
        for (name, m) in medians.iter().filter(|(n, _)| *n != "quiver") {
            println!(
                "quiver vs {name}: ingest {:.2}x, cpu {:.2}x, memory/series {:.2}x, bytes/sample {:.2}x",
                q.0 / m.0,
                q.1 / m.1,
                q.2 / m.2,
                q.3 / m.3
            );
        }
    }
}

fn measure(peer: &Peer, bodies: &Arc<Vec<Vec<Vec<u8>>>>, total: usize, n_series: usize) -> Outcome {
    let rt = peers::client_runtime();
    let url = format!("{}/api/v1/write", peer.base);
    let cpu0 = peer.cpu_seconds();
    let started = Instant::now();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for w in 0..bodies.len() {
            let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
            tasks.push(tokio::spawn(async move {
                for body in &bodies[w] {
                    let r = client
                        .post(&url)
                        .header("Content-Encoding", "snappy")
                        .header("Content-Type", "application/x-protobuf")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request sent");
                    let status = r.status();
                    assert!(
                        status.is_success(),
                        "{url}: {status} {}",
                        r.text().await.unwrap_or_default()
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let cpu = peer.cpu_seconds() - cpu0;
    std::thread::sleep(Duration::from_secs(1));
    let rss = peer.rss_bytes();
    let bytes = rt.block_on(compacted_bytes(peer));
    let o = Outcome {
        name: peer.name,
        samples_per_sec: total as f64 / elapsed.as_secs_f64(),
        cpu_seconds: cpu,
        rss_per_series: rss as f64 / n_series as f64,
        bytes_per_sample: bytes as f64 / total as f64,
    };
    println!(
        "  {:<18} {:>8.2} s  {:>12.0} samples/s  cpu {:>6.2} s  rss {:>6.1} MiB  disk {:>8.2} MiB",
        o.name,
        elapsed.as_secs_f64(),
        o.samples_per_sec,
        cpu,
        rss as f64 / (1 << 20) as f64,
        bytes as f64 / (1 << 20) as f64
    );
    o
}

/// Bytes on disk once each system has compacted what it holds into its long-term format:
/// Quiver's blocks after an admin flush; a Prometheus snapshot with its head (a block);
/// VictoriaMetrics's data folder after a forced flush and merge.
async fn compacted_bytes(peer: &Peer) -> u64 {
    let client = reqwest::Client::new();
    match peer.name {
        "quiver" => {
            let r = client
                .post(format!("{}/api/v1/admin/flush", peer.base))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            peers::dir_bytes(&peer.data.join("blocks"))
        }
        "prometheus" => {
            let r = client
                .post(format!("{}/api/v1/admin/tsdb/snapshot", peer.base))
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            let name = v["data"]["name"].as_str().unwrap().to_string();
            peers::dir_bytes(&peer.data.join("snapshots").join(name))
        }
        _ => {
            client
                .get(format!("{}/internal/force_flush", peer.base))
                .send()
                .await
                .unwrap();
            client
                .get(format!("{}/internal/force_merge", peer.base))
                .send()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            peers::dir_bytes(&peer.data)
        }
    }
}
