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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_sample() {
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
    let mut rng = Rng(seed);
    let data = tempfile::tempdir().unwrap();
    // series label -> acknowledged (timestamp -> value)
    let mut acked: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut next_t: i64 = 1_000;

    for round in 0..3 {
        // Small blocks and frequent maintenance, so kills also land during head cuts.
        let server = ChildServer::start(
            data.path(),
            &[
                "--storage.tsdb.min-block-duration=1m",
                "--storage.maintenance-interval=200ms",
                "--storage.retention.time=100y",
            ],
        )
        .await;
        let url = format!("{}/api/v1/write", server.base);
        let kill_after = Duration::from_millis(300 + rng.next() % 1200);
        let started = std::time::Instant::now();
        // Writers in flight when the kill lands: their outcome is unknown, so they are not counted.
        let mut in_flight = tokio::task::JoinSet::new();
        while started.elapsed() < kill_after {
            let series: Vec<String> = (0..4)
                .map(|i| format!("s{}", (rng.next() % 20) + i * 100))
                .collect();
            let t = next_t;
            next_t += 15_000;
            let body = write_request(
                &series
                    .iter()
                    .map(|s| {
                        (
                            vec![("__name__", "dur"), ("s", s.as_str())],
                            vec![(t, (t / 1000) as f64 + round as f64)],
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            let url = url.clone();
            in_flight.spawn(async move {
                let ok = matches!(try_post(&url, body, &RW_HEADERS).await, Ok((204, _)));
                (ok, series, t)
            });
            while in_flight.len() > 8 {
                if let Some(Ok((true, series, t))) = in_flight.join_next().await {
                    for s in series {
                        acked
                            .entry(s)
                            .or_default()
                            .insert(t, (t / 1000) as f64 + round as f64);
                    }
                }
            }
        }
        server.kill_9();
        while let Some(r) = in_flight.join_next().await {
            if let Ok((true, series, t)) = r {
                for s in series {
                    acked
                        .entry(s)
                        .or_default()
                        .insert(t, (t / 1000) as f64 + round as f64);
                }
            }
        }
    }

    let server = ChildServer::start(data.path(), &["--storage.retention.time=100y"]).await;
    let got = export(&server.base, "dur").await;
    let got: BTreeMap<String, (Vec<i64>, Vec<f64>)> = got
        .into_iter()
        .map(|(m, t, v)| (m["s"].as_str().unwrap().to_string(), (t, v)))
        .collect();
    let total: usize = acked.values().map(|m| m.len()).sum();
    assert!(total > 0, "some writes were acknowledged");
    for (series, samples) in &acked {
        let (ts, vals) = got
            .get(series)
            .unwrap_or_else(|| panic!("series {series} lost (seed {seed})"));
        let mut stored: BTreeMap<i64, f64> = BTreeMap::new();
        for (t, v) in ts.iter().zip(vals) {
            assert!(
                stored.insert(*t, *v).is_none(),
                "sample {series}@{t} stored twice (seed {seed})"
            );
        }
        for (t, v) in samples {
            assert_eq!(
                stored.get(t),
                Some(v),
                "acknowledged sample {series}@{t} lost (seed {seed})"
            );
        }
    }
    eprintln!("{total} acknowledged samples all present after 3 kills");
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
    let wal = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    segments.sort();
    let last = segments
        .iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 12)
        .unwrap()
        .clone();
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
