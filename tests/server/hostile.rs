//! Hostile and careless input, one test per class, through the real HTTP and Flight
//! interfaces: every answer is a 4xx or a bounded 422/503 in Prometheus's envelope, and the
//! server answers the next request after each.

use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use serde_json::Value;
use tonic::Code;

use super::support::*;

/// `GET path?query=q` (and more params): (status, JSON body).
async fn get_api(s: &TestServer, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .get(s.url(path))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
    (status, v)
}

/// Asserts an error envelope with this status and `errorType`; answers the message.
fn refused_with(got: (u16, Value), status: u16, error_type: &str) -> String {
    let (code, v) = got;
    let shown = v.to_string();
    assert_eq!(code, status, "{:.500}", shown);
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], error_type, "{v}");
    v["error"].as_str().unwrap().to_string()
}

/// The server still answers a query.
async fn still_serving(s: &TestServer) {
    let (code, v) = get_api(s, "/api/v1/query", &[("query", "1+1")]).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][1], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_read_only_over_http_flight_sql_and_json_tickets() {
    let s = TestServer::start(&[]).await;
    let target = s.dir.path().join("written-by-a-client.csv");
    let copy = format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display());
    let external = format!(
        "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '{}'",
        s.dir.path().join("wal").display()
    );
    let writes = [
        copy.as_str(),
        external.as_str(),
        "DROP TABLE samples",
        "SET datafusion.execution.batch_size = 1",
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO samples VALUES (1)",
        "SELECT 1 AS a INTO t",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/quiver-explain.csv'",
    ];
    for sql in writes {
        let message = refused_with(
            get_api(&s, "/api/v1/sql", &[("query", sql)]).await,
            400,
            "bad_data",
        );
        assert!(
            message.contains("read-only") || message.contains("not supported"),
            "{sql}: {message}"
        );
    }
    // Flight SQL: a statement and a prepared statement.
    let mut c = FlightSqlServiceClient::new(flight_channel(&s).await);
    for sql in writes {
        let e = c.execute(sql.to_string(), None).await.expect_err(sql);
        assert!(
            e.to_string().contains("read-only") || e.to_string().contains("not supported"),
            "{sql}: {e}"
        );
        assert!(c.prepare(sql.to_string(), None).await.is_err(), "{sql}");
    }
    // Plain Flight's JSON tickets.
    let mut f = FlightClient::new(flight_channel(&s).await);
    for sql in writes {
        let ticket = serde_json::json!({ "sql": sql }).to_string();
        let e = match f.do_get(Ticket::new(ticket)).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.expect_err(sql),
            Err(e) => e,
        };
        match &e {
            arrow_flight::error::FlightError::Tonic(status) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{sql}: {e}")
            }
            other => panic!("{sql}: {other}"),
        }
    }
    // Nor can a query read the server's files.
    for sql in [
        "SELECT * FROM '/etc/hostname'",
        "SELECT * FROM read_csv('/etc/hostname')",
        "SELECT * FROM read_parquet('/etc/hostname')",
    ] {
        refused_with(
            get_api(&s, "/api/v1/sql", &[("query", sql)]).await,
            400,
            "bad_data",
        );
    }
    assert!(
        !target.exists(),
        "a client's COPY wrote a file on the server"
    );
    assert!(!std::path::Path::new("/tmp/quiver-explain.csv").exists());
    // The shared session is unchanged for everyone.
    let rows = sql_rows(&s, "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('samples', 'leak', 't', 'v')").await;
    assert_eq!(rows[0][0], 1, "{rows:?}");
    let rows = sql_rows(&s, "SHOW datafusion.execution.batch_size").await;
    assert_eq!(rows[0][1], "8192");
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_promql_fails_fast_with_execution_or_bad_data() {
    let s = TestServer::start(&[]).await;
    let started = Instant::now();
    for q in [
        "count_over_time(vector(1)[100y:1ms])",
        "max_over_time(max_over_time(vector(1)[1d:1s])[100y:1ms])",
        "sum_over_time(rate(vector(1)[10y:1ms])[1h:1m])",
    ] {
        let m = refused_with(
            get_api(&s, "/api/v1/query", &[("query", q), ("time", "1700000000")]).await,
            422,
            "execution",
        );
        assert!(m.contains("too many samples"), "{q}: {m}");
    }
    for (q, params) in [
        (
            "vector(1)",
            [("start", "0"), ("end", "100000"), ("step", "0.001")],
        ),
        (
            "vector(1)",
            [
                ("start", "-292273086-05-16T16:47:06Z"),
                ("end", "292277025-08-18T07:12:54.999999999Z"),
                ("step", "1"),
            ],
        ),
        ("vector(1)", [("start", "100"), ("end", "0"), ("step", "1")]),
    ] {
        let mut all = vec![("query", q)];
        all.extend(params);
        refused_with(
            get_api(&s, "/api/v1/query_range", &all).await,
            400,
            "bad_data",
        );
    }
    // The same bounds inside SQL's promql().
    for sql in [
        "SELECT count(*) FROM promql('count_over_time(vector(1)[100y:1ms])', 1700000000)",
        "SELECT count(*) FROM promql('vector(1)', 0, 4000000000, 0.001)",
        "SELECT count(*) FROM promql('vector(1)', 100, 0, 1)",
        "SELECT count(*) FROM promql('vector(1)', 9223372036854775807, 9223372036854775807, 1)",
        "SELECT count(*) FROM promql('vector(1)', 'NaN')",
    ] {
        let (code, v) = get_api(&s, "/api/v1/sql", &[("query", sql)]).await;
        assert!(code == 400 || code == 422, "{sql}: {code} {v}");
        assert_eq!(v["status"], "error", "{sql}: {v}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_past_its_time_or_memory_stops_and_the_server_goes_on() {
    let s = TestServer::start(&["--query.timeout=1s", "--query.max-memory=16MiB"]).await;
    let started = Instant::now();
    let m = refused_with(
        get_api(
            &s,
            "/api/v1/sql",
            &[(
                "query",
                "SELECT count(*) FROM generate_series(1, 1000000000000) AS g(v)",
            )],
        )
        .await,
        503,
        "timeout",
    );
    assert!(m.contains("timed out"), "{m}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let m = refused_with(
        get_api(&s, "/api/v1/sql", &[("query", "SELECT v * 7919 % 4999999 AS k, count(*) FROM generate_series(1, 5000000) AS g(v) GROUP BY k")]).await,
        422,
        "execution",
    );
    assert!(m.to_lowercase().contains("resources exhausted"), "{m}");
    // One call that would build gigabytes is refused before it runs.
    let m = refused_with(
        get_api(
            &s,
            "/api/v1/sql",
            &[("query", "SELECT length(repeat('x', 2000000000))")],
        )
        .await,
        422,
        "execution",
    );
    assert!(m.contains("allows at most"), "{m}");
    // Flight: the same bounds, as gRPC codes.
    let mut c = FlightSqlServiceClient::new(flight_channel(&s).await);
    let info = c
        .execute(
            "SELECT count(*) FROM generate_series(1, 1000000000000) AS g(v)".into(),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let e = match c.do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.expect_err("timed out"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("timed out"), "{e}");
    still_serving(&s).await;
    assert_eq!(sql_rows(&s, "SELECT 1").await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_max_concurrency_wait_their_turn() {
    let s = TestServer::start(&["--query.max-concurrency=1", "--query.timeout=3s"]).await;
    // A query that holds the only turn until its 3 s timeout.
    let slow = |s: &TestServer| {
        let url = s.url("/api/v1/sql");
        tokio::spawn(async move {
            client()
                .get(url)
                .query(&[(
                    "query",
                    "SELECT count(*) FROM generate_series(1, 1000000000000) AS g(v)",
                )])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let holder = slow(&s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (code, v) = get_api(&s, "/api/v1/query", &[("query", "1+1")]).await;
    let waited = started.elapsed();
    assert_eq!(holder.await.unwrap(), 503);
    // The quick query ran once the slow one gave up its turn (at its 3 s timeout), not beside it.
    assert_eq!(code, 200, "{v}");
    assert!(
        waited > Duration::from_millis(2000),
        "ran beside the slow query after {waited:?}"
    );

    // Flight SQL's GetFlightInfo waits too: planning evaluates `promql()`, so it is a query.
    let holder = slow(&s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = FlightSqlServiceClient::new(flight_channel(&s).await);
    let started = Instant::now();
    let info = c
        .execute("SELECT * FROM promql('1+1', 10)".to_string(), None)
        .await;
    let waited = started.elapsed();
    assert_eq!(holder.await.unwrap(), 503);
    assert!(info.is_ok(), "{info:?}");
    assert!(
        waited > Duration::from_millis(2000),
        "GetFlightInfo planned beside the slow query after {waited:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_promql_strings_are_refused_on_every_endpoint() {
    let s = TestServer::start(&[]).await;
    let deep_parens = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let long_chain = vec!["1"; 100_000].join("+");
    let too_long = "x".repeat(400 << 10);
    let calls = format!("{}x{}", "abs(".repeat(30_000), ")".repeat(30_000));
    let many_regexes = format!(
        "x{{{}}}",
        (0..65)
            .map(|i| format!("l{i}=~\"v.*\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let hostile = [
        deep_parens.as_str(),
        long_chain.as_str(),
        too_long.as_str(),
        calls.as_str(),
        "x[1e300]",
        "x offset Inf",
        "x @ 1e300",
        "rate(x[300y])",
        // Six characters that compile to megabytes, and more regex matchers than a query may
        // hold.
        r#"x{a=~"\\w{100}"}"#,
        many_regexes.as_str(),
    ];
    for q in hostile {
        for path in [
            "/api/v1/query",
            "/api/v1/format_query",
            "/api/v1/query_exemplars",
        ] {
            let r = client()
                .post(s.url(path))
                .form(&[("query", q)])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(
                (status, v["errorType"].as_str()),
                (400, Some("bad_data")),
                "{path} {q:.40}: {v}"
            );
        }
        let r = client()
            .post(s.url("/api/v1/series"))
            .form(&[("match[]", q)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "series {q:.40}");
        still_serving(&s).await;
    }
    // Regex matchers are counted over all of a request's selectors.
    let selectors: Vec<(&str, String)> = (0..65)
        .map(|i| ("match[]", format!("{{l{i}=~\"v.*\"}}")))
        .collect();
    let r = client()
        .post(s.url("/api/v1/series"))
        .form(&selectors)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("regular-expression matchers")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_bodies_get_400() {
    let s = TestServer::start(&[]).await;
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let deep_object = format!(
        "{{\"step\": 1, \"metrics\": {}1{}}}",
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    );
    for (path, body) in [
        ("/api/v1/experiments/e/runs/r/metrics", deep.clone()),
        ("/api/v1/experiments/e/runs/r/metrics", deep_object.clone()),
        ("/api/v1/experiments/e/runs/r/params", deep.clone()),
        (
            "/api/v1/experiments/e/runs/r/params",
            format!(
                "{{\"p\": {}1{}}}",
                "{\"a\":".repeat(100_000),
                "}".repeat(100_000)
            ),
        ),
    ] {
        let (code, text) = post(&s.url(path), body.into_bytes(), &[]).await;
        assert_eq!(code, 400, "{path}: {text:.200}");
        assert!(text.contains("levels deep"), "{text:.300}");
        still_serving(&s).await;
    }
    // Flight's JSON tickets (serde_json stops at its own depth).
    let mut f = FlightClient::new(flight_channel(&s).await);
    let deep_ticket = format!(
        "{{\"sql\": {}\"x\"{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = f
        .do_get(Ticket::new(deep_ticket))
        .await
        .expect_err("a deep ticket");
    assert!(e.to_string().contains("not valid JSON"), "{e}");
    let e = f
        .do_get(Ticket::new(deep))
        .await
        .expect_err("a deep binary ticket");
    match e {
        arrow_flight::error::FlightError::Tonic(s) => {
            assert_eq!(s.code(), Code::InvalidArgument, "{s}")
        }
        other => panic!("{other}"),
    }
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_remote_write_messages_get_415_and_bodies_that_store_nothing_are_not_acknowledged()
{
    let s = TestServer::start(&[]).await;
    let url = s.url("/api/v1/write");
    let body = write_request(&[(vec![("__name__", "x")], vec![(1_000, 1.0)])]);
    // A message Quiver does not know (a future version): 415, so a sender tries another.
    let v3 = [
        ("Content-Encoding", "snappy"),
        (
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        ),
    ];
    let (code, text) = post(&url, body.clone(), &v3).await;
    assert_eq!(code, 415, "{text}");
    let (code, text) = post(
        &url,
        body.clone(),
        &[
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/json"),
        ],
    )
    .await;
    assert_eq!(code, 415, "{text}");
    // A 2.0 message (symbols, then series of label refs) sent as 1.0 stores nothing: 400.
    let mut raw = Vec::new();
    for sym in ["", "__name__", "x"] {
        raw.push(0x0a); // field 1 (symbols), length-delimited
        raw.push(sym.len() as u8);
        raw.extend_from_slice(sym.as_bytes());
    }
    // A series (field 2) with label refs 1, 2 and one sample.
    let series = [
        0x0a, 0x02, 0x01, 0x02, 0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x01,
    ];
    raw.push(0x12);
    raw.push(series.len() as u8);
    raw.extend_from_slice(&series);
    let (code, text) = post(
        &url,
        snap::raw::Encoder::new().compress_vec(&raw).unwrap(),
        &RW_HEADERS,
    )
    .await;
    assert_eq!(code, 400, "{text}");
    // An invalid native histogram (a count its buckets do not add up to) is refused with
    // Prometheus's reason, not dropped in silence.
    let mut hist = Vec::new();
    let label = [
        0x0a, 0x08, 0x5f, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x5f, 0x5f, 0x12, 0x01, 0x68,
    ];
    let ts = [
        &[0x0a, label.len() as u8][..],
        &label,
        &[0x22, 0x02, 0x08, 0x01],
    ]
    .concat();
    hist.push(0x0a);
    hist.push(ts.len() as u8);
    hist.extend_from_slice(&ts);
    let (code, text) = post(
        &url,
        snap::raw::Encoder::new().compress_vec(&hist).unwrap(),
        &RW_HEADERS,
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("native histogram") && text.contains("Count field is 1"),
        "{text}"
    );
    assert!(query(&s, "x").await.is_empty() && query(&s, "h").await.is_empty());
    // 1.0 still works, with or without a Content-Type.
    let (code, text) = post(&url, body.clone(), &RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");
    let (code, text) = post(&url, body, &[("Content-Encoding", "snappy")]).await;
    assert_eq!(code, 204, "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shown_configuration_hides_every_secret() {
    let config = r#"
scrape_configs:
  - job_name: basic
    basic_auth: {username: scraper, password: hunter2-basic}
    static_configs: [{targets: ["127.0.0.1:1"]}]
  - job_name: bearer
    authorization: {credentials: hunter2-bearer}
    static_configs: [{targets: ["127.0.0.1:1"]}]
"#;
    let (s, _) = start_with_files(config, &[], &[]).await;
    let (code, v) = get_json(&s.url("/api/v1/status/config")).await;
    assert_eq!(code, 200);
    let yaml = v["data"]["yaml"].as_str().unwrap();
    assert!(!yaml.contains("hunter2"), "{yaml}");
    assert_eq!(yaml.matches("<secret>").count(), 2, "{yaml}");
    assert!(yaml.contains("scraper"), "{yaml}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_lifecycle_endpoints_are_off_unless_asked_for() {
    let s = TestServer::start(&[]).await;
    for path in ["/api/v1/admin/flush", "/-/quit", "/-/reload"] {
        let r = client().post(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    still_serving(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fails_in_any_part_changes_no_part() {
    let job = |name: &str| {
        format!(
            "- job_name: {name}\n  scrape_interval: 1h\n  static_configs: [{{targets: ['127.0.0.1:1']}}]\n"
        )
    };
    let (s, path) = start_with_files(
        &format!("scrape_configs:\n{}", job("a")),
        &[],
        &["--web.enable-lifecycle"],
    )
    .await;
    let jobs = |v: &Value| -> Vec<String> {
        let mut j: Vec<String> = v["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["labels"]["job"].as_str().unwrap().to_string())
            .collect();
        j.sort();
        j
    };
    let (_, v) = get_json(&s.url("/api/v1/targets")).await;
    assert_eq!(jobs(&v), ["a"]);
    // The scrape part is good (a new job b); the alerting part cannot be built (its CA file is
    // missing), which is only found when its client is made.
    std::fs::write(
        &path,
        format!(
            "scrape_configs:\n{}{}alerting:\n  alertmanagers:\n  - static_configs: [{{targets: ['127.0.0.1:2']}}]\n    tls_config: {{ca_file: /nonexistent/ca.pem}}\n",
            job("a"),
            job("b")
        ),
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().await.unwrap();
    assert!(text.contains("ca.pem"), "{text}");
    let (_, v) = get_json(&s.url("/api/v1/targets")).await;
    assert_eq!(jobs(&v), ["a"], "the scrape part was applied: {v}");
    let (_, v) = get_json(&s.url("/api/v1/alertmanagers")).await;
    assert_eq!(
        v["data"]["activeAlertmanagers"],
        serde_json::json!([]),
        "{v}"
    );
    let (_, v) = get_json(&s.url("/api/v1/status/config")).await;
    assert!(!v["data"]["yaml"].as_str().unwrap().contains("job_name: b"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_past_max_samples_is_refused_before_reading() {
    let s = TestServer::start(&["--query.max-samples=100", "--web.enable-admin-api"]).await;
    // Recent samples (retention would drop old ones once in a block), one a second.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base = now - 3600;
    let many: Vec<(i64, f64)> = (0..150).map(|i| ((base + i) * 1000, i as f64)).collect();
    let few: Vec<(i64, f64)> = (0..10).map(|i| ((base + i) * 1000, i as f64)).collect();
    let body = write_request(&[
        (vec![("__name__", "many")], many),
        (vec![("__name__", "few")], few),
    ]);
    assert_eq!(
        post(&s.url("/api/v1/write"), body, &RW_HEADERS).await.0,
        204
    );
    let export = |m: &'static str, from: i64, to: i64| {
        let url = s.url("/api/v1/export");
        async move {
            let (start, end) = ((base + from).to_string(), (base + to).to_string());
            let r = client()
                .get(url)
                .query(&[("match[]", m), ("start", &start), ("end", &end)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // A narrower range of the head's newest samples fits (the bound counts what meets it).
    let (code, text) = export("many", 125, 140).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    // In the head, then again from a block.
    for round in ["head", "block"] {
        let (code, text) = export("many", 0, 1000).await;
        assert_eq!(code, 422, "{round}: {text}");
        assert!(text.contains("--query.max-samples"), "{round}: {text}");
        let (code, text) = export("{__name__=~\"many|few\"}", 0, 1000).await;
        assert_eq!(code, 422, "{round}: {text}");
        let (code, text) = export("few", 0, 1000).await;
        assert_eq!(code, 200, "{round}: {text}");
        assert_eq!(text.lines().count(), 1, "{round}: {text}");
        let (code, _) = post(&s.url("/api/v1/admin/flush"), Vec::new(), &[]).await;
        assert!(code == 200 || code == 204, "flush: {code}");
    }
    still_serving(&s).await;
    s.stop().await;
}

/// SQL whose parentheses nest deeply enough to make the parser backtrack for minutes is
/// refused before it is parsed, on HTTP (Flight SQL and rules share the same check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_sql_is_refused_before_parsing() {
    let s = TestServer::start(&[]).await;
    let q = format!("SELECT from {} SELECT 1", "(((( SELECT from ".repeat(15));
    let started = std::time::Instant::now();
    let msg = refused_with(
        get_api(&s, "/api/v1/sql", &[("query", q.as_str())]).await,
        400,
        "bad_data",
    );
    assert!(msg.contains("parentheses"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    still_serving(&s).await;
    s.stop().await;
}
