//! Function calls: range functions become [`RangeFn`] nodes over a selector or subquery;
//! value functions become DataFusion expressions; the rest are small nodes or label rewrites.

use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};
use promql_parser::parser::{Call, Expr};

use super::selector::{RangeInput, absent_labels, range_fn_plan};
use super::{Planned, Planner, project_vector, scalar_to_vector};
use crate::error::{Error, Result};
use crate::functions::instant::InstantFn;
use crate::functions::udf::{LabelsFn, LabelsKind, ValueFn};
use crate::labelset;
use crate::plan::{
    AbsentOp, HistogramFn, HistogramQuantileOp, InfoOp, Param, PromNode, PromOp, RangeFn,
    ScalarOfOp, Steps, StepsOp, StreamAgg,
};
use quiver_storage::MatchOp;

impl Planner<'_> {
    pub(crate) fn plan_call(&self, c: &Call, steps: Steps) -> Result<Planned> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
        if let Some(f) = RangeFn::from_name(name) {
            return self.plan_range_call(name, f, &args, steps, None);
        }
        if let Some(f) = InstantFn::from_name(name) {
            if f.is_date() && args.is_empty() {
                let time = PromNode::new(PromOp::Steps(StepsOp::Time(steps)), vec![])?.into_plan();
                let v = scalar_to_vector(time)?;
                return Ok(Planned::Vector(project_vector(
                    v,
                    ValueFn::call(f, col("value")),
                    true,
                )?));
            }
            let v = self.float_vector(args[0], steps)?;
            return Ok(Planned::Vector(project_vector(
                v,
                ValueFn::call(f, col("value")),
                true,
            )?));
        }
        match name {
            "round" => {
                let to = match args.get(1) {
                    Some(a) => self.constant(a, steps, name)?,
                    None => 1.0,
                };
                self.value_fn(args[0], steps, InstantFn::Round(Param(to)))
            }
            "clamp_min" | "clamp_max" => {
                let b = Param(self.constant(args[1], steps, name)?);
                let f = if name == "clamp_min" {
                    InstantFn::ClampMin(b)
                } else {
                    InstantFn::ClampMax(b)
                };
                self.value_fn(args[0], steps, f)
            }
            "clamp" => {
                let lo = self.constant(args[1], steps, name)?;
                let hi = self.constant(args[2], steps, name)?;
                if hi < lo {
                    let v = self.float_vector(args[0], steps)?;
                    let empty = LogicalPlanBuilder::from(v).filter(lit(false))?.build()?;
                    return Ok(Planned::Vector(empty));
                }
                self.value_fn(args[0], steps, InstantFn::Clamp(Param(lo), Param(hi)))
            }
            "time" => Ok(Planned::Scalar(
                PromNode::new(PromOp::Steps(StepsOp::Time(steps)), vec![])?.into_plan(),
            )),
            "pi" => Ok(Planned::Const(std::f64::consts::PI)),
            // The query's own parameters (Prometheus 3's duration-expression functions).
            "step" => Ok(Planned::Const(self.query_step as f64 / 1000.0)),
            "range" => Ok(Planned::Const(
                (self.query_end - self.query_start) as f64 / 1000.0,
            )),
            "start" => Ok(Planned::Const(self.query_start as f64 / 1000.0)),
            "end" => Ok(Planned::Const(self.query_end as f64 / 1000.0)),
            "min_of" | "max_of" => {
                let a = self.constant(args[0], steps, name)?;
                let b = self.constant(args[1], steps, name)?;
                Ok(Planned::Const(if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else if name == "min_of" {
                    a.min(b)
                } else {
                    a.max(b)
                }))
            }
            "vector" => match self.plan(args[0], steps)? {
                Planned::Const(v) => {
                    let s = PromNode::new(PromOp::Steps(StepsOp::Value(steps, Param(v))), vec![])?
                        .into_plan();
                    Ok(Planned::Vector(scalar_to_vector(s)?))
                }
                Planned::Scalar(p) => Ok(Planned::Vector(scalar_to_vector(p)?)),
                other => Err(Error::BadData(format!(
                    "vector() expects a scalar, got {}",
                    other.type_name()
                ))),
            },
            "scalar" => {
                let v = self.vector_with_histograms(args[0], steps)?;
                Ok(Planned::Scalar(
                    PromNode::new(PromOp::ScalarOf(ScalarOfOp { steps }), vec![v])?.into_plan(),
                ))
            }
            "timestamp" => {
                if let Some(vs) = unwrap_selector(args[0]) {
                    let Planned::Vector(p) = self.plan_vector_selector(vs, steps, true, None)?
                    else {
                        return Err(Error::Internal("selector without a vector".into()));
                    };
                    return Ok(Planned::Vector(project_vector(p, col("value"), true)?));
                }
                let v = self.vector_with_histograms(args[0], steps)?;
                let secs = datafusion::logical_expr::cast(
                    col("ts"),
                    datafusion::arrow::datatypes::DataType::Float64,
                ) / lit(1000.0);
                Ok(Planned::Vector(project_vector(v, secs, true)?))
            }
            "absent" => {
                let v = self.vector_with_histograms(args[0], steps)?;
                let labels = unwrap_selector(args[0])
                    .map(absent_labels)
                    .unwrap_or_default();
                Ok(Planned::Vector(
                    PromNode::new(PromOp::Absent(AbsentOp { steps, labels }), vec![v])?.into_plan(),
                ))
            }
            // `sort` orders float samples and leaves histograms out; `sort_by_label` keeps both.
            "sort" | "sort_desc" => Ok(Planned::Vector(self.float_vector(args[0], steps)?)),
            "sort_by_label" | "sort_by_label_desc" => Ok(Planned::Vector(
                self.vector_with_histograms(args[0], steps)?,
            )),
            "label_replace" => {
                let v = self.vector_with_histograms(args[0], steps)?;
                let dst = self.string(args[1])?;
                let replacement = self.string(args[2])?;
                let src = self.string(args[3])?;
                let re = self.string(args[4])?;
                let regex = quiver_storage::anchored_regex(&re).map_err(|e| {
                    Error::BadData(format!(
                        "invalid regular expression in label_replace(): {e}"
                    ))
                })?;
                if dst.is_empty() {
                    return Err(Error::BadData(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                self.relabel(
                    v,
                    LabelsKind::Replace {
                        dst,
                        replacement,
                        src,
                        regex,
                    },
                )
            }
            "label_join" => {
                let v = self.vector_with_histograms(args[0], steps)?;
                let dst = self.string(args[1])?;
                let separator = self.string(args[2])?;
                let src = args[3..]
                    .iter()
                    .map(|a| self.string(a))
                    .collect::<Result<Vec<_>>>()?;
                if dst.is_empty() {
                    return Err(Error::BadData(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                self.relabel(
                    v,
                    LabelsKind::Join {
                        dst,
                        separator,
                        src,
                    },
                )
            }
            "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
                let (func, v) = match name {
                    "histogram_quantile" => (
                        HistogramFn::Quantile(Param(self.constant(args[0], steps, name)?)),
                        args[1],
                    ),
                    "histogram_quantiles" => {
                        let label = self.string(args[1])?;
                        let qs = args[2..]
                            .iter()
                            .map(|a| self.constant(a, steps, name).map(Param))
                            .collect::<Result<Vec<_>>>()?;
                        (HistogramFn::Quantiles(label, qs), args[0])
                    }
                    _ => (
                        HistogramFn::Fraction(
                            Param(self.constant(args[0], steps, name)?),
                            Param(self.constant(args[1], steps, name)?),
                        ),
                        args[2],
                    ),
                };
                let v = self.vector_with_histograms(v, steps)?;
                Ok(Planned::Vector(
                    PromNode::new(
                        PromOp::HistogramQuantile(HistogramQuantileOp { func }),
                        vec![v],
                    )?
                    .into_plan(),
                ))
            }
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                let func = match name {
                    "histogram_count" => HistogramFn::Count,
                    "histogram_sum" => HistogramFn::Sum,
                    "histogram_avg" => HistogramFn::Avg,
                    "histogram_stddev" => HistogramFn::Stddev,
                    _ => HistogramFn::Stdvar,
                };
                let v = self.vector_with_histograms(args[0], steps)?;
                Ok(Planned::Vector(
                    PromNode::new(
                        PromOp::HistogramQuantile(HistogramQuantileOp { func }),
                        vec![v],
                    )?
                    .into_plan(),
                ))
            }
            "info" => self.plan_info(&args, steps),
            other => Err(Error::BadData(format!(
                "function {other}() is not supported yet"
            ))),
        }
    }

    /// `info(v, {…})`: the info series are selected at the same reference times as `v` (its
    /// `@` and offset when `v` is a selector), with their sample times as values.
    fn plan_info(&self, args: &[&Expr], steps: Steps) -> Result<Planned> {
        let base = self.vector_with_histograms(args[0], steps)?;
        let histograms = crate::plan::has_hist(base.schema().as_arrow());
        let selector = match args.get(1) {
            Some(e) => Some(unwrap_selector(e).ok_or_else(|| {
                Error::BadData("info(): the second argument must be a label selector".into())
            })?),
            None => None,
        };
        let convert = |m: &promql_parser::label::Matcher| {
            use promql_parser::label::MatchOp as P;
            let op = match m.op {
                P::Equal => MatchOp::Equal,
                P::NotEqual => MatchOp::NotEqual,
                P::Re(_) => MatchOp::RegexMatch,
                P::NotRe(_) => MatchOp::RegexNoMatch,
            };
            (m.name.clone(), op, m.value.clone())
        };
        let all: Vec<(String, MatchOp, String)> = selector
            .map(|s| {
                let mut v: Vec<_> = s.matchers.matchers.iter().map(convert).collect();
                if let Some(n) = &s.name {
                    v.push((labelset::METRIC_NAME.into(), MatchOp::Equal, n.clone()));
                }
                v
            })
            .unwrap_or_default();
        let (mut name_matchers, data_matchers): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|m| m.0 == labelset::METRIC_NAME);
        if name_matchers.is_empty() {
            name_matchers.push((
                labelset::METRIC_NAME.into(),
                MatchOp::Equal,
                "target_info".into(),
            ));
        }
        let mut info_vs = promql_parser::parser::VectorSelector::default();
        info_vs.matchers.matchers = name_matchers
            .iter()
            .map(|(n, op, v)| {
                let op = match op {
                    MatchOp::Equal => promql_parser::label::MatchOp::Equal,
                    MatchOp::NotEqual => promql_parser::label::MatchOp::NotEqual,
                    // Only the pattern's text is read when the selector resolves.
                    MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                        let re = quiver_storage::anchored_regex(v)
                            .map_err(|e| Error::BadData(e.to_string()))?;
                        if *op == MatchOp::RegexMatch {
                            promql_parser::label::MatchOp::Re(re)
                        } else {
                            promql_parser::label::MatchOp::NotRe(re)
                        }
                    }
                };
                Ok(promql_parser::label::Matcher::new(op, n, v))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(vs) = unwrap_selector(args[0]) {
            info_vs.at = vs.at.clone();
            info_vs.offset = vs.offset.clone();
        }
        let Planned::Vector(info) = self.plan_vector_selector(&info_vs, steps, true, None)? else {
            return Err(Error::Internal("info selector without a vector".into()));
        };
        let op = InfoOp {
            name_matchers,
            data_matchers,
            histograms,
        };
        Ok(Planned::Vector(
            PromNode::new(PromOp::Info(op), vec![base, info])?.into_plan(),
        ))
    }

    fn value_fn(&self, arg: &Expr, steps: Steps, f: InstantFn) -> Result<Planned> {
        let v = self.float_vector(arg, steps)?;
        Ok(Planned::Vector(project_vector(
            v,
            ValueFn::call(f, col("value")),
            true,
        )?))
    }

    fn relabel(
        &self,
        v: datafusion::logical_expr::LogicalPlan,
        kind: LabelsKind,
    ) -> Result<Planned> {
        // Native histograms keep their place: only the labels change.
        let histograms = crate::plan::has_hist(v.schema().as_arrow());
        let mut columns = vec![
            LabelsFn::call(kind, col("labels")).alias("labels"),
            col("ts"),
            col("value"),
        ];
        if histograms {
            columns.push(col("hist"));
        }
        let p = LogicalPlanBuilder::from(v).project(columns)?.build()?;
        Ok(Planned::Vector(
            PromNode::new(PromOp::CheckUnique { histograms }, vec![p])?.into_plan(),
        ))
    }

    /// A range function; with `aggregate`, the aggregation around it accumulates inside the
    /// node (see `plan_aggregate`).
    pub(crate) fn plan_range_call(
        &self,
        name: &str,
        f: RangeFn,
        args: &[&Expr],
        steps: Steps,
        aggregate: Option<StreamAgg>,
    ) -> Result<Planned> {
        // The range argument's position and the constant parameters around it.
        let (range_arg, params): (&Expr, Vec<&Expr>) = match name {
            "quantile_over_time" => (args[1], vec![args[0]]),
            "predict_linear" => (args[0], vec![args[1]]),
            "double_exponential_smoothing" | "holt_winters" => (args[0], vec![args[1], args[2]]),
            _ => (args[0], vec![]),
        };
        let params = params
            .into_iter()
            .map(|p| self.param(p, steps, name))
            .collect::<Result<Vec<_>>>()?;
        let input = self.range_input(range_arg, steps)?;
        let absent = (name == "absent_over_time").then(|| match unwrap_matrix(range_arg) {
            Some(ms) => absent_labels(&ms.vs),
            None => Vec::new(),
        });
        let plan = range_fn_plan(f, steps, input, params, aggregate)?;
        match absent {
            Some(labels) => Ok(Planned::Vector(
                PromNode::new(PromOp::Absent(AbsentOp { steps, labels }), vec![plan])?.into_plan(),
            )),
            None => Ok(Planned::Vector(plan)),
        }
    }

    fn range_input(&self, e: &Expr, steps: Steps) -> Result<RangeInput> {
        match e {
            Expr::MatrixSelector(ms) => self.matrix_input(ms, steps),
            Expr::Subquery(sq) => self.subquery_input(sq, steps),
            Expr::Paren(p) => self.range_input(&p.expr, steps),
            _ => Err(Error::BadData("expected type range vector".into())),
        }
    }
}

fn unwrap_selector(e: &Expr) -> Option<&promql_parser::parser::VectorSelector> {
    match e {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::Paren(p) => unwrap_selector(&p.expr),
        _ => None,
    }
}

fn unwrap_matrix(e: &Expr) -> Option<&promql_parser::parser::MatrixSelector> {
    match e {
        Expr::MatrixSelector(ms) => Some(ms),
        Expr::Paren(p) => unwrap_matrix(&p.expr),
        _ => None,
    }
}
