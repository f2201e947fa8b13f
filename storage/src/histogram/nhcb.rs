//! Prometheus's `util/convertnhcb`: a classic histogram (cumulative buckets by upper bound, a
//! count and a sum) as a native histogram with custom buckets. Scraping uses it for
//! `convert_classic_histograms_to_nhcb`, and the PromQL test runner for `load_with_nhcb`.

use super::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Span};

/// `convertnhcb.TempHistogram`: the classic buckets (upper bound, cumulative count) seen at one
/// timestamp, the count and the sum, and the first error.
#[derive(Default)]
pub struct TempHistogram {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    err: Option<String>,
}

impl TempHistogram {
    /// `SetBucketCount`: inserts by bound, ignores a duplicate bound, and refuses negative
    /// counts and counts that are not cumulative.
    pub fn set_bucket_count(&mut self, le: f64, count: f64) {
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

    pub fn set_count(&mut self, count: f64) {
        if self.err.is_some() {
            return;
        }
        if count < 0.0 {
            self.err = Some(format!("count must be non-negative: count={count}"));
            return;
        }
        self.count = Some(count);
    }

    /// `SetSum`.
    pub fn set_sum(&mut self, sum: f64) {
        self.sum = sum;
    }

    /// `Convert`: the buckets become a custom-buckets histogram, with a `+Inf` bucket holding
    /// the count if there is none. Whole counts take Go's integer-histogram path (compacted
    /// keeping up to two empty buckets), others the float path (compacted fully).
    pub fn convert(mut self) -> Result<FloatHistogram, String> {
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
pub fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().trim_start_matches('+') {
        "inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}
