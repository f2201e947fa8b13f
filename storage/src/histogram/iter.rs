//! Walking a histogram's buckets with their bounds, as Prometheus's bucket iterators do: the
//! positive side upwards from zero, the negative side downwards from zero, either side in
//! reverse, and all buckets (negative, zero, positive) in ascending or descending order for
//! `histogram_quantile` and `histogram_fraction`.
//!
//! The iterators never index out of bounds: spans that promise more buckets than there are
//! end the walk early, spurious buckets are ignored (Go's behaviour for invalid histograms).

use std::fmt;

use super::bounds::{get_bound, get_bound_exponential};
use super::{
    CUSTOM_BUCKETS_SCHEMA, EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MIN, FloatHistogram, Span,
    target_idx,
};

/// One bucket with its bounds: Prometheus's `Bucket[float64]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    /// Whether `lower` itself belongs to the bucket (negative exponential buckets, the zero
    /// bucket, and the first custom bucket, which starts at -Inf).
    pub lower_inclusive: bool,
    /// Whether `upper` itself belongs to the bucket (positive exponential buckets, the zero
    /// bucket and all custom buckets).
    pub upper_inclusive: bool,
    pub count: f64,
    /// The bucket's index in its schema, to compare buckets of the same schema and sign;
    /// 0 and meaningless for the zero bucket.
    pub index: i32,
}

