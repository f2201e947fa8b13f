use std::collections::BTreeMap;

use prost::Message;
use quiver_storage::{Limits, is_stale_nan};

use crate::exposition::MetricType;
use crate::remote_write::DecodeError;

use super::proto::{self, kv};
use super::*;

const T0: u64 = 1_700_000_000_000_000_000;
const MS0: i64 = 1_700_000_000_000;

fn number(attrs: Vec<proto::KeyValue>, t: u64, v: f64) -> proto::NumberDataPoint {
    proto::NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: t - 1_000_000_000,
        time_unix_nano: t,
        value: Some(proto::number_data_point::Value::AsDouble(v)),
        ..Default::default()
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

fn request(
    resource: Vec<proto::KeyValue>,
    metrics: Vec<proto::Metric>,
) -> proto::ExportMetricsServiceRequest {
    proto::ExportMetricsServiceRequest {
        resource_metrics: vec![proto::ResourceMetrics {
            resource: Some(proto::Resource {
                attributes: resource,
            }),
            scope_metrics: vec![proto::ScopeMetrics {
                scope: Some(proto::InstrumentationScope {
                    name: "my.library".into(),
                    version: "1.2".into(),
                    attributes: vec![kv("scope-attr", "x")],
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn service() -> Vec<proto::KeyValue> {
    vec![
        kv("service.name", "test-service"),
        kv("service.instance.id", "test-instance"),
        kv("host.name", "test-host"),
    ]
}

fn cumulative_sum(points: Vec<proto::NumberDataPoint>) -> proto::metric::Data {
    proto::metric::Data::Sum(proto::Sum {
        data_points: points,
        aggregation_temporality: proto::CUMULATIVE,
        is_monotonic: true,
    })
}

/// Series → samples, each series in Prometheus's notation.
fn series(c: &Converted) -> BTreeMap<String, Vec<(i64, f64)>> {
    let labels: Vec<String> = c
        .batch
        .new_labels()
        .map(|l| l.expect("new series").to_string())
        .collect();
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (s, t, v) in c.batch.samples() {
        out.entry(labels[s as usize].clone())
            .or_default()
            .push((t, v));
    }
    out
}

fn convert_pb(req: &proto::ExportMetricsServiceRequest, opts: &Options) -> Converted {
    let raw = req.encode_to_vec();
    let decoded = protobuf::decode(&raw).unwrap();
    convert(&decoded, opts, &Limits::default()).unwrap()
}

// Prometheus's TestOTLPWriteHandler: a counter, a gauge and a histogram with unit `By`, the
// resource's service giving job and instance, the other attribute on target_info.
#[test]
fn counter_gauge_and_histogram_as_prometheus_writes_them() {
    let attrs = || vec![kv("foo.bar", "baz")];
    let req = request(
        service(),
        vec![
            metric(
                "test.counter",
                "By",
                cumulative_sum(vec![number(attrs(), T0, 10.0)]),
            ),
            metric(
                "test.gauge",
                "By",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: vec![number(attrs(), T0, 10.0)],
                }),
            ),
            metric(
                "test.histogram",
                "By",
                proto::metric::Data::Histogram(proto::Histogram {
                    data_points: vec![proto::HistogramDataPoint {
                        attributes: attrs(),
                        time_unix_nano: T0,
                        count: 12,
                        sum: Some(30.0),
                        bucket_counts: vec![2, 2, 2, 2, 2, 2],
                        explicit_bounds: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: proto::CUMULATIVE,
                }),
            ),
        ],
    );
    let c = convert_pb(&req, &Options::default());
    assert_eq!(c.rejected_points, 0, "{:?}", c.messages);
    let s = series(&c);
    let id = r#"foo_bar="baz", instance="test-instance", job="test-service""#;
    assert_eq!(
        s[&format!("test_counter_bytes_total{{{id}}}")],
        vec![(MS0, 10.0)]
    );
    assert_eq!(s[&format!("test_gauge_bytes{{{id}}}")], vec![(MS0, 10.0)]);
    assert_eq!(
        s[&format!("test_histogram_bytes_sum{{{id}}}")],
        vec![(MS0, 30.0)]
    );
    assert_eq!(
        s[&format!("test_histogram_bytes_count{{{id}}}")],
        vec![(MS0, 12.0)]
    );
    for (le, v) in [
        ("0", 2.0),
        ("1", 4.0),
        ("2", 6.0),
        ("3", 8.0),
        ("4", 10.0),
        ("5", 12.0),
        ("+Inf", 12.0),
    ] {
        let key = format!(
            r#"test_histogram_bytes_bucket{{foo_bar="baz", instance="test-instance", job="test-service", le="{le}"}}"#
        );
        assert_eq!(s[&key], vec![(MS0, v)], "{key}");
    }
    assert_eq!(
        s[r#"target_info{host_name="test-host", instance="test-instance", job="test-service"}"#],
        vec![(MS0, 1.0)]
    );
    // The counter, the gauge, seven buckets, the sum, the count and target_info.
    assert_eq!(s.len(), 12);
    let meta: BTreeMap<_, _> = c.metadata.iter().cloned().collect();
    let counter = &meta["test_counter_bytes_total"];
    assert_eq!(counter.kind, MetricType::Counter);
    assert_eq!(&*counter.unit, "bytes");
    assert_eq!(&*counter.help, "test.counter help");
    assert_eq!(meta["test_histogram_bytes"].kind, MetricType::Histogram);
    assert_eq!(meta["target_info"].kind, MetricType::Gauge);
}

#[test]
fn the_translation_strategies_name_series_differently() {
    let req = request(
        service(),
        vec![metric(
            "test.counter",
            "By",
            cumulative_sum(vec![number(vec![kv("foo.bar", "baz")], T0, 1.0)]),
        )],
    );
    for (strategy, name, label) in [
        (
            Strategy::UnderscoreEscapingWithSuffixes,
            "test_counter_bytes_total",
            "foo_bar",
        ),
        (
            Strategy::UnderscoreEscapingWithoutSuffixes,
            "test_counter",
            "foo_bar",
        ),
        (
            Strategy::NoUTF8EscapingWithSuffixes,
            "test.counter_bytes_total",
            "foo.bar",
        ),
        (Strategy::NoTranslation, "test.counter", "foo.bar"),
    ] {
        let opts = Options {
            translation_strategy: strategy,
            ..Options::default()
        };
        let c = convert_pb(&req, &opts);
        let names: Vec<String> = c
            .batch
            .new_labels()
            .map(|l| l.unwrap())
            .filter(|l| l.metric_name() != Some("target_info"))
            .map(|l| {
                assert_eq!(l.get(label), Some("baz"), "{strategy}: {l}");
                l.metric_name().unwrap().to_string()
            })
            .collect();
        assert!(names.contains(&name.to_string()), "{strategy}: {names:?}");
    }
}

#[test]
fn target_info_spans_the_points_every_half_lookback() {
    let lb = 5 * 60 * 1000i64;
    let ns = |ms: i64| T0 + (ms as u64) * 1_000_000;
    let points = (0..6)
        .map(|i| number(vec![], ns(i * lb / 4), i as f64))
        .collect();
    let mut resource = service();
    resource.push(kv("service.namespace", "test-namespace"));
    let c = convert_pb(
        &request(
            resource,
            vec![metric(
                "g",
                "",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: points,
                }),
            )],
        ),
        &Options::default(),
    );
    let s = series(&c);
    let info = &s[r#"target_info{host_name="test-host", instance="test-instance", job="test-namespace/test-service"}"#];
    let times: Vec<i64> = info.iter().map(|(t, _)| t - MS0).collect();
    assert_eq!(times, vec![0, lb / 2, lb, 5 * lb / 4]);
}

#[test]
fn a_resource_with_only_service_attributes_has_no_target_info() {
    let c = convert_pb(
        &request(
            vec![kv("service.name", "svc"), kv("service.instance.id", "i")],
            vec![metric(
                "g",
                "",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: vec![number(vec![], T0, 1.0)],
                }),
            )],
        ),
        &Options::default(),
    );
    assert!(series(&c).keys().all(|k| !k.starts_with("target_info")));
}

#[test]
fn colliding_attributes_are_joined_and_promoted_resource_attributes_yield_to_the_point() {
    let mut resource = service();
    resource.push(kv("k8s.pod.name", "pod-1"));
    resource.push(kv("region", "eu"));
    let req = request(
        resource,
        vec![metric(
            "g",
            "",
            proto::metric::Data::Gauge(proto::Gauge {
                data_points: vec![number(
                    vec![
                        kv("a_b", "3"),
                        kv("a.b", "2"),
                        kv("a-b", "1"),
                        kv("region", "us"),
                    ],
                    T0,
                    1.0,
                )],
            }),
        )],
    );
    let opts = Options {
        promote_resource_attributes: vec!["k8s.pod.name".into(), "region".into()],
        ..Options::default()
    };
    let s = series(&convert_pb(&req, &opts));
    assert!(
        s.contains_key(r#"g{a_b="1;2;3", instance="test-instance", job="test-service", k8s_pod_name="pod-1", region="us"}"#),
        "{:?}",
        s.keys().collect::<Vec<_>>()
    );
}

#[test]
fn scope_metadata_is_promoted_when_asked() {
    let req = request(
        service(),
        vec![metric(
            "g",
            "",
            proto::metric::Data::Gauge(proto::Gauge {
                data_points: vec![number(vec![], T0, 1.0)],
            }),
        )],
    );
    let opts = Options {
        promote_scope_metadata: true,
        ..Options::default()
    };
    let s = series(&convert_pb(&req, &opts));
    assert!(
        s.contains_key(r#"g{instance="test-instance", job="test-service", otel_scope_name="my.library", otel_scope_scope_attr="x", otel_scope_version="1.2"}"#),
        "{:?}",
        s.keys().collect::<Vec<_>>()
    );
}

#[test]
fn delta_is_refused_the_rest_stored() {
    let req = request(
        service(),
        vec![
            metric(
                "requests",
                "",
                proto::metric::Data::Sum(proto::Sum {
                    data_points: vec![number(vec![], T0, 1.0), number(vec![], T0 + 1, 2.0)],
                    aggregation_temporality: proto::DELTA,
                    is_monotonic: true,
                }),
            ),
            metric(
                "latency",
                "s",
                proto::metric::Data::ExponentialHistogram(proto::ExponentialHistogram {
                    data_points: vec![proto::ExponentialHistogramDataPoint {
                        time_unix_nano: T0,
                        count: 3,
                        ..Default::default()
                    }],
                    aggregation_temporality: proto::DELTA,
                }),
            ),
            metric(
                "up",
                "",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: vec![number(vec![], T0, 1.0)],
                }),
            ),
        ],
    );
    let c = convert_pb(&req, &Options::default());
    assert_eq!(c.rejected_points, 3);
    let msg = c.error_message();
    assert!(
        msg.contains(r#"invalid temporality and type combination for metric "requests""#),
        "{msg}"
    );
    assert!(
        msg.contains(r#"invalid temporality and type combination for metric "latency""#),
        "{msg}"
    );
    let s = series(&c);
    assert!(s.keys().any(|k| k.starts_with("up{")));
    assert!(
        s.keys()
            .all(|k| !k.starts_with("requests") && !k.starts_with("latency"))
    );
}

#[test]
fn summaries_no_recorded_value_and_exemplars() {
    let mut gone = number(vec![], T0, 5.0);
    gone.flags = 1;
    let mut with_exemplar = number(vec![], T0, 2.0);
    with_exemplar.exemplars = vec![proto::Exemplar {
        time_unix_nano: T0,
        as_double: 2.0,
    }];
    let req = request(
        vec![],
        vec![
            metric(
                "rpc.duration",
                "ms",
                proto::metric::Data::Summary(proto::Summary {
                    data_points: vec![proto::SummaryDataPoint {
                        time_unix_nano: T0,
                        count: 4,
                        sum: 10.5,
                        quantile_values: vec![
                            proto::ValueAtQuantile {
                                quantile: 0.5,
                                value: 2.0,
                            },
                            proto::ValueAtQuantile {
                                quantile: 0.99,
                                value: 4.0,
                            },
                        ],
                        ..Default::default()
                    }],
                }),
            ),
            metric(
                "queue",
                "{item}",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: vec![gone],
                }),
            ),
            metric("hits", "", cumulative_sum(vec![with_exemplar])),
        ],
    );
    let c = convert_pb(&req, &Options::default());
    let s = series(&c);
    assert_eq!(
        s[r#"rpc_duration_milliseconds{quantile="0.5"}"#],
        vec![(MS0, 2.0)]
    );
    assert_eq!(
        s[r#"rpc_duration_milliseconds{quantile="0.99"}"#],
        vec![(MS0, 4.0)]
    );
    assert_eq!(s["rpc_duration_milliseconds_sum{}"], vec![(MS0, 10.5)]);
    assert_eq!(s["rpc_duration_milliseconds_count{}"], vec![(MS0, 4.0)]);
    assert!(is_stale_nan(s["queue{}"][0].1));
    assert_eq!(s["hits_total{}"], vec![(MS0, 2.0)]);
    assert_eq!(c.rejected_points, 0);
    assert_eq!(c.exemplars_dropped, 1);
    assert!(c.error_message().contains("1 exemplars were not stored"));
}

#[test]
fn attribute_values_of_every_type_become_label_values() {
    use proto::any_value::Value as V;
    let any = |v: V| Some(proto::AnyValue { value: Some(v) });
    let attr = |k: &str, v: V| proto::KeyValue {
        key: k.into(),
        value: any(v),
    };
    let attrs = vec![
        attr("b", V::BoolValue(true)),
        attr("i", V::IntValue(-42)),
        attr("d", V::DoubleValue(0.25)),
        attr("tiny", V::DoubleValue(1e-7)),
        attr("big", V::DoubleValue(1e21)),
        attr("bytes", V::BytesValue(b"hi".to_vec())),
        attr(
            "arr",
            V::ArrayValue(proto::ArrayValue {
                values: vec![
                    any(V::StringValue("x".into())).unwrap(),
                    any(V::IntValue(1)).unwrap(),
                ],
            }),
        ),
        attr(
            "map",
            V::KvlistValue(proto::KeyValueList {
                values: vec![
                    attr("z", V::BoolValue(false)),
                    attr("a", V::StringValue("q\"".into())),
                ],
            }),
        ),
    ];
    let req = request(
        vec![],
        vec![metric(
            "g",
            "",
            proto::metric::Data::Gauge(proto::Gauge {
                data_points: vec![number(attrs, T0, 1.0)],
            }),
        )],
    );
    let c = convert_pb(&req, &Options::default());
    let l = c.batch.new_labels().next().unwrap().unwrap().clone();
    assert_eq!(l.get("b"), Some("true"));
    assert_eq!(l.get("i"), Some("-42"));
    assert_eq!(l.get("d"), Some("0.25"));
    assert_eq!(l.get("tiny"), Some("1e-7"));
    assert_eq!(l.get("big"), Some("1e+21"));
    assert_eq!(l.get("bytes"), Some("aGk="));
    assert_eq!(l.get("arr"), Some(r#"["x",1]"#));
    assert_eq!(l.get("map"), Some(r#"{"a":"q\"","z":false}"#));
}

/// The same request as protobuf and as OTLP/JSON decodes to the same model.
#[test]
fn json_and_protobuf_decode_alike() {
    let req = request(
        service(),
        vec![
            metric(
                "test.counter",
                "By",
                cumulative_sum(vec![number(vec![kv("foo.bar", "baz")], T0, 10.0)]),
            ),
            metric(
                "h",
                "s",
                proto::metric::Data::Histogram(proto::Histogram {
                    data_points: vec![proto::HistogramDataPoint {
                        time_unix_nano: T0,
                        count: 3,
                        sum: Some(1.5),
                        bucket_counts: vec![1, 2],
                        explicit_bounds: vec![0.5],
                        ..Default::default()
                    }],
                    aggregation_temporality: proto::CUMULATIVE,
                }),
            ),
        ],
    );
    let raw = req.encode_to_vec();
    let from_pb = protobuf::decode(&raw).unwrap();
    let json = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[
            {{"key":"service.name","value":{{"stringValue":"test-service"}}}},
            {{"key":"service.instance.id","value":{{"stringValue":"test-instance"}}}},
            {{"key":"host.name","value":{{"stringValue":"test-host"}}}}]}},
          "scopeMetrics":[{{"scope":{{"name":"my.library","version":"1.2","attributes":[{{"key":"scope-attr","value":{{"stringValue":"x"}}}}]}},
            "metrics":[
              {{"name":"test.counter","description":"test.counter help","unit":"By","sum":{{"aggregationTemporality":2,"isMonotonic":true,
                "dataPoints":[{{"attributes":[{{"key":"foo.bar","value":{{"stringValue":"baz"}}}}],"startTimeUnixNano":"{}","timeUnixNano":"{T0}","asDouble":10}}]}}}},
              {{"name":"h","description":"h help","unit":"s","histogram":{{"aggregationTemporality":2,
                "dataPoints":[{{"timeUnixNano":{T0},"count":"3","sum":1.5,"bucketCounts":["1",2],"explicitBounds":[0.5]}}]}}}}
            ]}}]}}]}}"#,
        T0 - 1_000_000_000
    );
    let from_json = json::decode(json.as_bytes()).unwrap();
    assert_eq!(from_pb, from_json);
}

#[test]
fn hostile_bodies_are_refused_not_obeyed() {
    // Nesting of attribute values past the bound.
    let mut v = proto::AnyValue {
        value: Some(proto::any_value::Value::IntValue(1)),
    };
    for _ in 0..MAX_VALUE_DEPTH + 1 {
        v = proto::AnyValue {
            value: Some(proto::any_value::Value::ArrayValue(proto::ArrayValue {
                values: vec![v],
            })),
        };
    }
    let attr = proto::KeyValue {
        key: "deep".into(),
        value: Some(v),
    };
    let req = request(vec![attr], vec![]);
    let err = protobuf::decode(&req.encode_to_vec()).unwrap_err();
    assert!(err.message().contains("levels deep"), "{err}");
    // Many empty data points (2 bytes each on the wire): refused once the model would pass its
    // memory budget.
    let mut raw = Vec::new();
    let n = MAX_MODEL_BYTES / std::mem::size_of::<NumberPoint<'_>>() + 1;
    let gauge_points: Vec<u8> = std::iter::repeat_n([0x0a, 0x00], n).flatten().collect();
    let mut metric = vec![0x2a];
    prost::encoding::encode_varint(gauge_points.len() as u64, &mut metric);
    metric.extend(&gauge_points);
    let mut scope = vec![0x12];
    prost::encoding::encode_varint(metric.len() as u64, &mut scope);
    scope.extend(&metric);
    raw.push(0x12);
    prost::encoding::encode_varint(scope.len() as u64, &mut raw);
    raw.extend(&scope);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(raw.len() as u64, &mut body);
    body.extend(&raw);
    assert!(matches!(
        protobuf::decode(&body),
        Err(DecodeError::TooLarge(_))
    ));
    // JSON: the structure is counted before parsing.
    let json = format!(
        "{{\"resourceMetrics\":[{}{{}}]}}",
        "{},".repeat(json::MAX_STRUCTURE)
    );
    assert!(matches!(
        json::decode(json.as_bytes()),
        Err(DecodeError::TooLarge(_))
    ));
    // Truncated and invalid bodies.
    let good = request(service(), vec![]).encode_to_vec();
    assert!(protobuf::decode(&good[..good.len() - 1]).is_err());
    assert!(json::decode(b"{\"resourceMetrics\": 5}").is_err());
    assert!(
        json::decode(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]")
            .is_err()
    );
}

#[test]
fn bad_names_refuse_their_metric_only() {
    let req = request(
        vec![],
        vec![
            metric(
                "@#$%",
                "",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: vec![number(vec![], T0, 1.0)],
                }),
            ),
            metric(
                "ok",
                "",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: vec![number(vec![kv("", "x")], T0, 1.0), number(vec![], T0, 2.0)],
                }),
            ),
        ],
    );
    let c = convert_pb(&req, &Options::default());
    assert_eq!(c.rejected_points, 2, "{:?}", c.messages);
    assert!(c.error_message().contains("resulted in empty name"));
    assert!(c.error_message().contains("label name is empty"));
    assert_eq!(series(&c)["ok{}"], vec![(MS0, 2.0)]);
}

#[test]
fn json_spellings_protobuf_json_allows() {
    // snake_case keys, enum names, 64-bit numbers as numbers, doubles as strings.
    let json = br#"{"resource_metrics":[{"scope_metrics":[{"metrics":[
        {"name":"s","sum":{"aggregation_temporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","is_monotonic":true,
          "data_points":[{"time_unix_nano":1700000000000000000,"as_double":"Infinity"}]}},
        {"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asDouble":"NaN"}]}},
        {"name":"i","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":-3}]}}
    ]}]}]}"#;
    let req = json::decode(json).unwrap();
    let c = convert(&req, &Options::default(), &Limits::default()).unwrap();
    let s = series(&c);
    assert_eq!(s["s_total{}"], vec![(MS0, f64::INFINITY)]);
    assert!(s["g{}"][0].1.is_nan() && !is_stale_nan(s["g{}"][0].1));
    assert_eq!(s["i{}"], vec![(MS0, -3.0)]);
    assert!(json::decode(br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","sum":{"aggregationTemporality":"SOMETIMES"}}]}]}]}"#).is_err());
}

#[test]
fn a_point_with_no_recorded_value_marks_every_series_of_a_histogram_stale() {
    let req = request(
        vec![],
        vec![metric(
            "h",
            "",
            proto::metric::Data::Histogram(proto::Histogram {
                data_points: vec![proto::HistogramDataPoint {
                    time_unix_nano: T0,
                    count: 2,
                    sum: Some(1.0),
                    bucket_counts: vec![1, 1],
                    explicit_bounds: vec![0.5],
                    flags: 1,
                    ..Default::default()
                }],
                aggregation_temporality: proto::CUMULATIVE,
            }),
        )],
    );
    let s = series(&convert_pb(&req, &Options::default()));
    assert_eq!(s.len(), 4);
    for (k, v) in &s {
        assert!(is_stale_nan(v[0].1), "{k}");
    }
}

#[test]
fn a_refused_histogram_point_is_refused_whole_and_counted_once() {
    // 125 attributes, job, instance and __name__: _count and _sum fit 128 labels, the buckets
    // (with `le`) do not, so the whole point goes, _count and _sum included.
    let attrs: Vec<proto::KeyValue> = (0..125).map(|i| kv(&format!("a{i:03}"), "v")).collect();
    let mut resource = vec![kv("service.name", "svc")];
    resource.push(kv("service.instance.id", "i"));
    let req = request(
        resource,
        vec![metric(
            "h",
            "",
            proto::metric::Data::Histogram(proto::Histogram {
                data_points: vec![proto::HistogramDataPoint {
                    attributes: attrs,
                    time_unix_nano: T0,
                    count: 2,
                    sum: Some(1.0),
                    bucket_counts: vec![1, 1],
                    explicit_bounds: vec![0.5],
                    ..Default::default()
                }],
                aggregation_temporality: proto::CUMULATIVE,
            }),
        )],
    );
    let c = convert_pb(&req, &Options::default());
    assert_eq!(c.rejected_points, 1, "{:?}", c.messages);
    assert_eq!(c.batch.num_samples(), 0);
    assert!(
        c.metadata.iter().all(|(f, _)| f != "h"),
        "no metadata for a family with nothing stored"
    );
}

#[test]
fn target_info_that_cannot_be_stored_is_a_partial_success_not_a_failure() {
    let mut resource = service();
    resource.push(kv("process.command_line", &"x".repeat(20_000)));
    let req = request(
        resource,
        vec![metric(
            "g",
            "",
            proto::metric::Data::Gauge(proto::Gauge {
                data_points: vec![number(vec![], T0, 1.0)],
            }),
        )],
    );
    let c = convert_pb(&req, &Options::default());
    let s = series(&c);
    assert!(s.keys().any(|k| k.starts_with("g{")));
    assert!(s.keys().all(|k| !k.starts_with("target_info")));
    assert_eq!(c.rejected_points, 0);
    assert!(
        c.error_message().contains("target_info"),
        "{}",
        c.error_message()
    );
}

#[test]
fn target_info_is_capped_to_the_latest_steps() {
    let ns = |ms: i64| T0 + (ms as u64) * 1_000_000;
    // Two points a long way apart: far more half-lookback steps than the cap.
    let far = 5 * 60 * 1000 / 2 * (convert::MAX_TARGET_INFO_SAMPLES + 500);
    let points = vec![number(vec![], T0, 1.0), number(vec![], ns(far), 2.0)];
    let c = convert_pb(
        &request(
            service(),
            vec![metric(
                "g",
                "",
                proto::metric::Data::Gauge(proto::Gauge {
                    data_points: points,
                }),
            )],
        ),
        &Options::default(),
    );
    let s = series(&c);
    let info = s
        .iter()
        .find(|(k, _)| k.starts_with("target_info"))
        .unwrap()
        .1;
    assert_eq!(info.len() as i64, convert::MAX_TARGET_INFO_SAMPLES + 1);
    assert_eq!(info.last().unwrap().0, MS0 + far);
}

#[test]
fn scope_name_and_version_win_over_scope_attributes_named_alike() {
    let mut req = request(
        service(),
        vec![metric(
            "g",
            "",
            proto::metric::Data::Gauge(proto::Gauge {
                data_points: vec![number(vec![], T0, 1.0)],
            }),
        )],
    );
    let scope = req.resource_metrics[0].scope_metrics[0]
        .scope
        .as_mut()
        .unwrap();
    scope.attributes = vec![kv("name", "from-attr"), kv("version", "attr-version")];
    scope.version = String::new();
    let opts = Options {
        promote_scope_metadata: true,
        ..Options::default()
    };
    let s = series(&convert_pb(&req, &opts));
    let key = s.keys().find(|k| k.starts_with("g{")).unwrap();
    assert!(key.contains(r#"otel_scope_name="my.library""#), "{key}");
    // An empty version is no label, even one an attribute gave.
    assert!(!key.contains("otel_scope_version"), "{key}");
}

#[test]
fn a_metric_name_too_long_for_a_label_is_refused_once_and_quickly() {
    let points: Vec<_> = (0..100_000).map(|i| number(vec![], T0 + i, 1.0)).collect();
    let req = request(
        vec![],
        vec![metric(
            &"a".repeat(1 << 20),
            "",
            proto::metric::Data::Gauge(proto::Gauge {
                data_points: points,
            }),
        )],
    );
    let started = std::time::Instant::now();
    let c = convert_pb(&req, &Options::default());
    assert_eq!(c.rejected_points, 100_000);
    assert_eq!(c.messages.len(), 1);
    assert!(c.messages[0].len() < 400, "the message quotes a cut name");
    // Not a timing test: a per-point copy of the name would take minutes, not seconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn labels_shared_by_many_series_are_bounded_by_the_label_bytes_budget() {
    // job and instance of 16 KB each on a histogram with many buckets: each bucket's series
    // carries them, shared, but the request's label bytes are bounded.
    let big = "j".repeat(16_000);
    let resource = vec![kv("service.name", &big), kv("service.instance.id", &big)];
    let n = convert::MAX_LABEL_BYTES / 32_000 + 10;
    let req = request(
        resource,
        vec![metric(
            "h",
            "",
            proto::metric::Data::Histogram(proto::Histogram {
                data_points: vec![proto::HistogramDataPoint {
                    time_unix_nano: T0,
                    count: n as u64,
                    bucket_counts: vec![1; n],
                    explicit_bounds: (0..n).map(|i| i as f64).collect(),
                    ..Default::default()
                }],
                aggregation_temporality: proto::CUMULATIVE,
            }),
        )],
    );
    let raw = req.encode_to_vec();
    let decoded = protobuf::decode(&raw).unwrap();
    let err = convert(&decoded, &Options::default(), &Limits::default()).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge(_)), "{err}");
}

// Prometheus's TestOTLPDelta: a non-monotonic delta sum becomes a cumulative gauge.
#[test]
fn delta_points_become_cumulative_when_conversion_is_on() {
    let mut state = DeltaState::default();
    let delta_sum = |monotonic: bool, points: Vec<proto::NumberDataPoint>| {
        proto::metric::Data::Sum(proto::Sum {
            data_points: points,
            aggregation_temporality: proto::DELTA,
            is_monotonic: monotonic,
        })
    };
    let int = |t: u64, v: i64| proto::NumberDataPoint {
        time_unix_nano: t,
        value: Some(proto::number_data_point::Value::AsInt(v)),
        ..Default::default()
    };
    let ms = 1_000_000;
    let req = request(
        service(),
        vec![metric(
            "some.delta.total",
            "",
            delta_sum(
                false,
                vec![int(T0, 0), int(T0 + ms, 1), int(T0 + 2 * ms, 2)],
            ),
        )],
    );
    let raw = req.encode_to_vec();
    let run = |state: &mut DeltaState, raw: &[u8]| {
        let decoded = protobuf::decode(raw).unwrap();
        convert_with(
            &decoded,
            &Options::default(),
            &Limits::default(),
            Some(state),
        )
        .unwrap()
    };
    let c = run(&mut state, &raw);
    let s = series(&c);
    let key = s
        .keys()
        .find(|k| k.starts_with("some_delta_total{"))
        .unwrap();
    assert_eq!(s[key], vec![(MS0, 0.0), (MS0 + 1, 1.0), (MS0 + 2, 3.0)]);
    // The same points again are not newer than the stream's last: refused.
    let again = run(&mut state, &raw);
    assert_eq!(again.rejected_points, 3);
    // Without the conversion, delta is refused as before.
    let decoded = protobuf::decode(&raw).unwrap();
    assert_eq!(
        convert(&decoded, &Options::default(), &Limits::default())
            .unwrap()
            .rejected_points,
        3
    );

    // A delta histogram, in two requests: its buckets, count and sum add up.
    let hist = |t: u64, counts: Vec<u64>| {
        request(
            service(),
            vec![metric(
                "latency",
                "s",
                proto::metric::Data::Histogram(proto::Histogram {
                    data_points: vec![proto::HistogramDataPoint {
                        time_unix_nano: t,
                        count: counts.iter().sum(),
                        sum: Some(1.0),
                        bucket_counts: counts,
                        explicit_bounds: vec![0.5],
                        ..Default::default()
                    }],
                    aggregation_temporality: proto::DELTA,
                }),
            )],
        )
        .encode_to_vec()
    };
    run(&mut state, &hist(T0, vec![1, 2]));
    let c = run(&mut state, &hist(T0 + ms, vec![3, 0]));
    let s = series(&c);
    let bucket = |le: &str| {
        s.iter()
            .find(|(k, _)| {
                k.starts_with("latency_seconds_bucket{") && k.contains(&format!("le=\"{le}\""))
            })
            .unwrap()
            .1[0]
            .1
    };
    assert_eq!((bucket("0.5"), bucket("+Inf")), (4.0, 6.0));
    let sum = s
        .iter()
        .find(|(k, _)| k.starts_with("latency_seconds_sum{"))
        .unwrap()
        .1[0]
        .1;
    assert_eq!(sum, 2.0);
    let meta: BTreeMap<_, _> = c.metadata.iter().cloned().collect();
    assert_eq!(meta["latency_seconds"].kind, MetricType::Histogram);
}

#[test]
fn exponential_histograms_become_native_histograms() {
    let point = |scale: i32, count: u64, flags: u32| proto::ExponentialHistogramDataPoint {
        attributes: vec![kv("model", "llama")],
        time_unix_nano: T0,
        count,
        sum: Some(12.5),
        scale,
        zero_count: 1,
        positive: Some(proto::Buckets {
            offset: -1,
            bucket_counts: vec![2, 0, 3],
        }),
        negative: Some(proto::Buckets {
            offset: 2,
            bucket_counts: vec![1],
        }),
        flags,
        zero_threshold: 0.5,
        ..Default::default()
    };
    let exp = |points| {
        metric(
            "ttft",
            "s",
            proto::metric::Data::ExponentialHistogram(proto::ExponentialHistogram {
                data_points: points,
                aggregation_temporality: proto::CUMULATIVE,
            }),
        )
    };
    let req = request(
        service(),
        vec![exp(vec![
            point(3, 7, 0),
            // Finer than 8: merged to schema 8.
            point(10, 7, 0),
            // No recorded value: a staleness marker.
            point(3, 0, 1),
            // Too coarse, and a count the buckets do not add up to: refused with the reason.
            point(-5, 7, 0),
            point(3, 9, 0),
        ])],
    );
    let c = convert_pb(&req, &Options::default());
    assert_eq!(c.rejected_points, 2, "{}", c.error_message());
    let msg = c.error_message();
    assert!(msg.contains("Scale must be >= -4, was -5"), "{msg}");
    assert!(msg.contains("Count field is 9"), "{msg}");
    let hs: Vec<_> = c.batch.histograms().collect();
    assert_eq!(hs.len(), 2);
    let labels: Vec<String> = c
        .batch
        .new_labels()
        .map(|l| l.unwrap().to_string())
        .collect();
    let ttft = labels
        .iter()
        .position(|l| l.starts_with("ttft_seconds{"))
        .unwrap() as u32;
    assert_eq!(
        labels.len(),
        2,
        "the histogram's series and target_info: {labels:?}"
    );
    assert!(hs.iter().all(|(s, _, _)| *s == ttft));
    let (_, t, h) = hs[0];
    assert_eq!(t, (T0 / 1_000_000) as i64);
    assert_eq!(h.schema, 3);
    assert_eq!((h.count, h.sum, h.zero_count), (7.0, 12.5, 1.0));
    assert_eq!(
        h.zero_threshold, 1e-128,
        "Prometheus's default, not the point's"
    );
    assert_eq!(
        h.positive_spans,
        [quiver_storage::Span {
            offset: 0,
            length: 3
        }]
    );
    assert_eq!(h.positive_buckets, [2.0, 0.0, 3.0]);
    assert_eq!(
        h.negative_spans,
        [quiver_storage::Span {
            offset: 3,
            length: 1
        }]
    );
    assert_eq!(h.hint, quiver_storage::CounterResetHint::Unknown);
    // Scale 10 to 8: OTel indexes -1, 0, 1 are native 0, 1, 2, all in native bucket 1 at 8
    // ((i - 1) >> 2) + 1 = 0, 1, 1): counts 2 | 0 + 3.
    let (_, _, fine) = hs[1];
    assert_eq!(fine.schema, 8);
    assert_eq!(fine.positive_buckets.iter().sum::<f64>(), 5.0);
    let stale: Vec<_> = c.batch.samples().filter(|(s, _, _)| *s == ttft).collect();
    assert_eq!(stale.len(), 1);
    assert!(quiver_storage::is_stale_nan(stale[0].2));
    // JSON says the same.
    let json = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
      "scopeMetrics":[{"metrics":[{"name":"ttft","unit":"s","exponentialHistogram":{"aggregationTemporality":2,
      "dataPoints":[{"timeUnixNano":"1700000000000000000","count":"7","sum":12.5,"scale":3,"zeroCount":"1",
      "positive":{"offset":-1,"bucketCounts":["2","0","3"]},"negative":{"offset":2,"bucketCounts":[1]}}]}}]}]}]}"#;
    let c = convert(
        &json::decode(json.as_bytes()).unwrap(),
        &Options::default(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(c.rejected_points, 0, "{}", c.error_message());
    let hs: Vec<_> = c.batch.histograms().collect();
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0].2.positive_buckets, [2.0, 0.0, 3.0]);
    assert_eq!(hs[0].2.negative_buckets, [1.0]);
}
