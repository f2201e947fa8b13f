//! Histogram arithmetic as PromQL does it, ported from Prometheus's `FloatHistogram` (Go):
//! scaling (`*`, `/` by a scalar), adding and subtracting histograms (`+`, `-`, `rate`,
//! `increase`, `delta`), and the compensated (Kahan) sum behind `sum` and `avg`.
//!
//! Adding two histograms reconciles their differences the way Prometheus does, so results
//! match Prometheus's bucket for bucket:
//! - zero buckets of different widths: the wider threshold wins, moved outwards to a bucket
//!   boundary if it falls inside a populated bucket, and the buckets inside it are folded into
//!   the zero count;
//! - different exponential schemas: the finer histogram is reduced to the coarser schema;
//! - custom buckets (schema -53) with different bounds: both are mapped onto the bounds they
//!   have in common, and the result says so;
//! - an exponential histogram and a custom-buckets one cannot be added: an error.
//!
//! Results may hold empty buckets and adjacent spans, as in Go; PromQL compacts them
//! ([`FloatHistogram::compact`]) before answering.

use std::borrow::Cow;

use super::merge::{
    add_buckets, add_custom_buckets_with_mismatches, intersect_custom_bucket_bounds, kahan_reduce,
};
use super::{CounterResetHint, FloatHistogram, Span, reduce};

/// What adding or subtracting reconciled besides the sum, which PromQL turns into
/// annotations (Go returns them as `counterResetCollision` and `nhcbBoundsReconciled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeReport {
    /// One histogram said "counter reset" and the other "no counter reset"; the result's
    /// hint is set to unknown.
    pub counter_reset_collision: bool,
    /// The two had different custom bucket bounds; the result has the bounds they share.
    pub nhcb_bounds_reconciled: bool,
}

/// An exponential histogram and a custom-buckets one cannot be added or subtracted
/// (Prometheus's `ErrHistogramsIncompatibleSchema`, with its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
)]
pub struct IncompatibleSchemaError;

/// One side's spans and buckets, borrowed or reduced, with compensation buckets if any.
type Side<'a> = (Cow<'a, [Span]>, Cow<'a, [f64]>, Option<Vec<f64>>);

impl FloatHistogram {
    /// Scales every count (buckets, zero bucket, count) and the sum by `factor`; the layout
    /// stays. A negative factor makes the result a gauge histogram. Answers `self` to chain.
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides like [`FloatHistogram::mul`] multiplies. Dividing by zero divides count, sum
    /// and zero count (±Inf, or NaN for 0) and drops every bucket; a negative divisor makes a
    /// gauge histogram.
    pub fn div(&mut self, scalar: f64) -> &mut Self {
        self.zero_count /= scalar;
        self.count /= scalar;
        self.sum /= scalar;
        if scalar == 0.0 {
            self.positive_spans.clear();
            self.positive_buckets.clear();
            self.negative_spans.clear();
            self.negative_buckets.clear();
            return self;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= scalar);
        self.negative_buckets.iter_mut().for_each(|b| *b /= scalar);
        if scalar < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Adds `other` into `self` (Go's `Add`): counts, sum, zero count and buckets; buckets
    /// only `other` has are inserted. Zero thresholds, schemas and custom bounds are
    /// reconciled as the module documentation says; `other` is not changed. The counter
    /// reset hint becomes a gauge if either is one, else unknown if they differ.
    ///
    /// On error `self` is unchanged.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<MergeReport, IncompatibleSchemaError> {
        self.merge(other, false, None)
    }

    /// Subtracts `other` from `self` (Go's `Sub`), reconciling as [`FloatHistogram::add`]
    /// does. The hint is reconciled as for adding (which suits a running mean); PromQL's `-`
    /// operator then makes the result a gauge.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<MergeReport, IncompatibleSchemaError> {
        self.merge(other, true, None)
    }

