//! DataFusion table providers over the engine: `samples` (every sample of every series) and
//! `series` (every series with its labels).
//!
//! `samples` pushes down equality and `IN` filters on `metric` and `series_id` (resolved in the
//! series index, so only the selected series are read) and range filters on `timestamp`
//! (only the blocks and rows in range are read). Pushdown is inexact: DataFusion still applies
//! the filters, so a filter this provider does not understand is simply not pushed. The scan
//! declares its order, (metric, series_id, timestamp), so no sort is added above it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, MapBuilder, RecordBatch, StringBuilder, StringDictionaryBuilder,
    TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::catalog::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions::col};
use datafusion::physical_plan::ExecutionPlan;

use crate::block::{labels_field, samples_schema};
use crate::db::{Db, SeriesSamples};
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

/// What pushed filters narrow a scan to: equality and `IN` filters on the string columns a
/// table names, on `series_id`, and ranges on `timestamp`. The other table providers over the
/// engine (the experiment tables of `quiver-sql`) use it too.
#[derive(Debug, Default, PartialEq)]
pub struct ScanRange {
    string_columns: &'static [&'static str],
    /// Per string column, the values it may have (`None` for a column without a filter).
    pub strings: BTreeMap<&'static str, BTreeSet<String>>,
    pub series: Option<BTreeSet<u64>>,
    pub mint: Option<Timestamp>,
    pub maxt: Option<Timestamp>,
}

impl ScanRange {
    /// The range `filters` select, understanding equality on `string_columns`.
    pub fn from_filters(filters: &[Expr], string_columns: &'static [&'static str]) -> Self {
        let mut r = ScanRange::new(string_columns);
        for f in filters {
            r.apply(f);
        }
        r
    }

    pub fn new(string_columns: &'static [&'static str]) -> Self {
        ScanRange {
            string_columns,
            ..Default::default()
        }
    }

    /// Whether a filter narrows a scan (for `supports_filters_pushdown`).
    pub fn understands(filter: &Expr, string_columns: &'static [&'static str]) -> bool {
        ScanRange::new(string_columns).apply(filter)
    }

    /// The allowed values of a string column, if filtered.
    pub fn values(&self, column: &str) -> Option<&BTreeSet<String>> {
        self.strings.get(column)
    }

    /// `[mint, maxt]`, open ends as the extreme timestamps.
    pub fn time_range(&self) -> (Timestamp, Timestamp) {
        (
            self.mint.unwrap_or(Timestamp::MIN),
            self.maxt.unwrap_or(Timestamp::MAX),
        )
    }

    fn string_column(&self, name: &str) -> Option<&'static str> {
        self.string_columns.iter().copied().find(|c| *c == name)
    }

    fn intersect_strings(&mut self, column: &'static str, new: BTreeSet<String>) {
        let cur = self.strings.remove(column);
        let mut slot = cur;
        intersect(&mut slot, new);
        if let Some(v) = slot {
            self.strings.insert(column, v);
        }
    }

    /// Narrows the range by one filter; answers whether the filter was understood.
    fn apply(&mut self, e: &Expr) -> bool {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                let l = self.apply(left);
                let r = self.apply(right);
                l && r
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (column, value, op) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _)) => (c.name.as_str(), v, *op),
                    (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
                        Some(op) => (c.name.as_str(), v, op),
                        None => return false,
                    },
                    _ => return false,
                };
                self.apply_comparison(column, op, value)
            }
            Expr::InList(list) if !list.negated => {
                let Expr::Column(c) = list.expr.as_ref() else {
                    return false;
                };
                let values: Option<Vec<&ScalarValue>> = list
                    .list
                    .iter()
                    .map(|e| {
                        if let Expr::Literal(v, _) = e {
                            Some(v)
                        } else {
                            None
                        }
                    })
                    .collect();
                let Some(values) = values else { return false };
                if let Some(column) = self.string_column(&c.name) {
                    let set: Option<BTreeSet<String>> =
                        values.iter().map(|v| scalar_string(v)).collect();
                    return set.map(|s| self.intersect_strings(column, s)).is_some();
                }
                match c.name.as_str() {
                    "series_id" => {
                        let set: Option<BTreeSet<u64>> =
                            values.iter().map(|v| scalar_u64(v)).collect();
                        set.map(|s| intersect(&mut self.series, s)).is_some()
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn apply_comparison(&mut self, column: &str, op: Operator, value: &ScalarValue) -> bool {
        if let (Some(c), Operator::Eq) = (self.string_column(column), op) {
            return scalar_string(value)
                .map(|s| self.intersect_strings(c, [s].into()))
                .is_some();
        }
        match (column, op) {
            ("series_id", Operator::Eq) => scalar_u64(value)
                .map(|v| intersect(&mut self.series, [v].into()))
                .is_some(),
            ("timestamp", op) => {
                let Some(t) = scalar_ms(value) else {
                    return false;
                };
                let (lo, hi) = match op {
                    Operator::Eq => (Some(t), Some(t)),
                    Operator::Gt => (t.checked_add(1), None),
                    Operator::GtEq => (Some(t), None),
                    Operator::Lt => (None, t.checked_sub(1)),
                    Operator::LtEq => (None, Some(t)),
                    _ => return false,
                };
                if let Some(lo) = lo {
                    self.mint = Some(self.mint.map_or(lo, |m| m.max(lo)));
                }
                if let Some(hi) = hi {
                    self.maxt = Some(self.maxt.map_or(hi, |m| m.min(hi)));
                }
                true
            }
            _ => false,
        }
    }
}

fn intersect<T: Ord + Clone>(current: &mut Option<BTreeSet<T>>, new: BTreeSet<T>) {
    *current = Some(match current.take() {
        None => new,
        Some(cur) => cur.intersection(&new).cloned().collect(),
    });
}

fn scalar_string(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, inner) => scalar_string(inner),
        _ => None,
    }
}

