//! `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers`, in Prometheus's shapes
//! (Grafana reads them).

use std::time::SystemTime;

use axum::extract::State;
use serde_json::{Map, Value, json};

use super::params::Params;
use super::targets::rfc3339;
use super::{ApiError, ApiResult, AppState, success};
use crate::rules::alerting::{Alert, AlertingRule};
use crate::rules::group::{Group, Rule, RuleBody};
use crate::rules::template::go_e;

fn ms_rfc3339(ms: i64) -> String {
    rfc3339(Some(
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    ))
}

fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": ms_rfc3339(a.active_at),
        "value": go_e(a.value),
    });
    if let Some(since) = a.keep_firing_since {
        v["keepFiringSince"] = json!(ms_rfc3339(since));
    }
    v
}

fn rule_json(r: &Rule, with_alerts: bool) -> Value {
    let status = r.status();
    let mut v = match &r.body {
        RuleBody::Recording(rec) => {
            let mut v = json!({"name": rec.name, "query": r.query, "type": "recording"});
            if !rec.labels.is_empty() {
                v["labels"] = json!(rec.labels);
            }
            v
        }
        RuleBody::Alerting(a) => alerting_json(a, &r.query, with_alerts),
    };
    v["health"] = json!(status.health.as_str());
    if let Some(e) = &status.last_error {
        v["lastError"] = json!(e);
    }
    v["evaluationTime"] = json!(status.evaluation_time.as_secs_f64());
    v["lastEvaluation"] = json!(rfc3339(status.last_evaluation));
    v
}

fn alerting_json(a: &AlertingRule, query: &str, with_alerts: bool) -> Value {
    let alerts: Vec<Value> = if with_alerts {
        a.active_alerts().iter().map(alert_json).collect()
    } else {
        Vec::new()
    };
    json!({
        "state": a.state().as_str(),
        "name": a.name,
        "query": query,
        "duration": a.hold.as_secs_f64(),
        "keepFiringFor": a.keep_firing_for.as_secs_f64(),
        "labels": a.labels,
        "annotations": a.annotations,
        "alerts": alerts,
        "type": "alerting",
    })
}

/// `GET /api/v1/rules?type=alert|record&rule_name[]=…&rule_group[]=…&file[]=…&exclude_alerts=…`
pub async fn rules(State(state): State<AppState>, params: Params) -> ApiResult {
    let manager = state.rules()?;
    let (alerts, records) = match params.get("type").unwrap_or("") {
        "" => (true, true),
        "alert" => (true, false),
        "record" => (false, true),
        other => {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"type\": unsupported type {other:?}"
            )));
        }
    };
    let names = params.all("rule_name[]");
    let group_names = params.all("rule_group[]");
    let files = params.all("file[]");
    let with_alerts = params.get("exclude_alerts") != Some("true");
    let mut groups = Vec::new();
    for g in manager.groups() {
        if (!group_names.is_empty() && !group_names.contains(&g.name.as_str()))
            || (!files.is_empty() && !files.contains(&g.file.as_str()))
        {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| match r.body {
                RuleBody::Alerting(_) => alerts,
                RuleBody::Recording(_) => records,
            })
            .filter(|r| names.is_empty() || names.contains(&r.name()))
            .map(|r| rule_json(r, with_alerts))
            .collect();
        if rules.is_empty() && (!alerts || !records || !names.is_empty()) {
            continue;
        }
        groups.push(group_json(&g, rules));
    }
    Ok(success(json!({ "groups": groups }), None))
}

fn group_json(g: &Group, rules: Vec<Value>) -> Value {
    let (last, took) = g.last_evaluation();
    json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval.as_secs_f64(),
        "limit": g.limit,
        "evaluationTime": took.as_secs_f64(),
        "lastEvaluation": rfc3339(last),
    })
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(state): State<AppState>) -> ApiResult {
    let manager = state.rules()?;
    let mut out = Vec::new();
    for g in manager.groups() {
        for r in &g.rules {
            if let RuleBody::Alerting(a) = &r.body {
                out.extend(a.active_alerts().iter().map(alert_json));
            }
        }
    }
    Ok(success(json!({ "alerts": out }), None))
}

/// `GET /api/v1/alertmanagers`: where alerts go, and what relabeling dropped.
pub async fn alertmanagers(State(state): State<AppState>) -> ApiResult {
    let notifier = state.notifier()?;
    let (active, dropped) = notifier.alertmanagers();
    let urls = |v: Vec<String>| -> Vec<Value> {
        v.into_iter()
            .map(|u| Value::Object(Map::from_iter([("url".to_string(), Value::String(u))])))
            .collect()
    };
    Ok(success(
        json!({"activeAlertmanagers": urls(active), "droppedAlertmanagers": urls(dropped)}),
        None,
    ))
}
