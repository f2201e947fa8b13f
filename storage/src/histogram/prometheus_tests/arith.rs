//! Go's `TestFloatHistogramMul`, `Div`, `Add`, `Sub`, `TestKahanAddWithCompHistogram` and
//! `TestFloatHistogramCopyToSchema`.

// Go's cases scale by 3.1415, an arbitrary factor rather than an approximation of π.
#![allow(clippy::approx_constant)]

use super::spans;
use crate::histogram::{CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram};

/// A histogram scaled by a factor.
struct ScaleCase {
    name: &'static str,
    input: FloatHistogram,
    factor: f64,
    expected: FloatHistogram,
}

fn mul_cases() -> Vec<ScaleCase> {
    vec![
        ScaleCase {
            name: "zero value",
            input: FloatHistogram::default(),
            factor: 3.1415,
            expected: FloatHistogram::default(),
        },
        ScaleCase {
            name: "zero multiplier",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            factor: 0.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 0.0,
                count: 0.0,
                sum: 0.0,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![0.0, 0.0, 0.0, 0.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![0.0, 0.0, 0.0, 0.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "no-op",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            factor: 1.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "double",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            factor: 2.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 3493.3 * 2.0,
                sum: 2349209.324 * 2.0,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![2.0, 6.6, 8.4, 0.2],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![6.2, 6.0, 1.234e5 * 2.0, 2000.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "triple",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            factor: 3.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 33.0,
                count: 90.0,
                sum: 69.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![3.0, 0.0, 9.0, 12.0, 21.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![9.0, 3.0, 15.0, 18.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "negation",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            factor: -1.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: -11.0,
                count: -30.0,
                sum: -23.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![-1.0, 0.0, -3.0, -4.0, -7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![-3.0, -1.0, -5.0, -6.0],
                hint: CounterResetHint::Gauge,
                ..Default::default()
            },
        },
        ScaleCase {
            name: "negative multiplier",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            factor: -2.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: -22.0,
                count: -60.0,
                sum: -46.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![-2.0, 0.0, -6.0, -8.0, -14.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![-6.0, -2.0, -10.0, -12.0],
                hint: CounterResetHint::Gauge,
                ..Default::default()
            },
        },
        ScaleCase {
            name: "no-op with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            factor: 1.0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "triple with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            factor: 3.0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 90.0,
                sum: 69.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![3.0, 0.0, 9.0, 12.0, 21.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
        },
    ]
}

#[test]
fn mul_scales_every_count_and_makes_negative_factors_gauges() {
    for c in mul_cases() {
        let mut h = c.input.clone();
        assert_eq!(*h.mul(c.factor), c.expected, "{}", c.name);
        assert_eq!(h, c.expected, "{}: in place", c.name);
    }
}

fn div_cases() -> Vec<ScaleCase> {
    vec![
        ScaleCase {
            name: "zero value",
            input: FloatHistogram::default(),
            factor: 3.1415,
            expected: FloatHistogram::default(),
        },
        ScaleCase {
            name: "zero divisor",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            factor: 0.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                count: f64::INFINITY,
                sum: f64::INFINITY,
                zero_count: f64::INFINITY,
                ..Default::default()
            },
        },
        ScaleCase {
            name: "no-op",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            factor: 1.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "half",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            factor: 2.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 15.0,
                sum: 11.5,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![0.5, 0.0, 1.5, 2.0, 3.5],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![1.5, 0.5, 2.5, 3.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "negation",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            factor: -1.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: -5.5,
                count: -3493.3,
                sum: -2349209.324,
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![-1.0, -3.3, -4.2, -0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![-3.1, -3.0, -1.234e5, -1000.0],
                hint: CounterResetHint::Gauge,
                ..Default::default()
            },
        },
        ScaleCase {
            name: "negative half",
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            factor: -2.0,
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: -5.5,
                count: -15.0,
                sum: -11.5,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![-0.5, 0.0, -1.5, -2.0, -3.5],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![-1.5, -0.5, -2.5, -3.0],
                hint: CounterResetHint::Gauge,
                ..Default::default()
            },
        },
        ScaleCase {
            name: "no-op with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            factor: 1.0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
        },
        ScaleCase {
            name: "half with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            factor: 2.0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 11.5,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![0.5, 0.0, 1.5, 2.0, 3.5],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
        },
    ]
}

#[test]
fn div_divides_every_count_and_drops_buckets_on_division_by_zero() {
    for c in div_cases() {
        let mut h = c.input.clone();
        assert_eq!(*h.div(c.factor), c.expected, "{}", c.name);
        assert_eq!(h, c.expected, "{}: in place", c.name);
    }
}

/// Two histograms added or subtracted: the expected result (compacted before comparing, as
/// Go's test helpers do), or the expected error, and the expected reports.
struct MergeCase {
    name: &'static str,
    a: FloatHistogram,
    b: FloatHistogram,
    expected: Option<FloatHistogram>,
    err: &'static str,
    collision: bool,
    reconciled: bool,
}

fn add_cases() -> Vec<MergeCase> {
    vec![
        MergeCase {
            name: "same bucket layout",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![4.0, 2.0, 9.0, 10.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "same bucket layout, defined differently",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (1, 1), (0, 2)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(-2, 2), (1, 2), (0, 1)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                negative_spans: spans(&[(3, 7)]),
                negative_buckets: vec![1.0, 1.0, 0.0, 0.0, 0.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-2, 2), (1, 1), (0, 2)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                negative_spans: spans(&[(3, 5), (0, 2)]),
                negative_buckets: vec![4.0, 2.0, 0.0, 0.0, 0.0, 9.0, 10.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "non-overlapping spans",
            a: FloatHistogram {
                zero_threshold: 0.001,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.001,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(0, 2), (3, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                negative_spans: spans(&[(-9, 2), (3, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.001,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-2, 4), (0, 6)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                negative_spans: spans(&[(-9, 2), (3, 2), (5, 2), (3, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "non-overlapping spans inverted order",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(0, 2), (3, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                negative_spans: spans(&[(-6, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-2, 2), (0, 5), (0, 3)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                negative_spans: spans(&[(-6, 2), (1, 2), (4, 2), (3, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "overlapping spans",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(-1, 4), (0, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-2, 4), (0, 4)]),
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "overlapping spans inverted order",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(-1, 4), (0, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-2, 5), (0, 3)]),
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "schema change",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                schema: 0,
                positive_spans: spans(&[(-1, 4), (0, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: spans(&[(-4, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: spans(&[(6, 3), (6, 4)]),
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-2, 5), (0, 3)]),
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "larger zero bucket in first histogram",
            a: FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "larger zero bucket in second histogram",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 5)]),
                positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "larger zero threshold in first histogram ends up inside a populated bucket of second histogram",
            a: FloatHistogram {
                zero_threshold: 0.2,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-1, 1), (1, 5)]),
                positive_buckets: vec![0.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "larger zero threshold in second histogram ends up inside a populated bucket of first histogram",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.2,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 5)]),
                positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "schema change combined with larger zero bucket in second histogram",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                schema: 0,
                positive_spans: spans(&[(-2, 5), (0, 3)]),
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 12.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: spans(&[(-3, 2), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: spans(&[(6, 3), (6, 4)]),
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 22.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-1, 7)]),
                positive_buckets: vec![6.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "schema change combined with larger zero bucket in first histogram",
            a: FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                schema: 0,
                positive_spans: spans(&[(-1, 4), (0, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: spans(&[(-4, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: spans(&[(6, 3), (6, 4)]),
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 20.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(-1, 4), (0, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "same custom bucket layout",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 2.345,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 11.0,
                sum: 1.234,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 26.0,
                sum: 3.579,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "same custom bucket layout, defined differently",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 2.345,
                positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 11.0,
                sum: 1.234,
                positive_spans: spans(&[(0, 2), (1, 2), (0, 1)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 26.0,
                sum: 3.579,
                positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "non-overlapping spans with custom buckets",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 2.345,
                positive_spans: spans(&[(0, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 20.0,
                sum: 1.234,
                positive_spans: spans(&[(2, 2), (3, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 35.0,
                sum: 3.579,
                positive_spans: spans(&[(0, 4), (0, 6)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "non-overlapping spans inverted order with custom buckets",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 20.0,
                sum: 1.234,
                positive_spans: spans(&[(2, 2), (3, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 2.345,
                positive_spans: spans(&[(0, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 35.0,
                sum: 3.579,
                positive_spans: spans(&[(0, 4), (0, 6)]),
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "overlapping spans with custom buckets",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 2.345,
                positive_spans: spans(&[(0, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 27.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 4), (0, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 42.0,
                sum: 3.579,
                positive_spans: spans(&[(0, 4), (0, 4)]),
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "overlapping spans inverted order with custom buckets",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 27.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 4), (0, 3)]),
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 2.345,
                positive_spans: spans(&[(0, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 42.0,
                sum: 3.579,
                positive_spans: spans(&[(0, 4), (0, 4)]),
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "custom buckets with partial intersection",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 10.0,
                sum: 100.0,
                positive_spans: spans(&[(0, 3)]),
                positive_buckets: vec![2.0, 3.0, 5.0],
                custom_values: vec![1.0, 2.5],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 8.0,
                sum: 80.0,
                positive_spans: spans(&[(0, 4)]),
                positive_buckets: vec![1.0, 2.0, 3.0, 2.0],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 18.0,
                sum: 180.0,
                positive_spans: spans(&[(0, 2)]),
                positive_buckets: vec![3.0, 15.0],
                custom_values: vec![1.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: true,
        },
        MergeCase {
            name: "different custom bucket layout - intersection and rollup",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 6.0,
                sum: 2.345,
                positive_spans: spans(&[(0, 1), (1, 1)]),
                positive_buckets: vec![1.0, 5.0],
                custom_values: vec![2.0, 4.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 220.0,
                sum: 1.234,
                positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
                positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 226.0,
                sum: 3.579,
                positive_spans: spans(&[(0, 3)]),
                positive_buckets: vec![1.0 + 10.0 + 20.0, 40.0, 5.0 + 50.0 + 100.0],
                custom_values: vec![2.0, 4.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: true,
        },
        MergeCase {
            name: "custom buckets with no common boundaries except +Inf",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3.0,
                sum: 50.0,
                positive_spans: spans(&[(0, 2)]),
                positive_buckets: vec![1.0, 2.0],
                custom_values: vec![1.5],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 30.0,
                sum: 40.0,
                positive_spans: spans(&[(0, 2)]),
                positive_buckets: vec![10.0, 20.0],
                custom_values: vec![2.5],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 33.0,
                sum: 90.0,
                positive_spans: spans(&[(0, 1)]),
                positive_buckets: vec![1.0 + 2.0 + 10.0 + 20.0],
                custom_values: vec![],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: true,
        },
        MergeCase {
            name: "mix exponential and custom buckets histograms",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 59.0,
                sum: 1.234,
                schema: 0,
                positive_spans: spans(&[(-2, 5), (0, 3)]),
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 11.0,
                sum: 12.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            expected: None,
            err: "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "warn on counter reset hint collision",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                hint: CounterResetHint::Reset,
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                hint: CounterResetHint::NotReset,
                ..Default::default()
            },
            expected: None,
            err: "",
            collision: true,
            reconciled: false,
        },
    ]
}

/// Go's `testHistogramAdd`.
fn check_add(
    name: &str,
    a: &FloatHistogram,
    b: &FloatHistogram,
    expected: Option<&FloatHistogram>,
    c: &MergeCase,
) {
    assert_eq!(a.validate(), Ok(()), "{name}: a");
    assert_eq!(b.validate(), Ok(()), "{name}: b");
    let mut res = a.clone();
    let report = check_result(name, res.add(b), c);
    if let (Some(expected), Some(_)) = (expected, report) {
        let mut expected = expected.clone();
        expected.compact(0);
        res.compact(0);
        assert_eq!(res, expected, "{name}");
    }
}

/// Go's `testHistogramKahanAdd`: adds with compensation, checks the compensation has the
/// sum's layout, adds it in, and compares the total.
fn check_kahan_add(
    name: &str,
    a: &FloatHistogram,
    comp: Option<&FloatHistogram>,
    b: &FloatHistogram,
    expected: Option<&FloatHistogram>,
    c: &MergeCase,
) {
    let mut res = a.clone();
    let outcome = res.kahan_add(b, comp.cloned());
    let report = check_result(name, outcome.as_ref().map(|(_, r)| *r).map_err(|e| *e), c);
    if let Ok((comp, _)) = outcome {
        assert_eq!(res.schema, comp.schema, "{name}");
        assert_eq!(res.zero_threshold, comp.zero_threshold, "{name}");
        assert_eq!(res.positive_spans, comp.positive_spans, "{name}");
        assert_eq!(res.negative_spans, comp.negative_spans, "{name}");
        assert_eq!(res.custom_values.len(), comp.custom_values.len(), "{name}");
        assert_eq!(
            res.positive_buckets.len(),
            comp.positive_buckets.len(),
            "{name}"
        );
        assert_eq!(
            res.negative_buckets.len(),
            comp.negative_buckets.len(),
            "{name}"
        );
        res.add(&comp).unwrap();
    }
    if let (Some(expected), Some(_)) = (expected, report) {
        let mut expected = expected.clone();
        expected.compact(0);
        res.compact(0);
        assert_eq!(res, expected, "{name}");
    }
}

/// Checks an outcome against the case's expected error and reports (both false on error,
/// as Go returns them).
fn check_result(
    name: &str,
    outcome: Result<crate::histogram::MergeReport, crate::histogram::IncompatibleSchemaError>,
    c: &MergeCase,
) -> Option<crate::histogram::MergeReport> {
    match outcome {
        Ok(report) => {
            assert_eq!(c.err, "", "{name}: expected an error");
            assert_eq!(report.counter_reset_collision, c.collision, "{name}");
            assert_eq!(report.nhcb_bounds_reconciled, c.reconciled, "{name}");
            Some(report)
        }
        Err(e) => {
            assert_eq!(e.to_string(), c.err, "{name}");
            assert!(!c.collision && !c.reconciled, "{name}");
            None
        }
    }
}

#[test]
fn add_reconciles_layouts_and_is_commutative_plain_and_compensated() {
    for c in add_cases() {
        let name = c.name;
        check_add(name, &c.a, &c.b, c.expected.as_ref(), &c);
        check_add(name, &c.b, &c.a, c.expected.as_ref(), &c);
        check_kahan_add(name, &c.a, None, &c.b, c.expected.as_ref(), &c);
        check_kahan_add(name, &c.b, None, &c.a, c.expected.as_ref(), &c);
    }
}

/// An addition with a given compensation histogram for the first operand.
struct KahanCase {
    name: &'static str,
    a: FloatHistogram,
    comp: Option<FloatHistogram>,
    b: FloatHistogram,
    expected: Option<FloatHistogram>,
    err: &'static str,
    collision: bool,
    reconciled: bool,
}

fn kahan_cases() -> Vec<KahanCase> {
    vec![
        KahanCase {
            name: "larger zero bucket in first histogram",
            a: FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            comp: Some(FloatHistogram {
                zero_threshold: 1.0,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![0.02, 0.03, 0.06, 0.02, 0.05],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![0.01, 0.01, 0.04, 0.04],
                ..Default::default()
            }),
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.02, 6.03, 10.06, 9.02, 5.05],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.0, 2.01, 1.01, 4.04, 9.04, 6.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        KahanCase {
            name: "smaller zero bucket in first histogram",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 40.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 2.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            comp: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 0.0,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![0.02, 0.03, 0.06, 0.07, 0.05],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![0.01, 0.01, 0.04, 0.04],
                ..Default::default()
            }),
            b: FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 11.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (0, 3)]),
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: spans(&[(4, 2), (1, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 31.05,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 5)]),
                positive_buckets: vec![2.0, 6.06, 10.07, 9.05, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![3.01, 2.01, 1.0, 4.0, 9.04, 6.04],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        KahanCase {
            name: "first histogram contains zero buckets and Compact is called",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (1, 1), (1, 3)]),
                positive_buckets: vec![1.0, 3.0, 3.0, 0.0, 7.0, -6.0],
                ..Default::default()
            },
            comp: Some(FloatHistogram {
                zero_threshold: 0.01,
                positive_spans: spans(&[(-2, 2), (1, 1), (1, 3)]),
                positive_buckets: vec![7.0, 2.0, 0.03, 0.0, 0.05, 0.06],
                ..Default::default()
            }),
            b: FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (1, 2)]),
                positive_buckets: vec![2.0, 3.0, 2.0, 5.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 41.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 2), (1, 2)]),
                positive_buckets: vec![5.03, 3.0, 9.05, -0.94],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        KahanCase {
            name: "reduce resolution",
            a: FloatHistogram {
                schema: 2,
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 2), (1, 1), (1, 3)]),
                positive_buckets: vec![1.0, 3.0, 1e100, 0.0, 7.0, -6.0],
                ..Default::default()
            },
            comp: Some(FloatHistogram {
                schema: 2,
                zero_threshold: 0.01,
                zero_count: 1.0,
                positive_spans: spans(&[(-2, 2), (1, 1), (1, 3)]),
                positive_buckets: vec![7.0, 2.0, 0.03, 0.0, 0.05, 0.06],
                ..Default::default()
            }),
            b: FloatHistogram {
                schema: 1,
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (1, 2)]),
                positive_buckets: vec![-1e100, 3.0, 2.0, 5.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: 1,
                zero_threshold: 1.0,
                zero_count: 42.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 5)]),
                positive_buckets: vec![0.03, 10.05, -5.94, 2.0, 5.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        KahanCase {
            name: "reduce resolution of 'other' histogram",
            a: FloatHistogram {
                schema: 0,
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: spans(&[(1, 2), (1, 2)]),
                positive_buckets: vec![2.0, 3.0, 2.0, 5.0],
                ..Default::default()
            },
            comp: Some(FloatHistogram {
                schema: 0,
                zero_threshold: 1.0,
                zero_count: 1.0,
                positive_spans: spans(&[(1, 2), (1, 2)]),
                positive_buckets: vec![17.0, 2.0, 0.03, 0.0],
                ..Default::default()
            }),
            b: FloatHistogram {
                schema: 2,
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: spans(&[(-2, 3), (1, 1), (1, 3)]),
                positive_buckets: vec![1e100, 4.1, -1e100, 2.1, 0.0, 7.0, -6.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: 0,
                zero_threshold: 1.0,
                zero_count: 33.1,
                count: 51.0,
                sum: 3.579,
                positive_spans: spans(&[(1, 2), (1, 2)]),
                positive_buckets: vec![21.1, 6.0, 2.03, 5.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        KahanCase {
            name: "warn on counter reset hint collision",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                hint: CounterResetHint::Reset,
                ..Default::default()
            },
            comp: None,
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                hint: CounterResetHint::NotReset,
                ..Default::default()
            },
            expected: None,
            err: "",
            collision: true,
            reconciled: false,
        },
    ]
}

#[test]
fn kahan_add_carries_the_given_compensation_through_reconciliation() {
    for k in kahan_cases() {
        let c = MergeCase {
            name: k.name,
            a: k.a.clone(),
            b: k.b.clone(),
            expected: k.expected.clone(),
            err: k.err,
            collision: k.collision,
            reconciled: k.reconciled,
        };
        check_kahan_add(k.name, &k.a, k.comp.as_ref(), &k.b, k.expected.as_ref(), &c);
    }
}

fn sub_cases() -> Vec<MergeCase> {
    vec![
        MergeCase {
            name: "same bucket layout",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 23.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 12.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 3.0,
                count: 9.0,
                sum: 11.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![2.0, 0.0, 1.0, 2.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "schema change",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 59.0,
                sum: 1.234,
                schema: 0,
                positive_spans: spans(&[(-2, 5), (0, 3)]),
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
                ..Default::default()
            },
            b: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 2.0,
                count: 19.0,
                sum: 0.345,
                schema: 1,
                positive_spans: spans(&[(-4, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: spans(&[(6, 3), (6, 4)]),
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 6.0,
                count: 40.0,
                sum: 0.889,
                positive_spans: spans(&[(-2, 5), (0, 3)]),
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 2.0, 2.0, 0.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![1.0, 9.0, 1.0, 4.0, 9.0, 1.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "same custom bucket layout",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 15.0,
                sum: 23.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 11.0,
                sum: 12.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 4.0,
                sum: 11.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "different custom bucket layout - with intersection and rollup",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 220.0,
                sum: 9.9,
                positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
                positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                hint: CounterResetHint::Gauge,
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 6.0,
                sum: 4.4,
                positive_spans: spans(&[(0, 1), (1, 1)]),
                positive_buckets: vec![1.0, 5.0],
                custom_values: vec![2.0, 4.0],
                hint: CounterResetHint::Gauge,
                ..Default::default()
            },
            expected: Some(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 214.0,
                sum: 5.5,
                positive_spans: spans(&[(0, 3)]),
                positive_buckets: vec![10.0 + 20.0 - 1.0, 40.0, 50.0 + 100.0 - 5.0],
                custom_values: vec![2.0, 4.0],
                hint: CounterResetHint::Gauge,
                ..Default::default()
            }),
            err: "",
            collision: false,
            reconciled: true,
        },
        MergeCase {
            name: "mix exponential and custom buckets histograms",
            a: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 59.0,
                sum: 1.234,
                schema: 0,
                positive_spans: spans(&[(-2, 5), (0, 3)]),
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
                negative_spans: spans(&[(3, 3), (1, 3)]),
                negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 11.0,
                sum: 12.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                ..Default::default()
            },
            expected: None,
            err: "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas",
            collision: false,
            reconciled: false,
        },
        MergeCase {
            name: "warn on counter reset hint collision",
            a: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                hint: CounterResetHint::Reset,
                ..Default::default()
            },
            b: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                hint: CounterResetHint::NotReset,
                ..Default::default()
            },
            expected: None,
            err: "",
            collision: true,
            reconciled: false,
        },
    ]
}

/// Go's `testFloatHistogramSub` (which checks the reports only where a result is expected).
fn check_sub(
    a: &FloatHistogram,
    b: &FloatHistogram,
    expected: Option<&FloatHistogram>,
    c: &MergeCase,
) {
    let name = c.name;
    assert_eq!(a.validate(), Ok(()), "{name}: a");
    assert_eq!(b.validate(), Ok(()), "{name}: b");
    let mut res = a.clone();
    match res.sub(b) {
        Ok(report) => {
            assert_eq!(c.err, "", "{name}: expected an error");
            if let Some(expected) = expected {
                let mut expected = expected.clone();
                expected.compact(0);
                res.compact(0);
                assert_eq!(res, expected, "{name}");
                assert_eq!(report.counter_reset_collision, c.collision, "{name}");
                assert_eq!(report.nhcb_bounds_reconciled, c.reconciled, "{name}");
            }
        }
        Err(e) => assert_eq!(e.to_string(), c.err, "{name}"),
    }
}

#[test]
fn sub_is_add_of_the_negation() {
    for c in sub_cases() {
        check_sub(&c.a, &c.b, c.expected.as_ref(), &c);
        // The other way round gives the negation; Mul(-1) makes a gauge, but the test wants
        // the original hint.
        let negated = c.expected.as_ref().map(|e| {
            let mut n = e.clone();
            n.mul(-1.0);
            n.hint = e.hint;
            n
        });
        check_sub(&c.b, &c.a, negated.as_ref(), &c);
    }
}

/// A copy at a target schema.
struct CopyCase {
    name: &'static str,
    target: i32,
    input: FloatHistogram,
    expected: FloatHistogram,
}

#[test]
fn copy_to_schema_reduces_the_copy_only() {
    let cases = vec![
        CopyCase {
            name: "no schema change",
            target: 1,
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: spans(&[(-4, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: spans(&[(6, 3), (6, 4)]),
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..Default::default()
            },
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: spans(&[(-4, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: spans(&[(6, 3), (6, 4)]),
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..Default::default()
            },
        },
        CopyCase {
            name: "schema change",
            target: 0,
            input: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: spans(&[(-4, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: spans(&[(6, 3), (6, 4)]),
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..Default::default()
            },
            expected: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 0,
                positive_spans: spans(&[(-2, 2), (2, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..Default::default()
            },
        },
        CopyCase {
            name: "no schema change for custom buckets",
            target: CUSTOM_BUCKETS_SCHEMA,
            input: FloatHistogram {
                count: 30.0,
                sum: 2.345,
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            },
            expected: FloatHistogram {
                count: 30.0,
                sum: 2.345,
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 3), (5, 5)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..Default::default()
            },
        },
    ];
    for c in cases {
        let before = c.input.clone();
        assert_eq!(
            c.input.copy_to_schema(c.target),
            Ok(c.expected),
            "{}",
            c.name
        );
        assert_eq!(c.input, before, "{}: the original is unchanged", c.name);
    }
}
