//! Prometheus remote write 1.0: a snappy-compressed (block format) protobuf `WriteRequest`.
//!
//! The messages are declared here with `prost` derives (no build script, no `protoc`), with the
//! field numbers of `prompb/remote.proto` and `types.proto`. Fields Quiver does not store yet
//! (exemplars, native histograms, metadata) are skipped by the decoder.

use prost::Message;
use quiver_storage::labels::validate_pairs;
use quiver_storage::{Labels, Limits, SeriesId, WriteBatch};

use crate::api::ApiError;

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
        }
    }
}

/// Decompresses and decodes a remote-write body into a batch, checking every series.
/// `max_decoded` bounds the decompressed size, read from the snappy header before allocating.
pub fn decode(body: &[u8], max_decoded: usize, limits: &Limits) -> Result<WriteBatch, ApiError> {
    decode_with(body, max_decoded, limits, |_| None)
}

/// Like [`decode`], with `resolve` answering the id of a series the storage already knows
/// (from its canonical label pairs), so that known series cost no allocation. The protobuf is
/// read in place: label strings are borrowed from the decompressed body.
pub fn decode_with(
    body: &[u8],
    max_decoded: usize,
    limits: &Limits,
    resolve: impl Fn(&[(&str, &str)]) -> Option<SeriesId>,
) -> Result<WriteBatch, ApiError> {
    let len =
        snap::raw::decompress_len(body).map_err(|e| ApiError::bad_data(format!("snappy: {e}")))?;
    if len > max_decoded {
        return Err(ApiError::too_large(format!(
            "decompressed body is {len} bytes, more than the limit of {max_decoded}"
        )));
    }
    // Decompress into this thread's reused buffer: a fresh one per request costs more in the
    // allocator than the decoding itself.
    DECOMPRESSED.with_borrow_mut(|raw| {
        raw.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(body, raw)
            .map_err(|e| ApiError::bad_data(format!("snappy: {e}")))?;
        let batch = decode_protobuf(raw, limits, &resolve);
        if raw.capacity() > KEEP_BUFFER_BYTES {
            *raw = Vec::new();
        }
        batch
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
    resolve: &impl Fn(&[(&str, &str)]) -> Option<SeriesId>,
) -> Result<WriteBatch, ApiError> {
    let bad = |e: String| ApiError::bad_data(format!("protobuf: {e}"));
    let mut batch = WriteBatch::default();
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(16);
    let mut samples: Vec<(i64, f64)> = Vec::with_capacity(4);
    let mut req = Pb::new(raw);
    while let Some((field, wire)) = req.key().map_err(bad)? {
        if field != 1 || wire != LEN {
            req.skip(wire).map_err(bad)?;
            continue;
        }
        // A TimeSeries.
        let mut ts = Pb::new(req.bytes().map_err(bad)?);
        labels.clear();
        samples.clear();
        while let Some((field, wire)) = ts.key().map_err(bad)? {
            match (field, wire) {
                (1, LEN) => labels.push(read_label(ts.bytes().map_err(bad)?).map_err(bad)?),
                (2, LEN) => samples.push(read_sample(ts.bytes().map_err(bad)?).map_err(bad)?),
                _ => ts.skip(wire).map_err(bad)?,
            }
        }
        if samples.is_empty() {
            continue;
        }
        validate_pairs(&mut labels, &limits.labels).map_err(ApiError::from_storage)?;
        let idx = match resolve(&labels) {
            Some(id) => batch.push_known(id),
            None => batch.push_series(Labels::from_validated(&labels)),
        };
        for (t, v) in &samples {
            batch.push_sample(idx, *t, *v);
        }
    }
    Ok(batch)
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn read_label(buf: &[u8]) -> Result<(&str, &str), String> {
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

fn read_sample(buf: &[u8]) -> Result<(i64, f64), String> {
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

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "a label is not valid UTF-8".to_string())
}

/// A protobuf reader over a byte slice: just what `WriteRequest` needs.
struct Pb<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Pb<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Pb { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
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
    fn key(&mut self) -> Result<Option<(u32, u8)>, String> {
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

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
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

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| "length does not fit".to_string())?;
        self.take(n)
    }

    fn fixed64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
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
    fn known_series_are_resolved_from_borrowed_labels() {
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries::from_pairs(&[("job", "a"), ("__name__", "up")], &[(1, 1.0)]),
                TimeSeries::from_pairs(&[("__name__", "new")], &[(1, 1.0)]),
            ],
        };
        // The resolver sees canonical (sorted) pairs and knows only `up{job="a"}`.
        let batch = decode_with(&encode(&req), usize::MAX, &Limits::default(), |pairs| {
            (pairs == [("__name__", "up"), ("job", "a")]).then_some(SeriesId(7))
        })
        .unwrap();
        assert_eq!(batch.num_series(), 2);
        assert_eq!(batch.num_new_series(), 1);
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
                    e.message.contains("protobuf") || e.message.contains("label"),
                    "{}",
                    e.message
                );
            }
        }
    }
}
