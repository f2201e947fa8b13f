//! The statistics of one histogram, as Prometheus's `promql/quantile.go` and `functions.go`
//! compute them: the quantile and fraction estimates behind `histogram_quantile` and
//! `histogram_fraction`, and the variance behind `histogram_stddev` and `histogram_stdvar`.
//! PromQL and SQL both use them.

use super::{Bucket, FloatHistogram, kahan_inc};

impl FloatHistogram {
    /// Prometheus's `HistogramQuantile`: the φ-quantile, interpolated inside the bucket where its
    /// rank falls (logarithmically in exponential buckets, linearly in custom buckets and in the
    /// zero bucket).
    pub fn quantile(&self, q: f64) -> f64 {
        let h = self;
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
        let mut it: Box<dyn Iterator<Item = Bucket>> = if forward {
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
    pub fn fraction(&self, lower: f64, upper: f64) -> f64 {
        let h = self;
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
    pub fn variance(&self) -> f64 {
        let h = self;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Span;

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
        assert!((h.quantile(0.5) - 2f64.powf(1.25)).abs() < 1e-12);
        // Rank 1: half into the zero bucket, with only positive buckets: [0, 0.001].
        assert!((h.quantile(0.1) - 0.0005).abs() < 1e-12);
        // The top: upper bound of the last bucket.
        assert_eq!(h.quantile(1.0), 8.0);
        assert_eq!(h.quantile(-0.1), f64::NEG_INFINITY);
        assert_eq!(h.quantile(1.1), f64::INFINITY);
        assert!(h.quantile(f64::NAN).is_nan());
        assert!(FloatHistogram::default().quantile(0.5).is_nan());
    }

    #[test]
    fn fractions_interpolate_as_prometheus() {
        let h = h();
        assert_eq!(h.fraction(0.0, 8.0), 1.0);
        // (2,4] whole: 4 of 10.
        assert!((h.fraction(2.0, 4.0) - 0.4).abs() < 1e-12);
        // Half of (2,4] on a log scale: from 2 to 2^1.5.
        assert!((h.fraction(2.0, 2f64.powf(1.5)) - 0.2).abs() < 1e-12);
        assert_eq!(h.fraction(4.0, 2.0), 0.0);
        assert!(h.fraction(f64::NAN, 2.0).is_nan());
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
        assert!((h.variance() - want).abs() < 1e-12);
    }
}
