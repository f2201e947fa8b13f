//! A function over range windows: for each series and step, the samples in
//! `(ref - range, ref]` go through a [`RangeFn`] kernel. Samples are sorted, and the window
//! edges only move forward along the steps, so each series is walked with two cursors.

use std::borrow::Cow;

use datafusion::arrow::array::RecordBatch;
use quiver_storage::{CounterResetHint, FloatHistogram, is_stale_nan};

use super::group_agg::{GroupSink, StreamAgg};
use super::input::{VectorBuilder, decode_hist, group_series, scalar_by_step};
use super::{Param, SeriesMap, Steps, TimeShift};
use crate::error::Result;
use crate::functions::native;
use crate::functions::range::{HistogramMode, Window as FnWindow, eval, extrapolated_rate};
use crate::guard::QueryGuard;
use crate::labelset::{self, Grouping};

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
    /// `agg by (…) (f(x[r]))` fused into the node: results accumulate per group and step as
    /// each series is evaluated, instead of a row per series and step going to an aggregate.
    pub aggregate: Option<StreamAgg>,
    /// The selector's series may hold native histograms in the window (its scan has a
    /// `histogram` column). The planner allows only the functions that handle them (`RangeFn::handles_histograms`).
    pub histograms: bool,
}

/// Where a range node's results go: rows per series and step, or a fused aggregation.
enum Sink<'a> {
    Rows(VectorBuilder),
    Groups(GroupSink<'a>),
}

impl Sink<'_> {
    /// Starts a series.
    fn begin(&mut self, labels: &[u8]) {
        if let Sink::Groups(g) = self {
            g.begin(labels);
        }
    }

    fn push(&mut self, labels: &[u8], step_index: usize, t: i64, v: f64) {
        match self {
            Sink::Rows(out) => out.push(labels, t, v),
            Sink::Groups(g) => g.push(step_index, v),
        }
    }

    fn finish(self, grid: &Steps) -> Result<RecordBatch> {
        match self {
            Sink::Rows(out) => out.finish(),
            Sink::Groups(g) => g.finish(grid),
        }
    }
}

impl RangeFnOp {
    /// A histogram of the window, decoded. A subquery's points forget their counter-reset
    /// hints (as Prometheus's `evalSubquery` does): a point repeated by a fine subquery would
    /// count its reset again, and a coarse one may skip the sample that carried it.
    fn decode_window_hist(&self, bytes: &[u8]) -> Result<FloatHistogram> {
        let mut h = decode_hist(bytes)?;
        if matches!(self.source, RangeSource::Subquery)
            && matches!(h.hint, CounterResetHint::Reset | CounterResetHint::NotReset)
        {
            h.hint = CounterResetHint::Unknown;
        }
        Ok(h)
    }