fn scalar_u64(v: &ScalarValue) -> Option<u64> {
    match v.cast_to(&DataType::UInt64).ok()? {
        ScalarValue::UInt64(Some(x)) => Some(x),
        _ => None,
    }
}

fn scalar_ms(v: &ScalarValue) -> Option<Timestamp> {
    match v
        .cast_to(&DataType::Timestamp(TimeUnit::Millisecond, None))
        .ok()?
    {
        ScalarValue::TimestampMillisecond(Some(t), _) => Some(t),
        _ => None,
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
        Ok(filters
            .iter()
            .map(|f| {
                if ScanRange::understands(f, SAMPLES_STRING_COLUMNS) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
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
        let ids = self.select(&range);
        // Read a slice of series at a time, so a session's row budget stops an oversized
        // scan before it holds much more than the budget.
        let budget = state.config().get_extension::<ScanBudget>();
        let mut data = Vec::with_capacity(ids.len());
        let mut rows = 0usize;
        for chunk in ids.chunks(READ_SERIES_AT_ONCE) {
            let part = self
                .db
                .read(chunk, mint, maxt)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            rows += part.iter().map(|s| s.timestamps.len()).sum::<usize>();
            if let Some(b) = &budget
                && rows > b.max_rows
            {
                return Err(DataFusionError::ResourcesExhausted(b.message.clone()));
            }
            data.extend(part);
        }
        // Only the `metric` column costs anything to build (a dictionary per row): build it
        // only when it is asked for.
        let with_metric = projection.is_none_or(|p| p.contains(&0));
        let batches = self.to_batches(data, with_metric)?;
        let (schema, projection, order): (SchemaRef, Option<Vec<usize>>, &[&str]) = if with_metric {
            (
                self.schema(),
                projection.cloned(),
                &["metric", "series_id", "timestamp"],
            )
        } else {
            let full = self.schema();
            let without = Arc::new(full.project(&[1, 2, 3])?);
            // Positions in the metric-less schema.
            let p = projection.map(|p| p.iter().map(|i| i - 1).collect());
            (without, p, &["series_id", "timestamp"])
        };
        let mut ordering = Vec::new();
        for c in order {
            ordering.push(PhysicalSortExpr::new_default(col(c, &schema)?));
        }
        let mut source = MemorySourceConfig::try_new(&[batches], schema, projection)?;
        // Without the metric column the rows are sorted by id (see `select`) only when the
        // ids were not ordered by metric first; declare the order only when it holds.
        if with_metric || ids.is_sorted() {
            source = source
                .try_with_sort_information(LexOrdering::new(ordering).into_iter().collect())?;
        }
        Ok(DataSourceExec::from_data_source(source))
    }
}

impl SamplesTable {
    /// The series in range, ordered by (metric, id) as the scan promises.
    fn select(&self, range: &ScanRange) -> Vec<SeriesId> {
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

/// The `series` table: `series_id`, `metric`, `labels` (a map without `__name__`).
#[derive(Debug)]
pub struct SeriesTable {
    db: Arc<Db>,
}

impl SeriesTable {
    pub fn new(db: Arc<Db>) -> Self {
        SeriesTable { db }
    }

    pub fn table_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt64, false),
            Field::new("metric", DataType::Utf8, false),
            labels_field(),
        ]))
    }
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        Self::table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let mut series = self
            .db
            .series(&Matchers::default(), Timestamp::MIN, Timestamp::MAX);
        series.sort_by_key(|(id, _)| *id);
        let mut ids = Vec::with_capacity(series.len());
        let mut metric = StringBuilder::new();
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for (id, ls) in &series {
            ids.push(id.0);
            metric.append_value(ls.metric_name().unwrap_or_default());
            for l in ls.iter().filter(|l| l.name.as_ref() != METRIC_NAME) {
                labels.keys().append_value(&l.name);
                labels.values().append_value(&l.value);
            }
            labels.append(true)?;
        }
        let batch = RecordBatch::try_new(
            Self::table_schema(),
            vec![
                Arc::new(UInt64Array::from(ids)) as ArrayRef,
                Arc::new(metric.finish()),
                Arc::new(labels.finish()),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn filters_narrow_the_scan() {
        let ts = |ms: i64| {
            lit(ScalarValue::TimestampMillisecond(
                Some(ms),
                Some("UTC".into()),
            ))
        };
        let filters = vec![
            col("metric").eq(lit("up")),
            col("timestamp")
                .gt(ts(1000))
                .and(col("timestamp").lt_eq(ts(5000))),
            col("series_id").in_list(vec![lit(1u64), lit(2u64)], false),
        ];
        let r = ScanRange::from_filters(&filters, SAMPLES_STRING_COLUMNS);
        assert_eq!(r.values("metric"), Some(&["up".to_string()].into()));
        assert_eq!(r.series, Some([1, 2].into()));
        assert_eq!((r.mint, r.maxt), (Some(1001), Some(5000)));
    }

    #[test]
    fn unknown_filters_are_not_pushed() {
        assert!(!ScanRange::understands(
            &col("value").gt(lit(1.0)),
            SAMPLES_STRING_COLUMNS
        ));
        assert!(!ScanRange::understands(
            &col("metric").not_eq(lit("x")),
            SAMPLES_STRING_COLUMNS
        ));
    }
}
