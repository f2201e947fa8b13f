//! `system.rules` and `system.alerts`: the rules and their alerts as SQL rows, as
//! `/api/v1/rules` and `/api/v1/alerts` show them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, MapBuilder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use quiver_storage::block::{labels_field, timestamp_type};

use super::group::{Group, RuleBody};
use super::sql::SqlRuleStatus;

pub fn rules_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("group_name", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("rule_name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, true),
        Field::new("health", DataType::Utf8, false),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("last_evaluation", timestamp_type(), true),
        Field::new("evaluation_time_seconds", DataType::Float64, false),
        Field::new("interval_seconds", DataType::Float64, false),
    ]))
}

pub fn alerts_schema() -> SchemaRef {
    let annotations = Field::new("annotations", labels_field().data_type().clone(), false);
    Arc::new(Schema::new(vec![
        Field::new("alertname", DataType::Utf8, false),
        labels_field(),
        annotations,
        Field::new("state", DataType::Utf8, false),
        Field::new("active_at", timestamp_type(), false),
        Field::new("value", DataType::Float64, false),
        Field::new("group_name", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
    ]))
}

fn millis(t: Option<SystemTime>) -> Option<i64> {
    t.map(|t| chrono::DateTime::<chrono::Utc>::from(t).timestamp_millis())
}

/// One row per rule of `groups` and per SQL rule.
pub fn rules_batch(groups: &[Arc<Group>], sql: &[SqlRuleStatus]) -> Result<RecordBatch> {
    let mut c: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
    let mut last = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut took = Float64Builder::new();
    let mut every = Float64Builder::new();
    for g in groups {
        for r in &g.rules {
            let s = r.status();
            let (kind, state) = match &r.body {
                RuleBody::Recording(_) => ("recording", None),
                RuleBody::Alerting(a) => ("alerting", Some(a.state().as_str())),
            };
            c[0].append_value(&g.name);
            c[1].append_value(&g.file);
            c[2].append_value(r.name());
            c[3].append_value(kind);
            c[4].append_value(&r.query);
            c[5].append_option(state);
            c[6].append_value(s.health.as_str());
            c[7].append_option(s.last_error.as_deref());
            last.append_option(millis(s.last_evaluation));
            took.append_value(s.evaluation_time.as_secs_f64());
            every.append_value(g.interval.as_secs_f64());
        }
    }
    for s in sql {
        c[0].append_value("sql_rules");
        c[1].append_value("");
        c[2].append_value(&s.config.name);
        c[3].append_value("sql");
        c[4].append_value(&s.config.query);
        c[5].append_null();
        c[6].append_value(s.health.as_str());
        c[7].append_option(s.last_error.as_deref());
        last.append_option(millis(s.last_evaluation));
        took.append_value(s.evaluation_time.as_secs_f64());
        every.append_value(s.interval.as_secs_f64());
    }
    let mut columns: Vec<ArrayRef> = c
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    columns.push(Arc::new(last.finish()));
    columns.push(Arc::new(took.finish()));
    columns.push(Arc::new(every.finish()));
    Ok(RecordBatch::try_new(rules_schema(), columns)?)
}

/// One row per pending or firing alert.
pub fn alerts_batch(groups: &[Arc<Group>]) -> Result<RecordBatch> {
    let mut name = StringBuilder::new();
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let mut annotations = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let mut state = StringBuilder::new();
    let mut active_at = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut value = Float64Builder::new();
    let mut group = StringBuilder::new();
    let mut file = StringBuilder::new();
    let map = |b: &mut MapBuilder<StringBuilder, StringBuilder>, m: &BTreeMap<String, String>| {
        for (k, v) in m {
            b.keys().append_value(k);
            b.values().append_value(v);
        }
        b.append(true)
    };
    for g in groups {
        for r in &g.rules {
            let RuleBody::Alerting(a) = &r.body else {
                continue;
            };
            for alert in a.active_alerts() {
                name.append_value(&a.name);
                map(&mut labels, &alert.labels)?;
                map(&mut annotations, &alert.annotations)?;
                state.append_value(alert.state.as_str());
                active_at.append_value(alert.active_at);
                value.append_value(alert.value);
                group.append_value(&g.name);
                file.append_value(&g.file);
            }
        }
    }
    let schema = alerts_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(name.finish()),
        Arc::new(labels.finish()),
        Arc::new(annotations.finish()),
        Arc::new(state.finish()),
        Arc::new(active_at.finish()),
        Arc::new(value.finish()),
        Arc::new(group.finish()),
        Arc::new(file.finish()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
