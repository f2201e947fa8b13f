//! The protobuf exposition format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`): length-delimited
//! `MetricFamily` messages, turned into the series and samples Prometheus 3's protobuf parser
//! gives (`model/textparse/protobufparse.go`):
//!
//! - counters, gauges and untyped metrics: one series each;
//! - summaries: `_count`, `_sum`, then a `quantile` series per quantile;
//! - histograms with native parts (spans, a zero threshold or a zero count), when native
//!   histograms are scraped: one native histogram series, and its classic series too with
//!   `always_scrape_classic_histograms` if it has classic buckets;
//! - other histograms: `_count`, `_sum`, then a `_bucket` series per bucket (a `+Inf` one from
//!   the count if none is exposed), or with `convert_classic_histograms_to_nhcb` a native
//!   histogram with custom buckets (plus the classic series with
//!   `always_scrape_classic_histograms`).
//!
//! `le` and `quantile` values are written as OpenMetrics floats (`1.0`), as Prometheus 3 does.
//! A timestamp of 0 means none (proto3 cannot tell them apart; Prometheus reads it so too).
//!
//! ```text
//! MetricFamily: name 1, help 2, type 3, metric 4 (repeated), unit 5
//! Metric: label 1 (LabelPair: name 1, value 2), gauge 2, counter 3, summary 4, untyped 5,
//!         timestamp_ms 6, histogram 7          Gauge / Counter / Untyped: value 1
//! Summary: sample_count 1, sample_sum 2, quantile 3 (Quantile: quantile 1, value 2)
//! Histogram: sample_count 1, sample_sum 2, bucket 3 (Bucket: cumulative_count 1,
//!            upper_bound 2, cumulative_count_float 4), sample_count_float 4, schema 5,
//!            zero_threshold 6, zero_count 7, zero_count_float 8, negative_span 9,
//!            negative_delta 10, negative_count 11, positive_span 12, positive_delta 13,
//!            positive_count 14
//! ```

use quiver_storage::histogram::format_openmetrics_float;
use quiver_storage::histogram::nhcb::TempHistogram;
use quiver_storage::{CounterResetHint, FloatHistogram};

use crate::exposition::MetricType;
use crate::histogram::{RawHistogram, doubles, sint64s, span, zigzag};
use crate::remote_write::{FIXED64, LEN, Pb, VARINT, read_label, utf8};

/// The media type of the format, as a scrape's `Accept` header asks for it.
pub const MEDIA_TYPE: &str =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/// Whether a response's `Content-Type` is this format.
pub fn is_content_type(ct: &str) -> bool {
    let ct = ct.to_ascii_lowercase();
    let mut parts = ct.split(';').map(str::trim);
    parts.next() == Some("application/vnd.google.protobuf")
        && parts
            .clone()
            .any(|p| p == "proto=io.prometheus.client.metricfamily")
        && parts.any(|p| p == "encoding=delimited")
}

/// What a scrape config asks of histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramOptions {
    /// `scrape_native_histograms`.
    pub native: bool,
    /// `always_scrape_classic_histograms`.
    pub always_classic: bool,
    /// `convert_classic_histograms_to_nhcb`.
    pub convert_to_nhcb: bool,
}

/// One thing the exposition says, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtoEntry {
    Help(String, String),
    Type(String, MetricType),
    Unit(String, String),
    /// A float sample: the series in the text format's quoted syntax (`{"name","l"="v"}`),
    /// its timestamp if it has one, its value.
    Float(String, Option<i64>, f64),
    /// A native histogram sample.
    Histogram(String, Option<i64>, FloatHistogram),
}

/// How many bytes of series text one exposition may expand into, per byte of body (a classic
/// histogram repeats its labels for every bucket): past this the scrape fails rather than
/// allocating without bound.
const MAX_EXPANSION: usize = 64;

/// Decodes a whole exposition. Any malformed message fails it (nothing of it is kept), as a
/// malformed text exposition does.
pub fn parse(body: &[u8], opts: HistogramOptions) -> Result<Vec<ProtoEntry>, String> {
    let mut out = Vec::new();
    let mut budget = body.len().saturating_mul(MAX_EXPANSION).max(1 << 20);
    let mut pb = Pb::new(body);
    while pb.pos < body.len() {
        let family = pb.bytes()?;
        decode_family(family, opts, &mut out, &mut budget)?;
    }
    Ok(out)
}

#[derive(Default)]
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    unit: &'a str,
    kind: u64,
    metrics: Vec<&'a [u8]>,
}

