//! Go's `TestFloatHistogramCompact` and `TestFloatHistogramKahanCompactSpanMerge`.

use super::spans;
use crate::histogram::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram};

struct Case {
    name: &'static str,
    input: FloatHistogram,
    max_empty_buckets: usize,
    expected: FloatHistogram,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty histogram",
            input: FloatHistogram::default(),
            max_empty_buckets: 0,
            expected: FloatHistogram::default(),
        },
        Case {
            name: "nothing should happen",
            input: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: spans(&[(3, 2), (3, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..Default::default()
            },
        },
        Case {
            name: "eliminate zero offsets",
            input: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (0, 3), (0, 1)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (0, 2), (2, 1), (0, 1)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 5)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 4), (2, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "eliminate zero length",
            input: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (2, 0), (3, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (0, 0), (2, 0), (1, 4)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (5, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 4)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "eliminate multiple zero length spans",
            input: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (2, 0), (2, 0), (2, 0), (3, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (9, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets at start or end",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 4), (5, 3)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (5, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 4)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets at start and end",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 4), (5, 6)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
                negative_spans: spans(&[(-2, 4), (3, 5)]),
                negative_buckets: vec![0.0, 0.0, 3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (5, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 4)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets in the middle",
            input: FloatHistogram {
                positive_spans: spans(&[(5, 4)]),
                positive_buckets: vec![1.0, 3.0, 0.0, 2.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(5, 2), (1, 1)]),
                positive_buckets: vec![1.0, 3.0, 2.0],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets at start or end of spans, even in the middle",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 6), (3, 6)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
                negative_spans: spans(&[(0, 2), (2, 6)]),
                negative_buckets: vec![3.1, 3.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (5, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 4)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets at start and end - also merge spans due to maxEmptyBuckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 4), (5, 3)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..Default::default()
            },
            max_empty_buckets: 10,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 10)]),
                positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 9)]),
                negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets from the middle of a span",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 6), (3, 3)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (2, 1), (3, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 2), (1, 2)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "cut out a span containing only empty buckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 3), (2, 2), (3, 4)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (7, 4)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets from the middle of a span, avoiding none due to maxEmptyBuckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-2, 4)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3],
                ..Default::default()
            },
            max_empty_buckets: 1,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (2, 1)]),
                positive_buckets: vec![1.0, 3.3],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets and merge spans due to maxEmptyBuckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-2, 4), (3, 1)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2],
                ..Default::default()
            },
            max_empty_buckets: 1,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (2, 1), (3, 1)]),
                positive_buckets: vec![1.0, 3.3, 4.2],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets from the middle of a span, avoiding some due to maxEmptyBuckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 6), (3, 3), (10, 2)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 1,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 1), (2, 1), (3, 3), (10, 2)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "avoiding all cutting of empty buckets from the middle of a chunk due to maxEmptyBuckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 6), (3, 3)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 2,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 4), (3, 3)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "everything merged into one span due to maxEmptyBuckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 6), (3, 3)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 2), (3, 5)]),
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 3,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 10)]),
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3],
                negative_spans: spans(&[(0, 10)]),
                negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "more than one span merged in the same pass",
            input: FloatHistogram {
                positive_spans: spans(&[(-2, 2), (2, 2), (2, 2)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0],
                negative_spans: spans(&[(0, 1), (1, 1), (1, 1)]),
                negative_buckets: vec![3.1, 1000.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 3,
            expected: FloatHistogram {
                positive_spans: spans(&[(-2, 10)]),
                positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 0.0, 0.0, 3.3, 2.0],
                negative_spans: spans(&[(0, 5)]),
                negative_buckets: vec![3.1, 0.0, 1000.0, 0.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "only empty buckets and maxEmptyBuckets greater zero",
            input: FloatHistogram {
                positive_spans: spans(&[(-4, 6), (3, 3)]),
                positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                negative_spans: spans(&[(0, 7)]),
                negative_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                ..Default::default()
            },
            max_empty_buckets: 3,
            expected: FloatHistogram {
                positive_spans: spans(&[]),
                positive_buckets: vec![],
                negative_spans: spans(&[]),
                negative_buckets: vec![],
                ..Default::default()
            },
        },
        Case {
            name: "multiple spans of only empty buckets",
            input: FloatHistogram {
                positive_spans: spans(&[(-10, 2), (2, 1), (3, 3)]),
                positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 2.0, 3.0],
                negative_spans: spans(&[(-10, 2), (2, 1), (3, 3)]),
                negative_buckets: vec![2.0, 3.0, 0.0, 0.0, 0.0, 0.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                positive_spans: spans(&[(-1, 2)]),
                positive_buckets: vec![2.0, 3.0],
                negative_spans: spans(&[(-10, 2)]),
                negative_buckets: vec![2.0, 3.0],
                ..Default::default()
            },
        },
        Case {
            name: "nothing should happen with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 1), (2, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..Default::default()
            },
        },
        Case {
            name: "eliminate zero offsets with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 1), (0, 3), (0, 1)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 5)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "eliminate multiple zero length spans with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 2), (2, 0), (2, 0), (2, 0), (3, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 2), (9, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            },
        },
        Case {
            name: "cut empty buckets at start and end with custom buckets",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 4), (5, 6)]),
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            },
            max_empty_buckets: 0,
            expected: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(2, 2), (5, 3)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..Default::default()
            },
        },
    ]
}

#[test]
fn compact_cuts_empty_buckets_and_merges_spans_as_prometheus() {
    for c in cases() {
        let was_valid = c.input.validate().is_ok();
        let mut h = c.input.clone();
        assert_eq!(*h.compact(c.max_empty_buckets), c.expected, "{}", c.name);
        if was_valid {
            assert_eq!(
                h.validate(),
                Ok(()),
                "{}: compacting made it invalid",
                c.name
            );
        }
    }
}

#[test]
fn compensation_buckets_stay_aligned_when_several_spans_merge_in_one_pass() {
    let mut h = FloatHistogram {
        positive_spans: spans(&[(0, 1), (1, 1), (1, 1)]),
        positive_buckets: vec![1.0, 2.0, 3.0],
        ..Default::default()
    };
    let mut c = FloatHistogram {
        positive_spans: spans(&[(0, 1), (1, 1), (1, 1)]),
        positive_buckets: vec![0.1, 0.2, 0.3],
        ..Default::default()
    };
    h.compact_with_compensation(3, &mut c);
    assert_eq!(h.positive_spans, spans(&[(0, 5)]));
    assert_eq!(h.positive_buckets, [1.0, 0.0, 2.0, 0.0, 3.0]);
    assert_eq!(c.positive_buckets, [0.1, 0.0, 0.2, 0.0, 0.3]);
}