    /// Whether the output may hold histograms (the raw samples of a range).
    pub(super) fn yields_histograms(&self) -> bool {
        self.histograms
            && self.func.handles_histograms()
            && self.aggregate.as_ref().is_none_or(|a| a.sums())
    }

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
        // A histogram weighs as Prometheus weighs it: its size in 16-byte units.
        guard.add_samples(series.iter().map(|s| s.weight()).sum())?;
        let args: Vec<f64> = self.args.iter().map(|p| p.0).collect();
        if self.step_arg.is_none() {
            self.func.validate(&args)?;
        }
        let mut out = match &self.aggregate {
            None => Sink::Rows(VectorBuilder::with_histograms(self.yields_histograms())),
            Some(agg) => {
                // Series in label order, as Prometheus feeds its aggregations.
                series.sort_by(|a, b| a.labels.cmp(&b.labels));
                Sink::Groups(
                    GroupSink::new(agg, self.steps.len(), series.len())
                        .with_histograms(self.yields_histograms()),
                )
            }
        };
        let mut w = FnWindow {
            step: 0,
            start: 0,
            end: 0,
            args,
        };
        // Rows carry the pending removal of `__name__`; a fused `by (…)` key leaves the name
        // out anyway (it never groups by it). A `without (…)` key needs the mark: it drops the
        // name's companions (`__type__`, `__unit__`) with it.
        let unmarked = self.func.keeps_name()
            || matches!(&self.aggregate, Some(a) if matches!(a.grouping, Grouping::By(_)));
        for s in &mut series {
            guard.check_deadline()?;
            if s.values.iter().any(|v| is_stale_nan(*v)) {
                let keep: Vec<bool> = (0..s.ts.len()).map(|i| !s.is_stale(i)).collect();
                s.retain(&keep);
            }
            // Native histograms: left out by the functions of values, counted as samples by
            // `count_over_time` and its kin, decoded once (windows overlap from step to step)
            // for the functions that compute with them.
            let mode = self.func.histogram_mode();
            let has_hists = s.hists.iter().any(Option::is_some);
            if has_hists && mode == HistogramMode::Ignores {
                let keep: Vec<bool> = (0..s.ts.len()).map(|i| s.hist(i).is_none()).collect();
                s.retain(&keep);
            }
            let decoded: Vec<Option<FloatHistogram>> = match (has_hists, mode) {
                (true, HistogramMode::Computes) => s
                    .hists
                    .iter()
                    .map(|h| h.map(|b| self.decode_window_hist(b)).transpose())
                    .collect::<Result<_>>()?,
                (true, HistogramMode::Refuses) => {
                    return Err(crate::error::Error::Internal(
                        "native histograms reached a range function planned for floats".into(),
                    ));
                }
                _ => Vec::new(),
            };
            // Counter resets between consecutive histograms, once per series (`rate` and
            // `increase` windows overlap from step to step).
            let hist_resets =
                if !decoded.is_empty() && matches!(self.func, RangeFn::Rate | RangeFn::Increase) {
                    native::reset_flags(&decoded)
                } else {
                    Vec::new()
                };
            let labels: Cow<'_, [u8]> = if unmarked {
                Cow::Borrowed(&s.labels)
            } else {
                Cow::Owned(labelset::mark_drop_name(&s.labels))
            };
            out.begin(&labels);
            // (Histograms' placeholder values must not enter the prefix sums.)
            let prefix = if decoded.is_empty() {
                PrefixSums::for_window_sums(self.func, &s.values)
            } else {
                None
            };
            let resets = ResetSums::for_counter(self.func, &s.values);
            let (mut lo, mut hi) = (0, 0);
            let mut buf = Vec::new();
            for (k, t) in self.steps.iter().enumerate() {
                // Histogram windows cost their buckets at every step: watch the deadline.
                if !decoded.is_empty() && k % 64 == 63 {
                    guard.check_deadline()?;
                }
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
                if let Some(p) = &prefix {
                    let sum = p.sum(lo, hi);
                    let v = if self.func == RangeFn::SumOverTime {
                        sum
                    } else {
                        sum / (hi - lo) as f64
                    };
                    out.push(&labels, k, t, v);
                    continue;
                }
                if !decoded.is_empty()
                    && self.func != RangeFn::Raw
                    && decoded[lo..hi].iter().any(Option::is_some)
                {
                    let resets = hist_resets.get(lo..hi).unwrap_or_default();
                    match self.histogram_window(
                        &decoded[lo..hi],
                        resets,
                        &s.ts[lo..hi],
                        &s.values[lo..hi],
                        start,
                        r,
                    ) {
                        // A float answer from the float path below.
                        HistWindow::Floats => {}
                        HistWindow::Nothing => continue,
                        HistWindow::Value(v) => {
                            out.push(&labels, k, t, v);
                            continue;
                        }
                        HistWindow::Histogram(h) => {
                            match &mut out {
                                Sink::Rows(rows) => {
                                    buf.clear();
                                    h.encode(&mut buf);
                                    rows.push_hist(&labels, t, &buf)?;
                                }
                                Sink::Groups(g) => g.push_hist(k, &h),
                            }
                            continue;
                        }
                    }
                }
                if self.func == RangeFn::Raw {
                    for i in lo..hi {
                        match (s.hist(i), &mut out) {
                            (Some(h), Sink::Rows(rows)) => rows.push_hist(&labels, s.ts[i], h)?,
                            _ => out.push(&labels, k, s.ts[i], s.values[i]),
                        }
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
                if let Some(rs) = &resets {
                    let v = extrapolated_rate(
                        &s.ts[lo..hi],
                        &s.values[lo..hi],
                        &w,
                        true,
                        self.func == RangeFn::Rate,
                        Some(rs.within(lo, hi)),
                    );
                    if let Some(v) = v {
                        out.push(&labels, k, t, v);
                    }
                    continue;
                }
                if let Some(v) = eval(self.func, &s.ts[lo..hi], &s.values[lo..hi], &w) {
                    out.push(&labels, k, t, v);
                }
            }
        }
        out.finish(&self.steps)
    }
}