    /// Adds `other` like [`FloatHistogram::add`], but with Kahan-Neumaier summation: the
    /// rounding error of every addition is kept in a compensation histogram of the same
    /// layout, which the caller passes back in on the next call (`None` on the first) and
    /// finally adds to the sum (Go's `KahanAdd`, behind PromQL's `sum` and `avg`).
    ///
    /// Answers the compensation histogram. On error `self` is unchanged and, as in Go, the
    /// compensation is dropped. A compensation whose bucket counts do not match `self`'s (a
    /// caller's mistake, on which Go panics) is padded or cut to match.
    pub fn kahan_add(
        &mut self,
        other: &FloatHistogram,
        compensation: Option<FloatHistogram>,
    ) -> Result<(FloatHistogram, MergeReport), IncompatibleSchemaError> {
        if self.is_custom_buckets() != other.is_custom_buckets() {
            return Err(IncompatibleSchemaError);
        }
        let fresh = compensation.is_none();
        let mut c = compensation.unwrap_or_else(|| self.new_compensation());
        let report = self.merge(other, false, Some(&mut c))?;
        if fresh {
            // Go creates the compensation after reconciling the hints, with the result's.
            c.hint = self.hint;
        }
        Ok((c, report))
    }

    /// Whether any count, the sum or a custom bound is infinite (Go's `HasOverflow`): PromQL's
    /// `avg` switches to an incremental mean once a running sum overflows.
    pub fn has_overflow(&self) -> bool {
        [self.zero_count, self.count, self.sum]
            .iter()
            .chain(&self.positive_buckets)
            .chain(&self.negative_buckets)
            .chain(&self.custom_values)
            .any(|v| v.is_infinite())
    }

    /// Go's `Add`, `Sub` and `KahanAdd` in one (Go spells out each): the same
    /// reconciliation, with plain additions or, given a compensation histogram `c` (never
    /// when subtracting), Kahan steps.
    fn merge(
        &mut self,
        other: &FloatHistogram,
        negative: bool,
        mut c: Option<&mut FloatHistogram>,
    ) -> Result<MergeReport, IncompatibleSchemaError> {
        if self.is_custom_buckets() != other.is_custom_buckets() {
            return Err(IncompatibleSchemaError);
        }
        let mut report = MergeReport {
            counter_reset_collision: self.adjust_counter_reset(other),
            ..MergeReport::default()
        };
        if let Some(c) = c.as_deref_mut() {
            c.positive_buckets.resize(self.positive_buckets.len(), 0.0);
            c.negative_buckets.resize(self.negative_buckets.len(), 0.0);
        }
        if !self.is_custom_buckets() {
            let (other_zero, other_c_zero) = self.reconcile_zero_buckets(other, c.as_deref_mut());
            match c.as_deref_mut() {
                None if negative => self.zero_count -= other_zero,
                None => self.zero_count += other_zero,
                Some(c) => {
                    (self.zero_count, c.zero_count) =
                        kahan_inc(other_zero, self.zero_count, c.zero_count);
                    (self.zero_count, c.zero_count) =
                        kahan_inc(other_c_zero, self.zero_count, c.zero_count);
                }
            }
        }
        match c.as_deref_mut() {
            None if negative => {
                self.count -= other.count;
                self.sum -= other.sum;
            }
            None => {
                self.count += other.count;
                self.sum += other.sum;
            }
            Some(c) => {
                (self.count, c.count) = kahan_inc(other.count, self.count, c.count);
                (self.sum, c.sum) = kahan_inc(other.sum, self.sum, c.sum);
            }
        }
        if self.is_custom_buckets() {
            report.nhcb_bounds_reconciled = self.merge_custom_buckets(other, negative, c);
            return Ok(report);
        }

        // Both in the coarser schema. The other histogram's buckets, when reduced with Kahan
        // steps, get compensation buckets of their own (the rounding of the reduction).
        let (mut other_pos, mut other_neg): (Side<'_>, Side<'_>) = (
            (
                Cow::Borrowed(&other.positive_spans),
                Cow::Borrowed(&other.positive_buckets),
                None,
            ),
            (
                Cow::Borrowed(&other.negative_spans),
                Cow::Borrowed(&other.negative_buckets),
                None,
            ),
        );
        if other.schema < self.schema {
            match c.as_deref_mut() {
                None => self.reduce_resolution(other.schema),
                Some(c) => {
                    for (spans, buckets, comp) in [
                        (
                            &mut self.positive_spans,
                            &mut self.positive_buckets,
                            &mut c.positive_buckets,
                        ),
                        (
                            &mut self.negative_spans,
                            &mut self.negative_buckets,
                            &mut c.negative_buckets,
                        ),
                    ] {
                        (*spans, *buckets, *comp) =
                            kahan_reduce(spans, buckets, comp, self.schema, other.schema);
                    }
                    self.schema = other.schema;
                }
            }
        } else if other.schema > self.schema {
            let (from, to) = (other.schema, self.schema);
            for (side, spans, buckets) in [
                (
                    &mut other_pos,
                    &other.positive_spans,
                    &other.positive_buckets,
                ),
                (
                    &mut other_neg,
                    &other.negative_spans,
                    &other.negative_buckets,
                ),
            ] {
                if c.is_none() {
                    let (s, b) = reduce(spans, buckets, from, to);
                    *side = (Cow::Owned(s), Cow::Owned(b), None);
                } else if !buckets.is_empty() {
                    let zeros = vec![0.0; buckets.len()];
                    let (s, b, comp) = kahan_reduce(spans, buckets, &zeros, from, to);
                    *side = (Cow::Owned(s), Cow::Owned(b), Some(comp));
                }
            }
        }
        let (schema, threshold) = (self.schema, self.zero_threshold);
        let (c_pos, c_neg) = match c.as_deref_mut() {
            Some(c) => (Some(&mut c.positive_buckets), Some(&mut c.negative_buckets)),
            None => (None, None),
        };
        add_buckets(
            schema,
            threshold,
            negative,
            (&mut self.positive_spans, &mut self.positive_buckets),
            (&other_pos.0, &other_pos.1),
            c_pos.map(|comp| (comp, other_pos.2.as_deref())),
        );
        add_buckets(
            schema,
            threshold,
            negative,
            (&mut self.negative_spans, &mut self.negative_buckets),
            (&other_neg.0, &other_neg.1),
            c_neg.map(|comp| (comp, other_neg.2.as_deref())),
        );
        if let Some(c) = c {
            // The compensation keeps the sum's layout.
            c.schema = self.schema;
            c.zero_threshold = self.zero_threshold;
            c.positive_spans.clone_from(&self.positive_spans);
            c.negative_spans.clone_from(&self.negative_spans);
        }
        Ok(report)
    }

