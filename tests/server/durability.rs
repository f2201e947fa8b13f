//! Durability: every acknowledged sample survives `kill -9` at any moment, exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::support::*;

/// A small deterministic generator (xorshift), seeded from the clock and printed, so a failing
/// run can be repeated with `QUIVER_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Acknowledged samples: series label -> (timestamp -> value).
type Acked = BTreeMap<String, BTreeMap<i64, f64>>;

/// The seed of this run: `QUIVER_TEST_SEED`, or the clock (printed, to repeat a failure).
fn seed() -> u64 {
    let seed = std::env::var("QUIVER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("QUIVER_TEST_SEED={seed}");
    seed
}

/// One remote write of sample `(t, v)` to each series `{__name__=metric, s=<name>}`.
fn write_of(metric: &str, series: &[String], t: i64, v: f64) -> Vec<u8> {
    write_request(
        &series
            .iter()
            .map(|s| (vec![("__name__", metric), ("s", s.as_str())], vec![(t, v)]))
            .collect::<Vec<_>>(),
    )
}

/// Checks that every acknowledged sample of `metric` is stored, exactly once.
async fn assert_all_acked_present(base: &str, metric: &str, acked: &Acked, context: &str) {
    let got: BTreeMap<String, (Vec<i64>, Vec<f64>)> = export(base, metric)
        .await
        .into_iter()
        .map(|(m, t, v)| (m["s"].as_str().unwrap().to_string(), (t, v)))
        .collect();
    for (series, samples) in acked {
        let (ts, vals) = got
            .get(series)
            .unwrap_or_else(|| panic!("series {series} lost ({context})"));
        let mut stored: BTreeMap<i64, f64> = BTreeMap::new();
        for (t, v) in ts.iter().zip(vals) {
            assert!(
                stored.insert(*t, *v).is_none(),
                "sample {series}@{t} stored twice ({context})"
            );
        }
        for (t, v) in samples {
            assert_eq!(
                stored.get(t),
                Some(v),
                "acknowledged sample {series}@{t} lost ({context})"
            );
        }
    }
}

/// Writes a configuration that scrapes the server's own `/metrics` on `port` and evaluates one
/// recording rule over the test's metric, both every 200 ms; answers the `--config.file` flag.
fn busy_config(dir: &std::path::Path, port: u16) -> String {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n- name: dur\n  interval: 200ms\n  rules:\n  - record: dur:count\n    expr: count(dur)\n",
    )
    .unwrap();
    let config = dir.join("quiver.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 200ms\n  evaluation_interval: 200ms\n\
             rule_files: ['rules.yml']\n\
             scrape_configs:\n- job_name: self\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    format!("--config.file={}", config.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_sample() {
    let seed = seed();
    let mut rng = Rng(seed);
    let data = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let mut acked: Acked = BTreeMap::new();
    let mut next_t: i64 = 1_000;
    let test_started = std::time::Instant::now();
    let mut kills = 0;

    // Rounds until the time is spent: the whole test stays under a minute.
    for round in 0.. {
        if test_started.elapsed() > Duration::from_secs(35) {
            break;
        }
        let port = free_port();
        let config = busy_config(config_dir.path(), port);
        // Small blocks and frequent maintenance, so kills also land during head cuts and
        // compactions; the self-scrape and the rule write beside the test's writers.
        let flags = [
            "--storage.tsdb.min-block-duration=1m",
            "--storage.maintenance-interval=200ms",
            "--storage.retention.time=100y",
            config.as_str(),
        ];
        if rng.next().is_multiple_of(5) {
            // Killed while it opens: replaying the WAL, deleting orphans, moving damage aside.
            let server = ChildServer::spawn_on(data.path(), port, &flags);
            tokio::time::sleep(Duration::from_millis(rng.next() % 150)).await;
            server.kill_9();
            kills += 1;
            continue;
        }
        let server = ChildServer::start_on(data.path(), port, &flags).await;
        assert_all_acked_present(
            &server.base,
            "dur",
            &acked,
            &format!("after {kills} kills, seed {seed}"),
        )
        .await;
        let url = format!("{}/api/v1/write", server.base);
        let kill_after = Duration::from_millis(100 + rng.next() % 1200);
        let started = std::time::Instant::now();
        // Writers in flight when the kill lands: their outcome is unknown, so they are not counted.
        let mut in_flight = tokio::task::JoinSet::new();
        let value = |t: i64| (t / 1000) as f64 + round as f64;
        while started.elapsed() < kill_after {
            let series: Vec<String> = (0..4)
                .map(|i| format!("s{}", (rng.next() % 20) + i * 100))
                .collect();
            let t = next_t;
            next_t += 15_000;
            let body = write_of("dur", &series, t, value(t));
            let url = url.clone();
            in_flight.spawn(async move {
                let ok = matches!(try_post(&url, body, &RW_HEADERS).await, Ok((204, _)));
                (ok, series, t)
            });
            while in_flight.len() > 8 {
                if let Some(Ok((true, series, t))) = in_flight.join_next().await {
                    for s in series {
                        acked.entry(s).or_default().insert(t, value(t));
                    }
                }
            }
        }
        server.kill_9();
        kills += 1;
        while let Some(r) = in_flight.join_next().await {
            if let Ok((true, series, t)) = r {
                for s in series {
                    acked.entry(s).or_default().insert(t, value(t));
                }
            }
        }
    }

    let server = ChildServer::start(data.path(), &["--storage.retention.time=100y"]).await;
    let total: usize = acked.values().map(|m| m.len()).sum();
    assert!(total > 0, "some writes were acknowledged");
    assert!(kills >= 10, "only {kills} kills");
    assert_all_acked_present(
        &server.base,
        "dur",
        &acked,
        &format!("at the end, seed {seed}"),
    )
    .await;
    eprintln!("{total} acknowledged samples all present after {kills} kills");
}

/// The WAL segments of the data folder `data` that hold records (more than a header), in order.
fn segments_with_records(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 12)
        .collect();
    segments.sort();
    segments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_wal_tail_is_cut_at_restart_and_earlier_samples_survive() {
    let s = TestServer::start(&[]).await;
    for t in 1..=3 {
        let body = write_request(&[(vec![("__name__", "torn")], vec![(t * 1_000, t as f64)])]);
        assert_eq!(
            post(&s.url("/api/v1/write"), body, &RW_HEADERS).await.0,
            204
        );
    }
    let dir = s.stop().await;
    // A crash in the middle of a record: a frame that announces more bytes than follow.
    let last = segments_with_records(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 1, 2]);
    std::fs::write(&last, bytes).unwrap();

    let s = TestServer::start_in(dir, &[]).await;
    let got = export(&s.base, "torn").await;
    assert_eq!(got[0].1, [1_000, 2_000, 3_000]);
    let text = get_text(&s.url("/metrics")).await;
    assert!(text.contains("quiver_wal_truncations_total 1"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_wal_segment_is_moved_aside_and_the_samples_around_the_damage_survive() {
    let s = TestServer::start(&[]).await;
    let write = |t: i64| write_request(&[(vec![("__name__", "bad")], vec![(t, t as f64)])]);
    for t in [1_000, 2_000] {
        assert_eq!(
            post(&s.url("/api/v1/write"), write(t), &RW_HEADERS).await.0,
            204
        );
    }
    let dir = s.stop().await;
    // A later segment with a sample of its own.
    let s = TestServer::start_in(dir, &[]).await;
    assert_eq!(
        post(&s.url("/api/v1/write"), write(3_000), &RW_HEADERS)
            .await
            .0,
        204
    );
    let dir = s.stop().await;
    // Damage the second record of the first segment holding records.
    let first = segments_with_records(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();

    let s = TestServer::start_in(dir, &[]).await;
    let got = export(&s.base, "bad").await;
    assert_eq!(
        got[0].1,
        [1_000, 3_000],
        "the sample before the damage and the later one"
    );
    let text = get_text(&s.url("/metrics")).await;
    assert!(
        text.contains("quiver_wal_corrupt_segments_total 1"),
        "{text}"
    );
    let aside: Vec<_> = std::fs::read_dir(s.dir.path().join("wal"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .map(|e| e.path())
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged segment is kept for an operator"
    );
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bytes);
    s.stop().await;
}

/// A tmpfs of a few MiB mounted on a temporary folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Tmpfs { dir },
            Ok(o) => panic!(
                "this test needs root to mount a tmpfs at {}: {}",
                dir.path().display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("this test needs `mount` (and root): {e}"),
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    // The last partial chunk may have taken the last bytes; a flush error is expected.
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs root to mount a tmpfs"]
async fn a_full_disk_refuses_writes_with_503_keeps_answering_queries_and_loses_nothing() {
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("data");
    let flags = ["--storage.retention.time=100y", "--web.enable-admin-api"];
    let server = ChildServer::start(&data, &flags).await;
    let url = format!("{}/api/v1/write", server.base);
    let series = ["a".to_string(), "b".to_string()];
    let mut acked: Acked = BTreeMap::new();
    let mut t = 1_000;
    let send = async |t: i64, acked: &mut Acked| {
        let (code, body) = post(&url, write_of("full", &series, t, t as f64), &RW_HEADERS).await;
        if code == 204 {
            for s in &series {
                acked.entry(s.clone()).or_default().insert(t, t as f64);
            }
        }
        (code, body)
    };
    for _ in 0..20 {
        assert_eq!(send(t, &mut acked).await.0, 204);
        t += 1_000;
    }

    let filler = fs.path().join("filler");
    fill(&filler);
    // Writes land in the WAL's last page until it is full too; then they are refused.
    let mut refused = None;
    for _ in 0..10_000 {
        let (code, body) = send(t, &mut acked).await;
        t += 1_000;
        match code {
            204 => continue,
            503 => {
                refused = Some(body);
                break;
            }
            _ => panic!("a write on a full disk answered {code}: {body}"),
        }
    }
    let body = refused.expect("no write was refused on a full disk");
    assert!(body.contains("\"unavailable\""), "{body}");
    for _ in 0..5 {
        assert_eq!(send(t, &mut acked).await.0, 503, "the disk is still full");
        t += 1_000;
    }
    // Queries go on: everything acknowledged so far is there.
    assert_all_acked_present(&server.base, "full", &acked, "while the disk is full").await;
    // A head cut cannot start a WAL segment or write blocks now; it fails, breaking nothing.
    let (code, body) = post(&format!("{}/api/v1/admin/flush", server.base), vec![], &[]).await;
    assert!(
        code >= 500,
        "a head cut on a full disk answered {code}: {body}"
    );

    std::fs::remove_file(&filler).unwrap();
    for _ in 0..20 {
        let (code, body) = send(t, &mut acked).await;
        assert_eq!(code, 204, "writes resume once there is space again: {body}");
        t += 1_000;
    }
    let (code, body) = post(&format!("{}/api/v1/admin/flush", server.base), vec![], &[]).await;
    assert!(code < 300, "a head cut works again: {code} {body}");
    assert_eq!(send(t, &mut acked).await.0, 204);
    server.kill_9();

    let server = ChildServer::start(&data, &flags).await;
    assert_all_acked_present(&server.base, "full", &acked, "after the restart").await;
    let total: usize = acked.values().map(|m| m.len()).sum();
    eprintln!("{total} acknowledged samples all present after the disk was full");
    drop(server);
}

#[test]
fn the_server_tells_the_storage_when_its_block_store_is_a_local_folder() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let options = |extra: &[String]| {
        let mut args = vec![
            "quiver".to_string(),
            format!("--storage.path={}", dir.path().display()),
        ];
        args.extend_from_slice(extra);
        quiver::storage_options(&quiver::config::Flags::parse_from(args)).unwrap()
    };
    // Local folders get their writes synced by the storage itself; remote stores do not.
    assert_eq!(
        options(&[]).local_block_dir,
        Some(dir.path().join("blocks"))
    );
    let elsewhere = dir.path().join("elsewhere");
    let url = format!("--storage.object-store.url=file://{}", elsewhere.display());
    assert_eq!(options(&[url]).local_block_dir, Some(elsewhere));
    let url = "--storage.object-store.url=memory:///".to_string();
    assert_eq!(options(&[url]).local_block_dir, None);
}
