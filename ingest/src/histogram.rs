//! The `Histogram` message of remote write 1.0 and 2.0 (same field numbers in both), read in
//! place and turned into storage's [`FloatHistogram`] as Prometheus 3's remote-write handler
//! does: integer histograms (delta-encoded bucket counts) are checked with their own rules and
//! converted, schemas 9..=52 are reduced to 8, and anything Prometheus would refuse is refused
//! with its reason.
//!
//! ```text
//! count_int 1 | count_float 2, sum 3, schema 4 (sint32), zero_threshold 5,
//! zero_count_int 6 | zero_count_float 7, negative_spans 8, negative_deltas 9 (sint64),
//! negative_counts 10, positive_spans 11, positive_deltas 12, positive_counts 13,
//! reset_hint 14, timestamp 15, custom_values 16, start_timestamp 17 (2.0)
//! BucketSpan: offset 1 (sint32), length 2
//! ```

use quiver_storage::histogram::{
    EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MAX_RESERVED, check_spans,
};
use quiver_storage::{CounterResetHint, FloatHistogram, Span};

use crate::remote_write::{FIXED64, LEN, Pb, VARINT};

/// One decoded histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramSample {
    /// A histogram at this time.
    Value(i64, FloatHistogram),
    /// A staleness marker (the sum is the staleness NaN): stored as a float marker.
    Stale(i64),
}

pub(crate) fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads a repeated `sint64` field, packed or not.
pub(crate) fn sint64s(pb: &mut Pb<'_>, wire: u8, out: &mut Vec<i64>) -> Result<(), String> {
    match wire {
        LEN => {
            let b = pb.bytes()?;
            let mut p = Pb::new(b);
            while p.pos < b.len() {
                out.push(zigzag(p.varint()?));
            }
        }
        VARINT => out.push(zigzag(pb.varint()?)),
        w => return Err(format!("wire type {w} for a repeated sint64")),
    }
    Ok(())
}

/// Reads a repeated `double` field, packed or not.
pub(crate) fn doubles(pb: &mut Pb<'_>, wire: u8, out: &mut Vec<f64>) -> Result<(), String> {
    match wire {
        LEN => {
            let b = pb.bytes()?;
            if b.len() % 8 != 0 {
                return Err("a packed double field is not a multiple of 8 bytes".into());
            }
            out.extend(
                b.chunks_exact(8)
                    .map(|c| f64::from_bits(u64::from_le_bytes(c.try_into().expect("8")))),
            );
        }
        FIXED64 => out.push(f64::from_bits(pb.fixed64()?)),
        w => return Err(format!("wire type {w} for a repeated double")),
    }
    Ok(())
}

pub(crate) fn span(buf: &[u8]) -> Result<Span, String> {
    let mut s = Span::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, VARINT) => {
                s.offset = i32::try_from(zigzag(pb.varint()?))
                    .map_err(|_| "a span offset does not fit in 32 bits")?
            }
            (2, VARINT) => {
                s.length = u32::try_from(pb.varint()?)
                    .map_err(|_| "a span length does not fit in 32 bits")?
            }
            _ => pb.skip(wire)?,
        }
    }
    Ok(s)
}

fn f64_of(pb: &mut Pb<'_>) -> Result<f64, String> {
    Ok(f64::from_bits(pb.fixed64()?))
}

/// Deltas to absolute counts, refusing a negative one (Prometheus's integer rule) and sums
/// past 64 bits. Answers the counts and their sum.
fn absolute(deltas: &[i64], side: &str) -> Result<(Vec<f64>, u64), String> {
    let (mut last, mut total, mut out) = (0i64, 0u64, Vec::with_capacity(deltas.len()));
    for (i, d) in deltas.iter().enumerate() {
        last = last
            .checked_add(*d)
            .ok_or_else(|| format!("{side}: bucket counts overflow"))?;
        if last < 0 {
            return Err(format!(
                "{side}: bucket number {} has observation count of {last}: histogram has a bucket whose observation count is negative",
                i + 1
            ));
        }
        total = total
            .checked_add(last as u64)
            .ok_or_else(|| format!("{side}: bucket counts overflow"))?;
        out.push(last as f64);
    }
    Ok((out, total))
}

