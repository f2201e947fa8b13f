//! A function over range windows: for each series and step, the samples in
//! `(ref - range, ref]` go through a [`RangeFn`] kernel. Samples are sorted, and the window
//! edges only move forward along the steps, so each series is walked with two cursors.

use datafusion::arrow::array::RecordBatch;
use quiver_storage::is_stale_nan;

use super::input::{VectorBuilder, group_series, scalar_by_step};
use super::{Param, SeriesMap, Steps, TimeShift};
use crate::error::Result;
use crate::functions::range::{Window, eval};
use crate::guard::QueryGuard;
use crate::labelset;

pub use crate::functions::range::RangeFn;

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RangeSource {
    /// A matrix selector over the storage scan.
    Selector(SeriesMap),
    /// A subquery's vector.
    Subquery,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeFnOp {
    pub func: RangeFn,
    pub steps: Steps,
    pub shift: TimeShift,
    /// ms
    pub range: i64,
    pub source: RangeSource,
    pub args: Vec<Param>,
    /// Which of `args` the node's second input gives per step, if any.
    pub step_arg: Option<usize>,
}

impl RangeFnOp {
    pub(super) fn evaluate(
        &self,
        batches: &[RecordBatch],
        arg_steps: Option<&[RecordBatch]>,
        guard: &QueryGuard,
    ) -> Result<RecordBatch> {
        let arg_steps = arg_steps.map(scalar_by_step);
        let map = match &self.source {
            RangeSource::Selector(m) => Some(m),
            RangeSource::Subquery => None,
        };
        let mut series = group_series(batches, map)?;
        guard.add_samples(series.iter().map(|s| s.ts.len()).sum())?;
        let args: Vec<f64> = self.args.iter().map(|p| p.0).collect();
        if self.step_arg.is_none() {
            self.func.validate(&args)?;
        }
        let mut out = VectorBuilder::default();
        let mut w = Window {
            step: 0,
            start: 0,
            end: 0,
            args,
        };
        for s in &mut series {
            if s.values.iter().any(|v| is_stale_nan(*v)) {
                let keep: Vec<bool> = s.values.iter().map(|v| !is_stale_nan(*v)).collect();
                let mut k = keep.iter();
                s.ts.retain(|_| *k.next().unwrap_or(&false));
                let mut k = keep.iter();
                s.values.retain(|_| *k.next().unwrap_or(&false));
            }
            let labels = if self.func.keeps_name() {
                s.labels.clone()
            } else {
                labelset::mark_drop_name(&s.labels)
            };
            let (mut lo, mut hi) = (0, 0);
            for t in self.steps.iter() {
                let r = self.shift.reference(t);
                let start = r - self.range;
                while lo < s.ts.len() && s.ts[lo] <= start {
                    lo += 1;
                }
                hi = hi.max(lo);
                while hi < s.ts.len() && s.ts[hi] <= r {
                    hi += 1;
                }
                if lo == hi {
                    continue;
                }
                if self.func == RangeFn::Raw {
                    for i in lo..hi {
                        out.push(&labels, s.ts[i], s.values[i]);
                    }
                    continue;
                }
                if let (Some(i), Some(m)) = (self.step_arg, &arg_steps) {
                    w.args[i] = m.get(&t).copied().unwrap_or(f64::NAN);
                    self.func.validate(&w.args)?;
                }
                w.step = t;
                w.start = start;
                w.end = r;
                if let Some(v) = eval(self.func, &s.ts[lo..hi], &s.values[lo..hi], &w) {
                    out.push(&labels, t, v);
                }
            }
        }
        out.finish()
    }
}
