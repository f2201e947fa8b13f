//! Functions of windows of native histograms, as Prometheus's `functions.go` computes them:
//! `rate`/`increase`/`delta` and the `*_over_time` sums. The statistics of one histogram
//! (`histogram_quantile`, `histogram_fraction`, the variance behind `histogram_stddev` and
//! `histogram_stdvar`) are [`FloatHistogram`]'s own, so SQL computes them the same way. (Their annotations, the NaN-observation infos and the mixed-window warnings, are
//! not reported yet: Quiver's responses carry no warnings or infos.)

use quiver_storage::FloatHistogram;

/// Prometheus's `extrapolatedRate` for a window of native histograms (`rate`, `increase`,
/// `delta`): the difference of the last and first (counter resets added back for a counter),
/// at the smallest schema of the window, extrapolated to the window's edges as for floats, a
/// gauge histogram. `None` where Prometheus gives no sample: fewer than two histograms, or
/// histograms that cannot be combined (exponential and custom buckets mixed).
///
/// `resets[i]` says whether `hs[i]` resets the counter after `hs[i - 1]` (`DetectReset`),
/// computed once per series by the caller: windows overlap from step to step, and detecting
/// a reset walks every bucket of both histograms.
pub fn rate(
    ts: &[i64],
    hs: &[&FloatHistogram],
    resets: &[bool],
    (start, end): (i64, i64),
    counter: bool,
    is_rate: bool,
) -> Option<FloatHistogram> {
    let n = hs.len();
    if n < 2 {
        return None;
    }
    let mut h = difference(hs, resets, counter)?;
    let first = hs[0];
    let zero = (counter && h.count > 0.0 && first.count >= 0.0).then(|| first.count / h.count);
    let factor = super::range::extrapolation_factor(ts[0], ts[n - 1], n, start, end, zero, is_rate);
    h.mul(factor);
    Some(h)
}

/// Prometheus's `instantValue` for two histograms (`irate`, `idelta`): the last minus the one
/// before (for `irate` the last alone after a counter reset), per second for `irate`, a gauge
/// histogram. `None` for equal times or incompatible histograms.
pub fn instant_value(
    (t0, prev): (i64, &FloatHistogram),
    (t1, last): (i64, &FloatHistogram),
    is_rate: bool,
) -> Option<FloatHistogram> {
    let interval = t1 - t0;
    if interval == 0 {
        return None;
    }
    let mut h = last.clone();
    if !is_rate || !last.detect_reset(prev) {
        h.sub(prev).ok()?;
    }
    h.hint = quiver_storage::CounterResetHint::Gauge;
    h.compact(0);
    if is_rate {
        h.div(interval as f64 / 1000.0);
    }
    Some(h)
}

/// Prometheus's `sum_over_time` of histograms: their Kahan sum (`None` if they cannot be
/// added: exponential and custom buckets mixed).
pub fn sum_over_time(hs: &[&FloatHistogram]) -> Option<FloatHistogram> {
    let (mut sum, comp) = kahan_sum(hs)?;
    if let Some(c) = comp {
        sum.add(&c).ok()?;
    }
    Some(sum)
}

/// Prometheus's `avg_over_time` of histograms: the Kahan sum divided by their number, or,
/// once the sum would overflow, an incremental mean ([`HistSum`], as `avg` folds them).
pub fn avg_over_time(hs: &[&FloatHistogram]) -> Option<FloatHistogram> {
    let (first, rest) = hs.split_first()?;
    let mut mean = HistSum::new((*first).clone());
    for h in rest {
        mean.add(h, true);
    }
    mean.result(true)
}

/// The Kahan sum of histograms and its compensation (Go's `KahanAdd` loop).
fn kahan_sum(hs: &[&FloatHistogram]) -> Option<(FloatHistogram, Option<FloatHistogram>)> {
    let (first, rest) = hs.split_first()?;
    let mut sum = (*first).clone();
    let mut comp = None;
    for h in rest {
        comp = Some(sum.kahan_add(h, comp.take()).ok()?.0);
    }
    Some((sum, comp))
}

/// Each histogram's [`FloatHistogram::detect_reset`] against the one before it (`false` for
/// the first, and where either is a float sample), for [`rate`].
pub fn reset_flags(hs: &[Option<FloatHistogram>]) -> Vec<bool> {
    (0..hs.len())
        .map(|i| {
            i > 0
                && matches!((&hs[i - 1], &hs[i]), (Some(prev), Some(curr)) if curr.detect_reset(prev))
        })
        .collect()
}

