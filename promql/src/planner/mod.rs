//! From a `promql-parser` AST to a DataFusion [`LogicalPlan`], split by AST node kind.
//!
//! Every expression is planned for an evaluation grid ([`Steps`]); a subquery plans its inner
//! expression for its own grid. What an expression yields is a [`Planned`]: a vector or scalar
//! plan, or a constant known at plan time (constants fold: `2 * 3` is never a plan).

mod aggregate;
mod binary;
mod call;
mod selector;
mod subquery;

pub use selector::{SelectionCache, matcher_sets};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlan, LogicalPlanBuilder, col, lit};
use promql_parser::parser::{AtModifier, Expr, Offset};
use quiver_storage::Db;

use crate::error::{Error, Result};
use crate::functions::udf::{LabelsFn, LabelsKind};
use crate::plan::{Steps, TimeShift};

/// What an expression yields.
#[derive(Debug, Clone)]
pub enum Planned {
    /// An instant vector: `labels`, `ts`, `value`.
    Vector(LogicalPlan),
    /// A scalar per step: `ts`, `value`.
    Scalar(LogicalPlan),
    /// A number known at plan time.
    Const(f64),
    String(String),
    /// Raw samples of a range selector or subquery (an instant query's range-vector result):
    /// vector schema with `ts` the sample time.
    Matrix(LogicalPlan),
}

impl Planned {
    fn type_name(&self) -> &'static str {
        match self {
            Planned::Vector(_) => "instant vector",
            Planned::Scalar(_) | Planned::Const(_) => "scalar",
            Planned::String(_) => "string",
            Planned::Matrix(_) => "range vector",
        }
    }
}

/// A function or aggregation parameter: known at plan time, or a scalar plan per step.
#[derive(Debug, Clone)]
pub enum ParamPlan {
    Const(f64),
    Steps(LogicalPlan),
}

/// How the result of an instant query is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOrder {
    /// By label set (Prometheus's order when the query says nothing).
    Labels,
    /// `sort`, `bottomk`: by value ascending.
    ValueAsc,
    /// `sort_desc`, `topk`: by value descending.
    ValueDesc,
    /// `sort_by_label(…)`: by these labels, then the whole label set.
    ByLabels(bool),
}

/// The settings planning needs.
#[derive(Debug)]
pub struct PlannerOptions {
    /// ms
    pub lookback: i64,
    /// The default subquery step (ms), Prometheus's global evaluation interval.
    pub subquery_step: i64,
    /// Most points a subquery's grid may have (`--query.max-samples`: every point is at least
    /// one sample the query holds).
    pub max_points: usize,
    /// Selections resolved by earlier queries.
    pub selections: SelectionCache,
}

/// Plans one query.
pub struct Planner<'a> {
    pub(crate) db: &'a Arc<Db>,
    pub(crate) opts: &'a PlannerOptions,
    /// The query's own start and end (ms), for `@ start()` and `@ end()`.
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    /// The query's step (ms; 0 for an instant query), for `step()`.
    pub(crate) query_step: i64,
}

