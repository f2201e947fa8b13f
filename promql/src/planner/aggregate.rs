//! Aggregations. The plain ones (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`,
//! `stdvar`, `quantile`) are DataFusion `Aggregate`s grouped by (label key, step); `topk`,
//! `bottomk`, `limitk` and `count_values` keep or make label sets and are extension nodes.

use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn::bool_or;
use datafusion::logical_expr::{LogicalPlanBuilder, col, when};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::{ParamPlan, Planned, Planner};
use crate::error::{Error, Result};
use crate::functions::aggregate::{AggKind, PromAggregate};
use crate::functions::udf::{HasDropMark, LabelsFn, LabelsKind};
use crate::labelset::Grouping;
use crate::plan::{CountValuesOp, Param, PromNode, PromOp, Steps, TopKKind, TopKOp};

impl Planner<'_> {
    pub(crate) fn plan_aggregate(&self, a: &AggregateExpr, steps: Steps) -> Result<Planned> {
        let grouping = match &a.modifier {
            Some(LabelModifier::Include(l)) => Grouping::By(l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => Grouping::Without(l.labels.clone()),
            None => Grouping::By(Vec::new()),
        };
        let op = a.op.to_string();
        let input = self.vector(&a.expr, steps)?;
        let node = |op: PromOp| -> Result<Planned> {
            Ok(Planned::Vector(
                PromNode::new(op, vec![input.clone()])?.into_plan(),
            ))
        };
        match op.as_str() {
            "topk" | "bottomk" | "limitk" => {
                let param = a
                    .param
                    .as_deref()
                    .ok_or_else(|| Error::BadData(format!("{op} needs a parameter")))?;
                let kind = match op.as_str() {
                    "topk" => TopKKind::Top,
                    "bottomk" => TopKKind::Bottom,
                    _ => TopKKind::Limit,
                };
                let (k, inputs) = match self.param(param, steps, &op)? {
                    ParamPlan::Const(k) => (k, vec![input]),
                    ParamPlan::Steps(p) => (f64::NAN, vec![input, p]),
                };
                let op = PromOp::TopK(TopKOp {
                    kind,
                    k: Param(k),
                    grouping,
                });
                Ok(Planned::Vector(PromNode::new(op, inputs)?.into_plan()))
            }
            "count_values" => {
                let param = a
                    .param
                    .as_deref()
                    .ok_or_else(|| Error::BadData("count_values needs a label name".into()))?;
                let label = self.string(param)?;
                if label.is_empty() || !valid_label_name(&label) {
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

pub(crate) fn valid_label_name(s: &str) -> bool {
    // Prometheus 3 accepts any UTF-8 label name; only the empty name is invalid.
    !s.is_empty()
}
