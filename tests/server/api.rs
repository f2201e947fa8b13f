//! The HTTP API: readiness, listing endpoints, status, metrics, admin and lifecycle.

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_once_the_wal_is_replayed() {
    let s = TestServer::start(&[]).await;
    let r = client().get(s.url("/-/healthy")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().head(s.url("/-/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_written_series_are_listed_by_series_labels_and_label_values() {
    let s = TestServer::start(&[]).await;
    let body = write_request(&[
        (
            vec![
                ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                ("gpu", "0"),
                ("Hostname", "node-1"),
            ],
            vec![(1_000, 87.0)],
        ),
        (
            vec![
                ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                ("gpu", "1"),
                ("Hostname", "node-1"),
            ],
            vec![(1_000, 42.0)],
        ),
        (
            vec![
                ("__name__", "vllm:num_requests_running"),
                ("model_name", "llama"),
            ],
            vec![(2_000, 3.0)],
        ),
    ]);
    let (code, text) = post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");

    let (code, v) = get_json(&s.url("/api/v1/series?match[]=DCGM_FI_DEV_GPU_UTIL")).await;
    assert_eq!(code, 200);
    assert_eq!(v["status"], "success");
    let series = v["data"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["gpu"], "0");
    assert_eq!(series[1]["__name__"], "DCGM_FI_DEV_GPU_UTIL");

    let (_, v) = get_json(&s.url("/api/v1/labels")).await;
    assert_eq!(
        v["data"],
        serde_json::json!(["Hostname", "__name__", "gpu", "model_name"])
    );
    let (_, v) = get_json(&s.url("/api/v1/label/__name__/values")).await;
    assert_eq!(
        v["data"],
        serde_json::json!(["DCGM_FI_DEV_GPU_UTIL", "vllm:num_requests_running"])
    );
    let (_, v) = get_json(&s.url("/api/v1/label/gpu/values?match[]={Hostname=\"node-1\"}")).await;
    assert_eq!(v["data"], serde_json::json!(["0", "1"]));
    // Regex matchers are anchored; `start`/`end` bound by sample times.
    let (_, v) =
        get_json(&s.url("/api/v1/series?match[]={__name__=~\"vllm:.*\"}&start=1&end=1.5")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let (_, v) =
        get_json(&s.url("/api/v1/series?match[]={__name__=~\"vllm:.*\"}&start=1&end=2")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (_, v) = get_json(&s.url("/api/v1/series?match[]={__name__=~\"vllm\"}")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    // limit truncates with a warning.
    let (_, v) = get_json(&s.url("/api/v1/label/gpu/values?limit=1")).await;
    assert_eq!(v["data"], serde_json::json!(["0"]));
    assert_eq!(v["warnings"][0], "results truncated due to limit");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_endpoint_takes_form_posts_like_grafana_sends() {
    let s = TestServer::start(&[]).await;
    let body = write_request(&[(vec![("__name__", "up"), ("job", "a")], vec![(1_000, 1.0)])]);
    post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    let r = client()
        .post(s.url("/api/v1/series"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("match%5B%5D=up&start=0&end=10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["data"][0]["job"], "a");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_prometheus_error_envelopes() {
    let s = TestServer::start(&[]).await;
    for (path, needle) in [
        ("/api/v1/series", "no match[] parameter provided"),
        ("/api/v1/series?match[]=up{", "parse error"),
        ("/api/v1/series?match[]={a=~\".*\"}", "non-empty matcher"),
        (
            "/api/v1/series?match[]=up&start=yesterday",
            "invalid parameter \"start\"",
        ),
        (
            "/api/v1/labels?start=10&end=5",
            "end timestamp must not be before start time",
        ),
        ("/api/v1/series?match[]={a=~\"(\"}", "regex"),
    ] {
        let (code, v) = get_json(&s.url(path)).await;
        assert_eq!(code, 400, "{path}: {v}");
        assert_eq!(v["status"], "error", "{path}");
        assert_eq!(v["errorType"], "bad_data", "{path}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
    }
    let r = client()
        .get(s.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildinfo_and_tsdb_status_have_prometheus_shapes() {
    let s = TestServer::start(&[]).await;
    let body = write_request(&[(
        vec![("__name__", "up"), ("job", "a")],
        vec![(1_000, 1.0), (2_000, 1.0)],
    )]);
    post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    let (_, v) = get_json(&s.url("/api/v1/status/buildinfo")).await;
    assert!(v["data"]["version"].is_string());
    assert!(
        v["data"].get("features").is_none(),
        "a features key makes Grafana assume Mimir"
    );
    let (_, v) = get_json(&s.url("/api/v1/status/tsdb")).await;
    let d = &v["data"];
    assert_eq!(d["headStats"]["numSeries"], 1);
    assert_eq!(d["headStats"]["minTime"], 1000);
    assert_eq!(d["headStats"]["maxTime"], 2000);
    assert_eq!(
        d["seriesCountByMetricName"][0],
        serde_json::json!({"name": "up", "value": 1})
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_reports_ingest_and_wal_and_request_durations() {
    let s = TestServer::start(&[]).await;
    let body = write_request(&[(
        vec![("__name__", "up")],
        vec![(1_000, 1.0), (2_000, 1.0), (3_000, 0.0)],
    )]);
    post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    let text = get_text(&s.url("/metrics")).await;
    let samples = quiver_ingest::text::parse(&text).unwrap();
    let value = |name: &str| {
        samples
            .iter()
            .find(|x| x.labels[0].1 == name)
            .map(|x| x.value)
    };
    assert_eq!(value("quiver_ingested_samples_total"), Some(3.0));
    assert!(value("quiver_wal_fsyncs_total").unwrap() >= 1.0);
    assert_eq!(value("quiver_head_series"), Some(1.0));
    assert!(
        samples.iter().any(
            |x| x.labels[0].1 == "quiver_http_request_duration_seconds_count"
                && x.labels
                    .iter()
                    .any(|(n, v)| n == "handler" && v == "/api/v1/write")
        ),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_flush_needs_the_flag_and_writes_blocks_that_keep_serving() {
    let s = TestServer::start(&[]).await;
    let (code, _) = post(&s.url("/api/v1/admin/flush"), vec![], &[]).await;
    assert_eq!(code, 404, "admin API is off by default");
    s.stop().await;

    let s = TestServer::start(&["--web.enable-admin-api"]).await;
    // Recent samples: older ones would be dropped by the 15 d retention as soon as they are blocks.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    let body = write_request(&[(
        vec![("__name__", "up"), ("job", "a")],
        (0..100).map(|i| (t0 + i * 15_000, i as f64)).collect(),
    )]);
    post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    let before = export(&s.base, "up").await;
    let (code, text) = post(&s.url("/api/v1/admin/flush"), vec![], &[]).await;
    assert_eq!(code, 200, "{text}");
    let (_, v) = get_json(&s.url("/api/v1/status/tsdb")).await;
    assert_eq!(v["data"]["blockStats"]["numSamples"], 100);
    assert_eq!(v["data"]["headSamples"], 0);
    assert_eq!(export(&s.base, "up").await, before);
    let blocks: Vec<_> = std::fs::read_dir(s.dir.path().join("blocks"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        blocks
            .iter()
            .any(|e| e.path().join("samples.parquet").is_file())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_shuts_down_cleanly_when_lifecycle_is_enabled() {
    let data = tempfile::tempdir().unwrap();
    let server = ChildServer::start(data.path(), &["--web.enable-lifecycle"]).await;
    // Not `up`: the child runs the embedded default config, whose self-scrape writes `up` too
    // when a scrape falls inside the test.
    let body = write_request(&[(
        vec![("__name__", "written_before_quit")],
        vec![(1_000, 1.0)],
    )]);
    post(&format!("{}/api/v1/write", server.base), body, &RW_HEADERS).await;
    let (code, _) = post(&format!("{}/-/quit", server.base), vec![], &[]).await;
    assert_eq!(code, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while client()
        .get(format!("{}/-/healthy", server.base))
        .send()
        .await
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "still serving after /-/quit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(server);
    let again = ChildServer::start(data.path(), &[]).await;
    assert_eq!(export(&again.base, "written_before_quit").await.len(), 1);
}
