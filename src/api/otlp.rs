//! `POST /api/v1/otlp/v1/metrics`: OpenTelemetry metrics over OTLP/HTTP, as Prometheus 3
//! receives them (always on here; `--web.enable-otlp-receiver` is accepted for compatibility).
//!
//! Protobuf or JSON bodies, gzip or not. The answer is OTLP's `ExportMetricsServiceResponse`
//! in the request's encoding: empty when everything was stored, with `partial_success` when
//! some points were refused (delta temporality, exponential histograms, names or labels that
//! do not translate) or exemplars dropped. Nothing is acknowledged that was not stored: the
//! stored part is in the WAL before the answer.

use std::io::Read;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use quiver_ingest::otlp::{self, proto};
use quiver_ingest::remote_write::DecodeError;

use super::write::read_body;
use super::{ApiError, AppState};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// Most OTLP requests decoded and converted at once; the others wait their turn.
static CONVERSIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn unsupported(message: String) -> ApiError {
    ApiError {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ..ApiError::bad_data(message)
    }
}

fn encoding(headers: &axum::http::HeaderMap) -> Result<Encoding, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(PROTOBUF) {
        Ok(Encoding::Protobuf)
    } else if media.eq_ignore_ascii_case(JSON) {
        Ok(Encoding::Json)
    } else {
        Err(unsupported(format!(
            "unsupported content type: {ct:?}, supported: [{JSON}, {PROTOBUF}]"
        )))
    }
}

pub async fn metrics(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let db = state.db()?.clone();
    let enc = encoding(req.headers())?;
    let gzip = match req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" => true,
        Some(e) => {
            return Err(unsupported(format!(
                "unsupported compression: {e:?}. Only \"gzip\" or no compression supported"
            )));
        }
    };
    let flags = state.flags();
    // Read per request, so a reload applies to the next one.
    let opts = state.otlp_options().map_err(ApiError::internal)?;
    let body = read_body(req, flags.max_request_body_bytes).await?;
    let max_decoded = flags.max_decoded_body_bytes;
    let limits = db.limits().clone();
    let delta = state.otlp_delta();
    // A few conversions at a time: each may hold a large model while it runs.
    let _turn = CONVERSIONS
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    let converted = tokio::task::spawn_blocking(move || -> Result<otlp::Converted, DecodeError> {
        let raw = if gzip {
            std::borrow::Cow::Owned(gunzip(&body, max_decoded)?)
        } else {
            std::borrow::Cow::Borrowed(&body[..])
        };
        let request = match enc {
            Encoding::Protobuf => otlp::protobuf::decode(&raw)?,
            Encoding::Json => otlp::json::decode(&raw)?,
        };
        match &delta {
            Some(d) => otlp::convert_with(&request, &opts, &limits, Some(&mut d.lock())),
            None => otlp::convert(&request, &opts, &limits),
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("decode task failed: {e}")))??;
    let samples = converted.batch.num_samples() + converted.batch.num_histograms();
    let message = converted.error_message();
    let rejected = converted.rejected_points;
    if !converted.batch.is_empty() {
        db.append(converted.batch)
            .await
            .map_err(ApiError::from_storage)?;
    }
    let metrics = state.metrics();
    metrics
        .otlp_samples
        .fetch_add(samples as u64, std::sync::atomic::Ordering::Relaxed);
    metrics
        .otlp_rejected_points
        .fetch_add(rejected, std::sync::atomic::Ordering::Relaxed);
    state.record_metadata(converted.metadata);
    if !message.is_empty() {
        tracing::debug!(rejected = rejected, "OTLP: {message}");
    }
    let partial =
        (rejected > 0 || !message.is_empty()).then_some(proto::ExportMetricsPartialSuccess {
            rejected_data_points: rejected as i64,
            error_message: message,
        });
    Ok(answer(enc, partial))
}

/// `ExportMetricsServiceResponse` in the request's encoding.
fn answer(enc: Encoding, partial: Option<proto::ExportMetricsPartialSuccess>) -> Response {
    match enc {
        Encoding::Protobuf => {
            let body = proto::ExportMetricsServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec();
            ([(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
        Encoding::Json => {
            let body = match partial {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({"partialSuccess": {
                    // int64 is a string in OTLP/JSON.
                    "rejectedDataPoints": p.rejected_data_points.to_string(),
                    "errorMessage": p.error_message,
                }}),
            };
            ([(header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
        }
    }
}

/// Decompresses a gzip body, refusing one that inflates past `max` bytes.
fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::BadData(format!("gzip: {e}")))?;
    if out.len() > max {
        return Err(DecodeError::TooLarge(format!(
            "the decompressed body is larger than the limit of {max} bytes"
        )));
    }
    Ok(out)
}
