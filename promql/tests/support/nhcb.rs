//! `load_with_nhcb`: besides the classic histogram series it loads (`x_bucket{le=…}`, `x_sum`,
//! `x_count`), Prometheus's test runner loads each classic histogram as a native histogram
//! with custom buckets (`x`, without `le`), one per timestamp at which any of its series has a
//! float sample. This ports `promqltest`'s `appendCustomHistogram` and `util/convertnhcb`.

use std::collections::BTreeMap;

use quiver_promql::series_desc::SequenceValue;
use quiver_storage::histogram::CUSTOM_BUCKETS_SCHEMA;
use quiver_storage::{FloatHistogram, Span};

use super::testfile::LoadSeries;

type LabelList = Vec<(String, String)>;

/// The native histogram series `load_with_nhcb` adds for the classic histograms in `series`.
pub fn convert(series: &[LoadSeries]) -> Result<Vec<LoadSeries>, String> {
    let mut classic: BTreeMap<LabelList, BTreeMap<i64, TempHistogram>> = BTreeMap::new();
    for s in series {
        let name = s
            .labels
            .iter()
            .find(|(n, _)| n == "__name__")
            .map_or("", |(_, v)| v.as_str());
        let (part, base) = if let Some(b) = name.strip_suffix("_bucket") {
            let Some(le) = s.labels.iter().find(|(n, _)| n == "le") else {
                return Err(format!("expected bucket label in metric {name}"));
            };
            match parse_go_float(&le.1) {
                Some(le) if !le.is_nan() => (Part::Bucket(le), b),
                _ => continue,
            }
        } else if let Some(b) = name.strip_suffix("_sum") {
            (Part::Sum, b)
        } else if let Some(b) = name.strip_suffix("_count") {
            (Part::Count, b)
        } else {
            continue;
        };
        let mut labels: LabelList = s
            .labels
            .iter()
            .filter(|(n, _)| n != "le" && n != "__name__")
            .cloned()
            .collect();
        labels.push(("__name__".to_string(), base.to_string()));
        labels.sort();
        let by_time = classic.entry(labels).or_default();
        for (t, v) in &s.samples {
            if let SequenceValue::Float(v) = v {
                let h = by_time.entry(*t).or_default();
                match part {
                    Part::Bucket(le) => h.set_bucket_count(le, *v),
                    Part::Sum => h.sum = *v,
                    Part::Count => h.set_count(*v),
                }
            }
        }
    }
    let mut out = Vec::new();
    for (labels, by_time) in classic {
        let mut samples = Vec::new();
        for (t, temp) in by_time {
            let h = temp.convert()?;
            h.validate().map_err(|e| e.to_string())?;
            samples.push((t, SequenceValue::Histogram { h, hint_set: false }));
        }
        out.push(LoadSeries { labels, samples });
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Part {
    Bucket(f64),
    Sum,
    Count,
}

/// `convertnhcb.TempHistogram`: the classic buckets (upper bound, cumulative count) seen at one
/// timestamp, the count and the sum, and the first error.
#[derive(Default)]
struct TempHistogram {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    err: Option<String>,
}

impl TempHistogram {
    /// `SetBucketCount`: inserts by bound, ignores a duplicate bound, and refuses negative
    /// counts and counts that are not cumulative.
    fn set_bucket_count(&mut self, le: f64, count: f64) {
        if self.err.is_some() {
            return;
        }
        if count < 0.0 {
            self.err = Some(format!(
                "bucket count must be non-negative: le={le}, count={count}"
            ));
            return;
        }
        let i = self.buckets.partition_point(|(b, _)| *b < le);
        if self.buckets.get(i).is_some_and(|(b, _)| *b == le) {
            return;
        }
        if i > 0 && count < self.buckets[i - 1].1 {
            self.err = Some(format!(
                "count is not cumulative: {count} < {}",
                self.buckets[i - 1].1
            ));
            return;
        }
        if let Some((_, next)) = self.buckets.get(i)
            && count > *next
        {
            self.err = Some(format!("count is not cumulative: {count} > {next}"));
            return;
        }
        self.buckets.insert(i, (le, count));
    }

    fn set_count(&mut self, count: f64) {
        if self.err.is_some() {
            return;
        }
        if count < 0.0 {
            self.err = Some(format!("count must be non-negative: count={count}"));
            return;
        }
        self.count = Some(count);
    }

    /// `Convert`: the buckets become a custom-buckets histogram, with a `+Inf` bucket holding
    /// the count if there is none. Whole counts take Go's integer-histogram path (compacted
    /// keeping up to two empty buckets), others the float path (compacted fully).
    fn convert(mut self) -> Result<FloatHistogram, String> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let count = match (self.count, self.buckets.last()) {
            (Some(c), _) => c,
            (None, Some((_, c))) => *c,
            (None, None) => 0.0,
        };
        if self
            .buckets
            .last()
            .is_none_or(|(le, _)| *le != f64::INFINITY)
        {
            self.buckets.push((f64::INFINITY, count));
        }
        let whole = |v: f64| v == v.round();
        let integer = self.buckets.iter().all(|(_, c)| whole(*c)) && whole(count);
        let last = self.buckets[self.buckets.len() - 1].1;
        if count != last {
            return Err(format!(
                "count mismatch: count={count} != le=+Inf count={last}"
            ));
        }
        let mut prev = 0.0;
        let positive_buckets = self
            .buckets
            .iter()
            .map(|(_, c)| {
                let b = c - prev;
                prev = *c;
                b
            })
            .collect();
        let mut h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: vec![Span {
                offset: 0,
                length: self.buckets.len() as u32,
            }],
            positive_buckets,
            custom_values: self.buckets[..self.buckets.len() - 1]
                .iter()
                .map(|(le, _)| *le)
                .collect(),
            ..FloatHistogram::default()
        };
        h.compact(if integer { 2 } else { 0 });
        Ok(h)
    }
}

