//! Go's bucket iterator tests (`TestReverseFloatBucketIterator`,
//! `TestAllFloatBucketIterator`, `TestAllReverseFloatBucketIterator`,
//! `TestFloatBucketIteratorTargetSchema`, `TestFloatCustomBucketsIterators`),
//! `TestGetBoundExponential` and `TestFloatHistogramString`.

use super::spans;
use crate::histogram::bounds::get_bound_exponential;
use crate::histogram::iter::BucketIter;
use crate::histogram::{Bucket, CUSTOM_BUCKETS_SCHEMA, FloatHistogram};

/// A histogram and which parts of it the all-buckets iterators should show. The first seven
/// are the cases of Go's `TestAllFloatBucketIterator`; `TestAllReverseFloatBucketIterator`
/// repeats them and adds the last two, with a bucket missing or spurious (invalid histograms
/// that must not panic), which here run through both directions.
struct AllCase {
    h: FloatHistogram,
    neg: bool,
    zero: bool,
    pos: bool,
}

fn all_cases() -> Vec<AllCase> {
    vec![
        AllCase {
            h: FloatHistogram {
                count: 405.0,
                zero_count: 102.0,
                zero_threshold: 0.001,
                sum: 1008.4,
                schema: 1,
                positive_spans: spans(&[(0, 4), (1, 0), (3, 3), (3, 0), (2, 0), (5, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0,
                ],
                negative_spans: spans(&[(0, 3), (1, 0), (3, 0), (3, 4), (2, 0), (5, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0,
                ],
                ..Default::default()
            },
            neg: true,
            zero: true,
            pos: true,
        },
        AllCase {
            h: FloatHistogram {
                count: 405.0,
                zero_count: 102.0,
                zero_threshold: 0.001,
                sum: 1008.4,
                schema: 1,
                negative_spans: spans(&[(0, 3), (1, 0), (3, 0), (3, 4), (2, 0), (5, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0,
                ],
                ..Default::default()
            },
            neg: true,
            zero: true,
            pos: false,
        },
        AllCase {
            h: FloatHistogram {
                count: 405.0,
                zero_count: 102.0,
                zero_threshold: 0.001,
                sum: 1008.4,
                schema: 1,
                positive_spans: spans(&[(0, 4), (1, 0), (3, 3), (3, 0), (2, 0), (5, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0,
                ],
                ..Default::default()
            },
            neg: false,
            zero: true,
            pos: true,
        },
        AllCase {
            h: FloatHistogram {
                count: 405.0,
                zero_count: 102.0,
                zero_threshold: 0.001,
                sum: 1008.4,
                schema: 1,
                ..Default::default()
            },
            neg: false,
            zero: true,
            pos: false,
        },
        AllCase {
            h: FloatHistogram {
                count: 405.0,
                zero_count: 0.0,
                zero_threshold: 0.001,
                sum: 1008.4,
                schema: 1,
                positive_spans: spans(&[(0, 4), (1, 0), (3, 3), (3, 0), (2, 0), (5, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0,
                ],
                negative_spans: spans(&[(0, 3), (1, 0), (3, 0), (3, 4), (2, 0), (5, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0,
                ],
                ..Default::default()
            },
            neg: true,
            zero: false,
            pos: true,
        },
        AllCase {
            h: FloatHistogram {
                count: 447.0,
                zero_count: 42.0,
                zero_threshold: 0.5,
                sum: 1008.4,
                schema: 0,
                positive_spans: spans(&[(0, 4), (1, 0), (3, 3), (3, 0), (2, 0), (5, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0,
                ],
                negative_spans: spans(&[(0, 3), (1, 0), (3, 0), (3, 4), (2, 0), (5, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0,
                ],
                ..Default::default()
            },
            neg: true,
            zero: true,
            pos: true,
        },
        AllCase {
            h: FloatHistogram {
                count: 447.0,
                zero_count: 42.0,
                zero_threshold: 0.6,
                sum: 1008.4,
                schema: 0,
                positive_spans: spans(&[(0, 4), (1, 0), (3, 3), (3, 0), (2, 0), (5, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0,
                ],
                negative_spans: spans(&[(0, 3), (1, 0), (3, 0), (3, 4), (2, 0), (5, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0,
                ],
                ..Default::default()
            },
            neg: true,
            zero: true,
            pos: true,
        },
        AllCase {
            h: FloatHistogram {
                count: 405.0,
                zero_count: 102.0,
                zero_threshold: 0.001,
                sum: 1008.4,
                schema: 1,
                positive_spans: spans(&[(0, 4), (1, 0), (3, 3), (3, 0), (2, 0), (5, 3)]),
                positive_buckets: vec![100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0],
                negative_spans: spans(&[(0, 3), (1, 0), (3, 0), (3, 4), (2, 0), (5, 3)]),
                negative_buckets: vec![10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0],
                ..Default::default()
            },
            neg: true,
            zero: true,
            pos: true,
        },
        AllCase {
            h: FloatHistogram {
                count: 447.0,
                zero_count: 42.0,
                zero_threshold: 0.6,
                sum: 1008.4,
                schema: 0,
                positive_spans: spans(&[(0, 4), (1, 0), (3, 3), (3, 0), (2, 0), (5, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0, 42.0,
                ],
                negative_spans: spans(&[(0, 3), (1, 0), (3, 0), (3, 4), (2, 0), (5, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0, 42.0,
                ],
                ..Default::default()
            },
            neg: true,
            zero: true,
            pos: true,
        },
    ]
}

#[test]
fn reverse_iterators_answer_the_forward_buckets_backwards() {
    let h = all_cases().swap_remove(0).h;
    let mut expected: Vec<Bucket> = h.positive_bucket_iter().collect();
    expected.reverse();
    assert!(!expected.is_empty());
    assert_eq!(h.positive_bucket_iter_rev().collect::<Vec<_>>(), expected);
    let mut expected: Vec<Bucket> = h.negative_bucket_iter().collect();
    expected.reverse();
    assert!(!expected.is_empty());
    assert_eq!(h.negative_bucket_iter_rev().collect::<Vec<_>>(), expected);
}

#[test]
fn all_buckets_ascend_through_negative_zero_and_positive_buckets() {
    for (i, c) in all_cases().into_iter().enumerate() {
        let t = c.h.zero_threshold;
        let mut expected = Vec::new();
        if c.neg {
            expected.extend(c.h.negative_bucket_iter_rev().map(|mut b| {
                if c.zero && b.upper > -t {
                    b.upper = -t;
                }
                b
            }));
        }
        if c.zero {
            expected.push(zero_bucket(&c.h));
        }
        if c.pos {
            expected.extend(c.h.positive_bucket_iter().map(|mut b| {
                if c.zero && b.lower < t {
                    b.lower = t;
                }
                b
            }));
        }
        assert_eq!(c.h.all_buckets().collect::<Vec<_>>(), expected, "case {i}");
    }
}

#[test]
fn all_buckets_rev_descend_through_positive_zero_and_negative_buckets() {
    for (i, c) in all_cases().into_iter().enumerate() {
        let t = c.h.zero_threshold;
        let mut expected = Vec::new();
        if c.pos {
            expected.extend(c.h.positive_bucket_iter_rev().map(|mut b| {
                if c.zero && b.lower < t {
                    b.lower = t;
                }
                b
            }));
        }
        if c.zero {
            expected.push(zero_bucket(&c.h));
        }
        if c.neg {
            expected.extend(c.h.negative_bucket_iter().map(|mut b| {
                if c.zero && b.upper > -t {
                    b.upper = -t;
                }
                b
            }));
        }
        assert_eq!(
            c.h.all_buckets_rev().collect::<Vec<_>>(),
            expected,
            "case {i}"
        );
    }
}

/// The zero bucket as Go's tests spell it out.
fn zero_bucket(h: &FloatHistogram) -> Bucket {
    Bucket {
        lower: -h.zero_threshold,
        upper: h.zero_threshold,
        lower_inclusive: true,
        upper_inclusive: true,
        count: h.zero_count,
        index: 0,
    }
}

/// A histogram's buckets merged into schema -1.
struct TargetCase {
    name: &'static str,
    h: FloatHistogram,
    positive: Vec<Bucket>,
    negative: Vec<Bucket>,
}

#[test]
fn merging_iterators_sum_the_buckets_of_each_coarser_bucket() {
    let cases = vec![
        TargetCase {
            name: "regular",
            h: FloatHistogram {
                count: 405.0,
                sum: 1008.4,
                schema: 1,
                positive_spans: spans(&[(0, 4), (1, 3), (2, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0,
                ],
                negative_spans: spans(&[(0, 3), (7, 4), (1, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0,
                ],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: 0.25,
                    upper: 1.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: 1.0,
                    upper: 4.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: 4.0,
                    upper: 16.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 68.0,
                    index: 2,
                },
                Bucket {
                    lower: 16.0,
                    upper: 64.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 322.0,
                    index: 3,
                },
            ],
            negative: vec![
                Bucket {
                    lower: -1.0,
                    upper: -0.25,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 10.0,
                    index: 0,
                },
                Bucket {
                    lower: -4.0,
                    upper: -1.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 1264.0,
                    index: 1,
                },
                Bucket {
                    lower: -64.0,
                    upper: -16.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 184.0,
                    index: 3,
                },
                Bucket {
                    lower: -256.0,
                    upper: -64.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 791.0,
                    index: 4,
                },
                Bucket {
                    lower: -1024.0,
                    upper: -256.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 33.0,
                    index: 5,
                },
            ],
        },
        TargetCase {
            name: "missing buckets",
            h: FloatHistogram {
                count: 405.0,
                sum: 1008.4,
                schema: 1,
                positive_spans: spans(&[(0, 4), (1, 3), (2, 3)]),
                positive_buckets: vec![100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0],
                negative_spans: spans(&[(0, 3), (7, 4), (1, 3)]),
                negative_buckets: vec![10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: 0.25,
                    upper: 1.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: 1.0,
                    upper: 4.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: 4.0,
                    upper: 16.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 68.0,
                    index: 2,
                },
                Bucket {
                    lower: 16.0,
                    upper: 64.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 289.0,
                    index: 3,
                },
            ],
            negative: vec![
                Bucket {
                    lower: -1.0,
                    upper: -0.25,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 10.0,
                    index: 0,
                },
                Bucket {
                    lower: -4.0,
                    upper: -1.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 1264.0,
                    index: 1,
                },
                Bucket {
                    lower: -64.0,
                    upper: -16.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 184.0,
                    index: 3,
                },
                Bucket {
                    lower: -256.0,
                    upper: -64.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 791.0,
                    index: 4,
                },
            ],
        },
        TargetCase {
            name: "spurious bucket",
            h: FloatHistogram {
                count: 405.0,
                sum: 1008.4,
                schema: 1,
                positive_spans: spans(&[(0, 4), (1, 3), (2, 3)]),
                positive_buckets: vec![
                    100.0, 344.0, 123.0, 55.0, 3.0, 63.0, 2.0, 54.0, 235.0, 33.0, 42.0,
                ],
                negative_spans: spans(&[(0, 3), (7, 4), (1, 3)]),
                negative_buckets: vec![
                    10.0, 34.0, 1230.0, 54.0, 67.0, 63.0, 2.0, 554.0, 235.0, 33.0, 42.0,
                ],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: 0.25,
                    upper: 1.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: 1.0,
                    upper: 4.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: 4.0,
                    upper: 16.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 68.0,
                    index: 2,
                },
                Bucket {
                    lower: 16.0,
                    upper: 64.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 322.0,
                    index: 3,
                },
            ],
            negative: vec![
                Bucket {
                    lower: -1.0,
                    upper: -0.25,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 10.0,
                    index: 0,
                },
                Bucket {
                    lower: -4.0,
                    upper: -1.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 1264.0,
                    index: 1,
                },
                Bucket {
                    lower: -64.0,
                    upper: -16.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 184.0,
                    index: 3,
                },
                Bucket {
                    lower: -256.0,
                    upper: -64.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 791.0,
                    index: 4,
                },
                Bucket {
                    lower: -1024.0,
                    upper: -256.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 33.0,
                    index: 5,
                },
            ],
        },
        TargetCase {
            name: "no schema change",
            h: FloatHistogram {
                count: 405.0,
                sum: 1008.4,
                schema: -1,
                positive_spans: spans(&[(0, 2), (1, 2)]),
                positive_buckets: vec![100.0, 522.0, 68.0, 322.0],
                negative_spans: spans(&[(0, 2), (1, 2)]),
                negative_buckets: vec![100.0, 522.0, 68.0, 322.0],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: 0.25,
                    upper: 1.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: 1.0,
                    upper: 4.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: 16.0,
                    upper: 64.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 68.0,
                    index: 3,
                },
                Bucket {
                    lower: 64.0,
                    upper: 256.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 322.0,
                    index: 4,
                },
            ],
            negative: vec![
                Bucket {
                    lower: -1.0,
                    upper: -0.25,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: -4.0,
                    upper: -1.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: -64.0,
                    upper: -16.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 68.0,
                    index: 3,
                },
                Bucket {
                    lower: -256.0,
                    upper: -64.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 322.0,
                    index: 4,
                },
            ],
        },
        TargetCase {
            name: "no schema change, missing bucket",
            h: FloatHistogram {
                count: 405.0,
                sum: 1008.4,
                schema: -1,
                positive_spans: spans(&[(0, 2), (1, 2)]),
                positive_buckets: vec![100.0, 522.0, 68.0],
                negative_spans: spans(&[(0, 2), (1, 2)]),
                negative_buckets: vec![100.0, 522.0, 68.0],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: 0.25,
                    upper: 1.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: 1.0,
                    upper: 4.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: 16.0,
                    upper: 64.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 68.0,
                    index: 3,
                },
            ],
            negative: vec![
                Bucket {
                    lower: -1.0,
                    upper: -0.25,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: -4.0,
                    upper: -1.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: -64.0,
                    upper: -16.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 68.0,
                    index: 3,
                },
            ],
        },
        TargetCase {
            name: "no schema change, spurious bucket",
            h: FloatHistogram {
                count: 405.0,
                sum: 1008.4,
                schema: -1,
                positive_spans: spans(&[(0, 2), (1, 2)]),
                positive_buckets: vec![100.0, 522.0, 68.0, 322.0, 42.0],
                negative_spans: spans(&[(0, 2), (1, 2)]),
                negative_buckets: vec![100.0, 522.0, 68.0, 322.0, 42.0],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: 0.25,
                    upper: 1.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: 1.0,
                    upper: 4.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: 16.0,
                    upper: 64.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 68.0,
                    index: 3,
                },
                Bucket {
                    lower: 64.0,
                    upper: 256.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 322.0,
                    index: 4,
                },
            ],
            negative: vec![
                Bucket {
                    lower: -1.0,
                    upper: -0.25,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: -4.0,
                    upper: -1.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 522.0,
                    index: 1,
                },
                Bucket {
                    lower: -64.0,
                    upper: -16.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 68.0,
                    index: 3,
                },
                Bucket {
                    lower: -256.0,
                    upper: -64.0,
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count: 322.0,
                    index: 4,
                },
            ],
        },
    ];
    for c in cases {
        let positive: Vec<_> = BucketIter::new(&c.h, true, 0.0, -1).collect();
        assert_eq!(positive, c.positive, "{}", c.name);
        let negative: Vec<_> = BucketIter::new(&c.h, false, 0.0, -1).collect();
        assert_eq!(negative, c.negative, "{}", c.name);
    }
}

/// A custom-buckets histogram and its (positive) buckets.
struct CustomCase {
    h: FloatHistogram,
    positive: Vec<Bucket>,
}

#[test]
fn custom_buckets_run_from_minus_inf_to_plus_inf_in_every_iterator() {
    let cases = vec![
        CustomCase {
            h: FloatHistogram {
                count: 622.0,
                sum: 10008.4,
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 2), (1, 1), (1, 1)]),
                positive_buckets: vec![100.0, 344.0, 123.0, 55.0],
                custom_values: vec![10.0, 25.0, 50.0, 100.0, 500.0],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: f64::NEG_INFINITY,
                    upper: 10.0,
                    lower_inclusive: true,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: 10.0,
                    upper: 25.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 344.0,
                    index: 1,
                },
                Bucket {
                    lower: 50.0,
                    upper: 100.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 123.0,
                    index: 3,
                },
                Bucket {
                    lower: 500.0,
                    upper: f64::INFINITY,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 55.0,
                    index: 5,
                },
            ],
        },
        CustomCase {
            h: FloatHistogram {
                count: 622.0,
                sum: 10008.4,
                schema: CUSTOM_BUCKETS_SCHEMA,
                positive_spans: spans(&[(0, 2), (1, 1), (1, 1)]),
                positive_buckets: vec![100.0, 344.0, 123.0, 55.0],
                custom_values: vec![-10.0, -5.0, 0.0, 10.0, 25.0],
                ..Default::default()
            },
            positive: vec![
                Bucket {
                    lower: f64::NEG_INFINITY,
                    upper: -10.0,
                    lower_inclusive: true,
                    upper_inclusive: true,
                    count: 100.0,
                    index: 0,
                },
                Bucket {
                    lower: -10.0,
                    upper: -5.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 344.0,
                    index: 1,
                },
                Bucket {
                    lower: 0.0,
                    upper: 10.0,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 123.0,
                    index: 3,
                },
                Bucket {
                    lower: 25.0,
                    upper: f64::INFINITY,
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count: 55.0,
                    index: 5,
                },
            ],
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let reversed: Vec<_> = c.positive.iter().rev().copied().collect();
        assert_eq!(
            c.h.all_buckets().collect::<Vec<_>>(),
            c.positive,
            "case {i}"
        );
        assert_eq!(
            c.h.all_buckets_rev().collect::<Vec<_>>(),
            reversed,
            "case {i}"
        );
        assert_eq!(
            c.h.positive_bucket_iter().collect::<Vec<_>>(),
            c.positive,
            "case {i}"
        );
        assert_eq!(
            c.h.positive_bucket_iter_rev().collect::<Vec<_>>(),
            reversed,
            "case {i}"
        );
        assert_eq!(c.h.negative_bucket_iter().next(), None, "case {i}");
        assert_eq!(c.h.negative_bucket_iter_rev().next(), None, "case {i}");
        let merged: Vec<_> = BucketIter::new(&c.h, true, 0.0, CUSTOM_BUCKETS_SCHEMA).collect();
        assert_eq!(merged, c.positive, "case {i}");
        assert_eq!(
            BucketIter::new(&c.h, false, 0.0, CUSTOM_BUCKETS_SCHEMA).next(),
            None
        );
    }
}

/// A bound of an exponential schema.
struct BoundCase {
    idx: i32,
    schema: i32,
    want: f64,
}

#[test]
fn exponential_bounds_end_the_last_finite_bucket_at_f64_max() {
    let cases = vec![
        BoundCase {
            idx: -1,
            schema: -1,
            want: 0.25,
        },
        BoundCase {
            idx: 0,
            schema: -1,
            want: 1.0,
        },
        BoundCase {
            idx: 1,
            schema: -1,
            want: 4.0,
        },
        BoundCase {
            idx: 512,
            schema: -1,
            want: f64::MAX,
        },
        BoundCase {
            idx: 513,
            schema: -1,
            want: f64::INFINITY,
        },
        BoundCase {
            idx: -1,
            schema: 0,
            want: 0.5,
        },
        BoundCase {
            idx: 0,
            schema: 0,
            want: 1.0,
        },
        BoundCase {
            idx: 1,
            schema: 0,
            want: 2.0,
        },
        BoundCase {
            idx: 1024,
            schema: 0,
            want: f64::MAX,
        },
        BoundCase {
            idx: 1025,
            schema: 0,
            want: f64::INFINITY,
        },
        BoundCase {
            idx: -1,
            schema: 2,
            want: 0.8408964152537144,
        },
        BoundCase {
            idx: 0,
            schema: 2,
            want: 1.0,
        },
        BoundCase {
            idx: 1,
            schema: 2,
            want: 1.189207115002721,
        },
        BoundCase {
            idx: 4096,
            schema: 2,
            want: f64::MAX,
        },
        BoundCase {
            idx: 4097,
            schema: 2,
            want: f64::INFINITY,
        },
    ];
    for c in cases {
        assert_eq!(
            get_bound_exponential(c.idx, c.schema),
            c.want,
            "idx {} schema {}",
            c.idx,
            c.schema
        );
    }
}

/// A histogram and Go's `String` of it.
struct StringCase {
    name: &'static str,
    input: FloatHistogram,
    expected: &'static str,
}

#[test]
fn display_is_prometheus_string_format() {
    let cases = vec![
        StringCase {
            name: "exponential histogram",
            input: FloatHistogram {
                schema: 1,
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
            expected: r#"{count:3493.3, sum:2.349209324e+06, [-22.62741699796952,-16):1000, [-16,-11.31370849898476):123400, [-4,-2.82842712474619):3, [-2.82842712474619,-2):3.1, [-0.01,0.01]:5.5, (0.35355339059327373,0.5]:1, (1,1.414213562373095]:3.3, (1.414213562373095,2]:4.2, (2,2.82842712474619]:0.1}"#,
        },
        StringCase {
            name: "custom buckets histogram",
            input: FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: spans(&[(0, 1), (2, 4)]),
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 5.0],
                custom_values: vec![1.0, 2.0, 5.0, 10.0, 15.0, 20.0],
                ..Default::default()
            },
            expected: r#"{count:3493.3, sum:2.349209324e+06, [-Inf,1]:1, (5,10]:3.3, (10,15]:4.2, (15,20]:0.1, (20,+Inf]:5}"#,
        },
    ];
    for c in cases {
        assert_eq!(c.input.validate(), Ok(()), "{}", c.name);
        assert_eq!(c.input.to_string(), c.expected, "{}", c.name);
    }
}
