//! Schema `experiments`: ML runs as tables.
//!
//! Experiment ingest (the server's `/api/v1/experiments/…` endpoints) stores a run's metrics as
//! ordinary series, so PromQL sees them too:
//! - each metric key as `{__name__="<key>", experiment="<e>", run_id="<r>"}` with one sample per
//!   logged line, at the line's timestamp;
//! - the step of each line as `quiver_run_step{experiment, run_id}` (value = step) at the same
//!   timestamp, which is how a metric sample finds its step;
//! - each parameter as `quiver_run_param{experiment, run_id, param, param_value}` (value = the
//!   number for a numeric parameter, 1 otherwise) with its JSON type as `param_type`
//!   (`number`, `string`, `bool`, `json`), the old value's series marked stale when a parameter
//!   changes.
//!
//! Tables:
//! - `run_metrics(experiment, run_id, key, step, timestamp, value)`: every sample of every series
//!   with both labels (so a training job's scraped metrics relabeled with its run appear too,
//!   with a null step), except Quiver's own step and parameter series. Filters on `experiment`,
//!   `run_id`, `key` and `timestamp` narrow what is read.
//! - `runs(experiment, run_id, <param>…)`: one row per run, one column per parameter name
//!   (`Float64` when every value of it is a JSON number, `Utf8` otherwise), each the latest
//!   value.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use quiver_storage::block::timestamp_type;
use quiver_storage::provider::ScanRange;
use quiver_storage::{
    Db, Labels, METRIC_NAME, MatchOp, Matcher, Matchers, SeriesId, Timestamp, is_stale_nan,
};

/// The label naming a run's experiment.
pub const EXPERIMENT: &str = "experiment";
/// The label naming a run.
pub const RUN_ID: &str = "run_id";
/// The series holding each logged line's step.
pub const STEP_METRIC: &str = "quiver_run_step";
/// The series holding a run's parameters.
pub const PARAM_METRIC: &str = "quiver_run_param";
/// The parameter's name on a [`PARAM_METRIC`] series.
pub const PARAM: &str = "param";
/// The parameter's value (as text) on a [`PARAM_METRIC`] series.
pub const PARAM_VALUE: &str = "param_value";
/// The parameter's JSON type on a [`PARAM_METRIC`] series ([`ParamType`]).
pub const PARAM_TYPE: &str = "param_type";

/// The JSON type of a run parameter: `runs` shows a parameter as a number column only when
/// every run's value of it is a JSON number (`"0"`, a string, stays text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Number,
    String,
    Bool,
    /// An array, kept as its JSON text.
    Json,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::String => "string",
            ParamType::Bool => "bool",
            ParamType::Json => "json",
        }
    }
}

/// Series read from storage at once.
const READ_AT_ONCE: usize = 256;
const BATCH_ROWS: usize = 64 * 1024;
const RUN_METRICS_FILTERED: &[&str] = &[EXPERIMENT, RUN_ID, "key"];

/// Schema `experiments`.
#[derive(Debug)]
pub struct ExperimentsSchema {
    db: Arc<Db>,
}

impl ExperimentsSchema {
    pub fn new(db: Arc<Db>) -> Self {
        ExperimentsSchema { db }
    }
}

#[async_trait]
impl SchemaProvider for ExperimentsSchema {
    fn table_names(&self) -> Vec<String> {
        vec!["run_metrics".into(), "runs".into()]
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(match name {
            "run_metrics" => Some(Arc::new(RunMetricsTable {
                db: self.db.clone(),
            })),
            "runs" => Some(Arc::new(runs_table(&self.db).await?)),
            _ => None,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(name, "run_metrics" | "runs")
    }
}

fn storage_error(e: quiver_storage::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Matches series that have a label (any non-empty value), or one of `values` when given.
fn label_matcher(name: &str, values: Option<&BTreeSet<String>>) -> Matcher {
    match values {
        Some(v) if v.len() == 1 => Matcher::equal(name, v.iter().next().unwrap().clone()),
        _ => Matcher::new(MatchOp::RegexMatch, name, ".+").expect("a valid regex"),
    }
}

type SelectedSeries = (SeriesId, Labels);

/// `run_metrics`.
#[derive(Debug)]
pub struct RunMetricsTable {
    db: Arc<Db>,
}

impl RunMetricsTable {
    pub fn table_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(EXPERIMENT, DataType::Utf8, false),
            Field::new(RUN_ID, DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("step", DataType::Int64, true),
            Field::new("timestamp", timestamp_type(), false),
            Field::new("value", DataType::Float64, false),
        ]))
    }

