//! Prometheus remote write 2.0 (`io.prometheus.write.v2.Request`): a snappy-compressed protobuf
//! whose strings live once in a symbols table and are referenced by index from each series'
//! labels and metadata.
//!
//! Read in place like 1.0 (the symbols are slices of the decompressed body). What is stored:
//! float samples, and each series' metadata (type, help, unit), which the server keeps for
//! `/api/v1/metadata`. What is refused with the whole request (never acknowledged without
//! being stored): native histograms, until Quiver stores them, and exemplars. Created
//! timestamps are read and not used, as Prometheus does by default.
//!
//! The message types below (`prost` derives, the field numbers of
//! `prompb/io/prometheus/write/v2/types.proto`) are what tests and senders encode with; the
//! decoder is tested against them.

use std::collections::HashMap;
use std::sync::Arc;

use quiver_storage::labels::{Label, validate_pairs};
use quiver_storage::{Labels, Limits, METRIC_NAME, WriteBatch};

use crate::exposition::MetricType;
use crate::remote_write::{
    DecodeError, EXEMPLARS_REFUSED, LEN, Pb, VARINT, push_histogram, read_histogram, read_sample,
    utf8, with_decompressed,
};

/// The Content-Type parameter that names this message: `proto=io.prometheus.write.v2.Request`.
pub const PROTO: &str = "io.prometheus.write.v2.Request";

/// A decoded request: the samples to append, and the metadata the series carried.
#[derive(Debug, Default)]
pub struct Decoded {
    pub batch: WriteBatch,
    /// Each metric family's metadata (the last a series of the request gave it), in the order
    /// families first appeared.
    pub metadata: Vec<(String, Metadata)>,
}

/// A metric family's metadata as a series carried it. The strings are shared: every series
/// that refers to one symbol holds the same copy, so a request cannot multiply a long help
/// text by its number of series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub kind: MetricType,
    pub help: Arc<str>,
    pub unit: Arc<str>,
}

/// Decompresses and decodes a 2.0 body, checking every series against `limits`.
pub fn decode(body: &[u8], max_decoded: usize, limits: &Limits) -> Result<Decoded, DecodeError> {
    with_decompressed(body, max_decoded, |raw| decode_protobuf(raw, limits))
}

