//! Interop with real peers (run by `.ci/run` with `--ignored`, after it installs them).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::*;

/// Prometheus (Debian's `prometheus`) scrapes itself and remote-writes to Quiver: every series
/// Prometheus has had for a while arrives in Quiver, and Quiver has none Prometheus lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs the prometheus binary (Debian package prometheus)"]
async fn prometheus_remote_write_delivers_what_it_scrapes() {
    let prometheus =
        which("prometheus").expect("prometheus is on the PATH (apt-get install prometheus)");
    let quiver = TestServer::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
         remote_write:\n  - url: {}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
        quiver.base
    );
    std::fs::write(dir.path().join("prom.yml"), config).unwrap();
    let mut child = spawn_prometheus(&prometheus, dir.path(), port);
    let prom = format!("http://127.0.0.1:{port}");
    wait_ready(&prom).await;

    // Let Prometheus scrape and send for a while, then compare what both hold up to a cut-off
    // that remote write has certainly delivered.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let names = series_set;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (in_prom, in_quiver) = loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let window = format!(
            "match[]={{job=\"prometheus\"}}&start={}&end={}",
            now - 600.0,
            now - 4.0
        );
        let (_, p) = get_json(&format!("{prom}/api/v1/series?{window}")).await;
        let (_, q) = get_json(&quiver.url(&format!("/api/v1/series?{window}"))).await;
        let (p, q) = (names(&p), names(&q));
        if (!p.is_empty() && p == q) || Instant::now() > deadline {
            break (p, q);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        in_prom.len() > 50,
        "Prometheus scraped itself ({} series)",
        in_prom.len()
    );
    let missing: Vec<_> = in_prom.difference(&in_quiver).take(5).collect();
    let extra: Vec<_> = in_quiver.difference(&in_prom).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing in Quiver: {missing:?}; only in Quiver: {extra:?}"
    );
    quiver.stop().await;
}