    /// The selected metric series, ordered by (experiment, run, key), and each run's step series.
    fn select(&self, range: &ScanRange) -> (Vec<SelectedSeries>, Vec<SelectedSeries>) {
        let (mint, maxt) = range.time_range();
        let experiments = range.values(EXPERIMENT);
        let runs = range.values(RUN_ID);
        let keys = range.values("key");
        let base = vec![
            label_matcher(EXPERIMENT, experiments),
            label_matcher(RUN_ID, runs),
        ];
        let wanted = |l: &Labels| {
            experiments.is_none_or(|s| s.contains(l.get(EXPERIMENT).unwrap_or_default()))
                && runs.is_none_or(|s| s.contains(l.get(RUN_ID).unwrap_or_default()))
        };
        let mut metrics = Vec::new();
        match keys {
            Some(keys) => {
                for key in keys {
                    let mut m = base.clone();
                    m.push(Matcher::equal(METRIC_NAME, key.clone()));
                    metrics.extend(self.db.series(&Matchers(m), mint, maxt));
                }
            }
            None => metrics = self.db.series(&Matchers(base.clone()), mint, maxt),
        }
        metrics.retain(|(_, l)| {
            !matches!(l.metric_name(), Some(STEP_METRIC | PARAM_METRIC)) && wanted(l)
        });
        let order = |l: &Labels| {
            (
                l.get(EXPERIMENT).unwrap_or_default().to_string(),
                l.get(RUN_ID).unwrap_or_default().to_string(),
                l.metric_name().unwrap_or_default().to_string(),
            )
        };
        metrics.sort_by_cached_key(|(id, l)| (order(l), *id));
        let mut step_matchers = base;
        step_matchers.push(Matcher::equal(METRIC_NAME, STEP_METRIC));
        let mut steps = self.db.series(&Matchers(step_matchers), mint, maxt);
        steps.retain(|(_, l)| wanted(l));
        (metrics, steps)
    }
}

#[async_trait]
impl TableProvider for RunMetricsTable {
    fn schema(&self) -> SchemaRef {
        Self::table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(ScanRange::pushdown(filters, RUN_METRICS_FILTERED))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = ScanRange::from_filters(filters, RUN_METRICS_FILTERED);
        let (mint, maxt) = range.time_range();
        let (metrics, step_series) = self.select(&range);
        // Each run's steps by timestamp.
        let step_ids: Vec<SeriesId> = step_series.iter().map(|(id, _)| *id).collect();
        let mut steps: HashMap<(String, String), (Vec<Timestamp>, Vec<f64>)> = HashMap::new();
        for chunk in step_ids.chunks(READ_AT_ONCE) {
            for s in self
                .db
                .read(chunk, mint, maxt)
                .await
                .map_err(storage_error)?
            {
                if let Some(l) = self.db.labels(s.id) {
                    let run = (
                        l.get(EXPERIMENT).unwrap_or_default().to_string(),
                        l.get(RUN_ID).unwrap_or_default().to_string(),
                    );
                    steps.insert(run, (s.timestamps, s.values));
                }
            }
        }
        let labels: HashMap<SeriesId, &Labels> = metrics.iter().map(|(id, l)| (*id, l)).collect();
        let ids: Vec<SeriesId> = metrics.iter().map(|(id, _)| *id).collect();
        let mut out = RunMetricsBuilder::default();
        let mut batches = Vec::new();
        for chunk in ids.chunks(READ_AT_ONCE) {
            for s in self
                .db
                .read(chunk, mint, maxt)
                .await
                .map_err(storage_error)?
            {
                let l = labels[&s.id];
                let (experiment, run) = (
                    l.get(EXPERIMENT).unwrap_or_default(),
                    l.get(RUN_ID).unwrap_or_default(),
                );
                let key = l.metric_name().unwrap_or_default();
                let run_steps = steps.get(&(experiment.to_string(), run.to_string()));
                // Both sides are sorted by time: walk them together.
                let mut j = 0;
                for (t, v) in s.timestamps.iter().zip(&s.values) {
                    if is_stale_nan(*v) {
                        continue;
                    }
                    let step = run_steps.and_then(|(st, sv)| {
                        while j < st.len() && st[j] < *t {
                            j += 1;
                        }
                        (j < st.len() && st[j] == *t && !is_stale_nan(sv[j])).then(|| sv[j] as i64)
                    });
                    out.push(experiment, run, key, step, *t, *v);
                    if out.rows == BATCH_ROWS {
                        batches.push(std::mem::take(&mut out).finish()?);
                    }
                }
            }
        }
        if out.rows > 0 || batches.is_empty() {
            batches.push(out.finish()?);
        }
        Ok(DataSourceExec::from_data_source(
            MemorySourceConfig::try_new(&[batches], self.schema(), projection.cloned())?,
        ))
    }
}

#[derive(Default)]
struct RunMetricsBuilder {
    experiment: StringBuilder,
    run: StringBuilder,
    key: StringBuilder,
    step: Int64Builder,
    timestamp: TimestampMillisecondBuilder,
    value: Float64Builder,
    rows: usize,
}