/// Decodes an uncompressed `Request`.
pub fn decode_protobuf(raw: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    let bad = |e: String| DecodeError::BadData(format!("protobuf: {e}"));
    // The symbols and the series may come in any order on the wire: collect both first.
    let mut symbols: Vec<&str> = Vec::new();
    let mut series: Vec<&[u8]> = Vec::new();
    let mut v1_fields = 0usize;
    let mut req = Pb::new(raw);
    while let Some((field, wire)) = req.key().map_err(bad)? {
        match (field, wire) {
            (4, LEN) => symbols.push(
                utf8(req.bytes().map_err(bad)?)
                    .map_err(|_| bad("a symbol is not valid UTF-8".into()))?,
            ),
            (5, LEN) => series.push(req.bytes().map_err(bad)?),
            (1..=3, _) => {
                v1_fields += 1;
                req.skip(wire).map_err(bad)?;
            }
            _ => req.skip(wire).map_err(bad)?,
        }
    }
    if v1_fields > 0 && series.is_empty() {
        return Err(DecodeError::BadData(
            "the body is a remote write 1.0 WriteRequest, sent as 2.0 \
             (Content-Type proto=io.prometheus.write.v2.Request)"
                .into(),
        ));
    }
    let symbol = |r: u64| -> Result<&str, DecodeError> {
        usize::try_from(r)
            .ok()
            .and_then(|i| symbols.get(i).copied())
            .ok_or_else(|| {
                DecodeError::BadData(format!(
                    "symbol reference {r} is outside the symbols table ({} symbols)",
                    symbols.len()
                ))
            })
    };

    // One shared copy of each symbol a label or metadata uses.
    let mut interned: Vec<Option<Arc<str>>> = vec![None; symbols.len()];
    let mut out = Decoded::default();
    // Family → index in `out.metadata`.
    let mut families: HashMap<&str, usize> = HashMap::new();
    let mut refs: Vec<u64> = Vec::with_capacity(16);
    let mut labels: Vec<(Sym<'_>, Sym<'_>)> = Vec::with_capacity(16);
    let mut shared: Vec<Label> = Vec::with_capacity(16);
    let mut samples: Vec<(i64, f64)> = Vec::with_capacity(4);
    let mut histograms: Vec<crate::histogram::HistogramSample> = Vec::new();
    let mut buckets = 0usize;
    let mut total_samples = 0usize;
    for ts in series {
        refs.clear();
        samples.clear();
        histograms.clear();
        let mut metadata: Option<(u64, u64, u64)> = None;
        let mut ts = Pb::new(ts);
        while let Some((field, wire)) = ts.key().map_err(bad)? {
            match (field, wire) {
                // labels_refs: packed, or (as proto3 parsers must also accept) one by one.
                (1, LEN) => {
                    let buf = ts.bytes().map_err(bad)?;
                    let mut packed = Pb::new(buf);
                    while packed.pos < buf.len() {
                        refs.push(packed.varint().map_err(bad)?);
                    }
                }
                (1, VARINT) => refs.push(ts.varint().map_err(bad)?),
                (2, LEN) => samples.push(read_sample(ts.bytes().map_err(bad)?).map_err(bad)?),
                (3, LEN) => {
                    histograms.push(read_histogram(ts.bytes().map_err(bad)?, &mut buckets)?)
                }
                (4, LEN) => return Err(DecodeError::BadData(EXEMPLARS_REFUSED.into())),
                (5, LEN) => metadata = Some(read_metadata(ts.bytes().map_err(bad)?).map_err(bad)?),
                // created_timestamp (6) and anything newer.
                _ => ts.skip(wire).map_err(bad)?,
            }
        }
        if !refs.len().is_multiple_of(2) {
            return Err(DecodeError::BadData(format!(
                "a series has an odd number of label references ({})",
                refs.len()
            )));
        }
        if samples.is_empty() && histograms.is_empty() && metadata.is_none() {
            continue;
        }
        labels.clear();
        for pair in refs.chunks_exact(2) {
            let sym = |r: u64| symbol(r).map(|s| Sym { s, r });
            labels.push((sym(pair[0])?, sym(pair[1])?));
        }
        validate_pairs(&mut labels, &limits.labels).map_err(DecodeError::from_storage)?;
        if let Some((kind, help_ref, unit_ref)) = metadata {
            let name = labels
                .iter()
                .find(|(n, _)| n.s == METRIC_NAME)
                .map(|(_, v)| v.s)
                .unwrap_or_default();
            let kind = metric_type(kind);
            let (help, unit) = (symbol(help_ref)?, symbol(unit_ref)?);
            if !name.is_empty()
                && (kind != MetricType::Unknown || !help.is_empty() || !unit.is_empty())
            {
                let m = Metadata {
                    kind,
                    help: intern(&mut interned, &symbols, help_ref),
                    unit: intern(&mut interned, &symbols, unit_ref),
                };
                // The last a request gives a family wins; one entry per family.
                let family = family_name(name, kind);
                match families.get(family) {
                    Some(&i) => out.metadata[i].1 = m,
                    None => {
                        families.insert(family, out.metadata.len());
                        out.metadata.push((family.to_string(), m));
                    }
                }
            }
        }
        if samples.is_empty() && histograms.is_empty() {
            continue;
        }
        // Checked as the series come, so a request over the limits is refused before it is
        // built (`Db::append` checks the same limits again).
        total_samples += samples.len() + histograms.len();
        if out.batch.num_series() >= limits.max_series_per_write
            || total_samples > limits.max_samples_per_write
        {
            return Err(DecodeError::TooLarge(format!(
                "more than {} series or {} samples in one write",
                limits.max_series_per_write, limits.max_samples_per_write
            )));
        }
        // The labels share the request's copies of their symbols: a long value referenced by
        // many series is held once.
        shared.clear();
        for (name, value) in &labels {
            shared.push(Label {
                name: intern(&mut interned, &symbols, name.r),
                value: intern(&mut interned, &symbols, value.r),
            });
        }
        let idx = out.batch.push_series(Labels::from_trusted(shared.clone()));
        for (t, v) in &samples {
            out.batch.push_sample(idx, *t, *v);
        }
        for h in histograms.drain(..) {
            push_histogram(&mut out.batch, idx, h);
        }
    }
    Ok(out)
}

/// The shared copy of symbol `r` (a valid reference).
fn intern(interned: &mut [Option<Arc<str>>], symbols: &[&str], r: u64) -> Arc<str> {
    let i = r as usize;
    interned[i]
        .get_or_insert_with(|| Arc::from(symbols[i]))
        .clone()
}

/// A symbol and its reference, so label pairs keep their references through validation
/// (which drops and sorts pairs).
#[derive(Clone, Copy)]
struct Sym<'a> {
    s: &'a str,
    r: u64,
}

