//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`, and the metadata routes
//! Grafana calls next to them (`query_exemplars`, `metadata`).
//!
//! Values are strings (`"1"`, `"NaN"`, `"+Inf"`), times are float seconds, and range results
//! have a point at exactly `start + k*step`. Add `explain=true` to either query route to get
//! the optimized DataFusion plans instead of running the query.

use std::time::Duration;

use axum::extract::State;
use quiver_promql::{Error as QueryError, ErrorKind as QueryErrorKind, LabelPairs, Value};
use serde_json::{Map, Value as Json, json};

use super::params::{Params, parse_duration};
use super::{ApiError, ApiResult, AppState, ErrorType, success};

/// Prometheus refuses range queries with more points than this per series.
const MAX_POINTS: i64 = 11_000;

pub async fn query(State(state): State<AppState>, params: Params) -> ApiResult {
    let engine = state.engine()?;
    let q = required(&params, "query")?;
    let now = quiver_storage::maintenance::now_ms();
    let t = params.time_or("time", now)?;
    let timeout = timeout(&params)?;
    if explain(&params) {
        let plan = engine.explain(q, t, t, 0).await.map_err(query_error)?;
        return Ok(success(
            json!({"resultType": "explain", "result": plan}),
            None,
        ));
    }
    let value = with_timeout(timeout, engine.instant(q, t)).await?;
    Ok(success(encode(&value), None))
}

pub async fn query_range(State(state): State<AppState>, params: Params) -> ApiResult {
    let engine = state.engine()?;
    let q = required(&params, "query")?;
    let start = params
        .time_or("start", i64::MIN)
        .and_then(|t| present(t, "start"))?;
    let end = params
        .time_or("end", i64::MIN)
        .and_then(|t| present(t, "end"))?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = match params.get("step").filter(|s| !s.is_empty()) {
        Some(s) => parse_duration(s)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"step\": {e}")))?,
        None => return Err(ApiError::bad_data("invalid parameter \"step\": missing")),
    };
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step >= MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = timeout(&params)?;
    if explain(&params) {
        let plan = engine
            .explain(q, start, end, step)
            .await
            .map_err(query_error)?;
        return Ok(success(
            json!({"resultType": "explain", "result": plan}),
            None,
        ));
    }
    let value = with_timeout(timeout, engine.range(q, start, end, step)).await?;
    Ok(success(encode(&value), None))
}

/// `/api/v1/format_query`: the expression pretty-printed.
pub async fn format_query(params: Params) -> ApiResult {
    let q = required(&params, "query")?;
    let expr = quiver_promql::parse(q).map_err(query_error)?;
    Ok(success(Json::String(expr.prettify()), None))
}

/// `/api/v1/query_exemplars`: Quiver keeps no exemplars, so the answer is always empty.
pub async fn query_exemplars(params: Params) -> ApiResult {
    let q = required(&params, "query")?;
    quiver_promql::parse(q).map_err(query_error)?;
    Ok(success(json!([]), None))
}

/// `/api/v1/metadata`: metric metadata is not stored yet (scraping will add it), so the map
/// is empty, as Prometheus answers before its first scrape.
pub async fn metadata(_params: Params) -> ApiResult {
    Ok(success(json!({}), None))
}

fn required<'a>(params: &'a Params, key: &str) -> Result<&'a str, ApiError> {
    params
        .get(key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_data(format!("invalid parameter \"{key}\": missing")))
}

fn present(t: i64, key: &str) -> Result<i64, ApiError> {
    if t == i64::MIN {
        return Err(ApiError::bad_data(format!(
            "invalid parameter \"{key}\": missing"
        )));
    }
    Ok(t)
}

fn explain(params: &Params) -> bool {
    matches!(params.get("explain"), Some("1" | "true" | "yes"))
}

/// The request's `timeout`, if it gave one (the engine's own limit applies as well).
fn timeout(params: &Params) -> Result<Option<Duration>, ApiError> {
    match params.get("timeout").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            let ms = parse_duration(s)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"timeout\": {e}")))?;
            Ok(Some(Duration::from_millis(ms.max(0) as u64)))
        }
    }
}

async fn with_timeout(
    limit: Option<Duration>,
    fut: impl Future<Output = quiver_promql::Result<Value>>,
) -> Result<Value, ApiError> {
    let res = match limit {
        Some(d) => tokio::time::timeout(d, fut)
            .await
            .map_err(|_| query_error(QueryError::Timeout("query execution")))?,
        None => fut.await,
    };
    res.map_err(query_error)
}

/// Maps an engine error to Prometheus's `errorType` and status by whose fault it is.
pub fn query_error(e: QueryError) -> ApiError {
    let message = super::error_chain(&e);
    match e.kind() {
        QueryErrorKind::BadData => ApiError::bad_data(message),
        QueryErrorKind::Execution | QueryErrorKind::Limit => {
            ApiError::new(ErrorType::Execution, message)
        }
        QueryErrorKind::Timeout => ApiError::new(ErrorType::Timeout, message),
        QueryErrorKind::Internal => ApiError::internal(message),
    }
}

/// A query value as Prometheus's API writes it.
pub fn encode(v: &Value) -> Json {
    match v {
        Value::Scalar { t, v } => json!({"resultType": "scalar", "result": point(*t, *v)}),
        Value::String { t, s } => json!({"resultType": "string", "result": [secs(*t), s]}),
        Value::Vector(samples) => {
            let result: Vec<Json> = samples
                .iter()
                .map(|s| json!({"metric": metric(&s.labels), "value": point(s.t, s.v)}))
                .collect();
            json!({"resultType": "vector", "result": result})
        }
        Value::Matrix(series) => {
            let result: Vec<Json> = series
                .iter()
                .map(|s| {
                    let values: Vec<Json> = s.points.iter().map(|(t, v)| point(*t, *v)).collect();
                    json!({"metric": metric(&s.labels), "values": values})
                })
                .collect();
            json!({"resultType": "matrix", "result": result})
        }
    }
}

fn metric(labels: &LabelPairs) -> Json {
    let mut m = Map::new();
    for (n, v) in labels {
        m.insert(n.clone(), Json::String(v.clone()));
    }
    Json::Object(m)
}

fn point(t: i64, v: f64) -> Json {
    json!([secs(t), quiver_promql::functions::format_float(v)])
}

/// Unix seconds with millisecond precision, as a JSON number (`1435781451.781`).
fn secs(t: i64) -> Json {
    if t % 1000 == 0 {
        json!(t / 1000)
    } else {
        json!(t as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_strings_and_times_are_seconds() {
        assert_eq!(point(1_500, f64::NAN), json!([1.5, "NaN"]));
        assert_eq!(point(2_000, f64::INFINITY), json!([2, "+Inf"]));
        assert_eq!(point(-1_000, -0.5), json!([-1, "-0.5"]));
    }
}
