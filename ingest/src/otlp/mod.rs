//! OpenTelemetry metrics over OTLP/HTTP (`ExportMetricsServiceRequest`), as Prometheus 3's
//! receiver takes them: a protobuf or JSON body, turned into Prometheus series by the
//! translation Prometheus applies (names, units, resource attributes).
//!
//! - [`protobuf`] and [`json`] read a body into one model ([`Request`]), counting what they
//!   hold against a budget, so a small body cannot become a large allocation;
//! - [`translate`] names metrics and labels as Prometheus does;
//! - [`convert`] turns the model into a [`quiver_storage::WriteBatch`], the metadata of each
//!   family, and what was refused (delta temporality, exponential histograms until Quiver
//!   stores native histograms) for OTLP's partial-success answer;
//! - [`proto`]: the messages as `prost` derives them, for senders and tests.

use std::borrow::Cow;

pub mod convert;
pub mod delta;
pub mod json;
pub mod proto;
pub mod protobuf;
pub mod translate;

pub use convert::{Converted, Options, convert, convert_with};
pub use delta::DeltaState;
pub use translate::Strategy;

use crate::remote_write::DecodeError;

/// Most memory the decoded model of one request may take (its strings are the body's own,
/// not counted): about a million histogram points or two million gauge points, far more than
/// an SDK or a Collector batch sends at once.
pub const MAX_MODEL_BYTES: usize = 128 << 20;

/// Deepest nesting of attribute values (arrays and maps inside arrays and maps).
pub const MAX_VALUE_DEPTH: usize = 32;

/// A decoded request: each resource with its scopes and metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Request<'a> {
    pub resources: Vec<ResourceMetrics<'a>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ResourceMetrics<'a> {
    pub attributes: Vec<Attr<'a>>,
    pub scopes: Vec<ScopeMetrics<'a>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScopeMetrics<'a> {
    pub name: Cow<'a, str>,
    pub version: Cow<'a, str>,
    pub attributes: Vec<Attr<'a>>,
    pub schema_url: Cow<'a, str>,
    pub metrics: Vec<Metric<'a>>,
}

/// An attribute, its value as a string as Prometheus writes it into a label (`AsString`:
/// numbers in decimal, booleans as `true`/`false`, bytes in base64, arrays and maps as JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Attr<'a> {
    pub key: Cow<'a, str>,
    pub value: Cow<'a, str>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Metric<'a> {
    pub name: Cow<'a, str>,
    pub description: Cow<'a, str>,
    pub unit: Cow<'a, str>,
    pub data: Data<'a>,
}

/// `AggregationTemporality`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    #[default]
    Unspecified,
    Delta,
    Cumulative,
}

impl Temporality {
    pub(crate) fn from_number(n: i64) -> Self {
        match n {
            1 => Temporality::Delta,
            2 => Temporality::Cumulative,
            _ => Temporality::Unspecified,
        }
    }
}

/// A metric's data: OTLP's `oneof data`.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Data<'a> {
    /// No data field (or one this receiver does not know).
    #[default]
    Empty,
    Gauge(Vec<NumberPoint<'a>>),
    Sum {
        monotonic: bool,
        temporality: Temporality,
        points: Vec<NumberPoint<'a>>,
    },
    Histogram {
        temporality: Temporality,
        points: Vec<HistogramPoint<'a>>,
    },
    /// Stored as native histograms.
    ExponentialHistogram {
        temporality: Temporality,
        points: Vec<ExponentialPoint<'a>>,
    },
    Summary(Vec<SummaryPoint<'a>>),
}

/// What every kind of data point has.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Point<'a> {
    pub attributes: Vec<Attr<'a>>,
    pub start_ns: u64,
    pub time_ns: u64,
    pub flags: u32,
    /// Exemplars carried (not stored: Quiver has no exemplar storage).
    pub exemplars: usize,
}

impl Point<'_> {
    /// `DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK`: the point marks the series as gone.
    pub fn no_recorded_value(&self) -> bool {
        self.flags & 1 != 0
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct NumberPoint<'a> {
    pub point: Point<'a>,
    /// `as_double`, or `as_int` as a float.
    pub value: f64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct HistogramPoint<'a> {
    pub point: Point<'a>,
    pub count: u64,
    pub sum: Option<f64>,
    pub bucket_counts: Vec<u64>,
    pub explicit_bounds: Vec<f64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExponentialPoint<'a> {
    pub point: Point<'a>,
    pub count: u64,
    pub sum: Option<f64>,
    pub scale: i32,
    pub zero_count: u64,
    /// Bucket `offset + i` covers `(base^(offset+i), base^(offset+i+1)]`, `base = 2^2^-scale`.
    pub positive: ExponentialBuckets,
    pub negative: ExponentialBuckets,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExponentialBuckets {
    pub offset: i32,
    pub bucket_counts: Vec<u64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SummaryPoint<'a> {
    pub point: Point<'a>,
    pub count: u64,
    pub sum: f64,
    /// (quantile, value) pairs.
    pub quantiles: Vec<(f64, f64)>,
}

/// Counts the memory of what a body holds as it is read; past [`MAX_MODEL_BYTES`] the request
/// is refused (413) before more is allocated.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    bytes: usize,
}

impl Budget {
    /// Charges `n` items of type `T`.
    pub(crate) fn take<T>(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes = self
            .bytes
            .saturating_add(n.saturating_mul(std::mem::size_of::<T>().max(1)));
        if self.bytes > MAX_MODEL_BYTES {
            return Err(DecodeError::TooLarge(format!(
                "the request holds more data points, attributes, buckets and quantiles than \
                 {} MiB of memory: send it in smaller batches",
                MAX_MODEL_BYTES >> 20
            )));
        }
        Ok(())
    }
}

/// Formats a double as Go's `strconv.FormatFloat(v, 'f', -1, 64)` does (what Prometheus writes
/// for a bucket bound or a quantile): the shortest decimal that reads back, never an exponent.
pub(crate) fn format_double(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Formats a double attribute as OpenTelemetry's `AsString` does (JavaScript's style): the
/// shortest decimal, with an exponent below 1e-6 and from 1e21 on (`1e-7`, `1e+21`).
pub(crate) fn format_attribute_double(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format_double(v)
    }
}

/// Appends `s` to `out` as a JSON string.
pub(crate) fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An attribute value as a tree, for arrays and maps, which become JSON text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(String),
    Array(Vec<Value<'a>>),
    Map(Vec<(Cow<'a, str>, Value<'a>)>),
    Empty,
}

impl<'a> Value<'a> {
    /// The value as Prometheus writes it into a label.
    pub(crate) fn into_label(self) -> Cow<'a, str> {
        match self {
            Value::Str(s) => s,
            Value::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Double(d) => Cow::Owned(format_attribute_double(d)),
            Value::Bytes(b) => Cow::Owned(b),
            Value::Empty => Cow::Borrowed(""),
            v @ (Value::Array(_) | Value::Map(_)) => {
                let mut out = String::new();
                v.write_json(&mut out);
                Cow::Owned(out)
            }
        }
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Str(s) => json_string(out, s),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            // JSON has no NaN or infinities; Go's encoder fails on them, Quiver writes null.
            Value::Double(d) if !d.is_finite() => out.push_str("null"),
            Value::Double(d) => out.push_str(&format_attribute_double(*d)),
            Value::Bytes(b) => json_string(out, b),
            Value::Empty => out.push_str("null"),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                // Go's encoder writes a map's keys sorted.
                let mut sorted: Vec<&(Cow<'a, str>, Value<'a>)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(out, k);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests;