/// Whether a schema is one of the exponential schemas Prometheus evaluates (-4..=8).
pub(super) fn is_exponential_schema(schema: i32) -> bool {
    (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

/// The bounds of bucket `idx` of one side, as Go's `baseBucketIterator.at` builds them.
fn bucket_at(idx: i32, count: f64, schema: i32, positive: bool, custom_values: &[f64]) -> Bucket {
    let (lower, upper) = if positive {
        (
            get_bound(idx.wrapping_sub(1), schema, custom_values),
            get_bound(idx, schema, custom_values),
        )
    } else {
        (
            -get_bound(idx, schema, custom_values),
            -get_bound(idx.wrapping_sub(1), schema, custom_values),
        )
    };
    let (lower_inclusive, upper_inclusive) = if schema == CUSTOM_BUCKETS_SCHEMA {
        (idx == 0, true)
    } else {
        (lower < 0.0, upper > 0.0)
    };
    Bucket {
        lower,
        upper,
        lower_inclusive,
        upper_inclusive,
        count,
        index: idx,
    }
}

/// One side's buckets from the one nearest zero outwards (Go's `floatBucketIterator`),
/// optionally merged into a coarser schema and optionally skipping, for exponential schemas,
/// the buckets whose upper bound (in absolute value) is at most a start value.
#[derive(Debug, Clone)]
pub struct BucketIter<'a> {
    spans: &'a [Span],
    buckets: &'a [f64],
    custom_values: &'a [f64],
    positive: bool,
    schema: i32,
    /// The schema buckets are merged into; at most `schema`.
    target_schema: i32,
    spans_idx: usize,
    idx_in_span: u32,
    buckets_idx: usize,
    /// The current bucket's index in `target_schema`.
    curr_idx: i32,
    /// The last consumed bucket's index in `schema` (when merging).
    orig_idx: i32,
    curr_count: f64,
    absolute_start_value: f64,
    bound_reached_start_value: bool,
}

impl<'a> BucketIter<'a> {
    /// Go's `FloatHistogram.floatBucketIterator`. Go panics when `target_schema` is above the
    /// schema or mixes custom and exponential; callers here never ask for that.
    pub(super) fn new(
        h: &'a FloatHistogram,
        positive: bool,
        absolute_start_value: f64,
        target_schema: i32,
    ) -> Self {
        let (spans, buckets, custom_values): (&[Span], &[f64], &[f64]) = if positive {
            (&h.positive_spans, &h.positive_buckets, &h.custom_values)
        } else {
            (&h.negative_spans, &h.negative_buckets, &[])
        };
        BucketIter {
            spans,
            buckets,
            custom_values,
            positive,
            schema: h.schema,
            target_schema,
            spans_idx: 0,
            idx_in_span: 0,
            buckets_idx: 0,
            curr_idx: 0,
            orig_idx: 0,
            curr_count: 0.0,
            absolute_start_value,
            bound_reached_start_value: absolute_start_value == 0.0,
        }
    }

    /// The next bucket's index and count, without computing its bounds (Go's `strippedAt`).
    pub(super) fn next_stripped(&mut self) -> Option<(i32, f64)> {
        loop {
            if !self.advance() {
                return None;
            }
            // Skip buckets up to the start value (exponential schemas only).
            if !self.bound_reached_start_value
                && is_exponential_schema(self.target_schema)
                && get_bound_exponential(self.curr_idx, self.target_schema)
                    <= self.absolute_start_value
            {
                continue;
            }
            self.bound_reached_start_value = true;
            return Some((self.curr_idx, self.curr_count));
        }
    }

    /// Moves to the next (possibly merged) bucket: Go's `Next` without the start-value skip.
    fn advance(&mut self) -> bool {
        let Some(&first) = self.spans.get(self.spans_idx) else {
            return false;
        };
        let mut span = first;
        if self.schema == self.target_schema {
            self.curr_idx = if self.buckets_idx == 0 {
                span.offset
            } else {
                self.curr_idx.wrapping_add(1)
            };
            if self.buckets_idx >= self.buckets.len() {
                return false;
            }
            // Past the end of a span (also skips spans of length 0).
            while self.idx_in_span >= span.length {
                self.idx_in_span = 0;
                self.spans_idx += 1;
                let Some(&next) = self.spans.get(self.spans_idx) else {
                    return false;
                };
                span = next;
                self.curr_idx = self.curr_idx.wrapping_add(span.offset);
            }
            self.curr_count = self.buckets[self.buckets_idx];
            self.idx_in_span += 1;
            self.buckets_idx += 1;
            return true;
        }
        // Merge all buckets that fall into one bucket of the target schema, looking one
        // bucket ahead and rolling back to before it when it belongs to the next one.
        let (mut orig_idx, mut spans_idx, mut idx_in_span) =
            (self.orig_idx, self.spans_idx, self.idx_in_span);
        let mut first_pass = true;
        self.curr_count = 0.0;
        loop {
            orig_idx = if self.buckets_idx == 0 {
                span.offset
            } else {
                orig_idx.wrapping_add(1)
            };
            let Some(&count) = self.buckets.get(self.buckets_idx) else {
                return !first_pass;
            };
            let mut exhausted = false;
            while idx_in_span >= span.length {
                idx_in_span = 0;
                spans_idx += 1;
                match self.spans.get(spans_idx) {
                    Some(&next) => {
                        span = next;
                        orig_idx = orig_idx.wrapping_add(span.offset);
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            if exhausted {
                return !first_pass;
            }
            let idx = target_idx(orig_idx, self.schema, self.target_schema);
            if first_pass {
                self.curr_idx = idx;
                first_pass = false;
            } else if idx != self.curr_idx {
                return true;
            }
            self.curr_count += count;
            idx_in_span += 1;
            self.buckets_idx += 1;
            (self.orig_idx, self.spans_idx, self.idx_in_span) = (orig_idx, spans_idx, idx_in_span);
        }
    }
}

impl Iterator for BucketIter<'_> {
    type Item = Bucket;

    fn next(&mut self) -> Option<Bucket> {
        let (idx, count) = self.next_stripped()?;
        Some(bucket_at(
            idx,
            count,
            self.target_schema,
            self.positive,
            self.custom_values,
        ))
    }
}

/// One side's buckets from the one farthest from zero inwards (Go's
/// `reverseFloatBucketIterator`).
#[derive(Debug, Clone)]
pub struct ReverseBucketIter<'a> {
    spans: &'a [Span],
    buckets: &'a [f64],
    custom_values: &'a [f64],
    positive: bool,
    schema: i32,
    /// The span being walked; `None` once before the first.
    spans_idx: Option<usize>,
    /// Position in the span; negative once the span is exhausted.
    idx_in_span: i64,
    /// The next bucket to answer; `None` once all are answered.
    buckets_idx: Option<usize>,
    curr_idx: i32,
}

impl<'a> ReverseBucketIter<'a> {
    fn new(h: &'a FloatHistogram, positive: bool) -> Self {
        let (spans, buckets, custom_values): (&[Span], &[f64], &[f64]) = if positive {
            (&h.positive_spans, &h.positive_buckets, &h.custom_values)
        } else {
            (&h.negative_spans, &h.negative_buckets, &[])
        };
        // One past the last bucket's index, as Go sums it (in wrapping 32-bit arithmetic).
        let curr_idx = spans.iter().fold(0i32, |acc, s| {
            acc.wrapping_add(s.offset).wrapping_add(s.length as i32)
        });
        ReverseBucketIter {
            spans,
            buckets,
            custom_values,
            positive,
            schema: h.schema,
            spans_idx: spans.len().checked_sub(1),
            idx_in_span: spans.last().map_or(0, |s| i64::from(s.length) - 1),
            buckets_idx: buckets.len().checked_sub(1),
            curr_idx,
        }
    }
}

impl Iterator for ReverseBucketIter<'_> {
    type Item = Bucket;

    fn next(&mut self) -> Option<Bucket> {
        self.curr_idx = self.curr_idx.wrapping_sub(1);
        let b = self.buckets_idx?;
        while self.idx_in_span < 0 {
            // The span is exhausted (or has length 0): step back to the previous one.
            let Some(s) = self.spans_idx.and_then(|s| s.checked_sub(1)) else {
                self.spans_idx = None;
                self.buckets_idx = None;
                return None;
            };
            self.spans_idx = Some(s);
            self.idx_in_span = i64::from(self.spans[s].length) - 1;
            self.curr_idx = self.curr_idx.wrapping_sub(self.spans[s + 1].offset);
        }
        let count = self.buckets[b];
        self.buckets_idx = b.checked_sub(1);
        self.idx_in_span -= 1;
        Some(bucket_at(
            self.curr_idx,
            count,
            self.schema,
            self.positive,
            self.custom_values,
        ))
    }
}

/// All buckets in one direction (Go's `allFloatBucketIterator`): ascending, the negative
/// buckets from the lowest value up, then the zero bucket if its count is above 0, then the
/// positive buckets; descending, the mirror of that. A bucket that reaches into the zero bucket
/// is cut at the zero threshold.
#[derive(Debug, Clone)]
pub struct AllBuckets<'a> {
    zero: Option<Bucket>,
    zero_threshold: f64,
    /// The side walked towards zero (reverse iterator), then the one walked away from it.
    towards_zero: ReverseBucketIter<'a>,
    away_from_zero: BucketIter<'a>,
    state: AllState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AllState {
    TowardsZero,
    Zero,
    AwayFromZero,
    Done,
}

impl AllBuckets<'_> {
    /// Cuts a bucket that overlaps the zero bucket at the zero threshold.
    fn clip(&self, mut b: Bucket) -> Bucket {
        let t = self.zero_threshold;
        if b.upper < 0.0 && b.upper > -t {
            b.upper = -t;
        } else if b.lower > 0.0 && b.lower < t {
            b.lower = t;
        }
        b
    }
}

