//! Merging one histogram side's buckets into another's, the bucket-level work of adding and
//! subtracting histograms (Go's `addBuckets`, `kahanAddBuckets`, `kahanReduceResolution` and
//! the custom-bounds reconciliation): the same insertions, span extensions and splits as Go,
//! so results have Prometheus's layout before compaction too.

use super::arith::kahan_inc;
use super::bounds::get_bound_exponential;
use super::iter::is_exponential_schema;
use super::{Span, target_idx};

/// Adds (or, `negative`, subtracts) side B's buckets into side A's, inserting the buckets A
/// lacks and extending or splitting A's spans as Go's `addBuckets` does (which may leave
/// empty buckets and adjacent spans for `compact`). All buckets are in `schema`; B's buckets
/// whose upper bound is at most `threshold` are skipped, their counts being in the zero
/// bucket already.
///
/// With `kahan` (A's compensation buckets, and B's if it has any) the additions are Kahan
/// steps and the compensation buckets follow A's layout (Go's `kahanAddBuckets`).
///
/// Bucket indexes are summed in 64 bits, so no offsets overflow; a gap between buckets
/// wider than `i32` (only absurd histograms have them) is clamped.
pub(super) fn add_buckets(
    schema: i32,
    threshold: f64,
    negative: bool,
    (spans_a, buckets_a): (&mut Vec<Span>, &mut Vec<f64>),
    (spans_b, buckets_b): (&[Span], &[f64]),
    mut kahan: Option<(&mut Vec<f64>, Option<&[f64]>)>,
) {
    if let Some((comp_a, _)) = kahan.as_mut() {
        comp_a.resize(buckets_a.len(), 0.0);
    }
    // Where the walk through A is: the span, the bucket, the position in the span, and the
    // index of the bucket that B's previous bucket was added to or inserted as.
    let mut i_span: Option<usize> = None;
    let mut i_bucket = 0usize;
    let mut i_in_span = 0i64;
    let mut index_a = 0i64;
    let mut index_b = 0i64;
    let mut b_idx = 0usize;
    let mut lower_than_threshold = true;

    for span_b in spans_b {
        index_b += i64::from(span_b.offset);
        for _ in 0..span_b.length {
            'bucket: {
                if lower_than_threshold
                    && is_exponential_schema(schema)
                    && get_bound_exponential(clamp_i32(index_b), schema) <= threshold
                {
                    break 'bucket;
                }
                lower_than_threshold = false;
                let Some(&count) = buckets_b.get(b_idx) else {
                    // Spans promise more buckets than B has: nothing more to add.
                    return;
                };
                let mut bucket_b = count;
                let mut comp_b = kahan
                    .as_ref()
                    .and_then(|(_, comp_b)| comp_b.and_then(|c| c.get(b_idx)).copied())
                    .unwrap_or(0.0);
                if negative {
                    bucket_b *= -1.0;
                    comp_b *= -1.0;
                }
                let mut put = |at: usize, insert: bool| {
                    if insert {
                        let at = at.min(buckets_a.len());
                        buckets_a.insert(at, bucket_b);
                        if let Some((comp_a, _)) = kahan.as_mut() {
                            comp_a.insert(at.min(comp_a.len()), comp_b);
                        }
                        return;
                    }
                    let Some(a) = buckets_a.get_mut(at) else {
                        return;
                    };
                    match kahan.as_mut() {
                        None => *a += bucket_b,
                        Some((comp_a, _)) => {
                            let Some(ca) = comp_a.get_mut(at) else {
                                return;
                            };
                            (*a, *ca) = kahan_inc(bucket_b, *a, *ca);
                            if comp_b != 0.0 {
                                (*a, *ca) = kahan_inc(comp_b, *a, *ca);
                            }
                        }
                    }
                };

                if i_span.is_none() {
                    // Nothing of A walked yet: B's bucket may go before A's first one.
                    match spans_a.first().map(|s| i64::from(s.offset)) {
                        Some(first) if first == index_b => {
                            put(0, false);
                            break 'bucket;
                        }
                        Some(first) if first < index_b => {
                            (i_span, i_bucket, i_in_span, index_a) = (Some(0), 0, 0, first);
                        }
                        _ => {
                            put(0, true);
                            if spans_a
                                .first()
                                .is_some_and(|s| i64::from(s.offset) == index_b + 1)
                            {
                                spans_a[0].length = spans_a[0].length.wrapping_add(1);
                                spans_a[0].offset = spans_a[0].offset.wrapping_sub(1);
                                break 'bucket;
                            }
                            spans_a.insert(
                                0,
                                Span {
                                    offset: clamp_i32(index_b),
                                    length: 1,
                                },
                            );
                            if let Some(next) = spans_a.get_mut(1) {
                                // The former first span's offset becomes relative.
                                next.offset = clamp_i32(i64::from(next.offset) - (index_b + 1));
                            }
                            break 'bucket;
                        }
                    }
                }
                let mut s = i_span.unwrap_or(0);
                let mut delta = index_b - index_a;
                loop {
                    let remaining = i64::from(spans_a[s].length) - i_in_span;
                    if delta < remaining {
                        // In the current span.
                        i_bucket = i_bucket.wrapping_add_signed(delta as isize);
                        i_in_span += delta;
                        put(i_bucket, false);
                        break;
                    }
                    delta -= remaining;
                    i_bucket = i_bucket.wrapping_add_signed(remaining as isize);
                    s += 1;
                    if s == spans_a.len() || delta < i64::from(spans_a[s].offset) {
                        // In the gap after span s-1 (or after the last span).
                        put(i_bucket, true);
                        if delta == 0 {
                            // Right after the previous span: extend it.
                            if let Some(next) = spans_a.get_mut(s) {
                                next.offset = next.offset.wrapping_sub(1);
                            }
                            s -= 1;
                            i_in_span = i64::from(spans_a[s].length);
                            spans_a[s].length = spans_a[s].length.wrapping_add(1);
                        } else if s < spans_a.len() && delta == i64::from(spans_a[s].offset) - 1 {
                            // Right before the next span: extend that one.
                            i_in_span = 0;
                            spans_a[s].offset = spans_a[s].offset.wrapping_sub(1);
                            spans_a[s].length = spans_a[s].length.wrapping_add(1);
                        } else {
                            // A new span of its own.
                            i_in_span = 0;
                            if let Some(next) = spans_a.get_mut(s) {
                                next.offset = clamp_i32(i64::from(next.offset) - (delta + 1));
                            }
                            spans_a.insert(
                                s,
                                Span {
                                    offset: clamp_i32(delta),
                                    length: 1,
                                },
                            );
                        }
                        break;
                    }
                    // Try the start of the next span.
                    delta -= i64::from(spans_a[s].offset);
                    i_in_span = 0;
                }
                i_span = Some(s);
            }
            index_a = index_b;
            index_b += 1;
            b_idx += 1;
        }
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Go's `kahanReduceResolution`: [`reduce`] for buckets with Kahan compensation, merging
/// counts and compensations with Kahan steps.
pub(super) fn kahan_reduce(
    spans: &[Span],
    buckets: &[f64],
    comp: &[f64],
    from: i32,
    to: i32,
) -> (Vec<Span>, Vec<f64>, Vec<f64>) {
    let mut out_spans: Vec<Span> = Vec::new();
    let (mut out, mut out_comp): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let (mut idx, mut k, mut last) = (0i64, 0usize, 0i64);
    for s in spans {
        idx += i64::from(s.offset);
        for _ in 0..s.length {
            let Some(&count) = buckets.get(k) else {
                return (out_spans, out, out_comp);
            };
            let cc = comp.get(k).copied().unwrap_or(0.0);
            let t = i64::from(target_idx(clamp_i32(idx), from, to));
            match out_spans.last_mut() {
                None => {
                    out_spans.push(Span {
                        offset: clamp_i32(t),
                        length: 1,
                    });
                    out.push(count);
                    out_comp.push(cc);
                    last = t;
                }
                Some(_) if t == last => {
                    if let (Some(b), Some(c)) = (out.last_mut(), out_comp.last_mut()) {
                        (*b, *c) = kahan_inc(count, *b, *c);
                        (*b, *c) = kahan_inc(cc, *b, *c);
                    }
                }
                Some(span) if t == last + 1 => {
                    span.length += 1;
                    out.push(count);
                    out_comp.push(cc);
                    last = t;
                }
                Some(_) if t > last + 1 => {
                    out_spans.push(Span {
                        offset: clamp_i32(t - last - 1),
                        length: 1,
                    });
                    out.push(count);
                    out_comp.push(cc);
                    last = t;
                }
                // A bucket below the previous one (unsorted spans): Go drops it.
                Some(_) => {}
            }
            idx += 1;
            k += 1;
        }
    }
    (out_spans, out, out_comp)
}

/// Go's `intersectCustomBucketBounds`: the bounds both sets have.
pub(super) fn intersect_custom_bucket_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

pub(super) type CustomSide<'a> = (&'a [Span], &'a [f64], &'a [f64]);

