//! Recording rules, side by side: the same rule file (hundreds of recording rules in groups,
//! every 15 s) over the same GPU fleet in Quiver and, when installed, Prometheus.
//!
//! Each system gets the fleet remote-written (an hour of history ending now), then runs for
//! `DURATION` seconds while the fleet goes on: every 15 s the next sample of every series
//! arrives over remote write at its timestamp, as scrapes would bring it (`LIVE=0` stops the
//! data at the start instead). Every 5 s the bench reads each group's last
//! evaluation time from `/api/v1/rules` (both systems report it there); it prints the mean
//! evaluation time per group over the distinct evaluations seen, their sum per interval, the
//! CPU share of the server over the window, and the ratio.
//!
//! Run: `taskset -c 0 cargo bench --bench rules_side_by_side` (servers pinned to core 1).
//! Shape by environment: `NODES` (24), `GPUS` (8), `GROUPS` (10), `DURATION` (90), `LIVE` (1);
//! `SYSTEMS=quiver` runs one system (for profiling).

// A report for people: it prints its figures.
#![allow(clippy::print_stdout)]

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/peers.rs"]
mod peers;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use fleet::{FleetShape, STEP_MS, encoded_requests};
use peers::{Peer, env_or};

/// One group's recording rules over the fleet (20 per group, varied as real rule files are:
/// aggregations by label, quantiles, range functions over counters and gauges, histograms).
fn group_rules(g: usize) -> Vec<(String, String)> {
    let gauges = [
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "DCGM_FI_PROF_DRAM_ACTIVE",
    ];
    let counters = [
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_PROF_PCIE_TX_BYTES",
    ];
    let m = gauges[g % gauges.len()];
    let c = counters[g % counters.len()];
    let lower = |s: &str| s.to_ascii_lowercase();
    vec![
        (format!("host:{}:avg", lower(m)), format!("avg by (Hostname) ({m})")),
        (format!("host:{}:max", lower(m)), format!("max by (Hostname) ({m})")),
        (format!("host:{}:min", lower(m)), format!("min by (Hostname) ({m})")),
        (format!("model:{}:sum", lower(m)), format!("sum by (modelName) ({m})")),
        (format!("host:{}:count", lower(m)), format!("count by (Hostname) ({m})")),
        (format!("host:{}:p90", lower(m)), format!("quantile by (Hostname) (0.9, {m})")),
        (format!("pod:{}:avg", lower(m)), format!("avg by (pod, namespace) ({m})")),
        (format!("gpu:{}:avg5m", lower(m)), format!("avg_over_time({m}[5m])")),
        (format!("gpu:{}:max5m", lower(m)), format!("max_over_time({m}[5m])")),
        (format!("host:{}:avg5m", lower(m)), format!("avg by (Hostname) (avg_over_time({m}[5m]))")),
        (format!("gpu:{}:rate5m", lower(c)), format!("rate({c}[5m])")),
        (format!("host:{}:rate5m", lower(c)), format!("sum by (Hostname) (rate({c}[5m]))")),
        (format!("fleet:{}:rate5m", lower(c)), format!("sum(rate({c}[5m]))")),
        (format!("host:{}:increase5m", lower(c)), format!("sum by (Hostname) (increase({c}[5m]))")),
        (format!("gpu:{}:deriv5m", lower(m)), format!("deriv({m}[5m])")),
        (format!("gpu:{}:hot", lower(m)), format!("{m} > bool on () group_left () avg({m})")),
        (format!("fleet:{}:topk", lower(m)), format!("topk(5, {m})")),
        (format!("host:{}:stddev", lower(m)), format!("stddev by (Hostname) ({m})")),
        ("host:vllm_latency_seconds:p99".to_string(),
         "histogram_quantile(0.99, sum by (instance, le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))".to_string()),
        ("fleet:vllm_requests:rate5m".to_string(),
         "sum(rate(vllm:e2e_request_latency_seconds_count[5m]))".to_string()),
    ]
}

fn rule_file(groups: usize) -> String {
    let mut out = String::from("groups:\n");
    for g in 0..groups {
        let _ = writeln!(out, "  - name: group-{g:02}\n    interval: 15s\n    rules:");
        for (i, (record, expr)) in group_rules(g).into_iter().enumerate() {
            // Unique names per group: the same expression may appear in two groups.
            let _ = writeln!(
                out,
                "      - record: \"g{g}:{i}:{record}\"\n        expr: '{expr}'"
            );
        }
    }
    out
}

