//! The `samples` table: `metric`, `series_id`, `timestamp`, `value`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringDictionaryBuilder, TimestampMillisecondArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::common::DataFusionError;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions::col};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;

use super::block_scan;
use super::range::ScanRange;
use crate::block::samples_schema;
use crate::db::{Db, ScanSources, SeriesSamples};
use crate::labels::{METRIC_NAME, SeriesId, Timestamp};
use crate::matchers::{Matcher, Matchers};

const BATCH_ROWS: usize = 64 * 1024;
/// Series read from storage per step of a scan (see [`ScanBudget`]).
const READ_SERIES_AT_ONCE: usize = 256;

/// The most rows one scan may read, set as a session config extension by the query engine
/// (PromQL's `--query.max-samples`); exceeding it fails the scan with `message`.
#[derive(Debug, Clone)]
pub struct ScanBudget {
    pub max_rows: usize,
    pub message: String,
}

impl ScanBudget {
    /// Fails a scan of the session that has read `rows` rows if that is past its budget.
    fn check(state: &dyn Session, rows: usize) -> datafusion::common::Result<()> {
        match state.config().get_extension::<ScanBudget>() {
            Some(b) if rows > b.max_rows => {
                Err(DataFusionError::ResourcesExhausted(b.message.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// Memory rows declared sorted by `columns` (which they must be).
fn sorted_by(
    source: MemorySourceConfig,
    columns: &[&str],
) -> datafusion::common::Result<MemorySourceConfig> {
    let schema = source.original_schema();
    let ordering = columns
        .iter()
        .map(|c| Ok(PhysicalSortExpr::new_default(col(c, &schema)?)))
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    source.try_with_sort_information(LexOrdering::new(ordering).into_iter().collect())
}

/// Series with at least this many samples in range get a batch of their own.
const OWN_BATCH_ROWS: usize = 128;

/// The string column of `samples` that filters narrow.
const SAMPLES_STRING_COLUMNS: &[&str] = &["metric"];

/// The `samples` table.
#[derive(Debug)]
pub struct SamplesTable {
    db: Arc<Db>,
}

impl SamplesTable {
    pub fn new(db: Arc<Db>) -> Self {
        SamplesTable { db }
    }
}

#[async_trait]
impl TableProvider for SamplesTable {
    fn schema(&self) -> SchemaRef {
        samples_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(ScanRange::pushdown(filters, SAMPLES_STRING_COLUMNS))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let range = ScanRange::from_filters(filters, SAMPLES_STRING_COLUMNS);
        let (mint, maxt) = range.time_range();
        // Scans by series id (PromQL's selectors) read the series they name, merged and in
        // order; the others (SQL) read whole blocks straight from their files where they can.
        if range.series.is_none() {
            let sources = self.db.scan_sources(mint, maxt);
            if !sources.direct.is_empty() {
                return self
                    .scan_files(state, projection, filters, &range, sources)
                    .await;
            }
        }
        let ids = self.select(&range);
        let data = self.read_merged(state, &ids, &[(mint, maxt)]).await?;
        let (source, with_metric) = self.memory_source(data, projection)?;
        // Without the metric column the rows are sorted by id (see `select`) only when the
        // ids were not ordered by metric first; declare the order only when it holds.
        let source = if with_metric {
            sorted_by(source, &["metric", "series_id", "timestamp"])?
        } else if ids.is_sorted() {
            sorted_by(source, &["series_id", "timestamp"])?
        } else {
            source
        };
        Ok(DataSourceExec::from_data_source(source))
    }
}

/// What a PromQL selector reads: the samples of given series in `[mint, maxt]`, or only the
/// newest sample of each (an instant selector at one time needs no more). The query engine
/// resolves its selectors in the index first, so the scan is built for them rather than
/// described to the `samples` table by filters.
#[derive(Debug)]
pub struct SeriesScan {
    table: SamplesTable,
    /// In id order.
    ids: Vec<SeriesId>,
    mint: Timestamp,
    maxt: Timestamp,
    newest_only: bool,
    /// Read native histograms too, as a fifth column `histogram` (see
    /// [`SeriesScan::with_histograms`]).
    histograms: bool,
}

/// The schema of a [`SeriesScan`] that reads native histograms: the `samples` columns and a
/// nullable `histogram` (`FloatHistogram::encode`'s bytes; `value` is 0 on its rows).
pub fn series_scan_histogram_schema() -> SchemaRef {
    static S: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
        let mut fields: Vec<Field> = samples_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("histogram", DataType::BinaryView, true));
        Arc::new(Schema::new(fields))
    });
    S.clone()
}

/// How much a histogram sample counts against a scan's and a query's sample budget: its size
/// in units of a float sample's 16 bytes, as Prometheus weighs `HPoint`s (`(Size()+8)/16`).
pub fn histogram_weight(h: &crate::histogram::FloatHistogram) -> usize {
    (h.encoded_len() + 119) / 16
}

impl SeriesScan {
    pub fn new(
        db: Arc<Db>,
        mut ids: Vec<SeriesId>,
        mint: Timestamp,
        maxt: Timestamp,
        newest_only: bool,
    ) -> Self {
        ids.sort_unstable();
        ids.dedup();
        SeriesScan {
            table: SamplesTable::new(db),
            ids,
            mint,
            maxt,
            newest_only,
            histograms: false,
        }
    }

    /// Reads native histograms too: the schema gains `histogram`, and each series' samples of
    /// both kinds come merged in time order. Where a float and a histogram share a timestamp
    /// (the head keeps the two kinds apart), a float staleness marker wins (it ends the series
    /// whatever came before), else the histogram.
    pub fn with_histograms(mut self, histograms: bool) -> Self {
        self.histograms = histograms;
        self
    }

    async fn scan_histograms(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let db = &self.table.db;
        let ext = |e: crate::error::Error| DataFusionError::External(Box::new(e));
        let (floats, hists) = if self.newest_only {
            let f = db
                .read_newest(&self.ids, self.mint, self.maxt)
                .await
                .map_err(ext)?;
            let h = db
                .read_newest_histograms(&self.ids, self.mint, self.maxt)
                .await
                .map_err(ext)?;
            let weight = f.len()
                + h.iter()
                    .flat_map(|s| &s.histograms)
                    .map(|h| histogram_weight(h))
                    .sum::<usize>();
            ScanBudget::check(state, weight)?;
            (f, h)
        } else {
            let f = self
                .table
                .read_merged(state, &self.ids, &[(self.mint, self.maxt)])
                .await?;
            let mut h = Vec::new();
            let mut weight = f.iter().map(|s| s.timestamps.len()).sum::<usize>();
            for chunk in self.ids.chunks(READ_SERIES_AT_ONCE) {
                let part = db
                    .read_histograms(chunk, self.mint, self.maxt)
                    .await
                    .map_err(ext)?;
                weight += part
                    .iter()
                    .flat_map(|s| &s.histograms)
                    .map(|h| histogram_weight(h))
                    .sum::<usize>();
                ScanBudget::check(state, weight)?;
                h.extend(part);
            }
            (f, h)
        };
        let batch = merge_kinds(floats, hists, self.newest_only)?;
        let full = series_scan_histogram_schema();
        let all: Vec<usize> = (1..full.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        if projection.contains(&0) {
            return Err(DataFusionError::Internal(
                "a histogram scan does not build the metric column".into(),
            ));
        }
        let without = Arc::new(full.project(&all)?);
        let positions: Vec<usize> = projection.iter().map(|i| i - 1).collect();
        let source = MemorySourceConfig::try_new(&[vec![batch]], without, Some(positions))?;
        Ok(DataSourceExec::from_data_source(sorted_by(
            source,
            &["series_id", "timestamp"],
        )?))
    }
}

/// One batch of `series_id, timestamp, value, histogram`: each series' floats and histograms
/// merged by time (ties as [`SeriesScan::with_histograms`] says); with `newest_only`, only the
/// newest of the two.
fn merge_kinds(
    floats: Vec<SeriesSamples>,
    hists: Vec<crate::db::SeriesHistograms>,
    newest_only: bool,
) -> datafusion::common::Result<RecordBatch> {
    use datafusion::arrow::array::BinaryViewBuilder;
    let rows = floats.iter().map(|s| s.timestamps.len()).sum::<usize>()
        + hists.iter().map(|s| s.timestamps.len()).sum::<usize>();
    let mut ids = Vec::with_capacity(rows);
    let mut ts = Vec::with_capacity(rows);
    let mut vs = Vec::with_capacity(rows);
    let mut hs = BinaryViewBuilder::with_capacity(rows);
    let mut buf = Vec::new();
    let (mut fi, mut hi) = (floats.into_iter().peekable(), hists.into_iter().peekable());
    loop {
        // The next series in id order, with its samples of each kind.
        let next = match (fi.peek(), hi.peek()) {
            (None, None) => break,
            (Some(f), Some(h)) => f.id.min(h.id),
            (Some(f), None) => f.id,
            (None, Some(h)) => h.id,
        };
        let f = fi.next_if(|f| f.id == next);
        let h = hi.next_if(|h| h.id == next);
        let (ft, fv) = f.map(|f| (f.timestamps, f.values)).unwrap_or_default();
        let (ht, hv) = h.map(|h| (h.timestamps, h.histograms)).unwrap_or_default();
        let (mut a, mut b) = (0, 0);
        let push_float = |i: usize,
                          ids: &mut Vec<u64>,
                          ts: &mut Vec<i64>,
                          vs: &mut Vec<f64>,
                          hs: &mut BinaryViewBuilder| {
            ids.push(next.0);
            ts.push(ft[i]);
            vs.push(fv[i]);
            hs.append_null();
        };
        let mut out: Vec<(bool, usize)> = Vec::new();
        while a < ft.len() || b < ht.len() {
            let take_float = match (ft.get(a), ht.get(b)) {
                (Some(x), Some(y)) if x == y => {
                    // A tie: the staleness marker wins, else the histogram.
                    if crate::labels::is_stale_nan(fv[a]) {
                        b += 1;
                        true
                    } else {
                        a += 1;
                        false
                    }
                }
                (Some(x), Some(y)) => x < y,
                (Some(_), None) => true,
                _ => false,
            };
            if take_float {
                out.push((true, a));
                a += 1;
            } else {
                out.push((false, b));
                b += 1;
            }
        }
        if newest_only && out.len() > 1 {
            out.drain(..out.len() - 1);
        }
        for (is_float, i) in out {
            if is_float {
                push_float(i, &mut ids, &mut ts, &mut vs, &mut hs);
            } else {
                ids.push(next.0);
                ts.push(ht[i]);
                vs.push(0.0);
                buf.clear();
                hv[i].encode(&mut buf);
                hs.append_value(&buf);
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(series_scan_histogram_schema().project(&[1, 2, 3, 4])?),
        vec![
            Arc::new(UInt64Array::from(ids)) as ArrayRef,
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(vs)),
            Arc::new(hs.finish()),
        ],
    )?)
}

#[async_trait]
impl TableProvider for SeriesScan {
    fn schema(&self) -> SchemaRef {
        if self.histograms {
            series_scan_histogram_schema()
        } else {
            samples_schema()
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        if self.histograms {
            return self.scan_histograms(state, projection).await;
        }
        let data = if self.newest_only {
            let data = self
                .table
                .db
                .read_newest(&self.ids, self.mint, self.maxt)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            ScanBudget::check(state, data.len())?;
            data
        } else {
            self.table
                .read_merged(state, &self.ids, &[(self.mint, self.maxt)])
                .await?
        };
        let (source, with_metric) = self.table.memory_source(data, projection)?;
        // Rows come by (id, time); with the metric column that is not the table's order.
        let source = if with_metric {
            source
        } else {
            sorted_by(source, &["series_id", "timestamp"])?
        };
        Ok(DataSourceExec::from_data_source(source))
    }
}

impl SamplesTable {
    /// A scan with blocks to read from their files: those through DataFusion's Parquet scan,
    /// the rest merged in memory, one union of both.
    async fn scan_files(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        range: &ScanRange,
        sources: ScanSources,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema().fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        let out_schema = Arc::new(self.schema().project(projection)?);
        // Without a metric filter every series is read: no id list to build.
        let ids = range.values("metric").map(|_| self.select(range));
        let mut parts = Vec::new();
        if let Some(scan) = block_scan::plan(
            &self.db,
            state,
            sources.direct,
            ids.as_deref(),
            range.time_range(),
            projection,
            filters,
        )? {
            parts.push(scan);
        }
        if !sources.merged.is_empty() {
            let ids = match ids {
                Some(ids) => ids,
                None => self.select(range),
            };
            let data = self.read_merged(state, &ids, &sources.merged).await?;
            let (source, _) = self.memory_source(data, Some(projection))?;
            parts.push(DataSourceExec::from_data_source(source));
        }
        if parts.is_empty() {
            return Ok(MemorySourceConfig::try_new_exec(
                &[vec![]],
                out_schema,
                None,
            )?);
        }
        UnionExec::try_new(parts)
    }

    /// The merged samples of `ids` in each stretch of time, read a slice of series at a time
    /// so that a session's row budget stops an oversized scan before it holds much more than
    /// the budget.
    async fn read_merged(
        &self,
        state: &dyn Session,
        ids: &[SeriesId],
        stretches: &[(Timestamp, Timestamp)],
    ) -> datafusion::common::Result<Vec<SeriesSamples>> {
        let mut data = Vec::with_capacity(ids.len());
        let mut rows = 0usize;
        for &(mint, maxt) in stretches {
            for chunk in ids.chunks(READ_SERIES_AT_ONCE) {
                let part = self
                    .db
                    .read(chunk, mint, maxt)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                rows += part.iter().map(|s| s.timestamps.len()).sum::<usize>();
                ScanBudget::check(state, rows)?;
                data.extend(part);
            }
        }
        Ok(data)
    }

    /// Samples in memory as a source for `projection`, and whether it built the `metric`
    /// column (only that column costs anything to build: a dictionary per row).
    fn memory_source(
        &self,
        data: Vec<SeriesSamples>,
        projection: Option<&Vec<usize>>,
    ) -> datafusion::common::Result<(MemorySourceConfig, bool)> {
        let with_metric = projection.is_none_or(|p| p.contains(&0));
        let batches = self.to_batches(data, with_metric)?;
        let (schema, projection): (SchemaRef, Option<Vec<usize>>) = if with_metric {
            (self.schema(), projection.cloned())
        } else {
            let without = Arc::new(self.schema().project(&[1, 2, 3])?);
            // Positions in the metric-less schema.
            (
                without,
                projection.map(|p| p.iter().map(|i| i - 1).collect()),
            )
        };
        Ok((
            MemorySourceConfig::try_new(&[batches], schema, projection)?,
            with_metric,
        ))
    }

    /// The series in range, ordered by (metric, id) as the scan promises.
    pub(super) fn select(&self, range: &ScanRange) -> Vec<SeriesId> {
        // Ids pushed down (PromQL resolves its selectors in the index first): look only those
        // up, without cloning every label set in the database.
        if let Some(ids) = &range.series {
            let registry = self.db.registry();
            let mut out: Vec<(&str, SeriesId)> = ids
                .iter()
                .filter_map(|id| {
                    let metric = registry
                        .labels(SeriesId(*id))?
                        .metric_name()
                        .unwrap_or_default();
                    range
                        .values("metric")
                        .is_none_or(|m| m.contains(metric))
                        .then_some((metric, SeriesId(*id)))
                })
                .collect();
            out.sort();
            return out.into_iter().map(|(_, id)| id).collect();
        }
        let mut out: Vec<(String, SeriesId)> = Vec::new();
        let state_ids: Vec<(SeriesId, String)> = match range.values("metric") {
            Some(names) => names
                .iter()
                .flat_map(|n| {
                    let m = Matchers(vec![Matcher::equal(METRIC_NAME, n.clone())]);
                    self.db
                        .series(&m, Timestamp::MIN, Timestamp::MAX)
                        .into_iter()
                        .map(|(id, _)| (id, n.clone()))
                })
                .collect(),
            None => self
                .db
                .series(&Matchers::default(), Timestamp::MIN, Timestamp::MAX)
                .into_iter()
                .map(|(id, l)| (id, l.metric_name().unwrap_or_default().to_string()))
                .collect(),
        };
        for (id, metric) in state_ids {
            if range.series.as_ref().is_none_or(|s| s.contains(&id.0)) {
                out.push((metric, id));
            }
        }
        out.sort();
        out.into_iter().map(|(_, id)| id).collect()
    }

    fn to_batches(
        &self,
        data: Vec<SeriesSamples>,
        with_metric: bool,
    ) -> datafusion::common::Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        let mut b = SampleBuilder {
            with_metric,
            ..Default::default()
        };
        for s in data {
            // A long series becomes its own batch, its vectors moved in without a copy.
            if !with_metric && s.timestamps.len() >= OWN_BATCH_ROWS {
                if b.len() > 0 {
                    let part = std::mem::replace(
                        &mut b,
                        SampleBuilder {
                            with_metric,
                            ..Default::default()
                        },
                    );
                    batches.push(part.finish()?);
                }
                let n = s.timestamps.len();
                batches.push(RecordBatch::try_new(
                    Arc::new(samples_schema().project(&[1, 2, 3])?),
                    vec![
                        Arc::new(UInt64Array::from(vec![s.id.0; n])) as ArrayRef,
                        Arc::new(
                            TimestampMillisecondArray::from(s.timestamps).with_timezone("UTC"),
                        ),
                        Arc::new(Float64Array::from(s.values)),
                    ],
                )?);
                continue;
            }
            let metric = if with_metric {
                self.db
                    .labels(s.id)
                    .and_then(|l| l.metric_name().map(str::to_string))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let mut start = 0;
            while start < s.timestamps.len() {
                let take = (BATCH_ROWS - b.len()).min(s.timestamps.len() - start);
                b.push(
                    &metric,
                    s.id,
                    &s.timestamps[start..start + take],
                    &s.values[start..start + take],
                );
                start += take;
                if b.len() >= BATCH_ROWS {
                    let full = std::mem::replace(
                        &mut b,
                        SampleBuilder {
                            with_metric,
                            ..Default::default()
                        },
                    );
                    batches.push(full.finish()?);
                }
            }
        }
        if b.len() > 0 {
            batches.push(b.finish()?);
        }
        Ok(batches)
    }
}

#[derive(Default)]
struct SampleBuilder {
    /// Build the `metric` column (else the batch has the schema without it).
    with_metric: bool,
    metric: StringDictionaryBuilder<Int32Type>,
    ids: Vec<u64>,
    ts: Vec<i64>,
    values: Vec<f64>,
}

impl SampleBuilder {
    fn len(&self) -> usize {
        self.ts.len()
    }

    fn push(&mut self, metric: &str, id: SeriesId, ts: &[i64], values: &[f64]) {
        if self.with_metric {
            for _ in 0..ts.len() {
                self.metric.append_value(metric);
            }
        }
        self.ids.extend(std::iter::repeat_n(id.0, ts.len()));
        self.ts.extend_from_slice(ts);
        self.values.extend_from_slice(values);
    }

    fn finish(mut self) -> datafusion::common::Result<RecordBatch> {
        let mut columns = vec![
            Arc::new(UInt64Array::from(self.ids)) as ArrayRef,
            Arc::new(TimestampMillisecondArray::from(self.ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(self.values)),
        ];
        let schema = if self.with_metric {
            columns.insert(0, Arc::new(self.metric.finish()));
            samples_schema()
        } else {
            Arc::new(samples_schema().project(&[1, 2, 3])?)
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