impl Iterator for AllBuckets<'_> {
    type Item = Bucket;

    fn next(&mut self) -> Option<Bucket> {
        loop {
            match self.state {
                AllState::TowardsZero => match self.towards_zero.next() {
                    Some(b) => return Some(self.clip(b)),
                    None => self.state = AllState::Zero,
                },
                AllState::Zero => {
                    self.state = AllState::AwayFromZero;
                    if let Some(z) = self.zero {
                        return Some(z);
                    }
                }
                AllState::AwayFromZero => match self.away_from_zero.next() {
                    Some(b) => return Some(self.clip(b)),
                    None => self.state = AllState::Done,
                },
                AllState::Done => return None,
            }
        }
    }
}

impl FloatHistogram {
    /// The positive buckets in ascending order, starting next to the zero bucket (Go's
    /// `PositiveBucketIterator`); for custom buckets, all buckets.
    pub fn positive_bucket_iter(&self) -> BucketIter<'_> {
        BucketIter::new(self, true, 0.0, self.schema)
    }

    /// The negative buckets in descending order of value (ascending index), starting next to
    /// the zero bucket (Go's `NegativeBucketIterator`).
    pub fn negative_bucket_iter(&self) -> BucketIter<'_> {
        BucketIter::new(self, false, 0.0, self.schema)
    }

    /// The positive buckets in descending order, starting at the highest (Go's
    /// `PositiveReverseBucketIterator`).
    pub fn positive_bucket_iter_rev(&self) -> ReverseBucketIter<'_> {
        ReverseBucketIter::new(self, true)
    }

    /// The negative buckets in ascending order of value, starting at the lowest (Go's
    /// `NegativeReverseBucketIterator`).
    pub fn negative_bucket_iter_rev(&self) -> ReverseBucketIter<'_> {
        ReverseBucketIter::new(self, false)
    }

    /// All buckets in ascending order of value (Go's `AllBucketIterator`): negative buckets,
    /// the zero bucket if its count is above 0, positive buckets. The negative bucket nearest
    /// zero ends, and the positive one nearest zero begins, at the zero threshold if they
    /// reach into the zero bucket.
    pub fn all_buckets(&self) -> AllBuckets<'_> {
        AllBuckets {
            zero: self.populated_zero_bucket(),
            zero_threshold: self.zero_threshold,
            towards_zero: ReverseBucketIter::new(self, false),
            away_from_zero: BucketIter::new(self, true, 0.0, self.schema),
            state: AllState::TowardsZero,
        }
    }

    /// All buckets in descending order of value (Go's `AllReverseBucketIterator`, which
    /// `histogram_quantile` walks for quantiles above 0.5).
    pub fn all_buckets_rev(&self) -> AllBuckets<'_> {
        AllBuckets {
            zero: self.populated_zero_bucket(),
            zero_threshold: self.zero_threshold,
            towards_zero: ReverseBucketIter::new(self, true),
            away_from_zero: BucketIter::new(self, false, 0.0, self.schema),
            state: AllState::TowardsZero,
        }
    }

    /// The zero bucket, `[-zero_threshold, zero_threshold]` (Go's `ZeroBucket`, which panics
    /// for custom buckets; here a custom-buckets histogram answers its zero fields, which
    /// `validate` requires to be 0).
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    fn populated_zero_bucket(&self) -> Option<Bucket> {
        (self.zero_count > 0.0).then(|| self.zero_bucket())
    }
}

