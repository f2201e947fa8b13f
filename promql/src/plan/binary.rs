//! Binary operators between two instant vectors, with Prometheus's vector matching: `on` /
//! `ignoring` signatures, `group_left` / `group_right` with label copying, the set operators,
//! and Prometheus's errors for ambiguous matches.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::RecordBatch;

use super::input::{VectorBuilder, for_each_vector_row};
use crate::error::{Error, Result};
use crate::labelset;

/// An operator of PromQL's binary expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl VectorOp {
    pub fn from_token(s: &str) -> Option<Self> {
        use VectorOp::*;
        Some(match s {
            "+" => Add,
            "-" => Sub,
            "*" => Mul,
            "/" => Div,
            "%" => Mod,
            "^" => Pow,
            "atan2" => Atan2,
            "==" => Eq,
            "!=" => Ne,
            ">" => Gt,
            "<" => Lt,
            ">=" => Ge,
            "<=" => Le,
            "and" => And,
            "or" => Or,
            "unless" => Unless,
            _ => return None,
        })
    }

    pub fn is_comparison(self) -> bool {
        use VectorOp::*;
        matches!(self, Eq | Ne | Gt | Lt | Ge | Le)
    }

    pub fn is_set(self) -> bool {
        matches!(self, VectorOp::And | VectorOp::Or | VectorOp::Unless)
    }

    /// Arithmetic drops `__name__`; comparisons and set operators keep it.
    pub fn drops_name(self) -> bool {
        !self.is_comparison() && !self.is_set()
    }

    /// The value of `l op r` and whether the element is kept (Go float semantics: every
    /// comparison with NaN is false but `!=`).
    pub fn apply(self, l: f64, r: f64) -> (f64, bool) {
        use VectorOp::*;
        match self {
            Add => (l + r, true),
            Sub => (l - r, true),
            Mul => (l * r, true),
            Div => (l / r, true),
            Mod => (l % r, true),
            Pow => (l.powf(r), true),
            Atan2 => (l.atan2(r), true),
            Eq => (l, l == r),
            Ne => (l, l != r),
            Gt => (l, l > r),
            Lt => (l, l < r),
            Ge => (l, l >= r),
            Le => (l, l <= r),
            And | Or | Unless => (l, true),
        }
    }
}

