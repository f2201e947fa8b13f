//! Ingest endpoints: remote write and text-format import. Both acknowledge only once the
//! samples are in the WAL; bad input is a 4xx (do not retry), server faults a 5xx (retry).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quiver_storage::{Labels, WriteBatch};

use super::{ApiError, AppState};
use quiver_ingest::{remote_write, remote_write2, text};

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

/// Which remote-write message a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

/// The message type, chosen by the Content-Type as the 2.0 spec says: `proto=` names it, 1.0
/// when absent (and without a Content-Type at all, as Prometheus 2 sends and takes it). Any
/// other media type or message gets 415, which tells a sender to try another.
fn remote_write_version(headers: &axum::http::HeaderMap) -> Result<Version, ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Version::V1);
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
    let mut version = Version::V1;
    for param in parts {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("proto") {
            version = match v.trim().trim_matches('"') {
                "prometheus.WriteRequest" => Version::V1,
                remote_write2::PROTO => Version::V2,
                v => {
                    return Err(unsupported(format!(
                        "remote write message {v:?} is not supported: Quiver takes prometheus.WriteRequest (1.0) and {} (2.0)",
                        remote_write2::PROTO
                    )));
                }
            };
        }
    }
    Ok(version)
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
    let version = remote_write_version(req.headers())?;
    if let Some(enc) = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        && !enc.eq_ignore_ascii_case("snappy")
    {
        return Err(unsupported(format!(
            "unsupported content encoding {enc:?}: remote write needs snappy"
        )));
    }
    if version == Version::V2 {
        // The spec has a 2.0 receiver say how much it wrote, on success and on failure.
        return Ok(match remote_write_v2(&state, db, req).await {
            Ok((samples, histograms)) => {
                written(StatusCode::NO_CONTENT.into_response(), samples, histograms)
            }
            Err(e) => written(e.into_response(), 0, 0),
        });
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
    let samples = batch.num_samples() + batch.num_histograms();
    db.append(batch).await.map_err(ApiError::from_storage)?;
    state
        .metrics()
        .remote_write_samples
        .fetch_add(samples as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Decodes and stores a 2.0 request: its samples, and its metadata for `/api/v1/metadata`.
/// Answers how many float samples and histogram samples were written.
async fn remote_write_v2(
    state: &AppState,
    db: std::sync::Arc<quiver_storage::Db>,
    req: Request,
) -> Result<(usize, usize), ApiError> {
    let flags = state.flags();
    let body = read_body(req, flags.max_request_body_bytes).await?;
    let limits = db.limits().clone();
    let max_decoded = flags.max_decoded_body_bytes;
    let decoded =
        tokio::task::spawn_blocking(move || remote_write2::decode(&body, max_decoded, &limits))
            .await
            .map_err(|e| ApiError::internal(format!("decode task failed: {e}")))??;
    let samples = decoded.batch.num_samples();
    let histograms = decoded.batch.num_histograms();
    if samples + histograms > 0 {
        db.append(decoded.batch)
            .await
            .map_err(ApiError::from_storage)?;
    }
    state.record_metadata(decoded.metadata);
    state.metrics().remote_write_samples.fetch_add(
        (samples + histograms) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok((samples, histograms))
}

/// Remote write 2.0's written-count headers (no exemplars are stored yet).
fn written(mut resp: Response, samples: usize, histograms: usize) -> Response {
    let h = resp.headers_mut();
    h.insert("X-Prometheus-Remote-Write-Samples-Written", samples.into());
    h.insert(
        "X-Prometheus-Remote-Write-Histograms-Written",
        histograms.into(),
    );
    h.insert("X-Prometheus-Remote-Write-Exemplars-Written", 0.into());
    resp
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
