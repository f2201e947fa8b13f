//! Analytical SQL, side by side with DuckDB on the same Parquet files, and Arrow Flight against
//! the JSON API for one large result.
//!
//! Loads a GPU fleet (DCGM gauges and counters, vLLM histograms; tens of millions of samples)
//! and a set of training runs (experiment ingest, each run on one node) into Quiver, flushes
//! them into Parquet blocks, then times each question twice: Quiver's SQL over
//! `/api/v1/sql`, and DuckDB (the `duckdb` Python package, in a process of its own) reading
//! Quiver's block files directly, with the views `docs/storage-format.md` gives. Both answer
//! each question once before timing, and the answers are checked to agree.
//!
//! Then one result of millions of rows is fetched twice: Arrow Flight `DoGet` (a JSON SQL
//! ticket) and `/api/v1/sql` as JSON; it prints both times, the ratio and Flight's MB/s.
//!
//! Run: `cargo bench --bench sql_side_by_side`. Shape by environment: `NODES` (64), `GPUS` (8),
//! `HOURS` (16), `RUNS` (5 timed runs per question), `RUNS_PER_NODE` (1); `ONLY=<name>` runs
//! one question; `KEEP=1` keeps the data folder (for profiling).

// A report for people: it prints its figures.
#![allow(clippy::print_stdout)]

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/peers.rs"]
mod peers;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use arrow_flight::decode::DecodedPayload;
use arrow_flight::{FlightClient, Ticket};
use fleet::{FleetShape, STEP_MS, encoded_requests};
use futures::StreamExt;
use peers::{Peer, env_or};
use serde_json::{Value, json};

/// (name, Quiver's SQL, DuckDB's SQL over the views `samples`, `series`).
const QUESTIONS: &[(&str, &str, &str)] = &[
    (
        "scan all, group by metric",
        "SELECT metric, count(*) AS n, avg(value) AS mean FROM samples GROUP BY metric ORDER BY metric",
        "SELECT metric, count(*) AS n, avg(value) AS mean FROM samples GROUP BY metric ORDER BY metric",
    ),
    (
        "group by label",
        r#"SELECT "Hostname", count(*) AS n, avg(value) AS mean, max(value) AS peak
           FROM metrics."DCGM_FI_DEV_GPU_UTIL" GROUP BY 1 ORDER BY 1"#,
        r#"SELECT s.labels['Hostname'] AS h, count(*) AS n, avg(x.value) AS mean, max(x.value) AS peak
           FROM samples x JOIN series s USING (series_id)
           WHERE x.metric = 'DCGM_FI_DEV_GPU_UTIL' GROUP BY 1 ORDER BY 1"#,
    ),
    (
        "percentiles by label",
        r#"SELECT gpu, percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99
           FROM metrics."DCGM_FI_DEV_GPU_TEMP" GROUP BY gpu ORDER BY gpu"#,
        r#"SELECT s.labels['gpu'] AS gpu, percentile_cont(0.5) WITHIN GROUP (ORDER BY x.value) AS p50,
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY x.value) AS p99
           FROM samples x JOIN series s USING (series_id)
           WHERE x.metric = 'DCGM_FI_DEV_GPU_TEMP' GROUP BY 1 ORDER BY 1"#,
    ),
    (
        "time buckets",
        r#"SELECT date_bin(INTERVAL '5 minutes', timestamp) AS t, avg(value) AS mean, max(value) AS peak
           FROM metrics."DCGM_FI_DEV_POWER_USAGE" GROUP BY 1 ORDER BY 1"#,
        r#"SELECT time_bucket(INTERVAL '5 minutes', x.timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS t,
                  avg(x.value) AS mean, max(x.value) AS peak
           FROM samples x WHERE x.metric = 'DCGM_FI_DEV_POWER_USAGE' GROUP BY 1 ORDER BY 1"#,
    ),
    (
        "join with runs",
        r#"WITH span AS (SELECT run_id, min(timestamp) AS t0, max(timestamp) AS t1
                         FROM experiments.run_metrics WHERE experiment = 'bench' GROUP BY run_id)
           SELECT r.run_id, r.lr, count(*) AS n, avg(u.value) AS util
           FROM experiments.runs r JOIN span s ON s.run_id = r.run_id
           JOIN metrics."DCGM_FI_DEV_GPU_UTIL" u
             ON u."Hostname" = r.host AND u.timestamp BETWEEN s.t0 AND s.t1
           WHERE r.experiment = 'bench' GROUP BY r.run_id, r.lr ORDER BY r.run_id"#,
        r#"WITH p AS (SELECT s.labels['run_id'] AS run_id, s.labels['param'] AS param,
                             s.labels['param_value'] AS v
                      FROM series s WHERE s.metric = 'quiver_run_param'
                        AND s.labels['experiment'] = 'bench'),
                r AS (SELECT run_id, max(v) FILTER (WHERE param = 'host') AS host,
                             max(TRY_CAST(v AS DOUBLE)) FILTER (WHERE param = 'lr') AS lr
                      FROM p GROUP BY run_id),
                span AS (SELECT s.labels['run_id'] AS run_id, min(x.timestamp) AS t0, max(x.timestamp) AS t1
                         FROM samples x JOIN series s USING (series_id)
                         WHERE s.labels['experiment'] = 'bench' AND x.metric <> 'quiver_run_param'
                         GROUP BY 1),
                u AS (SELECT s.labels['Hostname'] AS host, x.timestamp, x.value
                      FROM samples x JOIN series s USING (series_id)
                      WHERE x.metric = 'DCGM_FI_DEV_GPU_UTIL')
           SELECT r.run_id, r.lr, count(*) AS n, avg(u.value) AS util
           FROM r JOIN span s ON s.run_id = r.run_id
           JOIN u ON u.host = r.host AND u.timestamp BETWEEN s.t0 AND s.t1
           GROUP BY r.run_id, r.lr ORDER BY r.run_id"#,
    ),
];