/// A histogram's fields as a protobuf message carries them (remote write's `Histogram`, the
/// exposition format's `io.prometheus.client.Histogram`: the same fields under other numbers),
/// before they are checked and made absolute.
#[derive(Debug, Default)]
pub struct RawHistogram {
    pub count_int: Option<u64>,
    pub count_float: Option<f64>,
    pub sum: f64,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_int: Option<u64>,
    pub zero_float: Option<f64>,
    pub negative_spans: Vec<Span>,
    pub negative_deltas: Vec<i64>,
    pub negative_counts: Vec<f64>,
    pub positive_spans: Vec<Span>,
    pub positive_deltas: Vec<i64>,
    pub positive_counts: Vec<f64>,
    pub hint: CounterResetHint,
    pub custom_values: Vec<f64>,
}

/// Decodes one `Histogram` message and checks it.
pub fn decode(buf: &[u8]) -> Result<HistogramSample, String> {
    let mut r = RawHistogram::default();
    let (mut hint, mut t) = (0u64, 0i64);
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, VARINT) => r.count_int = Some(pb.varint()?),
            (2, FIXED64) => r.count_float = Some(f64_of(&mut pb)?),
            (3, FIXED64) => r.sum = f64_of(&mut pb)?,
            (4, VARINT) => {
                r.schema = i32::try_from(zigzag(pb.varint()?)).map_err(|_| "schema out of range")?
            }
            (5, FIXED64) => r.zero_threshold = f64_of(&mut pb)?,
            (6, VARINT) => r.zero_int = Some(pb.varint()?),
            (7, FIXED64) => r.zero_float = Some(f64_of(&mut pb)?),
            (8, LEN) => r.negative_spans.push(span(pb.bytes()?)?),
            (9, _) => sint64s(&mut pb, wire, &mut r.negative_deltas)?,
            (10, _) => doubles(&mut pb, wire, &mut r.negative_counts)?,
            (11, LEN) => r.positive_spans.push(span(pb.bytes()?)?),
            (12, _) => sint64s(&mut pb, wire, &mut r.positive_deltas)?,
            (13, _) => doubles(&mut pb, wire, &mut r.positive_counts)?,
            (14, VARINT) => hint = pb.varint()?,
            (15, VARINT) => t = pb.varint()? as i64,
            (16, _) => doubles(&mut pb, wire, &mut r.custom_values)?,
            _ => pb.skip(wire)?,
        }
    }
    r.hint = u8::try_from(hint)
        .ok()
        .and_then(CounterResetHint::from_u8)
        .ok_or_else(|| format!("unknown histogram reset hint {hint}"))?;
    if quiver_storage::is_stale_nan(r.sum) {
        return Ok(HistogramSample::Stale(t));
    }
    Ok(HistogramSample::Value(t, r.finish()?))
}

