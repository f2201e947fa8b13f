//! Comparing a result with the expected output as Prometheus's test runner does
//! (`promqltest/test.go`, `compareResult`): series match on their whole label set, floats agree
//! within a relative 1e-6 (`almost.Equal`), and native histograms as `compareNativeHistogram`
//! has it: both compacted, then schema, count, sum, zero bucket, custom bounds, spans and
//! buckets, and the counter reset hint only when the expected one was written out.

use std::sync::Arc;

use quiver_promql::series_desc::SequenceValue;
use quiver_storage::histogram::{GoFloat, custom_bucket_bounds_match};
use quiver_storage::{CounterResetHint, FloatHistogram, Span};

use super::testfile::{STALE_NAN, SeriesRow};

/// One point of a result.
#[derive(Debug, Clone)]
pub enum Point {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

/// A series of a result: its labels and one point per step (`None`: no point).
pub type GotRow = (Vec<(String, String)>, Vec<Option<Point>>);

/// Compares series: the same label sets, each with the same points; `ordered` also wants
/// them in the expected order.
pub fn compare(want: &[SeriesRow], got: &[GotRow], ordered: bool) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            want.len(),
            got.len(),
            got.iter().map(show_got).collect::<Vec<_>>()
        ));
    }
    for (i, w) in want.iter().enumerate() {
        let g = if ordered {
            Some(&got[i]).filter(|g| g.0 == w.0)
        } else {
            got.iter().find(|g| g.0 == w.0)
        };
        let Some(g) = g else {
            return Err(format!(
                "expected {} not found{}; got {:?}",
                show_want(w),
                if ordered { " at its position" } else { "" },
                got.iter().map(show_got).collect::<Vec<_>>()
            ));
        };
        let n = g.1.len().max(w.1.len());
        let same = (0..n).all(|k| {
            let want = w.1.get(k).unwrap_or(&SequenceValue::Omitted);
            let got = g.1.get(k).and_then(Option::as_ref);
            point_matches(want, got)
        });
        if !same {
            return Err(format!("expected {}, got {}", show_want(w), show_got(g)));
        }
    }
    Ok(())
}

/// Whether a point is the expected value (`Omitted`: no point).
pub fn point_matches(want: &SequenceValue, got: Option<&Point>) -> bool {
    match (want, got) {
        (SequenceValue::Omitted, None) => true,
        (SequenceValue::Float(w), Some(Point::Float(g))) => float_eq(*w, *g),
        (SequenceValue::Histogram { h, hint_set }, Some(Point::Histogram(g))) => {
            histogram_eq(h, g, *hint_set)
        }
        _ => false,
    }
}

/// Go's `almost.Equal(a, b, 1e-6)`: a staleness marker equals only itself, NaN equals NaN,
/// otherwise a relative difference under 1e-6 (an absolute one next to zero).
pub fn float_eq(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    if a.to_bits() == STALE_NAN || b.to_bits() == STALE_NAN {
        return a.to_bits() == b.to_bits();
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// Go's `compareNativeHistogram(exp.Compact(0), cur.Compact(0), hintSet)`.
pub fn histogram_eq(expected: &FloatHistogram, got: &FloatHistogram, hint_set: bool) -> bool {
    let mut exp = expected.clone();
    exp.compact(0);
    let mut cur = got.clone();
    cur.compact(0);
    if exp.schema != cur.schema || !float_eq(exp.count, cur.count) || !float_eq(exp.sum, cur.sum) {
        return false;
    }
    if exp.is_custom_buckets()
        && !custom_bucket_bounds_match(&exp.custom_values, &cur.custom_values)
    {
        return false;
    }
    if exp.zero_threshold != cur.zero_threshold || !float_eq(exp.zero_count, cur.zero_count) {
        return false;
    }
    if !spans_match(&exp.negative_spans, &cur.negative_spans)
        || !buckets_match(&exp.negative_buckets, &cur.negative_buckets)
        || !spans_match(&exp.positive_spans, &cur.positive_spans)
        || !buckets_match(&exp.positive_buckets, &cur.positive_buckets)
    {
        return false;
    }
    !hint_set || exp.hint == cur.hint
}

fn buckets_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| float_eq(*x, *y))
}

/// Go's `spansMatch`: the same spans once zero-length spans are folded into the next one's
/// offset (and trailing zero-length spans ignored).
fn spans_match(s1: &[Span], s2: &[Span]) -> bool {
    let (mut i1, mut i2) = (0, 0);
    loop {
        if i1 >= s1.len() {
            return all_empty(&s2[i2.min(s2.len())..]);
        }
        if i2 >= s2.len() {
            return all_empty(&s1[i1..]);
        }
        let a = fold_empty(s1, &mut i1);
        let b = fold_empty(s2, &mut i2);
        if a.length == 0 && b.length == 0 {
            return true;
        }
        if a != b {
            return false;
        }
    }
}