/// A Prometheus with `remote_read` pointing at Quiver answers PromQL over Quiver's data: a
/// series only Quiver holds comes back through Prometheus's own query API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs the prometheus binary (Debian package prometheus)"]
async fn prometheus_remote_read_queries_what_quiver_holds() {
    let prometheus =
        which("prometheus").expect("prometheus is on the PATH (apt-get install prometheus)");
    let quiver = TestServer::start(&[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Samples of the last minutes, 15 s apart, off Prometheus's evaluation instants.
    let samples: Vec<(i64, f64)> = (1..=20)
        .map(|i| ((now - 300 + i * 15) * 1000 + 250, i as f64))
        .collect();
    let at = now - 10;
    // The sum at `at`: each series' newest sample at or before it, twice.
    let want = samples
        .iter()
        .rev()
        .find(|(t, _)| *t <= at * 1000)
        .map(|(_, v)| v * 2.0)
        .unwrap();
    let body = write_request(&[
        (
            vec![("__name__", "only_in_quiver"), ("gpu", "0")],
            samples.clone(),
        ),
        (vec![("__name__", "only_in_quiver"), ("gpu", "1")], samples),
    ]);
    assert_eq!(
        post(&quiver.url("/api/v1/write"), body, &RW_HEADERS)
            .await
            .0,
        204
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1m\nremote_read:\n  - url: {}/api/v1/read\n    read_recent: true\n",
        quiver.base
    );
    std::fs::write(dir.path().join("prom.yml"), config).unwrap();
    let _prom = KillOnDrop(spawn_prometheus(&prometheus, dir.path(), port));
    let prom = format!("http://127.0.0.1:{port}");
    wait_ready(&prom).await;

    let (code, v) = get_json(&format!(
        "{prom}/api/v1/query?query=sum(only_in_quiver)&time={at}"
    ))
    .await;
    assert_eq!(code, 200, "{v}");
    let (qcode, q) = get_json(&quiver.url(&format!(
        "/api/v1/query?query=sum(only_in_quiver)&time={at}"
    )))
    .await;
    assert_eq!(qcode, 200, "{q}");
    assert_eq!(v["data"]["result"][0]["value"][1], want.to_string(), "{v}");
    assert_eq!(
        v["data"]["result"], q["data"]["result"],
        "Prometheus {v} Quiver {q}"
    );
    // A range query over the series, through Prometheus.
    let (code, v) = get_json(&format!(
        "{prom}/api/v1/query_range?query=only_in_quiver{{gpu=\"1\"}}&start={}&end={}&step=30",
        now - 290,
        now - 10
    ))
    .await;
    assert_eq!(code, 200, "{v}");
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    assert!(values.len() >= 9, "{v}");
    quiver.stop().await;
}

/// Block files are plain Parquet: pyarrow reads them without Quiver and finds the same samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs python3 with pyarrow (PyPI)"]
async fn parquet_blocks_read_with_pyarrow_match_quiver() {
    let s = TestServer::start(&["--web.enable-admin-api", "--storage.retention.time=100y"]).await;
    let mut body = String::new();
    for gpu in 0..4 {
        for i in 0..50 {
            // Decimals for most GPUs (stored as mantissa and scale), full-precision ratios for
            // the last one (stored as floats).
            let value = if gpu == 3 {
                format!("{}", (i as f64 + 0.5) / 7.0)
            } else {
                format!("{}.{:02}", gpu * 100 + i, i % 100)
            };
            let t = 1_700_000_000_000i64 + i * 15_000;
            body.push_str(&format!("gpu_power{{gpu=\"{gpu}\"}} {value} {t}\n"));
        }
    }
    assert_eq!(
        post(&s.url("/api/v1/import/prometheus"), body.into_bytes(), &[])
            .await
            .0,
        204
    );
    assert_eq!(
        post(&s.url("/api/v1/admin/flush"), vec![], &[]).await.0,
        200
    );
    let blocks = s.dir.path().join("blocks");
    let script = r#"
import glob, json, sys
import pyarrow.parquet as pq
import pyarrow as pa
root = sys.argv[1]
live = {b["id"] for b in json.load(open(root + "/manifest.json"))["body"]["blocks"]}
samples = pa.concat_tables([pq.read_table(f"{root}/{b}/samples.parquet") for b in sorted(live)])
series = pa.concat_tables([pq.read_table(f"{root}/{b}/series.parquet") for b in sorted(live)])
labels = {}
for row in series.to_pylist():
    labels[row["series_id"]] = dict(row["labels"])
out = {}
for row in samples.to_pylist():
    gpu = labels[row["series_id"]]["gpu"]
    # The value: exact decimal (mantissa / 10^scale) or the float column (docs/storage-format.md).
    m = row["value_mantissa"]
    value = row["value"] if m is None else m / 10 ** row["value_scale"]
    out.setdefault(gpu, []).append([int(row["timestamp"].timestamp() * 1000), value, row["metric"]])
print(json.dumps(out, sort_keys=True))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&blocks)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_pyarrow: Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_quiver = export(&s.base, "gpu_power").await;
    assert_eq!(from_quiver.len(), 4);
    for (metric, ts, vals) in from_quiver {
        let gpu = metric["gpu"].as_str().unwrap();
        let rows = from_pyarrow[gpu].as_array().unwrap();
        assert_eq!(rows.len(), ts.len(), "gpu {gpu}");
        for ((row, t), v) in rows.iter().zip(&ts).zip(&vals) {
            assert_eq!(row[0].as_i64().unwrap(), *t);
            assert_eq!(row[1].as_f64().unwrap(), *v);
            assert_eq!(row[2], "gpu_power");
        }
    }
    s.stop().await;
}

/// `promtool query instant|range` (Prometheus's own client) works against Quiver unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs promtool (Debian package prometheus)"]
async fn promtool_queries_quiver_as_it_queries_prometheus() {
    let promtool = which("promtool").expect("promtool is on the PATH");
    let s = TestServer::start(&["--storage.retention.time=100y"]).await;
    let lines: String = (0..20)
        .map(|i| {
            format!(
                "gpu_util{{gpu=\"0\"}} {} {}\n",
                40 + i,
                1_700_000_000_000i64 + i * 15_000
            )
        })
        .collect();
    let (code, _) = post(&s.url("/api/v1/import/prometheus"), lines.into_bytes(), &[]).await;
    assert_eq!(code, 204);
    let run = |args: Vec<String>| {
        let out = Command::new(&promtool).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let instant = run(vec![
        "query".into(),
        "instant".into(),
        "--time=1700000100".into(),
        s.base.clone(),
        "gpu_util * 2".into(),
    ]);
    // The sample at 1700000090 s is the 7th (value 46).
    assert!(
        instant.contains("{gpu=\"0\"} => 92 @[1700000100]"),
        "{instant}"
    );
    let range = run(vec![
        "query".into(),
        "range".into(),
        "--start=1700000030".into(),
        "--end=1700000090".into(),
        "--step=30s".into(),
        s.base.clone(),
        "gpu_util".into(),
    ]);
    assert!(
        range.contains("42 @[1700000030]") && range.contains("46 @[1700000090]"),
        "{range}"
    );
    s.stop().await;
}

/// A `prometheus-client` (PyPI) exporter with every metric type.
const PY_EXPORTER: &str = r#"
import sys, time
from prometheus_client import Counter, Gauge, Histogram, Summary, Info, Enum, start_http_server
c = Counter('jobs_processed', 'Jobs processed.', ['queue'])
g = Gauge('queue_depth', 'Jobs waiting.', ['queue'], unit='jobs')
h = Histogram('job_latency_seconds', 'Job latency.', buckets=[0.1, 0.5, 1.0])
s = Summary('payload_bytes', 'Payload sizes.')
i = Info('build', 'Build information.')
e = Enum('worker_state', 'Worker state.', states=['idle', 'busy'])
i.info({'version': '1.2.3', 'commit': 'abc'})
start_http_server(int(sys.argv[1]), addr='127.0.0.1')
n = 0
while True:
    n += 1
    for q in ('a', 'b\n"quoted"'):
        c.labels(q).inc()
        g.labels(q).set(n % 7)
    h.observe((n % 10) / 10)
    s.observe(n * 10)
    e.state('busy' if n % 2 else 'idle')
    time.sleep(0.2)
"#;

/// Quiver and a real Prometheus scrape the same targets with the same config: a real
/// `prometheus-node-exporter`, a `prometheus-client` exporter (OpenMetrics, by content
/// negotiation) and a target that is down. They store the same metric names and label sets, and
/// agree on `up` and on the metric metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs prometheus and prometheus-node-exporter (Debian), prometheus-client (PyPI)"]
async fn quiver_scrapes_what_prometheus_scrapes() {
    let prometheus = which("prometheus").expect("prometheus is on the PATH");
    let node_exporter =
        which("prometheus-node-exporter").expect("prometheus-node-exporter is on the PATH");
    let dir = tempfile::tempdir().unwrap();
    let kill_on_drop = KillOnDrop;

    let node_port = free_port();
    let _node = kill_on_drop(
        Command::new(node_exporter)
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let py_port = free_port();
    std::fs::write(dir.path().join("exporter.py"), PY_EXPORTER).unwrap();
    let _py = kill_on_drop(
        Command::new("python3")
            .arg(dir.path().join("exporter.py"))
            .arg(py_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let down_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n\
         - job_name: node\n  static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n\
         - job_name: py\n  static_configs: [{{targets: ['127.0.0.1:{py_port}'], labels: {{team: ml}}}}]\n  metric_relabel_configs:\n  - {{source_labels: [__name__], regex: 'python_gc_.*', action: drop}}\n\
         - job_name: down\n  static_configs: [{{targets: ['127.0.0.1:{down_port}']}}]\n"
    );
    for port in [node_port, py_port] {
        wait_ready_path(&format!("http://127.0.0.1:{port}/metrics")).await;
    }
    std::fs::write(dir.path().join("prom.yml"), &config).unwrap();
    let prom_port = free_port();
    let _prom = kill_on_drop(spawn_prometheus(&prometheus, dir.path(), prom_port));
    let quiver = TestServer::start_with_config(
        tempfile::tempdir().unwrap(),
        &[],
        quiver::config::Config::from_yaml("prom.yml", &config).unwrap(),
    )
    .await;
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_ready(&prom).await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let series = series_set;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let window = format!("start={}&end={}", now - 60.0, now);
    for job in ["node", "py", "down"] {
        let q = format!("/api/v1/series?match[]={{job=\"{job}\"}}&{window}");
        let (_, p) = get_json(&format!("{prom}{q}")).await;
        let (_, mine) = get_json(&quiver.url(&q)).await;
        let (p, mine) = (prometheus_3_series(&p), series(&mine));
        assert!(p.len() >= 5, "Prometheus scraped job {job}: {p:?}");
        let missing: Vec<_> = p.difference(&mine).take(5).collect();
        let extra: Vec<_> = mine.difference(&p).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "job {job}: missing in Quiver: {missing:?}; only in Quiver: {extra:?}"
        );
    }
    // `up` agrees for every target, the down one included.
    let up = |base: String| async move {
        let (_, v) = get_json(&format!("{base}/api/v1/query?query=up")).await;
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"]["job"].as_str().unwrap().to_string(),
                    r["value"][1].as_str().unwrap().to_string(),
                )
            })
            .collect::<BTreeSet<_>>()
    };
    let expected: BTreeSet<(String, String)> = [("down", "0"), ("node", "1"), ("py", "1")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(up(prom.clone()).await, expected);
    assert_eq!(up(quiver.base.clone()).await, expected);
    // The metadata of the Python exporter's families agrees.
    let metadata = |base: String| async move {
        let (_, v) = get_json(&format!(
            "{base}/api/v1/targets/metadata?match_target={{job=\"py\"}}"
        ))
        .await;
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{} {} {} {}", m["metric"], m["type"], m["help"], m["unit"]))
            .collect::<BTreeSet<_>>()
    };
    let (p, mine) = (
        metadata(prom.clone()).await,
        metadata(quiver.base.clone()).await,
    );
    assert!(p.len() >= 6, "{p:?}");
    assert_eq!(p, mine);
    quiver.stop().await;
}

/// Kills a child process when dropped (also when an assertion fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until a URL answers 200.
async fn wait_ready_path(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client().get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prometheus with `<dir>/prom.yml`, its TSDB in `<dir>/tsdb`, on loopback `port`.
fn spawn_prometheus(
    binary: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
) -> std::process::Child {
    Command::new(binary)
        .arg(format!("--config.file={}", dir.join("prom.yml").display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The `data` array of a series answer, as a set of label sets (JSON text, keys sorted).
/// [`series_set`] of Prometheus 2.42's answer as Prometheus 3 would store it: a classic
/// histogram's `le` and a summary's `quantile` written as OpenMetrics floats (`1` as `1.0`),
/// as Quiver scrapes them.
fn prometheus_3_series(v: &Value) -> BTreeSet<String> {
    let mut v = v.clone();
    for s in v["data"].as_array_mut().unwrap() {
        let bucket = s["__name__"]
            .as_str()
            .is_some_and(|n| n.ends_with("_bucket"));
        for (label, applies) in [("le", bucket), ("quantile", true)] {
            let Some(x) = s[label].as_str().and_then(|x| x.parse::<f64>().ok()) else {
                continue;
            };
            if applies {
                s[label] = quiver_storage::histogram::format_openmetrics_float(x).into();
            }
        }
    }
    series_set(&v)
}

fn series_set(v: &Value) -> BTreeSet<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}
