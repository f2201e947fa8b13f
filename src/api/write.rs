//! Ingest endpoints: remote write and text-format import. Both acknowledge only once the
//! samples are in the WAL; bad input is a 4xx (do not retry), server faults a 5xx (retry).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quiver_storage::{Labels, WriteBatch};

use super::{ApiError, AppState};
use quiver_ingest::{remote_write, text};

/// Reads a body up to the configured limit; over it is a 413.
pub(super) async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
    Bytes::from_request(req, &()).await.map_err(|e| {
        if crate::error::error_chain(&e).contains("length limit exceeded") {
            ApiError::too_large(format!(
                "request body is larger than the limit of {limit} bytes"
            ))
        } else {
            ApiError::bad_data(format!("cannot read the request body: {e}"))
        }
    })
}

/// Remote write 1.0 only, until 2.0 is implemented: the spec has a receiver answer 415 to a
/// message type it does not take, which tells a Prometheus 3 sender to fall back to 1.0. A
/// request without a Content-Type is taken as 1.0, as Prometheus 2 takes it.
fn check_remote_write_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct
        .to_str()
        .map_err(|_| unsupported("the Content-Type header is not text".into()))?;
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(unsupported(format!(
            "unsupported Content-Type {ct:?}: remote write needs application/x-protobuf"
        )));
    }
    for param in parts {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("proto") {
            let v = v.trim().trim_matches('"');
            if v != "prometheus.WriteRequest" {
                return Err(unsupported(format!(
                    "remote write message {v:?} is not supported: Quiver takes remote write 1.0 (proto=prometheus.WriteRequest)"
                )));
            }
        }
    }
    Ok(())
}

fn unsupported(message: String) -> ApiError {
    ApiError {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ..ApiError::bad_data(message)
    }
}

pub async fn remote_write(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let db = state.db()?.clone();
    check_remote_write_type(req.headers())?;
    if let Some(enc) = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        && !enc.eq_ignore_ascii_case("snappy")
    {
        return Err(unsupported(format!(
            "unsupported content encoding {enc:?}: remote write 1.0 needs snappy"
        )));
    }
    let flags = state.flags();
    let body = read_body(req, flags.max_request_body_bytes).await?;
    let limits = db.limits().clone();
    let max_decoded = flags.max_decoded_body_bytes;
    let resolver = db.clone();
    let cache_owner = state.clone();
    let batch = tokio::task::spawn_blocking(move || {
        // Known series resolve to their ids here, so they cost no label set: by their encoded
        // bytes when seen before, else by their label pairs in the registry.
        let lookup = |pairs: &[(&str, &str)]| resolver.registry().get_pairs(pairs);
        let known = remote_write::Known {
            removals: resolver.series_removals(),
            cache: Some(cache_owner.series_cache()),
            lookup: &lookup,
        };
        remote_write::decode_with(&body, max_decoded, &limits, &known)
    })
    .await
    .map_err(|e| ApiError::internal(format!("decode task failed: {e}")))??;
    let samples = batch.num_samples();
    db.append(batch).await.map_err(ApiError::from_storage)?;
    state
        .metrics()
        .remote_write_samples
        .fetch_add(samples as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn import_text(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let db = state.db()?.clone();
    let body = read_body(req, state.flags().max_decoded_body_bytes).await?;
    let body =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_data("the body is not UTF-8"))?;
    let samples = text::parse(body).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let now = quiver_storage::maintenance::now_ms();
    let limits = db.limits();
    let mut batch = WriteBatch::default();
    let mut index: std::collections::HashMap<Labels, u32> = std::collections::HashMap::new();
    for (i, s) in samples.into_iter().enumerate() {
        let labels = Labels::try_from_pairs(s.labels, &limits.labels)
            .map_err(ApiError::from_storage)
            .map_err(|e| ApiError {
                message: format!("sample {}: {}", i + 1, e.message),
                ..e
            })?;
        let idx = match index.get(&labels) {
            Some(idx) => *idx,
            None => {
                let idx = batch.push_series(labels.clone());
                index.insert(labels, idx);
                idx
            }
        };
        batch.push_sample(idx, s.timestamp_ms.unwrap_or(now), s.value);
    }
    db.append(batch).await.map_err(ApiError::from_storage)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
