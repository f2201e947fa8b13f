use super::proto::{self, Bucket, Histogram, LabelPair, Metric, MetricFamily, Quantile, Value};
use super::*;
use crate::exposition::parse_series;
use crate::histogram::proto::BucketSpan;

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(n, v)| LabelPair {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// The series of the float entries, as label pairs, with their values.
fn floats(entries: &[ProtoEntry]) -> Vec<(Vec<(String, String)>, f64)> {
    entries
        .iter()
        .filter_map(|e| match e {
            ProtoEntry::Float(s, _, v) => Some((parse_series(s).unwrap(), *v)),
            _ => None,
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A histogram exposed both ways, as client_golang does with native buckets on: classic
/// buckets at 0.5 and 1 (cumulative 1 and 3, count 4) and schema 0 buckets (1,2] and (2,4].
fn both_ways() -> MetricFamily {
    MetricFamily {
        name: "rpc_seconds".into(),
        help: "RPC latency.".into(),
        r#type: 4,
        metric: vec![Metric {
            label: labels(&[("svc", "a")]),
            histogram: Some(Histogram {
                sample_count: 4,
                sample_sum: 5.0,
                bucket: vec![
                    Bucket {
                        cumulative_count: 1,
                        upper_bound: 0.5,
                        ..Default::default()
                    },
                    Bucket {
                        cumulative_count: 3,
                        upper_bound: 1.0,
                        ..Default::default()
                    },
                ],
                schema: 0,
                zero_threshold: 1e-128,
                zero_count: 1,
                positive_span: vec![BucketSpan {
                    offset: 1,
                    length: 2,
                }],
                positive_delta: vec![2, -1],
                ..Default::default()
            }),
            ..Default::default()
        }],
        unit: String::new(),
    }
}

#[test]
fn counters_gauges_summaries_and_metadata_become_series() {
    let body = proto::encode(&[
        MetricFamily {
            name: "requests_total".into(),
            help: "Requests.".into(),
            r#type: 0,
            metric: vec![Metric {
                label: labels(&[("code", "200"), ("dotted.name", "x\"y")]),
                counter: Some(Value { value: 7.0 }),
                timestamp_ms: 1_700_000_000_000,
                ..Default::default()
            }],
            unit: String::new(),
        },
        MetricFamily {
            name: "temp_celsius".into(),
            r#type: 1,
            metric: vec![Metric {
                gauge: Some(Value { value: 21.5 }),
                ..Default::default()
            }],
            unit: "celsius".into(),
            ..Default::default()
        },
        MetricFamily {
            name: "gc_seconds".into(),
            r#type: 2,
            metric: vec![Metric {
                summary: Some(proto::Summary {
                    sample_count: 3,
                    sample_sum: 0.5,
                    quantile: vec![Quantile {
                        quantile: 1.0,
                        value: 0.25,
                    }],
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        // No metrics: skipped, as Prometheus does.
        MetricFamily {
            name: "empty".into(),
            ..Default::default()
        },
    ]);
    let entries = parse(&body, HistogramOptions::default()).unwrap();
    assert_eq!(
        entries[..2],
        [
            ProtoEntry::Help("requests_total".into(), "Requests.".into()),
            ProtoEntry::Type("requests_total".into(), MetricType::Counter),
        ]
    );
    assert!(entries.contains(&ProtoEntry::Unit("temp_celsius".into(), "celsius".into())));
    let ProtoEntry::Float(_, t, _) = &entries[2] else {
        panic!("{entries:?}")
    };
    assert_eq!(*t, Some(1_700_000_000_000));
    assert_eq!(
        floats(&entries),
        vec![
            (
                owned(&[
                    ("__name__", "requests_total"),
                    ("code", "200"),
                    ("dotted.name", "x\"y")
                ]),
                7.0
            ),
            (owned(&[("__name__", "temp_celsius")]), 21.5),
            (owned(&[("__name__", "gc_seconds_count")]), 3.0),
            (owned(&[("__name__", "gc_seconds_sum")]), 0.5),
            (
                owned(&[("__name__", "gc_seconds"), ("quantile", "1.0")]),
                0.25
            ),
        ]
    );
}

#[test]
fn a_histogram_is_native_or_classic_as_the_scrape_config_says() {
    let body = proto::encode(&[both_ways()]);
    let classic = [
        (
            owned(&[("__name__", "rpc_seconds_count"), ("svc", "a")]),
            4.0,
        ),
        (owned(&[("__name__", "rpc_seconds_sum"), ("svc", "a")]), 5.0),
        (
            owned(&[
                ("__name__", "rpc_seconds_bucket"),
                ("svc", "a"),
                ("le", "0.5"),
            ]),
            1.0,
        ),
        (
            owned(&[
                ("__name__", "rpc_seconds_bucket"),
                ("svc", "a"),
                ("le", "1.0"),
            ]),
            3.0,
        ),
        (
            owned(&[
                ("__name__", "rpc_seconds_bucket"),
                ("svc", "a"),
                ("le", "+Inf"),
            ]),
            4.0,
        ),
    ];
    // Without native histograms: the classic series only, +Inf from the count.
    let entries = parse(&body, HistogramOptions::default()).unwrap();
    assert_eq!(floats(&entries), classic);
    assert!(
        !entries
            .iter()
            .any(|e| matches!(e, ProtoEntry::Histogram(..)))
    );
    // With them: the native histogram alone, or with the classic series when asked.
    let native = HistogramOptions {
        native: true,
        ..Default::default()
    };
    let entries = parse(&body, native).unwrap();
    assert!(floats(&entries).is_empty());
    let hists: Vec<&FloatHistogram> = entries
        .iter()
        .filter_map(|e| match e {
            ProtoEntry::Histogram(s, _, h) => {
                assert_eq!(
                    parse_series(s).unwrap(),
                    owned(&[("__name__", "rpc_seconds"), ("svc", "a")])
                );
                Some(h)
            }
            _ => None,
        })
        .collect();
    assert_eq!(hists.len(), 1);
    assert_eq!((hists[0].count, hists[0].sum), (4.0, 5.0));
    assert_eq!(hists[0].positive_buckets, vec![2.0, 1.0]);
    assert_eq!(hists[0].zero_count, 1.0);
    let entries = parse(
        &body,
        HistogramOptions {
            always_classic: true,
            ..native
        },
    )
    .unwrap();
    assert_eq!(floats(&entries), classic);
    assert_eq!(
        entries
            .iter()
            .filter(|e| matches!(e, ProtoEntry::Histogram(..)))
            .count(),
        1
    );
}

#[test]
fn classic_histograms_convert_to_custom_buckets_when_asked() {
    let mut f = both_ways();
    // Classic only: no native parts.
    let h = f.metric[0].histogram.as_mut().unwrap();
    h.zero_threshold = 0.0;
    h.zero_count = 0;
    h.positive_span.clear();
    h.positive_delta.clear();
    f.r#type = 5;
    let body = proto::encode(&[f]);
    let opts = HistogramOptions {
        native: true,
        convert_to_nhcb: true,
        ..Default::default()
    };
    let entries = parse(&body, opts).unwrap();
    assert!(floats(&entries).is_empty());
    let Some(ProtoEntry::Histogram(_, _, h)) = entries.last() else {
        panic!("{entries:?}")
    };
    assert_eq!(h.schema, quiver_storage::histogram::CUSTOM_BUCKETS_SCHEMA);
    assert_eq!(h.custom_values, vec![0.5, 1.0]);
    assert_eq!(h.positive_buckets, vec![1.0, 2.0, 1.0]);
    // A gauge histogram stays a gauge.
    assert_eq!(h.hint, CounterResetHint::Gauge);
    let entries = parse(
        &body,
        HistogramOptions {
            always_classic: true,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(floats(&entries).len(), 5);
}

#[test]
fn malformed_bodies_and_histograms_are_refused() {
    // A length past the end.
    assert!(parse(&[0x05, 0x0a], HistogramOptions::default()).is_err());
    // An unknown type.
    let body = proto::encode(&[MetricFamily {
        name: "x".into(),
        r#type: 9,
        metric: vec![Metric::default()],
        ..Default::default()
    }]);
    assert!(parse(&body, HistogramOptions::default()).is_err());
    // A native histogram whose spans want more buckets than it has.
    let mut f = both_ways();
    f.metric[0].histogram.as_mut().unwrap().positive_delta.pop();
    let body = proto::encode(&[f]);
    let native = HistogramOptions {
        native: true,
        ..Default::default()
    };
    let e = parse(&body, native).unwrap_err();
    assert!(e.contains("positive side"), "{e}");
    // Ignored when native histograms are not scraped.
    assert!(parse(&body, HistogramOptions::default()).is_ok());
}

#[test]
fn an_exposition_that_expands_without_bound_is_refused() {
    // Many buckets with long labels: every bucket repeats them.
    let long = "v".repeat(200_000);
    let body = proto::encode(&[MetricFamily {
        name: "h".into(),
        r#type: 4,
        metric: vec![Metric {
            label: labels(&[("l", &long)]),
            histogram: Some(Histogram {
                bucket: (0..2_000)
                    .map(|i| Bucket {
                        upper_bound: i as f64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }]);
    let e = parse(&body, HistogramOptions::default()).unwrap_err();
    assert!(e.contains("too many series bytes"), "{e}");
}

#[test]
fn the_content_type_is_recognised_with_its_parameters_in_any_order() {
    assert!(is_content_type(MEDIA_TYPE));
    assert!(is_content_type(
        "application/vnd.google.protobuf; encoding=delimited; proto=io.prometheus.client.MetricFamily"
    ));
    assert!(!is_content_type("application/vnd.google.protobuf"));
    assert!(!is_content_type("text/plain; version=0.0.4"));
}
