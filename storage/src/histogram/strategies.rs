//! Proptest strategies for histograms that `validate` accepts, shared by the property tests
//! of the histogram modules.

use proptest::prelude::*;

use super::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Span};

/// Spans covering the given bucket indexes (ascending, distinct).
pub(super) fn spans_for(indexes: &[i64]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut last = 0i64;
    for &i in indexes {
        match spans.last_mut() {
            Some(s) if i == last + 1 => s.length += 1,
            Some(_) => spans.push(Span {
                offset: (i - last - 1) as i32,
                length: 1,
            }),
            None => spans.push(Span {
                offset: i as i32,
                length: 1,
            }),
        }
        last = i;
    }
    spans
}

/// One side of an exponential histogram in the range of real bucket indexes: buckets at
/// indexes within `-40..40`, counts from `counts`.
fn side(counts: BoxedStrategy<f64>) -> impl Strategy<Value = (Vec<Span>, Vec<f64>)> {
    proptest::collection::btree_set(-40i64..40, 0..8).prop_flat_map(move |idx| {
        let idx: Vec<i64> = idx.into_iter().collect();
        let n = idx.len();
        (
            Just(spans_for(&idx)),
            proptest::collection::vec(counts.clone(), n),
        )
    })
}

/// A valid exponential histogram of the given schema and zero threshold, whose counts come
/// from `counts`. Count and sum are not derived from the buckets (arithmetic does not care).
pub(super) fn exponential(
    schema: impl Strategy<Value = i32>,
    zero_threshold: impl Strategy<Value = f64>,
    counts: BoxedStrategy<f64>,
) -> impl Strategy<Value = FloatHistogram> {
    (
        schema,
        zero_threshold,
        counts.clone(),
        counts.clone(),
        side(counts.clone()),
        side(counts),
        -1e3f64..1e3,
    )
        .prop_map(
            |(schema, zero_threshold, zero_count, count, pos, neg, sum)| FloatHistogram {
                schema,
                zero_threshold,
                zero_count,
                count,
                sum,
                positive_spans: pos.0,
                positive_buckets: pos.1,
                negative_spans: neg.0,
                negative_buckets: neg.1,
                ..FloatHistogram::default()
            },
        )
}

/// Zero thresholds Prometheus uses, and ones at and between bucket boundaries.
pub(super) fn zero_threshold() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(2.938735877055719e-39),
        Just(1e-3),
        Just(0.25),
        Just(0.6),
        Just(1.0),
        Just(3.0)
    ]
}

/// Counts that are often 0, so that compaction and resets have empty buckets to handle.
pub(super) fn sparse_counts() -> BoxedStrategy<f64> {
    prop_oneof![Just(0.0), 0.0f64..100.0].boxed()
}

/// A valid histogram with anything `validate` lets through: any first offset (up to
/// `i32::MIN` and `i32::MAX`), non-first offsets up to `i32::MAX`, spans of length 0, NaN
/// and infinite counts, NaN and infinite zero thresholds, and custom buckets.
pub(super) fn any_valid() -> impl Strategy<Value = FloatHistogram> {
    let count = prop_oneof![
        4 => 0.0f64..1e3,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::MAX),
    ];
    let offset = prop_oneof![4 => 0i32..4, 1 => 0..=i32::MAX];
    let first = prop_oneof![3 => -20i32..20, 1 => any::<i32>()];
    let side = (
        first,
        proptest::collection::vec((offset, 0u32..4), 0..5),
        proptest::collection::vec(count.clone(), 12),
    )
        .prop_map(|(first, rest, counts)| {
            let spans: Vec<Span> = rest
                .iter()
                .enumerate()
                .map(|(i, &(offset, length))| Span {
                    offset: if i == 0 { first } else { offset },
                    length,
                })
                .collect();
            let n = spans.iter().map(|s| s.length as usize).sum();
            (spans, counts[..n].to_vec())
        });
    let threshold = prop_oneof![
        4 => zero_threshold(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => 0.0f64..1e10,
    ];
    let exponential = (
        -4i32..=8,
        threshold,
        count.clone(),
        count.clone(),
        side.clone(),
        side,
    )
        .prop_map(
            |(schema, zero_threshold, zero_count, count, pos, neg)| FloatHistogram {
                schema,
                zero_threshold,
                zero_count,
                count,
                sum: 1.0,
                positive_spans: pos.0,
                positive_buckets: pos.1,
                negative_spans: neg.0,
                negative_buckets: neg.1,
                ..FloatHistogram::default()
            },
        );
    let custom = (
        proptest::collection::btree_set(-100i32..100, 0..6),
        proptest::collection::btree_set(0i64..7, 0..7),
        proptest::collection::vec(count.clone(), 7),
        count,
    )
        .prop_map(|(bounds, idx, counts, count)| {
            let custom_values: Vec<f64> = bounds.into_iter().map(f64::from).collect();
            let idx: Vec<i64> = idx
                .into_iter()
                .filter(|i| *i <= custom_values.len() as i64)
                .collect();
            FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count,
                sum: 1.0,
                positive_spans: spans_for(&idx),
                positive_buckets: counts[..idx.len()].to_vec(),
                custom_values,
                ..FloatHistogram::default()
            }
        });
    prop_oneof![3 => exponential, 1 => custom]
}
