//! `/api/v1/targets`, `/api/v1/targets/metadata`, `/api/v1/metadata`, `/api/v1/status/config`,
//! `/api/v1/status/flags` and `/-/reload`, in Prometheus's shapes.

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_storage::Matchers;
use serde_json::{Map, Value, json};

use super::params::Params;
use super::series::parse_selector;
use super::{ApiError, ApiResult, AppState, success};
use crate::config::file::PromDuration;
use crate::relabel::LabelMap;
use crate::scrape::scraper::TargetShared;

fn map_json(m: &LabelMap) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// RFC 3339 with nanoseconds, as Go prints a `time.Time`; the zero time when never scraped.
pub(super) fn rfc3339(t: Option<std::time::SystemTime>) -> String {
    match t {
        None => "0001-01-01T00:00:00Z".into(),
        Some(t) => chrono::DateTime::<chrono::Utc>::from(t)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    }
}

fn target_json(t: &TargetShared) -> Value {
    let status = t.status.lock().clone();
    let target = &t.target;
    json!({
        "discoveredLabels": map_json(&target.discovered),
        "labels": map_json(&target.labels),
        "scrapePool": t.pool,
        "scrapeUrl": target.url,
        "globalUrl": target.url,
        "lastError": status.last_error,
        "lastScrape": rfc3339(status.last_scrape),
        "lastScrapeDuration": status.last_duration.as_secs_f64(),
        "health": status.health.as_str(),
        "scrapeInterval": PromDuration(target.interval).to_string(),
        "scrapeTimeout": PromDuration(target.timeout).to_string(),
    })
}

/// `GET /api/v1/targets?state=active|dropped|any&scrapePool=…`
pub async fn targets(State(state): State<AppState>, params: Params) -> ApiResult {
    let manager = state.scrape()?;
    let which = params.get("state").unwrap_or("any").to_ascii_lowercase();
    let (show_active, show_dropped) = match which.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        _ => (false, false),
    };
    let pool_filter = params.get("scrapePool").filter(|p| !p.is_empty());
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts = Map::new();
    for pool in manager.pools() {
        if pool_filter.is_some_and(|p| p != pool.name) {
            continue;
        }
        let view = pool.view();
        if show_active {
            active.extend(view.active.iter().map(|t| target_json(t)));
        }
        if show_dropped {
            dropped.extend(
                view.dropped
                    .iter()
                    .map(|d| json!({"discoveredLabels": map_json(d)})),
            );
        }
        dropped_counts.insert(pool.name.clone(), json!(view.dropped_count));
    }
    let mut data = Map::new();
    if show_active {
        data.insert("activeTargets".into(), Value::Array(active));
    }
    if show_dropped {
        data.insert("droppedTargets".into(), Value::Array(dropped));
        data.insert("droppedTargetCounts".into(), Value::Object(dropped_counts));
    }
    Ok(success(Value::Object(data), None))
}

fn matches_target(sets: &[Matchers], labels: &LabelMap) -> bool {
    sets.iter().any(|set| {
        set.0
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map(String::as_str).unwrap_or("")))
    })
}

/// `GET /api/v1/targets/metadata?match_target=…&metric=…&limit=…`
pub async fn targets_metadata(State(state): State<AppState>, params: Params) -> ApiResult {
    let manager = state.scrape()?;
    let sets = match params.get("match_target").filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_selector(s).map_err(|e| ApiError {
            message: e.message.replace("\"match[]\"", "\"match_target\""),
            ..e
        })?),
        None => None,
    };
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let limit = match params.get("limit") {
        None | Some("") => usize::MAX,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 0 => n as usize,
            Ok(_) => usize::MAX,
            Err(_) => {
                return Err(ApiError::bad_data(
                    "invalid parameter \"limit\": not a number",
                ));
            }
        },
    };
    let mut out = Vec::new();
    'pools: for pool in manager.pools() {
        for t in pool.view().active {
            if sets
                .as_ref()
                .is_some_and(|s| !matches_target(s, &t.target.labels))
            {
                continue;
            }
            let meta = t.metadata.lock();
            let mut names: Vec<&String> = match metric {
                Some(m) => meta.keys().filter(|k| k.as_str() == m).collect(),
                None => meta.keys().collect(),
            };
            names.sort();
            for name in names {
                if out.len() >= limit {
                    break 'pools;
                }
                let m = &meta[name];
                out.push(json!({
                    "target": map_json(&t.target.labels),
                    "metric": name,
                    "type": m.kind.as_str(),
                    "help": m.help,
                    "unit": m.unit,
                }));
            }
        }
    }
    Ok(success(Value::Array(out), None))
}

/// `GET /api/v1/metadata?metric=…&limit=…&limit_per_metric=…`: distinct metadata per metric
/// over every target.
pub async fn metadata(State(state): State<AppState>, params: Params) -> ApiResult {
    let manager = state.scrape()?;
    let num = |key: &str| -> Result<Option<usize>, ApiError> {
        match params.get(key) {
            None | Some("") => Ok(None),
            Some(l) => match l.parse::<i64>() {
                Ok(n) if n > 0 => Ok(Some(n as usize)),
                Ok(_) => Ok(None),
                Err(_) => Err(ApiError::bad_data(format!(
                    "invalid parameter \"{key}\": not a number"
                ))),
            },
        }
    };
    let limit = num("limit")?;
    let per_metric = num("limit_per_metric")?;
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let mut all: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for pool in manager.pools() {
        for t in pool.view().active {
            let meta = t.metadata.lock();
            for (name, m) in meta.iter() {
                if metric.is_some_and(|want| want != name) {
                    continue;
                }
                if !seen.insert((name.clone(), m.kind, m.help.clone(), m.unit.clone())) {
                    continue;
                }
                all.entry(name.clone()).or_default().push(json!({
                    "type": m.kind.as_str(),
                    "help": m.help,
                    "unit": m.unit,
                }));
            }
        }
    }
    // And what remote write 2.0 senders pushed.
    for (name, m) in state.pushed_metadata() {
        if metric.is_some_and(|want| want != name)
            || !seen.insert((name.clone(), m.kind, m.help.to_string(), m.unit.to_string()))
        {
            continue;
        }
        all.entry(name).or_default().push(json!({
            "type": m.kind.as_str(),
            "help": &*m.help,
            "unit": &*m.unit,
        }));
    }
    let mut out = Map::new();
    for (name, mut list) in all {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        if let Some(p) = per_metric {
            list.truncate(p);
        }
        out.insert(name, Value::Array(list));
    }
    Ok(success(Value::Object(out), None))
}

/// `GET /api/v1/status/config`: the configuration file in force, as written.
pub async fn config(State(state): State<AppState>) -> ApiResult {
    Ok(success(
        json!({"yaml": state.config().redacted_yaml()}),
        None,
    ))
}

/// `GET /api/v1/status/flags`
pub async fn flags(State(state): State<AppState>) -> ApiResult {
    Ok(success(json!(state.flags().to_map()), None))
}

/// `POST /-/reload`: 200 when the new configuration is in force; 500 with the reason (and the
/// old configuration still running) when it is not, as Prometheus answers.
pub async fn reload(State(state): State<AppState>) -> Response {
    match state.reload().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}