impl Planner<'_> {
    pub fn plan(&self, e: &Expr, steps: Steps) -> Result<Planned> {
        match e {
            Expr::NumberLiteral(n) => Ok(Planned::Const(n.val)),
            Expr::StringLiteral(s) => Ok(Planned::String(s.val.clone())),
            Expr::Paren(p) => self.plan(&p.expr, steps),
            Expr::Unary(u) => self.plan_neg(&u.expr, steps),
            Expr::VectorSelector(vs) => self.plan_vector_selector(vs, steps, false, None),
            Expr::MatrixSelector(ms) => self.plan_raw_matrix(ms, steps),
            Expr::Subquery(sq) => self.plan_raw_subquery(sq, steps),
            Expr::Aggregate(a) => self.plan_aggregate(a, steps),
            Expr::Binary(b) => self.plan_binary(b, steps),
            Expr::Call(c) => self.plan_call(c, steps),
            Expr::Extension(_) => Err(Error::BadData("unsupported expression".into())),
        }
    }

    /// The order an instant query's vector comes out in.
    pub fn result_order(e: &Expr) -> ResultOrder {
        match e {
            Expr::Paren(p) => Self::result_order(&p.expr),
            Expr::Call(c) => match c.func.name {
                "sort" => ResultOrder::ValueAsc,
                "sort_desc" => ResultOrder::ValueDesc,
                "sort_by_label" => ResultOrder::ByLabels(false),
                "sort_by_label_desc" => ResultOrder::ByLabels(true),
                _ => ResultOrder::Labels,
            },
            Expr::Aggregate(a) => match a.op.to_string().as_str() {
                "topk" => ResultOrder::ValueDesc,
                "bottomk" => ResultOrder::ValueAsc,
                _ => ResultOrder::Labels,
            },
            _ => ResultOrder::Labels,
        }
    }

    fn plan_neg(&self, e: &Expr, steps: Steps) -> Result<Planned> {
        Ok(match self.plan(e, steps)? {
            Planned::Const(v) => Planned::Const(-v),
            Planned::Scalar(p) => Planned::Scalar(project_scalar(p, -col("value"))?),
            Planned::Vector(p) if crate::plan::has_hist(p.schema().as_arrow()) => {
                // `-h` is `h * -1`, as Prometheus negates a histogram.
                let op = crate::plan::PromOp::ScalarBinary(crate::plan::ScalarBinaryOp {
                    op: crate::plan::VectorOp::Mul,
                    scalar_left: false,
                    return_bool: false,
                    constant: Some(crate::plan::Param(-1.0)),
                });
                Planned::Vector(crate::plan::PromNode::new(op, vec![p])?.into_plan())
            }
            Planned::Vector(p) => Planned::Vector(project_vector(p, -col("value"), true)?),
            other => {
                return Err(Error::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                    other.type_name()
                )));
            }
        })
    }

    /// A vector plan for the expression without its native histograms: the functions of
    /// values (`abs`, `round`, `clamp`, `sort`…) leave them out, as Prometheus does.
    fn float_vector(&self, e: &Expr, steps: Steps) -> Result<LogicalPlan> {
        drop_histograms(self.vector_with_histograms(e, steps)?)
    }

    /// A vector plan for the expression, which must yield one; it may hold native histograms.
    fn vector_with_histograms(&self, e: &Expr, steps: Steps) -> Result<LogicalPlan> {
        match self.plan(e, steps)? {
            Planned::Vector(p) => Ok(p),
            other => Err(Error::BadData(format!(
                "expected type instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// A parameter that is a number or a scalar per step.
    fn param(&self, e: &Expr, steps: Steps, what: &str) -> Result<ParamPlan> {
        match self.plan(e, steps)? {
            Planned::Const(v) => Ok(ParamPlan::Const(v)),
            Planned::Scalar(p) => Ok(ParamPlan::Steps(p)),
            other => Err(Error::BadData(format!(
                "{what}: expected type scalar in the parameter, got {}",
                other.type_name()
            ))),
        }
    }

    /// The value of a parameter that must be known at plan time.
    fn constant(&self, e: &Expr, steps: Steps, what: &str) -> Result<f64> {
        match self.plan(e, steps)? {
            Planned::Const(v) => Ok(v),
            _ => Err(Error::BadData(format!(
                "{what}: only a constant parameter is supported here"
            ))),
        }
    }

    fn string(&self, e: &Expr) -> Result<String> {
        match e {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            Expr::Paren(p) => self.string(&p.expr),
            _ => Err(Error::BadData("expected a string literal".into())),
        }
    }

    pub(crate) fn shift(&self, at: &Option<AtModifier>, offset: &Option<Offset>) -> TimeShift {
        let at = at.as_ref().map(|a| match a {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(*t),
        });
        let offset = match offset {
            Some(Offset::Pos(d)) => duration_ms(d),
            Some(Offset::Neg(d)) => -duration_ms(d),
            None => 0,
        };
        TimeShift { at, offset }
    }
}

/// The plan's float rows only, in the plain vector schema (a plan without histograms as it is).
pub(crate) fn drop_histograms(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !crate::plan::has_hist(plan.schema().as_arrow()) {
        return Ok(plan);
    }
    Ok(LogicalPlanBuilder::from(plan)
        .filter(col("hist").is_null())?
        .project(vec![col("labels"), col("ts"), col("value")])?
        .build()?)
}

/// A duration in ms (saturating: [`crate::bounds`] refuses durations that would not fit).
pub(crate) fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A time in ms since the epoch (saturating, as [`duration_ms`]).
pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// A vector plan with a new value (and `__name__` dropped when asked).
pub(crate) fn project_vector(
    p: LogicalPlan,
    value: DfExpr,
    drop_name: bool,
) -> Result<LogicalPlan> {
    let labels = if drop_name {
        LabelsFn::call(LabelsKind::MarkDropName, col("labels"))
    } else {
        col("labels")
    };
    Ok(LogicalPlanBuilder::from(p)
        .project(vec![
            labels.alias("labels"),
            col("ts"),
            value.alias("value"),
        ])?
        .build()?)
}

pub(crate) fn project_scalar(p: LogicalPlan, value: DfExpr) -> Result<LogicalPlan> {
    Ok(LogicalPlanBuilder::from(p)
        .project(vec![col("ts"), value.alias("value")])?
        .build()?)
}

/// A scalar plan turned into a vector with no labels (`vector(s)`).
pub(crate) fn scalar_to_vector(p: LogicalPlan) -> Result<LogicalPlan> {
    Ok(LogicalPlanBuilder::from(p)
        .project(vec![
            lit(ScalarValue::BinaryView(Some(Vec::new()))).alias("labels"),
            col("ts"),
            col("value"),
        ])?
        .build()?)
}