/// The span at `*i`, with any zero-length spans from there on folded into the next one;
/// advances `*i` past what it used.
fn fold_empty(s: &[Span], i: &mut usize) -> Span {
    let mut cur = s[*i];
    *i += 1;
    if cur.length == 0 {
        while *i < s.len() && s[*i].length == 0 {
            cur.offset += s[*i].offset;
            *i += 1;
        }
        if *i < s.len() {
            cur.offset += s[*i].offset;
            cur.length = s[*i].length;
            *i += 1;
        }
    }
    cur
}

fn all_empty(s: &[Span]) -> bool {
    s.iter().all(|s| s.length == 0)
}

fn show_want(s: &SeriesRow) -> String {
    let values: Vec<String> =
        s.1.iter()
            .map(|v| match v {
                SequenceValue::Omitted => "_".to_string(),
                SequenceValue::Float(f) => f.to_string(),
                SequenceValue::Histogram { h, .. } => test_expression(h),
            })
            .collect();
    format!("{} {}", show_labels(&s.0), values.join(" "))
}

pub fn show_got(s: &GotRow) -> String {
    let values: Vec<String> =
        s.1.iter()
            .map(|v| match v {
                None => "_".to_string(),
                Some(Point::Float(f)) => f.to_string(),
                Some(Point::Histogram(h)) => test_expression(h),
            })
            .collect();
    format!("{} {}", show_labels(&s.0), values.join(" "))
}

fn show_labels(labels: &[(String, String)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", labels.join(","))
}

/// Go's `FloatHistogram.TestExpression`: the histogram in the test files' notation, with its
/// buckets in one span per side.
pub fn test_expression(h: &FloatHistogram) -> String {
    let mut m = h.clone();
    m.compact(usize::MAX);
    let mut out = Vec::new();
    if m.schema != 0 {
        out.push(format!("schema:{}", m.schema));
    }
    if m.count != 0.0 {
        out.push(format!("count:{}", GoFloat(m.count)));
    }
    if m.sum != 0.0 {
        out.push(format!("sum:{}", GoFloat(m.sum)));
    }
    if m.zero_count != 0.0 {
        out.push(format!("z_bucket:{}", GoFloat(m.zero_count)));
    }
    if m.zero_threshold != 0.0 {
        out.push(format!("z_bucket_w:{}", GoFloat(m.zero_threshold)));
    }
    if !m.custom_values.is_empty() {
        out.push(format!("custom_values:{}", list(&m.custom_values)));
    }
    if m.hint != CounterResetHint::Unknown {
        out.push(format!("counter_reset_hint:{}", m.hint.name()));
    }
    for (spans, buckets, key) in [
        (&m.positive_spans, &m.positive_buckets, ""),
        (&m.negative_spans, &m.negative_buckets, "n_"),
    ] {
        if let Some(first) = spans.first()
            && first.offset != 0
        {
            out.push(format!("{key}offset:{}", first.offset));
        }
        if !buckets.is_empty() {
            out.push(format!("{key}buckets:{}", list(buckets)));
        }
    }
    format!("{{{{{}}}}}", out.join(" "))
}

fn list(v: &[f64]) -> String {
    let v: Vec<String> = v.iter().map(|x| GoFloat(*x).to_string()).collect();
    format!("[{}]", v.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    #[test]
    fn spans_match_across_zero_length_spans() {
        assert!(spans_match(&[span(1, 2)], &[span(0, 0), span(1, 2)]));
        assert!(spans_match(&[span(1, 2), span(3, 0)], &[span(1, 2)]));
        assert!(!spans_match(&[span(1, 2)], &[span(2, 2)]));
        assert!(!spans_match(&[span(1, 2)], &[span(1, 2), span(0, 1)]));
    }

    #[test]
    fn histograms_compare_after_compaction_and_hint_only_when_set() {
        let exp = FloatHistogram {
            count: 2.0,
            sum: 3.0,
            positive_spans: vec![span(1, 1)],
            positive_buckets: vec![2.0],
            ..FloatHistogram::default()
        };
        let got = FloatHistogram {
            hint: CounterResetHint::Gauge,
            count: 2.0 * (1.0 + 1e-9),
            positive_spans: vec![span(0, 3)],
            positive_buckets: vec![0.0, 2.0, 0.0],
            ..exp.clone()
        };
        assert!(histogram_eq(&exp, &got, false));
        assert!(!histogram_eq(&exp, &got, true), "the hint differs");
        let moved = FloatHistogram {
            positive_spans: vec![span(2, 1)],
            ..exp.clone()
        };
        assert!(!histogram_eq(&exp, &moved, false));
        let other_sum = FloatHistogram {
            sum: 3.1,
            ..exp.clone()
        };
        assert!(!histogram_eq(&exp, &other_sum, false));
    }

    #[test]
    fn floats_agree_as_almost_equal_says() {
        assert!(float_eq(1.0, 1.0 + 1e-7));
        assert!(!float_eq(1.0, 1.0 + 1e-5));
        assert!(!float_eq(0.0, 1e-300));
        assert!(float_eq(f64::NAN, -f64::NAN));
        assert!(!float_eq(f64::NAN, f64::from_bits(STALE_NAN)));
    }
}
