//! Aggregations. The plain ones (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`,
//! `stdvar`, `quantile`) are DataFusion `Aggregate`s grouped by (label key, step), or, over a
//! selector or a range function with constant parameters, fused into that node (see
//! `plan_streaming`); `topk`, `bottomk`, `limitk` and `count_values` keep or make label sets
//! and are extension nodes.

use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn::bool_or;
use datafusion::logical_expr::{LogicalPlanBuilder, col, when};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::{ParamPlan, Planned, Planner};
use crate::error::{Error, Result};
use crate::functions::aggregate::{AggKind, PromAggregate};
use crate::functions::udf::{HasDropMark, LabelsFn, LabelsKind};
use crate::labelset::Grouping;
use crate::plan::{
    CountValuesOp, HistAggregateOp, Param, PromNode, PromOp, RangeFn, Steps, StreamAgg, TopKKind,
    TopKOp, has_hist,
};

impl Planner<'_> {
    pub(crate) fn plan_aggregate(&self, a: &AggregateExpr, steps: Steps) -> Result<Planned> {
        let grouping = match &a.modifier {
            Some(LabelModifier::Include(l)) => Grouping::By(l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => Grouping::Without(l.labels.clone()),
            None => Grouping::By(Vec::new()),
        };
        let op = a.op.to_string();
        if let Some(fused) = self.plan_streaming(a, &op, &grouping, steps)? {
            return Ok(fused);
        }
        // Native histograms, as Prometheus: `sum` and `avg` add them up, `count` and `group`
        // count them (a histogram row's `value` is a placeholder, so the float path counts it
        // too), `count_values`, `limitk` and `limit_ratio` keep them, the aggregations of
        // values leave them out.
        let input = match op.as_str() {
            "topk" | "bottomk" | "min" | "max" | "stddev" | "stdvar" | "quantile" => {
                self.float_vector(&a.expr, steps)?
            }
            _ => self.vector_with_histograms(&a.expr, steps)?,
        };
        if matches!(op.as_str(), "sum" | "avg") && has_hist(input.schema().as_arrow()) {
            let kind = AggKind::from_name(&op, None)
                .ok_or_else(|| Error::Internal(format!("aggregation {op}")))?;
            let agg = HistAggregateOp {
                agg: StreamAgg { kind, grouping },
                steps,
            };
            return Ok(Planned::Vector(
                PromNode::new(PromOp::HistAggregate(agg), vec![input])?.into_plan(),
            ));
        }
        let node = |op: PromOp| -> Result<Planned> {
            Ok(Planned::Vector(
                PromNode::new(op, vec![input.clone()])?.into_plan(),
            ))
        };
        match op.as_str() {
            "topk" | "bottomk" | "limitk" | "limit_ratio" => {
                let param = a
                    .param
                    .as_deref()
                    .ok_or_else(|| Error::BadData(format!("{op} needs a parameter")))?;
                let kind = match op.as_str() {
                    "topk" => TopKKind::Top,
                    "bottomk" => TopKKind::Bottom,
                    "limitk" => TopKKind::Limit,
                    _ => TopKKind::LimitRatio,
                };
                let histograms = has_hist(input.schema().as_arrow());
                let (k, inputs) = match self.param(param, steps, &op)? {
                    ParamPlan::Const(k) => (k, vec![input]),
                    ParamPlan::Steps(p) => (f64::NAN, vec![input, p]),
                };
                let op = PromOp::TopK(TopKOp {
                    kind,
                    k: Param(k),
                    grouping,
                    histograms,
                });
                Ok(Planned::Vector(PromNode::new(op, inputs)?.into_plan()))
            }
            "count_values" => {
                let param = a
                    .param
                    .as_deref()
                    .ok_or_else(|| Error::BadData("count_values needs a label name".into()))?;
                let label = self.string(param)?;
                if label.is_empty() || !quiver_storage::valid_label_name(&label) {
                    return Err(Error::Execution(format!("invalid label name {label:?}")));
                }
                node(PromOp::CountValues(CountValuesOp { label, grouping }))
            }
            name => {
                let param = match &a.param {
                    Some(p) => Some(self.param(p, steps, name)?),
                    None => None,
                };
                // A parameter per step (quantile(scalar(x), …)) joins in as a second argument.
                let (input, args, constant) = match param {
                    Some(ParamPlan::Steps(p)) => {
                        let renamed = LogicalPlanBuilder::from(p)
                            .project(vec![col("ts").alias("p_ts"), col("value").alias("p_value")])?
                            .build()?;
                        let joined = LogicalPlanBuilder::from(input)
                            .join(renamed, JoinType::Inner, (vec!["ts"], vec!["p_ts"]), None)?
                            .build()?;
                        (joined, vec![col("value"), col("p_value")], Some(f64::NAN))
                    }
                    Some(ParamPlan::Const(v)) => (input, vec![col("value")], Some(v)),
                    None => (input, vec![col("value")], None),
                };
                let kind = AggKind::from_name(name, constant).ok_or_else(|| {
                    Error::BadData(format!("aggregation {name} is not supported"))
                })?;
                let keeps_name = grouping.keeps_name();
                let key = LabelsFn::call(LabelsKind::Group(grouping), col("labels"));
                let mut aggs = vec![PromAggregate::udaf(kind).call(args).alias("value")];
                if keeps_name {
                    // `by (__name__)`: the name goes at the end if any input series drops it.
                    aggs.push(bool_or(HasDropMark::call(col("labels"))).alias("drop_mark"));
                }
                let mut plan = LogicalPlanBuilder::from(input)
                    .aggregate(vec![key.alias("labels"), col("ts")], aggs)?
                    .build()?;
                if keeps_name {
                    let labels = when(
                        col("drop_mark"),
                        LabelsFn::call(LabelsKind::MarkDropName, col("labels")),
                    )
                    .otherwise(col("labels"))?;
                    plan = LogicalPlanBuilder::from(plan)
                        .project(vec![labels.alias("labels"), col("ts"), col("value")])?
                        .build()?;
                }
                Ok(Planned::Vector(plan))
            }
        }
    }
}

