//! [`Engine`]: parse, plan, optimize, execute, and shape the result the way Prometheus's API
//! answers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::catalog::Session;
use datafusion::execution::TaskContext;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_optimizer::sanity_checker::SanityCheckPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;
use promql_parser::parser;
use quiver_storage::provider::ScanBudget;
use quiver_storage::{Db, FloatHistogram};

use crate::error::{Error, Result};
use crate::guard::{QueryGuard, TOO_MANY_SAMPLES};
use crate::labelset;
use crate::plan::{LabelMap, PromPlanner, Steps};
use crate::planner::{Planned, Planner, PlannerOptions, ResultOrder};

/// Engine settings (the `--query.*` flags).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub lookback: Duration,
    /// The default subquery step.
    pub subquery_step: Duration,
    pub max_samples: usize,
    pub timeout: Duration,
    /// The runtime queries execute in: its memory pool bounds DataFusion's operators (the
    /// server shares one with SQL, `--query.max-memory`).
    pub runtime: Arc<RuntimeEnv>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback: Duration::from_secs(300),
            subquery_step: Duration::from_secs(60),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            runtime: Arc::new(RuntimeEnv::default()),
        }
    }
}

/// A label set as name/value pairs, sorted by name.
pub type LabelPairs = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: LabelPairs,
    /// ms
    pub t: i64,
    /// The value; 0 for a native histogram sample.
    pub v: f64,
    /// A native histogram sample's value.
    pub h: Option<Arc<FloatHistogram>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub labels: LabelPairs,
    /// (ms, value), by time.
    pub points: Vec<(i64, f64)>,
    /// (ms, histogram), by time: a series may have both kinds, at different times.
    pub histograms: Vec<(i64, Arc<FloatHistogram>)>,
}

/// A query's result, in the shapes of Prometheus's API.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, s: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// Runs PromQL over a [`Db`].
pub struct Engine {
    db: Arc<Db>,
    state: SessionState,
    /// For queries of one step (rules, instant queries): see [`instant_state`].
    instant_state: SessionState,
    opts: EngineOptions,
    planner_opts: PlannerOptions,
}

