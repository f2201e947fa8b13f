//! The `histograms` table: `metric`, `series_id`, `timestamp` and `histogram`, every native
//! histogram sample with its fields as one struct column ([`crate::histogram::arrow`]). Filters
//! on `metric`, `series_id` and `timestamp` narrow what is read, as for `samples`; the scan
//! streams, reading at most a few hundred series and about 131,000 samples at a time (a long
//! series is read a time slice at a time), so a query over many holds only a batch.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringDictionaryBuilder, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::DataFusionError;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;

use super::range::ScanRange;
use super::samples::SamplesTable;
use crate::block::timestamp_type;
use crate::db::Db;
use crate::histogram::arrow::{HistogramBuilder, histogram_struct_type};
use crate::labels::{SeriesId, Timestamp};

/// Series read from storage per batch of the scan, at most.
const READ_SERIES_AT_ONCE: usize = 256;
/// Samples one batch may hold at most (by [`Db::sample_bound`], which counts floats too): a
/// few tens of MB of histograms. Larger reads are split by series, then by time.
const MAX_BATCH_SAMPLES: usize = 131_072;

const STRING_COLUMNS: &[&str] = &["metric"];

/// The schema of the `histograms` table.
pub fn histograms_table_schema() -> SchemaRef {
    static S: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new(
                "metric",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new("series_id", DataType::UInt64, false),
            Field::new("timestamp", timestamp_type(), false),
            Field::new("histogram", histogram_struct_type(), false),
        ]))
    });
    S.clone()
}

/// The `histograms` table.
#[derive(Debug)]
pub struct HistogramsTable {
    db: Arc<Db>,
    max_batch_samples: usize,
}

impl HistogramsTable {
    pub fn new(db: Arc<Db>) -> Self {
        HistogramsTable {
            db,
            max_batch_samples: MAX_BATCH_SAMPLES,
        }
    }

    /// Reads at most `n` samples a batch (tests use a small `n` to exercise the splitting).
    pub fn with_max_batch_samples(mut self, n: usize) -> Self {
        self.max_batch_samples = n.max(1);
        self
    }
}

#[async_trait]
impl TableProvider for HistogramsTable {
    fn schema(&self) -> SchemaRef {
        histograms_table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(ScanRange::pushdown(filters, STRING_COLUMNS))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let range = ScanRange::from_filters(filters, STRING_COLUMNS);
        let (mint, maxt) = range.time_range();
        let ids = SamplesTable::new(self.db.clone()).select(&range);
        let mut reads = Vec::new();
        for chunk in ids.chunks(READ_SERIES_AT_ONCE) {
            plan_reads(
                &self.db,
                chunk,
                (mint, maxt),
                self.max_batch_samples,
                &mut reads,
            );
        }
        let partition = Arc::new(HistogramStream {
            db: self.db.clone(),
            reads: Arc::new(reads),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            histograms_table_schema(),
            vec![partition],
            projection,
            Vec::new(),
            false,
            None,
        )?))
    }
}

/// A read of the scan: series (ordered by metric, then id, as `samples` reads them) over a
/// time range.
type Read = (Vec<SeriesId>, Timestamp, Timestamp);

/// Splits a read until each part is bounded by `max` samples: the series in halves, then one
/// series' time range in halves. The bound counts whole chunks and block rows that meet a
/// range, so below their size halving stops shrinking it: a part whose halves both hold data
/// and do not bound lower than it is read as it is (one chunk's or block's rows of one series).
fn plan_reads(
    db: &Db,
    ids: &[SeriesId],
    (mint, maxt): (Timestamp, Timestamp),
    max: usize,
    out: &mut Vec<Read>,
) {
    if ids.is_empty() || mint > maxt {
        return;
    }
    let whole = db.sample_bound(ids, mint, maxt);
    if whole == 0 {
        return;
    }
    if whole <= max || (ids.len() == 1 && mint == maxt) {
        out.push((ids.to_vec(), mint, maxt));
        return;
    }
    if ids.len() > 1 {
        let (a, b) = ids.split_at(ids.len() / 2);
        plan_reads(db, a, (mint, maxt), max, out);
        plan_reads(db, b, (mint, maxt), max, out);
        return;
    }
    let mid = (i128::from(mint) + (i128::from(maxt) - i128::from(mint)) / 2) as i64;
    let (left, right) = (
        db.sample_bound(ids, mint, mid),
        db.sample_bound(ids, mid + 1, maxt),
    );
    if left > 0 && right > 0 && left.max(right) >= whole {
        out.push((ids.to_vec(), mint, maxt));
        return;
    }
    plan_reads(db, ids, (mint, mid), max, out);
    plan_reads(db, ids, (mid + 1, maxt), max, out);
}

/// The scan's one partition: the selected series' histograms, a bounded read per batch.
#[derive(Debug)]
struct HistogramStream {
    db: Arc<Db>,
    reads: Arc<Vec<Read>>,
}

impl PartitionStream for HistogramStream {
    fn schema(&self) -> &SchemaRef {
        static S: std::sync::LazyLock<SchemaRef> =
            std::sync::LazyLock::new(histograms_table_schema);
        &S
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (db, reads) = (self.db.clone(), self.reads.clone());
        let stream = futures::stream::iter(0..reads.len())
            .then(move |i| {
                let (db, reads) = (db.clone(), reads.clone());
                async move {
                    let (ids, mint, maxt) = &reads[i];
                    read_batch(&db, ids, *mint, *maxt).await
                }
            })
            .filter_map(|r| async move {
                match r {
                    Ok(b) if b.num_rows() == 0 => None,
                    other => Some(other),
                }
            });
        Box::pin(RecordBatchStreamAdapter::new(
            histograms_table_schema(),
            stream,
        ))
    }
}

async fn read_batch(
    db: &Db,
    ids: &[SeriesId],
    mint: Timestamp,
    maxt: Timestamp,
) -> datafusion::common::Result<RecordBatch> {
    let series = db
        .read_histograms(ids, mint, maxt)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let registry = db.registry();
    let mut metric = StringDictionaryBuilder::<Int32Type>::new();
    let (mut sid, mut ts) = (Vec::new(), Vec::new());
    let mut hists = HistogramBuilder::default();
    for s in &series {
        let name = registry
            .labels(s.id)
            .and_then(|l| l.metric_name().map(str::to_string))
            .unwrap_or_default();
        for (t, h) in s.timestamps.iter().zip(&s.histograms) {
            metric.append_value(&name);
            sid.push(s.id.0);
            ts.push(*t);
            hists.push(h);
        }
    }
    Ok(RecordBatch::try_new(
        histograms_table_schema(),
        vec![
            Arc::new(metric.finish()) as ArrayRef,
            Arc::new(UInt64Array::from(sid)),
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(hists.finish_struct(None)),
        ],
    )?)
}
