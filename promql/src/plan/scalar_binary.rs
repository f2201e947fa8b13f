//! An instant vector that may hold native histograms, with a scalar: `h * 2`, `rate(h[5m]) /
//! 60`, `2 * h`, `-h`, `h > 1`. Float samples get the operator as everywhere; a histogram is
//! scaled by `*` and `/` (by the scalar on the right, or times the scalar on the left), and
//! dropped by every other operator, as Prometheus's `vectorElemBinop` does (it reports an info),
//! comparisons with `bool` included (Prometheus's own tests: `h == bool 3` gives nothing).

use datafusion::arrow::array::RecordBatch;

use super::input::{
    VectorBuilder, decode_hist, for_each_hist_row, for_each_vector_row, scalar_by_step,
};
use super::{Param, VectorOp};
use crate::error::Result;
use crate::labelset;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScalarBinaryOp {
    pub op: VectorOp,
    /// The scalar is the left operand.
    pub scalar_left: bool,
    /// `bool` after a comparison.
    pub return_bool: bool,
    /// The scalar when known at plan time; else the node's second input gives it per step.
    pub constant: Option<Param>,
}

impl ScalarBinaryOp {
    pub(super) fn evaluate(
        &self,
        vector: &[RecordBatch],
        scalar: Option<&[RecordBatch]>,
    ) -> Result<RecordBatch> {
        let by_step = scalar.map(scalar_by_step);
        let scalar_at = |t: i64| match (self.constant, &by_step) {
            (Some(c), _) => Some(c.0),
            (None, Some(m)) => m.get(&t).copied(),
            (None, None) => None,
        };
        let mut out = VectorBuilder::with_histograms(true);
        for_each_vector_row(vector, |labels, t, v| {
            let Some(s) = scalar_at(t) else { return };
            let (l, r) = if self.scalar_left { (s, v) } else { (v, s) };
            let (result, keep) = self.op.apply(l, r);
            if !self.op.is_comparison() {
                out.push(&labelset::mark_drop_name(labels), t, result);
            } else if self.return_bool {
                let b = if keep { 1.0 } else { 0.0 };
                out.push(&labelset::mark_drop_name(labels), t, b);
            } else if keep {
                // A comparison filters; the vector's own value stays.
                out.push(labels, t, v);
            }
        });
        let mut result = Ok(());
        let mut buf = Vec::new();
        for_each_hist_row(vector, |labels, t, bytes| {
            if result.is_err() {
                return;
            }
            let Some(s) = scalar_at(t) else { return };
            let scaled = match (self.op, self.scalar_left) {
                (VectorOp::Mul, _) => Some(s),
                (VectorOp::Div, false) => Some(1.0 / s),
                _ => None,
            };
            let Some(factor) = scaled else { return };
            result = decode_hist(bytes).and_then(|mut h| {
                if self.op == VectorOp::Div {
                    h.div(s);
                } else {
                    h.mul(factor);
                }
                h.compact(0);
                buf.clear();
                h.encode(&mut buf);
                out.push_hist(&labelset::mark_drop_name(labels), t, &buf)
            });
        });
        result?;
        out.finish()
    }
}