/// The large result for Flight against JSON: every sample of the fleet's gauges.
const LARGE: &str = "SELECT metric, series_id, timestamp, value FROM samples WHERE metric IN \
    ('DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_POWER_USAGE', 'DCGM_FI_DEV_FB_USED')";

const DUCKDB: &str = r#"
import json, sys, time
import duckdb
root, runs = sys.argv[1], int(sys.argv[2])
questions = json.load(sys.stdin)
live = [b["id"] for b in json.load(open(root + "/manifest.json"))["body"]["blocks"]]
files = lambda name: "[" + ", ".join(f"'{root}/{b}/{name}.parquet'" for b in live) + "]"
con = duckdb.connect()
con.execute(f"""CREATE VIEW samples AS SELECT metric, series_id, timestamp,
    coalesce(value, value_mantissa / power(10, value_scale)) AS value FROM read_parquet({files('samples')})""")
con.execute(f"CREATE VIEW series AS SELECT DISTINCT series_id, metric, labels FROM read_parquet({files('series')})")
out = []
for q in questions:
    rows = con.execute(q).fetchall()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(q).fetchall()
        times.append(time.perf_counter() - t)
    times.sort()
    out.append({"seconds": times[len(times) // 2], "rows": [[str(c) if not isinstance(c, (int, float)) else c for c in r] for r in rows]})
print(json.dumps({"threads": con.execute("SELECT current_setting('threads')").fetchone()[0], "results": out}))
"#;

fn main() {
    let hours = env_or("HOURS", 16);
    let runs = env_or("RUNS", 5).max(1);
    let shape = FleetShape::ending_now(env_or("NODES", 64), env_or("GPUS", 8), hours, 120_000);
    let (bodies, total, n_series) = encoded_requests(&shape, 2);
    println!(
        "data: {n_series} series, {} steps of 15 s ({hours} h), {total} samples",
        shape.steps
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No scrape jobs (not even Quiver's own): DuckDB and Quiver must see the same data.
    let config = dir.path().join("quiver.yml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    let quiver = peers::start_quiver_args(
        Path::new(env!("CARGO_BIN_EXE_quiver")),
        dir.path(),
        None,
        &[
            format!("--config.file={}", config.display()),
            "--sql.max-rows=100000000".to_string(),
        ],
    );
    let t = Instant::now();
    rt.block_on(load(&quiver, &bodies, &shape));
    drop(bodies);
    println!("loaded and flushed in {:.1} s", t.elapsed().as_secs_f64());

    let only = std::env::var("ONLY").ok();
    let chosen: Vec<&(&str, &str, &str)> = QUESTIONS
        .iter()
        .filter(|q| only.as_deref().is_none_or(|o| o == q.0))
        .collect();
    let duck = duckdb(
        &quiver.data.join("blocks"),
        runs,
        &chosen.iter().map(|q| q.2).collect::<Vec<_>>(),
    );
    match &duck {
        Some(d) => println!("duckdb {} threads", d["threads"]),
        None => println!("duckdb: not run (needs python3 with duckdb), Quiver alone"),
    }
    println!(
        "\n{:<28} {:>10} {:>10} {:>8}  rows",
        "question", "quiver ms", "duckdb ms", "ratio"
    );
    let mut ratios = Vec::new();
    for (i, (name, sql, _)) in chosen.iter().enumerate() {
        let (secs, rows) = rt.block_on(time_sql(&quiver, sql, runs));
        let theirs = duck.as_ref().map(|d| &d["results"][i]);
        let (d_ms, ratio) = match theirs {
            Some(r) => {
                let d = r["seconds"].as_f64().unwrap();
                ratios.push(secs / d);
                agree(name, &rows, r["rows"].as_array().unwrap());
                (format!("{:.1}", d * 1e3), format!("{:.2}x", secs / d))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{name:<28} {:>10.1} {d_ms:>10} {ratio:>8}  {}",
            secs * 1e3,
            rows.len()
        );
    }
    if !ratios.is_empty() {
        let g = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let worst = ratios.iter().cloned().fold(0.0, f64::max);
        println!("quiver / duckdb: geometric mean {g:.2}x, worst {worst:.2}x (target <= 1.5x)");
    }

    if only.is_none() {
        rt.block_on(flight_against_json(&quiver, runs));
    }
    println!(
        "peak RSS quiver {:.1} MiB",
        quiver.peak_rss_bytes() as f64 / (1 << 20) as f64
    );
    if std::env::var_os("KEEP").is_some() {
        // For profiling: the data folder outlives the run.
        println!("data kept in {}", dir.keep().display());
    }
}

/// Remote-writes the fleet, logs the training runs, and flushes everything into blocks.
async fn load(peer: &Peer, bodies: &[Vec<Vec<u8>>], shape: &FleetShape) {
    peers::remote_write_all(&peer.base, bodies).await;
    let client = reqwest::Client::new();
    // Training runs: each on one node for a quarter of the span, a line every 30 s.
    let span_ms = shape.steps as i64 * STEP_MS;
    let per_node = env_or("RUNS_PER_NODE", 1);
    for node in 0..shape.nodes {
        for k in 0..per_node {
            let run = format!("run-{node:03}-{k}");
            let start = shape.start_ms + ((node * 7 + k * 3) % 12) as i64 * span_ms / 16;
            let lines: Vec<String> = (0..(span_ms / 4 / 30_000))
                .map(|step| {
                    let t = (start + step * 30_000) as f64 / 1000.0;
                    let loss = 2.0 * (-(step as f64) / 200.0).exp() + 0.1 * (node % 5) as f64;
                    json!({"step": step, "timestamp": t,
                           "metrics": {"loss": loss, "val_loss": loss * 1.1}})
                    .to_string()
                })
                .collect();
            let base = format!("{}/api/v1/experiments/bench/runs/{run}", peer.base);
            for (path, body) in [
                ("metrics", lines.join("\n")),
                (
                    "params",
                    json!({"host": format!("gpu-node-{node:03}"), "lr": 1e-4 * (1 + k) as f64})
                        .to_string(),
                ),
            ] {
                let r = client
                    .post(format!("{base}/{path}"))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{path}: {}", r.status());
            }
        }
    }
    let r = client
        .post(format!("{}/api/v1/admin/flush", peer.base))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// Median seconds of `runs` SQL requests (after one warm-up), and the rows answered.
async fn time_sql(peer: &Peer, sql: &str, runs: usize) -> (f64, Vec<Value>) {
    let client = reqwest::Client::new();
    let get = || async {
        let r = client
            .post(format!("{}/api/v1/sql", peer.base))
            .form(&[("query", sql), ("limit", "0")])
            .send()
            .await
            .expect("query sent");
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{sql}: {status} {text}");
        text
    };
    let body: Value = serde_json::from_str(&get().await).unwrap();
    let rows = body["data"]["rows"].as_array().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        get().await;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times[runs / 2], rows)
}

/// DuckDB's answers and median times for `questions`, or `None` without the package.
fn duckdb(blocks: &Path, runs: usize, questions: &[&str]) -> Option<Value> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(DUCKDB)
        .arg(blocks)
        .arg(runs.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(questions).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        eprintln!("duckdb: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Checks that two answers agree: same row count, same keys, numbers equal to 1e-9 relative.
fn agree(name: &str, ours: &[Value], theirs: &[Value]) {
    assert_eq!(ours.len(), theirs.len(), "{name}: row counts differ");
    for (a, b) in ours.iter().zip(theirs) {
        for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => assert!(
                    (p - q).abs() <= 1e-9 * p.abs().max(1.0),
                    "{name}: {a} vs {b}"
                ),
                // Keys and timestamps: compare their text up to the time zone spelling.
                _ => {
                    let norm = |v: &Value| {
                        v.as_str()
                            .map(|s| {
                                s.replace('T', " ")
                                    .trim_end_matches("+00:00")
                                    .trim_end_matches('Z')
                                    .to_string()
                            })
                            .unwrap_or_else(|| v.to_string())
                    };
                    assert_eq!(norm(x), norm(y), "{name}: {a} vs {b}");
                }
            }
        }
    }
}

/// One large result through Flight `DoGet` and through the JSON API.
async fn flight_against_json(peer: &Peer, runs: usize) {
    let flight = peer.flight.clone().unwrap().replace("grpc://", "http://");
    let channel = tonic::transport::Channel::from_shared(flight)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut best_flight = f64::MAX;
    let (mut rows, mut bytes) = (0usize, 0usize);
    for _ in 0..runs.max(3) {
        let mut client = FlightClient::new(channel.clone());
        let t = Instant::now();
        let mut stream = client
            .do_get(Ticket::new(json!({ "sql": LARGE }).to_string()))
            .await
            .unwrap()
            .into_inner();
        let (mut r, mut b) = (0usize, 0usize);
        while let Some(data) = stream.next().await {
            let data = data.unwrap();
            b += data.inner.data_body.len() + data.inner.data_header.len();
            if let DecodedPayload::RecordBatch(batch) = data.payload {
                r += batch.num_rows();
            }
        }
        best_flight = best_flight.min(t.elapsed().as_secs_f64());
        (rows, bytes) = (r, b);
    }
    let client = reqwest::Client::new();
    let mut best_json = f64::MAX;
    let mut json_bytes = 0;
    for _ in 0..2 {
        let t = Instant::now();
        let body = client
            .post(format!("{}/api/v1/sql", peer.base))
            .form(&[("query", LARGE), ("limit", "0")])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        best_json = best_json.min(t.elapsed().as_secs_f64());
        json_bytes = body.len();
    }
    println!(
        "\nlarge result ({rows} rows): Flight DoGet {:.0} ms ({:.0} MB/s, {:.1} MB of Arrow), JSON {:.0} ms ({:.1} MB): Flight {:.1}x faster (targets >= 10x, > 500 MB/s)",
        best_flight * 1e3,
        bytes as f64 / 1e6 / best_flight,
        bytes as f64 / 1e6,
        best_json * 1e3,
        json_bytes as f64 / 1e6,
        best_json / best_flight
    );
}
