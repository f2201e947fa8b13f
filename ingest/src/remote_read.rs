//! Prometheus remote read (`prompb/remote.proto`): a snappy-compressed `ReadRequest` of queries
//! (a time range and label matchers each), answered with a `ReadResponse` of time series, one
//! result per query (`SAMPLES`), or with XOR chunks in frames (`STREAMED_XOR_CHUNKS`,
//! [`crate::xor_chunks`]), whichever the client lists first.

use prost::Message;

use crate::remote_write::{DecodeError, TimeSeries, with_decompressed};

/// The Content-Type parameter of the request and the `SAMPLES` answer.
pub const PROTO_REQUEST: &str = "prometheus.ReadRequest";

#[derive(Clone, PartialEq, Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// `ResponseType` values: `SAMPLES` (0), `STREAMED_XOR_CHUNKS` (1). Empty means samples.
    #[prost(int32, repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `ReadRequest.ResponseType.SAMPLES`.
pub const SAMPLES: i32 = 0;

#[derive(Clone, PartialEq, Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    // `hints` (4) are advice a server may ignore; Quiver does.
}

#[derive(Clone, PartialEq, Message)]
pub struct LabelMatcher {
    /// `EQ` (0), `NEQ` (1), `RE` (2), `NRE` (3).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// Most queries one request may carry (Prometheus's client sends one).
pub const MAX_QUERIES: usize = 100;

/// Decompresses and decodes a request; a body announcing more than `max_decoded` bytes is
/// refused before anything is allocated.
pub fn decode_request(body: &[u8], max_decoded: usize) -> Result<ReadRequest, DecodeError> {
    let req = with_decompressed(body, max_decoded, |raw| {
        ReadRequest::decode(raw).map_err(|e| DecodeError::BadData(format!("protobuf: {e}")))
    })?;
    if req.queries.len() > MAX_QUERIES {
        return Err(DecodeError::BadData(format!(
            "{} queries in one read request, more than {MAX_QUERIES}",
            req.queries.len()
        )));
    }
    Ok(req)
}

/// `ResponseType.STREAMED_XOR_CHUNKS`.
pub const STREAMED_XOR_CHUNKS: i32 = 1;

/// The answer's type: the first the client accepts that Quiver speaks (`SAMPLES` when it lists
/// none, as Prometheus negotiates), or `None`.
pub fn response_type(req: &ReadRequest) -> Option<i32> {
    if req.accepted_response_types.is_empty() {
        return Some(SAMPLES);
    }
    req.accepted_response_types
        .iter()
        .copied()
        .find(|t| *t == SAMPLES || *t == STREAMED_XOR_CHUNKS)
}

/// The encoded, snappy-compressed answer.
pub fn encode_response(resp: &ReadResponse) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&resp.encode_to_vec())
        .expect("snappy compresses any input")
}

/// Decodes an answer, as a client does (tests).
pub fn decode_response(body: &[u8]) -> Result<ReadResponse, DecodeError> {
    with_decompressed(body, usize::MAX, |raw| {
        ReadResponse::decode(raw).map_err(|e| DecodeError::BadData(format!("protobuf: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: &ReadRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn requests_decode_and_name_what_they_accept() {
        let req = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: 1,
                end_timestamp_ms: 2,
                matchers: vec![LabelMatcher {
                    r#type: 2,
                    name: "__name__".into(),
                    value: "up|down".into(),
                }],
            }],
            accepted_response_types: vec![],
        };
        let got = decode_request(&body(&req), 1 << 20).unwrap();
        assert_eq!(got, req);
        assert_eq!(response_type(&got), Some(SAMPLES));
        // The client's first choice that Quiver speaks.
        for (accepted, chosen) in [
            (vec![1], Some(STREAMED_XOR_CHUNKS)),
            (vec![1, 0], Some(STREAMED_XOR_CHUNKS)),
            (vec![0, 1], Some(SAMPLES)),
            (vec![7, 0], Some(SAMPLES)),
            (vec![7], None),
        ] {
            let r = ReadRequest {
                accepted_response_types: accepted,
                ..req.clone()
            };
            assert_eq!(response_type(&r), chosen);
        }
        assert!(decode_request(&body(&req), 4).is_err());
        assert!(decode_request(b"junk", 1 << 20).is_err());
        let many = ReadRequest {
            queries: vec![req.queries[0].clone(); MAX_QUERIES + 1],
            accepted_response_types: vec![],
        };
        assert!(decode_request(&body(&many), 1 << 20).is_err());
    }
}
