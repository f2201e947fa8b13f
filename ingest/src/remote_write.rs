//! Prometheus remote write 1.0: a snappy-compressed (block format) protobuf `WriteRequest`.
//!
//! The messages are declared here with `prost` derives (no build script, no `protoc`), with the
//! field numbers of `prompb/remote.proto` and `types.proto`. Native histograms are stored
//! ([`crate::histogram`]); exemplars are refused; metadata is acknowledged without being kept.

use prost::Message;
use quiver_storage::labels::validate_pairs;

use crate::histogram::HistogramSample;
use quiver_storage::{Labels, Limits, SeriesId, WriteBatch};

/// What a request carrying exemplars gets (1.0 and 2.0): never acknowledged without being stored.
pub(crate) const EXEMPLARS_REFUSED: &str =
    "exemplars are not supported: Quiver does not store them (turn off send_exemplars)";

/// Bytes of `Histogram` messages one request may carry: 8 MiB, each message charged its length
/// plus [`HISTOGRAM_OVERHEAD`]. Every bucket, span and custom bound takes at least a byte on
/// the wire and at most sixteen while decoded (a delta, then its count), and an empty message
/// (two bytes) still decodes to a whole histogram, so this bounds a request's decoded
/// histograms near 128 MiB whatever they hold; charged before each message is decoded.
pub const MAX_HISTOGRAM_BYTES: usize = 8 << 20;

/// What a histogram costs beyond its wire bytes: its decoded struct and WAL frame.
pub const HISTOGRAM_OVERHEAD: usize = 256;

