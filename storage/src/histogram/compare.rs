//! Comparing two histograms as Prometheus does: equality of the data (PromQL's `==` and
//! `!=` between histograms) and counter-reset detection between consecutive samples (`rate`,
//! `increase`, `resets`).

use super::arith::custom_bucket_bounds_match;
use super::iter::{Bucket, BucketIter};
use super::{CounterResetHint, FloatHistogram, Span};

impl FloatHistogram {
    /// Go's `Equals`: the same data, compared bit for bit (so a NaN equals the same NaN,
    /// and -0 differs from 0) for count, sum, zero count and bucket counts; by value for the
    /// zero threshold and custom bounds. Spans of length 0 are ignored (their offsets carry
    /// over to the next span); otherwise the spans must be the same, so an empty bucket
    /// present in one and absent in the other makes them differ. Custom bounds count only for
    /// the custom-buckets schema.
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        if self.schema != other.schema
            || self.count.to_bits() != other.count.to_bits()
            || self.sum.to_bits() != other.sum.to_bits()
        {
            return false;
        }
        if self.is_custom_buckets()
            && !custom_bucket_bounds_match(&self.custom_values, &other.custom_values)
        {
            return false;
        }
        self.zero_threshold == other.zero_threshold
            && self.zero_count.to_bits() == other.zero_count.to_bits()
            && spans_match(&self.negative_spans, &other.negative_spans)
            && buckets_match(&self.negative_buckets, &other.negative_buckets)
            && spans_match(&self.positive_spans, &other.positive_spans)
            && buckets_match(&self.positive_buckets, &other.positive_buckets)
    }

    /// Go's `DetectReset`: whether this histogram, following `previous`, shows a counter
    /// reset. The hint answers first (reset: yes; not reset: no); otherwise (unknown, or a
    /// gauge treated as a counter) a reset is a smaller count, zero count or bucket count, a
    /// populated bucket of `previous` that is missing, a finer schema, a narrower zero
    /// bucket, or a zero threshold inside a populated bucket of `previous`. A coarser schema
    /// or wider zero bucket is compared after merging `previous`'s buckets to match. Custom
    /// buckets with different bounds are compared on the bounds they share.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            CounterResetHint::Unknown | CounterResetHint::Gauge => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.is_custom_buckets() {
            if !previous.is_custom_buckets() {
                return true;
            }
            if !custom_bucket_bounds_match(&self.custom_values, &previous.custom_values) {
                return self.detect_reset_with_mismatched_custom_bounds(previous);
            }
        }
        if self.schema > previous.schema || self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (previous_zero_count, threshold, _) =
            previous.zero_count_for_larger_threshold(self.zero_threshold, None);
        if threshold != self.zero_threshold {
            // The threshold falls inside a populated bucket of `previous`.
            return true;
        }
        if self.zero_count < previous_zero_count {
            return true;
        }
        [true, false].into_iter().any(|positive| {
            buckets_decreased(
                BucketIter::new(self, positive, self.zero_threshold, self.schema),
                BucketIter::new(previous, positive, self.zero_threshold, self.schema),
            )
        })
    }

    /// Go's `detectResetWithMismatchedCustomBounds`: sums both histograms' buckets up to each
    /// bound they share and reports a reset if any such sum decreased.
    fn detect_reset_with_mismatched_custom_bounds(&self, previous: &FloatHistogram) -> bool {
        /// Walks one histogram's buckets, summing those up to a bound.
        struct Rollup<'a> {
            iter: BucketIter<'a>,
            started: bool,
            has_more: bool,
            /// The first bucket not summed yet.
            pending: Option<Bucket>,
        }
        impl<'a> Rollup<'a> {
            fn new(h: &'a FloatHistogram) -> Self {
                Rollup {
                    iter: BucketIter::new(h, true, 0.0, h.schema),
                    started: false,
                    has_more: false,
                    pending: None,
                }
            }

            fn sum_up_to(&mut self, bound: f64) -> f64 {
                if self.started && !self.has_more {
                    return 0.0;
                }
                if !self.started {
                    self.started = true;
                    self.pending = self.iter.next();
                }
                let mut sum = 0.0;
                loop {
                    match self.pending {
                        Some(b) if b.upper <= bound => {
                            sum += b.count;
                            self.pending = self.iter.next();
                        }
                        Some(_) => {
                            self.has_more = true;
                            return sum;
                        }
                        None => {
                            self.has_more = false;
                            return sum;
                        }
                    }
                }
            }
        }
        let (mut curr, mut prev) = (Rollup::new(self), Rollup::new(previous));
        let bound = |bounds: &[f64], i: usize| bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let (curr_bounds, prev_bounds) = (&self.custom_values, &previous.custom_values);
        let (mut i, mut j) = (0, 0);
        while i <= curr_bounds.len() && j <= prev_bounds.len() {
            let (cb, pb) = (bound(curr_bounds, i), bound(prev_bounds, j));
            if cb == pb {
                // A shared bound: compare what both have up to it.
                if curr.sum_up_to(cb) < prev.sum_up_to(cb) {
                    return true;
                }
                i += 1;
                j += 1;
            } else if cb < pb {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }
}

