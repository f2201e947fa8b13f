//! Compaction (Prometheus's `Compact`): dropping the empty buckets and needless spans that
//! arithmetic leaves behind, so that a result has the layout Prometheus's would.

use super::{FloatHistogram, Span};

impl FloatHistogram {
    /// Go's `Compact`: removes empty buckets at the start and end of every span, merges spans
    /// that touch or are at most `max_empty_buckets` apart (filling the gap with empty
    /// buckets), and splits spans at runs of more than `max_empty_buckets` empty buckets.
    /// PromQL compacts with 0. A valid histogram stays valid. Answers `self` to chain.
    ///
    /// Merging inserts up to `max_empty_buckets` buckets per gap: a large value on a
    /// histogram with huge gaps allocates accordingly (as in Go).
    pub fn compact(&mut self, max_empty_buckets: usize) -> &mut Self {
        compact_buckets(
            &mut self.positive_buckets,
            None,
            &mut self.positive_spans,
            max_empty_buckets,
        );
        compact_buckets(
            &mut self.negative_buckets,
            None,
            &mut self.negative_spans,
            max_empty_buckets,
        );
        self
    }

    /// Go's `kahanCompact`: compacts `self` and keeps the compensation histogram `c`'s
    /// buckets aligned with it (a bucket is only empty if its compensation is 0 too).
    pub(super) fn compact_with_compensation(
        &mut self,
        max_empty_buckets: usize,
        c: &mut FloatHistogram,
    ) {
        compact_buckets(
            &mut self.positive_buckets,
            Some(&mut c.positive_buckets),
            &mut self.positive_spans,
            max_empty_buckets,
        );
        compact_buckets(
            &mut self.negative_buckets,
            Some(&mut c.negative_buckets),
            &mut self.negative_spans,
            max_empty_buckets,
        );
    }
}

/// Go's `compactBuckets` for absolute counts, with optional compensation buckets that are cut
/// and padded along with the buckets (Go panics when their lengths differ; here the
/// compensation is padded with zeros or cut to match first).
///
/// Where joining two offsets overflows `i32` (only for bucket indexes beyond `i32`, where
/// Go's offsets wrap around and the histogram turns invalid), the offset saturates: the result
/// stays valid, the far buckets' indexes stay beyond any real bucket.
fn compact_buckets(
    buckets: &mut Vec<f64>,
    mut comp: Option<&mut Vec<f64>>,
    spans: &mut Vec<Span>,
    max_empty_buckets: usize,
) {
    let max_empty_offset = i64::try_from(max_empty_buckets).unwrap_or(i64::MAX);
    if let Some(c) = comp.as_deref_mut() {
        c.resize(buckets.len(), 0.0);
    }
    // Fast path: no empty bucket, no span of length 0, no offset small enough to merge.
    if !buckets.contains(&0.0)
        && spans
            .iter()
            .all(|s| i64::from(s.offset) > max_empty_offset && s.length != 0)
    {
        return;
    }

    // Merge spans with offset 0 into the previous one.
    if spans.len() > 1 {
        let mut i_span = 0;
        for i in 1..spans.len() {
            let span = spans[i];
            if span.offset == 0 {
                spans[i_span].length = spans[i_span].length.wrapping_add(span.length);
                continue;
            }
            i_span += 1;
            spans[i_span] = span;
        }
        spans.truncate(i_span + 1);
    }
    // Drop spans of length 0, handing their offset to the next span.
    let mut i_span = 0;
    for i in 0..spans.len() {
        let span = spans[i];
        if span.length == 0 {
            if let Some(next) = spans.get_mut(i + 1) {
                next.offset = next.offset.saturating_add(span.offset);
            }
            continue;
        }
        spans[i_span] = span;
        i_span += 1;
    }
    spans.truncate(i_span);
    if spans.is_empty() {
        buckets.clear();
        if let Some(c) = comp.as_deref_mut() {
            c.clear();
        }
        return;
    }

    // Cut empty buckets from the start and end of spans, and runs of more than
    // `max_empty_buckets` from their middle.
    let (mut i_bucket, mut i_span, mut pos_in_span) = (0usize, 0usize, 0u32);
    while i_bucket < buckets.len() && i_span < spans.len() {
        let n_empty = empty_buckets_here(
            buckets,
            comp.as_deref().map(|c| &c[..]),
            i_bucket,
            spans[i_span].length - pos_in_span,
        );
        if n_empty == 0 {
            i_bucket += 1;
            pos_in_span += 1;
            if pos_in_span >= spans[i_span].length {
                pos_in_span = 0;
                i_span += 1;
            }
            continue;
        }
        let len = spans[i_span].length;
        if pos_in_span > 0
            && (n_empty as u64) < u64::from(len - pos_in_span)
            && n_empty <= max_empty_buckets
        {
            // Few enough empty buckets inside a span: keep them.
            i_bucket += n_empty;
            pos_in_span += n_empty as u32;
            continue;
        }
        buckets.drain(i_bucket..i_bucket + n_empty);
        if let Some(c) = comp.as_deref_mut() {
            c.drain(i_bucket..i_bucket + n_empty);
        }
        let n = n_empty as u32;
        if pos_in_span == 0 {
            // At the start of a span.
            if n == len {
                // The whole span was empty.
                let offset = spans.remove(i_span).offset;
                if let Some(next) = spans.get_mut(i_span) {
                    next.offset = next.offset.saturating_add(offset).saturating_add(n as i32);
                }
                continue;
            }
            spans[i_span].length -= n;
            spans[i_span].offset = spans[i_span].offset.saturating_add(n as i32);
            continue;
        }
        // In the middle or at the end of a span: split it.
        let rest = Span {
            offset: n as i32,
            length: len - pos_in_span - n,
        };
        spans[i_span].length = pos_in_span;
        i_span += 1;
        pos_in_span = 0;
        if rest.length == 0 {
            // It was the end of the span: the gap goes to the next span, if any.
            if let Some(next) = spans.get_mut(i_span) {
                next.offset = next.offset.saturating_add(n as i32);
            }
            continue;
        }
        spans.insert(i_span, rest);
    }
    if max_empty_buckets == 0 || buckets.is_empty() {
        return;
    }

    // Merge spans at most `max_empty_buckets` apart, filling the gap with empty buckets.
    let mut i_bucket = spans[0].length as usize;
    let mut i_span = 1;
    while i_span < spans.len() {
        let span = spans[i_span];
        let gap = match usize::try_from(span.offset) {
            Ok(gap) if i64::from(span.offset) <= max_empty_offset => gap,
            // Too far apart (or, in a histogram validate refuses, a negative offset).
            _ => {
                i_bucket += span.length as usize;
                i_span += 1;
                continue;
            }
        };
        spans[i_span - 1].length = spans[i_span - 1]
            .length
            .wrapping_add(span.offset as u32)
            .wrapping_add(span.length);
        spans.remove(i_span);
        let at = i_bucket.min(buckets.len());
        buckets.splice(at..at, std::iter::repeat_n(0.0, gap));
        if let Some(c) = comp.as_deref_mut() {
            let at = at.min(c.len());
            c.splice(at..at, std::iter::repeat_n(0.0, gap));
        }
        i_bucket += gap + span.length as usize;
    }
}

