//! Health, readiness, build info, TSDB status, self-metrics, and the admin and lifecycle
//! endpoints.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::params::Params;
use super::{ApiError, ApiResult, AppState, success};

pub async fn healthy() -> &'static str {
    "Quiver Server is Healthy.\n"
}

pub async fn ready(State(state): State<AppState>) -> Response {
    match state.db() {
        Ok(_) => (StatusCode::OK, "Quiver Server is Ready.\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(),
    }
}

pub async fn buildinfo() -> ApiResult {
    // No `features` key: Grafana takes a non-empty one to mean Mimir.
    Ok(success(
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("QUIVER_GIT_REVISION").unwrap_or("unknown"),
            "branch": "main",
            "buildUser": "quiver",
            "buildDate": "unknown",
            "goVersion": "none (Rust)",
        }),
        None,
    ))
}

pub async fn tsdb(State(state): State<AppState>, params: Params) -> ApiResult {
    let db = state.db()?;
    let limit = match params.limit()? {
        0 => 10,
        n => n,
    };
    let head = db.head_stats();
    let card = db.cardinality(limit);
    let pairs = |v: &[(String, usize)]| -> Value {
        v.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let blocks = db.block_stats();
    Ok(success(
        json!({
            "headStats": {
                "numSeries": head.num_series,
                "numLabelPairs": card.num_label_pairs,
                "chunkCount": head.num_series,
                "minTime": head.min_time.unwrap_or(0),
                "maxTime": head.max_time.unwrap_or(0),
            },
            "seriesCountByMetricName": pairs(&card.series_count_by_metric_name),
            "labelValueCountByLabelName": pairs(&card.label_value_count_by_label_name),
            "memoryInBytesByLabelName": pairs(&card.memory_in_bytes_by_label_name),
            "seriesCountByLabelValuePair": pairs(&card.series_count_by_label_value_pair),
            "blockStats": {
                "numBlocks": blocks.len(),
                "numSamples": blocks.iter().map(|b| b.num_samples).sum::<u64>(),
                "numBytes": blocks.iter().map(|b| b.samples_bytes + b.series_bytes).sum::<u64>(),
                "minTime": blocks.iter().map(|b| b.min_time).min(),
                "maxTime": blocks.iter().map(|b| b.max_time).max(),
            },
            "knownSeries": head.known_series,
            "headSamples": head.num_samples,
            "walBytes": db.wal_bytes(),
        }),
        None,
    ))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics().render(state.db().ok().map(|d| d.as_ref()));
    if let Ok(rules) = state.rules_service() {
        rules.render_metrics(&mut body);
    }
    state.remote_writer().render_metrics(&mut body);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `POST /api/v1/admin/flush`: cut the head into blocks and compact now.
pub async fn flush(State(state): State<AppState>) -> ApiResult {
    let db = state.db()?.clone();
    let report = db.maintain(true).await.map_err(ApiError::from_storage)?;
    Ok(success(
        json!({
            "blocksWritten": report.blocks_written,
            "blocksCompacted": report.blocks_compacted,
            "blocksDeleted": report.blocks_deleted,
        }),
        None,
    ))
}

/// `POST /-/quit`: shut down cleanly.
pub async fn quit(State(state): State<AppState>) -> &'static str {
    state.request_shutdown();
    "Requesting termination... Goodbye!\n"
}