fn main() {
    let groups = env_or("GROUPS", 10);
    let duration = Duration::from_secs(env_or("DURATION", 90) as u64);
    let live = env_or("LIVE", 1) != 0;
    // Each system gets the fleet as of its own start: the history ends as it starts, then
    // (live) the next steps arrive on the clock, so both see the same data at the same age.
    let fleet = || {
        let mut shape = FleetShape::ending_now(env_or("NODES", 24), env_or("GPUS", 8), 1, 5_000);
        let history = shape.steps;
        if live {
            shape.steps += (duration.as_secs() as usize + 60) / 15;
        }
        let (mut bodies, _, n_series) = encoded_requests(&shape, 2);
        // Per worker: the history's bodies, then one body per later step.
        let future: Vec<Vec<Vec<u8>>> = bodies.iter_mut().map(|w| w.split_off(history)).collect();
        let first_ms = shape.start_ms + history as i64 * STEP_MS;
        (bodies, future, first_ms, n_series, n_series * history)
    };
    let (_, _, _, n_series, total) = fleet();
    let rules = rule_file(groups);
    let n_rules: usize = (0..groups).map(|g| group_rules(g).len()).sum();
    println!(
        "data: {n_series} series, {total} samples of history{}; rules: {n_rules} recording rules in {groups} groups every 15 s",
        if live {
            ", then a sample per series every 15 s"
        } else {
            ""
        }
    );
    let server_core = peers::server_core();
    let rt = peers::client_runtime();
    let mut table = Vec::new();
    let systems = std::env::var("SYSTEMS").unwrap_or("quiver,prometheus".into());
    for which in ["quiver", "prometheus"] {
        if !systems.split(',').any(|s| s == which) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
        let yaml = "global:\n  scrape_interval: 1h\n  evaluation_interval: 15s\nrule_files: ['rules.yml']\n";
        let peer = match which {
            "quiver" => {
                let cfg = dir.path().join("quiver.yml");
                std::fs::write(&cfg, format!("{yaml}scrape_configs: []\n")).unwrap();
                Some(peers::start_quiver_args(
                    Path::new(env!("CARGO_BIN_EXE_quiver")),
                    dir.path(),
                    server_core,
                    &[format!("--config.file={}", cfg.display())],
                ))
            }
            _ => peers::start_prometheus_config(dir.path(), server_core, yaml),
        };
        let Some(peer) = peer else {
            println!("{which}: not installed, skipped");
            continue;
        };
        let (bodies, future, first_ms, _, _) = fleet();
        rt.block_on(peers::remote_write_all(&peer.base, &bodies));
        let feeder = live.then(|| rt.spawn(feed(peer.base.clone(), future, first_ms)));
        let (per_group, cpu_share, failing) = rt.block_on(observe(&peer, duration));
        if let Some(f) = feeder {
            f.abort();
        }
        println!(
            "{which}: mean evaluation time per group {:.2} ms (sum over groups {:.1} ms per 15 s), CPU share {:.1}%, rules failing {failing}",
            mean(&per_group) * 1e3,
            per_group.values().sum::<f64>() * 1e3,
            cpu_share * 100.0
        );
        table.push((which, per_group, cpu_share));
    }
    if let [(_, q, qcpu), (_, p, pcpu)] = &table[..] {
        println!(
            "\n{:<10} {:>12} {:>14}",
            "group", "quiver ms", "prometheus ms"
        );
        for (g, qt) in q {
            println!(
                "{g:<10} {:>12.2} {:>14.2}",
                qt * 1e3,
                p.get(g).copied().unwrap_or(f64::NAN) * 1e3
            );
        }
        let (qs, ps) = (q.values().sum::<f64>(), p.values().sum::<f64>());
        println!(
            "evaluation time quiver / prometheus: {:.2}x (target <= 0.5x); CPU share {:.1}% vs {:.1}%",
            qs / ps,
            qcpu * 100.0,
            pcpu * 100.0
        );
    }
}

/// Sends each later step's samples when the wall clock reaches their timestamp.
async fn feed(base: String, future: Vec<Vec<Vec<u8>>>, first_ms: i64) {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/write");
    let steps = future.iter().map(Vec::len).min().unwrap_or(0);
    for k in 0..steps {
        let due = first_ms + k as i64 * STEP_MS;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        if due > now {
            tokio::time::sleep(Duration::from_millis((due - now) as u64)).await;
        }
        for w in &future {
            let r = client
                .post(&url)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(w[k].clone())
                .send()
                .await
                .expect("request sent");
            assert!(r.status().is_success(), "{url}: {}", r.status());
        }
    }
}

fn mean(m: &BTreeMap<String, f64>) -> f64 {
    if m.is_empty() {
        return f64::NAN;
    }
    m.values().sum::<f64>() / m.len() as f64
}

/// Over `duration`: each group's mean evaluation time (seconds, over the distinct evaluations
/// seen), the server's CPU share, and how many rules were unhealthy at the end.
async fn observe(peer: &Peer, duration: Duration) -> (BTreeMap<String, f64>, f64, usize) {
    let client = reqwest::Client::new();
    // Let the first evaluations after the load pass.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let cpu0 = peer.cpu_seconds();
    let t0 = Instant::now();
    // (group, lastEvaluation) -> evaluationTime
    let mut seen: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut failing = 0;
    while t0.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let text = client
            .get(format!("{}/api/v1/rules", peer.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        failing = 0;
        for g in v["data"]["groups"].as_array().unwrap() {
            let name = g["name"].as_str().unwrap().to_string();
            let last = g["lastEvaluation"].as_str().unwrap_or_default().to_string();
            seen.insert((name, last), g["evaluationTime"].as_f64().unwrap_or(0.0));
            failing += g["rules"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["health"] != "ok")
                .count();
        }
    }
    let cpu = (peer.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for ((g, _), t) in seen {
        let e = sums.entry(g).or_default();
        e.0 += t;
        e.1 += 1;
    }
    (
        sums.into_iter()
            .map(|(g, (s, n))| (g, s / n as f64))
            .collect(),
        cpu,
        failing,
    )
}