impl RunMetricsBuilder {
    fn push(&mut self, e: &str, r: &str, k: &str, step: Option<i64>, t: Timestamp, v: f64) {
        self.experiment.append_value(e);
        self.run.append_value(r);
        self.key.append_value(k);
        self.step.append_option(step);
        self.timestamp.append_value(t);
        self.value.append_value(v);
        self.rows += 1;
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let schema = RunMetricsTable::table_schema();
        let tz = match schema.field(4).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(self.experiment.finish()) as ArrayRef,
                Arc::new(self.run.finish()),
                Arc::new(self.key.finish()),
                Arc::new(self.step.finish()),
                Arc::new(self.timestamp.finish().with_timezone_opt(tz)),
                Arc::new(self.value.finish()),
            ],
        )?)
    }
}

/// `runs`, as of now: one row per run, one column per parameter.
async fn runs_table(db: &Arc<Db>) -> Result<MemTable> {
    let any = |name: &str| Matcher::new(MatchOp::RegexMatch, name, ".+").expect("a valid regex");
    let mut runs: BTreeSet<(String, String)> = BTreeSet::new();
    for (_, l) in db.series(
        &Matchers(vec![any(EXPERIMENT), any(RUN_ID)]),
        Timestamp::MIN,
        Timestamp::MAX,
    ) {
        runs.insert((
            l.get(EXPERIMENT).unwrap_or_default().to_string(),
            l.get(RUN_ID).unwrap_or_default().to_string(),
        ));
    }
    // The latest value of each parameter of each run: the series whose last sample is the
    // newest and not a staleness marker.
    let params = db.series(
        &Matchers(vec![Matcher::equal(METRIC_NAME, PARAM_METRIC)]),
        Timestamp::MIN,
        Timestamp::MAX,
    );
    let ids: Vec<SeriesId> = params.iter().map(|(id, _)| *id).collect();
    let labels: HashMap<SeriesId, &Labels> = params.iter().map(|(id, l)| (*id, l)).collect();
    // (experiment, run, param) -> (time, (text, numeric) or None once stale).
    type Latest = (Timestamp, Option<(String, bool)>);
    let mut latest: BTreeMap<(String, String, String), Latest> = BTreeMap::new();
    for chunk in ids.chunks(READ_AT_ONCE) {
        for s in db
            .read(chunk, Timestamp::MIN, Timestamp::MAX)
            .await
            .map_err(storage_error)?
        {
            let (Some(t), Some(v)) = (s.timestamps.last(), s.values.last()) else {
                continue;
            };
            let l = labels[&s.id];
            let key = (
                l.get(EXPERIMENT).unwrap_or_default().to_string(),
                l.get(RUN_ID).unwrap_or_default().to_string(),
                l.get(PARAM).unwrap_or_default().to_string(),
            );
            let value = (!is_stale_nan(*v)).then(|| {
                let text: String = l.get(PARAM_VALUE).unwrap_or_default().into();
                // Series written before types were recorded: a number is what parses as one.
                let numeric = match l.get(PARAM_TYPE) {
                    Some(kind) => kind == ParamType::Number.as_str(),
                    None => text.parse::<f64>().is_ok(),
                };
                (text, numeric)
            });
            let e = latest.entry(key).or_insert((Timestamp::MIN, None));
            if *t >= e.0 {
                *e = (*t, value);
            }
        }
    }
    let mut names: BTreeMap<String, bool> = BTreeMap::new(); // name -> all numeric
    for ((_, _, p), (_, v)) in &latest {
        if let Some((_, numeric)) = v {
            *names.entry(p.clone()).or_insert(true) &= numeric;
        }
    }
    let mut fields = vec![
        Field::new(EXPERIMENT, DataType::Utf8, false),
        Field::new(RUN_ID, DataType::Utf8, false),
    ];
    for (name, numeric) in &names {
        let column = if name == EXPERIMENT || name == RUN_ID {
            format!("param_{name}")
        } else {
            name.clone()
        };
        let t = if *numeric {
            DataType::Float64
        } else {
            DataType::Utf8
        };
        fields.push(Field::new(column, t, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut e = StringBuilder::new();
    let mut r = StringBuilder::new();
    for (exp, run) in &runs {
        e.append_value(exp);
        r.append_value(run);
    }
    columns.push(Arc::new(e.finish()));
    columns.push(Arc::new(r.finish()));
    for (name, numeric) in &names {
        let value = |exp: &String, run: &String| {
            latest
                .get(&(exp.clone(), run.clone(), name.clone()))
                .and_then(|(_, v)| v.as_ref().map(|(text, _)| text.clone()))
        };
        if *numeric {
            let mut b = Float64Builder::new();
            for (exp, run) in &runs {
                b.append_option(value(exp, run).and_then(|v| v.parse().ok()));
            }
            columns.push(Arc::new(b.finish()));
        } else {
            let mut b = StringBuilder::new();
            for (exp, run) in &runs {
                b.append_option(value(exp, run));
            }
            columns.push(Arc::new(b.finish()));
        }
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    MemTable::try_new(schema, vec![vec![batch]])
}
