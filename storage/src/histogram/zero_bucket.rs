//! Reconciling zero buckets of different widths before adding or comparing histograms, as
//! Prometheus does: the wider threshold wins, it moves outwards to a bucket boundary when it
//! falls inside a populated bucket, and the buckets it then covers are folded into the zero
//! count.

use super::FloatHistogram;
use super::arith::kahan_inc;

impl FloatHistogram {
    /// Go's `reconcileZeroBuckets`: widens the zero bucket of `self` (and of its compensation
    /// `c`) until it is at least as wide as `other`'s and on a boundary of no populated bucket
    /// of either. Answers the zero count (and its Kahan compensation) `other` would have with
    /// that threshold; `other` itself is not changed.
    ///
    /// Go loops forever when a threshold is NaN; here NaN ends the reconciliation with
    /// `self`'s threshold.
    pub(super) fn reconcile_zero_buckets(
        &mut self,
        other: &FloatHistogram,
        mut c: Option<&mut FloatHistogram>,
    ) -> (f64, f64) {
        let mut other_zero_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        let mut other_c_zero_count = 0.0;
        while other_threshold != self.zero_threshold {
            if other_threshold.is_nan() || self.zero_threshold.is_nan() {
                break;
            }
            if self.zero_threshold > other_threshold {
                (other_zero_count, other_threshold, other_c_zero_count) =
                    other.zero_count_for_larger_threshold(self.zero_threshold, None);
            }
            if other_threshold > self.zero_threshold {
                let (zero_count, threshold, c_zero_count) =
                    self.zero_count_for_larger_threshold(other_threshold, c.as_deref());
                (self.zero_count, self.zero_threshold) = (zero_count, threshold);
                if let Some(c) = c.as_deref_mut() {
                    c.zero_count = c_zero_count;
                }
                self.trim_buckets_in_zero_bucket(c.as_deref_mut());
            }
        }
        (other_zero_count, other_c_zero_count)
    }

    /// Go's `zeroCountForLargerThreshold`: the zero count this histogram would have with the
    /// (larger or equal) threshold, the threshold itself, moved outwards to the bucket's
    /// boundary if it falls inside a populated bucket, and the Kahan compensation of that
    /// count (starting from `c`'s zero count, adding `c`'s buckets too). A threshold below
    /// this histogram's (on which Go panics) answers the histogram's own.
    pub(super) fn zero_count_for_larger_threshold(
        &self,
        larger: f64,
        c: Option<&FloatHistogram>,
    ) -> (f64, f64, f64) {
        let mut c_zero_count = c.map_or(0.0, |c| c.zero_count);
        let mut larger = larger;
        if larger <= self.zero_threshold {
            return (
                self.zero_count,
                self.zero_threshold.max(larger),
                c_zero_count,
            );
        }
        'outer: loop {
            // As in Go, a restart resets the zero count but not its compensation.
            let mut zero_count = self.zero_count;
            for (i, b) in self.positive_bucket_iter().enumerate() {
                if b.lower >= larger {
                    break;
                }
                // A bucket to fold into the zero bucket.
                (zero_count, c_zero_count) = kahan_inc(b.count, zero_count, c_zero_count);
                if let Some(c) = c {
                    let comp = c.positive_buckets.get(i).copied().unwrap_or(0.0);
                    (zero_count, c_zero_count) = kahan_inc(comp, zero_count, c_zero_count);
                }
                if b.upper > larger {
                    // The threshold falls inside this bucket: if it is populated, the
                    // threshold moves to its upper bound.
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for (i, b) in self.negative_bucket_iter().enumerate() {
                if b.upper <= -larger {
                    break;
                }
                (zero_count, c_zero_count) = kahan_inc(b.count, zero_count, c_zero_count);
                if let Some(c) = c {
                    let comp = c.negative_buckets.get(i).copied().unwrap_or(0.0);
                    (zero_count, c_zero_count) = kahan_inc(comp, zero_count, c_zero_count);
                }
                if b.lower < -larger {
                    // Inside a populated bucket: the threshold moves to its bound, and the
                    // positive side has to be counted again for the new threshold.
                    if b.count != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zero_count, larger, c_zero_count);
        }
    }

    /// Go's `trimBucketsInZeroBucket`: drops the buckets inside the zero bucket (their counts
    /// are already part of the zero count; the threshold is on a bucket boundary), and the
    /// matching compensation buckets, then compacts.
    fn trim_buckets_in_zero_bucket(&mut self, c: Option<&mut FloatHistogram>) {
        let threshold = self.zero_threshold;
        let positive = self
            .positive_bucket_iter()
            .take_while(|b| b.lower < threshold)
            .count();
        let negative = self
            .negative_bucket_iter()
            .take_while(|b| b.upper > -threshold)
            .count();
        self.positive_buckets
            .iter_mut()
            .take(positive)
            .for_each(|b| *b = 0.0);
        self.negative_buckets
            .iter_mut()
            .take(negative)
            .for_each(|b| *b = 0.0);
        match c {
            Some(c) => {
                c.positive_buckets
                    .iter_mut()
                    .take(positive)
                    .for_each(|b| *b = 0.0);
                c.negative_buckets
                    .iter_mut()
                    .take(negative)
                    .for_each(|b| *b = 0.0);
                self.compact_with_compensation(0, c);
            }
            None => {
                self.compact(0);
            }
        }
    }
}