impl Engine {
    pub fn new(db: Arc<Db>, opts: EngineOptions) -> Self {
        let config = SessionConfig::new().with_information_schema(false);
        // The planner builds its plans as they should run, with their types (scans with their
        // series, time range and columns; kernels in extension nodes), so queries go straight
        // to the physical planner: DataFusion's analyzer and logical optimizer have nothing to
        // improve, and their passes cost more than a small query's execution (rules evaluate
        // hundreds of small queries).
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(opts.runtime.clone())
            .with_default_features()
            .with_query_planner(Arc::new(PromQueryPlanner))
            .build();
        let planner_opts = PlannerOptions {
            lookback: opts.lookback.as_millis() as i64,
            subquery_step: opts.subquery_step.as_millis() as i64,
            max_points: opts.max_samples,
            selections: Default::default(),
        };
        Engine {
            db,
            state,
            instant_state: instant_state(opts.runtime.clone()),
            opts,
            planner_opts,
        }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// An instant query at `t` (ms).
    pub async fn instant(&self, query: &str, t: i64) -> Result<Value> {
        self.instant_expr(&parse(query)?, t).await
    }

    /// An instant query of an already parsed expression (rules parse once, run often).
    pub async fn instant_expr(&self, expr: &parser::Expr, t: i64) -> Result<Value> {
        crate::bounds::check_time(t, "the evaluation time")?;
        let expr = expr.clone();
        let steps = Steps::instant(t);
        let (planned, batches) = self.run(&expr, steps).await?;
        Ok(match planned {
            Planned::Const(v) => Value::Scalar { t, v },
            Planned::String(s) => Value::String { t, s },
            Planned::Scalar(_) => {
                let v = scalar_rows(&batches).first().map_or(f64::NAN, |p| p.1);
                Value::Scalar { t, v }
            }
            Planned::Vector(_) => {
                let mut out: Vec<Sample> = vector_rows(&batches)?
                    .into_iter()
                    .map(|(labels, t, v, h)| Sample {
                        labels: decode(&labels),
                        t,
                        v,
                        h,
                    })
                    .collect();
                order_vector(&mut out, Planner::result_order(&expr), &expr);
                Value::Vector(out)
            }
            Planned::Matrix(_) => Value::Matrix(to_matrix(&batches)?),
        })
    }

    /// An instant query's result as samples with their label sets still encoded (see
    /// [`labelset`]), in no particular order: a vector's samples, or a scalar as one sample
    /// without labels, which is what rules take a result for. Decoding every label of every
    /// sample into strings was a good part of a rule's evaluation.
    pub async fn instant_samples(
        &self,
        expr: &parser::Expr,
        t: i64,
    ) -> Result<Vec<(Vec<u8>, f64, Option<Arc<FloatHistogram>>)>> {
        let (planned, batches) = self.run(expr, Steps::instant(t)).await?;
        match planned {
            Planned::Const(v) => Ok(vec![(Vec::new(), v, None)]),
            Planned::Scalar(_) => {
                let v = scalar_rows(&batches).first().map_or(f64::NAN, |p| p.1);
                Ok(vec![(Vec::new(), v, None)])
            }
            Planned::Vector(_) => Ok(vector_rows(&batches)?
                .into_iter()
                .map(|(labels, _, v, h)| (labels, v, h))
                .collect()),
            Planned::String(_) | Planned::Matrix(_) => Err(Error::BadData(
                "rule result is not a vector or scalar".into(),
            )),
        }
    }

    /// A range query over `[start, end]` every `step` (ms).
    pub async fn range(&self, query: &str, start: i64, end: i64, step: i64) -> Result<Value> {
        self.range_expr(&parse(query)?, start, end, step).await
    }

    /// A range query of an already parsed expression.
    pub async fn range_expr(
        &self,
        expr: &parser::Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value> {
        let expr = expr.clone();
        let steps = range_steps(start, end, step)?;
        match expr.value_type() {
            parser::value::ValueType::Vector | parser::value::ValueType::Scalar => {}
            other => {
                return Err(Error::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_name(other)
                )));
            }
        }
        let (planned, batches) = self.run(&expr, steps).await?;
        Ok(match planned {
            Planned::Const(v) => Value::Matrix(vec![Series {
                labels: Vec::new(),
                points: steps.iter().map(|t| (t, v)).collect(),
                histograms: Vec::new(),
            }]),
            Planned::Scalar(_) => {
                let points = scalar_rows(&batches);
                Value::Matrix(if points.is_empty() {
                    Vec::new()
                } else {
                    vec![Series {
                        labels: Vec::new(),
                        points,
                        histograms: Vec::new(),
                    }]
                })
            }
            Planned::Vector(_) => Value::Matrix(to_matrix(&batches)?),
            Planned::String(_) | Planned::Matrix(_) => {
                return Err(Error::BadData(
                    "invalid expression type for range query, must be Scalar or instant Vector"
                        .into(),
                ));
            }
        })
    }

    /// The logical and physical plans of a query, as `EXPLAIN` would print them.
    pub async fn explain(&self, query: &str, start: i64, end: i64, step: i64) -> Result<String> {
        crate::bounds::check_time(start, "the start time")?;
        crate::bounds::check_time(end, "the end time")?;
        let expr = parse(query)?;
        let steps = Steps {
            start,
            end,
            step: step.max(1),
        };
        let planned = self.planner(steps).plan(&expr, steps)?;
        let Some(plan) = plan_of(&planned) else {
            return Ok(format!("constant: {planned:?}"));
        };
        let state = self.session(steps);
        let physical = state
            .query_planner()
            .create_physical_plan(plan, state)
            .await?;
        Ok(format!(
            "logical plan:\n{}\n\nphysical plan:\n{}",
            plan.display_indent(),
            displayable(physical.as_ref()).indent(true)
        ))
    }