/// Go's `addCustomBucketsWithMismatches`: adds (or subtracts) two custom-bucket histograms
/// with different bounds by mapping each bucket onto the first of the `bounds` (the
/// intersection) at or above its own upper bound, or onto +Inf. Every step is a Kahan step;
/// `comp_a`, A's compensation buckets, is added in too. Answers spans, buckets and
/// compensation buckets, leaving out buckets whose count and compensation are both 0.
pub(super) fn add_custom_buckets_with_mismatches(
    negative: bool,
    a: CustomSide<'_>,
    b: CustomSide<'_>,
    comp_a: Option<&[f64]>,
    bounds: &[f64],
) -> (Vec<Span>, Vec<f64>, Vec<f64>) {
    let mut target = vec![0.0; bounds.len() + 1];
    let mut target_c = vec![0.0; bounds.len() + 1];
    let mut map =
        |(spans, buckets, own_bounds): CustomSide<'_>, negative: bool, comp: Option<&[f64]>| {
            let (mut src_idx, mut bucket_idx, mut intersect_idx) = (0i64, 0usize, 0usize);
            for span in spans {
                src_idx += i64::from(span.offset);
                for _ in 0..span.length {
                    if let Some(&value) = buckets.get(bucket_idx) {
                        let mut t = target.len() - 1;
                        let src_bound = usize::try_from(src_idx)
                            .ok()
                            .and_then(|i| own_bounds.get(i));
                        if let Some(&src_bound) = src_bound {
                            while intersect_idx < bounds.len() {
                                if bounds[intersect_idx] >= src_bound {
                                    t = intersect_idx;
                                    break;
                                }
                                intersect_idx += 1;
                            }
                        }
                        if negative {
                            (target[t], target_c[t]) = kahan_inc(-value, target[t], target_c[t]);
                        } else {
                            (target[t], target_c[t]) = kahan_inc(value, target[t], target_c[t]);
                            if let Some(c) = comp.and_then(|c| c.get(bucket_idx)) {
                                (target[t], target_c[t]) = kahan_inc(*c, target[t], target_c[t]);
                            }
                        }
                    }
                    src_idx += 1;
                    bucket_idx += 1;
                }
            }
        };
    map(a, false, comp_a);
    map(b, negative, None);

    let (mut spans, mut out, mut out_c) = (Vec::<Span>::new(), Vec::new(), Vec::new());
    let mut last: i64 = -1;
    for (i, (&v, &c)) in target.iter().zip(&target_c).enumerate() {
        if v == 0.0 && c == 0.0 {
            continue;
        }
        out.push(v);
        out_c.push(c);
        let idx = i as i64;
        match spans.last_mut() {
            Some(span) if idx == last + 1 => span.length += 1,
            Some(_) => spans.push(Span {
                offset: clamp_i32(idx - last - 1),
                length: 1,
            }),
            None => spans.push(Span {
                offset: clamp_i32(idx),
                length: 1,
            }),
        }
        last = idx;
    }
    (spans, out, out_c)
}