impl Planner<'_> {
    /// `agg by (…) (selector)` and `agg by (…) (range_fn(…))` as one node that gathers per
    /// group and step while it evaluates each series (no row per series and step, no hash
    /// aggregate). Only where the result is the same: constant parameters, and a grouping
    /// that does not keep `__name__` (whose pending removal the general path carries).
    fn plan_streaming(
        &self,
        a: &AggregateExpr,
        op: &str,
        grouping: &Grouping,
        steps: Steps,
    ) -> Result<Option<Planned>> {
        if grouping.keeps_name() {
            return Ok(None);
        }
        let constant = match (op, a.param.as_deref()) {
            ("quantile", Some(p)) => match self.param(p, steps, op)? {
                ParamPlan::Const(q) => Some(q),
                ParamPlan::Steps(_) => return Ok(None),
            },
            (_, None) => None,
            _ => return Ok(None),
        };
        let Some(kind) = AggKind::from_name(op, constant) else {
            return Ok(None);
        };
        let agg = StreamAgg {
            kind,
            grouping: grouping.clone(),
        };
        let mut e = a.expr.as_ref();
        while let Expr::Paren(p) = e {
            e = &p.expr;
        }
        if let Expr::VectorSelector(vs) = e {
            return self
                .plan_vector_selector(vs, steps, false, Some(agg))
                .map(Some);
        }
        let Expr::Call(c) = e else { return Ok(None) };
        let Some(f) = RangeFn::from_name(c.func.name) else {
            return Ok(None);
        };
        if c.func.name == "absent_over_time" {
            return Ok(None);
        }
        let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
        // Parameters must be constants (checked by planning them; cheap for literals).
        let range_pos = usize::from(c.func.name == "quantile_over_time");
        for (i, arg) in args.iter().enumerate() {
            if i != range_pos && !matches!(self.plan(arg, steps)?, Planned::Const(_)) {
                return Ok(None);
            }
        }
        self.plan_range_call(c.func.name, f, &args, steps, Some(agg))
            .map(Some)
    }
}
