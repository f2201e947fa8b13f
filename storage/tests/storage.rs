//! Integration tests of the storage engine through its public API.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use quiver_storage::provider::{SamplesTable, SeriesTable};
use quiver_storage::{Db, LabelLimits, Labels, Matcher, Matchers, Options, WriteBatch};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn options(&self) -> Options {
        let blocks = self.dir.path().join("blocks");
        std::fs::create_dir_all(&blocks).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(
            LocalFileSystem::new_with_prefix(&blocks)
                .unwrap()
                .with_automatic_cleanup(true),
        );
        let mut o = Options::new(self.dir.path().join("wal"), store);
        o.retention_ms = i64::MAX / 4;
        o
    }

    async fn open(&self) -> Arc<Db> {
        Db::open(self.options()).await.unwrap()
    }
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut all = vec![("__name__", name)];
    all.extend_from_slice(pairs);
    Labels::try_from_pairs(all, &LabelLimits::default()).unwrap()
}

/// `n` samples each for `series` series of metric `name`, 15 s apart from `t0`.
fn batch(name: &str, series: usize, n: usize, t0: i64) -> WriteBatch {
    let mut b = WriteBatch::default();
    for s in 0..series {
        let idx = b.push_series(labels(name, &[("gpu", &s.to_string())]));
        for i in 0..n {
            b.push_sample(idx, t0 + i as i64 * 15_000, (s * 1000 + i) as f64);
        }
    }
    b
}

fn select(name: &str) -> Matchers {
    Matchers(vec![Matcher::equal("__name__", name)])
}