/// Prometheus's `histogramRate` before extrapolation: last minus first, resets added back.
fn difference(hs: &[&FloatHistogram], resets: &[bool], counter: bool) -> Option<FloatHistogram> {
    let n = hs.len();
    let last = hs[n - 1];
    let mut prev: FloatHistogram = hs[0].clone();
    let mut custom = prev.is_custom_buckets();
    let first_resets = counter && resets[1];
    if first_resets {
        // A reset between the first two: the first does not count (nor its layout).
        prev = FloatHistogram {
            schema: hs[1].schema,
            custom_values: hs[1].custom_values.clone(),
            ..Default::default()
        };
        custom = hs[1].is_custom_buckets();
    }
    if last.is_custom_buckets() != custom {
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for curr in &hs[1..n - 1] {
        if !counter {
            continue;
        }
        min_schema = min_schema.min(curr.schema);
        if curr.is_custom_buckets() != custom {
            return None;
        }
    }
    let mut h = last.copy_to_schema(min_schema).ok()?;
    h.sub(&prev).ok()?;
    if counter {
        // After a reset between the first two, the first counts as empty: nothing to add back.
        let from = if first_resets { 2 } else { 1 };
        for i in from..n {
            if resets[i] {
                h.add(hs[i - 1]).ok()?;
            }
        }
    }
    h.hint = quiver_storage::CounterResetHint::Gauge;
    h.compact(0);
    Some(h)
}

/// Native histograms added up for `sum` or averaged for `avg` (and `avg_over_time`): their
/// Kahan sum (Go's `KahanAdd`) and how many there were. A fused aggregation keeps one per
/// (group, step) cell.
pub struct HistSum {
    sum: FloatHistogram,
    comp: Option<FloatHistogram>,
    count: usize,
    /// Exponential and custom buckets met: the cell gives nothing (Prometheus warns).
    incompatible: bool,
    /// `avg` once the sum would overflow: the running mean, which then takes each histogram
    /// (`comp` compensating it), as Prometheus switches to an incremental mean.
    mean: Option<FloatHistogram>,
}

impl HistSum {
    /// Starts with one histogram.
    pub fn new(h: FloatHistogram) -> Self {
        HistSum {
            sum: h,
            comp: None,
            count: 1,
            incompatible: false,
            mean: None,
        }
    }

    /// Adds `h`: to the sum for `sum`, to the mean for `avg`.
    pub fn add(&mut self, h: &FloatHistogram, avg: bool) {
        self.count += 1;
        if self.incompatible {
            return;
        }
        if avg {
            self.add_to_mean(h);
        } else {
            match self.sum.kahan_add(h, self.comp.take()) {
                Ok((comp, _)) => self.comp = Some(comp),
                Err(_) => self.incompatible = true,
            }
        }
    }

    /// Adds `h` to an average (Prometheus's `AVG` over histograms): summed while the sum
    /// stays finite, then folded into an incremental mean, `mean * (n-1)/n + h/n`.
    fn add_to_mean(&mut self, h: &FloatHistogram) {
        let n = self.count as f64;
        if self.mean.is_none() {
            let mut sum = self.sum.clone();
            let Ok((comp, _)) = sum.kahan_add(h, self.comp.clone()) else {
                self.incompatible = true;
                return;
            };
            if !sum.has_overflow() {
                (self.sum, self.comp) = (sum, Some(comp));
                return;
            }
            let mut mean = self.sum.clone();
            mean.div(n - 1.0);
            if let Some(c) = self.comp.as_mut() {
                c.div(n - 1.0);
            }
            self.mean = Some(mean);
        }
        let Some(mean) = self.mean.as_mut() else {
            return;
        };
        let q = (n - 1.0) / n;
        if let Some(c) = self.comp.as_mut() {
            c.mul(q);
        }
        let mut to_add = h.clone();
        to_add.div(n);
        mean.mul(q);
        match mean.kahan_add(&to_add, self.comp.take()) {
            Ok((comp, _)) => self.comp = Some(comp),
            Err(_) => self.incompatible = true,
        }
    }

    /// The `sum` or `avg`: the sum (divided by the count for `avg`) or the
    /// incremental mean, plus its compensation, compacted. `None` when the histograms could
    /// not be added up.
    pub fn result(self, avg: bool) -> Option<FloatHistogram> {
        if self.incompatible {
            return None;
        }
        let (mut h, comp) = match self.mean {
            Some(mean) => (mean, self.comp),
            None if avg => {
                let n = self.count as f64;
                let mut h = self.sum;
                h.div(n);
                let comp = self.comp.map(|mut c| {
                    c.div(n);
                    c
                });
                (h, comp)
            }
            None => (self.sum, self.comp),
        };
        if let Some(comp) = comp {
            h.add(&comp).ok()?;
        }
        h.compact(0);
        Some(h)
    }
}