/// What a window holding native histograms gives.
enum HistWindow {
    /// Its answer is a float: the float path computes it.
    Floats,
    /// No sample (a window mixing kinds, incompatible histograms: Prometheus warns).
    Nothing,
    Histogram(FloatHistogram),
    /// A float computed over both kinds (`resets`, `changes`).
    Value(f64),
}

impl RangeFnOp {
    /// The answer of a function that computes with histograms over a window holding some:
    /// `hs` are the window's samples (`None` for a float one), `resets` their counter resets
    /// ([`native::reset_flags`]; computed for `rate` and `increase` only).
    fn histogram_window(
        &self,
        hs: &[Option<FloatHistogram>],
        resets: &[bool],
        ts: &[i64],
        values: &[f64],
        start: i64,
        end: i64,
    ) -> HistWindow {
        let all: Option<Vec<&FloatHistogram>> = hs.iter().map(Option::as_ref).collect();
        let answer =
            |h: Option<FloatHistogram>| h.map_or(HistWindow::Nothing, HistWindow::Histogram);
        let n = hs.len();
        match self.func {
            RangeFn::Rate | RangeFn::Increase | RangeFn::Delta => match all {
                Some(all) => answer(native::rate(
                    ts,
                    &all,
                    resets,
                    (start, end),
                    self.func != RangeFn::Delta,
                    self.func == RangeFn::Rate,
                )),
                None => HistWindow::Nothing,
            },
            RangeFn::SumOverTime | RangeFn::AvgOverTime => match all {
                Some(all) if self.func == RangeFn::SumOverTime => {
                    answer(native::sum_over_time(&all))
                }
                Some(all) => answer(native::avg_over_time(&all)),
                None => HistWindow::Nothing,
            },
            // The newest (oldest) sample, of either kind.
            RangeFn::LastOverTime => hs[n - 1]
                .clone()
                .map_or(HistWindow::Floats, HistWindow::Histogram),
            RangeFn::FirstOverTime => hs[0]
                .clone()
                .map_or(HistWindow::Floats, HistWindow::Histogram),
            // The last two samples: both histograms, both floats, or nothing.
            RangeFn::Irate | RangeFn::Idelta if n >= 2 => match (&hs[n - 2], &hs[n - 1]) {
                (Some(a), Some(b)) => answer(native::instant_value(
                    (ts[n - 2], a),
                    (ts[n - 1], b),
                    self.func == RangeFn::Irate,
                )),
                (None, None) => HistWindow::Floats,
                _ => HistWindow::Nothing,
            },
            // Prometheus's walk over both kinds: a change of kind counts, histograms compare
            // by `DetectReset` (`resets`) or `Equals` (`changes`).
            RangeFn::Resets | RangeFn::Changes => {
                let mut n = 0usize;
                for i in 1..hs.len() {
                    let counted = match (&hs[i - 1], &hs[i]) {
                        (None, None) if self.func == RangeFn::Resets => values[i] < values[i - 1],
                        (None, None) => {
                            values[i] != values[i - 1]
                                && !(values[i].is_nan() && values[i - 1].is_nan())
                        }
                        (Some(a), Some(b)) if self.func == RangeFn::Resets => b.detect_reset(a),
                        (Some(a), Some(b)) => !b.equals(a),
                        _ => true,
                    };
                    n += usize::from(counted);
                }
                HistWindow::Value(n as f64)
            }
            _ => HistWindow::Floats,
        }
    }
}

