//! Subqueries: the inner expression evaluated on its own grid, aligned to multiples of its
//! step (Prometheus aligns to the epoch), covering every window the outer steps look at.

use promql_parser::parser::SubqueryExpr;

use super::selector::{RangeInput, raw_window, ref_bounds};
use super::{Planned, Planner, duration_ms};
use crate::error::{Error, Result};
use crate::guard::TOO_MANY_SAMPLES;
use crate::plan::{RangeSource, Steps};

impl Planner<'_> {
    pub(crate) fn subquery_input(&self, sq: &SubqueryExpr, steps: Steps) -> Result<RangeInput> {
        let shift = self.shift(&sq.at, &sq.offset);
        let range = duration_ms(&sq.range);
        let step = match &sq.step {
            Some(s) if !s.is_zero() => duration_ms(s),
            _ => self.opts.subquery_step,
        };
        if step <= 0 {
            return Err(Error::BadData("zero or negative subquery step".into()));
        }
        let (lo, hi) = ref_bounds(shift, steps);
        // The first multiple of the step at or after the earliest window start. Times and
        // durations are bounded (`bounds.rs`), so this cannot overflow.
        let first = lo - range;
        let mut start = first.div_euclid(step) * step;
        if start < first {
            start += step;
        }
        let inner = Steps {
            start,
            end: hi,
            step,
        };
        // Every point of the grid is a sample held at least once: a grid past the sample
        // bound is refused before anything is allocated for it (`x[100y:1ms]`).
        let points = (hi - start).max(0) / step + 1;
        if points as u64 > self.opts.max_points as u64 {
            return Err(Error::Limit(format!(
                "{TOO_MANY_SAMPLES} (a subquery of {points} steps)"
            )));
        }
        let plan = self.vector_with_histograms(&sq.expr, inner)?;
        let histograms = crate::plan::has_hist(plan.schema().as_arrow());
        Ok(RangeInput {
            plan,
            source: RangeSource::Subquery,
            shift,
            range,
            histograms,
        })
    }

    /// `expr[5m:1m]` as a query's result: the inner points in the window.
    pub(crate) fn plan_raw_subquery(&self, sq: &SubqueryExpr, steps: Steps) -> Result<Planned> {
        raw_window(self.subquery_input(sq, steps)?, steps)
    }
}