/// How many buckets from `i_bucket` on are empty (count and compensation 0), at most
/// `left_in_span`.
fn empty_buckets_here(
    buckets: &[f64],
    comp: Option<&[f64]>,
    i_bucket: usize,
    left_in_span: u32,
) -> usize {
    let is_empty = |i: usize| {
        buckets.get(i).is_some_and(|b| *b == 0.0)
            && comp.and_then(|c| c.get(i)).is_none_or(|c| *c == 0.0)
    };
    let mut n = 0usize;
    while (n as u64) < u64::from(left_in_span) && is_empty(i_bucket + n) {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::histogram::strategies::{exponential, sparse_counts, zero_threshold};

    /// A histogram's populated buckets, as (index, count) per side.
    fn populated(h: &FloatHistogram) -> [Vec<(i32, f64)>; 2] {
        [h.positive_bucket_iter(), h.negative_bucket_iter()].map(|it| {
            it.filter(|b| b.count != 0.0)
                .map(|b| (b.index, b.count))
                .collect()
        })
    }

    #[test]
    fn offsets_joined_beyond_i32_saturate_instead_of_wrapping_negative() {
        // Dropping the span of length 0 adds its offset to the next one's: 2^31 in all.
        let mut h = FloatHistogram {
            negative_spans: vec![
                Span {
                    offset: 0,
                    length: 1,
                },
                Span {
                    offset: 526941290,
                    length: 0,
                },
                Span {
                    offset: 1620542358,
                    length: 1,
                },
            ],
            negative_buckets: vec![1.0, 2.0],
            ..FloatHistogram::default()
        };
        h.compact(0);
        assert_eq!(h.negative_spans[1].offset, i32::MAX);
        assert_eq!(h.validate(), Ok(()));
    }

    proptest! {
        #[test]
        fn compacting_is_idempotent_keeps_populated_buckets_and_validity(
            h in exponential(-4i32..=8, zero_threshold(), sparse_counts()),
            max_empty_buckets in 0usize..4,
            split in proptest::collection::vec((0usize..8, 0u32..3), 0..3),
        ) {
            // Also spans of length 0 and spans split at offset 0, as arithmetic leaves them.
            let mut h = h;
            for (at, len) in split {
                if h.positive_spans.is_empty() {
                    break;
                }
                let at = 1 + at % h.positive_spans.len();
                h.positive_spans.insert(at, Span { offset: 0, length: 0 });
                let s = &mut h.positive_spans[at - 1];
                if s.length > len {
                    s.length -= len;
                    h.positive_spans.insert(at, Span { offset: 0, length: len });
                }
            }
            prop_assert_eq!(h.validate(), Ok(()));
            let before = populated(&h);
            let mut once = h.clone();
            once.compact(max_empty_buckets);
            prop_assert_eq!(once.validate(), Ok(()));
            prop_assert_eq!(populated(&once), before);
            let mut twice = once.clone();
            twice.compact(max_empty_buckets);
            prop_assert_eq!(twice, once);
        }
    }
}