    /// The session a query of these steps plans in.
    fn session(&self, steps: Steps) -> &SessionState {
        if steps.len() == 1 {
            &self.instant_state
        } else {
            &self.state
        }
    }

    fn planner(&self, steps: Steps) -> Planner<'_> {
        Planner {
            db: &self.db,
            opts: &self.planner_opts,
            query_start: steps.start,
            query_end: steps.end,
            query_step: steps.step,
        }
    }

    async fn run(&self, expr: &parser::Expr, steps: Steps) -> Result<(Planned, Vec<RecordBatch>)> {
        let deadline = Instant::now() + self.opts.timeout;
        let planned = self.planner(steps).plan(expr, steps)?;
        let Some(plan) = plan_of(&planned) else {
            return Ok((planned, Vec::new()));
        };
        let guard = Arc::new(QueryGuard::new(self.opts.max_samples, Some(deadline)));
        // This query's limits travel in its session config: the scan (which reads during
        // physical planning) stops at the sample budget, the operators check the guard.
        let budget = Arc::new(ScanBudget {
            max_rows: self.opts.max_samples,
            message: TOO_MANY_SAMPLES.into(),
        });
        let base = self.session(steps);
        let config = base
            .config()
            .clone()
            .with_extension(guard.clone())
            .with_extension(budget);
        // A clone of the engine's state with this query's config: rebuilding a state per query
        // re-registered every function and cost more than small queries themselves.
        let mut state = base.clone();
        *state.config_mut() = config;
        let fut = async {
            let physical: Arc<dyn ExecutionPlan> = state
                .query_planner()
                .create_physical_plan(plan, &state)
                .await?;
            let ctx = Arc::new(TaskContext::from(&state));
            Ok::<_, Error>(collect(physical, ctx).await?)
        };
        let batches = tokio::time::timeout_at(deadline.into(), fut)
            .await
            .map_err(|_| Error::Timeout("query execution"))??;
        Ok((planned, batches))
    }
}

/// The session for queries of one step. Their inputs are small (a sample per series at
/// most for an instant selector), so they run in one partition, and physical planning is
/// what a rule's evaluation spends most on: no function registries to copy into each
/// query's state and task context (plans carry their functions), and of the physical
/// optimizer only the sanity check (one partition leaves nothing to distribute, and the
/// PromQL nodes need no input order).
fn instant_state(runtime: Arc<RuntimeEnv>) -> SessionState {
    let config = SessionConfig::new()
        .with_information_schema(false)
        .with_target_partitions(1);
    SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_query_planner(Arc::new(PromQueryPlanner))
        .with_physical_optimizer_rules(vec![Arc::new(SanityCheckPlan::new())])
        .build()
}

/// Most points a range query may have per series, as Prometheus (`?step=` must grow past it).
pub const MAX_POINTS: i64 = 11_000;