/// Go's `detectReset` on one side: whether a bucket of `prev` is missing from `curr` while
/// populated, or has a higher count than in `curr`.
fn buckets_decreased(mut curr: BucketIter<'_>, mut prev: BucketIter<'_>) -> bool {
    let Some(mut p) = prev.next_stripped() else {
        // Nothing in previous, nothing can have been reset.
        return false;
    };
    let Some(mut c) = curr.next_stripped() else {
        // Nothing in current: a reset if any of previous is populated.
        return p.1 != 0.0 || std::iter::from_fn(|| prev.next_stripped()).any(|b| b.1 != 0.0);
    };
    loop {
        // Forward current to previous's bucket.
        while c.0 < p.0 {
            match curr.next_stripped() {
                Some(next) => c = next,
                None => {
                    // Current ends first: the rest of previous must be empty.
                    return p.1 != 0.0
                        || std::iter::from_fn(|| prev.next_stripped()).any(|b| b.1 != 0.0);
                }
            }
        }
        if c.0 > p.0 {
            // Previous has a bucket current lacks.
            if p.1 != 0.0 {
                return true;
            }
        } else if c.1 < p.1 {
            return true;
        }
        match prev.next_stripped() {
            Some(next) => p = next,
            None => return false,
        }
    }
}

/// Go's `spansMatch`: whether two span lists are the same once spans of length 0 are
/// dropped (their offsets carried over to the next span).
fn spans_match(s1: &[Span], s2: &[Span]) -> bool {
    if s1.is_empty() && s2.is_empty() {
        return true;
    }
    let (mut i1, mut i2) = (0, 0);
    loop {
        if i1 >= s1.len() {
            return all_empty_spans(&s2[i2..]);
        }
        if i2 >= s2.len() {
            return all_empty_spans(&s1[i1..]);
        }
        let (mut c1, mut c2) = (s1[i1], s2[i2]);
        i1 += 1;
        i2 += 1;
        for (curr, spans, i) in [(&mut c1, s1, &mut i1), (&mut c2, s2, &mut i2)] {
            if curr.length == 0 {
                // Add up the offsets of consecutive spans of length 0 up to a real span.
                while *i < spans.len() && spans[*i].length == 0 {
                    curr.offset = curr.offset.wrapping_add(spans[*i].offset);
                    *i += 1;
                }
                if let Some(next) = spans.get(*i) {
                    curr.offset = curr.offset.wrapping_add(next.offset);
                    curr.length = next.length;
                    *i += 1;
                }
            }
        }
        if c1.length == 0 && c2.length == 0 {
            // Both end in spans of length 0; what came before matched.
            return true;
        }
        if c1 != c2 {
            return false;
        }
    }
}

fn all_empty_spans(spans: &[Span]) -> bool {
    spans.iter().all(|s| s.length == 0)
}

/// Go's `floatBucketsMatch`: the same counts, bit for bit.
fn buckets_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::histogram::strategies::{exponential, zero_threshold};

    /// Two histograms of one schema and zero threshold with whole counts, often 0.
    fn same_layout_pair() -> impl Strategy<Value = (FloatHistogram, FloatHistogram)> {
        (-4i32..=8, zero_threshold()).prop_flat_map(|(schema, threshold)| {
            let counts = prop_oneof![Just(0.0), (1u32..100).prop_map(f64::from)].boxed();
            let h = move || exponential(Just(schema), Just(threshold), counts.clone());
            (h(), h())
        })
    }

    proptest! {
        #[test]
        fn growing_is_no_reset_and_losing_anything_populated_is_one(
            (a, b) in same_layout_pair(),
        ) {
            prop_assert!(!a.detect_reset(&a));
            prop_assert!(a.equals(&a.clone()));
            let mut grown = a.clone();
            grown.add(&b).unwrap();
            prop_assert!(!grown.detect_reset(&a));
            // Back from `grown` to `a`, with the count kept so that only buckets tell: a reset
            // if `b` added to the zero bucket or to any bucket outside it.
            let mut shrunk = a.clone();
            shrunk.count = grown.count;
            let outside_zero_bucket = |positive| {
                BucketIter::new(&b, positive, b.zero_threshold, b.schema).any(|x| x.count > 0.0)
            };
            let lost = b.zero_count > 0.0 || outside_zero_bucket(true) || outside_zero_bucket(false);
            prop_assert_eq!(shrunk.detect_reset(&grown), lost);
        }
    }
}
