//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`, and the metadata routes
//! Grafana calls next to them (`query_exemplars`, `metadata`).
//!
//! Values are strings (`"1"`, `"NaN"`, `"+Inf"`), times are float seconds, and range results
//! have a point at exactly `start + k*step`. Add `explain=true` to either query route to get
//! the optimized DataFusion plans instead of running the query.

use std::time::Duration;

use axum::extract::State;
use quiver_promql::{Error as QueryError, ErrorKind as QueryErrorKind, LabelPairs, Value};
use quiver_storage::FloatHistogram;
use serde_json::{Map, Value as Json, json};

use super::params::Params;
use super::{ApiError, ApiResult, AppState, ErrorType, success};
use crate::time::parse_duration;

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
    let _permit = state.query_permit().await?;
    let value = with_timeout(timeout, engine.instant(q, t)).await?;
    Ok(json_response(&value))
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
    let step = match params.get("step").filter(|s| !s.is_empty()) {
        Some(s) => parse_duration(s)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"step\": {e}")))?,
        None => return Err(ApiError::bad_data("invalid parameter \"step\": missing")),
    };
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    quiver_promql::range_steps(start, end, step).map_err(query_error)?;
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
    let _permit = state.query_permit().await?;
    let value = with_timeout(timeout, engine.range(q, start, end, step)).await?;
    Ok(json_response(&value))
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
    let message = crate::error::error_chain(&e);
    match e.kind() {
        QueryErrorKind::BadData => ApiError::bad_data(message),
        QueryErrorKind::Execution | QueryErrorKind::Limit => {
            ApiError::new(ErrorType::Execution, message)
        }
        QueryErrorKind::Timeout => ApiError::new(ErrorType::Timeout, message),
        QueryErrorKind::Internal => ApiError::internal(message),
    }
}

/// The success envelope around a query value, written straight into bytes: results can
/// hold millions of points, and building a `serde_json::Value` tree first costs more than the
/// query.
fn json_response(v: &Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Sized up front: a large matrix would otherwise be copied by every doubling.
    let points: usize = match v {
        Value::Matrix(m) => m
            .iter()
            .map(|s| s.points.len() + 8 + s.histograms.len() * 16)
            .sum(),
        Value::Vector(v) => v.len() * 8,
        _ => 0,
    };
    let mut out = Vec::with_capacity(4096 + points * 32);
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":");
    write_value(&mut out, v);
    out.push(b'}');
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

/// Writes a query value as Prometheus's API does: `{"resultType":…,"result":…}`.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Scalar { t, v } => {
            out.extend_from_slice(b"{\"resultType\":\"scalar\",\"result\":");
            write_point(out, *t, *v);
        }
        Value::String { t, s } => {
            out.extend_from_slice(b"{\"resultType\":\"string\",\"result\":[");
            write_secs(out, *t);
            out.push(b',');
            write_str(out, s);
            out.push(b']');
        }
        Value::Vector(samples) => {
            out.extend_from_slice(b"{\"resultType\":\"vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_metric(out, &s.labels);
                match &s.h {
                    Some(h) => {
                        out.extend_from_slice(b",\"histogram\":");
                        write_histogram_point(out, s.t, h);
                    }
                    None => {
                        out.extend_from_slice(b",\"value\":");
                        write_point(out, s.t, s.v);
                    }
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        Value::Matrix(series) => {
            out.extend_from_slice(b"{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_metric(out, &s.labels);
                // As Prometheus: `values` and `histograms` each only when the series has some.
                if !s.points.is_empty() || s.histograms.is_empty() {
                    out.extend_from_slice(b",\"values\":[");
                    for (j, (t, v)) in s.points.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_point(out, *t, *v);
                    }
                    out.push(b']');
                }
                if !s.histograms.is_empty() {
                    out.extend_from_slice(b",\"histograms\":[");
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_histogram_point(out, *t, h);
                    }
                    out.push(b']');
                }
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}

fn write_metric(out: &mut Vec<u8>, labels: &LabelPairs) {
    out.push(b'{');
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, n);
        out.push(b':');
        write_str(out, v);
    }
    out.push(b'}');
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as JSON requires.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    write_secs(out, t);
    out.push(b',');
    write_float(out, v);
    out.push(b']');
}

