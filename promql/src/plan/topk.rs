//! `topk`, `bottomk` and `limitk`: the k highest, lowest or first series of each group and
//! step, keeping their labels; and the check that a vector holds each label set once.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::RecordBatch;

use super::Param;
use super::input::{VectorBuilder, for_each_vector_row, scalar_by_step};
use crate::error::{Error, Result};
use crate::labelset::Grouping;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopKKind {
    Top,
    Bottom,
    Limit,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopKOp {
    pub kind: TopKKind,
    /// k, unless the node's second input gives it per step.
    pub k: Param,
    pub grouping: Grouping,
}

impl TopKOp {
    pub(super) fn evaluate(
        &self,
        input: &[RecordBatch],
        k_steps: Option<&[RecordBatch]>,
    ) -> Result<RecordBatch> {
        let per_step = k_steps.map(scalar_by_step);
        let k_at = |t: i64| -> Result<usize> {
            let k = match &per_step {
                Some(m) => m.get(&t).copied().unwrap_or(f64::NAN),
                None => self.k.0,
            };
            if k.is_nan() {
                return Err(Error::Execution("Parameter value is NaN".into()));
            }
            if k >= 9.223_372_036_854_776e18 {
                return Err(Error::Execution(format!(
                    "scalar value {k} overflows int64"
                )));
            }
            Ok(if k < 1.0 { 0 } else { k as usize })
        };
        if per_step.is_none() {
            k_at(0)?;
        }
        let mut out = VectorBuilder::default();
        // (step, group) -> rows, groups in order of first appearance
        let mut groups: HashMap<(i64, Vec<u8>), Vec<(Vec<u8>, f64)>> = HashMap::new();
        let mut order: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut key = Vec::new();
        for_each_vector_row(input, |l, t, v| {
            self.grouping.key(l, &mut key);
            let g = groups.entry((t, key.clone())).or_insert_with(|| {
                order.push((t, key.clone()));
                Vec::new()
            });
            g.push((l.to_vec(), v));
        });
        order.sort_by_key(|(t, _)| *t);
        for g in order {
            let mut rows = groups.remove(&g).unwrap_or_default();
            match self.kind {
                // NaN ranks below every number for topk and above for bottomk.
                TopKKind::Top => rows.sort_by(|a, b| rank(b.1).total_cmp(&rank(a.1))),
                TopKKind::Bottom => rows.sort_by(|a, b| rank_low(a.1).total_cmp(&rank_low(b.1))),
                TopKKind::Limit => rows.sort_by(|a, b| a.0.cmp(&b.0)),
            }
            let k = k_at(g.0)?;
            for (l, v) in rows.into_iter().take(k) {
                out.push(&l, g.0, v);
            }
        }
        out.finish()
    }
}

fn rank(v: f64) -> f64 {
    if v.is_nan() { f64::NEG_INFINITY } else { v }
}

fn rank_low(v: f64) -> f64 {
    if v.is_nan() { f64::INFINITY } else { v }
}

/// Fails when two rows of one step carry the same label set (as `label_replace` can make).
pub(super) fn check_unique(input: &[RecordBatch]) -> Result<RecordBatch> {
    let mut seen: HashSet<(i64, Vec<u8>)> = HashSet::new();
    let mut dup = false;
    let mut out = VectorBuilder::default();
    for_each_vector_row(input, |l, t, v| {
        if !seen.insert((t, l.to_vec())) {
            dup = true;
        }
        out.push(l, t, v);
    });
    if dup {
        return Err(Error::Execution(
            "vector cannot contain metrics with the same labelset".into(),
        ));
    }
    out.finish()
}
