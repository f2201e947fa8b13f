//! Prometheus remote write 1.0: a snappy-compressed (block format) protobuf `WriteRequest`.
//!
//! The messages are declared here with `prost` derives (no build script, no `protoc`), with the
//! field numbers of `prompb/remote.proto` and `types.proto`. Fields Quiver does not store yet
//! (exemplars, native histograms, metadata) are skipped by the decoder.

use prost::Message;
use quiver_storage::{Labels, Limits, WriteBatch};

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

/// Decompresses and decodes a remote-write body into a batch, checking every series.
/// `max_decoded` bounds the decompressed size, read from the snappy header before allocating.
pub fn decode(body: &[u8], max_decoded: usize, limits: &Limits) -> Result<WriteBatch, ApiError> {
    let len =
        snap::raw::decompress_len(body).map_err(|e| ApiError::bad_data(format!("snappy: {e}")))?;
    if len > max_decoded {
        return Err(ApiError::too_large(format!(
            "decompressed body is {len} bytes, more than the limit of {max_decoded}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| ApiError::bad_data(format!("snappy: {e}")))?;
    let req = WriteRequest::decode(raw.as_slice())
        .map_err(|e| ApiError::bad_data(format!("protobuf: {e}")))?;
    let mut batch = WriteBatch::default();
    for ts in req.timeseries {
        if ts.samples.is_empty() {
            continue;
        }
        let labels = Labels::try_from_pairs(
            ts.labels.into_iter().map(|l| (l.name, l.value)),
            &limits.labels,
        )
        .map_err(ApiError::from_storage)?;
        let idx = batch.push_series(labels);
        for s in ts.samples {
            batch.push_sample(idx, s.timestamp, s.value);
        }
    }
    Ok(batch)
}

/// Encodes a request as a sender would (used by tests and benchmarks).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy can encode any input")
}
