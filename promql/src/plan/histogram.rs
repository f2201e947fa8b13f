//! `histogram_quantile` over classic buckets: the series of one histogram (same labels but
//! `le`) are its cumulative buckets; the quantile is interpolated linearly inside the bucket
//! where its rank falls, as Prometheus's `BucketQuantile` does. And the functions of native
//! histograms: `histogram_count`, `histogram_sum`, `histogram_avg` of each histogram sample
//! (float samples give nothing). A series with both at one step gives nothing. The name is
//! marked for removal at the end of the query, so two histograms that differ only by name
//! fail there, as in Prometheus.

use foldhash::{HashMap, HashMapExt};

use datafusion::arrow::array::RecordBatch;

use super::Param;
use quiver_storage::FloatHistogram;

use super::input::{VectorBuilder, for_each_hist_row, intern_rows};
use crate::error::Result;
use crate::functions::format_openmetrics_float;
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
            HistogramFn::Stddev => Some(|h| h.variance().sqrt()),
            HistogramFn::Stdvar => Some(FloatHistogram::variance),
            _ => None,
        };
        let native = native_samples(input)?;
        let mut out = VectorBuilder::default();
        if let Some(field) = field {
            for (labels, t, h) in &native {
                out.push(&labelset::mark_drop_name(labels), *t, field(h));
            }
            return out.finish();
        }
        // As Prometheus: where one series has both a native histogram and classic buckets
        // (the same labels but `le`) at a step, neither is answered (Prometheus warns).
        let mut classic = classic_groups(input);
        let mut conflicts: foldhash::HashSet<(i64, Vec<u8>)> = foldhash::HashSet::default();
        for (labels, t, _) in &native {
            if let Some(&g) = classic.index.get(&(*t, labels.clone())) {
                classic.groups[g].2.clear();
                conflicts.insert((*t, labels.clone()));
            }
        }
        for (labels, t, h) in &native {
            if conflicts.contains(&(*t, labels.clone())) {
                continue;
            }
            let labels = labelset::mark_drop_name(labels);
            match &self.func {
                HistogramFn::Quantile(q) => out.push(&labels, *t, h.quantile(q.0)),
                HistogramFn::Quantiles(label, qs) => {
                    for q in qs {
                        let l = labelset::set(&labels, label, &format_openmetrics_float(q.0));
                        out.push(&l, *t, h.quantile(q.0));
                    }
                }
                HistogramFn::Fraction(lo, hi) => out.push(&labels, *t, h.fraction(lo.0, hi.0)),
                _ => {}
            }
        }
        for (t, labels, mut buckets) in classic.groups {
            if buckets.is_empty() {
                continue;
            }
            let labels = labelset::mark_drop_name(&labels);
            match &self.func {
                HistogramFn::Quantile(q) => {
                    out.push(&labels, t, bucket_quantile(q.0, &mut buckets))
                }
                HistogramFn::Quantiles(label, qs) => {
                    for q in qs {
                        let l = labelset::set(&labels, label, &format_openmetrics_float(q.0));
                        out.push(&l, t, bucket_quantile(q.0, &mut buckets));
                    }
                }
                HistogramFn::Fraction(lo, hi) => {
                    out.push(&labels, t, bucket_fraction(lo.0, hi.0, &mut buckets))
                }
                _ => {}
            }
        }
        out.finish()
    }
}

/// A classic histogram's (upper bound, cumulative count) buckets.
type Buckets = Vec<(f64, f64)>;

/// The classic histograms of an input: per step, the float rows of one series but `le`
/// (its name kept, as Prometheus keys them) are one histogram's cumulative buckets.
#[derive(Default)]
struct ClassicGroups {
    /// (step, labels without `le` and the name's drop mark, buckets), in the order first met.
    groups: Vec<(i64, Vec<u8>, Buckets)>,
    index: HashMap<(i64, Vec<u8>), usize>,
}

fn classic_groups(input: &[RecordBatch]) -> ClassicGroups {
    let excluded = ["le".to_string(), labelset::DROP_NAME.to_string()];
    let input = intern_rows(input);
    // Per series, once: its bucket bound and its histogram's labels.
    let series: Vec<Option<(f64, Vec<u8>)>> = input
        .labels
        .iter()
        .map(|l| {
            let upper = labelset::get(l, "le").and_then(|s| s.parse::<f64>().ok())?;
            let mut key = Vec::new();
            labelset::drop(l, &excluded, &mut key);
            Some((upper, key))
        })
        .collect();
    let mut out = ClassicGroups {
        groups: Vec::new(),
        index: HashMap::new(),
    };
    for (t, k, v) in &input.rows {
        let Some((upper, key)) = &series[*k as usize] else {
            continue;
        };
        let g = match out.index.get(&(*t, key.clone())) {
            Some(g) => *g,
            None => {
                out.groups.push((*t, key.clone(), Vec::new()));
                out.index.insert((*t, key.clone()), out.groups.len() - 1);
                out.groups.len() - 1
            }
        };
        out.groups[g].2.push((*upper, *v));
    }
    out
}