async fn all_samples(db: &Db, name: &str) -> Vec<(String, Vec<i64>, Vec<f64>)> {
    let series = db.series(&select(name), i64::MIN, i64::MAX);
    let ids: Vec<_> = series.iter().map(|(id, _)| *id).collect();
    let data = db.read(&ids, i64::MIN, i64::MAX).await.unwrap();
    data.into_iter()
        .map(|s| (db.labels(s.id).unwrap().to_string(), s.timestamps, s.values))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_samples_are_readable_at_once_and_after_restart() {
    let f = Fixture::new();
    let db = f.open().await;
    db.append(batch("gpu_util", 3, 10, 1_000_000))
        .await
        .unwrap();
    let before = all_samples(&db, "gpu_util").await;
    assert_eq!(before.len(), 3);
    assert_eq!(before[0].1.len(), 10);
    db.close().await;
    drop(db);

    let db = f.open().await;
    assert_eq!(all_samples(&db, "gpu_util").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_blocks_serve_the_same_samples_and_survive_restart() {
    let f = Fixture::new();
    let db = f.open().await;
    // Four hours: the flush cuts two aligned 2 h blocks at least.
    db.append(batch("gpu_temp", 5, 4 * 240, 0)).await.unwrap();
    let before = all_samples(&db, "gpu_temp").await;
    let written = db.flush().await.unwrap();
    assert!(written >= 2, "wrote {written} blocks");
    assert_eq!(db.head_stats().num_samples, 0);
    assert_eq!(all_samples(&db, "gpu_temp").await, before);
    db.close().await;
    drop(db);

    let db = f.open().await;
    assert_eq!(all_samples(&db, "gpu_temp").await, before);
    assert_eq!(db.series(&select("gpu_temp"), i64::MIN, i64::MAX).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_writes_win_across_head_blocks_and_compaction() {
    let f = Fixture::new();
    let db = f.open().await;
    db.append(batch("m", 1, 4, 0)).await.unwrap(); // t = 0, 15 s, 30 s, 45 s: values 0..3
    db.flush().await.unwrap();
    // Overwrite t = 15 s in the head: the head wins over the block.
    let mut b = WriteBatch::default();
    let idx = b.push_series(labels("m", &[("gpu", "0")]));
    b.push_sample(idx, 15_000, 100.0);
    db.append(b).await.unwrap();
    assert_eq!(all_samples(&db, "m").await[0].2, [0.0, 100.0, 2.0, 3.0]);
    // Flush again (a second, newer block in the same window), then compact into one.
    db.flush().await.unwrap();
    assert_eq!(db.block_stats().len(), 2);
    assert_eq!(all_samples(&db, "m").await[0].2, [0.0, 100.0, 2.0, 3.0]);
    let merged = db.compact(i64::MAX / 2).await.unwrap();
    assert_eq!(merged, 2);
    let blocks = db.block_stats();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].num_samples, 4);
    assert_eq!(all_samples(&db, "m").await[0].2, [0.0, 100.0, 2.0, 3.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_samples_are_accepted() {
    let f = Fixture::new();
    let db = f.open().await;
    let mut b = WriteBatch::default();
    let idx = b.push_series(labels("late", &[]));
    for t in [50_000, 10_000, 30_000, 20_000] {
        b.push_sample(idx, t, t as f64);
    }
    db.append(b).await.unwrap();
    assert_eq!(
        all_samples(&db, "late").await[0].1,
        [10_000, 20_000, 30_000, 50_000]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_block_write_leaves_no_trace() {
    let f = Fixture::new();
    let db = f.open().await;
    db.append(batch("m", 2, 10, 0)).await.unwrap();
    db.close().await;
    drop(db);
    // A crash after a block's files were put but before the manifest named them.
    let orphan = f.dir.path().join("blocks").join("b000000000099");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("samples.parquet"), b"half a file").unwrap();

    let db = f.open().await;
    assert!(
        !orphan.exists(),
        "the orphaned block folder was deleted at open"
    );
    assert!(db.block_stats().is_empty());
    assert_eq!(
        all_samples(&db, "m").await.len(),
        2,
        "the samples are still in the WAL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_blocks_and_forgets_their_series() {
    let f = Fixture::new();
    let mut o = f.options();
    o.retention_ms = 3_600_000;
    let db = Db::open(o).await.unwrap();
    db.append(batch("old", 2, 10, 0)).await.unwrap();
    db.flush().await.unwrap();
    db.append(batch("new", 1, 10, 10 * 3_600_000))
        .await
        .unwrap();
    let (deleted, forgotten) = db.apply_retention(10 * 3_600_000).await.unwrap();
    assert_eq!((deleted, forgotten), (1, 2));
    assert!(db.series(&select("old"), i64::MIN, i64::MAX).is_empty());
    assert_eq!(db.series(&select("new"), i64::MIN, i64::MAX).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_ids_are_trusted_only_while_no_series_was_removed() {
    let f = Fixture::new();
    let mut o = f.options();
    o.retention_ms = 3_600_000;
    let db = Db::open(o).await.unwrap();
    db.append(batch("old", 1, 10, 0)).await.unwrap();
    let old = db.registry().get(&labels("old", &[("gpu", "0")])).unwrap();
    let removals = db.series_removals();
    // Trusted: nothing was removed since the id was resolved.
    let mut b = WriteBatch::default();
    b.ids_valid_at(removals);
    let i = b.push_known(old);
    b.push_sample(i, 200_000, 1.0);
    db.append(b).await.unwrap();
    db.flush().await.unwrap();
    db.append(batch("new", 1, 10, 10 * 3_600_000))
        .await
        .unwrap();
    db.apply_retention(10 * 3_600_000).await.unwrap();
    assert_eq!(db.series_removals(), removals + 1);
    // The same claim is stale now: the id is checked and found gone, so the sender retries.
    let mut b = WriteBatch::default();
    b.ids_valid_at(removals);
    let i = b.push_known(old);
    b.push_sample(i, 10 * 3_600_000, 1.0);
    assert!(matches!(
        db.append(b).await,
        Err(quiver_storage::Error::Retry(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_the_samples_table_pushes_filters_and_unions_head_and_blocks() {
    let f = Fixture::new();
    let db = f.open().await;
    db.append(batch("a", 2, 8, 0)).await.unwrap();
    db.flush().await.unwrap();
    db.append(batch("a", 2, 4, 8 * 15_000)).await.unwrap();
    db.append(batch("b", 1, 3, 0)).await.unwrap();

    let ctx = SessionContext::new();
    ctx.register_table("samples", Arc::new(SamplesTable::new(db.clone())))
        .unwrap();
    ctx.register_table("series", Arc::new(SeriesTable::new(db.clone())))
        .unwrap();
    let count = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            let col = batches[0].column(0);
            datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(col).value(0)
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE metric = 'a'").await,
        2 * 12
    );
    assert_eq!(count("SELECT count(*) FROM samples").await, 2 * 12 + 3);
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE metric = 'a' AND timestamp >= to_timestamp_millis(60000) AND timestamp < to_timestamp_millis(120000)").await,
        2 * 4
    );
    assert_eq!(
        count("SELECT count(*) FROM series WHERE labels['gpu'] = '1'").await,
        1
    );
    // Without the metric column (built only when asked for), filtered by ids.
    assert_eq!(
        count("SELECT count(*) FROM samples WHERE series_id IN (0, 1) AND value >= 0").await,
        2 * 12
    );
    assert_eq!(
        count("SELECT count(*) FROM (SELECT series_id, timestamp FROM samples ORDER BY series_id, timestamp)").await,
        2 * 12 + 3
    );

    // A session's row budget stops a scan that would read more.
    let limited =
        SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_extension(
            Arc::new(quiver_storage::provider::ScanBudget {
                max_rows: 10,
                message: "too many rows".into(),
            }),
        ));
    limited
        .register_table("samples", Arc::new(SamplesTable::new(db.clone())))
        .unwrap();
    let err = limited
        .sql("SELECT count(*) FROM samples")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too many rows"), "{err}");
    let ok = limited
        .sql("SELECT count(*) FROM samples WHERE metric = 'b'")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(ok.is_ok(), "3 rows fit the budget");

    // The plan shows the pushed filter and needs no sort for the declared order.
    let plan = ctx
        .sql("EXPLAIN SELECT * FROM samples WHERE metric = 'a' ORDER BY metric, series_id, timestamp")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(!text.contains("SortExec"), "{text}");
}
