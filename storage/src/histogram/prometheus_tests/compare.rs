//! Go's `TestFloatHistogramDetectReset` and `TestFloatHistogramEquals`.

use super::spans;
use crate::histogram::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram};

struct Case {
    name: &'static str,
    previous: FloatHistogram,
    current: FloatHistogram,
    reset: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "zero values",
            previous: FloatHistogram::default(),
            current: FloatHistogram::default(),
            reset: false,
        },
        Case {
            name: "no buckets to some buckets",
            previous: FloatHistogram::default(),
            current: FloatHistogram {
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
            reset: false,
        },
        Case {
            name: "some buckets to no buckets",
            previous: FloatHistogram {
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
            current: FloatHistogram::default(),
            reset: true,
        },
        Case {
            name: "one bucket appears, nothing else changes",
            previous: FloatHistogram {
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
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "one bucket disappears, nothing else changes",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
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
            reset: true,
        },
        Case {
            name: "an unpopulated bucket disappears, nothing else changes",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
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
            reset: false,
        },
        Case {
            name: "an unpopulated bucket at the end disappears, nothing else changes",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (1, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.0],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 1), (1, 2)]),
                positive_buckets: vec![1.0, 3.3, 4.2],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "an unpopulated bucket disappears in a histogram with nothing else",
            previous: FloatHistogram {
                positive_spans: spans(&[(23, 1)]),
                positive_buckets: vec![0.0],
                ..Default::default()
            },
            current: FloatHistogram::default(),
            reset: false,
        },
        Case {
            name: "zero count goes up",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.6,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "zero count goes down",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.4,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "count goes up",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.4,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "count goes down",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.2,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "sum goes up",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349210.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "sum goes down",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349200.0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "one positive bucket goes up",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "one positive bucket goes down",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "one negative bucket goes up",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.1, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "one negative bucket goes down",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 2.9, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "zero threshold decreases",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.009,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "zero threshold increases without touching any existing buckets",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.011,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "zero threshold increases enough to cover existing buckets",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 7.73,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(1, 3)]),
                positive_buckets: vec![3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "zero threshold increases into the middle of an existing buckets",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.3,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "schema increases without any other changes",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: spans(&[(-5, 4), (2, 6)]),
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: spans(&[(5, 4), (6, 4)]),
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "schema decreases without any other changes",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: spans(&[(-5, 4), (2, 6)]),
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: spans(&[(5, 4), (6, 4)]),
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "schema decreases and a bucket goes up",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: spans(&[(-5, 4), (2, 6)]),
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: spans(&[(5, 4), (6, 4)]),
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 4.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "schema decreases and a bucket goes down",
            previous: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: spans(&[(-5, 4), (2, 6)]),
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: spans(&[(5, 4), (6, 4)]),
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: spans(&[(-2, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 2.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "no buckets to some buckets with custom bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "some buckets to no buckets with custom bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "one bucket appears, nothing else changes with custom bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "one bucket disappears, nothing else changes with custom bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "an unpopulated bucket disappears, nothing else changes with custom bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "one positive bucket goes up with custom bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "one positive bucket goes down with custom bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "mismatched custom bounds - no reset when all buckets increase",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 200.0,
                sum: 1000.0,
                positive_spans: spans(&[(0, 4)]),
                positive_buckets: vec![20.0, 35.0, 40.0, 50.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 200.0,
                sum: 1000.0,
                positive_spans: spans(&[(0, 5)]),
                positive_buckets: vec![25.0, 15.0, 40.0, 50.0, 70.0],
                custom_values: vec![0.0, 0.5, 1.0, 2.0, 3.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "mismatched custom bounds - reset in middle bucket",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 100.0,
                sum: 500.0,
                positive_spans: spans(&[(1, 4)]),
                positive_buckets: vec![10.0, 15.0, 20.0, 25.0],
                custom_values: vec![0.0, 1.0, 3.0, 5.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 100.0,
                sum: 500.0,
                positive_spans: spans(&[(1, 5)]),
                positive_buckets: vec![10.0, 16.0, 10.0, 5.0, 25.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0, 5.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "mismatched custom bounds - reset in last bucket",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 100.0,
                sum: 500.0,
                positive_spans: spans(&[(1, 3)]),
                positive_buckets: vec![10.0, 20.0, 20.0],
                custom_values: vec![0.0, 1.0, 2.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 100.0,
                sum: 500.0,
                positive_spans: spans(&[(1, 4)]),
                positive_buckets: vec![100.0, 200.0, 8.0, 7.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "mismatched custom bounds - no common bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 100.0,
                sum: 500.0,
                positive_spans: spans(&[(1, 3)]),
                positive_buckets: vec![10.0, 20.0, 30.0],
                custom_values: vec![4.0, 5.0, 6.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 100.0,
                sum: 500.0,
                positive_spans: spans(&[(1, 3)]),
                positive_buckets: vec![15.0, 25.0, 35.0],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "mismatched custom bounds - sparse common bounds",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 200.0,
                sum: 1000.0,
                positive_spans: spans(&[(0, 4)]),
                positive_buckets: vec![10.0, 20.0, 30.0, 40.0],
                custom_values: vec![0.0, 1.0, 3.0, 5.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 200.0,
                sum: 1000.0,
                positive_spans: spans(&[(0, 5)]),
                positive_buckets: vec![15.0, 25.0, 70.0, 50.0, 100.0],
                custom_values: vec![0.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "reset detected with mismatched custom bounds and split bucket spans",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 200.0,
                sum: 1000.0,
                positive_spans: spans(&[(0, 2), (1, 3)]),
                positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 200.0,
                sum: 1000.0,
                positive_spans: spans(&[(0, 3), (1, 2)]),
                positive_buckets: vec![15.0, 25.0, 35.0, 25.0, 60.0],
                custom_values: vec![0.0, 1.0, 3.0, 4.0, 5.0, 7.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "no reset with mismatched custom bounds and split bucket spans",
            previous: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 300.0,
                sum: 1500.0,
                positive_spans: spans(&[(0, 2), (2, 3)]),
                positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                ..Default::default()
            },
            current: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 300.0,
                sum: 1500.0,
                positive_spans: spans(&[(0, 3), (1, 2)]),
                positive_buckets: vec![12.0, 25.0, 45.0, 75.0, 95.0],
                custom_values: vec![0.0, 0.5, 1.0, 3.0, 5.0, 7.0],
                ..Default::default()
            },
            reset: false,
        },
        Case {
            name: "reset when a populated bucket following an empty one disappears",
            previous: FloatHistogram {
                zero_threshold: 0.001,
                count: 10.0,
                positive_spans: spans(&[(0, 1)]),
                positive_buckets: vec![5.0],
                negative_spans: spans(&[(1, 2)]),
                negative_buckets: vec![0.0, 5.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.001,
                count: 20.0,
                positive_spans: spans(&[(0, 1)]),
                positive_buckets: vec![20.0],
                ..Default::default()
            },
            reset: true,
        },
        Case {
            name: "reset when current ends before a later populated previous bucket",
            previous: FloatHistogram {
                zero_threshold: 0.001,
                count: 7.0,
                positive_spans: spans(&[(0, 3)]),
                positive_buckets: vec![2.0, 0.0, 5.0],
                ..Default::default()
            },
            current: FloatHistogram {
                zero_threshold: 0.001,
                count: 100.0,
                positive_spans: spans(&[(0, 1)]),
                positive_buckets: vec![100.0],
                ..Default::default()
            },
            reset: true,
        },
    ]
}

#[test]
fn detect_reset_finds_decreases_after_reconciling_schema_threshold_and_bounds() {
    for c in cases() {
        assert_eq!(c.current.detect_reset(&c.previous), c.reset, "{}", c.name);
    }
}

#[test]
fn equals_compares_bits_and_ignores_fields_the_schema_does_not_use() {
    let equal = |a: &FloatHistogram, b: &FloatHistogram| {
        assert!(a.equals(b), "{a:?} == {b:?}");
        assert!(b.equals(a), "{b:?} == {a:?}");
    };
    let not_equal = |a: &FloatHistogram, b: &FloatHistogram| {
        assert!(!a.equals(b), "{a:?} != {b:?}");
        assert!(!b.equals(a), "{b:?} != {a:?}");
    };
    let h1 = FloatHistogram {
        schema: 3,
        count: 2.2,
        sum: 9.7,
        zero_threshold: 0.1,
        zero_count: 1.1,
        positive_buckets: vec![3.0],
        negative_buckets: vec![4.0],
        ..Default::default()
    };
    equal(&h1, &h1.clone());

    // A NaN (not the staleness NaN) equals itself but not a number.
    let nan_variants: [fn(&mut FloatHistogram); 4] = [
        |h| h.count = f64::NAN,
        |h| h.zero_count = f64::NAN,
        |h| h.positive_buckets[0] = f64::NAN,
        |h| h.negative_buckets[0] = f64::NAN,
    ];
    for set_nan in nan_variants {
        let mut h = h1.clone();
        set_nan(&mut h);
        not_equal(&h1, &h);
        equal(&h, &h);
    }

    // Custom bounds on an exponential schema do not count.
    let mut h = h1.clone();
    h.custom_values = vec![1.0, 2.0, 3.0];
    equal(&h1, &h);

    let cbh1 = FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 2.2,
        sum: 9.7,
        positive_spans: spans(&[(0, 1)]),
        positive_buckets: vec![3.0],
        custom_values: vec![1.0, 2.0, 3.0],
        ..Default::default()
    };
    assert_eq!(cbh1.validate(), Ok(()));
    equal(&cbh1, &cbh1.clone());
    // Different custom bounds.
    let mut h = cbh1.clone();
    h.custom_values = vec![1.0, 2.0, 3.0, 4.0];
    not_equal(&cbh1, &h);
    // Negative buckets on custom buckets.
    let mut h = cbh1.clone();
    h.negative_spans = spans(&[(0, 1)]);
    h.negative_buckets = vec![1.0];
    not_equal(&cbh1, &h);
    // A zero bucket on custom buckets.
    let mut h = cbh1.clone();
    h.zero_threshold = 0.1;
    h.zero_count = 10.0;
    not_equal(&cbh1, &h);
}
