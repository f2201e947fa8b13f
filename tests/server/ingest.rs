//! Ingest: remote write and text import, and what bad input gets (a clear 4xx, no lost data,
//! the server still serving).

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_stores_every_sample_and_the_last_duplicate_wins() {
    let s = TestServer::start(&[]).await;
    let body = write_request(&[(
        vec![("__name__", "power"), ("gpu", "0")],
        vec![(1_000, 1.0), (2_000, 2.0)],
    )]);
    assert_eq!(
        post(&s.url("/api/v1/write"), body, &RW_HEADERS).await.0,
        204
    );
    // Late (out-of-order) and duplicate samples are accepted; the duplicate's last value wins.
    let body = write_request(&[(
        vec![("gpu", "0"), ("__name__", "power")],
        vec![(500, 0.5), (2_000, 20.0)],
    )]);
    assert_eq!(
        post(&s.url("/api/v1/write"), body, &RW_HEADERS).await.0,
        204
    );
    let got = export(&s.base, "power").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, [500, 1_000, 2_000]);
    assert_eq!(got[0].2, [0.5, 1.0, 20.0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_markers_and_special_values_are_stored_bit_for_bit() {
    let s = TestServer::start(&[]).await;
    let stale = f64::from_bits(quiver_storage::STALE_NAN_BITS);
    let body = write_request(&[(
        vec![("__name__", "x")],
        vec![
            (1_000, f64::INFINITY),
            (2_000, f64::NEG_INFINITY),
            (3_000, stale),
        ],
    )]);
    assert_eq!(
        post(&s.url("/api/v1/write"), body, &RW_HEADERS).await.0,
        204
    );
    let r = get_text(&s.url("/api/v1/export?match[]=x")).await;
    assert!(r.contains(r#""values":["+Inf","-Inf","NaN"]"#), "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_remote_write_bodies_get_a_clear_4xx_and_the_server_keeps_serving() {
    let s = TestServer::start(&["--web.max-request-body-bytes=65536"]).await;
    let good = write_request(&[(vec![("__name__", "kept"), ("a", "1")], vec![(1_000, 1.0)])]);
    assert_eq!(
        post(&s.url("/api/v1/write"), good.clone(), &RW_HEADERS)
            .await
            .0,
        204
    );

    let snappy_of = |raw: &[u8]| snap::raw::Encoder::new().compress_vec(raw).unwrap();
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("truncated snappy", truncated, 400, "snappy"),
        (
            "not snappy at all",
            b"this is not snappy".to_vec(),
            400,
            "snappy",
        ),
        (
            "invalid protobuf",
            snappy_of(&[0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]),
            400,
            "protobuf",
        ),
        (
            "empty label name",
            write_request(&[(vec![("__name__", "x"), ("", "v")], vec![(1, 1.0)])]),
            400,
            "empty label name",
        ),
        (
            "duplicate label names",
            write_request(&[(
                vec![("__name__", "x"), ("a", "1"), ("a", "2")],
                vec![(1, 1.0)],
            )]),
            400,
            "duplicate label name",
        ),
        (
            "empty label set",
            write_request(&[(vec![], vec![(1, 1.0)])]),
            400,
            "empty label set",
        ),
        (
            "no metric name",
            write_request(&[(vec![("job", "x")], vec![(1, 1.0)])]),
            400,
            "missing metric name",
        ),
        (
            "huge body",
            vec![0u8; 100_000],
            413,
            "larger than the limit",
        ),
    ];
    for (what, body, code, needle) in cases {
        let (got, text) = post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
        assert_eq!(got, code, "{what}: {text}");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
        assert_eq!(v["errorType"], "bad_data", "{what}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{what}: {text}"
        );
    }
    let (got, _) = post(
        &s.url("/api/v1/write"),
        good.clone(),
        &[("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(
        got, 415,
        "an encoding other than snappy is unsupported media"
    );

    // One bad series fails the whole request: nothing of it is stored.
    let mixed = write_request(&[
        (vec![("__name__", "partial"), ("a", "1")], vec![(1, 1.0)]),
        (vec![("__name__", "partial"), ("", "x")], vec![(1, 1.0)]),
    ]);
    assert_eq!(
        post(&s.url("/api/v1/write"), mixed, &RW_HEADERS).await.0,
        400
    );
    assert!(export(&s.base, "partial").await.is_empty());

    // Still serving, and the good data is intact.
    assert_eq!(
        post(&s.url("/api/v1/write"), good, &RW_HEADERS).await.0,
        204
    );
    let kept = export(&s.base, "kept").await;
    assert_eq!(kept[0].1, [1_000]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_refused_before_decoding() {
    let s = TestServer::start(&["--web.max-decoded-body-bytes=1048576"]).await;
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 4 << 20])
        .unwrap();
    let (code, text) = post(&s.url("/api/v1/write"), bomb, &RW_HEADERS).await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("decompressed body"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_import_backfills_with_and_without_timestamps() {
    let s = TestServer::start(&[]).await;
    let body = "# HELP train_loss loss\n# TYPE train_loss gauge\n\
                train_loss{run=\"r1\"} 2.5 1700000000000\n\
                train_loss{run=\"r1\"} 1.5 1700000015000\n\
                train_loss{run=\"r2\"} 3\n";
    let (code, text) = post(
        &s.url("/api/v1/import/prometheus"),
        body.as_bytes().to_vec(),
        &[],
    )
    .await;
    assert_eq!(code, 204, "{text}");
    let got = export(&s.base, "train_loss").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0["run"], "r1");
    assert_eq!(got[0].1, [1_700_000_000_000, 1_700_000_015_000]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (got[1].1[0] - now).abs() < 60_000,
        "a sample without a timestamp is stamped now"
    );

    let (code, text) = post(
        &s.url("/api/v1/import/prometheus"),
        b"ok 1\nbroken{a=\"x\" 2\n".to_vec(),
        &[],
    )
    .await;
    assert_eq!(code, 400);
    assert!(text.contains("line 2"), "{text}");
    assert!(
        export(&s.base, "ok").await.is_empty(),
        "a bad import stores nothing"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_forgotten_by_retention_is_written_again_under_the_same_encoding() {
    // Remote write finds series it has seen by their encoded labels; retention forgetting the
    // series must not leave that shortcut pointing at the forgotten id.
    let s = TestServer::start(&["--web.enable-admin-api", "--storage.retention.time=1h"]).await;
    let now = quiver_storage::maintenance::now_ms();
    let labels = vec![("__name__", "gpu_temp"), ("gpu", "3")];
    let write = |t: i64, v: f64| write_request(&[(labels.clone(), vec![(t, v)])]);
    let old = now - 3 * 3_600_000;
    // Twice, so that the second write resolves the series it created and remembers it.
    for (t, v) in [(old - 30_000, 1.0), (old, 2.0)] {
        let (status, body) = post(&s.url("/api/v1/write"), write(t, v), &RW_HEADERS).await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, body) = post(&s.url("/api/v1/admin/flush"), Vec::new(), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""blocksDeleted":1"#), "{body}");
    assert!(
        export(&s.base, "gpu_temp").await.is_empty(),
        "retention dropped it"
    );

    let (status, body) = post(&s.url("/api/v1/write"), write(now, 3.0), &RW_HEADERS).await;
    assert_eq!(status, 204, "{body}");
    let got = export(&s.base, "gpu_temp").await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].1.as_slice(), got[0].2.as_slice()),
        (&[now][..], &[3.0][..])
    );
    s.stop().await;
}

/// POSTs a remote write 2.0 body; answers the status, the three written-count headers
/// (samples, histograms, exemplars) and the body.
async fn post_v2(s: &TestServer, body: Vec<u8>) -> (u16, [Option<u64>; 3], String) {
    let r = client()
        .post(s.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header(
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .body(body)
        .send()
        .await
        .unwrap();
    let count = |h: &str| {
        r.headers()
            .get(format!("X-Prometheus-Remote-Write-{h}-Written"))
            .and_then(|v| v.to_str().ok()?.parse().ok())
    };
    let written = [count("Samples"), count("Histograms"), count("Exemplars")];
    (r.status().as_u16(), written, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_2_stores_samples_and_metadata_and_says_how_much_it_wrote() {
    use quiver_ingest::histogram::proto::{BucketSpan, Count};
    use quiver_ingest::remote_write2::proto::{Exemplar, Histogram, compress, request};
    let s = TestServer::start(&[]).await;
    let req = request(&[
        (
            vec![("__name__", "vllm_requests_total"), ("model", "llama")],
            vec![(1_000, 1.0), (2_000, 4.0)],
            Some((1, "Requests served.", "")),
        ),
        (
            vec![("__name__", "ttft_seconds_bucket"), ("le", "0.5")],
            vec![(1_000, 3.0)],
            Some((3, "Time to first token.", "seconds")),
        ),
        // Metadata alone.
        (
            vec![("__name__", "gpu_temp_celsius")],
            vec![],
            Some((2, "GPU temperature.", "celsius")),
        ),
    ]);
    let (code, written, text) = post_v2(&s, compress(&req)).await;
    assert_eq!(code, 204, "{text}");
    assert_eq!(written, [Some(3), Some(0), Some(0)]);
    let got = export(&s.base, "vllm_requests_total").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["model"], "llama");
    assert_eq!(
        (got[0].1.clone(), got[0].2.clone()),
        (vec![1_000, 2_000], vec![1.0, 4.0])
    );
    assert_eq!(export(&s.base, "ttft_seconds_bucket").await.len(), 1);

    // The metadata shows in /api/v1/metadata, by family.
    let (code, v) = get_json(&s.url("/api/v1/metadata")).await;
    assert_eq!(code, 200, "{v}");
    let data = &v["data"];
    assert_eq!(data["vllm_requests_total"][0]["type"], "counter", "{v}");
    assert_eq!(data["vllm_requests_total"][0]["help"], "Requests served.");
    assert_eq!(data["ttft_seconds"][0]["type"], "histogram", "{v}");
    assert_eq!(data["ttft_seconds"][0]["unit"], "seconds");
    assert_eq!(data["gpu_temp_celsius"][0]["type"], "gauge", "{v}");
    let (_, one) = get_json(&s.url("/api/v1/metadata?metric=gpu_temp_celsius")).await;
    assert_eq!(one["data"].as_object().unwrap().len(), 1, "{one}");

    // Native histograms are written and counted apart; an invalid one refuses the request
    // with Prometheus's reason, and nothing is written.
    let mut with_histogram = request(&[(vec![("__name__", "latency")], vec![(3_000, 1.0)], None)]);
    with_histogram.timeseries[0].histograms.push(Histogram {
        count: Some(Count::CountInt(2)),
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 1,
        }],
        positive_deltas: vec![2],
        sum: 1.5,
        timestamp: 4_000,
        ..Default::default()
    });
    let (code, written, text) = post_v2(&s, compress(&with_histogram)).await;
    assert_eq!(code, 204, "{text}");
    assert_eq!(written, [Some(1), Some(1), Some(0)]);
    with_histogram.timeseries[0].histograms[0].count = Some(Count::CountInt(3));
    with_histogram.timeseries[0].histograms[0].timestamp = 5_000;
    let (code, written, text) = post_v2(&s, compress(&with_histogram)).await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("native histogram") && text.contains("Count field is 3"),
        "{text}"
    );
    assert_eq!(written, [Some(0), Some(0), Some(0)]);
    let mut with_exemplar =
        request(&[(vec![("__name__", "not_stored")], vec![(3_000, 1.0)], None)]);
    with_exemplar.timeseries[0]
        .exemplars
        .push(Exemplar::default());
    let (code, _, text) = post_v2(&s, compress(&with_exemplar)).await;
    assert_eq!(code, 400, "{text}");
    assert!(export(&s.base, "not_stored").await.is_empty());

    // Bad bodies: a reference outside the symbols table, a 1.0 body sent as 2.0, not snappy.
    let mut bad_ref = request(&[(vec![("__name__", "bad")], vec![(1, 1.0)], None)]);
    bad_ref.timeseries[0].labels_refs[1] = 1000;
    let (code, _, text) = post_v2(&s, compress(&bad_ref)).await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("symbol reference 1000"), "{text}");
    let v1 = write_request(&[(vec![("__name__", "v1_as_v2")], vec![(1_000, 1.0)])]);
    let (code, _, text) = post_v2(&s, v1).await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("1.0"), "{text}");
    let (code, _, _) = post_v2(&s, b"not snappy at all".to_vec()).await;
    assert_eq!(code, 400);

    // 1.0 is unchanged, and the server goes on.
    let body = write_request(&[(vec![("__name__", "still_v1")], vec![(1_000, 1.0)])]);
    assert_eq!(
        post(&s.url("/api/v1/write"), body, &RW_HEADERS).await.0,
        204
    );
    assert_eq!(export(&s.base, "still_v1").await.len(), 1);
    s.stop().await;
}

/// A series as a remote read answered it: labels as `name=value,…`, and its samples.
type ReadSeries = (String, Vec<(i64, f64)>);

/// POSTs a remote read request; answers the status and the decoded answer (or the error text).
async fn remote_read(
    s: &TestServer,
    req: &quiver_ingest::remote_read::ReadRequest,
) -> (
    u16,
    Result<quiver_ingest::remote_read::ReadResponse, String>,
) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(req))
        .unwrap();
    let r = client()
        .post(s.url("/api/v1/read"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    if code == 200 {
        let resp = quiver_ingest::remote_read::decode_response(&bytes).map_err(|e| e.to_string());
        (code, resp)
    } else {
        (code, Err(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_read_answers_samples_by_matchers_and_time_and_stays_bounded() {
    use quiver_ingest::remote_read::{LabelMatcher, Query, ReadRequest};
    let s = TestServer::start(&["--storage.remote.read-sample-limit=4"]).await;
    let body = write_request(&[
        (
            vec![("__name__", "gpu_util"), ("gpu", "0")],
            vec![(1_000, 10.0), (2_000, 20.0)],
        ),
        (
            vec![("__name__", "gpu_util"), ("gpu", "1")],
            vec![(1_000, 11.0), (2_000, 21.0)],
        ),
        (
            vec![("__name__", "gpu_temp"), ("gpu", "0")],
            vec![(1_000, 60.0)],
        ),
    ]);
    assert_eq!(
        post(&s.url("/api/v1/write"), body, &RW_HEADERS).await.0,
        204
    );
    let m = |t: i32, name: &str, value: &str| LabelMatcher {
        r#type: t,
        name: name.into(),
        value: value.into(),
    };
    let query = |matchers: Vec<LabelMatcher>, start: i64, end: i64| Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers,
    };
    // Two queries in one request: one result each, in order.
    let req = ReadRequest {
        queries: vec![
            query(
                vec![m(0, "__name__", "gpu_util"), m(1, "gpu", "1")],
                0,
                1_500,
            ),
            query(vec![m(2, "__name__", "gpu_.*"), m(3, "gpu", "1")], 0, 5_000),
        ],
        accepted_response_types: vec![],
    };
    let (code, resp) = remote_read(&s, &req).await;
    assert_eq!(code, 200, "{resp:?}");
    let resp = resp.unwrap();
    let flat: Vec<Vec<ReadSeries>> = resp
        .results
        .iter()
        .map(|r| {
            let mut all: Vec<ReadSeries> = r
                .timeseries
                .iter()
                .map(|ts| {
                    let labels: Vec<String> = ts
                        .labels
                        .iter()
                        .map(|l| format!("{}={}", l.name, l.value))
                        .collect();
                    let samples = ts.samples.iter().map(|x| (x.timestamp, x.value)).collect();
                    (labels.join(","), samples)
                })
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        })
        .collect();
    assert_eq!(
        flat,
        vec![
            vec![("__name__=gpu_util,gpu=0".to_string(), vec![(1_000, 10.0)])],
            vec![
                ("__name__=gpu_temp,gpu=0".to_string(), vec![(1_000, 60.0)]),
                (
                    "__name__=gpu_util,gpu=0".to_string(),
                    vec![(1_000, 10.0), (2_000, 20.0)]
                ),
            ],
        ]
    );

    // Past the sample limit: refused before reading (5 samples would be read here, 4 allowed;
    // the request above read 4).
    let all = ReadRequest {
        queries: vec![query(vec![m(2, "__name__", "gpu_.*")], 0, 5_000)],
        accepted_response_types: vec![0, 1],
    };
    let (code, text) = remote_read(&s, &all).await;
    assert_eq!(code, 422, "{text:?}");
    assert!(text.unwrap_err().contains("sample limit"));
    // Streamed XOR chunks, when the client lists them first: the same series and samples as
    // the SAMPLES answer, in checksummed frames.
    let (_, samples) = remote_read(&s, &req).await;
    let samples = samples.unwrap();
    let chunks_first = ReadRequest {
        accepted_response_types: vec![1, 0],
        ..req.clone()
    };
    let r = client()
        .post(s.url("/api/v1/read"))
        .header("Content-Encoding", "snappy")
        .body(
            snap::raw::Encoder::new()
                .compress_vec(&prost::Message::encode_to_vec(&chunks_first))
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    );
    let frames = quiver_ingest::xor_chunks::read_frames(&r.bytes().await.unwrap()).unwrap();
    type Answer = Vec<(i64, Vec<(String, String)>, Vec<(i64, f64)>)>;
    let mut streamed: Answer = Vec::new();
    for f in &frames {
        for cs in &f.chunked_series {
            let labels = cs
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let points = cs
                .chunks
                .iter()
                .flat_map(|c| quiver_ingest::xor_chunks::decode_xor_chunk(&c.data).unwrap())
                .collect();
            streamed.push((f.query_index, labels, points));
        }
    }
    let expected: Answer = samples
        .results
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.timeseries.iter().map(move |ts| {
                (
                    i as i64,
                    ts.labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    ts.samples.iter().map(|x| (x.timestamp, x.value)).collect(),
                )
            })
        })
        .collect();
    assert!(expected.len() >= 2);
    assert_eq!(streamed, expected);
    // No response type Quiver speaks, a matcher selecting everything, a bad regex, junk: 400.
    let unknown_only = ReadRequest {
        accepted_response_types: vec![7],
        ..req.clone()
    };
    assert_eq!(remote_read(&s, &unknown_only).await.0, 400);
    let everything = ReadRequest {
        queries: vec![query(vec![m(2, "__name__", ".*")], 0, 5_000)],
        accepted_response_types: vec![],
    };
    assert_eq!(remote_read(&s, &everything).await.0, 400);
    let bad_regex = ReadRequest {
        queries: vec![query(vec![m(2, "__name__", "a)|(b")], 0, 5_000)],
        accepted_response_types: vec![],
    };
    assert_eq!(remote_read(&s, &bad_regex).await.0, 400);
    let (code, _) = post(&s.url("/api/v1/read"), b"junk".to_vec(), &[]).await;
    assert_eq!(code, 400);
    // Matchers are counted too: each regex may compile to megabytes.
    let many = ReadRequest {
        queries: vec![query(
            (0..1001).map(|_| m(2, "gpu", "0|1")).collect(),
            0,
            5_000,
        )],
        accepted_response_types: vec![],
    };
    let (code, text) = remote_read(&s, &many).await;
    assert_eq!(code, 400, "{text:?}");
    assert!(text.unwrap_err().contains("matchers"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_from_remote_write_are_stored_and_read_back() {
    use quiver_ingest::histogram::proto::{BucketSpan, Count, Histogram, ZeroCount};
    use quiver_ingest::remote_read::{LabelMatcher, Query, ReadRequest};
    use quiver_ingest::remote_write::{WriteRequest, encode};
    let s = TestServer::start(&[]).await;
    // An integer histogram (delta-encoded counts), a float one with custom buckets, and a
    // staleness marker (a stale sum), in one series of a 1.0 request.
    let int = Histogram {
        count: Some(Count::CountInt(6)),
        sum: 7.25,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: Some(ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![
            BucketSpan {
                offset: 1,
                length: 2,
            },
            BucketSpan {
                offset: 2,
                length: 1,
            },
        ],
        positive_deltas: vec![1, 1, -1],
        negative_spans: vec![BucketSpan {
            offset: 0,
            length: 1,
        }],
        negative_deltas: vec![1],
        reset_hint: 0,
        timestamp: 10_000,
        ..Default::default()
    };
    let custom = Histogram {
        count: Some(Count::CountFloat(4.5)),
        sum: 2.0,
        schema: -53,
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_counts: vec![1.5, 3.0],
        custom_values: vec![0.25],
        reset_hint: 3,
        timestamp: 20_000,
        ..Default::default()
    };
    let stale = Histogram {
        sum: f64::from_bits(quiver_storage::STALE_NAN_BITS),
        timestamp: 30_000,
        ..Default::default()
    };
    let mut series = quiver_ingest::remote_write::TimeSeries::from_pairs(
        &[("__name__", "rpc_seconds"), ("job", "api")],
        &[],
    );
    series.histograms = vec![int, custom.clone(), stale];
    let body = encode(&WriteRequest {
        timeseries: vec![series],
    });
    let (code, text) = post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");

    let read = |accepted: Vec<i32>| ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 60_000,
            matchers: vec![LabelMatcher {
                r#type: 0,
                name: "__name__".into(),
                value: "rpc_seconds".into(),
            }],
        }],
        accepted_response_types: accepted,
    };
    let (code, resp) = remote_read(&s, &read(vec![])).await;
    assert_eq!(code, 200, "{resp:?}");
    let resp = resp.unwrap();
    let ts = &resp.results[0].timeseries;
    assert_eq!(ts.len(), 1);
    // The staleness marker is a float sample; the histograms come back as float histograms.
    assert_eq!(ts[0].samples.len(), 1);
    assert_eq!(ts[0].samples[0].timestamp, 30_000);
    assert!(quiver_storage::is_stale_nan(ts[0].samples[0].value));
    let h = &ts[0].histograms;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].timestamp, 10_000);
    assert_eq!(h[0].count, Some(Count::CountFloat(6.0)));
    assert_eq!(h[0].zero_count, Some(ZeroCount::ZeroCountFloat(1.0)));
    assert_eq!(h[0].positive_counts, [1.0, 2.0, 1.0]);
    assert_eq!(h[0].negative_counts, [1.0]);
    assert_eq!(
        h[0].positive_spans,
        [
            BucketSpan {
                offset: 1,
                length: 2
            },
            BucketSpan {
                offset: 2,
                length: 1
            },
        ]
    );
    assert_eq!(
        (h[0].schema, h[0].sum, h[0].zero_threshold),
        (1, 7.25, 0.001)
    );
    let mut want = custom;
    want.zero_count = Some(ZeroCount::ZeroCountFloat(0.0));
    assert_eq!(h[1], want);

    // Chunks are for floats only: a streamed read of histograms is refused, not cut short.
    let (code, resp) = remote_read(&s, &read(vec![1])).await;
    assert_eq!(code, 422, "{resp:?}");
    assert!(resp.unwrap_err().contains("SAMPLES"));
    s.stop().await;
}
