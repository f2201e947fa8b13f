//! `GET/POST /api/v1/export`: raw samples of the selected series as JSON lines, one series per
//! line, in VictoriaMetrics's shape (`{"metric":{…},"values":[…],"timestamps":[…]}`), so
//! existing export tooling works. Values are JSON numbers; NaN, ±Inf and staleness markers,
//! which JSON cannot hold, are written as the strings `"NaN"`, `"+Inf"`, `"-Inf"`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::params::Params;
use super::series::{labels_json, parse_selectors, read_labelled};
use super::{ApiError, ApiResult, AppState};
use crate::time::{MAX_TIME, MIN_TIME};

/// At most this many series per export; narrow `match[]` or the time range for more.
const MAX_SERIES: usize = 100_000;

pub async fn export(State(state): State<AppState>, params: Params) -> ApiResult {
    let db = state.db()?;
    let sets = parse_selectors(&params.all("match[]"))?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = params.time_or("start", MIN_TIME)?;
    let end = params.time_or("end", MAX_TIME)?;
    let mut series = Vec::new();
    for set in &sets {
        series.extend(db.series(set, start, end));
    }
    series.sort_by(|a, b| a.1.cmp(&b.1));
    series.dedup_by(|a, b| a.0 == b.0);
    if series.len() > MAX_SERIES {
        return Err(ApiError::too_large(format!(
            "{} series selected, more than the export limit of {MAX_SERIES}",
            series.len()
        )));
    }
    let ids: Vec<_> = series.iter().map(|(id, _)| *id).collect();
    // Bounded like a query: never read more samples than --query.max-samples allows.
    let max_samples = state.flags().query_max_samples;
    let bound = db.sample_bound(&ids, start, end);
    if bound > max_samples {
        return Err(ApiError::new(
            crate::error::ErrorType::Execution,
            format!(
                "the export would read up to {bound} samples, more than --query.max-samples \
                 ({max_samples}): narrow match[], start or end"
            ),
        ));
    }
    if db.may_have_histograms(&ids, start, end) {
        // VictoriaMetrics's JSON lines have no place for them: refused, not left out.
        return Err(ApiError::new(
            crate::error::ErrorType::Execution,
            "the selected series hold native histograms, which this export format cannot \
             carry: use remote read or PromQL (histogram_count, histogram_sum…) for them",
        ));
    }
    let mut out = String::new();
    for (labels, s) in read_labelled(db, &series, start, end).await? {
        let values: Vec<Value> = s.values.iter().map(|v| number(*v)).collect();
        let line =
            json!({"metric": labels_json(labels), "values": values, "timestamps": s.timestamps});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/stream+json")], out).into_response())
}

fn number(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("+Inf")
    } else if v == f64::NEG_INFINITY {
        json!("-Inf")
    } else {
        json!(v)
    }
}
