//! `/api/v1/sql`: the metrics catalog answered as JSON, CSV and Arrow IPC, with limits and
//! Prometheus's error envelope.

use serde_json::Value;

use super::support::{TestServer, client, post};

async fn server_with_gpus() -> TestServer {
    let s = TestServer::start(&["--storage.retention.time=100y"]).await;
    let mut text = String::new();
    for gpu in 0..3 {
        for t in 0..4 {
            text.push_str(&format!(
                "gpu_util{{gpu=\"{gpu}\",host=\"a,b\"}} {} {}\n",
                t * 10 + gpu,
                1_700_000_000_000i64 + t * 15_000
            ));
        }
    }
    let (code, body) = post(&s.url("/api/v1/import/prometheus"), text.into_bytes(), &[]).await;
    assert_eq!(code, 204, "{body}");
    s
}

async fn get(
    s: &TestServer,
    query: &[(&str, &str)],
    accept: Option<&str>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client().get(s.url("/api/v1/sql")).query(query);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let r = req.send().await.unwrap();
    let (code, headers) = (r.status().as_u16(), r.headers().clone());
    (code, r.text().await.unwrap(), headers)
}

const Q: &str = "SELECT gpu, host, sum(value) AS total, count(*) AS n FROM metrics.gpu_util GROUP BY gpu, host ORDER BY gpu";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_json_csv_and_arrow() {
    let s = server_with_gpus().await;
    let (code, body, _) = get(&s, &[("query", Q)], None).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    let names: Vec<&str> = v["data"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gpu", "host", "total", "n"]);
    let rows = v["data"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1], serde_json::json!(["1", "a,b", 64.0, 4]));

    // POST with a form body, CSV by Accept.
    let r = client()
        .post(s.url("/api/v1/sql"))
        .header("Accept", "text/csv")
        .form(&[("query", Q)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "gpu,host,total,n");
    assert_eq!(lines[2], "1,\"a,b\",64.0,4");

    // Arrow IPC stream, read back with arrow's reader.
    let (code, _, headers) = get(&s, &[("query", Q), ("format", "arrow")], None).await;
    assert_eq!(code, 200);
    assert_eq!(
        headers["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", Q), ("format", "arrow")])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(
        std::io::Cursor::new(bytes.to_vec()),
        None,
    )
    .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert_eq!(batches[0].schema().field(2).name(), "total");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_limits_and_errors_use_the_envelope() {
    let s = server_with_gpus().await;
    let (code, body, headers) = get(
        &s,
        &[("query", "SELECT * FROM metrics.gpu_util"), ("limit", "5")],
        None,
    )
    .await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["rows"].as_array().unwrap().len(), 5);
    assert!(
        v["warnings"][0].as_str().unwrap().contains("truncated"),
        "{v}"
    );
    assert_eq!(headers["x-quiver-truncated"], "true");

    for (query, code, kind) in [
        ("SELEC 1", 400, "bad_data"),
        ("SELECT * FROM metrics.missing", 400, "bad_data"),
        ("SELECT CAST('x' AS INT)", 422, "execution"),
    ] {
        let (got, body, _) = get(&s, &[("query", query)], None).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (got, v["errorType"].as_str().unwrap()),
            (code, kind),
            "{query}: {v}"
        );
        assert_eq!(v["status"], "error");
    }
    let (code, _, _) = get(&s, &[], None).await;
    assert_eq!(code, 400);
    let (code, _, _) = get(&s, &[("query", "SELECT 1"), ("format", "xml")], None).await;
    assert_eq!(code, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_table_function_joins_with_sql() {
    let s = server_with_gpus().await;
    // A range query: 3 series x 4 steps of 15 s.
    let q = "SELECT gpu, count(*) AS n, max(value) AS top FROM promql('gpu_util * 2', 1700000000, 1700000045, '15s') GROUP BY gpu ORDER BY gpu";
    let (code, body, _) = get(&s, &[("query", q)], None).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["rows"],
        serde_json::json!([["0", 4, 60.0], ["1", 4, 62.0], ["2", 4, 64.0]])
    );
    // An instant query joined with a metric table.
    let q = "SELECT p.gpu, p.value, count(m.value) AS raw FROM promql('sum by (gpu) (gpu_util)', '2023-11-14T22:14:05Z') p JOIN metrics.gpu_util m ON p.gpu = m.gpu GROUP BY p.gpu, p.value ORDER BY p.gpu";
    let (code, body, _) = get(&s, &[("query", q)], None).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["rows"],
        serde_json::json!([["0", 30.0, 4], ["1", 31.0, 4], ["2", 32.0, 4]])
    );
    // PromQL errors come back in the envelope.
    let (code, body, _) = get(&s, &[("query", "SELECT * FROM promql('sum(', 0)")], None).await;
    assert_eq!(code, 400, "{body}");
    s.stop().await;
}

/// One cell as the `.slt` files write it.
fn slt_cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs every `tests/sql/*.slt` file against a fresh server (format in the files' headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in &files {
        let s = TestServer::start(&["--storage.retention.time=100y"]).await;
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i].trim_end();
            i += 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{}:{i}", file.display());
            // The block after the directive: up to a blank line (load) or `----`.
            let mut block = Vec::new();
            while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
                block.push(lines[i]);
                i += 1;
            }
            if line == "load" {
                let (code, body) = post(
                    &s.url("/api/v1/import/prometheus"),
                    (block.join("\n") + "\n").into_bytes(),
                    &[],
                )
                .await;
                assert_eq!(code, 204, "{at}: load failed: {body}");
                continue;
            }
            if let Some(path) = line.strip_prefix("post ") {
                let (code, body) = post(
                    &s.url(path.trim()),
                    (block.join("\n") + "\n").into_bytes(),
                    &[],
                )
                .await;
                assert!(
                    (200..300).contains(&code),
                    "{at}: post failed: {code} {body}"
                );
                continue;
            }
            assert_eq!(
                lines.get(i).map(|l| l.trim()),
                Some("----"),
                "{at}: expected ----"
            );
            i += 1;
            let mut expected = Vec::new();
            while i < lines.len() && !lines[i].trim().is_empty() {
                expected.push(lines[i].trim_end().to_string());
                i += 1;
            }
            let query = block.join("\n");
            let (code, body, _) = get(&s, &[("query", query.as_str()), ("limit", "0")], None).await;
            let v: Value = serde_json::from_str(&body).unwrap();
            ran += 1;
            if let Some(want) = line.strip_prefix("error ") {
                let err = v["error"].as_str().unwrap_or("");
                if code == 200 || !err.contains(want) {
                    failures.push(format!(
                        "{at}: expected an error with {want:?}, got {code} {body}"
                    ));
                }
                continue;
            }
            let rowsort = match line {
                "query" => false,
                "query rowsort" => true,
                other => panic!("{at}: unknown directive {other:?}"),
            };
            if code != 200 {
                failures.push(format!("{at}: {query}\n  failed: {body}"));
                continue;
            }
            let mut got: Vec<String> = v["data"]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(slt_cell)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            if rowsort {
                got.sort();
                expected.sort();
            }
            if got != expected {
                failures.push(format!(
                    "{at}: {query}\n  expected: {expected:?}\n  got:      {got:?}"
                ));
            }
        }
        s.stop().await;
    }
    assert!(ran > 0);
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