/// Charges a `Histogram` message of `len` bytes to a request's total, refusing past
/// [`MAX_HISTOGRAM_BYTES`] (413) before anything of it is decoded.
pub(crate) fn charge_histogram(total: &mut usize, len: usize) -> Result<(), DecodeError> {
    *total += len + HISTOGRAM_OVERHEAD;
    if *total > MAX_HISTOGRAM_BYTES {
        return Err(DecodeError::TooLarge(format!(
            "the request's native histograms take more than {MAX_HISTOGRAM_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Reads one `Histogram` message of a request: charged to the request's histogram bytes first
/// ([`charge_histogram`]), then decoded and checked (bad data with Prometheus's reason).
pub(crate) fn read_histogram(
    msg: &[u8],
    total: &mut usize,
) -> Result<HistogramSample, DecodeError> {
    charge_histogram(total, msg.len())?;
    crate::histogram::decode(msg)
        .map_err(|e| DecodeError::BadData(format!("native histogram: {e}")))
}

/// Pushes a decoded histogram sample (a staleness marker as a float one).
pub(crate) fn push_histogram(batch: &mut WriteBatch, idx: u32, h: HistogramSample) {
    match h {
        HistogramSample::Value(t, h) => batch.push_histogram(idx, t, h),
        HistogramSample::Stale(t) => {
            batch.push_sample(idx, t, f64::from_bits(quiver_storage::STALE_NAN_BITS))
        }
    }
}

/// Why a body was refused: bad data (400), or too large (413).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    TooLarge(String),
}

impl DecodeError {
    pub fn message(&self) -> &str {
        match self {
            DecodeError::BadData(m) | DecodeError::TooLarge(m) => m,
        }
    }

    /// A storage check's refusal: a limit exceeded is too large, anything else bad data.
    pub(crate) fn from_storage(e: quiver_storage::Error) -> Self {
        let message = quiver_storage::error::chain(&e);
        match e.kind() {
            quiver_storage::ErrorKind::LimitExceeded => DecodeError::TooLarge(message),
            _ => DecodeError::BadData(message),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<crate::histogram::proto::Histogram>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    /// A series from label pairs and (timestamp ms, value) samples, as a sender builds it.
    pub fn from_pairs(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|(t, v)| Sample {
                    timestamp: *t,
                    value: *v,
                })
                .collect(),
            histograms: Vec::new(),
        }
    }
}

/// Decompresses and decodes a remote-write body into a batch, checking every series.
/// `max_decoded` bounds the decompressed size, read from the snappy header before allocating.
pub fn decode(body: &[u8], max_decoded: usize, limits: &Limits) -> Result<WriteBatch, DecodeError> {
    decode_with(body, max_decoded, limits, &Known::none())
}

/// What the storage already knows, for the decoder: series resolved from their canonical label
/// pairs (`lookup`, from the registry), and the [`SeriesCache`] of encoded label bytes that
/// resolved before. `removals` is the registry's removal count read before any lookup: the
/// batch carries it (see [`WriteBatch::ids_valid_at`]) and the cache keeps only what is valid
/// at it.
pub struct Known<'a> {
    pub removals: u64,
    pub cache: Option<&'a SeriesCache>,
    pub lookup: &'a Lookup<'a>,
}

/// Resolves canonical label pairs to the id of a registered series.
pub type Lookup<'a> = dyn Fn(&[(&str, &str)]) -> Option<SeriesId> + 'a;

impl Known<'_> {
    /// Knows nothing: every series is decoded and checked as new.
    pub fn none() -> Known<'static> {
        Known {
            removals: 0,
            cache: None,
            lookup: &|_| None,
        }
    }
}

/// Series ids by the exact bytes of a `TimeSeries`'s `Label` fields as the sender encoded them.
///
/// A sender encodes the same series the same way every time (Prometheus sends about 400 bytes
/// of labels with every sample), so a series seen before is found by one hash and one compare of
/// those bytes: no UTF-8 check, no sorting, no label comparison (VictoriaMetrics and Mimir cache
/// the same way). The bytes determine the label set, so an entry is as valid as the series it
/// names; all entries are dropped when the registry removes a series (retention), and when the
/// cache would pass its memory bound ([`SeriesCache::MAX_BYTES`] by default; entries are then
/// learned again from the registry).
pub struct SeriesCache {
    inner: parking_lot::RwLock<CacheInner>,
    max_bytes: usize,
}

struct CacheInner {
    /// The registry's removal count every entry is valid at.
    valid_at: u64,
    /// Memory held, as counted by [`SeriesCache::entry_cost`].
    bytes: usize,
    ids: std::collections::HashMap<Box<[u8]>, SeriesId, foldhash::fast::RandomState>,
}

impl Default for SeriesCache {
    fn default() -> Self {
        SeriesCache::with_max_bytes(Self::MAX_BYTES)
    }
}

impl SeriesCache {
    /// Memory kept at most, keys and entries (about 460 bytes a series for Prometheus's
    /// senders: ~580,000 series); past it the cache starts again.
    pub const MAX_BYTES: usize = 256 << 20;

    /// What an entry costs besides its key: the boxed key's pointer and length, the id, the
    /// table's control byte and spare capacity, and allocator rounding. Counted so that many
    /// short keys (a sender may encode one series many ways) cannot pass the bound.
    const ENTRY_OVERHEAD: usize = 64;

    fn entry_cost(key_len: usize) -> usize {
        key_len + Self::ENTRY_OVERHEAD
    }

    /// A cache that holds at most `max_bytes` (keys and entries).
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        SeriesCache {
            inner: parking_lot::RwLock::new(CacheInner {
                valid_at: 0,
                bytes: 0,
                ids: Default::default(),
            }),
            max_bytes,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.read().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds what a decode learned, if the cache is not newer than the decode's removal count.
    fn learn(&self, removals: u64, raw: &[u8], learned: &[(std::ops::Range<usize>, SeriesId)]) {
        let mut inner = self.inner.write();
        if inner.valid_at != removals {
            if inner.valid_at > removals {
                // A series was removed after this decode read the count: its ids may be stale.
                return;
            }
            inner.empty();
            inner.valid_at = removals;
        }
        for (range, id) in learned {
            let key = &raw[range.clone()];
            // Already known (the same bytes name the same series while `valid_at` holds).
            if inner.ids.contains_key(key) {
                continue;
            }
            let cost = Self::entry_cost(key.len());
            if inner.bytes + cost > self.max_bytes {
                inner.empty();
            }
            inner.ids.insert(key.into(), *id);
            inner.bytes += cost;
        }
    }
}

impl CacheInner {
    /// Drops every entry and the table's memory with them (`clear` would keep the table).
    fn empty(&mut self) {
        self.ids = Default::default();
        self.bytes = 0;
    }
}

/// Like [`decode`], resolving the series the storage already knows (see [`Known`]), so that
/// known series cost no allocation. The protobuf is read in place: label strings are borrowed
/// from the decompressed body.
pub fn decode_with(
    body: &[u8],
    max_decoded: usize,
    limits: &Limits,
    known: &Known<'_>,
) -> Result<WriteBatch, DecodeError> {
    with_decompressed(body, max_decoded, |raw| decode_protobuf(raw, limits, known))
}

/// Runs `f` on the snappy-decompressed `body`, refusing a body announcing more than
/// `max_decoded` bytes before allocating anything.
pub(crate) fn with_decompressed<T>(
    body: &[u8],
    max_decoded: usize,
    f: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| DecodeError::BadData(format!("snappy: {e}")))?;
    if len > max_decoded {
        return Err(DecodeError::TooLarge(format!(
            "decompressed body is {len} bytes, more than the limit of {max_decoded}"
        )));
    }
    // Decompress into this thread's reused buffer: a fresh one per request costs more in the
    // allocator than the decoding itself.
    DECOMPRESSED.with_borrow_mut(|raw| {
        raw.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(body, raw)
            .map_err(|e| DecodeError::BadData(format!("snappy: {e}")))?;
        let out = f(raw);
        if raw.capacity() > KEEP_BUFFER_BYTES {
            *raw = Vec::new();
        }
        out
    })
}

/// Buffers larger than this are not kept between requests.
const KEEP_BUFFER_BYTES: usize = 16 << 20;

thread_local! {
    static DECOMPRESSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn decode_protobuf(
    raw: &[u8],
    limits: &Limits,
    known: &Known<'_>,
) -> Result<WriteBatch, DecodeError> {
    let bad = |e: String| DecodeError::BadData(format!("protobuf: {e}"));
    let mut batch = WriteBatch::default();
    batch.ids_valid_at(known.removals);
    let mut label_fields: Vec<&[u8]> = Vec::with_capacity(16);
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(16);
    let mut samples: Vec<(i64, f64)> = Vec::with_capacity(4);
    let mut histograms: Vec<HistogramSample> = Vec::new();
    let mut buckets = 0usize;
    // Series resolved from the registry, to be cached by their label bytes' place in `raw`.
    let mut learned: Vec<(std::ops::Range<usize>, SeriesId)> = Vec::new();
    // Read for the whole body: one lock a request, not one a series.
    let guard = known.cache.map(|c| c.inner.read());
    let cached = guard.as_ref().filter(|c| c.valid_at == known.removals);
    // Fields of a WriteRequest that are not time series: metadata (3) is acknowledged without
    // being kept (Prometheus sends it every minute by default); anything else means the body
    // is not remote write 1.0.
    let mut foreign_fields = 0usize;
    let mut req = Pb::new(raw);
    while let Some((field, wire)) = req.key().map_err(bad)? {
        if field != 1 || wire != LEN {
            if field != 3 {
                foreign_fields += 1;
            }
            req.skip(wire).map_err(bad)?;
            continue;
        }
        // A TimeSeries: its label fields and samples first, then the series they name.
        let ts_bytes = req.bytes().map_err(bad)?;
        let ts_offset = req.pos - ts_bytes.len();
        let mut ts = Pb::new(ts_bytes);
        label_fields.clear();
        samples.clear();
        histograms.clear();
        // Where the label fields lie in `ts_bytes`, and whether nothing else lies between them.
        let (mut labels_at, mut contiguous, mut field_start) = (0..0, true, 0);
        while let Some((field, wire)) = ts.key().map_err(bad)? {
            match (field, wire) {
                (1, LEN) => {
                    if label_fields.is_empty() {
                        labels_at.start = field_start;
                    } else {
                        contiguous &= labels_at.end == field_start;
                    }
                    label_fields.push(ts.bytes().map_err(bad)?);
                    labels_at.end = ts.pos;
                }
                (2, LEN) => samples.push(read_sample(ts.bytes().map_err(bad)?).map_err(bad)?),
                // Never acknowledged without being stored: the sender learns it is refused.
                (3, LEN) => return Err(DecodeError::BadData(EXEMPLARS_REFUSED.into())),
                (4, LEN) => {
                    histograms.push(read_histogram(ts.bytes().map_err(bad)?, &mut buckets)?)
                }
                _ => ts.skip(wire).map_err(bad)?,
            }
            field_start = ts.pos;
        }
        if samples.is_empty() && histograms.is_empty() {
            continue;
        }
        // The cache key: the label fields' bytes, when they are one run.
        let span = (contiguous && !label_fields.is_empty())
            .then(|| ts_offset + labels_at.start..ts_offset + labels_at.end);
        let hit = match (&span, cached) {
            (Some(s), Some(c)) => c.ids.get(&raw[s.clone()]).copied(),
            _ => None,
        };
        let idx = match hit {
            Some(id) => batch.push_known(id),
            None => {
                labels.clear();
                for f in &label_fields {
                    labels.push(read_label(f).map_err(bad)?);
                }
                validate_pairs(&mut labels, &limits.labels).map_err(DecodeError::from_storage)?;
                match (known.lookup)(&labels) {
                    Some(id) => {
                        if let Some(s) = span {
                            learned.push((s, id));
                        }
                        batch.push_known(id)
                    }
                    None => batch.push_series(Labels::from_validated(&labels)),
                }
            }
        };
        for (t, v) in &samples {
            batch.push_sample(idx, *t, *v);
        }
        for h in histograms.drain(..) {
            push_histogram(&mut batch, idx, h);
        }
    }
    if batch.num_samples() + batch.num_histograms() == 0 && foreign_fields > 0 {
        return Err(DecodeError::BadData(
            "the body holds no remote write 1.0 time series (a remote write 2.0 request needs \
             Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request, which \
             Quiver answers with 415)"
                .into(),
        ));
    }
    let stale = guard.is_some() && cached.is_none();
    drop(guard);
    if let Some(cache) = known.cache
        && (stale || !learned.is_empty())
    {
        cache.learn(known.removals, raw, &learned);
    }
    Ok(batch)
}

pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

/// A `Label` message (1.0's, and the exposition format's `LabelPair`): name 1, value 2.
pub(crate) fn read_label(buf: &[u8]) -> Result<(&str, &str), String> {
    let (mut name, mut value) = ("", "");
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, LEN) => name = utf8(pb.bytes()?)?,
            (2, LEN) => value = utf8(pb.bytes()?)?,
            _ => pb.skip(wire)?,
        }
    }
    Ok((name, value))
}