/// Which labels identify a match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Matching {
    On(Vec<String>),
    Ignoring(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cardinality {
    OneToOne,
    /// `group_left(labels)`: many series on the left match one on the right.
    ManyToOne(Vec<String>),
    /// `group_right(labels)`.
    OneToMany(Vec<String>),
    ManyToMany,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinaryOp {
    pub op: VectorOp,
    pub matching: Matching,
    pub card: Cardinality,
    pub return_bool: bool,
}

struct Row {
    labels: Vec<u8>,
    value: f64,
}

impl BinaryOp {
    fn signature(&self, labels: &[u8], out: &mut Vec<u8>) {
        match &self.matching {
            Matching::On(names) => {
                labelset::keep(labels, names, out);
                if labelset::has_drop_mark(out) {
                    *out = labelset::set(out, labelset::DROP_NAME, "");
                }
            }
            Matching::Ignoring(names) => {
                labelset::drop(labels, names, out);
                *out = labelset::drop_name(out);
            }
        }
    }

    pub(super) fn evaluate(
        &self,
        left: &[RecordBatch],
        right: &[RecordBatch],
    ) -> Result<RecordBatch> {
        let mut steps: HashMap<i64, (Vec<Row>, Vec<Row>)> = HashMap::new();
        for_each_vector_row(left, |l, t, v| {
            steps.entry(t).or_default().0.push(Row {
                labels: l.to_vec(),
                value: v,
            })
        });
        for_each_vector_row(right, |l, t, v| {
            steps.entry(t).or_default().1.push(Row {
                labels: l.to_vec(),
                value: v,
            })
        });
        let mut order: Vec<i64> = steps.keys().copied().collect();
        order.sort_unstable();
        let mut out = VectorBuilder::default();
        for t in order {
            let (l, r) = &steps[&t];
            if self.op.is_set() {
                self.set_op(l, r, t, &mut out);
            } else {
                self.arith_op(l, r, t, &mut out)?;
            }
        }
        out.finish()
    }

    fn set_op(&self, lhs: &[Row], rhs: &[Row], t: i64, out: &mut VectorBuilder) {
        let mut sig = Vec::new();
        match self.op {
            VectorOp::And | VectorOp::Unless => {
                let right: HashSet<Vec<u8>> = rhs
                    .iter()
                    .map(|r| {
                        self.signature(&r.labels, &mut sig);
                        sig.clone()
                    })
                    .collect();
                for l in lhs {
                    self.signature(&l.labels, &mut sig);
                    if right.contains(&sig) == (self.op == VectorOp::And) {
                        out.push(&l.labels, t, l.value);
                    }
                }
            }
            _ => {
                let mut left = HashSet::new();
                for l in lhs {
                    self.signature(&l.labels, &mut sig);
                    left.insert(sig.clone());
                    out.push(&l.labels, t, l.value);
                }
                for r in rhs {
                    self.signature(&r.labels, &mut sig);
                    if !left.contains(&sig) {
                        out.push(&r.labels, t, r.value);
                    }
                }
            }
        }
    }

    fn arith_op(&self, lhs: &[Row], rhs: &[Row], t: i64, out: &mut VectorBuilder) -> Result<()> {
        if lhs.is_empty() || rhs.is_empty() {
            return Ok(());
        }
        let swapped = matches!(self.card, Cardinality::OneToMany(_));
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let mut sig = Vec::new();
        let mut ones: HashMap<Vec<u8>, &Row> = HashMap::new();
        for r in one {
            self.signature(&r.labels, &mut sig);
            if let Some(dup) = ones.get(&sig) {
                let side = if swapped { "left" } else { "right" };
                let matched = match &self.matching {
                    Matching::On(n) => {
                        let mut m = Vec::new();
                        labelset::keep(&r.labels, n, &mut m);
                        m
                    }
                    Matching::Ignoring(n) => {
                        let mut m = Vec::new();
                        labelset::drop(&r.labels, n, &mut m);
                        m
                    }
                };
                let mut pair = [labelset::display(&r.labels), labelset::display(&dup.labels)];
                pair.sort();
                return Err(Error::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    labelset::display(&matched),
                    pair[0],
                    pair[1]
                )));
            }
            ones.insert(sig.clone(), r);
        }
        let mut matched: HashMap<Vec<u8>, HashSet<Vec<u8>>> = HashMap::new();
        let mut one_to_one_seen: HashSet<Vec<u8>> = HashSet::new();
        for m in many {
            self.signature(&m.labels, &mut sig);
            let Some(o) = ones.get(&sig) else { continue };
            // Ambiguous one-to-one matches fail even when the comparison filters them out.
            if self.card == Cardinality::OneToOne && !one_to_one_seen.insert(sig.clone()) {
                return Err(Error::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            let (fl, fr) = if swapped {
                (o.value, m.value)
            } else {
                (m.value, o.value)
            };
            let (mut v, keep) = self.op.apply(fl, fr);
            if self.return_bool {
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let labels = self.result_labels(&m.labels, &o.labels);
            match matched.get_mut(&sig) {
                Some(seen) => {
                    if !seen.insert(labels.clone()) {
                        return Err(Error::Execution(
                            "multiple matches for labels: grouping labels must ensure unique matches".into(),
                        ));
                    }
                }
                None => {
                    matched.insert(sig.clone(), HashSet::from([labels.clone()]));
                }
            }
            out.push(&labels, t, v);
        }
        Ok(())
    }

    fn result_labels(&self, many: &[u8], one: &[u8]) -> Vec<u8> {
        let mut labels = if self.op.drops_name() || self.return_bool {
            labelset::mark_drop_name(many)
        } else {
            many.to_vec()
        };
        let include = match &self.card {
            Cardinality::OneToOne => {
                let mut out = Vec::new();
                match &self.matching {
                    Matching::On(n) => labelset::keep(&labels, n, &mut out),
                    Matching::Ignoring(n) => labelset::drop(&labels, n, &mut out),
                }
                return out;
            }
            Cardinality::ManyToOne(i) | Cardinality::OneToMany(i) => i,
            Cardinality::ManyToMany => return labels,
        };
        for name in include {
            let v = labelset::get(one, name).unwrap_or("").to_string();
            labels = labelset::set(&labels, name, &v);
        }
        labels
    }
}