/// A label value as Go's `strconv.ParseFloat` reads it (`+Inf`, `1e3`, `0.5`).
fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().trim_start_matches('+') {
        "inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], values: &[f64]) -> LoadSeries {
        let mut labels: LabelList = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.sort();
        LoadSeries {
            labels,
            samples: values
                .iter()
                .enumerate()
                .map(|(k, v)| (k as i64 * 1000, SequenceValue::Float(*v)))
                .collect(),
        }
    }

    #[test]
    fn classic_buckets_become_custom_buckets_per_timestamp() {
        let input = vec![
            series(
                &[("__name__", "x_bucket"), ("le", "+Inf"), ("j", "a")],
                &[4.0, 6.0],
            ),
            series(
                &[("__name__", "x_bucket"), ("le", "1"), ("j", "a")],
                &[1.0, 1.0],
            ),
            series(
                &[("__name__", "x_bucket"), ("le", "0.5"), ("j", "a")],
                &[0.0, 1.0],
            ),
            series(&[("__name__", "x_sum"), ("j", "a")], &[3.5, 7.0]),
            series(&[("__name__", "x_count"), ("j", "a")], &[4.0, 6.0]),
            series(&[("__name__", "y"), ("j", "a")], &[1.0, 1.0]),
        ];
        let out = convert(&input).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].labels,
            vec![
                ("__name__".to_string(), "x".to_string()),
                ("j".to_string(), "a".to_string())
            ]
        );
        let SequenceValue::Histogram { h, .. } = &out[0].samples[1].1 else {
            panic!("not a histogram");
        };
        assert_eq!(out[0].samples[1].0, 1000);
        assert_eq!(h.custom_values, vec![0.5, 1.0]);
        assert_eq!(h.positive_buckets, vec![1.0, 0.0, 5.0]);
        assert_eq!((h.count, h.sum), (6.0, 7.0));
    }

    #[test]
    fn buckets_that_are_not_cumulative_fail_the_load() {
        let input = vec![
            series(&[("__name__", "x_bucket"), ("le", "1")], &[5.0]),
            series(&[("__name__", "x_bucket"), ("le", "2")], &[3.0]),
        ];
        assert!(convert(&input).is_err());
    }
}
