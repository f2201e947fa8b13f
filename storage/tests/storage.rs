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
        o.local_block_dir = Some(blocks);
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

/// `read_newest` against the last sample of `read`, over windows that fall in the head, in a
/// block, across both, and before any sample.
async fn assert_newest_is_last_read(db: &Db, name: &str) {
    let series = db.series(&select(name), i64::MIN, i64::MAX);
    let ids: Vec<_> = series.iter().map(|(id, _)| *id).collect();
    for (mint, maxt) in [
        (0, 60_000),
        (20_000, 44_999),
        (7_000_000, 7_300_000),
        (7_190_000, 7_215_000),
        (14_000_000, 14_500_000),
        (-50_000, -1),
    ] {
        let want: Vec<_> = db
            .read(&ids, mint, maxt)
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.id,
                    *s.timestamps.last().unwrap(),
                    *s.values.last().unwrap(),
                )
            })
            .collect();
        let got: Vec<_> = db
            .read_newest(&ids, mint, maxt)
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                assert_eq!(s.timestamps.len(), 1);
                (s.id, s.timestamps[0], s.values[0])
            })
            .collect();
        assert_eq!(got, want, "[{mint}, {maxt}]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_sample_read_agrees_with_the_full_read_in_head_and_blocks() {
    let f = Fixture::new();
    let db = f.open().await;
    // Four hours in the head.
    db.append(batch("m", 3, 4 * 240, 0)).await.unwrap();
    assert_newest_is_last_read(&db, "m").await;
    // Cut into blocks, then newer samples and a late overwrite inside a block's window in
    // the head: the head wins on equal times.
    db.flush().await.unwrap();
    assert!(!db.block_stats().is_empty());
    assert_newest_is_last_read(&db, "m").await;
    db.append(batch("m", 3, 40, 4 * 240 * 15_000))
        .await
        .unwrap();
    let mut b = WriteBatch::default();
    let idx = b.push_series(labels("m", &[("gpu", "1")]));
    b.push_sample(idx, 7_200_000, -1.0);
    b.push_sample(idx, 45_000, -2.0);
    db.append(b).await.unwrap();
    assert_newest_is_last_read(&db, "m").await;
    let newest = db
        .read_newest(&[db.series(&select("m"), 0, 0)[1].0], 0, 45_000)
        .await
        .unwrap();
    assert_eq!(newest[0].values, [-2.0], "the head's overwrite wins");
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

/// A store whose series `m` (2 series, 10 samples each) was flushed into one block, closed.
async fn closed_store_with_one_block() -> Fixture {
    let f = Fixture::new();
    let db = f.open().await;
    db.append(batch("m", 2, 10, 0)).await.unwrap();
    db.flush().await.unwrap();
    db.close().await;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_cleanup_deletes_only_what_quiver_writes() {
    let f = closed_store_with_one_block().await;
    let blocks = f.dir.path().join("blocks");
    let put = |rel: &str| {
        let path = blocks.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"x").unwrap();
        path
    };
    // Left by a crash: a block nothing names (one file half staged), a staged manifest.
    let orphan = put("b000000000099/samples.parquet");
    put("b000000000099/series.parquet#1");
    let staged_manifest = put("manifest.json#3");
    // Put there by someone else: folders and files whose names only look like Quiver's.
    let theirs = [
        put("backup/notes.txt"),
        put("b-mine/samples.parquet"),
        put("b00000000009/samples.parquet"),
        put("bin/tool"),
        put("b000000000098.parquet"),
        put("manifest.json.bak"),
        put("manifest.json#old"),
    ];

    let db = f.open().await;
    assert!(
        !orphan.parent().unwrap().exists(),
        "the orphaned block folder is gone, staged file and all"
    );
    assert!(!staged_manifest.exists(), "the staged manifest is gone");
    for path in &theirs {
        assert!(path.exists(), "{} was deleted", path.display());
    }
    assert_eq!(block_dirs(&f).len(), 5, "{:?}", block_dirs(&f));
    assert_eq!(all_samples(&db, "m").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_manifest_next_to_blocks_refuses_the_open_and_deletes_nothing() {
    let f = closed_store_with_one_block().await;
    let manifest = f.dir.path().join("blocks").join("manifest.json");
    std::fs::remove_file(&manifest).unwrap();
    let before = block_dirs(&f);
    assert_eq!(before.len(), 1);

    let err = Db::open(f.options()).await.unwrap_err().to_string();
    assert!(err.contains(&manifest.display().to_string()), "{err}");
    assert!(err.contains("missing") && err.contains("Restore"), "{err}");
    assert_eq!(block_dirs(&f), before, "no block was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_manifest_refuses_the_open_with_its_path() {
    let f = closed_store_with_one_block().await;
    let manifest = f.dir.path().join("blocks").join("manifest.json");
    std::fs::write(&manifest, b"{not json").unwrap();

    let err = Db::open(f.options()).await.unwrap_err().to_string();
    assert!(err.contains(&manifest.display().to_string()), "{err}");
    assert!(err.contains("cannot be read"), "{err}");
    assert_eq!(block_dirs(&f).len(), 1, "no block was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_store_gets_its_manifest_at_open() {
    let f = Fixture::new();
    let db = f.open().await;
    // From now on a missing manifest can only mean damage, not a first flush cut short.
    assert!(f.dir.path().join("blocks").join("manifest.json").exists());
    db.close().await;
    drop(db);
    f.open().await;
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

/// Every sample of metric `name` as SQL answers it: (series id, timestamp ms, value bits).
async fn sql_rows(ctx: &SessionContext, name: &str) -> Vec<(u64, i64, u64)> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
    let q = format!(
        "SELECT series_id, CAST(timestamp AS BIGINT), value FROM samples WHERE metric = '{name}'"
    );
    let mut out = Vec::new();
    for b in ctx.sql(&q).await.unwrap().collect().await.unwrap() {
        let (ids, ts, vs) = (
            b.column(0).as_primitive::<UInt64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            out.push((ids.value(i), ts.value(i), vs.value(i).to_bits()));
        }
    }
    out.sort();
    out
}

/// The same samples through `Db::read` (the merging read PromQL uses).
async fn read_rows(db: &Db, name: &str) -> Vec<(u64, i64, u64)> {
    let series = db.series(&select(name), i64::MIN, i64::MAX);
    let ids: Vec<_> = series.iter().map(|(id, _)| *id).collect();
    let mut out: Vec<(u64, i64, u64)> = db
        .read(&ids, i64::MIN, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|s| {
            let id = s.id.0;
            s.timestamps
                .into_iter()
                .zip(s.values)
                .map(move |(t, v)| (id, t, v.to_bits()))
        })
        .collect();
    out.sort();
    out
}

async fn plan_text(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_read_lone_blocks_from_their_files_and_merge_where_sources_overlap() {
    let f = Fixture::new();
    let db = f.open().await;
    // Two 2 h windows, one block each; decimals and full-precision values.
    for (w, t0) in [0, 7_200_000].into_iter().enumerate() {
        let mut b = batch("a", 3, 480, t0);
        let idx = b.push_series(labels("ratio", &[("w", &w.to_string())]));
        for i in 0..480 {
            b.push_sample(idx, t0 + i * 15_000, (i as f64 + 0.5) / 7.0);
        }
        db.append(b).await.unwrap();
        db.flush().await.unwrap();
    }
    let ctx = SessionContext::new();
    ctx.register_table("samples", Arc::new(SamplesTable::new(db.clone())))
        .unwrap();
    let all = "SELECT * FROM samples";
    assert!(
        plan_text(&ctx, all)
            .await
            .contains("BlockScanExec: blocks=2"),
        "{}",
        plan_text(&ctx, all).await
    );
    for name in ["a", "ratio"] {
        let read = read_rows(&db, name).await;
        assert_eq!(read.len(), if name == "a" { 2 * 3 * 480 } else { 960 });
        assert_eq!(sql_rows(&ctx, name).await, read, "{name}");
    }

    // A late sample in the first window: the head now overlaps that block, so that stretch
    // is merged (the head's value wins, once) and only the second block is read directly.
    let mut b = WriteBatch::default();
    let idx = b.push_series(labels("a", &[("gpu", "0")]));
    b.push_sample(idx, 15_000, 999.0);
    db.append(b).await.unwrap();
    assert!(
        plan_text(&ctx, all)
            .await
            .contains("BlockScanExec: blocks=1")
    );
    let rows = sql_rows(&ctx, "a").await;
    assert_eq!(rows, read_rows(&db, "a").await);
    assert_eq!(rows.len(), 2 * 3 * 480);
    let at_15s: Vec<_> = rows.iter().filter(|r| r.1 == 15_000).collect();
    assert_eq!(at_15s.len(), 3);
    assert!(at_15s.iter().any(|r| f64::from_bits(r.2) == 999.0));
    // Filters still narrow (and are applied exactly above the scan).
    let count = ctx
        .sql("SELECT count(*) FROM samples WHERE metric = 'ratio' AND timestamp >= to_timestamp_millis(7200000) AND timestamp < to_timestamp_millis(7230000)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = datafusion::arrow::array::AsArray::as_primitive::<
        datafusion::arrow::datatypes::Int64Type,
    >(count[0].column(0))
    .value(0);
    assert_eq!(n, 2);

    // A scan planned before a compaction replaces its blocks still reads them: the files
    // stay until no plan holds them, and go at the next maintenance run after.
    db.flush().await.unwrap();
    let df = ctx
        .sql("SELECT count(*), sum(value) FROM samples WHERE value > -1")
        .await
        .unwrap();
    let plan = df.clone().create_physical_plan().await.unwrap();
    let before: Vec<String> = block_dirs(&f);
    assert!(db.compact(i64::MAX / 2).await.unwrap() >= 2);
    let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx())
        .await
        .unwrap();
    let n = datafusion::arrow::array::AsArray::as_primitive::<
        datafusion::arrow::datatypes::Int64Type,
    >(batches[0].column(0))
    .value(0);
    assert_eq!(n, 2 * 3 * 480 + 960);
    db.maintain(false).await.unwrap();
    let after = block_dirs(&f);
    assert_eq!(after.len(), 1, "{before:?} -> {after:?}");
    assert!(!before.contains(&after[0]));
    assert_eq!(sql_rows(&ctx, "a").await, rows);
}

/// The block folders on disk.
fn block_dirs(f: &Fixture) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(f.dir.path().join("blocks"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_batches_are_visible_at_once_and_still_reach_the_wal() {
    let f = Fixture::new();
    let db = f.open().await;
    let mut b = batch("derived", 2, 3, 0);
    b.defer_sync();
    db.append(b).await.unwrap();
    // Visible without waiting for the WAL.
    assert_eq!(all_samples(&db, "derived").await.len(), 2);
    db.close().await;
    drop(db);
    // The record was written all the same: a restart replays it.
    let db = f.open().await;
    let after = all_samples(&db, "derived").await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].2, [0.0, 1.0, 2.0]);
}

fn histogram(i: usize) -> quiver_storage::FloatHistogram {
    use quiver_storage::{FloatHistogram, Span};
    FloatHistogram {
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: 1.0,
        count: 1.0 + 3.0 * i as f64,
        sum: 10.5 * i as f64,
        positive_spans: vec![
            Span {
                offset: -2,
                length: 1,
            },
            Span {
                offset: 3,
                length: 2,
            },
        ],
        positive_buckets: vec![i as f64, i as f64, i as f64],
        negative_spans: vec![],
        negative_buckets: vec![],
        ..Default::default()
    }
}

/// `n` histogram samples every 15 s from `t0` for one series, and a float series beside it.
fn histogram_batch(name: &str, n: usize, t0: i64) -> WriteBatch {
    let mut b = WriteBatch::default();
    let h = b.push_series(labels(name, &[("kind", "native")]));
    let f = b.push_series(labels(name, &[("kind", "float")]));
    for i in 0..n {
        b.push_histogram(h, t0 + i as i64 * 15_000, histogram(i));
        b.push_sample(f, t0 + i as i64 * 15_000, i as f64);
    }
    b
}

async fn all_histograms(
    db: &Db,
    name: &str,
) -> Vec<(Vec<i64>, Vec<quiver_storage::FloatHistogram>)> {
    let ids: Vec<_> = db
        .series(&select(name), i64::MIN, i64::MAX)
        .iter()
        .map(|(id, _)| *id)
        .collect();
    db.read_histograms(&ids, i64::MIN, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.timestamps,
                s.histograms.iter().map(|h| (**h).clone()).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_survive_restart_flush_compaction_and_retention() {
    let f = Fixture::new();
    let mut o = f.options();
    o.retention_ms = 24 * 3_600_000;
    let db = Db::open(o.clone()).await.unwrap();
    // Three hours from t = 0: two aligned 2 h windows.
    db.append(histogram_batch("latency", 720, 0)).await.unwrap();
    let want: Vec<i64> = (0..720).map(|i| i * 15_000).collect();
    let check = |got: Vec<(Vec<i64>, Vec<quiver_storage::FloatHistogram>)>| {
        assert_eq!(got.len(), 1, "one histogram series");
        assert_eq!(got[0].0, want);
        for (i, h) in got[0].1.iter().enumerate() {
            assert_eq!(h, &histogram(i));
        }
    };
    check(all_histograms(&db, "latency").await);
    assert_eq!(
        all_samples(&db, "latency").await.len(),
        1,
        "one float series"
    );
    assert_eq!(db.head_stats().num_samples, 1440);

    // Replayed from the WAL.
    db.close().await;
    drop(db);
    let db = Db::open(o.clone()).await.unwrap();
    check(all_histograms(&db, "latency").await);

    // Cut into blocks: each holds a histograms file, and the manifest says version 2.
    assert_eq!(db.flush().await.unwrap(), 2);
    let blocks = db.block_stats();
    assert_eq!(blocks.iter().map(|b| b.num_histograms).sum::<u64>(), 720);
    for b in &blocks {
        assert!(
            f.dir
                .path()
                .join("blocks")
                .join(&b.id)
                .join("histograms.parquet")
                .exists()
        );
    }
    let manifest = std::fs::read_to_string(f.dir.path().join("blocks/manifest.json")).unwrap();
    assert!(manifest.contains("\"version\": 2"), "{manifest}");
    check(all_histograms(&db, "latency").await);
    // A window of them: only what falls in it.
    let ids: Vec<_> = db
        .series(&select("latency"), i64::MIN, i64::MAX)
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let part = db
        .read_histograms(&ids, 7_200_000 - 30_000, 7_200_000)
        .await
        .unwrap();
    assert_eq!(part[0].timestamps, [7_170_000, 7_185_000, 7_200_000]);
    assert_eq!(db.sample_bound(&ids, i64::MIN, i64::MAX), 1440);

    // A newer histogram in the head wins over the block's at the same time; a second block in
    // the window, then compaction keeps the newer one.
    let mut b = WriteBatch::default();
    let s = b.push_series(labels("latency", &[("kind", "native")]));
    let mut newer = histogram(0);
    newer.sum = -1.0;
    b.push_histogram(s, 15_000, newer.clone());
    db.append(b).await.unwrap();
    assert_eq!(all_histograms(&db, "latency").await[0].1[1], newer);
    db.flush().await.unwrap();
    // The 2 h window's two blocks, then the day's two.
    assert_eq!(db.compact(i64::MAX / 2).await.unwrap(), 4);
    assert_eq!(db.block_stats().len(), 1);
    assert_eq!(db.block_stats()[0].num_histograms, 720);
    let got = all_histograms(&db, "latency").await;
    assert_eq!(got[0].0, want);
    assert_eq!(got[0].1[1], newer);
    assert_eq!(got[0].1[2], histogram(2));
    db.close().await;
    drop(db);
    let db = Db::open(o).await.unwrap();
    assert_eq!(all_histograms(&db, "latency").await[0].1[1], newer);

    // Retention drops the blocks and forgets the series.
    let (deleted, forgotten) = db.apply_retention(100 * 3_600_000).await.unwrap();
    assert_eq!((deleted, forgotten), (1, 2));
    assert!(all_histograms(&db, "latency").await.is_empty());
    let manifest = std::fs::read_to_string(f.dir.path().join("blocks/manifest.json")).unwrap();
    assert!(manifest.contains("\"version\": 1"), "{manifest}");
}

/// The `histograms` table reads bounded batches: with a bound far below one series' samples,
/// reads split by series and then by time, and every sample still comes back once, in order,
/// from the head and from blocks alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_histograms_table_splits_large_reads_and_returns_every_sample_once() {
    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::datatypes::{Float64Type, TimestampMillisecondType};
    let f = Fixture::new();
    let db = Db::open(f.options()).await.unwrap();
    db.append(histogram_batch("latency", 720, 0)).await.unwrap();
    db.flush().await.unwrap();
    db.append(histogram_batch("latency", 80, 720 * 15_000))
        .await
        .unwrap();
    db.append(histogram_batch("other", 30, 0)).await.unwrap();
    for max in [100, 1 << 20] {
        let ctx = SessionContext::new();
        let table =
            quiver_storage::provider::HistogramsTable::new(db.clone()).with_max_batch_samples(max);
        ctx.register_table("histograms", Arc::new(table)).unwrap();
        let batches: Vec<RecordBatch> = ctx
            .sql(
                "SELECT timestamp, histogram['count'] AS c FROM histograms \
                 WHERE metric = 'latency' ORDER BY timestamp",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut got = Vec::new();
        for b in &batches {
            let t = b.column(0).as_primitive::<TimestampMillisecondType>();
            let c = b.column(1).as_primitive::<Float64Type>();
            got.extend((0..b.num_rows()).map(|i| (t.value(i), c.value(i))));
        }
        let want: Vec<(i64, f64)> = (0..720)
            .chain(0..80)
            .enumerate()
            .map(|(k, i)| (k as i64 * 15_000, histogram(i).count))
            .collect();
        assert_eq!(got, want, "max {max}");
    }
}
