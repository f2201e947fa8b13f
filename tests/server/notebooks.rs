//! Notebook clients against a real Quiver: `pyarrow.flight` with both JSON tickets and
//! `adbc-driver-flightsql` (Arrow tables, pandas frames, parameters, metadata) agree with
//! `/api/v1/sql`; `duckdb` reading the Parquet blocks directly answers as Quiver's SQL does; and
//! `docs/notebook-example.py` runs from start to end.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::support::{TestServer, client, post, python_json};

/// The rows `/api/v1/sql` answers for `query`.
async fn sql_rows(s: &TestServer, query: &str, token: Option<&str>) -> Vec<Value> {
    let mut req = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", query)]);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let text = req.send().await.unwrap().text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["rows"].as_array().unwrap().clone()
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

async fn import(s: &TestServer, text: String, token: Option<&str>) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (code, body) = post(
        &s.url("/api/v1/import/prometheus"),
        text.into_bytes(),
        &headers,
    )
    .await;
    assert_eq!(code, 204, "{body}");
}

/// The rows of a JSON-lines summary, as `flight_clients.py` writes them, for comparison.
fn summarized(rows: &[Value], columns: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            let obj: serde_json::Map<String, Value> = columns
                .iter()
                .zip(r.as_array().unwrap())
                .map(|(c, v)| (c.to_string(), v.clone()))
                .collect();
            // Python's json.dumps(sort_keys=True) spacing.
            let parts: Vec<String> = obj
                .iter()
                .map(|(k, v)| format!("{}: {}", json!(k), python_number(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        })
        .collect();
    out.sort();
    out
}

/// A JSON value as Python prints it (floats keep a `.0`).
fn python_number(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs python3 with pyarrow, pandas and adbc-driver-flightsql (PyPI)"]
async fn pyarrow_flight_and_adbc_answer_as_the_sql_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let flag = format!("--flight.token-file={}", token_file.display());
    let s = TestServer::start(&["--storage.retention.time=100y", &flag]).await;
    let token = Some("s3cret");
    let mut text = String::new();
    for gpu in 0..3 {
        for t in 0..4 {
            text.push_str(&format!(
                "gpu_util{{gpu=\"{gpu}\"}} {} {}\n",
                t * 10 + gpu,
                1_700_000_000_000i64 + t * 15_000
            ));
        }
    }
    import(&s, text, token).await;

    let flight = s.flight.replace("http://", "grpc://");
    let got = python_json(
        &fixture("tests/fixtures/notebook/flight_clients.py"),
        &[&flight, "s3cret"],
    );
    let q = "SELECT gpu, count(*) AS n, sum(value) AS total FROM metrics.gpu_util GROUP BY gpu ORDER BY gpu";
    let expected = summarized(&sql_rows(&s, q, token).await, &["gpu", "n", "total"]);
    assert_eq!(expected.len(), 3);
    let columns = json!([["gpu", "string"], ["n", "int64"], ["total", "double"]]);
    for way in ["flight_sql_ticket", "adbc_arrow"] {
        assert_eq!(got[way]["rows"], 3, "{way}: {}", got[way]);
        assert_eq!(got[way]["columns"], columns, "{way}");
        assert_eq!(got[way]["data"], json!(expected), "{way}");
    }
    // pandas: the same totals.
    assert_eq!(
        got["adbc_pandas"],
        json!({"rows": 3, "columns": ["gpu", "n", "total"], "n": 12, "total": 192.0})
    );
    // A bound parameter ($1) narrows like a literal.
    let expected = summarized(
        &sql_rows(
            &s,
            "SELECT gpu, value FROM metrics.gpu_util WHERE gpu = '1'",
            token,
        )
        .await,
        &["gpu", "value"],
    );
    assert_eq!(got["adbc_parameter"]["data"], json!(expected));
    assert_eq!(got["adbc_parameter"]["rows"], 4);

    // PromQL through a JSON ticket: the range query's rows (3 GPUs x 4 steps), labels as columns.
    let promql = &got["flight_promql_ticket"];
    assert_eq!(promql["rows"], 12, "{promql}");
    let names: Vec<&str> = promql["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["timestamp", "value", "gpu"]);
    // The dictionary column `metric` arrives as plain strings.
    assert_eq!(got["flight_samples_types"][0], json!(["metric", "string"]));

    // Metadata: the metric table and its columns, as GetTables with schemas gives them.
    assert_eq!(
        got["adbc_objects"],
        json!([[
            "datafusion",
            "metrics",
            "gpu_util",
            "VIEW",
            ["gpu", "series_id", "timestamp", "value"]
        ]])
    );
    assert_eq!(
        got["adbc_table_schema"],
        json!([
            ["gpu", "string"],
            ["series_id", "uint64"],
            ["timestamp", "timestamp[ms, tz=UTC]"],
            ["value", "double"]
        ])
    );
    assert_eq!(got["adbc_vendor"], "Quiver");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs python3 with duckdb (PyPI)"]
async fn duckdb_reading_the_blocks_agrees_with_quiver_sql() {
    let s = TestServer::start(&["--web.enable-admin-api", "--storage.retention.time=100y"]).await;
    // Two metrics over two blocks' windows (2 h apart), decimals and full-precision values.
    let mut text = String::new();
    for gpu in 0..4 {
        for i in 0..600 {
            let t = 1_700_000_000_000i64 + i * 15_000;
            let util = format!("{}.{:02}", (gpu * 7 + i) % 100, i % 100);
            let power = (i as f64 + 0.5) / (gpu as f64 + 3.0);
            text.push_str(&format!(
                "gpu_util{{gpu=\"{gpu}\",host=\"h{}\"}} {util} {t}\n",
                gpu % 2
            ));
            text.push_str(&format!("gpu_power{{gpu=\"{gpu}\"}} {power} {t}\n"));
        }
    }
    import(&s, text, None).await;
    assert_eq!(
        post(&s.url("/api/v1/admin/flush"), vec![], &[]).await.0,
        200
    );
    let quiver = sql_rows(
        &s,
        "SELECT u.host, count(*) AS n, sum(u.value) AS util, max(p.value) AS power, \
         avg(u.value) FILTER (WHERE u.timestamp >= TIMESTAMP '2023-11-14 23:00:00+00:00') AS late \
         FROM metrics.gpu_util u JOIN metrics.gpu_power p ON p.gpu = u.gpu AND p.timestamp = u.timestamp \
         GROUP BY u.host ORDER BY u.host",
        None,
    )
    .await;
    let script = r#"
import json, sys
import duckdb
root = sys.argv[1]
live = [b["id"] for b in json.load(open(root + "/manifest.json"))["body"]["blocks"]]
con = duckdb.connect()
files = lambda name: "[" + ", ".join(f"'{root}/{b}/{name}.parquet'" for b in live) + "]"
# docs/storage-format.md: the value, and the labels in the series file.
con.execute(f"""CREATE VIEW samples AS SELECT metric, series_id, timestamp,
    coalesce(value, value_mantissa / power(10, value_scale)) AS value FROM read_parquet({files('samples')})""")
con.execute(f"CREATE VIEW series AS SELECT DISTINCT series_id, metric, labels FROM read_parquet({files('series')})")
rows = con.execute("""
  WITH u AS (SELECT s.labels['host'] AS host, s.labels['gpu'] AS gpu, x.timestamp, x.value
             FROM samples x JOIN series s USING (series_id) WHERE x.metric = 'gpu_util'),
       p AS (SELECT s.labels['gpu'] AS gpu, x.timestamp, x.value
             FROM samples x JOIN series s USING (series_id) WHERE x.metric = 'gpu_power')
  SELECT u.host, count(*), sum(u.value), max(p.value),
         avg(u.value) FILTER (WHERE u.timestamp >= TIMESTAMPTZ '2023-11-14 23:00:00+00:00')
  FROM u JOIN p ON p.gpu = u.gpu AND p.timestamp = u.timestamp GROUP BY u.host ORDER BY u.host
""").fetchall()
print(json.dumps({"live": len(live), "rows": [list(r) for r in rows]}))
"#;
    let path = s.dir.path().join("duck.py");
    std::fs::write(&path, script).unwrap();
    let blocks = s.dir.path().join("blocks");
    let duck = python_json(&path, &[blocks.to_str().unwrap()]);
    assert!(duck["live"].as_u64().unwrap() >= 2, "{duck}");
    let duck = duck["rows"].as_array().unwrap();
    assert_eq!(quiver.len(), 2);
    assert_eq!(duck.len(), quiver.len(), "{duck:?} vs {quiver:?}");
    for (q, d) in quiver.iter().zip(duck) {
        assert_eq!(q[0], d[0]);
        assert_eq!(q[1], d[1]);
        // Sums may differ in the last bits with the order of addition.
        for i in 2..5 {
            let (a, b) = (q[i].as_f64().unwrap(), d[i].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                "column {i}: quiver {a}, duckdb {b}"
            );
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs python3 with pyarrow, pandas and adbc-driver-flightsql (PyPI)"]
async fn the_notebook_example_runs_end_to_end() {
    let s = TestServer::start(&[]).await;
    let flight = s.flight.replace("http://", "grpc://");
    let out = Command::new("python3")
        .arg(fixture("docs/notebook-example.py"))
        .args(["--http", &s.base, "--flight", &flight])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The best steps are where the script's validation curves bottom out; each run's GPU
    // utilization is its own GPU's (92-95 for GPU 0, 61-64 for GPU 1), not the idle GPU 2's.
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("run_id"))
        .skip(1)
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!((rows[0][0], rows[0][3]), ("run-b", "50"), "{stdout}");
    assert_eq!((rows[1][0], rows[1][3]), ("run-a", "80"), "{stdout}");
    let util = |r: &Vec<&str>| r[5].parse::<f64>().unwrap();
    assert!((61.0..=64.0).contains(&util(&rows[0])), "{stdout}");
    assert!((92.0..=95.0).contains(&util(&rows[1])), "{stdout}");
    assert!(
        stdout.contains("10-minute average validation loss"),
        "{stdout}"
    );
    s.stop().await;
}
