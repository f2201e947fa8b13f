//! Every seed of the fuzz targets and every input that once found a bug (`fuzz/seeds/<target>`,
//! `fuzz/regressions/<target>`) runs through its target's function, as `cargo fuzz` runs it:
//! a bug that comes back fails here, under plain `cargo test`.

use std::path::Path;

#[test]
fn every_fuzz_seed_and_regression_input_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (name, run) in quiver::fuzzing::TARGETS {
        let seeds = root.join("seeds").join(name);
        let count = std::fs::read_dir(&seeds)
            .unwrap_or_else(|e| panic!("{}: {e}", seeds.display()))
            .count();
        assert!(count > 0, "the fuzz target {name} has no seeds");
        for dir in [seeds, root.join("regressions").join(name)] {
            // A target that never found a bug has no regressions folder.
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                eprintln!("{name}: {}", path.display());
                run(&data);
                ran += 1;
            }
        }
    }
    assert!(ran >= quiver::fuzzing::TARGETS.len());
}

/// The binary seeds (remote-write bodies, a WAL record, a prepared-statement handle) are what
/// the encoders they stand for make today; `QUIVER_WRITE_SEEDS=1` writes them anew after a
/// format change.
#[test]
fn binary_fuzz_seeds_are_what_the_encoders_make() {
    use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
    use quiver_storage::wal::WalRecord;
    use quiver_storage::{LabelLimits, Labels, SeriesId};
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let req = WriteRequest {
        timeseries: vec![
            TimeSeries::from_pairs(
                &[
                    ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                    ("gpu", "0"),
                    ("Hostname", "node-1"),
                ],
                &[(1_700_000_000_000, 87.0), (1_700_000_015_000, f64::NAN)],
            ),
            TimeSeries::from_pairs(&[("__name__", "up"), ("job", "a")], &[(-5, 1.0)]),
        ],
    };
    let body = encode(&req);
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let labels =
        Labels::try_from_pairs([("__name__", "up"), ("job", "a")], &LabelLimits::default())
            .unwrap();
    let record = WalRecord {
        new_series: vec![(SeriesId(7), labels)],
        series_ids: vec![SeriesId(7), SeriesId(3)],
        timestamps: vec![1_000, 2_000],
        values: vec![1.5, f64::INFINITY],
        ..Default::default()
    };
    let mut wal = Vec::new();
    record.encode(&mut wal);
    // A prepared statement's handle: `Q1`, the statement's length (u32, little-endian), then it.
    let sql = b"SELECT * FROM samples WHERE value > $1";
    let mut handle = b"Q1".to_vec();
    handle.extend_from_slice(&(sql.len() as u32).to_le_bytes());
    handle.extend_from_slice(sql);
    use quiver_ingest::remote_write2::proto::request;
    let v2 = prost::Message::encode_to_vec(&request(&[
        (
            vec![("__name__", "vllm_requests_total"), ("model", "llama")],
            vec![(1_700_000_000_000, 12.0)],
            Some((1, "Requests served.", "")),
        ),
        (vec![("__name__", "up")], vec![(-5, f64::NAN)], None),
    ]));
    use quiver_ingest::remote_read::{LabelMatcher, Query, ReadRequest};
    let read = prost::Message::encode_to_vec(&ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 1_700_000_000_000,
            end_timestamp_ms: 1_700_000_300_000,
            matchers: vec![
                LabelMatcher {
                    r#type: 0,
                    name: "__name__".into(),
                    value: "up".into(),
                },
                LabelMatcher {
                    r#type: 2,
                    name: "job".into(),
                    value: "node|gpu".into(),
                },
            ],
        }],
        accepted_response_types: vec![0],
    });
    use quiver_ingest::otlp::proto::{self as otlp, kv};
    let point = |v: f64| otlp::NumberDataPoint {
        attributes: vec![kv("gpu", "0")],
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(otlp::number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let metric = |name: &str, unit: &str, data| otlp::Metric {
        name: name.into(),
        description: "help".into(),
        unit: unit.into(),
        data: Some(data),
    };
    let otlp_request = prost::Message::encode_to_vec(&otlp::ExportMetricsServiceRequest {
        resource_metrics: vec![otlp::ResourceMetrics {
            resource: Some(otlp::Resource {
                attributes: vec![kv("service.name", "vllm"), kv("k8s.pod.name", "p")],
            }),
            scope_metrics: vec![otlp::ScopeMetrics {
                scope: Some(otlp::InstrumentationScope {
                    name: "lib".into(),
                    version: "1".into(),
                    attributes: vec![kv("a", "b")],
                }),
                metrics: vec![
                    metric(
                        "tokens",
                        "{token}",
                        otlp::metric::Data::Sum(otlp::Sum {
                            data_points: vec![point(3.0)],
                            aggregation_temporality: otlp::CUMULATIVE,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "gpu.utilization",
                        "1",
                        otlp::metric::Data::Gauge(otlp::Gauge {
                            data_points: vec![point(0.5)],
                        }),
                    ),
                    metric(
                        "latency",
                        "s",
                        otlp::metric::Data::Histogram(otlp::Histogram {
                            data_points: vec![otlp::HistogramDataPoint {
                                count: 3,
                                sum: Some(1.5),
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![0.5],
                                ..Default::default()
                            }],
                            aggregation_temporality: otlp::CUMULATIVE,
                        }),
                    ),
                    metric(
                        "rpc",
                        "ms",
                        otlp::metric::Data::Summary(otlp::Summary {
                            data_points: vec![otlp::SummaryDataPoint {
                                count: 2,
                                sum: 3.0,
                                quantile_values: vec![otlp::ValueAtQuantile {
                                    quantile: 0.5,
                                    value: 1.0,
                                }],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    });
    use quiver_ingest::exposition_proto::proto::{
        self as expo, Bucket, Histogram, LabelPair, Metric, MetricFamily, Quantile, Summary, Value,
    };
    let exposition = expo::encode(&[
        MetricFamily {
            name: "requests_total".into(),
            help: "Requests.".into(),
            r#type: 0,
            metric: vec![Metric {
                label: vec![LabelPair {
                    name: "code".into(),
                    value: "200".into(),
                }],
                counter: Some(Value { value: 7.0 }),
                timestamp_ms: 1_700_000_000_000,
                ..Default::default()
            }],
            unit: String::new(),
        },
        MetricFamily {
            name: "gc_seconds".into(),
            r#type: 2,
            metric: vec![Metric {
                summary: Some(Summary {
                    sample_count: 3,
                    sample_sum: 0.5,
                    quantile: vec![Quantile {
                        quantile: 0.5,
                        value: 0.1,
                    }],
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        MetricFamily {
            name: "rpc_seconds".into(),
            r#type: 4,
            metric: vec![Metric {
                histogram: Some(Histogram {
                    sample_count: 4,
                    sample_sum: 5.0,
                    bucket: vec![Bucket {
                        cumulative_count: 3,
                        upper_bound: 1.0,
                        ..Default::default()
                    }],
                    schema: 3,
                    zero_threshold: 1e-128,
                    zero_count: 1,
                    positive_span: vec![quiver_ingest::histogram::proto::BucketSpan {
                        offset: -2,
                        length: 2,
                    }],
                    positive_delta: vec![2, -1],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
    ]);
    let write = std::env::var_os("QUIVER_WRITE_SEEDS").is_some();
    for (path, bytes) in [
        ("remote_read/one_query", read),
        ("otlp/four_metrics.pb", otlp_request),
        ("remote_write2/two_series", v2),
        ("remote_write/two_series", body),
        ("remote_write_protobuf/two_series", raw),
        ("wal_record/two_samples", wal),
        ("flight_ticket/handle", handle),
        ("exposition_proto/three_families", exposition),
    ] {
        let path = seeds.join(path);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{} is not what its encoder makes now (QUIVER_WRITE_SEEDS=1 writes it)",
            path.display()
        );
    }
}
