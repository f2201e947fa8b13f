//! `promql(expr, start, end, step)` (a range query) and `promql(expr, time)` (an instant query)
//! as a SQL table function: the result as rows of `timestamp`, `value` and one column per label
//! (`__name__` included when the result keeps it), joinable with any table. A result holding
//! native histograms has a `histogram` column too (a struct, as the `histograms` table's).
//!
//! Times are seconds since the epoch (numbers) or RFC 3339 strings, or SQL timestamps; `step` is
//! seconds or a Prometheus duration string (`'15s'`). The query runs when the statement is
//! planned (the columns are the result's labels), on the server's multi-threaded runtime.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;

use quiver_storage::FloatHistogram;
use quiver_storage::histogram::arrow::{HistogramBuilder, histogram_struct_type};

use crate::engine::{Engine, Series, Value};

/// The table function; the server registers it in its SQL session as `promql`.
#[derive(Debug)]
pub struct PromqlTableFunction {
    engine: Arc<Engine>,
}

impl PromqlTableFunction {
    pub fn new(engine: Arc<Engine>) -> Self {
        PromqlTableFunction { engine }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Negative(inner) => match literal(inner)? {
            ScalarValue::Int64(Some(v)) => Some(ScalarValue::Int64(Some(-v))),
            ScalarValue::Float64(Some(v)) => Some(ScalarValue::Float64(Some(-v))),
            _ => None,
        },
        Expr::Cast(c) => literal(&c.expr),
        _ => None,
    }
}

/// Milliseconds from an argument: seconds as a number or numeric string; any other string goes
/// to `text` (RFC 3339 for times, a duration for steps); SQL timestamps only when `timestamps`.
fn millis_arg(
    e: &Expr,
    timestamps: bool,
    text: impl Fn(&str) -> Option<i64>,
    bad: impl Fn() -> DataFusionError,
) -> Result<i64> {
    let ms = match literal(e).ok_or_else(&bad)? {
        ScalarValue::Int64(Some(s)) => s.checked_mul(1000),
        ScalarValue::Int32(Some(s)) => Some(s as i64 * 1000),
        ScalarValue::Float64(Some(s)) => seconds_ms(s),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => match s.parse::<f64>() {
            Ok(secs) => seconds_ms(secs),
            Err(_) => text(&s),
        },
        ScalarValue::TimestampSecond(Some(v), _) if timestamps => v.checked_mul(1000),
        ScalarValue::TimestampMillisecond(Some(v), _) if timestamps => Some(v),
        ScalarValue::TimestampMicrosecond(Some(v), _) if timestamps => Some(v / 1000),
        ScalarValue::TimestampNanosecond(Some(v), _) if timestamps => Some(v / 1_000_000),
        _ => None,
    };
    ms.ok_or_else(bad)
}

/// Seconds as milliseconds, rounded; `None` for NaN, infinities and times past `i64`.
fn seconds_ms(secs: f64) -> Option<i64> {
    let ms = (secs * 1000.0).round();
    // `as` would saturate (and turn NaN into 0) silently.
    (ms.is_finite() && ms.abs() < i64::MAX as f64).then_some(ms as i64)
}

/// A time argument in milliseconds.
fn time_ms(e: &Expr, what: &str) -> Result<i64> {
    millis_arg(
        e,
        true,
        |s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis())
        },
        || {
            DataFusionError::Plan(format!(
                "promql(): {what} must be seconds since the epoch, an RFC 3339 string or a timestamp"
            ))
        },
    )
}

/// A step in milliseconds: seconds, or a duration string.
fn step_ms(e: &Expr) -> Result<i64> {
    millis_arg(
        e,
        false,
        |s| {
            promql_parser::util::parse_duration(s)
                .ok()
                .map(|d| d.as_millis() as i64)
        },
        || DataFusionError::Plan("promql(): step must be seconds or a duration like '15s'".into()),
    )
}

