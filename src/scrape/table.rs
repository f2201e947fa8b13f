//! `system.targets`: the active scrape targets as SQL rows, as `/api/v1/targets` shows them.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, MapBuilder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use quiver_storage::block::{labels_field, timestamp_type};

use super::manager::Pool;

/// The columns of `system.targets`.
pub fn targets_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("scrape_pool", DataType::Utf8, false),
        Field::new("scrape_url", DataType::Utf8, false),
        Field::new("instance", DataType::Utf8, true),
        labels_field(),
        Field::new("health", DataType::Utf8, false),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("last_scrape", timestamp_type(), true),
        Field::new("last_scrape_duration_seconds", DataType::Float64, false),
        Field::new("scrape_interval_seconds", DataType::Float64, false),
        Field::new("scrape_timeout_seconds", DataType::Float64, false),
    ]))
}

/// One row per active target of `pools`.
pub fn targets_batch(pools: &[Arc<Pool>]) -> Result<RecordBatch> {
    let mut pool = StringBuilder::new();
    let mut url = StringBuilder::new();
    let mut instance = StringBuilder::new();
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let mut health = StringBuilder::new();
    let mut last_error = StringBuilder::new();
    let mut last_scrape = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut duration = Float64Builder::new();
    let mut interval = Float64Builder::new();
    let mut timeout = Float64Builder::new();
    for p in pools {
        for t in &p.view().active {
            let status = t.status.lock().clone();
            let target = &t.target;
            pool.append_value(&t.pool);
            url.append_value(&target.url);
            instance.append_option(target.labels.get("instance"));
            for (k, v) in target.labels.iter() {
                labels.keys().append_value(k);
                labels.values().append_value(v);
            }
            labels.append(true)?;
            health.append_value(status.health.as_str());
            last_error.append_option((!status.last_error.is_empty()).then_some(&status.last_error));
            last_scrape.append_option(
                status
                    .last_scrape
                    .map(|t| chrono::DateTime::<chrono::Utc>::from(t).timestamp_millis()),
            );
            duration.append_value(status.last_duration.as_secs_f64());
            interval.append_value(target.interval.as_secs_f64());
            timeout.append_value(target.timeout.as_secs_f64());
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(pool.finish()),
        Arc::new(url.finish()),
        Arc::new(instance.finish()),
        Arc::new(labels.finish()),
        Arc::new(health.finish()),
        Arc::new(last_error.finish()),
        Arc::new(last_scrape.finish()),
        Arc::new(duration.finish()),
        Arc::new(interval.finish()),
        Arc::new(timeout.finish()),
    ];
    Ok(RecordBatch::try_new(targets_schema(), columns)?)
}
