//! Native histograms as storage keeps them: Prometheus's float histogram (absolute bucket
//! counts; integer histograms are converted when they arrive, as PromQL evaluates them), its
//! validity rules, the resolution reduction for schemas finer than 8, and one compact binary
//! encoding shared by the WAL and the head (`docs/storage-format.md`).
//!
//! A histogram's buckets are described by spans: each span skips `offset` bucket indexes from
//! where the previous one ended (the first from index 0) and then covers `length` buckets,
//! whose counts follow in order. With an exponential schema `s` (-4..=8) the bucket of index
//! `i` on the positive side covers `(2^((i-1)/2^s), 2^(i/2^s)]`, the negative side mirrors it,
//! and the zero bucket holds what is within `zero_threshold` of zero. With the custom-buckets
//! schema (-53) bucket `i` covers `(custom_values[i-1], custom_values[i]]`, the last one
//! reaching +Inf.
//!
//! The operations PromQL needs are ported from Prometheus's Go (`model/histogram`), to give
//! the same results bit for bit, one idea per file:
//! - `bounds.rs`: where bucket `i` begins and ends ([`get_bound`]);
//! - `iter.rs`: walking buckets with their bounds ([`FloatHistogram::all_buckets`] and the
//!   per-side iterators);
//! - `arith.rs`: `*` and `/` by a scalar, `+`, `-` and the Kahan sum of histograms, with
//!   `zero_bucket.rs` (reconciling zero thresholds) and `merge.rs` (merging buckets);
//! - `compact.rs`: removing the empty buckets arithmetic leaves;
//! - `compare.rs`: equality and counter-reset detection;
//! - `format.rs`: Prometheus's text form of a histogram (`Display`);
//! - `stats.rs`: quantile, fraction and variance estimates;
//! - `arrow.rs`: a histogram's fields as Arrow columns (block files, SQL);
//! - `nhcb.rs`: classic histograms converted to custom buckets.

use std::fmt;

mod arith;
pub mod arrow;
mod bounds;
mod compact;
mod compare;
mod format;
mod iter;
mod merge;
pub mod nhcb;
mod stats;
mod zero_bucket;

pub use arith::{IncompatibleSchemaError, MergeReport, custom_bucket_bounds_match, kahan_inc};
pub use bounds::get_bound;
pub use format::{GoFloat, format_openmetrics_float};
pub use iter::{AllBuckets, Bucket, BucketIter, ReverseBucketIter};

/// The custom-buckets schema (classic buckets carried as a native histogram).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The exponential schemas Prometheus stores.
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;
/// Finer schemas are accepted and reduced to [`EXPONENTIAL_SCHEMA_MAX`] (coarser ones are
/// refused), as Prometheus 3 does.
pub const EXPONENTIAL_SCHEMA_MAX_RESERVED: i32 = 52;

/// What a sender says about a counter reset between this histogram and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum CounterResetHint {
    /// Unknown: detect it by comparing the two.
    #[default]
    Unknown = 0,
    /// A reset happened.
    Reset = 1,
    /// No reset happened.
    NotReset = 2,
    /// A gauge histogram: there are no resets.
    Gauge = 3,
}

impl CounterResetHint {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Unknown,
            1 => Self::Reset,
            2 => Self::NotReset,
            3 => Self::Gauge,
            _ => return None,
        })
    }

    /// The name Prometheus's API and the block files use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Reset => "reset",
            Self::NotReset => "not_reset",
            Self::Gauge => "gauge",
        }
    }
}

/// A run of consecutive buckets: `offset` indexes after the previous span's end (or after
/// index 0 for the first span), `length` buckets long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// A native histogram with float (absolute) bucket counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<Span>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53 only), strictly increasing, without
    /// the implicit +Inf.
    pub custom_values: Vec<f64>,
}

/// Why a histogram is not valid (Prometheus's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramError(pub String);

impl fmt::Display for HistogramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HistogramError {}

fn err<T>(msg: impl Into<String>) -> Result<T, HistogramError> {
    Err(HistogramError(msg.into()))
}