impl TableFunctionImpl for PromqlTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let query = match exprs.first().and_then(literal) {
            Some(
                ScalarValue::Utf8(Some(q))
                | ScalarValue::Utf8View(Some(q))
                | ScalarValue::LargeUtf8(Some(q)),
            ) => q,
            _ => return plan_err!("promql(): the first argument must be a PromQL string"),
        };
        let engine = self.engine.clone();
        let run = match exprs.len() {
            2 => {
                let t = time_ms(&exprs[1], "time")?;
                Box::pin(async move { engine.instant(&query, t).await })
                    as std::pin::Pin<
                        Box<dyn std::future::Future<Output = crate::Result<Value>> + Send>,
                    >
            }
            4 => {
                let (start, end) = (time_ms(&exprs[1], "start")?, time_ms(&exprs[2], "end")?);
                let step = step_ms(&exprs[3])?;
                Box::pin(async move { engine.range(&query, start, end, step).await })
            }
            n => {
                return plan_err!(
                    "promql() takes (expr, time) or (expr, start, end, step), not {n} arguments"
                );
            }
        };
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| DataFusionError::Execution("promql() needs a Tokio runtime".into()))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(DataFusionError::Execution(
                "promql() needs a multi-threaded Tokio runtime".into(),
            ));
        }
        let value = tokio::task::block_in_place(|| handle.block_on(run))
            .map_err(|e| DataFusionError::Execution(format!("promql(): {e}")))?;
        let batch = to_batch(value)?;
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}

/// Rows of `timestamp`, `value`, then one column per label name (sorted).
fn to_batch(value: Value) -> Result<RecordBatch> {
    let series: Vec<Series> = match value {
        Value::Scalar { t, v } => vec![Series {
            labels: vec![],
            points: vec![(t, v)],
            histograms: Vec::new(),
        }],
        Value::String { .. } => return plan_err!("promql(): a string result has no rows"),
        Value::Vector(samples) => samples
            .into_iter()
            .map(|s| Series {
                labels: s.labels,
                points: if s.h.is_none() {
                    vec![(s.t, s.v)]
                } else {
                    Vec::new()
                },
                histograms: s.h.map(|h| (s.t, h)).into_iter().collect(),
            })
            .collect(),
        Value::Matrix(series) => series,
    };
    // Native histograms get a `histogram` column (a struct, as the `histograms` table's), NULL
    // on float rows; `value` is NULL on histogram rows. Float results keep their shape.
    let with_hist = series.iter().any(|s| !s.histograms.is_empty());
    let names: BTreeSet<&str> = series
        .iter()
        .flat_map(|s| s.labels.iter().map(|(n, _)| n.as_str()))
        .filter(|n| *n != "timestamp" && *n != "value" && !(with_hist && *n == "histogram"))
        .collect();
    let mut ts = Vec::new();
    let mut vs = Vec::new();
    let mut hs = HistogramBuilder::default();
    let mut valid = Vec::new();
    let mut cols: Vec<StringBuilder> = names.iter().map(|_| StringBuilder::new()).collect();
    for Series {
        labels,
        points,
        histograms,
    } in &series
    {
        let mut rows: Vec<(i64, Option<f64>, Option<&FloatHistogram>)> = points
            .iter()
            .map(|(t, v)| (*t, Some(*v), None))
            .chain(histograms.iter().map(|(t, h)| (*t, None, Some(h.as_ref()))))
            .collect();
        rows.sort_by_key(|r| r.0);
        for (t, v, h) in rows {
            ts.push(t);
            vs.push(v);
            if with_hist {
                valid.push(h.is_some());
                hs.push(h.unwrap_or(&FloatHistogram::default()));
            }
            for (i, name) in names.iter().enumerate() {
                match labels.iter().find(|(n, _)| n == name) {
                    Some((_, value)) => cols[i].append_value(value),
                    None => cols[i].append_null(),
                }
            }
        }
    }
    let mut fields = vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("value", DataType::Float64, with_hist),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
        Arc::new(Float64Array::from(vs)),
    ];
    if with_hist {
        fields.push(Field::new("histogram", histogram_struct_type(), true));
        arrays.push(Arc::new(hs.finish_struct(Some(NullBuffer::from(valid)))));
    }
    fields.extend(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)));
    arrays.extend(cols.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}