/// Compensated prefix sums of a series, so `sum_over_time` and `avg_over_time` cost O(1) per
/// step however long the window: the window's sum is the difference of two prefixes (each a
/// Kahan sum and its compensation). Used only when every value is finite (an `Inf` or `NaN`
/// would poison every later prefix) and the series is long enough to pay off.
struct PrefixSums {
    sums: Vec<f64>,
    comps: Vec<f64>,
}

impl PrefixSums {
    fn for_window_sums(func: RangeFn, values: &[f64]) -> Option<Self> {
        if !matches!(func, RangeFn::SumOverTime | RangeFn::AvgOverTime)
            || values.len() < 64
            || !values.iter().all(|v| v.is_finite())
        {
            return None;
        }
        let mut sums = Vec::with_capacity(values.len() + 1);
        let mut comps = Vec::with_capacity(values.len() + 1);
        let (mut s, mut c) = (0.0, 0.0);
        sums.push(s);
        comps.push(c);
        for v in values {
            (s, c) = crate::functions::kahan_inc(*v, s, c);
            sums.push(s);
            comps.push(c);
        }
        // A sum that overflows takes Prometheus's incremental-mean path: compute directly.
        if !s.is_finite() {
            return None;
        }
        Some(PrefixSums { sums, comps })
    }

    /// The sum of values `lo..hi`.
    fn sum(&self, lo: usize, hi: usize) -> f64 {
        (self.sums[hi] - self.sums[lo]) + (self.comps[hi] - self.comps[lo])
    }
}

/// For `rate` and `increase`: running sums of the values lost at counter resets, so each
/// window's correction costs O(1). Used only when every value is an integer small enough that
/// all these sums are exact, so the result is the same as adding the resets one by one.
struct ResetSums {
    /// `sums[i]`: the values before each reset among samples `1..=i`.
    sums: Vec<f64>,
}

impl ResetSums {
    fn for_counter(func: RangeFn, values: &[f64]) -> Option<Self> {
        const EXACT: f64 = 4_503_599_627_370_496.0; // 2^52
        if !matches!(func, RangeFn::Rate | RangeFn::Increase)
            || values.len() < 64
            || !values.iter().all(|v| v.fract() == 0.0 && v.abs() < EXACT)
        {
            return None;
        }
        let mut sums = Vec::with_capacity(values.len());
        let mut acc = 0.0;
        sums.push(0.0);
        for w in values.windows(2) {
            if w[1] < w[0] {
                acc += w[0];
            }
            sums.push(acc);
        }
        (acc < EXACT).then_some(ResetSums { sums })
    }

    /// The correction for samples `lo..hi` (resets between consecutive samples inside).
    fn within(&self, lo: usize, hi: usize) -> f64 {
        self.sums[hi - 1] - self.sums[lo]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_sums_equal_walking_the_window() {
        let values: Vec<f64> = (0..200).map(|i| ((i * 37) % 50) as f64).collect();
        let r = ResetSums::for_counter(RangeFn::Increase, &values).unwrap();
        for (lo, hi) in [(0, 200), (3, 17), (50, 51), (10, 190)] {
            let mut walked = 0.0;
            for j in lo + 1..hi {
                if values[j] < values[j - 1] {
                    walked += values[j - 1];
                }
            }
            assert_eq!(r.within(lo, hi), walked, "{lo}..{hi}");
        }
        assert!(ResetSums::for_counter(RangeFn::Increase, &[0.5; 100]).is_none());
    }

    #[test]
    fn prefix_window_sums_match_direct_sums() {
        let values: Vec<f64> = (0..500)
            .map(|i| ((i * 7919) % 1000) as f64 / 7.0 - 50.0)
            .collect();
        let p = PrefixSums::for_window_sums(RangeFn::SumOverTime, &values).unwrap();
        for (lo, hi) in [(0, 500), (10, 250), (499, 500), (100, 101), (37, 400)] {
            let direct: f64 = values[lo..hi].iter().sum();
            let got = p.sum(lo, hi);
            assert!(
                (got - direct).abs() <= 1e-9 * direct.abs().max(1.0),
                "{lo}..{hi}: {got} vs {direct}"
            );
        }
        assert!(PrefixSums::for_window_sums(RangeFn::SumOverTime, &[f64::INFINITY; 100]).is_none());
    }
}