    /// The bucket part of [`FloatHistogram::merge`] for custom buckets: bucket by bucket if
    /// the bounds match, else both mapped onto the bounds they share (answered true).
    fn merge_custom_buckets(
        &mut self,
        other: &FloatHistogram,
        negative: bool,
        mut c: Option<&mut FloatHistogram>,
    ) -> bool {
        let reconciled = !custom_bucket_bounds_match(&self.custom_values, &other.custom_values);
        if reconciled {
            let bounds = intersect_custom_bucket_bounds(&self.custom_values, &other.custom_values);
            let (spans, buckets, comp) = add_custom_buckets_with_mismatches(
                negative,
                (
                    &self.positive_spans,
                    &self.positive_buckets,
                    &self.custom_values,
                ),
                (
                    &other.positive_spans,
                    &other.positive_buckets,
                    &other.custom_values,
                ),
                c.as_deref().map(|c| &c.positive_buckets[..]),
                &bounds,
            );
            (self.positive_spans, self.positive_buckets) = (spans, buckets);
            if let Some(c) = c.as_deref_mut() {
                c.positive_buckets = comp;
                c.custom_values.clone_from(&bounds);
            }
            self.custom_values = bounds;
        } else {
            add_buckets(
                self.schema,
                self.zero_threshold,
                negative,
                (&mut self.positive_spans, &mut self.positive_buckets),
                (&other.positive_spans, &other.positive_buckets),
                c.as_deref_mut().map(|c| (&mut c.positive_buckets, None)),
            );
        }
        if let Some(c) = c {
            c.positive_spans.clone_from(&self.positive_spans);
        }
        reconciled
    }

