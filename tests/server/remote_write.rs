//! `remote_write` in the configuration: Quiver sends what it stores to other stores, with
//! external labels and write relabeling, as 1.0 or 2.0; it retries 5xx, 429 and a receiver
//! that is down, and drops what another 4xx refuses; and real Prometheus and VictoriaMetrics
//! receive what Quiver scraped, and Prometheus (with its native-histograms feature) the native
//! histograms Quiver sends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use quiver::config::Config;

use super::support::*;

/// What a fake receiver got: series (Prometheus notation) → samples (native histograms as
/// their count, under the series and " histogram").
type Received = Arc<Mutex<BTreeMap<String, Vec<(i64, f64)>>>>;

/// A receiver on `port` that answers each request with the next of `answers` (then 204 for
/// ever), and keeps what it accepted.
async fn fake_receiver(port: u16, answers: Vec<u16>) -> (Received, Arc<AtomicUsize>) {
    let got: Received = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/api/v1/write",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (got, calls) = (g.clone(), c.clone());
            let answers = answers.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let code = answers.get(n).copied().unwrap_or(204);
                if code != 204 {
                    return StatusCode::from_u16(code).unwrap();
                }
                let v2 = headers.get("content-type").is_some_and(|v| {
                    v.to_str()
                        .unwrap()
                        .contains("io.prometheus.write.v2.Request")
                });
                let batch = if v2 {
                    quiver_ingest::remote_write2::decode(&body, 1 << 26, &Default::default())
                        .unwrap()
                        .batch
                } else {
                    quiver_ingest::remote_write::decode(&body, 1 << 26, &Default::default())
                        .unwrap()
                };
                let labels: Vec<String> =
                    batch.new_labels().map(|l| l.unwrap().to_string()).collect();
                let mut got = got.lock();
                for (s, t, v) in batch.samples() {
                    got.entry(labels[s as usize].clone())
                        .or_default()
                        .push((t, v));
                }
                // Native histograms under the series name and " histogram", with their count.
                for (s, t, h) in batch.histograms() {
                    got.entry(format!("{} histogram", labels[s as usize]))
                        .or_default()
                        .push((t, h.count));
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (got, calls)
}

async fn sender(yaml: &str) -> TestServer {
    TestServer::start_with_config(
        tempfile::tempdir().unwrap(),
        &[],
        Config::from_yaml("sender.yml", yaml).unwrap(),
    )
    .await
}

/// Writes `n` samples of `gpu_power{gpu}` into the sender through its own remote-write
/// receiver (so they go through its WAL like any other).
async fn write_samples(s: &TestServer, gpu: &str, n: i64) {
    let samples: Vec<(i64, f64)> = (0..n).map(|i| (1_000 + i * 1_000, i as f64)).collect();
    let body = write_request(&[(vec![("__name__", "gpu_power"), ("gpu", gpu)], samples)]);
    let (code, text) = post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");
}

async fn wait_for(got: &Received, series: usize, samples: usize) {
    eventually("the receiver has everything", 30, || async {
        let g = got.lock();
        g.len() == series && g.values().map(Vec::len).sum::<usize>() == samples
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_sends_1_0_and_2_0_with_external_labels_and_write_relabeling() {
    let (p1, p2) = (free_port(), free_port());
    let (v1, _) = fake_receiver(p1, vec![]).await;
    let (v2, _) = fake_receiver(p2, vec![]).await;
    let s = sender(&format!(
        "global:
  external_labels: {{replica: a}}
remote_write:
  - url: http://127.0.0.1:{p1}/api/v1/write
    queue_config: {{batch_send_deadline: 100ms}}
  - url: http://127.0.0.1:{p2}/api/v1/write
    protobuf_message: io.prometheus.write.v2.Request
    queue_config: {{batch_send_deadline: 100ms, min_shards: 3}}
    write_relabel_configs:
      - {{source_labels: [gpu], regex: '1', action: drop}}
"
    ))
    .await;
    write_samples(&s, "0", 50).await;
    write_samples(&s, "1", 20).await;
    wait_for(&v1, 2, 70).await;
    wait_for(&v2, 1, 50).await;
    let got = v1.lock().clone();
    let zero = &got[r#"gpu_power{gpu="0", replica="a"}"#];
    assert_eq!(zero.len(), 50);
    assert_eq!(zero[49], (50_000, 49.0));
    assert!(v2.lock().contains_key(r#"gpu_power{gpu="0", replica="a"}"#));
    // The counters, as Prometheus names them.
    let metrics = get_text(&s.url("/metrics")).await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("prometheus_remote_storage_samples_total{") && l.contains(&p1.to_string())
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(" 70"), "{line}");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("prometheus_remote_storage_samples_dropped_total{")
                && l.ends_with(" 20")
        ),
        "the relabeled-away samples count as dropped:\n{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_retries_5xx_429_and_a_receiver_that_is_down_and_loses_nothing() {
    let port = free_port();
    let s = sender(&format!(
        "remote_write:\n- url: http://127.0.0.1:{port}/api/v1/write\n  \
         queue_config: {{batch_send_deadline: 100ms, max_samples_per_send: 10, min_backoff: 50ms, max_backoff: 200ms, retry_on_http_429: true}}\n"
    ))
    .await;
    // Nothing listens yet: the samples wait in the queue and the WAL.
    write_samples(&s, "0", 35).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    write_samples(&s, "1", 15).await;
    // Then a receiver that answers 503, 500 and 429 before it takes anything (429 retried as
    // asked).
    let (got, calls) = fake_receiver(port, vec![503, 500, 429]).await;
    wait_for(&got, 2, 50).await;
    // Three refusals, then at least five batches of at most ten.
    assert!(calls.load(Ordering::SeqCst) >= 3 + 5);
    let got = got.lock().clone();
    let zero = &got[r#"gpu_power{gpu="0"}"#];
    let mut times: Vec<i64> = zero.iter().map(|(t, _)| *t).collect();
    times.sort();
    times.dedup();
    assert_eq!(
        times.len(),
        35,
        "every sample, once or more (a retried batch may repeat)"
    );
    let metrics = get_text(&s.url("/metrics")).await;
    let retried = metrics
        .lines()
        .find(|l| l.starts_with("prometheus_remote_storage_samples_retried_total{"))
        .unwrap();
    assert!(!retried.ends_with(" 0"), "{retried}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_a_receiver_refuses_with_4xx_is_dropped_not_retried() {
    let port = free_port();
    let (got, calls) = fake_receiver(port, vec![400]).await;
    let s = sender(&format!(
        "remote_write:\n- url: http://127.0.0.1:{port}/api/v1/write\n  queue_config: {{batch_send_deadline: 100ms}}\n"
    ))
    .await;
    write_samples(&s, "0", 5).await;
    eventually("the refusal is counted", 30, || async {
        get_text(&s.url("/metrics")).await.lines().any(|l| {
            l.starts_with("prometheus_remote_storage_samples_failed_total{") && l.ends_with(" 5")
        })
    })
    .await;
    // The next batch goes through; the refused one was not sent again.
    write_samples(&s, "1", 3).await;
    wait_for(&got, 1, 3).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    s.stop().await;
}

#[test]
fn a_bad_remote_write_entry_names_the_file_line_and_field() {
    for (yaml, says) in [
        ("remote_write:\n- url: ftp://x/\n", "remote_write[0].url"),
        (
            "remote_write:\n- url: http://x/\n  protobuf_message: v3\n",
            "unknown remote write protobuf message",
        ),
        (
            "remote_write:\n- url: http://x/\n  headers: {Content-Type: x}\n",
            "reserved header",
        ),
        (
            "remote_write:\n- url: http://x/\n  queue_config: {min_shards: 5, max_shards: 2}\n",
            "min_shards",
        ),
        (
            "remote_write:\n- url: http://x/\n  name: a\n- url: http://y/\n  name: a\n",
            "multiple remote write configs",
        ),
        (
            "remote_write:\n- url: http://x/\n  sigv4: {region: x}\n",
            "unknown field",
        ),
        (
            "remote_write:\n- url: http://x/\n  send_exemplars: true\n",
            "exemplars",
        ),
    ] {
        let err = Config::from_yaml("p.yml", yaml).unwrap_err().to_string();
        assert!(err.starts_with("p.yml:"), "{err}");
        assert!(err.contains(says), "{yaml}: {err}");
    }
    // Headers are secrets in the configuration Quiver shows.
    let c = Config::from_yaml(
        "p.yml",
        "remote_write:\n- url: http://x/\n  headers: {X-Api-Key: k-123}\n",
    )
    .unwrap();
    assert!(!c.redacted_yaml().contains("k-123"));
}

/// Quiver scrapes itself and sends to a real Prometheus (its remote-write receiver) and a real
/// VictoriaMetrics: both hold the series Quiver holds, up to a cut-off remote write has
/// certainly delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs prometheus and victoria-metrics (Debian packages)"]
async fn prometheus_and_victoria_metrics_receive_what_quiver_scraped() {
    use std::process::{Command, Stdio};
    let prometheus = which("prometheus").expect("prometheus is on the PATH");
    let vm = which("victoria-metrics").expect("victoria-metrics is on the PATH");
    let dir = tempfile::tempdir().unwrap();
    let (prom_port, vm_port) = (free_port(), free_port());
    std::fs::write(dir.path().join("prom.yml"), "global: {}\n").unwrap();
    let mut children = vec![
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prom.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        Command::new(vm)
            .arg(format!("-httpListenAddr=127.0.0.1:{vm_port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ];
    let prom = format!("http://127.0.0.1:{prom_port}");
    let vm = format!("http://127.0.0.1:{vm_port}");
    wait_ready(&prom).await;
    eventually("VictoriaMetrics is up", 30, || async {
        client()
            .get(format!("{vm}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // Quiver scrapes itself every second and sends to both.
    let quiver_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  external_labels: {{source: quiver}}\n\
         scrape_configs:\n- job_name: quiver\n  static_configs: [{{targets: ['127.0.0.1:{quiver_port}']}}]\n\
         remote_write:\n- url: {prom}/api/v1/write\n  queue_config: {{batch_send_deadline: 1s}}\n\
         - url: {vm}/api/v1/write\n  queue_config: {{batch_send_deadline: 1s}}\n"
    );
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("quiver.yml"), &config).unwrap();
    let q = ChildServer::start_on(
        data.path(),
        quiver_port,
        &[&format!(
            "--config.file={}",
            data.path().join("quiver.yml").display()
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let window = format!(
        "match[]={{job=\"quiver\"}}&start={}&end={}",
        now - 600.0,
        now - 4.0
    );
    let names = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
        v["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|s| {
                let mut m: BTreeMap<String, String> = serde_json::from_value(s.clone()).unwrap();
                m.remove("source");
                serde_json::to_string(&m).unwrap()
            })
            .collect()
    };
    let (_, mine) = get_json(&format!("{}/api/v1/series?{window}", q.base)).await;
    let mine = names(&mine);
    assert!(mine.len() > 20, "Quiver scraped itself: {mine:?}");
    for (peer, base) in [("Prometheus", &prom), ("VictoriaMetrics", &vm)] {
        let mut theirs = Default::default();
        for _ in 0..30 {
            let (_, v) = get_json(&format!("{base}/api/v1/series?{window}")).await;
            theirs = names(&v);
            if theirs == mine {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let missing: Vec<_> = mine.difference(&theirs).take(5).collect();
        let extra: Vec<_> = theirs.difference(&mine).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{peer}: missing {missing:?}; extra {extra:?}"
        );
        // The external label arrived.
        let (_, v) = get_json(&format!(
            "{base}/api/v1/query?query=count(up{{source=\"quiver\"}})"
        ))
        .await;
        assert_eq!(v["data"]["result"][0]["value"][1], "1", "{peer}: {v}");
    }
    q.stop();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A reload keeps a queue whose entry did not change (its counters and its place in the WAL go
/// on), starts a changed one afresh, and a reload whose remote-write client cannot be built
/// changes no queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_unchanged_queues_and_replaces_changed_ones() {
    let port = free_port();
    let (got, _) = fake_receiver(port, vec![]).await;
    let entry = |name: &str| {
        format!(
            "  - url: http://127.0.0.1:{port}/api/v1/write\n    name: {name}\n    queue_config: {{batch_send_deadline: 100ms}}\n"
        )
    };
    let (s, path) = start_with_files(
        &format!("remote_write:\n{}", entry("kept")),
        &[],
        &["--web.enable-lifecycle"],
    )
    .await;
    let sent = |name: &'static str| {
        let url = s.url("/metrics");
        async move {
            get_text(&url)
                .await
                .lines()
                .find(|l| {
                    l.starts_with("prometheus_remote_storage_samples_total{")
                        && l.contains(&format!("remote_name=\"{name}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
        }
    };
    write_samples(&s, "0", 10).await;
    wait_for(&got, 1, 10).await;
    eventually("10 counted", 10, || async {
        sent("kept").await.as_deref() == Some("10")
    })
    .await;
    // Same entry, one more: the first goes on counting, the second starts at 0.
    std::fs::write(
        &path,
        format!("remote_write:\n{}{}", entry("kept"), entry("added")),
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(sent("kept").await.as_deref(), Some("10"));
    assert_eq!(sent("added").await.as_deref(), Some("0"));
    write_samples(&s, "1", 5).await;
    eventually("both queues sent the new samples", 10, || async {
        sent("kept").await.as_deref() == Some("15") && sent("added").await.as_deref() == Some("5")
    })
    .await;
    // A client that cannot be built (a CA file that is not there): nothing changes.
    std::fs::write(
        &path,
        format!(
            "remote_write:\n{}    tls_config: {{ca_file: /nonexistent/ca.pem}}\n",
            entry("broken")
        ),
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(sent("kept").await.as_deref(), Some("15"));
    assert_eq!(sent("broken").await, None);
    s.stop().await;
}

/// At shutdown, what the shards hold is still sent (through retries) within
/// `--storage.remote.flush-deadline`; past it, the server stops anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_is_queued_within_the_flush_deadline() {
    let port = free_port();
    // Two refusals, then it takes everything.
    let (got, _) = fake_receiver(port, vec![503, 503]).await;
    let yaml = format!(
        "remote_write:\n- url: http://127.0.0.1:{port}/api/v1/write\n  \
         queue_config: {{batch_send_deadline: 30s, min_backoff: 100ms, max_backoff: 100ms}}\n"
    );
    let s = TestServer::start_with_config(
        tempfile::tempdir().unwrap(),
        &[],
        Config::from_yaml("sender.yml", &yaml).unwrap(),
    )
    .await;
    write_samples(&s, "0", 7).await;
    // The batch deadline is far off: the samples are in the shard when the server stops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(got.lock().is_empty());
    s.stop().await;
    assert_eq!(got.lock().values().map(Vec::len).sum::<usize>(), 7);

    // A receiver that never takes anything: the stop waits the deadline, not for ever.
    let port = free_port();
    let (_never, _) = fake_receiver(port, vec![503; 1000]).await;
    let yaml = format!(
        "remote_write:\n- url: http://127.0.0.1:{port}/api/v1/write\n  \
         queue_config: {{batch_send_deadline: 30s, min_backoff: 100ms, max_backoff: 100ms}}\n"
    );
    let s = TestServer::start_with_config(
        tempfile::tempdir().unwrap(),
        &["--storage.remote.flush-deadline=1s"],
        Config::from_yaml("sender.yml", &yaml).unwrap(),
    )
    .await;
    write_samples(&s, "0", 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    s.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_are_sent_as_1_0_and_2_0() {
    use quiver_ingest::histogram::proto::{BucketSpan, Count, Histogram};
    use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let (v1, _) = fake_receiver(p1, vec![]).await;
    let (v2, _) = fake_receiver(p2, vec![]).await;
    let (v1_floats, _) = fake_receiver(p3, vec![]).await;
    // 1.0 sends histograms only with `send_native_histograms` (as Prometheus); 2.0 always.
    let s = sender(&format!(
        "remote_write:
  - url: http://127.0.0.1:{p1}/api/v1/write
    send_native_histograms: true
    queue_config: {{batch_send_deadline: 100ms}}
  - url: http://127.0.0.1:{p2}/api/v1/write
    protobuf_message: io.prometheus.write.v2.Request
    queue_config: {{batch_send_deadline: 100ms}}
  - url: http://127.0.0.1:{p3}/api/v1/write
    queue_config: {{batch_send_deadline: 100ms}}
"
    ))
    .await;
    let mut series = TimeSeries::from_pairs(&[("__name__", "ttft_seconds")], &[(500, 1.0)]);
    series.histograms = (1..=10)
        .map(|i| Histogram {
            count: Some(Count::CountInt(i)),
            sum: i as f64 * 0.5,
            schema: 3,
            positive_spans: vec![BucketSpan {
                offset: 2,
                length: 1,
            }],
            positive_deltas: vec![i as i64],
            timestamp: i as i64 * 1_000,
            ..Default::default()
        })
        .collect();
    let body = encode(&WriteRequest {
        timeseries: vec![series],
    });
    let (code, text) = post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");
    let want: Vec<(i64, f64)> = (1..=10).map(|i| (i * 1_000, i as f64)).collect();
    for got in [&v1, &v2] {
        wait_for(got, 2, 11).await;
        let got = got.lock().clone();
        let of = |suffix: &str| {
            got.iter()
                .find(|(k, _)| k.contains("ttft_seconds") && k.ends_with(suffix))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{got:?}"))
        };
        assert_eq!(of(" histogram"), want);
        assert_eq!(of("}"), [(500, 1.0)]);
    }
    wait_for(&v1_floats, 1, 1).await;
    let got = v1_floats.lock().clone();
    assert!(
        got.iter().all(|(k, _)| !k.ends_with(" histogram")),
        "{got:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs prometheus (Debian package)"]
async fn prometheus_receives_the_native_histograms_quiver_sends() {
    use quiver_ingest::histogram::proto::{BucketSpan, Count, Histogram, ZeroCount};
    use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
    let (mut child, prom, _dir) = native_histogram_prometheus().await;
    let s = sender(&format!(
        "remote_write:\n  - url: {prom}/api/v1/write\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 100ms}}\n"
    ))
    .await;
    // Ten integer histograms a second apart ending now, schema 3, buckets on both sides.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now - 10_000;
    let sent: Vec<Histogram> = (1..=10i64)
        .map(|i| Histogram {
            count: Some(Count::CountInt(4 * i as u64)),
            sum: 3.5 * i as f64,
            schema: 3,
            zero_threshold: 0.001,
            zero_count: Some(ZeroCount::ZeroCountInt(i as u64)),
            positive_spans: vec![
                BucketSpan {
                    offset: 2,
                    length: 1,
                },
                BucketSpan {
                    offset: 3,
                    length: 1,
                },
            ],
            positive_deltas: vec![i, 0],
            negative_spans: vec![BucketSpan {
                offset: -1,
                length: 1,
            }],
            negative_deltas: vec![i],
            timestamp: t0 + i * 1_000,
            ..Default::default()
        })
        .collect();
    let mut series = TimeSeries::from_pairs(&[("__name__", "ttft_seconds"), ("job", "vllm")], &[]);
    series.histograms = sent;
    let body = encode(&WriteRequest {
        timeseries: vec![series],
    });
    let (code, text) = post(&s.url("/api/v1/write"), body, &RW_HEADERS).await;
    assert_eq!(code, 204, "{text}");
    let at = (t0 + 10_000) as f64 / 1000.0;
    let query = |q: &'static str| {
        let prom = prom.clone();
        async move {
            client()
                .get(format!("{prom}/api/v1/query"))
                .query(&[("query", q.to_string()), ("time", at.to_string())])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap())
                .unwrap()
        }
    };
    eventually("Prometheus has the last histogram", 30, || async {
        query("histogram_count(ttft_seconds)").await["data"]["result"][0]["value"][1] == "40"
    })
    .await;
    assert_eq!(
        query("histogram_sum(ttft_seconds)").await["data"]["result"][0]["value"][1],
        "35"
    );
    // The last histogram as Prometheus holds it: the zero bucket and one bucket of each
    // side, counts as sent.
    let v = query("ttft_seconds").await;
    let h = &v["data"]["result"][0]["histogram"][1];
    assert_eq!(h["count"], "40", "{v}");
    let counts: Vec<&str> = h["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|b| b[3].as_str().unwrap())
        .collect();
    assert_eq!(counts, ["10", "10", "10", "10"], "{v}");
    // Every one of the ten arrived.
    let v = query("count_over_time(ttft_seconds[15s])").await;
    assert_eq!(v["data"]["result"][0]["value"][1], "10", "{v}");
    s.stop().await;
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs prometheus (Debian package)"]
async fn native_histogram_queries_agree_with_prometheus() {
    use quiver_ingest::histogram::proto::{BucketSpan, Count, Histogram, ZeroCount};
    use quiver_ingest::remote_write::{TimeSeries, WriteRequest, encode};
    let (mut child, prom, _dir) = native_histogram_prometheus().await;
    let quiver = TestServer::start(&[]).await;
    // Three series of integer histograms every 10 s for 10 minutes, 3.217 s off the 10 s grid
    // (2.42's windows are closed, Prometheus 3's left-open); "b" resets halfway.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = (now / 10_000 - 61) * 10_000 + 3_217;
    let series: Vec<TimeSeries> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(k, job)| {
            let mut ts = TimeSeries::from_pairs(&[("__name__", "lat_seconds"), ("job", job)], &[]);
            ts.histograms = (0..60i64)
                .map(|i| {
                    // Large counts: 2.42 does not clamp a histogram's extrapolation at the
                    // counter's zero point (Prometheus 3 does), so keep that point far away.
                    let n = if *job == "b" && i >= 30 {
                        i - 30 + 500
                    } else {
                        i + 1000
                    } as u64;
                    let (z, b1, b2, b3) = (n, 2 * n + k as u64, 3 * n, n / 2);
                    Histogram {
                        count: Some(Count::CountInt(z + b1 + b2 + b3)),
                        sum: (0.5 * b1 as f64) + 3.0 * b2 as f64 + 7.0 * b3 as f64,
                        schema: 1,
                        zero_threshold: 0.001,
                        zero_count: Some(ZeroCount::ZeroCountInt(z)),
                        positive_spans: vec![
                            BucketSpan {
                                offset: -1,
                                length: 1,
                            },
                            BucketSpan {
                                offset: 3,
                                length: 2,
                            },
                        ],
                        positive_deltas: vec![
                            b1 as i64,
                            b2 as i64 - b1 as i64,
                            b3 as i64 - b2 as i64,
                        ],
                        timestamp: t0 + i * 10_000,
                        ..Default::default()
                    }
                })
                .collect();
            ts
        })
        .collect();
    let body = encode(&WriteRequest { timeseries: series });
    for base in [&quiver.base, &prom] {
        let (code, text) = post(&format!("{base}/api/v1/write"), body.clone(), &RW_HEADERS).await;
        assert!(code == 204 || code == 200, "{base}: {code} {text}");
    }
    let at = ((t0 + 59 * 10_000) as f64 + 4_000.0) / 1000.0;
    let values = |base: String, q: &'static str| async move {
        let text = client()
            .get(format!("{base}/api/v1/query"))
            .query(&[("query", q.to_string()), ("time", at.to_string())])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut out: Vec<(String, f64)> = v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{base} {q}: {v}"))
            .iter()
            .map(|r| {
                (
                    r["metric"]["job"].as_str().unwrap_or("").to_string(),
                    r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    eventually("Prometheus has the histograms", 30, || async {
        values(prom.clone(), "histogram_count(lat_seconds)")
            .await
            .len()
            == 3
    })
    .await;
    for q in [
        "histogram_count(lat_seconds)",
        "histogram_sum(lat_seconds)",
        "histogram_quantile(0.9, lat_seconds)",
        "histogram_quantile(0.3, lat_seconds)",
        "histogram_fraction(0, 4, lat_seconds)",
        "histogram_count(rate(lat_seconds[2m]))",
        "histogram_sum(increase(lat_seconds[5m]))",
        "histogram_quantile(0.5, rate(lat_seconds[2m]))",
        "histogram_count(delta(lat_seconds[3m]))",
        "histogram_quantile(0.99, sum(rate(lat_seconds[2m])))",
        "histogram_count(sum by (job) (rate(lat_seconds[5m])))",
        // (2.42 has no `avg` of histograms: Prometheus 3 and Quiver do.)
        "histogram_sum(sum(lat_seconds))",
    ] {
        let (ours, theirs) = (
            values(quiver.base.clone(), q).await,
            values(prom.clone(), q).await,
        );
        assert_eq!(ours.len(), theirs.len(), "{q}: {ours:?} vs {theirs:?}");
        assert!(!ours.is_empty(), "{q}: no answer");
        for ((lo, vo), (lt, vt)) in ours.iter().zip(&theirs) {
            assert_eq!(lo, lt, "{q}");
            // Prometheus 3 (and Quiver) interpolate inside an exponential bucket on a log scale,
            // 2.42 linearly (docs/promql-compatibility.md): quantiles and fractions agree to
            // within the interpolation, everything else exactly.
            let interpolated =
                q.starts_with("histogram_quantile") || q.starts_with("histogram_fraction");
            let tolerance = if interpolated { 0.05 } else { 1e-9 };
            let close = (vo - vt).abs() <= tolerance * vo.abs().max(vt.abs()).max(1.0);
            assert!(
                close || (vo.is_nan() && vt.is_nan()),
                "{q} {{job={lo}}}: Quiver {vo}, Prometheus {vt}"
            );
        }
    }
    quiver.stop().await;
    let _ = child.kill();
    let _ = child.wait();
}

/// Prometheus (the Debian package) with its remote-write receiver and native histograms on,
/// on a free loopback port: the process, its URL, and its data folder (kept while it runs).
pub(super) async fn native_histogram_prometheus() -> (std::process::Child, String, tempfile::TempDir)
{
    use std::process::{Command, Stdio};
    let prometheus = which("prometheus").expect("prometheus is on the PATH");
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    std::fs::write(dir.path().join("prom.yml"), "global: {}\n").unwrap();
    let child = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prom.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--enable-feature=native-histograms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_ready(&prom).await;
    (child, prom, dir)
}
