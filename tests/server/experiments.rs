//! Experiment ingest over HTTP: batches are all or nothing, errors name their lines, and what is
//! stored survives a restart (it went through the WAL). The happy paths are data in
//! `tests/sql/experiments.slt`.

use serde_json::Value;

use super::support::{TestServer, post, sql_rows};

async fn count(s: &TestServer, q: &str) -> i64 {
    let rows = sql_rows(s, q).await;
    rows[0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("{q}: {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_rejects_the_whole_batch_and_names_its_line() {
    let s = TestServer::start(&["--storage.retention.time=100y"]).await;
    let url = s.url("/api/v1/experiments/e/runs/r/metrics");
    let body = concat!(
        "{\"step\": 1, \"timestamp\": 1700000000, \"metrics\": {\"loss\": 0.5}}\n",
        "{\"step\": 2, \"timestamp\": 1700000001, \"metrics\": {\"loss\": \"high\"}}\n",
        "{\"step\": 3, \"timestamp\": 1700000002, \"metrics\": {\"loss\": 0.4}}\n",
        "{\"step\": 4, \"timestamp\": 1700000003, \"metrics\": {\"loss\": 0.3}\n",
    );
    let (code, text) = post(&url, body.as_bytes().to_vec(), &[]).await;
    assert_eq!(code, 400, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["errorType"], "bad_data");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("line 2: metric \"loss\": \"high\" is not a number"),
        "{msg}"
    );
    assert!(msg.contains("line 4: not valid JSON"), "{msg}");
    assert!(
        !msg.contains("line 1:") && !msg.contains("line 3:"),
        "{msg}"
    );
    // Nothing of the batch was stored, not even its good lines.
    let q = "SELECT count(*) FROM experiments.run_metrics";
    assert_eq!(count(&s, q).await, 0);

    // The same batch without its bad lines goes in whole.
    let good: String = body
        .lines()
        .enumerate()
        .filter(|(i, _)| *i == 0 || *i == 2)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let (code, text) = post(&url, good.into_bytes(), &[]).await;
    assert_eq!(code, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"], serde_json::json!({"lines": 2, "samples": 2}));
    assert_eq!(count(&s, q).await, 2);

    // Bad parameters and names.
    let (code, text) = post(
        &s.url("/api/v1/experiments/e/runs/r/params"),
        b"[1, 2]".to_vec(),
        &[],
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("expected an object of parameters"), "{text}");
    let (code, _) = post(
        &s.url("/api/v1/experiments/e/runs/r/metrics"),
        b"".to_vec(),
        &[],
    )
    .await;
    assert_eq!(code, 400);

    // Stored lines survive a restart.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, &["--storage.retention.time=100y"]).await;
    assert_eq!(count(&s, q).await, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_without_timestamps_never_overwrite_each_other() {
    let s = TestServer::start(&[]).await;
    let url = s.url("/api/v1/experiments/e/runs/r/metrics");
    // Two batches in quick succession, no timestamps: every step keeps its own sample.
    for batch in 0..2 {
        let body: String = (0..50)
            .map(|i| {
                format!(
                    "{{\"step\": {}, \"metrics\": {{\"loss\": {i}}}}}\n",
                    batch * 50 + i
                )
            })
            .collect();
        let (code, text) = post(&url, body.into_bytes(), &[]).await;
        assert_eq!(code, 200, "{text}");
    }
    assert_eq!(
        count(
            &s,
            "SELECT count(DISTINCT step) FROM experiments.run_metrics WHERE run_id = 'r' AND key = 'loss'"
        )
        .await,
        100
    );
    s.stop().await;
}