/// Checks that spans cover exactly `buckets` buckets and only the first has a negative
/// offset. Answers the total length spanned (offsets and lengths) for custom bounds.
pub fn check_spans(spans: &[Span], buckets: usize, side: &str) -> Result<i64, HistogramError> {
    let (mut n, mut reach) = (0u64, 0i64);
    for (i, s) in spans.iter().enumerate() {
        if i > 0 && s.offset < 0 {
            return err(format!(
                "{side}: span number {} with offset {}: histogram has a span whose offset is negative",
                i + 1,
                s.offset
            ));
        }
        n += u64::from(s.length);
        reach += i64::from(s.offset) + i64::from(s.length);
    }
    if n != buckets as u64 {
        return err(format!(
            "{side}: spans need {n} buckets, have {buckets} buckets: histogram spans specify different number of buckets than provided"
        ));
    }
    Ok(reach)
}

impl FloatHistogram {
    pub fn is_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Prometheus's `FloatHistogram.Validate`: spans match buckets, no negative counts, and
    /// the fields each kind of schema allows.
    pub fn validate(&self) -> Result<(), HistogramError> {
        let nonneg = |buckets: &[f64], side: &str| -> Result<(), HistogramError> {
            match buckets.iter().position(|c| *c < 0.0) {
                Some(i) => err(format!(
                    "{side}: bucket number {} has observation count of {}: histogram has a bucket whose observation count is negative",
                    i + 1,
                    buckets[i]
                )),
                None => Ok(()),
            }
        };
        if self.is_custom_buckets() {
            let mut prev = f64::NEG_INFINITY;
            for (i, b) in self.custom_values.iter().enumerate() {
                if b.is_nan() {
                    return err("custom buckets: histogram custom bounds must not be NaN");
                }
                if i > 0 && *b <= prev {
                    return err(format!(
                        "custom buckets: previous bound is {prev} and current is {b}: histogram custom bounds must be in strictly increasing order"
                    ));
                }
                prev = *b;
            }
            if prev == f64::INFINITY {
                return err(
                    "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds must be finite",
                );
            }
            if let Some((i, s)) = self
                .positive_spans
                .iter()
                .enumerate()
                .find(|(_, s)| s.offset < 0)
            {
                return err(format!(
                    "custom buckets: span number {} with offset {}: histogram has a span whose offset is negative",
                    i + 1,
                    s.offset
                ));
            }
            let reach = check_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                "custom buckets",
            )?;
            if self.custom_values.len() as i64 + 1 < reach {
                return err(format!(
                    "custom buckets: only {} custom bounds defined which is insufficient to cover total span length of {reach}: histogram custom bounds are too few",
                    self.custom_values.len()
                ));
            }
            if self.zero_count != 0.0 {
                return err("custom buckets: must have zero count of 0");
            }
            if self.zero_threshold != 0.0 {
                return err("custom buckets: must have zero threshold of 0");
            }
            if !self.negative_spans.is_empty() {
                return err("custom buckets: must not have negative spans");
            }
            if !self.negative_buckets.is_empty() {
                return err("custom buckets: must not have negative buckets");
            }
        } else if (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&self.schema) {
            check_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                "positive side",
            )?;
            check_spans(
                &self.negative_spans,
                self.negative_buckets.len(),
                "negative side",
            )?;
            nonneg(&self.negative_buckets, "negative side")?;
            if self.zero_count < 0.0 {
                return err(format!(
                    "zero bucket has observation count of {}: histogram has a bucket whose observation count is negative",
                    self.zero_count
                ));
            }
            if !self.custom_values.is_empty() {
                return err("histogram with exponential schema must not have custom bounds");
            }
        } else {
            return err(format!(
                "histogram has an invalid schema, which must be between {EXPONENTIAL_SCHEMA_MIN} and {EXPONENTIAL_SCHEMA_MAX} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets, got schema {}",
                self.schema
            ));
        }
        if self.count < 0.0 {
            return err(format!(
                "observation count is {}: histogram's observation count is negative",
                self.count
            ));
        }
        nonneg(&self.positive_buckets, "positive side")
    }

    /// Lowers an exponential schema to `target` (coarser), merging buckets; a no-op for a
    /// target not below the schema or for custom buckets. The spans must be valid.
    pub fn reduce_resolution(&mut self, target: i32) {
        if self.is_custom_buckets() || target >= self.schema {
            return;
        }
        let (from, to) = (self.schema, target);
        let (ps, pb) = reduce(&self.positive_spans, &self.positive_buckets, from, to);
        let (ns, nb) = reduce(&self.negative_spans, &self.negative_buckets, from, to);
        self.positive_spans = ps;
        self.positive_buckets = pb;
        self.negative_spans = ns;
        self.negative_buckets = nb;
        self.schema = target;
    }

    /// A copy reduced to the coarser exponential schema `target` (Go's `CopyToSchema`); an
    /// exact copy for `target` equal to the schema. As in Go, a reduced copy's counter reset
    /// hint is unknown (Go builds it without one). Where Go panics this is an error: custom
    /// buckets, a custom-buckets target, or a target above the schema.
    pub fn copy_to_schema(&self, target: i32) -> Result<FloatHistogram, HistogramError> {
        if target == self.schema {
            // Go's `Copy`, which keeps only the fields the schema uses.
            let mut copy = self.clone();
            if self.is_custom_buckets() {
                (copy.zero_threshold, copy.zero_count) = (0.0, 0.0);
                copy.negative_spans.clear();
                copy.negative_buckets.clear();
            } else {
                copy.custom_values.clear();
            }
            return Ok(copy);
        }
        if self.is_custom_buckets() {
            return err(format!(
                "cannot reduce resolution to {target} when there are custom buckets"
            ));
        }
        if target == CUSTOM_BUCKETS_SCHEMA {
            return err("cannot reduce resolution to custom buckets schema");
        }
        if target > self.schema {
            return err(format!(
                "cannot copy from schema {} to {target}",
                self.schema
            ));
        }
        let (positive_spans, positive_buckets) = reduce(
            &self.positive_spans,
            &self.positive_buckets,
            self.schema,
            target,
        );
        let (negative_spans, negative_buckets) = reduce(
            &self.negative_spans,
            &self.negative_buckets,
            self.schema,
            target,
        );
        Ok(FloatHistogram {
            hint: CounterResetHint::Unknown,
            schema: target,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive_spans,
            positive_buckets,
            negative_spans,
            negative_buckets,
            custom_values: Vec::new(),
        })
    }

    /// Whether this is a staleness marker (its sum is the staleness NaN).
    pub fn is_stale(&self) -> bool {
        crate::labels::is_stale_nan(self.sum)
    }

    /// Bytes [`FloatHistogram::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        1 + 4
            + 4 * 8
            + 3 * 4
            + 4 * 2
            + (self.positive_spans.len() + self.negative_spans.len()) * 8
            + (self.positive_buckets.len() + self.negative_buckets.len() + self.custom_values.len())
                * 8
    }

    /// Heap and inline bytes of this value (for memory accounting).
    pub fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.positive_spans.capacity() + self.negative_spans.capacity()) * 8
            + (self.positive_buckets.capacity()
                + self.negative_buckets.capacity()
                + self.custom_values.capacity())
                * 8
    }

    /// Appends the binary form (little-endian):
    /// `u8 hint, i32 schema, f64 zero_threshold, zero_count, count, sum`, then for the positive
    /// and then the negative side `u32 spans, (i32 offset, u32 length)…, u32 buckets, f64…`,
    /// then `u32 custom values, f64…`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(self.hint as u8);
        out.extend_from_slice(&self.schema.to_le_bytes());
        for f in [self.zero_threshold, self.zero_count, self.count, self.sum] {
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        for (spans, buckets) in [
            (&self.positive_spans, &self.positive_buckets),
            (&self.negative_spans, &self.negative_buckets),
        ] {
            out.extend_from_slice(&(spans.len() as u32).to_le_bytes());
            for s in spans {
                out.extend_from_slice(&s.offset.to_le_bytes());
                out.extend_from_slice(&s.length.to_le_bytes());
            }
            put_floats(out, buckets);
        }
        put_floats(out, &self.custom_values);
    }

    /// Reads one histogram from the front of `buf`; answers it and the bytes it took. Never
    /// allocates more than `buf` could hold, and checks that spans match buckets, so a
    /// decoded histogram is safe to walk.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), HistogramError> {
        let mut r = Cursor { buf, pos: 0 };
        let hint = CounterResetHint::from_u8(r.u8()?)
            .ok_or_else(|| HistogramError("unknown counter reset hint".into()))?;
        let schema = r.u32()? as i32;
        let zero_threshold = r.f64()?;
        let zero_count = r.f64()?;
        let count = r.f64()?;
        let sum = r.f64()?;
        let mut sides = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
        for (spans, buckets) in sides.iter_mut() {
            let n = r.len(8)?;
            *spans = (0..n)
                .map(|_| {
                    Ok(Span {
                        offset: r.u32()? as i32,
                        length: r.u32()?,
                    })
                })
                .collect::<Result<_, HistogramError>>()?;
            *buckets = r.floats()?;
            check_spans(spans, buckets.len(), "encoded histogram")?;
        }
        let custom_values = r.floats()?;
        let [
            (positive_spans, positive_buckets),
            (negative_spans, negative_buckets),
        ] = sides;
        Ok((
            FloatHistogram {
                hint,
                schema,
                zero_threshold,
                zero_count,
                count,
                sum,
                positive_spans,
                positive_buckets,
                negative_spans,
                negative_buckets,
                custom_values,
            },
            r.pos,
        ))
    }
}

