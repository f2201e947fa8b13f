//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`, answered from the
//! series index without reading samples.

use axum::extract::{Path, State};
use quiver_storage::{Db, Labels, Matchers, SeriesId, SeriesSamples, Timestamp};
use serde_json::{Map, Value, json};

use super::params::Params;
use super::{ApiError, ApiResult, AppState, success};
use crate::time::{MAX_TIME, MIN_TIME};

/// Parses a `match[]` selector (`up{job="a"}`, `{__name__=~"x.*"}`) into matcher sets: one set,
/// or several for Prometheus 3's `{a="1" or b="2"}`.
pub fn parse_selector(s: &str) -> Result<Vec<Matchers>, ApiError> {
    use promql_parser::parser::Expr;
    let bad = |msg: String| ApiError::bad_data(format!("invalid parameter \"match[]\": {msg}"));
    // The engine's parse: the same length, depth and range bounds as queries.
    let expr = quiver_promql::parse(s).map_err(|e| bad(format!("1:1: parse error: {e}")))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(bad(format!("{s:?} is not an instant vector selector")));
    };
    // The same conversion PromQL's selectors use.
    let sets = quiver_promql::planner::matcher_sets(&vs).map_err(|e| bad(e.to_string()))?;
    if sets.iter().any(|set| !set.has_non_empty_matcher()) {
        return Err(bad(
            "vector selector must contain at least one non-empty matcher".into(),
        ));
    }
    Ok(sets)
}

fn selectors(params: &Params) -> Result<Vec<Matchers>, ApiError> {
    parse_selectors(&params.all("match[]"))
}

/// Parses every `match[]` of a request: at most `MAX_REGEX_MATCHERS` regex matchers over them
/// all (each may compile to megabytes).
pub fn parse_selectors(selectors: &[&str]) -> Result<Vec<Matchers>, ApiError> {
    use quiver_promql::bounds::{MAX_REGEX_MATCHERS, regex_matcher_count};
    let regexes: usize = selectors.iter().map(|s| regex_matcher_count(s)).sum();
    if regexes > MAX_REGEX_MATCHERS {
        return Err(ApiError::bad_data(format!(
            "invalid parameter \"match[]\": {regexes} regular-expression matchers over the \
             selectors; Quiver accepts at most {MAX_REGEX_MATCHERS}"
        )));
    }
    let mut out = Vec::new();
    for m in selectors {
        out.extend(parse_selector(m)?);
    }
    Ok(out)
}

fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    let start = params.time_or("start", MIN_TIME)?;
    let end = params.time_or("end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// A label set as the API shows it: a JSON object in label order.
/// Reads the samples of `series` in `[start, end]`, each with its labels; series without
/// samples there are left out. The caller has checked `Db::sample_bound` against its limit.
pub(super) async fn read_labelled<'a>(
    db: &Db,
    series: &'a [(SeriesId, Labels)],
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<(&'a Labels, SeriesSamples)>, ApiError> {
    let ids: Vec<SeriesId> = series.iter().map(|(id, _)| *id).collect();
    let data = db
        .read(&ids, start, end)
        .await
        .map_err(ApiError::from_storage)?;
    let labels_of: std::collections::HashMap<SeriesId, &Labels> =
        series.iter().map(|(id, l)| (*id, l)).collect();
    Ok(data.into_iter().map(|s| (labels_of[&s.id], s)).collect())
}

pub fn labels_json(labels: &Labels) -> Value {
    let mut m = Map::new();
    for l in labels.iter() {
        m.insert(l.name.to_string(), Value::String(l.value.to_string()));
    }
    Value::Object(m)
}

/// Applies `limit` as Prometheus 3 does: truncate and warn.
fn limited<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, Option<&'static str>) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        return (items, Some("results truncated due to limit"));
    }
    (items, None)
}

pub async fn series(State(state): State<AppState>, params: Params) -> ApiResult {
    let db = state.db()?;
    let sets = selectors(&params)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&params)?;
    let mut all: Vec<Labels> = Vec::new();
    for set in &sets {
        all.extend(db.series(set, start, end).into_iter().map(|(_, l)| l));
    }
    all.sort();
    all.dedup();
    let (all, warning) = limited(all, params.limit()?);
    let data: Vec<Value> = all.iter().map(labels_json).collect();
    Ok(success(json!(data), warning))
}

pub async fn label_names(State(state): State<AppState>, params: Params) -> ApiResult {
    let db = state.db()?;
    let sets = selectors(&params)?;
    let (start, end) = time_range(&params)?;
    let (names, warning) = limited(db.label_names(&sets, start, end), params.limit()?);
    Ok(success(json!(names), warning))
}

pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult {
    let db = state.db()?;
    let name = unescape_label_name(&name);
    let sets = selectors(&params)?;
    let (start, end) = time_range(&params)?;
    let (values, warning) = limited(db.label_values(&name, &sets, start, end), params.limit()?);
    Ok(success(json!(values), warning))
}

/// Prometheus 3 lets clients send a UTF-8 label name `U__`-escaped: `U__http_2e_status` is
/// `http.status`; `_` stands for itself only as `__`.
fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let hex: String = chars.by_ref().take_while(|c| *c != '_').collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => return name.to_string(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_matchers() {
        let sets = parse_selector(r#"up{job="a",instance=~"x.*"}"#).unwrap();
        assert_eq!(sets.len(), 1);
        let names: Vec<_> = sets[0].0.iter().map(|m| m.name.as_str()).collect();
        assert!(
            names.contains(&"__name__") && names.contains(&"job") && names.contains(&"instance")
        );
    }

    #[test]
    fn selectors_that_match_everything_are_refused() {
        let err = parse_selector(r#"{job=~".*"}"#).unwrap_err();
        assert!(err.message.contains("non-empty matcher"), "{}", err.message);
        assert!(parse_selector("rate(x[5m])").is_err());
        assert!(parse_selector("up{").is_err());
    }

    #[test]
    fn escaped_label_names_are_unescaped() {
        assert_eq!(
            unescape_label_name("U__http_2e_status__code"),
            "http.status_code"
        );
        assert_eq!(unescape_label_name("job"), "job");
    }
}
