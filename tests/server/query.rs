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