/// The steps of a range query, checked as Prometheus checks them: a positive step, an end not
/// before the start, at most [`MAX_POINTS`] points (every entry point, HTTP and SQL's
/// `promql()`, goes through here; extreme times do not overflow).
pub fn range_steps(start: i64, end: i64, step: i64) -> Result<Steps> {
    crate::bounds::check_time(start, "the start time")?;
    crate::bounds::check_time(end, "the end time")?;
    if step <= 0 {
        return Err(Error::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end < start {
        return Err(Error::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let points = end.checked_sub(start).map(|span| span / step);
    if points.is_none_or(|p| p >= MAX_POINTS) {
        return Err(Error::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok(Steps { start, end, step })
}

/// Parses a PromQL expression, within the bounds of [`crate::bounds`] (length, depth,
/// durations and times).
pub fn parse(query: &str) -> Result<parser::Expr> {
    register_prometheus2_functions();
    crate::bounds::parse_bounded(query)
}

/// `holt_winters`, Prometheus 2's name for `double_exponential_smoothing`, which the parser no
/// longer knows: queries written for Prometheus 2 keep working.
fn register_prometheus2_functions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use parser::value::ValueType;
        let _ = parser::register_extra_functions(vec![parser::Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
}

fn type_name(t: parser::value::ValueType) -> &'static str {
    match t {
        parser::value::ValueType::Vector => "instant vector",
        parser::value::ValueType::Scalar => "scalar",
        parser::value::ValueType::Matrix => "range vector",
        parser::value::ValueType::String => "string",
    }
}

fn plan_of(p: &Planned) -> Option<&LogicalPlan> {
    match p {
        Planned::Vector(p) | Planned::Scalar(p) | Planned::Matrix(p) => Some(p),
        Planned::Const(_) | Planned::String(_) => None,
    }
}

fn decode(labels: &[u8]) -> LabelPairs {
    labelset::pairs(labels)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Calls `f` with each vector row: labels, time, value, and the encoded native histogram of a
/// histogram row.
fn for_rows(batches: &[RecordBatch], mut f: impl FnMut(&[u8], i64, f64, Option<&[u8]>)) {
    for b in batches {
        let (l, t, v) = (
            crate::plan::input::LabelsCol::new(b.column(0)),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        let h = b
            .schema()
            .index_of("hist")
            .ok()
            .map(|i| b.column(i).as_binary_view().clone());
        for i in 0..b.num_rows() {
            let hist = h.as_ref().filter(|h| h.is_valid(i)).map(|h| h.value(i));
            if v.is_null(i) && hist.is_none() {
                continue;
            }
            f(l.value(i), t.value(i), v.value(i), hist);
        }
    }
}

/// A histogram of a result row, decoded.
fn decode_hist(bytes: &[u8]) -> Result<Arc<FloatHistogram>> {
    crate::plan::input::decode_hist(bytes).map(Arc::new)
}

/// One row of an instant vector: label set (finished), step, value, histogram.
type VectorRow = (Vec<u8>, i64, f64, Option<Arc<FloatHistogram>>);

/// An instant vector's rows; two rows with one label set are an error, as in Prometheus.
fn vector_rows(batches: &[RecordBatch]) -> Result<Vec<VectorRow>> {
    let mut out = Vec::new();
    let mut bad = None;
    for_rows(batches, |l, ts, v, h| {
        let h = h.map(decode_hist).transpose().unwrap_or_else(|e| {
            bad = Some(e);
            None
        });
        out.push((labelset::finish(l), ts, v, h))
    });
    if let Some(e) = bad {
        return Err(e);
    }
    let mut seen: foldhash::HashSet<&[u8]> = foldhash::HashSet::default();
    seen.reserve(out.len());
    if !out.iter().all(|(l, _, _, _)| seen.insert(l)) {
        return Err(duplicate_labelset());
    }
    Ok(out)
}

fn scalar_rows(batches: &[RecordBatch]) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for b in batches {
        let (t, v) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            out.push((t.value(i), v.value(i)));
        }
    }
    out.sort_by_key(|p| p.0);
    out
}

fn duplicate_labelset() -> Error {
    Error::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Series by their final label set. Series whose names were dropped may end up with the
/// same labels: they merge, unless two of them have a point at the same time.
/// A series' (ms, value) points and (ms, histogram) points.
type Points = (Vec<(i64, f64)>, Vec<(i64, Arc<FloatHistogram>)>);

fn to_matrix(batches: &[RecordBatch]) -> Result<Vec<Series>> {
    // A label set is finished (its name dropped if marked) once: rows of one series often
    // come together, and otherwise the raw label set finds its series by hash.
    let mut index: LabelMap<usize> = LabelMap::default();
    let mut raw_index: LabelMap<usize> = LabelMap::default();
    let mut series: Vec<(Vec<u8>, Points)> = Vec::new();
    let mut last: Option<(Vec<u8>, usize)> = None;
    let mut bad = None;
    for_rows(batches, |l, t, v, h| {
        let k = match &last {
            Some((raw, k)) if raw.as_slice() == l => *k,
            _ => {
                let k = match raw_index.get(l) {
                    Some(k) => *k,
                    None => {
                        let fin = labelset::finish(l);
                        let k = *index.entry(fin.clone()).or_insert_with(|| {
                            series.push((fin, Points::default()));
                            series.len() - 1
                        });
                        raw_index.insert(l.to_vec(), k);
                        k
                    }
                };
                last = Some((l.to_vec(), k));
                k
            }
        };
        match h.map(decode_hist) {
            None => series[k].1.0.push((t, v)),
            Some(Ok(h)) => series[k].1.1.push((t, h)),
            Some(Err(e)) => bad = Some(e),
        }
    });
    if let Some(e) = bad {
        return Err(e);
    }
    let mut out = Vec::with_capacity(series.len());
    for (l, (mut points, mut histograms)) in series {
        if !points.is_sorted_by_key(|p| p.0) {
            points.sort_by_key(|p| p.0);
        }
        if !histograms.is_sorted_by_key(|p| p.0) {
            histograms.sort_by_key(|p| p.0);
        }
        let clash = points.windows(2).any(|w| w[0].0 == w[1].0)
            || histograms.windows(2).any(|w| w[0].0 == w[1].0)
            || (!histograms.is_empty()
                && points
                    .iter()
                    .any(|p| histograms.binary_search_by_key(&p.0, |h| h.0).is_ok()));
        if clash {
            return Err(duplicate_labelset());
        }
        out.push(Series {
            labels: decode(&l),
            points,
            histograms,
        });
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

fn order_vector(out: &mut [Sample], order: ResultOrder, expr: &parser::Expr) {
    let by_value = |a: &Sample, b: &Sample| {
        // NaN last in both directions, as Prometheus sorts.
        match (a.v.is_nan(), b.v.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => a.v.total_cmp(&b.v),
        }
    };
    match order {
        ResultOrder::Labels => out.sort_by(|a, b| a.labels.cmp(&b.labels)),
        ResultOrder::ValueAsc => out.sort_by(by_value),
        ResultOrder::ValueDesc => out.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
            (false, false) => b.v.total_cmp(&a.v),
            _ => by_value(a, b),
        }),
        ResultOrder::ByLabels(desc) => {
            let names = sort_label_names(expr);
            out.sort_by(|a, b| {
                for n in &names {
                    let get = |s: &Sample| {
                        s.labels
                            .iter()
                            .find(|(k, _)| k == n)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let o = natural_cmp(&get(a), &get(b));
                    if o.is_ne() {
                        return if desc { o.reverse() } else { o };
                    }
                }
                let o = a.labels.cmp(&b.labels);
                if desc { o.reverse() } else { o }
            });
        }
    }
}

/// Natural order: digit runs compare as numbers (`"2" < "10"`, `"1.2.3" < "1.11.3"`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let n = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let m = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (p, q) = (&x[..n], &y[..m]);
                let strip = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
                let (p2, q2) = (&p[strip(p)..], &q[strip(q)..]);
                let o = p2.len().cmp(&q2.len()).then(p2.cmp(q2));
                if o.is_ne() {
                    return o;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn sort_label_names(e: &parser::Expr) -> Vec<String> {
    match e {
        parser::Expr::Paren(p) => sort_label_names(&p.expr),
        parser::Expr::Call(c) => c.args.args[1..]
            .iter()
            .filter_map(|a| match a.as_ref() {
                parser::Expr::StringLiteral(s) => Some(s.val.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// DataFusion's planner with the PromQL extension nodes added.
#[derive(Debug)]
struct PromQueryPlanner;

#[async_trait]
impl QueryPlanner for PromQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(PromPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}
