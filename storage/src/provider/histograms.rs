//! The `histograms` table: `metric`, `series_id`, `timestamp` and `histogram`, every native
//! histogram sample with its fields as one struct column ([`crate::histogram::arrow`]). Filters
//! on `metric`, `series_id` and `timestamp` narrow what is read, as for `samples`; the scan
//! streams, reading a few hundred series at a time, so a query over many holds only a batch.

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

/// Series read from storage per batch of the scan.
const READ_SERIES_AT_ONCE: usize = 256;

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
}

impl HistogramsTable {
    pub fn new(db: Arc<Db>) -> Self {
        HistogramsTable { db }
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
        let partition = Arc::new(HistogramStream {
            db: self.db.clone(),
            ids: Arc::new(ids),
            mint,
            maxt,
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

/// The scan's one partition: the selected series' histograms, a chunk of series per batch.
#[derive(Debug)]
struct HistogramStream {
    db: Arc<Db>,
    /// Ordered by metric, then id (as `samples` reads them).
    ids: Arc<Vec<SeriesId>>,
    mint: Timestamp,
    maxt: Timestamp,
}

impl PartitionStream for HistogramStream {
    fn schema(&self) -> &SchemaRef {
        static S: std::sync::LazyLock<SchemaRef> =
            std::sync::LazyLock::new(histograms_table_schema);
        &S
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (db, ids, mint, maxt) = (self.db.clone(), self.ids.clone(), self.mint, self.maxt);
        let chunks = (0..ids.len()).step_by(READ_SERIES_AT_ONCE);
        let stream = futures::stream::iter(chunks)
            .then(move |start| {
                let (db, ids) = (db.clone(), ids.clone());
                async move {
                    let end = (start + READ_SERIES_AT_ONCE).min(ids.len());
                    read_batch(&db, &ids[start..end], mint, maxt).await
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
