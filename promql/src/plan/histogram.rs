//! `histogram_quantile` over classic buckets: the series of one histogram (same labels but
//! `le`) are its cumulative buckets; the quantile is interpolated linearly inside the bucket
//! where its rank falls, as Prometheus's `BucketQuantile` does. And the functions of native
//! histograms: `histogram_count`, `histogram_sum`, `histogram_avg` of each histogram sample
//! (float samples give nothing), the name dropped.

use foldhash::{HashMap, HashMapExt};

use datafusion::arrow::array::RecordBatch;

use super::Param;
use quiver_storage::FloatHistogram;

use super::input::{VectorBuilder, for_each_hist_row, for_each_vector_row, intern_rows};
use crate::error::Result;
use crate::functions::format_openmetrics_float;
use crate::functions::native;
use crate::labelset;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HistogramFn {
    /// `histogram_quantile(φ, v)`
    Quantile(Param),
    /// `histogram_quantiles(v, "label", φ…)`: one series per φ, labelled with it.
    Quantiles(String, Vec<Param>),
    /// `histogram_fraction(lower, upper, v)`
    Fraction(Param, Param),
    /// `histogram_count(v)`: a native histogram's observation count.
    Count,
    /// `histogram_sum(v)`: the sum of its observations.
    Sum,
    /// `histogram_avg(v)`: their mean (sum / count).
    Avg,
    /// `histogram_stddev(v)`: their estimated standard deviation.
    Stddev,
    /// `histogram_stdvar(v)`: their estimated variance.
    Stdvar,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistogramQuantileOp {
    pub func: HistogramFn,
}

impl HistogramQuantileOp {
    pub(super) fn evaluate(&self, input: &[RecordBatch]) -> Result<RecordBatch> {
        let field: Option<fn(&FloatHistogram) -> f64> = match self.func {
            HistogramFn::Count => Some(|h| h.count),
            HistogramFn::Sum => Some(|h| h.sum),
            HistogramFn::Avg => Some(|h| h.sum / h.count),
            HistogramFn::Stddev => Some(|h| native::variance(h).sqrt()),
            HistogramFn::Stdvar => Some(native::variance),
            _ => None,
        };
        if let Some(field) = field {
            return native_only(input, |h, out, labels, t| {
                out.push(labels, t, field(h));
                Ok(())
            });
        }
        // Native histograms answer sample by sample; classic buckets (float rows with `le`)
        // as before. Where both give a series at a step, the native answer stands, as in
        // Prometheus.
        let native = native_only(input, |h, out, labels, t| {
            match &self.func {
                HistogramFn::Quantile(q) => out.push(labels, t, native::quantile(q.0, h)),
                HistogramFn::Quantiles(label, qs) => {
                    for q in qs {
                        let l = labelset::set(labels, label, &format_openmetrics_float(q.0));
                        out.push(&l, t, native::quantile(q.0, h));
                    }
                }
                HistogramFn::Fraction(lo, hi) => {
                    out.push(labels, t, native::fraction(lo.0, hi.0, h))
                }
                _ => {}
            }
            Ok(())
        })?;
        let classic = self.classic(input)?;
        if native.num_rows() == 0 {
            return Ok(classic);
        }
        let mut seen: foldhash::HashSet<(Vec<u8>, i64)> = foldhash::HashSet::default();
        let mut out = VectorBuilder::default();
        for_each_vector_row(std::slice::from_ref(&native), |l, t, v| {
            seen.insert((l.to_vec(), t));
            out.push(l, t, v);
        });
        for_each_vector_row(std::slice::from_ref(&classic), |l, t, v| {
            if !seen.contains(&(l.to_vec(), t)) {
                out.push(l, t, v);
            }
        });
        out.finish()
    }

    /// `histogram_quantile` and friends over classic buckets (float rows with `le`).
    fn classic(&self, input: &[RecordBatch]) -> Result<RecordBatch> {
        let le = [
            "le".to_string(),
            labelset::METRIC_NAME.to_string(),
            labelset::DROP_NAME.to_string(),
        ];
        let input = intern_rows(input);
        // Per series, once: its bucket bound and its histogram (labels without `le`).
        let mut keys: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut key_labels: Vec<Vec<u8>> = Vec::new();
        let series: Vec<Option<(f64, usize)>> = input
            .labels
            .iter()
            .map(|l| {
                let upper = labelset::get(l, "le").and_then(|s| s.parse::<f64>().ok())?;
                let mut key = Vec::new();
                labelset::drop(l, &le, &mut key);
                let n = key_labels.len();
                let id = *keys.entry(key.clone()).or_insert_with(|| {
                    key_labels.push(key);
                    n
                });
                Some((upper, id))
            })
            .collect();
        let mut groups: HashMap<(i64, usize), Vec<(f64, f64)>> = HashMap::new();
        let mut order = Vec::new();
        for (t, k, v) in &input.rows {
            let Some((upper, id)) = series[*k as usize] else {
                continue;
            };
            groups
                .entry((*t, id))
                .or_insert_with_key(|k| {
                    order.push(*k);
                    Vec::new()
                })
                .push((upper, *v));
        }
        let order: Vec<(i64, Vec<u8>, (i64, usize))> = order
            .into_iter()
            .map(|(t, id)| (t, key_labels[id].clone(), (t, id)))
            .collect();
        let mut out = VectorBuilder::default();
        for (t, labels, gk) in order {
            let k = (t, labels);
            let mut buckets = groups.remove(&gk).unwrap_or_default();
            match &self.func {
                HistogramFn::Quantile(q) => out.push(&k.1, k.0, bucket_quantile(q.0, &mut buckets)),
                HistogramFn::Quantiles(label, qs) => {
                    for q in qs {
                        let labels = labelset::set(&k.1, label, &format_openmetrics_float(q.0));
                        out.push(&labels, k.0, bucket_quantile(q.0, &mut buckets));
                    }
                }
                HistogramFn::Fraction(lo, hi) => {
                    out.push(&k.1, k.0, bucket_fraction(lo.0, hi.0, &mut buckets))
                }
                // Answered from native histograms only.
                HistogramFn::Count
                | HistogramFn::Sum
                | HistogramFn::Avg
                | HistogramFn::Stddev
                | HistogramFn::Stdvar => {}
            }
        }
        out.finish()
    }
}

/// Runs `f` on each native histogram row of `input` (decoded), with the row's labels without
/// `__name__`; float rows give nothing.
fn native_only(
    input: &[RecordBatch],
    mut f: impl FnMut(&FloatHistogram, &mut VectorBuilder, &[u8], i64) -> Result<()>,
) -> Result<RecordBatch> {
    let name = [
        labelset::METRIC_NAME.to_string(),
        labelset::DROP_NAME.to_string(),
    ];
    let mut out = VectorBuilder::default();
    let mut labels = Vec::new();
    let mut result = Ok(());
    for_each_hist_row(input, |l, t, bytes| {
        if result.is_err() {
            return;
        }
        result = FloatHistogram::decode(bytes)
            .map_err(|e| crate::error::Error::Internal(format!("a native histogram: {e}")))
            .and_then(|(h, _)| {
                labels.clear();
                labelset::drop(l, &name, &mut labels);
                f(&h, &mut out, &labels, t)
            });
    });
    result?;
    out.finish()
}

/// Prometheus's `BucketQuantile` over (upper bound, cumulative count) pairs.
pub fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let Some(mut merged) = coalesce(buckets) else {
        return f64::NAN;
    };
    // Force monotonic counts; ignore tiny floating-point differences.
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) || cur < prev {
            b.1 = prev;
            continue;
        }
        prev = cur;
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1]
        .iter()
        .position(|x| x.1 >= rank)
        .unwrap_or(merged.len() - 1);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Prometheus's `BucketFraction`: the share of observations between `lower` and `upper`,