impl AsRef<str> for Sym<'_> {
    fn as_ref(&self) -> &str {
        self.s
    }
}

/// `Metadata`: the type, and the symbol references of help and unit.
fn read_metadata(buf: &[u8]) -> Result<(u64, u64, u64), String> {
    let (mut kind, mut help, mut unit) = (0, 0, 0);
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, VARINT) => kind = pb.varint()?,
            (3, VARINT) => help = pb.varint()?,
            (4, VARINT) => unit = pb.varint()?,
            _ => pb.skip(wire)?,
        }
    }
    Ok((kind, help, unit))
}

/// `Metadata.MetricType`'s numbers.
fn metric_type(n: u64) -> MetricType {
    match n {
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => MetricType::Unknown,
    }
}

/// The family a series' metadata describes, as `/api/v1/metadata` names families: a classic
/// histogram's or summary's series (`_bucket`, `_sum`, `_count`) belong to the name without
/// the suffix.
fn family_name(name: &str, kind: MetricType) -> &str {
    if matches!(
        kind,
        MetricType::Histogram | MetricType::GaugeHistogram | MetricType::Summary
    ) {
        for suffix in ["_bucket", "_sum", "_count", "_gcount", "_gsum"] {
            if let Some(family) = name.strip_suffix(suffix)
                && !family.is_empty()
            {
                return family;
            }
        }
    }
    name
}