impl RawHistogram {
    /// The histogram, checked as Prometheus checks what it appends: integer counts made
    /// absolute (none negative, their total the count unless the sum is NaN), schemas 9..=52
    /// reduced to 8, then [`FloatHistogram::validate`].
    pub fn finish(self) -> Result<FloatHistogram, String> {
        let mut h = FloatHistogram {
            hint: self.hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            sum: self.sum,
            positive_spans: self.positive_spans,
            negative_spans: self.negative_spans,
            custom_values: self.custom_values,
            ..Default::default()
        };
        let (neg_deltas, pos_deltas) = (self.negative_deltas, self.positive_deltas);
        let (neg_counts, pos_counts) = (self.negative_counts, self.positive_counts);
        // Prometheus: a histogram is a float histogram when its count is a float.
        if let Some(c) = self.count_float {
            if !neg_deltas.is_empty() || !pos_deltas.is_empty() || self.zero_int.is_some() {
                return Err("a float histogram with integer bucket counts".into());
            }
            h.count = c;
            h.zero_count = self.zero_float.unwrap_or(0.0);
            h.negative_buckets = neg_counts;
            h.positive_buckets = pos_counts;
        } else {
            if !neg_counts.is_empty() || !pos_counts.is_empty() || self.zero_float.is_some() {
                return Err("an integer histogram with float bucket counts".into());
            }
            // Spans first (before allocating counts for them): Prometheus's order of checks.
            if h.schema != quiver_storage::histogram::CUSTOM_BUCKETS_SCHEMA {
                check_spans(&h.positive_spans, pos_deltas.len(), "positive side")
                    .map_err(|e| e.0)?;
                check_spans(&h.negative_spans, neg_deltas.len(), "negative side")
                    .map_err(|e| e.0)?;
            }
            let (neg, n_total) = absolute(&neg_deltas, "negative side")?;
            let (pos, p_total) = absolute(&pos_deltas, "positive side")?;
            let count = self.count_int.unwrap_or(0);
            let zero = self.zero_int.unwrap_or(0);
            let in_buckets = n_total
                .checked_add(p_total)
                .and_then(|s| s.checked_add(zero))
                .ok_or("bucket counts overflow")?;
            if h.sum.is_nan() {
                if in_buckets > count {
                    return Err(format!(
                        "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"
                    ));
                }
            } else if in_buckets != count {
                return Err(format!(
                    "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
                ));
            }
            h.count = count as f64;
            h.zero_count = zero as f64;
            h.negative_buckets = neg;
            h.positive_buckets = pos;
        }
        if h.schema > EXPONENTIAL_SCHEMA_MAX && h.schema <= EXPONENTIAL_SCHEMA_MAX_RESERVED {
            check_spans(&h.positive_spans, h.positive_buckets.len(), "positive side")
                .and_then(|_| {
                    check_spans(&h.negative_spans, h.negative_buckets.len(), "negative side")
                })
                .map_err(|e| e.0)?;
            h.reduce_resolution(EXPONENTIAL_SCHEMA_MAX);
        }
        h.validate().map_err(|e| e.0)?;
        Ok(h)
    }
}