/// A float as Prometheus's API writes one (`jsonutil.MarshalFloat`): a string, in fixed
/// notation, or Go's exponent notation (`1e-07`, `1e+21`) below 1e-6 and from 1e21 in
/// magnitude; `NaN`, `+Inf`, `-Inf`.
fn write_float(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    out.push(b'"');
    let a = v.abs();
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Rust writes `1e-7`; Go `1e-07`: a sign and at least two exponent digits.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
    } else {
        let _ = write!(out, "{v}");
    }
    out.push(b'"');
}

/// `[time, {"count", "sum", "buckets"}]` as Prometheus writes a histogram sample
/// (`jsonutil.MarshalHistogram`): buckets of count 0 left out, each bucket
/// `[boundaries, lower, upper, count]` with `boundaries` 0 for `(lower, upper]`, 1 for
/// `[lower, upper)`, 2 for an open and 3 for a closed interval.
fn write_histogram_point(out: &mut Vec<u8>, t: i64, h: &FloatHistogram) {
    out.push(b'[');
    write_secs(out, t);
    out.extend_from_slice(b",{\"count\":");
    write_float(out, h.count);
    out.extend_from_slice(b",\"sum\":");
    write_float(out, h.sum);
    let mut found = false;
    for b in h.all_buckets().filter(|b| b.count != 0.0) {
        out.extend_from_slice(if found { b"," } else { b",\"buckets\":[" });
        found = true;
        let rule = match (b.lower_inclusive, b.upper_inclusive) {
            (true, true) => b'3',
            (true, false) => b'1',
            (false, true) => b'0',
            (false, false) => b'2',
        };
        out.extend_from_slice(&[b'[', rule, b',']);
        write_float(out, b.lower);
        out.push(b',');
        write_float(out, b.upper);
        out.push(b',');
        write_float(out, b.count);
        out.push(b']');
    }
    if found {
        out.push(b']');
    }
    out.extend_from_slice(b"}]");
}

fn write_secs(out: &mut Vec<u8>, t: i64) {
    use std::io::Write;
    let (sign, a) = if t < 0 {
        ("-", t.unsigned_abs())
    } else {
        ("", t as u64)
    };
    let (s, ms) = (a / 1000, a % 1000);
    let _ = if ms == 0 {
        write!(out, "{sign}{s}")
    } else if ms % 100 == 0 {
        write!(out, "{sign}{s}.{}", ms / 100)
    } else if ms % 10 == 0 {
        write!(out, "{sign}{s}.{:02}", ms / 10)
    } else {
        write!(out, "{sign}{s}.{ms:03}")
    };
}