fn put_floats(out: &mut Vec<u8>, fs: &[f64]) {
    out.extend_from_slice(&(fs.len() as u32).to_le_bytes());
    for f in fs {
        out.extend_from_slice(&f.to_bits().to_le_bytes());
    }
}

/// Prometheus's `targetIdx`: the bucket of the coarser schema that bucket `idx` falls in. In
/// 64 bits, so a reduction by 32 or more shifts as Go does (to 0 or -1) instead of overflowing.
fn target_idx(idx: i32, from: i32, to: i32) -> i32 {
    let shift = (i64::from(from) - i64::from(to)).clamp(0, 63);
    (((i64::from(idx) - 1) >> shift) + 1) as i32
}

/// Merges absolute bucket counts into a coarser schema (Prometheus's `reduceResolution`
/// for absolute counts).
fn reduce(spans: &[Span], buckets: &[f64], from: i32, to: i32) -> (Vec<Span>, Vec<f64>) {
    let mut out_spans: Vec<Span> = Vec::new();
    let mut out: Vec<f64> = Vec::new();
    let (mut idx, mut k, mut last) = (0i32, 0usize, 0i32);
    for s in spans {
        idx = idx.saturating_add(s.offset);
        for _ in 0..s.length {
            let Some(&c) = buckets.get(k) else {
                return (out_spans, out);
            };
            let t = target_idx(idx, from, to);
            match out_spans.last_mut() {
                None => {
                    out_spans.push(Span {
                        offset: t,
                        length: 1,
                    });
                    out.push(c);
                }
                Some(_) if t == last => *out.last_mut().expect("a bucket per span") += c,
                Some(span) if t == last + 1 => {
                    span.length += 1;
                    out.push(c);
                }
                Some(_) => {
                    out_spans.push(Span {
                        offset: t - last - 1,
                        length: 1,
                    });
                    out.push(c);
                }
            }
            last = t;
            idx = idx.saturating_add(1);
            k += 1;
        }
    }
    (out_spans, out)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], HistogramError> {
        if self.buf.len() - self.pos < n {
            return err("encoded histogram ends early");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, HistogramError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, HistogramError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn f64(&mut self) -> Result<f64, HistogramError> {
        Ok(f64::from_bits(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8"),
        )))
    }
    /// A count of items of `size` bytes that the rest of the buffer can hold.
    fn len(&mut self, size: usize) -> Result<usize, HistogramError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(size) > self.buf.len() - self.pos {
            return err("encoded histogram ends early");
        }
        Ok(n)
    }
    fn floats(&mut self) -> Result<Vec<f64>, HistogramError> {
        let n = self.len(8)?;
        (0..n).map(|_| self.f64()).collect()
    }
}