fn decode_family(
    buf: &[u8],
    opts: HistogramOptions,
    out: &mut Vec<ProtoEntry>,
    budget: &mut usize,
) -> Result<(), String> {
    let mut f = Family::default();
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, LEN) => f.name = utf8(pb.bytes()?)?,
            (2, LEN) => f.help = utf8(pb.bytes()?)?,
            (3, VARINT) => f.kind = pb.varint()?,
            (4, LEN) => f.metrics.push(pb.bytes()?),
            (5, LEN) => f.unit = utf8(pb.bytes()?)?,
            _ => pb.skip(wire)?,
        }
    }
    // Prometheus skips a family without metrics before looking at it.
    if f.metrics.is_empty() {
        return Ok(());
    }
    if f.name.is_empty() {
        return Err("invalid metric name: \"\"".into());
    }
    let kind = match f.kind {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Summary,
        3 => MetricType::Unknown,
        4 => MetricType::Histogram,
        5 => MetricType::GaugeHistogram,
        k => return Err(format!("unknown metric type for metric {:?}: {k}", f.name)),
    };
    out.push(ProtoEntry::Help(f.name.into(), f.help.into()));
    if !f.unit.is_empty() {
        out.push(ProtoEntry::Unit(f.name.into(), f.unit.into()));
    }
    out.push(ProtoEntry::Type(f.name.into(), kind));
    for m in f.metrics {
        decode_metric(m, f.name, kind, opts, out, budget)?;
    }
    Ok(())
}

/// The parts of a `Metric` message.
#[derive(Default)]
struct Metric<'a> {
    labels: Vec<(&'a str, &'a str)>,
    /// Gauge, counter or untyped value.
    value: f64,
    timestamp: Option<i64>,
    summary: Option<&'a [u8]>,
    histogram: Option<&'a [u8]>,
}

fn decode_metric(
    buf: &[u8],
    name: &str,
    kind: MetricType,
    opts: HistogramOptions,
    out: &mut Vec<ProtoEntry>,
    budget: &mut usize,
) -> Result<(), String> {
    let mut m = Metric::default();
    let mut pb = Pb::new(buf);
    let value_of = |b: &[u8]| -> Result<f64, String> {
        let mut v = 0.0;
        let mut p = Pb::new(b);
        while let Some((field, wire)) = p.key()? {
            match (field, wire) {
                (1, FIXED64) => v = f64::from_bits(p.fixed64()?),
                _ => p.skip(wire)?,
            }
        }
        Ok(v)
    };
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, LEN) => m.labels.push(read_label(pb.bytes()?)?),
            (2, LEN) if kind == MetricType::Gauge => m.value = value_of(pb.bytes()?)?,
            (3, LEN) if kind == MetricType::Counter => m.value = value_of(pb.bytes()?)?,
            (5, LEN) if kind == MetricType::Unknown => m.value = value_of(pb.bytes()?)?,
            (4, LEN) => m.summary = Some(pb.bytes()?),
            (7, LEN) => m.histogram = Some(pb.bytes()?),
            (6, VARINT) => {
                let t = pb.varint()? as i64;
                m.timestamp = (t != 0).then_some(t);
            }
            _ => pb.skip(wire)?,
        }
    }
    let mut series = |suffix: &str, extra: Option<(&str, String)>| -> Result<String, String> {
        let s = series_text(name, suffix, &m.labels, extra);
        *budget = budget.checked_sub(s.len()).ok_or(
            "the exposition expands into too many series bytes (a histogram or summary with \
             very many buckets and labels)",
        )?;
        Ok(s)
    };
    let t = m.timestamp;
    match kind {
        MetricType::Counter | MetricType::Gauge | MetricType::Unknown => {
            out.push(ProtoEntry::Float(series("", None)?, t, m.value));
        }
        MetricType::Summary => {
            let s = Summary::decode(m.summary.unwrap_or_default())?;
            out.push(ProtoEntry::Float(series("_count", None)?, t, s.count));
            out.push(ProtoEntry::Float(series("_sum", None)?, t, s.sum));
            for (q, v) in s.quantiles {
                let label = Some(("quantile", format_openmetrics_float(q)));
                out.push(ProtoEntry::Float(series("", label)?, t, v));
            }
        }
        _ => {
            let h = Histogram::decode(m.histogram.unwrap_or_default())?;
            let gauge = kind == MetricType::GaugeHistogram;
            let mut classic = true;
            if opts.native && h.is_native() {
                let mut nh = h.native()?;
                if gauge {
                    nh.hint = CounterResetHint::Gauge;
                }
                nh.compact(0);
                out.push(ProtoEntry::Histogram(series("", None)?, t, nh));
                classic = opts.always_classic && !h.buckets.is_empty();
            } else if opts.convert_to_nhcb {
                let mut nh = h.nhcb()?;
                if gauge {
                    nh.hint = CounterResetHint::Gauge;
                }
                out.push(ProtoEntry::Histogram(series("", None)?, t, nh));
                classic = opts.always_classic;
            }
            if classic {
                out.push(ProtoEntry::Float(series("_count", None)?, t, h.count()));
                out.push(ProtoEntry::Float(series("_sum", None)?, t, h.sum));
                let mut inf = false;
                for b in &h.buckets {
                    let label = Some(("le", format_openmetrics_float(b.upper)));
                    out.push(ProtoEntry::Float(series("_bucket", label)?, t, b.count()));
                    if b.upper == f64::INFINITY {
                        inf = true;
                        break;
                    }
                }
                if !inf {
                    let label = Some(("le", "+Inf".to_string()));
                    out.push(ProtoEntry::Float(series("_bucket", label)?, t, h.count()));
                }
            }
        }
    }
    Ok(())
}