/// A query value as a `serde_json::Value` (for callers that embed it).
pub fn encode(v: &Value) -> Json {
    match v {
        Value::Scalar { t, v } => json!({"resultType": "scalar", "result": point(*t, *v)}),
        Value::String { t, s } => json!({"resultType": "string", "result": [secs(*t), s]}),
        Value::Vector(samples) => {
            let result: Vec<Json> = samples
                .iter()
                .map(|s| match &s.h {
                    Some(h) => {
                        json!({"metric": metric(&s.labels), "histogram": histogram_point(s.t, h)})
                    }
                    None => json!({"metric": metric(&s.labels), "value": point(s.t, s.v)}),
                })
                .collect();
            json!({"resultType": "vector", "result": result})
        }
        Value::Matrix(series) => {
            let result: Vec<Json> = series
                .iter()
                .map(|s| {
                    let mut m = Map::new();
                    m.insert("metric".into(), metric(&s.labels));
                    if !s.points.is_empty() || s.histograms.is_empty() {
                        let values: Vec<Json> =
                            s.points.iter().map(|(t, v)| point(*t, *v)).collect();
                        m.insert("values".into(), Json::Array(values));
                    }
                    if !s.histograms.is_empty() {
                        let hs: Vec<Json> = s
                            .histograms
                            .iter()
                            .map(|(t, h)| histogram_point(*t, h))
                            .collect();
                        m.insert("histograms".into(), Json::Array(hs));
                    }
                    Json::Object(m)
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
    json!([secs(t), float_string(v)])
}

fn float_string(v: f64) -> String {
    let mut out = Vec::new();
    write_float(&mut out, v);
    String::from_utf8_lossy(&out[1..out.len() - 1]).into_owned()
}

fn histogram_point(t: i64, h: &FloatHistogram) -> Json {
    let buckets: Vec<Json> = h
        .all_buckets()
        .filter(|b| b.count != 0.0)
        .map(|b| {
            let rule = match (b.lower_inclusive, b.upper_inclusive) {
                (true, true) => 3,
                (true, false) => 1,
                (false, true) => 0,
                (false, false) => 2,
            };
            json!([
                rule,
                float_string(b.lower),
                float_string(b.upper),
                float_string(b.count)
            ])
        })
        .collect();
    let mut m = Map::new();
    m.insert("count".into(), Json::String(float_string(h.count)));
    m.insert("sum".into(), Json::String(float_string(h.sum)));
    if !buckets.is_empty() {
        m.insert("buckets".into(), Json::Array(buckets));
    }
    json!([secs(t), Json::Object(m)])
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
    fn the_byte_writer_agrees_with_the_json_tree() {
        let h = FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 9.0,
            sum: 1e-7,
            positive_spans: vec![quiver_storage::Span {
                offset: 1,
                length: 2,
            }],
            positive_buckets: vec![3.0, 0.0],
            negative_spans: vec![quiver_storage::Span {
                offset: 0,
                length: 1,
            }],
            negative_buckets: vec![4.0],
            ..Default::default()
        };
        let v = Value::Matrix(vec![
            quiver_promql::Series {
                labels: vec![("a\"b".into(), "ü\n".into())],
                points: vec![(1_500, 1.0), (-2_050, f64::NAN), (3_007, 1e21), (0, -0.0)],
                histograms: vec![],
            },
            quiver_promql::Series {
                labels: vec![("h".into(), "1".into())],
                points: vec![(500, 2.0)],
                histograms: vec![(1_000, std::sync::Arc::new(h.clone()))],
            },
        ]);
        let mut out = Vec::new();
        write_value(&mut out, &v);
        let parsed: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, encode(&v));
        // Prometheus's shapes: exponent floats as Go writes them; a histogram's buckets from
        // the lowest, empty ones left out, with their boundary rule.
        assert_eq!(parsed["result"][0]["values"][2][1], "1e+21");
        assert_eq!(
            parsed["result"][1]["histograms"][0],
            json!([1, {"count": "9", "sum": "1e-07", "buckets": [
                [1, "-1", "-0.5", "4"],
                [3, "-0.001", "0.001", "2"],
                [0, "1", "2", "3"],
            ]}])
        );
        let vector = Value::Vector(vec![quiver_promql::Sample {
            labels: vec![],
            t: 2_000,
            v: 0.0,
            h: Some(std::sync::Arc::new(h)),
        }]);
        let mut out = Vec::new();
        write_value(&mut out, &vector);
        let parsed: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, encode(&vector));
        assert_eq!(parsed["result"][0]["histogram"][1]["count"], "9");
        assert!(parsed["result"][0].get("value").is_none());
    }

    #[test]
    fn values_are_strings_and_times_are_seconds() {
        assert_eq!(point(1_500, f64::NAN), json!([1.5, "NaN"]));
        assert_eq!(point(2_000, f64::INFINITY), json!([2, "+Inf"]));
        assert_eq!(point(-1_000, -0.5), json!([-1, "-0.5"]));
    }
}