/// The messages as `prost` derives them, for senders and tests.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<Histogram>,
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }

    /// Only what a test needs to send one (Quiver refuses them for now).
    pub use crate::histogram::proto::Histogram;

    /// A series to send: labels, samples, and optional metadata as (type number, help, unit).
    pub type SeriesSpec<'a> = (
        Vec<(&'a str, &'a str)>,
        Vec<(i64, f64)>,
        Option<(i32, &'a str, &'a str)>,
    );

    /// A request with a symbols table built from `series` (labels, samples, optional metadata
    /// as (type number, help, unit)), as a sender builds one.
    pub fn request(series: &[SeriesSpec<'_>]) -> Request {
        let mut symbols: Vec<String> = vec![String::new()];
        let mut index = std::collections::HashMap::<String, u32>::new();
        index.insert(String::new(), 0);
        let mut sym = |s: &str| -> u32 {
            if let Some(i) = index.get(s) {
                return *i;
            }
            let i = symbols.len() as u32;
            symbols.push(s.to_string());
            index.insert(s.to_string(), i);
            i
        };
        let timeseries = series
            .iter()
            .map(|(labels, samples, meta)| TimeSeries {
                labels_refs: labels.iter().flat_map(|(n, v)| [sym(n), sym(v)]).collect(),
                samples: samples
                    .iter()
                    .map(|(t, v)| Sample {
                        value: *v,
                        timestamp: *t,
                    })
                    .collect(),
                metadata: meta.map(|(t, h, u)| Metadata {
                    r#type: t,
                    help_ref: sym(h),
                    unit_ref: sym(u),
                }),
                ..Default::default()
            })
            .collect();
        Request {
            symbols,
            timeseries,
        }
    }

    /// Snappy-compresses an encoded message, as a sender does.
    pub fn compress(msg: &impl prost::Message) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&msg.encode_to_vec())
            .expect("snappy compresses any input")
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use prost::Message;

    fn decode_msg(msg: &Request) -> Result<Decoded, DecodeError> {
        decode(&compress(msg), 1 << 20, &Limits::default())
    }

    /// The decoded batch as (sorted labels, samples) per series.
    /// A series as the tests compare it: sorted labels and samples.
    type Series = (Vec<(String, String)>, Vec<(i64, f64)>);
    /// The same with values as bits (NaN compares equal to itself).
    type Bits = (Vec<(String, String)>, Vec<(i64, u64)>);
    /// A [`SeriesSpec`] that owns its strings.
    type OwnedSpec = (
        Vec<(String, String)>,
        Vec<(i64, f64)>,
        Option<(i32, String, String)>,
    );

    fn series_of(d: &Decoded) -> Vec<Series> {
        let mut out: Vec<Series> = d
            .batch
            .new_labels()
            .map(|labels| {
                let labels = labels.expect("a new series");
                let mut l: Vec<(String, String)> = labels
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect();
                l.sort();
                (l, Vec::new())
            })
            .collect();
        for (i, t, v) in d.batch.samples() {
            out[i as usize].1.push((t, v));
        }
        out
    }

    #[test]
    fn samples_and_metadata_come_through_the_symbols_table() {
        let req = request(&[
            (
                vec![("__name__", "http_requests_total"), ("job", "api")],
                vec![(1000, 1.0), (2000, 3.5)],
                Some((1, "Requests served.", "")),
            ),
            (
                vec![("__name__", "latency_seconds_bucket"), ("le", "0.5")],
                vec![(1000, 7.0)],
                Some((3, "Latency.", "seconds")),
            ),
            // Metadata alone: kept, no samples.
            (
                vec![("__name__", "temperature_celsius")],
                vec![],
                Some((2, "", "celsius")),
            ),
        ]);
        let d = decode_msg(&req).unwrap();
        assert_eq!(d.batch.num_samples(), 3);
        assert_eq!(
            series_of(&d),
            vec![
                (
                    vec![
                        ("__name__".into(), "http_requests_total".into()),
                        ("job".into(), "api".into())
                    ],
                    vec![(1000, 1.0), (2000, 3.5)]
                ),
                (
                    vec![
                        ("__name__".into(), "latency_seconds_bucket".into()),
                        ("le".into(), "0.5".into())
                    ],
                    vec![(1000, 7.0)]
                ),
            ]
        );
        let meta: Vec<(&str, &str, &str, &str)> = d
            .metadata
            .iter()
            .map(|(n, m)| (n.as_str(), m.kind.as_str(), &*m.help, &*m.unit))
            .collect();
        assert_eq!(
            meta,
            vec![
                ("http_requests_total", "counter", "Requests served.", ""),
                ("latency_seconds", "histogram", "Latency.", "seconds"),
                ("temperature_celsius", "gauge", "", "celsius"),
            ]
        );
    }

    #[test]
    fn symbols_are_shared_not_copied_per_series() {
        // A long help text and a long label value, referred to by many series: held once.
        let help = "h".repeat(100_000);
        let value = "v".repeat(10_000);
        let specs: Vec<SeriesSpec<'_>> = (0..200)
            .map(|i| {
                (
                    vec![("__name__", "m"), ("big", value.as_str())],
                    vec![(i, 1.0)],
                    Some((2, help.as_str(), "")),
                )
            })
            .collect();
        let d = decode_msg(&request(&specs)).unwrap();
        assert_eq!(d.metadata.len(), 1, "one entry per family");
        let values: Vec<std::sync::Arc<str>> = d
            .batch
            .new_labels()
            .map(|l| {
                let l = l.unwrap();
                l.iter().find(|x| &*x.name == "big").unwrap().value.clone()
            })
            .collect();
        assert_eq!(values.len(), 200);
        assert!(values.iter().all(|v| std::sync::Arc::ptr_eq(v, &values[0])));
    }

    #[test]
    fn the_write_limits_are_checked_while_decoding() {
        let specs: Vec<SeriesSpec<'_>> = (0..3)
            .map(|i| (vec![("__name__", "m")], vec![(i, 1.0), (i + 10, 2.0)], None))
            .collect();
        let req = request(&specs);
        let limits = |series, samples| Limits {
            max_series_per_write: series,
            max_samples_per_write: samples,
            ..Limits::default()
        };
        let body = compress(&req);
        assert!(matches!(
            decode(&body, 1 << 20, &limits(2, 100)),
            Err(DecodeError::TooLarge(_))
        ));
        assert!(matches!(
            decode(&body, 1 << 20, &limits(10, 5)),
            Err(DecodeError::TooLarge(_))
        ));
        assert_eq!(
            decode(&body, 1 << 20, &limits(3, 6))
                .unwrap()
                .batch
                .num_samples(),
            6
        );
    }

    #[test]
    fn what_quiver_cannot_store_refuses_the_request() {
        let mut req = request(&[(vec![("__name__", "c")], vec![(1, 1.0)], None)]);
        req.timeseries[0].exemplars.push(Exemplar::default());
        let e = decode_msg(&req).unwrap_err();
        assert!(e.message().contains("exemplars"), "{e}");
    }

    #[test]
    fn bad_references_and_label_sets_are_bad_data() {
        let mut req = request(&[(vec![("__name__", "up")], vec![(1, 1.0)], None)]);
        req.timeseries[0].labels_refs.push(99);
        req.timeseries[0].labels_refs.push(0);
        assert!(
            matches!(decode_msg(&req), Err(DecodeError::BadData(m)) if m.contains("symbol reference 99"))
        );
        let mut req = request(&[(vec![("__name__", "up")], vec![(1, 1.0)], None)]);
        req.timeseries[0].labels_refs.pop();
        assert!(
            matches!(decode_msg(&req), Err(DecodeError::BadData(m)) if m.contains("odd number"))
        );
        // An empty label name (symbol 0 is the empty string).
        let mut req = request(&[(vec![("__name__", "up")], vec![(1, 1.0)], None)]);
        req.timeseries[0].labels_refs.extend([0, 1]);
        assert!(decode_msg(&req).is_err());
        // Not snappy, not protobuf.
        assert!(decode(b"\xff\xff\xff", 1 << 20, &Limits::default()).is_err());
        let junk = snap::raw::Encoder::new()
            .compress_vec(&[0x2a, 0xff])
            .unwrap();
        assert!(decode(&junk, 1 << 20, &Limits::default()).is_err());
    }

    #[test]
    fn a_1_0_body_sent_as_2_0_is_named() {
        let v1 = crate::remote_write::WriteRequest {
            timeseries: vec![crate::remote_write::TimeSeries::from_pairs(
                &[("__name__", "up")],
                &[(1, 1.0)],
            )],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&v1.encode_to_vec())
            .unwrap();
        let e = decode(&body, 1 << 20, &Limits::default()).unwrap_err();
        assert!(e.message().contains("1.0"), "{e}");
    }

    #[test]
    fn a_body_announcing_more_than_the_limit_is_too_large() {
        let req = request(&[(vec![("__name__", "up")], vec![(1, 1.0)], None)]);
        let body = compress(&req);
        assert!(matches!(
            decode(&body, 4, &Limits::default()),
            Err(DecodeError::TooLarge(_))
        ));
    }

    proptest::proptest! {
        /// Whatever prost encodes, the decoder reads back: series, samples and metadata.
        #[test]
        fn the_decoder_reads_what_prost_encodes(
            series in proptest::collection::vec(
                (
                    proptest::collection::btree_map("[a-z][a-z0-9_]{0,8}", "\\PC{1,12}", 0..4),
                    "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
                    proptest::collection::vec((-1_000_000_000i64..1_000_000_000, proptest::num::f64::ANY), 0..5),
                    proptest::option::of((0i32..8, "[a-zA-Z .]{0,12}", "[a-z]{0,6}")),
                ),
                0..8,
            )
        ) {
            let owned: Vec<OwnedSpec> = series
                .iter()
                .map(|(labels, name, samples, meta)| {
                    let mut l: Vec<(String, String)> = labels
                        .iter()
                        .filter(|(k, _)| k.as_str() != "__name__")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    l.push(("__name__".into(), name.clone()));
                    l.sort();
                    (l, samples.clone(), meta.clone())
                })
                .collect();
            let borrowed: Vec<SeriesSpec<'_>> = owned
                .iter()
                .map(|(l, s, m)| (
                    l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect(),
                    s.clone(),
                    m.as_ref().map(|(t, h, u)| (*t, h.as_str(), u.as_str())),
                ))
                .collect();
            let req = request(&borrowed);
            let d = decode_msg(&req).unwrap();
            let bits = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
            let want: Vec<Bits> = owned
                .iter()
                .filter(|(_, s, _)| !s.is_empty())
                .map(|(l, s, _)| (l.clone(), s.iter().map(|(t, v)| (*t, bits(*v))).collect()))
                .collect();
            let got: Vec<Bits> = series_of(&d)
                .into_iter()
                .map(|(l, s)| (l, s.into_iter().map(|(t, v)| (t, bits(v))).collect()))
                .collect();
            proptest::prop_assert_eq!(got, want);
            // One entry per family, the last a series gave it.
            let mut want_meta = std::collections::BTreeMap::new();
            for (l, _, m) in &owned {
                let Some((t, h, u)) = m else { continue };
                let kind = metric_type(*t as u64);
                if kind == MetricType::Unknown && h.is_empty() && u.is_empty() {
                    continue;
                }
                let name = &l.iter().find(|(n, _)| n == "__name__").unwrap().1;
                want_meta.insert(family_name(name, kind).to_string(), (kind, h.clone(), u.clone()));
            }
            let got_meta: std::collections::BTreeMap<String, (MetricType, String, String)> = d
                .metadata
                .iter()
                .map(|(f, m)| (f.clone(), (m.kind, m.help.to_string(), m.unit.to_string())))
                .collect();
            proptest::prop_assert_eq!(d.metadata.len(), got_meta.len());
            proptest::prop_assert_eq!(got_meta, want_meta);
        }
    }
}