/// The message types a sender builds (prost), for tests, benchmarks and the remote-write
/// sender's encoder.
pub mod proto {
    /// `prometheus.Histogram` (1.0) / `io.prometheus.write.v2.Histogram` (2.0).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(oneof = "Count", tags = "1, 2")]
        pub count: Option<Count>,
        #[prost(double, tag = "3")]
        pub sum: f64,
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        #[prost(oneof = "ZeroCount", tags = "6, 7")]
        pub zero_count: Option<ZeroCount>,
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        #[prost(double, repeated, tag = "10")]
        pub negative_counts: Vec<f64>,
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        #[prost(double, repeated, tag = "13")]
        pub positive_counts: Vec<f64>,
        #[prost(int32, tag = "14")]
        pub reset_hint: i32,
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
        #[prost(double, repeated, tag = "16")]
        pub custom_values: Vec<f64>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Count {
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ZeroCount {
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }

    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    impl Histogram {
        /// A float histogram message carrying `h` at `t` (what Quiver sends and answers).
        pub fn from_float(t: i64, h: &quiver_storage::FloatHistogram) -> Self {
            let spans = |s: &[quiver_storage::Span]| {
                s.iter()
                    .map(|s| BucketSpan {
                        offset: s.offset,
                        length: s.length,
                    })
                    .collect()
            };
            Histogram {
                count: Some(Count::CountFloat(h.count)),
                sum: h.sum,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                zero_count: Some(ZeroCount::ZeroCountFloat(h.zero_count)),
                negative_spans: spans(&h.negative_spans),
                negative_deltas: Vec::new(),
                negative_counts: h.negative_buckets.clone(),
                positive_spans: spans(&h.positive_spans),
                positive_deltas: Vec::new(),
                positive_counts: h.positive_buckets.clone(),
                reset_hint: h.hint as i32,
                timestamp: t,
                custom_values: h.custom_values.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use prost::Message;

    fn int_histogram() -> Histogram {
        // Buckets 2, 3, 1 at indexes 0, 1 and 3; 2 below zero at index -1; 1 in the zero bucket.
        Histogram {
            count: Some(Count::CountInt(9)),
            sum: 12.5,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: Some(ZeroCount::ZeroCountInt(1)),
            negative_spans: vec![BucketSpan {
                offset: -1,
                length: 1,
            }],
            negative_deltas: vec![2],
            positive_spans: vec![
                BucketSpan {
                    offset: 0,
                    length: 2,
                },
                BucketSpan {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_deltas: vec![2, 1, -2],
            reset_hint: 2,
            timestamp: 1234,
            ..Default::default()
        }
    }

    fn value(m: &Histogram) -> Result<FloatHistogram, String> {
        match decode(&m.encode_to_vec())? {
            HistogramSample::Value(_, h) => Ok(h),
            HistogramSample::Stale(_) => Err("stale".into()),
        }
    }

    #[test]
    fn integer_histograms_become_absolute_float_counts() {
        let m = int_histogram();
        let HistogramSample::Value(t, h) = decode(&m.encode_to_vec()).unwrap() else {
            panic!("a value")
        };
        assert_eq!(t, 1234);
        assert_eq!(h.positive_buckets, [2.0, 3.0, 1.0]);
        assert_eq!(h.negative_buckets, [2.0]);
        assert_eq!((h.count, h.zero_count, h.sum), (9.0, 1.0, 12.5));
        assert_eq!(h.hint, CounterResetHint::NotReset);
        assert_eq!(
            h.positive_spans[1],
            Span {
                offset: 1,
                length: 1
            }
        );
        // Sent back as a float histogram, it decodes to the same value.
        let again = Histogram::from_float(t, &h);
        assert_eq!(value(&again).unwrap(), h);
    }

    #[test]
    fn prometheus_refusals_are_refused_with_its_reasons() {
        let mut m = int_histogram();
        m.count = Some(Count::CountInt(8));
        assert!(value(&m).unwrap_err().contains("should equal the number"));
        // With a NaN sum, a count above the buckets' total is allowed (NaN observations).
        m.sum = f64::NAN;
        m.count = Some(Count::CountInt(10));
        assert!(value(&m).is_ok());
        let mut m = int_histogram();
        m.positive_deltas = vec![2, -3, 0];
        assert!(value(&m).unwrap_err().contains("negative"));
        let mut m = int_histogram();
        m.positive_deltas.pop();
        assert!(
            value(&m)
                .unwrap_err()
                .contains("spans need 3 buckets, have 2")
        );
        let mut m = int_histogram();
        m.schema = -5;
        assert!(value(&m).unwrap_err().contains("invalid schema"));
        m.schema = 53;
        assert!(value(&m).unwrap_err().contains("invalid schema"));
        let mut m = int_histogram();
        m.positive_spans[1].offset = -1;
        assert!(value(&m).unwrap_err().contains("offset is negative"));
        let mut m = int_histogram();
        m.reset_hint = 9;
        assert!(value(&m).unwrap_err().contains("reset hint"));
    }

    #[test]
    fn fine_schemas_are_reduced_to_eight() {
        let mut m = int_histogram();
        m.schema = 10;
        // Indexes 0, 1 and 3 at schema 10 are 0, 1 and 1 at schema 8.
        let h = value(&m).unwrap();
        assert_eq!(h.schema, 8);
        assert_eq!(
            h.positive_spans,
            [Span {
                offset: 0,
                length: 2
            }]
        );
        assert_eq!(h.positive_buckets, [2.0, 4.0]);
    }

    #[test]
    fn float_and_custom_bucket_histograms_are_kept_as_sent() {
        let m = Histogram {
            count: Some(Count::CountFloat(6.5)),
            sum: 3.0,
            schema: -53,
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_counts: vec![1.0, 2.5, 3.0],
            custom_values: vec![0.1, 1.0],
            ..Default::default()
        };
        let h = value(&m).unwrap();
        assert_eq!(h.schema, -53);
        assert_eq!(h.custom_values, [0.1, 1.0]);
        assert_eq!(h.positive_buckets, [1.0, 2.5, 3.0]);
        let mut bad = m.clone();
        bad.custom_values = vec![1.0, 0.1];
        assert!(value(&bad).unwrap_err().contains("increasing"));
    }

    #[test]
    fn a_stale_sum_is_a_staleness_marker() {
        let mut m = int_histogram();
        m.sum = f64::from_bits(quiver_storage::STALE_NAN_BITS);
        assert_eq!(
            decode(&m.encode_to_vec()).unwrap(),
            HistogramSample::Stale(1234)
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let raw = int_histogram().encode_to_vec();
        for cut in 0..raw.len() {
            let _ = decode(&raw[..cut]);
        }
        // A span longer than any body, with no buckets: refused before anything is allocated.
        let mut m = int_histogram();
        m.positive_spans[0].length = u32::MAX;
        assert!(value(&m).is_err());
    }
}
