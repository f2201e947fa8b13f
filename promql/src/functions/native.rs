//! Functions of one native histogram, as Prometheus's `promql/quantile.go` and `functions.go`
//! compute them: `histogram_quantile`, `histogram_fraction`, and the variance behind
//! `histogram_stddev` and `histogram_stdvar`, and `rate`/`increase`/`delta` over a window of
//! histograms. (Their annotations, the NaN-observation infos and the mixed-window warnings, are
//! not reported yet: Quiver's responses carry no warnings or infos.)

use quiver_storage::FloatHistogram;

use super::kahan_inc;

/// Prometheus's `HistogramQuantile`: the φ-quantile, interpolated inside the bucket where its
/// rank falls (logarithmically in exponential buckets, linearly in custom buckets and in the
/// zero bucket).
pub fn quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    // NaN observations count in `count` but in no bucket: walk from the bottom then.
    let forward = h.sum.is_nan() || q < 0.5;
    let mut it: Box<dyn Iterator<Item = quiver_storage::histogram::Bucket>> = if forward {
        Box::new(h.all_buckets())
    } else {
        Box::new(h.all_buckets_rev())
    };
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut found = None;
    for b in it.by_ref() {
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        found = Some(b);
        if count >= rank {
            break;
        }
    }
    let Some(mut bucket) = found else {
        // No bucket holds anything (Go's zero-valued bucket): below the rank.
        return if h.sum.is_nan() { f64::NAN } else { 0.0 };
    };
    let custom = h.is_custom_buckets();
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        return if h.sum.is_nan() {
            f64::NAN
        } else {
            bucket.upper
        };
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        (log_lower + (log_upper - log_lower) * fraction).exp2()
    } else {
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
    }
}

/// Prometheus's `HistogramFraction`: the estimated share of observations in
/// `[lower, upper]`.
pub fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let custom = h.is_custom_buckets();
    let (mut count, mut rank) = (0.0, 0.0);
    let (mut lower_rank, mut upper_rank) = (0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut it = h.all_buckets();
    for mut b in it.by_ref() {
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        // Go's `Bucket.FractionBelow` and the two interpolations around it.
        let linear = |v: f64| {
            if b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * (v - b.lower) / (b.upper - b.lower)
        };
        let exponential = |v: f64| {
            let (ll, lu, lv) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
            let below = if v > 0.0 {
                (lv - ll) / (lu - ll)
            } else {
                1.0 - (lv - lu) / (ll - lu)
            };
            rank + b.count * below
        };
        let interpolate = |v: f64| {
            if custom || zero_bucket {
                linear(v)
            } else {
                exponential(v)
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        // NaN observations are in `count` but in no bucket: count only those in buckets.
        count += it.map(|b| b.count).sum::<f64>();
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / h.count
}

/// Prometheus's `histogramVariance`: the variance of the observations, each bucket's taken at
/// its geometric mean (its arithmetic mean for custom buckets, 0 in the zero bucket).
pub fn variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut v, mut c) = (0.0, 0.0);
    for b in h.all_buckets().filter(|b| b.count != 0.0) {
        let val = if h.is_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -g } else { g }
        };
        let delta = val - mean;
        (v, c) = kahan_inc(b.count * delta * delta, v, c);
    }
    (v + c) / h.count
}

/// Prometheus's `extrapolatedRate` for a window of native histograms (`rate`, `increase`,
/// `delta`): the difference of the last and first (counter resets added back for a counter),
/// at the smallest schema of the window, extrapolated to the window's edges as for floats, a
/// gauge histogram. `None` where Prometheus gives no sample: fewer than two histograms, or
/// histograms that cannot be combined (exponential and custom buckets mixed).
pub fn rate(
    ts: &[i64],
    hs: &[&FloatHistogram],
    start: i64,
    end: i64,
    counter: bool,
    is_rate: bool,
) -> Option<FloatHistogram> {
    let n = hs.len();
    if n < 2 {
        return None;
    }
    let mut h = difference(hs, counter)?;
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

/// Prometheus's `avg_over_time` of histograms: the Kahan sum divided by their number (the
/// direct mean; Prometheus switches to an incremental mean only once a sum overflows).
pub fn avg_over_time(hs: &[&FloatHistogram]) -> Option<FloatHistogram> {
    let n = hs.len() as f64;
    let (mut sum, comp) = kahan_sum(hs)?;
    sum.div(n);
    if let Some(mut c) = comp {
        c.div(n);
        sum.add(&c).ok()?;
    }
    Some(sum)
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

/// Prometheus's `histogramRate` before extrapolation: last minus first, resets added back.
fn difference(hs: &[&FloatHistogram], counter: bool) -> Option<FloatHistogram> {
    let n = hs.len();
    let last = hs[n - 1];
    let mut prev: FloatHistogram = hs[0].clone();
    let mut custom = prev.is_custom_buckets();
    if counter && hs[1].detect_reset(&prev) {
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
        let mut before = &prev;
        for curr in &hs[1..] {
            if curr.detect_reset(before) {
                h.add(before).ok()?;
            }
            before = curr;
        }
    }
    h.hint = quiver_storage::CounterResetHint::Gauge;
    h.compact(0);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_storage::Span;

    /// Schema 0: buckets (1,2]: 2, (2,4]: 4, (4,8]: 2, and 2 in the zero bucket.
    fn h() -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 10.0,
            sum: 30.0,
            positive_spans: vec![Span {
                offset: 1,
                length: 3,
            }],
            positive_buckets: vec![2.0, 4.0, 2.0],
            ..Default::default()
        }
    }

    #[test]
    fn quantiles_interpolate_on_a_log_scale_inside_exponential_buckets() {
        let h = h();
        // Rank 5 of 10: 2 (zero) + 2 (1,2] = 4 below, so 1/4 into (2,4]: 2^(1 + 1/4).
        assert!((quantile(0.5, &h) - 2f64.powf(1.25)).abs() < 1e-12);
        // Rank 1: half into the zero bucket, with only positive buckets: [0, 0.001].
        assert!((quantile(0.1, &h) - 0.0005).abs() < 1e-12);
        // The top: upper bound of the last bucket.
        assert_eq!(quantile(1.0, &h), 8.0);
        assert_eq!(quantile(-0.1, &h), f64::NEG_INFINITY);
        assert_eq!(quantile(1.1, &h), f64::INFINITY);
        assert!(quantile(f64::NAN, &h).is_nan());
        assert!(quantile(0.5, &FloatHistogram::default()).is_nan());
    }

    #[test]
    fn fractions_interpolate_as_prometheus() {
        let h = h();
        assert_eq!(fraction(0.0, 8.0, &h), 1.0);
        // (2,4] whole: 4 of 10.
        assert!((fraction(2.0, 4.0, &h) - 0.4).abs() < 1e-12);
        // Half of (2,4] on a log scale: from 2 to 2^1.5.
        assert!((fraction(2.0, 2f64.powf(1.5), &h) - 0.2).abs() < 1e-12);
        assert_eq!(fraction(4.0, 2.0, &h), 0.0);
        assert!(fraction(f64::NAN, 2.0, &h).is_nan());
    }

    #[test]
    fn variance_takes_each_bucket_at_its_geometric_mean() {
        let h = h();
        let mean = 3.0;
        let want = (2.0 * (0.0f64 - mean).powi(2)
            + 2.0 * (2f64.sqrt() - mean).powi(2)
            + 4.0 * (8f64.sqrt() - mean).powi(2)
            + 2.0 * (32f64.sqrt() - mean).powi(2))
            / 10.0;
        assert!((variance(&h) - want).abs() < 1e-12);
    }
}