pub(crate) fn read_sample(buf: &[u8]) -> Result<(i64, f64), String> {
    let (mut t, mut v) = (0i64, 0f64);
    let mut pb = Pb::new(buf);
    while let Some((field, wire)) = pb.key()? {
        match (field, wire) {
            (1, FIXED64) => v = f64::from_bits(pb.fixed64()?),
            (2, VARINT) => t = pb.varint()? as i64,
            _ => pb.skip(wire)?,
        }
    }
    Ok((t, v))
}

pub(crate) fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "a label is not valid UTF-8".to_string())
}

/// A protobuf reader over a byte slice: just what the remote-write messages need.
pub(crate) struct Pb<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Pb<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Pb { buf, pos: 0 }
    }

    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("unexpected EOF in a varint")?;
            self.pos += 1;
            out |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// The next field number and wire type, or `None` at the end.
    pub(crate) fn key(&mut self) -> Result<Option<(u32, u8)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        let field = (k >> 3) as u32;
        if field == 0 {
            return Err("field number 0".into());
        }
        Ok(Some((field, (k & 7) as u8)))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "unexpected EOF: {n} bytes announced, {} left",
                self.buf.len() - self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| "length does not fit".to_string())?;
        self.take(n)
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.take(8).map(|_| ()),
            LEN => self.bytes().map(|_| ()),
            FIXED32 => self.take(4).map(|_| ()),
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

