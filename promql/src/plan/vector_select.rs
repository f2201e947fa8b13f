//! The instant vector selector: at each step, the newest sample in the lookback window
//! `(t - lookback, t]` of each series, unless that sample is a staleness marker.

use datafusion::arrow::array::RecordBatch;

use super::group_agg::{GroupSink, StreamAgg};
use super::input::{VectorBuilder, decode_hist, group_series};
use super::{SeriesMap, Steps, TimeShift};
use crate::error::Result;
use crate::guard::QueryGuard;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VectorSelectOp {
    pub steps: Steps,
    pub shift: TimeShift,
    /// ms
    pub lookback: i64,
    pub series: SeriesMap,
    /// `timestamp(selector)`: yield the sample's time (s) instead of its value.
    pub timestamp_fn: bool,
    /// `agg by (…) (selector)` fused into the node (see [`StreamAgg`]).
    pub aggregate: Option<StreamAgg>,
    /// Its series may hold native histograms in the window (the scan has a `histogram`
    /// column). The planner refuses a fused aggregation over them.
    pub histograms: bool,
}

impl VectorSelectOp {
    /// Whether the output may hold histograms (`timestamp()` gives floats of either kind).
    pub(super) fn yields_histograms(&self) -> bool {
        self.histograms && !self.timestamp_fn && self.aggregate.as_ref().is_none_or(|a| a.sums())
    }

    pub(super) fn evaluate(
        &self,
        batches: &[RecordBatch],
        guard: &QueryGuard,
    ) -> Result<RecordBatch> {
        let mut series = group_series(batches, Some(&self.series))?;
        // A histogram weighs as Prometheus weighs it: its size in 16-byte units.
        guard.add_samples(series.iter().map(|s| s.weight()).sum())?;
        let mut rows = VectorBuilder::with_histograms(self.yields_histograms());
        let mut groups = self.aggregate.as_ref().map(|agg| {
            // Series in label order, as Prometheus feeds its aggregations.
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            GroupSink::new(agg, self.steps.len(), series.len())
                .with_histograms(self.yields_histograms())
        });
        for s in &series {
            if let Some(g) = &mut groups {
                g.begin(&s.labels);
            }
            // Reference times never decrease along the steps, so one cursor walks the samples.
            let mut next = 0; // first sample after the reference time
            let mut decoded: Option<(usize, quiver_storage::FloatHistogram)> = None;
            for (k, t) in self.steps.iter().enumerate() {
                let r = self.shift.reference(t);
                while next < s.ts.len() && s.ts[next] <= r {
                    next += 1;
                }
                if next == 0 {
                    continue;
                }
                let i = next - 1;
                if s.ts[i] <= r - self.lookback || s.is_stale(i) {
                    continue;
                }
                if let Some(h) = s.hist(i)
                    && !self.timestamp_fn
                {
                    match &mut groups {
                        // A sample repeats over the steps of its lookback: decoded once.
                        Some(g) => {
                            if decoded.as_ref().is_none_or(|(at, _)| *at != i) {
                                decoded = Some((i, decode_hist(h)?));
                            }
                            let (_, h) = decoded.as_ref().expect("just decoded");
                            g.push_hist(k, h);
                        }
                        None => rows.push_hist(&s.labels, t, h)?,
                    }
                    continue;
                }
                let v = if self.timestamp_fn {
                    s.ts[i] as f64 / 1000.0
                } else {
                    s.values[i]
                };
                match &mut groups {
                    Some(g) => g.push(k, v),
                    None => rows.push(&s.labels, t, v),
                }
            }
        }
        match groups {
            Some(g) => g.finish(&self.steps),
            None => rows.finish(),
        }
    }
}
