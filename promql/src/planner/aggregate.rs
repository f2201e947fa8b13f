//! Aggregations. The plain ones (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`,
//! `stdvar`, `quantile`) are DataFusion `Aggregate`s grouped by (label key, step); `topk`,
//! `bottomk`, `limitk` and `count_values` keep or make label sets and are extension nodes.

use datafusion::logical_expr::{LogicalPlanBuilder, col};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::{Planned, Planner};
use crate::error::{Error, Result};
use crate::functions::aggregate::{AggKind, PromAggregate};
use crate::functions::udf::{LabelsFn, LabelsKind};
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
                let k = self.constant(param, steps, &op)?;
                let kind = match op.as_str() {
                    "topk" => TopKKind::Top,
                    "bottomk" => TopKKind::Bottom,
                    _ => TopKKind::Limit,
                };
                node(PromOp::TopK(TopKOp {
                    kind,
                    k: Param(k),
                    grouping,
                }))
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
                    Some(p) => Some(self.constant(p, steps, name)?),
                    None => None,
                };
                let kind = AggKind::from_name(name, param).ok_or_else(|| {
                    Error::BadData(format!("aggregation {name} is not supported"))
                })?;
                let key = LabelsFn::call(LabelsKind::Group(grouping), col("labels"));
                let plan = LogicalPlanBuilder::from(input)
                    .aggregate(
                        vec![key.alias("labels"), col("ts")],
                        vec![
                            PromAggregate::udaf(kind)
                                .call(vec![col("value")])
                                .alias("value"),
                        ],
                    )?
                    .build()?;
                Ok(Planned::Vector(plan))
            }
        }
    }
}

pub(crate) fn valid_label_name(s: &str) -> bool {
    // Prometheus 3 accepts any UTF-8 label name; only the empty name is invalid.
    !s.is_empty()
}