/// Go's `Bucket.String`: `[` or `(` by inclusivity, the bounds and the count, each as `%g`.
impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{},{}{}:{}",
            if self.lower_inclusive { '[' } else { '(' },
            super::format::GoFloat(self.lower),
            super::format::GoFloat(self.upper),
            if self.upper_inclusive { ']' } else { ')' },
            super::format::GoFloat(self.count),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::histogram::strategies::spans_for;

    /// The exponential bucket holding `v > 0`: the index whose bounds enclose it.
    fn exponential_bucket(v: f64, schema: i32) -> i32 {
        let mut idx = (v.log2() * 2f64.powi(schema)).ceil() as i32;
        while get_bound(idx - 1, schema, &[]) >= v {
            idx -= 1;
        }
        while get_bound(idx, schema, &[]) < v {
            idx += 1;
        }
        idx
    }

    /// A histogram of observations, built as a client library would: each finite
    /// observation counted in its bucket (or the zero bucket), NaN only in the count.
    fn observe(values: &[f64], schema: i32, custom_values: &[f64]) -> FloatHistogram {
        let (mut pos, mut neg) = (BTreeMap::<i32, f64>::new(), BTreeMap::<i32, f64>::new());
        let mut zero_count = 0.0;
        for &v in values.iter().filter(|v| !v.is_nan()) {
            if schema == CUSTOM_BUCKETS_SCHEMA {
                let idx = custom_values.iter().position(|b| v <= *b);
                *pos.entry(idx.unwrap_or(custom_values.len()) as i32)
                    .or_default() += 1.0;
            } else if v > 0.0 {
                *pos.entry(exponential_bucket(v, schema)).or_default() += 1.0;
            } else if v < 0.0 {
                *neg.entry(exponential_bucket(-v, schema)).or_default() += 1.0;
            } else {
                zero_count += 1.0;
            }
        }
        let side = |m: &BTreeMap<i32, f64>| {
            let idx: Vec<i64> = m.keys().map(|i| i64::from(*i)).collect();
            (spans_for(&idx), m.values().copied().collect::<Vec<_>>())
        };
        let ((positive_spans, positive_buckets), (negative_spans, negative_buckets)) =
            (side(&pos), side(&neg));
        FloatHistogram {
            schema,
            zero_count,
            count: values.len() as f64,
            positive_spans,
            positive_buckets,
            negative_spans,
            negative_buckets,
            custom_values: custom_values.to_vec(),
            ..FloatHistogram::default()
        }
    }

    fn observations() -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(
            prop_oneof![8 => (-1000i32..=1000).prop_map(f64::from), 1 => Just(f64::NAN)],
            0..60,
        )
    }

    /// Checks that buckets come in order of value, do not overlap, and count `expected`.
    fn check_walk(buckets: impl Iterator<Item = Bucket>, expected: f64, ascending: bool) {
        let buckets: Vec<Bucket> = buckets.collect();
        for b in &buckets {
            assert!(b.lower <= b.upper, "{b:?}");
        }
        for w in buckets.windows(2) {
            let (lo, hi) = if ascending {
                (w[0], w[1])
            } else {
                (w[1], w[0])
            };
            assert!(lo.upper <= hi.lower, "{lo:?} then {hi:?}");
        }
        assert_eq!(buckets.iter().map(|b| b.count).sum::<f64>(), expected);
    }

    proptest! {
        #[test]
        fn all_buckets_count_every_observation_but_nan(
            values in observations(),
            schema in -4i32..=8,
        ) {
            let h = observe(&values, schema, &[]);
            prop_assert_eq!(h.validate(), Ok(()));
            let nans = values.iter().filter(|v| v.is_nan()).count() as f64;
            check_walk(h.all_buckets(), h.count - nans, true);
            check_walk(h.all_buckets_rev(), h.count - nans, false);
        }

        #[test]
        fn all_custom_buckets_count_every_observation_but_nan(
            values in observations(),
            bounds in proptest::collection::btree_set(-1000i32..1000, 0..8),
        ) {
            let bounds: Vec<f64> = bounds.into_iter().map(f64::from).collect();
            let h = observe(&values, CUSTOM_BUCKETS_SCHEMA, &bounds);
            prop_assert_eq!(h.validate(), Ok(()));
            let nans = values.iter().filter(|v| v.is_nan()).count() as f64;
            check_walk(h.all_buckets(), h.count - nans, true);
            check_walk(h.all_buckets_rev(), h.count - nans, false);
        }
    }
}
