//! Experiment ingest: `POST /api/v1/experiments/<experiment>/runs/<run>/metrics` (JSON lines)
//! and `…/params` (a JSON object). Both are all or nothing and acknowledge once the samples are
//! in the WAL; see `crate::ingest::experiments` for the formats.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use bytes::Bytes;
use quiver_sql::experiments::{EXPERIMENT, PARAM, PARAM_METRIC, PARAM_TYPE, PARAM_VALUE, RUN_ID};
use quiver_storage::{Db, METRIC_NAME, Matcher, Matchers, STALE_NAN_BITS, Timestamp, WriteBatch};
use serde_json::json;

use super::write::read_body;
use super::{ApiError, ApiResult, AppState, success};
use crate::ingest::experiments;

/// Checks the names in the URL, then reads the body: the storage and the bytes.
async fn run_request(
    state: &AppState,
    experiment: &str,
    run: &str,
    req: Request,
) -> Result<(Arc<Db>, Bytes), ApiError> {
    let db = state.db()?.clone();
    let limits = &db.limits().labels;
    experiments::check_name("experiment", experiment, limits).map_err(ApiError::bad_data)?;
    experiments::check_name("run", run, limits).map_err(ApiError::bad_data)?;
    let body = read_body(req, state.flags().max_decoded_body_bytes).await?;
    Ok((db, body))
}

pub async fn metrics(
    State(state): State<AppState>,
    Path((experiment, run)): Path<(String, String)>,
    req: Request,
) -> ApiResult {
    let (db, body) = run_request(&state, &experiment, &run, req).await?;
    let base = state.reserve_arrival_times(&experiment, &run, experiments::count_lines(&body));
    let limits = db.limits().labels.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let mut body = body.to_vec();
        experiments::parse_metrics(&mut body, &experiment, &run, base, &limits)
    })
    .await
    .map_err(|e| ApiError::internal(format!("parse task failed: {e}")))?
    .map_err(|e| ApiError::bad_data(e.to_string()))?;
    db.append(parsed.batch)
        .await
        .map_err(ApiError::from_storage)?;
    Ok(success(
        json!({"lines": parsed.lines, "samples": parsed.samples}),
        None,
    ))
}

pub async fn params(
    State(state): State<AppState>,
    Path((experiment, run)): Path<(String, String)>,
    req: Request,
) -> ApiResult {
    let (db, body) = run_request(&state, &experiment, &run, req).await?;
    let params = experiments::parse_params(&mut body.to_vec()).map_err(ApiError::bad_data)?;
    let limits = &db.limits().labels;
    let now = quiver_storage::maintenance::now_ms();
    let mut batch = WriteBatch::default();
    for param in &params {
        let labels = experiments::param_labels(&experiment, &run, param, limits)
            .map_err(ApiError::bad_data)?;
        // A changed parameter (another value or type): its old series goes stale now.
        let same_param = Matchers(vec![
            Matcher::equal(METRIC_NAME, PARAM_METRIC),
            Matcher::equal(EXPERIMENT, experiment.clone()),
            Matcher::equal(RUN_ID, run.clone()),
            Matcher::equal(PARAM, param.name.clone()),
        ]);
        for (_, l) in db.series(&same_param, Timestamp::MIN, Timestamp::MAX) {
            let unchanged = l.get(PARAM_VALUE) == Some(param.text.as_str())
                && l.get(PARAM_TYPE) == Some(param.kind.as_str());
            if !unchanged {
                let i = batch.push_series(l);
                batch.push_sample(i, now, f64::from_bits(STALE_NAN_BITS));
            }
        }
        let i = batch.push_series(labels);
        batch.push_sample(i, now, param.number);
    }
    db.append(batch).await.map_err(ApiError::from_storage)?;
    Ok(success(json!({"params": params.len()}), None))
}
