//! `GET/POST /api/v1/sql`: a SQL statement over Quiver's catalog, answered as JSON (default), CSV
//! or an Arrow IPC stream (`format=json|csv|arrow`, or the `Accept` header), at most `limit`
//! rows (default 10,000; `--sql.max-rows` caps it). A planning error is `bad_data` (400), an
//! execution error `execution` (422), both in Prometheus's envelope.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use serde_json::{Value, json};

use super::params::Params;
use super::{ApiError, ApiResult, AppState, ErrorType};
use crate::auth::Principal;

/// Rows answered when the request gives no `limit`.
const DEFAULT_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

fn format(params: &Params, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(f) = params.get("format").filter(|f| !f.is_empty()) {
        return match f.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" | "arrow_stream" | "ipc" => Ok(Format::Arrow),
            other => Err(ApiError::bad_data(format!(
                "invalid parameter \"format\": {other:?} is not json, csv or arrow"
            ))),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("application/vnd.apache.arrow.stream") {
        Format::Arrow
    } else if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Json
    })
}

fn execution(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorType::Execution, e.to_string())
}

/// A query's error: planning (read-only refusals included) is the client's (400); a query
/// that ran past a bound is `execution` (422) or `timeout` (503).
fn query_error(e: datafusion::error::DataFusionError) -> ApiError {
    if quiver_sql::guard::is_timeout(&e) || quiver_sql::guard::is_resources_exhausted(&e) {
        ApiError::from_sql_execution(&e)
    } else {
        ApiError::bad_data(e.to_string())
    }
}

pub async fn sql(
    State(state): State<AppState>,
    headers: HeaderMap,
    principal: Option<axum::Extension<Principal>>,
    params: Params,
) -> ApiResult {
    state.authorize(&headers, principal.as_deref())?;
    let session = state.sql()?.clone();
    let query = params
        .get("query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": missing"))?
        .to_string();
    let format = format(&params, &headers)?;
    let max = state.flags().sql_max_rows;
    let limit = match params.get("limit").filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT.min(max),
        Some(l) => match l.parse::<usize>() {
            Ok(0) => max,
            Ok(n) => n.min(max),
            Err(_) => {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"limit\": {l:?} is not a number"
                )));
            }
        },
    };
    let _permit = state.query_permit().await?;
    let df = session.sql(&query).await.map_err(query_error)?;
    let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
    let mut stream = session
        .execute(df)
        .await
        .map_err(|e| ApiError::from_sql_execution(&e))?;
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| ApiError::from_sql_execution(&e))?;
        if rows + batch.num_rows() > limit {
            batches.push(batch.slice(0, limit - rows));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    let truncated_header = (
        header::HeaderName::from_static("x-quiver-truncated"),
        if truncated { "true" } else { "false" },
    );
    match format {
        Format::Json => {
            let mut body = json!({
                "status": "success",
                "data": {
                    "columns": schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect::<Vec<_>>(),
                    "rows": json_rows(&batches)?,
                },
            });
            if truncated {
                body["warnings"] = json!([format!(
                    "results truncated to {limit} rows (raise `limit`, up to --sql.max-rows)"
                )]);
            }
            Ok(([truncated_header], axum::Json(body)).into_response())
        }
        Format::Csv => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (truncated_header.0, truncated_header.1),
            ],
            csv(&schema, &batches)?,
        )
            .into_response()),
        Format::Arrow => {
            let mut out = Vec::new();
            {
                let mut w =
                    datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema)
                        .map_err(execution)?;
                for b in &batches {
                    w.write(b).map_err(execution)?;
                }
                w.finish().map_err(execution)?;
            }
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/vnd.apache.arrow.stream"),
                    (truncated_header.0, truncated_header.1),
                ],
                out,
            )
                .into_response())
        }
    }
}

/// A display formatter per column of a batch.
fn formatters<'a>(
    b: &'a RecordBatch,
    opts: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>, ApiError> {
    b.columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect::<Result<_, _>>()
        .map_err(execution)
}

/// A JSON value per cell: numbers as numbers (non-finite floats as strings, as Prometheus
/// writes them), booleans, strings, nulls; everything else (timestamps, maps, lists) as its
/// display string.
fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Value>, ApiError> {
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let formatters = formatters(b, &opts)?;
        for row in 0..b.num_rows() {
            let cells: Vec<Value> = b
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(col, f)| cell(col, f, row))
                .collect();
            out.push(Value::Array(cells));
        }
    }
    Ok(out)
}

fn cell(col: &ArrayRef, f: &ArrayFormatter, row: usize) -> Value {
    if col.is_null(row) {
        return Value::Null;
    }
    let float = |v: f64| {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(quiver_promql::functions::format_float(v)))
    };
    match col.data_type() {
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => float(col.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let s = f.value(row).to_string();
            s.parse::<serde_json::Number>()
                .map(Value::Number)
                .unwrap_or(Value::String(s))
        }
        _ => Value::String(f.value(row).to_string()),
    }
}

/// RFC 4180 CSV with a header row.
fn csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ApiError> {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let names: Vec<String> = schema.fields().iter().map(|f| quote(f.name())).collect();
    out.push_str(&names.join(","));
    out.push('\n');
    let opts = FormatOptions::default();
    for b in batches {
        let formatters = formatters(b, &opts)?;
        for row in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(c, f)| {
                    if c.is_null(row) {
                        String::new()
                    } else {
                        quote(&f.value(row).to_string())
                    }
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    Ok(out)
}