    /// Go's `adjustCounterReset`: the hint of a sum or difference. Equal hints stay; a gauge
    /// on either side makes a gauge; otherwise unknown on either side makes unknown; "reset"
    /// against "not reset" is a collision (answered true) and makes unknown.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::{Gauge, Unknown};
        match (self.hint, other.hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.hint = Unknown;
                false
            }
            _ => {
                self.hint = Unknown;
                true
            }
        }
    }

    /// Go's `newCompensationHistogram`: the layout of `self` with every count 0.
    fn new_compensation(&self) -> FloatHistogram {
        FloatHistogram {
            hint: self.hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            custom_values: self.custom_values.clone(),
            positive_spans: self.positive_spans.clone(),
            positive_buckets: vec![0.0; self.positive_buckets.len()],
            negative_spans: self.negative_spans.clone(),
            negative_buckets: if self.is_custom_buckets() {
                Vec::new()
            } else {
                vec![0.0; self.negative_buckets.len()]
            },
            ..FloatHistogram::default()
        }
    }
}

/// Whether two sets of custom bounds are the same (Go's `CustomBucketBoundsMatch`, by value).
pub fn custom_bucket_bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// One step of Kahan-Neumaier summation (Prometheus's `kahansum.Inc`): adds `inc` to `sum`
/// and the rounding error to the compensation `c`, which restarts at 0 when the sum
/// overflows. The one copy: PromQL's float sums use it too.
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::histogram::strategies::{exponential, zero_threshold};

    /// Bucket counts by (side, index), without empty buckets.
    fn counts(h: &FloatHistogram) -> BTreeMap<(bool, i32), f64> {
        let pos = h.positive_bucket_iter().map(|b| ((true, b.index), b.count));
        let neg = h
            .negative_bucket_iter()
            .map(|b| ((false, b.index), b.count));
        pos.chain(neg).filter(|(_, c)| *c != 0.0).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    /// Whether two histograms have the same schema, threshold and, within float tolerance,
    /// the same counts, sum and buckets.
    fn same_within_tolerance(a: &FloatHistogram, b: &FloatHistogram) -> bool {
        let (ca, cb) = (counts(a), counts(b));
        let keys: std::collections::BTreeSet<_> = ca.keys().chain(cb.keys()).collect();
        a.schema == b.schema
            && a.zero_threshold == b.zero_threshold
            && close(a.count, b.count)
            && close(a.sum, b.sum)
            && close(a.zero_count, b.zero_count)
            && keys.into_iter().all(|k| {
                close(
                    ca.get(k).copied().unwrap_or(0.0),
                    cb.get(k).copied().unwrap_or(0.0),
                )
            })
    }

    /// Two histograms of one schema and zero threshold, with fractional counts.
    fn same_layout_pair() -> impl Strategy<Value = (FloatHistogram, FloatHistogram)> {
        (-4i32..=8, zero_threshold()).prop_flat_map(|(schema, threshold)| {
            let h = || exponential(Just(schema), Just(threshold), (0.0f64..1e3).boxed());
            (h(), h())
        })
    }

    proptest! {
        #[test]
        fn adding_then_subtracting_gives_back_the_original(
            (a, b) in same_layout_pair(),
        ) {
            let mut h = a.clone();
            h.add(&b).unwrap();
            prop_assert_eq!(h.validate(), Ok(()));
            h.sub(&b).unwrap();
            prop_assert!(same_within_tolerance(&h, &a), "{:?}\n!=\n{:?}", h, a);
        }

        #[test]
        fn kahan_sum_plus_its_compensation_is_the_plain_sum(
            (a, b) in same_layout_pair(),
            other_schema in -4i32..=8,
            other_threshold in zero_threshold(),
        ) {
            // The second operand with any schema and threshold, so both get reconciled.
            let mut b = b;
            if other_schema < b.schema {
                b.reduce_resolution(other_schema);
            }
            b.zero_threshold = other_threshold;
            let mut plain = a.clone();
            plain.add(&b).unwrap();
            let mut kahan = a.clone();
            let (comp, _) = kahan.kahan_add(&b, None).unwrap();
            kahan.add(&comp).unwrap();
            prop_assert!(same_within_tolerance(&kahan, &plain), "{:?}\n!=\n{:?}", kahan, plain);
        }
    }

    #[test]
    fn kahan_sum_keeps_the_small_terms_plain_addition_loses() {
        let h = |c: f64| FloatHistogram {
            count: c,
            positive_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            positive_buckets: vec![c],
            ..FloatHistogram::default()
        };
        let (mut plain, mut kahan, mut comp) = (h(1e16), h(1e16), None);
        for _ in 0..10 {
            plain.add(&h(1.0)).unwrap();
            comp = Some(kahan.kahan_add(&h(1.0), comp).unwrap().0);
        }
        kahan.add(&comp.unwrap()).unwrap();
        assert_eq!(plain.count, 1e16);
        assert_eq!(kahan.count, 1e16 + 10.0);
        assert_eq!(kahan.positive_buckets, [1e16 + 10.0]);
    }

    #[test]
    fn hints_combine_as_prometheus_combines_them() {
        use CounterResetHint::{Gauge, NotReset, Reset, Unknown};
        // (receiver, other) -> (result, collision), Go's `adjustCounterReset` spelled out.
        let table = [
            ((Unknown, Unknown), (Unknown, false)),
            ((Unknown, Reset), (Unknown, false)),
            ((Unknown, NotReset), (Unknown, false)),
            ((Unknown, Gauge), (Gauge, false)),
            ((Reset, Unknown), (Unknown, false)),
            ((Reset, Reset), (Reset, false)),
            ((Reset, NotReset), (Unknown, true)),
            ((Reset, Gauge), (Gauge, false)),
            ((NotReset, Unknown), (Unknown, false)),
            ((NotReset, Reset), (Unknown, true)),
            ((NotReset, NotReset), (NotReset, false)),
            ((NotReset, Gauge), (Gauge, false)),
            ((Gauge, Unknown), (Gauge, false)),
            ((Gauge, Reset), (Gauge, false)),
            ((Gauge, NotReset), (Gauge, false)),
            ((Gauge, Gauge), (Gauge, false)),
        ];
        for ((a, b), (hint, collision)) in table {
            let h = |hint| FloatHistogram {
                hint,
                ..FloatHistogram::default()
            };
            let mut sum = h(a);
            let report = sum.add(&h(b)).unwrap();
            assert_eq!(
                (sum.hint, report.counter_reset_collision),
                (hint, collision),
                "{a:?} + {b:?}"
            );
            let mut kahan = h(a);
            let (comp, report) = kahan.kahan_add(&h(b), None).unwrap();
            assert_eq!(
                (kahan.hint, report.counter_reset_collision),
                (hint, collision)
            );
            assert_eq!(comp.hint, hint, "the compensation takes the sum's hint");
        }
    }

    #[test]
    fn overflow_is_any_infinite_count_sum_or_bound() {
        let finite = FloatHistogram {
            count: f64::MAX,
            sum: f64::NAN,
            positive_buckets: vec![1.0],
            ..FloatHistogram::default()
        };
        assert!(!finite.has_overflow());
        let mut sum = finite.clone();
        sum.add(&finite).unwrap();
        assert!(sum.has_overflow());
        let mut h = finite.clone();
        h.negative_buckets = vec![f64::NEG_INFINITY];
        assert!(h.has_overflow());
    }

    #[test]
    fn a_nan_zero_threshold_ends_reconciliation_instead_of_looping() {
        // Go's loop never ends here (NaN differs from every threshold).
        let mut a = FloatHistogram {
            zero_threshold: f64::NAN,
            zero_count: 1.0,
            count: 1.0,
            ..FloatHistogram::default()
        };
        let b = FloatHistogram {
            zero_threshold: 0.5,
            zero_count: 2.0,
            count: 2.0,
            ..FloatHistogram::default()
        };
        a.add(&b).unwrap();
        assert_eq!((a.zero_count, a.count), (3.0, 3.0));
        assert!(a.zero_threshold.is_nan());
    }

    #[test]
    fn mixing_exponential_and_custom_buckets_is_an_error_and_changes_nothing() {
        let mut a = FloatHistogram {
            count: 1.0,
            ..FloatHistogram::default()
        };
        let b = FloatHistogram {
            schema: crate::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 2.0,
            ..FloatHistogram::default()
        };
        let before = a.clone();
        assert_eq!(a.add(&b), Err(IncompatibleSchemaError));
        assert_eq!(a.sub(&b), Err(IncompatibleSchemaError));
        assert_eq!(a.kahan_add(&b, None), Err(IncompatibleSchemaError));
        assert_eq!(a, before);
    }
}