/// A series in the text format's quoted syntax: `{"name_suffix","l"="v",…}` (any UTF-8 name
/// survives it; the scraper reads it back with the text format's series parser).
pub fn series_text(
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, String)>,
) -> String {
    fn quoted(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let mut out = String::with_capacity(name.len() + suffix.len() + 16 * (labels.len() + 1));
    out.push('{');
    quoted(&mut out, &format!("{name}{suffix}"));
    let extra = extra.as_ref().map(|(n, v)| (*n, v.as_str()));
    for (n, v) in labels.iter().copied().chain(extra) {
        out.push(',');
        quoted(&mut out, n);
        out.push('=');
        quoted(&mut out, v);
    }
    out.push('}');
    out
}

#[derive(Default)]
struct Summary {
    count: f64,
    sum: f64,
    quantiles: Vec<(f64, f64)>,
}

impl Summary {
    fn decode(buf: &[u8]) -> Result<Summary, String> {
        let mut s = Summary::default();
        let mut pb = Pb::new(buf);
        while let Some((field, wire)) = pb.key()? {
            match (field, wire) {
                (1, VARINT) => s.count = pb.varint()? as f64,
                (2, FIXED64) => s.sum = f64::from_bits(pb.fixed64()?),
                (3, LEN) => {
                    let (mut q, mut v) = (0.0, 0.0);
                    let mut p = Pb::new(pb.bytes()?);
                    while let Some((field, wire)) = p.key()? {
                        match (field, wire) {
                            (1, FIXED64) => q = f64::from_bits(p.fixed64()?),
                            (2, FIXED64) => v = f64::from_bits(p.fixed64()?),
                            _ => p.skip(wire)?,
                        }
                    }
                    s.quantiles.push((q, v));
                }
                _ => pb.skip(wire)?,
            }
        }
        Ok(s)
    }
}

/// A classic bucket: its upper bound and cumulative count (integer or float).
struct Bucket {
    upper: f64,
    count_int: u64,
    count_float: f64,
}

impl Bucket {
    /// As Prometheus reads it: the float count unless it is 0.
    fn count(&self) -> f64 {
        if self.count_float != 0.0 {
            self.count_float
        } else {
            self.count_int as f64
        }
    }
}

/// The parts of a `Histogram` message: classic buckets and the native fields.
#[derive(Default)]
struct Histogram {
    count_int: u64,
    count_float: f64,
    sum: f64,
    buckets: Vec<Bucket>,
    raw: RawHistogram,
    zero_count_int: u64,
    zero_count_float: f64,
}

impl Histogram {
    fn decode(buf: &[u8]) -> Result<Histogram, String> {
        let mut h = Histogram::default();
        let r = &mut h.raw;
        let mut pb = Pb::new(buf);
        while let Some((field, wire)) = pb.key()? {
            match (field, wire) {
                (1, VARINT) => h.count_int = pb.varint()?,
                (2, FIXED64) => h.sum = f64::from_bits(pb.fixed64()?),
                (3, LEN) => h.buckets.push(bucket(pb.bytes()?)?),
                (4, FIXED64) => h.count_float = f64::from_bits(pb.fixed64()?),
                (5, VARINT) => {
                    r.schema =
                        i32::try_from(zigzag(pb.varint()?)).map_err(|_| "schema out of range")?
                }
                (6, FIXED64) => r.zero_threshold = f64::from_bits(pb.fixed64()?),
                (7, VARINT) => h.zero_count_int = pb.varint()?,
                (8, FIXED64) => h.zero_count_float = f64::from_bits(pb.fixed64()?),
                (9, LEN) => r.negative_spans.push(span(pb.bytes()?)?),
                (10, _) => sint64s(&mut pb, wire, &mut r.negative_deltas)?,
                (11, _) => doubles(&mut pb, wire, &mut r.negative_counts)?,
                (12, LEN) => r.positive_spans.push(span(pb.bytes()?)?),
                (13, _) => sint64s(&mut pb, wire, &mut r.positive_deltas)?,
                (14, _) => doubles(&mut pb, wire, &mut r.positive_counts)?,
                _ => pb.skip(wire)?,
            }
        }
        Ok(h)
    }

    /// Prometheus's `isNativeHistogram`: spans, a zero threshold or a zero count (a client
    /// marks an empty native histogram with a no-op span).
    fn is_native(&self) -> bool {
        !self.raw.positive_spans.is_empty()
            || !self.raw.negative_spans.is_empty()
            || self.raw.zero_threshold > 0.0
            || self.zero_count_int > 0
    }

    fn count(&self) -> f64 {
        if self.count_float != 0.0 {
            self.count_float
        } else {
            self.count_int as f64
        }
    }

    /// The native parts as a histogram: a float histogram when its count or zero count is a
    /// float (then the float bucket counts), else an integer one (the deltas).
    fn native(&self) -> Result<FloatHistogram, String> {
        let r = &self.raw;
        let float = self.count_float > 0.0 || self.zero_count_float > 0.0;
        let mut raw = RawHistogram {
            sum: self.sum,
            schema: r.schema,
            zero_threshold: r.zero_threshold,
            negative_spans: r.negative_spans.clone(),
            positive_spans: r.positive_spans.clone(),
            ..Default::default()
        };
        if float {
            raw.count_float = Some(self.count_float);
            raw.zero_float = Some(self.zero_count_float);
            raw.negative_counts = r.negative_counts.clone();
            raw.positive_counts = r.positive_counts.clone();
        } else {
            raw.count_int = Some(self.count_int);
            raw.zero_int = Some(self.zero_count_int);
            raw.negative_deltas = r.negative_deltas.clone();
            raw.positive_deltas = r.positive_deltas.clone();
        }
        raw.finish()
    }

    /// The classic buckets as a native histogram with custom buckets (`convertnhcb`).
    fn nhcb(&self) -> Result<FloatHistogram, String> {
        let mut temp = TempHistogram::default();
        temp.set_count(self.count());
        temp.set_sum(self.sum);
        for b in &self.buckets {
            temp.set_bucket_count(b.upper, b.count());
        }
        let h = temp.convert()?;
        h.validate().map_err(|e| e.0)?;
        Ok(h)
    }
}

fn bucket(buf: &[u8]) -> Result<Bucket, String> {
    let mut b = Bucket {
        upper: 0.0,
        count_int: 0,
        count_float: 0.0,
    };
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, VARINT) => b.count_int = pb.varint()?,
            (2, FIXED64) => b.upper = f64::from_bits(pb.fixed64()?),
            (4, FIXED64) => b.count_float = f64::from_bits(pb.fixed64()?),
            _ => pb.skip(wire)?,
        }
    }
    Ok(b)
}