/// Encodes a request as a sender would (used by tests and benchmarks).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy can encode any input")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_prost_encodes_skipping_unknown_fields() {
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries::from_pairs(
                    &[("job", "a"), ("__name__", "up")],
                    &[(-5, 1.5), (10, f64::NAN)],
                ),
                TimeSeries::from_pairs(&[("__name__", "empty")], &[]),
            ],
        };
        let mut raw = req.encode_to_vec();
        // An unknown field (metadata = 3) at the end is skipped.
        raw.extend_from_slice(&[0x1a, 0x02, 0x08, 0x01]);
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let batch = decode(&body, usize::MAX, &Limits::default()).unwrap();
        assert_eq!(batch.num_series(), 1, "a series without samples is skipped");
        assert_eq!(batch.num_samples(), 2);
    }

    #[test]
    fn a_request_of_too_many_histogram_bytes_is_refused_before_decoding_them() {
        use crate::histogram::proto::{BucketSpan, Count, Histogram};
        // Empty spans cost two bytes on the wire each: 5 Mi of them in two histograms.
        let h = Histogram {
            count: Some(Count::CountInt(0)),
            positive_spans: vec![BucketSpan::default(); 5 << 20],
            ..Default::default()
        };
        let mut ts = TimeSeries::from_pairs(&[("__name__", "h")], &[]);
        ts.histograms = vec![h.clone(), h];
        let body = encode(&WriteRequest {
            timeseries: vec![ts],
        });
        let e = decode(&body, usize::MAX, &Limits::default()).unwrap_err();
        assert!(
            matches!(&e, DecodeError::TooLarge(m) if m.contains("native histograms")),
            "{e}"
        );
        // Empty messages (two bytes each, a whole histogram decoded) are charged their
        // overhead: 100,000 of them take 200 KB on the wire and are refused.
        let mut ts = TimeSeries::from_pairs(&[("__name__", "h")], &[]);
        ts.histograms = vec![Histogram::default(); 100_000];
        let body = encode(&WriteRequest {
            timeseries: vec![ts],
        });
        let e = decode(&body, usize::MAX, &Limits::default()).unwrap_err();
        assert!(matches!(&e, DecodeError::TooLarge(_)), "{e}");
    }

    #[test]
    fn known_series_are_resolved_from_borrowed_labels() {
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries::from_pairs(&[("job", "a"), ("__name__", "up")], &[(1, 1.0)]),
                TimeSeries::from_pairs(&[("__name__", "new")], &[(1, 1.0)]),
            ],
        };
        // The resolver sees canonical (sorted) pairs and knows only `up{job="a"}`.
        let lookup = |pairs: &[(&str, &str)]| {
            (pairs == [("__name__", "up"), ("job", "a")]).then_some(SeriesId(7))
        };
        let known = Known {
            removals: 0,
            cache: None,
            lookup: &lookup,
        };
        let batch = decode_with(&encode(&req), usize::MAX, &Limits::default(), &known).unwrap();
        assert_eq!(batch.num_series(), 2);
        assert_eq!(batch.num_new_series(), 1);
    }

    /// A lookup that knows `up{job="a"}` as id 7 and counts its calls.
    fn counting_lookup(
        calls: &std::cell::Cell<usize>,
    ) -> impl Fn(&[(&str, &str)]) -> Option<SeriesId> + '_ {
        move |pairs| {
            calls.set(calls.get() + 1);
            (pairs == [("__name__", "up"), ("job", "a")]).then_some(SeriesId(7))
        }
    }

    fn ids(batch: WriteBatch) -> Vec<Option<SeriesId>> {
        batch.known_ids().collect()
    }

    #[test]
    fn seen_label_bytes_resolve_from_the_cache_without_a_lookup() {
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries::from_pairs(&[("job", "a"), ("__name__", "up")], &[(1, 1.0)]),
                TimeSeries::from_pairs(&[("__name__", "up"), ("job", "a")], &[(1, 1.0)]),
                TimeSeries::from_pairs(&[("__name__", "new")], &[(1, 1.0)]),
            ],
        };
        let body = encode(&req);
        let (cache, calls) = (SeriesCache::default(), std::cell::Cell::new(0));
        let lookup = counting_lookup(&calls);
        let known = Known {
            removals: 3,
            cache: Some(&cache),
            lookup: &lookup,
        };
        let first = decode_with(&body, usize::MAX, &Limits::default(), &known).unwrap();
        assert_eq!(calls.get(), 3, "a cold cache looks every series up");
        // Two encodings of one series are two keys; the unknown series is not cached.
        assert_eq!(cache.len(), 2);
        let second = decode_with(&body, usize::MAX, &Limits::default(), &known).unwrap();
        assert_eq!(
            calls.get(),
            4,
            "only the series the registry did not know is looked up again"
        );
        assert_eq!(second.num_new_series(), 1);
        assert_eq!(ids(first), ids(second));

        // A series removed since (the removal count moved): the cache starts again.
        let known = Known {
            removals: 4,
            ..known
        };
        decode_with(&body, usize::MAX, &Limits::default(), &known).unwrap();
        assert_eq!(
            calls.get(),
            7,
            "after a removal every series is looked up again"
        );
        assert_eq!(cache.len(), 2);
        // A decode that read the removal count before that removal teaches the cache nothing.
        let known = Known {
            removals: 3,
            ..known
        };
        cache.learn(3, &body, &[(0..1, SeriesId(9))]);
        assert_eq!(cache.len(), 2);
        decode_with(&body, usize::MAX, &Limits::default(), &known).unwrap();
        assert_eq!(
            calls.get(),
            10,
            "a cache newer than the decode's count is not used"
        );
    }

    #[test]
    fn the_cache_starts_again_past_its_memory_bound_counting_entries_not_just_keys() {
        // Room for two 10-byte keys with their entries, not three.
        let cache = SeriesCache::with_max_bytes(2 * SeriesCache::entry_cost(10) + 5);
        let raw: Vec<u8> = (0..30).collect();
        cache.learn(0, &raw, &[(0..10, SeriesId(1)), (10..20, SeriesId(2))]);
        assert_eq!(cache.len(), 2);
        // The same key again costs nothing more.
        cache.learn(0, &raw, &[(0..10, SeriesId(1))]);
        assert_eq!(cache.len(), 2);
        cache.learn(0, &raw, &[(20..30, SeriesId(3))]);
        assert_eq!(
            cache.len(),
            1,
            "a third entry passes the bound: the cache starts again"
        );
        assert_eq!(cache.inner.read().ids.get(&raw[20..30]), Some(&SeriesId(3)));
    }

    #[test]
    fn labels_split_by_a_sample_are_decoded_but_not_cached() {
        // TimeSeries { label __name__="up", sample, label job="a" }: valid protobuf, unusual.
        let label = |n: &str, v: &str| Label {
            name: n.into(),
            value: v.into(),
        };
        let mut ts = Vec::new();
        prost::encoding::message::encode(1, &label("__name__", "up"), &mut ts);
        prost::encoding::message::encode(
            2,
            &Sample {
                value: 1.0,
                timestamp: 1,
            },
            &mut ts,
        );
        prost::encoding::message::encode(1, &label("job", "a"), &mut ts);
        let mut raw = Vec::new();
        prost::encoding::bytes::encode(1, &ts, &mut raw);
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let (cache, calls) = (SeriesCache::default(), std::cell::Cell::new(0));
        let lookup = counting_lookup(&calls);
        let known = Known {
            removals: 0,
            cache: Some(&cache),
            lookup: &lookup,
        };
        for _ in 0..2 {
            let batch = decode_with(&body, usize::MAX, &Limits::default(), &known).unwrap();
            assert_eq!(ids(batch), vec![Some(SeriesId(7))]);
        }
        assert_eq!(calls.get(), 2);
        assert!(cache.is_empty());
    }

    proptest::proptest! {
        /// Whatever prost encodes (any label sets, timestamps and values, NaN included), the
        /// decoder reads back: every series with samples, its labels sorted, its samples in order.
        #[test]
        fn the_decoder_reads_back_what_prost_encodes(
            series in proptest::collection::vec(
                (
                    "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
                    proptest::collection::btree_map("[a-z][a-z0-9_]{0,8}", "\\PC{1,12}", 0..4),
                    proptest::collection::vec((proptest::num::i64::ANY, proptest::num::f64::ANY), 0..5),
                ),
                0..6,
            )
        ) {
            let req = WriteRequest {
                timeseries: series
                    .iter()
                    .map(|(name, labels, samples)| {
                        // Labels in reverse order: the decoder sorts them.
                        let mut pairs: Vec<(&str, &str)> =
                            labels.iter().rev().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                        pairs.push(("__name__", name));
                        TimeSeries::from_pairs(&pairs, samples)
                    })
                    .collect(),
            };
            let body = snap::raw::Encoder::new().compress_vec(&encode_raw(&req)).unwrap();
            let batch = decode(&body, usize::MAX, &Limits::default()).unwrap();
            let mut got: Vec<DecodedSeries> = batch
                .new_labels()
                .map(|l| {
                    let l = l.expect("a new series");
                    (l.iter().map(|x| (x.name.to_string(), x.value.to_string())).collect(), Vec::new())
                })
                .collect();
            for (i, t, v) in batch.samples() {
                got[i as usize].1.push((t, v.to_bits()));
            }
            let want: Vec<DecodedSeries> = series
                .iter()
                .filter(|(_, _, samples)| !samples.is_empty())
                .map(|(name, labels, samples)| {
                    let mut l: Vec<(String, String)> = labels.clone().into_iter().collect();
                    l.push(("__name__".to_string(), name.clone()));
                    l.sort();
                    // proto3 leaves a zero value out, and -0.0 == 0.0: on the wire (from any
                    // sender) -0.0 arrives as 0.0.
                    let bits = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
                    (l, samples.iter().map(|(t, v)| (*t, bits(*v))).collect())
                })
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// A series as the property test compares it: sorted labels, (timestamp, value bits).
    type DecodedSeries = (Vec<(String, String)>, Vec<(i64, u64)>);

    /// The request as prost encodes it.
    fn encode_raw(req: &WriteRequest) -> Vec<u8> {
        req.encode_to_vec()
    }

    #[test]
    fn truncated_protobuf_is_an_error() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries::from_pairs(&[("__name__", "up")], &[(1, 1.0)])],
        };
        let raw = req.encode_to_vec();
        for cut in 1..raw.len() {
            let body = snap::raw::Encoder::new().compress_vec(&raw[..cut]).unwrap();
            if let Err(e) = decode(&body, usize::MAX, &Limits::default()) {
                assert!(
                    e.message().contains("protobuf") || e.message().contains("label"),
                    "{}",
                    e.message()
                );
            }
        }
    }
}