#[cfg(test)]
mod prometheus_tests;
#[cfg(test)]
mod strategies;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exp(schema: i32) -> FloatHistogram {
        FloatHistogram {
            schema,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 14.0,
            sum: 18.4,
            positive_spans: vec![
                Span {
                    offset: 0,
                    length: 2,
                },
                Span {
                    offset: 1,
                    length: 2,
                },
            ],
            positive_buckets: vec![1.0, 2.0, 1.0, 1.0],
            negative_spans: vec![Span {
                offset: -3,
                length: 3,
            }],
            negative_buckets: vec![3.0, 2.0, 2.0],
            ..Default::default()
        }
    }

    #[test]
    fn valid_histograms_pass_and_each_rule_is_checked() {
        assert_eq!(exp(3).validate(), Ok(()));
        let mut h = exp(3);
        h.positive_buckets.pop();
        assert!(
            h.validate()
                .unwrap_err()
                .0
                .contains("spans need 4 buckets, have 3")
        );
        let mut h = exp(3);
        h.positive_spans[1].offset = -1;
        assert!(h.validate().unwrap_err().0.contains("offset is negative"));
        let mut h = exp(3);
        h.negative_buckets[0] = -1.0;
        assert!(h.validate().unwrap_err().0.contains("negative side"));
        assert!(exp(9).validate().unwrap_err().0.contains("invalid schema"));
        assert!(exp(-5).validate().is_err());
        let mut h = exp(3);
        h.custom_values = vec![1.0];
        assert!(h.validate().is_err());

        let custom = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0,
            sum: 7.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1.0, 2.0, 3.0],
            custom_values: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(custom.validate(), Ok(()));
        let mut h = custom.clone();
        h.custom_values = vec![2.0, 1.0];
        assert!(h.validate().unwrap_err().0.contains("strictly increasing"));
        let mut h = custom.clone();
        h.custom_values = vec![1.0];
        assert!(h.validate().unwrap_err().0.contains("too few"));
        let mut h = custom.clone();
        h.custom_values = vec![1.0, f64::INFINITY];
        assert!(h.validate().unwrap_err().0.contains("finite"));
        let mut h = custom;
        h.zero_count = 1.0;
        assert!(h.validate().is_err());
    }

    #[test]
    fn reducing_resolution_merges_pairs_of_buckets() {
        // Schema 1 indexes 1..=4 map to schema 0 indexes 1, 1, 2, 2.
        let mut h = FloatHistogram {
            schema: 1,
            count: 10.0,
            positive_spans: vec![Span {
                offset: 1,
                length: 4,
            }],
            positive_buckets: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        };
        h.reduce_resolution(0);
        assert_eq!(h.schema, 0);
        assert_eq!(
            h.positive_spans,
            [Span {
                offset: 1,
                length: 2
            }]
        );
        assert_eq!(h.positive_buckets, [3.0, 7.0]);
        // A gap survives as a span offset: indexes 0 and 9 at schema 2 → 0 and 3 at schema 0.
        let mut h = FloatHistogram {
            schema: 2,
            positive_spans: vec![
                Span {
                    offset: 0,
                    length: 1,
                },
                Span {
                    offset: 8,
                    length: 1,
                },
            ],
            positive_buckets: vec![5.0, 6.0],
            ..Default::default()
        };
        h.reduce_resolution(0);
        assert_eq!(
            h.positive_spans,
            [
                Span {
                    offset: 0,
                    length: 1
                },
                Span {
                    offset: 2,
                    length: 1
                }
            ]
        );
        assert_eq!(h.positive_buckets, [5.0, 6.0]);
        // A reduction by more than 31 does not overflow: everything lands in index 0 or 1.
        let mut h = FloatHistogram {
            schema: 52,
            positive_spans: vec![Span {
                offset: -3,
                length: 6,
            }],
            positive_buckets: vec![1.0; 6],
            ..Default::default()
        };
        h.reduce_resolution(8);
        assert_eq!(h.positive_buckets, [4.0, 2.0]);
    }

    proptest! {
        #[test]
        fn histograms_round_trip_through_the_encoding(
            hint in 0u8..4,
            schema in -53i32..9,
            fs in proptest::array::uniform4(any::<u64>()),
            pos in proptest::collection::vec((-5i32..5, 0u32..4), 0..4),
            custom in proptest::collection::vec(any::<u64>(), 0..4),
        ) {
            let buckets = pos.iter().map(|s| s.1 as usize).sum::<usize>();
            let h = FloatHistogram {
                hint: CounterResetHint::from_u8(hint).unwrap(),
                schema,
                zero_threshold: f64::from_bits(fs[0]),
                zero_count: f64::from_bits(fs[1]),
                count: f64::from_bits(fs[2]),
                sum: f64::from_bits(fs[3]),
                positive_spans: pos.iter().enumerate().map(|(i, (o, l))| Span { offset: if i == 0 { *o } else { o.abs() }, length: *l }).collect(),
                positive_buckets: (0..buckets).map(|i| i as f64).collect(),
                negative_spans: vec![],
                negative_buckets: vec![],
                custom_values: custom.iter().map(|b| f64::from_bits(*b)).collect(),
            };
            let mut buf = vec![7u8];
            h.encode(&mut buf);
            prop_assert_eq!(buf.len(), 1 + h.encoded_len());
            let (back, used) = FloatHistogram::decode(&buf[1..]).unwrap();
            prop_assert_eq!(used, h.encoded_len());
            let mut again = Vec::new();
            back.encode(&mut again);
            prop_assert_eq!(&again[..], &buf[1..]);
            for cut in 0..buf.len() - 1 {
                prop_assert!(FloatHistogram::decode(&buf[1..1 + cut]).is_err());
            }
        }
    }

    proptest! {
        /// Every operation on valid histograms, however odd (extreme offsets, NaN and
        /// infinite counts and thresholds, custom bounds), ends without panicking, and adding
        /// valid histograms gives a valid one.
        #[test]
        fn operations_on_any_valid_histograms_end_without_panicking(
            a in strategies::any_valid(),
            b in strategies::any_valid(),
            max_empty_buckets in 0usize..3,
        ) {
            prop_assert_eq!(a.validate(), Ok(()));
            prop_assert_eq!(b.validate(), Ok(()));
            for (x, y) in [(&a, &b), (&b, &a)] {
                let mut sum = x.clone();
                if sum.add(y).is_ok() {
                    prop_assert_eq!(sum.validate(), Ok(()), "{:?} + {:?} = {:?}", x, y, sum);
                }
                let _ = x.clone().sub(y);
                let mut kahan = x.clone();
                if let Ok((comp, _)) = kahan.kahan_add(y, None) {
                    let comp = kahan.kahan_add(y, Some(comp)).map(|(c, _)| c);
                    if let Ok(comp) = comp {
                        let _ = kahan.add(&comp);
                    }
                }
                let _ = x.detect_reset(y);
                let _ = x.equals(y);
                for target in [x.schema, x.schema - 1, x.schema - 3, CUSTOM_BUCKETS_SCHEMA] {
                    let _ = x.copy_to_schema(target);
                }
                let mut compacted = x.clone();
                compacted.compact(max_empty_buckets);
                prop_assert_eq!(compacted.validate(), Ok(()));
                let _ = x.to_string();
                let _ = x.all_buckets().count() + x.all_buckets_rev().count();
                let _ = x.positive_bucket_iter_rev().count() + x.negative_bucket_iter_rev().count();
            }
        }
    }

    #[test]
    fn corrupt_lengths_are_errors_without_large_allocations() {
        let mut buf = Vec::new();
        exp(0).encode(&mut buf);
        // The positive span count at byte 37: claim four billion spans.
        buf[37..41].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(FloatHistogram::decode(&buf).is_err());
    }
}
