//! The PromQL query API: result shapes, step alignment, value encoding and errors.

use serde_json::{Value, json};

use super::support::*;

/// Writes two GPU utilisation series, one sample every 15 s for 10 minutes from t=1000 s.
async fn gpu_server(extra: &[&str]) -> TestServer {
    let s = TestServer::start(extra).await;
    let samples = |base: f64| -> Vec<(i64, f64)> {
        (0..40)
            .map(|i| (1_000_000 + i * 15_000, base + i as f64))
            .collect()
    };
    let body = write_request(&[
        (vec![("__name__", "gpu_util"), ("gpu", "0")], samples(0.0)),
        (vec![("__name__", "gpu_util"), ("gpu", "1")], samples(100.0)),
    ]);
    let (code, text) = post(
        &s.url("/api/v1/write"),
        body,
        &[
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/x-protobuf"),
        ],
    )
    .await;
    assert_eq!(code, 204, "{text}");
    s
}

fn query_url(s: &TestServer, path: &str, params: &[(&str, &str)]) -> String {
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    s.url(&format!("{path}?{}", q.join("&")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_query_answers_a_vector_with_string_values() {
    let s = gpu_server(&[]).await;
    let (code, body) = get_json(&query_url(
        &s,
        "/api/v1/query",
        &[("query", "sum by (gpu) (gpu_util)"), ("time", "1030")],
    ))
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let mut result = body["data"]["result"].as_array().unwrap().clone();
    result.sort_by_key(|r| r["metric"]["gpu"].as_str().unwrap().to_string());
    assert_eq!(
        Value::Array(result),
        json!([
            {"metric": {"gpu": "0"}, "value": [1030, "2"]},
            {"metric": {"gpu": "1"}, "value": [1030, "102"]},
        ])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_query_points_fall_on_start_plus_multiples_of_step() {
    let s = gpu_server(&[]).await;
    // Form POST, RFC 3339 start, a duration step: as Grafana sends it.
    let body =
        "query=gpu_util%7Bgpu%3D%220%22%7D&start=1970-01-01T00%3A16%3A47.5Z&end=1130&step=30s";
    let r = client()
        .post(s.url("/api/v1/query_range"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["data"]["resultType"], "matrix");
    let series = &body["data"]["result"][0];
    assert_eq!(
        series["metric"],
        json!({"__name__": "gpu_util", "gpu": "0"})
    );
    let times: Vec<f64> = series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert_eq!(times, vec![1007.5, 1037.5, 1067.5, 1097.5, 1127.5]);
    // At 1007.5 s the newest sample is the one at 1000 s (value 0).
    assert_eq!(series["values"][0][1], "0");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalars_and_special_floats_are_encoded_as_prometheus_does() {
    let s = gpu_server(&[]).await;
    let (_, body) = get_json(&query_url(
        &s,
        "/api/v1/query",
        &[("query", "1/0"), ("time", "5")],
    ))
    .await;
    assert_eq!(
        body["data"],
        json!({"resultType": "scalar", "result": [5, "+Inf"]})
    );
    let (_, body) = get_json(&query_url(
        &s,
        "/api/v1/query",
        &[("query", "0/0"), ("time", "5.5")],
    ))
    .await;
    assert_eq!(body["data"]["result"], json!([5.5, "NaN"]));
    let (_, body) = get_json(&query_url(
        &s,
        "/api/v1/query",
        &[("query", "\"hi\""), ("time", "5")],
    ))
    .await;
    assert_eq!(
        body["data"],
        json!({"resultType": "string", "result": [5, "hi"]})
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_use_prometheus_types_and_codes() {
    let s = gpu_server(&[]).await;
    // (path, parameters, status, errorType)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        ("/api/v1/query", &[("query", "sum(")], 400, "bad_data"),
        ("/api/v1/query", &[], 400, "bad_data"),
        (
            "/api/v1/query",
            &[("query", "up"), ("time", "tomorrow")],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "up"),
                ("start", "10"),
                ("end", "5"),
                ("step", "1"),
            ],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "100000"),
                ("step", "1"),
            ],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "10"),
                ("step", "0"),
            ],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "gpu_util[5m]"),
                ("start", "0"),
                ("end", "10"),
                ("step", "1"),
            ],
            400,
            "bad_data",
        ),
        // Duplicate series on the "one" side: Prometheus's execution error, 422.
        (
            "/api/v1/query",
            &[("query", "gpu_util + on() gpu_util"), ("time", "1030")],
            422,
            "execution",
        ),
    ];
    for (path, params, code, kind) in cases {
        let (got, body) = get_json(&query_url(&s, path, params)).await;
        assert_eq!(
            (got, body["errorType"].as_str().unwrap_or("")),
            (*code, *kind),
            "{path} {params:?}: {body}"
        );
        assert_eq!(body["status"], "error");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_sample_limit_fails_with_an_execution_error() {
    let s = gpu_server(&["--query.max-samples=10"]).await;
    let (code, body) = get_json(&query_url(
        &s,
        "/api/v1/query",
        &[("query", "sum(rate(gpu_util[10m]))"), ("time", "1600")],
    ))
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("too many samples"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_query_explain_and_grafana_side_routes_answer() {
    let s = gpu_server(&[]).await;
    let (code, body) = get_json(&query_url(
        &s,
        "/api/v1/format_query",
        &[("query", "sum(rate(x[5m]))by(job)")],
    ))
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["data"], "sum by (job) (rate(x[5m]))");
    let (code, body) = get_json(&query_url(
        &s,
        "/api/v1/query",
        &[
            ("query", "sum by (gpu) (rate(gpu_util[5m]))"),
            ("time", "1300"),
            ("explain", "true"),
        ],
    ))
    .await;
    assert_eq!(code, 200);
    let plan = body["data"]["result"].as_str().unwrap();
    // sum by (…) (rate(…)) accumulates inside the range node: no hash aggregate.
    assert!(
        plan.contains("RangeFn") && plan.contains("aggregate: Some(StreamAgg"),
        "{plan}"
    );
    let (code, body) = get_json(&query_url(
        &s,
        "/api/v1/query_exemplars",
        &[("query", "gpu_util")],
    ))
    .await;
    assert_eq!((code, body["data"].clone()), (200, json!([])));
    let (code, body) = get_json(&s.url("/api/v1/metadata")).await;
    assert_eq!((code, body["data"].clone()), (200, json!({})));
    s.stop().await;
}

/// Writes `latency_seconds{job="api"}`: floats every 15 s from t=1000 s for 2 minutes, then
/// native histograms every 15 s for 2 minutes (count and sum growing by 4 and 2 a sample,
/// buckets at schema 0 indexes 1 and 2).
async fn histogram_server() -> TestServer {
    use quiver_ingest::histogram::proto::{BucketSpan, Count, Histogram, ZeroCount};
    use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
    let s = TestServer::start(&[]).await;
    let floats: Vec<(i64, f64)> = (0..8).map(|i| (1_000_000 + i * 15_000, i as f64)).collect();
    let mut series =
        TimeSeries::from_pairs(&[("__name__", "latency_seconds"), ("job", "api")], &floats);
    series.histograms = (1..=8u64)
        .map(|i| Histogram {
            count: Some(Count::CountInt(4 * i)),
            sum: 2.0 * i as f64,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: Some(ZeroCount::ZeroCountInt(i)),
            positive_spans: vec![BucketSpan {
                offset: 1,
                length: 2,
            }],
            positive_deltas: vec![i as i64, i as i64],
            timestamp: 1_105_000 + i as i64 * 15_000,
            ..Default::default()
        })
        .collect();
    let body = encode(&WriteRequest {
        timeseries: vec![series],
    });
    let (code, text) = post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_come_back_in_prometheus_json_and_through_their_functions() {
    let s = histogram_server().await;
    let get = |path: &'static str, params: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get_json(&query_url(s, path, &p)).await
        }
    };
    // The last histogram (t = 1225 s, i = 8) at t = 1230 s.
    let (code, v) = get(
        "/api/v1/query",
        vec![("query", "latency_seconds".into()), ("time", "1230".into())],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["data"]["result"][0],
        json!({"metric": {"__name__": "latency_seconds", "job": "api"},
               "histogram": [1230, {"count": "32", "sum": "16", "buckets": [
                   [3, "-0.001", "0.001", "8"], [0, "1", "2", "8"], [0, "2", "4", "16"]]}]})
    );
    // Functions of native histograms; the name is dropped.
    for (q, want) in [
        ("histogram_count(latency_seconds)", "32"),
        ("histogram_sum(latency_seconds)", "16"),
        ("histogram_avg(latency_seconds)", "0.5"),
    ] {
        let (code, v) = get(
            "/api/v1/query",
            vec![("query", q.into()), ("time", "1230".into())],
        )
        .await;
        assert_eq!(code, 200, "{q}: {v}");
        assert_eq!(
            v["data"]["result"][0]["metric"],
            json!({"job": "api"}),
            "{q}: {v}"
        );
        assert_eq!(v["data"]["result"][0]["value"][1], want, "{q}: {v}");
    }
    // Quantiles interpolate on a log scale inside (2, 4] (Prometheus's HistogramQuantile);
    // fractions and the spread, too.
    for (q, want) in [
        ("histogram_quantile(0.75, latency_seconds)", 2f64.powf(1.5)),
        ("histogram_quantile(0.5, latency_seconds)", 2.0),
        ("histogram_fraction(0, 2, latency_seconds)", 0.5),
        ("histogram_stdvar(latency_seconds)", {
            let mean = 0.5;
            (8.0 * (0.0f64 - mean).powi(2)
                + 8.0 * (2f64.sqrt() - mean).powi(2)
                + 16.0 * (8f64.sqrt() - mean).powi(2))
                / 32.0
        }),
    ] {
        let (code, v) = get(
            "/api/v1/query",
            vec![("query", q.into()), ("time", "1230".into())],
        )
        .await;
        assert_eq!(code, 200, "{q}: {v}");
        assert_eq!(
            v["data"]["result"][0]["metric"],
            json!({"job": "api"}),
            "{q}: {v}"
        );
        let got: f64 = v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((got - want).abs() < 1e-12, "{q}: {got} != {want}");
    }
    // rate() of histograms (Prometheus's extrapolation: 12 more observations over 45 s of
    // samples in a 60 s window, extrapolated 10 s back and 5 s forward), and sum/avg of them;
    // the quantile of a rate is the quantile of the buckets' increases (3, 3 and 6 here).
    for (q, want) in [
        (
            "histogram_count(rate(latency_seconds[1m]))",
            12.0 * (60.0 / 45.0) / 60.0,
        ),
        (
            "histogram_count(increase(latency_seconds[1m]))",
            12.0 * (60.0 / 45.0),
        ),
        ("histogram_count(sum(latency_seconds))", 32.0),
        ("histogram_count(avg(latency_seconds))", 32.0),
        ("count(latency_seconds)", 1.0),
        (
            "histogram_quantile(0.75, sum(rate(latency_seconds[1m])))",
            2f64.powf(1.5),
        ),
        // With a scalar: `*` and `/` scale a histogram (unary minus too).
        ("histogram_count(latency_seconds * 2)", 64.0),
        ("histogram_count(2 * latency_seconds)", 64.0),
        ("histogram_sum(latency_seconds / 4)", 4.0),
        ("histogram_count(-latency_seconds)", -32.0),
        // Range functions: over the window's histograms, or counting them as samples.
        ("histogram_count(last_over_time(latency_seconds[1m]))", 32.0),
        (
            "histogram_count(sum_over_time(latency_seconds[1m]))",
            20.0 + 24.0 + 28.0 + 32.0,
        ),
        ("histogram_count(avg_over_time(latency_seconds[1m]))", 26.0),
        ("histogram_count(irate(latency_seconds[1m]))", 4.0 / 15.0),
        ("count_over_time(latency_seconds[1m])", 4.0),
        // Every histogram grows: no reset; each differs from the one before: 3 changes.
        ("resets(latency_seconds[1m])", 0.0),
        ("changes(latency_seconds[1m])", 3.0),
        // Between two vectors, in aggregations that do not fuse into their selector, under
        // limitk and in subqueries, histograms are computed as Prometheus does.
        ("histogram_count(latency_seconds + latency_seconds)", 64.0),
        ("histogram_count(latency_seconds - latency_seconds)", 0.0),
        ("histogram_count(latency_seconds * on() vector(3))", 96.0),
        ("histogram_count(latency_seconds == latency_seconds)", 32.0),
        ("latency_seconds == bool latency_seconds", 1.0),
        ("latency_seconds != bool latency_seconds", 0.0),
        ("histogram_count(latency_seconds and latency_seconds)", 32.0),
        ("histogram_count(sum by (__name__) (latency_seconds))", 32.0),
        (
            "histogram_count(sum(latency_seconds + latency_seconds))",
            64.0,
        ),
        ("histogram_count(avg(latency_seconds * 3))", 96.0),
        ("histogram_count(limitk(1, latency_seconds))", 32.0),
        (
            "histogram_count(last_over_time(latency_seconds[1m:15s]))",
            32.0,
        ),
        (
            "max_over_time(histogram_count(latency_seconds)[1m:15s])",
            32.0,
        ),
        ("count_over_time(latency_seconds[1m:15s])", 4.0),
    ] {
        let (code, v) = get(
            "/api/v1/query",
            vec![("query", q.into()), ("time", "1230".into())],
        )
        .await;
        assert_eq!(code, 200, "{q}: {v}");
        let got: f64 = v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or_else(|| panic!("{q}: {v}"))
            .parse()
            .unwrap();
        assert!((got - want).abs() < 1e-9, "{q}: {got} != {want}");
    }
    let (_, v) = get(
        "/api/v1/query",
        vec![
            ("query", "sum(latency_seconds)".into()),
            ("time", "1230".into()),
        ],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["histogram"][1]["sum"], "16", "{v}");
    // What Prometheus leaves out: a histogram with `+` a scalar, or in a function of values.
    for q in [
        "latency_seconds + 1",
        "abs(latency_seconds)",
        "sort(latency_seconds)",
        "topk(1, latency_seconds)",
        "max_over_time(latency_seconds[1m])",
        "latency_seconds > 0",
    ] {
        let (code, v) = get(
            "/api/v1/query",
            vec![("query", q.into()), ("time", "1230".into())],
        )
        .await;
        assert_eq!(code, 200, "{q}: {v}");
        assert_eq!(v["data"]["result"], json!([]), "{q}: {v}");
    }
    // Comparisons drop histograms, with `bool` too (Prometheus's own operators.test).
    let (_, v) = get(
        "/api/v1/query",
        vec![
            ("query", "latency_seconds > bool 0".into()),
            ("time", "1230".into()),
        ],
    )
    .await;
    assert_eq!(v["data"]["result"], json!([]), "{v}");
    // label_replace keeps a histogram's value, with the new label.
    let (_, v) = get(
        "/api/v1/query",
        vec![
            (
                "query",
                "label_replace(latency_seconds, \"a\", \"b\", \"\", \"\")".into(),
            ),
            ("time", "1230".into()),
        ],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["metric"]["a"], "b", "{v}");
    assert_eq!(v["data"]["result"][0]["histogram"][1]["count"], "32", "{v}");
    // The JSON-lines export has no place for histograms: refused, not left out.
    let (code, v) = get_json(&s.url("/api/v1/export?match[]=latency_seconds")).await;
    assert_eq!(code, 422, "{v}");
    // A window across the switch counts both kinds: seven floats and one histogram.
    let (_, v) = get(
        "/api/v1/query",
        vec![
            ("query", "count_over_time(latency_seconds[2m])".into()),
            ("time", "1125".into()),
        ],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["value"][1], "8", "{v}");
    // Over the floats before: nothing.
    let (_, v) = get(
        "/api/v1/query",
        vec![
            ("query", "histogram_count(latency_seconds)".into()),
            ("time", "1050".into()),
        ],
    )
    .await;
    assert_eq!(v["data"]["result"], json!([]), "{v}");
    let (_, v) = get(
        "/api/v1/query",
        vec![("query", "latency_seconds".into()), ("time", "1050".into())],
    )
    .await;
    assert_eq!(v["data"]["result"][0]["value"], json!([1050, "3"]), "{v}");
    // A range query across the switch: one series with both `values` and `histograms`.
    let (code, v) = get(
        "/api/v1/query_range",
        vec![
            ("query", "latency_seconds".into()),
            ("start", "1090".into()),
            ("end", "1130".into()),
            ("step", "20".into()),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let r = &v["data"]["result"][0];
    assert_eq!(r["values"], json!([[1090, "6"], [1110, "7"]]), "{v}");
    let hs = r["histograms"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0][0], 1130);
    assert_eq!(hs[0][1]["count"], "4", "the first histogram, at 1120 s");
    // The raw samples of a range: both kinds, each at its own time.
    let (code, v) = get(
        "/api/v1/query",
        vec![
            ("query", "latency_seconds[30s]".into()),
            ("time", "1125".into()),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let r = &v["data"]["result"][0];
    assert_eq!(r["values"], json!([[1105, "7"]]), "{v}");
    assert_eq!(r["histograms"][0][0], 1120, "{v}");
    // A histogram with a float between two vectors: only `*` (and `/` by a float) apply;
    // Prometheus leaves the others out, `bool` or not.
    for q in [
        "latency_seconds + on() vector(1)",
        "vector(1) / on() latency_seconds",
        "latency_seconds > bool on() vector(1)",
    ] {
        let (code, v) = get(
            "/api/v1/query",
            vec![("query", q.into()), ("time", "1230".into())],
        )
        .await;
        assert_eq!((code, &v["data"]["result"]), (200, &json!([])), "{q}: {v}");
    }
    // The raw points of a subquery hold the histograms; the name stays.
    let (code, v) = get(
        "/api/v1/query",
        vec![
            ("query", "latency_seconds[1m:30s]".into()),
            ("time", "1230".into()),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let r = &v["data"]["result"][0];
    assert_eq!(r["metric"]["__name__"], "latency_seconds", "{v}");
    assert_eq!(r["histograms"][1][1]["count"], "32", "{v}");
    // `sum by (__name__)` keeps the name.
    let (_, v) = get(
        "/api/v1/query",
        vec![
            ("query", "sum by (__name__) (latency_seconds)".into()),
            ("time", "1230".into()),
        ],
    )
    .await;
    assert_eq!(
        v["data"]["result"][0]["metric"],
        json!({"__name__": "latency_seconds"}),
        "{v}"
    );
    // count_values counts a histogram by its text form, as Prometheus.
    let (_, v) = get(
        "/api/v1/query",
        vec![
            ("query", "count_values(\"v\", latency_seconds)".into()),
            ("time", "1230".into()),
        ],
    )
    .await;
    let label = v["data"]["result"][0]["metric"]["v"]
        .as_str()
        .unwrap_or_default();
    assert!(label.starts_with("{count:32, sum:16"), "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
    // info() keeps a histogram (no info series here: it passes unchanged).
    let (code, v) = get(
        "/api/v1/query",
        vec![
            ("query", "info(latency_seconds)".into()),
            ("time", "1230".into()),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["histogram"][1]["count"], "32", "{v}");
    // Float queries elsewhere are untouched.
    let (code, v) = get(
        "/api/v1/query",
        vec![
            ("query", "sum(latency_seconds)".into()),
            ("time", "1050".into()),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "3");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_are_a_struct_column_in_sql_and_over_flight() {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{DataType, Float64Type};
    use futures::TryStreamExt;
    let s = histogram_server().await;
    // The `histograms` table: a row per histogram sample, and PromQL's functions as SQL's.
    let q = "SELECT histogram_count(histogram) AS c, histogram_sum(histogram) AS s, \
             histogram_avg(histogram) AS a, histogram_quantile(0.75, histogram) AS q, \
             histogram_fraction(0, 2, histogram) AS f, histogram['schema'] AS schema, \
             histogram['positive_buckets'] AS b \
             FROM histograms WHERE metric = 'latency_seconds' ORDER BY timestamp DESC LIMIT 1";
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    // The last histogram (i = 8): count 32, sum 16, the same estimates as PromQL's.
    assert_eq!(
        v["data"]["rows"][0],
        json!([32.0, 16.0, 0.5, 2f64.powf(1.5), 0.5, 0, "[8.0, 16.0]"]),
        "{v}"
    );
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", "SELECT count(*), min(timestamp) FROM histograms")])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["data"]["rows"][0][0], 8, "{v}");
    assert_eq!(v["data"]["rows"][0][1], "1970-01-01T00:18:40Z", "{v}");
    // The float samples stay in `samples` alone.
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", "SELECT count(*) FROM samples")])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["data"]["rows"][0][0], 8, "{v}");
    // promql() in SQL: a result of histograms has a `histogram` column (NULL `value`).
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[(
            "query",
            "SELECT histogram_count(histogram), value, job FROM promql('latency_seconds', 1230)",
        )])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["data"]["rows"], json!([[32.0, null, "api"]]), "{v}");
    // A function given something else is a 400, not a failure of the server.
    let r = client()
        .get(s.url("/api/v1/sql"))
        .query(&[("query", "SELECT histogram_count(value) FROM samples")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Over Flight, the struct column arrives as a struct.
    let mut c = arrow_flight::FlightClient::new(flight_channel(&s).await);
    let batches: Vec<datafusion::arrow::array::RecordBatch> = c
        .do_get(arrow_flight::Ticket::new(
            r#"{"sql": "SELECT timestamp, histogram FROM histograms ORDER BY timestamp"}"#,
        ))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let b = &batches[0];
    assert!(matches!(
        b.schema().field(1).data_type(),
        DataType::Struct(_)
    ));
    let h = b.column(1).as_struct();
    let counts = h
        .column_by_name("count")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(counts.len(), 8);
    assert_eq!(counts.value(0), 4.0);
    assert_eq!(counts.value(7), 32.0);
    s.stop().await;
}