/// The message types a target builds (prost), for tests and fuzz seeds: what client libraries
/// send.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricFamily {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub help: String,
        #[prost(int32, tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "2")]
        pub gauge: Option<Value>,
        #[prost(message, optional, tag = "3")]
        pub counter: Option<Value>,
        #[prost(message, optional, tag = "4")]
        pub summary: Option<Summary>,
        #[prost(message, optional, tag = "5")]
        pub untyped: Option<Value>,
        #[prost(int64, tag = "6")]
        pub timestamp_ms: i64,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `Gauge`, `Counter` and `Untyped` (the value is field 1 in each).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(double, tag = "1")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub quantile: Vec<Quantile>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Quantile {
        #[prost(double, tag = "1")]
        pub quantile: f64,
        #[prost(double, tag = "2")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub bucket: Vec<Bucket>,
        #[prost(double, tag = "4")]
        pub sample_count_float: f64,
        #[prost(sint32, tag = "5")]
        pub schema: i32,
        #[prost(double, tag = "6")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "7")]
        pub zero_count: u64,
        #[prost(double, tag = "8")]
        pub zero_count_float: f64,
        #[prost(message, repeated, tag = "9")]
        pub negative_span: Vec<crate::histogram::proto::BucketSpan>,
        #[prost(sint64, repeated, tag = "10")]
        pub negative_delta: Vec<i64>,
        #[prost(double, repeated, tag = "11")]
        pub negative_count: Vec<f64>,
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<crate::histogram::proto::BucketSpan>,
        #[prost(sint64, repeated, tag = "13")]
        pub positive_delta: Vec<i64>,
        #[prost(double, repeated, tag = "14")]
        pub positive_count: Vec<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bucket {
        #[prost(uint64, tag = "1")]
        pub cumulative_count: u64,
        #[prost(double, tag = "2")]
        pub upper_bound: f64,
        #[prost(double, tag = "4")]
        pub cumulative_count_float: f64,
    }

    /// Families as a delimited body.
    pub fn encode(families: &[MetricFamily]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in families {
            prost::Message::encode_length_delimited(f, &mut out).expect("a Vec grows");
        }
        out
    }
}

#[cfg(test)]
mod tests;