/// The native histogram rows of `input`, decoded, with their labels without the name's drop
/// mark; float rows give nothing.
fn native_samples(input: &[RecordBatch]) -> Result<Vec<(Vec<u8>, i64, FloatHistogram)>> {
    let excluded = [labelset::DROP_NAME.to_string()];
    let mut out = Vec::new();
    let mut result = Ok(());
    for_each_hist_row(input, |l, t, bytes| {
        if result.is_err() {
            return;
        }
        match FloatHistogram::decode(bytes) {
            Ok((h, _)) => {
                let mut labels = Vec::new();
                labelset::drop(l, &excluded, &mut labels);
                out.push((labels, t, h));
            }
            Err(e) => {
                result = Err(crate::error::Error::Internal(format!(
                    "a native histogram: {e}"
                )))
            }
        }
    });
    result?;
    Ok(out)
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
    use crate::plan::input::for_each_vector_row;
    use quiver_storage::Span;

    /// Float rows and native histogram rows (all at t=0) through `func`: the answer's
    /// labels (as pairs) and values.
    fn evaluate(
        func: HistogramFn,
        floats: &[(&[(&str, &str)], f64)],
        hists: &[(&[(&str, &str)], FloatHistogram)],
    ) -> Vec<(Vec<(String, String)>, f64)> {
        let mut b = VectorBuilder::with_histograms(true);
        for (l, v) in floats {
            b.push(&labelset::encode(l.iter().copied()), 0, *v);
        }
        for (l, h) in hists {
            let mut buf = Vec::new();
            h.encode(&mut buf);
            b.push_hist(&labelset::encode(l.iter().copied()), 0, &buf)
                .unwrap();
        }
        let out = HistogramQuantileOp { func }
            .evaluate(&[b.finish().unwrap()])
            .unwrap();
        let mut rows = Vec::new();
        for_each_vector_row(&[out], |l, _, v| {
            let pairs: Vec<(String, String)> = labelset::pairs(l)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            rows.push((pairs, v));
        });
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    fn native(count: f64) -> FloatHistogram {
        FloatHistogram {
            count,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![count],
            ..FloatHistogram::default()
        }
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_series_with_classic_buckets_and_a_native_histogram_answers_nothing() {
        // Regression: the native histogram's answer stood (upstream histograms.test 1158).
        let rows = evaluate(
            HistogramFn::Quantile(Param(0.5)),
            &[
                (&[("__name__", "mixed"), ("le", "1")], 1.0),
                (&[("__name__", "mixed"), ("le", "+Inf")], 2.0),
                (&[("__name__", "plain"), ("le", "1")], 2.0),
                (&[("__name__", "plain"), ("le", "+Inf")], 2.0),
            ],
            &[
                (&[("__name__", "mixed")], native(4.0)),
                (&[("__name__", "native")], native(4.0)),
            ],
        );
        let names: Vec<&str> = rows
            .iter()
            .filter_map(|(l, _)| l.iter().find(|(n, _)| n == "__name__"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(names, vec!["native", "plain"]);
    }

    #[test]
    fn classic_histograms_keep_their_names_marked_for_removal() {
        // Regression: `a_bucket` and `b_bucket` of one job were added up into one histogram;
        // Prometheus keeps them apart and fails when their names go (histograms.test 1075).
        let rows = evaluate(
            HistogramFn::Fraction(Param(0.0), Param(1.0)),
            &[
                (&[("__name__", "a_bucket"), ("job", "x"), ("le", "1")], 1.0),
                (
                    &[("__name__", "a_bucket"), ("job", "x"), ("le", "+Inf")],
                    4.0,
                ),
                (&[("__name__", "b_bucket"), ("job", "x"), ("le", "1")], 3.0),
                (
                    &[("__name__", "b_bucket"), ("job", "x"), ("le", "+Inf")],
                    4.0,
                ),
            ],
            &[],
        );
        let marked =
            |name: &str| owned(&[(labelset::DROP_NAME, "1"), ("__name__", name), ("job", "x")]);
        assert_eq!(
            rows,
            vec![(marked("a_bucket"), 0.25), (marked("b_bucket"), 0.75)]
        );
    }

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