/// interpolating linearly inside the buckets the bounds fall in.
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    let Some(merged) = coalesce(buckets) else {
        return f64::NAN;
    };
    let count = merged[merged.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, b) in merged.iter().enumerate() {
        let lower_bound = if i > 0 {
            merged[i - 1].0
        } else if b.0 > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        let upper_bound = b.0;
        // Inside a bucket of infinite width nothing is interpolated: below a -Inf lower bound
        // the rank is the bucket's whole count (as the +Inf bucket's is the previous one's),
        // where the formula would give Inf/Inf = NaN.
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.1
            } else {
                rank + (b.1 - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.1;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// The buckets by bound, those with the same bound added up; `None` without a `+Inf` bucket.
fn coalesce(buckets: &mut [(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(*b),
        }
    }
    Some(merged)
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / sum.min(f64::MAX) < eps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_inside_its_bucket() {
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 1.0);
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.75, &mut b), 1.5);
    }

    #[test]
    fn fraction_interpolates_inside_buckets() {
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_fraction(0.0, 1.5, &mut b), 0.75);
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(
            bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, &mut b),
            1.0
        );
    }

    #[test]
    fn fraction_does_not_interpolate_below_a_negative_first_bucket() {
        // Regression: with a first bucket of (-Inf, -3], a lower bound below -3 gave NaN.
        let mut b = vec![
            (-3.0, 10.0),
            (-2.0, 12.0),
            (-1.0, 15.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(bucket_fraction(-4.0, -2.0, &mut b), 0.02);
        let mut b = vec![(-3.0, 10.0), (-2.0, 12.0), (f64::INFINITY, 100.0)];
        assert_eq!(bucket_fraction(-4.0, -2.5, &mut b), 0.01);
    }

    #[test]
    fn quantile_without_an_inf_bucket_is_nan() {
        assert!(bucket_quantile(0.5, &mut [(1.0, 1.0)]).is_nan());
    }
}
