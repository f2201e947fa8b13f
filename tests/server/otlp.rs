//! OTLP/HTTP metrics (`/api/v1/otlp/v1/metrics`): protobuf and JSON bodies, gzip, names as
//! Prometheus translates them, partial success for what is refused, clear 4xx for bad bodies;
//! and the real OpenTelemetry Python SDK pushing to Quiver.

use std::io::Write;

use prost::Message;
use quiver::config::Config;
use quiver_ingest::otlp::proto::{self, kv};
use serde_json::Value;

use super::support::*;

const T0: u64 = 1_700_000_000_000_000_000;
const MS0: i64 = 1_700_000_000_000;
const PATH: &str = "/api/v1/otlp/v1/metrics";

fn gauge_point(attrs: Vec<proto::KeyValue>, v: f64) -> proto::NumberDataPoint {
    proto::NumberDataPoint {
        attributes: attrs,
        time_unix_nano: T0,
        value: Some(proto::number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn request(metrics: Vec<proto::Metric>) -> proto::ExportMetricsServiceRequest {
    proto::ExportMetricsServiceRequest {
        resource_metrics: vec![proto::ResourceMetrics {
            resource: Some(proto::Resource {
                attributes: vec![
                    kv("service.name", "trainer"),
                    kv("service.instance.id", "node-3"),
                    kv("cloud.region", "eu-west"),
                ],
            }),
            scope_metrics: vec![proto::ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn metric(name: &str, unit: &str, data: proto::metric::Data) -> proto::Metric {
    proto::Metric {
        name: name.into(),
        description: format!("{name} help"),
        unit: unit.into(),
        data: Some(data),
    }
}

fn counter(name: &str, unit: &str, temporality: i32, v: f64) -> proto::Metric {
    metric(
        name,
        unit,
        proto::metric::Data::Sum(proto::Sum {
            data_points: vec![gauge_point(vec![kv("gpu", "0")], v)],
            aggregation_temporality: temporality,
            is_monotonic: true,
        }),
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn push(
    s: &TestServer,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Vec<u8>) {
    let mut req = client().post(s.url(PATH)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_protobuf_gzip_and_json_bodies_are_stored_as_prometheus_names_them() {
    let s = TestServer::start(&[]).await;
    let req = request(vec![
        counter("train.samples", "{sample}", proto::CUMULATIVE, 512.0),
        metric(
            "step.duration",
            "s",
            proto::metric::Data::Histogram(proto::Histogram {
                data_points: vec![proto::HistogramDataPoint {
                    time_unix_nano: T0,
                    count: 4,
                    sum: Some(2.5),
                    bucket_counts: vec![1, 2, 1],
                    explicit_bounds: vec![0.5, 1.0],
                    ..Default::default()
                }],
                aggregation_temporality: proto::CUMULATIVE,
            }),
        ),
    ]);
    let (code, ct, body) = push(
        &s,
        gzip(&req.encode_to_vec()),
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct.as_deref(), Some("application/x-protobuf"));
    // Everything stored: no partial success.
    let answer = proto::ExportMetricsServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(answer.partial_success, None);

    let got = export(&s.base, "train_samples_total").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0["job"], "trainer");
    assert_eq!(got[0].0["instance"], "node-3");
    assert_eq!(got[0].0["gpu"], "0");
    assert_eq!(
        (got[0].1.clone(), got[0].2.clone()),
        (vec![MS0], vec![512.0])
    );
    let buckets = export(&s.base, "step_duration_seconds_bucket").await;
    let mut by_le: Vec<(String, f64)> = buckets
        .iter()
        .map(|(l, _, v)| (l["le"].as_str().unwrap().to_string(), v[0]))
        .collect();
    by_le.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(
        by_le,
        vec![("0.5".into(), 1.0), ("1".into(), 3.0), ("+Inf".into(), 4.0)]
    );
    assert_eq!(
        export(&s.base, "step_duration_seconds_sum").await[0].2,
        [2.5]
    );
    let info = export(&s.base, "target_info").await;
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].0["cloud_region"], "eu-west");
    assert_eq!(info[0].0["job"], "trainer");

    // Metadata by family, with the unit as Prometheus names it.
    let (_, v) = get_json(&s.url("/api/v1/metadata")).await;
    assert_eq!(
        v["data"]["train_samples_total"][0]["type"], "counter",
        "{v}"
    );
    assert_eq!(
        v["data"]["step_duration_seconds"][0]["type"], "histogram",
        "{v}"
    );
    assert_eq!(
        v["data"]["step_duration_seconds"][0]["unit"], "seconds",
        "{v}"
    );
    assert_eq!(
        v["data"]["step_duration_seconds"][0]["help"],
        "step.duration help"
    );

    // The same protocol in JSON.
    let json = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"notebook"}}}}]}},
          "scopeMetrics":[{{"metrics":[{{"name":"loss","gauge":{{"dataPoints":[{{"timeUnixNano":"{T0}","asDouble":0.125}}]}}}}]}}]}}]}}"#
    );
    let (code, ct, body) = push(
        &s,
        json.into_bytes(),
        &[("Content-Type", "application/json")],
    )
    .await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({})
    );
    let loss = export(&s.base, "loss").await;
    assert_eq!(loss[0].0["job"], "notebook");
    assert_eq!(loss[0].2, [0.125]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_otlp_cannot_store_is_a_partial_success_and_the_rest_is_stored() {
    let s = TestServer::start(&[]).await;
    let req = request(vec![
        counter("requests", "", proto::DELTA, 3.0),
        metric(
            "latency",
            "s",
            proto::metric::Data::ExponentialHistogram(proto::ExponentialHistogram {
                data_points: vec![proto::ExponentialHistogramDataPoint {
                    time_unix_nano: T0,
                    count: 2,
                    ..Default::default()
                }],
                aggregation_temporality: proto::CUMULATIVE,
            }),
        ),
        // A valid one is stored as a native histogram.
        metric(
            "ttft",
            "s",
            proto::metric::Data::ExponentialHistogram(proto::ExponentialHistogram {
                data_points: vec![proto::ExponentialHistogramDataPoint {
                    time_unix_nano: T0,
                    count: 2,
                    scale: 2,
                    positive: Some(proto::Buckets {
                        offset: 3,
                        bucket_counts: vec![1, 1],
                    }),
                    ..Default::default()
                }],
                aggregation_temporality: proto::CUMULATIVE,
            }),
        ),
        counter("tokens", "", proto::CUMULATIVE, 9.0),
    ]);
    let (code, _, body) = push(
        &s,
        req.encode_to_vec(),
        &[("Content-Type", "application/x-protobuf")],
    )
    .await;
    assert_eq!(code, 200);
    let partial = proto::ExportMetricsServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial.error_message.contains("delta temporality"),
        "{}",
        partial.error_message
    );
    // An exponential histogram whose buckets do not add up to its count: Prometheus's reason.
    assert!(
        partial.error_message.contains("Count field is 2"),
        "{}",
        partial.error_message
    );
    assert_eq!(export(&s.base, "tokens_total").await[0].2, [9.0]);
    let (code, v) = get_json(&s.url("/api/v1/series?match[]=ttft_seconds")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = get_json(&s.url("/api/v1/series?match[]=latency_seconds")).await;
    assert!(v["data"].as_array().unwrap().is_empty(), "{v}");
    assert!(export(&s.base, "requests_total").await.is_empty());

    // In JSON, the same answer in OTLP/JSON's spelling.
    let json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"d","sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[{"timeUnixNano":"1","asInt":"4"}]}}]}]}]}"#;
    let (code, _, body) = push(&s, json.into(), &[("Content-Type", "application/json")]).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "1", "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_otlp_bodies_get_a_clear_4xx_and_nothing_is_stored() {
    let s = TestServer::start(&["--web.max-decoded-body-bytes=1048576"]).await;
    let pb = [("Content-Type", "application/x-protobuf")];
    let good = request(vec![counter("never", "", proto::CUMULATIVE, 1.0)]).encode_to_vec();
    // (what, body, headers, status, what the answer says)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "no content type",
            good.clone(),
            vec![],
            415,
            "unsupported content type",
        ),
        (
            "text",
            good.clone(),
            vec![("Content-Type", "text/plain")],
            415,
            "unsupported content type",
        ),
        (
            "snappy",
            good.clone(),
            vec![pb[0], ("Content-Encoding", "snappy")],
            415,
            "unsupported compression",
        ),
        (
            "truncated",
            good[..good.len() - 3].to_vec(),
            pb.to_vec(),
            400,
            "protobuf",
        ),
        (
            "not gzip",
            good.clone(),
            vec![pb[0], ("Content-Encoding", "gzip")],
            400,
            "gzip",
        ),
        (
            "a gzip bomb",
            gzip(&vec![0u8; 4 << 20]),
            vec![pb[0], ("Content-Encoding", "gzip")],
            413,
            "limit",
        ),
        (
            "bad JSON",
            b"{\"resourceMetrics\": [".to_vec(),
            vec![("Content-Type", "application/json")],
            400,
            "JSON",
        ),
        (
            "deep JSON",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            vec![("Content-Type", "application/json")],
            400,
            "nested",
        ),
    ];
    for (what, body, headers, want, says) in cases {
        let (code, _, answer) = push(&s, body, &headers).await;
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(code, want, "{what}: {text}");
        assert!(text.contains(says), "{what}: {text}");
    }
    assert!(export(&s.base, "never_total").await.is_empty());
    // Still serving.
    let (code, _, _) = push(&s, good, &pb).await;
    assert_eq!(code, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_section_chooses_the_translation_and_promoted_attributes() {
    let config = Config::from_yaml(
        "test.yml",
        "otlp:\n  translation_strategy: NoTranslation\n  promote_resource_attributes: [cloud.region]\n",
    )
    .unwrap();
    let s = TestServer::start_with_config(tempfile::tempdir().unwrap(), &[], config).await;
    let req = request(vec![counter(
        "train.samples",
        "{sample}",
        proto::CUMULATIVE,
        1.0,
    )]);
    let (code, _, _) = push(
        &s,
        req.encode_to_vec(),
        &[("Content-Type", "application/x-protobuf")],
    )
    .await;
    assert_eq!(code, 200);
    let got = export(&s.base, r#"{__name__="train.samples"}"#).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0["cloud.region"], "eu-west");
    s.stop().await;
}

#[test]
fn a_bad_otlp_section_names_the_file_line_and_field() {
    for (yaml, says) in [
        (
            "otlp:\n  translation_strategy: Dots\n",
            "unsupported OTLP translation strategy",
        ),
        (
            "otlp:\n  promote_all_resource_attributes: true\n  promote_resource_attributes: [a]\n",
            "cannot be configured simultaneously",
        ),
        (
            "otlp:\n  ignore_resource_attributes: [a]\n",
            "unless 'promote_all_resource_attributes'",
        ),
        (
            "otlp:\n  promote_resource_attributes: [a, ' a']\n",
            "duplicated",
        ),
        ("otlp:\n  promote_resource_attributes: ['']\n", "empty"),
        (
            "otlp:\n  translation_stratgy: NoTranslation\n",
            "unknown field",
        ),
    ] {
        let err = Config::from_yaml("p.yml", yaml).unwrap_err().to_string();
        assert!(err.starts_with("p.yml:"), "{err}");
        assert!(err.contains(says), "{yaml}: {err}");
    }
}

/// The OpenTelemetry Python SDK's OTLP/HTTP exporter pushes a counter, an up-down counter, a
/// histogram and a gauge, once gzipped and once plain; Quiver stores them under Prometheus's
/// names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs the opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http Python packages"]
async fn the_opentelemetry_python_sdk_pushes_to_quiver() {
    let s = TestServer::start(&[]).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otel/push.py");
    let url = s.url(PATH);
    for compression in ["gzip", "none"] {
        let sent = tokio::task::spawn_blocking({
            let (script, url) = (script.clone(), url.clone());
            move || python_json(&script, &[&url, compression])
        })
        .await
        .unwrap();
        assert_eq!(sent["flushed"], true, "{sent}");
    }
    let series = |q: &'static str| {
        let base = s.base.clone();
        async move { export(&base, q).await }
    };
    let tokens = series("vllm_generation_tokens_total").await;
    let by_model: std::collections::BTreeMap<String, f64> = tokens
        .iter()
        .map(|(l, _, v)| (l["model"].as_str().unwrap().to_string(), *v.last().unwrap()))
        .collect();
    assert_eq!(by_model["llama-3-8b"], 150.0, "{tokens:?}");
    assert_eq!(by_model["mistral-7b"], 7.0);
    for (l, _, _) in &tokens {
        assert_eq!(l["job"], "inference/vllm");
        assert_eq!(l["instance"], "pod-7");
    }
    let bytes = series("http_server_response_body_size_bytes_total").await;
    assert_eq!(bytes[0].0["http_route"], "/v1/completions");
    assert_eq!(*bytes[0].2.last().unwrap(), 2048.0);
    assert_eq!(
        *series("vllm_requests_running").await[0].2.last().unwrap(),
        3.0
    );
    let buckets = series("vllm_request_duration_seconds_bucket").await;
    let le = |b: &str| {
        buckets
            .iter()
            .find(|(l, _, _)| l["le"] == b)
            .map(|(_, _, v)| *v.last().unwrap())
    };
    assert_eq!(
        (le("0.1"), le("0.5"), le("1"), le("+Inf")),
        (Some(1.0), Some(2.0), Some(3.0), Some(4.0))
    );
    assert_eq!(
        *series("vllm_request_duration_seconds_count").await[0]
            .2
            .last()
            .unwrap(),
        4.0
    );
    assert_eq!(
        *series("gpu_utilization_ratio").await[0].2.last().unwrap(),
        0.75
    );
    let info = series("target_info").await;
    assert_eq!(info[0].0["k8s_cluster_name"], "gpu-east", "{info:?}");
    assert_eq!(info[0].0["job"], "inference/vllm");
    s.stop().await;
}

/// With `--enable-feature=otlp-deltatocumulative`, a delta counter pushed in two requests is
/// stored as its running total; without it, delta is a partial success that stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_counters_are_made_cumulative_when_the_feature_is_on() {
    let s =
        TestServer::start(&["--enable-feature=otlp-deltatocumulative,some-other-feature"]).await;
    let delta = |t: u64, v: f64| {
        let mut m = counter("tokens", "", proto::DELTA, v);
        if let Some(proto::metric::Data::Sum(sum)) = &mut m.data {
            sum.data_points[0].time_unix_nano = t;
        }
        request(vec![m]).encode_to_vec()
    };
    for (t, v) in [(T0, 5.0), (T0 + 1_000_000_000, 3.0)] {
        let (code, _, body) = push(
            &s,
            delta(t, v),
            &[("Content-Type", "application/x-protobuf")],
        )
        .await;
        assert_eq!(code, 200);
        let answer = proto::ExportMetricsServiceResponse::decode(&body[..]).unwrap();
        assert_eq!(answer.partial_success, None);
    }
    let got = export(&s.base, "tokens_total").await;
    assert_eq!(got[0].2, [5.0, 8.0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_exponential_histograms_alone_is_stored_and_queryable() {
    let s = TestServer::start(&[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // Only `service.name`: no target_info, so the request holds no float sample at all.
    let mut req = request(vec![metric(
        "ttft",
        "s",
        proto::metric::Data::ExponentialHistogram(proto::ExponentialHistogram {
            data_points: vec![proto::ExponentialHistogramDataPoint {
                time_unix_nano: now,
                count: 5,
                sum: Some(9.0),
                scale: 1,
                zero_count: 1,
                positive: Some(proto::Buckets {
                    offset: 0,
                    bucket_counts: vec![1, 3],
                }),
                ..Default::default()
            }],
            aggregation_temporality: proto::CUMULATIVE,
        }),
    )]);
    req.resource_metrics[0].resource = Some(proto::Resource {
        attributes: vec![kv("service.name", "vllm")],
    });
    let (code, _, body) = push(
        &s,
        req.encode_to_vec(),
        &[("Content-Type", "application/x-protobuf")],
    )
    .await;
    assert_eq!(code, 200);
    let answer = proto::ExportMetricsServiceResponse::decode(&body[..]).unwrap();
    assert!(answer.partial_success.is_none(), "{answer:?}");
    let got = query(&s, "histogram_count(ttft_seconds)").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["value"][1], "5");
    assert_eq!(got[0]["metric"]["job"], "vllm");
    s.stop().await;
}
