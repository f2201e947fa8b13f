//! Binary expressions. Between a vector and a scalar, or two scalars, the operator is a
//! DataFusion expression (a projection, or a filter for comparisons), joined on the step when
//! the scalar is not a constant; between two vectors it is a matching node.

use datafusion::common::JoinType;
use datafusion::functions::math::expr_fn::{atan2, power};
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlan, LogicalPlanBuilder, col, lit, when};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{Planned, Planner, project_scalar, project_vector};
use crate::error::{Error, Result};
use crate::functions::udf::CompareFn;
use crate::plan::{
    BinaryOp, Cardinality, Matching, Param, PromNode, PromOp, ScalarBinaryOp, Steps, VectorOp,
    has_hist,
};

impl Planner<'_> {
    pub(crate) fn plan_binary(&self, b: &BinaryExpr, steps: Steps) -> Result<Planned> {
        let token = b.op.to_string();
        let op = VectorOp::from_token(&token)
            .ok_or_else(|| Error::BadData(format!("unknown operator {token}")))?;
        let return_bool = b.return_bool();
        let lhs = self.plan(&b.lhs, steps)?;
        let rhs = self.plan(&b.rhs, steps)?;
        match (lhs, rhs) {
            (Planned::Const(l), Planned::Const(r)) => {
                let (v, keep) = op.apply(l, r);
                Ok(Planned::Const(if op.is_comparison() {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    v
                }))
            }
            (Planned::Vector(l), Planned::Vector(r)) => {
                let (matching, card) = vector_matching(b, op);
                let fill = b.modifier.as_ref().map(|m| &m.fill_values);
                // `and` and `unless` give left samples only; otherwise either side's
                // histograms may reach the result.
                let histograms = has_hist(l.schema().as_arrow())
                    || (!matches!(op, VectorOp::And | VectorOp::Unless)
                        && has_hist(r.schema().as_arrow()));
                let node = BinaryOp {
                    op,
                    matching,
                    card,
                    return_bool,
                    fill_left: fill.and_then(|f| f.lhs).map(Param),
                    fill_right: fill.and_then(|f| f.rhs).map(Param),
                    histograms,
                };
                Ok(Planned::Vector(
                    PromNode::new(PromOp::Binary(node), vec![l, r])?.into_plan(),
                ))
            }
            (Planned::Vector(v), s @ (Planned::Const(_) | Planned::Scalar(_))) => {
                vector_scalar(v, s, op, return_bool, false)
            }
            (s @ (Planned::Const(_) | Planned::Scalar(_)), Planned::Vector(v)) => {
                vector_scalar(v, s, op, return_bool, true)
            }
            (
                l @ (Planned::Const(_) | Planned::Scalar(_)),
                r @ (Planned::Const(_) | Planned::Scalar(_)),
            ) => scalar_scalar(l, r, op),
            (l, r) => Err(Error::BadData(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

fn vector_matching(b: &BinaryExpr, op: VectorOp) -> (Matching, Cardinality) {
    let modifier = b.modifier.as_ref();
    let matching = match modifier.and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(l)) => Matching::On(l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => Matching::Ignoring(l.labels.clone()),
        None => Matching::Ignoring(Vec::new()),
    };
    let card = if op.is_set() {
        Cardinality::ManyToMany
    } else {
        match modifier.map(|m| &m.card) {
            Some(VectorMatchCardinality::ManyToOne(l)) => Cardinality::ManyToOne(l.labels.clone()),
            Some(VectorMatchCardinality::OneToMany(l)) => Cardinality::OneToMany(l.labels.clone()),
            _ => Cardinality::OneToOne,
        }
    };
    (matching, card)
}

/// `l op r` as an expression; comparisons yield the Go-semantics boolean.
fn arith(op: VectorOp, l: DfExpr, r: DfExpr) -> DfExpr {
    match op {
        VectorOp::Add => l + r,
        VectorOp::Sub => l - r,
        VectorOp::Mul => l * r,
        VectorOp::Div => l / r,
        VectorOp::Mod => l % r,
        VectorOp::Pow => power(l, r),
        VectorOp::Atan2 => atan2(l, r),
        _ => CompareFn::call(op, l, r),
    }
}

/// The scalar operand as an expression over `plan`, joining the scalar's steps in when it is
/// not a constant.
fn with_scalar(plan: LogicalPlan, s: Planned) -> Result<(LogicalPlan, DfExpr)> {
    match s {
        Planned::Const(c) => Ok((plan, lit(c))),
        Planned::Scalar(sp) => {
            let renamed = LogicalPlanBuilder::from(sp)
                .project(vec![col("ts").alias("s_ts"), col("value").alias("s_value")])?
                .build()?;
            let joined = LogicalPlanBuilder::from(plan)
                .join(renamed, JoinType::Inner, (vec!["ts"], vec!["s_ts"]), None)?
                .build()?;
            Ok((joined, col("s_value")))
        }
        _ => Err(Error::Internal("scalar operand expected".into())),
    }
}

fn vector_scalar(
    v: LogicalPlan,
    s: Planned,
    op: VectorOp,
    return_bool: bool,
    scalar_left: bool,
) -> Result<Planned> {
    if op.is_set() {
        return Err(Error::BadData(format!(
            "set operator \"{op:?}\" not allowed in binary scalar expression"
        )));
    }
    if has_hist(v.schema().as_arrow()) {
        // A kernel: histograms are scaled by `*` and `/`, dropped by other operators.
        let (constant, inputs) = match s {
            Planned::Const(c) => (Some(Param(c)), vec![v]),
            Planned::Scalar(p) => (None, vec![v, p]),
            _ => return Err(Error::Internal("scalar operand expected".into())),
        };
        let op = PromOp::ScalarBinary(ScalarBinaryOp {
            op,
            scalar_left,
            return_bool,
            constant,
        });
        return Ok(Planned::Vector(PromNode::new(op, inputs)?.into_plan()));
    }
    let (plan, sv) = with_scalar(v, s)?;
    let (l, r) = if scalar_left {
        (sv, col("value"))
    } else {
        (col("value"), sv)
    };
    let e = arith(op, l, r);
    if !op.is_comparison() {
        return Ok(Planned::Vector(project_vector(plan, e, true)?));
    }
    if return_bool {
        let v = when(e, lit(1.0)).otherwise(lit(0.0))?;
        return Ok(Planned::Vector(project_vector(plan, v, true)?));
    }
    // A comparison filters, and the vector's own value stays whichever side it is on.
    let filtered = LogicalPlanBuilder::from(plan).filter(e)?.build()?;
    Ok(Planned::Vector(project_vector(
        filtered,
        col("value"),
        false,
    )?))
}

fn scalar_scalar(l: Planned, r: Planned, op: VectorOp) -> Result<Planned> {
    // One side is a plan: put the other beside it.
    let (plan, lv, rv) = match (l, r) {
        (Planned::Scalar(lp), r) => {
            let (p, rv) = with_scalar(lp, r)?;
            (p, col("value"), rv)
        }
        (l, Planned::Scalar(rp)) => {
            let (p, lv) = with_scalar(rp, l)?;
            (p, lv, col("value"))
        }
        _ => return Err(Error::Internal("scalar plan expected".into())),
    };
    let e = arith(op, lv, rv);
    let e = if op.is_comparison() {
        when(e, lit(1.0)).otherwise(lit(0.0))?
    } else {
        e
    };
    Ok(Planned::Scalar(project_scalar(plan, e)?))
}
