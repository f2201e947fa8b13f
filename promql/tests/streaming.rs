//! `agg by (…) (range_fn(…))` and `agg by (…) (selector)` gather inside the range or
//! selector node; the same query with the aggregation kept apart (`… + 0` stops the fusion)
//! goes through DataFusion's Aggregate. Both must answer the same on irregular data with
//! gaps, resets and NaNs, over ranges and at single instants (where a selector reads only
//! each series' newest sample).

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use quiver_promql::{Engine, EngineOptions, Value};
use quiver_storage::{Db, Labels, Options, WriteBatch};

async fn engine_with_data() -> (tempfile::TempDir, Arc<Db>, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path().join("wal"), Arc::new(InMemory::new()));
    opts.retention_ms = i64::MAX / 4;
    let db = Db::open(opts).await.unwrap();
    let mut batch = WriteBatch::default();
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    for s in 0..12 {
        let group = format!("g{}", s % 3);
        let inst = format!("i{s}");
        let labels = Labels::from_validated(&[("__name__", "c"), ("g", &group), ("inst", &inst)]);
        let idx = batch.push_series(labels);
        let mut v = 0.0;
        for i in 0..200i64 {
            if next() < 0.1 {
                continue; // a missed scrape
            }
            v += (next() * 10.0).floor();
            if next() < 0.02 {
                v = 0.0; // a counter reset
            }
            let value = if next() < 0.01 { f64::NAN } else { v };
            batch.push_sample(idx, i * 15_000 + 1_234 + s * 100, value);
        }
    }
    db.append(batch).await.unwrap();
    let engine = Engine::new(
        db.clone(),
        EngineOptions {
            lookback: Duration::from_secs(300),
            subquery_step: Duration::from_secs(60),
            max_samples: 10_000_000,
            timeout: Duration::from_secs(60),
            ..EngineOptions::default()
        },
    );
    (dir, db, engine)
}

fn points(v: Value) -> Vec<(quiver_promql::LabelPairs, Vec<(i64, f64)>)> {
    match v {
        Value::Matrix(m) => m.into_iter().map(|s| (s.labels, s.points)).collect(),
        other => panic!("expected a matrix, got {other:?}"),
    }
}

fn assert_same(
    query: &str,
    a: Vec<(quiver_promql::LabelPairs, Vec<(i64, f64)>)>,
    b: Vec<(quiver_promql::LabelPairs, Vec<(i64, f64)>)>,
) {
    assert_eq!(a.len(), b.len(), "{query}");
    assert!(!a.is_empty(), "{query} answers something");
    for ((la, pa), (lb, pb)) in a.iter().zip(&b) {
        assert_eq!(la, lb, "{query}");
        assert_eq!(pa.len(), pb.len(), "{query} {la:?}");
        for (x, y) in pa.iter().zip(pb) {
            let same = x.0 == y.0
                && ((x.1.is_nan() && y.1.is_nan())
                    || (x.1 - y.1).abs() <= 1e-9 * x.1.abs().max(1.0));
            assert!(same, "{query} {la:?}: {x:?} vs {y:?}");
        }
    }
}

fn instant_points(v: Value) -> Vec<(quiver_promql::LabelPairs, Vec<(i64, f64)>)> {
    match v {
        Value::Vector(s) => s
            .into_iter()
            .map(|s| (s.labels, vec![(s.t, s.v)]))
            .collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_aggregations_match_the_general_aggregate() {
    let (_dir, db, engine) = engine_with_data().await;
    let aggs = [
        "sum", "min", "max", "count", "group", "avg", "stddev", "stdvar", "quantile",
    ];
    for agg in aggs {
        for f in [
            "rate(c[5m])",
            "max_over_time(c[2m])",
            "increase(c[10m])",
            "changes(c[5m])",
            "c",
            "c offset 2m",
            "c @ 1500",
        ] {
            for by in ["by (g)", "without (inst)", ""] {
                let param = if agg == "quantile" { "0.3, " } else { "" };
                let fused = format!("{agg} {by} ({param}{f})");
                let general = format!("{agg} {by} ({param}{f} + 0)");
                let a = points(engine.range(&fused, 0, 3_000_000, 30_000).await.unwrap());
                let b = points(engine.range(&general, 0, 3_000_000, 30_000).await.unwrap());
                assert_same(&fused, a, b);
                for t in [600_000, 1_234_567, 2_985_000] {
                    let a = instant_points(engine.instant(&fused, t).await.unwrap());
                    let b = instant_points(engine.instant(&general, t).await.unwrap());
                    assert_same(&format!("{fused} at {t}"), a.clone(), b);
                    // The step at `t` of a two-step range query, which reads every sample of
                    // the window rather than each series' newest.
                    let c: Vec<_> =
                        points(engine.range(&general, t - 30_000, t, 30_000).await.unwrap())
                            .into_iter()
                            .filter_map(|(l, p)| {
                                let p: Vec<_> = p.into_iter().filter(|p| p.0 == t).collect();
                                (!p.is_empty()).then_some((l, p))
                            })
                            .collect();
                    assert_same(&format!("{fused} at {t} (full read)"), a, c);
                }
            }
        }
    }
    db.close().await;
}

/// Selections are kept between queries (rules run the same selectors every interval); a
/// series created after a query must still be seen by the next one.
#[tokio::test]
async fn a_series_created_after_a_query_is_selected_by_the_next() {
    let (_dir, db, engine) = engine_with_data().await;
    let t = 199 * 15_000 + 5_000;
    let count = |v: Value| match v {
        Value::Vector(s) => s.first().map(|s| s.v),
        other => panic!("expected a vector, got {other:?}"),
    };
    assert_eq!(
        count(engine.instant("count(c)", t).await.unwrap()),
        Some(12.0)
    );
    let mut batch = WriteBatch::default();
    let labels = Labels::from_validated(&[("__name__", "c"), ("g", "new"), ("inst", "x")]);
    let idx = batch.push_series(labels);
    batch.push_sample(idx, t - 1_000, 1.0);
    db.append(batch).await.unwrap();
    assert_eq!(
        count(engine.instant("count(c)", t).await.unwrap()),
        Some(13.0)
    );
    assert_eq!(
        count(engine.instant("count(c{g=\"new\"})", t).await.unwrap()),
        Some(1.0)
    );
    // Selections without a metric name see series of any metric that come later.
    assert_eq!(
        count(engine.instant("count({g=\"new\"})", t).await.unwrap()),
        Some(1.0)
    );
    let mut batch = WriteBatch::default();
    let labels = Labels::from_validated(&[("__name__", "d"), ("g", "new"), ("inst", "y")]);
    let idx = batch.push_series(labels);
    batch.push_sample(idx, t - 1_000, 1.0);
    db.append(batch).await.unwrap();
    assert_eq!(
        count(engine.instant("count({g=\"new\"})", t).await.unwrap()),
        Some(2.0)
    );
    assert_eq!(
        count(engine.instant("count(c)", t).await.unwrap()),
        Some(13.0)
    );
}
